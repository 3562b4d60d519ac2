//! The dashboard: the queue, the engines, and the last day's traffic at a glance.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use postern_store::model::DomainName;
use postern_store::model::{Page as QueuePage, QueueFilter};
use postern_store::{EngineStatus, HourCounts, LogFilter};

use super::{Layout, chart};
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::state::AppState;
use crate::time;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(show))
}

#[derive(Template)]
#[template(path = "dashboard/show.html")]
struct Dashboard {
    layout: Layout,
    queued: u64,
    engines: Vec<EngineRow>,
    totals: HourCounts,
    certificate: Option<CertificateRow>,
    /// What needs fixing now, at the top of the page (global administrators only): trusted
    /// networks that make this an open relay.
    problems: Vec<String>,
    /// Certificates in use that expire within 14 days (global administrators only).
    expiring: Vec<String>,
    /// `None` while the first DNS check runs or when it is off.
    dns: Option<Vec<crate::dns::Attention>>,
    /// When the shown DNS check ran.
    dns_checked: String,
    /// How many local domains the user sees (the DNS check has nothing to say without one).
    dns_domains: usize,
    dns_off: bool,
    /// The inner SVG of the last 24 hours' chart: numbers only (see `chart`).
    chart: String,
    errors: Vec<ErrorRow>,
    /// How large the store is on disk (global administrators only).
    storage: Option<StorageRow>,
    /// The last scheduled backup (global administrators only): `None` when none ran.
    backup: Option<BackupRow>,
}

struct BackupRow {
    at: String,
    file: String,
    size: String,
    error: Option<String>,
}

struct StorageRow {
    database: String,
    /// SQLite's WAL; empty with Postgres.
    wal: String,
    free: String,
    spooled: u64,
    spooled_bytes: String,
}

struct CertificateRow {
    path: String,
    expires: String,
    days_left: i64,
    self_signed: bool,
}

struct ErrorRow {
    at: String,
    message_id: String,
    recipient: String,
    status: String,
    reply: String,
}

impl Dashboard {
    fn series(&self) -> &'static [(&'static str, &'static str)] {
        &chart::SERIES
    }
}

struct EngineRow {
    node: String,
    revision: i64,
    applied: String,
    /// How long ago it last said it runs, and whether that is too long ago to count.
    seen: String,
    stopped: bool,
    problems: Option<String>,
    /// Its membership (`alive`, `draining`, `drained`, `dead`), when it has one.
    state: String,
}

impl_page!(Dashboard);

async fn show(State(state): State<AppState>, user: ConsoleUser, headers: HeaderMap) -> Response {
    let result: Result<Dashboard, WebError> = async {
        let domains = user.principal.domains.clone();
        // A domain-admin counts the messages with a recipient in its domains, as its queue
        // page lists them.
        let mine = QueueFilter { domains: domains.clone(), ..QueueFilter::default() };
        let queued =
            state.store.queue_list(&mine, QueuePage { after: None, limit: 1 }).await?.total;
        // The engines' counters for a global administrator, the delivery log for a
        // domain-admin's domains (see `crate::traffic`).
        let (start, hours, _) =
            crate::traffic::last_day(&state.store, &domains, time::now()).await?;
        let chart = chart::svg(&chart::buckets(&hours, start), start);
        let errors = last_errors(&state, &domains).await?;
        let totals = crate::traffic::totals(&hours);
        let members = state.store.node_list().await?;
        let engines = state
            .store
            .engine_status()
            .await?
            .into_iter()
            .map(|e: EngineStatus| EngineRow {
                state: members
                    .iter()
                    .find(|n| n.node == e.node)
                    .map_or(String::new(), |n| n.state.to_string()),
                applied: time::format(e.applied_at),
                seen: time::age(time::now() - e.seen_at),
                stopped: time::now() - e.seen_at > postern_store::ENGINE_GONE_AFTER,
                problems: e.refused.map(|r| format!("revision {r} refused: {}", e.problems)),
                node: e.node,
                revision: e.revision,
            })
            .collect();
        let certificate = state.settings.certificate.as_ref().map(|c| CertificateRow {
            path: c.path.clone(),
            expires: time::format(c.not_after),
            days_left: (c.not_after - time::now()).div_euclid(86_400),
            self_signed: c.self_signed,
        });
        let problems = if user.principal.is_global() {
            state
                .store
                .list_networks()
                .await?
                .iter()
                .filter(|n| postern_store::model::is_open_relay_range(&n.cidr))
                .map(|n| {
                    format!(
                        "Trusted network {}: {}. Remove it on the Trusted networks page unless \
                         you mean it",
                        n.cidr,
                        postern_store::model::open_relay_warning(&n.cidr)
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        let expiring = if user.principal.is_global() {
            let stored = state.store.list_certificates().await?;
            crate::certs::expiring(&stored, &state.settings.hostname, time::now())
                .into_iter()
                .map(|(c, days)| {
                    format!(
                        "The certificate for {} expires on {} UTC, in {days} day{}: renew it or import a new one on the Certificates page",
                        c.names.join(" "),
                        time::format(c.not_after),
                        if days == 1 { "" } else { "s" }
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut dns_checked = String::new();
        let mut dns_domains = 0;
        let dns = match &state.dns {
            Some(lookup) => {
                let local: Vec<String> = state
                    .store
                    .list_domains()
                    .await?
                    .into_iter()
                    .filter(|d| d.kind == postern_store::model::DomainKind::Local)
                    .map(|d| d.name.to_string())
                    .collect();
                dns_domains = local
                    .iter()
                    .filter(|d| d.parse().is_ok_and(|d| user.principal.sees(&d)))
                    .count();
                // One check of every local domain serves everyone; each sees only their own.
                state.dns_watch.current(lookup.clone(), state.settings.hostname.clone(), local).map(
                    |checked| {
                        dns_checked = time::format(checked.at);
                        checked
                            .found
                            .iter()
                            .filter(|a| a.domain.parse().is_ok_and(|d| user.principal.sees(&d)))
                            .cloned()
                            .collect()
                    },
                )
            }
            None => None,
        };
        let storage = if user.principal.is_global() {
            let sizes = state.store.storage_sizes().await?;
            Some(StorageRow {
                database: super::queue::size(sizes.database),
                wal: sizes.wal.map(super::queue::size).unwrap_or_default(),
                free: super::queue::size(sizes.free),
                spooled: sizes.spooled,
                spooled_bytes: super::queue::size(sizes.spooled_bytes),
            })
        } else {
            None
        };
        let backup = if user.principal.is_global() {
            state.store.last_backup().await?.map(|b| BackupRow {
                at: crate::time::format(b.at),
                file: b.file.unwrap_or_default(),
                size: b.size.map(|n| super::queue::size(n.max(0) as u64)).unwrap_or_default(),
                error: b.error,
            })
        } else {
            None
        };
        Ok(Dashboard {
            storage,
            backup,
            layout: Layout::new(&user, "dashboard", "Dashboard", &headers),
            queued,
            engines,
            totals,
            certificate,
            problems,
            expiring,
            dns,
            dns_checked,
            dns_domains,
            dns_off: state.dns.is_none(),
            chart,
            errors,
        })
    }
    .await;
    super::respond(StatusCode::OK, result)
}

/// The newest failed and deferred deliveries, newest first.
async fn last_errors(
    state: &AppState,
    domains: &Option<Vec<DomainName>>,
) -> Result<Vec<ErrorRow>, WebError> {
    const SHOWN: usize = 10;
    let mut entries = Vec::new();
    for status in ["failed", "deferred"] {
        let filter =
            LogFilter { domains: domains.clone(), status: Some(status.into()), search: None };
        entries.extend(state.store.delivery_log(&filter, None, SHOWN as u32).await?);
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.id));
    entries.truncate(SHOWN);
    Ok(entries
        .into_iter()
        .map(|e| ErrorRow {
            at: time::format(e.at),
            message_id: e.message_id,
            recipient: e.recipient,
            status: e.status,
            reply: e.reply,
        })
        .collect())
}
