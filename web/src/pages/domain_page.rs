//! One domain's page: its mailboxes and aliases, the quota they are given, its DNS health at a
//! glance (the full report is `/domains/{name}/dns`), and its kind to change.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use postern_store::model::{DomainKind, DomainName};
use serde::Deserialize;

use super::{Flash, Layout, error_page, saved};
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::state::AppState;
use crate::time;

pub fn router() -> Router<AppState> {
    Router::new().route("/domains/{name}", get(show)).route("/domains/{name}/kind", post(set_kind))
}

const MB: u64 = 1024 * 1024;

struct MailboxRow {
    address: String,
    display_name: String,
    enabled: bool,
    quota: String,
}

struct AliasRow {
    source: String,
    destinations: String,
}

#[derive(Template)]
#[template(path = "domains/show.html")]
struct ShowPage {
    layout: Layout,
    name: String,
    kind: String,
    created: String,
    health: String,
    health_class: &'static str,
    mailboxes: Vec<MailboxRow>,
    aliases: Vec<AliasRow>,
    /// The quota given to the domain's mailboxes in all, and how many have no limit.
    quota_total: String,
    unlimited: usize,
    can_edit: bool,
}

impl_page!(ShowPage);

fn quota(bytes: Option<u64>) -> String {
    match bytes {
        None => "no limit".into(),
        Some(b) if b % MB == 0 => format!("{} MB", b / MB),
        Some(b) => format!("{b} bytes"),
    }
}

/// The domain, if the caller may see it; one outside a domain-admin's scope is "not found",
/// like one that does not exist.
async fn domain(
    state: &AppState,
    user: &ConsoleUser,
    name: &str,
) -> Result<postern_store::model::Domain, WebError> {
    let name: DomainName = name.parse().map_err(WebError::from)?;
    match state.store.get_domain(&name).await? {
        Some(d) if user.principal.sees(&d.name) => Ok(d),
        _ => Err(WebError::NotFound(format!("there is no domain {name}"))),
    }
}

async fn show(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let result: Result<ShowPage, WebError> = async {
        let d = domain(&state, &user, &name).await?;
        let mailboxes = state.store.list_mailboxes(Some(&d.name)).await?;
        let aliases = state.store.list_aliases(Some(&d.name)).await?;
        // From memory only, like the domain list: a missing report is looked up meanwhile.
        let report = state
            .health_cache
            .summaries(state.health.clone(), std::slice::from_ref(&d.name))
            .pop()
            .flatten();
        let health = match (&report, state.health.is_some()) {
            (Some(r), _) => r.summary(),
            (None, true) => "not checked yet".into(),
            (None, false) => "not checked".into(),
        };
        let health_class = match &report {
            Some(_) if health == "ok" => "found",
            Some(r) if r.rows.iter().any(|r| r.to_fix()) => "wrong",
            _ => "",
        };
        let total: u64 = mailboxes.iter().filter_map(|m| m.quota_bytes).sum();
        Ok(ShowPage {
            layout: Layout::new(&user, "domains", format!("Domain {}", d.name), &headers),
            name: d.name.to_string(),
            kind: d.kind.to_string(),
            created: time::format(d.created_at),
            health,
            health_class,
            quota_total: quota(Some(total)),
            unlimited: mailboxes.iter().filter(|m| m.quota_bytes.is_none()).count(),
            mailboxes: mailboxes
                .iter()
                .map(|m| MailboxRow {
                    address: m.address.to_string(),
                    display_name: m.display_name.clone(),
                    enabled: m.enabled,
                    quota: quota(m.quota_bytes),
                })
                .collect(),
            aliases: aliases
                .iter()
                .map(|a| AliasRow {
                    source: a.source.to_string(),
                    destinations: a
                        .destinations
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                })
                .collect(),
            can_edit: user.principal.is_global(),
        })
    }
    .await;
    super::respond(StatusCode::OK, result)
}

#[derive(Deserialize)]
struct KindForm {
    #[serde(default)]
    kind: String,
}

async fn set_kind(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(name): Path<String>,
    Form(form): Form<KindForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let back = match name.parse::<DomainName>() {
        Ok(name) => format!("/domains/{name}"),
        Err(_) => "/domains".into(),
    };
    let result: Result<(DomainName, DomainKind), WebError> = async {
        let d = domain(&state, &user, &name).await?;
        let kind: DomainKind = form.kind.parse().map_err(WebError::from)?;
        state.store.set_domain_kind(&user.principal.actor, &d.name, kind).await?;
        Ok((d.name, kind))
    }
    .await;
    match result {
        Ok((name, kind)) => {
            saved(&state, &format!("Domain {name} is now {kind}")).await.redirect(&back)
        }
        Err(e @ (WebError::Conflict(_) | WebError::Invalid { .. })) => {
            Flash::error(e.to_string()).redirect(&back)
        }
        Err(e) => error_page(e),
    }
}
