//! DKIM keys: generate, rotate, activate, record what DNS shows, retire. Every state change is a
//! [`Change`](crate::store::Change), so that the engine's snapshot, and with it the signer, has
//! the new active keys from the next message on. The DNS lookups themselves are the engine's
//! (`postern_server::mailauth::rollout`); the store only records their outcome.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::error::{Result, StoreError};
use crate::model::{
    DkimAlgorithm, DkimKey, DkimPrivateKey, DkimSettings, DkimState, DnsCheck, DomainName,
    check_bits, check_rotate_days, check_selector, dated_selector, record_name,
};
use crate::secrets::{SecretKey, dkim_private_key_context};
use crate::store::{Store, now};

/// How long a replaced key's record must stay published: mail signed just before the switch
/// may sit in queues and be verified days later (RFC 6376 §3.6.1 leaves revocation to the
/// signer; M3AAWG's DKIM key rotation advice is several days).
pub const RETIRE_GRACE_SECS: i64 = 7 * 86_400;

const COLUMNS: &str = "name, domain, selector, algorithm, bits, public_key, private_key, state, \
    created_at, activated_at, retiring_at, retire_after, retired_at, dns_checked_at, dns_status, \
    dns_found";

fn corrupt(message: String) -> StoreError {
    StoreError::Corrupt { table: "dkim_keys", message }
}

pub(crate) fn row(row: &AnyRow, key: &SecretKey) -> Result<DkimKey> {
    let name: String = row.try_get("name")?;
    let sealed: String = row.try_get("private_key")?;
    let private_key = DkimPrivateKey::new(key.open(&dkim_private_key_context(&name), &sealed)?);
    let status: Option<String> = row.try_get("dns_status")?;
    let bits: i64 = row.try_get("bits")?;
    Ok(DkimKey {
        domain: row.try_get::<String, _>("domain")?.parse().map_err(|e| corrupt(format!("{e}")))?,
        selector: row.try_get("selector")?,
        algorithm: row.try_get::<String, _>("algorithm")?.parse().map_err(corrupt)?,
        bits: bits as u32,
        public_key: row.try_get("public_key")?,
        private_key,
        state: row.try_get::<String, _>("state")?.parse().map_err(corrupt)?,
        created_at: row.try_get("created_at")?,
        activated_at: row.try_get("activated_at")?,
        retiring_at: row.try_get("retiring_at")?,
        retire_after: row.try_get("retire_after")?,
        retired_at: row.try_get("retired_at")?,
        dns_checked_at: row.try_get("dns_checked_at")?,
        dns: status.and_then(|s| DnsCheck::from_parts(&s, row.try_get("dns_found").ok().flatten())),
    })
}

/// Every key, retired ones included, by domain and creation.
pub(crate) async fn load_all(conn: &mut AnyConnection, key: &SecretKey) -> Result<Vec<DkimKey>> {
    let sql = format!("SELECT {COLUMNS} FROM dkim_keys ORDER BY domain, created_at, selector");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| row(r, key))
        .collect()
}

async fn keys_of(
    conn: &mut AnyConnection,
    key: &SecretKey,
    domain: &DomainName,
) -> Result<Vec<DkimKey>> {
    let sql =
        format!("SELECT {COLUMNS} FROM dkim_keys WHERE domain = $1 ORDER BY created_at, selector");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(domain.as_str())
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| row(r, key))
        .collect()
}

async fn set_state(conn: &mut AnyConnection, k: &DkimKey) -> Result<()> {
    sqlx::query(
        "UPDATE dkim_keys SET state = $1, activated_at = $2, retiring_at = $3, retire_after = $4, \
         retired_at = $5 WHERE name = $6",
    )
    .bind(k.state.as_str())
    .bind(k.activated_at)
    .bind(k.retiring_at)
    .bind(k.retire_after)
    .bind(k.retired_at)
    .bind(k.record_name())
    .execute(conn)
    .await?;
    Ok(())
}

fn not_found(domain: &DomainName, selector: &str) -> StoreError {
    StoreError::NotFound { what: "DKIM key", name: record_name(selector, domain) }
}

impl Store {
    /// Every DKIM key of `domain` (or of every domain), retired ones included.
    pub async fn list_dkim_keys(&self, domain: Option<&DomainName>) -> Result<Vec<DkimKey>> {
        let mut conn = self.pool().acquire().await?;
        let all = load_all(&mut conn, &self.inner.secrets).await?;
        Ok(all.into_iter().filter(|k| domain.is_none_or(|d| &k.domain == d)).collect())
    }

    /// Makes a new key for `domain`, `pending` until its record is seen in DNS (or it is
    /// activated by force). `bits` only for RSA (2048 unless given); the selector is dated
    /// unless given. Generation runs on a blocking thread (a 4096-bit RSA key takes seconds).
    pub async fn generate_dkim_key(
        &self,
        actor: &str,
        domain: &DomainName,
        algorithm: DkimAlgorithm,
        bits: Option<u32>,
        selector: Option<&str>,
    ) -> Result<DkimKey> {
        let bits = check_bits(algorithm, bits).map_err(|m| StoreError::invalid("bits", m))?;
        let selector = selector
            .map(check_selector)
            .transpose()
            .map_err(|m| StoreError::invalid("selector", m))?;
        let made =
            tokio::task::spawn_blocking(move || crate::model::dkim_generate(algorithm, bits))
                .await
                .map_err(|e| {
                    StoreError::invalid("algorithm", format!("key generation failed: {e}"))
                })?
                .map_err(|m| StoreError::invalid("algorithm", m))?;
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM domains WHERE name = $1")
                .bind(domain.as_str())
                .fetch_one(change.conn())
                .await?;
            if exists == 0 {
                return Err(StoreError::NotFound { what: "domain", name: domain.to_string() });
            }
            let existing = keys_of(change.conn(), &self.inner.secrets, domain).await?;
            let taken: Vec<&str> = existing.iter().map(|k| k.selector.as_str()).collect();
            let created_at = now();
            let selector = match selector {
                Some(s) if taken.contains(&s.as_str()) => {
                    return Err(StoreError::Duplicate {
                        what: "DKIM key",
                        name: record_name(&s, domain),
                    });
                }
                Some(s) => s,
                None => dated_selector(created_at, &taken),
            };
            let key = DkimKey {
                domain: domain.clone(),
                selector,
                algorithm,
                bits,
                public_key: made.public_key,
                private_key: made.private_key,
                state: DkimState::Pending,
                created_at,
                activated_at: None,
                retiring_at: None,
                retire_after: None,
                retired_at: None,
                dns_checked_at: None,
                dns: None,
            };
            let name = key.record_name();
            // Sealed for this record name: the value does not open in another row.
            let sealed = self
                .inner
                .secrets
                .seal(&dkim_private_key_context(&name), key.private_key.pkcs8_der());
            sqlx::query(
                "INSERT INTO dkim_keys (name, domain, selector, algorithm, bits, public_key, \
                 private_key, state, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&name)
            .bind(domain.as_str())
            .bind(&key.selector)
            .bind(algorithm.as_str())
            .bind(i64::from(bits))
            .bind(&key.public_key)
            .bind(sealed)
            .bind(key.state.as_str())
            .bind(created_at)
            .execute(change.conn())
            .await?;
            change.audit("dkim.generate", &name, None::<&DkimKey>, Some(&key)).await?;
            Ok(key)
        }
        .await;
        change.finish(result).await
    }

    /// Makes the next key for `domain`, `pending`, of the same algorithm and size as its
    /// active key (`algorithm` picks one when both an Ed25519 and an RSA key are active).
    pub async fn rotate_dkim_key(
        &self,
        actor: &str,
        domain: &DomainName,
        algorithm: Option<DkimAlgorithm>,
    ) -> Result<DkimKey> {
        let keys = self.list_dkim_keys(Some(domain)).await?;
        let active: Vec<&DkimKey> = keys
            .iter()
            .filter(|k| k.state == DkimState::Active && algorithm.is_none_or(|a| k.algorithm == a))
            .collect();
        let current = match active.as_slice() {
            [] => {
                return Err(StoreError::Conflict(format!(
                    "{domain} has no active DKIM key{} to rotate: generate one with `postern dkim \
                     generate {domain}`",
                    algorithm.map(|a| format!(" ({a})")).unwrap_or_default()
                )));
            }
            [one] => *one,
            _ => {
                return Err(StoreError::Conflict(format!(
                    "{domain} has an active Ed25519 and an active RSA key: say which to rotate \
                     (--algorithm ed25519 or rsa)"
                )));
            }
        };
        if let Some(pending) =
            keys.iter().find(|k| k.state == DkimState::Pending && k.algorithm == current.algorithm)
        {
            return Err(StoreError::Conflict(format!(
                "{} is already pending, waiting for its DNS record: publish it, or activate it \
                 with `postern dkim activate {domain} {} --force`",
                pending.record_name(),
                pending.selector
            )));
        }
        let bits = (current.algorithm == DkimAlgorithm::Rsa).then_some(current.bits);
        self.generate_dkim_key(actor, domain, current.algorithm, bits, None).await
    }

    /// Makes a key active: it signs from the next message on. The active key of the same
    /// algorithm it replaces starts retiring, its record to stay published until
    /// `now + RETIRE_GRACE_SECS`.
    pub async fn activate_dkim_key(
        &self,
        actor: &str,
        domain: &DomainName,
        selector: &str,
    ) -> Result<DkimKey> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let keys = keys_of(change.conn(), &self.inner.secrets, domain).await?;
            let mut key = keys
                .iter()
                .find(|k| k.selector == selector)
                .cloned()
                .ok_or_else(|| not_found(domain, selector))?;
            match key.state {
                DkimState::Pending => {}
                DkimState::Active => return Ok(key),
                DkimState::Retiring | DkimState::Retired => {
                    return Err(StoreError::Conflict(format!(
                        "{} is {}: a key that stopped signing does not come back; rotate to a \
                         new one",
                        key.record_name(),
                        key.state
                    )));
                }
            }
            let at = now();
            for old in keys.iter().filter(|k| {
                k.state == DkimState::Active
                    && k.algorithm == key.algorithm
                    && k.selector != selector
            }) {
                let before = old.clone();
                let mut old = old.clone();
                old.state = DkimState::Retiring;
                old.retiring_at = Some(at);
                old.retire_after = Some(at + RETIRE_GRACE_SECS);
                set_state(change.conn(), &old).await?;
                change
                    .audit("dkim.retiring", &old.record_name(), Some(&before), Some(&old))
                    .await?;
            }
            let before = key.clone();
            key.state = DkimState::Active;
            key.activated_at = Some(at);
            set_state(change.conn(), &key).await?;
            change.audit("dkim.activate", &key.record_name(), Some(&before), Some(&key)).await?;
            Ok(key)
        }
        .await;
        change.finish(result).await
    }

    /// Records what DNS showed for a key. A pending key whose record is published and matches
    /// becomes active (see [`Store::activate_dkim_key`]); the check itself is status, not
    /// configuration, and is written without a new revision.
    pub async fn record_dkim_check(
        &self,
        actor: &str,
        domain: &DomainName,
        selector: &str,
        check: &DnsCheck,
    ) -> Result<DkimKey> {
        let name = record_name(selector, domain);
        let updated = sqlx::query(
            "UPDATE dkim_keys SET dns_checked_at = $1, dns_status = $2, dns_found = $3 \
             WHERE name = $4",
        )
        .bind(now())
        .bind(check.status())
        .bind(check.found().map(str::to_string))
        .bind(&name)
        .execute(self.pool())
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(not_found(domain, selector));
        }
        let key = self
            .list_dkim_keys(Some(domain))
            .await?
            .into_iter()
            .find(|k| k.selector == selector)
            .ok_or_else(|| not_found(domain, selector))?;
        if key.state == DkimState::Pending && *check == DnsCheck::Published {
            return self.activate_dkim_key(actor, domain, selector).await;
        }
        Ok(key)
    }

    /// Retires the retiring keys whose grace period ended by `at`: their records may go.
    pub async fn retire_due_dkim_keys(&self, actor: &str, at: i64) -> Result<Vec<DkimKey>> {
        let due: Vec<DkimKey> = self
            .list_dkim_keys(None)
            .await?
            .into_iter()
            .filter(|k| k.state == DkimState::Retiring && k.retire_after.is_some_and(|t| t <= at))
            .collect();
        if due.is_empty() {
            return Ok(due);
        }
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let mut retired = Vec::new();
            for before in due {
                let mut key = before.clone();
                key.state = DkimState::Retired;
                key.retired_at = Some(at);
                set_state(change.conn(), &key).await?;
                change.audit("dkim.retire", &key.record_name(), Some(&before), Some(&key)).await?;
                retired.push(key);
            }
            Ok(retired)
        }
        .await;
        change.finish(result).await
    }
}

/// Every domain's DKIM settings that differ from the defaults.
pub(crate) async fn load_settings(
    conn: &mut AnyConnection,
) -> Result<std::collections::BTreeMap<DomainName, DkimSettings>> {
    let mut settings = std::collections::BTreeMap::new();
    for row in sqlx::query("SELECT domain, rotate_days, sign_relayed FROM dkim_settings")
        .fetch_all(conn)
        .await?
    {
        let domain: DomainName = row
            .try_get::<String, _>("domain")?
            .parse()
            .map_err(|e| StoreError::Corrupt { table: "dkim_settings", message: format!("{e}") })?;
        settings.insert(domain, settings_row(&row)?);
    }
    Ok(settings)
}

fn settings_row(row: &AnyRow) -> Result<DkimSettings> {
    let days: Option<i64> = row.try_get("rotate_days")?;
    let relayed: i64 = row.try_get("sign_relayed")?;
    Ok(DkimSettings {
        rotate_days: days.map(|d| d.clamp(0, i64::from(u32::MAX)) as u32),
        sign_relayed: relayed != 0,
    })
}

impl Store {
    /// `domain`'s DKIM settings (the defaults when none were set).
    pub async fn dkim_settings(&self, domain: &DomainName) -> Result<DkimSettings> {
        let row =
            sqlx::query("SELECT rotate_days, sign_relayed FROM dkim_settings WHERE domain = $1")
                .bind(domain.as_str())
                .fetch_optional(self.pool())
                .await?;
        row.map(|r| settings_row(&r)).transpose().map(Option::unwrap_or_default)
    }

    /// Every domain's DKIM settings that differ from the defaults.
    pub async fn list_dkim_settings(
        &self,
    ) -> Result<std::collections::BTreeMap<DomainName, DkimSettings>> {
        let mut conn = self.pool().acquire().await?;
        load_settings(&mut conn).await
    }

    /// Sets `domain`'s DKIM settings (the rotation period is checked: 7 to 3650 days).
    pub async fn set_dkim_settings(
        &self,
        actor: &str,
        domain: &DomainName,
        settings: DkimSettings,
    ) -> Result<DkimSettings> {
        if let Some(days) = settings.rotate_days {
            check_rotate_days(days).map_err(|m| StoreError::invalid("rotate_days", m))?;
        }
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM domains WHERE name = $1")
                .bind(domain.as_str())
                .fetch_one(change.conn())
                .await?;
            if exists == 0 {
                return Err(StoreError::NotFound { what: "domain", name: domain.to_string() });
            }
            let before = sqlx::query(
                "SELECT rotate_days, sign_relayed FROM dkim_settings WHERE domain = $1",
            )
            .bind(domain.as_str())
            .fetch_optional(change.conn())
            .await?
            .map(|r| settings_row(&r))
            .transpose()?
            .unwrap_or_default();
            sqlx::query("DELETE FROM dkim_settings WHERE domain = $1")
                .bind(domain.as_str())
                .execute(change.conn())
                .await?;
            if settings != DkimSettings::default() {
                sqlx::query(
                    "INSERT INTO dkim_settings (domain, rotate_days, sign_relayed, updated_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(domain.as_str())
                .bind(settings.rotate_days.map(i64::from))
                .bind(i64::from(settings.sign_relayed))
                .bind(now())
                .execute(change.conn())
                .await?;
            }
            change.audit("dkim.settings", domain.as_str(), Some(&before), Some(&settings)).await?;
            Ok(settings)
        }
        .await;
        change.finish(result).await
    }

    /// Automatic rotation, as of `at`: for each domain that asks for it, each active key that
    /// has signed for its period (since its activation) gets its successor, pending, of the same
    /// algorithm and size, unless one is already pending. The rollout then activates the new
    /// key once its record is seen and retires the old one as for a manual rotation. Returns
    /// the keys made.
    pub async fn auto_rotate_dkim_keys(&self, actor: &str, at: i64) -> Result<Vec<DkimKey>> {
        let mut made = Vec::new();
        for (domain, settings) in self.list_dkim_settings().await? {
            let Some(days) = settings.rotate_days else { continue };
            let keys = self.list_dkim_keys(Some(&domain)).await?;
            for key in keys.iter().filter(|k| k.state == DkimState::Active) {
                let since = key.activated_at.unwrap_or(key.created_at);
                let due = at.saturating_sub(since) >= i64::from(days) * 86_400;
                let waiting = keys
                    .iter()
                    .any(|k| k.state == DkimState::Pending && k.algorithm == key.algorithm);
                if due && !waiting {
                    match self.rotate_dkim_key(actor, &domain, Some(key.algorithm)).await {
                        Ok(next) => made.push(next),
                        // Changed meanwhile (a key activated or generated by hand): next pass.
                        Err(StoreError::Conflict(_) | StoreError::Duplicate { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(made)
    }
}
