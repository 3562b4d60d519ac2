//! The API's credential: `Authorization: Bearer pst_…`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Principal;
use super::token_cache::TokenCache;
use crate::error::WebError;
use crate::state::AppState;

/// The principal of an API request.
#[derive(Debug, Clone)]
pub struct ApiUser(pub Principal);

/// API paths that only an admin with every domain may use, whatever the method: refused here,
/// before any input is read, so that no handler can forget.
const GLOBAL_ONLY: &[&str] = &[
    "/rate-limits",
    "/transports",
    "/networks",
    "/admins",
    "/audit",
    "/policy",
    "/certificates",
    "/dnsbl",
    "/greylisting",
    "/milters",
    "/content-checks",
    "/policy-services",
];

/// Authenticates every API request, refuses writes by read-only tokens and global paths to
/// narrower principals, and hands the principal to the handler.
pub async fn authorize(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let user = match authenticate(&state, request.headers(), request.extensions()).await {
        Ok(user) => user,
        Err(e) => return e.into_response(),
    };
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if !reads && let Err(e) = user.0.require_write() {
        return e.into_response();
    }
    let path = request.uri().path();
    let global = GLOBAL_ONLY
        .iter()
        .any(|p| path.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')));
    if global && let Err(e) = user.0.require_global() {
        return e.into_response();
    }
    request.extensions_mut().insert(user);
    next.run(request).await
}

/// Wrong tokens are counted by the console's login limiter (`postern_store::auth`), per token
/// ID and client address and per address: past the allowance a wrong token gets `429` with
/// `Retry-After` instead of `401`. Only failures count and a good token always gets in, so
/// neither its own parallel requests nor someone else's wrong guesses slow its holder.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    ext: &Extensions,
) -> Result<ApiUser, WebError> {
    // The console's server loop (`conn/`) always says who is asking; an in-process caller
    // (tests) has no address and is not counted.
    let ip = ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or(WebError::Unauthenticated)?;
    // The token's ID (public) names the account; the secret is never a key. A bearer that is
    // not shaped like any token we issue guesses at none: refused at once, nothing looked up,
    // nothing counted (scanners and fuzzers send such junk by the hundred).
    let Some((id, _)) = bearer.strip_prefix("pst_").and_then(|t| t.split_once('_')) else {
        tracing::info!(?ip, "malformed API token");
        return Err(WebError::Unauthenticated);
    };
    // A token that was good a moment ago, at the same configuration revision, is good now
    // (see `token_cache`): no store read for it.
    let key = TokenCache::key(bearer);
    let now = postern_store::now();
    if let Some(principal) = state.tokens.get(&key, now) {
        return Ok(ApiUser(principal));
    }
    let revision = state.tokens.revision();
    match state.store.authenticate_token(bearer).await? {
        Some((token, owner)) => {
            let principal = Principal::from_token(&token, &owner);
            state.tokens.insert(key, principal.clone(), revision, now);
            Ok(ApiUser(principal))
        }
        None => {
            tracing::info!(?ip, "wrong API token");
            let Some(ip) = ip else { return Err(WebError::Unauthenticated) };
            let account = format!("api-token:{id}");
            let attempts = &state.passwords.attempts;
            // Checked after the lookup, so that nobody can lock a token's holder out by
            // sending wrong secrets for its (public) ID; guessing a secret of 256 random bits
            // is hopeless anyway, and a client that keeps trying is told to wait.
            let now = state.passwords.instant();
            let wait = attempts.waiting(&account, ip, now);
            attempts.record_failure(&account, ip, now);
            match wait {
                Some(wait) => {
                    tracing::warn!(%ip, limit = "api-token failures", retry_after = wait.seconds(), "too many wrong API tokens");
                    Err(WebError::TooMany(wait.seconds()))
                }
                None => Err(WebError::Unauthenticated),
            }
        }
    }
}

/// Adds the `429` of [`authenticate`] to every operation of the OpenAPI document: any request
/// with a token can get it.
pub struct TooManyWrongTokens;

impl utoipa::Modify for TooManyWrongTokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, ResponseBuilder, schema::Type};
        let response = ResponseBuilder::new()
            .description(
                "Too many wrong tokens from this address: try again after Retry-After seconds",
            )
            .header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(Some(utoipa::openapi::ObjectBuilder::new().schema_type(Type::Integer)))
                    .description(Some("Seconds to wait"))
                    .build(),
            )
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ]
            .into_iter()
            .flatten()
            {
                op.responses
                    .responses
                    .entry("429".into())
                    .or_insert_with(|| response.clone().into());
            }
        }
    }
}

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        match parts.extensions.get::<ApiUser>() {
            Some(user) => Ok(user.clone()),
            None => authenticate(state, &parts.headers, &parts.extensions).await,
        }
    }
}
