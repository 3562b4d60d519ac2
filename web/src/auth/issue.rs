//! Issuing an API token for the signed-in principal, never wider than the principal itself:
//! no more access, no domain outside its own, no later expiry. The console and the API both
//! come through here, so that the rule has one home.

use postern_store::model::{Access, ApiToken, DomainName, IssuedToken};

use super::Principal;
use crate::error::WebError;
use crate::state::AppState;
use crate::time;

/// The longest expiry one may ask for (ten years), so that days times seconds cannot overflow.
const MAX_DAYS: u32 = 3650;

/// What the caller asked for. An omitted field means "as much as I have myself".
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    pub name: String,
    pub access: Option<Access>,
    /// Empty: every domain the caller may reach.
    pub domains: Vec<DomainName>,
    pub expires_in_days: Option<u32>,
}

/// Creates the token, owned by the caller's administrator, after checking it is no wider.
pub async fn issue(
    state: &AppState,
    caller: &Principal,
    request: TokenRequest,
) -> Result<IssuedToken, WebError> {
    // Checked first and on its own: a read-only credential issues nothing, whatever it asks.
    if caller.access == Access::Read {
        return Err(WebError::Forbidden("a read-only token cannot create tokens".into()));
    }
    let access = request.access.unwrap_or(caller.access);
    if access > caller.access {
        return Err(WebError::Forbidden(
            "a token cannot have more access than the credential that creates it".into(),
        ));
    }
    let expires_at = match (request.expires_in_days, caller.expires_at) {
        (Some(0), _) => return Err(WebError::invalid("expires_in_days", "at least 1 day")),
        (Some(days), _) if days > MAX_DAYS => {
            return Err(WebError::invalid("expires_in_days", format!("at most {MAX_DAYS} days")));
        }
        (Some(days), limit) => {
            let at = time::now() + i64::from(days) * 86_400;
            if limit.is_some_and(|limit| at > limit) {
                return Err(WebError::Forbidden(format!(
                    "a token cannot outlive the token that creates it (which expires at {} UTC)",
                    time::format(limit.unwrap_or_default())
                )));
            }
            Some(at)
        }
        // Without an expiry of its own, it expires with its creator.
        (None, limit) => limit,
    };
    for domain in &request.domains {
        if !caller.sees(domain) {
            return Err(WebError::Forbidden(format!(
                "you do not manage the domain {domain}, so a token of yours cannot either"
            )));
        }
        if state.store.get_domain(domain).await?.is_none() {
            return Err(WebError::invalid("domains", format!("domain {domain} does not exist")));
        }
    }
    let owner = state.store.get_admin(&caller.name).await?.ok_or_else(|| {
        WebError::NotFound(format!("administrator {} does not exist", caller.name))
    })?;
    let mut domains = request.domains;
    // A token with no domains of its own reaches all of its owner's. When the caller is itself
    // limited to fewer, the new token is limited to the caller's instead of the owner's.
    if domains.is_empty() {
        let candidate = ApiToken {
            id: String::new(),
            name: String::new(),
            owner: owner.name.clone(),
            access,
            domains: Vec::new(),
            created_at: 0,
            expires_at,
            last_used_at: None,
        };
        let would_be = Principal::from_token(&candidate, &owner);
        if would_be.domains != caller.domains {
            domains = caller.domains.clone().unwrap_or_default();
            if domains.is_empty() {
                return Err(WebError::Forbidden(
                    "you manage no domain, so a token of yours could reach none".into(),
                ));
            }
        }
    }
    let issued = state
        .store
        .create_token(&caller.actor, &owner.name, &request.name, access, &domains, expires_at)
        .await?;
    tracing::info!(id = %issued.token.id, owner = %owner.name, actor = %caller.actor, "API token created");
    Ok(issued)
}
