//! `/policy-services`: the policy servers asked at RCPT or at the end of DATA (Postfix's policy
//! delegation protocol), and a live test that sends one of them a request. Global only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postern_store::model::{NewPolicyService, PolicyService};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath};
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::policy_probe::ProbeRequest;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(remove)).routes(routes!(test))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceView {
    pub name: String,
    /// `inet:host:port` or `unix:/path`.
    pub address: String,
    /// `rcpt` or `data`.
    pub stage: String,
    /// How long one request may take, in milliseconds.
    pub timeout_ms: u64,
    /// `dunno` (fail open) or `defer` (fail closed, `451 4.3.5`).
    pub on_failure: String,
    pub enabled: bool,
    pub description: String,
    pub created_at: i64,
}

impl From<PolicyService> for ServiceView {
    fn from(s: PolicyService) -> ServiceView {
        ServiceView {
            name: s.name,
            address: s.address.to_string(),
            stage: s.stage.to_string(),
            timeout_ms: s.timeout.as_millis() as u64,
            on_failure: s.on_failure.to_string(),
            enabled: s.enabled,
            description: s.description,
            created_at: s.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceList {
    /// In the order they are asked (by name).
    pub items: Vec<ServiceView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewService {
    /// 1 to 64 of `a-z 0-9 - _ .`.
    pub name: String,
    /// `inet:host:port` or `unix:/path`.
    pub address: String,
    /// `rcpt` (each accepted recipient) or `data` (the end of the message).
    pub stage: String,
    /// Milliseconds, from 1 to 100000; 10000 when absent.
    pub timeout_ms: Option<u64>,
    /// `dunno` (fail open, the default) or `defer` (fail closed).
    pub on_failure: Option<String>,
    /// True when absent.
    pub enabled: Option<bool>,
    #[serde(default)]
    pub description: String,
}

/// What the test request says (defaults make a plausible stranger).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceTest {
    /// The client's IP address; 192.0.2.1 when absent.
    pub client: Option<String>,
    pub helo: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceTestResult {
    /// Whether the service answered.
    pub answered: bool,
    /// Its action, as it answered it (`DUNNO`, `DEFER_IF_PERMIT …`).
    pub action: Option<String>,
    /// Why there is no answer (refused, timed out, not the protocol); the service's
    /// `on_failure` applies then.
    pub failure: Option<String>,
}

/// Sends `name` one request and says what it answered.
pub(crate) async fn run_test(
    state: &AppState,
    name: &str,
    test: &ServiceTest,
) -> Result<ServiceTestResult, WebError> {
    let service = state
        .store
        .list_policy_services()
        .await?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| WebError::NotFound(format!("policy service {name} does not exist")))?;
    fn given(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }
    let client = match given(&test.client) {
        None => std::net::IpAddr::from([192, 0, 2, 1]),
        Some(c) => c.parse().map_err(|_| WebError::Invalid {
            field: Some("client".into()),
            message: format!("{c:?} is not an IP address (like 192.0.2.7)"),
        })?,
    };
    let request = ProbeRequest {
        client,
        helo: given(&test.helo).unwrap_or("client.example").to_string(),
        sender: given(&test.sender).unwrap_or("sender@example.com").to_string(),
        recipient: given(&test.recipient).unwrap_or("postmaster@example.com").to_string(),
    };
    let Some(probe) = &state.policy_probe else { return Err(WebError::Unavailable) };
    Ok(match probe.probe(&service, &request).await {
        Ok(action) => ServiceTestResult { answered: true, action: Some(action), failure: None },
        Err(why) => ServiceTestResult { answered: false, action: None, failure: Some(why) },
    })
}

/// List the policy services in the order they are asked.
#[utoipa::path(get, path = "/policy-services", tag = "policy-services",
    responses((status = 200, body = ServiceList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Json<ServiceList>, WebError> {
    user.require_global()?;
    let services = state.store.list_policy_services().await?;
    Ok(Json(ServiceList { items: services.into_iter().map(Into::into).collect() }))
}

/// Add a policy service. A bad address, stage or timeout is refused with 422; a name in use
/// with 409.
#[utoipa::path(post, path = "/policy-services", request_body = NewService,
    tag = "policy-services",
    responses((status = 201, body = ServiceView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(new): ApiJson<NewService>,
) -> Result<(StatusCode, Json<ServiceView>), WebError> {
    user.require_write()?;
    user.require_global()?;
    let service = NewPolicyService::parse(
        &new.name,
        &new.address,
        &new.stage,
        &new.timeout_ms.map(|t| t.to_string()).unwrap_or_default(),
        new.on_failure.as_deref().unwrap_or(""),
        new.enabled.unwrap_or(true),
        &new.description,
    )?;
    let service = state.store.add_policy_service(&user.actor, service).await?;
    Ok((StatusCode::CREATED, Json(service.into())))
}

/// Remove a policy service.
#[utoipa::path(delete, path = "/policy-services/{name}", tag = "policy-services",
    params(("name" = String, Path, description = "The service's name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, WebError> {
    user.require_write()?;
    user.require_global()?;
    state.store.remove_policy_service(&user.actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send the service one request and say what it answered (a greylisting service records the
/// triplet like any other). 503 when this process cannot speak to services (no engine).
#[utoipa::path(post, path = "/policy-services/{name}/test", request_body = ServiceTest,
    tag = "policy-services",
    params(("name" = String, Path, description = "The service's name")),
    responses((status = 200, body = ServiceTestResult), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn test(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
    ApiJson(test): ApiJson<ServiceTest>,
) -> Result<Json<ServiceTestResult>, WebError> {
    user.require_write()?;
    user.require_global()?;
    Ok(Json(run_test(&state, &name, &test).await?))
}
