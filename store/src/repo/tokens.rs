//! API tokens: `pst_<id>_<secret>`, of which only the ID and a SHA-256 of the secret are kept. A
//! fast hash is enough: the secret is 256 random bits, not a password someone could guess.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::error::{Result, StoreError};
use crate::model::{
    Access, Admin, AdminName, ApiToken, DomainName, IssuedToken, join_domains, parse_domain_list,
};
use crate::store::{Store, now};

const PREFIX: &str = "pst_";

fn random(bytes: usize) -> String {
    let buf: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(buf)
}

/// Hex SHA-256 of a secret: how session IDs and token secrets are looked up.
pub fn secret_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh random secret of 256 bits, URL-safe (session IDs, CSRF tokens).
pub fn new_secret() -> String {
    random(32)
}

fn token(row: &sqlx::any::AnyRow) -> Result<ApiToken> {
    let corrupt =
        |e: StoreError| StoreError::Corrupt { table: "api_tokens", message: e.to_string() };
    let owner: String = row.try_get("owner")?;
    let access: String = row.try_get("access")?;
    let domains: String = row.try_get("domains")?;
    Ok(ApiToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        owner: owner.parse().map_err(corrupt)?,
        access: access.parse().map_err(corrupt)?,
        domains: parse_domain_list(&domains).map_err(corrupt)?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

impl Store {
    /// Issues a token for `owner`. Its domains must be among those the owner manages.
    pub async fn create_token(
        &self,
        actor: &str,
        owner: &AdminName,
        name: &str,
        access: Access,
        domains: &[DomainName],
        expires_at: Option<i64>,
    ) -> Result<IssuedToken> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(StoreError::invalid(
                "name",
                "a token name is 1 to 100 printable characters",
            ));
        }
        if expires_at.is_some_and(|e| e <= now()) {
            return Err(StoreError::invalid("expires_at", "the expiry must be in the future"));
        }
        let Some(admin) = self.get_admin(owner).await? else {
            return Err(StoreError::NotFound { what: "administrator", name: owner.to_string() });
        };
        if let Some(outside) = domains.iter().find(|d| !admin.manages(d)) {
            return Err(StoreError::invalid(
                "domains",
                format!("{owner} does not manage {outside}, so its tokens cannot either"),
            ));
        }
        // Hex, so that the `_` between ID and secret is never part of the ID.
        let id: String = (0..9).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
        let secret = random(32);
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            sqlx::query(
                "INSERT INTO api_tokens (id, name, owner, secret_hash, access, domains, created_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&id)
            .bind(name)
            .bind(owner.as_str())
            .bind(secret_hash(&secret))
            .bind(access.as_str())
            .bind(join_domains(domains))
            .bind(now())
            .bind(expires_at)
            .execute(change.conn())
            .await?;
            let row = sqlx::query(SELECT_ONE).bind(&id).fetch_one(change.conn()).await?;
            let token = token(&row)?;
            change.audit("token.add", &id, None::<&ApiToken>, Some(&token)).await?;
            Ok(token)
        }
        .await;
        let token = change.finish(result).await?;
        Ok(IssuedToken { token, bearer: format!("{PREFIX}{id}_{secret}") })
    }

    /// The token a bearer string stands for, with its owner, if it is valid and unexpired.
    /// Records its use (to the minute, so that busy scripts do not write on every call).
    pub async fn authenticate_token(&self, bearer: &str) -> Result<Option<(ApiToken, Admin)>> {
        let Some((id, secret)) = bearer.strip_prefix(PREFIX).and_then(|t| t.split_once('_')) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT id, name, owner, access, domains, created_at, expires_at, last_used_at, \
             secret_hash FROM api_tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: String = row.try_get("secret_hash")?;
        if !constant_time_eq(stored.as_bytes(), secret_hash(secret).as_bytes()) {
            return Ok(None);
        }
        let token = token(&row)?;
        let at = now();
        if token.expires_at.is_some_and(|e| e <= at) {
            return Ok(None);
        }
        let Some(owner) = self.get_admin(&token.owner).await? else { return Ok(None) };
        if token.last_used_at.is_none_or(|last| at - last >= 60) {
            sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                .bind(id)
                .bind(at)
                .execute(self.pool())
                .await?;
        }
        Ok(Some((token, owner)))
    }

    /// Every token, or those of one owner, newest first.
    pub async fn list_tokens(&self, owner: Option<&AdminName>) -> Result<Vec<ApiToken>> {
        let rows = match owner {
            Some(owner) => {
                sqlx::query(SELECT_BY_OWNER).bind(owner.as_str()).fetch_all(self.pool()).await?
            }
            None => sqlx::query(SELECT_ALL).fetch_all(self.pool()).await?,
        };
        rows.iter().map(token).collect()
    }

    pub async fn get_token(&self, id: &str) -> Result<Option<ApiToken>> {
        sqlx::query(SELECT_ONE)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .map(|r| token(&r))
            .transpose()
    }

    pub async fn revoke_token(&self, actor: &str, id: &str) -> Result<()> {
        let mut change = self.change(actor).await?;
        let result: Result<_> = async {
            let row = sqlx::query(SELECT_ONE).bind(id).fetch_optional(change.conn()).await?;
            let Some(row) = row else {
                return Err(StoreError::NotFound { what: "token", name: id.to_string() });
            };
            let before = token(&row)?;
            sqlx::query("DELETE FROM api_tokens WHERE id = $1")
                .bind(id)
                .execute(change.conn())
                .await?;
            change.audit("token.remove", id, Some(&before), None::<&ApiToken>).await?;
            Ok(())
        }
        .await;
        change.finish(result).await
    }
}

const SELECT_ONE: &str = "SELECT id, name, owner, access, domains, created_at, expires_at, \
                          last_used_at FROM api_tokens WHERE id = $1";
const SELECT_BY_OWNER: &str = "SELECT id, name, owner, access, domains, created_at, expires_at, \
                               last_used_at FROM api_tokens WHERE owner = $1 ORDER BY created_at DESC, id";
const SELECT_ALL: &str = "SELECT id, name, owner, access, domains, created_at, expires_at, \
                          last_used_at FROM api_tokens ORDER BY created_at DESC, id";

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
