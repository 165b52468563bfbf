//! Facts about the fleet that several monitors agree on through a conditional update, so
//! that one of them raises each alarm.

use sqlx::Row;

use super::{is_unique_violation, NewAlarm, Store, StoreError};
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
        self.flip_fleet_state_alarmed(name, from, to, now, &|_| Vec::new(), 0)
            .await
    }

    /// [`Store::flip_fleet_state`] with the alarms of the flip (`alarms` of the state's
    /// previous `since`) stored in the same transaction: a store error cannot flip the fact
    /// and lose its alarm.
    pub async fn flip_fleet_state_alarmed(
        &self,
        name: &str,
        from: &str,
        to: &str,
        now: Millis,
        alarms: &(dyn Fn(Millis) -> Vec<NewAlarm> + Send + Sync),
        merge_since: Millis,
    ) -> Result<Option<Millis>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query("SELECT since FROM fleet_state WHERE name = ? AND state = ?")
            .bind(name)
            .bind(from)
            .fetch_optional(&mut *tx)
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
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(None);
        }
        for alarm in alarms(since) {
            super::alarms::raise_on(&mut tx, &alarm, merge_since).await?;
        }
        tx.commit().await?;
        Ok(Some(since))
    }
}
