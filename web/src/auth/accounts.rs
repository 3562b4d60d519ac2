//! Managing administrators, shared by the console and the API: creating one with a typed or a
//! one-time password, and resetting a password to a one-time one. Only a global admin may.

use postern_store::model::{Admin, AdminName, DomainName, Role};

use super::{Principal, login};
use crate::error::WebError;
use crate::state::AppState;

/// A password for someone else to use once: 20 URL-safe characters (120 random bits). The
/// console shows it once; its holder must choose their own at the first login.
pub fn one_time_password() -> String {
    postern_store::new_secret()[..20].to_string()
}

/// What a new administrator is given.
pub struct NewAdmin {
    pub name: String,
    pub role: Role,
    pub domains: Vec<DomainName>,
    /// `None`: a one-time password is generated.
    pub password: Option<String>,
    /// Asked for a new password at the first login (always so with a generated one).
    pub must_change_password: bool,
}

/// Creates the administrator; returns it and the one-time password when one was generated.
pub async fn create(
    state: &AppState,
    caller: &Principal,
    new: NewAdmin,
) -> Result<(Admin, Option<String>), WebError> {
    caller.require_write()?;
    caller.require_global()?;
    let name: AdminName = new.name.parse()?;
    let (password, generated, must_change) = match new.password {
        Some(typed) => (typed, false, new.must_change_password),
        None => (one_time_password(), true, true),
    };
    let hash = login::hash(state, name.as_str(), &password).await.map_err(|e| match e {
        WebError::Invalid { message, .. } => WebError::invalid("password", message),
        other => other,
    })?;
    let admin = state
        .store
        .create_admin(&caller.actor, &name, new.role, &new.domains, &hash, must_change)
        .await?;
    tracing::info!(admin = %admin.name, role = %admin.role, actor = %caller.actor, "administrator created");
    Ok((admin, generated.then_some(password)))
}

/// Gives `name` a new one-time password (ending their sessions); returns it to be shown once.
pub async fn reset_password(
    state: &AppState,
    caller: &Principal,
    name: &AdminName,
) -> Result<String, WebError> {
    caller.require_write()?;
    caller.require_global()?;
    let password = one_time_password();
    let hash = login::hash(state, name.as_str(), &password).await?;
    state.store.set_admin_password(&caller.actor, name, &hash, true).await?;
    tracing::info!(admin = %name, actor = %caller.actor, "administrator password reset");
    Ok(password)
}
