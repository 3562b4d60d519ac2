//! `/domains/{name}/mta-sts`: a domain's hosted MTA-STS policy (RFC 8461) and the DNS records
//! to publish with it. Domain-admins manage their own domains'.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postern_store::model::{DEFAULT_STS_AGE, DomainName, MtaStsPolicy, StsMode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath};
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, set, remove))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MtaStsView {
    pub domain: String,
    /// `testing`, `enforce` or `none`.
    pub mode: String,
    pub max_age: i64,
    /// The MX patterns as served (the host name when none are set).
    pub mx: Vec<String>,
    /// The policy id: changes whenever the policy does.
    pub id: String,
    /// The policy file served at `https://mta-sts.<domain>/.well-known/mta-sts.txt`.
    pub policy: String,
    /// The `_mta-sts.<domain>` TXT record to publish.
    pub txt_name: String,
    pub txt_value: String,
    /// The `_smtp._tls.<domain>` TXT record to publish (TLS reporting, RFC 8460).
    pub tlsrpt_name: String,
    pub tlsrpt_value: String,
    pub updated_at: i64,
}

fn view(policy: &MtaStsPolicy, hostname: &str) -> MtaStsView {
    let (txt_name, txt_value) = policy.txt_record();
    let (tlsrpt_name, tlsrpt_value) = policy.tlsrpt_record();
    MtaStsView {
        domain: policy.domain.to_string(),
        mode: policy.mode.to_string(),
        max_age: policy.max_age,
        mx: policy.mx_or(hostname),
        id: policy.id.clone(),
        policy: policy.text(hostname),
        txt_name,
        txt_value,
        tlsrpt_name,
        tlsrpt_value,
        updated_at: policy.updated_at,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMtaSts {
    /// `testing`, `enforce` or `none`.
    pub mode: String,
    /// Seconds senders keep the policy (default a week, at most 31557600).
    #[serde(default)]
    pub max_age: Option<i64>,
    /// MX host names or `*.domain` patterns; empty for the appliance's host name.
    #[serde(default)]
    pub mx: Vec<String>,
    /// Where TLS reports go (`mailto:` or `https://`); empty for `mailto:postmaster@<domain>`.
    #[serde(default)]
    pub report_to: String,
}

fn domain_of(name: &str, user: &crate::auth::Principal) -> Result<DomainName, WebError> {
    let domain: DomainName = name.parse().map_err(WebError::from)?;
    user.require_domain(&domain)?;
    Ok(domain)
}

/// The domain's MTA-STS policy and the records to publish.
#[utoipa::path(get, path = "/domains/{name}/mta-sts", tag = "domains",
    params(("name" = String, Path, description = "The domain")),
    responses((status = 200, body = MtaStsView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<MtaStsView>, WebError> {
    let domain = domain_of(&name, &user)?;
    let policy = state.store.mta_sts_policy(&domain).await?.ok_or_else(|| {
        WebError::NotFound(format!("no MTA-STS policy is published for {domain}"))
    })?;
    Ok(Json(view(&policy, &state.settings.hostname)))
}

/// Publish or change the domain's MTA-STS policy.
#[utoipa::path(put, path = "/domains/{name}/mta-sts", request_body = SetMtaSts, tag = "domains",
    params(("name" = String, Path, description = "The domain")),
    responses((status = 200, body = MtaStsView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn set(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<SetMtaSts>,
) -> Result<Json<MtaStsView>, WebError> {
    user.require_write()?;
    let domain = domain_of(&name, &user)?;
    let mode: StsMode = body.mode.parse()?;
    let policy = state
        .store
        .set_mta_sts(
            &user.actor,
            &domain,
            mode,
            body.max_age.unwrap_or(DEFAULT_STS_AGE),
            &body.mx,
            &body.report_to,
        )
        .await?;
    Ok(Json(view(&policy, &state.settings.hostname)))
}

/// Stop publishing the domain's policy (set mode `none` first to withdraw it cleanly).
#[utoipa::path(delete, path = "/domains/{name}/mta-sts", tag = "domains",
    params(("name" = String, Path, description = "The domain")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, WebError> {
    user.require_write()?;
    let domain = domain_of(&name, &user)?;
    state.store.remove_mta_sts(&user.actor, &domain).await?;
    Ok(StatusCode::NO_CONTENT)
}
