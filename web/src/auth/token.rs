//! The API's credential: `Authorization: Bearer pst_…`.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::Principal;
use crate::error::WebError;
use crate::state::AppState;

/// The principal of an API request.
#[derive(Debug, Clone)]
pub struct ApiUser(pub Principal);

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let bearer = parts
            .headers
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
}
