//! Checking a name and password: slowed per account and address, bounded in how many run at
//! once, and alike in message and cost whether or not the account exists (see
//! `postern_store::auth`).

use std::net::IpAddr;

use postern_store::auth::Refused;
use postern_store::model::{Admin, AdminName, PasswordHash, check_new_password};

use crate::error::WebError;
use crate::state::AppState;

/// The one message for every wrong name or password.
pub const WRONG: &str = "wrong name or password";

impl From<Refused> for WebError {
    fn from(refused: Refused) -> WebError {
        match refused {
            Refused::Wait(_) => WebError::TooMany(refused.retry_after()),
            Refused::Busy => WebError::Busy,
        }
    }
}

pub async fn verify(
    state: &AppState,
    ip: IpAddr,
    name: &str,
    password: &str,
) -> Result<Admin, WebError> {
    // Counted before anything else, so that simultaneous attempts cannot all pass a check made
    // before the first of them fails; a refused one does not reach the store.
    let check = state.passwords.begin(name, ip)?;
    let credentials = match name.parse::<AdminName>() {
        Ok(parsed) => state.store.admin_credentials(&parsed).await?,
        Err(_) => None,
    };
    let (admin, hash) = match credentials {
        Some((admin, hash)) => (Some(admin), Some(hash)),
        None => (None, None),
    };
    match (check.verify(hash, password).await?, admin) {
        (true, Some(admin)) => Ok(admin),
        _ => {
            tracing::info!(%ip, "console login refused");
            Err(WebError::Invalid { field: None, message: WRONG.into() })
        }
    }
}

/// Checks a new password for the account `user` (not too short, not a common one, not the
/// name), then hashes it off the async executor and through the same bound as the checks
/// (argon2id costs tens of milliseconds and 19 MiB).
pub async fn hash(state: &AppState, user: &str, password: &str) -> Result<PasswordHash, WebError> {
    check_new_password(user, password)?;
    let made = state.passwords.hash(password).await.map_err(|_| WebError::Busy)?;
    made.map_err(WebError::from)
}
