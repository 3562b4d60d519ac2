//! `/domains/{name}/directory`: the LDAP / Active Directory a domain's mailboxes come from
//! (show, set, remove) and its live tests (test the connection, look an address up). Scoped
//! like the domain: a domain-admin manages its own domains' directories. The service password
//! is write-only: it is never shown back.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postern_store::model::{
    Address, DEFAULT_DIRECTORY_CACHE_TTL_SECS, DEFAULT_DIRECTORY_TIMEOUT_MS, DirectoryPassword,
    DirectorySettings, DirectoryUpdate, DomainName,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath};
use crate::auth::token::ApiUser;
use crate::directory::DirectoryAnswer;
use crate::error::{ErrorBody, WebError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show, set, remove))
        .routes(routes!(test))
        .routes(routes!(lookup))
}

/// A domain's directory settings, without the service password.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryView {
    pub domain: String,
    /// `ldap://host[:port]` or `ldaps://host[:port]`.
    pub url: String,
    /// StartTLS on an `ldap://` URL.
    pub starttls: bool,
    /// The CA certificates (PEM) trusted for this directory; `null`: the system's roots.
    pub ca_pem: Option<String>,
    /// The service account that searches; empty: anonymous.
    pub bind_dn: String,
    /// Whether a service password is stored (it is never shown).
    pub bind_password_set: bool,
    pub base_dn: String,
    /// An extra filter the user's entry must match, like `(objectClass=person)`.
    pub user_filter: String,
    /// The attributes holding addresses: `mail`, `proxyAddresses` (AD), `otherMailbox`…
    pub attributes: Vec<String>,
    pub timeout_ms: u64,
    /// How long an answer (found or not) is kept; 0: not at all.
    pub cache_ttl_secs: u64,
    pub updated_at: i64,
}

impl From<DirectorySettings> for DirectoryView {
    fn from(s: DirectorySettings) -> DirectoryView {
        DirectoryView {
            domain: s.domain.to_string(),
            url: s.url,
            starttls: s.starttls,
            ca_pem: s.ca_pem,
            bind_dn: s.bind_dn,
            bind_password_set: !s.bind_password.is_empty(),
            base_dn: s.base_dn,
            user_filter: s.user_filter,
            attributes: s.attributes,
            timeout_ms: s.timeout_ms,
            cache_ttl_secs: s.cache_ttl_secs,
            updated_at: s.updated_at,
        }
    }
}

/// The settings to store. Left out: no StartTLS, no CA (the system's roots), anonymous search,
/// no extra filter, `["mail"]`, 5000 ms, 300 s; a missing `bind_password` keeps the stored one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectoryBody {
    pub url: String,
    #[serde(default)]
    pub starttls: bool,
    #[serde(default)]
    pub ca_pem: Option<String>,
    #[serde(default)]
    pub bind_dn: String,
    /// Write-only.
    #[serde(default)]
    pub bind_password: Option<String>,
    pub base_dn: String,
    #[serde(default)]
    pub user_filter: String,
    #[serde(default)]
    pub attributes: Option<Vec<String>>,
    #[schema(minimum = 100, maximum = 60000)]
    pub timeout_ms: Option<u64>,
    #[schema(minimum = 0, maximum = 86400)]
    pub cache_ttl_secs: Option<u64>,
}

impl DirectoryBody {
    fn update(self) -> Result<DirectoryUpdate, WebError> {
        let attributes = match self.attributes {
            Some(list) => {
                // Each element is one name: "no good" must not pass as two.
                if let Some(bad) =
                    list.iter().find(|a| a.trim().is_empty() || a.contains([' ', ',', '\t', '\n']))
                {
                    return Err(WebError::invalid(
                        "attributes",
                        format!("{bad:?} is not an attribute name"),
                    ));
                }
                postern_store::model::parse_attributes(&list.join(" "))
                    .map_err(|e| WebError::invalid("attributes", e))?
            }
            None => vec!["mail".into()],
        };
        Ok(DirectoryUpdate {
            url: self.url,
            starttls: self.starttls,
            ca_pem: self.ca_pem,
            bind_dn: self.bind_dn,
            bind_password: self.bind_password.map(DirectoryPassword),
            base_dn: self.base_dn,
            user_filter: self.user_filter,
            attributes,
            timeout_ms: self.timeout_ms.unwrap_or(DEFAULT_DIRECTORY_TIMEOUT_MS),
            cache_ttl_secs: self.cache_ttl_secs.unwrap_or(DEFAULT_DIRECTORY_CACHE_TTL_SECS),
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupBody {
    /// The address to look up.
    pub address: String,
}

fn domain(user: &crate::auth::Principal, name: &str) -> Result<DomainName, WebError> {
    let name: DomainName = name.parse().map_err(WebError::from)?;
    user.require_domain(&name)?;
    Ok(name)
}

/// The stored settings of `domain`, or 404.
pub(crate) async fn stored(
    state: &AppState,
    domain: &DomainName,
) -> Result<DirectorySettings, WebError> {
    state
        .store
        .get_directory(domain)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("domain {domain} has no directory")))
}

/// Tests `domain`'s directory (connect, service bind, read the base DN).
pub(crate) async fn run_test(
    state: &AppState,
    domain: &DomainName,
) -> Result<DirectoryAnswer, WebError> {
    let settings = stored(state, domain).await?;
    let probe = state.directory_probe.as_ref().ok_or(WebError::Unavailable)?;
    Ok(probe.test(&settings).await)
}

/// Looks `address` up in `domain`'s directory, now.
pub(crate) async fn run_lookup(
    state: &AppState,
    domain: &DomainName,
    address: &str,
) -> Result<DirectoryAnswer, WebError> {
    let address: Address = address.trim().parse().map_err(|_| {
        WebError::invalid("address", format!("{:?} is not an address", address.trim()))
    })?;
    let settings = stored(state, domain).await?;
    let probe = state.directory_probe.as_ref().ok_or(WebError::Unavailable)?;
    Ok(probe.lookup(&settings, &address).await)
}

/// A domain's directory settings (the service password is never shown).
#[utoipa::path(get, path = "/domains/{name}/directory", tag = "directories",
    params(("name" = String, Path, description = "The domain name")),
    responses((status = 200, body = DirectoryView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<DirectoryView>, WebError> {
    let name = domain(&user, &name)?;
    Ok(Json(stored(&state, &name).await?.into()))
}

/// Attach a directory to a local domain, or replace its settings. The engine uses them from
/// the next command on.
#[utoipa::path(put, path = "/domains/{name}/directory", tag = "directories",
    request_body = DirectoryBody,
    params(("name" = String, Path, description = "The domain name")),
    responses((status = 200, body = DirectoryView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn set(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<DirectoryBody>,
) -> Result<Json<DirectoryView>, WebError> {
    user.require_write()?;
    let name = domain(&user, &name)?;
    let update = body.update()?;
    Ok(Json(state.store.set_directory(&user.actor, &name, update).await?.into()))
}

/// Detach the directory: its users are no longer known.
#[utoipa::path(delete, path = "/domains/{name}/directory", tag = "directories",
    params(("name" = String, Path, description = "The domain name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, WebError> {
    user.require_write()?;
    let name = domain(&user, &name)?;
    state.store.remove_directory(&user.actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Test the connection: connect, bind as the service account, read the base DN. A directory
/// that fails answers 200 with `ok: false` and the reason.
#[utoipa::path(post, path = "/domains/{name}/directory/test", tag = "directories",
    params(("name" = String, Path, description = "The domain name")),
    responses((status = 200, body = DirectoryAnswer), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn test(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<DirectoryAnswer>, WebError> {
    let name = domain(&user, &name)?;
    Ok(Json(run_test(&state, &name).await?))
}

/// Look an address up in the directory now (without the engine's cache).
#[utoipa::path(post, path = "/domains/{name}/directory/lookup", tag = "directories",
    request_body = LookupBody,
    params(("name" = String, Path, description = "The domain name")),
    responses((status = 200, body = DirectoryAnswer), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn lookup(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<LookupBody>,
) -> Result<Json<DirectoryAnswer>, WebError> {
    let name = domain(&user, &name)?;
    Ok(Json(run_lookup(&state, &name, &body.address).await?))
}
