//! The Milters page: the milters every SMTP session calls, in order, with forms to add, move,
//! turn on or off and remove one, and a live test that connects to a milter, negotiates and
//! shows its protocol version, actions and protocol flags. Global: only an admin of every
//! domain sees it.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::{Form, Router};
use postern_store::model::{MilterDefault, parse_milter_timeout};
use serde::Deserialize;

use super::refusal::place;
use super::{Flash, FormState, Layout, error_page, render, saved};
use crate::api::milters::{NewMilterBody, run_test};
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::milters::ProbeResult;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/milters", axum::routing::get(list).post(add))
        .route("/milters/delete", post(remove))
        .route("/milters/move", post(move_milter))
        .route("/milters/enable", post(enable))
        .route("/milters/test", post(test))
}

struct Row {
    id: i64,
    position: i64,
    name: String,
    address: String,
    default_action: String,
    listeners: String,
    timeouts: String,
    enabled: bool,
}

/// The answer of a live test, shown under the list.
struct Tested {
    name: String,
    result: ProbeResult,
}

#[derive(Template)]
#[template(path = "milters/list.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<Row>,
    defaults: Vec<&'static str>,
    form: FormState,
    tested: Option<Tested>,
}

impl_page!(ListPage);

fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
}

async fn page(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    form: FormState,
    tested: Option<Tested>,
) -> Result<ListPage, WebError> {
    user.principal.require_global()?;
    let rows = state
        .store
        .list_milters()
        .await?
        .into_iter()
        .map(|m| Row {
            id: m.id,
            position: m.position,
            name: m.name,
            address: m.address.to_string(),
            default_action: m.default_action.to_string(),
            listeners: m.listeners.to_string(),
            timeouts: format!(
                "{} / {} / {}",
                seconds(m.timeouts.connect_ms),
                seconds(m.timeouts.command_ms),
                seconds(m.timeouts.eom_ms)
            ),
            enabled: m.enabled,
        })
        .collect();
    Ok(ListPage {
        layout: Layout::new(user, "milters", "Milters", headers),
        rows,
        defaults: MilterDefault::ALL.iter().map(|d| d.as_str()).collect(),
        form,
        tested,
    })
}

fn show(status: StatusCode, result: Result<ListPage, WebError>) -> Response {
    match result {
        Ok(p) => render(status, &p),
        Err(e) => error_page(e),
    }
}

async fn list(State(state): State<AppState>, user: ConsoleUser, headers: HeaderMap) -> Response {
    super::respond(StatusCode::OK, page(&state, &user, &headers, FormState::default(), None).await)
}

#[derive(Deserialize)]
struct AddForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    default_action: String,
    #[serde(default)]
    listeners: String,
    #[serde(default)]
    connect_timeout: String,
    #[serde(default)]
    command_timeout: String,
    #[serde(default)]
    eom_timeout: String,
    #[serde(default)]
    position: String,
}

const FIELDS: &[&str] = &[
    "name",
    "address",
    "default_action",
    "listeners",
    "connect_timeout",
    "command_timeout",
    "eom_timeout",
    "position",
];

async fn add(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Form(form): Form<AddForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let result: Result<String, WebError> = async {
        let position = match form.position.trim() {
            "" => None,
            p => Some(p.parse::<i64>().map_err(|_| WebError::Invalid {
                field: Some("position".into()),
                message: "position: a number, 1 for first".into(),
            })?),
        };
        let timeout = |field: &'static str, text: &str| -> Result<Option<u64>, WebError> {
            Ok(match some(text) {
                Some(t) => Some(parse_milter_timeout(field, &t)?),
                None => None,
            })
        };
        let body = NewMilterBody {
            name: form.name.trim().to_string(),
            address: form.address.trim().to_string(),
            default_action: some(&form.default_action),
            listeners: some(&form.listeners),
            connect_timeout_ms: timeout("connect_timeout", &form.connect_timeout)?,
            command_timeout_ms: timeout("command_timeout", &form.command_timeout)?,
            eom_timeout_ms: timeout("eom_timeout", &form.eom_timeout)?,
            enabled: Some(true),
            position,
        };
        let (new, position) = body.parse()?;
        let milter = state.store.add_milter(&user.principal.actor, new, position).await?;
        Ok(milter.name)
    }
    .await;
    match result {
        Ok(name) => saved(&state, &format!("Milter {name} added")).await.redirect("/milters"),
        Err(e) => match place(
            e,
            &[
                ("connect_timeout_ms", "connect_timeout"),
                ("command_timeout_ms", "command_timeout"),
                ("eom_timeout_ms", "eom_timeout"),
            ],
            "address",
        ) {
            Ok((status, e)) => {
                let typed = FormState::with(&[
                    ("name", &form.name),
                    ("address", &form.address),
                    ("default_action", &form.default_action),
                    ("listeners", &form.listeners),
                    ("connect_timeout", &form.connect_timeout),
                    ("command_timeout", &form.command_timeout),
                    ("eom_timeout", &form.eom_timeout),
                    ("position", &form.position),
                ]);
                let form = typed.fail(&e, FIELDS);
                show(status, page(&state, &user, &headers, form, None).await)
            }
            Err(e) => error_page(e),
        },
    }
}

#[derive(Deserialize)]
struct IdForm {
    #[serde(default)]
    id: i64,
    #[serde(default)]
    position: String,
    #[serde(default)]
    enabled: String,
}

/// A refused action on one milter: a flash message for what the administrator can fix.
fn refused(e: postern_store::StoreError) -> Response {
    match WebError::from(e) {
        e @ (WebError::NotFound(_) | WebError::Invalid { .. }) => {
            Flash::error(e.to_string()).redirect("/milters")
        }
        e => error_page(e),
    }
}

async fn remove(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<IdForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    match state.store.remove_milter(&user.principal.actor, form.id).await {
        Ok(m) => saved(&state, &format!("Milter {} removed", m.name)).await.redirect("/milters"),
        Err(e) => refused(e),
    }
}

async fn move_milter(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<IdForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let Ok(position) = form.position.trim().parse::<i64>() else {
        return Flash::error("position: a number, 1 for first".to_string()).redirect("/milters");
    };
    match state.store.move_milter(&user.principal.actor, form.id, position).await {
        Ok(m) => saved(&state, &format!("Milter {} moved to position {}", m.name, m.position))
            .await
            .redirect("/milters"),
        Err(e) => refused(e),
    }
}

async fn enable(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<IdForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let on = form.enabled == "yes";
    match state.store.set_milter_enabled(&user.principal.actor, form.id, on).await {
        Ok(m) => {
            let what = if on { "on" } else { "off" };
            saved(&state, &format!("Milter {} turned {what}", m.name)).await.redirect("/milters")
        }
        Err(e) => refused(e),
    }
}

/// Connects to the milter and shows what it negotiated under the list.
async fn test(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Form(form): Form<IdForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let name = match state.store.get_milter(form.id).await {
        Ok(m) => m.name,
        Err(e) => return refused(e),
    };
    match run_test(&state, form.id).await {
        Ok(result) => show(
            StatusCode::OK,
            page(&state, &user, &headers, FormState::default(), Some(Tested { name, result }))
                .await,
        ),
        Err(WebError::Unavailable) => {
            Flash::error("This process cannot test milters.".to_string()).redirect("/milters")
        }
        Err(e) => error_page(e),
    }
}
