//! Who is alive: the heartbeats of executors and dispatchers, and the removal of stale rows.

use sqlx::Row;

use super::NewAlarm;
use super::{is_unique_violation, Store, StoreError};
use crate::model::Millis;

/// The alarms to store with a process found gone (its instance id given).
pub type AlarmsFor<'a> = dyn Fn(&str) -> Vec<NewAlarm> + Send + Sync + 'a;

/// The roles that beat, each in a table of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beating {
    Executors,
    Dispatchers,
    Monitors,
}

impl Beating {
    /// The table (a constant, never input).
    fn table(self) -> &'static str {
        match self {
            Beating::Executors => "executors",
            Beating::Dispatchers => "dispatchers",
            Beating::Monitors => "monitors",
        }
    }
}

impl Store {
    /// An executor's heartbeat: creates or refreshes its row (a new row gets `card`). The
    /// roles beat through [`Store::executor_beat`], with their clock's skew.
    #[cfg(test)]
    pub async fn heartbeat(
        &self,
        instance: &str,
        started_at: Millis,
        card: &super::ExecutorCard,
    ) -> Result<(), StoreError> {
        self.executor_beat(instance, started_at, card, None).await
    }

    /// [`Store::heartbeat`] with the clock skew measured just before, if any.
    pub async fn executor_beat(
        &self,
        instance: &str,
        started_at: Millis,
        card: &super::ExecutorCard,
        skew: Option<Millis>,
    ) -> Result<(), StoreError> {
        if self
            .beat_in(Beating::Executors, instance, started_at, skew)
            .await?
        {
            self.set_executor_card(instance, card).await?;
        }
        Ok(())
    }

    /// A dispatcher's or a monitor's heartbeat, with the clock skew measured just before.
    pub async fn role_beat(
        &self,
        role: Beating,
        instance: &str,
        started_at: Millis,
        skew: Option<Millis>,
    ) -> Result<(), StoreError> {
        self.beat_in(role, instance, started_at, skew).await?;
        Ok(())
    }

    /// The store's own wall clock, in ms: the one clock every host is compared with.
    pub async fn store_clock(&self) -> Result<Millis, StoreError> {
        let sql = match self.backend {
            super::Backend::MySql => "SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)",
            super::Backend::Sqlite => {
                "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
            }
        };
        let row = sqlx::query(sql).fetch_one(&self.pool).await?;
        Ok(row.try_get(0)?)
    }

    /// A heartbeat in `role`'s table, keeping the last skew measured when this beat has
    /// none; true when it created the row.
    async fn beat_in(
        &self,
        role: Beating,
        instance: &str,
        started_at: Millis,
        skew: Option<Millis>,
    ) -> Result<bool, StoreError> {
        let table = role.table();
        // On the store's clock, as measured (every host's beats compare on one clock: a
        // monitor whose own clock is stepped must not find the others stale).
        let now = crate::model::now_millis() - skew.unwrap_or(0);
        let updated = sqlx::query(&format!(
            "UPDATE {table} SET last_seen = ?, skew_ms = COALESCE(?, skew_ms) WHERE instance = ?"
        ))
        .bind(now)
        .bind(skew)
        .bind(instance)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 0 {
            let inserted = sqlx::query(&format!(
                "INSERT INTO {table} (instance, started_at, last_seen, skew_ms) VALUES (?, ?, ?, ?)"
            ))
            .bind(instance)
            .bind(started_at)
            .bind(now)
            .bind(skew)
            .execute(&self.pool)
            .await;
            return match inserted {
                Ok(_) => Ok(true),
                Err(e) if is_unique_violation(&e) => Ok(false),
                Err(e) => Err(e.into()),
            };
        }
        Ok(false)
    }

    /// Executors that stopped heartbeating without leaving cleanly (crashed, killed, host
    /// gone). Each is removed by exactly one caller, in the transaction that stores its
    /// alarms (`alarms_for` the instance), so a store error cannot drop a row unalarmed.
    pub async fn expire_executors(
        &self,
        stale_before: Millis,
        alarms_for: &AlarmsFor<'_>,
        merge_since: Millis,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT instance FROM executors WHERE last_seen < ?")
            .bind(stale_before)
            .fetch_all(&self.pool)
            .await?;
        let stale = rows
            .iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, true)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.remove_stale(
            Beating::Executors,
            stale,
            stale_before,
            alarms_for,
            merge_since,
        )
        .await
    }

    /// Deletes the `stale` rows of `table` (a constant) still stale, each with the alarms of
    /// the flagged ones in the same transaction; returns the instances this caller deleted
    /// and flagged (several monitors: each row goes to one of them).
    async fn remove_stale(
        &self,
        role: Beating,
        stale: Vec<(String, bool)>,
        stale_before: Millis,
        alarms_for: &AlarmsFor<'_>,
        merge_since: Millis,
    ) -> Result<Vec<String>, StoreError> {
        let table = role.table();
        let mut gone = Vec::new();
        for (instance, flagged) in stale {
            let mut tx = self.pool.begin().await?;
            let n = sqlx::query(&format!(
                "DELETE FROM {table} WHERE instance = ? AND last_seen < ?"
            ))
            .bind(&instance)
            .bind(stale_before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 && flagged {
                for alarm in alarms_for(&instance) {
                    super::alarms::raise_on(&mut tx, &alarm, merge_since).await?;
                }
                gone.push(instance);
            }
            tx.commit().await?;
        }
        Ok(gone)
    }

    /// An executor leaving cleanly (all its runs recorded).
    pub async fn deregister(&self, instance: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM executors WHERE instance = ?")
            .bind(instance)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A dispatcher's heartbeat: creates or refreshes its row (the role beats through
    /// [`Store::role_beat`]).
    #[cfg(test)]
    pub async fn dispatcher_heartbeat(
        &self,
        instance: &str,
        started_at: Millis,
    ) -> Result<(), StoreError> {
        self.role_beat(Beating::Dispatchers, instance, started_at, None)
            .await
    }

    /// A dispatcher stopping cleanly: it counts as present until its heartbeat ages out (a
    /// reload or a shutdown is no outage), then it is forgotten without an alarm.
    pub async fn dispatcher_left(&self, instance: &str) -> Result<(), StoreError> {
        self.role_left(Beating::Dispatchers, instance).await
    }

    /// A dispatcher or a monitor stopping cleanly: forgotten without an alarm once its last
    /// beat ages out.
    pub async fn role_left(&self, role: Beating, instance: &str) -> Result<(), StoreError> {
        let table = role.table();
        sqlx::query(&format!(
            "UPDATE {table} SET left_at = ? WHERE instance = ?"
        ))
        .bind(crate::model::now_millis())
        .bind(instance)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The clock skews measured by the processes heard from since `since`: (instance, skew).
    pub async fn clock_skews(&self, since: Millis) -> Result<Vec<(String, Millis)>, StoreError> {
        let mut out = Vec::new();
        for role in [Beating::Executors, Beating::Dispatchers, Beating::Monitors] {
            let table = role.table();
            let rows = sqlx::query(&format!(
                "SELECT instance, skew_ms FROM {table} \
                 WHERE last_seen >= ? AND skew_ms IS NOT NULL"
            ))
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
            for r in rows {
                out.push((r.try_get(0)?, r.try_get(1)?));
            }
        }
        Ok(out)
    }

    /// Dispatchers heard from since `since` (including ones that left since).
    pub async fn dispatchers_seen(&self, since: Millis) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM dispatchers WHERE last_seen >= ?")
            .bind(since)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Dispatchers heard from since `since` that have not left: the ones that may be firing.
    pub async fn live_dispatchers(&self, since: Millis) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT instance FROM dispatchers WHERE last_seen >= ? AND left_at IS NULL",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>(0)?))
            .collect()
    }

    /// Of the dispatchers alive now (heard from since `alive_since`, not stopped): the
    /// oldest last beat and the latest start; `None` when there is none.
    pub async fn live_dispatchers_beat(
        &self,
        alive_since: Millis,
    ) -> Result<Option<(Millis, Millis)>, StoreError> {
        let row = sqlx::query(
            "SELECT MIN(last_seen), MAX(started_at), COUNT(*) FROM dispatchers \
             WHERE last_seen >= ? AND left_at IS NULL",
        )
        .bind(alive_since)
        .fetch_one(&self.pool)
        .await?;
        let n: i64 = row.try_get(2)?;
        if n == 0 {
            return Ok(None);
        }
        Ok(Some((row.try_get(0)?, row.try_get(1)?)))
    }

    /// How the last dispatcher other than `me` stopped: `Some(left_at)` when it left cleanly
    /// (a planned stop: SIGTERM, `cronvisor down`), `None` when it went silent (a crash) or
    /// none is on record. Rows stay until the monitor forgets them, `lost_after` after their
    /// last beat, and a starting monitor waits that long first, so a restart finds them.
    pub async fn last_clean_stop(&self, me: &str) -> Result<Option<Millis>, StoreError> {
        let row = sqlx::query(
            "SELECT left_at FROM dispatchers WHERE instance <> ? ORDER BY last_seen DESC LIMIT 1",
        )
        .bind(me)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => r.try_get::<Option<i64>, _>(0)?,
            None => None,
        })
    }

    /// Removes dispatchers silent since `stale_before`; returns those that had not left
    /// cleanly (crashed, killed, host gone), each to exactly one caller.
    pub async fn expire_dispatchers(
        &self,
        stale_before: Millis,
        alarms_for: &AlarmsFor<'_>,
        merge_since: Millis,
    ) -> Result<Vec<String>, StoreError> {
        self.expire_leaving(Beating::Dispatchers, stale_before, alarms_for, merge_since)
            .await
    }

    /// [`Store::expire_dispatchers`] for the monitors.
    pub async fn expire_monitors(
        &self,
        stale_before: Millis,
        alarms_for: &AlarmsFor<'_>,
        merge_since: Millis,
    ) -> Result<Vec<String>, StoreError> {
        self.expire_leaving(Beating::Monitors, stale_before, alarms_for, merge_since)
            .await
    }

    /// Removes the rows of `role` (which records `left_at`) silent since `stale_before`;
    /// returns those that had not left cleanly, each to exactly one caller.
    async fn expire_leaving(
        &self,
        role: Beating,
        stale_before: Millis,
        alarms_for: &AlarmsFor<'_>,
        merge_since: Millis,
    ) -> Result<Vec<String>, StoreError> {
        let table = role.table();
        let rows = sqlx::query(&format!(
            "SELECT instance, left_at FROM {table} WHERE last_seen < ?"
        ))
        .bind(stale_before)
        .fetch_all(&self.pool)
        .await?;
        let stale = rows
            .iter()
            .map(|r| {
                let left: Option<i64> = r.try_get(1)?;
                Ok((r.try_get::<String, _>(0)?, left.is_none()))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.remove_stale(role, stale, stale_before, alarms_for, merge_since)
            .await
    }
}
