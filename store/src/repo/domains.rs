//! Domains: add, list, remove.

use sqlx::AnyConnection;

use super::rows;
use crate::error::{Result, StoreError};
use crate::model::{Domain, DomainKind, DomainName};
use crate::store::{Store, now};

/// What removing a domain took with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RemovedDomain {
    pub mailboxes: u64,
    pub aliases: u64,
}

pub(crate) async fn get(conn: &mut AnyConnection, name: &DomainName) -> Result<Option<Domain>> {
    sqlx::query("SELECT name, kind, created_at FROM domains WHERE name = $1")
        .bind(name.as_str())
        .fetch_optional(conn)
        .await?
        .map(|row| rows::domain(&row))
        .transpose()
}

/// The domain, or an error saying it has to be added first.
pub(crate) async fn require(conn: &mut AnyConnection, name: &DomainName) -> Result<Domain> {
    get(conn, name)
        .await?
        .ok_or_else(|| StoreError::NotFound { what: "domain", name: name.to_string() })
}

impl Store {
    pub async fn add_domain(
        &self,
        actor: &str,
        name: &DomainName,
        kind: DomainKind,
    ) -> Result<Domain> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            if get(change.conn(), name).await?.is_some() {
                return Err(StoreError::Duplicate { what: "domain", name: name.to_string() });
            }
            let domain = Domain { name: name.clone(), kind, created_at: now() };
            sqlx::query("INSERT INTO domains (name, kind, created_at) VALUES ($1, $2, $3)")
                .bind(name.as_str())
                .bind(kind.as_str())
                .bind(domain.created_at)
                .execute(change.conn())
                .await?;
            change.audit("domain.add", name.as_str(), None::<&Domain>, Some(&domain)).await?;
            Ok(domain)
        }
        .await;
        change.finish(result).await
    }

    pub async fn get_domain(&self, name: &DomainName) -> Result<Option<Domain>> {
        get(&mut *self.pool().acquire().await?, name).await
    }

    pub async fn list_domains(&self) -> Result<Vec<Domain>> {
        sqlx::query("SELECT name, kind, created_at FROM domains ORDER BY name")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(rows::domain)
            .collect()
    }

    /// Removes a domain. One that still has mailboxes or aliases is refused unless `cascade`,
    /// which removes them too (their Maildirs stay on disk).
    pub async fn remove_domain(
        &self,
        actor: &str,
        name: &DomainName,
        cascade: bool,
    ) -> Result<RemovedDomain> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let domain = require(change.conn(), name).await?;
            let mailboxes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mailboxes WHERE domain = $1")
                .bind(name.as_str())
                .fetch_one(change.conn())
                .await?;
            let aliases: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM aliases WHERE domain = $1")
                .bind(name.as_str())
                .fetch_one(change.conn())
                .await?;
            let removed = RemovedDomain { mailboxes: mailboxes as u64, aliases: aliases as u64 };
            if removed != RemovedDomain::default() && !cascade {
                return Err(StoreError::Conflict(format!(
                    "domain {name} still has {} mailbox(es) and {} alias(es): remove them first, or \
                     remove the domain with --cascade",
                    removed.mailboxes, removed.aliases
                )));
            }
            for sql in [
                "DELETE FROM alias_destinations WHERE source IN (SELECT source FROM aliases WHERE domain = $1)",
                "DELETE FROM aliases WHERE domain = $1",
                "DELETE FROM mailboxes WHERE domain = $1",
                "DELETE FROM mail_auth_policies WHERE scope = $1",
                "DELETE FROM greylist_domains WHERE domain = $1",
                "DELETE FROM directories WHERE domain = $1",
                "DELETE FROM domains WHERE name = $1",
            ] {
                sqlx::query(sql).bind(name.as_str()).execute(change.conn()).await?;
            }
            change.check_consistency(name.as_str()).await?;
            change.audit("domain.remove", name.as_str(), Some(&domain), None::<&Domain>).await?;
                    Ok(removed)
        }
        .await;
        change.finish(result).await
    }

    /// How many mailboxes and aliases each domain has, for the domain list (domains with
    /// neither are left out).
    pub async fn domain_counts(&self) -> Result<std::collections::HashMap<String, DomainCounts>> {
        let mut counts: std::collections::HashMap<String, DomainCounts> = Default::default();
        for (sql, mailboxes) in [
            ("SELECT domain, COUNT(*) AS n FROM mailboxes GROUP BY domain", true),
            ("SELECT domain, COUNT(*) AS n FROM aliases GROUP BY domain", false),
        ] {
            for row in sqlx::query(sql).fetch_all(self.pool()).await? {
                use sqlx::Row;
                let domain: String = row.try_get("domain")?;
                let n = row.try_get::<i64, _>("n")?.max(0) as u64;
                let entry = counts.entry(domain).or_default();
                if mailboxes {
                    entry.mailboxes = n;
                } else {
                    entry.aliases = n;
                }
            }
        }
        Ok(counts)
    }

    /// Makes a domain local (delivered to mailboxes here) or relay (passed on by its
    /// transport). Refused, saying why, when the configuration would then break a rule (a relay
    /// domain that still has mailboxes, say).
    pub async fn set_domain_kind(
        &self,
        actor: &str,
        name: &DomainName,
        kind: DomainKind,
    ) -> Result<Domain> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let before = require(change.conn(), name).await?;
            sqlx::query("UPDATE domains SET kind = $2 WHERE name = $1")
                .bind(name.as_str())
                .bind(kind.as_str())
                .execute(change.conn())
                .await?;
            change.check_consistency(name.as_str()).await?;
            let after = require(change.conn(), name).await?;
            change.audit("domain.update", name.as_str(), Some(&before), Some(&after)).await?;
            Ok(after)
        }
        .await;
        change.finish(result).await
    }
}

/// A domain's mailboxes and aliases, counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DomainCounts {
    pub mailboxes: u64,
    pub aliases: u64,
}
