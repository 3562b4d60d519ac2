//! Console sessions: kept by the hash of their ID, with the CSRF token of their forms. A session
//! ends at its absolute expiry, or earlier when unused for longer than the idle limit; its last
//! use is written at most once a minute, not on every request.

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
    /// When it was last used, to within [`LAST_SEEN_STEP`].
    pub last_seen: i64,
}

/// How stale `last_seen` may get before a request writes it again: an idle limit is kept to
/// within this, and a busy console does not write on every request.
pub const LAST_SEEN_STEP: i64 = 60;

impl Store {
    pub async fn create_session(
        &self,
        id_hash: &str,
        admin: &crate::model::AdminName,
        csrf: &str,
        lifetime_secs: i64,
        idle_secs: i64,
    ) -> Result<()> {
        let at = now();
        // Expired sessions go when new ones come, so that the table cannot grow without bound.
        sqlx::query("DELETE FROM console_sessions WHERE expires_at < $1 OR last_seen < $2")
            .bind(at)
            .bind(at - idle_secs)
            .execute(self.pool())
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, admin, csrf, created_at, expires_at, last_seen) \
             VALUES ($1, $2, $3, $4, $5, $4)",
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

    /// The session with this ID hash, if it exists, has not expired and has been used within
    /// the last `idle_secs`; marks it used. An expired session is deleted on the way.
    pub async fn session(&self, id_hash: &str, idle_secs: i64) -> Result<Option<ConsoleSession>> {
        let row = sqlx::query(
            "SELECT s.csrf, s.expires_at, s.last_seen, a.name FROM console_sessions s \
             JOIN admins a ON a.name = s.admin WHERE s.id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let at = now();
        let expires_at: i64 = row.try_get("expires_at")?;
        let mut last_seen: i64 = row.try_get("last_seen")?;
        if expires_at < at || last_seen < at - idle_secs {
            self.delete_session(id_hash).await?;
            return Ok(None);
        }
        if at - last_seen >= LAST_SEEN_STEP {
            sqlx::query("UPDATE console_sessions SET last_seen = $2 WHERE id_hash = $1")
                .bind(id_hash)
                .bind(at)
                .execute(self.pool())
                .await?;
            last_seen = at;
        }
        let name: String = row.try_get("name")?;
        let Some(admin) = self.get_admin(&name.parse()?).await? else { return Ok(None) };
        Ok(Some(ConsoleSession { admin, csrf: row.try_get("csrf")?, expires_at, last_seen }))
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
