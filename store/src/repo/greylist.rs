//! Greylisting: its settings and domains (configuration, through a `Change`), and the triplets
//! the engines record (bookkeeping like the queue's: no revision, no audit record), shared by
//! every engine on one database.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Row};

use crate::error::{Result, StoreError};
use crate::model::{Domain, DomainName, GreylistRecord, GreylistSettings, Greylisting, Triplet};
use crate::store::{Store, now};

async fn settings(conn: &mut AnyConnection) -> Result<GreylistSettings> {
    let row = sqlx::query("SELECT delay, retry_window, expire FROM greylist_settings WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(row) => GreylistSettings {
            delay: row.try_get("delay")?,
            retry_window: row.try_get("retry_window")?,
            expire: row.try_get("expire")?,
        },
        None => GreylistSettings::default(),
    })
}

/// The settings and the greylisted domains that exist.
pub(crate) async fn load(
    conn: &mut AnyConnection,
    domains: &BTreeMap<DomainName, Domain>,
) -> Result<Greylisting> {
    let settings = settings(conn).await?;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT domain FROM greylist_domains").fetch_all(&mut *conn).await?;
    let domains = names
        .iter()
        .filter_map(|n| n.parse::<DomainName>().ok())
        .filter(|n| domains.contains_key(n))
        .collect();
    Ok(Greylisting { settings, domains })
}

fn read_record(row: &sqlx::any::AnyRow) -> Result<GreylistRecord> {
    Ok(GreylistRecord {
        triplet: Triplet {
            client: row.try_get("client")?,
            sender: row.try_get("sender")?,
            recipient: row.try_get("recipient")?,
        },
        first_seen: row.try_get("first_seen")?,
        last_seen: row.try_get("last_seen")?,
        passed_at: row.try_get("passed_at")?,
    })
}

impl Store {
    /// The settings and the greylisted domains.
    pub async fn greylisting(&self) -> Result<Greylisting> {
        let mut conn = self.pool().acquire().await?;
        let domains = self.list_domains().await?.into_iter().map(|d| (d.name.clone(), d)).collect();
        load(&mut conn, &domains).await
    }

    /// Turns greylisting on or off for mail to `domain`.
    pub async fn set_greylisting(&self, actor: &str, domain: &DomainName, on: bool) -> Result<()> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let exists: Option<String> =
                sqlx::query_scalar("SELECT name FROM domains WHERE name = $1")
                    .bind(domain.as_str())
                    .fetch_optional(change.conn())
                    .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound { what: "domain", name: domain.to_string() });
            }
            let before: Option<String> =
                sqlx::query_scalar("SELECT domain FROM greylist_domains WHERE domain = $1")
                    .bind(domain.as_str())
                    .fetch_optional(change.conn())
                    .await?;
            sqlx::query("DELETE FROM greylist_domains WHERE domain = $1")
                .bind(domain.as_str())
                .execute(change.conn())
                .await?;
            if on {
                sqlx::query("INSERT INTO greylist_domains (domain, created_at) VALUES ($1, $2)")
                    .bind(domain.as_str())
                    .bind(now())
                    .execute(change.conn())
                    .await?;
            }
            // Objects, as every audit record's before and after are.
            let was = serde_json::json!({ "greylisting": before.is_some() });
            let now_on = serde_json::json!({ "greylisting": on });
            change.audit("greylist.domain", domain.as_str(), Some(&was), Some(&now_on)).await?;
            Ok(())
        }
        .await;
        change.finish(result).await
    }

    /// Sets the delay, the retry window and the expiry.
    pub async fn set_greylist_settings(
        &self,
        actor: &str,
        new: GreylistSettings,
    ) -> Result<GreylistSettings> {
        let new = new.check()?;
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let before = settings(change.conn()).await?;
            sqlx::query("DELETE FROM greylist_settings WHERE id = 1")
                .execute(change.conn())
                .await?;
            sqlx::query(
                "INSERT INTO greylist_settings (id, delay, retry_window, expire) \
                 VALUES (1, $1, $2, $3)",
            )
            .bind(new.delay)
            .bind(new.retry_window)
            .bind(new.expire)
            .execute(change.conn())
            .await?;
            change.audit("greylist.settings", "settings", Some(&before), Some(&new)).await?;
            Ok(new)
        }
        .await;
        change.finish(result).await
    }

    /// The stored record of one triplet.
    pub async fn greylist_record(&self, triplet: &Triplet) -> Result<Option<GreylistRecord>> {
        sqlx::query(
            "SELECT client, sender, recipient, first_seen, last_seen, passed_at FROM greylist_triplets \
             WHERE client = $1 AND sender = $2 AND recipient = $3"
        )
        .bind(&triplet.client)
        .bind(&triplet.sender)
        .bind(&triplet.recipient)
        .fetch_optional(self.pool())
        .await?
        .map(|row| read_record(&row))
        .transpose()
    }

    /// Writes one triplet's record (an engine's bookkeeping, not configuration).
    pub async fn save_greylist_record(&self, record: &GreylistRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO greylist_triplets (client, sender, recipient, first_seen, last_seen, passed_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (client, sender, recipient) DO UPDATE SET \
             first_seen = excluded.first_seen, last_seen = excluded.last_seen, \
             passed_at = excluded.passed_at"
        )
        .bind(&record.triplet.client)
        .bind(&record.triplet.sender)
        .bind(&record.triplet.recipient)
        .bind(record.first_seen)
        .bind(record.last_seen)
        .bind(record.passed_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Deletes what greylisting has forgotten at `now`: triplets never passed whose retry
    /// window is over, and passed ones not seen for `expire`. Returns how many went.
    pub async fn prune_greylist(&self, now: i64, settings: &GreylistSettings) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM greylist_triplets WHERE \
             (passed_at IS NULL AND first_seen < $1) OR last_seen < $2",
        )
        .bind(now - settings.retry_window)
        .bind(now - settings.expire)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// The most recently seen triplets, newest first, and how many there are in all.
    pub async fn list_greylist_records(&self, limit: i64) -> Result<(Vec<GreylistRecord>, i64)> {
        let rows = sqlx::query(
            "SELECT client, sender, recipient, first_seen, last_seen, passed_at FROM greylist_triplets \
             ORDER BY last_seen DESC, client, sender, recipient LIMIT $1"
        )
        .bind(limit.clamp(1, 1000))
        .fetch_all(self.pool())
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM greylist_triplets")
            .fetch_one(self.pool())
            .await?;
        Ok((rows.iter().map(read_record).collect::<Result<_>>()?, total))
    }
}
