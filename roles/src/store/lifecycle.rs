//! The life of a run after it is fired: running, then one final state with its output, and
//! the retry a failure earns, in the same transaction.

use super::{is_unique_violation, rows, Store, StoreError, RUN_COLUMNS};
use crate::model::{Millis, Run, RunState};

impl Store {
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
    /// A final state is never overwritten, but for `lost` by the run's own executor when the
    /// run ended by itself (the executor was paused or cut off, not gone): the truth replaces
    /// the presumption, noted in the error.
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
        // In id order, as every writer of several runs locks them (the delivered marks too):
        // two transactions that lock rows in the same order cannot deadlock.
        let mut ordered: Vec<&Finished> = results.iter().collect();
        ordered.sort_unstable_by_key(|f| f.run_id);
        let mut tx = self.pool.begin().await?;
        for f in ordered {
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
    pub(super) async fn end_run(
        &self,
        run_id: i64,
        state: RunState,
        reason: &str,
    ) -> Result<(), StoreError> {
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
}

/// Who ran a run and when its process started, recorded with the outcome (a short run is
/// never written as `running` separately).
#[derive(Debug, Clone)]
pub struct Started {
    pub executor: String,
    pub pid: Option<i64>,
    pub started_at: Millis,
    /// The parameters it ran with, secret ones masked (a scheduled run's defaults: a manual
    /// run's were recorded when it was asked for).
    pub params_shown: Option<String>,
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

pub(super) fn finish_query<'q>(
    run_id: i64,
    outcome: &'q RunOutcome,
    started: Option<&'q Started>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    // `error` first: MySQL evaluates assignments in order, each seeing the ones before, and
    // this one reads the state the run had.
    sqlx::query(
        "UPDATE runs SET error = CASE WHEN state = 'lost' THEN \
         COALESCE(?, 'its result arrived after it was presumed lost') ELSE ? END, \
         state = ?, exit_code = ?, stdout = ?, stderr = ?, \
         stdout_cut = ?, stderr_cut = ?, ended_at = ?, executor = COALESCE(?, executor), \
         pid = COALESCE(?, pid), started_at = COALESCE(?, started_at), \
         params_shown = COALESCE(params_shown, ?) \
         WHERE id = ? AND (state IN ('scheduled', 'dispatched', 'running') \
         OR (state = 'lost' AND executor = ? AND ? IN ('succeeded', 'failed', 'timed_out')))",
    )
    .bind(outcome.error.as_deref())
    .bind(outcome.error.as_deref())
    .bind(outcome.state.as_str())
    .bind(outcome.exit_code)
    .bind(outcome.stdout.as_str())
    .bind(outcome.stderr.as_str())
    .bind(outcome.stdout_cut)
    .bind(outcome.stderr_cut)
    .bind(outcome.ended_at)
    .bind(started.map(|s| s.executor.as_str()))
    .bind(started.and_then(|s| s.pid))
    .bind(started.map(|s| s.started_at))
    .bind(started.and_then(|s| s.params_shown.as_deref()))
    .bind(run_id)
    .bind(started.map(|s| s.executor.as_str()))
    .bind(outcome.state.as_str())
}

/// Inserts the next attempt of a run, under the fence (a retry recorded twice is kept once).
pub(super) async fn insert_retry(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    retry: &Retry,
    created_at: Millis,
) -> Result<(), StoreError> {
    // A retry stays in its run's flow, backfill and shard: those columns (and the target, so
    // that two shards' retries of one instant are two runs) are copied from the chain's
    // first run.
    let inserted = sqlx::query(
        "INSERT INTO runs (job_id, instant, target, trigger_kind, state, created_at, attempt, \
         retry_of, not_before, flow_root, flow_round, flow_run, upstream_runs, rerun_of, \
         params, params_shown, backfill_id, shard_index, shard_total) \
         SELECT ?, ?, target, 'retry', 'scheduled', ?, ?, ?, ?, flow_root, flow_round, flow_run, \
         upstream_runs, rerun_of, params, params_shown, backfill_id, shard_index, shard_total \
         FROM runs WHERE id = ?",
    )
    .bind(retry.job_id)
    .bind(retry.instant)
    .bind(created_at)
    .bind(retry.attempt)
    .bind(retry.retry_of)
    .bind(retry.not_before)
    .bind(retry.retry_of)
    .execute(&mut **tx)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
