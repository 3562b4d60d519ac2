//! `/admins`: console administrators, for admins over every domain only. Password hashes never
//! leave the store; a generated one-time password is in the reply that made it, once.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postern_store::model::{Admin, AdminName, DomainName, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath, ApiQuery, ListParams};
use crate::auth::Principal;
use crate::auth::accounts::{self, NewAdmin};
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(reset_password))
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RoleView {
    /// Everything, everywhere.
    Admin,
    /// Only the granted domains, their mailboxes, aliases and queue entries.
    DomainAdmin,
}

impl From<Role> for RoleView {
    fn from(r: Role) -> RoleView {
        match r {
            Role::Admin => RoleView::Admin,
            Role::DomainAdmin => RoleView::DomainAdmin,
        }
    }
}

impl From<RoleView> for Role {
    fn from(r: RoleView) -> Role {
        match r {
            RoleView::Admin => Role::Admin,
            RoleView::DomainAdmin => Role::DomainAdmin,
        }
    }
}

/// An administrator: never the password hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminView {
    pub name: String,
    pub role: RoleView,
    /// The domains a domain-admin manages; empty for an admin.
    pub domains: Vec<String>,
    /// A new password is asked for at the next login.
    pub must_change_password: bool,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}

impl From<Admin> for AdminView {
    fn from(a: Admin) -> AdminView {
        AdminView {
            name: a.name.to_string(),
            role: a.role.into(),
            domains: a.domains.iter().map(ToString::to_string).collect(),
            must_change_password: a.must_change_password,
            created_at: a.created_at,
        }
    }
}

/// An administrator just created.
#[derive(Serialize, ToSchema)]
pub struct CreatedAdmin {
    #[serde(flatten)]
    pub admin: AdminView,
    /// The one-time password, when none was given: shown in this reply only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// A one-time password just set.
#[derive(Serialize, ToSchema)]
pub struct OneTimePassword {
    /// Shown in this reply only; a new one is asked for at the first login.
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdminList {
    pub items: Vec<AdminView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

// No `Debug`: it may carry a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdminBody {
    /// 1 to 64 of `a-z 0-9 . _ -`.
    pub name: String,
    /// `admin` (default) or `domain-admin`.
    #[serde(default)]
    pub role: Option<RoleView>,
    /// The domains of a domain-admin (at least one); none for an admin.
    #[serde(default)]
    pub domains: Vec<String>,
    /// At least 8 characters. Without it, a one-time password is generated and returned.
    #[serde(default)]
    pub password: Option<String>,
    /// With a given password: ask for a new one at the first login (default false). A
    /// generated password must always be changed.
    #[serde(default)]
    pub must_change_password: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminChange {
    pub role: RoleView,
    /// The domains of a domain-admin (at least one); none for an admin.
    #[serde(default)]
    pub domains: Vec<String>,
}

pub(crate) fn parse_domains(domains: &[String]) -> Result<Vec<DomainName>, WebError> {
    let mut parsed = domains
        .iter()
        .map(|d| d.parse::<DomainName>().map_err(|e| WebError::invalid("domains", e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    parsed.sort();
    parsed.dedup();
    Ok(parsed)
}

fn parse_name(name: &str) -> Result<AdminName, WebError> {
    name.parse().map_err(WebError::from)
}

fn global(user: &Principal) -> Result<(), WebError> {
    user.require_global()
}

/// List administrators.
#[utoipa::path(get, path = "/admins", params(ListParams), tag = "admins",
    responses((status = 200, body = AdminList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<AdminList>, WebError> {
    global(&user)?;
    let admins = state.store.list_admins().await?;
    let (page, next) = params.page(admins, |a| a.name.to_string())?;
    Ok(Json(AdminList { items: page.into_iter().map(Into::into).collect(), next }))
}

/// Add an administrator. Without a `password`, a one-time one is generated and returned once.
#[utoipa::path(post, path = "/admins", request_body = NewAdminBody, tag = "admins",
    responses((status = 201, body = CreatedAdmin), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(body): ApiJson<NewAdminBody>,
) -> Result<(StatusCode, Json<CreatedAdmin>), WebError> {
    global(&user)?;
    let new = NewAdmin {
        name: body.name,
        role: body.role.map_or(Role::Admin, Into::into),
        domains: parse_domains(&body.domains)?,
        password: body.password,
        must_change_password: body.must_change_password,
    };
    let (admin, password) = accounts::create(&state, &user, new).await?;
    Ok((StatusCode::CREATED, Json(CreatedAdmin { admin: admin.into(), password })))
}

/// One administrator.
#[utoipa::path(get, path = "/admins/{name}", tag = "admins",
    params(("name" = String, Path, description = "The administrator's name")),
    responses((status = 200, body = AdminView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<AdminView>, WebError> {
    global(&user)?;
    let name = parse_name(&name)?;
    match state.store.get_admin(&name).await? {
        Some(admin) => Ok(Json(admin.into())),
        None => Err(WebError::NotFound(format!("administrator {name} does not exist"))),
    }
}

/// Change an administrator's role and domains. The last admin cannot be demoted.
#[utoipa::path(patch, path = "/admins/{name}", request_body = AdminChange, tag = "admins",
    params(("name" = String, Path, description = "The administrator's name")),
    responses((status = 200, body = AdminView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
    ApiJson(change): ApiJson<AdminChange>,
) -> Result<Json<AdminView>, WebError> {
    global(&user)?;
    user.require_write()?;
    let name = parse_name(&name)?;
    let domains = parse_domains(&change.domains)?;
    let admin = state.store.update_admin(&user.actor, &name, change.role.into(), &domains).await?;
    Ok(Json(admin.into()))
}

/// Remove an administrator with their sessions and tokens. The last admin cannot be removed.
#[utoipa::path(delete, path = "/admins/{name}", tag = "admins",
    params(("name" = String, Path, description = "The administrator's name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, WebError> {
    global(&user)?;
    user.require_write()?;
    let name = parse_name(&name)?;
    state.store.remove_admin(&user.actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Give an administrator a new one-time password, returned once; their sessions end.
#[utoipa::path(post, path = "/admins/{name}/password", tag = "admins",
    params(("name" = String, Path, description = "The administrator's name")),
    responses((status = 200, body = OneTimePassword), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn reset_password(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<OneTimePassword>, WebError> {
    global(&user)?;
    let name = parse_name(&name)?;
    let password = accounts::reset_password(&state, &user, &name).await?;
    Ok(Json(OneTimePassword { password }))
}
