//! `/tokens`: API tokens. The secret is in the reply to the POST that creates it, and nowhere
//! else, ever; a token never creates one wider than itself (see `auth::issue`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postern_store::model::{Access, ApiToken};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath, ApiQuery, ListParams};
use crate::auth::issue::{self, TokenRequest};
use crate::auth::manage;
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(show, revoke))
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Only reads.
    Read,
    /// Reads and changes.
    Write,
}

impl From<Access> for Scope {
    fn from(a: Access) -> Scope {
        match a {
            Access::Read => Scope::Read,
            Access::Write => Scope::Write,
        }
    }
}

impl From<Scope> for Access {
    fn from(s: Scope) -> Access {
        match s {
            Scope::Read => Access::Read,
            Scope::Write => Access::Write,
        }
    }
}

/// A token as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// The public half of the token.
    pub id: String,
    pub name: String,
    /// The administrator it acts as.
    pub owner: String,
    pub access: Scope,
    /// The domains it is limited to; empty for all of its owner's.
    pub domains: Vec<String>,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> TokenView {
        TokenView {
            id: t.id,
            name: t.name,
            owner: t.owner.to_string(),
            access: t.access.into(),
            domains: t.domains.iter().map(ToString::to_string).collect(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
        }
    }
}

/// A token just created, with its secret: shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub view: TokenView,
    /// What goes in `Authorization: Bearer`: shown in this reply only, never again.
    #[serde(rename = "token")]
    pub bearer: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<TokenView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for, 1 to 100 characters.
    pub name: String,
    /// `read` or `write`; default: the caller's own, and never more.
    #[serde(default)]
    pub access: Option<Scope>,
    /// Limit it to these domains, among the caller's; default: the caller's.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Days until it stops working; default: never, or when the caller's token expires.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<u32>,
}

/// List tokens: all of them for an admin over every domain, one's own for anyone else, and
/// only those no wider than the calling token (access, domains, expiry).
#[utoipa::path(get, path = "/tokens", params(ListParams), tag = "tokens",
    responses((status = 200, body = TokenList), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<TokenList>, WebError> {
    let mut tokens = manage::visible(&state, &user).await?;
    tokens.sort_by(|a, b| a.id.cmp(&b.id));
    let (page, next) = params.page(tokens, |t| t.id.clone())?;
    Ok(Json(TokenList { items: page.into_iter().map(Into::into).collect(), next }))
}

/// Create a token acting as the caller, never wider than the caller: no more access, no other
/// domains, no later expiry. A read-only token cannot create tokens. The reply holds the secret
/// (`token`), which is never shown again.
#[utoipa::path(post, path = "/tokens", request_body = NewToken, tag = "tokens",
    responses((status = 201, body = CreatedToken), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(new): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), WebError> {
    let request = TokenRequest {
        name: new.name,
        access: new.access.map(Into::into),
        domains: super::admins::parse_domains(&new.domains)?,
        expires_in_days: new.expires_in_days,
    };
    let issued = issue::issue(&state, &user, request).await?;
    let created = CreatedToken { view: issued.token.into(), bearer: issued.bearer };
    Ok((StatusCode::CREATED, Json(created)))
}

/// One token (never its secret).
#[utoipa::path(get, path = "/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "The token's public ID")),
    responses((status = 200, body = TokenView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TokenView>, WebError> {
    Ok(Json(manage::find(&state, &user, &id).await?.into()))
}

/// Revoke a token no wider than the calling one: it stops working at once.
#[utoipa::path(delete, path = "/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "The token's public ID")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn revoke(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, WebError> {
    user.require_write()?;
    let token = manage::find(&state, &user, &id).await?;
    state.store.revoke_token(&user.actor, &token.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
