//! Which API tokens a credential may see and revoke: an admin over every domain everyone's,
//! anyone else its own administrator's, and never a token wider than the credential itself
//! (more access, a domain it does not reach, a later expiry or none), so that a narrow token
//! cannot list or revoke the wider ones of the same administrator. The console and the API
//! both come through here.

use std::collections::HashMap;

use postern_store::model::{Admin, ApiToken};

use super::Principal;
use crate::error::WebError;
use crate::state::AppState;

/// Whether `caller` may see (and revoke) `token`, whose administrator is `owner`.
pub fn may_manage(caller: &Principal, token: &ApiToken, owner: &Admin) -> bool {
    (caller.is_global() || token.owner == caller.name)
        && no_wider(&Principal::from_token(token, owner), caller)
}

/// Whether `p` reaches nothing `than` does not: access, domains and lifetime.
fn no_wider(p: &Principal, than: &Principal) -> bool {
    let access = p.access <= than.access;
    let domains = match (&than.domains, &p.domains) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(theirs), Some(mine)) => mine.iter().all(|d| theirs.contains(d)),
    };
    let lifetime = match (than.expires_at, p.expires_at) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(theirs), Some(mine)) => mine <= theirs,
    };
    access && domains && lifetime
}

/// The tokens `caller` may see, newest first.
pub async fn visible(state: &AppState, caller: &Principal) -> Result<Vec<ApiToken>, WebError> {
    let global = caller.is_global();
    let tokens = state.store.list_tokens((!global).then_some(&caller.name)).await?;
    let owners: HashMap<String, Admin> = if global {
        state.store.list_admins().await?.into_iter().map(|a| (a.name.to_string(), a)).collect()
    } else {
        state
            .store
            .get_admin(&caller.name)
            .await?
            .into_iter()
            .map(|a| (a.name.to_string(), a))
            .collect()
    };
    Ok(tokens
        .into_iter()
        .filter(|t| owners.get(t.owner.as_str()).is_some_and(|o| may_manage(caller, t, o)))
        .collect())
}

/// The token `id`, if `caller` may see it. Any other is as good as absent: its existence is not
/// the caller's business.
pub async fn find(state: &AppState, caller: &Principal, id: &str) -> Result<ApiToken, WebError> {
    if let Some(token) = state.store.get_token(id).await?
        && let Some(owner) = state.store.get_admin(&token.owner).await?
        && may_manage(caller, &token, &owner)
    {
        return Ok(token);
    }
    Err(WebError::NotFound(format!("token {id} does not exist")))
}

#[cfg(test)]
mod tests {
    use postern_store::model::{Access, Role};

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

    fn token(access: Access, domains: &[&str], expires_at: Option<i64>) -> ApiToken {
        ApiToken {
            id: "t".into(),
            name: "t".into(),
            owner: "alice".parse().unwrap(),
            access,
            domains: domains.iter().map(|d| d.parse().unwrap()).collect(),
            created_at: 0,
            expires_at,
            last_used_at: None,
        }
    }

    #[test]
    fn a_token_manages_none_wider_than_itself() {
        let alice = admin(Role::Admin, &[]);
        let console = Principal::from_admin(&alice);
        let narrow = Principal::from_token(&token(Access::Write, &["a.test"], Some(100)), &alice);
        let cases = [
            (token(Access::Write, &[], None), true, false),
            (token(Access::Write, &["a.test", "b.test"], Some(50)), true, false),
            (token(Access::Write, &["a.test"], None), true, false),
            (token(Access::Write, &["a.test"], Some(101)), true, false),
            (token(Access::Read, &["a.test"], Some(100)), true, true),
            (token(Access::Write, &["a.test"], Some(99)), true, true),
        ];
        for (t, by_console, by_narrow) in cases {
            assert_eq!(may_manage(&console, &t, &alice), by_console, "{t:?}");
            assert_eq!(may_manage(&narrow, &t, &alice), by_narrow, "{t:?}");
        }
        let reader = Principal::from_token(&token(Access::Read, &[], None), &alice);
        assert!(!may_manage(&reader, &token(Access::Write, &[], None), &alice));
        // A domain-admin's token with no domains of its own reaches all of its owner's.
        let dora = admin(Role::DomainAdmin, &["a.test", "b.test"]);
        let hers = Principal::from_token(&token(Access::Write, &["a.test"], None), &dora);
        assert!(!may_manage(&hers, &token(Access::Write, &[], None), &dora));
        assert!(may_manage(&hers, &token(Access::Write, &["a.test"], None), &dora));
    }
}
