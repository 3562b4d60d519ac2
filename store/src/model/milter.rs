//! Milters (Sendmail/Postfix mail filters such as OpenDKIM, ClamAV or rspamd): the ordered list
//! of filters the SMTP engine calls during each session, where each one listens, how long it may
//! take, and what happens to mail when it is down, hangs or breaks the protocol.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Where a milter listens, written as Postfix writes it: `inet:host:port` or `unix:/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MilterAddress {
    Inet { host: String, port: u16 },
    Unix(PathBuf),
}

impl FromStr for MilterAddress {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        let bad = |why: &str| {
            StoreError::invalid(
                "address",
                format!("{s:?} {why}: write inet:host:port (inet:127.0.0.1:8891) or unix:/path"),
            )
        };
        let s = s.trim();
        if s.len() > 512 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("is not one short word"));
        }
        if let Some(path) = s.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(bad("needs an absolute socket path"));
            }
            return Ok(MilterAddress::Unix(PathBuf::from(path)));
        }
        let Some(rest) = s.strip_prefix("inet:") else { return Err(bad("has no inet: or unix:")) };
        let Some((host, port)) = rest.rsplit_once(':') else { return Err(bad("has no port")) };
        // `inet:[::1]:8891` as well as `inet:::1:8891`.
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let port: u16 = port.parse().ok().filter(|&p| p != 0).ok_or_else(|| bad("has no port"))?;
        if host.is_empty() || host.contains(['/', '@']) {
            return Err(bad("has no host"));
        }
        Ok(MilterAddress::Inet { host: host.to_ascii_lowercase(), port })
    }
}

impl fmt::Display for MilterAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MilterAddress::Inet { host, port } if host.contains(':') => {
                write!(f, "inet:[{host}]:{port}")
            }
            MilterAddress::Inet { host, port } => write!(f, "inet:{host}:{port}"),
            MilterAddress::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl Serialize for MilterAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What the engine does with mail when a milter cannot be reached, does not answer in time or
/// breaks the protocol (Postfix's `milter_default_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MilterDefault {
    /// Go on without this milter, as if it had accepted.
    Accept,
    /// Refuse for now (`451 4.7.1`): the client tries again later.
    Tempfail,
    /// Refuse for good (`550 5.7.1`).
    Reject,
}

impl MilterDefault {
    pub const ALL: [MilterDefault; 3] =
        [MilterDefault::Accept, MilterDefault::Tempfail, MilterDefault::Reject];

    pub fn as_str(self) -> &'static str {
        match self {
            MilterDefault::Accept => "accept",
            MilterDefault::Tempfail => "tempfail",
            MilterDefault::Reject => "reject",
        }
    }
}

impl fmt::Display for MilterDefault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MilterDefault {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        MilterDefault::ALL
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                StoreError::invalid(
                    "default_action",
                    format!("{s:?} is not a default action: use accept, tempfail or reject"),
                )
            })
    }
}

/// Which listeners' sessions a milter sees. `submission` covers port 587 and port 465.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MilterListeners {
    pub smtp: bool,
    pub submission: bool,
}

impl Default for MilterListeners {
    fn default() -> Self {
        MilterListeners { smtp: true, submission: true }
    }
}

impl FromStr for MilterListeners {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        let mut out = MilterListeners { smtp: false, submission: false };
        for word in s.split([',', ' ']).map(str::trim).filter(|w| !w.is_empty()) {
            match word.to_ascii_lowercase().as_str() {
                "smtp" => out.smtp = true,
                "submission" | "submissions" => out.submission = true,
                _ => {
                    return Err(StoreError::invalid(
                        "listeners",
                        format!("{word:?} is not a listener: use smtp, submission or both"),
                    ));
                }
            }
        }
        if !out.smtp && !out.submission {
            return Err(StoreError::invalid("listeners", "name smtp, submission or both"));
        }
        Ok(out)
    }
}

impl fmt::Display for MilterListeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.smtp, self.submission) {
            (true, true) => f.write_str("smtp,submission"),
            (true, false) => f.write_str("smtp"),
            _ => f.write_str("submission"),
        }
    }
}

/// How long a milter may take, in milliseconds (Postfix's `milter_connect_timeout`,
/// `milter_command_timeout`, `milter_content_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MilterTimeouts {
    /// To connect and negotiate.
    pub connect_ms: u64,
    /// To answer one command (connect, HELO, MAIL, RCPT, DATA, a header, a body chunk).
    pub command_ms: u64,
    /// To answer the end of the message, its modifications included; a progress message from
    /// the milter starts this time again.
    pub eom_ms: u64,
}

/// Longest timeout accepted: an hour.
pub const MAX_MILTER_TIMEOUT_MS: u64 = 3_600_000;

impl Default for MilterTimeouts {
    fn default() -> Self {
        MilterTimeouts { connect_ms: 30_000, command_ms: 30_000, eom_ms: 300_000 }
    }
}

impl MilterTimeouts {
    pub fn connect(&self) -> Duration {
        Duration::from_millis(self.connect_ms)
    }
    pub fn command(&self) -> Duration {
        Duration::from_millis(self.command_ms)
    }
    pub fn eom(&self) -> Duration {
        Duration::from_millis(self.eom_ms)
    }

    pub fn check(&self) -> Result<(), StoreError> {
        for (field, ms) in [
            ("connect_timeout_ms", self.connect_ms),
            ("command_timeout_ms", self.command_ms),
            ("eom_timeout_ms", self.eom_ms),
        ] {
            if ms == 0 || ms > MAX_MILTER_TIMEOUT_MS {
                return Err(StoreError::invalid(
                    field,
                    format!("must be 1 to {MAX_MILTER_TIMEOUT_MS} milliseconds"),
                ));
            }
        }
        Ok(())
    }
}

/// Parses a duration as an administrator writes it: `30s`, `500ms`, `5m`, or bare seconds.
pub fn parse_timeout(field: &'static str, text: &str) -> Result<u64, StoreError> {
    let t = text.trim();
    let (digits, scale) = if let Some(d) = t.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = t.strip_suffix('s') {
        (d, 1000)
    } else if let Some(d) = t.strip_suffix('m') {
        (d, 60_000)
    } else {
        (t, 1000)
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&ms| ms > 0 && ms <= MAX_MILTER_TIMEOUT_MS)
        .ok_or_else(|| {
            StoreError::invalid(field, format!("{text:?} is not a duration like 30s, 500ms or 5m"))
        })
}

/// A configured milter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Milter {
    pub id: i64,
    /// 1 is called first.
    pub position: i64,
    pub name: String,
    pub address: MilterAddress,
    pub default_action: MilterDefault,
    pub timeouts: MilterTimeouts,
    pub listeners: MilterListeners,
    pub enabled: bool,
    pub created_at: i64,
}

/// A milter to add.
#[derive(Debug, Clone)]
pub struct NewMilter {
    pub name: String,
    pub address: MilterAddress,
    pub default_action: MilterDefault,
    pub timeouts: MilterTimeouts,
    pub listeners: MilterListeners,
    pub enabled: bool,
}

impl NewMilter {
    pub fn check(&self) -> Result<(), StoreError> {
        check_name(&self.name)?;
        self.timeouts.check()
    }
}

/// A milter's name: what the logs and the delivery log call it (`milter clamav: reject …`).
pub fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "name",
            format!("{name:?}: 1 to 64 letters, digits, '-', '_' or '.'"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a: MilterAddress = "inet:127.0.0.1:8891".parse().unwrap();
        assert_eq!(a, MilterAddress::Inet { host: "127.0.0.1".into(), port: 8891 });
        assert_eq!(a.to_string(), "inet:127.0.0.1:8891");
        let v6: MilterAddress = "inet:[::1]:11332".parse().unwrap();
        assert_eq!(v6.to_string(), "inet:[::1]:11332");
        assert_eq!("inet:::1:11332".parse::<MilterAddress>().unwrap(), v6);
        let u: MilterAddress = "unix:/run/clamav/milter.sock".parse().unwrap();
        assert_eq!(u.to_string(), "unix:/run/clamav/milter.sock");
        for bad in
            ["", "127.0.0.1:8891", "inet:host", "inet:host:0", "inet::25", "unix:rel", "inet:a b:1"]
        {
            assert!(bad.parse::<MilterAddress>().is_err(), "{bad}");
        }
    }

    #[test]
    fn listeners_defaults_and_timeouts() {
        assert_eq!("smtp".parse::<MilterListeners>().unwrap().to_string(), "smtp");
        assert_eq!(
            "Submission, smtp".parse::<MilterListeners>().unwrap(),
            MilterListeners::default()
        );
        assert!("".parse::<MilterListeners>().is_err());
        assert!("lmtp".parse::<MilterListeners>().is_err());
        assert_eq!("TempFail".parse::<MilterDefault>().unwrap(), MilterDefault::Tempfail);
        assert!("skip".parse::<MilterDefault>().is_err());
        assert_eq!(parse_timeout("t", "30s").unwrap(), 30_000);
        assert_eq!(parse_timeout("t", "250ms").unwrap(), 250);
        assert_eq!(parse_timeout("t", "5m").unwrap(), 300_000);
        assert_eq!(parse_timeout("t", "7").unwrap(), 7000);
        assert!(parse_timeout("t", "0").is_err());
        assert!(parse_timeout("t", "2h").is_err());
        assert!(check_name("clamav").is_ok());
        assert!(check_name("a b").is_err());
        assert!(check_name("").is_err());
    }
}
