//! What the monitor's per-job cursor check reads and writes (`job_cursors`): the cursors
//! whose next instant is due, the jobs new since the last look, each job's records past its
//! cursor, and the cursors moved on.

use std::collections::HashMap;

use sqlx::Row;

use super::gaps::{Covers, Mark};
use super::{Backend, Store, StoreError};
use crate::model::Millis;

/// A cursor as written: the job, how far its instants are accounted for, its next instant.
pub type Cursor = (i64, Millis, Option<Millis>);

impl Store {
    /// Jobs with an id above `after` (ids only grow: these are the jobs added since), in id
    /// order, at most `limit`.
    pub async fn jobs_after(&self, after: i64, limit: i64) -> Result<Vec<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM jobs WHERE id > ? ORDER BY id LIMIT ?")
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The highest job id with a cursor (0: none).
    pub async fn last_cursor_job(&self) -> Result<i64, StoreError> {
        let max: Option<i64> = sqlx::query_scalar("SELECT MAX(job_id) FROM job_cursors")
            .fetch_one(&self.pool)
            .await?;
        Ok(max.unwrap_or(0))
    }

    /// The cursors whose next instant is at or before `upto`, oldest first: (job, how far).
    pub async fn due_cursors(
        &self,
        upto: Millis,
        limit: i64,
    ) -> Result<Vec<(i64, Millis)>, StoreError> {
        let rows = sqlx::query(
            "SELECT job_id, checked_until FROM job_cursors WHERE next_due <= ? \
             ORDER BY next_due LIMIT ?",
        )
        .bind(upto)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// The scheduled records of `jobs` with instants after `after`, per job, in instant
    /// order (through the fence's index, which leads with the job).
    pub async fn marks_of_jobs(
        &self,
        jobs: &[i64],
        after: Millis,
    ) -> Result<HashMap<i64, Vec<Mark>>, StoreError> {
        let mut out: HashMap<i64, Vec<Mark>> = HashMap::new();
        for chunk in jobs.chunks(500) {
            let sql = format!(
                "SELECT job_id, instant, state, trigger_kind, error, created_at FROM runs \
                 WHERE job_id IN ({}) AND instant > ? AND trigger_kind IN ('schedule', 'misfire') \
                 ORDER BY instant",
                super::placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.bind(after).fetch_all(&self.pool).await? {
                let state: String = r.try_get(2)?;
                let trigger: String = r.try_get(3)?;
                let error = super::rows::text_at(&r, 4)?.unwrap_or_default();
                out.entry(r.try_get(0)?).or_default().push(Mark {
                    instant: r.try_get(1)?,
                    covers: Covers::of(&state, &trigger, &error),
                    recorded_at: r.try_get(5)?,
                });
            }
        }
        Ok(out)
    }

    /// Writes cursors (new or moved on), a statement per 200.
    pub async fn set_cursors(&self, cursors: &[Cursor]) -> Result<(), StoreError> {
        for chunk in cursors.chunks(200) {
            let values = vec!["(?, ?, ?)"; chunk.len()].join(", ");
            let sql = match self.backend {
                Backend::Sqlite => format!(
                    "INSERT INTO job_cursors (job_id, checked_until, next_due) VALUES {values} \
                     ON CONFLICT (job_id) DO UPDATE SET checked_until = excluded.checked_until, \
                     next_due = excluded.next_due"
                ),
                Backend::MySql => format!(
                    "INSERT INTO job_cursors (job_id, checked_until, next_due) VALUES {values} \
                     ON DUPLICATE KEY UPDATE checked_until = VALUES(checked_until), \
                     next_due = VALUES(next_due)"
                ),
            };
            let mut q = sqlx::query(&sql);
            for (job, until, due) in chunk {
                q = q.bind(*job).bind(*until).bind(*due);
            }
            q.execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Drops the cursors of jobs that are gone (with the pruning pass).
    pub async fn prune_cursors(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM job_cursors WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = job_cursors.job_id)",
        )
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}
