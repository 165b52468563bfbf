//! Runs asked for by hand (`job run`): now, or as of an instant, alone or with what runs after
//! them, with the parameters they were given — recorded `scheduled` in one statement, for a
//! dispatcher to claim.

use super::firing::fire_token;
use super::{Store, StoreError};
use crate::model::{Millis, Trigger};

/// How a manual run was asked for.
#[derive(Debug, Clone, Default)]
pub struct ManualRun {
    /// Its end releases no dependents (recorded released from the start).
    pub alone: bool,
    /// Its parameters' values: (as it runs with them, as people see them), JSON objects; none:
    /// the job's defaults, recorded when it runs.
    pub params: Option<(String, String)>,
    /// One instant of this backfill (trigger `backfill`), not a hand's run.
    pub backfill: Option<i64>,
}

impl Store {
    /// Records a manual run now. Two requests in the same millisecond are two runs: the
    /// second takes the next free instant.
    pub async fn request_run(&self, job_id: i64, how: &ManualRun) -> Result<i64, StoreError> {
        let now = crate::model::now_millis();
        for instant in now..now + 1000 {
            if let Some(id) = self.insert_manual(job_id, instant, 0, how).await? {
                return Ok(id);
            }
        }
        Err(StoreError::Corrupt(format!(
            "could not find a free instant for a manual run of job {job_id}"
        )))
    }

    /// Records a manual run as of `instant` (`job run --instant`): the run carries that instant
    /// (and so do the jobs that run after it). It takes the next round of the job's runs at
    /// that instant (round 1 at least: round 0 stays the schedule's, should the instant still
    /// come), so the fence keeps each (job, instant, round) once and the flow's jobs are
    /// decided again in that round; a flow of that instant that ended goes on.
    pub async fn request_run_at(
        &self,
        job_id: i64,
        instant: Millis,
        how: &ManualRun,
    ) -> Result<i64, StoreError> {
        super::retry_transient(|| self.request_run_at_once(job_id, instant, how)).await
    }

    async fn request_run_at_once(
        &self,
        job_id: i64,
        instant: Millis,
        how: &ManualRun,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The job's row lock: two requests for one instant take two rounds, one after the
        // other (and a release of its flow waits).
        sqlx::query("UPDATE jobs SET paused = paused WHERE id = ?")
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        let id = insert_next_round(&mut tx, job_id, instant, how).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn insert_manual(
        &self,
        job_id: i64,
        instant: Millis,
        round: i64,
        how: &ManualRun,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id = insert_manual_on(&mut tx, job_id, instant, round, how).await?;
        tx.commit().await?;
        Ok(id)
    }
}

/// A run of `job_id` as of `instant` in the next round of its flow (round 1 at least), and
/// the flow of that instant, if it ended, going again. The caller holds the job's row lock.
pub(super) async fn insert_next_round(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: i64,
    instant: Millis,
    how: &ManualRun,
) -> Result<i64, StoreError> {
    let last: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(flow_round) FROM runs WHERE job_id = ? AND instant = ? AND flow_root = 0",
    )
    .bind(job_id)
    .bind(instant)
    .fetch_one(&mut **tx)
    .await?;
    let round = last.map_or(1, |r| r + 1);
    let id = insert_manual_on(tx, job_id, instant, round, how)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("round {round} of job {job_id} taken")))?;
    sqlx::query(
        "UPDATE flows SET state = 'running', failed = NULL, ended_at = NULL, \
         alarm_checked = 0, flow_round = ? WHERE root_job_id = ? AND instant = ?",
    )
    .bind(round)
    .bind(job_id)
    .bind(instant)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// One manual run under the fence, with its parameters: its id, or none if the key is taken.
async fn insert_manual_on(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: i64,
    instant: Millis,
    round: i64,
    how: &ManualRun,
) -> Result<Option<i64>, StoreError> {
    let token = fire_token();
    let (params, shown) = match &how.params {
        Some((p, s)) => (Some(p.as_str()), Some(s.as_str())),
        None => (None, None),
    };
    let inserted = sqlx::query(
        "INSERT INTO runs (job_id, instant, target, trigger_kind, state, created_at, flow_round, \
         released, params, params_shown, fired_by, backfill_id) \
         VALUES (?, ?, '', ?, 'scheduled', ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(job_id)
    .bind(instant)
    .bind(match how.backfill {
        Some(_) => Trigger::Backfill.as_str(),
        None => Trigger::Manual.as_str(),
    })
    .bind(crate::model::now_millis())
    .bind(round)
    .bind(i64::from(how.alone))
    .bind(params)
    .bind(shown)
    .bind(token.as_str())
    .bind(how.backfill)
    .execute(&mut **tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if super::is_unique_violation(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    // By the fence's key (its index): a job's runs by `fired_by` would be a scan of them all.
    let id: i64 = sqlx::query_scalar(
        "SELECT id FROM runs WHERE job_id = ? AND instant = ? AND target = '' AND attempt = 1 \
         AND flow_root = 0 AND flow_round = ? AND fired_by = ?",
    )
    .bind(job_id)
    .bind(instant)
    .bind(round)
    .bind(token.as_str())
    .fetch_one(&mut **tx)
    .await?;
    Ok(Some(id))
}

/// What `run retry` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// The next attempt is recorded: its id.
    Started(i64),
    /// A run of the same instant (and shard) is still going: this one, or a later attempt.
    Going(i64),
    /// The run is in a flow: rerunning it alone would leave what runs after it decided on the
    /// old outcome (`flow rerun` reruns it with them).
    InFlow,
}

impl Store {
    /// Runs a run again by hand as its next attempt: same instant, same shard (the target of
    /// a `fanout = all` run, and its index and total), same parameters, on any executor of the
    /// job's target. `None`: no such run.
    pub async fn retry_run(&self, run_id: i64) -> Result<Option<Retried>, StoreError> {
        super::retry_transient(|| self.retry_run_once(run_id)).await
    }

    async fn retry_run_once(&self, run_id: i64) -> Result<Option<Retried>, StoreError> {
        use sqlx::Row;
        let mut tx = self.pool.begin().await?;
        let job_id: Option<i64> = sqlx::query_scalar("SELECT job_id FROM runs WHERE id = ?")
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(job_id) = job_id else {
            return Ok(None);
        };
        // The job's row lock, as every writer of its runs' rounds and attempts takes it.
        sqlx::query("UPDATE jobs SET paused = paused WHERE id = ?")
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query(
            "SELECT instant, target, flow_root, flow_round, flow_run FROM runs WHERE id = ?",
        )
        .bind(run_id)
        .fetch_one(&mut *tx)
        .await?;
        let (instant, target): (Millis, String) = (r.try_get(0)?, r.try_get(1)?);
        let (root, round): (i64, i64) = (r.try_get(2)?, r.try_get(3)?);
        let in_graph: Option<i64> = sqlx::query_scalar(
            "SELECT job_id FROM job_edges WHERE job_id = ? OR upstream_id = ? LIMIT 1",
        )
        .bind(job_id)
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?;
        if r.try_get::<Option<i64>, _>(4)?.is_some() || in_graph.is_some() {
            return Ok(Some(Retried::InFlow));
        }
        const KEY: &str = "job_id = ? AND instant = ? AND target = ? AND flow_root = ? \
             AND flow_round = ?";
        let going: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT id FROM runs WHERE {KEY} AND state IN ('scheduled', 'dispatched', 'running') \
             LIMIT 1"
        ))
        .bind(job_id)
        .bind(instant)
        .bind(target.as_str())
        .bind(root)
        .bind(round)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = going {
            return Ok(Some(Retried::Going(id)));
        }
        let attempt: i64 = sqlx::query_scalar(&format!(
            "SELECT COALESCE(MAX(attempt), 0) + 1 FROM runs WHERE {KEY}"
        ))
        .bind(job_id)
        .bind(instant)
        .bind(target.as_str())
        .bind(root)
        .bind(round)
        .fetch_one(&mut *tx)
        .await?;
        let token = fire_token();
        sqlx::query(
            "INSERT INTO runs (job_id, instant, target, trigger_kind, state, created_at, attempt, \
             retry_of, flow_root, flow_round, params, params_shown, backfill_id, shard_index, \
             shard_total, fired_by) \
             SELECT job_id, instant, target, 'retry', 'scheduled', ?, ?, COALESCE(retry_of, id), \
             flow_root, flow_round, params, params_shown, backfill_id, shard_index, shard_total, ? \
             FROM runs WHERE id = ?",
        )
        .bind(crate::model::now_millis())
        .bind(attempt)
        .bind(token.as_str())
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        let id: i64 = sqlx::query_scalar(&format!(
            "SELECT id FROM runs WHERE {KEY} AND attempt = ? AND fired_by = ?"
        ))
        .bind(job_id)
        .bind(instant)
        .bind(target.as_str())
        .bind(root)
        .bind(round)
        .bind(attempt)
        .bind(token.as_str())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(Retried::Started(id)))
    }
}
