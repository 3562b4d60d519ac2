//! TLS certificates the appliance serves (uploaded or issued by an ACME CA), the ACME orders that
//! obtain them, and the validation every chain and key passes before it is stored.

use std::fmt;
use std::str::FromStr;

use rustls_pki_types::{PrivateKeyDer, pem::PemObject};
use serde::{Deserialize, Serialize};
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::DomainName;
use crate::error::StoreError;

/// Where a stored certificate came from. The self-signed fallback is not stored: it is what the
/// engine serves while no stored certificate fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertificateSource {
    Acme,
    Upload,
}

impl CertificateSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateSource::Acme => "acme",
            CertificateSource::Upload => "upload",
        }
    }
}

impl fmt::Display for CertificateSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CertificateSource {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "acme" => Ok(CertificateSource::Acme),
            "upload" => Ok(CertificateSource::Upload),
            other => Err(StoreError::invalid(
                "source",
                format!("{other:?} is not a certificate source (acme or upload)"),
            )),
        }
    }
}

/// What may be shown of a stored certificate: everything but its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateInfo {
    pub id: i64,
    /// The DNS names of the leaf (subjectAltName, else the common name), lowercase; a wildcard
    /// is kept as `*.example.com`.
    pub names: Vec<String>,
    /// The issuer's distinguished name, as text.
    pub issuer: String,
    pub not_before: i64,
    pub not_after: i64,
    pub source: CertificateSource,
    /// The ACME directory URL that issued it, for ACME certificates.
    pub acme_directory: Option<String>,
    pub created_at: i64,
}

impl CertificateInfo {
    /// Whether the certificate covers `name` exactly or by a wildcard (one label, RFC 6125 §6.4.3).
    pub fn covers(&self, name: &str) -> bool {
        self.names.iter().any(|n| name_matches(n, name))
    }

    /// Whether it is inside its validity period at `now`.
    pub fn is_valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now < self.not_after
    }
}

/// Whether the certificate name `pattern` (a DNS name or `*.parent`) matches `name`.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let name = name.trim_end_matches('.');
    if let Some(parent) = pattern.strip_prefix("*.") {
        return name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(parent));
    }
    pattern.eq_ignore_ascii_case(name)
}

/// Which certificate a TLS client asking for `sni` gets: one naming it exactly, else one
/// covering it by a wildcard, else the host name's; among several, the valid one that expires
/// last. `None`: none fits, and the caller serves its self-signed fallback. Certificates outside
/// their validity period at `now` are never chosen.
pub fn choose_certificate<'a, T>(
    items: &'a [T],
    info: impl Fn(&T) -> &CertificateInfo,
    sni: Option<&str>,
    hostname: &str,
    now: i64,
) -> Option<&'a T> {
    let best = |fits: &dyn Fn(&CertificateInfo) -> bool| {
        items
            .iter()
            .filter(|item| info(item).is_valid_at(now) && fits(info(item)))
            .max_by_key(|item| (info(item).not_after, info(item).id))
    };
    if let Some(name) = sni.map(|n| n.trim_end_matches('.')).filter(|n| !n.is_empty()) {
        let exact = |c: &CertificateInfo| {
            c.names.iter().any(|n| !n.starts_with("*.") && n.eq_ignore_ascii_case(name))
        };
        let wildcard = |c: &CertificateInfo| {
            c.names.iter().any(|n| n.starts_with("*.") && name_matches(n, name))
        };
        if let Some(found) = best(&exact).or_else(|| best(&wildcard)) {
            return Some(found);
        }
    }
    best(&|c: &CertificateInfo| c.covers(hostname))
}

/// A PEM private key. It is never shown: `Debug` redacts it and it has no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyPem(String);

impl PrivateKeyPem {
    pub fn new(pem: String) -> Self {
        PrivateKeyPem(pem)
    }

    /// The PEM text, for handing to the TLS library and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyPem(<redacted>)")
    }
}

/// A stored certificate with what it takes to serve it: the chain and the (opened) key.
#[derive(Debug, Clone)]
pub struct ServingCertificate {
    pub info: CertificateInfo,
    /// The leaf first, then the intermediates, as PEM.
    pub chain_pem: String,
    pub key_pem: PrivateKeyPem,
}

/// How the ACME CA is to check that we control a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Challenge {
    /// RFC 8555 §8.3: a file under `/.well-known/acme-challenge/` on port 80.
    #[serde(rename = "http-01")]
    Http01,
    /// RFC 8737: a special certificate on port 443, chosen by ALPN `acme-tls/1`.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

impl Challenge {
    pub fn as_str(self) -> &'static str {
        match self {
            Challenge::Http01 => "http-01",
            Challenge::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Challenge {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "http-01" => Ok(Challenge::Http01),
            "tls-alpn-01" => Ok(Challenge::TlsAlpn01),
            other => Err(StoreError::invalid(
                "challenge",
                format!("{other:?} is not a challenge type (http-01 or tls-alpn-01)"),
            )),
        }
    }
}

/// Where an ACME order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderState {
    /// Requested, or waiting for its next attempt.
    Pending,
    /// The CA is checking the challenges.
    Validating,
    /// Done: the certificate is stored (`certificate_id`).
    Issued,
    /// Given up; `error` says why, in the CA's words.
    Failed,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Pending => "pending",
            OrderState::Validating => "validating",
            OrderState::Issued => "issued",
            OrderState::Failed => "failed",
        }
    }

    /// Whether the engine still works on it.
    pub fn is_open(self) -> bool {
        matches!(self, OrderState::Pending | OrderState::Validating)
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderState {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(OrderState::Pending),
            "validating" => Ok(OrderState::Validating),
            "issued" => Ok(OrderState::Issued),
            "failed" => Ok(OrderState::Failed),
            other => Err(StoreError::invalid("state", format!("{other:?} is not an order state"))),
        }
    }
}

/// One request for a certificate from the ACME CA, and its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AcmeOrder {
    pub id: i64,
    pub names: Vec<String>,
    pub challenge: Challenge,
    pub state: OrderState,
    /// The last failure, in the CA's own words.
    pub error: Option<String>,
    pub attempts: i64,
    pub next_attempt_at: i64,
    /// The certificate it produced.
    pub certificate_id: Option<i64>,
    /// The certificate it renews.
    pub replaces: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Why a chain and key were refused. The message is written for the person who uploaded them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CertificateError(pub String);

impl From<CertificateError> for StoreError {
    fn from(e: CertificateError) -> Self {
        StoreError::Invalid { field: "certificate", message: e.0 }
    }
}

/// A chain and key that passed [`parse_certificate`], normalised to PEM.
#[derive(Debug, Clone)]
pub struct ParsedCertificate {
    pub names: Vec<String>,
    pub issuer: String,
    pub not_before: i64,
    pub not_after: i64,
    /// The certificates only, leaf first, re-encoded as PEM (whatever else the file held dropped).
    pub chain_pem: String,
    pub key_pem: PrivateKeyPem,
}

fn fail<T>(message: impl Into<String>) -> Result<T, CertificateError> {
    Err(CertificateError(message.into()))
}

/// Checks an uploaded (or issued) certificate chain and its private key: the chain is PEM
/// certificates, the server's own first and each next one the issuer of the one before; the key is
/// the leaf's; the leaf names at least one DNS name, is not a CA, and is valid at `now`.
pub fn parse_certificate(
    chain_pem: &str,
    key_pem: &str,
    now: i64,
) -> Result<ParsedCertificate, CertificateError> {
    let mut ders = Vec::new();
    for (i, pem) in Pem::iter_from_buffer(chain_pem.as_bytes()).enumerate() {
        let pem = match pem {
            Ok(pem) => pem,
            Err(e) => {
                return fail(format!(
                    "the certificate file is not valid PEM (block {}): {e}",
                    i + 1
                ));
            }
        };
        match pem.label.as_str() {
            "CERTIFICATE" => ders.push(pem.contents),
            label if label.contains("PRIVATE KEY") => {
                return fail(
                    "the certificate file holds a private key: give the key as its own file, and \
                     only certificates in the certificate file",
                );
            }
            // Parameters and the like that some tools add: not part of the chain.
            _ => {}
        }
    }
    if ders.is_empty() {
        return fail(
            "no certificate found: expected PEM text starting with -----BEGIN CERTIFICATE-----",
        );
    }
    let mut certs = Vec::new();
    for (i, der) in ders.iter().enumerate() {
        match X509Certificate::from_der(der) {
            Ok((_, cert)) => certs.push(cert),
            Err(e) => {
                return fail(format!("certificate {} in the file cannot be read: {e}", i + 1));
            }
        }
    }

    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
        CertificateError(format!(
            "no private key found in the key file ({e}): expected PEM text starting with \
             -----BEGIN PRIVATE KEY----- (or RSA/EC PRIVATE KEY)"
        ))
    })?;
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).map_err(|e| {
        CertificateError(format!(
            "the private key cannot be used (RSA, ECDSA P-256/P-384 or Ed25519 keys are): {e}"
        ))
    })?;
    let public = signing.public_key().ok_or_else(|| {
        CertificateError("the private key's public half cannot be derived".into())
    })?;
    let leaf = &certs[0];
    if leaf.tbs_certificate.subject_pki.raw != public.as_ref() {
        if let Some(i) =
            certs.iter().position(|c| c.tbs_certificate.subject_pki.raw == public.as_ref())
        {
            return fail(format!(
                "the key belongs to certificate {} in the file, not the first: put the server's \
                 own certificate first, then the CA certificates that issued it",
                i + 1
            ));
        }
        return fail(
            "the private key does not match the certificate: it belongs to another certificate \
             (check that the key file is the one made with this certificate's request)",
        );
    }

    for (i, pair) in certs.windows(2).enumerate() {
        if pair[0].issuer().as_raw() != pair[1].subject().as_raw() {
            return fail(format!(
                "the chain is out of order: certificate {} is not the issuer of certificate {} \
                 ({}); put the server's certificate first, then each issuer in turn",
                i + 2,
                i + 1,
                pair[0].issuer()
            ));
        }
    }

    if leaf.is_ca() {
        return fail(
            "the first certificate is a CA certificate: the file must start with the server's own \
             certificate",
        );
    }
    let names = leaf_names(leaf)?;
    let not_before = leaf.validity().not_before.timestamp();
    let not_after = leaf.validity().not_after.timestamp();
    if not_after <= now {
        return fail(format!("the certificate expired on {}", leaf.validity().not_after));
    }
    // A few minutes of grace for clocks that disagree with the CA's.
    if not_before > now + 300 {
        return fail(format!(
            "the certificate is not valid yet: it starts on {}",
            leaf.validity().not_before
        ));
    }

    let chain_pem =
        ders.iter().map(|der| pem_block("CERTIFICATE", der)).collect::<Vec<_>>().concat();
    let key_pem = match &key {
        PrivateKeyDer::Pkcs1(k) => pem_block("RSA PRIVATE KEY", k.secret_pkcs1_der()),
        PrivateKeyDer::Sec1(k) => pem_block("EC PRIVATE KEY", k.secret_sec1_der()),
        PrivateKeyDer::Pkcs8(k) => pem_block("PRIVATE KEY", k.secret_pkcs8_der()),
        _ => return fail("this kind of private key is not supported"),
    };
    Ok(ParsedCertificate {
        names,
        issuer: leaf.issuer().to_string(),
        not_before,
        not_after,
        chain_pem,
        key_pem: PrivateKeyPem(key_pem),
    })
}

/// The DNS names a leaf is for: its subjectAltName DNS entries, or its common name when it has no
/// subjectAltName (older certificates).
fn leaf_names(leaf: &X509Certificate<'_>) -> Result<Vec<String>, CertificateError> {
    let mut raw: Vec<String> = Vec::new();
    match leaf.subject_alternative_name() {
        Ok(Some(san)) => {
            for name in &san.value.general_names {
                if let GeneralName::DNSName(dns) = name {
                    raw.push(dns.to_string());
                }
            }
        }
        Ok(None) => {
            raw.extend(
                leaf.subject()
                    .iter_common_name()
                    .filter_map(|cn| cn.as_str().ok())
                    .map(String::from),
            );
        }
        Err(e) => return fail(format!("the certificate's subjectAltName cannot be read: {e}")),
    }
    let mut names = Vec::new();
    for name in raw {
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        let base = lower.strip_prefix("*.").unwrap_or(&lower);
        if base.parse::<DomainName>().is_err() {
            return fail(format!("the certificate names {name:?}, which is not a DNS name"));
        }
        if !names.contains(&lower) {
            names.push(lower);
        }
    }
    if names.is_empty() {
        return fail("the certificate names no DNS name (no subjectAltName DNS entry)");
    }
    Ok(names)
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::certs::{TestCa, leaf};

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_good_chain_is_read_and_normalised() {
        let ca = TestCa::new("Test CA");
        let (chain, key) =
            ca.issue(&["mail.example.com", "*.example.org"], NOW - 86400, NOW + 86400 * 90);
        let parsed = parse_certificate(&format!("junk before\n{chain}"), &key, NOW).unwrap();
        assert_eq!(parsed.names, vec!["mail.example.com", "*.example.org"]);
        assert!(parsed.issuer.contains("Test CA"), "{}", parsed.issuer);
        assert_eq!(parsed.not_after, NOW + 86400 * 90);
        assert_eq!(parsed.chain_pem.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(!format!("{parsed:?}").contains("PRIVATE"), "the key is redacted");
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let ca = TestCa::new("Test CA");
        let (chain, key) = ca.issue(&["mail.example.com"], NOW - 86400, NOW + 86400);
        let (_, other_key) = ca.issue(&["mail.example.com"], NOW - 86400, NOW + 86400);
        let err = |c: &str, k: &str| parse_certificate(c, k, NOW).unwrap_err().0;

        assert!(err(&chain, &other_key).contains("does not match"));
        assert!(err("", &key).contains("no certificate found"));
        assert!(err(&chain, "").contains("no private key found"));
        assert!(err(&format!("{chain}{key}"), &key).contains("holds a private key"));
        // Issuer first, leaf second.
        let blocks: Vec<&str> = chain.split_inclusive("-----END CERTIFICATE-----\n").collect();
        let reversed = format!("{}{}", blocks[1], blocks[0]);
        assert!(err(&reversed, &key).contains("put the server's own certificate first"));
        // A stranger's certificate in the middle.
        let stranger = TestCa::new("Other CA");
        let (other_chain, _) = stranger.issue(&["x.example.com"], NOW - 10, NOW + 10);
        let other_ca = other_chain.split_inclusive("-----END CERTIFICATE-----\n").nth(1).unwrap();
        assert!(err(&format!("{}{other_ca}", blocks[0]), &key).contains("out of order"));

        let (old, old_key) = ca.issue(&["mail.example.com"], NOW - 86400 * 2, NOW - 86400);
        assert!(err(&old, &old_key).contains("expired on"));
        let (early, early_key) = ca.issue(&["mail.example.com"], NOW + 86400, NOW + 86400 * 2);
        assert!(err(&early, &early_key).contains("not valid yet"));
        let (bad, bad_key) = leaf(&["not a name!"], NOW - 10, NOW + 10);
        assert!(err(&bad, &bad_key).contains("not a DNS name"));
    }

    #[test]
    fn names_match_exactly_or_by_one_wildcard_label() {
        assert!(name_matches("mail.example.com", "MAIL.example.com."));
        assert!(name_matches("*.example.com", "a.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("mail.example.com", "example.com"));
    }

    fn cert(id: i64, names: &[&str], not_after: i64) -> CertificateInfo {
        CertificateInfo {
            id,
            names: names.iter().map(|n| n.to_string()).collect(),
            issuer: "CN=Test".into(),
            not_before: NOW - 100,
            not_after,
            source: CertificateSource::Upload,
            acme_directory: None,
            created_at: NOW - 100,
        }
    }

    #[test]
    fn the_choice_is_exact_then_wildcard_then_the_host_name() {
        let host = "mail.example.com";
        let certs = vec![
            cert(1, &["mail.example.com"], NOW + 1000),
            cert(2, &["*.example.org"], NOW + 1000),
            cert(3, &["www.example.org"], NOW + 500),
            cert(4, &["mail.example.com"], NOW + 2000),
            cert(5, &["old.example.org"], NOW - 1),
        ];
        let pick =
            |sni: Option<&str>| choose_certificate(&certs, |c| c, sni, host, NOW).map(|c| c.id);
        assert_eq!(pick(Some("www.example.org")), Some(3), "exact beats a later wildcard");
        assert_eq!(pick(Some("WWW.Example.ORG.")), Some(3));
        assert_eq!(pick(Some("mta-sts.example.org")), Some(2), "then the wildcard");
        assert_eq!(pick(Some("mail.example.com")), Some(4), "the one expiring last");
        assert_eq!(pick(Some("other.example.net")), Some(4), "then the host name's");
        assert_eq!(pick(None), Some(4), "no SNI: the host name's");
        assert_eq!(pick(Some("old.example.org")), Some(2), "an expired one is never chosen");
        assert_eq!(choose_certificate(&certs[1..3], |c| c, None, host, NOW), None, "fallback");
        let later = NOW + 1500;
        assert_eq!(choose_certificate(&certs, |c| c, None, host, later).map(|c| c.id), Some(4));
    }

    #[test]
    fn the_key_is_never_shown() {
        let key = PrivateKeyPem::new("-----BEGIN PRIVATE KEY-----\nsecret".into());
        assert_eq!(format!("{key:?}"), "PrivateKeyPem(<redacted>)");
    }
}
