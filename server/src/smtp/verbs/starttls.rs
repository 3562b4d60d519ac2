//! STARTTLS (RFC 3207): turn the connection into TLS, forgetting everything said before.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, BufReader};

use crate::smtp::io::Io;
use crate::smtp::reply::Reply;
use crate::smtp::session::{Handled, Session};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(in crate::smtp) async fn starttls(&mut self) -> Handled {
        let Some(acceptor) = self.ctx.tls.clone() else {
            return Ok(Some(Reply::new(502, "5.5.1", "Error: command not implemented")));
        };
        if self.conn.get_ref().is_tls() {
            return Ok(Some(Reply::new(503, "5.5.1", "Error: TLS already active")));
        }
        if self.tx.is_some() {
            return Ok(Some(Reply::new(503, "5.5.1", "Error: MAIL transaction in progress")));
        }
        self.answer(Reply::new(220, "2.0.0", "Ready to start TLS"));
        self.flush().await?;
        // CVE-2011-0411: whatever the client pipelined after STARTTLS arrived in plaintext and
        // must not be executed inside the TLS session. Dropping the reader's buffer drops it.
        let pending = self.conn.buffer().len();
        if pending > 0 {
            tracing::warn!(peer = %self.peer, bytes = pending, "discarding plaintext pipelined after STARTTLS");
        }
        let old = std::mem::replace(&mut self.conn, BufReader::new(Io::Closed));
        let Io::Plain(socket) = old.into_inner() else {
            return Err(std::io::Error::other("STARTTLS on a connection that is not plain"));
        };
        let tls =
            tokio::time::timeout(Duration::from_secs(30), acceptor.accept(socket)).await.map_err(
                |_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"),
            )??;
        if let Some(version) = tls.get_ref().1.protocol_version() {
            self.ctx.metrics.tls_negotiated(version.as_str().unwrap_or("other"));
        }
        self.conn = BufReader::with_capacity(16 * 1024, Io::Tls(Box::new(tls)));
        // RFC 3207 §4.2: the client must EHLO again; nothing learned before TLS counts.
        self.helo = None;
        self.reset();
        Ok(None)
    }
}
