//! `GET /metrics`: the Prometheus scrape, on the console's listeners and on `[metrics] listen`.
//!
//! Guarded by `[metrics]` (`postern_store::boot::MetricsConfig`), not by console accounts: a
//! scraper is a machine with a network address and perhaps a bearer token. A refused scrape
//! gets 403 (address) or 401 (token) and a JSON error, never a number.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use postern_store::boot::{MetricsConfig, MetricsRefusal};
use tokio_util::sync::CancellationToken;

use crate::AppState;

/// Who may scrape (`None`: nobody, `/metrics` is off): shared with `postern serve`, which
/// replaces it on SIGHUP.
pub type MetricsAccess = Arc<RwLock<Option<MetricsConfig>>>;

/// The text format Prometheus reads (OpenMetrics 1.0; Prometheus asks for it by default).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub const PATH: &str = "/metrics";

pub async fn scrape(State(state): State<AppState>, request: Request) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let verdict = state.metrics.as_ref().and_then(|access| {
        let config = access.read().unwrap_or_else(|p| p.into_inner());
        config.as_ref().map(|c| c.admit(peer, authorization))
    });
    let Some(verdict) = verdict else {
        let off = error("metrics are off; add a [metrics] section to postern.toml");
        return (StatusCode::NOT_FOUND, axum::Json(off)).into_response();
    };
    match verdict {
        Ok(()) => {}
        Err(MetricsRefusal::Address) => {
            tracing::debug!(peer = ?peer, "metrics scrape refused: address not in [metrics] allow");
            return (
                StatusCode::FORBIDDEN,
                axum::Json(error("this address may not scrape metrics")),
            )
                .into_response();
        }
        Err(MetricsRefusal::Token) => {
            let mut response =
                (StatusCode::UNAUTHORIZED, axum::Json(error("a bearer token is needed")))
                    .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"metrics\""),
            );
            return response;
        }
    }
    match state.store.render_metrics().await {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the store for /metrics");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(error("the store cannot be read now")))
                .into_response()
        }
    }
}

fn error(message: &str) -> serde_json::Value {
    serde_json::json!({ "error": message })
}

/// `/metrics` alone, for `[metrics] listen`.
pub fn app(state: AppState) -> Router {
    Router::new().route(PATH, axum::routing::get(scrape)).with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown`, with the console's connection limits.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let options = &state.settings.options;
    let timeouts =
        crate::conn::Timeouts { header: options.header_timeout, idle: options.idle_timeout };
    let cap = state.connections.clone();
    crate::conn::serve(listener, None, app(state), cap, timeouts, shutdown).await
}
