//! The dispatcher's schedule: every active job with its parsed rule, and a min-heap of
//! (next instant, job). A job's entry carries a generation; heap items of an older generation
//! (the job was edited, paused or deleted) are dropped when they surface, so no search of the
//! heap is ever needed.
//!
//! Parsed rules are interned by (rule, zone): croner's parsed form is about 5 KB (its year
//! bitfield alone is 5,000 bytes), and fleets repeat rules, so identical rules share one.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::model::{Job, Millis};
use crate::schedule::{Schedule, Tally};

/// Schedule steps spent counting one job's missed instants at start-up: the latest and the
/// count are all the policy needs, so a week's outage costs no more than a minute's.
const MISFIRE_STEPS: u32 = 10_000;

struct Entry {
    job: Arc<Job>,
    schedule: Arc<Schedule>,
    generation: u64,
    /// The heap holds this job's instants after this time, never the ones at or before it.
    planned_from: Millis,
}

type RuleKey = (String, String);

#[derive(Default)]
pub struct ScheduleSet {
    entries: HashMap<i64, Entry>,
    rules: HashMap<RuleKey, Arc<Schedule>>,
    heap: BinaryHeap<Reverse<(Millis, i64, u64)>>,
    next_generation: u64,
}

fn to_utc(ms: Millis) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl ScheduleSet {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Forgets everything (before a full reload).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.rules.clear();
        self.heap.clear();
    }

    /// Adds a page of jobs, scheduling each from `now`.
    pub fn extend(&mut self, jobs: Vec<Job>, now: Millis) {
        for job in jobs {
            let id = job.id;
            self.upsert(id, Some(job), now);
        }
    }

    /// The parsed rule, shared with every job that has the same rule and zone.
    fn intern(&mut self, job: &Job) -> Result<Arc<Schedule>, crate::schedule::ScheduleError> {
        let key = (job.schedule.clone(), job.timezone.clone());
        if let Some(s) = self.rules.get(&key) {
            return Ok(s.clone());
        }
        let s = Arc::new(Schedule::parse(&job.schedule, &job.timezone)?);
        self.rules.insert(key, s.clone());
        Ok(s)
    }

    fn remove(&mut self, id: i64) {
        if let Some(old) = self.entries.remove(&id) {
            // Only the intern table and this entry held it: drop the rule too.
            if Arc::strong_count(&old.schedule) == 2 {
                self.rules
                    .remove(&(old.job.schedule.clone(), old.job.timezone.clone()));
            }
        }
    }

    /// Adds, replaces (`Some`) or removes (`None`) a job. A paused job, or one that is not a
    /// shell command, is not scheduled.
    pub fn upsert(&mut self, id: i64, job: Option<Job>, now: Millis) {
        self.remove(id);
        let Some(job) = job else { return };
        if job.paused || (job.command.is_none() && job.http_url.is_none()) {
            return;
        }
        let schedule = match self.intern(&job) {
            Ok(s) => s,
            Err(e) => {
                // Stored jobs were validated; a rule that no longer parses (zone data changed)
                // is reported, not fatal.
                tracing::error!(job = %job.name, error = %e, "cannot schedule job");
                return;
            }
        };
        self.next_generation += 1;
        let generation = self.next_generation;
        if let Some(next) = schedule.next_after(to_utc(now)) {
            self.heap
                .push(Reverse((next.timestamp_millis(), id, generation)));
        }
        self.entries.insert(
            id,
            Entry {
                job: Arc::new(job),
                schedule,
                generation,
                planned_from: now,
            },
        );
    }

    /// The ids of the jobs scheduled.
    pub fn ids(&self) -> Vec<i64> {
        self.entries.keys().copied().collect()
    }

    /// Whether `job` is scheduled here exactly as stored (same last edit), or rightly absent
    /// (paused, nothing to run).
    pub fn is_current(&self, job: &Job) -> bool {
        match self.entries.get(&job.id) {
            Some(e) => e.job.updated_at == job.updated_at,
            None => job.paused || (job.command.is_none() && job.http_url.is_none()),
        }
    }

    pub fn job(&self, id: i64) -> Option<Arc<Job>> {
        self.entries.get(&id).map(|e| e.job.clone())
    }

    /// Instants missed while no dispatcher ran, per job: after the job's last recorded instant
    /// (or its last edit), within its misfire window, and up to `until` — but never one the
    /// heap will fire (those after the job was planned), so none is both. For each job with
    /// any: (job, latest missed instant, how many). `run_once` jobs run the latest once; the
    /// others record it `missed`. Never a storm of catch-up runs.
    pub fn misfired(&self, last: &HashMap<i64, Millis>, until: Millis) -> Vec<(Arc<Job>, Tally)> {
        let mut out = Vec::new();
        for (id, entry) in &self.entries {
            let job = &entry.job;
            let until = until.min(entry.planned_from);
            let from = last
                .get(id)
                .copied()
                .unwrap_or(job.updated_at)
                .max(job.updated_at)
                .max(until - job.misfire_window_secs.saturating_mul(1000));
            if let Some(t) = entry
                .schedule
                .tally(to_utc(from), to_utc(until), MISFIRE_STEPS)
            {
                out.push((job.clone(), t));
            }
        }
        out
    }

    /// The earliest pending instant of a live entry.
    pub fn next_instant(&mut self) -> Option<Millis> {
        while let Some(Reverse((t, id, g))) = self.heap.peek().copied() {
            if self.entries.get(&id).map(|e| e.generation) == Some(g) {
                return Some(t);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes and returns every (job, instant) due at `now`, scheduling each job's next
    /// instant strictly after the one returned (never after `now`: a late loop does not skip).
    /// Instants before `late_before` (the loop fell behind: paused, clock stepped) come back
    /// counted, one [`Tally`] per job, not one by one: a clock stepped a week forward costs
    /// a bounded count, not 604,800 entries per every-second job.
    pub fn pop_due(&mut self, now: Millis, late_before: Millis) -> Popped {
        let mut popped = Popped::default();
        while let Some(Reverse((t, id, g))) = self.heap.peek().copied() {
            if t > now {
                break;
            }
            self.heap.pop();
            let Some(entry) = self.entries.get(&id) else {
                continue;
            };
            if entry.generation != g {
                continue;
            }
            let fired = if t < late_before {
                let until = to_utc(late_before - 1);
                let tally = entry
                    .schedule
                    .tally(to_utc(t - 1), until, MISFIRE_STEPS)
                    .unwrap_or(Tally {
                        latest: t,
                        count: 1,
                        exact: true,
                    });
                popped.late.push((entry.job.clone(), tally));
                tally.latest
            } else {
                popped.due.push((entry.job.clone(), t));
                t
            };
            if let Some(next) = entry.schedule.next_after(to_utc(fired)) {
                self.heap.push(Reverse((next.timestamp_millis(), id, g)));
            }
        }
        popped
    }
}

/// What [`ScheduleSet::pop_due`] found due: on time, and late (counted per job).
#[derive(Debug, Default)]
pub struct Popped {
    pub due: Vec<(Arc<Job>, Millis)>,
    pub late: Vec<(Arc<Job>, Tally)>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::Misfire;

    pub(crate) fn job(id: i64, rule: &str) -> Job {
        Job {
            id,
            name: format!("j{id}"),
            group: "default".into(),
            env: Default::default(),
            schedule: rule.into(),
            timezone: "UTC".into(),
            command: Some("true".into()),
            http_url: None,
            http_method: "GET".into(),
            http_headers: Default::default(),
            http_body: None,
            http_expect_status: 0,
            timeout_secs: None,
            run_at: None,
            fanout: crate::model::Fanout::One,
            paused: false,
            overlap: crate::model::Overlap::Allow,
            retries: 0,
            retry_backoff_secs: 10,
            misfire: Misfire::Skip,
            misfire_window_secs: 3600,
            alarm_on: Vec::new(),
            alarm_channels: Vec::new(),
            run_as: None,
            description: None,
            admin_email: None,
            admin_mobile: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn missed_instants_are_reported_once_per_job_within_the_window() {
        let mut s = ScheduleSet::default();
        let mut once = job(1, "* * * * * *");
        once.misfire = Misfire::RunOnce;
        once.misfire_window_secs = 60;
        let skip = job(2, "* * * * * *");
        s.extend(vec![once, skip], 100_000);
        let last: HashMap<i64, Millis> = [(1, 90_000), (2, 90_000)].into_iter().collect();
        let mut got: Vec<(i64, Millis, u64)> = s
            .misfired(&last, 100_500)
            .into_iter()
            .map(|(j, t)| (j.id, t.latest, t.count))
            .collect();
        got.sort_unstable();
        // Both jobs missed 91..=100 s: ten instants, the latest reported once per job.
        assert_eq!(got, vec![(1, 100_000, 10), (2, 100_000, 10)]);
        // Asked up to a later time, still only what the heap will not fire (planned at 100 s).
        let later = s.misfired(&last, 103_000);
        assert!(
            later
                .iter()
                .all(|(_, t)| t.latest == 100_000 && t.count == 10),
            "{later:?}"
        );
        // A long downtime: only the latest instant, within the window, once.
        let last: HashMap<i64, Millis> = [(1, 0)].into_iter().collect();
        let long = s.misfired(&last, 1_000_000_000);
        let once = long.iter().find(|(j, _)| j.id == 1).expect("job 1");
        assert_eq!(once.1.count, 60, "only the 60 s window counts");
        let mut s2 = ScheduleSet::default();
        let mut hourly = job(3, "0 0 * * * *");
        hourly.misfire = Misfire::RunOnce;
        hourly.misfire_window_secs = 60;
        s2.extend(vec![hourly], 5_400_000);
        // Last hour boundary was 30 minutes ago: out of a 60 s window.
        assert!(s2.misfired(&HashMap::new(), 5_400_000).is_empty());
    }

    #[test]
    fn a_week_of_missed_every_second_instants_is_counted_without_walking_it() {
        let week = 7 * 86_400_000;
        let mut s = ScheduleSet::default();
        let mut cron = job(1, "* * * * * *");
        cron.misfire_window_secs = 7 * 86_400;
        let mut every = job(2, "@every 1s");
        every.misfire_window_secs = 7 * 86_400;
        let mut sparse = job(3, "0 0 12 * * *");
        sparse.misfire_window_secs = 7 * 86_400;
        s.extend(vec![cron, every, sparse], week);
        let last: HashMap<i64, Millis> = [(1, 0), (2, 0), (3, 0)].into_iter().collect();
        let mut got: Vec<(i64, Tally)> = s
            .misfired(&last, week)
            .into_iter()
            .map(|(j, t)| (j.id, t))
            .collect();
        got.sort_unstable_by_key(|(id, _)| *id);
        // 604,800 instants each for the every-second rules: the latest is exact, the count
        // of the cron form extrapolated from 10,000 steps, that of `@every` computed.
        assert_eq!(got[0].1.latest, week);
        assert_eq!(got[0].1.count, 604_800);
        assert!(!got[0].1.exact);
        assert_eq!(got[0].1.to_string(), "about 604800");
        assert_eq!(
            got[1].1,
            Tally {
                latest: week,
                count: 604_800,
                exact: true
            }
        );
        // Noon of days 1..=7 (12:00 on day 0 is after the last record at 00:00, too).
        assert_eq!(
            got[2].1,
            Tally {
                latest: 6 * 86_400_000 + 43_200_000,
                count: 7,
                exact: true
            }
        );
    }

    #[test]
    fn fires_each_instant_once_in_order_and_follows_edits() {
        let mut s = ScheduleSet::default();
        s.extend(
            vec![
                job(1, "* * * * * *"),
                job(2, "*/2 * * * * *"),
                job(3, "* * * * * *"),
            ],
            0,
        );
        assert_eq!(s.rules.len(), 2, "identical rules are shared");
        s.upsert(3, None, 0);
        assert_eq!(s.next_instant(), Some(1000));
        let due: Vec<(i64, Millis)> = s
            .pop_due(2000, 0)
            .due
            .into_iter()
            .map(|(j, t)| (j.id, t))
            .collect();
        assert_eq!(due, vec![(1, 1000), (1, 2000), (2, 2000)]);
        assert!(s.pop_due(2000, 0).due.is_empty());
        // Pausing drops the job; its stale heap items are skipped.
        let mut paused = job(1, "* * * * * *");
        paused.paused = true;
        s.upsert(1, Some(paused), 2000);
        let due: Vec<i64> = s
            .pop_due(4000, 0)
            .due
            .into_iter()
            .map(|(j, _)| j.id)
            .collect();
        assert_eq!(due, vec![2]);
        // Deleting removes it entirely.
        s.upsert(2, None, 4000);
        assert_eq!(s.next_instant(), None);
        assert_eq!(s.len(), 0);
        assert!(s.rules.is_empty(), "unused rules are dropped");
    }

    #[test]
    fn instants_found_late_come_back_counted_per_job() {
        let mut s = ScheduleSet::default();
        s.extend(vec![job(1, "* * * * * *"), job(2, "0 0 * * * *")], 0);
        // A clock stepped a day forward: now = 86,400 s, grace 5 s.
        let now = 86_400_000;
        let popped = s.pop_due(now, now - 5000);
        let mut late: Vec<(i64, Tally)> = popped.late.iter().map(|(j, t)| (j.id, *t)).collect();
        late.sort_unstable_by_key(|(id, _)| *id);
        // Before 86,395 s is late: 1 s ..= 86,394 s for the every-second job (counted from
        // 10,000 steps), hours 1..=23 for the hourly one.
        assert_eq!(late[0].1.latest, now - 6000);
        assert_eq!(late[0].1.count, 86_394);
        assert_eq!(
            late[1].1,
            Tally {
                latest: 23 * 3_600_000,
                count: 23,
                exact: true
            }
        );
        // From 86,395 s on time, one by one; the hour at 86,400 s too.
        let due: Vec<(i64, Millis)> = popped.due.iter().map(|(j, t)| (j.id, *t)).collect();
        let on_time: Vec<Millis> = (86_395..=86_400).map(|s| s * 1000).collect();
        assert_eq!(
            due.iter()
                .filter(|(id, _)| *id == 1)
                .map(|(_, t)| *t)
                .collect::<Vec<_>>(),
            on_time
        );
        assert_eq!(due.iter().filter(|(id, _)| *id == 2).count(), 1);
        assert!(s.pop_due(now, now - 5000).due.is_empty());
    }
}
