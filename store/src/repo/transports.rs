//! Transport rules: set (create or replace), list, remove.

use sqlx::AnyConnection;

use super::rows;
use crate::error::{Result, StoreError};
use crate::model::{SmtpCredentials, TlsPolicy, Transport, TransportPattern, TransportRule};
use crate::secrets::{SecretKey, transport_password_context};
use crate::store::{Store, now};

async fn get(
    conn: &mut AnyConnection,
    key: &SecretKey,
    pattern: &TransportPattern,
) -> Result<Option<TransportRule>> {
    sqlx::query(
        "SELECT pattern, transport, tls, auth_username, auth_password, updated_at FROM transports \
         WHERE pattern = $1",
    )
    .bind(pattern.to_string())
    .fetch_optional(conn)
    .await?
    .map(|row| rows::transport(&row, key))
    .transpose()
}

impl Store {
    /// Sets the transport for `pattern`, replacing any earlier rule for it.
    pub async fn set_transport(
        &self,
        actor: &str,
        pattern: &TransportPattern,
        transport: Transport,
        tls: TlsPolicy,
        auth: Option<SmtpCredentials>,
    ) -> Result<TransportRule> {
        if auth.is_some() && !matches!(transport, Transport::Smtp { .. } | Transport::Lmtp(_)) {
            return Err(StoreError::invalid(
                "auth",
                format!("credentials apply to smtp: and lmtp: transports, not {transport}"),
            ));
        }
        if let Some(creds) = &auth {
            if creds.username.is_empty() || creds.username.chars().any(char::is_control) {
                return Err(StoreError::invalid(
                    "auth",
                    "the user name must be one non-empty line",
                ));
            }
            if creds.password.is_empty() {
                return Err(StoreError::invalid("auth", "the password is empty"));
            }
        }
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let key = &self.inner.secrets;
            let before = get(change.conn(), key, pattern).await?;
            let rule = TransportRule { pattern: pattern.clone(), transport, tls, auth, updated_at: now() };
            sqlx::query(
                "INSERT INTO transports (pattern, transport, tls, auth_username, auth_password, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (pattern) DO UPDATE SET transport = excluded.transport, tls = excluded.tls, \
                 auth_username = excluded.auth_username, auth_password = excluded.auth_password, \
                 updated_at = excluded.updated_at",
            )
            .bind(pattern.to_string())
            .bind(rule.transport.to_string())
            .bind(rule.tls.as_str())
            .bind(rule.auth.as_ref().map(|a| a.username.clone()))
            // Sealed for this pattern's row: the value does not open anywhere else.
            .bind(rule.auth.as_ref().map(|a| {
                key.seal(&transport_password_context(&pattern.to_string()), a.password.as_bytes())
            }))
            .bind(rule.updated_at)
            .execute(change.conn())
            .await?;
            change.audit("transport.set", &pattern.to_string(), before.as_ref(), Some(&rule)).await?;
            Ok(rule)
        }
        .await;
        change.finish(result).await
    }

    pub async fn list_transports(&self) -> Result<Vec<TransportRule>> {
        let mut rules = sqlx::query(
            "SELECT pattern, transport, tls, auth_username, auth_password, updated_at FROM transports",
        )
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|row| rows::transport(row, &self.inner.secrets))
        .collect::<Result<Vec<_>>>()?;
        rules.sort_by(|a, b| a.pattern.cmp(&b.pattern));
        Ok(rules)
    }

    pub async fn remove_transport(
        &self,
        actor: &str,
        pattern: &TransportPattern,
    ) -> Result<TransportRule> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let rule =
                get(change.conn(), &self.inner.secrets, pattern).await?.ok_or_else(|| {
                    StoreError::NotFound { what: "transport for", name: pattern.to_string() }
                })?;
            sqlx::query("DELETE FROM transports WHERE pattern = $1")
                .bind(pattern.to_string())
                .execute(change.conn())
                .await?;
            change
                .audit(
                    "transport.remove",
                    &pattern.to_string(),
                    Some(&rule),
                    None::<&TransportRule>,
                )
                .await?;
            Ok(rule)
        }
        .await;
        change.finish(result).await
    }
}
