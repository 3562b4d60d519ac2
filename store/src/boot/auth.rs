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
