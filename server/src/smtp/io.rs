//! The connection under a session: plain TCP that STARTTLS can turn into TLS, or TLS from the
//! first byte (port 465). Generic over the socket so that tests can use an in-memory stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::server::TlsStream;

pub enum Io<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
    /// Only while STARTTLS moves the socket from plain to TLS.
    Closed,
}

impl<S> Io<S> {
    /// The TLS version and cipher, for the Received: header and the log.
    pub fn tls_description(&self) -> Option<String> {
        match self {
            Io::Plain(_) | Io::Closed => None,
            Io::Tls(tls) => {
                let (_, conn) = tls.get_ref();
                let version = conn.protocol_version().and_then(|v| v.as_str()).unwrap_or("TLS");
                let cipher = conn
                    .negotiated_cipher_suite()
                    .and_then(|c| c.suite().as_str())
                    .unwrap_or("unknown");
                Some(format!(
                    "{} with cipher {}",
                    version.replace('_', "v").replace("TLSv1v", "TLSv1."),
                    cipher
                ))
            }
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Io::Tls(_))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Io<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_read(cx, buf),
            Io::Closed => Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Io<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_write(cx, buf),
            Io::Closed => Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s).poll_flush(cx),
            Io::Closed => Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s).poll_shutdown(cx),
            Io::Closed => Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        }
    }
}
