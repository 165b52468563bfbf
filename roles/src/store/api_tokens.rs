//! Named API tokens: the store keeps each token's SHA-256 (tokens are long random strings, so a
//! fast hash is safe), its role, scope, expiry and last use. A revoked or expired token is
//! refused by every monitor at its next request: each request looks the hash up.

use sqlx::Row;

use super::{is_unique_violation, rows, Store, StoreError};
use crate::model::access::{groups_text, parse_groups, Access, ApiToken};
use crate::model::{FieldError, Millis};

const TOKEN_COLUMNS: &str = "id, name, role, groups_allowed, created_by, created_at, expires_at, \
                             last_used_at, revoked_at";

/// Write `last_used_at` at most this often per token.
const TOUCH_EVERY_MS: i64 = 60_000;

fn token(r: &sqlx::any::AnyRow) -> Result<ApiToken, StoreError> {
    let role: String = r.try_get("role")?;
    let groups = rows::text_at(r, "groups_allowed")?.unwrap_or_default();
    Ok(ApiToken {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        access: Access::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown role `{role}`")))?,
        groups: parse_groups(&groups).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        last_used_at: r.try_get("last_used_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

impl Store {
    pub async fn insert_token(
        &self,
        name: &str,
        hash: &str,
        access: Access,
        groups: &Option<Vec<String>>,
        created_by: &str,
        expires_at: Option<Millis>,
    ) -> Result<ApiToken, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO api_tokens (name, token_hash, role, groups_allowed, created_by, \
             created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(name)
        .bind(hash)
        .bind(access.as_str())
        .bind(groups_text(groups))
        .bind(created_by)
        .bind(crate::model::now_millis())
        .bind(expires_at)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(FieldError::new(
                    "name",
                    format!("a token named `{name}` exists already"),
                )))
            }
            Err(e) => return Err(e.into()),
        }
        self.token_named(name)
            .await?
            .ok_or_else(|| StoreError::Corrupt("token vanished after insert".into()))
    }

    pub async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token).collect()
    }

    pub async fn token_named(&self, name: &str) -> Result<Option<ApiToken>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE LOWER(name) = LOWER(?)"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| token(&r)).transpose()
    }

    /// The live token (not revoked, not expired) with this hash, noting its use.
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, StoreError> {
        let now = crate::model::now_millis();
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > ?)"
        ))
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(t) = row.map(|r| token(&r)).transpose()? else {
            return Ok(None);
        };
        if t.last_used_at.is_none_or(|at| now - at > TOUCH_EVERY_MS) {
            sqlx::query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?")
                .bind(now)
                .bind(t.id)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(t))
    }

    /// Revokes a token; false when there is none of that name (or it was revoked).
    pub async fn revoke_token(&self, name: &str) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE api_tokens SET revoked_at = ? WHERE LOWER(name) = LOWER(?) AND revoked_at IS NULL",
        )
        .bind(crate::model::now_millis())
        .bind(name)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Revokes every live token `creator` made (its user is deleted: a token never outlives
    /// the authority of whoever minted it); returns how many.
    pub async fn revoke_tokens_by(&self, creator: &str) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE api_tokens SET revoked_at = ? WHERE LOWER(created_by) = LOWER(?) \
             AND revoked_at IS NULL",
        )
        .bind(crate::model::now_millis())
        .bind(creator)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Whether the named token is live (not revoked, not expired): a stream opened with it
    /// ends once it is not.
    pub async fn token_live(&self, name: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "SELECT 1 FROM api_tokens WHERE LOWER(name) = LOWER(?) AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(name)
        .bind(crate::model::now_millis())
        .fetch_optional(&self.pool)
        .await?
        .is_some())
    }
}
