//! The SMTP service: listeners for port 25, submission (587) and submissions (465), and the
//! session that speaks ESMTP on each connection.

mod anvil;
mod authors;
mod body;
mod data;
mod directory;
mod disk;
mod dovecot_auth;
mod dsn;
mod headers;
mod io;
mod line;
mod listener;
mod milter;
mod reply;
mod session;
mod spooled;
#[cfg(test)]
mod tests;
mod verbs;

use std::future::Future;
use std::pin::Pin;

pub use disk::DiskGauge;
pub use listener::{Listener, bind_all, serve};
use postern_store::model::{NewMessage, QueueId};
pub use reply::Reply;
pub use session::Limits;
use tokio_rustls::TlsAcceptor;

use crate::engine::Engine;
use crate::queue::QueueError;

/// Which service a listener offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerKind {
    /// Port 25: mail for our domains, and relaying for trusted networks.
    Smtp,
    /// Port 587: STARTTLS, then AUTH before MAIL (RFC 6409).
    Submission,
    /// Port 465: TLS from the first byte (RFC 8314), then AUTH before MAIL.
    Submissions,
}

impl ListenerKind {
    pub fn from_name(name: &str) -> Option<ListenerKind> {
        match name {
            "smtp" => Some(ListenerKind::Smtp),
            "submission" => Some(ListenerKind::Submission),
            "submissions" => Some(ListenerKind::Submissions),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ListenerKind::Smtp => "smtp",
            ListenerKind::Submission => "submission",
            ListenerKind::Submissions => "submissions",
        }
    }

    /// The submission ports offer AUTH and require it before MAIL.
    pub fn takes_auth(self) -> bool {
        !matches!(self, ListenerKind::Smtp)
    }
}

/// Where accepted messages go. `accept` returns the queue ID once the message is durable; only
/// then does the session reply 250.
pub trait MessageSink: Send + Sync + 'static {
    fn accept(
        &self,
        message: NewMessage,
    ) -> Pin<Box<dyn Future<Output = Result<QueueId, QueueError>> + Send + '_>>;

    /// The store a body too large to hold goes to as it arrives; `None` holds every body
    /// whole (a sink that keeps messages in memory, in tests).
    fn spool(&self) -> Option<&postern_store::Store> {
        None
    }

    /// Queues a message whose body was streamed to [`MessageSink::spool`] and made durable:
    /// `message.body` holds only the header fields added in front of it.
    fn accept_spooled(
        &self,
        message: NewMessage,
        spooled: postern_store::spool::SpooledBody,
    ) -> Pin<Box<dyn Future<Output = Result<QueueId, QueueError>> + Send + '_>> {
        let _ = (message, spooled);
        Box::pin(async { Err(QueueError::Closed) })
    }
}

/// What every session of a server shares.
pub struct SessionContext {
    pub hostname: String,
    pub engine: Engine,
    pub sink: std::sync::Arc<dyn MessageSink>,
    /// STARTTLS and port 465; `None` when no certificate is configured.
    pub tls: Option<TlsAcceptor>,
    pub limits: Limits,
    /// Free space in the data directory, checked before MAIL.
    pub disk: std::sync::Arc<DiskGauge>,
    /// Signs what authenticated users submit and trusted networks relay (DKIM), as it is
    /// queued.
    pub signer: std::sync::Arc<dyn crate::mailauth::Signer>,
    /// Checks SPF, DKIM, ARC and DMARC of what arrives on port 25 from elsewhere; `None`
    /// leaves inbound mail unchecked (no resolver).
    pub verifier: Option<std::sync::Arc<crate::mailauth::Verifier>>,
    /// AUTH failures per account and address, and the bound on password checks at once:
    /// the console's too when both run in one process.
    pub passwords: postern_store::auth::PasswordChecks,
    /// The rate limits' counters (`policy::rate`), over every session.
    pub rates: std::sync::Arc<crate::policy::RateLimiter>,
    /// DNS blocklists and greylisting at RCPT (`policy/screen.rs`).
    pub screen: std::sync::Arc<crate::policy::Screen>,
    /// Where refusals go for the delivery log (`policy/refusals.rs`): bounded, never waits.
    pub refusals: crate::policy::RefusalLog,
    /// Who checks AUTH passwords: the mailboxes, or Dovecot (`[auth]`).
    pub auth_backend: postern_store::boot::SmtpAuthBackend,
    /// Mailboxes of the domains whose users live in LDAP or Active Directory: lookups at RCPT
    /// (cached), binds at AUTH.
    pub directory: std::sync::Arc<crate::directory::Directory>,
    /// Cancelled when the server shuts down: each session answers its next command with
    /// `421 4.3.2` and closes, a message being transferred first being committed and answered.
    pub draining: tokio_util::sync::CancellationToken,
    /// The Prometheus counters (`postern_store::metrics`): the store's, in production.
    pub metrics: std::sync::Arc<postern_store::metrics::Metrics>,
}

impl SessionContext {
    /// Free bytes for us in the data directory, if the file system says.
    pub fn free_disk(&self) -> Option<u64> {
        self.disk.free()
    }
}
