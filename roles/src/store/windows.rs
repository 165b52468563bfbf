//! Maintenance windows in the store (`model::window`).

use sqlx::Row;

use super::{is_unique_violation, rows, Store, StoreError};
use crate::model::window::Window;
use crate::model::FieldError;

impl Store {
    /// Every window, oldest first.
    pub async fn windows(&self) -> Result<Vec<Window>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, from_ms, to_ms, job_group, job_name, every, for_secs, timezone, \
             created_by FROM windows ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Window {
                    name: rows::text_at(r, 0)?.unwrap_or_default(),
                    from: r.try_get(1)?,
                    to: r.try_get(2)?,
                    group: rows::text_at(r, 3)?,
                    job: rows::text_at(r, 4)?,
                    every: rows::text_at(r, 5)?,
                    for_secs: r.try_get(6)?,
                    timezone: rows::text_at(r, 7)?.unwrap_or_default(),
                    created_by: rows::text_at(r, 8)?,
                })
            })
            .collect()
    }

    /// Records a window (checked already).
    pub async fn insert_window(&self, w: &Window) -> Result<(), StoreError> {
        let done = sqlx::query(
            "INSERT INTO windows (name, from_ms, to_ms, job_group, job_name, every, for_secs, \
             timezone, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(w.name.as_str())
        .bind(w.from)
        .bind(w.to)
        .bind(w.group.as_deref())
        .bind(w.job.as_deref())
        .bind(w.every.as_deref())
        .bind(w.for_secs)
        .bind(w.timezone.as_str())
        .bind(w.created_by.as_deref())
        .bind(crate::model::now_millis())
        .execute(&self.pool)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(FieldError::new(
                "name",
                format!("a window named `{}` exists already", w.name),
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a window; `false`: no such window.
    pub async fn delete_window(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM windows WHERE LOWER(name) = LOWER(?)")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
