//! SLAs: a run **late** (not started `late_after` past its instant) and an instant **overdue**
//! (not ended successfully `deadline` past it — for the root of a flow, the whole flow), each
//! raised once per run: a bit of `runs.sla_flags`, claimed in the transaction that raises the
//! alarm, whichever monitor sees it first.
//!
//! What each pass reads stays small whatever the volume of runs: late candidates through the
//! index of runs not final (`runs_by_state`); overdue ones per job that has a deadline, its
//! instants of the last few minutes past their deadline (the fence's `(job_id, instant)`).

use sqlx::Row;

use super::alarms::{raise_on, NewAlarm, Raised, RunEvent};
use super::{rows, Store, StoreError};
use crate::model::durations::{secs_text, Deadline};
use crate::model::{AlarmKind, Channel, Millis};

/// `runs.sla_flags` bits.
pub const LATE: i64 = 1;
pub const OVERDUE: i64 = 2;
/// Still running far past its job's usual duration (`store::usual`).
pub const SLOW: i64 = 4;
/// Succeeded far under its job's usual duration: set when its alarm is raised (the claim
/// is the delete of its `short_runs` row).
pub const SHORT: i64 = 8;

/// How far past its deadline an instant is still looked at: a monitor stopped longer than this
/// does not alarm the deadlines that passed meanwhile (its outage is alarmed itself).
const OVERDUE_LOOKBACK: Millis = 10 * 60_000;

/// Candidates per pass.
const PER_PASS: i64 = 200;

/// A run whose SLA is broken, with what its alarm says.
#[derive(Debug, Clone)]
pub struct Breach {
    pub bit: i64,
    pub event: RunEvent,
}

pub(super) fn iso(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The alarm fields of the job in columns `from..from + 3` (alarm_on, alarm_channels,
/// admin_email, admin_mobile).
pub(super) fn event(
    r: &sqlx::any::AnyRow,
    from: usize,
    run_id: i64,
    job_id: i64,
    job_name: String,
    state: &str,
    error: String,
) -> Result<RunEvent, StoreError> {
    Ok(RunEvent {
        run_id,
        job_id,
        job_name,
        state: state.to_string(),
        error: Some(error),
        exit_code: None,
        ended_at: Some(crate::model::now_millis()),
        alarm_on: AlarmKind::parse_list(&[rows::text_at(r, from)?.unwrap_or_default()])
            .map_err(StoreError::Corrupt)?,
        alarm_channels: Channel::parse_list(&[rows::text_at(r, from + 1)?.unwrap_or_default()])
            .map_err(StoreError::Corrupt)?,
        admin_email: rows::text_at(r, from + 2)?,
        admin_mobile: rows::text_at(r, from + 3)?,
    })
}

impl Store {
    /// Runs not started `late_after` past their instant (still waiting, or started after it),
    /// not alarmed yet.
    pub async fn late_runs(&self, now: Millis) -> Result<Vec<Breach>, StoreError> {
        // The jobs with the SLA first, through their index: most jobs have none, and a join
        // driven from the jobs would read every one of them each pass. Then their runs not
        // final, through `runs_by_state` (`+ 0` keeps the planner off the fence's index, which
        // holds every run of the job).
        let jobs: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM jobs WHERE late_after_secs IS NOT NULL")
                .fetch_all(&self.pool)
                .await?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows = Vec::new();
        for chunk in jobs.chunks(500) {
            let sql = format!(
                "SELECT r.id, r.job_id, j.name, r.instant, j.late_after_secs, r.started_at, \
                 j.alarm_on, j.alarm_channels, j.admin_email, j.admin_mobile \
                 FROM runs r JOIN jobs j ON j.id = r.job_id \
                 WHERE r.state IN ('scheduled', 'dispatched', 'running') \
                 AND (r.sla_flags & 1) = 0 AND r.job_id + 0 IN ({}) AND r.retry_of IS NULL \
                 AND r.instant + j.late_after_secs * 1000 <= ? \
                 AND (r.started_at IS NULL OR r.started_at > r.instant + j.late_after_secs * 1000) \
                 ORDER BY r.id LIMIT ?",
                super::placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            rows.extend(q.bind(now).bind(PER_PASS).fetch_all(&self.pool).await?);
        }
        rows.iter()
            .map(|r| {
                let (run, job): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
                let name = rows::text_at(r, 2)?.unwrap_or_default();
                let instant: Millis = r.try_get(3)?;
                let late: i64 = r.try_get(4)?;
                let started: Option<Millis> = r.try_get(5)?;
                let what = match started {
                    Some(s) => format!(
                        "started {} after it",
                        crate::model::durations::secs_text((s - instant) / 1000)
                    ),
                    None => "not started yet".to_string(),
                };
                let error = format!(
                    "run {run} of `{name}` at {} is late: {what} (late after {})",
                    iso(instant),
                    secs_text(late)
                );
                Ok(Breach {
                    bit: LATE,
                    event: event(r, 6, run, job, name, "late", error)?,
                })
            })
            .collect()
    }

    /// Instants past their job's deadline whose first run's bit is unset: each is a breach
    /// (`overdue`) unless it — or, for a flow's root, its flow — ended successfully in time,
    /// which only sets the bit.
    pub async fn overdue_runs(&self, now: Millis) -> Result<(Vec<Breach>, Vec<i64>), StoreError> {
        let jobs = sqlx::query(
            "SELECT id, deadline, timezone, \
             EXISTS (SELECT 1 FROM job_edges e WHERE e.upstream_id = jobs.id) \
             FROM jobs WHERE deadline IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let (mut breaches, mut settled) = (Vec::new(), Vec::new());
        for j in &jobs {
            let job_id: i64 = j.try_get(0)?;
            let Some(deadline) =
                rows::text_at(j, 1)?.and_then(|d| Deadline::parse(&d).ok().flatten())
            else {
                continue;
            };
            let tz = crate::schedule::parse_timezone(&rows::text_at(j, 2)?.unwrap_or_default())
                .unwrap_or(chrono_tz::Tz::UTC);
            let root = j.try_get::<i64, _>(3)? != 0;
            // The instants whose deadline may have come in the last OVERDUE_LOOKBACK.
            let (from, upto) = match deadline {
                Deadline::After(s) => (now - s * 1000 - OVERDUE_LOOKBACK, now - s * 1000),
                Deadline::At(_) => (now - 86_400_000 - OVERDUE_LOOKBACK, now),
            };
            let rows = self.overdue_candidates(job_id, from, upto).await?;
            for r in &rows {
                let (run, instant): (i64, Millis) = (r.try_get(0)?, r.try_get(2)?);
                let Some(bound) = deadline.bound(instant, tz) else {
                    continue;
                };
                if bound > now {
                    continue;
                }
                let done: Option<Millis> = r.try_get(if root { 4 } else { 3 })?;
                // In time, or due long ago (this monitor was away then): nothing to raise.
                if done.is_some_and(|d| d <= bound) || bound <= now - OVERDUE_LOOKBACK {
                    settled.push(run);
                    continue;
                }
                let name = rows::text_at(r, 1)?.unwrap_or_default();
                let what = if root { "its flow" } else { "it" };
                let by = match deadline {
                    Deadline::After(s) => format!("{} after the instant", secs_text(s)),
                    Deadline::At(_) => format!("{} in {}", deadline.text(), tz.name()),
                };
                let error = format!(
                    "`{name}` at {} is overdue: {what} had not ended successfully by {} ({by})",
                    iso(instant),
                    iso(bound),
                );
                breaches.push(Breach {
                    bit: OVERDUE,
                    event: event(r, 5, run, job_id, name, "overdue", error)?,
                });
            }
        }
        Ok((breaches, settled))
    }

    /// A job's first runs of instants in (from, upto] whose overdue bit is unset, with when the
    /// instant (and, for a flow's root, its flow) first ended successfully.
    async fn overdue_candidates(
        &self,
        job_id: i64,
        from: Millis,
        upto: Millis,
    ) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
        Ok(sqlx::query(
            "SELECT r.id, jb.name, r.instant, \
             (SELECT MIN(s.ended_at) FROM runs s WHERE s.job_id = r.job_id \
              AND s.instant = r.instant AND s.flow_root = 0 AND s.state = 'succeeded'), \
             (SELECT MIN(f.ended_at) FROM flows f WHERE f.root_job_id = r.job_id \
              AND f.instant = r.instant AND f.state = 'succeeded'), \
             jb.alarm_on, jb.alarm_channels, jb.admin_email, jb.admin_mobile \
             FROM runs r JOIN jobs jb ON jb.id = r.job_id \
             WHERE r.job_id = ? AND r.instant > ? AND r.instant <= ? AND r.flow_root = 0 \
             AND r.retry_of IS NULL AND r.target = '' AND (r.sla_flags & 2) = 0 \
             ORDER BY r.instant LIMIT ?",
        )
        .bind(job_id)
        .bind(from)
        .bind(upto)
        .bind(PER_PASS)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Marks instants that met their deadline, or whose deadline passed while no monitor
    /// looked (nothing to raise).
    pub async fn sla_met(&self, runs: &[i64]) -> Result<(), StoreError> {
        for chunk in runs.chunks(500) {
            let sql = format!(
                "UPDATE runs SET sla_flags = sla_flags | 2 WHERE id IN ({})",
                super::placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Claims a run's SLA bit and raises `alarms`, in one transaction: `None` if another
    /// monitor claimed it first.
    pub async fn check_sla(
        &self,
        breach: &Breach,
        alarms: &[NewAlarm],
        merge_since: Millis,
    ) -> Result<Option<Vec<Raised>>, StoreError> {
        let (run_id, bit) = (breach.event.run_id, breach.bit);
        let mut tx = self.pool.begin().await?;
        if bit == SHORT {
            let found = sqlx::query("DELETE FROM short_runs WHERE run_id = ?")
                .bind(run_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if found != 1 {
                return Ok(None);
            }
        }
        let claimed = sqlx::query(
            "UPDATE runs SET sla_flags = sla_flags | ? WHERE id = ? AND (sla_flags & ?) = 0",
        )
        .bind(bit)
        .bind(run_id)
        .bind(bit)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // A short run pruned meanwhile has no row to mark: its claim was the delete.
        if claimed != 1 && bit != SHORT {
            return Ok(None);
        }
        // Counted for Prometheus with the claim: once, whichever monitor.
        let insert = match self.backend {
            super::Backend::MySql => "INSERT IGNORE INTO job_stats (job_id) VALUES (?)",
            super::Backend::Sqlite => "INSERT OR IGNORE INTO job_stats (job_id) VALUES (?)",
        };
        sqlx::query(insert)
            .bind(breach.event.job_id)
            .execute(&mut *tx)
            .await?;
        let column = match bit {
            LATE => "sla_late",
            OVERDUE => "sla_overdue",
            SLOW => "sla_slow",
            _ => "sla_short",
        };
        sqlx::query(&format!(
            "UPDATE job_stats SET {column} = {column} + 1 WHERE job_id = ?"
        ))
        .bind(breach.event.job_id)
        .execute(&mut *tx)
        .await?;
        let mut raised = Vec::with_capacity(alarms.len());
        for a in alarms {
            raised.push(raise_on(&mut tx, a, merge_since).await?);
        }
        tx.commit().await?;
        Ok(Some(raised))
    }
}
