//! Console sessions, kept in the store so that every monitor of a cluster honours them and a
//! reload logs nobody out. The cookie holds a random secret; the store holds its SHA-256, so a
//! copy of the store lets nobody in. A session ends at its absolute expiry, after it went unused
//! for the idle time, or at logout — everywhere at once.

use sqlx::Row;

use super::{Store, StoreError};
use crate::model::Millis;

/// Don't write `last_seen` more often than this (a page load is a read, not a write).
const TOUCH_EVERY_MS: i64 = 60_000;

impl Store {
    pub async fn open_session(
        &self,
        id_hash: &str,
        user_id: i64,
        expires_at: Millis,
        address: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = crate::model::now_millis();
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, created_at, last_seen, expires_at, address) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(now)
        .bind(now)
        .bind(expires_at)
        .bind(address)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user of a live session (not expired, used within `idle_ms`), touching it.
    pub async fn session_user(
        &self,
        id_hash: &str,
        idle_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let now = crate::model::now_millis();
        let row = sqlx::query(
            "SELECT user_id, last_seen FROM sessions WHERE id_hash = ? AND expires_at > ? \
             AND last_seen > ?",
        )
        .bind(id_hash)
        .bind(now)
        .bind(now - idle_ms)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let (user, seen): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        if now - seen > TOUCH_EVERY_MS {
            sqlx::query("UPDATE sessions SET last_seen = ? WHERE id_hash = ?")
                .bind(now)
                .bind(id_hash)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(user))
    }

    pub async fn end_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn end_sessions_of(&self, user_id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE user_id = ?")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether a session is still open (not logged out, not expired), without touching it.
    pub async fn session_live(&self, id_hash: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 FROM sessions WHERE id_hash = ? AND expires_at > ?")
                .bind(id_hash)
                .bind(crate::model::now_millis())
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    /// Drops sessions past their expiry or idle since `idle_before`.
    pub async fn prune_sessions(&self, idle_before: Millis) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM sessions WHERE expires_at < ? OR last_seen < ?")
                .bind(crate::model::now_millis())
                .bind(idle_before)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}
