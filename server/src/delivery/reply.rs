//! The client's side of the connection: writes commands and reads replies (parsed by
//! smtp-proto, multi-line and with enhanced status codes), each under a time limit.

use std::fmt;
use std::time::Duration;

use smtp_proto::response::parser::ResponseReceiver;
use smtp_proto::{EhloResponse, Error as ProtoError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::connector::BoxStream;

/// A reply: the peer's, or one of our own that says why a delivery did not happen, in the same
/// form ("451 4.4.1 connection refused by …"), so that logs, bounces and retries treat both
/// alike. `esc` is the enhanced status code (RFC 3463), `[0, 0, 0]` when the peer gave none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub esc: [u8; 3],
    pub message: String,
}

impl Reply {
    pub fn new(code: u16, esc: [u8; 3], message: impl Into<String>) -> Reply {
        Reply { code, esc, message: message.into() }
    }

    /// The enhanced status code, if the reply has one.
    pub fn enhanced(&self) -> Option<[u8; 3]> {
        (self.esc != [0, 0, 0]).then_some(self.esc)
    }

    /// "451 4.4.1 text" as a reply, for tests that write replies as people read them.
    #[cfg(test)]
    pub(crate) fn from_text(text: &str) -> Reply {
        let (code, rest) = text.split_once(' ').expect("a code and a text");
        let (esc, message) = match rest.split_once(' ') {
            Some((esc, message)) if esc.split('.').count() == 3 => {
                let mut parts = esc.split('.').map(|p| p.parse::<u8>().expect("a number"));
                let esc = [(); 3].map(|_| parts.next().expect("three parts"));
                (esc, message)
            }
            _ => ([0, 0, 0], rest),
        };
        Reply::new(code.parse().expect("a reply code"), esc, message)
    }

    /// The same reply with `note` after its text, as when we say which host gave it.
    pub fn noted(&self, note: impl fmt::Display) -> Reply {
        Reply { message: format!("{} {note}", self.message.trim_end()), ..self.clone() }
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
}

impl fmt::Display for Reply {
    /// "550 5.1.1 text", the lines of a multi-line reply joined by spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if self.esc != [0, 0, 0] {
            write!(f, " {}.{}.{}", self.esc[0], self.esc[1], self.esc[2])?;
        }
        for line in self.message.split('\n').map(str::trim).filter(|l| !l.is_empty()) {
            write!(f, " {line}")?;
        }
        Ok(())
    }
}

/// Why a read or write did not complete; the connection is unusable afterwards.
#[derive(Debug)]
pub enum WireError {
    Timeout,
    Closed,
    Io(std::io::Error),
    Garbled(String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Timeout => f.write_str("timed out"),
            WireError::Closed => f.write_str("connection closed"),
            WireError::Io(e) => write!(f, "{e}"),
            WireError::Garbled(why) => write!(f, "unreadable reply ({why})"),
        }
    }
}

pub struct Wire {
    stream: BoxStream,
    buf: Vec<u8>,
    receiver: ResponseReceiver,
    /// The bytes of the reply being read, for EHLO's capability parser.
    raw: Vec<u8>,
    /// The peer said 421: it is closing the connection (RFC 5321 §3.8).
    pub closing: bool,
}

impl Wire {
    pub fn new(stream: BoxStream) -> Wire {
        Wire {
            stream,
            buf: Vec::new(),
            receiver: ResponseReceiver::default(),
            raw: Vec::new(),
            closing: false,
        }
    }

    /// Gives the stream up for a TLS handshake. Refuses when the peer sent more than its reply
    /// to STARTTLS: those bytes would be taken for replies in the encrypted session (RFC 3207
    /// §6; the CVE-2011-0411 response injection).
    /// The wire is useless afterwards: a placeholder stream stands in.
    pub fn take_stream(&mut self) -> Result<BoxStream, WireError> {
        if !self.buf.is_empty() {
            return Err(WireError::Garbled("data after the reply to STARTTLS".into()));
        }
        Ok(std::mem::replace(&mut self.stream, Box::new(tokio::io::duplex(1).0)))
    }

    pub async fn send(&mut self, bytes: &[u8], limit: Duration) -> Result<(), WireError> {
        let write = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(limit, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(WireError::Io(e)),
            Err(_) => Err(WireError::Timeout),
        }
    }

    pub async fn read_reply(&mut self, limit: Duration) -> Result<Reply, WireError> {
        match tokio::time::timeout(limit, self.read_reply_untimed()).await {
            Ok(result) => result,
            Err(_) => Err(WireError::Timeout),
        }
    }

    async fn read_reply_untimed(&mut self) -> Result<Reply, WireError> {
        self.receiver.reset();
        self.raw.clear();
        loop {
            if !self.buf.is_empty() {
                let mut iter = self.buf.iter();
                let parsed = self.receiver.parse(&mut iter);
                let used = self.buf.len() - iter.len();
                self.raw.extend_from_slice(&self.buf[..used]);
                self.buf.drain(..used);
                match parsed {
                    Ok(r) => {
                        self.closing |= r.code == 421;
                        return Ok(Reply { code: r.code, esc: r.esc, message: r.message });
                    }
                    Err(ProtoError::NeedsMoreData { .. }) => {}
                    Err(e) => return Err(WireError::Garbled(format!("{e:?}"))),
                }
            }
            if self.raw.len() > 64 * 1024 {
                return Err(WireError::Garbled("reply longer than 64 KiB".into()));
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.map_err(WireError::Io)?;
            if n == 0 {
                return Err(WireError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The capabilities in the last reply read, which must have been a 250 to EHLO or LHLO.
    pub fn capabilities(&self) -> EhloResponse<String> {
        // LHLO's reply has the same form; a capability the parser cannot read costs us only
        // that extension, so fall back to none rather than fail the delivery.
        EhloResponse::parse(&mut self.raw.iter()).unwrap_or_default()
    }
}
