//! Console administrators: who may manage what, and the API tokens they hand out.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::DomainName;
use crate::error::StoreError;

/// What an administrator may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything, everywhere.
    Admin,
    /// The domains granted to it, their mailboxes, aliases and queue entries; nothing global.
    DomainAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::DomainAdmin => "domain-admin",
        }
    }
}

impl FromStr for Role {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "admin" => Ok(Role::Admin),
            "domain-admin" => Ok(Role::DomainAdmin),
            other => Err(StoreError::invalid(
                "role",
                format!("{other:?} is not a role (admin or domain-admin)"),
            )),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An administrator's login name: 1 to 64 of `a-z 0-9 . _ -`, so that it is safe in a URL, a
/// log line and an audit record as it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AdminName(String);

impl AdminName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AdminName {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        let s = s.trim();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if ok {
            Ok(AdminName(s.to_string()))
        } else {
            Err(StoreError::invalid(
                "name",
                "an administrator name is 1 to 64 lower-case letters, digits, '.', '_' or '-'",
            ))
        }
    }
}

impl TryFrom<String> for AdminName {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self, StoreError> {
        s.parse()
    }
}

impl From<AdminName> for String {
    fn from(n: AdminName) -> String {
        n.0
    }
}

impl fmt::Display for AdminName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An administrator as the console and the API show it: never with the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Admin {
    pub name: AdminName,
    pub role: Role,
    /// The domains a domain-admin manages; empty for an admin.
    pub domains: Vec<DomainName>,
    /// Set for an account whose password someone else chose (first run, a reset): the console
    /// asks for a new one before anything else.
    pub must_change_password: bool,
    pub created_at: i64,
}

impl Admin {
    /// Whether this administrator may manage `domain`.
    pub fn manages(&self, domain: &DomainName) -> bool {
        self.role == Role::Admin || self.domains.contains(domain)
    }
}

/// Read or read-and-change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

impl FromStr for Access {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "read" => Ok(Access::Read),
            "write" => Ok(Access::Write),
            other => Err(StoreError::invalid(
                "access",
                format!("{other:?} is not an access level (read or write)"),
            )),
        }
    }
}

/// An API token as it is listed: its public ID and scope, never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// The public half of the token, shown in lists and logs.
    pub id: String,
    pub name: String,
    pub owner: AdminName,
    pub access: Access,
    /// Limits the token to these domains (within its owner's); empty means all its owner has.
    pub domains: Vec<DomainName>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// A token just created: the only time its secret exists outside the bearer's hands.
pub struct IssuedToken {
    pub token: ApiToken,
    /// `pst_<id>_<secret>`: what goes in `Authorization: Bearer`.
    pub bearer: String,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken").field("token", &self.token).finish_non_exhaustive()
    }
}

/// Parses a space- or comma-separated list of domains as stored or typed.
pub fn parse_domain_list(text: &str) -> Result<Vec<DomainName>, StoreError> {
    let mut domains: Vec<DomainName> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    domains.sort();
    domains.dedup();
    Ok(domains)
}

pub(crate) fn join_domains(domains: &[DomainName]) -> String {
    domains.iter().map(DomainName::as_str).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_lists() {
        assert!("alice".parse::<AdminName>().is_ok());
        assert!("Alice".parse::<AdminName>().is_err());
        assert!("a b".parse::<AdminName>().is_err());
        assert!("".parse::<AdminName>().is_err());
        let list = parse_domain_list("b.test, a.test a.test").unwrap();
        assert_eq!(join_domains(&list), "a.test b.test");
        assert!(parse_domain_list("not a domain!").is_err());
    }
}
