//! The content checks page: header and body checks in the order they are tried, a form to add
//! one, and a live test: paste a message, see which rule matches and what it does. Global:
//! only an admin of every domain sees it.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::{Form, Router};
use postern_store::model::NewContentCheck;
use serde::Deserialize;

use super::refusal::place;
use super::{Flash, FormState, Layout, error_page, render, saved};
use crate::api::content_checks::{CheckTestResult, run_test};
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/content-checks", axum::routing::get(list).post(add))
        .route("/content-checks/delete", post(remove))
        .route("/content-checks/move", post(move_check))
        .route("/content-checks/test", post(test))
}

struct Row {
    id: i64,
    position: i64,
    part: String,
    pattern: String,
    action: String,
    description: String,
}

#[derive(Template)]
#[template(path = "content_checks/list.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<Row>,
    form: FormState,
    test: FormState,
    result: Option<CheckTestResult>,
}

impl_page!(ListPage);

async fn page(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    form: FormState,
    test: FormState,
    result: Option<CheckTestResult>,
) -> Result<ListPage, WebError> {
    user.principal.require_global()?;
    let rows = state
        .store
        .list_content_checks()
        .await?
        .into_iter()
        .map(|c| Row {
            id: c.id,
            position: c.position,
            part: c.part.to_string(),
            pattern: c.pattern.to_string(),
            action: c.action.to_string(),
            description: c.description,
        })
        .collect();
    Ok(ListPage {
        layout: Layout::new(user, "content-checks", "Content checks", headers),
        rows,
        form,
        test,
        result,
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
    part: String,
    #[serde(default)]
    pattern: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    position: String,
}

const FIELDS: &[&str] = &["part", "pattern", "action", "description", "position"];

async fn add(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Form(form): Form<AddForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let result: Result<i64, WebError> = async {
        let position = match form.position.trim() {
            "" => None,
            p => Some(p.parse::<i64>().map_err(|_| WebError::Invalid {
                field: Some("position".into()),
                message: "position: a number, 1 for first".into(),
            })?),
        };
        let new =
            NewContentCheck::parse(&form.part, &form.pattern, &form.action, &form.description)?;
        Ok(state.store.add_content_check(&user.principal.actor, new, position).await?.id)
    }
    .await;
    match result {
        Ok(id) => {
            saved(&state, &format!("Content check {id} added")).await.redirect("/content-checks")
        }
        Err(e) => match place(e, &[], "action") {
            Ok((status, e)) => {
                let typed = FormState::with(&[
                    ("part", &form.part),
                    ("pattern", &form.pattern),
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
    match state.store.remove_content_check(&user.principal.actor, form.id).await {
        Ok(c) => saved(&state, &format!("Content check {} removed", c.id))
            .await
            .redirect("/content-checks"),
        Err(e) => match WebError::from(e) {
            e @ (WebError::NotFound(_) | WebError::Invalid { .. }) => {
                Flash::error(e.to_string()).redirect("/content-checks")
            }
            e => error_page(e),
        },
    }
}

async fn move_check(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<IdForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let Ok(position) = form.position.trim().parse::<i64>() else {
        return Flash::error("position: a number, 1 for first".to_string())
            .redirect("/content-checks");
    };
    match state.store.move_content_check(&user.principal.actor, form.id, position).await {
        Ok(c) => saved(&state, &format!("Content check {} moved to position {}", c.id, c.position))
            .await
            .redirect("/content-checks"),
        Err(e) => match WebError::from(e) {
            e @ (WebError::NotFound(_) | WebError::Invalid { .. }) => {
                Flash::error(e.to_string()).redirect("/content-checks")
            }
            e => error_page(e),
        },
    }
}

#[derive(Deserialize)]
struct TestForm {
    #[serde(default)]
    message: String,
}

/// Runs the stored rules on the pasted message and shows the answer under the form.
async fn test(
    State(state): State<AppState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Form(form): Form<TestForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let typed = FormState::with(&[("message", &form.message)]);
    match run_test(&state, &form.message).await {
        Ok(result) => show(
            StatusCode::OK,
            page(&state, &user, &headers, FormState::default(), typed, Some(result)).await,
        ),
        Err(e) => match place(e, &[], "message") {
            Ok((status, e)) => {
                let test = typed.fail(&e, &["message"]);
                show(status, page(&state, &user, &headers, FormState::default(), test, None).await)
            }
            Err(e) => error_page(e),
        },
    }
}
