//! Who is alive: the heartbeats of executors and dispatchers, and the removal of stale rows.

use sqlx::Row;

use super::NewAlarm;
use super::{is_unique_violation, Store, StoreError};
use crate::model::Millis;

/// The alarms to store with a process found gone (its instance id given).
pub type AlarmsFor<'a> = dyn Fn(&str) -> Vec<NewAlarm> + Send + Sync + 'a;

impl Store {
    /// An executor's heartbeat: creates or refreshes its row (a new row gets `card`).
    pub async fn heartbeat(
        &self,
        instance: &str,
        started_at: Millis,
        card: &super::ExecutorCard,
    ) -> Result<(), StoreError> {
        if self.beat_in("executors", instance, started_at).await? {
            self.set_executor_card(instance, card).await?;
        }
        Ok(())
    }

    /// A heartbeat in `table` (`executors` or `dispatchers`: a constant, never input); true
    /// when it created the row.
    async fn beat_in(
        &self,
        table: &'static str,
        instance: &str,
        started_at: Millis,
    ) -> Result<bool, StoreError> {
        let now = crate::model::now_millis();
        let updated = sqlx::query(&format!(
            "UPDATE {table} SET last_seen = ? WHERE instance = ?"
        ))
        .bind(now)
        .bind(instance)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 0 {
            let inserted = sqlx::query(&format!(
                "INSERT INTO {table} (instance, started_at, last_seen) VALUES (?, ?, ?)"
            ))
            .bind(instance)
            .bind(started_at)
            .bind(now)
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
        self.remove_stale("executors", stale, stale_before, alarms_for, merge_since)
            .await
    }

    /// Deletes the `stale` rows of `table` (a constant) still stale, each with the alarms of
    /// the flagged ones in the same transaction; returns the instances this caller deleted
    /// and flagged (several monitors: each row goes to one of them).
    async fn remove_stale(
        &self,
        table: &'static str,
        stale: Vec<(String, bool)>,
        stale_before: Millis,
        alarms_for: &AlarmsFor<'_>,
        merge_since: Millis,
    ) -> Result<Vec<String>, StoreError> {
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

    /// A dispatcher's heartbeat: creates or refreshes its row.
    pub async fn dispatcher_heartbeat(
        &self,
        instance: &str,
        started_at: Millis,
    ) -> Result<(), StoreError> {
        self.beat_in("dispatchers", instance, started_at).await?;
        Ok(())
    }

    /// A dispatcher stopping cleanly: it counts as present until its heartbeat ages out (a
    /// reload or a shutdown is no outage), then it is forgotten without an alarm.
    pub async fn dispatcher_left(&self, instance: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE dispatchers SET left_at = ? WHERE instance = ?")
            .bind(crate::model::now_millis())
            .bind(instance)
            .execute(&self.pool)
            .await?;
        Ok(())
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
        let rows = sqlx::query("SELECT instance, left_at FROM dispatchers WHERE last_seen < ?")
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
        self.remove_stale("dispatchers", stale, stale_before, alarms_for, merge_since)
            .await
    }
}
