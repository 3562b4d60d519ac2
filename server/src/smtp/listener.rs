//! Binding the configured SMTP addresses up front (so that a port we cannot have is an error at
//! start, not a surprise later) and accepting connections until shutdown, one session each.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::anvil::{Anvil, Exceeded};
use super::io::Io;
use super::session::Session;
use super::{ListenerKind, SessionContext};
use crate::error::ServerError;

/// One bound socket and the service it is for.
pub struct Listener {
    pub kind: ListenerKind,
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
        let kind = ListenerKind::from_name(name).unwrap_or(ListenerKind::Smtp);
        for addr in addrs.iter() {
            let socket = bind(*addr).map_err(|io| ServerError::Bind { name, addr: *addr, io })?;
            listeners.push(Listener { kind, socket });
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

/// Accepts connections on `listeners` until `shutdown`, running a session for each; then
/// drains: returns once every session has ended. Sessions see the shutdown through
/// [`SessionContext::draining`] (which the caller cancels with `shutdown`, or before it): each
/// answers its next command with `421 4.3.2` and closes, a message in transfer being committed
/// and answered first. The caller bounds the wait.
pub async fn serve(
    listeners: Vec<Listener>,
    ctx: Arc<SessionContext>,
    shutdown: CancellationToken,
) {
    let mut accepting = JoinSet::new();
    let slots = Arc::new(Semaphore::new(ctx.limits.max_sessions));
    let anvil =
        Anvil::new(ctx.limits.max_sessions_per_address, ctx.limits.max_sessions_per_network);
    for listener in listeners {
        let shutdown = shutdown.clone();
        let ctx = ctx.clone();
        let slots = slots.clone();
        let anvil = anvil.clone();
        accepting.spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    accepted = listener.socket.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            tracing::warn!(listener = listener.kind.name(), error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    }
                };
                // Per client first, so that a flood from one client is turned away before it
                // takes any of the slots everyone shares. Trusted networks are exempt, as
                // Postfix exempts $mynetworks (smtpd_client_event_limit_exceptions).
                let admission = if ctx.engine.snapshot().config.is_trusted(peer.ip()) {
                    None
                } else {
                    match anvil.admit(listener.kind, peer.ip()) {
                        Ok(admission) => Some(admission),
                        Err(exceeded) => {
                            let which = match exceeded {
                                Exceeded::Address => "address",
                                Exceeded::Network => "network",
                            };
                            tracing::warn!(listener = listener.kind.name(), %peer, limit = which, "too many sessions from one client; connection refused");
                            tokio::spawn(refuse(stream, listener.kind, TOO_MANY_FROM_YOU));
                            continue;
                        }
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(listener = listener.kind.name(), %peer, "too many sessions; connection refused");
                    tokio::spawn(refuse(stream, listener.kind, TOO_MANY));
                    continue;
                };
                tracing::info!(listener = listener.kind.name(), %peer, "connect");
                let ctx = ctx.clone();
                let kind = listener.kind;
                tokio::spawn(async move {
                    start_session(ctx, kind, peer, stream).await;
                    drop((slot, admission));
                });
            }
        });
    }
    while accepting.join_next().await.is_some() {}
    // Every session holds one slot until it ends: all of them free again is all sessions gone.
    let all = u32::try_from(ctx.limits.max_sessions).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// Every session slot is taken (RFC 3463: 4.3.2, system not accepting messages).
const TOO_MANY: &[u8] = b"421 4.3.2 Too many connections, try again later\r\n";
/// This client holds as many sessions as one client may (4.7.0, a security or policy status,
/// as Postfix answers beyond smtpd_client_connection_count_limit).
const TOO_MANY_FROM_YOU: &[u8] =
    b"421 4.7.0 Error: too many connections from your address, try again later\r\n";

/// RFC 5321 §3.1: a server that cannot take a session may greet with 421 and close. On the
/// implicit-TLS port there is no plaintext to say it in, so the connection just closes.
async fn refuse(mut stream: TcpStream, kind: ListenerKind, reply: &'static [u8]) {
    use tokio::io::AsyncWriteExt;
    if kind != ListenerKind::Submissions {
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(reply)).await;
    }
}

async fn start_session(
    ctx: Arc<SessionContext>,
    kind: ListenerKind,
    peer: SocketAddr,
    stream: TcpStream,
) {
    let _ = stream.set_nodelay(true);
    // Open in the metrics until the session ends, however it ends.
    let _open = ctx.metrics.session_opened(kind.name());
    let local = stream.local_addr().ok();
    let io = if kind == ListenerKind::Submissions {
        let Some(acceptor) = ctx.tls.clone() else {
            tracing::error!(%peer, "port 465 needs a certificate; closing");
            return;
        };
        match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                if let Some(version) = tls.get_ref().1.protocol_version() {
                    ctx.metrics.tls_negotiated(version.as_str().unwrap_or("other"));
                }
                Io::Tls(Box::new(tls))
            }
            Ok(Err(e)) => {
                tracing::info!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::info!(%peer, "TLS handshake timed out");
                return;
            }
        }
    } else {
        Io::Plain(stream)
    };
    let mut session = Session::new(ctx, kind, peer, io);
    session.local = local;
    session.run().await;
}
