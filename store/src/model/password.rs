//! Mailbox and administrator passwords: argon2id hashes, never shown.

use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

use argon2::password_hash::phc::PasswordHash as PhcHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::StoreError;

/// Shortest password we accept when one is set.
pub const MIN_PASSWORD_LEN: usize = 8;

/// The most common passwords, lower-cased: the first ones a guesser tries, so never accepted.
const COMMON: &str = include_str!("common_passwords.txt");

fn is_common(password: &str) -> bool {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    let set = SET.get_or_init(|| {
        COMMON.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
    });
    set.contains(password.trim().to_lowercase().as_str())
}

/// The rules a new password must meet: long enough, not one of the most common passwords, and
/// not the account's own name (for a mailbox, neither the address nor its local part). `user`
/// is empty when there is no name to compare.
pub fn check_new_password(user: &str, password: &str) -> Result<(), StoreError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(StoreError::invalid(
            "password",
            format!("must be at least {MIN_PASSWORD_LEN} characters long"),
        ));
    }
    if is_common(password) {
        return Err(StoreError::invalid(
            "password",
            "is one of the most common passwords, the first ones an attacker tries; choose another",
        ));
    }
    let local = user.rsplit_once('@').map_or(user, |(local, _)| local);
    let typed = password.trim();
    if !user.is_empty() && (typed.eq_ignore_ascii_case(user) || typed.eq_ignore_ascii_case(local)) {
        return Err(StoreError::invalid("password", "may not be the account's own name"));
    }
    Ok(())
}

/// A PHC-format argon2id hash. Its `Debug` hides the value, and it has no `Serialize`, so it cannot
/// leak into a log line, an API response or an audit record.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// OWASP's argon2id minimum (m = 19 MiB, t = 2, p = 1); issue 5 asks for at least this.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl PasswordHash {
    /// Hashes `password` with a fresh salt. Costs tens of milliseconds: call it off the async
    /// executor (`spawn_blocking`) on hot paths.
    pub fn create(password: &str) -> Result<Self, StoreError> {
        Self::create_for("", password)
    }

    /// [`PasswordHash::create`] for the account `user` (an administrator's name or a mailbox's
    /// address), whose name the password may not be.
    pub fn create_for(user: &str, password: &str) -> Result<Self, StoreError> {
        check_new_password(user, password)?;
        let hash = hasher()
            .hash_password(password.as_bytes())
            .map_err(|e| StoreError::Password(e.to_string()))?;
        Ok(PasswordHash(hash.to_string()))
    }

    /// Wraps a hash read from the store, checking that it is one we can verify.
    pub fn from_phc(phc: String) -> Result<Self, StoreError> {
        PhcHash::new(&phc).map_err(|_| StoreError::Corrupt {
            table: "mailboxes",
            message: "a password hash is not in PHC format".into(),
        })?;
        Ok(PasswordHash(phc))
    }

    /// Constant-time check of `password` against the hash.
    pub fn verify(&self, password: &str) -> bool {
        match PhcHash::new(&self.0) {
            Ok(parsed) => hasher().verify_password(password.as_bytes(), &parsed).is_ok(),
            Err(_) => false,
        }
    }

    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_and_hides() {
        let hash = PasswordHash::create("correct horse").unwrap();
        assert!(hash.as_phc().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hash.verify("correct horse"));
        assert!(!hash.verify("wrong horse"));
        assert_eq!(format!("{hash:?}"), "PasswordHash(<redacted>)");
        assert!(PasswordHash::create("short").is_err());
    }

    #[test]
    fn common_passwords_and_own_names_are_refused() {
        for common in ["password", "Password1", "QWERTY123", "iloveyou", "12345678", "p@ssw0rd"] {
            let err = check_new_password("", common).unwrap_err().to_string();
            assert!(err.contains("most common passwords"), "{common}: {err}");
        }
        let err = check_new_password("dora-admin", "DORA-ADMIN").unwrap_err().to_string();
        assert!(err.contains("own name"), "{err}");
        assert!(check_new_password("annabelle@example.com", "Annabelle@example.com").is_err());
        let err = check_new_password("annabelle@example.com", "AnnaBelle").unwrap_err();
        assert!(err.to_string().contains("own name"), "{err}");
        check_new_password("annabelle@example.com", "correct horse battery").unwrap();
        assert!(COMMON.lines().filter(|l| !l.starts_with('#')).count() > 500);
    }
}
