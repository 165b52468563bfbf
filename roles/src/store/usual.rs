//! Each job's usual duration (`model::usual`), learned in the transaction that counts each
//! success, and the runs it finds unusual: **slow** (still running far past the band — read
//! each pass from the runs running) and **short** (a success far under it — found when it is
//! learned, against the band it had before, and kept in `short_runs` until the alarm pass
//! raises it and deletes the row in one transaction).

use std::collections::BTreeMap;

use sqlx::Row;

use super::job_stats::Counted;
use super::sla::{event, iso, Breach, SHORT, SLOW};
use super::{rows, Backend, Store, StoreError};
use crate::model::usual::{self, span, DurationAlarm, Usual, FLOOR_MS};
use crate::model::{Millis, RunState};

/// Candidates per pass (runs running past their band's least bound; short successes).
const PER_PASS: i64 = 1000;

/// The band of a job as the columns `from..from + 4` hold it (q1, median, q3, samples).
fn usual_at(r: &sqlx::any::AnyRow, from: usize) -> Result<Option<Usual>, StoreError> {
    let (q1, median, q3): (Option<i64>, Option<i64>, Option<i64>) =
        (r.try_get(from)?, r.try_get(from + 1)?, r.try_get(from + 2)?);
    let samples: i64 = r.try_get(from + 3)?;
    Ok(match (q1, median, q3) {
        (Some(q1_ms), Some(median_ms), Some(q3_ms)) => Some(Usual {
            q1_ms,
            median_ms,
            q3_ms,
            samples: usize::try_from(samples).unwrap_or(0),
        }),
        _ => None,
    })
}

fn alarm_setting(r: &sqlx::any::AnyRow, at: usize) -> Result<DurationAlarm, StoreError> {
    Ok(DurationAlarm::parse(&rows::text_at(r, at)?.unwrap_or_default()).unwrap_or_default())
}

/// Learns the successes among `runs` (counted in this transaction) into their jobs' bands,
/// and records those short against the band their job had before them.
pub(super) async fn learn(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    runs: &[Counted],
) -> Result<(), StoreError> {
    let mut by_job: BTreeMap<i64, Vec<(i64, Millis)>> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.state == RunState::Succeeded) {
        if let (Some(start), Some(end)) = (r.started_at, r.ended_at) {
            if start <= end {
                by_job
                    .entry(r.job_id)
                    .or_default()
                    .push((r.run_id, end - start));
            }
        }
    }
    for (job_id, durations) in by_job {
        learn_job(conn, backend, job_id, &durations).await?;
    }
    Ok(())
}

async fn learn_job(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    job_id: i64,
    durations: &[(i64, Millis)],
) -> Result<(), StoreError> {
    // The row exists: the count that comes first in the same transaction made it (and, on
    // InnoDB, holds its lock, so two monitors learn one job one after the other).
    let row = sqlx::query(
        "SELECT s.recent_ms, j.duration_alarm FROM job_stats s JOIN jobs j ON j.id = s.job_id \
         WHERE s.job_id = ?",
    )
    .bind(job_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(());
    };
    let mut recent = usual::decode(&rows::text_at(&row, 0)?.unwrap_or_default());
    let setting = alarm_setting(&row, 1)?;
    let insert = match backend {
        Backend::MySql => "INSERT IGNORE INTO short_runs",
        Backend::Sqlite => "INSERT OR IGNORE INTO short_runs",
    };
    for (run_id, ms) in durations {
        let under =
            Usual::learn(&recent).and_then(|u| Some((u, u.short_under(setting.tolerance)?)));
        if let Some((band, under)) = under.filter(|(_, under)| setting.short && *ms < *under) {
            sqlx::query(&format!(
                "{insert} (run_id, job_id, duration_ms, under_ms, median_ms, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?)"
            ))
            .bind(*run_id)
            .bind(job_id)
            .bind(*ms)
            .bind(under)
            .bind(band.median_ms)
            .bind(crate::model::now_millis())
            .execute(&mut *conn)
            .await?;
        }
        recent.push(*ms);
        let from = recent.len().saturating_sub(usual::WINDOW);
        recent.drain(..from);
    }
    let band = Usual::learn(&recent);
    sqlx::query(
        "UPDATE job_stats SET recent_ms = ?, usual_q1_ms = ?, usual_median_ms = ?, \
         usual_q3_ms = ?, usual_samples = ? WHERE job_id = ?",
    )
    .bind(usual::encode(&recent))
    .bind(band.map(|b| b.q1_ms))
    .bind(band.map(|b| b.median_ms))
    .bind(band.map(|b| b.q3_ms))
    .bind(recent.len() as i64)
    .bind(job_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// A job's usual duration, once learned.
    pub async fn usual_duration(&self, job_id: i64) -> Result<Option<Usual>, StoreError> {
        let row = sqlx::query(
            "SELECT usual_q1_ms, usual_median_ms, usual_q3_ms, usual_samples FROM job_stats \
             WHERE job_id = ?",
        )
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => usual_at(&r, 0),
            None => Ok(None),
        }
    }

    /// Runs still running past their job's slow bound, not alarmed yet. Read through the
    /// index of runs by state: the runs running are bounded by the executors' slots.
    pub async fn slow_runs(&self, now: Millis) -> Result<Vec<Breach>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, r.job_id, j.name, r.started_at, \
             s.usual_q1_ms, s.usual_median_ms, s.usual_q3_ms, s.usual_samples, j.duration_alarm, \
             j.alarm_on, j.alarm_channels, j.admin_email, j.admin_mobile \
             FROM runs r JOIN job_stats s ON s.job_id = r.job_id JOIN jobs j ON j.id = r.job_id \
             WHERE r.state = 'running' AND (r.sla_flags & 4) = 0 AND s.usual_q3_ms IS NOT NULL \
             AND r.started_at + s.usual_q3_ms + ? <= ? \
             AND j.duration_alarm NOT LIKE 'off%' AND j.duration_alarm NOT LIKE 'short%' \
             ORDER BY r.id LIMIT ?",
        )
        .bind(FLOOR_MS)
        .bind(now)
        .bind(PER_PASS)
        .fetch_all(&self.pool)
        .await?;
        let mut breaches = Vec::new();
        for r in &rows {
            let (run, job): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
            let started: Millis = r.try_get(3)?;
            let (Some(band), setting) = (usual_at(r, 4)?, alarm_setting(r, 8)?) else {
                continue;
            };
            let bound = band.slow_after(setting.tolerance);
            if !setting.slow || now - started <= bound {
                continue;
            }
            let name = rows::text_at(r, 2)?.unwrap_or_default();
            let error = format!(
                "run {run} of `{name}` is slow: running for {} since {}, usually {}–{} \
                 (slow past {}, from its last {} successes)",
                span(now - started),
                iso(started),
                span(band.q1_ms),
                span(band.q3_ms),
                span(bound),
                band.samples
            );
            breaches.push(Breach {
                bit: SLOW,
                event: event(r, 9, run, job, name, "slow", error)?,
            });
        }
        Ok(breaches)
    }

    /// Successes found short when they were learned, not alarmed yet.
    pub async fn short_runs(&self) -> Result<Vec<Breach>, StoreError> {
        let rows = sqlx::query(
            "SELECT p.run_id, p.job_id, j.name, p.duration_ms, p.under_ms, p.median_ms, \
             j.alarm_on, j.alarm_channels, j.admin_email, j.admin_mobile \
             FROM short_runs p JOIN jobs j ON j.id = p.job_id ORDER BY p.run_id LIMIT ?",
        )
        .bind(PER_PASS)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let (run, job): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
                let (took, under, median): (i64, i64, i64) =
                    (r.try_get(3)?, r.try_get(4)?, r.try_get(5)?);
                let name = rows::text_at(r, 2)?.unwrap_or_default();
                let error = format!(
                    "run {run} of `{name}` succeeded short: it took {}, usually {} \
                     (short under {})",
                    span(took),
                    span(median),
                    span(under)
                );
                Ok(Breach {
                    bit: SHORT,
                    event: event(r, 6, run, job, name, "short", error)?,
                })
            })
            .collect()
    }

    /// Drops the short successes of jobs that are gone (with the pruning pass).
    pub async fn prune_short_runs(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM short_runs WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = short_runs.job_id)",
        )
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}
