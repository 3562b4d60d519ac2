//! Mailboxes: add, list, update (password, name, quota, enabled, send-as list), remove.

use sqlx::AnyConnection;

use super::{domains, matching, rows};
use crate::error::{Result, StoreError};
use crate::model::{
    Address, DomainKind, DomainName, Mailbox, MailboxUpdate, NewMailbox, check_display_name,
    check_send_as, join_send_as,
};
use crate::store::{Store, now};

async fn get(conn: &mut AnyConnection, address: &Address) -> Result<Option<Mailbox>> {
    sqlx::query(
        "SELECT address, password_hash, display_name, enabled, quota_bytes, send_as, created_at, updated_at \
         FROM mailboxes WHERE address = $1",
    )
    .bind(address.to_string())
    .fetch_optional(conn)
    .await?
    .map(|row| rows::mailbox(&row))
    .transpose()
}

/// Whether `address` is a mailbox (the alias rules ask, inside their change).
pub(crate) async fn exists(conn: &mut AnyConnection, address: &Address) -> Result<bool> {
    Ok(get(conn, address).await?.is_some())
}

fn quota_column(quota: Option<u64>) -> Result<Option<i64>> {
    match quota {
        None => Ok(None),
        Some(0) => Err(StoreError::invalid(
            "quota",
            "must be more than 0 bytes (leave it unset for no limit)",
        )),
        Some(q) => {
            i64::try_from(q).map(Some).map_err(|_| StoreError::invalid("quota", "is too large"))
        }
    }
}

/// The rules a new mailbox address must meet: its domain exists and is local, and the address is
/// free.
async fn can_add(conn: &mut AnyConnection, address: &Address) -> Result<()> {
    let domain = domains::require(conn, address.domain()).await?;
    if domain.kind != DomainKind::Local {
        return Err(StoreError::invalid(
            "address",
            format!(
                "{} is a relay domain; mailboxes live in local domains (remove it and add it \
                 again without --relay to hold mailboxes)",
                domain.name
            ),
        ));
    }
    if get(conn, address).await?.is_some() {
        return Err(StoreError::Duplicate { what: "mailbox", name: address.to_string() });
    }
    Ok(())
}

/// Which mailboxes a list page shows. `domains` restricts a domain-admin to its own (or a
/// page to one domain); `search` is a substring of the address or the display name.
#[derive(Debug, Clone, Default)]
pub struct MailboxFilter {
    pub domains: Option<Vec<DomainName>>,
    pub search: Option<String>,
}

impl Store {
    /// Checks, without changing anything, that `address` could be added now: lets a caller
    /// refuse before asking for a password.
    pub async fn check_new_mailbox(&self, address: &Address) -> Result<()> {
        can_add(&mut *self.pool().acquire().await?, address).await
    }

    pub async fn add_mailbox(&self, actor: &str, new: NewMailbox) -> Result<Mailbox> {
        check_display_name(&new.display_name)?;
        let quota = quota_column(new.quota_bytes)?;
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            can_add(change.conn(), &new.address).await?;
            let at = now();
            sqlx::query(
                "INSERT INTO mailboxes (address, domain, password_hash, display_name, enabled, quota_bytes, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(new.address.to_string())
            .bind(new.address.domain().as_str())
            .bind(new.password_hash.as_phc())
            .bind(&new.display_name)
            .bind(i64::from(new.enabled))
            .bind(quota)
            .bind(at)
            .execute(change.conn())
            .await?;
            let mailbox = Mailbox {
                address: new.address,
                display_name: new.display_name,
                enabled: new.enabled,
                quota_bytes: new.quota_bytes,
                password_hash: new.password_hash,
                send_as: Vec::new(),
                created_at: at,
                updated_at: at,
            };
            change.audit("mailbox.add", &mailbox.address.to_string(), None::<&Mailbox>, Some(&mailbox)).await?;
                    Ok(mailbox)
        }
        .await;
        change.finish(result).await
    }

    pub async fn get_mailbox(&self, address: &Address) -> Result<Option<Mailbox>> {
        get(&mut *self.pool().acquire().await?, address).await
    }

    /// All mailboxes, or those of one domain, by address.
    pub async fn list_mailboxes(&self, domain: Option<&DomainName>) -> Result<Vec<Mailbox>> {
        let rows =
            match domain {
                Some(d) => sqlx::query(
                    "SELECT address, password_hash, display_name, enabled, quota_bytes, send_as, \
                     created_at, updated_at FROM mailboxes WHERE domain = $1 ORDER BY address",
                )
                .bind(d.as_str())
                .fetch_all(self.pool())
                .await?,
                None => sqlx::query(
                    "SELECT address, password_hash, display_name, enabled, quota_bytes, send_as, \
                     created_at, updated_at FROM mailboxes ORDER BY address",
                )
                .fetch_all(self.pool())
                .await?,
            };
        rows.iter().map(rows::mailbox).collect()
    }

    /// Up to `limit` mailboxes that match `filter`, by address, after the address `after`:
    /// keyset pagination in the database, so a page costs the same however many there are.
    pub async fn page_mailboxes(
        &self,
        filter: &MailboxFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Mailbox>> {
        let rows = sqlx::query(
            "SELECT address, password_hash, display_name, enabled, quota_bytes, send_as, \
                 created_at, updated_at FROM mailboxes \
             WHERE address > $1 \
             AND ($2 IS NULL OR $2 LIKE '% ' || domain || ' %') \
             AND ($3 IS NULL OR address LIKE $3 ESCAPE '\\' OR LOWER(display_name) LIKE $3 ESCAPE '\\') \
             ORDER BY address LIMIT $4",
        )
        .bind(after.unwrap_or(""))
        .bind(matching::domain_param(&filter.domains))
        .bind(matching::like(&filter.search))
        .bind(i64::from(limit.clamp(1, 1001)))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(rows::mailbox).collect()
    }

    pub async fn update_mailbox(
        &self,
        actor: &str,
        address: &Address,
        update: MailboxUpdate,
    ) -> Result<Mailbox> {
        if let Some(name) = &update.display_name {
            check_display_name(name)?;
        }
        if let Some(send_as) = &update.send_as {
            check_send_as(send_as)?;
        }
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let before = get(change.conn(), address)
                .await?
                .ok_or_else(|| StoreError::NotFound { what: "mailbox", name: address.to_string() })?;
            let mut after = before.clone();
            if let Some(name) = update.display_name {
                after.display_name = name;
            }
            if let Some(mut send_as) = update.send_as {
                send_as.sort();
                send_as.dedup();
                after.send_as = send_as;
            }
            if let Some(enabled) = update.enabled {
                after.enabled = enabled;
            }
            if let Some(quota) = update.quota_bytes {
                after.quota_bytes = quota;
            }
            let password_changed = update.password_hash.is_some();
            if let Some(hash) = update.password_hash {
                after.password_hash = hash;
            }
            after.updated_at = now();
            sqlx::query(
                "UPDATE mailboxes SET password_hash = $2, display_name = $3, enabled = $4, quota_bytes = $5, \
                 updated_at = $6, send_as = $7 WHERE address = $1",
            )
            .bind(address.to_string())
            .bind(after.password_hash.as_phc())
            .bind(&after.display_name)
            .bind(i64::from(after.enabled))
            .bind(quota_column(after.quota_bytes)?)
            .bind(after.updated_at)
            .bind(join_send_as(&after.send_as))
            .execute(change.conn())
            .await?;
            // The hash itself is never serialised; say in the record that it changed.
            let action = if password_changed { "mailbox.passwd" } else { "mailbox.update" };
            change.audit(action, &address.to_string(), Some(&before), Some(&after)).await?;
                    Ok(after)
        }
        .await;
        change.finish(result).await
    }

    pub async fn remove_mailbox(&self, actor: &str, address: &Address) -> Result<Mailbox> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let mailbox = get(change.conn(), address).await?.ok_or_else(|| {
                StoreError::NotFound { what: "mailbox", name: address.to_string() }
            })?;
            sqlx::query("DELETE FROM mailboxes WHERE address = $1")
                .bind(address.to_string())
                .execute(change.conn())
                .await?;
            change.check_consistency(&address.to_string()).await?;
            change
                .audit("mailbox.remove", &address.to_string(), Some(&mailbox), None::<&Mailbox>)
                .await?;
            Ok(mailbox)
        }
        .await;
        change.finish(result).await
    }
}
