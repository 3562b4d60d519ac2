//! `/domains/{name}/dkim`: a domain's DKIM keys, the records to publish, and their rollout
//! (generate, rotate, activate, check). Private keys never appear here.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postern_store::model::{DkimAlgorithm, DkimKey, DkimSettings, DkimState, DomainName};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath};
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, generate))
        .routes(routes!(rotate))
        .routes(routes!(activate))
        .routes(routes!(check))
        .routes(routes!(get_settings, set_settings))
}

/// One key: what to publish, where it is in its rollout, and what DNS showed last.
#[derive(Debug, Serialize, ToSchema)]
pub struct DkimKeyView {
    pub domain: String,
    pub selector: String,
    /// `ed25519` or `rsa`.
    pub algorithm: String,
    pub bits: u32,
    /// `pending` (publish the record), `active` (signs), `retiring` (keep the record until
    /// `keep_published_until`), `retired` (the record may be removed).
    pub state: String,
    /// `<selector>._domainkey.<domain>`, a TXT record.
    pub record_name: String,
    pub record_value: String,
    /// The value as DNS character-strings of at most 255 octets.
    pub record_strings: Vec<String>,
    /// For a retiring key: until when (epoch seconds) its record must stay published.
    pub keep_published_until: Option<i64>,
    /// Whether the record may be removed now.
    pub may_remove_record: bool,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retiring_at: Option<i64>,
    pub retired_at: Option<i64>,
    pub dns_checked_at: Option<i64>,
    /// `published`, `missing`, `different` or `failed`; absent before the first check.
    pub dns_status: Option<String>,
    /// What a `different` or `failed` check found.
    pub dns_found: Option<String>,
}

impl From<&DkimKey> for DkimKeyView {
    fn from(k: &DkimKey) -> DkimKeyView {
        DkimKeyView {
            domain: k.domain.to_string(),
            selector: k.selector.clone(),
            algorithm: k.algorithm.to_string(),
            bits: k.bits,
            state: k.state.to_string(),
            record_name: k.record_name(),
            record_value: k.record_value(),
            record_strings: k.record_strings(),
            keep_published_until: (k.state == DkimState::Retiring)
                .then_some(k.retire_after)
                .flatten(),
            may_remove_record: k.state == DkimState::Retired,
            created_at: k.created_at,
            activated_at: k.activated_at,
            retiring_at: k.retiring_at,
            retired_at: k.retired_at,
            dns_checked_at: k.dns_checked_at,
            dns_status: k.dns.as_ref().map(|c| c.status().to_string()),
            dns_found: k.dns.as_ref().and_then(|c| c.found()).map(str::to_string),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DkimKeyList {
    pub items: Vec<DkimKeyView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDkimKey {
    /// `rsa` (default) or `ed25519`.
    #[serde(default)]
    pub algorithm: Option<String>,
    /// RSA only: 2048 (default), 3072 or 4096.
    #[serde(default)]
    pub bits: Option<u32>,
    /// Default: today's date, like `s20261207`.
    #[serde(default)]
    pub selector: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// Which active key to rotate when an Ed25519 and an RSA key are both active.
    #[serde(default)]
    pub algorithm: Option<String>,
}

fn domain(user: &crate::auth::Principal, name: &str) -> Result<DomainName, WebError> {
    let name: DomainName = name.parse().map_err(WebError::from)?;
    user.require_domain(&name)?;
    Ok(name)
}

fn algorithm(text: Option<&str>) -> Result<Option<DkimAlgorithm>, WebError> {
    text.map(|a| {
        a.parse::<DkimAlgorithm>().map_err(|m| {
            WebError::from(postern_store::StoreError::Invalid { field: "algorithm", message: m })
        })
    })
    .transpose()
}

fn views(keys: &[DkimKey]) -> DkimKeyList {
    DkimKeyList { items: keys.iter().map(Into::into).collect() }
}

/// A domain's DKIM keys, retired ones included, with the records to publish.
#[utoipa::path(get, path = "/domains/{name}/dkim", tag = "dkim",
    params(("name" = String, Path, description = "The domain name")),
    responses((status = 200, body = DkimKeyList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<DkimKeyList>, WebError> {
    let name = domain(&user, &name)?;
    Ok(Json(views(&state.store.list_dkim_keys(Some(&name)).await?)))
}

/// Generate a key, `pending` until its record is seen in DNS.
#[utoipa::path(post, path = "/domains/{name}/dkim", tag = "dkim", request_body = NewDkimKey,
    params(("name" = String, Path, description = "The domain name")),
    responses((status = 201, body = DkimKeyView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn generate(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
    ApiJson(new): ApiJson<NewDkimKey>,
) -> Result<(StatusCode, Json<DkimKeyView>), WebError> {
    user.require_write()?;
    let name = domain(&user, &name)?;
    let algorithm = algorithm(new.algorithm.as_deref())?.unwrap_or(DkimAlgorithm::Rsa);
    let key = state
        .store
        .generate_dkim_key(&user.actor, &name, algorithm, new.bits, new.selector.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json((&key).into())))
}

/// Generate the next key (pending); the active one signs until the new record is seen.
#[utoipa::path(post, path = "/domains/{name}/dkim/rotate", tag = "dkim", request_body = Rotation,
    params(("name" = String, Path, description = "The domain name")),
    responses((status = 201, body = DkimKeyView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn rotate(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
    ApiJson(rotation): ApiJson<Rotation>,
) -> Result<(StatusCode, Json<DkimKeyView>), WebError> {
    user.require_write()?;
    let name = domain(&user, &name)?;
    let algorithm = algorithm(rotation.algorithm.as_deref())?;
    let key = state.store.rotate_dkim_key(&user.actor, &name, algorithm).await?;
    Ok((StatusCode::CREATED, Json((&key).into())))
}

/// Make a pending key sign now, without waiting for its record to be seen (forced).
#[utoipa::path(post, path = "/domains/{name}/dkim/{selector}/activate", tag = "dkim",
    params(("name" = String, Path, description = "The domain name"),
        ("selector" = String, Path, description = "The key's selector")),
    responses((status = 200, body = DkimKeyView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn activate(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath((name, selector)): ApiPath<(String, String)>,
) -> Result<Json<DkimKeyView>, WebError> {
    user.require_write()?;
    let name = domain(&user, &name)?;
    let key = state.store.activate_dkim_key(&user.actor, &name, &selector).await?;
    Ok(Json((&key).into()))
}

/// Look the domain's key records up now; a pending key whose record is seen becomes active.
#[utoipa::path(post, path = "/domains/{name}/dkim/check", tag = "dkim",
    params(("name" = String, Path, description = "The domain name")),
    responses((status = 200, body = DkimKeyList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn check(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<DkimKeyList>, WebError> {
    user.require_write()?;
    let name = domain(&user, &name)?;
    let Some(checker) = state.dkim_check.clone() else {
        return Err(WebError::Conflict(
            "this process has no DNS resolver: run `postern dkim check` or wait for the \
             engine's hourly check"
                .into(),
        ));
    };
    Ok(Json(views(&checker.check(&user.actor, &name).await?)))
}

/// A domain's DKIM settings beyond its keys.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DkimSettingsView {
    /// Generate the next key (pending, same algorithm and size) once the active one has signed
    /// this many days, 7 to 3650; `null` (the default): only by hand.
    #[serde(default)]
    #[schema(minimum = 7, maximum = 3650)]
    pub rotate_days: Option<u32>,
    /// Sign mail relayed for others (neither submitted by a user nor relayed from a trusted
    /// network) whose `From:` is this domain; `false` by default.
    #[serde(default)]
    pub sign_relayed: bool,
}

impl From<DkimSettings> for DkimSettingsView {
    fn from(s: DkimSettings) -> DkimSettingsView {
        DkimSettingsView { rotate_days: s.rotate_days, sign_relayed: s.sign_relayed }
    }
}

/// A domain's DKIM settings: automatic rotation, signing relayed mail.
#[utoipa::path(get, path = "/domains/{name}/dkim/settings", tag = "dkim",
    params(("name" = String, Path, description = "The domain name")),
    responses((status = 200, body = DkimSettingsView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_settings(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<DkimSettingsView>, WebError> {
    let name = domain(&user, &name)?;
    Ok(Json(state.store.dkim_settings(&name).await?.into()))
}

/// Replaces a domain's DKIM settings.
#[utoipa::path(put, path = "/domains/{name}/dkim/settings", tag = "dkim",
    request_body = DkimSettingsView,
    params(("name" = String, Path, description = "The domain name")),
    responses((status = 200, body = DkimSettingsView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn set_settings(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
    ApiJson(settings): ApiJson<DkimSettingsView>,
) -> Result<Json<DkimSettingsView>, WebError> {
    user.require_write()?;
    let name = domain(&user, &name)?;
    let settings =
        DkimSettings { rotate_days: settings.rotate_days, sign_relayed: settings.sign_relayed };
    Ok(Json(state.store.set_dkim_settings(&user.actor, &name, settings).await?.into()))
}
