//! DKIM keys (RFC 6376, RFC 8463 for Ed25519): one domain may hold several, each named by its
//! selector, each in a rollout state. The public half is the DNS record to publish; the private
//! half is stored sealed and never leaves the store except to sign.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Serialize, Serializer};

use super::DomainName;

/// The two algorithms RFC 8301 and RFC 8463 leave: `rsa-sha256` and `ed25519-sha256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimAlgorithm {
    Ed25519,
    Rsa,
}

impl DkimAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            DkimAlgorithm::Ed25519 => "ed25519",
            DkimAlgorithm::Rsa => "rsa",
        }
    }
}

impl fmt::Display for DkimAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DkimAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ed25519" => Ok(DkimAlgorithm::Ed25519),
            "rsa" => Ok(DkimAlgorithm::Rsa),
            other => Err(format!("unknown DKIM algorithm {other:?}: use ed25519 or rsa")),
        }
    }
}

/// RSA sizes: 2048 unless asked; 1024 is refused (RFC 8301 §3.2 says at least 1024, and large
/// receivers now treat 1024 as weak), and over 4096 does not fit a DNS answer comfortably.
pub const DEFAULT_RSA_BITS: u32 = 2048;
pub const RSA_BITS: [u32; 3] = [2048, 3072, 4096];

/// Checks an RSA key size (`None` for the default).
pub fn check_bits(algorithm: DkimAlgorithm, bits: Option<u32>) -> Result<u32, String> {
    match (algorithm, bits) {
        (DkimAlgorithm::Ed25519, None | Some(256)) => Ok(256),
        (DkimAlgorithm::Ed25519, Some(n)) => {
            Err(format!("Ed25519 keys have no size to choose ({n} bits given): leave --bits out"))
        }
        (DkimAlgorithm::Rsa, None) => Ok(DEFAULT_RSA_BITS),
        (DkimAlgorithm::Rsa, Some(n)) if RSA_BITS.contains(&n) => Ok(n),
        (DkimAlgorithm::Rsa, Some(n)) if n < DEFAULT_RSA_BITS => Err(format!(
            "RSA keys of {n} bits are too weak for DKIM today: use 2048 (the default), 3072 or 4096"
        )),
        (DkimAlgorithm::Rsa, Some(n)) => {
            Err(format!("RSA keys of {n} bits are not offered: use 2048, 3072 or 4096"))
        }
    }
}

/// Where a key is in its rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimState {
    /// Generated; its record has not been seen in DNS yet. Does not sign.
    Pending,
    /// Signs.
    Active,
    /// No longer signs; its record stays published until `retire_after`, for mail in flight.
    Retiring,
    /// Its record may be removed.
    Retired,
}

impl DkimState {
    pub fn as_str(self) -> &'static str {
        match self {
            DkimState::Pending => "pending",
            DkimState::Active => "active",
            DkimState::Retiring => "retiring",
            DkimState::Retired => "retired",
        }
    }
}

impl fmt::Display for DkimState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DkimState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(DkimState::Pending),
            "active" => Ok(DkimState::Active),
            "retiring" => Ok(DkimState::Retiring),
            "retired" => Ok(DkimState::Retired),
            other => Err(format!("unknown DKIM key state {other:?}")),
        }
    }
}

/// What the last DNS check found at the key's record name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "status", content = "found")]
pub enum DnsCheck {
    /// The record is there and carries this key.
    Published,
    /// No DKIM record at the name.
    Missing,
    /// A DKIM record with another key (or broken): what was found.
    Different(String),
    /// The lookup failed (SERVFAIL, timeout): nothing is known.
    Failed(String),
}

impl DnsCheck {
    pub fn status(&self) -> &'static str {
        match self {
            DnsCheck::Published => "published",
            DnsCheck::Missing => "missing",
            DnsCheck::Different(_) => "different",
            DnsCheck::Failed(_) => "failed",
        }
    }

    pub fn found(&self) -> Option<&str> {
        match self {
            DnsCheck::Different(s) | DnsCheck::Failed(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn from_parts(status: &str, found: Option<String>) -> Option<DnsCheck> {
        let found = found.unwrap_or_default();
        match status {
            "published" => Some(DnsCheck::Published),
            "missing" => Some(DnsCheck::Missing),
            "different" => Some(DnsCheck::Different(found)),
            "failed" => Some(DnsCheck::Failed(found)),
            _ => None,
        }
    }
}

/// The private key, PKCS#8 DER. Never shown: not in `Debug`, not serialised.
#[derive(Clone, PartialEq, Eq)]
pub struct DkimPrivateKey(Arc<Vec<u8>>);

impl DkimPrivateKey {
    pub fn new(pkcs8_der: Vec<u8>) -> DkimPrivateKey {
        DkimPrivateKey(Arc::new(pkcs8_der))
    }

    /// PKCS#8 DER, to build a signing key from.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for DkimPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DkimPrivateKey(<redacted>)")
    }
}

/// One DKIM key of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DkimKey {
    pub domain: DomainName,
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// 256 for Ed25519; the modulus size for RSA.
    pub bits: u32,
    /// The `p=` value: base64 of the raw 32-byte key for Ed25519 (RFC 8463 §4.2), of the
    /// SubjectPublicKeyInfo for RSA (RFC 6376 §3.6.1).
    pub public_key: String,
    #[serde(skip)]
    pub private_key: DkimPrivateKey,
    pub state: DkimState,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    /// When it stopped signing.
    pub retiring_at: Option<i64>,
    /// Until when its record must stay published (set as it starts retiring).
    pub retire_after: Option<i64>,
    pub retired_at: Option<i64>,
    pub dns_checked_at: Option<i64>,
    pub dns: Option<DnsCheck>,
}

/// DNS character-strings hold at most 255 octets (RFC 1035 §3.3); a longer TXT record is
/// several strings, which verifiers join (RFC 6376 §3.6.2.2).
pub const TXT_STRING_MAX: usize = 255;

impl DkimKey {
    /// `<selector>._domainkey.<domain>` (RFC 6376 §3.6.2.1).
    pub fn record_name(&self) -> String {
        record_name(&self.selector, &self.domain)
    }

    /// The TXT record's value, as one string.
    pub fn record_value(&self) -> String {
        format!("v=DKIM1; k={}; p={}", self.algorithm, self.public_key)
    }

    /// The value split into character-strings of at most 255 octets.
    pub fn record_strings(&self) -> Vec<String> {
        split_txt(&self.record_value())
    }

    /// The value as a zone file writes it: each character-string quoted.
    pub fn record_zone(&self) -> String {
        self.record_strings().iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(" ")
    }

    /// Whether the published TXT value (strings joined) carries this key.
    pub fn matches(&self, published: &str) -> bool {
        parse_tags(published).is_some_and(|tags| {
            let get = |name: &str| tags.iter().find(|(t, _)| t == name).map(|(_, v)| v.as_str());
            let k = get("k").unwrap_or("rsa");
            let p: String = get("p").unwrap_or("").chars().filter(|c| !c.is_whitespace()).collect();
            get("v").is_none_or(|v| v == "DKIM1")
                && k.eq_ignore_ascii_case(self.algorithm.as_str())
                && p == self.public_key
        })
    }
}

/// `<selector>._domainkey.<domain>`.
pub fn record_name(selector: &str, domain: &DomainName) -> String {
    format!("{selector}._domainkey.{domain}")
}

/// Splits a TXT value into strings of at most 255 octets (the value is ASCII).
pub fn split_txt(value: &str) -> Vec<String> {
    value
        .as_bytes()
        .chunks(TXT_STRING_MAX)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}

/// `tag=value; …` (RFC 6376 §3.2), or `None` if it is not a tag list.
fn parse_tags(text: &str) -> Option<Vec<(String, String)>> {
    let mut tags = Vec::new();
    for part in text.split(';') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (name, value) = part.split_once('=')?;
        tags.push((name.trim().to_string(), value.trim().to_string()));
    }
    Some(tags)
}

/// Whether a published TXT value is a DKIM key record at all.
pub fn is_dkim_record(text: &str) -> bool {
    parse_tags(text).is_some_and(|tags| {
        tags.iter().any(|(t, v)| t == "v" && v == "DKIM1") || tags.iter().any(|(t, _)| t == "p")
    })
}

/// A selector is a sub-domain (RFC 6376 §3.1): dot-separated labels of letters, digits and
/// hyphens. Returned in lower case.
pub fn check_selector(selector: &str) -> Result<String, String> {
    let selector = selector.trim().to_ascii_lowercase();
    let ok_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if selector.is_empty() || selector.len() > 63 || !selector.split('.').all(ok_label) {
        return Err(format!(
            "{selector:?} is not a selector: use letters, digits and hyphens (like s20261207)"
        ));
    }
    Ok(selector)
}

/// The selector a new key gets unless one is given: the date (`s20261207`), so that a record
/// name says when its key was made; a second key the same day gets a letter (`s20261207b`).
pub fn dated_selector(now: i64, taken: &[&str]) -> String {
    let (y, m, d) = civil_from_days(now.div_euclid(86_400));
    let base = format!("s{y:04}{m:02}{d:02}");
    if !taken.contains(&base.as_str()) {
        return base;
    }
    (b'b'..=b'z')
        .map(|c| format!("{base}{}", c as char))
        .find(|s| !taken.contains(&s.as_str()))
        .unwrap_or_else(|| format!("{base}-{now}"))
}

/// Days since 1970-01-01 to a calendar date (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A freshly made key pair: the PKCS#8 private key and the `p=` value.
pub struct GeneratedKey {
    pub private_key: DkimPrivateKey,
    pub public_key: String,
}

/// Makes a key pair with aws-lc-rs. RSA keys of 4096 bits take a few seconds: call it off the
/// async runtime's threads.
pub fn generate(algorithm: DkimAlgorithm, bits: u32) -> Result<GeneratedKey, String> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair;
    match algorithm {
        DkimAlgorithm::Ed25519 => {
            let rng = aws_lc_rs::rand::SystemRandom::new();
            let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| "the system's random source failed".to_string())?;
            let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                .map_err(|e| format!("cannot read the new Ed25519 key: {e}"))?;
            Ok(GeneratedKey {
                public_key: STANDARD.encode(pair.public_key().as_ref()),
                private_key: DkimPrivateKey::new(pkcs8.as_ref().to_vec()),
            })
        }
        DkimAlgorithm::Rsa => {
            let size = match bits {
                2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
                3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
                n => return Err(format!("RSA keys of {n} bits are not offered")),
            };
            let pair = aws_lc_rs::rsa::KeyPair::generate(size)
                .map_err(|_| "cannot generate an RSA key".to_string())?;
            let pkcs8: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                pair.as_der().map_err(|_| "cannot encode the RSA key".to_string())?;
            let spki: aws_lc_rs::encoding::PublicKeyX509Der<'static> =
                pair.public_key().as_der().map_err(|_| "cannot encode the RSA key".to_string())?;
            Ok(GeneratedKey {
                public_key: STANDARD.encode(spki.as_ref()),
                private_key: DkimPrivateKey::new(pkcs8.as_ref().to_vec()),
            })
        }
    }
}

impl Serialize for DkimPrivateKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_selectors_and_their_checks() {
        // 2026-12-07 00:00:00 UTC
        assert_eq!(dated_selector(1_796_601_600, &[]), "s20261207");
        assert_eq!(dated_selector(1_796_601_600, &["s20261207"]), "s20261207b");
        assert_eq!(dated_selector(0, &[]), "s19700101");
        assert_eq!(check_selector("Mail-2026.Dec").unwrap(), "mail-2026.dec");
        for bad in ["", "a_b", "-a", "a..b", "a b"] {
            assert!(check_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_sizes() {
        assert_eq!(check_bits(DkimAlgorithm::Rsa, None), Ok(2048));
        assert_eq!(check_bits(DkimAlgorithm::Rsa, Some(4096)), Ok(4096));
        assert!(check_bits(DkimAlgorithm::Rsa, Some(1024)).unwrap_err().contains("too weak"));
        assert!(check_bits(DkimAlgorithm::Rsa, Some(8192)).is_err());
        assert!(check_bits(DkimAlgorithm::Ed25519, Some(2048)).is_err());
    }

    fn key(algorithm: DkimAlgorithm, bits: u32) -> DkimKey {
        let made = generate(algorithm, bits).unwrap();
        DkimKey {
            domain: "example.test".parse().unwrap(),
            selector: "s1".into(),
            algorithm,
            bits,
            public_key: made.public_key,
            private_key: made.private_key,
            state: DkimState::Pending,
            created_at: 0,
            activated_at: None,
            retiring_at: None,
            retire_after: None,
            retired_at: None,
            dns_checked_at: None,
            dns: None,
        }
    }

    #[test]
    fn records_split_into_255_octet_strings_and_match_what_is_published() {
        let ed = key(DkimAlgorithm::Ed25519, 256);
        assert_eq!(ed.record_name(), "s1._domainkey.example.test");
        assert_eq!(ed.record_strings().len(), 1);
        assert!(ed.record_value().starts_with("v=DKIM1; k=ed25519; p="));
        assert_eq!(STANDARD.decode(&ed.public_key).unwrap().len(), 32, "raw key, RFC 8463");
        assert!(ed.matches(&ed.record_value()));
        assert!(ed.matches(&format!("k=ed25519;p={} ", ed.public_key)));
        assert!(!ed.matches("v=DKIM1; k=ed25519; p=AAAA"));

        let rsa = key(DkimAlgorithm::Rsa, 2048);
        let strings = rsa.record_strings();
        assert!(strings.len() == 2 && strings[0].len() == 255, "{strings:?}");
        assert_eq!(strings.concat(), rsa.record_value());
        assert!(rsa.record_zone().starts_with("\"v=DKIM1; k=rsa; p=MIIB"));
        assert!(rsa.matches(&rsa.record_value()));
        assert!(!format!("{rsa:?}").contains(&STANDARD.encode(rsa.private_key.pkcs8_der())));
        let json = serde_json::to_string(&rsa).unwrap();
        assert!(!json.contains("private_key") && json.contains("\"state\":\"pending\""), "{json}");
    }
}
