//! DNS blocklists: the lists, the whitelist and the threshold, each change through a `Change`.

use sqlx::{AnyConnection, Row};

use super::rows;
use crate::error::{Result, StoreError};
use crate::model::{Blocklist, Dnsbl, NewBlocklist, WhitelistEntry, check_weight};
use crate::store::{Store, now};

fn read_list(row: &sqlx::any::AnyRow) -> Result<Blocklist> {
    let text = |name: &str| row.try_get::<String, _>(name);
    Ok(Blocklist {
        zone: rows::parse("dnsbl_lists", &text("zone")?)?,
        kind: rows::parse("dnsbl_lists", &text("kind")?)?,
        weight: row.try_get("weight")?,
        codes: rows::parse("dnsbl_lists", &text("codes")?)?,
        description: text("description")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The lists (by zone), the threshold and the whitelist.
pub(crate) async fn load(conn: &mut AnyConnection) -> Result<Dnsbl> {
    let mut lists = Vec::new();
    for row in sqlx::query(
        "SELECT zone, kind, weight, codes, description, created_at FROM dnsbl_lists ORDER BY zone",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        lists.push(read_list(&row)?);
    }
    let threshold: i64 = sqlx::query_scalar("SELECT threshold FROM dnsbl_settings WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await?
        .unwrap_or(crate::model::Dnsbl::default().threshold);
    let mut whitelist = Vec::new();
    for entry in sqlx::query_scalar::<_, String>("SELECT entry FROM dnsbl_whitelist ORDER BY entry")
        .fetch_all(&mut *conn)
        .await?
    {
        whitelist.push(rows::parse::<WhitelistEntry>("dnsbl_whitelist", &entry)?);
    }
    whitelist.sort();
    Ok(Dnsbl { lists, threshold, whitelist })
}

impl Store {
    /// Every list, the threshold and the whitelist.
    pub async fn dnsbl(&self) -> Result<Dnsbl> {
        let mut conn = self.pool().acquire().await?;
        load(&mut conn).await
    }

    /// Adds a list; its zone must be new.
    pub async fn add_blocklist(&self, actor: &str, new: NewBlocklist) -> Result<Blocklist> {
        check_weight("weight", new.weight)?;
        let list = Blocklist {
            zone: new.zone,
            kind: new.kind,
            weight: new.weight,
            codes: new.codes,
            description: new.description.trim().to_string(),
            created_at: now(),
        };
        if list.description.len() > 200 || list.description.contains(['\r', '\n']) {
            return Err(StoreError::invalid("description", "one line of at most 200 characters"));
        }
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let exists: Option<String> =
                sqlx::query_scalar("SELECT zone FROM dnsbl_lists WHERE zone = $1")
                    .bind(list.zone.as_str())
                    .fetch_optional(change.conn())
                    .await?;
            if exists.is_some() {
                return Err(StoreError::Duplicate { what: "blocklist", name: list.zone.to_string() });
            }
            sqlx::query(
                "INSERT INTO dnsbl_lists (zone, kind, weight, codes, description, created_at) VALUES ($1, $2, $3, $4, $5, $6)"
            )
            .bind(list.zone.as_str())
            .bind(list.kind.as_str())
            .bind(list.weight)
            .bind(list.codes.to_string())
            .bind(&list.description)
            .bind(list.created_at)
            .execute(change.conn())
            .await?;
            change.audit("dnsbl.add", list.zone.as_str(), None::<&Blocklist>, Some(&list)).await?;
            Ok(list)
        }
        .await;
        change.finish(result).await
    }

    /// Removes the list under `zone`.
    pub async fn remove_blocklist(&self, actor: &str, zone: &str) -> Result<()> {
        let zone = zone.trim().trim_end_matches('.').to_ascii_lowercase();
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let before = sqlx::query("SELECT zone, kind, weight, codes, description, created_at FROM dnsbl_lists WHERE zone = $1")
                .bind(&zone)
                .fetch_optional(change.conn())
                .await?
                .map(|row| read_list(&row))
                .transpose()?
                .ok_or_else(|| StoreError::NotFound { what: "blocklist", name: zone.clone() })?;
            sqlx::query("DELETE FROM dnsbl_lists WHERE zone = $1")
                .bind(&zone)
                .execute(change.conn())
                .await?;
            change.audit("dnsbl.remove", &zone, Some(&before), None::<&Blocklist>).await?;
            Ok(())
        }
        .await;
        change.finish(result).await
    }

    /// Sets the score at which a client is refused.
    pub async fn set_dnsbl_threshold(&self, actor: &str, threshold: i64) -> Result<i64> {
        check_weight("threshold", threshold)?;
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let before: Option<i64> =
                sqlx::query_scalar("SELECT threshold FROM dnsbl_settings WHERE id = 1")
                    .fetch_optional(change.conn())
                    .await?;
            sqlx::query("DELETE FROM dnsbl_settings WHERE id = 1").execute(change.conn()).await?;
            sqlx::query("INSERT INTO dnsbl_settings (id, threshold) VALUES (1, $1)")
                .bind(threshold)
                .execute(change.conn())
                .await?;
            let before = before.map(|t| serde_json::json!({ "threshold": t }));
            let after = serde_json::json!({ "threshold": threshold });
            change.audit("dnsbl.threshold", "threshold", before.as_ref(), Some(&after)).await?;
            Ok(threshold)
        }
        .await;
        change.finish(result).await
    }

    /// Adds a network or a sender domain that is never checked.
    pub async fn add_dnsbl_whitelist(&self, actor: &str, entry: &WhitelistEntry) -> Result<()> {
        let text = entry.to_string();
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let exists: Option<String> =
                sqlx::query_scalar("SELECT entry FROM dnsbl_whitelist WHERE entry = $1")
                    .bind(&text)
                    .fetch_optional(change.conn())
                    .await?;
            if exists.is_some() {
                return Err(StoreError::Duplicate { what: "whitelist entry", name: text.clone() });
            }
            sqlx::query("INSERT INTO dnsbl_whitelist (entry, created_at) VALUES ($1, $2)")
                .bind(&text)
                .bind(now())
                .execute(change.conn())
                .await?;
            let entry = serde_json::json!({ "entry": text });
            change
                .audit("dnsbl.whitelist.add", &text, None::<&serde_json::Value>, Some(&entry))
                .await?;
            Ok(())
        }
        .await;
        change.finish(result).await
    }

    /// Removes a whitelist entry.
    pub async fn remove_dnsbl_whitelist(&self, actor: &str, entry: &WhitelistEntry) -> Result<()> {
        let text = entry.to_string();
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let removed = sqlx::query("DELETE FROM dnsbl_whitelist WHERE entry = $1")
                .bind(&text)
                .execute(change.conn())
                .await?
                .rows_affected();
            if removed == 0 {
                return Err(StoreError::NotFound { what: "whitelist entry", name: text.clone() });
            }
            let entry = serde_json::json!({ "entry": text });
            change
                .audit("dnsbl.whitelist.remove", &text, Some(&entry), None::<&serde_json::Value>)
                .await?;
            Ok(())
        }
        .await;
        change.finish(result).await
    }
}
