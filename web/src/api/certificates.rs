//! `/certificates`: the TLS certificates the listeners serve by SNI, uploads, and ACME orders.
//! Global only. A private key goes in (on import) and never comes out.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postern_store::model::{AcmeOrder, CertificateInfo, CertificateSource, Challenge, DomainName};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath};
use crate::auth::token::ApiUser;
use crate::certs;
use crate::error::{ErrorBody, WebError};
use crate::state::AppState;
use crate::time;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, import))
        .routes(routes!(show, remove))
        .routes(routes!(order))
        .routes(routes!(renew))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateView {
    pub id: i64,
    /// The DNS names it is for; a wildcard as `*.example.com`.
    pub names: Vec<String>,
    pub issuer: String,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// `acme` or `upload`.
    pub source: String,
    pub acme_directory: Option<String>,
    pub created_at: i64,
    /// The names clients get this certificate for now (SNI), `*.parent` for a wildcard.
    pub served_for: Vec<String>,
    /// Whether it is what clients naming nothing else covered get (the host name's).
    pub default: bool,
    /// The listeners that present it (every TLS listener, when `served_for` or `default`).
    pub listeners: Vec<String>,
    /// The last ACME order that produced or renews it.
    pub last_order: Option<OrderView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderView {
    pub id: i64,
    pub names: Vec<String>,
    /// `http-01` or `tls-alpn-01`.
    pub challenge: String,
    /// `pending`, `validating`, `issued` or `failed`.
    pub state: String,
    /// The last failure, in the CA's own words.
    pub error: Option<String>,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub certificate_id: Option<i64>,
    pub replaces: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&AcmeOrder> for OrderView {
    fn from(o: &AcmeOrder) -> OrderView {
        OrderView {
            id: o.id,
            names: o.names.clone(),
            challenge: o.challenge.to_string(),
            state: o.state.to_string(),
            error: o.error.clone(),
            attempts: o.attempts,
            next_attempt_at: o.next_attempt_at,
            certificate_id: o.certificate_id,
            replaces: o.replaces,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateList {
    pub certificates: Vec<CertificateView>,
    /// Every ACME order, newest first (the last 500).
    pub orders: Vec<OrderView>,
    /// Whether this appliance may order certificates (`[acme]` in postern.toml).
    pub acme: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCertificate {
    /// PEM: the server's certificate first, then the intermediates.
    pub cert_pem: String,
    /// PEM: its private key (PKCS#8, PKCS#1 or SEC1). Stored sealed; never returned.
    pub key_pem: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// The names to certify; the first is the main one.
    pub names: Vec<String>,
    /// `http-01` (default) or `tls-alpn-01`.
    #[serde(default)]
    pub challenge: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Renewal {
    /// `http-01` (default) or `tls-alpn-01`.
    #[serde(default)]
    pub challenge: Option<String>,
}

pub(crate) fn view(
    state: &AppState,
    all: &[CertificateInfo],
    orders: &[AcmeOrder],
    cert: &CertificateInfo,
) -> CertificateView {
    let (served_for, default) = certs::served_for(all, cert, &state.settings.hostname, time::now());
    let listeners = if default || !served_for.is_empty() {
        state.settings.tls_listeners.clone()
    } else {
        Vec::new()
    };
    CertificateView {
        id: cert.id,
        names: cert.names.clone(),
        issuer: cert.issuer.clone(),
        not_before: cert.not_before,
        not_after: cert.not_after,
        source: cert.source.to_string(),
        acme_directory: cert.acme_directory.clone(),
        created_at: cert.created_at,
        served_for,
        default,
        listeners,
        last_order: certs::last_order(orders, cert).map(OrderView::from),
    }
}

fn parse_id(id: &str) -> Result<i64, WebError> {
    id.parse().map_err(|_| WebError::invalid("id", format!("{id:?} is not a certificate ID")))
}

pub(crate) fn parse_challenge(challenge: Option<&str>) -> Result<Challenge, WebError> {
    Ok(challenge.filter(|c| !c.is_empty()).unwrap_or("http-01").parse::<Challenge>()?)
}

pub(crate) fn require_acme(state: &AppState) -> Result<(), WebError> {
    if state.settings.acme { Ok(()) } else { Err(WebError::Conflict(certs::ACME_OFF.into())) }
}

/// The names of an order: host names (no wildcards: those need DNS-01).
pub(crate) fn parse_names<S: AsRef<str>>(names: &[S]) -> Result<Vec<DomainName>, WebError> {
    let names: Vec<DomainName> = names
        .iter()
        .map(|n| n.as_ref().trim())
        .filter(|n| !n.is_empty())
        .map(|n| {
            n.parse::<DomainName>().map_err(|e| {
                let hint = if n.starts_with("*.") {
                    "wildcards need a DNS-01 challenge, which is not offered".to_string()
                } else {
                    e.to_string()
                };
                WebError::invalid("names", format!("{n:?}: {hint}"))
            })
        })
        .collect::<Result<_, _>>()?;
    if names.is_empty() {
        return Err(WebError::invalid("names", "name at least one host name to order"));
    }
    Ok(names)
}

/// List the stored certificates (never their keys) and the ACME orders.
#[utoipa::path(get, path = "/certificates", tag = "certificates",
    responses((status = 200, body = CertificateList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Json<CertificateList>, WebError> {
    user.require_global()?;
    let all = state.store.list_certificates().await?;
    let orders = state.store.list_acme_orders().await?;
    let certificates = all.iter().map(|c| view(&state, &all, &orders, c)).collect();
    Ok(Json(CertificateList {
        certificates,
        orders: orders.iter().map(OrderView::from).collect(),
        acme: state.settings.acme,
    }))
}

/// Store a certificate chain and its private key. Refused with a message saying what is wrong
/// when the key is not the certificate's, the chain is out of order, or it has expired.
#[utoipa::path(post, path = "/certificates", request_body = NewCertificate, tag = "certificates",
    responses((status = 201, body = CertificateView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn import(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(new): ApiJson<NewCertificate>,
) -> Result<(StatusCode, Json<CertificateView>), WebError> {
    user.require_write()?;
    user.require_global()?;
    let info = state
        .store
        .import_certificate(
            &user.actor,
            &new.cert_pem,
            &new.key_pem,
            CertificateSource::Upload,
            None,
        )
        .await?;
    let all = state.store.list_certificates().await?;
    let orders = state.store.list_acme_orders().await?;
    Ok((StatusCode::CREATED, Json(view(&state, &all, &orders, &info))))
}

/// One certificate.
#[utoipa::path(get, path = "/certificates/{id}", tag = "certificates",
    params(("id" = i64, Path, description = "The certificate's ID")),
    responses((status = 200, body = CertificateView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CertificateView>, WebError> {
    user.require_global()?;
    let id = parse_id(&id)?;
    let all = state.store.list_certificates().await?;
    let orders = state.store.list_acme_orders().await?;
    let cert = all
        .iter()
        .find(|c| c.id == id)
        .ok_or_else(|| WebError::NotFound(format!("certificate {id} does not exist")))?;
    Ok(Json(view(&state, &all, &orders, cert)))
}

/// Remove a certificate; the listeners stop presenting it from their next handshake.
#[utoipa::path(delete, path = "/certificates/{id}", tag = "certificates",
    params(("id" = i64, Path, description = "The certificate's ID")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, WebError> {
    user.require_write()?;
    user.require_global()?;
    state.store.remove_certificate(&user.actor, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ask the ACME CA for a certificate for these names. An open order for the same names is
/// returned instead of a second one. Refused (409) when ACME is off.
#[utoipa::path(post, path = "/certificates/orders", request_body = NewOrder, tag = "certificates",
    responses((status = 202, body = OrderView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn order(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(new): ApiJson<NewOrder>,
) -> Result<(StatusCode, Json<OrderView>), WebError> {
    user.require_write()?;
    user.require_global()?;
    let names = parse_names(&new.names)?;
    let challenge = parse_challenge(new.challenge.as_deref())?;
    require_acme(&state)?;
    let order = state.store.request_acme_order(&user.actor, &names, challenge, None).await?;
    Ok((StatusCode::ACCEPTED, Json(OrderView::from(&order))))
}

/// Renew a certificate now from the ACME CA, for the same names. Refused (409) when ACME is off.
#[utoipa::path(post, path = "/certificates/{id}/renew", request_body = Renewal, tag = "certificates",
    params(("id" = i64, Path, description = "The certificate's ID")),
    responses((status = 202, body = OrderView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn renew(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(id): ApiPath<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<OrderView>), WebError> {
    user.require_write()?;
    user.require_global()?;
    let id = parse_id(&id)?;
    // The body is optional: an empty one renews with HTTP-01.
    let renewal: Renewal = if body.iter().all(u8::is_ascii_whitespace) {
        Renewal::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| WebError::invalid("body", e.to_string()))?
    };
    let challenge = parse_challenge(renewal.challenge.as_deref())?;
    let order = renew_certificate(&state, &user.actor, id, challenge).await?;
    Ok((StatusCode::ACCEPTED, Json(OrderView::from(&order))))
}

/// Requests an order for `id`'s names that replaces it.
pub(crate) async fn renew_certificate(
    state: &AppState,
    actor: &str,
    id: i64,
    challenge: Challenge,
) -> Result<AcmeOrder, WebError> {
    let cert = state
        .store
        .certificate(id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("certificate {id} does not exist")))?;
    let names = parse_names(&cert.names)?;
    require_acme(state)?;
    Ok(state.store.request_acme_order(actor, &names, challenge, Some(id)).await?)
}
