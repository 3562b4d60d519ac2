//! Postern's web console and REST API (askama pages under `/`, JSON under `/api/v1`), over the
//! same store as the engine. It never calls the engine: changes go to the store, whose change
//! feed carries them to every engine.

pub mod api;
mod assets;
pub mod auth;
mod certs;
mod conn;
pub mod directory;
pub mod dns;
pub mod dns_health;
mod edge;
mod error;
pub mod metrics;
pub mod milters;
mod mta_sts;
mod pages;
pub mod policy_probe;
mod queue;
pub mod screening;
mod state;
mod time;
mod traffic;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::WebError;
pub use metrics::MetricsAccess;
pub use state::{AppState, CertificateInfo, Settings};

/// Everything the console serves: pages, static assets and the API.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(pages::router(&state))
        .nest("/api/v1", api::router(&state))
        .merge(assets::router())
        .route(mta_sts::POLICY_PATH, axum::routing::get(mta_sts::policy))
        .route(metrics::PATH, axum::routing::get(metrics::scrape))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::origin::refuse_cross_site))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(1024 * 1024))
        .layer(axum::middleware::from_fn_with_state(state.clone(), edge::edge))
        .with_state(state)
}

/// Serves the console on `listener` until `shutdown`. With an HTTPS listener configured (and
/// `redirect_http`), every request gets a redirect there instead.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve(listener, None, state, shutdown).await
}

/// Both listeners: the connection cap (shared with every other listener of `state`) and the
/// header and idle timeouts of `[console]`.
async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let options = &state.settings.options;
    let timeouts = conn::Timeouts { header: options.header_timeout, idle: options.idle_timeout };
    let cap = state.connections.clone();
    conn::serve(listener, tls, app(state), cap, timeouts, shutdown).await
}

/// Serves the console over HTTPS on `listener` until `shutdown`, with `acceptor`'s certificate
/// (the appliance's own). The session cookie is then `__Host-` prefixed and `Secure`, whatever
/// `state` said.
pub async fn run_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    mut state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    state.settings = std::sync::Arc::new(Settings { https: true, ..(*state.settings).clone() });
    serve(listener, Some(acceptor), state, shutdown).await
}
