//! Certificates from an ACME CA (RFC 8555): the account, orders and their challenges
//! (HTTP-01 on `[acme] http_listen`, TLS-ALPN-01 on the console's HTTPS listener), renewal.
//!
//! `serve` binds the HTTP-01 port with the other listeners ([`bind_http`]) and then calls
//! [`start`]; everything else happens in the worker (`worker.rs`), driven by the orders in the
//! store.

pub mod account;
pub mod challenge;
pub mod http01;
pub mod order;
pub mod schedule;
pub mod worker;

use std::sync::Arc;

use postern_store::Store;
use postern_store::boot::AcmeConfig;
use postern_store::model::DomainName;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use challenge::{ACME_TLS_ALPN, AlpnChallenges, Http01Tokens, tls_alpn01_certificate};
pub use order::{Challenge, Issued, OrderError, Responders, order_certificate};
pub use worker::{WorkerOptions, run};

use crate::error::ServerError;

/// Binds `[acme] http_listen`, if ACME is on and the responder wanted.
pub async fn bind_http(config: Option<&AcmeConfig>) -> Result<Option<TcpListener>, ServerError> {
    let Some(addr) = config.and_then(|c| c.http_listen) else { return Ok(None) };
    TcpListener::bind(addr).await.map(Some).map_err(|io| ServerError::Bind {
        name: "the ACME HTTP-01 responder",
        addr,
        io,
    })
}

/// What `serve` hands to [`start`].
pub struct AcmeStart {
    pub config: AcmeConfig,
    /// The host name, ordered at start when no valid certificate covers it; `None` when it is
    /// a fallback name no CA issues for.
    pub hostname: Option<DomainName>,
    /// The name redirects from port 80 use when a request names no host.
    pub redirect_host: String,
    /// From [`bind_http`].
    pub http_listener: Option<TcpListener>,
    /// Where TLS-ALPN-01 certificates go (the resolver of the console's HTTPS listener), and
    /// that listener's port; `None` without `[console] tls_listen`.
    pub tls_alpn01: Option<(Arc<dyn AlpnChallenges>, u16)>,
}

/// Starts the HTTP-01 responder and the worker; their tasks end after `shutdown`.
pub fn start(store: Store, start: AcmeStart, shutdown: CancellationToken) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let tokens = Http01Tokens::new();
    let https_port = start.tls_alpn01.as_ref().map_or(443, |(_, port)| *port);
    let http01_listening = start.http_listener.is_some();
    if let Some(listener) = start.http_listener {
        let redirect = http01::Redirect { hostname: start.redirect_host, https_port };
        tasks.spawn(http01::serve(listener, tokens.clone(), redirect, shutdown.clone()));
    }
    let responders = Responders {
        http01: tokens,
        tls_alpn01: start.tls_alpn01.map(|(alpn, _)| alpn),
        http01_listening,
    };
    let options = WorkerOptions { config: start.config, hostname: start.hostname, responders };
    tasks.spawn(run(store, options, shutdown));
    tasks
}
