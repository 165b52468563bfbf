//! The store: jobs, their change log and runs, on SQLite (standalone) or MySQL/MariaDB
//! (cluster), through one code path on sqlx's `Any` driver. Every statement binds its values.

mod alarms;
mod jobs;
mod migrations;
mod rows;
mod runs_query;

pub use alarms::{NewAlarm, Raised, RunEvent};
pub use jobs::Deleted;

pub use runs_query::RunFilter;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor, Row};

pub use migrations::Embedded;

use crate::model::{FieldError, Millis, Run, RunState, Trigger};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unreachable or failing: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported store URL `{0}`: expected sqlite: or mysql:")]
    Url(String),
    #[error("{0}")]
    Conflict(FieldError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
}

/// A handle on the store; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// Why the store no longer expects a run's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GivenUp {
    /// The monitor recorded it `lost`.
    Lost,
    /// Its job was deleted while it ran (`job delete --force`).
    Deleted,
}

/// The result of recording a fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// This caller created the run: it must deliver it.
    New(i64),
    /// The (job, instant, target) run exists already: someone else fired it.
    AlreadyFired,
}

/// Who ran a run and when its process started, recorded with the outcome (a short run is
/// never written as `running` separately).
#[derive(Debug, Clone)]
pub struct Started {
    pub executor: String,
    pub pid: Option<i64>,
    pub started_at: Millis,
}

/// A recorded run waiting for a dispatcher to claim it.
#[derive(Debug, Clone)]
pub struct PendingRun {
    pub run_id: i64,
    pub job_id: i64,
    pub instant: Millis,
    pub attempt: i64,
    pub retry_of: Option<i64>,
}

/// The next attempt a failed run earns.
#[derive(Debug, Clone)]
pub struct Retry {
    pub job_id: i64,
    pub instant: Millis,
    pub attempt: i64,
    pub retry_of: i64,
    pub not_before: Millis,
}

/// One result for [`Store::finish_runs`].
#[derive(Debug, Clone)]
pub struct Finished {
    pub run_id: i64,
    pub outcome: RunOutcome,
    pub started: Option<Started>,
    /// Set when the job allows another attempt; inserted only if the run failed or timed out.
    pub retry: Option<Retry>,
}

/// What the executor records when a run ends.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub state: RunState,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_cut: i64,
    pub stderr_cut: i64,
    pub ended_at: Millis,
}

impl RunOutcome {
    /// A run that ended without a process result (could not start, no executor).
    pub fn failed(error: String) -> RunOutcome {
        RunOutcome {
            state: RunState::Failed,
            exit_code: None,
            error: Some(error),
            stdout: String::new(),
            stderr: String::new(),
            stdout_cut: 0,
            stderr_cut: 0,
            ended_at: crate::model::now_millis(),
        }
    }
}

/// A token unique to one `record_fires` call across every dispatcher of a cluster: host,
/// process, start time and a counter.
fn fire_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        format!(
            "{host}/{}/{}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        )
    });
    format!("{prefix}/{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

pub(crate) const JOB_COLUMNS: &str = "id, name, schedule, timezone, command, http_url, http_method, \
                           http_headers, http_body, http_expect_status, timeout_secs, run_at, \
                           fanout, paused, overlap, retries, retry_backoff_secs, misfire, \
                           misfire_window_secs, alarm_on, alarm_channels, admin_email, admin_mobile, \
                           created_at, updated_at";
pub(crate) const RUN_COLUMNS: &str =
    "r.id, r.job_id, j.name AS job_name, r.instant, r.trigger_kind, r.attempt, r.retry_of, \
     r.state, r.executor, r.pid, r.exit_code, r.error, r.created_at, r.dispatched_at, \
                           r.started_at, r.ended_at, r.stdout_cut, r.stderr_cut";

impl Store {
    /// Connects without touching the schema. A SQLite store is put in WAL mode with a busy
    /// timeout, since the three roles write to it from three processes.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("mysql:") {
            Backend::MySql
        } else {
            return Err(StoreError::Url(url.to_string()));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Store { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the embedded migrations of this backend.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let source = match self.backend {
            Backend::Sqlite => Embedded::sqlite(),
            Backend::MySql => Embedded::mysql(),
        };
        sqlx::migrate::Migrator::new(source)
            .await?
            .run(&self.pool)
            .await?;
        Ok(())
    }

    /// A trivial query: is the store reachable now?
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The newest change sequence number (0 when there is none).
    pub async fn last_change(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM job_changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    /// The oldest change still in the log (None when the log is empty).
    pub async fn first_change(&self) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT MIN(seq) FROM job_changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?)
    }

    /// The changes logged after `seq`, as (seq, job id), in order.
    pub async fn changes_after(&self, seq: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = sqlx::query("SELECT seq, job_id FROM job_changes WHERE seq > ? ORDER BY seq")
            .bind(seq)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<i64, _>(1)?)))
            .collect()
    }

    // ---- runs ----

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
            .record_fires(&[(job_id, instant, target.to_string())], trigger, state)
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
        fires: &[(i64, Millis, String)],
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
        let mut sorted: Vec<&(i64, Millis, String)> = fires.iter().collect();
        sorted.sort_unstable();
        let mut tx = self.pool.begin().await?;
        for chunk in sorted.chunks(CHUNK) {
            let sql = format!(
                "{insert} INTO runs (job_id, instant, target, trigger_kind, state, created_at, \
                 dispatched_at, fired_by) VALUES {}",
                vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
            );
            let mut q = sqlx::query(&sql);
            for (job_id, instant, target) in chunk {
                q = q
                    .bind(*job_id)
                    .bind(*instant)
                    .bind(target.as_str())
                    .bind(trigger.as_str())
                    .bind(state.as_str())
                    .bind(now)
                    .bind(dispatched_at)
                    .bind(token.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        // Which rows are ours: by instant, then job ids (the unique key's prefix).
        let mut by_instant: std::collections::BTreeMap<Millis, Vec<i64>> = Default::default();
        for (job_id, instant, _) in fires {
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
                    vec!["?"; ids.len()].join(", ")
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
            .map(|k| match mine.get(k) {
                Some(id) => Recorded::New(*id),
                None => Recorded::AlreadyFired,
            })
            .collect())
    }

    /// Records a manual run request (`job run`): a `scheduled` run that a dispatcher claims.
    pub async fn request_run(&self, job_id: i64) -> Result<i64, StoreError> {
        // Two requests in the same millisecond are two runs: move to the next free instant.
        let mut instant = crate::model::now_millis();
        for _ in 0..1000 {
            match self
                .record_fire(job_id, instant, "", Trigger::Manual, RunState::Scheduled)
                .await?
            {
                Recorded::New(id) => return Ok(id),
                Recorded::AlreadyFired => instant += 1,
            }
        }
        Err(StoreError::Corrupt(format!(
            "could not find a free instant for a manual run of job {job_id}"
        )))
    }

    /// Runs waiting for a dispatcher: manual runs, and retries whose delay has passed.
    pub async fn pending_runs(&self, now: Millis) -> Result<Vec<PendingRun>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, job_id, instant, attempt, retry_of FROM runs WHERE state = 'scheduled' \
             AND (not_before IS NULL OR not_before <= ?) ORDER BY id LIMIT 100",
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
        self.record_final(job_id, instant, RunState::Skipped, reason)
            .await
    }

    /// An instant recorded under the fence and ended at once in `state` with `reason`.
    async fn record_final(
        &self,
        job_id: i64,
        instant: Millis,
        state: RunState,
        reason: &str,
    ) -> Result<Recorded, StoreError> {
        let recorded = self
            .record_fire(job_id, instant, "", Trigger::Schedule, RunState::Dispatched)
            .await?;
        if let Recorded::New(id) = recorded {
            self.end_run(id, state, reason).await?;
        }
        Ok(recorded)
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
        self.record_final(job_id, instant, RunState::Missed, reason)
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

    /// Claims a `scheduled` run for dispatch; false when another dispatcher claimed it first.
    pub async fn claim_run(&self, run_id: i64) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE runs SET state = 'dispatched', dispatched_at = ? WHERE id = ? AND state = 'scheduled'",
        )
        .bind(crate::model::now_millis())
        .bind(run_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// The executor has spawned the run's process.
    pub async fn mark_running(
        &self,
        run_id: i64,
        executor: &str,
        pid: Option<i64>,
        started_at: Millis,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE runs SET state = 'running', executor = ?, pid = ?, started_at = ? \
             WHERE id = ? AND state IN ('scheduled', 'dispatched')",
        )
        .bind(executor)
        .bind(pid)
        .bind(started_at)
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a run's final state and output (and, when given, who started it and when).
    /// A final state is never overwritten.
    pub async fn finish_run(
        &self,
        run_id: i64,
        outcome: &RunOutcome,
        started: Option<&Started>,
    ) -> Result<(), StoreError> {
        finish_query(run_id, outcome, started)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// [`Store::finish_run`] for many runs, in one transaction, with the retry each failure
    /// earns inserted in the same transaction (so a result is never recorded without its retry).
    pub async fn finish_runs(&self, results: &[Finished]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for f in results {
            finish_query(f.run_id, &f.outcome, f.started.as_ref())
                .execute(&mut *tx)
                .await?;
            let Some(retry) = &f.retry else { continue };
            if !matches!(f.outcome.state, RunState::Failed | RunState::TimedOut) {
                continue;
            }
            insert_retry(&mut tx, retry, f.outcome.ended_at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A run that never reached a process (no executor, job gone): final with a reason.
    pub async fn fail_run(&self, run_id: i64, error: &str) -> Result<(), StoreError> {
        self.end_run(run_id, RunState::Failed, error).await
    }

    /// A recorded run that will not run because nothing could take it: `missed`, with why.
    pub async fn miss_run(&self, run_id: i64, reason: &str) -> Result<(), StoreError> {
        self.end_run(run_id, RunState::Missed, reason).await
    }

    /// Ends a run that never produced a process result in `state`, with `reason`.
    async fn end_run(&self, run_id: i64, state: RunState, reason: &str) -> Result<(), StoreError> {
        let mut outcome = RunOutcome::failed(reason.to_string());
        outcome.state = state;
        self.finish_run(run_id, &outcome, None).await
    }

    /// One run with its output.
    pub async fn run(&self, id: i64) -> Result<Option<Run>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS}, r.stdout, r.stderr FROM runs r JOIN jobs j ON j.id = r.job_id \
             WHERE r.id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| rows::run(&r, true)).transpose()
    }

    /// An executor's heartbeat: creates or refreshes its row.
    pub async fn heartbeat(&self, instance: &str, started_at: Millis) -> Result<(), StoreError> {
        self.beat_in("executors", instance, started_at).await
    }

    /// A heartbeat in `table` (`executors` or `dispatchers`: a constant, never input).
    async fn beat_in(
        &self,
        table: &'static str,
        instance: &str,
        started_at: Millis,
    ) -> Result<(), StoreError> {
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
            match inserted {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Executors that stopped heartbeating without leaving cleanly (crashed, killed, host
    /// gone). Each is removed by exactly one caller, which gets it back to alarm about it.
    pub async fn expire_executors(&self, stale_before: Millis) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT instance FROM executors WHERE last_seen < ?")
            .bind(stale_before)
            .fetch_all(&self.pool)
            .await?;
        let stale = rows
            .iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, true)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.remove_stale("executors", stale, stale_before).await
    }

    /// Deletes the `stale` rows of `table` (a constant) still stale; returns the instances
    /// this caller deleted and flagged (several monitors: each row goes to one of them).
    async fn remove_stale(
        &self,
        table: &'static str,
        stale: Vec<(String, bool)>,
        stale_before: Millis,
    ) -> Result<Vec<String>, StoreError> {
        let mut gone = Vec::new();
        for (instance, flagged) in stale {
            let n = sqlx::query(&format!(
                "DELETE FROM {table} WHERE instance = ? AND last_seen < ?"
            ))
            .bind(&instance)
            .bind(stale_before)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if n == 1 && flagged {
                gone.push(instance);
            }
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
        self.beat_in("dispatchers", instance, started_at).await
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

    /// Removes dispatchers silent since `stale_before`; returns those that had not left
    /// cleanly (crashed, killed, host gone), each to exactly one caller.
    pub async fn expire_dispatchers(
        &self,
        stale_before: Millis,
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
        self.remove_stale("dispatchers", stale, stale_before).await
    }

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

    /// Notes the executor instance that accepted dispatched runs (the ones it has not written
    /// anything for yet).
    pub async fn mark_delivered(&self, instance: &str, run_ids: &[i64]) -> Result<(), StoreError> {
        for ids in run_ids.chunks(500) {
            let sql = format!(
                "UPDATE runs SET executor = ? WHERE state = 'dispatched' AND executor IS NULL \
                 AND id IN ({})",
                vec!["?"; ids.len()].join(", ")
            );
            let mut q = sqlx::query(&sql).bind(instance);
            for id in ids {
                q = q.bind(*id);
            }
            q.execute(&self.pool).await?;
        }
        Ok(())
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
             WHERE (r.state IN ('running', 'dispatched') AND r.executor IS NOT NULL \
                    AND (e.instance IS NULL OR e.last_seen < ?)) \
             OR (r.state = 'dispatched' AND r.executor IS NULL AND r.dispatched_at < ?)",
        )
        .bind(stale_before)
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
        for (rows, error) in [
            (silent, "lost: its executor stopped answering before the run ended"),
            (
                overdue,
                "lost: still running past its timeout and the kill grace (its executor could not end it)",
            ),
        ] {
            for r in &rows {
                let id: i64 = r.try_get(0)?;
                if self.lose(id, error, now).await? {
                    marked.push(id);
                }
            }
        }
        Ok(marked)
    }

    /// Marks one run `lost` with `error` unless it ended meanwhile, with the retry the job
    /// allows, in one transaction. True when this caller marked it.
    async fn lose(&self, id: i64, error: &str, now: Millis) -> Result<bool, StoreError> {
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
        if n == 1 {
            // A lost run is retried like a failed one when the job allows another attempt.
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
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!("SELECT id, state FROM runs WHERE id IN ({marks})");
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            let mut found = std::collections::HashMap::new();
            for row in query.fetch_all(&self.pool).await? {
                found.insert(row.try_get::<i64, _>(0)?, row.try_get::<String, _>(1)?);
            }
            for id in chunk {
                match found.get(id).map(String::as_str) {
                    None => out.push((*id, GivenUp::Deleted)),
                    Some("lost") => out.push((*id, GivenUp::Lost)),
                    Some(_) => {}
                }
            }
        }
        Ok(out)
    }

    /// Deletes finished runs that ended before `before`, and job changes older than it.
    pub async fn prune(&self, before: Millis) -> Result<u64, StoreError> {
        let runs = sqlx::query(
            "DELETE FROM runs WHERE ended_at IS NOT NULL AND ended_at < ? \
             AND state NOT IN ('scheduled', 'dispatched', 'running')",
        )
        .bind(before)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(runs)
    }

    /// Drops change-log rows older than `before`, always keeping the newest one so the sequence
    /// never goes back.
    pub async fn prune_changes(&self, before: Millis) -> Result<(), StoreError> {
        let last = self.last_change().await?;
        sqlx::query("DELETE FROM job_changes WHERE at < ? AND seq < ?")
            .bind(before)
            .bind(last)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn finish_query<'q>(
    run_id: i64,
    outcome: &'q RunOutcome,
    started: Option<&'q Started>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query(
        "UPDATE runs SET state = ?, exit_code = ?, error = ?, stdout = ?, stderr = ?, \
         stdout_cut = ?, stderr_cut = ?, ended_at = ?, executor = COALESCE(?, executor), \
         pid = COALESCE(?, pid), started_at = COALESCE(?, started_at) \
         WHERE id = ? AND state IN ('scheduled', 'dispatched', 'running')",
    )
    .bind(outcome.state.as_str())
    .bind(outcome.exit_code)
    .bind(outcome.error.as_deref())
    .bind(outcome.stdout.as_str())
    .bind(outcome.stderr.as_str())
    .bind(outcome.stdout_cut)
    .bind(outcome.stderr_cut)
    .bind(outcome.ended_at)
    .bind(started.map(|s| s.executor.as_str()))
    .bind(started.and_then(|s| s.pid))
    .bind(started.map(|s| s.started_at))
    .bind(run_id)
}

/// Inserts the next attempt of a run, under the fence (a retry recorded twice is kept once).
async fn insert_retry(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    retry: &Retry,
    created_at: Millis,
) -> Result<(), StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO runs (job_id, instant, target, trigger_kind, state, created_at, attempt, \
         retry_of, not_before) VALUES (?, ?, '', 'retry', 'scheduled', ?, ?, ?, ?)",
    )
    .bind(retry.job_id)
    .bind(retry.instant)
    .bind(created_at)
    .bind(retry.attempt)
    .bind(retry.retry_of)
    .bind(retry.not_before)
    .execute(&mut **tx)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn log_change(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: i64,
    at: Millis,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO job_changes (job_id, at) VALUES (?, ?)")
        .bind(job_id)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
