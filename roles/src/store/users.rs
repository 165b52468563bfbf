//! Users (a password hash, never the password) and failed logins, counted per subject (a user
//! name, an address) so that guessing slows down.

use sqlx::Row;

use super::{is_unique_violation, rows, Store, StoreError};
use crate::model::access::{groups_text, parse_groups, Access, User};
use crate::model::{FieldError, Millis};

const USER_COLUMNS: &str =
    "id, name, email, role, groups_allowed, active, created_at, updated_at, last_login_at";

/// A user to add or the fields of one to change (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub name: Option<String>,
    pub email: Option<Option<String>>,
    pub access: Option<Access>,
    pub groups: Option<Option<Vec<String>>>,
    pub active: Option<bool>,
    /// An Argon2id PHC string.
    pub password_hash: Option<String>,
}

fn user(r: &sqlx::any::AnyRow) -> Result<User, StoreError> {
    let role: String = r.try_get("role")?;
    let groups: String = rows::text_at(r, "groups_allowed")?.unwrap_or_default();
    Ok(User {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        email: rows::text_at(r, "email")?,
        access: Access::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown role `{role}`")))?,
        groups: parse_groups(&groups).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        active: r.try_get::<i64, _>("active")? != 0,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        last_login_at: r.try_get("last_login_at")?,
    })
}

fn taken(name: &str) -> StoreError {
    StoreError::Conflict(FieldError::new(
        "name",
        format!("a user named `{name}` exists already (names are unique whatever their case)"),
    ))
}

impl Store {
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user).collect()
    }

    /// A user by name, any case, with its password hash.
    pub async fn user_named(&self, name: &str) -> Result<Option<(User, String)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE LOWER(name) = LOWER(?)"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((user(&r)?, r.try_get::<String, _>("password_hash")?)))
            .transpose()
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| user(&r)).transpose()
    }

    /// Adds a user (name, access and password hash required).
    pub async fn insert_user(&self, u: &UserChange) -> Result<User, StoreError> {
        let (Some(name), Some(access), Some(hash)) = (&u.name, u.access, &u.password_hash) else {
            return Err(StoreError::Conflict(FieldError::new(
                "name",
                "a user needs a name, a role and a password",
            )));
        };
        if self.user_named(name).await?.is_some() {
            return Err(taken(name));
        }
        let now = crate::model::now_millis();
        let inserted = sqlx::query(
            "INSERT INTO users (name, email, role, groups_allowed, password_hash, active, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(name)
        .bind(u.email.clone().flatten())
        .bind(access.as_str())
        .bind(groups_text(&u.groups.clone().flatten()))
        .bind(hash)
        .bind(i64::from(u.active.unwrap_or(true)))
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(taken(name)),
            Err(e) => return Err(e.into()),
        }
        self.user_named(name)
            .await?
            .map(|(u, _)| u)
            .ok_or_else(|| StoreError::Corrupt("user vanished after insert".into()))
    }

    /// Changes the given fields of user `id`; a disabled user or a new password ends the
    /// user's sessions.
    pub async fn update_user(&self, id: i64, u: &UserChange) -> Result<Option<User>, StoreError> {
        let Some(mut current) = self.user_by_id(id).await? else {
            return Ok(None);
        };
        if let Some(name) = &u.name {
            if let Some((other, _)) = self.user_named(name).await? {
                if other.id != id {
                    return Err(taken(name));
                }
            }
            current.name = name.clone();
        }
        if let Some(e) = &u.email {
            current.email = e.clone();
        }
        if let Some(a) = u.access {
            current.access = a;
        }
        if let Some(g) = &u.groups {
            current.groups = g.clone();
        }
        if let Some(a) = u.active {
            current.active = a;
        }
        let now = crate::model::now_millis();
        sqlx::query(
            "UPDATE users SET name = ?, email = ?, role = ?, groups_allowed = ?, active = ?, \
             updated_at = ? WHERE id = ?",
        )
        .bind(&current.name)
        .bind(current.email.clone())
        .bind(current.access.as_str())
        .bind(groups_text(&current.groups))
        .bind(i64::from(current.active))
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if let Some(hash) = &u.password_hash {
            sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
                .bind(hash)
                .bind(id)
                .execute(&self.pool)
                .await?;
        }
        if u.password_hash.is_some() || u.active == Some(false) {
            self.end_sessions_of(id).await?;
        }
        self.user_by_id(id).await
    }

    /// Deletes a user and its sessions; false when there was none.
    pub async fn delete_user(&self, id: i64) -> Result<bool, StoreError> {
        self.end_sessions_of(id).await?;
        let n = sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    pub async fn note_login(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET last_login_at = ? WHERE id = ?")
            .bind(crate::model::now_millis())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Failed logins of `subject` so far and when the last was.
    pub async fn login_failures(&self, subject: &str) -> Result<(i64, Millis), StoreError> {
        let row = sqlx::query("SELECT failures, last_at FROM login_failures WHERE subject = ?")
            .bind(subject)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => (r.try_get(0)?, r.try_get(1)?),
            None => (0, 0),
        })
    }

    pub async fn add_login_failure(&self, subject: &str) -> Result<(), StoreError> {
        let now = crate::model::now_millis();
        let n = sqlx::query(
            "UPDATE login_failures SET failures = failures + 1, last_at = ? WHERE subject = ?",
        )
        .bind(now)
        .bind(subject)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            let inserted = sqlx::query(
                "INSERT INTO login_failures (subject, failures, last_at) VALUES (?, 1, ?)",
            )
            .bind(subject)
            .bind(now)
            .execute(&self.pool)
            .await;
            match inserted {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    return Box::pin(self.add_login_failure(subject)).await
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Forgets the failed logins of subjects quiet since `before` (the table would otherwise
    /// keep a row for every address that ever failed).
    pub async fn prune_login_failures(&self, before: Millis) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM login_failures WHERE last_at < ?")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    pub async fn clear_login_failures(&self, subject: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_failures WHERE subject = ?")
            .bind(subject)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
