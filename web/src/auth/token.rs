//! The API's credential: `Authorization: Bearer pst_…`.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Principal;
use crate::error::WebError;
use crate::state::AppState;

/// The principal of an API request.
#[derive(Debug, Clone)]
pub struct ApiUser(pub Principal);

/// API paths that only an admin with every domain may use, whatever the method: refused here,
/// before any input is read, so that no handler can forget.
const GLOBAL_ONLY: &[&str] =
    &["/transports", "/networks", "/admins", "/audit", "/policy", "/certificates"];
/// The same for the header/body checks and the policy services.
const GLOBAL_ONLY_CHECKS: &[&str] = &["/content-checks", "/policy-services"];

/// Authenticates every API request, refuses writes by read-only tokens and global paths to
/// narrower principals, and hands the principal to the handler.
pub async fn authorize(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let user = match authenticate(&state, request.headers()).await {
        Ok(user) => user,
        Err(e) => return e.into_response(),
    };
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if !reads && let Err(e) = user.0.require_write() {
        return e.into_response();
    }
    let path = request.uri().path();
    let global = GLOBAL_ONLY.iter().any(|p| path == *p || path.starts_with(&format!("{p}/")));
    let global = global
        || GLOBAL_ONLY_CHECKS.iter().any(|p| path == *p || path.starts_with(&format!("{p}/")));
    if global && let Err(e) = user.0.require_global() {
        return e.into_response();
    }
    request.extensions_mut().insert(user);
    next.run(request).await
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<ApiUser, WebError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or(WebError::Unauthenticated)?;
    match state.store.authenticate_token(bearer).await? {
        Some((token, owner)) => Ok(ApiUser(Principal::from_token(&token, &owner))),
        None => Err(WebError::Unauthenticated),
    }
}

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        match parts.extensions.get::<ApiUser>() {
            Some(user) => Ok(user.clone()),
            None => authenticate(state, &parts.headers).await,
        }
    }
}
