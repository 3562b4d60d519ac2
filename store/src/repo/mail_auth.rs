//! The inbound mail-authentication policy: the global one (scope `*`) and per-domain overrides.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Row};

use super::rows;
use crate::error::{Result, StoreError};
use crate::model::{Domain, DomainName, MailAuthPolicies, MailAuthPolicy};
use crate::store::{Store, now};

const GLOBAL: &str = "*";

fn read_policy(row: &sqlx::any::AnyRow) -> Result<MailAuthPolicy> {
    let field = |name: &str| row.try_get::<String, _>(name);
    Ok(MailAuthPolicy {
        dmarc_reject: rows::parse("mail_auth_policies", &field("dmarc_reject")?)?,
        dmarc_quarantine: rows::parse("mail_auth_policies", &field("dmarc_quarantine")?)?,
        spf_fail: rows::parse("mail_auth_policies", &field("spf_fail")?)?,
        temperror: rows::parse("mail_auth_policies", &field("temperror")?)?,
    })
}

/// Every policy; overrides of domains that no longer exist are left out.
pub(crate) async fn load(
    conn: &mut AnyConnection,
    domains: &BTreeMap<DomainName, Domain>,
) -> Result<MailAuthPolicies> {
    let mut policies = MailAuthPolicies::default();
    for row in sqlx::query(
        "SELECT scope, dmarc_reject, dmarc_quarantine, spf_fail, temperror FROM mail_auth_policies",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        let scope: String = row.try_get("scope")?;
        if scope == GLOBAL {
            policies.global = read_policy(&row)?;
        } else if let Ok(name) = scope.parse::<DomainName>()
            && domains.contains_key(&name)
        {
            policies.domains.insert(name, read_policy(&row)?);
        }
    }
    Ok(policies)
}

impl Store {
    /// The global policy and every override.
    pub async fn mail_auth_policies(&self) -> Result<MailAuthPolicies> {
        let mut conn = self.pool().acquire().await?;
        let domains = self.list_domains().await?.into_iter().map(|d| (d.name.clone(), d)).collect();
        load(&mut conn, &domains).await
    }

    /// Sets the global policy (`domain` `None`) or a domain's override.
    pub async fn set_mail_auth_policy(
        &self,
        actor: &str,
        domain: Option<&DomainName>,
        policy: MailAuthPolicy,
    ) -> Result<MailAuthPolicy> {
        let scope = domain.map_or(GLOBAL, DomainName::as_str).to_string();
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            if let Some(name) = domain {
                let exists: Option<String> =
                    sqlx::query_scalar("SELECT name FROM domains WHERE name = $1")
                        .bind(name.as_str())
                        .fetch_optional(change.conn())
                        .await?;
                if exists.is_none() {
                    return Err(StoreError::NotFound { what: "domain", name: name.to_string() });
                }
            }
            let before = sqlx::query(
                "SELECT scope, dmarc_reject, dmarc_quarantine, spf_fail, temperror \
                 FROM mail_auth_policies WHERE scope = $1",
            )
            .bind(&scope)
            .fetch_optional(change.conn())
            .await?
            .map(|row| read_policy(&row))
            .transpose()?;
            sqlx::query("DELETE FROM mail_auth_policies WHERE scope = $1")
                .bind(&scope)
                .execute(change.conn())
                .await?;
            sqlx::query(
                "INSERT INTO mail_auth_policies \
                 (scope, dmarc_reject, dmarc_quarantine, spf_fail, temperror, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&scope)
            .bind(policy.dmarc_reject.as_str())
            .bind(policy.dmarc_quarantine.as_str())
            .bind(policy.spf_fail.as_str())
            .bind(policy.temperror.as_str())
            .bind(now())
            .execute(change.conn())
            .await?;
            change.audit("mailauth.policy.set", &scope, before.as_ref(), Some(&policy)).await?;
            Ok(policy)
        }
        .await;
        change.finish(result).await
    }

    /// Removes a domain's override: the global policy applies to it again.
    pub async fn clear_mail_auth_policy(&self, actor: &str, domain: &DomainName) -> Result<()> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let before = sqlx::query(
                "SELECT scope, dmarc_reject, dmarc_quarantine, spf_fail, temperror \
                 FROM mail_auth_policies WHERE scope = $1",
            )
            .bind(domain.as_str())
            .fetch_optional(change.conn())
            .await?
            .map(|row| read_policy(&row))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound {
                what: "mail authentication policy override",
                name: domain.to_string(),
            })?;
            sqlx::query("DELETE FROM mail_auth_policies WHERE scope = $1")
                .bind(domain.as_str())
                .execute(change.conn())
                .await?;
            change
                .audit(
                    "mailauth.policy.clear",
                    domain.as_str(),
                    Some(&before),
                    None::<&MailAuthPolicy>,
                )
                .await?;
            Ok(())
        }
        .await;
        change.finish(result).await
    }
}
