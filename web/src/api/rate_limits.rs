//! `/rate-limits`: the stored rate limits (add, change, remove) and the counters nearest their
//! thresholds, as the engines last published them. Global only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postern_store::RateCounter;
use postern_store::model::{NewRateLimit, RateLimit, format_window};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath};
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::state::AppState;

/// Counters listed at most.
const COUNTERS: usize = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(update, remove))
        .routes(routes!(counters))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LimitView {
    pub id: i64,
    /// `client-ip`, `client-network` (the /24 or /64), `user` or `sender-domain`.
    pub key: String,
    /// `connections`, `messages`, `recipients` or `auth-failures`.
    pub measure: String,
    /// Events allowed per key in one window; the next one is refused.
    pub threshold: i64,
    pub window_secs: i64,
    /// The window as written: `1h`, `10m`.
    pub window: String,
    pub description: String,
    /// Like "30 auth-failures per client-ip per 1h".
    pub summary: String,
    pub created_at: i64,
}

impl From<RateLimit> for LimitView {
    fn from(l: RateLimit) -> LimitView {
        LimitView {
            id: l.id,
            key: l.key.to_string(),
            measure: l.measure.to_string(),
            threshold: l.threshold,
            window_secs: l.window_secs,
            window: format_window(l.window_secs),
            summary: l.summary(),
            description: l.description,
            created_at: l.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LimitList {
    pub items: Vec<LimitView>,
}

/// A limit to add, or a limit's new values.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLimit {
    /// `client-ip`, `client-network`, `user` or `sender-domain` (connections: client-ip or
    /// client-network only; auth-failures: not sender-domain).
    pub key: String,
    /// `connections`, `messages`, `recipients` or `auth-failures`.
    pub measure: String,
    /// From 1 to 10000000.
    pub threshold: i64,
    /// From 1 to 604800 (7 days).
    pub window_secs: i64,
    #[serde(default)]
    pub description: String,
}

impl NewLimit {
    fn parse(self) -> Result<NewRateLimit, WebError> {
        Ok(NewRateLimit {
            key: self.key.parse()?,
            measure: self.measure.parse()?,
            threshold: self.threshold,
            window_secs: self.window_secs,
            description: self.description.trim().to_string(),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CounterView {
    /// The engine (node) that counted.
    pub node: String,
    pub limit_id: i64,
    /// What is counted: an address, a network, a user, a domain.
    pub subject: String,
    pub count: i64,
    pub threshold: i64,
    /// Past the threshold: this subject is refused until `resets_at`.
    pub refused: bool,
    /// When the window ends (Unix seconds).
    pub resets_at: i64,
    /// When the engine published it (Unix seconds; every few seconds while it counts).
    pub updated_at: i64,
}

impl From<RateCounter> for CounterView {
    fn from(c: RateCounter) -> CounterView {
        CounterView {
            refused: c.count > c.threshold,
            node: c.node,
            limit_id: c.limit_id,
            subject: c.subject,
            count: c.count,
            threshold: c.threshold,
            resets_at: c.resets_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CounterList {
    /// Nearest their thresholds first, at most 100.
    pub items: Vec<CounterView>,
}

/// List the rate limits.
#[utoipa::path(get, path = "/rate-limits", tag = "rate-limits",
    responses((status = 200, body = LimitList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Json<LimitList>, WebError> {
    user.require_global()?;
    let limits = state.store.list_rate_limits().await?;
    Ok(Json(LimitList { items: limits.into_iter().map(Into::into).collect() }))
}

/// Add a rate limit; live in the engines at once. A key that does not go with the measure, or a
/// threshold or window out of range, is refused with 422.
#[utoipa::path(post, path = "/rate-limits", request_body = NewLimit, tag = "rate-limits",
    responses((status = 201, body = LimitView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(new): ApiJson<NewLimit>,
) -> Result<(StatusCode, Json<LimitView>), WebError> {
    user.require_write()?;
    user.require_global()?;
    let limit = state.store.add_rate_limit(&user.actor, new.parse()?).await?;
    Ok((StatusCode::CREATED, Json(limit.into())))
}

/// Change a rate limit; the engines' counts under it go on.
#[utoipa::path(put, path = "/rate-limits/{id}", request_body = NewLimit, tag = "rate-limits",
    params(("id" = i64, Path, description = "The limit's id")),
    responses((status = 200, body = LimitView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(new): ApiJson<NewLimit>,
) -> Result<Json<LimitView>, WebError> {
    user.require_write()?;
    user.require_global()?;
    Ok(Json(state.store.update_rate_limit(&user.actor, id, new.parse()?).await?.into()))
}

/// Remove a rate limit.
#[utoipa::path(delete, path = "/rate-limits/{id}", tag = "rate-limits",
    params(("id" = i64, Path, description = "The limit's id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, WebError> {
    user.require_write()?;
    user.require_global()?;
    state.store.remove_rate_limit(&user.actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The counters nearest their thresholds, over every engine, as each published them in the
/// last two minutes (every few seconds while it counts).
#[utoipa::path(get, path = "/rate-limits/counters", tag = "rate-limits",
    responses((status = 200, body = CounterList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn counters(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Json<CounterList>, WebError> {
    user.require_global()?;
    let counters = state.store.rate_counters(COUNTERS).await?;
    Ok(Json(CounterList { items: counters.into_iter().map(Into::into).collect() }))
}
