//! The policy services page: the services asked at RCPT or at the end of DATA, a form to add
//! one, and a live test that sends one of them a request and shows its answer. Global only.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::{Form, Router};
use postern_store::model::NewPolicyService;
use serde::Deserialize;

use super::refusal::place;
use super::{Flash, FormState, Layout, error_page, render, saved};
use crate::api::policy_services::{ServiceTest, run_test};
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/policy-services", axum::routing::get(list).post(add))
        .route("/policy-services/delete", post(remove))
        .route("/policy-services/test", post(test))
}

struct Row {
    name: String,
    address: String,
    stage: String,
    timeout: String,
    on_failure: String,
    enabled: bool,
    description: String,
}

/// The test's answer, as one line.
struct Answer {
    service: String,
    text: String,
    failed: bool,
}

#[derive(Template)]
#[template(path = "policy_services/list.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<Row>,
    form: FormState,
    test: FormState,
    answer: Option<Answer>,
}

impl_page!(ListPage);

async fn page(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    form: FormState,
    test: FormState,
    answer: Option<Answer>,
) -> Result<ListPage, WebError> {
    user.principal.require_global()?;
    let rows = state
        .store
        .list_policy_services()
        .await?
        .into_iter()
        .map(|s| Row {
            name: s.name,
            address: s.address.to_string(),
            stage: s.stage.to_string(),
            timeout: format!("{} ms", s.timeout.as_millis()),
            on_failure: s.on_failure.to_string(),
            enabled: s.enabled,
            description: s.description,
        })
        .collect();
    Ok(ListPage {
        layout: Layout::new(user, "policy-services", "Policy services", headers),
        rows,
        form,
        test,
        answer,
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
    name: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    timeout: String,
    #[serde(default)]
    on_failure: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    disabled: Option<String>,
    #[serde(default)]
    description: String,
}

const FIELDS: &[&str] = &["name", "address", "stage", "timeout", "on_failure", "description"];

async fn add(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Form(form): Form<AddForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let result: Result<String, WebError> = async {
        let new = NewPolicyService::parse(
            &form.name,
            &form.address,
            &form.stage,
            &form.timeout,
            &form.on_failure,
            form.disabled.is_none(),
            &form.description,
        )?;
        Ok(state.store.add_policy_service(&user.principal.actor, new).await?.name)
    }
    .await;
    match result {
        Ok(name) => saved(&state, &format!("Policy service {name} added"))
            .await
            .redirect("/policy-services"),
        Err(e) => match place(e, &[], "address") {
            Ok((status, e)) => {
                let typed = FormState::with(&[
                    ("name", &form.name),
                    ("address", &form.address),
                    ("stage", &form.stage),
                    ("timeout", &form.timeout),
                    ("on_failure", &form.on_failure),
                    ("description", &form.description),
                ]);
                let form = typed.fail(&e, FIELDS);
                show(status, page(&state, &user, &headers, form, FormState::default(), None).await)
            }
            Err(e) => error_page(e),
        },
    }
}

#[derive(Deserialize)]
struct NameForm {
    #[serde(default)]
    name: String,
}

async fn remove(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<NameForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    match state.store.remove_policy_service(&user.principal.actor, &form.name).await {
        Ok(s) => saved(&state, &format!("Policy service {} removed", s.name))
            .await
            .redirect("/policy-services"),
        Err(e) => match WebError::from(e) {
            e @ (WebError::NotFound(_) | WebError::Invalid { .. }) => {
                Flash::error(e.to_string()).redirect("/policy-services")
            }
            e => error_page(e),
        },
    }
}

#[derive(Deserialize)]
struct TestForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    client: String,
    #[serde(default)]
    sender: String,
    #[serde(default)]
    recipient: String,
}

/// Sends the chosen service one request and shows its answer under the form.
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
    let request = ServiceTest {
        client: some(&form.client),
        helo: None,
        sender: some(&form.sender),
        recipient: some(&form.recipient),
    };
    let typed = FormState::with(&[
        ("name", &form.name),
        ("client", &form.client),
        ("sender", &form.sender),
        ("recipient", &form.recipient),
    ]);
    match run_test(&state, form.name.trim(), &request).await {
        Ok(result) => {
            let answer = Answer {
                service: form.name.trim().to_string(),
                failed: !result.answered,
                text: match (result.action, result.failure) {
                    (Some(action), _) => format!("answered: action={action}"),
                    (None, Some(why)) => format!("no answer: {why}"),
                    (None, None) => "no answer".into(),
                },
            };
            show(
                StatusCode::OK,
                page(&state, &user, &headers, FormState::default(), typed, Some(answer)).await,
            )
        }
        Err(e) => match place(e, &[], "name") {
            Ok((status, e)) => {
                let test = typed.fail(&e, &["name", "client"]);
                show(status, page(&state, &user, &headers, FormState::default(), test, None).await)
            }
            Err(e) => error_page(e),
        },
    }
}
