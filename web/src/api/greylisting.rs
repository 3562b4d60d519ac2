//! `/greylisting`: built-in greylisting's delays, the recipient domains that use it, the
//! triplets seen lately, and a test of what a triplet would meet now (global administrators);
//! `/domains/{name}/greylisting`: a domain's switch, for whoever manages the domain.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postern_store::model::{DomainName, GreylistSettings};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath};
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::screening::{GreylistTest, test_greylist};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show))
        .routes(routes!(set_settings))
        .routes(routes!(turn_on, turn_off))
        .routes(routes!(test))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SettingsView {
    /// Seconds a new triplet waits before a retry is accepted (postgrey's 300).
    pub delay: i64,
    /// Seconds after the first attempt within which a retry counts (2 days).
    pub retry_window: i64,
    /// Seconds a passed triplet is remembered after it was last seen (35 days).
    pub expire: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TripletView {
    pub client_network: String,
    pub sender: String,
    pub recipient: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub passed_at: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GreylistingView {
    pub settings: SettingsView,
    /// The recipient domains whose mail is greylisted.
    pub domains: Vec<String>,
    /// The 100 triplets seen last, newest first.
    pub recent: Vec<TripletView>,
    /// How many triplets are stored.
    pub total: i64,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsUpdate {
    #[serde(default)]
    pub delay: Option<i64>,
    #[serde(default)]
    pub retry_window: Option<i64>,
    #[serde(default)]
    pub expire: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// The client's IP address.
    pub client: String,
    /// The envelope sender; empty for `<>`.
    #[serde(default)]
    pub sender: String,
    pub recipient: String,
}

async fn view(state: &AppState) -> Result<GreylistingView, WebError> {
    let g = state.store.greylisting().await?;
    let (recent, total) = state.store.list_greylist_records(100).await?;
    Ok(GreylistingView {
        settings: SettingsView {
            delay: g.settings.delay,
            retry_window: g.settings.retry_window,
            expire: g.settings.expire,
        },
        domains: g.domains.iter().map(ToString::to_string).collect(),
        recent: recent
            .into_iter()
            .map(|r| TripletView {
                client_network: r.triplet.client,
                sender: r.triplet.sender,
                recipient: r.triplet.recipient,
                first_seen: r.first_seen,
                last_seen: r.last_seen,
                passed_at: r.passed_at,
            })
            .collect(),
        total,
    })
}

/// The settings, the greylisted domains and the triplets seen lately.
#[utoipa::path(get, path = "/greylisting", tag = "greylisting",
    responses((status = 200, body = GreylistingView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Json<GreylistingView>, WebError> {
    user.require_global()?;
    Ok(Json(view(&state).await?))
}

/// Change the delays; fields left out keep their value.
#[utoipa::path(put, path = "/greylisting/settings", tag = "greylisting",
    request_body = SettingsUpdate,
    responses((status = 200, body = GreylistingView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_settings(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(body): ApiJson<SettingsUpdate>,
) -> Result<Json<GreylistingView>, WebError> {
    user.require_write()?;
    user.require_global()?;
    let now = state.store.greylisting().await?.settings;
    let new = GreylistSettings {
        delay: body.delay.unwrap_or(now.delay),
        retry_window: body.retry_window.unwrap_or(now.retry_window),
        expire: body.expire.unwrap_or(now.expire),
    };
    state.store.set_greylist_settings(&user.actor, new).await?;
    Ok(Json(view(&state).await?))
}

fn domain(user: &crate::auth::Principal, name: &str) -> Result<DomainName, WebError> {
    let name: DomainName = name.parse().map_err(WebError::from)?;
    user.require_domain(&name)?;
    Ok(name)
}

/// Greylist mail to this domain.
#[utoipa::path(put, path = "/domains/{name}/greylisting", tag = "greylisting",
    params(("name" = String, Path, description = "The domain name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn turn_on(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, WebError> {
    user.require_write()?;
    let name = domain(&user, &name)?;
    state.store.set_greylisting(&user.actor, &name, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stop greylisting mail to this domain.
#[utoipa::path(delete, path = "/domains/{name}/greylisting", tag = "greylisting",
    params(("name" = String, Path, description = "The domain name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn turn_off(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, WebError> {
    user.require_write()?;
    let name = domain(&user, &name)?;
    state.store.set_greylisting(&user.actor, &name, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What greylisting would do now with a message from `client` and `sender` to `recipient`
/// (nothing is recorded).
#[utoipa::path(post, path = "/greylisting/test", tag = "greylisting", request_body = TestRequest,
    responses((status = 200, body = GreylistTest), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn test(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(body): ApiJson<TestRequest>,
) -> Result<Json<GreylistTest>, WebError> {
    user.require_global()?;
    Ok(Json(test_greylist(&state, &body.client, &body.sender, &body.recipient).await?))
}
