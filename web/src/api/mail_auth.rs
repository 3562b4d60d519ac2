//! `/mailauth/policy` and `/domains/{name}/mailauth/policy`: what inbound mail that fails SPF
//! or DMARC, or whose checks meet a DNS failure, leads to. The global policy is for global
//! administrators; a domain's override for those who manage the domain.

use std::str::FromStr;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postern_store::model::{DomainName, MailAuthPolicies, MailAuthPolicy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath};
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show_global, set_global)).routes(routes!(
        show_domain,
        set_domain,
        clear_domain
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    /// A DMARC failure under the sender's `p=reject`: `reject` (550 5.7.1), `quarantine`
    /// (then `dmarc_quarantine` applies) or `record`.
    pub dmarc_reject: String,
    /// A DMARC failure under `p=quarantine`: `hold` in the queue, `tag`
    /// (`X-Postern-Auth-Warning:`) and deliver, or `record`.
    pub dmarc_quarantine: String,
    /// An SPF `fail` (`-all`): `reject` (550 5.7.23), `tag` or `record`.
    pub spf_fail: String,
    /// A DNS failure during the checks: `defer` (451 4.7.24) or `accept` with a tag; never a
    /// permanent rejection.
    pub temperror: String,
}

impl From<MailAuthPolicy> for PolicyView {
    fn from(p: MailAuthPolicy) -> PolicyView {
        PolicyView {
            dmarc_reject: p.dmarc_reject.to_string(),
            dmarc_quarantine: p.dmarc_quarantine.to_string(),
            spf_fail: p.spf_fail.to_string(),
            temperror: p.temperror.to_string(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DomainPolicyView {
    pub domain: String,
    /// Whether the domain has its own policy; without one the global policy applies.
    pub overridden: bool,
    pub policy: PolicyView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyList {
    pub global: PolicyView,
    /// The domains with their own policy.
    pub overrides: Vec<DomainPolicyView>,
}

/// A change: fields left out keep their value (for a new override, the global policy's).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyUpdate {
    #[serde(default)]
    pub dmarc_reject: Option<String>,
    #[serde(default)]
    pub dmarc_quarantine: Option<String>,
    #[serde(default)]
    pub spf_fail: Option<String>,
    #[serde(default)]
    pub temperror: Option<String>,
}

fn field<T: FromStr<Err = String>>(
    name: &'static str,
    value: Option<&str>,
    current: T,
) -> Result<T, WebError> {
    value.map_or(Ok(current), |v| v.parse().map_err(|m: String| WebError::invalid(name, m)))
}

fn apply(base: MailAuthPolicy, update: &PolicyUpdate) -> Result<MailAuthPolicy, WebError> {
    Ok(MailAuthPolicy {
        dmarc_reject: field("dmarc_reject", update.dmarc_reject.as_deref(), base.dmarc_reject)?,
        dmarc_quarantine: field(
            "dmarc_quarantine",
            update.dmarc_quarantine.as_deref(),
            base.dmarc_quarantine,
        )?,
        spf_fail: field("spf_fail", update.spf_fail.as_deref(), base.spf_fail)?,
        temperror: field("temperror", update.temperror.as_deref(), base.temperror)?,
    })
}

fn list(policies: MailAuthPolicies) -> PolicyList {
    PolicyList {
        global: policies.global.into(),
        overrides: policies
            .domains
            .into_iter()
            .map(|(d, p)| DomainPolicyView {
                domain: d.to_string(),
                overridden: true,
                policy: p.into(),
            })
            .collect(),
    }
}

fn domain_view(policies: &MailAuthPolicies, name: &DomainName) -> DomainPolicyView {
    let own = policies.domains.get(name).copied();
    DomainPolicyView {
        domain: name.to_string(),
        overridden: own.is_some(),
        policy: own.unwrap_or(policies.global).into(),
    }
}

fn domain(user: &crate::auth::Principal, name: &str) -> Result<DomainName, WebError> {
    let name: DomainName = name.parse().map_err(WebError::from)?;
    user.require_domain(&name)?;
    Ok(name)
}

/// The global inbound policy and every domain's override.
#[utoipa::path(get, path = "/mailauth/policy", tag = "mailauth",
    responses((status = 200, body = PolicyList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn show_global(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Json<PolicyList>, WebError> {
    user.require_global()?;
    Ok(Json(list(state.store.mail_auth_policies().await?)))
}

/// Change the global inbound policy; it applies to new messages at once.
#[utoipa::path(put, path = "/mailauth/policy", tag = "mailauth", request_body = PolicyUpdate,
    responses((status = 200, body = PolicyList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_global(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(update): ApiJson<PolicyUpdate>,
) -> Result<Json<PolicyList>, WebError> {
    user.require_write()?;
    user.require_global()?;
    let policy = apply(state.store.mail_auth_policies().await?.global, &update)?;
    state.store.set_mail_auth_policy(&user.actor, None, policy).await?;
    Ok(Json(list(state.store.mail_auth_policies().await?)))
}

/// The inbound policy that applies to a domain's mail: its override, or the global policy.
#[utoipa::path(get, path = "/domains/{name}/mailauth/policy", tag = "mailauth",
    params(("name" = String, Path, description = "The domain name")),
    responses((status = 200, body = DomainPolicyView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn show_domain(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<DomainPolicyView>, WebError> {
    let name = domain(&user, &name)?;
    if state.store.get_domain(&name).await?.is_none() {
        return Err(
            postern_store::StoreError::NotFound { what: "domain", name: name.to_string() }.into()
        );
    }
    Ok(Json(domain_view(&state.store.mail_auth_policies().await?, &name)))
}

/// Set a domain's own inbound policy (made from the global one for fields left out).
#[utoipa::path(put, path = "/domains/{name}/mailauth/policy", tag = "mailauth",
    request_body = PolicyUpdate,
    params(("name" = String, Path, description = "The domain name")),
    responses((status = 200, body = DomainPolicyView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn set_domain(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
    ApiJson(update): ApiJson<PolicyUpdate>,
) -> Result<Json<DomainPolicyView>, WebError> {
    user.require_write()?;
    let name = domain(&user, &name)?;
    let policies = state.store.mail_auth_policies().await?;
    let base = policies.domains.get(&name).copied().unwrap_or(policies.global);
    let policy = apply(base, &update)?;
    state.store.set_mail_auth_policy(&user.actor, Some(&name), policy).await?;
    Ok(Json(domain_view(&state.store.mail_auth_policies().await?, &name)))
}

/// Remove a domain's own policy: the global one applies again.
#[utoipa::path(delete, path = "/domains/{name}/mailauth/policy", tag = "mailauth",
    params(("name" = String, Path, description = "The domain name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn clear_domain(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, WebError> {
    user.require_write()?;
    let name = domain(&user, &name)?;
    state.store.clear_mail_auth_policy(&user.actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
