//! `/dnsbl`: the DNS blocklists (DNSBLs for client addresses, RHSBLs for the sender's domain and
//! the HELO name), the score at which a client is refused, the whitelist, and a live test.
//! Global administrators only: the lists apply to every domain.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postern_store::model::{Blocklist, Dnsbl, ListKind, NewBlocklist, ReturnCodes, WhitelistEntry};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath, ApiQuery};
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::screening::{DnsblTest, test_dnsbl};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show))
        .routes(routes!(add_list))
        .routes(routes!(remove_list))
        .routes(routes!(set_threshold))
        .routes(routes!(add_whitelist, remove_whitelist))
        .routes(routes!(test))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListView {
    pub zone: String,
    /// `ip` (a DNSBL: the client's address) or `domain` (an RHSBL: the sender's domain and the
    /// HELO name).
    pub kind: String,
    /// Added to the score when the list lists something (negative for an allow-list).
    pub weight: i64,
    /// Which answers count: `127.0.0.2`, ranges `127.0.0.10-127.0.0.11`, bitmasks `&0.0.0.4`;
    /// empty for any answer in 127.0.0.0/8 but 127.255.255.0/24.
    pub codes: String,
    pub description: String,
    pub created_at: i64,
}

impl From<&Blocklist> for ListView {
    fn from(l: &Blocklist) -> ListView {
        ListView {
            zone: l.zone.to_string(),
            kind: l.kind.to_string(),
            weight: l.weight,
            codes: l.codes.to_string(),
            description: l.description.clone(),
            created_at: l.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DnsblView {
    /// A client whose score reaches this is refused at RCPT with `554 5.7.1`.
    pub threshold: i64,
    pub lists: Vec<ListView>,
    /// Networks and sender domains that are never checked.
    pub whitelist: Vec<String>,
}

fn view(d: &Dnsbl) -> DnsblView {
    DnsblView {
        threshold: d.threshold,
        lists: d.lists.iter().map(ListView::from).collect(),
        whitelist: d.whitelist.iter().map(ToString::to_string).collect(),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewList {
    pub zone: String,
    /// `ip` or `domain`.
    pub kind: String,
    /// 1 when left out.
    #[serde(default)]
    pub weight: Option<i64>,
    /// Empty or left out: any listing counts.
    #[serde(default)]
    pub codes: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// Parses a new list's fields, for the API and the console alike.
pub(crate) fn new_list(
    zone: &str,
    kind: &str,
    weight: Option<i64>,
    codes: &str,
    description: &str,
) -> Result<NewBlocklist, WebError> {
    Ok(NewBlocklist {
        zone: zone.trim().trim_end_matches('.').parse().map_err(WebError::from)?,
        kind: kind.parse::<ListKind>().map_err(WebError::from)?,
        weight: weight.unwrap_or(1),
        codes: codes.parse::<ReturnCodes>().map_err(WebError::from)?,
        description: description.to_string(),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub threshold: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWhitelistEntry {
    /// A network (`192.0.2.0/24`, `2001:db8::/32`, an address) or a sender domain.
    pub entry: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WhitelistQuery {
    /// The entry to remove, as listed.
    pub entry: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// An IP address (asked of the `ip` lists) or a domain (asked of the `domain` lists).
    pub subject: String,
}

/// The lists, the threshold and the whitelist.
#[utoipa::path(get, path = "/dnsbl", tag = "dnsbl",
    responses((status = 200, body = DnsblView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Json<DnsblView>, WebError> {
    user.require_global()?;
    Ok(Json(view(&state.store.dnsbl().await?)))
}

/// Add a list; it is asked from the next RCPT on.
#[utoipa::path(post, path = "/dnsbl/lists", tag = "dnsbl", request_body = NewList,
    responses((status = 201, body = ListView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn add_list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(body): ApiJson<NewList>,
) -> Result<(StatusCode, Json<ListView>), WebError> {
    user.require_write()?;
    user.require_global()?;
    let new = new_list(
        &body.zone,
        &body.kind,
        body.weight,
        body.codes.as_deref().unwrap_or(""),
        body.description.as_deref().unwrap_or(""),
    )?;
    let list = state.store.add_blocklist(&user.actor, new).await?;
    Ok((StatusCode::CREATED, Json(ListView::from(&list))))
}

/// Remove a list.
#[utoipa::path(delete, path = "/dnsbl/lists/{zone}", tag = "dnsbl",
    params(("zone" = String, Path, description = "The list's zone")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remove_list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(zone): ApiPath<String>,
) -> Result<StatusCode, WebError> {
    user.require_write()?;
    user.require_global()?;
    state.store.remove_blocklist(&user.actor, &zone).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set the score at which a client is refused.
#[utoipa::path(put, path = "/dnsbl/threshold", tag = "dnsbl", request_body = Threshold,
    responses((status = 200, body = DnsblView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_threshold(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(body): ApiJson<Threshold>,
) -> Result<Json<DnsblView>, WebError> {
    user.require_write()?;
    user.require_global()?;
    state.store.set_dnsbl_threshold(&user.actor, body.threshold).await?;
    Ok(Json(view(&state.store.dnsbl().await?)))
}

/// Add a network or a sender domain that is never checked.
#[utoipa::path(post, path = "/dnsbl/whitelist", tag = "dnsbl", request_body = NewWhitelistEntry,
    responses((status = 201, body = DnsblView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn add_whitelist(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(body): ApiJson<NewWhitelistEntry>,
) -> Result<(StatusCode, Json<DnsblView>), WebError> {
    user.require_write()?;
    user.require_global()?;
    let entry: WhitelistEntry = body.entry.parse().map_err(WebError::from)?;
    state.store.add_dnsbl_whitelist(&user.actor, &entry).await?;
    Ok((StatusCode::CREATED, Json(view(&state.store.dnsbl().await?))))
}

/// Remove a whitelist entry.
#[utoipa::path(delete, path = "/dnsbl/whitelist", tag = "dnsbl", params(WhitelistQuery),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remove_whitelist(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiQuery(query): ApiQuery<WhitelistQuery>,
) -> Result<StatusCode, WebError> {
    user.require_write()?;
    user.require_global()?;
    let entry: WhitelistEntry = query.entry.parse().map_err(WebError::from)?;
    state.store.remove_dnsbl_whitelist(&user.actor, &entry).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ask every list about an address or a domain now, through the engine's resolver: which
/// lists list it, the score, and what a client would be told at RCPT.
#[utoipa::path(post, path = "/dnsbl/test", tag = "dnsbl", request_body = TestRequest,
    responses((status = 200, body = DnsblTest), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn test(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(body): ApiJson<TestRequest>,
) -> Result<Json<DnsblTest>, WebError> {
    user.require_global()?;
    Ok(Json(test_dnsbl(&state, &body.subject).await?))
}
