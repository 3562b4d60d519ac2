//! The access policy page: the rules in the order they are evaluated, a form to add one, and a
//! live test form that says which rule an envelope hits and why. Global: only an admin of every
//! domain sees it.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::{Form, Router};
use postern_store::model::{PolicyRuleText, PolicyStage};
use serde::Deserialize;

use super::refusal::place;
use super::{Flash, FormState, Layout, error_page, render, saved};
use crate::api::policy::{PolicyTest, run_test};
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/policy", axum::routing::get(list).post(add))
        .route("/policy/delete", post(remove))
        .route("/policy/move", post(move_rule))
        .route("/policy/test", post(test))
}

struct Row {
    id: i64,
    position: i64,
    stage: String,
    matches: String,
    action: String,
    description: String,
}

/// One stage of a test's answer.
struct Step {
    line: String,
    refused: bool,
}

#[derive(Template)]
#[template(path = "policy/list.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<Row>,
    stages: Vec<&'static str>,
    form: FormState,
    test: FormState,
    steps: Option<Vec<Step>>,
}

impl_page!(ListPage);

async fn page(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    form: FormState,
    test: FormState,
    steps: Option<Vec<Step>>,
) -> Result<ListPage, WebError> {
    user.principal.require_global()?;
    let rows = state
        .store
        .list_policy_rules()
        .await?
        .into_iter()
        .map(|r| Row {
            id: r.id,
            position: r.position,
            stage: r.stage.to_string(),
            matches: r.matches.to_string(),
            action: r.action.to_string(),
            description: r.description,
        })
        .collect();
    Ok(ListPage {
        layout: Layout::new(user, "policy", "Access policy", headers),
        rows,
        stages: PolicyStage::ALL.iter().map(|s| s.as_str()).collect(),
        form,
        test,
        steps,
    })
}

fn show(status: StatusCode, result: Result<ListPage, WebError>) -> Response {
    match result {
        Ok(p) => render(status, &p),
        Err(e) => error_page(e),
    }
}

async fn list(State(state): State<AppState>, user: ConsoleUser, headers: HeaderMap) -> Response {
    super::respond(
        StatusCode::OK,
        page(&state, &user, &headers, FormState::default(), FormState::default(), None).await,
    )
}

#[derive(Deserialize)]
struct AddForm {
    #[serde(default)]
    stage: String,
    #[serde(default)]
    client: String,
    #[serde(default)]
    rdns: String,
    #[serde(default)]
    helo: String,
    #[serde(default)]
    sender: String,
    #[serde(default)]
    recipient: String,
    #[serde(default)]
    authenticated: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    position: String,
}

const FIELDS: &[&str] = &[
    "stage",
    "client",
    "rdns",
    "helo",
    "sender",
    "recipient",
    "authenticated",
    "action",
    "description",
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
    let some = |s: &str| Some(s.to_string()).filter(|s| !s.trim().is_empty());
    let result: Result<i64, WebError> = async {
        let position = match form.position.trim() {
            "" => None,
            p => Some(p.parse::<i64>().map_err(|_| WebError::Invalid {
                field: Some("position".into()),
                message: "position: a number, 1 for first".into(),
            })?),
        };
        let text = PolicyRuleText {
            stage: form.stage.clone(),
            client: some(&form.client),
            rdns: some(&form.rdns),
            helo: some(&form.helo),
            sender: some(&form.sender),
            recipient: some(&form.recipient),
            authenticated: some(&form.authenticated),
            action: form.action.clone(),
            description: form.description.clone(),
        };
        let rule =
            state.store.add_policy_rule(&user.principal.actor, text.parse()?, position).await?;
        Ok(rule.id)
    }
    .await;
    match result {
        Ok(id) => saved(&state, &format!("Access rule {id} added")).await.redirect("/policy"),
        Err(e) => match place(e, &[("cidr", "client")], "action") {
            Ok((status, e)) => {
                let typed = FormState::with(&[
                    ("stage", &form.stage),
                    ("client", &form.client),
                    ("rdns", &form.rdns),
                    ("helo", &form.helo),
                    ("sender", &form.sender),
                    ("recipient", &form.recipient),
                    ("authenticated", &form.authenticated),
                    ("action", &form.action),
                    ("description", &form.description),
                    ("position", &form.position),
                ]);
                let form = typed.fail(&e, FIELDS);
                show(status, page(&state, &user, &headers, form, FormState::default(), None).await)
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
}

async fn remove(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<IdForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    match state.store.remove_policy_rule(&user.principal.actor, form.id).await {
        Ok(r) => saved(&state, &format!("Access rule {} removed", r.id)).await.redirect("/policy"),
        Err(e) => match WebError::from(e) {
            e @ (WebError::NotFound(_) | WebError::Invalid { .. }) => {
                Flash::error(e.to_string()).redirect("/policy")
            }
            e => error_page(e),
        },
    }
}

async fn move_rule(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<IdForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let Ok(position) = form.position.trim().parse::<i64>() else {
        return Flash::error("position: a number, 1 for first".to_string()).redirect("/policy");
    };
    match state.store.move_policy_rule(&user.principal.actor, form.id, position).await {
        Ok(r) => saved(&state, &format!("Access rule {} moved to position {}", r.id, r.position))
            .await
            .redirect("/policy"),
        Err(e) => match WebError::from(e) {
            e @ (WebError::NotFound(_) | WebError::Invalid { .. }) => {
                Flash::error(e.to_string()).redirect("/policy")
            }
            e => error_page(e),
        },
    }
}

#[derive(Deserialize)]
struct TestForm {
    #[serde(default)]
    client: String,
    #[serde(default)]
    rdns: String,
    #[serde(default)]
    helo: String,
    #[serde(default)]
    from: String,
    /// Recipients, separated by spaces or commas.
    #[serde(default)]
    to: String,
    #[serde(default)]
    auth: String,
}

/// Runs the test form against the stored rules and shows the answer under it.
async fn test(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Form(form): Form<TestForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let test = PolicyTest {
        client: form.client.clone(),
        rdns: some(&form.rdns),
        helo: some(&form.helo),
        from: some(&form.from),
        to: form.to.split([',', ' ']).filter(|t| !t.is_empty()).map(String::from).collect(),
        auth: some(&form.auth),
    };
    let typed = FormState::with(&[
        ("client", &form.client),
        ("rdns", &form.rdns),
        ("helo", &form.helo),
        ("from", &form.from),
        ("to", &form.to),
        ("auth", &form.auth),
    ]);
    match run_test(&state, &test).await {
        Ok(steps) => {
            let steps = steps
                .iter()
                .map(|s| Step {
                    line: s.to_string(),
                    refused: s
                        .action
                        .as_deref()
                        .is_some_and(|a| a.starts_with("REJECT") || a.starts_with("DEFER")),
                })
                .collect();
            show(
                StatusCode::OK,
                page(&state, &user, &headers, FormState::default(), typed, Some(steps)).await,
            )
        }
        Err(e) => match place(e, &[], "client") {
            Ok((status, e)) => {
                let test = typed.fail(&e, &["client"]);
                show(status, page(&state, &user, &headers, FormState::default(), test, None).await)
            }
            Err(e) => error_page(e),
        },
    }
}
