//! The Blocklists page: the DNS blocklists with their weights and return codes, the threshold,
//! the whitelist, and a live test that asks every list about an address or a domain now.
//! Global administrators only: the lists apply to every domain.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use postern_store::model::{Dnsbl, WhitelistEntry};
use serde::Deserialize;

use super::{Flash, Layout, error_page, saved};
use crate::api::dnsbl::new_list;
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::screening::{DnsblTest, test_dnsbl};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dnsbl", get(show))
        .route("/dnsbl/lists", post(add_list))
        .route("/dnsbl/lists/remove", post(remove_list))
        .route("/dnsbl/threshold", post(set_threshold))
        .route("/dnsbl/whitelist", post(add_whitelist))
        .route("/dnsbl/whitelist/remove", post(remove_whitelist))
        .route("/dnsbl/test", post(test))
}

#[derive(Template)]
#[template(path = "dnsbl/list.html")]
struct Page {
    layout: Layout,
    dnsbl: Dnsbl,
    subject: String,
    result: Option<DnsblTest>,
    test_error: Option<String>,
}

impl_page!(Page);

async fn page(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    subject: String,
    result: Option<DnsblTest>,
    test_error: Option<String>,
) -> Result<Page, WebError> {
    user.principal.require_global()?;
    Ok(Page {
        layout: Layout::new(user, "dnsbl", "Blocklists", headers),
        dnsbl: state.store.dnsbl().await?,
        subject,
        result,
        test_error,
    })
}

async fn show(State(state): State<AppState>, user: ConsoleUser, headers: HeaderMap) -> Response {
    super::respond(StatusCode::OK, page(&state, &user, &headers, String::new(), None, None).await)
}

/// Runs a change and goes back to the page with what happened.
async fn done(state: &AppState, result: Result<String, WebError>) -> Response {
    match result {
        Ok(what) => saved(state, &what).await.redirect("/dnsbl"),
        Err(
            e @ (WebError::NotFound(_)
            | WebError::Invalid { .. }
            | WebError::Duplicate(_)
            | WebError::Conflict(_)),
        ) => Flash::error(e.to_string()).redirect("/dnsbl"),
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize)]
struct ListForm {
    #[serde(default)]
    zone: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    weight: String,
    #[serde(default)]
    codes: String,
    #[serde(default)]
    description: String,
}

async fn add_list(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<ListForm>,
) -> Response {
    let result = async {
        user.principal.require_global()?;
        let weight = match form.weight.trim() {
            "" => None,
            w => Some(w.parse().map_err(|_| WebError::invalid("weight", "a whole number"))?),
        };
        let new = new_list(&form.zone, &form.kind, weight, &form.codes, &form.description)?;
        let list = state.store.add_blocklist(&user.principal.actor, new).await?;
        Ok(format!("Added the blocklist {}", list.zone))
    }
    .await;
    done(&state, result).await
}

#[derive(Deserialize)]
struct ZoneForm {
    #[serde(default)]
    zone: String,
}

async fn remove_list(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<ZoneForm>,
) -> Response {
    let result = async {
        user.principal.require_global()?;
        state.store.remove_blocklist(&user.principal.actor, &form.zone).await?;
        Ok(format!("Removed the blocklist {}", form.zone.trim()))
    }
    .await;
    done(&state, result).await
}

#[derive(Deserialize)]
struct ThresholdForm {
    #[serde(default)]
    threshold: String,
}

async fn set_threshold(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<ThresholdForm>,
) -> Response {
    let result = async {
        user.principal.require_global()?;
        let threshold: i64 = form
            .threshold
            .trim()
            .parse()
            .map_err(|_| WebError::invalid("threshold", "a whole number"))?;
        state.store.set_dnsbl_threshold(&user.principal.actor, threshold).await?;
        Ok(format!("The threshold is now {threshold}"))
    }
    .await;
    done(&state, result).await
}

#[derive(Deserialize)]
struct EntryForm {
    #[serde(default)]
    entry: String,
}

async fn add_whitelist(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<EntryForm>,
) -> Response {
    let result = async {
        user.principal.require_global()?;
        let entry: WhitelistEntry = form.entry.parse().map_err(WebError::from)?;
        state.store.add_dnsbl_whitelist(&user.principal.actor, &entry).await?;
        Ok(format!("{entry} is never checked"))
    }
    .await;
    done(&state, result).await
}

async fn remove_whitelist(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<EntryForm>,
) -> Response {
    let result = async {
        user.principal.require_global()?;
        let entry: WhitelistEntry = form.entry.parse().map_err(WebError::from)?;
        state.store.remove_dnsbl_whitelist(&user.principal.actor, &entry).await?;
        Ok(format!("{entry} is checked again"))
    }
    .await;
    done(&state, result).await
}

#[derive(Deserialize)]
struct TestForm {
    #[serde(default)]
    subject: String,
}

/// Asks the lists now and shows the answer under the test form.
async fn test(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Form(form): Form<TestForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let (status, result, error) = match test_dnsbl(&state, &form.subject).await {
        Ok(result) => (StatusCode::OK, Some(result), None),
        Err(e @ WebError::Invalid { .. }) => {
            (StatusCode::UNPROCESSABLE_ENTITY, None, Some(e.to_string()))
        }
        Err(e @ WebError::Conflict(_)) => (StatusCode::CONFLICT, None, Some(e.to_string())),
        Err(e) => return error_page(e),
    };
    super::respond(status, page(&state, &user, &headers, form.subject, result, error).await)
}
