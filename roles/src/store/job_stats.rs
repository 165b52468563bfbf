//! Each job's runs counted for Prometheus (`job_stats`): by final state, its last success and
//! last end, and a histogram of durations. A run is counted in the transaction that claims it
//! for the alarm check, so it counts once however many monitors scan, and the counts outlive
//! the runs' retention (a Prometheus counter must never go down). `/metrics` reads one row
//! per job.

use sqlx::Row;

use super::{Backend, Store, StoreError};
use crate::model::{Millis, RunState};

/// The upper bounds (seconds) of the duration buckets, as the columns `d0` … `d9` hold them;
/// `d_inf` holds the longer runs.
pub const DURATION_BUCKETS: [f64; 10] = [
    0.1, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
];

/// A final run, as counted.
#[derive(Debug, Clone, Copy)]
pub struct Counted {
    pub run_id: i64,
    pub job_id: i64,
    pub state: RunState,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
}

/// One job's counts with what labels and plans it.
#[derive(Debug, Clone)]
pub struct JobStats {
    pub name: String,
    pub group: String,
    /// Its rule with its calendars (`schedule::days::keyed`).
    pub schedule: String,
    pub timezone: String,
    pub paused: bool,
    /// (state, count) for each final state.
    pub by_state: Vec<(RunState, i64)>,
    pub last_success_at: Option<Millis>,
    pub last_end_at: Option<Millis>,
    /// Per bucket of [`DURATION_BUCKETS`], then the longer runs: not cumulative.
    pub durations: [i64; 11],
    pub duration_ms_sum: i64,
    /// SLA breaches by kind, as [`SLA_KINDS`] lists them.
    pub sla: [i64; 4],
}

/// The kinds of SLA breach counted per job, in the order of [`JobStats::sla`].
pub const SLA_KINDS: [&str; 4] = ["late", "overdue", "slow", "short"];

const COUNTED: [RunState; 7] = [
    RunState::Succeeded,
    RunState::Failed,
    RunState::TimedOut,
    RunState::Killed,
    RunState::Lost,
    RunState::Skipped,
    RunState::Missed,
];

/// The column of a final state (a fixed name, never input).
fn state_column(state: RunState) -> Option<&'static str> {
    COUNTED.contains(&state).then(|| state.as_str())
}

fn bucket_column(duration_ms: i64) -> &'static str {
    const COLUMNS: [&str; 10] = ["d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9"];
    DURATION_BUCKETS
        .iter()
        .position(|b| duration_ms as f64 <= b * 1000.0)
        .map_or("d_inf", |i| COLUMNS[i])
}

/// A "new value when it is later" update that both SQLite and MySQL read the same way.
fn later(column: &str) -> String {
    format!("{column} = CASE WHEN {column} IS NULL OR {column} < ? THEN ? ELSE {column} END")
}

/// Counts `run`, on the connection of the transaction that claims it.
pub(super) async fn count(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    run: &Counted,
) -> Result<(), StoreError> {
    let Some(state) = state_column(run.state) else {
        return Ok(());
    };
    let insert = match backend {
        Backend::MySql => "INSERT IGNORE INTO job_stats (job_id) VALUES (?)",
        Backend::Sqlite => "INSERT OR IGNORE INTO job_stats (job_id) VALUES (?)",
    };
    sqlx::query(insert)
        .bind(run.job_id)
        .execute(&mut *conn)
        .await?;
    let mut sets = vec![format!("{state} = {state} + 1")];
    let mut binds: Vec<i64> = Vec::new();
    if let Some(end) = run.ended_at {
        sets.push(later("last_end_at"));
        binds.extend([end, end]);
        if run.state == RunState::Succeeded {
            sets.push(later("last_success_at"));
            binds.extend([end, end]);
        }
        if let Some(start) = run.started_at.filter(|s| *s <= end) {
            let ms = end - start;
            let bucket = bucket_column(ms);
            sets.push(format!("{bucket} = {bucket} + 1"));
            sets.push("duration_ms_sum = duration_ms_sum + ?".into());
            binds.push(ms);
        }
    }
    let sql = format!("UPDATE job_stats SET {} WHERE job_id = ?", sets.join(", "));
    let mut q = sqlx::query(&sql);
    for b in binds {
        q = q.bind(b);
    }
    q.bind(run.job_id).execute(&mut *conn).await?;
    Ok(())
}

impl Store {
    /// Every job's counts, with the job's labels and rule (jobs never run yet have zeros).
    pub async fn job_stats(&self) -> Result<Vec<JobStats>, StoreError> {
        let rows = sqlx::query(
            "SELECT j.name, j.job_group, j.schedule, j.timezone, j.paused, \
             s.succeeded, s.failed, s.timed_out, s.killed, s.lost, s.skipped, s.missed, \
             s.last_success_at, s.last_end_at, s.d0, s.d1, s.d2, s.d3, s.d4, s.d5, s.d6, s.d7, \
             s.d8, s.d9, s.d_inf, s.duration_ms_sum, j.calendars, j.calendar_mode, \
             s.sla_late, s.sla_overdue, s.sla_slow, s.sla_short \
             FROM jobs j LEFT JOIN job_stats s ON s.job_id = j.id ORDER BY j.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let n = |i: usize| -> Result<i64, sqlx::Error> {
                    Ok(r.try_get::<Option<i64>, _>(i)?.unwrap_or(0))
                };
                let mut by_state = Vec::with_capacity(COUNTED.len());
                for (i, state) in COUNTED.iter().enumerate() {
                    by_state.push((*state, n(5 + i)?));
                }
                let mut durations = [0i64; 11];
                for (i, d) in durations.iter_mut().enumerate() {
                    *d = n(14 + i)?;
                }
                Ok(JobStats {
                    name: r.try_get(0)?,
                    group: r.try_get(1)?,
                    schedule: crate::schedule::days::keyed(
                        &r.try_get::<String, _>(2)?,
                        super::rows::day_filter(r, 26, 27)?.as_ref(),
                    ),
                    timezone: r.try_get(3)?,
                    paused: r.try_get::<i64, _>(4)? != 0,
                    by_state,
                    last_success_at: r.try_get(12)?,
                    last_end_at: r.try_get(13)?,
                    durations,
                    duration_ms_sum: n(25)?,
                    sla: [n(28)?, n(29)?, n(30)?, n(31)?],
                })
            })
            .collect()
    }

    /// Drops the counts (and short successes waiting for their alarm, and gap-check cursors)
    /// of jobs that are gone (with the pruning pass).
    pub async fn prune_job_stats(&self) -> Result<u64, StoreError> {
        self.prune_short_runs().await?;
        self.prune_cursors().await?;
        Ok(sqlx::query(
            "DELETE FROM job_stats WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = job_stats.job_id)",
        )
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}
