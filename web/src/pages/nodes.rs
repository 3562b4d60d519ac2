//! The nodes page: the engines sharing this store (alive, draining, drained or dead), the
//! queued messages each holds, and their drain. Global only. The console only writes the
//! request; the node drains itself at its next heartbeat (server/src/cluster.rs).

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::{Flash, Layout, error_page};
use crate::auth::session::ConsoleUser;
use crate::error::WebError;
use crate::state::AppState;
use crate::time;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/nodes", get(list))
        .route("/nodes/drain", post(drain))
        .route("/nodes/delete", post(remove))
}

struct Row {
    node: String,
    state: &'static str,
    roles: &'static str,
    messages: i64,
    seen: String,
    started: String,
    dead_after: i64,
    version: String,
}

#[derive(Template)]
#[template(path = "nodes/list.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<Row>,
}

impl_page!(ListPage);

async fn page(
    state: &AppState,
    user: &ConsoleUser,
    headers: &HeaderMap,
) -> Result<ListPage, WebError> {
    user.principal.require_global()?;
    let now = state.store.clock().now();
    let rows = state
        .store
        .node_list()
        .await?
        .into_iter()
        .map(|n| Row {
            state: n.state.as_str(),
            roles: match (n.smtp, n.console) {
                (true, true) => "SMTP, console",
                (true, false) => "SMTP",
                _ => "console",
            },
            messages: n.messages,
            seen: time::age((now - n.seen_at).max(0)),
            started: time::format(n.started_at),
            dead_after: n.dead_after,
            version: n.version,
            node: n.node,
        })
        .collect();
    Ok(ListPage { layout: Layout::new(user, "nodes", "Nodes", headers), rows })
}

async fn list(State(state): State<AppState>, user: ConsoleUser, headers: HeaderMap) -> Response {
    super::respond(StatusCode::OK, page(&state, &user, &headers).await)
}

#[derive(Deserialize)]
struct NodeForm {
    #[serde(default)]
    node: String,
}

async fn drain(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<NodeForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    match state
        .store
        .node_request_drain(&form.node, &user.principal.actor)
        .await
        .map_err(WebError::from)
    {
        Ok(_) => {
            tracing::info!(node = %form.node, actor = %user.principal.actor, "drain requested");
            Flash::ok(format!(
                "Node {} drains at its next heartbeat: it stops taking mail and hands its queue \
                 to the other nodes",
                form.node
            ))
            .redirect("/nodes")
        }
        Err(e @ (WebError::NotFound(_) | WebError::Conflict(_))) => {
            Flash::error(e.to_string()).redirect("/nodes")
        }
        Err(e) => error_page(e),
    }
}

async fn remove(
    State(state): State<AppState>,
    user: ConsoleUser,
    Form(form): Form<NodeForm>,
) -> Response {
    if let Err(e) = user.principal.require_global() {
        return error_page(e);
    }
    match state.store.node_remove(&form.node, &user.principal.actor).await.map_err(WebError::from) {
        Ok(()) => Flash::ok(format!("Node {} forgotten", form.node)).redirect("/nodes"),
        Err(e @ (WebError::NotFound(_) | WebError::Conflict(_))) => {
            Flash::error(e.to_string()).redirect("/nodes")
        }
        Err(e) => error_page(e),
    }
}
