//! The store: jobs, their change log and runs, on SQLite (standalone) or MySQL/MariaDB
//! (cluster), through one code path on sqlx's `Any` driver. Every statement binds its values.
//!
//! One room per concern, each a short `impl Store`: `jobs`, `jobs_query` (listing for
//! people), `changes` (the log dispatchers
//! follow), `firing` (the fence), `lifecycle` (running to final), `runs_query` (listing),
//! `presence` (heartbeats), `fleet` (shared facts), `lost` (runs whose executor went away), `live` (output and kills of runs going, the fleet as
//! people read it),
//! `alarms`, `retention`, and who may do what: `users` (and failed logins), `sessions`,
//! `api_tokens`, `audit`; `rows` decodes, `migrations` embeds the schema.

mod alarms;
mod api_tokens;
mod audit;
mod backfills;
mod calendars;
mod changes;
mod claims;
mod cursors;
mod edges;
mod firing;
mod fleet;
mod flow_alarms;
mod flows;
mod flows_query;
mod gaps;
mod gocron;
mod job_stats;
mod jobs;
mod jobs_query;
mod lifecycle;
mod live;
mod lost;
mod manual;
mod migrations;
mod planned;
mod presence;
mod retention;
mod rows;
mod runs_query;
mod sessions;
mod sla;
mod users;
mod usual;
mod windows;

pub use alarms::{NewAlarm, Raised, RunEvent};
pub use audit::{AuditFilter, NewAudit};
pub use backfills::{Advanced, NewBackfill};
pub use calendars::{CalendarDeleted, CalendarUser};
pub use claims::{Claim, Stored};
pub use cursors::Cursor;
pub use firing::{FireKey, Forbid, PendingRun, Recorded};
pub use flows::Released;
pub use flows_query::{FlowFilter, Rerun};
pub use gaps::{Covers, Mark, Scheduled};
pub use gocron::GocronJob;
pub use job_stats::{JobStats, DURATION_BUCKETS, SLA_KINDS};
pub use jobs::Deleted;
pub use jobs_query::JobFilter;
pub use lifecycle::{Finished, Retry, RunOutcome, Started};
pub use live::{ExecutorCard, KillAsk, Member};
pub use lost::GivenUp;
pub use manual::{ManualRun, Retried};
pub use planned::Planned;
pub use presence::{AlarmsFor, Beating};
pub use runs_query::RunFilter;
pub use users::UserChange;

pub(crate) use changes::log_change;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use migrations::Embedded;

use crate::model::FieldError;

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
    /// A call bounded by its caller (a claim, a heartbeat) that the store did not answer in
    /// time: its packets dropped, or it hangs.
    #[error("the store did not answer within {} ms", .0.as_millis())]
    NoAnswer(std::time::Duration),
}

impl StoreError {
    /// The store cannot be reached (no connection, none in time, no answer): the next call
    /// would wait as long, so a pass of checks stops there.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            StoreError::NoAnswer(_)
                | StoreError::Db(
                    sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::Io(_)
                        | sqlx::Error::Tls(_)
                        | sqlx::Error::WorkerCrashed
                )
        )
    }

    /// The store answered and refused this write (a constraint, a value it cannot hold): doing
    /// it again changes nothing. Not an outage, a deadlock or a busy database, which pass.
    pub fn is_refusal(&self) -> bool {
        matches!(self, StoreError::Db(sqlx::Error::Database(_))) && !self.is_transient()
    }

    /// A deadlock, a lock wait timeout or a busy database: the same statement may well pass
    /// a moment later. MySQL/MariaDB: 1213 deadlock, 1205 lock wait timeout, 1020 record
    /// changed since read, 1412 table definition changed, 1180/1181 commit/rollback failed.
    /// SQLite: the BUSY and LOCKED families.
    pub fn is_transient(&self) -> bool {
        let StoreError::Db(sqlx::Error::Database(d)) = self else {
            return false;
        };
        let code = d.code().map(|c| c.to_string()).unwrap_or_default();
        matches!(
            code.as_str(),
            "1213" | "1205" | "1020" | "1412" | "1180" | "1181"
        ) || code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
    }
}

/// `?, ?, ?` — the bound parameters of an `IN (...)` list of `n` values (every value bound,
/// never written into the SQL).
pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Runs `op` again, a few times with a short growing pause, while it fails with a transient
/// error (a deadlock between two writers is normal running for InnoDB, not a fault): the
/// caller sees an error only when it lasts or is of another kind.
pub(crate) async fn retry_transient<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut pause = std::time::Duration::from_millis(5);
    for _ in 0..4 {
        match op().await {
            Err(e) if e.is_transient() => {
                tracing::debug!(error = %e, "transient store error; trying again");
                tokio::time::sleep(pause).await;
                pause *= 3;
            }
            done => return done,
        }
    }
    op().await
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

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

pub(crate) const RUN_COLUMNS: &str =
    "r.id, r.job_id, j.name AS job_name, j.job_group, r.instant, r.trigger_kind, r.attempt, r.retry_of, \
     r.state, r.executor, r.pid, r.exit_code, r.error, r.created_at, r.dispatched_at, \
                           r.started_at, r.ended_at, r.stdout_cut, r.stderr_cut, r.flow_root, r.flow_run, \
                           r.flow_round, r.upstream_runs, r.rerun_of, r.params_shown, r.backfill_id, \
                           r.shard_index, r.shard_total";

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

    // ---- runs ----
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod flows_tests;
