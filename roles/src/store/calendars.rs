//! Calendars made by people, as written (`model::calendar::CalendarSpec`, kept as JSON). An edit logs a change for
//! every job that uses the calendar, so that dispatchers plan those jobs again with its new
//! days; a calendar a job uses is not deleted.

use sqlx::Row;

use super::changes::log_change;
use super::{is_unique_violation, rows, Store, StoreError};
use crate::model::calendar::{Calendar, CalendarSpec};
use crate::model::FieldError;

/// What `calendar delete` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarDeleted {
    Done,
    Missing,
    /// Jobs use it: their names.
    Used(Vec<String>),
}

fn taken(name: &str) -> StoreError {
    StoreError::Conflict(FieldError::new(
        "name",
        format!("a calendar named `{name}` exists already"),
    ))
}

impl Store {
    /// Every calendar of the store, as written.
    pub async fn calendars(&self) -> Result<Vec<CalendarSpec>, StoreError> {
        let rows = sqlx::query("SELECT body FROM calendars ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let body = rows::text_at(r, 0)?.unwrap_or_default();
                serde_json::from_str::<CalendarSpec>(&body)
                    .map_err(|e| StoreError::Corrupt(format!("calendar: {e}")))
            })
            .collect()
    }

    /// Every calendar of the store, compiled (for [`crate::schedule::days::install`]).
    pub async fn compiled_calendars(&self) -> Result<Vec<Calendar>, StoreError> {
        self.calendars()
            .await?
            .iter()
            .map(|s| s.compile().map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }

    /// Makes the store's calendars (and the shipped ones) those this process computes
    /// instants with (`schedule::days`). A store that cannot answer keeps the ones known.
    pub async fn install_calendars(&self) {
        match self.compiled_calendars().await {
            Ok(calendars) => crate::schedule::days::install(calendars),
            Err(e) => tracing::warn!(error = %e, "cannot read calendars; keeping the ones known"),
        }
    }

    /// One calendar of the store by name (any case).
    pub async fn calendar(&self, name: &str) -> Result<Option<CalendarSpec>, StoreError> {
        let row = sqlx::query("SELECT body FROM calendars WHERE LOWER(name) = LOWER(?)")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => {
                let body = rows::text_at(&r, 0)?.unwrap_or_default();
                serde_json::from_str(&body)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt(format!("calendar `{name}`: {e}")))
            }
            None => Ok(None),
        }
    }

    /// Records a new calendar (checked already).
    pub async fn insert_calendar(&self, spec: &CalendarSpec) -> Result<(), StoreError> {
        let body = serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let now = crate::model::now_millis();
        let done = sqlx::query(
            "INSERT INTO calendars (name, body, created_at, updated_at) VALUES (?, ?, ?, ?)",
        )
        .bind(spec.name.as_str())
        .bind(body)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(taken(&spec.name)),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces a calendar's days (by its name; a rename is not one), and logs a change of
    /// every job that uses it. `false`: no such calendar.
    pub async fn update_calendar(&self, spec: &CalendarSpec) -> Result<bool, StoreError> {
        let body = serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let now = crate::model::now_millis();
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE calendars SET body = ?, updated_at = ? WHERE LOWER(name) = LOWER(?)",
        )
        .bind(body)
        .bind(now)
        .bind(spec.name.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        for user in users_of(&mut tx, &spec.name).await? {
            log_change(&mut tx, user.id, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes a calendar no job uses.
    pub async fn delete_calendar(&self, name: &str) -> Result<CalendarDeleted, StoreError> {
        let mut tx = self.pool.begin().await?;
        let users = users_of(&mut tx, name).await?;
        if !users.is_empty() {
            return Ok(CalendarDeleted::Used(
                users.into_iter().map(|u| u.name).collect(),
            ));
        }
        let done = sqlx::query("DELETE FROM calendars WHERE LOWER(name) = LOWER(?)")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(match done.rows_affected() {
            0 => CalendarDeleted::Missing,
            _ => CalendarDeleted::Done,
        })
    }

    /// The jobs that use a calendar: (id, name).
    pub async fn calendar_users(&self, name: &str) -> Result<Vec<CalendarUser>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let users = users_of(&mut tx, name).await?;
        tx.commit().await?;
        Ok(users)
    }
}

/// A job that uses a calendar.
#[derive(Debug, Clone)]
pub struct CalendarUser {
    pub id: i64,
    pub name: String,
    pub group: String,
}

/// The jobs whose `calendars` name `name`, among the jobs that have calendars at all (kept by
/// exact name, in Rust: a `LIKE` would need escaping that differs per database).
async fn users_of(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
) -> Result<Vec<CalendarUser>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, name, calendars, job_group FROM jobs WHERE calendars IS NOT NULL ORDER BY id",
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let names = rows::text_at(r, 2)?.unwrap_or_default();
        if names.split(',').any(|n| n.eq_ignore_ascii_case(name)) {
            out.push(CalendarUser {
                id: r.try_get(0)?,
                name: rows::text_at(r, 1)?.unwrap_or_default(),
                group: rows::text_at(r, 3)?.unwrap_or_default(),
            });
        }
    }
    Ok(out)
}
