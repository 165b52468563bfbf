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
/// job the late ones counted.
#[derive(Default)]
pub struct Released {
    pub on_time: Vec<(Arc<Job>, Millis)>,
    pub late: Vec<(Arc<Job>, Tally)>,
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
            let mut late = h.older;
            for instant in h.recent {
                if instant >= late_before {
                    out.on_time.push((job.clone(), instant));
                    continue;
                }
                let t = late.get_or_insert(Tally {
                    latest: instant,
                    count: 0,
                    exact: true,
                });
                t.latest = t.latest.max(instant);
                t.count += 1;
            }
            if let Some(t) = late {
                out.late.push((job, t));
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

impl Held {
    fn new(job: Arc<Job>) -> Held {
        Held {
            job,
            recent: VecDeque::new(),
            older: None,
        }
    }

    fn add_older(&mut self, t: Tally) {
        let o = self.older.get_or_insert(Tally {
            latest: t.latest,
            count: 0,
            exact: true,
        });
        o.latest = o.latest.max(t.latest);
        o.count += t.count;
        o.exact &= t.exact;
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
            Tally {
                latest: 3_597_000,
                count: 3597,
                exact: true
            }
        );
        // A counted run whose record failed again is held as it was.
        b.hold_counted(a.clone(), r.late[0].1);
        let again = b.release(i64::MAX, |_, _| Some(a.clone()));
        assert_eq!(again.late[0].1.count, 3597);
    }
}
