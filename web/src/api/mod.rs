//! The REST API under `/api/v1`: JSON in and out, bearer tokens, one module per resource, and an
//! OpenAPI 3.1 document generated from the handlers themselves (`/api/v1/openapi.json`).

mod admins;
mod aliases;
pub(crate) mod audit;
mod backups;
pub(crate) mod certificates;
pub(crate) mod content_checks;
pub(crate) mod directories;
mod dkim;
mod dns_health;
pub(crate) mod dnsbl;
mod domains;
mod greylisting;
pub(crate) mod log;
mod mail_auth;
mod mailboxes;
pub(crate) mod milters;
mod mta_sts;
mod networks;
mod nodes;
pub(crate) mod policy;
pub(crate) mod policy_services;
mod queue;
mod rate_limits;
pub(crate) mod response_cache;
mod tokens;
mod traffic;
pub(crate) mod transports;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::error::{ErrorBody, WebError};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Postern API", version = "1", description = "Manage a Postern mail appliance: \
        everything the console does. Authenticate with `Authorization: Bearer <token>`; create \
        tokens in the console, with `postern token create`, or with POST /tokens."),
    servers((url = "/api/v1")),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API's routes and its OpenAPI document.
pub fn openapi_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(domains::router())
        .merge(mailboxes::router())
        .merge(aliases::router())
        .merge(networks::router())
        .merge(nodes::router())
        .merge(transports::router())
        .merge(queue::router())
        .merge(log::router())
        .merge(audit::router())
        .merge(tokens::router())
        .merge(admins::router())
        .merge(policy::router())
        .merge(milters::router())
        .merge(certificates::router())
        .merge(mta_sts::router())
        .merge(dkim::router())
        .merge(dns_health::router())
        .merge(mail_auth::router())
        .merge(rate_limits::router())
        .merge(dnsbl::router())
        .merge(greylisting::router())
        .merge(backups::router())
        .merge(content_checks::router())
        .merge(policy_services::router())
        .merge(directories::router())
        .merge(traffic::router())
}

/// The document as served, for tests and tools.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = openapi_router().split_for_parts().1;
    utoipa::Modify::modify(&crate::auth::token::TooManyWrongTokens, &mut doc);
    doc
}

pub fn router(state: &AppState) -> Router<AppState> {
    let (router, mut doc) = openapi_router().split_for_parts();
    utoipa::Modify::modify(&crate::auth::token::TooManyWrongTokens, &mut doc);
    let doc = Arc::new(doc);
    router
        .fallback(|| async { WebError::NotFound("no such API endpoint".into()) })
        // Inside `authorize`: it answers only requests already authorised, keyed by their scope.
        .layer(axum::middleware::from_fn_with_state(state.clone(), response_cache::serve))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::auth::token::authorize))
        // The document is public: a client needs it before it has a token.
        .route("/openapi.json", get(move || std::future::ready(Json(doc.as_ref().clone()))))
}

/// `Json` whose rejections are our JSON errors, and whose body must be a JSON object: serde
/// reads a struct from an array too, field by field, so `[null, null]` would otherwise pass as a
/// body whose fields are all left out.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &S) -> Result<Self, WebError> {
        let json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .is_some_and(|m| {
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !json {
            return Err(WebError::Invalid {
                field: None,
                message: "Expected request with `Content-Type: application/json`".into(),
            });
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| WebError::Invalid { field: None, message: e.body_text() })?;
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(WebError::Invalid {
                field: None,
                message: "the request body must be a JSON object".into(),
            });
        }
        let Json(value) = Json::<T>::from_bytes(&bytes)?;
        Ok(ApiJson(value))
    }
}

/// `Query` whose rejections are our JSON errors.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(WebError))]
pub struct ApiQuery<T>(pub T);

/// `Path` whose rejections are our JSON errors.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(WebError))]
pub struct ApiPath<T>(pub T);

/// Keyset pagination of a list: at most `limit` items after the key `after`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next` value of the previous page.
    pub after: Option<String>,
}

impl ListParams {
    pub fn limit(&self) -> Result<usize, WebError> {
        match self.limit {
            None => Ok(100),
            Some(n @ 1..=1000) => Ok(n as usize),
            Some(_) => Err(WebError::invalid("limit", "limit must be between 1 and 1000")),
        }
    }

    /// One page of `items` (sorted by `key`), and the key to ask for the next.
    pub fn page<T>(
        &self,
        items: Vec<T>,
        key: impl Fn(&T) -> String,
    ) -> Result<(Vec<T>, Option<String>), WebError> {
        let limit = self.limit()?;
        let mut rest: Vec<T> = match &self.after {
            Some(after) => items.into_iter().filter(|i| key(i).as_str() > after.as_str()).collect(),
            None => items,
        };
        let next = (rest.len() > limit).then(|| key(&rest[limit - 1]));
        rest.truncate(limit);
        Ok((rest, next))
    }
}
