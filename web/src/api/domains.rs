//! `/domains`: the domains Postern accepts mail for.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postern_store::model::{Domain, DomainKind, DomainName};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath, ApiQuery, ListParams};
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(show, remove))
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Mail is delivered to this domain's mailboxes.
    Local,
    /// Mail is accepted and passed on by the domain's transport.
    Relay,
}

impl From<DomainKind> for Kind {
    fn from(k: DomainKind) -> Kind {
        match k {
            DomainKind::Local => Kind::Local,
            DomainKind::Relay => Kind::Relay,
        }
    }
}

impl From<Kind> for DomainKind {
    fn from(k: Kind) -> DomainKind {
        match k {
            Kind::Local => DomainKind::Local,
            Kind::Relay => DomainKind::Relay,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DomainView {
    pub name: String,
    pub kind: Kind,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}

impl From<Domain> for DomainView {
    fn from(d: Domain) -> DomainView {
        DomainView { name: d.name.to_string(), kind: d.kind.into(), created_at: d.created_at }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DomainList {
    pub items: Vec<DomainView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    /// A domain name (IDNs are stored in their ASCII form).
    pub name: String,
    /// `local` (default) or `relay`.
    #[serde(default)]
    pub kind: Option<Kind>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RemoveParams {
    /// Also remove the domain's mailboxes and aliases (their Maildirs stay on disk).
    #[serde(default)]
    pub cascade: bool,
}

fn parse_name(name: &str) -> Result<DomainName, WebError> {
    name.parse().map_err(WebError::from)
}

/// List the domains the caller manages.
#[utoipa::path(get, path = "/domains", params(ListParams, ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer: 304 if it is still current")),
    tag = "domains",
    responses((status = 200, body = DomainList, headers(("ETag" = String, description = "Names this answer, for If-None-Match"))), (status = 304, description = "Not modified: the If-None-Match ETag is current"), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<DomainList>, WebError> {
    let domains: Vec<Domain> =
        state.store.list_domains().await?.into_iter().filter(|d| user.sees(&d.name)).collect();
    let (page, next) = params.page(domains, |d| d.name.to_string())?;
    Ok(Json(DomainList { items: page.into_iter().map(Into::into).collect(), next }))
}

/// Add a domain (admins only).
#[utoipa::path(post, path = "/domains", request_body = NewDomain, tag = "domains",
    responses((status = 201, body = DomainView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(new): ApiJson<NewDomain>,
) -> Result<(StatusCode, Json<DomainView>), WebError> {
    user.require_write()?;
    user.require_global()?;
    let name = parse_name(&new.name)?;
    let kind = new.kind.unwrap_or(Kind::Local).into();
    let domain = state.store.add_domain(&user.actor, &name, kind).await?;
    Ok((StatusCode::CREATED, Json(domain.into())))
}

/// One domain.
#[utoipa::path(get, path = "/domains/{name}", tag = "domains",
    params(("name" = String, Path, description = "The domain name"), ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer: 304 if it is still current")),
    responses((status = 200, body = DomainView, headers(("ETag" = String, description = "Names this answer, for If-None-Match"))), (status = 304, description = "Not modified: the If-None-Match ETag is current"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<DomainView>, WebError> {
    let name = parse_name(&name)?;
    user.require_domain(&name)?;
    match state.store.get_domain(&name).await? {
        Some(domain) => Ok(Json(domain.into())),
        None => Err(WebError::NotFound(format!("domain {name} does not exist"))),
    }
}

/// Remove a domain (admins only). One with mailboxes or aliases needs `cascade=true`.
#[utoipa::path(delete, path = "/domains/{name}", tag = "domains",
    params(("name" = String, Path, description = "The domain name"), RemoveParams),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<RemoveParams>,
) -> Result<StatusCode, WebError> {
    user.require_write()?;
    user.require_global()?;
    let name = parse_name(&name)?;
    state.store.remove_domain(&user.actor, &name, params.cascade).await?;
    Ok(StatusCode::NO_CONTENT)
}
