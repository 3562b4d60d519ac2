//! Administrators: create, list, change, remove, and the lookup a login needs.

use sqlx::{AnyConnection, Row};

use crate::error::{Result, StoreError};
use crate::model::{
    Admin, AdminName, DomainName, PasswordHash, Role, join_domains, parse_domain_list,
};
use crate::store::{Store, now};

fn admin(row: &sqlx::any::AnyRow) -> Result<Admin> {
    let corrupt = |message: String| StoreError::Corrupt { table: "admins", message };
    let name: String = row.try_get("name")?;
    let role: String = row.try_get("role")?;
    let domains: String = row.try_get("domains")?;
    Ok(Admin {
        name: name.parse().map_err(|e: StoreError| corrupt(e.to_string()))?,
        role: role.parse().map_err(|e: StoreError| corrupt(e.to_string()))?,
        domains: parse_domain_list(&domains).map_err(|e| corrupt(e.to_string()))?,
        must_change_password: row.try_get::<i64, _>("must_change_password")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

async fn get(conn: &mut AnyConnection, name: &AdminName) -> Result<Option<Admin>> {
    sqlx::query(
        "SELECT name, role, domains, must_change_password, created_at FROM admins WHERE name = $1",
    )
    .bind(name.as_str())
    .fetch_optional(conn)
    .await?
    .map(|row| admin(&row))
    .transpose()
}

async fn require(conn: &mut AnyConnection, name: &AdminName) -> Result<Admin> {
    get(conn, name)
        .await?
        .ok_or_else(|| StoreError::NotFound { what: "administrator", name: name.to_string() })
}

/// A domain-admin manages at least one domain, and only domains that exist; an admin none.
async fn check_grant(conn: &mut AnyConnection, role: Role, domains: &[DomainName]) -> Result<()> {
    match role {
        Role::Admin if !domains.is_empty() => Err(StoreError::invalid(
            "domains",
            "an admin manages every domain: grant domains only to a domain-admin",
        )),
        Role::DomainAdmin if domains.is_empty() => {
            Err(StoreError::invalid("domains", "a domain-admin needs at least one domain"))
        }
        _ => {
            for domain in domains {
                super::domains::require(conn, domain).await?;
            }
            Ok(())
        }
    }
}

async fn count_admins(conn: &mut AnyConnection) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM admins WHERE role = 'admin'")
        .fetch_one(conn)
        .await?)
}

impl Store {
    pub async fn create_admin(
        &self,
        actor: &str,
        name: &AdminName,
        role: Role,
        domains: &[DomainName],
        password: &PasswordHash,
        must_change_password: bool,
    ) -> Result<Admin> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            if get(change.conn(), name).await?.is_some() {
                return Err(StoreError::Duplicate {
                    what: "administrator",
                    name: name.to_string(),
                });
            }
            check_grant(change.conn(), role, domains).await?;
            let at = now();
            sqlx::query(
                "INSERT INTO admins (name, password_hash, role, domains, must_change_password, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(name.as_str())
            .bind(password.as_phc())
            .bind(role.as_str())
            .bind(join_domains(domains))
            .bind(i64::from(must_change_password))
            .bind(at)
            .execute(change.conn())
            .await?;
            let admin = require(change.conn(), name).await?;
            change.audit("admin.add", name.as_str(), None::<&Admin>, Some(&admin)).await?;
            Ok(admin)
        }
        .await;
        change.finish(result).await
    }

    pub async fn list_admins(&self) -> Result<Vec<Admin>> {
        sqlx::query(
            "SELECT name, role, domains, must_change_password, created_at FROM admins ORDER BY name",
        )
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(admin)
        .collect()
    }

    pub async fn get_admin(&self, name: &AdminName) -> Result<Option<Admin>> {
        get(&mut *self.pool().acquire().await?, name).await
    }

    /// Whether any administrator exists (the first run creates one).
    pub async fn has_admins(&self) -> Result<bool> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM admins").fetch_one(self.pool()).await?;
        Ok(n > 0)
    }

    /// The administrator and its password hash, for a login to verify.
    pub async fn admin_credentials(
        &self,
        name: &AdminName,
    ) -> Result<Option<(Admin, PasswordHash)>> {
        let row = sqlx::query(
            "SELECT name, role, domains, must_change_password, created_at, password_hash \
             FROM admins WHERE name = $1",
        )
        .bind(name.as_str())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let hash = PasswordHash::from_phc(row.try_get("password_hash")?)?;
        Ok(Some((admin(&row)?, hash)))
    }

    /// Sets a new password and ends every console session of the administrator (a password
    /// change must lock out whoever held the old one).
    pub async fn set_admin_password(
        &self,
        actor: &str,
        name: &AdminName,
        password: &PasswordHash,
        must_change_password: bool,
    ) -> Result<()> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            require(change.conn(), name).await?;
            sqlx::query(
                "UPDATE admins SET password_hash = $2, must_change_password = $3, updated_at = $4 \
                 WHERE name = $1",
            )
            .bind(name.as_str())
            .bind(password.as_phc())
            .bind(i64::from(must_change_password))
            .bind(now())
            .execute(change.conn())
            .await?;
            sqlx::query("DELETE FROM console_sessions WHERE admin = $1")
                .bind(name.as_str())
                .execute(change.conn())
                .await?;
            change.audit("admin.password", name.as_str(), None::<&Admin>, None::<&Admin>).await?;
            Ok(())
        }
        .await;
        change.finish(result).await
    }

    /// Changes the role and granted domains. The last admin cannot be demoted.
    pub async fn update_admin(
        &self,
        actor: &str,
        name: &AdminName,
        role: Role,
        domains: &[DomainName],
    ) -> Result<Admin> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let before = require(change.conn(), name).await?;
            check_grant(change.conn(), role, domains).await?;
            sqlx::query(
                "UPDATE admins SET role = $2, domains = $3, updated_at = $4 WHERE name = $1",
            )
            .bind(name.as_str())
            .bind(role.as_str())
            .bind(join_domains(domains))
            .bind(now())
            .execute(change.conn())
            .await?;
            if count_admins(change.conn()).await? == 0 {
                return Err(StoreError::Conflict(format!(
                    "{name} is the last admin: make another admin first"
                )));
            }
            let after = require(change.conn(), name).await?;
            change.audit("admin.update", name.as_str(), Some(&before), Some(&after)).await?;
            Ok(after)
        }
        .await;
        change.finish(result).await
    }

    /// Removes an administrator with its sessions and tokens. The last admin stays.
    pub async fn remove_admin(&self, actor: &str, name: &AdminName) -> Result<()> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let before = require(change.conn(), name).await?;
            for sql in [
                "DELETE FROM console_sessions WHERE admin = $1",
                "DELETE FROM api_tokens WHERE owner = $1",
                "DELETE FROM admins WHERE name = $1",
            ] {
                sqlx::query(sql).bind(name.as_str()).execute(change.conn()).await?;
            }
            if count_admins(change.conn()).await? == 0 {
                return Err(StoreError::Conflict(format!(
                    "{name} is the last admin: make another admin first"
                )));
            }
            change.audit("admin.remove", name.as_str(), Some(&before), None::<&Admin>).await?;
            Ok(())
        }
        .await;
        change.finish(result).await
    }
}
