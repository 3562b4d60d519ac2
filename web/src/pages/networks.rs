//! The trusted networks page: clients there may relay without signing in (Postfix's
//! `mynetworks`). Global: only an admin of every domain sees it.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use ipnet::IpNet;
use postern_store::model::{is_open_relay_range, open_relay_warning, parse_cidr};
use serde::Deserialize;

use super::refusal::place;
use super::{Flash, FormState, Layout, error_page, render, saved};
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::state::AppState;
use crate::time;

pub fn router() -> Router<AppState> {
    Router::new().route("/networks", get(list).post(add)).route("/networks/delete", post(remove))
}

struct Row {
    cidr: String,
    description: String,
    created: String,
}

#[derive(Template)]
#[template(path = "networks/list.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<Row>,
    form: FormState,
    /// Set when the typed range would make this an open relay: the page asks before saving.
    open_relay: Option<String>,
}

impl_page!(ListPage);

async fn page(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
    form: FormState,
) -> Result<ListPage, WebError> {
    user.principal.require_global()?;
    let rows = state
        .store
        .list_networks()
        .await?
        .into_iter()
        .map(|n| Row {
            cidr: n.cidr.to_string(),
            description: n.description,
            // The two defaults come with the schema, at time 0.
            created: if n.created_at == 0 { "built in".into() } else { time::format(n.created_at) },
        })
        .collect();
    Ok(ListPage {
        layout: Layout::new(user, "networks", "Trusted networks", headers),
        rows,
        form,
        open_relay: None,
    })
}

async fn list(State(state): State<AppState>, user: ConsoleUser, headers: HeaderMap) -> Response {
    super::respond(StatusCode::OK, page(&state, &user, &headers, FormState::default()).await)
}

#[derive(Deserialize)]
struct AddForm {
    #[serde(default)]
    cidr: String,
    #[serde(default)]
    description: String,
    /// `yes` once the warning about an open-relay range was shown and accepted.
    #[serde(default)]
    confirm_open_relay: String,
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
    let confirmed = form.confirm_open_relay == "yes";
    if let Ok(cidr) = parse_cidr(&form.cidr)
        && is_open_relay_range(&cidr)
        && !confirmed
    {
        // Ask first: a page that says what the range means, with "add anyway".
        let typed = FormState::with(&[("cidr", &form.cidr), ("description", &form.description)]);
        return match page(&state, &user, &headers, typed).await {
            Ok(mut p) => {
                p.open_relay = Some(open_relay_warning(&cidr));
                render(StatusCode::OK, &p)
            }
            Err(e) => error_page(e),
        };
    }
    let result: Result<IpNet, WebError> = async {
        let cidr = parse_cidr(&form.cidr)?;
        state
            .store
            .add_network_with(&user.principal.actor, cidr, form.description.trim(), confirmed)
            .await?;
        Ok(cidr)
    }
    .await;
    match result {
        Ok(cidr) => {
            saved(&state, &format!("Trusted network {cidr} added")).await.redirect("/networks")
        }
        Err(e) => match place(e, &[], "cidr") {
            Ok((status, e)) => {
                let typed =
                    FormState::with(&[("cidr", &form.cidr), ("description", &form.description)]);
                let form = typed.fail(&e, &["cidr", "description"]);
                match page(&state, &user, &headers, form).await {
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
    cidr: String,
}

/// The network to remove comes in the form, not the path: a CIDR holds a `/`.
async fn remove(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<RemoveForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    let result: Result<IpNet, WebError> = async {
        let cidr = parse_cidr(&form.cidr)?;
        state.store.remove_network(&user.principal.actor, &cidr).await?;
        Ok(cidr)
    }
    .await;
    match result {
        Ok(cidr) => {
            saved(&state, &format!("Trusted network {cidr} removed")).await.redirect("/networks")
        }
        Err(e @ (WebError::NotFound(_) | WebError::Invalid { .. })) => {
            Flash::error(e.to_string()).redirect("/networks")
        }
        Err(e) => error_page(e),
    }
}
