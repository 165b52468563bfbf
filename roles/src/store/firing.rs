//! Firing: recording the instants a dispatcher fires under the (job, instant, target) fence,
//! manual runs and retries waiting to be claimed, and the instants recorded without a run
//! (skipped, missed).

use sqlx::Row;

use super::{rows, Backend, Store, StoreError};
use crate::model::{Millis, RunState, Trigger};

impl Store {
    /// Records a fire. The unique key (job, instant, target) is the fence that makes each
    /// instant fire once however many dispatchers try.
    pub async fn record_fire(
        &self,
        job_id: i64,
        instant: Millis,
        target: &str,
        trigger: Trigger,
        state: RunState,
    ) -> Result<Recorded, StoreError> {
        let mut recorded = self
            .record_fires(
                &[(job_id, instant, target.to_string(), None)],
                trigger,
                state,
            )
            .await?;
        recorded
            .pop()
            .ok_or_else(|| StoreError::Corrupt("no result for a recorded fire".into()))
    }

    /// Records several fires in one transaction (one commit for a whole burst), each under the
    /// same fence as [`Store::record_fire`]: a taken key makes that row `AlreadyFired` and
    /// leaves the others alone.
    ///
    /// A burst is one multi-row `INSERT IGNORE` per 500 rows, stamped with a token unique to
    /// this call (`fired_by`), then one indexed read per distinct instant of the rows that
    /// carry the token: two round trips for a burst instead of one per run. The rows without
    /// the token were fired by someone else.
    pub async fn record_fires(
        &self,
        fires: &[FireKey],
        trigger: Trigger,
        state: RunState,
    ) -> Result<Vec<Recorded>, StoreError> {
        const CHUNK: usize = 500;
        if fires.is_empty() {
            return Ok(Vec::new());
        }
        let now = crate::model::now_millis();
        let dispatched_at = (state == RunState::Dispatched).then_some(now);
        let token = fire_token();
        let insert = match self.backend {
            Backend::MySql => "INSERT IGNORE",
            Backend::Sqlite => "INSERT OR IGNORE",
        };
        // Inserted in key order: dispatchers racing for the same burst (Redis down) then take
        // the same row locks in the same order, which keeps InnoDB from deadlocking them.
        let mut sorted: Vec<&FireKey> = fires.iter().collect();
        sorted.sort_unstable();
        let mut tx = self.pool.begin().await?;
        for chunk in sorted.chunks(CHUNK) {
            let sql = format!(
                "{insert} INTO runs (job_id, instant, target, trigger_kind, state, created_at, \
                 dispatched_at, fired_by, shard_index, shard_total) VALUES {}",
                vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
            );
            let mut q = sqlx::query(&sql);
            for (job_id, instant, target, shard) in chunk {
                q = q
                    .bind(*job_id)
                    .bind(*instant)
                    .bind(target.as_str())
                    .bind(trigger.as_str())
                    .bind(state.as_str())
                    .bind(now)
                    .bind(dispatched_at)
                    .bind(token.as_str())
                    .bind(shard.map(|s| s.0))
                    .bind(shard.map(|s| s.1));
            }
            q.execute(&mut *tx).await?;
        }
        // Which rows are ours: by instant, then job ids (the unique key's prefix).
        let mut by_instant: std::collections::BTreeMap<Millis, Vec<i64>> = Default::default();
        for (job_id, instant, _, _) in fires {
            by_instant.entry(*instant).or_default().push(*job_id);
        }
        let mut mine: std::collections::HashMap<(i64, Millis, String), i64> =
            std::collections::HashMap::with_capacity(fires.len());
        for (instant, mut jobs) in by_instant {
            jobs.sort_unstable();
            jobs.dedup();
            for ids in jobs.chunks(CHUNK) {
                let sql = format!(
                    "SELECT id, job_id, target FROM runs WHERE instant = ? AND fired_by = ? \
                     AND job_id IN ({})",
                    super::placeholders(ids.len())
                );
                let mut q = sqlx::query(&sql).bind(instant).bind(token.as_str());
                for id in ids {
                    q = q.bind(*id);
                }
                for row in q.fetch_all(&mut *tx).await? {
                    let target = rows::text_at(&row, 2)?.unwrap_or_default();
                    mine.insert(
                        (row.try_get::<i64, _>(1)?, instant, target),
                        row.try_get::<i64, _>(0)?,
                    );
                }
            }
        }
        tx.commit().await?;
        Ok(fires
            .iter()
            .map(
                |(job, instant, target, _)| match mine.get(&(*job, *instant, target.clone())) {
                    Some(id) => Recorded::New(*id),
                    None => Recorded::AlreadyFired,
                },
            )
            .collect())
    }

    /// Fires one instant of an `overlap = forbid` job: in one transaction that holds the job's
    /// row, either records it `dispatched` (no run of the job going) or `skipped` with the
    /// runs going as the reason. Two dispatchers firing two instants of the job at once are
    /// serialized here, so at most one of them starts (a check before the insert would let
    /// both through: found by the chaos suite).
    pub async fn fire_forbid(
        &self,
        job_id: i64,
        instant: Millis,
        trigger: Trigger,
    ) -> Result<Forbid, StoreError> {
        let mut tx = self.pool.begin().await?;
        // A write to the job's row takes its lock (InnoDB's row lock, SQLite's write lock).
        sqlx::query("UPDATE jobs SET paused = paused WHERE id = ?")
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        let going: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM runs WHERE job_id = ? AND state IN ('dispatched', 'running') \
             ORDER BY id",
        )
        .bind(job_id)
        .fetch_all(&mut *tx)
        .await?;
        let now = crate::model::now_millis();
        let insert = match self.backend {
            Backend::MySql => "INSERT IGNORE",
            Backend::Sqlite => "INSERT OR IGNORE",
        };
        let token = fire_token();
        let (state, error, ended) = if going.is_empty() {
            (RunState::Dispatched, None, None)
        } else {
            let ids: Vec<String> = going.iter().map(i64::to_string).collect();
            (
                RunState::Skipped,
                Some(format!(
                    "skipped: run {} still going (overlap = forbid)",
                    ids.join(", ")
                )),
                Some(now),
            )
        };
        let sql = format!(
            "{insert} INTO runs (job_id, instant, target, trigger_kind, state, error, created_at, \
             dispatched_at, ended_at, fired_by, stdout, stderr) VALUES (?, ?, '', ?, ?, ?, ?, ?, ?, ?, '', '')"
        );
        let done = sqlx::query(&sql)
            .bind(job_id)
            .bind(instant)
            .bind(trigger.as_str())
            .bind(state.as_str())
            .bind(error.as_deref())
            .bind(now)
            .bind(now)
            .bind(ended)
            .bind(token.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            tx.commit().await?;
            return Ok(Forbid::AlreadyFired);
        }
        let id: i64 = sqlx::query_scalar(
            "SELECT id FROM runs WHERE job_id = ? AND instant = ? AND target = '' AND fired_by = ?",
        )
        .bind(job_id)
        .bind(instant)
        .bind(token.as_str())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(if going.is_empty() {
            Forbid::New(id)
        } else {
            Forbid::Skipped
        })
    }

    /// Runs waiting for a dispatcher: manual runs, and retries whose delay has passed.
    pub async fn pending_runs(&self, now: Millis) -> Result<Vec<PendingRun>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, job_id, instant, attempt, retry_of, flow_run, upstream_runs, params, \
             shard_index, shard_total FROM runs \
             WHERE state = 'scheduled' AND (not_before IS NULL OR not_before <= ?) ORDER BY id \
             LIMIT 500",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PendingRun {
                    run_id: r.try_get(0)?,
                    job_id: r.try_get(1)?,
                    instant: r.try_get(2)?,
                    attempt: r.try_get(3)?,
                    retry_of: r.try_get(4)?,
                    flow_run: r.try_get(5)?,
                    upstream_runs: rows::text_at(r, 6)?,
                    params: rows::text_at(r, 7)?,
                    shard: match (
                        r.try_get::<Option<i64>, _>(8)?,
                        r.try_get::<Option<i64>, _>(9)?,
                    ) {
                        (Some(i), Some(t)) => Some((i, t)),
                        _ => None,
                    },
                })
            })
            .collect()
    }

    /// Runs of a job still going: (run id, executor).
    pub async fn active_runs(&self, job_id: i64) -> Result<Vec<(i64, Option<String>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, executor FROM runs WHERE job_id = ? AND state IN ('dispatched', 'running') \
             ORDER BY id",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<Option<String>, _>(1)?)))
            .collect()
    }

    /// Records an instant that was not run (overlap `forbid`), final at once, with the reason.
    /// Under the same fence as a fire.
    pub async fn record_skipped(
        &self,
        job_id: i64,
        instant: Millis,
        reason: &str,
    ) -> Result<Recorded, StoreError> {
        self.record_final(job_id, instant, RunState::Skipped, reason, false)
            .await
    }

    /// An instant recorded under the fence and ended at once in `state` with `reason`, in one
    /// statement: there is no moment when it exists but is not final (a failure between two
    /// writes would leave a `dispatched` row that is later lost and retried).
    async fn record_final(
        &self,
        job_id: i64,
        instant: Millis,
        state: RunState,
        reason: &str,
        alarm_checked: bool,
    ) -> Result<Recorded, StoreError> {
        let now = crate::model::now_millis();
        let insert = match self.backend {
            Backend::MySql => "INSERT IGNORE",
            Backend::Sqlite => "INSERT OR IGNORE",
        };
        let sql = format!(
            "{insert} INTO runs (job_id, instant, target, trigger_kind, state, error, stdout, \
             stderr, created_at, dispatched_at, ended_at, fired_by, alarm_checked) \
             VALUES (?, ?, '', ?, ?, ?, '', '', ?, ?, ?, ?, ?)"
        );
        let done = sqlx::query(&sql)
            .bind(job_id)
            .bind(instant)
            .bind(Trigger::Schedule.as_str())
            .bind(state.as_str())
            .bind(reason)
            .bind(now)
            .bind(now)
            .bind(now)
            .bind(fire_token())
            .bind(i64::from(alarm_checked))
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(Recorded::AlreadyFired);
        }
        let id = match done.last_insert_id() {
            Some(id) => id,
            None => {
                sqlx::query("SELECT id FROM runs WHERE job_id = ? AND instant = ? AND target = ''")
                    .bind(job_id)
                    .bind(instant)
                    .fetch_one(&self.pool)
                    .await?
                    .try_get::<i64, _>(0)?
            }
        };
        Ok(Recorded::New(id))
    }

    /// Records an instant that should have run and did not — missed while no dispatcher ran
    /// (one run at the latest of them), or no live executor in its target — as a `missed`
    /// run with the reason, under the fence: recorded once whoever notices, never silently
    /// dropped, and alarmed by the monitor (`missed` is in the default `alarm_on`).
    pub async fn record_missed(
        &self,
        job_id: i64,
        instant: Millis,
        reason: &str,
    ) -> Result<Recorded, StoreError> {
        self.record_final(job_id, instant, RunState::Missed, reason, false)
            .await
    }

    /// As [`Store::record_missed`], for instants missed while the system was stopped on
    /// purpose: recorded the same, but not alarmed one by one (the stop's one summary alarm
    /// covers them).
    pub async fn record_missed_in_stop(
        &self,
        job_id: i64,
        instant: Millis,
        reason: &str,
    ) -> Result<Recorded, StoreError> {
        self.record_final(job_id, instant, RunState::Missed, reason, true)
            .await
    }

    /// The latest scheduled instant recorded per job (for misfire handling after downtime).
    pub async fn last_instants(
        &self,
    ) -> Result<std::collections::HashMap<i64, Millis>, StoreError> {
        let rows = sqlx::query(
            "SELECT job_id, MAX(instant) FROM runs WHERE trigger_kind IN ('schedule', 'misfire') \
             GROUP BY job_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<i64, _>(1)?)))
            .collect()
    }

    /// Claims `scheduled` runs for dispatch, in id order, in two statements: the ones another
    /// dispatcher claimed first are left out. The claim stamps the runs with a token of this
    /// call (`fired_by`), which tells them apart.
    pub async fn claim_pending(&self, run_ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        let mut sorted = run_ids.to_vec();
        sorted.sort_unstable();
        let token = fire_token();
        let mut mine = Vec::with_capacity(sorted.len());
        for ids in sorted.chunks(500) {
            let marks = super::placeholders(ids.len());
            let sql = format!(
                "UPDATE runs SET state = 'dispatched', dispatched_at = ?, fired_by = ? \
                 WHERE id IN ({marks}) AND state = 'scheduled'"
            );
            let mut q = sqlx::query(&sql)
                .bind(crate::model::now_millis())
                .bind(token.as_str());
            for id in ids {
                q = q.bind(*id);
            }
            q.execute(&self.pool).await?;
            let sql = format!("SELECT id FROM runs WHERE id IN ({marks}) AND fired_by = ?");
            let mut q = sqlx::query(&sql);
            for id in ids {
                q = q.bind(*id);
            }
            for r in q.bind(token.as_str()).fetch_all(&self.pool).await? {
                mine.push(r.try_get::<i64, _>(0)?);
            }
        }
        Ok(mine)
    }
}

/// One run of a fire: (job, instant, target, shard). The target is the executor of a
/// `fanout = all` run ("" otherwise), and the shard its (index, total) among that instant's.
pub type FireKey = (i64, Millis, String, Option<(i64, i64)>);

/// The result of recording a fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// This caller created the run: it must deliver it.
    New(i64),
    /// The (job, instant, target) run exists already: someone else fired it.
    AlreadyFired,
}

/// The result of firing an instant of a `forbid` job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbid {
    /// Recorded `dispatched`: deliver it.
    New(i64),
    /// Recorded `skipped`: a run of the job is going.
    Skipped,
    /// Someone else recorded the instant.
    AlreadyFired,
}

/// A recorded run waiting for a dispatcher to claim it.
#[derive(Debug, Clone)]
pub struct PendingRun {
    pub run_id: i64,
    pub job_id: i64,
    pub instant: Millis,
    pub attempt: i64,
    pub retry_of: Option<i64>,
    /// In a flow: its first run, and the runs that released this one.
    pub flow_run: Option<i64>,
    pub upstream_runs: Option<String>,
    /// A manual run's parameter values (JSON), as it runs with them.
    pub params: Option<String>,
    /// A retry of a `fanout = all` run: the shard it runs as.
    pub shard: Option<(i64, i64)>,
}

/// A token unique to one `record_fires` call across every dispatcher of a cluster: host (the
/// configured one, [`crate::instance::identity`]),
/// process, start time and a counter.
pub(super) fn fire_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX
        .get_or_init(|| crate::instance::Instance::this(&crate::instance::identity()).to_string());
    format!("{prefix}/{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

impl Store {
    /// Which of these (job, instant) pairs have a run recorded (any state, any target).
    pub async fn recorded_among(&self, keys: &[(i64, Millis)]) -> Result<Vec<bool>, StoreError> {
        let mut found = std::collections::HashSet::new();
        for chunk in keys.chunks(200) {
            let clauses = vec!["(job_id = ? AND instant = ?)"; chunk.len()].join(" OR ");
            let sql = format!("SELECT job_id, instant FROM runs WHERE {clauses}");
            let mut q = sqlx::query(&sql);
            for (job, instant) in chunk {
                q = q.bind(*job).bind(*instant);
            }
            for row in q.fetch_all(&self.pool).await? {
                found.insert((row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?));
            }
        }
        Ok(keys.iter().map(|k| found.contains(k)).collect())
    }
}
