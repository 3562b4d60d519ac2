//! MTA-STS policies the appliance publishes for its domains (RFC 8461): the policy file served
//! at `https://mta-sts.<domain>/.well-known/mta-sts.txt` (§3.2), and the DNS records to publish
//! with it: `_mta-sts.<domain>` (§3.1) and the TLS reporting address `_smtp._tls.<domain>`
//! (RFC 8460 §3).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{DomainName, name_matches};
use crate::error::StoreError;

/// §3.2: the longest `max_age` a policy may give, about one year.
pub const MAX_STS_AGE: i64 = 31_557_600;
/// One week: what senders cache the policy for unless told otherwise.
pub const DEFAULT_STS_AGE: i64 = 604_800;

/// What the policy asks of senders (§5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StsMode {
    /// Report only: senders deliver as without a policy.
    Testing,
    /// Senders deliver only to the named MX hosts, over TLS with a valid certificate.
    Enforce,
    /// The policy is withdrawn (§8.3).
    None,
}

impl StsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StsMode::Testing => "testing",
            StsMode::Enforce => "enforce",
            StsMode::None => "none",
        }
    }
}

impl fmt::Display for StsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StsMode {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "testing" => Ok(StsMode::Testing),
            "enforce" => Ok(StsMode::Enforce),
            "none" => Ok(StsMode::None),
            other => Err(StoreError::invalid(
                "mode",
                format!("{other:?} is not an MTA-STS mode (testing, enforce or none)"),
            )),
        }
    }
}

/// A domain's hosted MTA-STS policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MtaStsPolicy {
    pub domain: DomainName,
    pub mode: StsMode,
    /// Seconds senders may cache the policy.
    pub max_age: i64,
    /// MX patterns (`mail.example.com`, `*.example.com`); empty means the appliance's host name.
    pub mx: Vec<String>,
    /// Changes whenever the policy does: the `id` of the `_mta-sts` TXT record.
    pub id: String,
    /// Where TLS reports go (RFC 8460): `mailto:` or `https:`; empty for
    /// `mailto:postmaster@<domain>`.
    pub report_to: String,
    pub updated_at: i64,
}

impl MtaStsPolicy {
    /// The MX patterns as served: the configured ones, or `hostname`.
    pub fn mx_or(&self, hostname: &str) -> Vec<String> {
        if self.mx.is_empty() { vec![hostname.to_string()] } else { self.mx.clone() }
    }

    /// The policy file (§3.2), lines ending in CRLF.
    pub fn text(&self, hostname: &str) -> String {
        let mut text = format!("version: STSv1\r\nmode: {}\r\n", self.mode);
        for mx in self.mx_or(hostname) {
            text.push_str(&format!("mx: {mx}\r\n"));
        }
        text.push_str(&format!("max_age: {}\r\n", self.max_age));
        text
    }

    /// The name the policy is fetched from, whose certificate must be valid.
    pub fn policy_host(&self) -> String {
        format!("mta-sts.{}", self.domain)
    }

    /// The `_mta-sts.<domain>` TXT record to publish (§3.1).
    pub fn txt_record(&self) -> (String, String) {
        (format!("_mta-sts.{}", self.domain), format!("v=STSv1; id={}", self.id))
    }

    /// The `_smtp._tls.<domain>` TXT record to publish (RFC 8460 §3).
    pub fn tlsrpt_record(&self) -> (String, String) {
        let rua = if self.report_to.is_empty() {
            format!("mailto:postmaster@{}", self.domain)
        } else {
            self.report_to.clone()
        };
        (format!("_smtp._tls.{}", self.domain), format!("v=TLSRPTv1; rua={rua}"))
    }

    /// Whether `host` is one of the policy's MX names (for the console's advice).
    pub fn names(&self, hostname: &str, host: &str) -> bool {
        self.mx_or(hostname).iter().any(|p| name_matches(p, host))
    }
}

/// The policy id for these settings: a digest of what the policy says, so that it changes
/// exactly when the policy does (1–32 letters and digits, §3.1).
pub fn sts_policy_id(mode: StsMode, max_age: i64, mx: &[String]) -> String {
    let mut hash = Sha256::new();
    hash.update(format!("{mode}\n{max_age}\n{}", mx.join("\n")).as_bytes());
    hash.finalize().iter().take(10).map(|b| format!("{b:02x}")).collect()
}

/// Checks and normalises the MX patterns: host names or `*.` and a domain.
pub fn parse_sts_mx(patterns: &[String]) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for p in patterns.iter().map(|p| p.trim().trim_end_matches('.').to_ascii_lowercase()) {
        if p.is_empty() {
            continue;
        }
        let base = p.strip_prefix("*.").unwrap_or(&p);
        base.parse::<DomainName>().map_err(|e| {
            StoreError::invalid("mx", format!("{p:?} is not a host name or *.domain: {e}"))
        })?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Checks `max_age` (§3.2: at most about a year).
pub fn check_sts_age(max_age: i64) -> Result<(), StoreError> {
    if (1..=MAX_STS_AGE).contains(&max_age) {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "max_age",
            format!("must be between 1 and {MAX_STS_AGE} seconds (a week is {DEFAULT_STS_AGE})"),
        ))
    }
}

/// Checks a TLS report address (RFC 8460 §3): `mailto:` or `https:` URIs, comma-separated.
pub fn check_report_to(report_to: &str) -> Result<(), StoreError> {
    let ok = report_to.is_empty()
        || report_to.split(',').map(str::trim).all(|uri| {
            (uri.starts_with("mailto:") && uri.len() > 7 && uri.contains('@')
                || uri.starts_with("https://") && uri.len() > 8)
                && !uri.chars().any(|c| c.is_control() || c == ';' || c == ' ')
        });
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "report_to",
            "must be mailto:address or https:// URIs, comma-separated",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mx: &[&str]) -> MtaStsPolicy {
        let mx: Vec<String> = mx.iter().map(|m| m.to_string()).collect();
        MtaStsPolicy {
            domain: "example.com".parse().unwrap(),
            mode: StsMode::Enforce,
            max_age: 86_400,
            id: sts_policy_id(StsMode::Enforce, 86_400, &mx),
            mx,
            report_to: String::new(),
            updated_at: 0,
        }
    }

    #[test]
    fn the_policy_file_and_records() {
        let p = policy(&[]);
        assert_eq!(
            p.text("mail.example.net"),
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.net\r\nmax_age: 86400\r\n"
        );
        let p = policy(&["mx1.example.com", "*.example.org"]);
        assert!(p.text("h").contains("mx: mx1.example.com\r\nmx: *.example.org\r\n"));
        assert_eq!(p.txt_record().0, "_mta-sts.example.com");
        assert!(p.txt_record().1.starts_with("v=STSv1; id="));
        assert_eq!(
            p.tlsrpt_record(),
            (
                "_smtp._tls.example.com".into(),
                "v=TLSRPTv1; rua=mailto:postmaster@example.com".into()
            )
        );
    }

    #[test]
    fn the_id_changes_with_the_policy() {
        let a = sts_policy_id(StsMode::Testing, 86_400, &[]);
        assert_eq!(a.len(), 20);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(a, sts_policy_id(StsMode::Testing, 86_400, &[]));
        assert_ne!(a, sts_policy_id(StsMode::Enforce, 86_400, &[]));
        assert_ne!(a, sts_policy_id(StsMode::Testing, 86_401, &[]));
        assert_ne!(a, sts_policy_id(StsMode::Testing, 86_400, &["mx.example.com".into()]));
    }

    #[test]
    fn settings_are_checked() {
        assert_eq!(
            parse_sts_mx(&["MX.Example.com.".into(), "*.example.org".into(), " ".into()]).unwrap(),
            ["mx.example.com", "*.example.org"]
        );
        assert!(parse_sts_mx(&["not a host".into()]).is_err());
        assert!(check_sts_age(0).is_err() && check_sts_age(MAX_STS_AGE + 1).is_err());
        assert!(check_report_to("mailto:tls@example.com").is_ok());
        assert!(check_report_to("mailto:a@example.com, https://r.example.com/x").is_ok());
        assert!(check_report_to("tls@example.com").is_err());
    }
}
