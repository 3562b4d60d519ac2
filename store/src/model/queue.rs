//! The mail queue's types: queue IDs, a message as the SMTP session hands it over, a queued
//! message as the engine and the console see it, delivery outcomes and list filters.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

use super::DomainName;

/// Crockford's base 32: no I, L, O or U, so an ID read aloud or retyped survives, and in ASCII
/// order, so that the text of IDs sorts like their numbers.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const ID_LEN: usize = 16;
/// Low bits of an ID that are not the millisecond clock: random, so that machines sharing a
/// store do not collide, and counted up within one process, so that it never repeats itself.
const RANDOM_BITS: u32 = 38;

/// A queued message's ID: 80 bits shown as 16 characters (`0J5K2ZQ8T1M4XW3R`), the first eight
/// a millisecond clock, so that IDs sort roughly by arrival, like Postfix's long queue IDs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(u128);

impl QueueId {
    /// A new ID, strictly greater than `last` (the previous ID this process made).
    pub fn next_after(last: Option<QueueId>) -> QueueId {
        let millis =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let random = u128::from(rand::random::<u64>()) & ((1u128 << RANDOM_BITS) - 1);
        let fresh = ((millis << RANDOM_BITS) | random) & ((1u128 << 80) - 1);
        match last {
            Some(QueueId(last)) if fresh <= last => QueueId((last + 1) & ((1u128 << 80) - 1)),
            _ => QueueId(fresh),
        }
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [0u8; ID_LEN];
        for (i, c) in text.iter_mut().enumerate() {
            let shift = 5 * (ID_LEN - 1 - i);
            *c = ALPHABET[((self.0 >> shift) & 31) as usize];
        }
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueueId({self})")
    }
}

/// Why text is not a queue ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a queue ID (16 characters of 0-9 and A-Z without I, L, O, U)")]
pub struct BadQueueId(pub String);

impl FromStr for QueueId {
    type Err = BadQueueId;

    /// Accepts lower case too, as a person may type it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadQueueId(s.to_string());
        if s.len() != ID_LEN {
            return Err(bad());
        }
        let mut value = 0u128;
        for b in s.bytes() {
            let digit =
                ALPHABET.iter().position(|&a| a == b.to_ascii_uppercase()).ok_or_else(bad)?;
            value = (value << 5) | digit as u128;
        }
        Ok(QueueId(value))
    }
}

impl Serialize for QueueId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// RFC 3461 section 4.1 NOTIFY, as bit flags; 0 means the client gave none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Notify(pub u8);

impl Notify {
    pub const SUCCESS: Notify = Notify(1);
    pub const FAILURE: Notify = Notify(2);
    pub const DELAY: Notify = Notify(4);
    pub const NEVER: Notify = Notify(8);

    pub fn contains(self, other: Notify) -> bool {
        other.0 != 0 && self.0 & other.0 == other.0
    }

    pub fn is_given(self) -> bool {
        self.0 != 0
    }
}

impl std::ops::BitOr for Notify {
    type Output = Notify;
    fn bitor(self, rhs: Notify) -> Notify {
        Notify(self.0 | rhs.0)
    }
}

impl fmt::Display for Notify {
    /// As in the RCPT parameter: `SUCCESS,FAILURE`, `NEVER`, or empty when not given.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Notify::SUCCESS, "SUCCESS"),
            (Notify::FAILURE, "FAILURE"),
            (Notify::DELAY, "DELAY"),
            (Notify::NEVER, "NEVER"),
        ];
        let set: Vec<&str> =
            names.iter().filter(|(n, _)| self.contains(*n)).map(|(_, name)| *name).collect();
        f.write_str(&set.join(","))
    }
}

impl Serialize for Notify {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// RFC 3461 section 4.3 RET: what of the message a DSN returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DsnRet {
    Full,
    Headers,
}

impl DsnRet {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DsnRet::Full => "full",
            DsnRet::Headers => "hdrs",
        }
    }
}

impl FromStr for DsnRet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "full" => Ok(DsnRet::Full),
            "hdrs" => Ok(DsnRet::Headers),
            _ => Err(format!("{s:?} is not a DSN RET value (full, hdrs)")),
        }
    }
}

/// A message the SMTP session has accepted, to be queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// Reverse-path in internal (unquoted) form; "" = null sender.
    pub sender: String,
    pub recipients: Vec<NewRecipient>,
    /// RFC 3461 ENVID, xtext-decoded.
    pub envid: Option<String>,
    pub ret: Option<DsnRet>,
    pub smtputf8: bool,
    /// BODY=8BITMIME.
    pub eight_bit: bool,
    /// Epoch seconds.
    pub received_at: i64,
    /// Free text for logs and the console, e.g. "mx.example.org [192.0.2.1]".
    pub client: String,
    pub auth_user: Option<String>,
    /// Held in the queue from the start (an access rule's HOLD, an inbound DMARC quarantine)
    /// until an administrator releases it.
    pub held: bool,
    /// Why the message was received as it was (an access rule's HOLD, REDIRECT or BCC), for the
    /// delivery log's "received" lines.
    pub note: Option<String>,
    /// What the inbound checks found (`spf=pass dkim=pass …`); `None` when none were made.
    pub auth_results: Option<String>,
    /// The whole message with CRLF line ends, as it will be delivered.
    pub body: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRecipient {
    pub address: String,
    pub orcpt: Option<String>,
    pub notify: Notify,
}

/// Where one recipient of a queued message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecipientStatus {
    /// Not tried yet.
    Pending,
    /// Tried, failed temporarily, tried again at `next_attempt_at`.
    Deferred,
    Delivered,
    /// Failed for good; the sender is owed a DSN.
    Failed,
}

impl RecipientStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientStatus::Pending => "pending",
            RecipientStatus::Deferred => "deferred",
            RecipientStatus::Delivered => "delivered",
            RecipientStatus::Failed => "failed",
        }
    }

    /// Delivered or failed: nothing more will be tried.
    pub fn is_final(self) -> bool {
        matches!(self, RecipientStatus::Delivered | RecipientStatus::Failed)
    }
}

impl fmt::Display for RecipientStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecipientStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(RecipientStatus::Pending),
            "deferred" => Ok(RecipientStatus::Deferred),
            "delivered" => Ok(RecipientStatus::Delivered),
            "failed" => Ok(RecipientStatus::Failed),
            _ => Err(format!("{s:?} is not a status (pending, deferred, delivered, failed)")),
        }
    }
}

/// A queued message without its body: the envelope and each recipient's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueuedMessage {
    pub id: QueueId,
    pub node: String,
    pub sender: String,
    pub envid: Option<String>,
    pub ret: Option<DsnRet>,
    pub smtputf8: bool,
    pub eight_bit: bool,
    pub size: u64,
    pub received_at: i64,
    pub client: String,
    pub auth_user: Option<String>,
    pub held: bool,
    /// What the inbound checks found, if they were made.
    pub auth_results: Option<String>,
    pub recipients: Vec<QueuedRecipient>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueuedRecipient {
    /// Position in the envelope, from 0: names the recipient in a [`DeliveryResult`].
    pub index: u32,
    pub address: String,
    pub orcpt: Option<String>,
    pub notify: Notify,
    pub status: RecipientStatus,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_attempt_at: Option<i64>,
    /// The remote reply (or our own reason) of the last attempt.
    pub last_error: Option<String>,
    pub updated_at: i64,
    /// When the sender was warned that this recipient is delayed (at most once).
    pub delay_warned_at: Option<i64>,
    /// Held on its own (a domain-admin's hold of its recipients of a message that also goes
    /// elsewhere); the message's `held` holds every recipient.
    pub held: bool,
}

/// What an attempt to deliver to one recipient came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered { reply: String },
    Deferred { reply: String, next_attempt_at: i64 },
    Failed { reply: String },
}

/// One recipient's outcome, for [`crate::Store::queue_record_results`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryResult {
    pub id: QueueId,
    pub recipient: u32,
    /// Epoch seconds of the attempt.
    pub at: i64,
    pub outcome: Outcome,
}

/// A row of the queue that the model cannot read, set aside rather than failing a whole load.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DamagedEntry {
    /// The ID column as stored (it may itself be what is damaged).
    pub id: String,
    pub problem: String,
}

/// The engine's start-up view of its node's queue.
#[derive(Clone, Debug, Default)]
pub struct WorkSet {
    pub messages: Vec<QueuedMessage>,
    pub damaged: Vec<DamagedEntry>,
}

/// Which messages a list or a bulk action is about. Every field left `None` matches all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueFilter {
    /// The envelope sender, any case (`Some("")`: the null sender).
    pub sender: Option<String>,
    /// A recipient address, any case.
    pub recipient: Option<String>,
    /// A recipient domain, any case.
    pub domain: Option<String>,
    /// Messages with at least one recipient in this state.
    pub status: Option<RecipientStatus>,
    /// Received before this epoch second.
    pub older_than: Option<i64>,
    /// Received at or after this epoch second.
    pub newer_than: Option<i64>,
    pub held: Option<bool>,
    /// Messages with at least one recipient in one of these domains: a domain-admin's scope.
    /// `Some(vec![])` matches nothing.
    pub domains: Option<Vec<DomainName>>,
    /// A substring, any case, of the sender, a recipient or the queue ID.
    pub search: Option<String>,
    /// `sender` and `recipient` match any part of the address (`boss@`, `example.org`) rather
    /// than the whole of it; either way in any case.
    pub partial: bool,
}

/// One page of a list: `after` is the keyset cursor (the last ID of the previous page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub after: Option<QueueId>,
    pub limit: u32,
}

impl Default for Page {
    fn default() -> Self {
        Page { after: None, limit: 100 }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct QueuePage {
    pub messages: Vec<QueuedMessage>,
    /// Rows of this page that cannot be read, shown apart rather than failing the page.
    pub damaged: Vec<DamagedEntry>,
    /// How many messages match the filter, on all pages.
    pub total: u64,
    /// The cursor for the next page, when there is one.
    pub next: Option<QueueId>,
}

/// An administrator's action on queued messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueAction {
    /// Try its deferred recipients now.
    Retry,
    Hold,
    Release,
    /// Remove without a DSN.
    Delete,
    /// Fail its unfinished recipients; the engine then owes the sender a DSN.
    Bounce,
}

impl QueueAction {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueAction::Retry => "retry",
            QueueAction::Hold => "hold",
            QueueAction::Release => "release",
            QueueAction::Delete => "delete",
            QueueAction::Bounce => "bounce",
        }
    }
}

impl FromStr for QueueAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "retry" => Ok(QueueAction::Retry),
            "hold" => Ok(QueueAction::Hold),
            "release" => Ok(QueueAction::Release),
            "delete" => Ok(QueueAction::Delete),
            "bounce" => Ok(QueueAction::Bounce),
            _ => Err(format!("{s:?} is not a queue action")),
        }
    }
}

/// The messages an action applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// These, each of which must exist.
    Ids(Vec<QueueId>),
    /// Every message that matches now.
    Matching(QueueFilter),
}

/// A queue action recorded for the engine to pick up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueEvent {
    pub id: i64,
    pub at: i64,
    pub message: QueueId,
    pub action: QueueAction,
    /// The recipients (by index) it applied to; `None` for the whole message.
    pub recipients: Option<Vec<u32>>,
}

impl QueueEvent {
    /// Whether the action applied to the recipient at `index`.
    pub fn covers(&self, index: u32) -> bool {
        self.recipients.as_ref().is_none_or(|r| r.contains(&index))
    }
}

/// Who acts on the queue: named in the audit log, and allowed to touch only the recipients in
/// `domains` (`None`: every recipient, as a global admin or the command line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueActor {
    /// `cli:root`, `console:alice`, `api:alice/<token id>`.
    pub actor: String,
    pub domains: Option<Vec<DomainName>>,
}

impl QueueActor {
    /// Every recipient, for `actor`.
    pub fn global(actor: impl Into<String>) -> QueueActor {
        QueueActor { actor: actor.into(), domains: None }
    }

    /// Whether a recipient of this domain (lower case) is the actor's to act on.
    pub fn covers(&self, domain: &str) -> bool {
        self.domains.as_ref().is_none_or(|d| d.iter().any(|d| d.as_str() == domain))
    }
}

/// The reply recorded for recipients an administrator bounces, until their DSN is queued.
pub const BOUNCED_BY_ADMIN: &str = "5.0.0 bounced by the administrator";

/// The reply recorded for an administrator's bounce once its DSN is queued (or none was owed):
/// the recipient no longer owes its sender one, which matters when the message stays queued
/// for recipients in other domains.
pub const BOUNCE_REPORTED: &str = "5.0.0 bounced by the administrator (reported)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_sort_by_time_and_never_repeat() {
        let mut last = None;
        let mut ids = Vec::new();
        for _ in 0..10_000 {
            let id = QueueId::next_after(last);
            last = Some(id);
            ids.push(id);
        }
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].to_string() < pair[1].to_string());
        }
        let text = ids[0].to_string();
        assert_eq!(text.len(), 16);
        assert_eq!(text.parse::<QueueId>().unwrap(), ids[0]);
        assert_eq!(text.to_lowercase().parse::<QueueId>().unwrap(), ids[0]);
        let err = "0J5K2ZQ8T1M4XW3I".parse::<QueueId>().unwrap_err();
        assert!(err.to_string().contains("is not a queue ID"), "{err}");
        assert!("short".parse::<QueueId>().is_err());
    }

    #[test]
    fn notify_shows_like_the_rcpt_parameter() {
        assert_eq!((Notify::SUCCESS | Notify::DELAY).to_string(), "SUCCESS,DELAY");
        assert_eq!(Notify::default().to_string(), "");
        assert!(!Notify::default().is_given());
    }
}
