//! The one alarm of a flow that ended not all succeeded: claimed and raised in one
//! transaction, so it is raised once however many monitors look.

use sqlx::Row;

use super::alarms::raise_on;
use super::{rows, NewAlarm, Raised, RunEvent, Store, StoreError};
use crate::model::{AlarmKind, Channel, Millis};

impl Store {
    /// Flows that ended and were not looked at for their alarm: each as the event of its root
    /// run (its job's recipients and channels), with the flow's state and failed nodes. A
    /// flow that succeeded is marked looked at here.
    pub async fn unchecked_flows(&self, limit: i64) -> Result<Vec<(i64, RunEvent)>, StoreError> {
        sqlx::query(
            "UPDATE flows SET alarm_checked = 1 WHERE alarm_checked = 0 AND state = 'succeeded'",
        )
        .execute(&self.pool)
        .await?;
        let rows = sqlx::query(
            "SELECT f.id, f.root_run, f.root_job_id, j.name, f.state, f.failed, f.ended_at, \
             f.instant, j.alarm_on, j.alarm_channels, j.admin_email, j.admin_mobile \
             FROM flows f JOIN jobs j ON j.id = f.root_job_id \
             WHERE f.alarm_checked = 0 AND f.ended_at IS NOT NULL ORDER BY f.id LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let state = rows::text_at(r, 4)?.unwrap_or_default();
                let instant: Millis = r.try_get(7)?;
                let at = chrono::DateTime::from_timestamp_millis(instant)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default();
                let failed = rows::text_at(r, 5)?;
                let name = rows::text_at(r, 3)?.unwrap_or_default();
                let error = match failed {
                    Some(f) => format!("flow of `{name}` at {at} {state}: {f}"),
                    None => format!("flow of `{name}` at {at} {state}: some jobs were skipped"),
                };
                Ok((
                    r.try_get(0)?,
                    RunEvent {
                        run_id: r.try_get(1)?,
                        job_id: r.try_get(2)?,
                        job_name: name,
                        state: format!("flow_{state}"),
                        error: Some(error),
                        exit_code: None,
                        ended_at: r.try_get(6)?,
                        alarm_on: AlarmKind::parse_list(
                            &[rows::text_at(r, 8)?.unwrap_or_default()],
                        )
                        .map_err(StoreError::Corrupt)?,
                        alarm_channels: Channel::parse_list(&[
                            rows::text_at(r, 9)?.unwrap_or_default()
                        ])
                        .map_err(StoreError::Corrupt)?,
                        admin_email: rows::text_at(r, 10)?,
                        admin_mobile: rows::text_at(r, 11)?,
                    },
                ))
            })
            .collect()
    }

    /// Claims flow `id` for its alarm and raises `alarms`, in one transaction: `None` if
    /// another monitor claimed it first.
    pub async fn check_flow(
        &self,
        id: i64,
        alarms: &[NewAlarm],
        merge_since: Millis,
    ) -> Result<Option<Vec<Raised>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let claimed =
            sqlx::query("UPDATE flows SET alarm_checked = 1 WHERE id = ? AND alarm_checked = 0")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if claimed != 1 {
            return Ok(None);
        }
        let mut raised = Vec::with_capacity(alarms.len());
        for a in alarms {
            raised.push(raise_on(&mut tx, a, merge_since).await?);
        }
        tx.commit().await?;
        Ok(Some(raised))
    }
}
