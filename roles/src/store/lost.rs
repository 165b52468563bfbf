//! Runs whose executor went away: the process groups left behind, the runs marked lost, and
//! the runs an executor must stop because the store gave up on them.

use sqlx::Row;

use super::lifecycle::{insert_retry, Retry};
use super::{rows, Store, StoreError};
use crate::model::Millis;

impl Store {
    /// Runs started by other executor instances at `host_addr` (`host/address/`, not `me`)
    /// that are `running` or were marked `lost`, with their executor instance, pid and start:
    /// the process groups a dead executor may have left behind (the caller checks that the
    /// instance is dead: a draining one of the previous generation is alive). Last day only.
    pub async fn runs_of_earlier_executors(
        &self,
        host_addr: &str,
        me: &str,
    ) -> Result<Vec<(i64, String, i64, Millis)>, StoreError> {
        let since = crate::model::now_millis() - 86_400_000;
        let rows = sqlx::query(
            "SELECT id, executor, pid, started_at FROM runs WHERE state IN ('running', 'lost') \
             AND executor LIKE ? AND executor <> ? AND pid IS NOT NULL \
             AND started_at IS NOT NULL AND started_at > ?",
        )
        .bind(format!("{host_addr}%"))
        .bind(me)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    rows::text_at(r, 1)?.unwrap_or_default(),
                    r.try_get(2)?,
                    r.try_get(3)?,
                ))
            })
            .collect()
    }

    /// Marks `lost` the runs that cannot end any more: `running` or accepted (`dispatched` with
    /// an executor noted) on an executor whose heartbeat is older than `stale_before` (or that
    /// is gone); `dispatched` runs no executor took before `dispatched_before`; and runs of a
    /// job with a timeout still not ended `overdue_grace_ms` after their timeout (their live
    /// executor failed to end them). A run accepted by a live executor is otherwise never lost,
    /// however long its result takes to be written. The conditional update is idempotent, so
    /// several monitors mark each run once. Returns the runs marked.
    pub async fn mark_lost(
        &self,
        stale_before: Millis,
        dispatched_before: Millis,
        overdue_grace_ms: Millis,
    ) -> Result<Vec<i64>, StoreError> {
        let silent = sqlx::query(
            "SELECT r.id FROM runs r LEFT JOIN executors e ON e.instance = r.executor \
             WHERE r.state IN ('running', 'dispatched') AND r.executor IS NOT NULL \
             AND (e.instance IS NULL OR e.last_seen < ?)",
        )
        .bind(stale_before)
        .fetch_all(&self.pool)
        .await?;
        let undelivered = sqlx::query(
            "SELECT id FROM runs WHERE state = 'dispatched' AND executor IS NULL \
             AND dispatched_at < ?",
        )
        .bind(dispatched_before)
        .fetch_all(&self.pool)
        .await?;
        let now = crate::model::now_millis();
        let overdue = sqlx::query(
            "SELECT r.id FROM runs r JOIN jobs j ON j.id = r.job_id \
             WHERE r.state IN ('running', 'dispatched') AND r.executor IS NOT NULL \
             AND j.timeout_secs IS NOT NULL AND j.timeout_secs > 0 \
             AND COALESCE(r.started_at, r.dispatched_at) + j.timeout_secs * 1000 < ?",
        )
        .bind(now - overdue_grace_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut marked = Vec::new();
        // Only a run no executor took is retried: one an executor took may have run to its end
        // (an executor paused or cut off is presumed gone, not known to be), and a retry then
        // runs the job twice for one instant. Its `lost` alarm asks a person instead.
        for (rows, error, retry) in [
            (
                silent,
                "lost: its executor stopped answering before the run ended (not retried: it may \
                 have run to its end)",
                false,
            ),
            (undelivered, "lost: no executor took the run", true),
            (
                overdue,
                "lost: still running past its timeout and the kill grace (its executor could not end it)",
                false,
            ),
        ] {
            for r in &rows {
                let id: i64 = r.try_get(0)?;
                if self.lose(id, error, retry, now).await? {
                    marked.push(id);
                }
            }
        }
        Ok(marked)
    }

    /// Marks one run `lost` with `error` unless it ended meanwhile, with the retry the job
    /// allows when `retry`, in one transaction. True when this caller marked it.
    async fn lose(
        &self,
        id: i64,
        error: &str,
        retry: bool,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE runs SET state = 'lost', ended_at = ?, error = ? \
             WHERE id = ? AND state IN ('dispatched', 'running')",
        )
        .bind(now)
        .bind(error)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 && retry {
            let run = sqlx::query(
                    "SELECT r.job_id, r.instant, r.attempt, r.retry_of, j.retries, \
                     j.retry_backoff_secs FROM runs r JOIN jobs j ON j.id = r.job_id WHERE r.id = ?",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(run) = run {
                let attempt: i64 = run.try_get(2)?;
                let retries: i64 = run.try_get(4)?;
                if attempt <= retries {
                    let backoff: i64 = run.try_get(5)?;
                    let retry_of: Option<i64> = run.try_get(3)?;
                    let delay = crate::model::retry_delay_ms(backoff, attempt);
                    let retry = Retry {
                        job_id: run.try_get(0)?,
                        instant: run.try_get(1)?,
                        attempt: attempt + 1,
                        retry_of: retry_of.unwrap_or(id),
                        not_before: now + delay,
                    };
                    insert_retry(&mut tx, &retry, now).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Which of `ids` the store gave up on: recorded `lost`, or deleted with their job
    /// (`job delete --force`). In chunks, every id a bound parameter.
    pub async fn given_up_among(&self, ids: &[i64]) -> Result<Vec<(i64, GivenUp)>, StoreError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let marks = super::placeholders(chunk.len());
            let sql = format!("SELECT id, state, kill_requested FROM runs WHERE id IN ({marks})");
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            let mut found = std::collections::HashMap::new();
            for row in query.fetch_all(&self.pool).await? {
                let kill: i64 = row.try_get(2)?;
                found.insert(
                    row.try_get::<i64, _>(0)?,
                    (row.try_get::<String, _>(1)?, kill != 0),
                );
            }
            for id in chunk {
                match found.get(id).map(|(s, k)| (s.as_str(), *k)) {
                    None => out.push((*id, GivenUp::Deleted)),
                    Some(("lost", _)) => out.push((*id, GivenUp::Lost)),
                    Some((_, true)) => out.push((*id, GivenUp::KillRequested)),
                    Some(_) => {}
                }
            }
        }
        Ok(out)
    }
}

/// Why the store no longer expects a run's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GivenUp {
    /// The monitor recorded it `lost`.
    Lost,
    /// Its job was deleted while it ran (`job delete --force`).
    Deleted,
    /// An operator asked for it to be killed (`run kill`, the console's Kill).
    KillRequested,
}
