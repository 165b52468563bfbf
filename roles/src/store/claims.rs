//! Who takes which run: the executor's claim before it starts a run, and the dispatcher's note
//! of the instance that accepted it.
//!
//! The claim is the fence of execution, as the unique (job, instant, target) key is the fence
//! of firing: a request can reach an executor late (its process was paused with the request in
//! its socket, and the dispatcher meanwhile gave up and sent the run elsewhere), and only the
//! store can tell the late copy from the live one. An executor starts a run only once the store
//! names it as the run's executor while the run is still `dispatched`. The claim also reads
//! the run's job as stored: what the executor runs is that, not what the request says
//! (`model::work`).

use std::collections::HashMap;

use sqlx::Row;

use super::{rows, Store, StoreError};

/// What the store says of a run an executor was asked to start.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This executor's to start: its job as stored now, and when the run was recorded.
    Mine(Box<Stored>),
    /// Another executor instance has it (the request reached this one late, or twice).
    Taken(String),
    /// Not to be started by anyone: ended (failed by a dispatcher that gave up on it, lost,
    /// killed), started already, or deleted with its job.
    Over,
}

/// A claimed run's job as the store has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub job: crate::model::Job,
    /// When the run was recorded: a job changed since may have been sent as it was before.
    pub run_created: crate::model::Millis,
}

impl Store {
    /// Claims dispatched runs for executor `instance`, and says for each id whose it is. A
    /// claim is idempotent: asking again after an error reads what the first try did.
    pub async fn claim_runs(
        &self,
        instance: &str,
        run_ids: &[i64],
    ) -> Result<HashMap<i64, Claim>, StoreError> {
        self.mark_delivered(instance, run_ids).await?;
        let mut sorted = run_ids.to_vec();
        sorted.sort_unstable();
        let mut claims: HashMap<i64, Claim> = run_ids.iter().map(|id| (*id, Claim::Over)).collect();
        let mut mine = Vec::new();
        for ids in sorted.chunks(500) {
            let sql = format!(
                "SELECT id, state, executor, job_id, created_at FROM runs WHERE id IN ({})",
                super::placeholders(ids.len())
            );
            let mut q = sqlx::query(&sql);
            for id in ids {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.pool).await? {
                let id: i64 = r.try_get(0)?;
                let state = rows::text_at(&r, 1)?.unwrap_or_default();
                let executor = rows::text_at(&r, 2)?;
                match (state.as_str(), executor) {
                    ("dispatched", Some(e)) if e == instance => {
                        mine.push((id, r.try_get::<i64, _>(3)?, r.try_get::<i64, _>(4)?));
                    }
                    ("dispatched" | "running", Some(e)) if e != instance => {
                        claims.insert(id, Claim::Taken(e));
                    }
                    _ => {}
                }
            }
        }
        // Their jobs, as stored (a job deleted meanwhile leaves its run `Over`).
        let mut job_ids: Vec<i64> = mine.iter().map(|(_, job, _)| *job).collect();
        job_ids.sort_unstable();
        job_ids.dedup();
        let jobs: HashMap<i64, crate::model::Job> = self
            .jobs_without_edges(&job_ids)
            .await?
            .into_iter()
            .map(|j| (j.id, j))
            .collect();
        for (id, job_id, run_created) in mine {
            if let Some(job) = jobs.get(&job_id) {
                let stored = Stored {
                    job: job.clone(),
                    run_created,
                };
                claims.insert(id, Claim::Mine(Box::new(stored)));
            }
        }
        Ok(claims)
    }

    /// Notes the executor instance that accepted dispatched runs (the ones it has not written
    /// anything for yet).
    pub async fn mark_delivered(&self, instance: &str, run_ids: &[i64]) -> Result<(), StoreError> {
        let mut sorted = run_ids.to_vec();
        sorted.sort_unstable();
        for ids in sorted.chunks(500) {
            // The condition on the state is in the SET, not the WHERE, so that only the
            // primary key can find the rows: through the state index InnoDB would lock the
            // index entry before the row, the reverse of a result write, and the two deadlock
            // (seen at 25 runs/s). Ids in order; a deadlock left is tried again.
            let sql = format!(
                "UPDATE runs SET executor = CASE WHEN state = 'dispatched' AND executor IS NULL \
                 THEN ? ELSE executor END WHERE id IN ({})",
                super::placeholders(ids.len())
            );
            super::retry_transient(|| async {
                let mut q = sqlx::query(&sql).bind(instance);
                for id in ids {
                    q = q.bind(*id);
                }
                q.execute(&self.pool).await?;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}
