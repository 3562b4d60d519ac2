//! `/nodes`: the engines sharing this store, their state (alive, draining, drained, dead), and
//! their drain. Global only. A drain is carried out by the node itself at its next heartbeat.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postern_store::NodeInfo;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiPath;
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(show, remove)).routes(routes!(drain))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeView {
    pub node: String,
    /// `alive`, `draining`, `drained`, or `dead` (no heartbeat for `dead_after` seconds).
    pub state: String,
    /// Runs the SMTP listeners and delivery.
    pub smtp: bool,
    /// Serves the console and the API.
    pub console: bool,
    /// Seconds since the Unix epoch.
    pub started_at: i64,
    /// Its last heartbeat, seconds since the Unix epoch.
    pub seen_at: i64,
    /// Until when it holds its queued messages (0 once drained).
    pub lease_until: i64,
    pub dead_after: i64,
    pub version: String,
    /// Queued messages it holds.
    pub messages: i64,
}

impl From<NodeInfo> for NodeView {
    fn from(n: NodeInfo) -> NodeView {
        NodeView {
            node: n.node,
            state: n.state.to_string(),
            smtp: n.smtp,
            console: n.console,
            started_at: n.started_at,
            seen_at: n.seen_at,
            lease_until: n.lease_until,
            dead_after: n.dead_after,
            version: n.version,
            messages: n.messages,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeList {
    pub items: Vec<NodeView>,
}

/// List the nodes, by name.
#[utoipa::path(get, path = "/nodes", tag = "nodes",
    responses((status = 200, body = NodeList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Json<NodeList>, WebError> {
    user.require_global()?;
    let nodes = state.store.node_list().await?;
    Ok(Json(NodeList { items: nodes.into_iter().map(Into::into).collect() }))
}

/// One node.
#[utoipa::path(get, path = "/nodes/{node}", tag = "nodes",
    params(("node" = String, Path, description = "The node's name")),
    responses((status = 200, body = NodeView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(node): ApiPath<String>,
) -> Result<Json<NodeView>, WebError> {
    user.require_global()?;
    match state.store.node_get(&node).await? {
        Some(n) => Ok(Json(n.into())),
        None => Err(WebError::NotFound(format!("node {node} does not exist"))),
    }
}

/// Drain a node: it stops taking SMTP sessions (`421 4.3.2`), ends its delivery attempts and
/// hands its queue to the other nodes at its next heartbeat. Answers the node as it is now
/// (`draining`); poll `GET /nodes/{node}` for `drained`.
#[utoipa::path(post, path = "/nodes/{node}/drain", tag = "nodes",
    params(("node" = String, Path, description = "The node's name")),
    responses((status = 202, body = NodeView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The node is dead")))]
async fn drain(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(node): ApiPath<String>,
) -> Result<(StatusCode, Json<NodeView>), WebError> {
    user.require_write()?;
    user.require_global()?;
    let info = state.store.node_request_drain(&node, &user.actor).await?;
    tracing::info!(node = %node, actor = %user.actor, "drain requested");
    Ok((StatusCode::ACCEPTED, Json(info.into())))
}

/// Forget a dead or drained node that holds no queued messages.
#[utoipa::path(delete, path = "/nodes/{node}", tag = "nodes",
    params(("node" = String, Path, description = "The node's name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Alive, draining, or holds messages")))]
async fn remove(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(node): ApiPath<String>,
) -> Result<StatusCode, WebError> {
    user.require_write()?;
    user.require_global()?;
    state.store.node_remove(&node, &user.actor).await?;
    Ok(StatusCode::NO_CONTENT)
}
