//! Hosted MTA-STS policies: set (create or replace), read, remove. Removing the domain removes
//! its policy (ON DELETE CASCADE).

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::rows::parse;
use crate::error::{Result, StoreError};
use crate::model::{
    DomainName, MtaStsPolicy, StsMode, check_report_to, check_sts_age, parse_sts_mx, sts_policy_id,
};
use crate::store::{Store, now};

const COLUMNS: &str = "domain, mode, max_age, mx, policy_id, report_to, updated_at";

fn policy(row: &AnyRow) -> Result<MtaStsPolicy> {
    Ok(MtaStsPolicy {
        domain: parse("mta_sts_policies", &row.try_get::<String, _>("domain")?)?,
        mode: parse("mta_sts_policies", &row.try_get::<String, _>("mode")?)?,
        max_age: row.try_get("max_age")?,
        mx: row.try_get::<String, _>("mx")?.split_ascii_whitespace().map(String::from).collect(),
        id: row.try_get("policy_id")?,
        report_to: row.try_get("report_to")?,
        updated_at: row.try_get("updated_at")?,
    })
}

async fn get(conn: &mut AnyConnection, domain: &DomainName) -> Result<Option<MtaStsPolicy>> {
    let sql = format!("SELECT {COLUMNS} FROM mta_sts_policies WHERE domain = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(domain.as_str())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(policy)
        .transpose()
}

impl Store {
    /// Publishes (or changes) `domain`'s MTA-STS policy. `mx` empty means the host name.
    pub async fn set_mta_sts(
        &self,
        actor: &str,
        domain: &DomainName,
        mode: StsMode,
        max_age: i64,
        mx: &[String],
        report_to: &str,
    ) -> Result<MtaStsPolicy> {
        check_sts_age(max_age)?;
        let mx = parse_sts_mx(mx)?;
        let report_to = report_to.trim();
        check_report_to(report_to)?;
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
            let before = get(change.conn(), domain).await?;
            let set = MtaStsPolicy {
                domain: domain.clone(),
                mode,
                max_age,
                id: sts_policy_id(mode, max_age, &mx),
                mx,
                report_to: report_to.to_string(),
                updated_at: now(),
            };
            sqlx::query(
                "INSERT INTO mta_sts_policies (domain, mode, max_age, mx, policy_id, report_to, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (domain) DO UPDATE SET mode = excluded.mode, \
                 max_age = excluded.max_age, mx = excluded.mx, policy_id = excluded.policy_id, \
                 report_to = excluded.report_to, updated_at = excluded.updated_at",
            )
            .bind(domain.as_str())
            .bind(set.mode.as_str())
            .bind(set.max_age)
            .bind(set.mx.join(" "))
            .bind(&set.id)
            .bind(&set.report_to)
            .bind(set.updated_at)
            .execute(change.conn())
            .await?;
            change.audit("mta_sts.set", domain.as_str(), before.as_ref(), Some(&set)).await?;
            Ok(set)
        }
        .await;
        change.finish(result).await
    }

    /// Stops publishing `domain`'s policy. (To withdraw a published policy safely, set mode
    /// `none` first and keep it served for `max_age`, RFC 8461 §8.3.)
    pub async fn remove_mta_sts(&self, actor: &str, domain: &DomainName) -> Result<MtaStsPolicy> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let before = get(change.conn(), domain).await?.ok_or_else(|| StoreError::NotFound {
                what: "MTA-STS policy for",
                name: domain.to_string(),
            })?;
            sqlx::query("DELETE FROM mta_sts_policies WHERE domain = $1")
                .bind(domain.as_str())
                .execute(change.conn())
                .await?;
            change
                .audit("mta_sts.remove", domain.as_str(), Some(&before), None::<&MtaStsPolicy>)
                .await?;
            Ok(before)
        }
        .await;
        change.finish(result).await
    }

    pub async fn mta_sts_policy(&self, domain: &DomainName) -> Result<Option<MtaStsPolicy>> {
        get(&mut *self.pool().acquire().await?, domain).await
    }

    pub async fn list_mta_sts(&self) -> Result<Vec<MtaStsPolicy>> {
        let sql = format!("SELECT {COLUMNS} FROM mta_sts_policies ORDER BY domain");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(policy)
            .collect()
    }
}
