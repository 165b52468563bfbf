//! Facts about the fleet that several monitors agree on through a conditional update, so
//! that one of them raises each alarm.

use sqlx::Row;

use super::{is_unique_violation, Store, StoreError};
use crate::model::Millis;

impl Store {
    /// The state of the fleet fact `name`, if it exists.
    pub async fn fleet_fact(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT state FROM fleet_state WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(r.try_get::<String, _>(0)?)).transpose()
    }

    /// Creates the fleet fact `name` as `up` unless it exists (facts other than the
    /// migration's are made on first use).
    pub async fn ensure_fleet_fact(&self, name: &str) -> Result<(), StoreError> {
        let inserted =
            sqlx::query("INSERT INTO fleet_state (name, state, since) VALUES (?, 'up', 0)")
                .bind(name)
                .execute(&self.pool)
                .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Moves a fleet fact (`fleet_state.name`) from `from` to `to`, at most once across every
    /// monitor: the one caller whose conditional update took effect gets `Some(since)`, the
    /// time the fact had been in `from`.
    pub async fn flip_fleet_state(
        &self,
        name: &str,
        from: &str,
        to: &str,
        now: Millis,
    ) -> Result<Option<Millis>, StoreError> {
        let Some(row) = sqlx::query("SELECT since FROM fleet_state WHERE name = ? AND state = ?")
            .bind(name)
            .bind(from)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let since: i64 = row.try_get(0)?;
        let n = sqlx::query(
            "UPDATE fleet_state SET state = ?, since = ? WHERE name = ? AND state = ? AND since = ?",
        )
        .bind(to)
        .bind(now)
        .bind(name)
        .bind(from)
        .bind(since)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok((n == 1).then_some(since))
    }
}
