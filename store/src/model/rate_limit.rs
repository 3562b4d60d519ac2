//! Rate limits: how many connections, messages, recipients or AUTH failures one key (a client
//! address, its network, an authenticated user, a sender domain) may have in a window, as
//! Postfix's anvil rate limits (`smtpd_client_connection_rate_limit`,
//! `smtpd_client_message_rate_limit`, `smtpd_client_recipient_rate_limit`,
//! `smtpd_client_auth_rate_limit`) but keyed more widely. The engine counts
//! (`server/src/policy/rate.rs`); here are the stored limits and their validation.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::StoreError;

/// What a limit counts under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RateKey {
    /// The client's address (an IPv6 client's /64, as one host often holds a whole /64).
    ClientIp,
    /// The /24 around an IPv4 client, the /64 around an IPv6 one.
    ClientNetwork,
    /// The authenticated user (for AUTH failures: the account name tried).
    User,
    /// The domain of MAIL FROM.
    SenderDomain,
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RateMeasure {
    /// New connections (checked at the greeting: `421 4.7.0`, then close).
    Connections,
    /// MAIL commands (`450 4.7.1` at MAIL).
    Messages,
    /// RCPT commands (`450 4.7.1` at RCPT).
    Recipients,
    /// AUTH attempts that did not succeed (`454 4.7.0`, AUTH refused until the window ends).
    AuthFailures,
}

impl RateKey {
    pub const ALL: [RateKey; 4] =
        [RateKey::ClientIp, RateKey::ClientNetwork, RateKey::User, RateKey::SenderDomain];

    pub fn as_str(self) -> &'static str {
        match self {
            RateKey::ClientIp => "client-ip",
            RateKey::ClientNetwork => "client-network",
            RateKey::User => "user",
            RateKey::SenderDomain => "sender-domain",
        }
    }
}

impl RateMeasure {
    pub const ALL: [RateMeasure; 4] = [
        RateMeasure::Connections,
        RateMeasure::Messages,
        RateMeasure::Recipients,
        RateMeasure::AuthFailures,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RateMeasure::Connections => "connections",
            RateMeasure::Messages => "messages",
            RateMeasure::Recipients => "recipients",
            RateMeasure::AuthFailures => "auth-failures",
        }
    }

    /// The keys this measure can be counted under: a connection has no user or sender yet,
    /// and an AUTH has no sender.
    pub fn keys(self) -> &'static [RateKey] {
        match self {
            RateMeasure::Connections => &[RateKey::ClientIp, RateKey::ClientNetwork],
            RateMeasure::AuthFailures => {
                &[RateKey::ClientIp, RateKey::ClientNetwork, RateKey::User]
            }
            RateMeasure::Messages | RateMeasure::Recipients => &RateKey::ALL,
        }
    }
}

impl fmt::Display for RateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for RateMeasure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RateKey {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<RateKey, StoreError> {
        RateKey::ALL.into_iter().find(|k| k.as_str() == s.trim()).ok_or_else(|| {
            StoreError::invalid(
                "key",
                format!("{s:?} is not a key: client-ip, client-network, user or sender-domain"),
            )
        })
    }
}

impl FromStr for RateMeasure {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<RateMeasure, StoreError> {
        RateMeasure::ALL.into_iter().find(|m| m.as_str() == s.trim()).ok_or_else(|| {
            StoreError::invalid(
                "measure",
                format!(
                    "{s:?} is not a measure: connections, messages, recipients or auth-failures"
                ),
            )
        })
    }
}

/// The largest threshold and window accepted: beyond them a limit means nothing.
pub const MAX_RATE_THRESHOLD: i64 = 10_000_000;
pub const MAX_RATE_WINDOW: i64 = 7 * 24 * 3600;

/// A stored limit: at most `threshold` events of `measure` per `key` in `window_secs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    pub id: i64,
    pub key: RateKey,
    pub measure: RateMeasure,
    pub threshold: i64,
    pub window_secs: i64,
    pub description: String,
    pub created_at: i64,
}

/// A limit to add, or the new values of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRateLimit {
    pub key: RateKey,
    pub measure: RateMeasure,
    pub threshold: i64,
    pub window_secs: i64,
    pub description: String,
}

impl NewRateLimit {
    pub fn check(&self) -> Result<(), StoreError> {
        if !self.measure.keys().contains(&self.key) {
            let keys: Vec<&str> = self.measure.keys().iter().map(|k| k.as_str()).collect();
            return Err(StoreError::invalid(
                "key",
                format!("{} are counted per {} only", self.measure, keys.join(", ")),
            ));
        }
        if !(1..=MAX_RATE_THRESHOLD).contains(&self.threshold) {
            return Err(StoreError::invalid(
                "threshold",
                format!("the threshold is from 1 to {MAX_RATE_THRESHOLD}"),
            ));
        }
        if !(1..=MAX_RATE_WINDOW).contains(&self.window_secs) {
            return Err(StoreError::invalid(
                "window",
                "the window is from 1 second to 7 days (like 60s, 10m, 1h, 1d)",
            ));
        }
        if self.description.len() > 200 || self.description.chars().any(char::is_control) {
            return Err(StoreError::invalid("description", "at most 200 characters, on one line"));
        }
        Ok(())
    }
}

impl RateLimit {
    /// "30 auth-failures per client-ip per 1h".
    pub fn summary(&self) -> String {
        format!(
            "{} {} per {} per {}",
            self.threshold,
            self.measure,
            self.key,
            format_window(self.window_secs)
        )
    }
}

/// A window as written: seconds, or a number with `s`, `m`, `h` or `d`.
pub fn parse_window(text: &str) -> Result<i64, StoreError> {
    let t = text.trim();
    let bad = || {
        StoreError::invalid("window", format!("{text:?} is not a window (like 60s, 10m, 1h, 1d)"))
    };
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, "s"),
    };
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let unit = match unit.trim() {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86400,
        _ => return Err(bad()),
    };
    n.checked_mul(unit).ok_or_else(bad)
}

/// The window in the largest unit it is a whole number of: `1h`, `90s`.
pub fn format_window(secs: i64) -> String {
    for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60)] {
        if secs > 0 && secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(key: RateKey, measure: RateMeasure, threshold: i64, window: i64) -> NewRateLimit {
        NewRateLimit { key, measure, threshold, window_secs: window, description: String::new() }
    }

    #[test]
    fn windows_read_and_print() {
        assert_eq!(parse_window("60").unwrap(), 60);
        assert_eq!(parse_window("10m").unwrap(), 600);
        assert_eq!(parse_window(" 1h ").unwrap(), 3600);
        assert_eq!(parse_window("2d").unwrap(), 172_800);
        assert!(parse_window("h").is_err());
        assert!(parse_window("5y").is_err());
        assert!(parse_window("99999999999999999999").is_err());
        assert_eq!(format_window(3600), "1h");
        assert_eq!(format_window(90), "90s");
        assert_eq!(format_window(120), "2m");
    }

    #[test]
    fn keys_and_measures_read_back() {
        for k in RateKey::ALL {
            assert_eq!(k.as_str().parse::<RateKey>().unwrap(), k);
        }
        for m in RateMeasure::ALL {
            assert_eq!(m.as_str().parse::<RateMeasure>().unwrap(), m);
        }
        assert!("ip".parse::<RateKey>().is_err());
    }

    #[test]
    fn only_sensible_limits_are_accepted() {
        use RateKey::*;
        use RateMeasure::*;
        assert!(new(ClientIp, Connections, 60, 60).check().is_ok());
        assert!(new(User, Connections, 60, 60).check().is_err(), "no user at connect");
        assert!(new(SenderDomain, AuthFailures, 5, 60).check().is_err());
        assert!(new(SenderDomain, Messages, 5, 60).check().is_ok());
        assert!(new(ClientIp, Messages, 0, 60).check().is_err());
        assert!(new(ClientIp, Messages, 1, 0).check().is_err());
        assert!(new(ClientIp, Messages, 1, MAX_RATE_WINDOW + 1).check().is_err());
        let mut bad = new(ClientIp, Messages, 1, 60);
        bad.description = "a\nb".into();
        assert!(bad.check().is_err());
    }
}
