//! The `[auth]` section: who checks the passwords of SMTP AUTH on 587 and 465. Postern's own
//! mailboxes by default; Dovecot's authentication service for sites whose users live only in
//! Dovecot (Postfix's `smtpd_sasl_type = dovecot`).

use std::path::PathBuf;

use serde::Deserialize;

use super::BootError;

/// Dovecot's socket for authentication clients on Debian (`service auth` `unix_listener
/// auth-client`; Postfix's setups often add one under its spool instead).
pub const DEFAULT_DOVECOT_SOCKET: &str = "/var/run/dovecot/auth-client";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    backend: Option<String>,
    dovecot_socket: Option<PathBuf>,
    /// Wrong passwords (or API tokens) allowed per account and client address before each
    /// further attempt must wait; 5 by default.
    failures_per_account: Option<u32>,
    /// The same per client address, whatever the account; 20 by default.
    failures_per_address: Option<u32>,
}

/// Who checks SMTP AUTH passwords.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SmtpAuthBackend {
    /// The mailboxes' argon2id hashes in the store.
    #[default]
    Postern,
    /// Dovecot's authentication service, over its client socket.
    Dovecot { socket: PathBuf },
}

impl RawAuth {
    /// The password-attempt limiter's allowances: the defaults (`crate::auth::Policy`) unless
    /// raised or lowered here. A fuzzing instance raises them (`.ci/fuzz-api`), as its
    /// wrong-token probes would otherwise be answered 429 after the first twenty.
    pub(super) fn attempts(&self, origin: &str) -> Result<crate::auth::Policy, BootError> {
        let mut policy = crate::auth::Policy::default();
        for (field, value, rule) in [
            ("auth.failures_per_account", self.failures_per_account, &mut policy.pair),
            ("auth.failures_per_address", self.failures_per_address, &mut policy.address),
        ] {
            match value {
                Some(0) => {
                    return Err(BootError::Invalid {
                        origin: origin.to_string(),
                        field: field.to_string(),
                        value: "0".into(),
                        message: "must be at least 1".into(),
                    });
                }
                Some(n) => rule.free = n,
                None => {}
            }
        }
        Ok(policy)
    }

    pub(super) fn build(self, origin: &str) -> Result<SmtpAuthBackend, BootError> {
        let invalid = |field: &str, value: &str, message: &str| BootError::Invalid {
            origin: origin.to_string(),
            field: field.to_string(),
            value: value.to_string(),
            message: message.to_string(),
        };
        match self.backend.as_deref().unwrap_or("postern") {
            "postern" => match self.dovecot_socket {
                Some(p) => Err(invalid(
                    "auth.dovecot_socket",
                    &p.display().to_string(),
                    "is only used with backend = \"dovecot\"",
                )),
                None => Ok(SmtpAuthBackend::Postern),
            },
            "dovecot" => {
                let socket = self.dovecot_socket.unwrap_or_else(|| DEFAULT_DOVECOT_SOCKET.into());
                if !socket.is_absolute() {
                    return Err(invalid(
                        "auth.dovecot_socket",
                        &socket.display().to_string(),
                        "must be an absolute path",
                    ));
                }
                Ok(SmtpAuthBackend::Dovecot { socket })
            }
            other => Err(invalid("auth.backend", other, "must be \"postern\" or \"dovecot\"")),
        }
    }
}
