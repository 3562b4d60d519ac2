//! Which addresses an authenticated mailbox may send as, in the envelope (`MAIL FROM`) and in the
//! `From:` and `Sender:` headers: its own, the aliases that deliver to it, and the extra
//! addresses (or `@domain` wildcards) an administrator lists on the mailbox.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::name::{AddressOrDomain, parse_address_or_domain};
use super::{Address, AliasSource, Config, Destination, DomainName};
use crate::error::StoreError;

/// Most extra entries one mailbox may list.
pub const MAX_SEND_AS: usize = 100;

/// One extra address a mailbox may send as, or `@domain` for every address of a domain.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SendAs {
    Address(Address),
    Domain(DomainName),
}

impl SendAs {
    pub fn domain(&self) -> &DomainName {
        match self {
            SendAs::Address(a) => a.domain(),
            SendAs::Domain(d) => d,
        }
    }

    /// Whether this entry allows `address` (or its form without a `+tag`).
    pub fn covers(&self, address: &Address) -> bool {
        match self {
            SendAs::Address(a) => a == address || address.without_subaddress().as_ref() == Some(a),
            SendAs::Domain(d) => address.domain() == d,
        }
    }
}

impl FromStr for SendAs {
    type Err = StoreError;
    fn from_str(input: &str) -> Result<Self, StoreError> {
        Ok(match parse_address_or_domain(input, "send_as", "")? {
            AddressOrDomain::Address(a) => SendAs::Address(a),
            AddressOrDomain::Domain(d) => SendAs::Domain(d),
        })
    }
}

impl TryFrom<String> for SendAs {
    type Error = StoreError;
    fn try_from(value: String) -> Result<Self, StoreError> {
        value.parse()
    }
}

impl From<SendAs> for String {
    fn from(value: SendAs) -> String {
        value.to_string()
    }
}

impl fmt::Display for SendAs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendAs::Address(a) => a.fmt(f),
            SendAs::Domain(d) => write!(f, "@{d}"),
        }
    }
}

impl fmt::Debug for SendAs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SendAs({self})")
    }
}

/// Parses a list separated by spaces, commas or line breaks (as a form's text area gives it),
/// sorted and without repeats.
pub fn parse_send_as(text: &str) -> Result<Vec<SendAs>, StoreError> {
    let mut list = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<SendAs>, _>>()?;
    list.sort();
    list.dedup();
    check_send_as(&list)?;
    Ok(list)
}

pub(crate) fn check_send_as(list: &[SendAs]) -> Result<(), StoreError> {
    if list.len() > MAX_SEND_AS {
        return Err(StoreError::invalid(
            "send_as",
            format!("lists more than {MAX_SEND_AS} addresses"),
        ));
    }
    Ok(())
}

/// The stored form: space-separated.
pub(crate) fn join_send_as(list: &[SendAs]) -> String {
    list.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
}

impl Config {
    /// Whether the mailbox `user` may send as `address`: its own (with or without a `+tag`),
    /// an alias whose expansion delivers to it (`sales@ -> ann, bob` lets both send as sales@),
    /// or an entry of its send-as list. A catch-all does not count: it would let the user send
    /// as every address of the domain; an administrator who wants that lists `@domain`.
    pub fn may_send_as(&self, user: &Address, address: &Address) -> bool {
        let base = address.without_subaddress();
        if address == user || base.as_ref() == Some(user) {
            return true;
        }
        if self.mailboxes.get(user).is_some_and(|m| m.send_as.iter().any(|s| s.covers(address))) {
            return true;
        }
        let is_alias = [Some(address), base.as_ref()]
            .into_iter()
            .flatten()
            .any(|a| self.aliases.contains_key(&AliasSource::Address(a.clone())));
        is_alias
            && self.resolve(address).is_ok_and(|dests| {
                dests.iter().any(|d| matches!(d, Destination::Mailbox(m) if m == user))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_wildcards() {
        let list = parse_send_as("b@x.test, @Y.test\n a@x.test b@x.test").unwrap();
        assert_eq!(join_send_as(&list), "a@x.test b@x.test @y.test");
        assert!(parse_send_as("not-an-address").is_err());
        assert!(parse_send_as("@").is_err());
        assert!(parse_send_as("").unwrap().is_empty());
        let a: Address = "ceo+x@y.test".parse().unwrap();
        assert!(list[2].covers(&a));
        assert!(!list[1].covers(&a));
        assert!(SendAs::Address("ceo@y.test".parse().unwrap()).covers(&a));
    }
}
