//! The transports and relay page: where mail for a destination goes (a smarthost, LMTP, MX…),
//! with TLS and AUTH. Global: only an admin of every domain sees it. The AUTH password is
//! write-only: the page says whether one is set, never what it is.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use postern_store::model::{TlsPolicy, TransportPattern, TransportRule};
use serde::Deserialize;

use super::link::encode;
use super::refusal::place;
use super::{Flash, FormState, Layout, error_page, render, saved};
use crate::api::transports::{TransportSpec, set};
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::state::AppState;
use crate::time;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/transports", get(list).post(add))
        .route("/transports/delete", post(remove))
}

struct Row {
    pattern: String,
    /// The link that opens this rule in the form.
    edit_href: String,
    transport: String,
    tls: String,
    username: Option<String>,
    password_set: bool,
    updated: String,
}

impl From<&TransportRule> for Row {
    fn from(r: &TransportRule) -> Row {
        Row {
            pattern: r.pattern.to_string(),
            edit_href: format!("/transports?edit={}", encode(&r.pattern.to_string())),
            transport: r.transport.to_string(),
            tls: r.tls.to_string(),
            username: r.auth.as_ref().map(|a| a.username.clone()),
            password_set: r.auth.as_ref().is_some_and(|a| !a.password.is_empty()),
            updated: time::format(r.updated_at),
        }
    }
}

#[derive(Template)]
#[template(path = "transports/list.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<Row>,
    /// The form replaces an existing rule (opened with Edit) rather than adding one.
    replacing: bool,
    form: FormState,
}

impl_page!(ListPage);

const TLS_POLICIES: [(&str, &str); 4] = [
    ("may", "may: STARTTLS when offered"),
    ("encrypt", "encrypt: TLS required, any certificate"),
    ("verify", "verify: TLS with a valid certificate"),
    ("none", "none: never STARTTLS"),
];

impl ListPage {
    fn tls_policies(&self) -> &'static [(&'static str, &'static str)] {
        &TLS_POLICIES
    }
}

async fn page(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    replacing: bool,
    form: FormState,
) -> Result<ListPage, WebError> {
    user.principal.require_global()?;
    let mut rules = state.store.list_transports().await?;
    rules.sort_by_key(|r| r.pattern.to_string());
    Ok(ListPage {
        layout: Layout::new(user, "transports", "Transports & relay", headers),
        rows: rules.iter().map(Row::from).collect(),
        replacing,
        form,
    })
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    edit: String,
}

async fn list(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    let result = async {
        user.principal.require_global()?;
        // Edit opens the form on the rule as it is, less its password.
        let editing = match query.edit.parse::<TransportPattern>() {
            Ok(pattern) if !query.edit.is_empty() => {
                state.store.list_transports().await?.into_iter().find(|r| r.pattern == pattern)
            }
            _ => None,
        };
        let form = match &editing {
            Some(rule) => FormState::with(&[
                ("pattern", &rule.pattern.to_string()),
                ("transport", &rule.transport.to_string()),
                ("tls", rule.tls.as_str()),
                ("username", rule.auth.as_ref().map_or("", |a| a.username.as_str())),
            ]),
            None => FormState::with(&[("tls", "may")]),
        };
        page(&state, &user, &headers, editing.is_some(), form).await
    }
    .await;
    super::respond(StatusCode::OK, result)
}

// No `Debug`: it holds a password.
#[derive(Deserialize)]
struct RuleForm {
    #[serde(default)]
    pattern: String,
    #[serde(default)]
    transport: String,
    #[serde(default)]
    tls: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// `1` when the form was opened on an existing rule, to replace it.
    #[serde(default)]
    replace: String,
}

async fn add(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Form(form): Form<RuleForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let replacing = form.replace == "1";
    let result: Result<TransportPattern, WebError> = async {
        let pattern: TransportPattern = form.pattern.parse()?;
        let tls: TlsPolicy = form.tls.parse()?;
        if !replacing && state.store.list_transports().await?.iter().any(|r| r.pattern == pattern) {
            return Err(WebError::Duplicate(format!(
                "a transport for {pattern} already exists: choose Edit on its row to replace it"
            )));
        }
        let spec = TransportSpec {
            transport: form.transport.clone(),
            tls: Some(tls.into()),
            username: Some(form.username.clone()),
            password: Some(form.password.clone()),
        };
        set(&state, &user.principal.actor, &pattern, spec).await?;
        Ok(pattern)
    }
    .await;
    match result {
        Ok(pattern) => {
            saved(&state, &format!("Transport for {pattern} saved")).await.redirect("/transports")
        }
        Err(e) => match place(e, &[], "pattern") {
            Ok((status, e)) => {
                // The password goes back into this response only, when it was not what was wrong.
                let typed = FormState::with(&[
                    ("pattern", &form.pattern),
                    ("transport", &form.transport),
                    ("tls", &form.tls),
                    ("username", &form.username),
                ]);
                let fields = ["pattern", "transport", "tls", "username", "password"];
                let form = typed.fail(&e, &fields).keep_secret("password", &form.password);
                match page(&state, &user, &headers, replacing, form).await {
                    Ok(p) => render(status, &p),
                    Err(e) => error_page(e),
                }
            }
            Err(e) => error_page(e),
        },
    }
}

#[derive(Deserialize)]
struct RemoveForm {
    #[serde(default)]
    pattern: String,
}

async fn remove(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<RemoveForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let result: Result<TransportPattern, WebError> = async {
        let pattern: TransportPattern = form.pattern.parse()?;
        state.store.remove_transport(&user.principal.actor, &pattern).await?;
        Ok(pattern)
    }
    .await;
    match result {
        Ok(pattern) => {
            saved(&state, &format!("Transport for {pattern} removed")).await.redirect("/transports")
        }
        Err(e @ (WebError::NotFound(_) | WebError::Invalid { .. })) => {
            Flash::error(e.to_string()).redirect("/transports")
        }
        Err(e) => error_page(e),
    }
}
