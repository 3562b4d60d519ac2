//! Binding the configured SMTP addresses up front (so that a port we cannot have is an error at
//! start, not a surprise later) and accepting connections until shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use postern_store::model::DomainName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::ServerError;

/// One bound socket and the service it is for.
pub struct Listener {
    /// `smtp`, `submission` or `submissions`.
    pub name: &'static str,
    pub socket: TcpListener,
}

impl Listener {
    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("a bound socket has an address")
    }
}

/// Binds every address of every service, or fails naming the first one that cannot be had.
pub async fn bind_all(
    services: &[(&'static str, &[SocketAddr])],
) -> Result<Vec<Listener>, ServerError> {
    let mut listeners = Vec::new();
    for (name, addrs) in services {
        for addr in addrs.iter() {
            let socket = bind(*addr).map_err(|io| ServerError::Bind { name, addr: *addr, io })?;
            listeners.push(Listener { name, socket });
        }
    }
    Ok(listeners)
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // Restart without waiting out TIME_WAIT from the previous run's connections.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Accepts connections on `listeners` until `shutdown`.
///
/// SMTP sessions are the next piece of work (issue 3). Until they land, each connection is told
/// so with a `421` (RFC 5321 §3.8: the server may refuse service at the greeting) and closed,
/// so a client sees a clear temporary refusal and retries later rather than hanging.
pub async fn serve(listeners: Vec<Listener>, hostname: DomainName, shutdown: CancellationToken) {
    let mut accepting = JoinSet::new();
    for listener in listeners {
        let shutdown = shutdown.clone();
        let hostname = hostname.clone();
        accepting.spawn(async move {
            loop {
                let (mut stream, peer) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    accepted = listener.socket.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            tracing::warn!(listener = listener.name, error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    }
                };
                tracing::info!(listener = listener.name, %peer, "connect");
                let reply = format!("421 4.3.2 {hostname} Service not available: SMTP sessions are not enabled in this build\r\n");
                tokio::spawn(async move {
                    let _ = stream.write_all(reply.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
    }
    while accepting.join_next().await.is_some() {}
}
