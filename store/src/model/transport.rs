//! Transports: how mail for a destination domain leaves the queue, in Postfix's
//! `transport_maps` spelling (`local`, `lmtp:host:port`, `smtp:[host]:port`, `mx`, `discard`,
//! `error:text`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::DomainName;
use crate::error::StoreError;

/// Which destinations a rule applies to. The most specific match wins: an exact domain, then the
/// longest `.parent`, then `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransportPattern {
    Domain(DomainName),
    /// `.example.com`: every domain below example.com (not example.com itself).
    Subdomains(DomainName),
    /// `*`: every destination without a more specific rule.
    Default,
}

impl TransportPattern {
    /// How specific the match of `domain` is, or `None` when the pattern does not match.
    pub fn specificity(&self, domain: &DomainName) -> Option<usize> {
        match self {
            TransportPattern::Domain(d) => (d == domain).then_some(usize::MAX),
            TransportPattern::Subdomains(parent) => {
                (domain != parent && domain.is_within(parent)).then(|| parent.as_str().len() + 1)
            }
            TransportPattern::Default => Some(0),
        }
    }
}

impl FromStr for TransportPattern {
    type Err = StoreError;
    fn from_str(input: &str) -> Result<Self, StoreError> {
        let input = input.trim();
        let bad = |e: StoreError| StoreError::invalid("pattern", e.to_string());
        if input == "*" {
            Ok(TransportPattern::Default)
        } else if let Some(parent) = input.strip_prefix('.') {
            parent.parse().map(TransportPattern::Subdomains).map_err(bad)
        } else {
            input.parse().map(TransportPattern::Domain).map_err(bad)
        }
    }
}

impl fmt::Display for TransportPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportPattern::Domain(d) => d.fmt(f),
            TransportPattern::Subdomains(d) => write!(f, ".{d}"),
            TransportPattern::Default => f.write_str("*"),
        }
    }
}

impl Serialize for TransportPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A host to connect to: a DNS name or an IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Name(DomainName),
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => n.fmt(f),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => ip.fmt(f),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LmtpTarget {
    Tcp {
        host: Host,
        port: u16,
    },
    /// `lmtp:unix:/run/dovecot/lmtp`
    Unix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Maildir under the data directory.
    Local,
    Lmtp(LmtpTarget),
    /// A next hop. `lookup_mx` is false for `smtp:[host]`, as in Postfix: brackets mean
    /// "connect to this host", without brackets "deliver to this domain's MX".
    Smtp {
        host: Host,
        port: u16,
        lookup_mx: bool,
    },
    /// The destination's own MX hosts (RFC 5321 §5.1); the default for remote domains.
    Mx,
    /// Accept and drop.
    Discard,
    /// Refuse at RCPT with this text.
    Error(String),
}

fn transport_error(input: &str, why: impl fmt::Display) -> StoreError {
    StoreError::invalid(
        "transport",
        format!(
            "{input:?} {why} (expected local, lmtp:HOST:PORT, lmtp:unix:/PATH, smtp:[HOST]:PORT, \
             smtp:DOMAIN, mx, discard or error:TEXT)"
        ),
    )
}

/// `host`, `[host]`, `host:port`, `[host]:port`, `[ipv6]:port`. Returns the host, the port if
/// given, and whether the host was bracketed.
fn parse_host_port(input: &str, whole: &str) -> Result<(Host, Option<u16>, bool), StoreError> {
    let (host, rest, bracketed) = if let Some(inner) = input.strip_prefix('[') {
        let (host, rest) =
            inner.split_once(']').ok_or_else(|| transport_error(whole, "has an unclosed '['"))?;
        (host, rest, true)
    } else {
        match input.rsplit_once(':') {
            Some((host, port)) => (host, &input[host.len()..][..port.len() + 1], false),
            None => (input, "", false),
        }
    };
    let port = match rest {
        "" => None,
        p => {
            let digits =
                p.strip_prefix(':').ok_or_else(|| transport_error(whole, "has junk after ']'"))?;
            Some(
                digits
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| transport_error(whole, format!("has a bad port {digits:?}")))?,
            )
        }
    };
    let host = if let Ok(ip) = host.parse::<IpAddr>() {
        Host::Ip(ip)
    } else {
        Host::Name(host.parse().map_err(|e: StoreError| transport_error(whole, e))?)
    };
    Ok((host, port, bracketed))
}

impl FromStr for Transport {
    type Err = StoreError;

    fn from_str(input: &str) -> Result<Self, StoreError> {
        let whole = input.trim();
        let (kind, arg) = match whole.split_once(':') {
            Some((kind, arg)) => (kind, Some(arg)),
            None => (whole, None),
        };
        match (kind.to_ascii_lowercase().as_str(), arg) {
            ("local", None) => Ok(Transport::Local),
            ("mx", None) => Ok(Transport::Mx),
            ("discard", None) => Ok(Transport::Discard),
            ("error", Some(text)) => {
                let text = text.trim();
                if text.is_empty() || text.len() > 200 || text.chars().any(char::is_control) {
                    Err(transport_error(whole, "needs one line of text, at most 200 characters"))
                } else {
                    Ok(Transport::Error(text.to_string()))
                }
            }
            ("lmtp", Some(arg)) => {
                if let Some(path) = arg.strip_prefix("unix:") {
                    if !path.starts_with('/') || path.chars().any(char::is_control) {
                        return Err(transport_error(whole, "needs an absolute socket path"));
                    }
                    return Ok(Transport::Lmtp(LmtpTarget::Unix(path.to_string())));
                }
                let (host, port, _) = parse_host_port(arg, whole)?;
                // RFC 2033 §4: LMTP must not use port 25; Dovecot's usual port is 24.
                Ok(Transport::Lmtp(LmtpTarget::Tcp { host, port: port.unwrap_or(24) }))
            }
            ("smtp", Some(arg)) => {
                let (host, port, bracketed) = parse_host_port(arg, whole)?;
                let lookup_mx = !bracketed && matches!(host, Host::Name(_));
                Ok(Transport::Smtp { host, port: port.unwrap_or(25), lookup_mx })
            }
            ("local" | "mx" | "discard", Some(_)) => {
                Err(transport_error(whole, "takes no argument"))
            }
            ("lmtp" | "smtp" | "error", None) => Err(transport_error(whole, "needs an argument")),
            _ => Err(transport_error(whole, "is not a transport")),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Local => f.write_str("local"),
            Transport::Mx => f.write_str("mx"),
            Transport::Discard => f.write_str("discard"),
            Transport::Error(text) => write!(f, "error:{text}"),
            Transport::Lmtp(LmtpTarget::Unix(path)) => write!(f, "lmtp:unix:{path}"),
            Transport::Lmtp(LmtpTarget::Tcp { host, port }) => write!(f, "lmtp:{host}:{port}"),
            Transport::Smtp { host, port, lookup_mx: true } => write!(f, "smtp:{host}:{port}"),
            Transport::Smtp { host: Host::Ip(std::net::IpAddr::V6(ip)), port, .. } => {
                write!(f, "smtp:[{ip}]:{port}")
            }
            Transport::Smtp { host, port, lookup_mx: false } => write!(f, "smtp:[{host}]:{port}"),
        }
    }
}

impl Serialize for Transport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// TLS toward the next hop (issue 4 gives these their full meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsPolicy {
    /// Never STARTTLS.
    None,
    /// STARTTLS when offered; an unverifiable certificate still encrypts (RFC 7435).
    #[default]
    May,
    /// TLS required, any certificate.
    Encrypt,
    /// TLS required with a certificate valid for the host name.
    Verify,
}

impl TlsPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsPolicy::None => "none",
            TlsPolicy::May => "may",
            TlsPolicy::Encrypt => "encrypt",
            TlsPolicy::Verify => "verify",
        }
    }
}

impl FromStr for TlsPolicy {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(TlsPolicy::None),
            "may" => Ok(TlsPolicy::May),
            "encrypt" => Ok(TlsPolicy::Encrypt),
            "verify" => Ok(TlsPolicy::Verify),
            _ => Err(StoreError::invalid(
                "tls",
                format!("{s:?} is not a TLS policy (none, may, encrypt or verify)"),
            )),
        }
    }
}

impl fmt::Display for TlsPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Credentials for AUTH at a smarthost. The password has to be kept in a form we can send, so it
/// is never shown: not in `Debug`, not when serialised.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpCredentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for SmtpCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Serialize for SmtpCredentials {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("SmtpCredentials", 2)?;
        st.serialize_field("username", &self.username)?;
        st.serialize_field("password", "<set>")?;
        st.end()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransportRule {
    pub pattern: TransportPattern,
    pub transport: Transport,
    pub tls: TlsPolicy,
    pub auth: Option<SmtpCredentials>,
    pub updated_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_round_trip() {
        for text in [
            "local",
            "mx",
            "discard",
            "error:mailbox moved to example.org",
            "lmtp:127.0.0.1:24",
            "lmtp:[::1]:2424",
            "lmtp:unix:/run/dovecot/lmtp",
            "lmtp:mail.example.com:24",
            "smtp:[relay.example.com]:587",
            "smtp:[192.0.2.1]:25",
            "smtp:[2001:db8::1]:25",
            "smtp:example.com:25",
        ] {
            let t: Transport = text.parse().unwrap();
            assert_eq!(t.to_string(), text);
        }
        assert_eq!(
            "lmtp:localhost.localdomain".parse::<Transport>().unwrap().to_string(),
            "lmtp:localhost.localdomain:24"
        );
        assert_eq!(
            "smtp:[relay.example.com]".parse::<Transport>().unwrap().to_string(),
            "smtp:[relay.example.com]:25"
        );
    }

    #[test]
    fn bad_transports_say_what_is_expected() {
        for bad in [
            "",
            "smtp",
            "smtp:[relay.example.com:25",
            "smtp:[relay.example.com]x",
            "smtp:relay.example.com:0",
            "smtp:relay.example.com:99999",
            "lmtp:unix:relative",
            "error:",
            "local:x",
            "pipe:/bin/sh",
            "smtp:$(reboot):25",
        ] {
            let err = bad.parse::<Transport>().unwrap_err().to_string();
            assert!(
                err.starts_with("transport:") && err.contains("expected local"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn patterns_pick_the_most_specific() {
        let d: DomainName = "a.example.com".parse().unwrap();
        let exact: TransportPattern = "a.example.com".parse().unwrap();
        let sub: TransportPattern = ".example.com".parse().unwrap();
        let all: TransportPattern = "*".parse().unwrap();
        assert!(exact.specificity(&d) > sub.specificity(&d));
        assert!(sub.specificity(&d) > all.specificity(&d));
        let apex: DomainName = "example.com".parse().unwrap();
        assert_eq!(sub.specificity(&apex), None);
    }
}
