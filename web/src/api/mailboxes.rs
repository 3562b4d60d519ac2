//! `/mailboxes`: addresses that store mail and can sign in. A password goes in, never out.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postern_store::MailboxFilter;
use postern_store::model::{
    Address, DomainName, Mailbox, MailboxUpdate, NewMailbox, parse_send_as,
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath, ApiQuery, ListParams};
use crate::auth::Principal;
use crate::auth::login;
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(show, update, remove))
}

/// A mailbox. Its password hash is never part of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MailboxView {
    pub address: String,
    pub display_name: String,
    /// A disabled mailbox refuses mail and sign-ins.
    pub enabled: bool,
    /// The size limit in bytes; absent or null for none.
    pub quota_bytes: Option<u64>,
    /// Addresses (or `@domain` for a whole domain) it may send as beyond its own and the aliases
    /// that deliver to it, in MAIL FROM and in the From: and Sender: headers.
    pub send_as: Vec<String>,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Mailbox> for MailboxView {
    fn from(m: Mailbox) -> MailboxView {
        MailboxView {
            address: m.address.to_string(),
            display_name: m.display_name,
            enabled: m.enabled,
            quota_bytes: m.quota_bytes,
            send_as: m.send_as.iter().map(ToString::to_string).collect(),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MailboxList {
    pub items: Vec<MailboxView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MailboxQuery {
    /// Only the mailboxes of this domain.
    pub domain: Option<String>,
    /// A substring of the address or the display name, case-insensitive.
    pub q: Option<String>,
}

// No `Debug`: it holds a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMailboxBody {
    /// `local@domain`, in a local domain the caller manages.
    pub address: String,
    /// At least 8 characters. Stored as an argon2id hash; never returned.
    pub password: String,
    #[serde(default)]
    pub display_name: String,
    /// Bytes; absent or null for no limit.
    #[serde(default)]
    pub quota_bytes: Option<u64>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A partial change: absent fields stay as they are. (No `Debug`: it may hold a password.)
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailboxChange {
    pub display_name: Option<String>,
    pub enabled: Option<bool>,
    /// Bytes; `null` removes the limit, absent leaves it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub quota_bytes: Option<Option<u64>>,
    /// A new password (at least 8 characters).
    pub password: Option<String>,
    /// Replaces the send-as list: addresses, or `@domain` for a whole domain; a domain-admin
    /// may name only its own domains.
    pub send_as: Option<Vec<String>>,
}

/// Tells a field sent as `null` (`Some(None)`) from one not sent at all (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The domains a list covers: the one asked for (if the caller manages it), else the caller's.
fn scope(user: &Principal, domain: Option<&str>) -> Result<Option<Vec<DomainName>>, WebError> {
    match domain.map(str::trim).filter(|d| !d.is_empty()) {
        None => Ok(user.domains.clone()),
        Some(domain) => {
            let domain: DomainName = domain.parse()?;
            user.require_domain(&domain)?;
            Ok(Some(vec![domain]))
        }
    }
}

/// The mailbox at `address`, if the caller manages its domain.
async fn find(state: &AppState, user: &Principal, address: &str) -> Result<Mailbox, WebError> {
    let address: Address = address.parse()?;
    user.require_domain(address.domain())?;
    state
        .store
        .get_mailbox(&address)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("mailbox {address} does not exist")))
}

/// List the mailboxes the caller manages, by address, paginated in the database.
#[utoipa::path(get, path = "/mailboxes", params(ListParams, MailboxQuery, ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer: 304 if it is still current")),
    tag = "mailboxes",
    responses((status = 200, body = MailboxList, headers(("ETag" = String, description = "Names this answer, for If-None-Match"))), (status = 304, description = "Not modified: the If-None-Match ETag is current"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiQuery(params): ApiQuery<ListParams>,
    ApiQuery(query): ApiQuery<MailboxQuery>,
) -> Result<Json<MailboxList>, WebError> {
    let limit = params.limit()?;
    let filter = MailboxFilter { domains: scope(&user, query.domain.as_deref())?, search: query.q };
    let mut found =
        state.store.page_mailboxes(&filter, params.after.as_deref(), limit as u32 + 1).await?;
    let next = (found.len() > limit).then(|| found[limit - 1].address.to_string());
    found.truncate(limit);
    Ok(Json(MailboxList { items: found.into_iter().map(Into::into).collect(), next }))
}

/// Add a mailbox.
#[utoipa::path(post, path = "/mailboxes", request_body = NewMailboxBody, tag = "mailboxes",
    responses((status = 201, body = MailboxView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(new): ApiJson<NewMailboxBody>,
) -> Result<(StatusCode, Json<MailboxView>), WebError> {
    user.require_write()?;
    let address: Address = new.address.parse()?;
    user.require_domain(address.domain())?;
    // Refuse a taken address or a relay domain before paying for a password hash.
    state.store.check_new_mailbox(&address).await?;
    let password_hash = login::hash(&state, &address.to_string(), &new.password).await?;
    let new = NewMailbox {
        address,
        display_name: new.display_name.trim().to_string(),
        enabled: new.enabled.unwrap_or(true),
        quota_bytes: new.quota_bytes,
        password_hash,
    };
    let mailbox = state.store.add_mailbox(&user.actor, new).await?;
    Ok((StatusCode::CREATED, Json(mailbox.into())))
}

/// One mailbox.
#[utoipa::path(get, path = "/mailboxes/{address}", tag = "mailboxes",
    params(("address" = String, Path, description = "The mailbox address"), ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer: 304 if it is still current")),
    responses((status = 200, body = MailboxView, headers(("ETag" = String, description = "Names this answer, for If-None-Match"))), (status = 304, description = "Not modified: the If-None-Match ETag is current"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(address): ApiPath<String>,
) -> Result<Json<MailboxView>, WebError> {
    Ok(Json(find(&state, &user, &address).await?.into()))
}

/// Change a mailbox: display name, quota, enabled, password, send-as list.
#[utoipa::path(patch, path = "/mailboxes/{address}", request_body = MailboxChange,
    tag = "mailboxes", params(("address" = String, Path, description = "The mailbox address")),
    responses((status = 200, body = MailboxView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(address): ApiPath<String>,
    ApiJson(change): ApiJson<MailboxChange>,
) -> Result<Json<MailboxView>, WebError> {
    user.require_write()?;
    let mailbox = find(&state, &user, &address).await?;
    let send_as = match change.send_as {
        Some(list) => {
            let list = parse_send_as(&list.join(" "))?;
            user.require_send_as(&list)?;
            Some(list)
        }
        None => None,
    };
    let password_hash = match change.password {
        Some(password) => Some(login::hash(&state, &mailbox.address.to_string(), &password).await?),
        None => None,
    };
    let update = MailboxUpdate {
        display_name: change.display_name.map(|n| n.trim().to_string()),
        enabled: change.enabled,
        quota_bytes: change.quota_bytes,
        password_hash,
        send_as,
    };
    let mailbox = state.store.update_mailbox(&user.actor, &mailbox.address, update).await?;
    Ok(Json(mailbox.into()))
}

/// Remove a mailbox (its Maildir stays on disk). Refused (409) when an alias would then loop.
#[utoipa::path(delete, path = "/mailboxes/{address}", tag = "mailboxes",
    params(("address" = String, Path, description = "The mailbox address")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(address): ApiPath<String>,
) -> Result<StatusCode, WebError> {
    user.require_write()?;
    let mailbox = find(&state, &user, &address).await?;
    state.store.remove_mailbox(&user.actor, &mailbox.address).await?;
    Ok(StatusCode::NO_CONTENT)
}
