//! Every instant of every job accounted for, whatever its rule. The span check (`gaps.rs`)
//! sees only the jobs with a record in its last minute, so a daily job's hole was found a
//! day later or never. Here each job has a cursor in the store — how far each of its
//! instants has a record — read back when its next instant comes due: an instant past the
//! cursor with no record (nor a `missed: N` or catch-up record that answers for it) is a hole,
//! recorded `missed` like the span check's, under the same fence.
//!
//! When is an instant the dispatchers' no more? When every dispatcher alive has beaten since
//! the instant plus `settle` — so none is holding it over a store it could not reach (it writes
//! what it held within a poll of the store's return) — and has been running for `settle` (a
//! dispatcher just started applies the misfire policy to what it missed). With no dispatcher
//! alive nothing is decided (the misfire policy decides when one starts).

use std::collections::HashMap;

use super::gaps::{next_instant, span, GAP_REASON};
use crate::model::Millis;
use crate::schedule::Schedule;
use crate::store::{Covers, Cursor, Mark, Store};

/// How often the check runs.
const EVERY: Millis = 10_000;
/// Cursors read per check (due first): a fleet firing more than this per 10 s catches up over
/// the next checks.
const PER_CHECK: i64 = 5000;
/// Instants walked per job and check.
const MAX_STEPS: usize = 600;
/// Batches of 1,000 new jobs given a cursor per check.
const NEW_BATCHES: usize = 20;
/// When a job with no instant to come (paused, nothing to run) is looked at again.
const RECHECK: Millis = 60_000;

pub struct Cursors {
    store: Store,
    settle: Millis,
    lost_after: Millis,
    /// Jobs with an id up to this have a cursor (ids only grow).
    known_until: Option<i64>,
    quiet_until: Millis,
}

impl Cursors {
    pub fn new(store: Store, settle: Millis, lost_after: Millis, now: Millis) -> Cursors {
        Cursors {
            store,
            settle,
            lost_after,
            known_until: None,
            quiet_until: now + settle,
        }
    }

    /// The store was away: give the dispatchers `settle` to record what they held.
    pub fn wait(&mut self, now: Millis) {
        self.quiet_until = now + self.settle;
    }

    /// Cursors for the new jobs, then the due ones moved on, recording the holes; how many.
    pub async fn check(&mut self, now: Millis) -> usize {
        if now < self.quiet_until {
            return 0;
        }
        self.quiet_until = now + EVERY;
        match self.pass(now).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cursor check: cannot read or move the cursors");
                0
            }
        }
    }

    async fn pass(&mut self, now: Millis) -> Result<usize, crate::store::StoreError> {
        self.start_new_jobs(now).await?;
        // How far the dispatchers are done: every one alive beat since, and runs for `settle`.
        let Some((oldest_beat, latest_start)) = self
            .store
            .live_dispatchers_beat(now - self.lost_after)
            .await?
        else {
            return Ok(0);
        };
        if latest_start + self.settle > now {
            return Ok(0);
        }
        let horizon = (oldest_beat - self.settle).min(now - self.settle);
        let due = self.store.due_cursors(horizon, PER_CHECK).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = due.iter().map(|(j, _)| *j).collect();
        let jobs: HashMap<i64, crate::store::Scheduled> = self
            .store
            .scheduled_jobs(&ids)
            .await?
            .into_iter()
            .map(|j| (j.id, j))
            .collect();
        let after = due.iter().map(|(_, from)| *from).min().unwrap_or(horizon);
        let marks = self.store.marks_of_jobs(&ids, after).await?;
        let (mut moved, mut holes) = (Vec::with_capacity(due.len()), Vec::new());
        for (job_id, from) in due {
            let Some(job) = jobs.get(&job_id) else {
                // Paused, or nothing to run: no instant of it is due meanwhile.
                moved.push((job_id, horizon, Some(now + RECHECK)));
                continue;
            };
            let Ok(schedule) = Schedule::parse_stored(&job.schedule, &job.timezone) else {
                moved.push((job_id, horizon, Some(now + RECHECK)));
                continue;
            };
            let empty = Vec::new();
            let walked = walk(
                &schedule,
                from.max(job.updated_at),
                horizon,
                marks.get(&job_id).unwrap_or(&empty),
            );
            holes.extend(walked.holes.iter().map(|t| (job_id, *t)));
            moved.push((job_id, walked.until, next_instant(&schedule, walked.until)));
        }
        let recorded = self.record(&holes).await;
        self.store.set_cursors(&moved).await?;
        Ok(recorded)
    }

    /// Cursors for the jobs added since the last look, from now on (what a job missed before
    /// its cursor is the span check's and the misfire policy's).
    async fn start_new_jobs(&mut self, now: Millis) -> Result<(), crate::store::StoreError> {
        let mut after = match self.known_until {
            Some(id) => id,
            None => self.store.last_cursor_job().await?,
        };
        // A large fleet met for the first time gets its cursors over several checks.
        for _ in 0..NEW_BATCHES {
            let ids = self.store.jobs_after(after, 1000).await?;
            let Some(last) = ids.last().copied() else {
                break;
            };
            let scheduled: HashMap<i64, crate::store::Scheduled> = self
                .store
                .scheduled_jobs(&ids)
                .await?
                .into_iter()
                .map(|j| (j.id, j))
                .collect();
            let start = now - self.settle;
            let cursors: Vec<Cursor> = ids
                .iter()
                .map(|id| {
                    let due = scheduled
                        .get(id)
                        .and_then(|j| Schedule::parse_stored(&j.schedule, &j.timezone).ok())
                        .map_or(Some(now + RECHECK), |s| next_instant(&s, start));
                    (*id, start, due)
                })
                .collect();
            self.store.set_cursors(&cursors).await?;
            after = last;
        }
        self.known_until = Some(after);
        Ok(())
    }

    async fn record(&self, holes: &[(i64, Millis)]) -> usize {
        let mut recorded = 0;
        for (job, instant) in holes {
            match self.store.record_missed(*job, *instant, GAP_REASON).await {
                Ok(crate::store::Recorded::New(_)) => {
                    recorded += 1;
                    tracing::warn!(job, instant, "cursor check: an instant had no record");
                }
                Ok(crate::store::Recorded::AlreadyFired) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cursor check: cannot record a missed instant")
                }
            }
        }
        recorded
    }
}

/// One job's walk from its cursor.
#[derive(Debug, PartialEq)]
struct Walked {
    holes: Vec<Millis>,
    /// How far its instants are accounted for now.
    until: Millis,
}

/// The instants of `schedule` in `(from, horizon]`: each with a record, answered for by the
/// record after it (a `missed: N` one counting it, a catch-up), or a hole.
fn walk(schedule: &Schedule, from: Millis, horizon: Millis, marks: &[Mark]) -> Walked {
    let mut out = Walked {
        holes: Vec::new(),
        until: horizon.max(from),
    };
    let mut cursor = from;
    for step in 0..MAX_STEPS {
        let Some(t) = next_instant(schedule, cursor).filter(|t| *t <= horizon) else {
            return out;
        };
        cursor = t;
        if step + 1 == MAX_STEPS {
            out.until = t;
        }
        if marks.iter().any(|m| m.instant == t) {
            continue;
        }
        let answered = match marks.iter().find(|m| m.instant > t) {
            Some(Mark {
                covers: Covers::Gap,
                ..
            }) => true,
            Some(Mark {
                instant: next,
                covers: Covers::Instants(n),
                ..
            }) => span(schedule, t, *next) <= *n,
            None => false,
        };
        if !answered {
            out.holes.push(t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(s: i64, covers: Covers) -> Mark {
        Mark {
            instant: s * 1000,
            covers,
            recorded_at: s * 1000,
        }
    }

    #[test]
    fn a_rare_jobs_instant_without_a_record_is_a_hole_even_with_nothing_after_it() {
        // Every 10 s: 10 and 30 recorded, 20 not, 40 not and nothing after it.
        let rule = Schedule::parse("*/10 * * * * *", "UTC").expect("rule");
        let marks = [mark(10, Covers::Instants(1)), mark(30, Covers::Instants(1))];
        let w = walk(&rule, 0, 40_000, &marks);
        assert_eq!(w.holes, [20_000, 40_000]);
        assert_eq!(w.until, 40_000);
        // A `missed: 2` record at 30 answers for 20; a catch-up for everything before it.
        let counted = [mark(10, Covers::Instants(1)), mark(30, Covers::Instants(2))];
        assert_eq!(walk(&rule, 0, 30_000, &counted).holes, Vec::<Millis>::new());
        let caught_up = [mark(40, Covers::Gap)];
        assert_eq!(
            walk(&rule, 0, 40_000, &caught_up).holes,
            Vec::<Millis>::new()
        );
    }
}
