//! Per-domain directory (LDAP / Active Directory) settings: set, show, remove. Every change is a
//! [`crate::store::Change`], so the engine's snapshot, and with it RCPT and AUTH, use the new
//! settings from the next command on. The service password is sealed for its domain's row.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::error::{Result, StoreError};
use crate::model::{
    DirectoryPassword, DirectorySettings, DirectoryUpdate, DomainKind, DomainName, parse_attributes,
};
use crate::secrets::{SecretKey, directory_password_context};
use crate::store::{Store, now};

const COLUMNS: &str = "domain, url, starttls, ca_pem, bind_dn, bind_password, base_dn, \
                       user_filter, attributes, timeout_ms, cache_ttl_secs, updated_at";

fn corrupt(message: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { table: "directories", message: message.to_string() }
}

fn settings(row: &AnyRow, key: &SecretKey) -> Result<DirectorySettings> {
    let domain: String = row.try_get("domain")?;
    let sealed: Option<String> = row.try_get("bind_password")?;
    let password = match sealed {
        Some(s) => key.open_text(&directory_password_context(&domain), &s)?,
        None => String::new(),
    };
    Ok(DirectorySettings {
        domain: domain.parse().map_err(corrupt)?,
        url: row.try_get("url")?,
        starttls: row.try_get::<i64, _>("starttls")? != 0,
        ca_pem: row.try_get("ca_pem")?,
        bind_dn: row.try_get("bind_dn")?,
        bind_password: DirectoryPassword(password),
        base_dn: row.try_get("base_dn")?,
        user_filter: row.try_get("user_filter")?,
        attributes: parse_attributes(&row.try_get::<String, _>("attributes")?).map_err(corrupt)?,
        timeout_ms: row.try_get::<i64, _>("timeout_ms")?.max(1) as u64,
        cache_ttl_secs: row.try_get::<i64, _>("cache_ttl_secs")?.max(0) as u64,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Every domain's directory settings, passwords opened.
pub(crate) async fn load(
    conn: &mut AnyConnection,
    key: &SecretKey,
) -> Result<BTreeMap<DomainName, DirectorySettings>> {
    let sql = format!("SELECT {COLUMNS} FROM directories");
    let mut out = BTreeMap::new();
    for row in sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(conn).await? {
        let s = settings(&row, key)?;
        out.insert(s.domain.clone(), s);
    }
    Ok(out)
}

async fn get(
    conn: &mut AnyConnection,
    key: &SecretKey,
    domain: &DomainName,
) -> Result<Option<DirectorySettings>> {
    let sql = format!("SELECT {COLUMNS} FROM directories WHERE domain = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(domain.as_str())
        .fetch_optional(conn)
        .await?
        .map(|row| settings(&row, key))
        .transpose()
}

fn not_found(domain: &DomainName) -> StoreError {
    StoreError::NotFound { what: "directory for domain", name: domain.to_string() }
}

impl Store {
    /// Attaches a directory to local domain `domain`, or replaces its settings. A `None`
    /// password keeps the stored one.
    pub async fn set_directory(
        &self,
        actor: &str,
        domain: &DomainName,
        update: DirectoryUpdate,
    ) -> Result<DirectorySettings> {
        update.check().map_err(|(field, message)| StoreError::invalid(field, message))?;
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let kind: Option<String> =
                sqlx::query_scalar("SELECT kind FROM domains WHERE name = $1")
                    .bind(domain.as_str())
                    .fetch_optional(change.conn())
                    .await?;
            let Some(kind) = kind else {
                return Err(StoreError::NotFound { what: "domain", name: domain.to_string() });
            };
            if kind.parse::<DomainKind>().ok() != Some(DomainKind::Local) {
                return Err(StoreError::invalid(
                    "domain",
                    format!(
                        "{domain} is a relay domain: a directory holds mailboxes of a local domain"
                    ),
                ));
            }
            let key = &self.inner.secrets;
            let before = get(change.conn(), key, domain).await?;
            let password = match update.bind_password {
                Some(p) => p,
                None => before.as_ref().map(|b| b.bind_password.clone()).unwrap_or_default(),
            };
            let after = DirectorySettings {
                domain: domain.clone(),
                url: update.url.trim().to_string(),
                starttls: update.starttls,
                ca_pem: update.ca_pem.filter(|p| !p.trim().is_empty()),
                bind_dn: update.bind_dn.trim().to_string(),
                bind_password: if update.bind_dn.trim().is_empty() {
                    DirectoryPassword::default()
                } else {
                    password
                },
                base_dn: update.base_dn.trim().to_string(),
                user_filter: update.user_filter.trim().to_string(),
                attributes: update.attributes,
                timeout_ms: update.timeout_ms,
                cache_ttl_secs: update.cache_ttl_secs,
                updated_at: now(),
            };
            let sealed = (!after.bind_password.is_empty()).then(|| {
                key.seal(
                    &directory_password_context(domain.as_str()),
                    after.bind_password.expose().as_bytes(),
                )
            });
            sqlx::query("DELETE FROM directories WHERE domain = $1")
                .bind(domain.as_str())
                .execute(change.conn())
                .await?;
            let sql = format!(
                "INSERT INTO directories ({COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(domain.as_str())
                .bind(&after.url)
                .bind(i64::from(after.starttls))
                .bind(after.ca_pem.clone())
                .bind(&after.bind_dn)
                .bind(sealed)
                .bind(&after.base_dn)
                .bind(&after.user_filter)
                .bind(after.attributes.join(" "))
                .bind(after.timeout_ms as i64)
                .bind(after.cache_ttl_secs as i64)
                .bind(after.updated_at)
                .execute(change.conn())
                .await?;
            change.audit("directory.set", domain.as_str(), before.as_ref(), Some(&after)).await?;
            Ok(after)
        }
        .await;
        change.finish(result).await
    }

    /// `domain`'s directory settings, if it has a directory.
    pub async fn get_directory(&self, domain: &DomainName) -> Result<Option<DirectorySettings>> {
        let mut conn = self.pool().acquire().await?;
        get(&mut conn, &self.inner.secrets, domain).await
    }

    /// Every domain's directory settings.
    pub async fn list_directories(&self) -> Result<Vec<DirectorySettings>> {
        let mut conn = self.pool().acquire().await?;
        Ok(load(&mut conn, &self.inner.secrets).await?.into_values().collect())
    }

    /// Detaches the directory from `domain`: its users are no longer known.
    pub async fn remove_directory(
        &self,
        actor: &str,
        domain: &DomainName,
    ) -> Result<DirectorySettings> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let before = get(change.conn(), &self.inner.secrets, domain)
                .await?
                .ok_or_else(|| not_found(domain))?;
            sqlx::query("DELETE FROM directories WHERE domain = $1")
                .bind(domain.as_str())
                .execute(change.conn())
                .await?;
            change
                .audit(
                    "directory.remove",
                    domain.as_str(),
                    Some(&before),
                    None::<&DirectorySettings>,
                )
                .await?;
            Ok(before)
        }
        .await;
        change.finish(result).await
    }
}
