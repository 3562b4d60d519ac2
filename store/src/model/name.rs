//! Validated, normalised domain names and addresses as the configuration stores them.
//!
//! SMTP's own address grammar (quoted local parts, source routes) is parsed by the server; here
//! we accept only what an administrator should configure: dot-atom local parts (RFC 5322 §3.2.3,
//! UTF-8 allowed per RFC 6531) and host names (RFC 1035 §2.3.1 LDH labels, IDNs as A-labels).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// A lower-case, ASCII (A-label) domain name with at least two labels.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);

impl DomainName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `self` is `parent` or lies below it.
    pub fn is_within(&self, parent: &DomainName) -> bool {
        self.0 == parent.0
            || (self.0.len() > parent.0.len()
                && self.0.ends_with(&parent.0)
                && self.0.as_bytes()[self.0.len() - parent.0.len() - 1] == b'.')
    }
}

impl FromStr for DomainName {
    type Err = StoreError;

    fn from_str(input: &str) -> Result<Self, StoreError> {
        parse_domain(input).map_err(|why| StoreError::invalid("domain", format!("{input:?} {why}")))
    }
}

fn parse_domain(input: &str) -> Result<DomainName, String> {
    let trimmed = input.trim().trim_end_matches('.');
    if trimmed.is_empty() {
        return Err("is empty".into());
    }
    if trimmed.chars().any(char::is_whitespace) {
        return Err(
            "has a space in it: no spaces in a domain name (only letters, digits, hyphens and dots)"
                .into(),
        );
    }
    // IDNs are stored as A-labels so that lookups and DNS use one spelling (RFC 5890).
    let ascii = idna::domain_to_ascii(trimmed)
        .map_err(|_| "is not a valid internationalised domain name".to_string())?
        .to_ascii_lowercase();
    if ascii.len() > 253 {
        return Err("is longer than 253 characters".into());
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return Err("needs at least two labels (like example.com)".into());
    }
    for label in &labels {
        if label.is_empty() {
            return Err("has an empty label".into());
        }
        if label.len() > 63 {
            return Err(format!("has a label longer than 63 characters ({label})"));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err("may contain only letters, digits, hyphens and dots".into());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("has a label that starts or ends with a hyphen ({label})"));
        }
    }
    let tld = labels[labels.len() - 1];
    if tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err("looks like an IP address, not a domain name".into());
    }
    Ok(DomainName(ascii))
}

impl TryFrom<String> for DomainName {
    type Error = StoreError;
    fn try_from(value: String) -> Result<Self, StoreError> {
        value.parse()
    }
}

impl From<DomainName> for String {
    fn from(value: DomainName) -> String {
        value.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DomainName({})", self.0)
    }
}

/// `local@domain`, local part lower-cased (lookups are case-insensitive, as in Postfix's maps).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address {
    local: String,
    domain: DomainName,
}

/// RFC 5322 §3.2.3 `atext`, less nothing: these are all legal in a dot-atom.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

impl Address {
    pub fn new(local: &str, domain: DomainName) -> Result<Self, StoreError> {
        let local = parse_local(local)
            .map_err(|why| StoreError::invalid("address", format!("{local:?}@{domain}: {why}")))?;
        Ok(Address { local, domain })
    }

    pub fn local(&self) -> &str {
        &self.local
    }

    pub fn domain(&self) -> &DomainName {
        &self.domain
    }

    /// The address without a `+tag` subaddress (RFC 5233), if it has one.
    pub fn without_subaddress(&self) -> Option<Address> {
        let (base, _tag) = self.local.split_once('+')?;
        (!base.is_empty()).then(|| Address { local: base.to_string(), domain: self.domain.clone() })
    }
}

fn parse_local(local: &str) -> Result<String, String> {
    if local.is_empty() {
        return Err("the local part is empty".into());
    }
    // RFC 5321 §4.5.3.1.1: 64 octets, of what is stored: lower case can be longer in UTF-8
    // ("İ" is 2 octets, "i̇" 3), and a stored address must parse again.
    if local.len() > 64 || local.to_lowercase().len() > 64 {
        return Err("the local part is longer than 64 octets".into());
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("the local part may not start or end with a dot, or hold two in a row".into());
    }
    if local.chars().any(char::is_whitespace) {
        return Err("the local part has a space in it: no spaces in an address".into());
    }
    if let Some(bad) = local.chars().find(|&c| c != '.' && !is_atext(c)) {
        return Err(format!("the local part may not contain {bad:?}"));
    }
    Ok(local.to_lowercase())
}

impl FromStr for Address {
    type Err = StoreError;

    fn from_str(input: &str) -> Result<Self, StoreError> {
        let input = input.trim();
        let Some((local, domain)) = input.rsplit_once('@') else {
            return Err(StoreError::invalid(
                "address",
                format!("{input:?} has no @domain: an address needs name@domain"),
            ));
        };
        let domain: DomainName = domain
            .parse()
            .map_err(|e| StoreError::invalid("address", format!("{input:?}: {e}")))?;
        let local = parse_local(local)
            .map_err(|why| StoreError::invalid("address", format!("{input:?}: {why}")))?;
        Ok(Address { local, domain })
    }
}

impl TryFrom<String> for Address {
    type Error = StoreError;
    fn try_from(value: String) -> Result<Self, StoreError> {
        value.parse()
    }
}

impl From<Address> for String {
    fn from(value: Address) -> String {
        value.to_string()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

/// An address, or a whole domain written `@domain`: the two spellings alias sources and send-as
/// entries take.
pub(crate) enum AddressOrDomain {
    Address(Address),
    Domain(DomainName),
}

/// Parses either spelling of [`AddressOrDomain`]; a refusal names `field`, and for a domain
/// says it was taken as `domain_label` (a "catch-all", say).
pub(crate) fn parse_address_or_domain(
    input: &str,
    field: &'static str,
    domain_label: &str,
) -> Result<AddressOrDomain, StoreError> {
    let input = input.trim();
    match input.strip_prefix('@') {
        Some(domain) => domain
            .parse()
            .map(AddressOrDomain::Domain)
            .map_err(|e| StoreError::invalid(field, format!("{domain_label}{input:?}: {e}"))),
        None => input
            .parse()
            .map(AddressOrDomain::Address)
            .map_err(|e: StoreError| StoreError::invalid(field, e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised() {
        let d: DomainName = " Example.COM. ".parse().unwrap();
        assert_eq!(d.as_str(), "example.com");
        let idn: DomainName = "bücher.example".parse().unwrap();
        assert_eq!(idn.as_str(), "xn--bcher-kva.example");
    }

    #[test]
    fn bad_domains_are_refused_with_a_reason() {
        for (input, why) in [
            ("", "empty"),
            ("localhost", "two labels"),
            ("a..b", "empty label"),
            ("-a.com", "hyphen"),
            ("a_b.com", "letters, digits"),
            ("192.168.1.1", "IP address"),
            ("a;rm -rf.com", "letters"),
            ("my domain.com", "no spaces in a domain name"),
        ] {
            let err = input.parse::<DomainName>().unwrap_err().to_string();
            assert!(err.contains(why), "{input:?}: {err}");
            assert!(err.starts_with("domain:"), "{err}");
        }
        let long = format!("{}.com", "a".repeat(64));
        assert!(long.parse::<DomainName>().is_err());
    }

    #[test]
    fn within() {
        let a: DomainName = "mail.example.com".parse().unwrap();
        let b: DomainName = "example.com".parse().unwrap();
        let c: DomainName = "myexample.com".parse().unwrap();
        assert!(a.is_within(&b));
        assert!(b.is_within(&b));
        assert!(!c.is_within(&b));
        assert!(!b.is_within(&a));
    }

    #[test]
    fn addresses() {
        let a: Address = "John.Doe+tag@Example.com".parse().unwrap();
        assert_eq!(a.to_string(), "john.doe+tag@example.com");
        assert_eq!(a.without_subaddress().unwrap().to_string(), "john.doe@example.com");
        assert!("josé@example.com".parse::<Address>().is_ok());
        for bad in [
            "nobody",
            "@example.com",
            "a..b@example.com",
            ".a@example.com",
            "a b@example.com",
            "a@b@example",
            "\"q\"@example.com",
            "a(b)@example.com",
        ] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(long.parse::<Address>().unwrap_err().to_string().contains("64"));
    }
}
