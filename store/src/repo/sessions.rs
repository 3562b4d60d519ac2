//! Console sessions: kept by the hash of their ID, with the CSRF token of their forms.

use sqlx::Row;

use crate::error::Result;
use crate::model::Admin;
use crate::store::{Store, now};

/// A live console session.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub admin: Admin,
    /// The token every form of this session carries (synchroniser token pattern).
    pub csrf: String,
    pub expires_at: i64,
}

impl Store {
    pub async fn create_session(
        &self,
        id_hash: &str,
        admin: &crate::model::AdminName,
        csrf: &str,
        lifetime_secs: i64,
    ) -> Result<()> {
        let at = now();
        // Expired sessions go when new ones come, so that the table cannot grow without bound.
        sqlx::query("DELETE FROM console_sessions WHERE expires_at < $1")
            .bind(at)
            .execute(self.pool())
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, admin, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(admin.as_str())
        .bind(csrf)
        .bind(at)
        .bind(at + lifetime_secs)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The session with this ID hash, if it exists and has not expired.
    pub async fn session(&self, id_hash: &str) -> Result<Option<ConsoleSession>> {
        let row = sqlx::query(
            "SELECT s.csrf, s.expires_at, a.name FROM console_sessions s \
             JOIN admins a ON a.name = s.admin WHERE s.id_hash = $1 AND s.expires_at >= $2",
        )
        .bind(id_hash)
        .bind(now())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let name: String = row.try_get("name")?;
        let Some(admin) = self.get_admin(&name.parse()?).await? else { return Ok(None) };
        Ok(Some(ConsoleSession {
            admin,
            csrf: row.try_get("csrf")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
