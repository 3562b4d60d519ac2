//! Who is asking, and what they may do: console sessions (cookie), API tokens (bearer), the
//! login (slowed per account and address, see `postern_store::auth`), and the cross-site refusal in front of every state change.

pub mod accounts;
pub mod issue;
pub mod login;
pub mod manage;
pub mod origin;
pub mod session;
pub mod token;
pub mod token_cache;

use postern_store::model::{Access, Admin, AdminName, ApiToken, DomainName, Role, SendAs};

use crate::error::WebError;

/// An authenticated administrator, through a session or a token, with what that allows.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: AdminName,
    pub role: Role,
    /// `None`: every domain. `Some`: only these (a domain-admin, or a token limited to some).
    pub domains: Option<Vec<DomainName>>,
    pub access: Access,
    /// When the credential stops working (a token's expiry).
    pub expires_at: Option<i64>,
    /// How it signed in, for the audit log: `console:alice`, `api:alice/<token id> (<token name>)`.
    pub actor: String,
}

impl Principal {
    pub fn from_admin(admin: &Admin) -> Principal {
        Principal {
            name: admin.name.clone(),
            role: admin.role,
            domains: match admin.role {
                Role::Admin => None,
                Role::DomainAdmin => Some(admin.domains.clone()),
            },
            access: Access::Write,
            expires_at: None,
            actor: format!("console:{}", admin.name),
        }
    }

    /// A token acts as its owner, narrowed to its own access and domains.
    pub fn from_token(token: &ApiToken, owner: &Admin) -> Principal {
        let owner_scope = Principal::from_admin(owner);
        let domains = match (owner_scope.domains, token.domains.is_empty()) {
            (None, true) => None,
            (None, false) => Some(token.domains.clone()),
            (Some(own), true) => Some(own),
            (Some(own), false) => {
                Some(token.domains.iter().filter(|d| own.contains(d)).cloned().collect())
            }
        };
        Principal {
            name: owner.name.clone(),
            role: owner.role,
            domains,
            access: token.access,
            expires_at: token.expires_at,
            actor: format!("api:{}/{} ({})", owner.name, token.id, token.name),
        }
    }

    /// Refuses a read-only credential.
    pub fn require_write(&self) -> Result<(), WebError> {
        match self.access {
            Access::Write => Ok(()),
            Access::Read => Err(WebError::Forbidden("this token may only read".into())),
        }
    }

    /// Refuses anyone who does not see the whole appliance (global settings: transports,
    /// networks, administrators).
    pub fn require_global(&self) -> Result<(), WebError> {
        if self.role == Role::Admin && self.domains.is_none() {
            Ok(())
        } else {
            Err(WebError::Forbidden("only an admin with access to every domain may do this".into()))
        }
    }

    pub fn sees(&self, domain: &DomainName) -> bool {
        self.domains.as_ref().is_none_or(|d| d.contains(domain))
    }

    /// Refuses a domain outside this principal's scope.
    pub fn require_domain(&self, domain: &DomainName) -> Result<(), WebError> {
        if self.sees(domain) {
            Ok(())
        } else {
            Err(WebError::Forbidden(format!("you do not manage the domain {domain}")))
        }
    }

    /// Refuses a send-as entry outside this principal's domains: a domain-admin must not let
    /// its mailboxes pose as another tenant's (or anyone else's) addresses.
    pub fn require_send_as(&self, list: &[SendAs]) -> Result<(), WebError> {
        for entry in list {
            if !self.sees(entry.domain()) {
                return Err(WebError::Forbidden(format!(
                    "you do not manage the domain {}, so its addresses cannot be given to a mailbox",
                    entry.domain()
                )));
            }
        }
        Ok(())
    }

    pub fn is_global(&self) -> bool {
        self.require_global().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(role: Role, domains: &[&str]) -> Admin {
        Admin {
            name: "alice".parse().unwrap(),
            role,
            domains: domains.iter().map(|d| d.parse().unwrap()).collect(),
            must_change_password: false,
            created_at: 0,
        }
    }

    fn token(access: Access, domains: &[&str]) -> ApiToken {
        ApiToken {
            id: "t".into(),
            name: "t".into(),
            owner: "alice".parse().unwrap(),
            access,
            domains: domains.iter().map(|d| d.parse().unwrap()).collect(),
            created_at: 0,
            expires_at: None,
            last_used_at: None,
        }
    }

    #[test]
    fn a_token_is_never_wider_than_its_owner() {
        let owner = admin(Role::DomainAdmin, &["a.test"]);
        let p = Principal::from_token(&token(Access::Write, &["a.test", "b.test"]), &owner);
        assert_eq!(p.domains, Some(vec!["a.test".parse().unwrap()]));
        assert!(p.require_global().is_err());
        let p = Principal::from_token(&token(Access::Read, &[]), &admin(Role::Admin, &[]));
        assert!(p.is_global() && p.require_write().is_err());
        let p = Principal::from_token(&token(Access::Write, &["b.test"]), &admin(Role::Admin, &[]));
        assert!(!p.is_global() && p.sees(&"b.test".parse().unwrap()));
    }
}
