//! Aliases: an address (or a whole domain, as a catch-all) that forwards to other addresses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::name::{AddressOrDomain, parse_address_or_domain};
use super::{Address, DomainName};
use crate::error::StoreError;

/// What an alias matches: one address, or `@domain` for every address of the domain that has
/// no mailbox and no alias of its own.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AliasSource {
    Address(Address),
    CatchAll(DomainName),
}

impl AliasSource {
    pub fn domain(&self) -> &DomainName {
        match self {
            AliasSource::Address(a) => a.domain(),
            AliasSource::CatchAll(d) => d,
        }
    }
}

impl FromStr for AliasSource {
    type Err = StoreError;
    fn from_str(input: &str) -> Result<Self, StoreError> {
        if !input.contains('@') {
            return Err(StoreError::invalid(
                "source",
                format!(
                    "{:?} has no @domain: an alias needs name@domain, or @domain for a catch-all",
                    input.trim()
                ),
            ));
        }
        Ok(match parse_address_or_domain(input, "source", "catch-all ")? {
            AddressOrDomain::Address(a) => AliasSource::Address(a),
            AddressOrDomain::Domain(d) => AliasSource::CatchAll(d),
        })
    }
}

impl TryFrom<String> for AliasSource {
    type Error = StoreError;
    fn try_from(value: String) -> Result<Self, StoreError> {
        value.parse()
    }
}

impl From<AliasSource> for String {
    fn from(value: AliasSource) -> String {
        value.to_string()
    }
}

impl fmt::Display for AliasSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AliasSource::Address(a) => a.fmt(f),
            AliasSource::CatchAll(d) => write!(f, "@{d}"),
        }
    }
}

impl fmt::Debug for AliasSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AliasSource({self})")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    pub source: AliasSource,
    /// In the order given; local or external addresses.
    pub destinations: Vec<Address>,
    pub created_at: i64,
}

/// Most destinations one alias may list (Postfix's `virtual_alias_expansion_limit` is 1000 for a
/// whole expansion; one entry should stay well under it).
pub const MAX_DESTINATIONS: usize = 1000;
