//! Mailboxes: an address that stores mail and can log in.

use serde::Serialize;

use super::{Address, PasswordHash, SendAs};

/// A mailbox as the store holds it. Serialising it leaves the password hash out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mailbox {
    pub address: Address,
    pub display_name: String,
    pub enabled: bool,
    /// `None`: no limit.
    pub quota_bytes: Option<u64>,
    #[serde(skip)]
    pub password_hash: PasswordHash,
    /// Addresses and `@domain`s it may send as beyond its own and its aliases.
    pub send_as: Vec<SendAs>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What it takes to create a mailbox.
#[derive(Debug, Clone)]
pub struct NewMailbox {
    pub address: Address,
    pub display_name: String,
    pub enabled: bool,
    pub quota_bytes: Option<u64>,
    pub password_hash: PasswordHash,
}

/// A partial update: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct MailboxUpdate {
    pub display_name: Option<String>,
    pub enabled: Option<bool>,
    /// `Some(None)` removes the limit.
    pub quota_bytes: Option<Option<u64>>,
    pub password_hash: Option<PasswordHash>,
    /// Replaces the whole send-as list.
    pub send_as: Option<Vec<SendAs>>,
}

/// Display names end up in headers and pages: keep them to one printable line.
pub(crate) fn check_display_name(name: &str) -> Result<(), crate::StoreError> {
    if name.chars().count() > 200 {
        return Err(crate::StoreError::invalid("display_name", "is longer than 200 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(crate::StoreError::invalid(
            "display_name",
            "may not contain control characters or line breaks",
        ));
    }
    Ok(())
}
