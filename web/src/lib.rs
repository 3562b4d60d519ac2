//! Postern's web console and REST API (askama pages under `/`, JSON under `/api/v1`), over the
//! same store as the engine. It never calls the engine: changes go to the store, whose change
//! feed carries them to every engine.

pub mod api;
mod assets;
pub mod auth;
pub mod dns;
mod error;
mod https;
mod pages;
mod queue;
mod state;
mod time;

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::WebError;
pub use state::{AppState, CertificateInfo, Settings};

/// Everything the console serves: pages, static assets and the API.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(pages::router(&state))
        .nest("/api/v1", api::router(&state))
        .merge(assets::router())
        .layer(axum::middleware::from_fn(auth::origin::refuse_cross_site))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(1024 * 1024))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Headers every response carries: no framing, no sniffing, nothing loaded from elsewhere.
async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{HeaderName, HeaderValue, header};
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (HeaderName::from_static("referrer-policy"), "same-origin"),
    ] {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    response
}

/// Serves the console on `listener` until `shutdown`.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown.cancelled_owned()).await
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
    use axum::serve::ListenerExt;
    state.settings = std::sync::Arc::new(Settings { https: true, ..(*state.settings).clone() });
    // `tap_io` gives the listener axum's `ConnectInfo<SocketAddr>`, which the login throttle
    // reads for the client's address.
    let listener = https::TlsListener::new(listener, acceptor, shutdown.clone())?.tap_io(|_| {});
    let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown.cancelled_owned()).await
}
