//! The domains page: list, add, remove.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use postern_store::model::{DomainKind, DomainName};
use serde::Deserialize;

use super::{FormState, Layout, error_page, render, saved};
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::state::AppState;
use crate::time;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/domains", get(list).post(add))
        .route("/domains/{name}/delete", post(remove))
}

struct Row {
    name: String,
    kind: String,
    created: String,
    /// The DNS health summary from the last report (`ok`, `2 to fix`, `not checked yet`).
    health: String,
    /// `found` (all well), `wrong` (something to fix) or empty: the CSS class.
    health_class: &'static str,
    /// Mailboxes and aliases in it.
    mailboxes: u64,
    aliases: u64,
}

#[derive(Template)]
#[template(path = "domains/list.html")]
struct ListPage {
    layout: Layout,
    domains: Vec<Row>,
    can_add: bool,
    form: FormState,
}

impl_page!(ListPage);

async fn page(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    form: FormState,
) -> Result<ListPage, WebError> {
    let domains: Vec<_> = state
        .store
        .list_domains()
        .await?
        .into_iter()
        .filter(|d| user.principal.sees(&d.name))
        .collect();
    // From memory only: stale or missing reports are looked up in the background.
    let names: Vec<DomainName> = domains.iter().map(|d| d.name.clone()).collect();
    let reports = state.health_cache.summaries(state.health.clone(), &names);
    let counts = state.store.domain_counts().await?;
    let domains = domains
        .into_iter()
        .zip(reports)
        .map(|(d, report)| {
            let health = match (&report, state.health.is_some()) {
                (Some(r), _) => r.summary(),
                (None, true) => "not checked yet".into(),
                (None, false) => "not checked".into(),
            };
            let count = counts.get(d.name.as_str()).copied().unwrap_or_default();
            Row {
                mailboxes: count.mailboxes,
                aliases: count.aliases,
                name: d.name.to_string(),
                kind: d.kind.to_string(),
                created: time::format(d.created_at),
                health_class: match &report {
                    Some(_) if health == "ok" => "found",
                    Some(r) if r.rows.iter().any(|r| r.to_fix()) => "wrong",
                    _ => "",
                },
                health,
            }
        })
        .collect();
    Ok(ListPage {
        layout: Layout::new(user, "domains", "Domains", headers),
        domains,
        can_add: user.principal.is_global(),
        form,
    })
}

async fn list(State(state): State<AppState>, user: ConsoleUser, headers: HeaderMap) -> Response {
    super::respond(StatusCode::OK, page(&state, &user, &headers, FormState::default()).await)
}

#[derive(Deserialize)]
struct AddForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
}

async fn add(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Form(form): Form<AddForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let result: Result<DomainName, WebError> = async {
        let name: DomainName = form.name.parse().map_err(WebError::from)?;
        let kind: DomainKind = form.kind.parse().map_err(WebError::from)?;
        state.store.add_domain(&user.principal.actor, &name, kind).await?;
        Ok(name)
    }
    .await;
    match result {
        Ok(name) => saved(&state, &format!("Domain {name} added")).await.redirect("/domains"),
        Err(e @ (WebError::Invalid { .. } | WebError::Duplicate(_) | WebError::Conflict(_))) => {
            let typed = FormState::with(&[("name", &form.name), ("kind", &form.kind)]);
            let status = e.status();
            let form = typed.fail(&with_field(e), &["name", "kind"]);
            match page(&state, &user, &headers, form).await {
                Ok(p) => render(status, &p),
                Err(e) => error_page(e),
            }
        }
        Err(e) => error_page(e),
    }
}

/// A duplicate is about the name the user typed.
fn with_field(e: WebError) -> WebError {
    match e {
        WebError::Duplicate(message) => WebError::invalid("name", message),
        WebError::Invalid { field: Some(f), message } if f == "domain" => {
            WebError::invalid("name", message)
        }
        other => other,
    }
}

#[derive(Deserialize)]
struct RemoveForm {
    #[serde(default)]
    cascade: Option<String>,
}

async fn remove(
    State(state): State<AppState>,
    user: ConsoleUser,
    Path(name): Path<String>,
    Form(form): Form<RemoveForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let result: Result<DomainName, WebError> = async {
        let name: DomainName = name.parse().map_err(WebError::from)?;
        let cascade = form.cascade.as_deref() == Some("true");
        state.store.remove_domain(&user.principal.actor, &name, cascade).await?;
        Ok(name)
    }
    .await;
    match result {
        Ok(name) => saved(&state, &format!("Domain {name} removed")).await.redirect("/domains"),
        Err(e @ (WebError::NotFound(_) | WebError::Conflict(_) | WebError::Invalid { .. })) => {
            super::Flash::error(e.to_string()).redirect("/domains")
        }
        Err(e) => error_page(e),
    }
}
