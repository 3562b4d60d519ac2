//! The Greylisting page: the delays, a switch per domain, the triplets seen lately, and a test
//! of what a triplet would meet now. Global administrators only (a domain administrator turns
//! its domain's greylisting on or off through the API).

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use postern_store::model::{DomainName, GreylistSettings};
use serde::Deserialize;

use super::{Flash, Layout, error_page, saved};
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::screening::{GreylistTest, test_greylist};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/greylisting", get(show))
        .route("/greylisting/settings", post(set_settings))
        .route("/greylisting/domain", post(switch))
        .route("/greylisting/test", post(test))
}

struct DomainRow {
    name: String,
    on: bool,
}

struct TripletRow {
    client: String,
    sender: String,
    recipient: String,
    first_seen: String,
    passed: String,
}

#[derive(Default)]
struct Typed {
    client: String,
    sender: String,
    recipient: String,
}

#[derive(Template)]
#[template(path = "greylisting/list.html")]
struct Page {
    layout: Layout,
    settings: GreylistSettings,
    domains: Vec<DomainRow>,
    recent: Vec<TripletRow>,
    total: i64,
    typed: Typed,
    result: Option<GreylistTest>,
    test_error: Option<String>,
}

impl_page!(Page);

async fn page(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    typed: Typed,
    result: Option<GreylistTest>,
    test_error: Option<String>,
) -> Result<Page, WebError> {
    user.principal.require_global()?;
    let greylisting = state.store.greylisting().await?;
    let domains = state
        .store
        .list_domains()
        .await?
        .into_iter()
        .map(|d| DomainRow { on: greylisting.domains.contains(&d.name), name: d.name.to_string() })
        .collect();
    let (recent, total) = state.store.list_greylist_records(50).await?;
    let recent = recent
        .into_iter()
        .map(|r| TripletRow {
            first_seen: crate::time::format(r.first_seen),
            passed: r.passed_at.map_or("not yet".into(), crate::time::format),
            client: r.triplet.client,
            sender: r.triplet.sender,
            recipient: r.triplet.recipient,
        })
        .collect();
    Ok(Page {
        layout: Layout::new(user, "greylisting", "Greylisting", headers),
        settings: greylisting.settings,
        domains,
        recent,
        total,
        typed,
        result,
        test_error,
    })
}

async fn show(State(state): State<AppState>, user: ConsoleUser, headers: HeaderMap) -> Response {
    super::respond(
        StatusCode::OK,
        page(&state, &user, &headers, Typed::default(), None, None).await,
    )
}

async fn done(state: &AppState, result: Result<String, WebError>) -> Response {
    match result {
        Ok(what) => saved(state, &what).await.redirect("/greylisting"),
        Err(e @ (WebError::NotFound(_) | WebError::Invalid { .. })) => {
            Flash::error(e.to_string()).redirect("/greylisting")
        }
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize)]
struct SettingsForm {
    #[serde(default)]
    delay: String,
    #[serde(default)]
    retry_window: String,
    #[serde(default)]
    expire: String,
}

fn number(field: &str, value: &str) -> Result<i64, WebError> {
    value
        .trim()
        .parse()
        .map_err(|_| WebError::invalid(field, format!("{field}: a number of seconds")))
}

async fn set_settings(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<SettingsForm>,
) -> Response {
    let result = async {
        user.principal.require_global()?;
        let settings = GreylistSettings {
            delay: number("delay", &form.delay)?,
            retry_window: number("retry_window", &form.retry_window)?,
            expire: number("expire", &form.expire)?,
        };
        state.store.set_greylist_settings(&user.principal.actor, settings).await?;
        Ok("Saved greylisting's delays".to_string())
    }
    .await;
    done(&state, result).await
}

#[derive(Deserialize)]
struct SwitchForm {
    #[serde(default)]
    domain: String,
    #[serde(default)]
    on: String,
}

async fn switch(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<SwitchForm>,
) -> Response {
    let result = async {
        user.principal.require_global()?;
        let domain: DomainName = form.domain.trim().parse().map_err(WebError::from)?;
        let on = form.on == "1";
        state.store.set_greylisting(&user.principal.actor, &domain, on).await?;
        Ok(format!("Greylisting is {} for {domain}", if on { "on" } else { "off" }))
    }
    .await;
    done(&state, result).await
}

#[derive(Deserialize)]
struct TestForm {
    #[serde(default)]
    client: String,
    #[serde(default)]
    sender: String,
    #[serde(default)]
    recipient: String,
}

async fn test(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Form(form): Form<TestForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let (status, result, error) =
        match test_greylist(&state, &form.client, &form.sender, &form.recipient).await {
            Ok(result) => (StatusCode::OK, Some(result), None),
            Err(e @ WebError::Invalid { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, None, Some(e.to_string()))
            }
            Err(e) => return error_page(e),
        };
    let typed = Typed { client: form.client, sender: form.sender, recipient: form.recipient };
    super::respond(status, page(&state, &user, &headers, typed, result, error).await)
}
