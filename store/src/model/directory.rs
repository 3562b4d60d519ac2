//! A domain's directory (LDAP or Active Directory): where its mailboxes and their passwords
//! come from when they are not Postern's own. The engine asks it at RCPT (does this address
//! exist?) and at AUTH (bind as the user's entry); the settings here are plain data with their
//! validation, the search filter and the reading of address values, so that the console's test,
//! the CLI and the engine build the same query.

use std::fmt;
use std::net::IpAddr;

use serde::{Serialize, Serializer};

use super::{Address, DomainName};

/// Default time allowed for one directory operation (connect, bind or search).
pub const DEFAULT_DIRECTORY_TIMEOUT_MS: u64 = 5_000;
/// Default lifetime of a cached answer (found or not found).
pub const DEFAULT_DIRECTORY_CACHE_TTL_SECS: u64 = 300;
pub const MAX_DIRECTORY_TIMEOUT_MS: u64 = 60_000;
pub const MAX_DIRECTORY_CACHE_TTL_SECS: u64 = 86_400;
/// Longest CA bundle accepted (a few certificates).
const MAX_CA_PEM: usize = 64 * 1024;

/// The service account's password: never shown (redacting `Debug` and `Serialize`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct DirectoryPassword(pub String);

impl DirectoryPassword {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for DirectoryPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "<none>" } else { "<redacted>" })
    }
}

impl Serialize for DirectoryPassword {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<set>" })
    }
}

/// A domain's directory settings as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectorySettings {
    pub domain: DomainName,
    /// `ldap://host[:port]` or `ldaps://host[:port]`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS (RFC 4511 §4.14) before anything is sent.
    pub starttls: bool,
    /// PEM certificates to trust for this directory instead of the system's roots.
    pub ca_pem: Option<String>,
    /// The service account that searches; empty: an anonymous search.
    pub bind_dn: String,
    pub bind_password: DirectoryPassword,
    pub base_dn: String,
    /// An LDAP filter the user's entry must also match, e.g. `(objectClass=person)`.
    pub user_filter: String,
    /// The attributes whose values are the entry's addresses, in order of preference.
    pub attributes: Vec<String>,
    pub timeout_ms: u64,
    pub cache_ttl_secs: u64,
    pub updated_at: i64,
}

/// What an administrator sets; `bind_password: None` keeps the stored one (forms never show it
/// back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUpdate {
    pub url: String,
    pub starttls: bool,
    pub ca_pem: Option<String>,
    pub bind_dn: String,
    pub bind_password: Option<DirectoryPassword>,
    pub base_dn: String,
    pub user_filter: String,
    pub attributes: Vec<String>,
    pub timeout_ms: u64,
    pub cache_ttl_secs: u64,
}

impl Default for DirectoryUpdate {
    fn default() -> DirectoryUpdate {
        DirectoryUpdate {
            url: String::new(),
            starttls: false,
            ca_pem: None,
            bind_dn: String::new(),
            bind_password: None,
            base_dn: String::new(),
            user_filter: String::new(),
            attributes: vec!["mail".into()],
            timeout_ms: DEFAULT_DIRECTORY_TIMEOUT_MS,
            cache_ttl_secs: DEFAULT_DIRECTORY_CACHE_TTL_SECS,
        }
    }
}

/// Where the URL points and whether TLS protects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl DirectoryUrl {
    /// Whether the host is this machine: the only place a password may travel without TLS.
    pub fn is_loopback(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// Reads `ldap://host[:port][/]` or `ldaps://host[:port][/]`.
pub fn parse_directory_url(text: &str) -> Result<DirectoryUrl, String> {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    let (tls, rest, default_port) = if lower.starts_with("ldaps://") {
        (true, &text[8..], 636)
    } else if lower.starts_with("ldap://") {
        (false, &text[7..], 389)
    } else {
        return Err(format!("{text:?}: the URL must start with ldap:// or ldaps://"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '@', ' ']) {
        return Err(format!(
            "{text:?}: give only a host and an optional port, like ldaps://dc1.corp.example:636"
        ));
    }
    let (host, port) = match rest.rsplit_once(':') {
        // An IPv6 literal without a port: the colon is the address's own.
        Some((h, _)) if rest.starts_with('[') && !h.ends_with(']') => (rest, default_port),
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("{text:?}: {p:?} is not a port number"))?,
        ),
        None => (rest, default_port),
    };
    if host.is_empty() || host.chars().any(|c| c.is_control()) {
        return Err(format!("{text:?}: no host"));
    }
    Ok(DirectoryUrl { tls, host: host.to_string(), port })
}

/// Reads a list of attribute names (spaces or commas between).
pub fn parse_attributes(text: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for name in text.split([',', ' ', '\n', '\t']).map(str::trim).filter(|s| !s.is_empty()) {
        check_attribute(name)?;
        if !out.iter().any(|a| a.eq_ignore_ascii_case(name)) {
            out.push(name.to_string());
        }
    }
    if out.is_empty() {
        return Err("name at least one address attribute, like mail or proxyAddresses".into());
    }
    Ok(out)
}

/// An attribute description's name (RFC 4512 §1.4 `descr`): a letter, then letters, digits and
/// hyphens.
fn check_attribute(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let good = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
        && name.len() <= 64;
    if good { Ok(()) } else { Err(format!("{name:?} is not an attribute name")) }
}

/// Whether `name` is Active Directory's `proxyAddresses`, whose values carry a type prefix.
fn is_proxy_addresses(name: &str) -> bool {
    name.eq_ignore_ascii_case("proxyAddresses")
}

/// RFC 4515 §3: the characters a value must escape inside a filter.
pub fn escape_filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' | '(' | ')' | '\\' | '\0' => out.push_str(&format!("\\{:02x}", c as u32)),
            _ => out.push(c),
        }
    }
    out
}

/// One address value of an entry, read from attribute `attribute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryAddress {
    pub address: Address,
    /// The entry's primary address: AD's upper-case `SMTP:` value.
    pub primary: bool,
}

/// Reads one value of an address attribute: a bare address, or for AD's `proxyAddresses` a
/// typed one (`SMTP:primary@x`, `smtp:alias@x`; the prefix's case says which is primary). Other
/// types (`X500:`, `sip:`…) and values that are not addresses give `None`.
pub fn parse_address_value(attribute: &str, value: &str) -> Option<EntryAddress> {
    let value = value.trim();
    let (text, primary) = match value.split_once(':') {
        Some((kind, rest)) if kind.eq_ignore_ascii_case("smtp") => (rest, kind == "SMTP"),
        // A typed value of another kind is not a mail address.
        Some((kind, _)) if is_proxy_addresses(attribute) || !kind.contains('@') => return None,
        _ if is_proxy_addresses(attribute) => return None,
        _ => (value, false),
    };
    let address = text.trim().parse::<Address>().ok()?;
    Some(EntryAddress { address, primary })
}

impl DirectorySettings {
    /// The filter that finds the entry holding `address` in any configured attribute, within
    /// the user filter.
    pub fn search_filter(&self, address: &Address) -> String {
        let value = escape_filter_value(&address.to_string());
        let mut terms = String::new();
        for attribute in &self.attributes {
            if is_proxy_addresses(attribute) {
                // AD compares proxyAddresses without regard to case: `smtp:` finds `SMTP:` too.
                terms.push_str(&format!("({attribute}=smtp:{value})"));
            } else {
                terms.push_str(&format!("({attribute}={value})"));
            }
        }
        let any = if self.attributes.len() == 1 { terms } else { format!("(|{terms})") };
        match self.user_filter.trim() {
            "" => any,
            extra => format!("(&{extra}{any})"),
        }
    }

    /// An entry's addresses from its attributes' values (attribute name, values), the primary
    /// one first: AD's `SMTP:` value, else the first value of the first configured attribute.
    pub fn entry_addresses<'a>(
        &self,
        values: impl IntoIterator<Item = (&'a str, &'a [String])>,
    ) -> Vec<Address> {
        let mut found: Vec<EntryAddress> = Vec::new();
        let values: Vec<(&str, &[String])> = values.into_iter().collect();
        // In the configured order, so that the first attribute's first value leads.
        for wanted in &self.attributes {
            for (name, list) in &values {
                if !name.eq_ignore_ascii_case(wanted) {
                    continue;
                }
                for value in list.iter() {
                    if let Some(a) = parse_address_value(name, value)
                        && !found.iter().any(|f| f.address == a.address)
                    {
                        found.push(a);
                    }
                }
            }
        }
        if let Some(i) = found.iter().position(|a| a.primary) {
            let primary = found.remove(i);
            found.insert(0, primary);
        }
        found.into_iter().map(|a| a.address).collect()
    }

    pub fn url(&self) -> Result<DirectoryUrl, String> {
        parse_directory_url(&self.url)
    }
}

impl DirectoryUpdate {
    /// Checks every field; the messages name the field and say what is expected.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let url = parse_directory_url(&self.url).map_err(|e| ("url", e))?;
        if self.starttls && url.tls {
            return Err((
                "starttls",
                "StartTLS applies to ldap:// URLs; ldaps:// is TLS from the start".into(),
            ));
        }
        if !url.tls && !self.starttls && !url.is_loopback() {
            return Err((
                "url",
                format!(
                    "{}: passwords would cross the network in clear; use ldaps:// or turn on \
                     StartTLS (plain ldap:// is accepted only to this machine)",
                    self.url.trim()
                ),
            ));
        }
        if let Some(pem) = &self.ca_pem {
            check_ca_pem(pem).map_err(|e| ("ca_pem", e))?;
        }
        check_dn("bind_dn", &self.bind_dn, true)?;
        check_dn("base_dn", &self.base_dn, false)?;
        if self.bind_dn.trim().is_empty()
            && self.bind_password.as_ref().is_some_and(|p| !p.is_empty())
        {
            return Err(("bind_password", "a password needs a bind DN to go with it".into()));
        }
        if self.bind_password.as_ref().is_some_and(|p| p.0.contains(['\0', '\n', '\r'])) {
            return Err(("bind_password", "the password must be one line".into()));
        }
        check_filter(&self.user_filter).map_err(|e| ("user_filter", e))?;
        if self.attributes.is_empty() {
            return Err(("attributes", "name at least one address attribute".into()));
        }
        for a in &self.attributes {
            check_attribute(a).map_err(|e| ("attributes", e))?;
        }
        if !(100..=MAX_DIRECTORY_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err((
                "timeout_ms",
                format!("between 100 and {MAX_DIRECTORY_TIMEOUT_MS} milliseconds"),
            ));
        }
        if self.cache_ttl_secs > MAX_DIRECTORY_CACHE_TTL_SECS {
            return Err((
                "cache_ttl_secs",
                format!("at most {MAX_DIRECTORY_CACHE_TTL_SECS} seconds (a day); 0 turns it off"),
            ));
        }
        Ok(())
    }
}

/// A distinguished name (RFC 4514) as typed: one line, with `=` in it; the server judges the
/// rest.
fn check_dn(
    field: &'static str,
    dn: &str,
    may_be_empty: bool,
) -> Result<(), (&'static str, String)> {
    let dn = dn.trim();
    if dn.is_empty() {
        return if may_be_empty {
            Ok(())
        } else {
            Err((
                field,
                "give the DN under which users are searched, like dc=corp,dc=example".into(),
            ))
        };
    }
    if dn.chars().any(char::is_control) || !dn.contains('=') || dn.len() > 1024 {
        return Err((
            field,
            format!("{dn:?} is not a distinguished name like cn=postern,dc=corp,dc=example"),
        ));
    }
    Ok(())
}

/// An optional extra filter: empty, or one parenthesised filter with balanced parentheses.
fn check_filter(filter: &str) -> Result<(), String> {
    let filter = filter.trim();
    if filter.is_empty() {
        return Ok(());
    }
    if !filter.starts_with('(') || !filter.ends_with(')') || filter.chars().any(char::is_control) {
        return Err(format!(
            "{filter:?}: a filter is written in parentheses, like (objectClass=person)"
        ));
    }
    let mut depth = 0i32;
    for (i, c) in filter.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 || (depth == 0 && i + 1 != filter.len()) {
                    return Err(format!("{filter:?}: unbalanced parentheses"));
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("{filter:?}: unbalanced parentheses"));
    }
    Ok(())
}

/// At least one PEM certificate that parses.
fn check_ca_pem(pem: &str) -> Result<(), String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    if pem.len() > MAX_CA_PEM {
        return Err(format!("at most {} KiB of certificates", MAX_CA_PEM / 1024));
    }
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    match certs {
        Ok(c) if !c.is_empty() => {
            for der in &c {
                x509_parser::parse_x509_certificate(der)
                    .map_err(|e| format!("a certificate does not parse: {e}"))?;
            }
            Ok(())
        }
        Ok(_) => Err("no PEM certificate (-----BEGIN CERTIFICATE-----) found".into()),
        Err(e) => Err(format!("the PEM text does not read: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Address {
        s.parse().unwrap()
    }

    fn settings(attributes: &[&str], filter: &str) -> DirectorySettings {
        DirectorySettings {
            domain: "corp.test".parse().unwrap(),
            url: "ldaps://dc1.corp.test".into(),
            starttls: false,
            ca_pem: None,
            bind_dn: "cn=svc,dc=corp,dc=test".into(),
            bind_password: DirectoryPassword("s3cret".into()),
            base_dn: "dc=corp,dc=test".into(),
            user_filter: filter.into(),
            attributes: attributes.iter().map(|s| s.to_string()).collect(),
            timeout_ms: 5000,
            cache_ttl_secs: 300,
            updated_at: 0,
        }
    }

    #[test]
    fn proxy_addresses_values_are_read_with_their_prefix() {
        let p = |v| parse_address_value("proxyAddresses", v);
        assert_eq!(
            p("SMTP:Ann@Corp.test"),
            Some(EntryAddress { address: a("ann@corp.test"), primary: true })
        );
        assert_eq!(
            p("smtp:a.n@corp.test"),
            Some(EntryAddress { address: a("a.n@corp.test"), primary: false })
        );
        assert_eq!(p("sMtP:x@corp.test").map(|e| e.primary), Some(false));
        assert_eq!(p("X500:/o=corp/cn=ann"), None);
        assert_eq!(p("sip:ann@corp.test"), None);
        assert_eq!(p("ann@corp.test"), None, "AD values are always typed");
        assert_eq!(p("smtp:not an address"), None);
        // Plain attributes: the value is the address; a stray smtp: prefix is tolerated.
        assert_eq!(
            parse_address_value("mail", "ann@corp.test").map(|e| e.address),
            Some(a("ann@corp.test"))
        );
        assert_eq!(
            parse_address_value("otherMailbox", "smtp:o@corp.test").map(|e| e.address),
            Some(a("o@corp.test"))
        );
        assert_eq!(parse_address_value("mail", "nonsense"), None);
    }

    #[test]
    fn an_entry_lists_its_primary_address_first() {
        let s = settings(&["mail", "proxyAddresses"], "");
        let mail = vec!["ann.other@corp.test".to_string()];
        let proxy = vec![
            "smtp:alias@corp.test".to_string(),
            "X500:/o=x".to_string(),
            "SMTP:ann@corp.test".to_string(),
        ];
        let got =
            s.entry_addresses([("mail", mail.as_slice()), ("proxyaddresses", proxy.as_slice())]);
        assert_eq!(got, vec![a("ann@corp.test"), a("ann.other@corp.test"), a("alias@corp.test")]);
        // Without AD, the first attribute's first value leads.
        let s = settings(&["mail"], "");
        let mail = vec!["b@corp.test".to_string(), "b2@corp.test".to_string()];
        assert_eq!(
            s.entry_addresses([("mail", mail.as_slice())]),
            vec![a("b@corp.test"), a("b2@corp.test")]
        );
    }

    #[test]
    fn the_search_filter_escapes_and_combines() {
        let s = settings(&["mail", "proxyAddresses", "otherMailbox"], "(objectClass=person)");
        assert_eq!(
            s.search_filter(&a("ann@corp.test")),
            "(&(objectClass=person)(|(mail=ann@corp.test)(proxyAddresses=smtp:ann@corp.test)(otherMailbox=ann@corp.test)))"
        );
        let s = settings(&["mail"], "");
        assert_eq!(s.search_filter(&a("ann@corp.test")), "(mail=ann@corp.test)");
        assert_eq!(escape_filter_value("a*b(c)\\d"), "a\\2ab\\28c\\29\\5cd");
        assert_eq!(escape_filter_value("é*"), "é\\2a");
    }

    #[test]
    fn urls_are_read() {
        assert_eq!(
            parse_directory_url("ldaps://dc1.corp.test").unwrap(),
            DirectoryUrl { tls: true, host: "dc1.corp.test".into(), port: 636 }
        );
        assert_eq!(parse_directory_url("LDAP://127.0.0.1:3890/").unwrap().port, 3890);
        assert_eq!(parse_directory_url("ldap://[::1]").unwrap().port, 389);
        assert_eq!(parse_directory_url("ldap://[::1]:1389").unwrap().port, 1389);
        assert!(parse_directory_url("http://x").is_err());
        assert!(parse_directory_url("ldap://").is_err());
        assert!(parse_directory_url("ldap://x:0").is_err());
        assert!(parse_directory_url("ldap://x/dc=corp").is_err());
        assert!(parse_directory_url("ldap://127.0.0.1").unwrap().is_loopback());
        assert!(!parse_directory_url("ldap://dc1.corp.test").unwrap().is_loopback());
    }

    #[test]
    fn updates_are_checked() {
        let good = DirectoryUpdate {
            url: "ldap://dc1.corp.test".into(),
            starttls: true,
            bind_dn: "cn=svc,dc=corp,dc=test".into(),
            bind_password: Some(DirectoryPassword("pw".into())),
            base_dn: "dc=corp,dc=test".into(),
            user_filter: "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
                .into(),
            attributes: vec!["mail".into(), "proxyAddresses".into()],
            ..DirectoryUpdate::default()
        };
        assert_eq!(good.check(), Ok(()));
        let field = |u: DirectoryUpdate| u.check().unwrap_err().0;
        assert_eq!(field(DirectoryUpdate { starttls: false, ..good.clone() }), "url");
        assert_eq!(
            DirectoryUpdate { url: "ldap://127.0.0.1:389".into(), starttls: false, ..good.clone() }
                .check(),
            Ok(())
        );
        assert_eq!(field(DirectoryUpdate { url: "ldaps://x".into(), ..good.clone() }), "starttls");
        assert_eq!(field(DirectoryUpdate { base_dn: "".into(), ..good.clone() }), "base_dn");
        assert_eq!(
            field(DirectoryUpdate { bind_dn: "nonsense".into(), ..good.clone() }),
            "bind_dn"
        );
        assert_eq!(field(DirectoryUpdate { bind_dn: "".into(), ..good.clone() }), "bind_password");
        assert_eq!(
            field(DirectoryUpdate { user_filter: "objectClass=x".into(), ..good.clone() }),
            "user_filter"
        );
        assert_eq!(
            field(DirectoryUpdate { user_filter: "(a=b))(".into(), ..good.clone() }),
            "user_filter"
        );
        assert_eq!(field(DirectoryUpdate { attributes: vec![], ..good.clone() }), "attributes");
        assert_eq!(
            field(DirectoryUpdate { attributes: vec!["ma il".into()], ..good.clone() }),
            "attributes"
        );
        assert_eq!(field(DirectoryUpdate { timeout_ms: 10, ..good.clone() }), "timeout_ms");
        assert_eq!(
            field(DirectoryUpdate { cache_ttl_secs: 100_000, ..good.clone() }),
            "cache_ttl_secs"
        );
        assert_eq!(
            field(DirectoryUpdate { ca_pem: Some("junk".into()), ..good.clone() }),
            "ca_pem"
        );
        assert_eq!(
            parse_attributes("mail, proxyAddresses mail").unwrap(),
            vec!["mail", "proxyAddresses"]
        );
        assert!(parse_attributes(" ").is_err());
    }

    #[test]
    fn the_password_never_shows() {
        let s = settings(&["mail"], "");
        assert!(!format!("{s:?}").contains("s3cret"));
        assert!(!serde_json::to_string(&s).unwrap().contains("s3cret"));
    }
}
