//! Alarm records: which final runs have been looked at, the alarms raised (merged within a
//! window), and their delivery state. Every claim is a conditional update, so several monitors
//! raise and deliver each alarm once.

use sqlx::Row;

use super::job_stats::Counted;
use super::{rows, Store, StoreError};
use crate::model::{Alarm, AlarmKind, Channel, Millis, RunState};

/// A final run a monitor has not looked at yet.
#[derive(Debug, Clone)]
pub struct RunEvent {
    pub run_id: i64,
    pub job_id: i64,
    pub job_name: String,
    pub state: String,
    pub error: Option<String>,
    pub exit_code: Option<i64>,
    pub ended_at: Option<Millis>,
    pub alarm_on: Vec<AlarmKind>,
    pub alarm_channels: Vec<Channel>,
    pub admin_email: Option<String>,
    pub admin_mobile: Option<String>,
}

/// An alarm to record.
#[derive(Debug, Clone)]
pub struct NewAlarm {
    pub job_id: i64,
    pub run_id: i64,
    pub kind: String,
    pub channel: String,
    pub recipient: String,
    /// `pending` (to deliver) or `recorded` (no channel: kept for the record only).
    pub status: &'static str,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raised {
    New(i64),
    /// Folded into an alarm raised within the merge window (its count went up).
    Merged(i64),
}

const ALARM_COLUMNS: &str = "id, job_id, run_id, kind, channel, recipient, status, attempts, \
                             last_error, count, details, created_at, updated_at";

impl Store {
    /// Writes down alarms already sent (not through the store: the store's own outage), each
    /// with its delivery's outcome, sent at `at`; one transaction.
    pub async fn record_direct_alarms(
        &self,
        alarms: &[(NewAlarm, Option<String>)],
        at: Millis,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (a, error) in alarms {
            let attempts = i64::from(a.status != "recorded");
            insert(&mut tx, a, attempts, error.as_deref(), at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Final runs not looked at yet: failures of any kind, and successes of jobs whose last
    /// alarm was a failure (they send "recovered").
    pub async fn unchecked_runs(&self, limit: i64) -> Result<Vec<RunEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, r.job_id, j.name, r.state, r.error, r.exit_code, r.ended_at, \
             j.alarm_on, j.admin_email, j.admin_mobile, j.alarm_channels FROM runs r JOIN jobs j ON j.id = r.job_id \
             WHERE r.alarm_checked = 0 AND (r.state IN ('failed', 'timed_out', 'killed', 'lost', \
             'skipped', 'missed') OR (r.state = 'succeeded' AND j.alarm_failing = 1)) ORDER BY r.id LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RunEvent {
                    run_id: r.try_get(0)?,
                    job_id: r.try_get(1)?,
                    job_name: r.try_get(2)?,
                    state: r.try_get(3)?,
                    error: rows::text_at(r, 4)?,
                    exit_code: r.try_get(5)?,
                    ended_at: r.try_get(6)?,
                    alarm_on: AlarmKind::parse_list(&[r.try_get::<String, _>(7)?])
                        .map_err(|e| StoreError::Corrupt(format!("alarm_on: {e}")))?,
                    admin_email: rows::text_at(r, 8)?,
                    admin_mobile: rows::text_at(r, 9)?,
                    alarm_channels: Channel::parse_list(&[r.try_get::<String, _>(10)?])
                        .map_err(|e| StoreError::Corrupt(format!("alarm_channels: {e}")))?,
                })
            })
            .collect()
    }

    /// Looks at one final run, in one transaction: claims it (false when another monitor
    /// took it), records whether its job is now failing, and stores its alarms. A store error
    /// anywhere leaves the run unclaimed for the next scan, so no alarm is lost between the
    /// claim and its rows.
    pub async fn check_run(
        &self,
        run_id: i64,
        job_failing: Option<(i64, bool)>,
        alarms: &[NewAlarm],
        merge_since: Millis,
    ) -> Result<Option<Vec<Raised>>, StoreError> {
        super::retry_transient(|| self.check_run_once(run_id, job_failing, alarms, merge_since))
            .await
    }

    async fn check_run_once(
        &self,
        run_id: i64,
        job_failing: Option<(i64, bool)>,
        alarms: &[NewAlarm],
        merge_since: Millis,
    ) -> Result<Option<Vec<Raised>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let claimed =
            sqlx::query("UPDATE runs SET alarm_checked = 1 WHERE id = ? AND alarm_checked = 0")
                .bind(run_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if claimed != 1 {
            return Ok(None);
        }
        let run = counted(&mut tx, run_id).await?;
        super::job_stats::count(&mut tx, self.backend, &run).await?;
        super::usual::learn(&mut tx, self.backend, &[run]).await?;
        if let Some((job_id, failing)) = job_failing {
            sqlx::query("UPDATE jobs SET alarm_failing = ? WHERE id = ?")
                .bind(i64::from(failing))
                .bind(job_id)
                .execute(&mut *tx)
                .await?;
        }
        let mut raised = Vec::with_capacity(alarms.len());
        for a in alarms {
            raised.push(raise_on(&mut tx, a, merge_since).await?);
        }
        tx.commit().await?;
        Ok(Some(raised))
    }

    /// Marks looked-at, in bulk, the successes that cannot raise anything (their job is not
    /// failing), so the scan stays small whatever the run rate. The rows are found by a
    /// plain read and updated by id in id order: an UPDATE with a join condition would lock
    /// every row it examines and deadlock with the result writes of a busy InnoDB store.
    pub async fn check_plain_successes(&self) -> Result<u64, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, r.job_id, r.started_at, r.ended_at FROM runs r JOIN jobs j \
             ON j.id = r.job_id WHERE r.alarm_checked = 0 AND r.state = 'succeeded' \
             AND j.alarm_failing = 0 ORDER BY r.id LIMIT 5000",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut runs = Vec::with_capacity(rows.len());
        for r in &rows {
            runs.push((
                r.try_get::<i64, _>(0)?,
                Counted {
                    run_id: r.try_get(0)?,
                    job_id: r.try_get(1)?,
                    state: RunState::Succeeded,
                    started_at: r.try_get(2)?,
                    ended_at: r.try_get(3)?,
                },
            ));
        }
        let mut checked = 0;
        for chunk in runs.chunks(500) {
            checked += super::retry_transient(|| self.check_successes_once(chunk)).await?;
        }
        Ok(checked)
    }

    /// Claims and counts a chunk of successes in one transaction; when another monitor took
    /// some of them meanwhile, one by one (so each is counted by the monitor that claimed it).
    async fn check_successes_once(&self, chunk: &[(i64, Counted)]) -> Result<u64, StoreError> {
        let sql = format!(
            "UPDATE runs SET alarm_checked = 1 WHERE alarm_checked = 0 AND id IN ({})",
            super::placeholders(chunk.len())
        );
        let mut tx = self.pool.begin().await?;
        let mut q = sqlx::query(&sql);
        for (id, _) in chunk {
            q = q.bind(*id);
        }
        let claimed = q.execute(&mut *tx).await?.rows_affected();
        if claimed == chunk.len() as u64 {
            for (_, run) in chunk {
                super::job_stats::count(&mut tx, self.backend, run).await?;
            }
            let runs: Vec<Counted> = chunk.iter().map(|(_, r)| *r).collect();
            super::usual::learn(&mut tx, self.backend, &runs).await?;
            tx.commit().await?;
            return Ok(claimed);
        }
        tx.rollback().await?;
        let mut checked = 0;
        for (id, run) in chunk {
            let mut tx = self.pool.begin().await?;
            let one =
                sqlx::query("UPDATE runs SET alarm_checked = 1 WHERE id = ? AND alarm_checked = 0")
                    .bind(*id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if one == 1 {
                super::job_stats::count(&mut tx, self.backend, run).await?;
                super::usual::learn(&mut tx, self.backend, &[*run]).await?;
                checked += 1;
            }
            tx.commit().await?;
        }
        Ok(checked)
    }

    /// Records alarms (one per recipient), each folded into the same job's alarm of the
    /// same kind for the same recipient raised since `merge_since` where there is one: all or
    /// none.
    pub async fn raise_alarms(
        &self,
        alarms: &[NewAlarm],
        merge_since: Millis,
    ) -> Result<Vec<Raised>, StoreError> {
        super::retry_transient(|| self.raise_alarms_once(alarms, merge_since)).await
    }

    async fn raise_alarms_once(
        &self,
        alarms: &[NewAlarm],
        merge_since: Millis,
    ) -> Result<Vec<Raised>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut raised = Vec::with_capacity(alarms.len());
        for a in alarms {
            raised.push(raise_on(&mut tx, a, merge_since).await?);
        }
        tx.commit().await?;
        Ok(raised)
    }

    /// Alarms to deliver now: pending and due, or stuck `sending` (a monitor died mid-way)
    /// since before `stale_before`.
    pub async fn due_alarms(
        &self,
        now: Millis,
        stale_before: Millis,
    ) -> Result<Vec<Alarm>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ALARM_COLUMNS} FROM alarms WHERE (status = 'pending' AND next_attempt_at <= ?) \
             OR (status = 'sending' AND updated_at < ?) ORDER BY id LIMIT 50"
        ))
        .bind(now)
        .bind(stale_before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::alarm).collect()
    }

    /// Takes an alarm for delivery; false when another monitor has it.
    pub async fn claim_alarm(&self, id: i64, expected_status: &str) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE alarms SET status = 'sending', updated_at = ? WHERE id = ? AND status = ?",
        )
        .bind(crate::model::now_millis())
        .bind(id)
        .bind(expected_status)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Records a delivery attempt: `sent`, or back to `pending` for `next_attempt_at`, or
    /// `failed` for good (`next_attempt_at` = None).
    pub async fn alarm_attempted(
        &self,
        id: i64,
        error: Option<&str>,
        next_attempt_at: Option<Millis>,
    ) -> Result<(), StoreError> {
        let status = match (error, next_attempt_at) {
            (None, _) => "sent",
            (Some(_), Some(_)) => "pending",
            (Some(_), None) => "failed",
        };
        let now = crate::model::now_millis();
        sqlx::query(
            "UPDATE alarms SET status = ?, attempts = attempts + 1, last_error = ?, updated_at = ?, \
             next_attempt_at = ? WHERE id = ?",
        )
        .bind(status)
        .bind(error)
        .bind(now)
        .bind(next_attempt_at.unwrap_or(now))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Alarms, newest first.
    /// The newest alarms of jobs in `groups` (`None`: all, system alarms included).
    pub async fn alarms_in(
        &self,
        limit: i64,
        groups: Option<&[String]>,
    ) -> Result<Vec<Alarm>, StoreError> {
        let Some(groups) = groups else {
            return self.alarms(limit).await;
        };
        let marks = vec!["?"; groups.len().max(1)].join(", ");
        let sql = format!(
            "SELECT {ALARM_COLUMNS} FROM alarms WHERE job_id IN \
             (SELECT id FROM jobs WHERE job_group IN ({marks})) ORDER BY id DESC LIMIT ?"
        );
        let mut q = sqlx::query(&sql);
        if groups.is_empty() {
            q = q.bind("");
        }
        for g in groups {
            q = q.bind(g.clone());
        }
        let rows = q.bind(limit.clamp(1, 10_000)).fetch_all(&self.pool).await?;
        rows.iter().map(rows::alarm).collect()
    }

    pub async fn alarms(&self, limit: i64) -> Result<Vec<Alarm>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ALARM_COLUMNS} FROM alarms ORDER BY id DESC LIMIT ?"
        ))
        .bind(limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::alarm).collect()
    }
}

/// One alarm, merged or inserted, on the caller's transaction.
pub(super) async fn raise_on(
    conn: &mut sqlx::AnyConnection,
    a: &NewAlarm,
    merge_since: Millis,
) -> Result<Raised, StoreError> {
    let now = crate::model::now_millis();
    // A system alarm (job 0) folds only into the same event (the same subject) among the
    // window's latest: another executor lost, another host's clock, is another fault and is
    // sent on its own. A job's alarm folds into the job's latest of its kind.
    let candidates = if a.job_id == 0 { 50 } else { 1 };
    let rows = sqlx::query(
        "SELECT id, details FROM alarms WHERE job_id = ? AND kind = ? AND channel = ? \
         AND recipient = ? AND created_at >= ? ORDER BY id DESC LIMIT ?",
    )
    .bind(a.job_id)
    .bind(&a.kind)
    .bind(&a.channel)
    .bind(&a.recipient)
    .bind(merge_since)
    .bind(candidates)
    .fetch_all(&mut *conn)
    .await?;
    let same_event = |row: &sqlx::any::AnyRow| -> Result<bool, StoreError> {
        if a.job_id != 0 {
            return Ok(true);
        }
        // MySQL's JSON text reads as bytes through the Any driver.
        let details = super::rows::text_at(row, 1)?.unwrap_or_default();
        Ok(serde_json::from_str::<serde_json::Value>(&details)
            .is_ok_and(|d| d.get("error") == a.details.get("error")))
    };
    let mut existing = None;
    for row in rows {
        if same_event(&row)? {
            existing = Some(row);
            break;
        }
    }
    if let Some(row) = existing {
        let id: i64 = row.try_get(0)?;
        sqlx::query("UPDATE alarms SET count = count + 1, updated_at = ? WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        return Ok(Raised::Merged(id));
    }
    let id = insert(conn, a, 0, None, now).await?;
    Ok(Raised::New(id))
}

/// One new alarm row at `at`, with its delivery so far (`attempts`, `last_error`): pending
/// ones from [`raise_on`], ones already sent from [`Store::record_direct_alarms`].
async fn insert(
    conn: &mut sqlx::AnyConnection,
    a: &NewAlarm,
    attempts: i64,
    last_error: Option<&str>,
    at: Millis,
) -> Result<i64, StoreError> {
    let r = sqlx::query(
        "INSERT INTO alarms (job_id, run_id, kind, channel, recipient, status, attempts, \
         last_error, details, created_at, updated_at, next_attempt_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(a.job_id)
    .bind(a.run_id)
    .bind(&a.kind)
    .bind(&a.channel)
    .bind(&a.recipient)
    .bind(a.status)
    .bind(attempts)
    .bind(last_error)
    .bind(a.details.to_string())
    .bind(at)
    .bind(at)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(r.last_insert_id().unwrap_or(0))
}

/// What a claimed run counts as (read in the claiming transaction).
async fn counted(conn: &mut sqlx::AnyConnection, run_id: i64) -> Result<Counted, StoreError> {
    let r = sqlx::query("SELECT job_id, state, started_at, ended_at FROM runs WHERE id = ?")
        .bind(run_id)
        .fetch_one(&mut *conn)
        .await?;
    let state: String = r.try_get(1)?;
    Ok(Counted {
        run_id,
        job_id: r.try_get(0)?,
        state: RunState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("run {run_id}: state `{state}`")))?,
        started_at: r.try_get(2)?,
        ended_at: r.try_get(3)?,
    })
}
