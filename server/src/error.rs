//! The engine's one error type.

use std::net::SocketAddr;

use postern_store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServerError {
    // The io::Error is part of the message, not a `source`: chained, it would print twice.
    #[error("cannot listen for {name} on {addr}: {io}{}", bind_hint(*addr, io))]
    Bind { name: &'static str, addr: SocketAddr, io: std::io::Error },

    #[error(transparent)]
    Store(#[from] StoreError),

    #[error("TLS certificate {path}: {message}")]
    Certificate { path: String, message: String },
}

/// Says how to fix the usual reasons a listener cannot bind.
fn bind_hint(addr: SocketAddr, err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => format!(
            "\n  port {} is privileged: run postern as root, grant it the capability with \
             `setcap cap_net_bind_service=+ep $(command -v postern)`, change the address in \
             postern.toml, or try `postern serve --dev` (ports 2525, 2587, 2465)",
            addr.port()
        ),
        std::io::ErrorKind::AddrInUse => format!(
            "\n  another program already listens on {addr} (another MTA, such as Postfix or Exim, \
             or a second postern): stop it, or change the address in postern.toml"
        ),
        std::io::ErrorKind::AddrNotAvailable => format!(
            "\n  this machine has no address {}: use one it has, or 0.0.0.0 / [::] for all",
            addr.ip()
        ),
        _ => String::new(),
    }
}
