//! The console's HTTP server: accepts connections on a listener (TLS or not), admits them
//! under the connection cap, and serves each with hyper under the header, idle and body
//! deadlines. `axum::serve` has neither a cap nor timeouts, hence this.

mod cap;
mod watch;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737 §6.2).
const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub use cap::ConnectionCap;
pub use watch::Timeouts;
use watch::{Activity, InFlight, Watched};

/// The address a connection came in on (the listener's own, as the client reached it): one of
/// the names the console answers to (see `edge`).
#[derive(Debug, Clone, Copy)]
pub struct LocalAddr(pub SocketAddr);

/// What a connection beyond the cap gets on plain HTTP, written without waiting (a new
/// socket's send buffer is empty); over TLS it is closed without a word, since a handshake
/// would cost more than the refusal is worth.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
Content-Type: text/plain; charset=utf-8\r\nRetry-After: 5\r\nContent-Length: 45\r\n\r\n\
Too many connections; try again in a moment.\n";

/// Serves `app` on `listener` until `shutdown`, over TLS when `tls` is given; then lets the
/// requests in progress finish and returns.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    cap: Arc<ConnectionCap>,
    timeouts: Timeouts,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let bound = listener.local_addr()?;
    // A body that trickles in is cut off like an idle connection.
    let app = app.layer(tower_http::timeout::RequestBodyDeadlineLayer::new(timeouts.idle));
    // Each connection task holds a sender; when all are gone, every connection has ended.
    let (alive, mut all_ended) = tokio::sync::mpsc::channel::<Infallible>(1);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "console accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let activity = Activity::new();
        let admitted = match cap.admit(peer.ip(), activity.clone()) {
            Ok(admitted) => admitted,
            Err(_) => {
                if tls.is_none() {
                    let _ = tcp.try_write(BUSY);
                }
                continue;
            }
        };
        let local = tcp.local_addr().unwrap_or(bound);
        let connection = Connection {
            peer,
            local,
            tls: tls.clone(),
            app: app.clone(),
            timeouts,
            shutdown: shutdown.clone(),
        };
        let alive = alive.clone();
        tokio::spawn(async move {
            connection.run(tcp, admitted, activity).await;
            drop(alive);
        });
    }
    drop(alive);
    let _ = all_ended.recv().await;
    Ok(())
}

struct Connection {
    peer: SocketAddr,
    local: SocketAddr,
    tls: Option<TlsAcceptor>,
    app: Router,
    timeouts: Timeouts,
    shutdown: CancellationToken,
}

impl Connection {
    async fn run(self, tcp: TcpStream, place: cap::Admitted, activity: Arc<Activity>) {
        let _ = tcp.set_nodelay(true);
        let evicted = place.evicted.clone();
        let io = Watched::new(tcp, place, activity.clone(), self.timeouts);
        match self.tls.clone() {
            None => self.http(io, activity, evicted).await,
            Some(acceptor) => {
                // The handshake is bound by the same deadlines: its first byte starts the
                // header timeout, a silent client meets the idle one.
                let accepted = tokio::select! {
                    _ = self.shutdown.cancelled() => return,
                    _ = evicted.cancelled() => return,
                    accepted = acceptor.accept(io) => accepted,
                };
                match accepted {
                    // A TLS-ALPN-01 validation (RFC 8737 §3): the CA only looks at the
                    // certificate, and the connection carries no HTTP; close it at once.
                    Ok(mut tls) if tls.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) => {
                        use tokio::io::AsyncWriteExt;
                        let _ = tls.shutdown().await;
                    }
                    Ok(tls) => self.http(tls, activity, evicted).await,
                    Err(e) => {
                        tracing::debug!(peer = %self.peer, error = %e, "console TLS handshake failed")
                    }
                }
            }
        }
    }

    async fn http<I>(self, io: I, activity: Arc<Activity>, evicted: CancellationToken)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (app, peer, local) = (self.app, self.peer, self.local);
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let in_flight = activity.request();
            // What handlers read: the client's address (the login throttle) and ours (`edge`).
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(LocalAddr(local));
            let app = app.clone();
            async move {
                let response = match app.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(
                    response.map(|body| Body::new(Tracked { body, _in_flight: in_flight })),
                )
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(io), service);
        tokio::pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            // Its place went to a newcomer while it had no request in progress: close now.
            _ = evicted.cancelled() => return,
            _ = self.shutdown.cancelled() => {
                // Finish the request in progress, if any; an idle connection closes now.
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "console connection ended");
        }
    }
}

/// A response body that marks its request done when it is dropped (hyper drops it once sent).
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
