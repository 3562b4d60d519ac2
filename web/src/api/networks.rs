//! `/networks`: trusted networks, whose clients may relay without signing in. Global only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postern_store::model::{TrustedNetwork, parse_cidr};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath, ApiQuery, ListParams};
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(remove))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NetworkView {
    /// `192.0.2.0/24`, `2001:db8::/32`.
    pub cidr: String,
    pub description: String,
    /// Seconds since the Unix epoch (0 for the built-in loopback entries).
    pub created_at: i64,
}

impl From<TrustedNetwork> for NetworkView {
    fn from(n: TrustedNetwork) -> NetworkView {
        NetworkView {
            cidr: n.cidr.to_string(),
            description: n.description,
            created_at: n.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NetworkList {
    pub items: Vec<NetworkView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNetwork {
    /// A network in CIDR notation, or one address (a single host). Host bits must be zero.
    pub cidr: String,
    #[serde(default)]
    pub description: String,
    /// Must be `true` to trust a range that reaches beyond private address space by more than
    /// a /16 (IPv4) or /32 (IPv6), such as `0.0.0.0/0`: every client there may relay, which
    /// makes this server an open relay. Without it such a range is refused with 422.
    #[serde(default)]
    pub confirm_open_relay: bool,
}

/// List the trusted networks, ordered by their CIDR text (`after` takes one).
#[utoipa::path(get, path = "/networks", params(ListParams), tag = "networks",
    responses((status = 200, body = NetworkList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<NetworkList>, WebError> {
    user.require_global()?;
    let mut networks = state.store.list_networks().await?;
    // Paging compares keys as text, so the order must be the text's.
    networks.sort_by_key(|n| n.cidr.to_string());
    let (page, next) = params.page(networks, |n| n.cidr.to_string())?;
    Ok(Json(NetworkList { items: page.into_iter().map(Into::into).collect(), next }))
}

/// Trust a network.
#[utoipa::path(post, path = "/networks", request_body = NewNetwork, tag = "networks",
    responses((status = 201, body = NetworkView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody,
            description = "Not a network, or an open-relay range without `confirm_open_relay`")))]
async fn create(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(new): ApiJson<NewNetwork>,
) -> Result<(StatusCode, Json<NetworkView>), WebError> {
    user.require_write()?;
    user.require_global()?;
    let cidr = parse_cidr(&new.cidr)?;
    let network = state
        .store
        .add_network_with(&user.actor, cidr, new.description.trim(), new.confirm_open_relay)
        .await?;
    Ok((StatusCode::CREATED, Json(network.into())))
}

/// Stop trusting a network.
#[utoipa::path(delete, path = "/networks/{cidr}", tag = "networks",
    params(("cidr" = String, Path, description = "The network in CIDR notation with its `/` \
        percent-encoded, as one path segment: `DELETE /networks/192.0.2.0%2F24`. An address \
        alone means one host: `/networks/192.0.2.7` is 192.0.2.7/32.")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(cidr): ApiPath<String>,
) -> Result<StatusCode, WebError> {
    user.require_write()?;
    user.require_global()?;
    let cidr = parse_cidr(&cidr)?;
    state.store.remove_network(&user.actor, &cidr).await?;
    Ok(StatusCode::NO_CONTENT)
}
