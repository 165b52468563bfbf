//! Backfills in the store: asked for, listed, cancelled, and driven on by any dispatcher.
//!
//! Why it is exact: a backfill row is driven only while its row lock is held, and in the
//! same transaction the next instants' runs are recorded and `reached` (the last instant
//! handed out) moves past them. A kill anywhere rolls both back or keeps both; two
//! dispatchers queue on the lock and the second sees the first's `reached`. The runs carry
//! the backfill's id under a unique key of their own, (backfill, instant, attempt), as a
//! second fence.

use std::collections::HashSet;

use sqlx::Row;

use super::edges::FINAL;
use super::manual::{insert_next_round, ManualRun};
use super::{rows, Store, StoreError};
use crate::model::backfill::Backfill;
use crate::model::{Millis, Overlap};
use crate::schedule::Schedule;

/// A backfill as it is asked for, its instants counted.
#[derive(Debug, Clone)]
pub struct NewBackfill {
    pub job_id: i64,
    pub from: Millis,
    pub to: Millis,
    pub parallel: i64,
    pub all: bool,
    pub total: i64,
    pub created_by: Option<String>,
}

/// What one pass over the running backfills did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advanced {
    /// Runs recorded to run (a dispatcher claims them as it does manual runs).
    pub queued: usize,
    /// Instants left out: they already had a succeeded run.
    pub skipped: usize,
    /// Backfills that ended in this pass.
    pub ended: usize,
    /// Backfills still running after it (the caller passes again soon while there are some).
    pub running: usize,
}

/// At most this many instants are looked at per backfill and pass, so that one pass over a
/// long range of instants that all succeeded before stays a short transaction.
const LOOKS_PER_PASS: usize = 1000;

/// Running backfills driven per pass.
const PER_PASS: i64 = 64;

const COLUMNS: &str = "b.id, b.job_id, j.name, j.job_group, b.from_instant, b.to_instant, \
     b.parallel, b.rerun_all, b.state, b.total, b.queued, b.skipped, b.reached, b.reason, \
     b.created_by, b.created_at, b.ended_at";

/// The row a pass reads under the lock.
struct Driven {
    job_id: i64,
    to: Millis,
    parallel: i64,
    all: bool,
    from: Millis,
    reached: Millis,
    reason: Option<String>,
    job: Option<(String, String, bool, Overlap)>,
}

impl Store {
    /// Records a backfill; dispatchers drive it from their next pass.
    pub async fn create_backfill(&self, b: &NewBackfill) -> Result<i64, StoreError> {
        let now = crate::model::now_millis();
        let done = sqlx::query(
            "INSERT INTO backfills (job_id, from_instant, to_instant, parallel, rerun_all, \
             state, reached, total, created_by, created_at) \
             VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
        )
        .bind(b.job_id)
        .bind(b.from)
        .bind(b.to)
        .bind(b.parallel)
        .bind(i64::from(b.all))
        .bind(b.from - 1)
        .bind(b.total)
        .bind(b.created_by.as_deref())
        .bind(now)
        .execute(&self.pool)
        .await?;
        match done.last_insert_id() {
            Some(id) => Ok(id),
            None => Ok(sqlx::query_scalar(
                "SELECT MAX(id) FROM backfills WHERE job_id = ? AND created_at = ?",
            )
            .bind(b.job_id)
            .bind(now)
            .fetch_one(&self.pool)
            .await?),
        }
    }

    /// The instants in [from, to] of a job that have a succeeded run (a backfill's plan).
    pub async fn succeeded_instants(
        &self,
        job_id: i64,
        from: Millis,
        to: Millis,
    ) -> Result<std::collections::HashSet<Millis>, StoreError> {
        let found: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT instant FROM runs WHERE job_id = ? AND instant >= ? \
             AND instant <= ? AND state = 'succeeded'",
        )
        .bind(job_id)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        Ok(found.into_iter().collect())
    }

    /// Backfills newest first (of one job, or of all), each with its job's group.
    pub async fn backfills(
        &self,
        job_id: Option<i64>,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(Backfill, String)>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM backfills b LEFT JOIN jobs j ON j.id = b.job_id \
             WHERE (? IS NULL OR b.job_id = ?) AND (? IS NULL OR b.state = ?) \
             ORDER BY b.id DESC LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(job_id)
            .bind(job_id)
            .bind(state)
            .bind(state)
            .bind(limit.clamp(1, 1000))
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.backfill_of(r).await?);
        }
        Ok(out)
    }

    /// One backfill with its job's group.
    pub async fn backfill(&self, id: i64) -> Result<Option<(Backfill, String)>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM backfills b LEFT JOIN jobs j ON j.id = b.job_id WHERE b.id = ?"
        );
        match sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        {
            Some(r) => Ok(Some(self.backfill_of(&r).await?)),
            None => Ok(None),
        }
    }

    /// A backfill row with the outcomes of its runs (the latest attempt of each instant).
    async fn backfill_of(&self, r: &sqlx::any::AnyRow) -> Result<(Backfill, String), StoreError> {
        let id: i64 = r.try_get(0)?;
        let reached: Millis = r.try_get(12)?;
        let from: Millis = r.try_get(4)?;
        let mut b = Backfill {
            id,
            job_id: r.try_get(1)?,
            job: rows::text_at(r, 2)?.unwrap_or_else(|| "(deleted)".into()),
            from,
            to: r.try_get(5)?,
            parallel: r.try_get(6)?,
            all: r.try_get::<i64, _>(7)? != 0,
            state: rows::text_at(r, 8)?.unwrap_or_default(),
            total: r.try_get(9)?,
            queued: r.try_get(10)?,
            skipped: r.try_get(11)?,
            succeeded: 0,
            failed: 0,
            going: 0,
            reached: (reached >= from).then_some(reached),
            reason: rows::text_at(r, 13)?,
            created_by: rows::text_at(r, 14)?,
            created_at: r.try_get(15)?,
            ended_at: r.try_get(16)?,
        };
        let group = rows::text_at(r, 3)?.unwrap_or_default();
        let counts = sqlx::query(
            "SELECT r.state, COUNT(*) FROM runs r WHERE r.backfill_id = ? AND r.attempt = \
             (SELECT MAX(x.attempt) FROM runs x WHERE x.backfill_id = r.backfill_id \
             AND x.instant = r.instant) GROUP BY r.state",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        for c in &counts {
            let n: i64 = c.try_get(1)?;
            match rows::text_at(c, 0)?.as_deref() {
                Some("succeeded") => b.succeeded += n,
                Some("scheduled" | "dispatched" | "running") => b.going += n,
                _ => b.failed += n,
            }
        }
        Ok((b, group))
    }

    /// Cancels a running backfill: no instant is handed out any more, and its runs not
    /// claimed yet are recorded `skipped` (the ones going run to their end: `run kill` stops
    /// them). `false` if it was not running.
    pub async fn cancel_backfill(&self, id: i64, by: &str) -> Result<bool, StoreError> {
        let now = crate::model::now_millis();
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE backfills SET state = 'cancelled', reason = ?, ended_at = ? \
             WHERE id = ? AND state = 'running'",
        )
        .bind(format!("cancelled by {by}"))
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE runs SET state = 'skipped', error = ?, ended_at = ? \
             WHERE backfill_id = ? AND state = 'scheduled'",
        )
        .bind(format!("backfill {id} cancelled"))
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// One pass: every running backfill (up to a bound) hands out its next instants, one
    /// transaction each.
    pub async fn advance_backfills(&self) -> Result<Advanced, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM backfills WHERE state = 'running' ORDER BY id LIMIT ?",
        )
        .bind(PER_PASS)
        .fetch_all(&self.pool)
        .await?;
        let mut done = Advanced::default();
        for id in ids {
            // Most passes find every instant's slot taken: reads say so without the lock
            // (the locked pass counts again).
            let mut conn = self.pool.acquire().await?;
            let row = sqlx::query(
                "SELECT job_id, from_instant, reached, parallel FROM backfills \
                 WHERE id = ? AND state = 'running'",
            )
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = row else { continue };
            let (job_id, from, reached, parallel): (i64, Millis, Millis, i64) = (
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
            );
            let full = outstanding(&mut conn, id, job_id, from, reached).await? >= parallel;
            drop(conn);
            if !full {
                let one = super::retry_transient(|| self.advance_one(id)).await?;
                done.queued += one.queued;
                done.skipped += one.skipped;
                done.ended += one.ended;
            }
        }
        done.running =
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM backfills WHERE state = 'running'")
                .fetch_one(&self.pool)
                .await? as usize;
        Ok(done)
    }

    /// One backfill, in phases: lock, read, count what is going, hand out, end.
    async fn advance_one(&self, id: i64) -> Result<Advanced, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Phase `lock`: the backfill's row, then its job's (as a manual run takes it), before
        // any read.
        let locked = sqlx::query(
            "UPDATE backfills SET reached = reached WHERE id = ? AND state = 'running'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if locked.rows_affected() == 0 {
            return Ok(Advanced::default());
        }
        // Phase `read`.
        let d = read_driven(&mut tx, id).await?;
        let Some((rule, tz, paused, overlap)) = d.job.clone() else {
            end(&mut tx, id, "cancelled", Some("its job was deleted")).await?;
            tx.commit().await?;
            return Ok(Advanced {
                ended: 1,
                ..Advanced::default()
            });
        };
        sqlx::query("UPDATE jobs SET paused = paused WHERE id = ?")
            .bind(d.job_id)
            .execute(&mut *tx)
            .await?;
        // Phase `count`: how many of its instants are going; a job whose overlap policy is
        // not `allow` waits for every run of it to end, and goes one at a time.
        let outstanding = outstanding(&mut tx, id, d.job_id, d.from, d.reached).await?;
        let mut room = d.parallel - outstanding;
        if overlap != Overlap::Allow {
            let others: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM runs WHERE job_id = ? \
                 AND state IN ('scheduled', 'dispatched', 'running')",
            )
            .bind(d.job_id)
            .fetch_one(&mut *tx)
            .await?;
            room = if others + outstanding == 0 { 1 } else { 0 };
        }
        let reason = paused.then_some("waiting: its job is paused");
        if reason != d.reason.as_deref() {
            set_reason(&mut tx, id, reason).await?;
        }
        // Phase `hand out`.
        let schedule = Schedule::parse_stored(&rule, &tz)
            .map_err(|e| StoreError::Corrupt(format!("backfill {id}: the job's rule: {e}")))?;
        let mut done = Advanced::default();
        let mut reached = d.reached;
        let exhausted;
        if !paused && room > 0 {
            let next = schedule.instants_between(d.reached + 1, d.to, LOOKS_PER_PASS - 1);
            let mut all_seen = next.len() < LOOKS_PER_PASS;
            for instant in next {
                if room == 0 {
                    all_seen = false;
                    break;
                }
                reached = instant;
                if !d.all && succeeded_before(&mut tx, d.job_id, instant).await? {
                    done.skipped += 1;
                    continue;
                }
                let how = ManualRun {
                    backfill: Some(id),
                    ..ManualRun::default()
                };
                insert_next_round(&mut tx, d.job_id, instant, &how).await?;
                done.queued += 1;
                room -= 1;
            }
            exhausted = all_seen;
        } else {
            exhausted = schedule.instants_between(d.reached + 1, d.to, 0).is_empty();
        }
        sqlx::query(
            "UPDATE backfills SET reached = ?, queued = queued + ?, skipped = skipped + ? \
             WHERE id = ?",
        )
        .bind(reached)
        .bind(done.queued as i64)
        .bind(done.skipped as i64)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        // Phase `end`: every instant handed out and none going.
        if exhausted && outstanding == 0 && done.queued == 0 {
            end(&mut tx, id, "done", None).await?;
            done.ended = 1;
        }
        tx.commit().await?;
        Ok(done)
    }
}

/// How many of a backfill's instants are still going: a run of it not final, or — for a job
/// others run after — a run of its flow not final, its end not released yet, or its flow not
/// ended. Each read goes through an index whose rows are few whatever the backfill's size:
/// the runs not final (`runs_by_state`; `+ 0` keeps the planner off the backfill's own index,
/// which holds all its runs), a graph job's runs not released (`runs_to_release`), the flows
/// running (`flows_by_state`).
async fn outstanding(
    conn: &mut sqlx::AnyConnection,
    id: i64,
    job_id: i64,
    from: Millis,
    reached: Millis,
) -> Result<i64, StoreError> {
    const GOING: &str = "state IN ('scheduled', 'dispatched', 'running')";
    let mut going: HashSet<Millis> = sqlx::query_scalar::<_, i64>(&format!(
        "SELECT instant FROM runs WHERE {GOING} AND backfill_id + 0 = ?"
    ))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    let in_graph: Option<i64> =
        sqlx::query_scalar("SELECT job_id FROM job_edges WHERE upstream_id = ? LIMIT 1")
            .bind(job_id)
            .fetch_optional(&mut *conn)
            .await?;
    if in_graph.is_none() {
        return Ok(going.len() as i64);
    }
    let parts = [
        format!(
            "SELECT instant FROM runs WHERE {GOING} AND flow_root + 0 = ? AND instant >= ? \
             AND instant <= ?"
        ),
        format!(
            "SELECT instant FROM runs WHERE released = 0 AND job_id = ? AND backfill_id IS NOT NULL \
             AND state IN ({FINAL}) AND instant >= ? AND instant <= ?"
        ),
        "SELECT instant FROM flows WHERE state = 'running' AND root_job_id + 0 = ? \
         AND instant >= ? AND instant <= ?"
            .to_string(),
    ];
    for sql in &parts {
        let found: Vec<i64> = sqlx::query_scalar(sql)
            .bind(job_id)
            .bind(from)
            .bind(reached)
            .fetch_all(&mut *conn)
            .await?;
        going.extend(found);
    }
    Ok(going.len() as i64)
}

async fn read_driven(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
) -> Result<Driven, StoreError> {
    let r = sqlx::query(
        "SELECT b.job_id, b.to_instant, b.parallel, b.rerun_all, b.reached, j.schedule, \
         j.timezone, j.paused, j.overlap, j.id, b.reason, b.from_instant, j.calendars, \
         j.calendar_mode FROM backfills b \
         LEFT JOIN jobs j ON j.id = b.job_id \
         WHERE b.id = ?",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    let present: Option<i64> = r.try_get(9)?;
    let job = match present {
        Some(_) => {
            let overlap = rows::text_at(&r, 8)?.unwrap_or_default();
            Some((
                crate::schedule::days::keyed(
                    &rows::text_at(&r, 5)?.unwrap_or_default(),
                    rows::day_filter(&r, 12, 13)?.as_ref(),
                ),
                rows::text_at(&r, 6)?.unwrap_or_default(),
                r.try_get::<i64, _>(7)? != 0,
                Overlap::parse(&overlap)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown overlap `{overlap}`")))?,
            ))
        }
        None => None,
    };
    Ok(Driven {
        job_id: r.try_get(0)?,
        to: r.try_get(1)?,
        parallel: r.try_get(2)?,
        all: r.try_get::<i64, _>(3)? != 0,
        reached: r.try_get(4)?,
        reason: rows::text_at(&r, 10)?,
        from: r.try_get(11)?,
        job,
    })
}

async fn succeeded_before(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: i64,
    instant: Millis,
) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM runs WHERE job_id = ? AND instant = ? AND state = 'succeeded' LIMIT 1",
    )
    .bind(job_id)
    .bind(instant)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(found.is_some())
}

async fn set_reason(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE backfills SET reason = ? WHERE id = ?")
        .bind(reason)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn end(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
    state: &str,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE backfills SET state = ?, reason = ?, ended_at = ? WHERE id = ?")
        .bind(state)
        .bind(reason)
        .bind(crate::model::now_millis())
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
