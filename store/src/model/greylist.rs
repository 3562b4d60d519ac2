//! Built-in greylisting: which recipient domains use it, its delays, and the state machine of one
//! triplet (client network, sender, recipient). The state machine lives here so that the engine,
//! the console's "what would happen now" test and the CLI judge a triplet the same way; the
//! engine keeps the records (`repo/greylist.rs`) and a cache in front of them.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::DomainName;
use crate::error::StoreError;

/// postgrey's defaults: `--delay=300`, `--retry-window=2d`, `--max-age=35d`.
pub const DEFAULT_DELAY: i64 = 300;
pub const DEFAULT_RETRY_WINDOW: i64 = 2 * 86_400;
pub const DEFAULT_EXPIRE: i64 = 35 * 86_400;
/// A passed triplet's `last_seen` is written again only this long after the stored one, so that
/// a steady correspondent costs no database write per message.
pub const REFRESH: i64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GreylistSettings {
    /// Seconds a new triplet must wait before a retry is accepted.
    pub delay: i64,
    /// Seconds after the first attempt within which a retry still counts; later, the triplet
    /// starts over.
    pub retry_window: i64,
    /// Seconds a passed triplet is remembered after it was last seen (the auto-whitelist).
    pub expire: i64,
}

impl Default for GreylistSettings {
    fn default() -> Self {
        GreylistSettings {
            delay: DEFAULT_DELAY,
            retry_window: DEFAULT_RETRY_WINDOW,
            expire: DEFAULT_EXPIRE,
        }
    }
}

impl GreylistSettings {
    /// Refuses settings under which nothing could ever pass, or that keep records for years.
    pub fn check(self) -> Result<Self, StoreError> {
        if !(1..=86_400).contains(&self.delay) {
            return Err(StoreError::invalid("delay", "must be 1 second to 1 day"));
        }
        if self.retry_window <= self.delay || self.retry_window > 30 * 86_400 {
            return Err(StoreError::invalid(
                "retry_window",
                "must be longer than the delay and at most 30 days",
            ));
        }
        if self.expire < self.retry_window || self.expire > 366 * 86_400 {
            return Err(StoreError::invalid(
                "expire",
                "must be at least the retry window and at most a year",
            ));
        }
        Ok(self)
    }
}

/// Which recipient domains are greylisted, and how.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Greylisting {
    pub settings: GreylistSettings,
    pub domains: BTreeSet<DomainName>,
}

impl Greylisting {
    /// True when mail to `domain` is greylisted.
    pub fn covers(&self, domain: &str) -> bool {
        !self.domains.is_empty()
            && domain.parse::<DomainName>().is_ok_and(|d| self.domains.contains(&d))
    }
}

/// What greylisting remembers a message by: the client's network (its /24 or /64, since big
/// senders retry from another address of the same pool), the sender and the recipient, both
/// lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Triplet {
    pub client: String,
    pub sender: String,
    pub recipient: String,
}

impl Triplet {
    pub fn new(client: IpAddr, sender: &str, recipient: &str) -> Triplet {
        let prefix = if client.is_ipv4() { 24 } else { 64 };
        let net = IpNet::new(client, prefix).map(|n| n.trunc()).unwrap_or_else(|_| client.into());
        Triplet {
            client: net.to_string(),
            sender: sender.to_ascii_lowercase(),
            recipient: recipient.to_ascii_lowercase(),
        }
    }
}

/// One stored triplet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GreylistRecord {
    pub triplet: Triplet,
    /// The first attempt of this round.
    pub first_seen: i64,
    /// The latest attempt as stored (refreshed at most once per [`REFRESH`] once passed).
    pub last_seen: i64,
    /// When a retry was accepted: from then on the triplet passes at once.
    pub passed_at: Option<i64>,
}

/// What greylisting does with one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum GreylistVerdict {
    /// `450 4.7.1`: come back in `wait` seconds.
    Defer { wait: i64, first: bool },
    /// Accepted: the retry came in time, or the triplet passed before.
    Pass { first_pass: bool },
}

/// The verdict on an attempt `now`, the record as it stands after it, and whether the record
/// must be written (only when its state changes, or a passed one's `last_seen` is a day old).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: GreylistVerdict,
    pub record: GreylistRecord,
    pub write: bool,
}

/// The state machine of one triplet (postgrey's): unknown or forgotten, it is deferred and
/// remembered; retried before the delay, deferred again with the time left; retried between
/// the delay and the end of the retry window, it passes and is remembered as passed; a passed
/// triplet passes until it was not seen for `expire`.
pub fn judge(
    triplet: &Triplet,
    stored: Option<&GreylistRecord>,
    now: i64,
    settings: &GreylistSettings,
) -> Judgement {
    let fresh = || Judgement {
        verdict: GreylistVerdict::Defer { wait: settings.delay, first: true },
        record: GreylistRecord {
            triplet: triplet.clone(),
            first_seen: now,
            last_seen: now,
            passed_at: None,
        },
        write: true,
    };
    let Some(stored) = stored else { return fresh() };
    match stored.passed_at {
        Some(_) if now - stored.last_seen > settings.expire => fresh(),
        Some(_) => Judgement {
            verdict: GreylistVerdict::Pass { first_pass: false },
            write: now - stored.last_seen >= REFRESH,
            record: GreylistRecord {
                last_seen: if now - stored.last_seen >= REFRESH { now } else { stored.last_seen },
                ..stored.clone()
            },
        },
        None if now - stored.first_seen > settings.retry_window => fresh(),
        None if now - stored.first_seen < settings.delay => Judgement {
            verdict: GreylistVerdict::Defer {
                wait: stored.first_seen + settings.delay - now,
                first: false,
            },
            record: stored.clone(),
            write: false,
        },
        None => Judgement {
            verdict: GreylistVerdict::Pass { first_pass: true },
            record: GreylistRecord { last_seen: now, passed_at: Some(now), ..stored.clone() },
            write: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triplets_group_clients_by_network() {
        let t = Triplet::new("192.0.2.77".parse().unwrap(), "A@Sender.Test", "Ann@Example.Test");
        assert_eq!(t.client, "192.0.2.0/24");
        assert_eq!(
            (t.sender.as_str(), t.recipient.as_str()),
            ("a@sender.test", "ann@example.test")
        );
        let t = Triplet::new("2001:db8:1:2:3:4:5:6".parse().unwrap(), "", "x@y.test");
        assert_eq!(t.client, "2001:db8:1:2::/64");
    }

    #[test]
    fn state_machine_on_a_simulated_clock() {
        let s = GreylistSettings::default();
        let t = Triplet::new("192.0.2.1".parse().unwrap(), "a@b.test", "c@d.test");
        let start = 1_000_000;

        let first = judge(&t, None, start, &s);
        assert_eq!(first.verdict, GreylistVerdict::Defer { wait: 300, first: true });
        assert!(first.write);

        // Too early: deferred with the time left, nothing to write.
        let early = judge(&t, Some(&first.record), start + 100, &s);
        assert_eq!(early.verdict, GreylistVerdict::Defer { wait: 200, first: false });
        assert!(!early.write);

        // After the delay: passes, and is remembered as passed.
        let retry = judge(&t, Some(&first.record), start + 300, &s);
        assert_eq!(retry.verdict, GreylistVerdict::Pass { first_pass: true });
        assert!(retry.write && retry.record.passed_at == Some(start + 300));

        // A passed triplet passes at once; last_seen is written once a day at most.
        let later = judge(&t, Some(&retry.record), start + 3600, &s);
        assert_eq!(later.verdict, GreylistVerdict::Pass { first_pass: false });
        assert!(!later.write);
        let next_day = judge(&t, Some(&retry.record), start + 300 + REFRESH, &s);
        assert!(next_day.write && next_day.record.last_seen == start + 300 + REFRESH);

        // Forgotten after `expire` without mail.
        let gone = judge(&t, Some(&retry.record), start + 301 + DEFAULT_EXPIRE, &s);
        assert_eq!(gone.verdict, GreylistVerdict::Defer { wait: 300, first: true });

        // A retry after the retry window starts over.
        let late = judge(&t, Some(&first.record), start + DEFAULT_RETRY_WINDOW + 1, &s);
        assert_eq!(late.verdict, GreylistVerdict::Defer { wait: 300, first: true });
        assert_eq!(late.record.first_seen, start + DEFAULT_RETRY_WINDOW + 1);
    }

    #[test]
    fn settings_are_checked() {
        assert!(GreylistSettings::default().check().is_ok());
        let s = GreylistSettings { delay: 0, ..Default::default() };
        assert!(s.check().is_err());
        let s = GreylistSettings { retry_window: 10, ..Default::default() };
        assert!(s.check().is_err());
        let s = GreylistSettings { expire: 3600, ..Default::default() };
        assert!(s.check().is_err());
    }

    #[test]
    fn covers_only_listed_domains() {
        let mut g = Greylisting::default();
        assert!(!g.covers("example.test"));
        g.domains.insert("example.test".parse().unwrap());
        assert!(g.covers("Example.Test"));
        assert!(!g.covers("other.test"));
    }
}
