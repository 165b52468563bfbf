//! Retention: finished runs (and the flows and backfills they made), settled alarms, one-off
//! maintenance windows long over and old change-log rows are deleted, so the store stays
//! bounded.

use super::{Store, StoreError};
use crate::model::Millis;

impl Store {
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
        // A flow goes with its runs; one that never ended (its runs pruned before it could)
        // goes a month later.
        sqlx::query("DELETE FROM flows WHERE ended_at < ? OR created_at < ?")
            .bind(before)
            .bind(before - 30 * 86_400_000)
            .execute(&self.pool)
            .await?;
        // A backfill that ended goes with its runs; a one-off maintenance window once it has
        // been over as long (recurring ones stay until deleted, as jobs do).
        sqlx::query("DELETE FROM backfills WHERE state <> 'running' AND ended_at < ?")
            .bind(before)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM windows WHERE every IS NULL AND to_ms < ?")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(runs)
    }

    /// Deletes alarms raised before `before` whose delivery is settled (sent, failed for good,
    /// or only recorded); one still being delivered is kept whatever its age.
    pub async fn prune_alarms(&self, before: Millis) -> Result<u64, StoreError> {
        let n = sqlx::query(
            "DELETE FROM alarms WHERE created_at < ? AND status IN ('sent', 'failed', 'recorded')",
        )
        .bind(before)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n)
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
