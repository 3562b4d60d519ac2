//! The `[metrics]` section: who may scrape `/metrics`, and an optional listener of its own.
//!
//! `/metrics` answers only when the section is present. A scrape must come from an address in
//! `allow` (loopback unless set: 403 otherwise) and, when `token` is set, carry it as
//! `Authorization: Bearer TOKEN` (401 otherwise). Behind a reverse proxy every request comes
//! from the proxy's address, so set a token there.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::Deserialize;

use super::BootError;

/// The listener the README's example uses (Prometheus's port registry has 9187 free for us).
pub const EXAMPLE_LISTEN: &str = "127.0.0.1:9187";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    listen: Option<String>,
    token: Option<String>,
    allow: Option<Vec<String>>,
}

impl RawMetrics {
    pub(super) fn set_from_env(&mut self, key: &str, value: String) -> bool {
        match key {
            "POSTERN_METRICS_LISTEN" => self.listen = Some(value),
            "POSTERN_METRICS_TOKEN" => self.token = Some(value),
            "POSTERN_METRICS_ALLOW" => {
                self.allow = Some(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect(),
                )
            }
            _ => return false,
        }
        true
    }
}

/// Who may scrape, and where besides the console.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// A listener that serves `/metrics` alone; `None` leaves it on the console's listeners.
    pub listen: Option<SocketAddr>,
    /// The bearer token a scrape must carry; `None` lets `allow` decide alone.
    token: Option<String>,
    /// The client networks a scrape may come from.
    pub allow: Vec<IpNet>,
}

impl fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("allow", &self.allow)
            .finish()
    }
}

/// Why a scrape is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsRefusal {
    /// The client's address is not in `allow` (403).
    Address,
    /// No token, or the wrong one (401).
    Token,
}

impl MetricsConfig {
    /// Loopback only, no token: what `[metrics]` with nothing in it means.
    pub fn loopback() -> MetricsConfig {
        MetricsConfig {
            listen: None,
            token: None,
            allow: vec![
                "127.0.0.0/8".parse().expect("constant"),
                "::1/128".parse().expect("constant"),
            ],
        }
    }

    /// With a token (for tests and the API's documentation).
    pub fn with_token(mut self, token: &str) -> MetricsConfig {
        self.token = Some(token.to_string());
        self
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether a scrape from `peer` with this `Authorization` header value may have the data.
    pub fn admit(
        &self,
        peer: Option<IpAddr>,
        authorization: Option<&str>,
    ) -> Result<(), MetricsRefusal> {
        let peer = peer.map(|ip| ip.to_canonical());
        if !peer.is_some_and(|ip| self.allow.iter().any(|net| net.contains(&ip))) {
            return Err(MetricsRefusal::Address);
        }
        let Some(token) = &self.token else { return Ok(()) };
        let given = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .unwrap_or("");
        match constant_time_eq(given.as_bytes(), token.as_bytes()) {
            true => Ok(()),
            false => Err(MetricsRefusal::Token),
        }
    }
}

/// Compares without stopping at the first difference, so that timing tells nothing of the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl RawMetrics {
    pub(super) fn build(self, origin: &str) -> Result<MetricsConfig, BootError> {
        let invalid = |field: &str, value: &str, message: &str| BootError::Invalid {
            origin: origin.to_string(),
            field: field.to_string(),
            value: value.to_string(),
            message: message.to_string(),
        };
        let mut config = MetricsConfig::loopback();
        if let Some(listen) = self.listen.filter(|l| !l.trim().is_empty()) {
            config.listen = Some(listen.trim().parse().map_err(|_| {
                invalid("metrics.listen", &listen, "is not a socket address (like 127.0.0.1:9187)")
            })?);
        }
        if let Some(token) = self.token {
            // Shown as its length only: the value is a secret.
            if token.trim().len() < 16
                || token.trim() != token
                || token.contains(char::is_whitespace)
            {
                let shown = format!("<{} characters>", token.len());
                return Err(invalid(
                    "metrics.token",
                    &shown,
                    "must be at least 16 characters without spaces (try `openssl rand -hex 24`)",
                ));
            }
            config.token = Some(token);
        }
        if let Some(allow) = self.allow {
            config.allow = allow
                .iter()
                .map(|s| {
                    let s = s.trim();
                    s.parse::<IpNet>().or_else(|_| s.parse::<IpAddr>().map(IpNet::from)).map_err(
                        |_| {
                            invalid("metrics.allow", s, "is not a network (like 10.0.0.0/8 or ::1)")
                        },
                    )
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_then_the_token_decide() {
        let open = MetricsConfig::loopback();
        let local = Some("127.0.0.1".parse().unwrap());
        let far = Some("192.0.2.9".parse().unwrap());
        assert_eq!(open.admit(local, None), Ok(()));
        assert_eq!(open.admit(Some("::ffff:127.0.0.1".parse().unwrap()), None), Ok(()));
        assert_eq!(open.admit(far, None), Err(MetricsRefusal::Address));
        assert_eq!(open.admit(None, None), Err(MetricsRefusal::Address));
        let guarded = open.with_token("0123456789abcdef0123");
        assert_eq!(guarded.admit(local, None), Err(MetricsRefusal::Token));
        assert_eq!(guarded.admit(local, Some("Bearer nope")), Err(MetricsRefusal::Token));
        assert_eq!(guarded.admit(local, Some("Bearer 0123456789abcdef0123")), Ok(()));
        assert_eq!(
            guarded.admit(far, Some("Bearer 0123456789abcdef0123")),
            Err(MetricsRefusal::Address)
        );
        assert!(!format!("{guarded:?}").contains("0123456789"), "the token stays out of Debug");
    }

    #[test]
    fn bad_values_name_the_field() {
        let raw = RawMetrics { token: Some("short".into()), ..Default::default() };
        let err = raw.build("t").unwrap_err().to_string();
        assert!(err.contains("metrics.token") && !err.contains("short"), "{err}");
        let raw = RawMetrics { allow: Some(vec!["nowhere".into()]), ..Default::default() };
        assert!(raw.build("t").unwrap_err().to_string().contains("metrics.allow = \"nowhere\""));
        let raw = RawMetrics {
            listen: Some(EXAMPLE_LISTEN.into()),
            allow: Some(vec!["10.0.0.1".into()]),
            ..Default::default()
        };
        let c = raw.build("t").unwrap();
        assert_eq!(c.listen, Some(EXAMPLE_LISTEN.parse().unwrap()));
        assert_eq!(c.allow, vec!["10.0.0.1/32".parse::<IpNet>().unwrap()]);
    }
}
