//! The dashboard: the queue, the engines, and the last day's traffic at a glance.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use postern_store::model::{Page as QueuePage, QueueFilter};
use postern_store::{EngineStatus, HourCounts};

use super::{Layout, Page, render};
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
    /// `None` while the first DNS check runs or when it is off.
    dns: Option<Vec<crate::dns::Attention>>,
    dns_off: bool,
}

struct CertificateRow {
    path: String,
    expires: String,
    days_left: i64,
    self_signed: bool,
}

struct EngineRow {
    node: String,
    revision: i64,
    applied: String,
    problems: Option<String>,
}

impl Page for Dashboard {
    fn layout(&self) -> &Layout {
        &self.layout
    }
}

async fn show(State(state): State<AppState>, user: ConsoleUser, headers: HeaderMap) -> Response {
    let result: Result<Dashboard, WebError> = async {
        let domains = user.principal.domains.clone();
        let queued = if user.principal.is_global() {
            state
                .store
                .queue_list(&QueueFilter::default(), QueuePage { after: None, limit: 1 })
                .await?
                .total
        } else {
            0
        };
        let hours = state.store.delivery_counts(time::now() - 24 * 3600, &domains).await?;
        let totals = hours.iter().fold(HourCounts::default(), |mut t, h| {
            t.received += h.received;
            t.delivered += h.delivered;
            t.deferred += h.deferred;
            t.failed += h.failed;
            t
        });
        let engines = state
            .store
            .engine_status()
            .await?
            .into_iter()
            .map(|e: EngineStatus| EngineRow {
                applied: time::format(e.applied_at),
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
                // One check of every local domain serves everyone; each sees only their own.
                state.dns_watch.current(lookup.clone(), state.settings.hostname.clone(), local).map(
                    |found| {
                        found
                            .iter()
                            .filter(|a| a.domain.parse().is_ok_and(|d| user.principal.sees(&d)))
                            .cloned()
                            .collect()
                    },
                )
            }
            None => None,
        };
        Ok(Dashboard {
            layout: Layout::new(&user, "dashboard", "Dashboard", &headers),
            queued,
            engines,
            totals,
            certificate,
            dns,
            dns_off: state.dns.is_none(),
        })
    }
    .await;
    match result {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => super::error_page(e),
    }
}
