//! Checking a name and password: throttled, and alike in message and cost whether or not the
//! account exists.

use std::net::IpAddr;
use std::sync::OnceLock;

use postern_store::model::{Admin, AdminName, PasswordHash};

use crate::error::WebError;
use crate::state::AppState;

/// The one message for every wrong name or password.
pub const WRONG: &str = "wrong name or password";

/// A hash to verify against when the account does not exist, so that an unknown name costs as
/// much as a wrong password.
fn decoy() -> &'static PasswordHash {
    static DECOY: OnceLock<PasswordHash> = OnceLock::new();
    DECOY.get_or_init(|| {
        PasswordHash::create("decoy password, never accepted")
            .expect("a constant password of valid length hashes")
    })
}

pub async fn verify(
    state: &AppState,
    ip: IpAddr,
    name: &str,
    password: &str,
) -> Result<Admin, WebError> {
    if let Some(wait) = state.logins.blocked(ip, name) {
        return Err(WebError::TooMany(wait));
    }
    let credentials = match name.parse::<AdminName>() {
        Ok(parsed) => state.store.admin_credentials(&parsed).await?,
        Err(_) => None,
    };
    let password = password.to_string();
    let (admin, hash) = match credentials {
        Some((admin, hash)) => (Some(admin), hash),
        None => (None, decoy().clone()),
    };
    let ok = tokio::task::spawn_blocking(move || hash.verify(&password))
        .await
        .map_err(|e| WebError::Internal(format!("password check panicked: {e}")))?;
    match admin {
        Some(admin) if ok => {
            state.logins.succeeded(name);
            Ok(admin)
        }
        _ => {
            state.logins.failed(ip, name);
            tracing::info!(%ip, "console login refused");
            Err(WebError::Invalid { field: None, message: WRONG.into() })
        }
    }
}

/// Checks a new password for the account `user` (not too short, not a common one, not the
/// name) and hashes it off the async executor (argon2id costs tens of milliseconds).
pub async fn hash(user: &str, password: String) -> Result<PasswordHash, WebError> {
    let user = user.to_string();
    tokio::task::spawn_blocking(move || PasswordHash::create_for(&user, &password))
        .await
        .map_err(|e| WebError::Internal(format!("password hashing panicked: {e}")))?
        .map_err(WebError::from)
}
