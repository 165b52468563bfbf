//! The gap check: a scheduled instant old enough that every dispatcher is done with it, yet
//! with no record — while a later instant of the same job was fired as usual — fell between
//! dispatchers (one locked it and died before recording it, say). The monitor records it
//! `missed` ("no dispatcher recorded it"), alarmed like any missed instant, so that a hole in a
//! job's history is never silent. Under the store's fence: several monitors record it once, and
//! a dispatcher that records it after all finds it taken.
//!
//! Instants the misfire policy answered (a `missed: N instant(s) …` record, a `misfire` run)
//! are covered back to the record before, and instants after a job's last record are left to
//! the dispatchers (the `dispatchers_down` alarm covers none firing at all).

use std::collections::HashMap;

use crate::model::Millis;
use crate::schedule::Schedule;
use crate::store::{Covers, Mark, Store};

/// Schedule steps per job and check: a minute of every-second instants is 60.
const MAX_STEPS: usize = 600;

/// The reason of a hole's record: "missed: 1 instant(s)" as every missed record counts.
pub const GAP_REASON: &str =
    "missed: 1 instant(s) that no dispatcher recorded (found by the monitor's gap check)";

/// How far back one check looks (a monitor that was away longer leaves the rest).
const WINDOW: Millis = 60_000;

/// How often the check runs.
const EVERY: Millis = 10_000;

/// Parsed rules kept between checks (about 5 KB each).
const RULES_KEPT: usize = 4096;

pub struct Gaps {
    store: Store,
    /// Instants younger than this are the dispatchers' still (delivery, held records, a second
    /// look after a lock's TTL).
    settle: Millis,
    /// Where the next check starts: the end of the last one, or the first instant it left
    /// open (no record, nothing recorded after it yet: a dispatcher may still hold a record
    /// after it, and when one comes that instant may turn out to be a hole).
    checked_until: Millis,
    /// No check before this (the store just came back: held instants are being recorded; or
    /// the last check was less than `EVERY` ago).
    quiet_until: Millis,
    schedules: HashMap<(String, String), Option<Schedule>>,
}

impl Gaps {
    /// A new monitor (or the next generation after a reload) looks back a whole window: what
    /// the one before it left open is not passed over.
    pub fn new(store: Store, settle: Millis, now: Millis) -> Gaps {
        Gaps {
            store,
            settle,
            checked_until: now - settle - WINDOW,
            quiet_until: now + settle,
            schedules: HashMap::new(),
        }
    }

    /// The store was away: give the dispatchers `settle` to record what they held.
    pub fn wait(&mut self, now: Millis) {
        self.quiet_until = now + self.settle;
    }

    /// Records the holes found since the last check; returns how many.
    pub async fn check(&mut self, now: Millis) -> usize {
        if now < self.quiet_until {
            return 0;
        }
        let until = now - self.settle;
        let from = self.checked_until.max(until - WINDOW);
        if until <= from {
            return 0;
        }
        let (found, open) = match self.find(from, until, now).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "gap check: cannot read the schedule or the runs");
                self.quiet_until = now + EVERY;
                return 0;
            }
        };
        let mut recorded = 0;
        for (job, instant) in found {
            match self.store.record_missed(job, instant, GAP_REASON).await {
                Ok(crate::store::Recorded::New(_)) => {
                    recorded += 1;
                    tracing::warn!(job, instant, "gap check: an instant had no record");
                }
                Ok(crate::store::Recorded::AlreadyFired) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "gap check: cannot record a missed instant");
                    return recorded;
                }
            }
        }
        // Found by the chaos suite (seed 2): an instant with nothing after it yet was passed
        // over for good, and the record after it came later (a dispatcher held it over a store
        // outage): the next check starts at the first instant left open.
        self.checked_until = open.map_or(until, |t| (t - 1).min(until));
        self.quiet_until = now + EVERY;
        recorded
    }

    /// The (job, instant) of `(from, until]` with no record, followed by one that does not
    /// answer for it; and the first instant left open (no record at or after it yet).
    async fn find(
        &mut self,
        from: Millis,
        until: Millis,
        now: Millis,
    ) -> Result<(Vec<(i64, Millis)>, Option<Millis>), crate::store::StoreError> {
        // The span's records, and those after it up to now (what follows a hole): only a job
        // with a record since `from` can have a hole, so a large fleet of rare jobs costs
        // nothing here.
        let marks = self.store.marks_between(from, now).await?;
        let mut ids: Vec<i64> = marks.keys().copied().collect();
        ids.sort_unstable();
        let jobs = self.store.scheduled_jobs(&ids).await?;
        // Parsed rules of the jobs checked now, at most RULES_KEPT (about 5 KB each): the
        // cache never outgrows the rules in use, nor a bound.
        let live: std::collections::HashSet<(String, String)> = jobs
            .iter()
            .map(|j| (j.schedule.clone(), j.timezone.clone()))
            .collect();
        self.schedules.retain(|k, _| live.contains(k));
        let mut out = Vec::new();
        let mut first_open: Option<Millis> = None;
        for job in jobs {
            let key = (job.schedule.clone(), job.timezone.clone());
            let parsed;
            let schedule = match self.schedules.get(&key) {
                Some(s) => s,
                None if self.schedules.len() < RULES_KEPT => self
                    .schedules
                    .entry(key)
                    .or_insert_with(|| Schedule::parse_stored(&job.schedule, &job.timezone).ok()),
                None => {
                    parsed = Schedule::parse_stored(&job.schedule, &job.timezone).ok();
                    &parsed
                }
            };
            let Some(schedule) = schedule else { continue };
            let start = from.max(job.updated_at);
            let empty = Vec::new();
            let marks = marks.get(&job.id).unwrap_or(&empty);
            let found = holes(schedule, start, until, marks, now - self.settle);
            out.extend(found.holes.into_iter().map(|t| (job.id, t)));
            first_open = match (first_open, found.open) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok((out, first_open))
    }
}

/// What one job's check found.
#[derive(Debug, Default, PartialEq)]
struct Found {
    /// Instants without a mark that the mark after them does not answer for.
    holes: Vec<Millis>,
    /// The first instant without a mark and with none after it yet: the dispatchers' still.
    open: Option<Millis>,
}

/// The instants of `schedule` in `(start, until]` without a mark that the mark after them
/// does not answer for: a plain record answers for itself, a `missed: N` record for its N
/// instants, a catch-up run for the whole gap before it.
///
/// One rule says when a dispatcher may still record such an instant: until the mark after it
/// has stood `settle` (written at or before `settled`), the instant is left open. A dispatcher
/// that held instants over a store outage — one the monitor may not see, as SQLite
/// write-locked but readable — writes its new instants and what it held within a poll of the
/// store's return; a fresher mark after a hole may be the first of those writes.
fn holes(
    schedule: &Schedule,
    start: Millis,
    until: Millis,
    marks: &[Mark],
    settled: Millis,
) -> Found {
    let mut out = Found::default();
    let mut cursor = start;
    for _ in 0..MAX_STEPS {
        let Some(t) = next_instant(schedule, cursor).filter(|t| *t <= until) else {
            break;
        };
        cursor = t;
        if marks.iter().any(|m| m.instant == t) {
            continue;
        }
        match marks.iter().find(|m| m.instant > t) {
            Some(m) if m.recorded_at > settled => {
                out.open.get_or_insert(t);
            }
            Some(Mark {
                instant: next,
                covers: Covers::Instants(n),
                ..
            }) if span(schedule, t, *next) > *n => out.holes.push(t),
            Some(_) => {}
            None => {
                out.open.get_or_insert(t);
            }
        }
    }
    out
}

pub(super) fn next_instant(schedule: &Schedule, after: Millis) -> Option<Millis> {
    chrono::DateTime::from_timestamp_millis(after)
        .and_then(|c| schedule.next_after(c))
        .map(|t| t.timestamp_millis())
}

/// How many instants from `from` to `to`, both included (at most MAX_STEPS are counted).
pub(super) fn span(schedule: &Schedule, from: Millis, to: Millis) -> u64 {
    let mut count = 1;
    let mut cursor = from;
    while count < MAX_STEPS as u64 {
        match next_instant(schedule, cursor).filter(|t| *t <= to) {
            Some(t) => {
                count += 1;
                cursor = t;
            }
            None => break,
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hole_is_an_instant_without_a_record_before_a_plain_one() {
        let every = Schedule::parse("* * * * * *", "UTC").expect("rule");
        let mark = |s: i64, covers: Covers| Mark {
            instant: s * 1000,
            covers,
            recorded_at: s * 1000,
        };
        let plain = Covers::Instants(1);
        // 1, 2 fired; 3, 4 nothing; 5 fired: 3 and 4 are holes.
        let marks = [mark(1, plain), mark(2, plain), mark(5, plain)];
        assert_eq!(holes(&every, 0, 5000, &marks, i64::MAX).holes, [3000, 4000]);
        // … unless the record after them is too fresh to prove anything: a dispatcher
        // writing what it held may not be done.
        let fresh = holes(&every, 0, 5000, &marks, 4999);
        assert_eq!((fresh.holes.len(), fresh.open), (0, Some(3000)));
        // Found by the chaos suite (seed 2): a job whose dispatchers keep writing late records
        // (held over store outages one after another) still has its holes recorded, once the
        // record after them has stood: waiting for the job to be quiet waited past the window.
        let late = Mark {
            instant: 9000,
            covers: Covers::Instants(1),
            recorded_at: 20_000,
        };
        let busy = [mark(1, plain), mark(2, plain), mark(5, plain), late];
        assert_eq!(holes(&every, 0, 5000, &busy, 19_000).holes, [3000, 4000]);
        // The misfire policy answered for them (a catch-up run, or a count of 3): no hole.
        for covers in [Covers::Gap, Covers::Instants(3)] {
            let marks = [
                mark(1, plain),
                mark(2, plain),
                mark(5, covers),
                mark(6, plain),
            ];
            assert_eq!(
                holes(&every, 0, 6000, &marks, i64::MAX),
                Found::default(),
                "{covers:?}"
            );
        }
        // Nothing after them yet: the dispatchers' business still.
        let marks = [mark(1, plain)];
        let found = holes(&every, 0, 3000, &marks, i64::MAX);
        assert!(found.holes.is_empty());
        // … and left open, so the next check looks at them again.
        assert_eq!(found.open, Some(2000));
    }

    /// Found by the chaos suite (seed 2): a dispatcher holding two instants over a store
    /// outage was killed; another recorded "missed: 1 instant(s)" for the next one, and the
    /// gap check took that for the answer to the whole gap. A count answers for its instants
    /// only: the two before it are holes.
    #[test]
    fn a_missed_record_answers_only_for_its_count() {
        let every = Schedule::parse("* * * * * *", "UTC").expect("rule");
        let marks = |last_counts: u64| {
            [
                Mark {
                    instant: 8000,
                    covers: Covers::Instants(1),
                    recorded_at: 8000,
                },
                Mark {
                    instant: 11_000,
                    covers: Covers::Instants(last_counts),
                    recorded_at: 11_000,
                },
            ]
        };
        assert_eq!(
            holes(&every, 7000, 11_000, &marks(1), i64::MAX).holes,
            [9000, 10_000]
        );
        assert_eq!(
            holes(&every, 7000, 11_000, &marks(2), i64::MAX).holes,
            [9000]
        );
    }

    /// Found by the chaos suite (seed 2, on the code that fixed the one above): two instants
    /// with nothing after them at one check were passed over for good, and the record after
    /// them came at the next (a dispatcher had held it over a store outage). The instants left
    /// open are looked at again.
    #[tokio::test]
    async fn instants_left_open_are_checked_again_when_a_record_follows_them() {
        let t = crate::store::tests::temp_store("gaps-open").await;
        let (job, base) = every_second(&t).await;
        let settle = 1000;
        let mut gaps = Gaps::new(t.store.clone(), settle, base);
        fire(&t, job, base).await;
        fire(&t, job, base + 1000).await;
        // base+2000 and base+3000 have nothing at or after them yet: not holes, left open.
        assert_eq!(gaps.check(base + settle + 3000).await, 0);
        // The record after them comes late, counting for itself only.
        fire(&t, job, base + 4000).await;
        assert_eq!(gaps.check(base + settle + 4000 + EVERY).await, 2);
        let again = gaps.check(base + settle + 4000 + 2 * EVERY).await;
        assert_eq!(again, 0, "each hole is recorded once");
    }

    /// Found by the chaos suite (seed 2): every monitor generation started its checks at its
    /// own start, so a hole the one before had left open (its record after it too fresh) was
    /// never looked at again once a reload or a restart replaced it. A new monitor looks back
    /// a whole window.
    #[tokio::test]
    async fn a_new_monitor_checks_what_the_one_before_it_left_open() {
        let t = crate::store::tests::temp_store("gaps-restart").await;
        let (job, base) = every_second(&t).await;
        for s in [0, 1000, 3000] {
            fire(&t, job, base + s).await;
        }
        // The monitor before never got to check; this one starts 8 s after the hole.
        let settle = 1000;
        let start = base + 10_000;
        let mut gaps = Gaps::new(t.store.clone(), settle, start);
        assert_eq!(gaps.check(start).await, 0, "quiet while dispatchers settle");
        assert_eq!(gaps.check(start + settle).await, 1);
    }

    /// A job firing every second, and its first instant after its last change (the check
    /// starts there).
    async fn every_second(t: &crate::store::tests::TempStore) -> (i64, Millis) {
        let job = t
            .store
            .insert_job(&crate::store::tests::spec("every"))
            .await
            .expect("job");
        (job.id, (job.updated_at / 1000 + 1) * 1000)
    }

    async fn fire(t: &crate::store::tests::TempStore, job: i64, instant: Millis) {
        use crate::model::{RunState, Trigger};
        t.store
            .record_fire(job, instant, "", Trigger::Schedule, RunState::Succeeded)
            .await
            .expect("fire");
    }
}
