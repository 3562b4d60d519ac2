//! Policy services: external policy servers that Postern asks at RCPT or at the end of DATA with
//! Postfix's policy delegation protocol (SMTPD_POLICY_README), like postgrey or policyd-spf.
//! Each has a timeout and says what a service that hangs, dies or answers garbage means: go on
//! (fail open, DUNNO) or refuse for now (fail closed, `451 4.3.5`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Where a service listens: `inet:host:port` or `unix:/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAddress {
    Inet { host: String, port: u16 },
    Unix(PathBuf),
}

impl FromStr for ServiceAddress {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        let s = s.trim();
        let bad = || {
            StoreError::invalid(
                "address",
                format!("{s:?}: write inet:host:port (like inet:127.0.0.1:10023) or unix:/path"),
            )
        };
        if s.len() > 300 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad());
        }
        if let Some(path) = s.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(bad());
            }
            return Ok(ServiceAddress::Unix(PathBuf::from(path)));
        }
        let rest = s.strip_prefix("inet:").unwrap_or(s);
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let port: u16 = port.parse().ok().filter(|&p| p > 0).ok_or_else(bad)?;
        if host.is_empty() || host.contains(['/', '@']) {
            return Err(bad());
        }
        Ok(ServiceAddress::Inet { host: host.to_ascii_lowercase(), port })
    }
}

impl fmt::Display for ServiceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceAddress::Inet { host, port } if host.contains(':') => {
                write!(f, "inet:[{host}]:{port}")
            }
            ServiceAddress::Inet { host, port } => write!(f, "inet:{host}:{port}"),
            ServiceAddress::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl Serialize for ServiceAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ServiceAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// When a service is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceStage {
    /// For each recipient that the other checks accepted (`protocol_state=RCPT`).
    Rcpt,
    /// Once the message is whole (`protocol_state=END-OF-MESSAGE`).
    Data,
}

impl ServiceStage {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStage::Rcpt => "rcpt",
            ServiceStage::Data => "data",
        }
    }
}

impl fmt::Display for ServiceStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServiceStage {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rcpt" => Ok(ServiceStage::Rcpt),
            "data" | "end-of-message" => Ok(ServiceStage::Data),
            _ => Err(StoreError::invalid("stage", format!("{s:?}: use rcpt or data"))),
        }
    }
}

/// What a service that cannot answer (hung, down, garbage) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Fail open: go on as if it had said DUNNO.
    Dunno,
    /// Fail closed: refuse for now with `451 4.3.5`, so that the client tries again later.
    Defer,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Dunno => "dunno",
            OnFailure::Defer => "defer",
        }
    }
}

impl fmt::Display for OnFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OnFailure {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "dunno" | "open" | "fail-open" => Ok(OnFailure::Dunno),
            "defer" | "closed" | "fail-closed" => Ok(OnFailure::Defer),
            _ => Err(StoreError::invalid("on_failure", format!("{s:?}: use dunno or defer"))),
        }
    }
}

/// Longest timeout accepted: Postfix's `smtpd_policy_service_timeout` is 100 s, and a client
/// waits at most 5 minutes for a reply to RCPT (RFC 5321 §4.5.3.2.3).
pub const MAX_SERVICE_TIMEOUT: Duration = Duration::from_secs(100);
pub const DEFAULT_SERVICE_TIMEOUT: Duration = Duration::from_secs(10);

/// A service as it is added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPolicyService {
    pub name: String,
    pub address: ServiceAddress,
    pub stage: ServiceStage,
    /// How long one request may take, connecting included.
    #[serde(with = "millis")]
    pub timeout: Duration,
    pub on_failure: OnFailure,
    pub enabled: bool,
    #[serde(default)]
    pub description: String,
}

/// A stored service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyService {
    pub name: String,
    pub address: ServiceAddress,
    pub stage: ServiceStage,
    #[serde(with = "millis")]
    pub timeout: Duration,
    pub on_failure: OnFailure,
    pub enabled: bool,
    pub description: String,
    pub created_at: i64,
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Checks a service's name: 1 to 64 of `a-z 0-9 - _ .`.
pub fn check_service_name(name: &str) -> Result<(), StoreError> {
    let good = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if good {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "name",
            format!("{name:?}: 1 to 64 lower-case letters, digits, '-', '_' or '.'"),
        ))
    }
}

/// Parses a timeout: milliseconds, or with a unit (`500ms`, `10s`).
pub fn parse_service_timeout(text: &str) -> Result<Duration, StoreError> {
    let t = text.trim().to_ascii_lowercase();
    let (digits, scale) = if let Some(ms) = t.strip_suffix("ms") {
        (ms, 1)
    } else if let Some(s) = t.strip_suffix('s') {
        (s, 1000)
    } else {
        (t.as_str(), 1)
    };
    let bad = || {
        StoreError::invalid(
            "timeout",
            format!(
                "{text:?}: milliseconds, or with a unit like 500ms or 10s, from 1ms to {}s",
                MAX_SERVICE_TIMEOUT.as_secs()
            ),
        )
    };
    let n: u64 = digits.trim().parse().map_err(|_| bad())?;
    let d = Duration::from_millis(n.checked_mul(scale).ok_or_else(bad)?);
    if d.is_zero() || d > MAX_SERVICE_TIMEOUT {
        return Err(bad());
    }
    Ok(d)
}

impl NewPolicyService {
    /// Parses a service from text fields, as the CLI, the API and the console's form give it;
    /// an empty timeout is the default (10 s), an empty on_failure is dunno.
    pub fn parse(
        name: &str,
        address: &str,
        stage: &str,
        timeout: &str,
        on_failure: &str,
        enabled: bool,
        description: &str,
    ) -> Result<NewPolicyService, StoreError> {
        let name = name.trim().to_string();
        check_service_name(&name)?;
        let new = NewPolicyService {
            name,
            address: address.parse()?,
            stage: stage.parse()?,
            timeout: if timeout.trim().is_empty() {
                DEFAULT_SERVICE_TIMEOUT
            } else {
                parse_service_timeout(timeout)?
            },
            on_failure: if on_failure.trim().is_empty() {
                OnFailure::Dunno
            } else {
                on_failure.parse()?
            },
            enabled,
            description: description.trim().to_string(),
        };
        new.check()?;
        Ok(new)
    }

    pub fn check(&self) -> Result<(), StoreError> {
        check_service_name(&self.name)?;
        if self.timeout.is_zero() || self.timeout > MAX_SERVICE_TIMEOUT {
            return Err(StoreError::invalid(
                "timeout",
                format!("from 1ms to {}s", MAX_SERVICE_TIMEOUT.as_secs()),
            ));
        }
        if self.description.chars().count() > 200 || self.description.chars().any(char::is_control)
        {
            return Err(StoreError::invalid(
                "description",
                "must be one line of at most 200 characters",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a: ServiceAddress = "inet:127.0.0.1:10023".parse().unwrap();
        assert_eq!(a, ServiceAddress::Inet { host: "127.0.0.1".into(), port: 10023 });
        assert_eq!(a.to_string(), "inet:127.0.0.1:10023");
        let a: ServiceAddress = "inet:[::1]:10023".parse().unwrap();
        assert_eq!(a.to_string(), "inet:[::1]:10023");
        let a: ServiceAddress = "Policy.Example:9998".parse().unwrap();
        assert_eq!(a.to_string(), "inet:policy.example:9998");
        let a: ServiceAddress = "unix:/run/postgrey.sock".parse().unwrap();
        assert_eq!(a.to_string(), "unix:/run/postgrey.sock");
        for bad in ["unix:relative", "inet:host", "inet:host:0", "inet::25", "inet:a b:1", ""] {
            assert!(bad.parse::<ServiceAddress>().is_err(), "{bad}");
        }
    }

    #[test]
    fn services_parse() {
        let s = NewPolicyService::parse("grey", "inet:127.0.0.1:10023", "rcpt", "", "", true, "")
            .unwrap();
        assert_eq!((s.timeout, s.on_failure), (DEFAULT_SERVICE_TIMEOUT, OnFailure::Dunno));
        let s = NewPolicyService::parse("grey", "unix:/x", "data", "250ms", "defer", false, "")
            .unwrap();
        assert_eq!(
            (s.stage, s.timeout, s.on_failure),
            (ServiceStage::Data, Duration::from_millis(250), OnFailure::Defer)
        );
        assert_eq!(parse_service_timeout("3s").unwrap(), Duration::from_secs(3));
        assert!(parse_service_timeout("0").is_err());
        assert!(parse_service_timeout("101s").is_err());
        assert!(NewPolicyService::parse("Bad Name", "unix:/x", "rcpt", "", "", true, "").is_err());
        assert!(NewPolicyService::parse("x", "unix:/x", "mail", "", "", true, "").is_err());
        assert!(NewPolicyService::parse("x", "unix:/x", "rcpt", "", "maybe", true, "").is_err());
    }
}
