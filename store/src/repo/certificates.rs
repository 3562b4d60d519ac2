//! TLS certificates (import, list, remove, and the opened set the listeners serve), ACME accounts
//! (one per directory URL) and ACME orders.
//!
//! Importing or removing a certificate, and requesting an order, are configuration changes: they
//! go through a `Change`, so every engine and console hears of them on the revision feed. The
//! engine's own progress on an order (`update_acme_order`) and the account it registers are
//! bookkeeping, written without a revision, like queue results.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::rows::parse;
use crate::error::{Result, StoreError};
use crate::model::{
    AcmeOrder, CertificateInfo, CertificateSource, Challenge, DomainName, OrderState,
    PrivateKeyPem, ServingCertificate, parse_certificate,
};
use crate::secrets::{acme_account_context, certificate_key_context};
use crate::store::{Store, now};

/// The largest chain and key accepted, in bytes: far more than any real chain (a few KiB).
pub const MAX_PEM_LEN: usize = 64 * 1024;

const INFO_COLUMNS: &str =
    "id, names, issuer, not_before, not_after, source, acme_directory, created_at";

fn info(row: &AnyRow) -> Result<CertificateInfo> {
    Ok(CertificateInfo {
        id: row.try_get("id")?,
        names: split(&row.try_get::<String, _>("names")?),
        issuer: row.try_get("issuer")?,
        not_before: row.try_get("not_before")?,
        not_after: row.try_get("not_after")?,
        source: parse("certificates", &row.try_get::<String, _>("source")?)?,
        acme_directory: row.try_get("acme_directory")?,
        created_at: row.try_get("created_at")?,
    })
}

fn split(names: &str) -> Vec<String> {
    names.split_ascii_whitespace().map(String::from).collect()
}

const ORDER_COLUMNS: &str = "id, names, challenge, state, error, attempts, next_attempt_at, \
                             certificate_id, replaces, created_at, updated_at";

fn order(row: &AnyRow) -> Result<AcmeOrder> {
    Ok(AcmeOrder {
        id: row.try_get("id")?,
        names: split(&row.try_get::<String, _>("names")?),
        challenge: parse("acme_orders", &row.try_get::<String, _>("challenge")?)?,
        state: parse("acme_orders", &row.try_get::<String, _>("state")?)?,
        error: row.try_get("error")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        certificate_id: row.try_get("certificate_id")?,
        replaces: row.try_get("replaces")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn sorted(names: &[String]) -> Vec<String> {
    let mut names = names.to_vec();
    names.sort();
    names
}

impl Store {
    /// Stores a certificate chain and its key after [`parse_certificate`] accepts them (a key
    /// that is not the leaf's, a chain out of order, an expired certificate are refused with a
    /// message saying so). The key is sealed; the audit record holds only the public facts.
    pub async fn import_certificate(
        &self,
        actor: &str,
        chain_pem: &str,
        key_pem: &str,
        source: CertificateSource,
        acme_directory: Option<&str>,
    ) -> Result<CertificateInfo> {
        if chain_pem.len() > MAX_PEM_LEN || key_pem.len() > MAX_PEM_LEN {
            return Err(StoreError::invalid(
                "certificate",
                format!("the chain and the key must each be under {} KiB", MAX_PEM_LEN / 1024),
            ));
        }
        let parsed = parse_certificate(chain_pem, key_pem, now())?;
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let created_at = now();
            // The row's id is the sealed key's context, so the row is written first.
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO certificates (names, issuer, not_before, not_after, source, \
                 acme_directory, chain_pem, key_pem, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, '', $8) RETURNING id",
            )
            .bind(parsed.names.join(" "))
            .bind(&parsed.issuer)
            .bind(parsed.not_before)
            .bind(parsed.not_after)
            .bind(source.as_str())
            .bind(acme_directory)
            .bind(&parsed.chain_pem)
            .bind(created_at)
            .fetch_one(change.conn())
            .await?;
            let sealed = self.inner.secrets.seal(
                &certificate_key_context(&id.to_string()),
                parsed.key_pem.expose().as_bytes(),
            );
            sqlx::query("UPDATE certificates SET key_pem = $1 WHERE id = $2")
                .bind(sealed)
                .bind(id)
                .execute(change.conn())
                .await?;
            let info = CertificateInfo {
                id,
                names: parsed.names.clone(),
                issuer: parsed.issuer.clone(),
                not_before: parsed.not_before,
                not_after: parsed.not_after,
                source,
                acme_directory: acme_directory.map(String::from),
                created_at,
            };
            change
                .audit(
                    "certificate.import",
                    &format!("certificate {id}"),
                    None::<&CertificateInfo>,
                    Some(&info),
                )
                .await?;
            Ok(info)
        }
        .await;
        change.finish(result).await
    }

    /// Removes a stored certificate; listeners stop serving it at their next reload.
    pub async fn remove_certificate(&self, actor: &str, id: i64) -> Result<CertificateInfo> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let sql = format!("SELECT {INFO_COLUMNS} FROM certificates WHERE id = $1");
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(change.conn())
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    what: "certificate",
                    name: id.to_string(),
                })?;
            let info = info(&row)?;
            sqlx::query("DELETE FROM certificates WHERE id = $1")
                .bind(id)
                .execute(change.conn())
                .await?;
            change
                .audit(
                    "certificate.remove",
                    &format!("certificate {id}"),
                    Some(&info),
                    None::<&CertificateInfo>,
                )
                .await?;
            Ok(info)
        }
        .await;
        change.finish(result).await
    }

    /// Every stored certificate, without keys, oldest first.
    pub async fn list_certificates(&self) -> Result<Vec<CertificateInfo>> {
        let sql = format!("SELECT {INFO_COLUMNS} FROM certificates ORDER BY id");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(info)
            .collect()
    }

    /// One stored certificate, without its key.
    pub async fn certificate(&self, id: i64) -> Result<Option<CertificateInfo>> {
        let sql = format!("SELECT {INFO_COLUMNS} FROM certificates WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(info)
            .transpose()
    }

    /// Every stored certificate with its chain and opened key, for the TLS listeners.
    pub async fn serving_certificates(&self) -> Result<Vec<ServingCertificate>> {
        let sql =
            format!("SELECT {INFO_COLUMNS}, chain_pem, key_pem FROM certificates ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| {
                let info = info(row)?;
                let sealed: String = row.try_get("key_pem")?;
                let key = self
                    .inner
                    .secrets
                    .open_text(&certificate_key_context(&info.id.to_string()), &sealed)?;
                Ok(ServingCertificate {
                    info,
                    chain_pem: row.try_get("chain_pem")?,
                    key_pem: PrivateKeyPem::new(key),
                })
            })
            .collect()
    }

    /// The ACME account's credentials (instant-acme's JSON) for `directory`, opened.
    pub async fn acme_account(&self, directory: &str) -> Result<Option<String>> {
        let sealed: Option<String> =
            sqlx::query_scalar("SELECT credentials FROM acme_accounts WHERE directory = $1")
                .bind(directory)
                .fetch_optional(self.pool())
                .await?;
        sealed
            .map(|s| self.inner.secrets.open_text(&acme_account_context(directory), &s))
            .transpose()
    }

    /// Keeps the account registered at `directory` (replacing an earlier one), sealed.
    pub async fn save_acme_account(
        &self,
        directory: &str,
        contact: Option<&str>,
        credentials_json: &str,
    ) -> Result<()> {
        let sealed =
            self.inner.secrets.seal(&acme_account_context(directory), credentials_json.as_bytes());
        let at = now();
        sqlx::query(
            "INSERT INTO acme_accounts (directory, contact, credentials, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (directory) DO UPDATE SET contact = excluded.contact, \
             credentials = excluded.credentials, updated_at = excluded.updated_at",
        )
        .bind(directory)
        .bind(contact)
        .bind(sealed)
        .bind(at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Asks the engines for a certificate for `names` (the first is the main one). An open order
    /// for the same names is returned instead of a second one. `replaces`: the certificate it
    /// renews.
    pub async fn request_acme_order(
        &self,
        actor: &str,
        names: &[DomainName],
        challenge: Challenge,
        replaces: Option<i64>,
    ) -> Result<AcmeOrder> {
        let mut wanted: Vec<String> = Vec::new();
        for name in names {
            let name = name.as_str().to_ascii_lowercase();
            if !wanted.contains(&name) {
                wanted.push(name);
            }
        }
        if wanted.is_empty() {
            return Err(StoreError::invalid("names", "name at least one host name to order"));
        }
        if wanted.len() > 100 {
            return Err(StoreError::invalid("names", "an order holds at most 100 names"));
        }
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let sql = format!(
                "SELECT {ORDER_COLUMNS} FROM acme_orders WHERE state IN ('pending', 'validating')"
            );
            let open = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(change.conn())
                .await?
                .iter()
                .map(order)
                .collect::<Result<Vec<_>>>()?;
            if let Some(same) = open.into_iter().find(|o| sorted(&o.names) == sorted(&wanted)) {
                return Ok(same);
            }
            if let Some(id) = replaces {
                let exists: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM certificates WHERE id = $1")
                        .bind(id)
                        .fetch_optional(change.conn())
                        .await?;
                if exists.is_none() {
                    return Err(StoreError::NotFound { what: "certificate", name: id.to_string() });
                }
            }
            let at = now();
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO acme_orders (names, challenge, state, attempts, next_attempt_at, \
                 replaces, created_at, updated_at) \
                 VALUES ($1, $2, 'pending', 0, $3, $4, $3, $3) RETURNING id",
            )
            .bind(wanted.join(" "))
            .bind(challenge.as_str())
            .bind(at)
            .bind(replaces)
            .fetch_one(change.conn())
            .await?;
            let created = AcmeOrder {
                id,
                names: wanted.clone(),
                challenge,
                state: OrderState::Pending,
                error: None,
                attempts: 0,
                next_attempt_at: at,
                certificate_id: None,
                replaces,
                created_at: at,
                updated_at: at,
            };
            change
                .audit("acme.order", &format!("order {id}"), None::<&AcmeOrder>, Some(&created))
                .await?;
            Ok(created)
        }
        .await;
        change.finish(result).await
    }

    /// Every order, newest first (the last 500).
    pub async fn list_acme_orders(&self) -> Result<Vec<AcmeOrder>> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM acme_orders ORDER BY id DESC LIMIT 500");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(order)
            .collect()
    }

    /// The open orders whose next attempt is due at `now`, the longest waiting first.
    pub async fn due_acme_orders(&self, now: i64) -> Result<Vec<AcmeOrder>> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM acme_orders \
             WHERE state IN ('pending', 'validating') AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(order)
            .collect()
    }

    /// Records the engine's progress on an order (no revision: bookkeeping, like queue results).
    pub async fn update_acme_order(
        &self,
        id: i64,
        state: OrderState,
        error: Option<&str>,
        attempts: i64,
        next_attempt_at: i64,
        certificate_id: Option<i64>,
    ) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE acme_orders SET state = $1, error = $2, attempts = $3, next_attempt_at = $4, \
             certificate_id = $5, updated_at = $6 WHERE id = $7",
        )
        .bind(state.as_str())
        .bind(error)
        .bind(attempts)
        .bind(next_attempt_at)
        .bind(certificate_id)
        .bind(now())
        .bind(id)
        .execute(self.pool())
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound { what: "ACME order", name: id.to_string() });
        }
        Ok(())
    }
}
