//! The job change log: every change to a job appends its id; dispatchers follow the log to
//! pick up changes without a restart.

use sqlx::Row;

use super::{Store, StoreError};
use crate::model::Millis;

impl Store {
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
