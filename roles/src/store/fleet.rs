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

    /// The fleet facts whose name starts with `prefix` (a constant of the caller's), by name.
    pub async fn fleet_facts(
        &self,
        prefix: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
        let rows = sqlx::query("SELECT name, state FROM fleet_state WHERE name LIKE ?")
            .bind(format!("{prefix}%"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
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

    /// The end of an outage of `name` that began at `began` (as one monitor saw it), with its
    /// alarms, at most once across monitors: the first to move the fact's `since` past the
    /// outage's start wins; the others saw the same outage begin before that and do nothing.
    pub async fn outage_ended_once(
        &self,
        name: &str,
        began: Millis,
        now: Millis,
        alarms: &[NewAlarm],
        merge_since: Millis,
    ) -> Result<bool, StoreError> {
        self.ensure_fleet_fact(name).await?;
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("UPDATE fleet_state SET since = ? WHERE name = ? AND since < ?")
            .bind(now)
            .bind(name)
            .bind(began)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        for alarm in alarms {
            super::alarms::raise_on(&mut tx, alarm, merge_since).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
