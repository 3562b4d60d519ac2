//! `/milters`: the milters every SMTP session calls, in order (add, list, remove, move, turn on
//! or off) and the live test that connects and negotiates. Global only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postern_store::model::{Milter, MilterTimeouts, NewMilter, check_milter_name};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath};
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::milters::ProbeResult;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(remove))
        .routes(routes!(move_milter))
        .routes(routes!(enable))
        .routes(routes!(test))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MilterView {
    pub id: i64,
    /// 1 is called first.
    pub position: i64,
    pub name: String,
    /// `inet:host:port` or `unix:/path`.
    pub address: String,
    /// `accept`, `tempfail` or `reject`: what mail gets when the milter is down, too slow or
    /// breaks the protocol.
    pub default_action: String,
    /// `smtp`, `submission` (ports 587 and 465) or `smtp,submission`.
    pub listeners: String,
    pub connect_timeout_ms: u64,
    pub command_timeout_ms: u64,
    pub eom_timeout_ms: u64,
    pub enabled: bool,
    pub created_at: i64,
}

impl From<Milter> for MilterView {
    fn from(m: Milter) -> MilterView {
        MilterView {
            id: m.id,
            position: m.position,
            name: m.name,
            address: m.address.to_string(),
            default_action: m.default_action.to_string(),
            listeners: m.listeners.to_string(),
            connect_timeout_ms: m.timeouts.connect_ms,
            command_timeout_ms: m.timeouts.command_ms,
            eom_timeout_ms: m.timeouts.eom_ms,
            enabled: m.enabled,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MilterList {
    /// In the order they are called.
    pub items: Vec<MilterView>,
}

/// A new milter; what is left out gets Postfix's defaults (30 s to connect and per command,
/// 5 minutes for the end of the message, `tempfail`, both listeners, enabled).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMilterBody {
    /// 1 to 64 letters, digits, `-`, `_` or `.`.
    pub name: String,
    /// `inet:host:port` or `unix:/path`.
    pub address: String,
    /// `accept`, `tempfail` or `reject`.
    pub default_action: Option<String>,
    /// `smtp`, `submission` or `smtp,submission`.
    pub listeners: Option<String>,
    #[schema(minimum = 1, maximum = 3600000)]
    pub connect_timeout_ms: Option<u64>,
    #[schema(minimum = 1, maximum = 3600000)]
    pub command_timeout_ms: Option<u64>,
    #[schema(minimum = 1, maximum = 3600000)]
    pub eom_timeout_ms: Option<u64>,
    pub enabled: Option<bool>,
    /// Where to put it (1 is called first); last when absent.
    pub position: Option<i64>,
}

impl NewMilterBody {
    pub(crate) fn parse(self) -> Result<(NewMilter, Option<i64>), WebError> {
        check_milter_name(&self.name)?;
        let defaults = MilterTimeouts::default();
        let new = NewMilter {
            name: self.name,
            address: self.address.parse()?,
            default_action: match self.default_action {
                Some(d) => d.parse()?,
                None => postern_store::model::MilterDefault::Tempfail,
            },
            listeners: match self.listeners {
                Some(l) => l.parse()?,
                None => Default::default(),
            },
            timeouts: MilterTimeouts {
                connect_ms: self.connect_timeout_ms.unwrap_or(defaults.connect_ms),
                command_ms: self.command_timeout_ms.unwrap_or(defaults.command_ms),
                eom_ms: self.eom_timeout_ms.unwrap_or(defaults.eom_ms),
            },
            enabled: self.enabled.unwrap_or(true),
        };
        new.check()?;
        Ok((new, self.position))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveMilter {
    /// The new position (1 is called first; past the end is last).
    pub position: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnableMilter {
    pub enabled: bool,
}

/// Longest a live test waits to connect and negotiate.
const TEST_TIMEOUT_MS: u64 = 5000;

/// Runs the live test on a stored milter.
pub(crate) async fn run_test(state: &AppState, id: i64) -> Result<ProbeResult, WebError> {
    let milter = state.store.get_milter(id).await?;
    let probe = state.milter_probe.as_ref().ok_or(WebError::Unavailable)?;
    // A page or an API call waits at most this long, whatever the milter's own timeout.
    let connect_ms = milter.timeouts.connect_ms.min(TEST_TIMEOUT_MS);
    let timeouts = MilterTimeouts { connect_ms, ..milter.timeouts };
    Ok(probe.probe(&milter.address, timeouts).await)
}

/// List the milters in the order they are called.
#[utoipa::path(get, path = "/milters", tag = "milters",
    responses((status = 200, body = MilterList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Json<MilterList>, WebError> {
    user.require_global()?;
    let milters = state.store.list_milters().await?;
    Ok(Json(MilterList { items: milters.into_iter().map(Into::into).collect() }))
}

/// Add a milter. A bad address, name or timeout is refused with 422; a name in use with 409.
#[utoipa::path(post, path = "/milters", request_body = NewMilterBody, tag = "milters",
    responses((status = 201, body = MilterView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(body): ApiJson<NewMilterBody>,
) -> Result<(StatusCode, Json<MilterView>), WebError> {
    user.require_write()?;
    user.require_global()?;
    let (new, position) = body.parse()?;
    let milter = state.store.add_milter(&user.actor, new, position).await?;
    Ok((StatusCode::CREATED, Json(milter.into())))
}

/// Remove a milter.
#[utoipa::path(delete, path = "/milters/{id}", tag = "milters",
    params(("id" = i64, Path, description = "The milter's id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, WebError> {
    user.require_write()?;
    user.require_global()?;
    state.store.remove_milter(&user.actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Move a milter to another position.
#[utoipa::path(post, path = "/milters/{id}/move", request_body = MoveMilter, tag = "milters",
    params(("id" = i64, Path, description = "The milter's id")),
    responses((status = 200, body = MilterView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn move_milter(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(to): ApiJson<MoveMilter>,
) -> Result<Json<MilterView>, WebError> {
    user.require_write()?;
    user.require_global()?;
    Ok(Json(state.store.move_milter(&user.actor, id, to.position).await?.into()))
}

/// Turn a milter on or off; it keeps its place.
#[utoipa::path(post, path = "/milters/{id}/enabled", request_body = EnableMilter, tag = "milters",
    params(("id" = i64, Path, description = "The milter's id")),
    responses((status = 200, body = MilterView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn enable(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<EnableMilter>,
) -> Result<Json<MilterView>, WebError> {
    user.require_write()?;
    user.require_global()?;
    Ok(Json(state.store.set_milter_enabled(&user.actor, id, body.enabled).await?.into()))
}

/// Connect to the milter, negotiate, and say what it speaks (nothing is stored). A milter that
/// cannot be reached is a 200 with `ok: false` and the reason; 503 when this process has no
/// milter client. Being a POST, it needs a token with write access, like every POST.
#[utoipa::path(post, path = "/milters/{id}/test", tag = "milters",
    params(("id" = i64, Path, description = "The milter's id")),
    responses((status = 200, body = ProbeResult), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn test(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ProbeResult>, WebError> {
    user.require_global()?;
    Ok(Json(run_test(&state, id).await?))
}
