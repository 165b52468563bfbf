//! Instants the store could not take (it was unreachable past the delivery timeout): held per
//! job until it can, so that every due instant still ends with a record — fired if it is
//! still within `late_grace` when the store is back, otherwise as its job's misfire policy
//! says (one `missed` record with the count, or one run) — never a silent gap.
//!
//! Bounded by the number of jobs: each keeps its last [`RECENT`] instants one by one and the
//! older ones as a count and the latest of them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::model::{Job, Millis};
use crate::schedule::Tally;

/// Instants kept one by one per job; older ones are only counted.
const RECENT: usize = 16;

#[derive(Default)]
pub struct Backlog {
    held: Mutex<HashMap<i64, Held>>,
}

struct Held {
    job: Arc<Job>,
    recent: VecDeque<Millis>,
    older: Option<Tally>,
}

/// What the backlog hands back once the store may take it: instants still on time, and per
/// job the late ones counted, in runs of consecutive instants of its schedule (oldest first).
#[derive(Default)]
pub struct Released {
    pub on_time: Vec<(Arc<Job>, Millis)>,
    pub late: Vec<(Arc<Job>, Vec<Tally>)>,
}

impl Backlog {
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Holds instants whose record failed.
    pub fn hold(&self, due: impl IntoIterator<Item = (Arc<Job>, Millis)>) {
        let mut held = self.lock();
        for (job, instant) in due {
            let h = held.entry(job.id).or_insert_with(|| Held::new(job.clone()));
            if h.recent.contains(&instant) {
                continue;
            }
            h.recent.push_back(instant);
            h.recent.make_contiguous().sort_unstable();
            if h.recent.len() > RECENT {
                if let Some(oldest) = h.recent.pop_front() {
                    h.add_older(Tally {
                        latest: oldest,
                        count: 1,
                        exact: true,
                    });
                }
            }
        }
    }

    /// Holds a counted run of late instants whose `missed` record failed.
    pub fn hold_counted(&self, job: Arc<Job>, tally: Tally) {
        let mut held = self.lock();
        let h = held.entry(job.id).or_insert_with(|| Held::new(job.clone()));
        h.add_older(tally);
    }

    /// Takes everything held, split at `late_before`. Jobs deleted or paused meanwhile are
    /// dropped through `current` (the job to fire for an id and its held version, `None` when
    /// gone).
    pub fn release(
        &self,
        late_before: Millis,
        current: impl Fn(i64, &Arc<Job>) -> Option<Arc<Job>>,
    ) -> Released {
        let held = std::mem::take(&mut *self.lock());
        let mut out = Released::default();
        for (id, h) in held {
            let Some(job) = current(id, &h.job) else {
                tracing::info!(job = %h.job.name, "held instants dropped: the job is gone or paused");
                continue;
            };
            let (on_time, late): (Vec<Millis>, Vec<Millis>) =
                h.recent.into_iter().partition(|t| *t >= late_before);
            out.on_time
                .extend(on_time.into_iter().map(|t| (job.clone(), t)));
            let runs = runs_of(&job, h.older, &late);
            if !runs.is_empty() {
                out.late.push((job, runs));
            }
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Held>> {
        // A panic while holding this lock cannot leave the map half-changed in a way that
        // matters (each change is one insert or push): go on with it.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Late instants in runs of consecutive instants of the job's schedule, oldest first. Found
/// by the chaos suite (seed 2): a dispatcher that held instants over two store outages counted
/// them all in one `missed: 20` record at the latest, though other dispatchers had recorded
/// instants between them in the short time the store was back; the history (and the gap
/// check) read a count as the instants just before its record, so three instants were left
/// with no record that answered for them. Each run's record answers for exactly its own.
///
/// The ones only counted (`older`) join the first run, as their instants are not known.
fn runs_of(job: &Job, older: Option<Tally>, late: &[Millis]) -> Vec<Tally> {
    let schedule = (late.len() > 1).then(|| job.timetable().ok()).flatten();
    let follows = |a: Millis, b: Millis| match &schedule {
        Some(s) => chrono::DateTime::from_timestamp_millis(a)
            .and_then(|a| s.next_after(a))
            .is_some_and(|n| n.timestamp_millis() == b),
        // Without a rule to read (it no longer parses), one run as before.
        None => true,
    };
    let mut runs: Vec<Tally> = older.into_iter().collect();
    let mut last: Option<Millis> = None;
    for &t in late {
        match runs.last_mut() {
            Some(run) if last.is_none_or(|l| follows(l, t)) => {
                run.latest = run.latest.max(t);
                run.count += 1;
            }
            _ => runs.push(Tally {
                latest: t,
                count: 1,
                exact: true,
            }),
        }
        last = Some(t);
    }
    runs
}

impl Held {
    fn new(job: Arc<Job>) -> Held {
        Held {
            job,
            recent: VecDeque::new(),
            older: None,
        }
    }

    fn add_older(&mut self, t: Tally) {
        self.older = Some(self.older.map_or(t, |o| o.merge(t)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatcher::schedule_set::tests::job;

    #[test]
    fn held_instants_come_back_on_time_or_counted_and_stay_bounded() {
        let b = Backlog::default();
        let a = Arc::new(job(1, "* * * * * *"));
        let gone = Arc::new(job(2, "* * * * * *"));
        // An hour of every-second instants, and the same ones again (a retry).
        b.hold((1..=3600).map(|s| (a.clone(), s * 1000)));
        b.hold((3590..=3600).map(|s| (a.clone(), s * 1000)));
        b.hold([(gone.clone(), 5000)]);
        assert_eq!(b.lock()[&1].recent.len(), RECENT, "bounded");
        let r = b.release(3_598_000, |id, _| (id == 1).then(|| a.clone()));
        assert!(b.is_empty());
        let on_time: Vec<Millis> = r.on_time.iter().map(|(_, t)| *t).collect();
        assert_eq!(on_time, [3_598_000, 3_599_000, 3_600_000]);
        assert_eq!(r.late.len(), 1, "the deleted job's instants are dropped");
        assert_eq!(
            r.late[0].1,
            [Tally {
                latest: 3_597_000,
                count: 3597,
                exact: true
            }]
        );
        // A counted run whose record failed again is held as it was.
        b.hold_counted(a.clone(), r.late[0].1[0]);
        let again = b.release(i64::MAX, |_, _| Some(a.clone()));
        assert_eq!(again.late[0].1[0].count, 3597);
    }

    /// Found by the chaos suite (seed 2): instants held across two store outages, with others
    /// recorded between them by another dispatcher, are counted in runs of consecutive
    /// instants, each answering for its own.
    #[test]
    fn late_instants_are_counted_in_runs_of_consecutive_instants() {
        let b = Backlog::default();
        let a = Arc::new(job(1, "* * * * * *"));
        // 51..=55 and 58..=60 held; 56, 57 recorded by another dispatcher; 62 alone.
        let held = [51, 52, 53, 54, 55, 58, 59, 60, 62];
        b.hold(held.iter().map(|s| (a.clone(), s * 1000)));
        let r = b.release(i64::MAX, |_, _| Some(a.clone()));
        let runs: Vec<(Millis, u64)> = r.late[0].1.iter().map(|t| (t.latest, t.count)).collect();
        assert_eq!(runs, [(55_000, 5), (60_000, 3), (62_000, 1)]);
        // Consecutive for its rule, not for the clock: every 10 s.
        let ten = Arc::new(job(2, "*/10 * * * * *"));
        b.hold([10, 20, 30, 50].map(|s| (ten.clone(), s * 1000)));
        let r = b.release(i64::MAX, |_, _| Some(ten.clone()));
        let runs: Vec<(Millis, u64)> = r.late[0].1.iter().map(|t| (t.latest, t.count)).collect();
        assert_eq!(runs, [(30_000, 3), (50_000, 1)]);
    }
}
