//! Delivery agents: the last step of a message's way out of the queue. Each agent takes one
//! message and some of its recipients and says, per recipient, what became of it.

pub mod client;
pub mod connector;
pub mod maildir;
pub mod mta_sts;
pub mod mx;
pub mod pool;
mod reply;
pub mod stream;
pub mod throttle;
mod tls;
mod transaction;
pub mod wire;

pub use client::{Client, ClientOptions, Protocol, Timeouts, deliver};
pub use connector::{BoxStream, Connector, DirectConnector, Target};
pub use maildir::Maildir;
pub use mta_sts::{MtaSts, StsSettings};
pub use mx::{MxHost, deliver_mx};
pub use pool::{Pool, PoolSettings};
pub use reply::Reply;
pub use stream::BodyStream;

use std::borrow::Cow;

use postern_store::model::Notify;

/// One message and the recipients an agent is asked to deliver it to.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub queue_id: &'a str,
    /// Reverse-path in internal (unquoted) form; "" is the null sender.
    pub sender: &'a str,
    /// Internal form; a local part that is not a dot-atom is re-quoted on the wire
    /// (RFC 5321 §4.1.2).
    pub recipients: &'a [String],
    /// The whole message, CRLF line ends; with `stream`, only its first part (enough for its
    /// header block).
    pub body: &'a [u8],
    /// A message too large to hold: read from the queue as it is delivered.
    pub stream: Option<&'a BodyStream>,
    pub smtputf8: bool,
    pub eight_bit: bool,
    /// DSN (RFC 3461): passed on as ENVID= and RET= when the next hop offers DSN.
    pub envid: Option<&'a str>,
    pub ret_full: Option<bool>,
    /// The recipients' own DSN parameters, looked up by address (a part of `recipients` sent
    /// to one MX host keeps the whole list); a recipient missing here has none.
    pub rcpt_dsn: &'a [RcptDsn<'a>],
}

/// What the sender asked of one recipient's DSNs (RFC 3461 §4.1, §4.2): passed on as NOTIFY=
/// and ORCPT= when an SMTP next hop offers DSN.
#[derive(Debug, Clone, Copy)]
pub struct RcptDsn<'a> {
    pub address: &'a str,
    pub notify: Notify,
    /// As stored: `addr-type;address`, not xtext-encoded.
    pub orcpt: Option<&'a str>,
}

impl Delivery<'_> {
    /// `recipient`'s DSN parameters, if it has any.
    pub fn dsn_of(&self, recipient: &str) -> Option<&RcptDsn<'_>> {
        self.rcpt_dsn.iter().find(|r| r.address == recipient)
    }
}

/// Where a delivered recipient's message went, which decides the success DSN its sender may
/// be owed (RFC 3461 §5.2.2, §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// Into a mailbox, by us (Maildir) or an LMTP server: `Action: delivered`.
    Mailbox,
    /// To an SMTP next hop that does not offer DSN: nobody will tell of success beyond it, so
    /// we say it was `relayed`.
    Relayed,
    /// To an SMTP next hop that offers DSN and was given the NOTIFY parameter: any success
    /// notice is its to send.
    PassedOn,
    /// Thrown away by configuration (`discard`): nothing to report.
    Discarded,
}

/// What became of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        detail: String,
        handoff: Handoff,
    },
    /// Try again later; `reply` is the remote's reply or our own
    /// ("451 4.4.1 connection refused by 127.0.0.1:24").
    Deferred {
        reply: Reply,
    },
    /// Give up and bounce.
    Failed {
        reply: Reply,
    },
}

impl Outcome {
    pub fn deferred(reply: Reply) -> Outcome {
        Outcome::Deferred { reply }
    }

    pub fn failed(reply: Reply) -> Outcome {
        Outcome::Failed { reply }
    }

    /// The reply of a deferral or a failure.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Outcome::Delivered { .. } => None,
            Outcome::Deferred { reply } | Outcome::Failed { reply } => Some(reply),
        }
    }

    /// The enhanced status code as a mail log shows it (`dsn=`): the reply's own, else the class
    /// the outcome implies, as Postfix does.
    pub fn dsn(&self) -> [u8; 3] {
        match self {
            Outcome::Delivered { .. } => [2, 0, 0],
            Outcome::Deferred { reply } => reply.enhanced().unwrap_or([4, 0, 0]),
            Outcome::Failed { reply } => reply.enhanced().unwrap_or([5, 0, 0]),
        }
    }

    pub fn is_delivered(&self) -> bool {
        matches!(self, Outcome::Delivered { .. })
    }

    pub fn is_deferred(&self) -> bool {
        matches!(self, Outcome::Deferred { .. })
    }

    pub fn is_failed(&self) -> bool {
        matches!(self, Outcome::Failed { .. })
    }

    /// The reply or detail text, whatever the outcome, as the delivery log keeps it.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Outcome::Delivered { detail, .. } => Cow::Borrowed(detail),
            Outcome::Deferred { reply } | Outcome::Failed { reply } => {
                Cow::Owned(reply.to_string())
            }
        }
    }
}
