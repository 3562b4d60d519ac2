//! `/transports`: how mail for a destination leaves (a smarthost, LMTP, MX, …), with its TLS
//! policy and AUTH credentials. Global only. The AUTH password is write-only: it goes in, and
//! only whether one is set comes out.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postern_store::model::{
    SmtpCredentials, TlsPolicy, Transport, TransportPattern, TransportRule,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath, ApiQuery, ListParams};
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(show, put, remove))
}

/// TLS toward the next hop.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tls {
    /// Never STARTTLS.
    None,
    /// STARTTLS when offered (the default).
    May,
    /// TLS required, any certificate.
    Encrypt,
    /// TLS required, with a certificate valid for the host name.
    Verify,
}

impl From<TlsPolicy> for Tls {
    fn from(t: TlsPolicy) -> Tls {
        match t {
            TlsPolicy::None => Tls::None,
            TlsPolicy::May => Tls::May,
            TlsPolicy::Encrypt => Tls::Encrypt,
            TlsPolicy::Verify => Tls::Verify,
        }
    }
}

impl From<Tls> for TlsPolicy {
    fn from(t: Tls) -> TlsPolicy {
        match t {
            Tls::None => TlsPolicy::None,
            Tls::May => TlsPolicy::May,
            Tls::Encrypt => TlsPolicy::Encrypt,
            Tls::Verify => TlsPolicy::Verify,
        }
    }
}

/// A transport rule. The AUTH password is never part of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransportView {
    /// `example.com`, `.example.com` (its subdomains) or `*` (everything else but the local
    /// domains).
    pub pattern: String,
    /// `smtp:[relay.example]:587`, `lmtp:127.0.0.1:24`, `mx`, `local`, `discard`, `error:text`.
    pub transport: String,
    pub tls: Tls,
    /// The AUTH user name at the next hop, if it signs in.
    pub username: Option<String>,
    /// Whether an AUTH password is stored.
    pub password_set: bool,
    /// Seconds since the Unix epoch.
    pub updated_at: i64,
}

impl From<TransportRule> for TransportView {
    fn from(r: TransportRule) -> TransportView {
        TransportView {
            pattern: r.pattern.to_string(),
            transport: r.transport.to_string(),
            tls: r.tls.into(),
            password_set: r.auth.as_ref().is_some_and(|a| !a.password.is_empty()),
            username: r.auth.map(|a| a.username),
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransportList {
    pub items: Vec<TransportView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

/// A new rule. (No `Debug`: it may hold a password.)
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTransport {
    /// `example.com`, `.example.com` or `*`.
    pub pattern: String,
    /// `smtp:[relay.example]:587`, `lmtp:127.0.0.1:24`, `mx`, `local`, `discard`, `error:text`.
    pub transport: String,
    /// Default `may`.
    #[serde(default)]
    pub tls: Option<Tls>,
    /// AUTH user name at the next hop (smtp: and lmtp: only). Absent: no AUTH.
    #[serde(default)]
    pub username: Option<String>,
    /// AUTH password; write-only.
    #[serde(default)]
    pub password: Option<String>,
}

/// What a rule does. (No `Debug`: it may hold a password.)
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransportSpec {
    /// `smtp:[relay.example]:587`, `lmtp:127.0.0.1:24`, `mx`, `local`, `discard`, `error:text`.
    pub transport: String,
    /// Default `may`.
    #[serde(default)]
    pub tls: Option<Tls>,
    /// AUTH user name at the next hop (smtp: and lmtp: only). Absent: no AUTH.
    #[serde(default)]
    pub username: Option<String>,
    /// AUTH password; write-only. When replacing a rule with the same user name, leave it out
    /// to keep the stored one.
    #[serde(default)]
    pub password: Option<String>,
}

/// The AUTH credentials a new or replaced rule gets. A rule replaced with the same user name and
/// no password keeps the stored password, so that changing the TLS policy does not mean typing
/// the password again (it is never shown, so nobody could copy it).
pub(crate) async fn credentials(
    state: &AppState,
    pattern: &TransportPattern,
    username: &str,
    password: &str,
) -> Result<Option<SmtpCredentials>, WebError> {
    let username = username.trim();
    if username.is_empty() {
        if !password.is_empty() {
            return Err(WebError::invalid("username", "give the user name for this password"));
        }
        return Ok(None);
    }
    if !password.is_empty() {
        return Ok(Some(SmtpCredentials {
            username: username.to_string(),
            password: password.to_string(),
        }));
    }
    let stored = state
        .store
        .list_transports()
        .await?
        .into_iter()
        .find(|r| &r.pattern == pattern)
        .and_then(|r| r.auth)
        .filter(|a| a.username == username);
    match stored {
        Some(kept) => Ok(Some(kept)),
        None => Err(WebError::invalid("password", "give the password for this user name")),
    }
}

/// Checks a rule and writes it, replacing any rule for the same pattern.
pub(crate) async fn set(
    state: &AppState,
    actor: &str,
    pattern: &TransportPattern,
    spec: TransportSpec,
) -> Result<TransportRule, WebError> {
    let transport: Transport = spec.transport.parse()?;
    let tls: TlsPolicy = spec.tls.unwrap_or(Tls::May).into();
    let auth = credentials(
        state,
        pattern,
        spec.username.as_deref().unwrap_or(""),
        spec.password.as_deref().unwrap_or(""),
    )
    .await?;
    // The store calls the credentials `auth`; the fields here are the user name and password.
    state.store.set_transport(actor, pattern, transport, tls, auth).await.map_err(|e| {
        match WebError::from(e) {
            WebError::Invalid { field: Some(f), message } if f == "auth" => {
                WebError::invalid("username", message)
            }
            other => other,
        }
    })
}

async fn find(state: &AppState, pattern: &TransportPattern) -> Result<TransportRule, WebError> {
    state
        .store
        .list_transports()
        .await?
        .into_iter()
        .find(|r| &r.pattern == pattern)
        .ok_or_else(|| WebError::NotFound(format!("no transport for {pattern}")))
}

/// List the transport rules, by pattern.
#[utoipa::path(get, path = "/transports", params(ListParams), tag = "transports",
    responses((status = 200, body = TransportList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<TransportList>, WebError> {
    user.require_global()?;
    let mut rules = state.store.list_transports().await?;
    rules.sort_by_key(|r| r.pattern.to_string());
    let (page, next) = params.page(rules, |r| r.pattern.to_string())?;
    Ok(Json(TransportList { items: page.into_iter().map(Into::into).collect(), next }))
}

/// Add a rule; refused (409) when the pattern has one (replace it with PUT).
#[utoipa::path(post, path = "/transports", request_body = NewTransport, tag = "transports",
    responses((status = 201, body = TransportView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(new): ApiJson<NewTransport>,
) -> Result<(StatusCode, Json<TransportView>), WebError> {
    user.require_write()?;
    user.require_global()?;
    let pattern: TransportPattern = new.pattern.parse()?;
    if state.store.list_transports().await?.iter().any(|r| r.pattern == pattern) {
        return Err(WebError::Duplicate(format!("a transport for {pattern} already exists")));
    }
    let spec = TransportSpec {
        transport: new.transport,
        tls: new.tls,
        username: new.username,
        password: new.password,
    };
    let rule = set(&state, &user.actor, &pattern, spec).await?;
    Ok((StatusCode::CREATED, Json(rule.into())))
}

/// One rule.
#[utoipa::path(get, path = "/transports/{pattern}", tag = "transports",
    params(("pattern" = String, Path, description = "`example.com`, `.example.com` or `*`")),
    responses((status = 200, body = TransportView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(pattern): ApiPath<String>,
) -> Result<Json<TransportView>, WebError> {
    user.require_global()?;
    let pattern: TransportPattern = pattern.parse()?;
    Ok(Json(find(&state, &pattern).await?.into()))
}

/// Set the rule for a pattern, creating or replacing it.
#[utoipa::path(put, path = "/transports/{pattern}", request_body = TransportSpec,
    tag = "transports",
    params(("pattern" = String, Path, description = "`example.com`, `.example.com` or `*`")),
    responses((status = 200, body = TransportView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(pattern): ApiPath<String>,
    ApiJson(spec): ApiJson<TransportSpec>,
) -> Result<Json<TransportView>, WebError> {
    user.require_write()?;
    user.require_global()?;
    let pattern: TransportPattern = pattern.parse()?;
    Ok(Json(set(&state, &user.actor, &pattern, spec).await?.into()))
}

/// Remove a rule.
#[utoipa::path(delete, path = "/transports/{pattern}", tag = "transports",
    params(("pattern" = String, Path, description = "`example.com`, `.example.com` or `*`")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(pattern): ApiPath<String>,
) -> Result<StatusCode, WebError> {
    user.require_write()?;
    user.require_global()?;
    let pattern: TransportPattern = pattern.parse()?;
    state.store.remove_transport(&user.actor, &pattern).await?;
    Ok(StatusCode::NO_CONTENT)
}
