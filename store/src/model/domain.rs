//! Domains we accept mail for: local ones hold mailboxes, relay ones are passed on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::DomainName;
use crate::error::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainKind {
    /// Final destination: mail is delivered to mailboxes (Postfix's `virtual_mailbox_domains`).
    Local,
    /// We accept mail for it and pass it on by its transport (Postfix's `relay_domains`).
    Relay,
}

impl DomainKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainKind::Local => "local",
            DomainKind::Relay => "relay",
        }
    }
}

impl FromStr for DomainKind {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "local" => Ok(DomainKind::Local),
            "relay" => Ok(DomainKind::Relay),
            other => Err(StoreError::invalid(
                "kind",
                format!("{other:?} is not a domain kind (local or relay)"),
            )),
        }
    }
}

impl fmt::Display for DomainKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    pub name: DomainName,
    pub kind: DomainKind,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}
