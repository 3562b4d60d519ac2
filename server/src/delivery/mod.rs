//! Delivery agents: the last step of a message's way out of the queue. Each agent takes one
//! message and some of its recipients and says, per recipient, what became of it.

pub mod client;
pub mod connector;
pub mod maildir;
pub mod mta_sts;
pub mod mx;
pub mod pool;
mod reply;
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

/// One message and the recipients an agent is asked to deliver it to.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub queue_id: &'a str,
    /// Reverse-path in internal (unquoted) form; "" is the null sender.
    pub sender: &'a str,
    /// Internal form; a local part that is not a dot-atom is re-quoted on the wire
    /// (RFC 5321 §4.1.2).
    pub recipients: &'a [String],
    /// The whole message, CRLF line ends.
    pub body: &'a [u8],
    pub smtputf8: bool,
    pub eight_bit: bool,
    /// DSN (RFC 3461): passed on as ENVID= and RET= when the next hop offers DSN.
    pub envid: Option<&'a str>,
    pub ret_full: Option<bool>,
}

/// What became of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        detail: String,
    },
    /// Try again later; `reply` is the remote's reply or our own, in reply form
    /// ("451 4.4.1 connection refused by 127.0.0.1:24").
    Deferred {
        reply: String,
    },
    /// Give up and bounce.
    Failed {
        reply: String,
    },
}

impl Outcome {
    pub fn deferred(reply: impl Into<String>) -> Outcome {
        Outcome::Deferred { reply: reply.into() }
    }

    pub fn failed(reply: impl Into<String>) -> Outcome {
        Outcome::Failed { reply: reply.into() }
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

    /// The reply or detail text, whatever the outcome.
    pub fn text(&self) -> &str {
        match self {
            Outcome::Delivered { detail } => detail,
            Outcome::Deferred { reply } | Outcome::Failed { reply } => reply,
        }
    }
}
