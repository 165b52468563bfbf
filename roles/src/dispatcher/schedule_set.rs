//! The dispatcher's schedule: every active job with its rule, and a min-heap of (next instant,
//! job). A job's entry carries a generation; heap items of an older generation (the job was
//! edited, paused or deleted) are dropped when they surface, so no search of the heap is ever
//! needed.
//!
//! Sized for a million jobs. An entry holds only what plans instants (about 50 bytes); rules
//! are interned by (rule, zone), so a repeated rule is one string; the parsed form is kept for
//! the first `dispatcher.rules_kept` distinct rules, and the others are parsed again when their
//! job fires: about a microsecond for a plain rule in UTC or a fixed zone (the compact form),
//! ~17 µs for croner's (about 5 KB, its year bitfield alone is 5,000 bytes). Whole jobs
//! are kept for the first `dispatcher.jobs_kept` jobs; the others are read from the store when
//! they fire, one query per burst ([`ScheduleSet::job`] says which are kept).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::model::{Job, Millis};
use crate::schedule::{Schedule, ScheduleError, Tally};
use crate::store::Planned;

/// Schedule steps spent counting one job's missed instants at start-up: the latest and the
/// count are all the policy needs, so a week's outage costs no more than a minute's.
const MISFIRE_STEPS: u32 = 10_000;

/// A scheduled job: what plans its instants (40 bytes).
struct Entry {
    rule: u32,
    /// Wraps after 4 billion edits; only equality with a heap item's counts.
    generation: u32,
    /// The heap holds this job's instants after this time, never the ones at or before it.
    planned_from: Millis,
    /// The job's latest instant at or before `planned_from` (`Millis::MIN` if none): with it
    /// the start-up misfire check skips, without parsing its rule, a job that missed nothing.
    latest_planned: Millis,
    updated_at: Millis,
    /// At most a week (`MAX_MISFIRE_WINDOW_SECS`).
    misfire_window_secs: u32,
}

/// One distinct (rule, zone), shared by every job that has it.
struct Rule {
    text: Arc<str>,
    tz: Tz,
    users: u32,
    parsed: Option<Arc<Schedule>>,
}

/// The distinct rules, by id (a slot freed when its last job goes is reused).
#[derive(Default)]
struct Rules {
    slots: Vec<Option<Rule>>,
    free: Vec<u32>,
    by_key: HashMap<(Arc<str>, Tz), u32>,
    parsed: usize,
    keep_parsed: usize,
}

impl Rules {
    /// The rule's id, its use counted; parsed now if new (and kept parsed if there is room).
    fn intern(&mut self, text: &str, zone: &str) -> Result<(u32, Arc<Schedule>), ScheduleError> {
        let tz = crate::schedule::parse_timezone(zone)?;
        if let Some(&id) = self.by_key.get(&(Arc::from(text), tz)) {
            let schedule = self.schedule(id)?;
            self.count_user(id);
            return Ok((id, schedule));
        }
        let schedule = Arc::new(Schedule::parse_stored(text, zone)?);
        Ok((self.insert(text, tz, schedule.clone()), schedule))
    }

    /// A new rule, parsed already, with one user.
    fn insert(&mut self, text: &str, tz: Tz, schedule: Arc<Schedule>) -> u32 {
        let text: Arc<str> = Arc::from(text);
        let parsed = (self.parsed < self.keep_parsed).then_some(schedule);
        self.parsed += usize::from(parsed.is_some());
        let rule = Rule {
            text: text.clone(),
            tz,
            users: 1,
            parsed,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(rule);
                id
            }
            None => {
                self.slots.push(Some(rule));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_key.insert((text, tz), id);
        id
    }

    fn lookup(&self, text: &str, zone: &str) -> Option<u32> {
        let tz = crate::schedule::parse_timezone(zone).ok()?;
        self.by_key.get(&(Arc::from(text), tz)).copied()
    }

    /// The parsed rule: kept, or parsed again.
    fn schedule(&self, id: u32) -> Result<Arc<Schedule>, ScheduleError> {
        match self.slots.get(id as usize) {
            Some(Some(Rule {
                parsed: Some(s), ..
            })) => Ok(s.clone()),
            Some(Some(r)) => Ok(Arc::new(Schedule::parse_stored(&r.text, r.tz.name())?)),
            _ => Err(ScheduleError::Rule {
                rule: format!("#{id}"),
                reason: "no such rule".into(),
            }),
        }
    }

    /// One user more.
    fn count_user(&mut self, id: u32) {
        if let Some(Some(r)) = self.slots.get_mut(id as usize) {
            r.users += 1;
        }
    }

    /// One user fewer; the rule goes with its last.
    fn release(&mut self, id: u32) {
        let Some(slot) = self.slots.get_mut(id as usize) else {
            return;
        };
        let gone = match slot {
            Some(r) => {
                r.users -= 1;
                r.users == 0
            }
            None => false,
        };
        if gone {
            if let Some(r) = slot.take() {
                self.parsed -= usize::from(r.parsed.is_some());
                self.by_key.remove(&(r.text, r.tz));
                self.free.push(id);
            }
        }
    }

    fn clear(&mut self) {
        *self = Rules {
            keep_parsed: self.keep_parsed,
            ..Rules::default()
        };
    }
}

pub struct ScheduleSet {
    entries: HashMap<i64, Entry>,
    rules: Rules,
    /// Whole jobs, for the first `keep_jobs`.
    jobs: HashMap<i64, Arc<Job>>,
    keep_jobs: usize,
    heap: BinaryHeap<Reverse<(Millis, i64, u32)>>,
    next_generation: u32,
}

impl Default for ScheduleSet {
    /// Keeps everything (tests); a dispatcher sets its bounds from its config.
    fn default() -> ScheduleSet {
        ScheduleSet::with_limits(usize::MAX, usize::MAX)
    }
}

fn to_utc(ms: Millis) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A job planned from `now` with its parsed rule: its first instant and its latest before.
#[derive(Clone, Copy)]
struct Plan {
    next: Option<Millis>,
    latest: Millis,
}

fn plan(schedule: &Schedule, now: Millis) -> Plan {
    Plan {
        next: schedule
            .next_after(to_utc(now))
            .map(|t| t.timestamp_millis()),
        latest: schedule
            .last_at_or_before(to_utc(now))
            .map(|t| t.timestamp_millis())
            .unwrap_or(Millis::MIN),
    }
}

impl ScheduleSet {
    /// A schedule that keeps at most `jobs` whole jobs and `rules` parsed rules.
    pub fn with_limits(jobs: usize, rules: usize) -> ScheduleSet {
        ScheduleSet {
            entries: HashMap::new(),
            rules: Rules {
                keep_parsed: rules,
                ..Rules::default()
            },
            jobs: HashMap::new(),
            keep_jobs: jobs,
            heap: BinaryHeap::new(),
            next_generation: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// How many distinct (rule, zone) the scheduled jobs have.
    pub fn rules_len(&self) -> usize {
        self.rules.by_key.len()
    }

    /// How many whole jobs this schedule may still keep.
    pub fn room_for_jobs(&self) -> usize {
        self.keep_jobs.saturating_sub(self.jobs.len())
    }

    /// Room for `jobs` more, made at once: growing a million-entry table while loading would
    /// hold the old and the new one together.
    pub fn reserve(&mut self, jobs: usize) {
        self.entries.reserve(jobs);
        self.heap.reserve(jobs);
        self.jobs
            .reserve(jobs.min(self.keep_jobs.saturating_sub(self.jobs.len())));
    }

    /// Forgets everything (before a full reload).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.rules.clear();
        self.jobs.clear();
        self.heap.clear();
    }

    /// Adds a page of whole jobs, scheduling each from `now`.
    pub fn extend(&mut self, jobs: Vec<Job>, now: Millis) {
        for job in jobs {
            let id = job.id;
            self.upsert(id, Some(job), now);
        }
    }

    /// Adds a page of jobs by their planning fields, scheduling each from `now`. The rules
    /// not seen before are parsed and planned on every core (a million distinct rules are
    /// ~17 s of parsing on one); a rule seen before is planned once per page.
    pub fn extend_planned(&mut self, page: Vec<Planned>, now: Millis) {
        let page: Vec<Planned> = page
            .into_iter()
            .filter(|p| {
                self.remove(p.id);
                p.schedulable
            })
            .collect();
        let fresh = self.parse_new_rules(&page, now);
        let mut planned: HashMap<u32, Plan> = HashMap::new();
        for p in &page {
            let rule = match self.rules.lookup(&p.schedule, &p.timezone) {
                Some(id) => {
                    self.rules.count_user(id);
                    id
                }
                None => match fresh.get(&(p.schedule.as_str(), p.timezone.as_str())) {
                    Some(Ok((tz, schedule, plan))) => {
                        let id = self.rules.insert(&p.schedule, *tz, schedule.clone());
                        planned.insert(id, *plan);
                        id
                    }
                    Some(Err(e)) => {
                        cannot_schedule(p.id, e);
                        continue;
                    }
                    None => continue,
                },
            };
            let plan = match planned.get(&rule) {
                Some(plan) => *plan,
                None => match self.rules.schedule(rule) {
                    Ok(schedule) => {
                        let plan = plan(&schedule, now);
                        planned.insert(rule, plan);
                        plan
                    }
                    Err(e) => {
                        cannot_schedule(p.id, &e);
                        self.rules.release(rule);
                        continue;
                    }
                },
            };
            self.enter(p, rule, plan, now);
        }
    }

    /// The rules of `page` not interned yet, parsed and planned from `now` on every core.
    #[allow(clippy::type_complexity)]
    fn parse_new_rules<'a>(
        &self,
        page: &'a [Planned],
        now: Millis,
    ) -> HashMap<(&'a str, &'a str), Result<(Tz, Arc<Schedule>, Plan), ScheduleError>> {
        let mut new: Vec<(&'a str, &'a str)> = page
            .iter()
            .filter(|p| self.rules.lookup(&p.schedule, &p.timezone).is_none())
            .map(|p| (p.schedule.as_str(), p.timezone.as_str()))
            .collect();
        new.sort_unstable();
        new.dedup();
        let parse = move |k: &(&'a str, &'a str)| {
            let tz = crate::schedule::parse_timezone(k.1)?;
            let schedule = Arc::new(Schedule::parse_stored(k.0, k.1)?);
            let plan = plan(&schedule, now);
            Ok((tz, schedule, plan))
        };
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        if new.len() < 64 || threads < 2 {
            return new.iter().map(|k| (*k, parse(k))).collect();
        }
        let per = new.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let parts: Vec<_> = new
                .chunks(per)
                .map(|chunk| {
                    scope.spawn(move || chunk.iter().map(|k| (*k, parse(k))).collect::<Vec<_>>())
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|p| p.join().unwrap_or_default())
                .collect()
        })
    }

    /// Enters a job whose rule is interned as `rule`, its first instant on the heap.
    fn enter(&mut self, p: &Planned, rule: u32, plan: Plan, now: Millis) {
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        if let Some(next) = plan.next {
            self.heap.push(Reverse((next, p.id, generation)));
        }
        self.entries.insert(
            p.id,
            Entry {
                rule,
                generation,
                planned_from: now,
                latest_planned: plan.latest,
                updated_at: p.updated_at,
                misfire_window_secs: p.misfire_window_secs.clamp(0, i64::from(u32::MAX)) as u32,
            },
        );
    }

    fn remove(&mut self, id: i64) {
        if let Some(old) = self.entries.remove(&id) {
            self.rules.release(old.rule);
        }
        self.jobs.remove(&id);
    }

    /// Adds, replaces (`Some`) or removes (`None`) a job. A paused job, or one with nothing
    /// to run, is not scheduled.
    pub fn upsert(&mut self, id: i64, job: Option<Job>, now: Millis) {
        self.remove(id);
        let Some(job) = job else { return };
        let planned = Planned::of(&job);
        if !planned.schedulable {
            return;
        }
        let (rule, schedule) = match self.rules.intern(&planned.schedule, &job.timezone) {
            Ok(r) => r,
            Err(e) => {
                cannot_schedule(id, &e);
                return;
            }
        };
        self.enter(&planned, rule, plan(&schedule, now), now);
        if self.jobs.len() < self.keep_jobs {
            self.jobs.insert(id, Arc::new(job));
        }
    }

    /// The ids of the jobs scheduled.
    pub fn ids(&self) -> Vec<i64> {
        self.entries.keys().copied().collect()
    }

    /// Whether `job` is scheduled here exactly as stored (same last edit), or rightly absent
    /// (paused, nothing to run).
    pub fn is_current(&self, job: &Planned) -> bool {
        match self.entries.get(&job.id) {
            Some(e) => e.updated_at == job.updated_at,
            None => !job.schedulable,
        }
    }

    /// Whether the job is scheduled here.
    pub fn contains(&self, id: i64) -> bool {
        self.entries.contains_key(&id)
    }

    /// The whole job, when kept; a scheduled job that is not is read from the store.
    pub fn job(&self, id: i64) -> Option<Arc<Job>> {
        self.jobs.get(&id).cloned()
    }

    /// Instants missed while no dispatcher ran, per job: after the job's last recorded instant
    /// (or its last edit), within its misfire window, and up to `until` — but never one the
    /// heap will fire (those after the job was planned), so none is both. For each job with
    /// any: (job id, latest missed instant, how many). `run_once` jobs run the latest once;
    /// the others record it `missed`. Never a storm of catch-up runs.
    pub fn misfired(&self, last: &HashMap<i64, Millis>, until: Millis) -> Vec<(i64, Tally)> {
        let mut out = Vec::new();
        for (id, entry) in &self.entries {
            let until = until.min(entry.planned_from);
            let from = last
                .get(id)
                .copied()
                .unwrap_or(entry.updated_at)
                .max(entry.updated_at)
                .max(until - i64::from(entry.misfire_window_secs) * 1000);
            if entry.latest_planned <= from {
                continue; // nothing came due since: no need to parse its rule
            }
            let Ok(schedule) = self.rules.schedule(entry.rule) else {
                continue;
            };
            if let Some(t) = schedule.tally(to_utc(from), to_utc(until), MISFIRE_STEPS) {
                out.push((*id, t));
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
        // A rule parsed again for this burst serves all its jobs due in it.
        let mut parsed: HashMap<u32, Arc<Schedule>> = HashMap::new();
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
            let schedule = match parsed.get(&entry.rule) {
                Some(s) => s.clone(),
                None => match self.rules.schedule(entry.rule) {
                    Ok(s) => {
                        parsed.insert(entry.rule, s.clone());
                        s
                    }
                    Err(e) => {
                        cannot_schedule(id, &e);
                        continue;
                    }
                },
            };
            let fired = if t < late_before {
                let until = to_utc(late_before - 1);
                let tally = schedule
                    .tally(to_utc(t - 1), until, MISFIRE_STEPS)
                    .unwrap_or(Tally {
                        latest: t,
                        count: 1,
                        exact: true,
                    });
                popped.late.push((id, tally));
                tally.latest
            } else {
                popped.due.push((id, t));
                t
            };
            if let Some(next) = schedule.next_after(to_utc(fired)) {
                self.heap.push(Reverse((next.timestamp_millis(), id, g)));
            }
        }
        popped
    }
}

/// Stored jobs were validated; a rule that no longer parses (zone data changed) is reported,
/// not fatal.
fn cannot_schedule(id: i64, e: &ScheduleError) {
    tracing::error!(job = id, error = %e, "cannot schedule job");
}

/// What [`ScheduleSet::pop_due`] found due, by job id: on time, and late (counted per job).
#[derive(Debug, Default)]
pub struct Popped {
    pub due: Vec<(i64, Millis)>,
    pub late: Vec<(i64, Tally)>,
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
            limits: Default::default(),
            description: None,
            admin_email: None,
            admin_mobile: None,
            after: Vec::new(),
            requires: None,
            within_secs: None,
            params: Vec::new(),
            calendars: Vec::new(),
            calendar_mode: Default::default(),
            late_after_secs: None,
            deadline: None,
            duration_alarm: Default::default(),
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
            .map(|(id, t)| (id, t.latest, t.count))
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
        let once = long.iter().find(|(id, _)| *id == 1).expect("job 1");
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
        let mut got: Vec<(i64, Tally)> = s.misfired(&last, week).into_iter().collect();
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
        assert_eq!(s.rules.by_key.len(), 2, "identical rules are shared");
        s.upsert(3, None, 0);
        assert_eq!(s.next_instant(), Some(1000));
        let due: Vec<(i64, Millis)> = s.pop_due(2000, 0).due;
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
            .map(|(id, _)| id)
            .collect();
        assert_eq!(due, vec![2]);
        // Deleting removes it entirely.
        s.upsert(2, None, 4000);
        assert_eq!(s.next_instant(), None);
        assert_eq!(s.len(), 0);
        assert!(s.rules.by_key.is_empty(), "unused rules are dropped");
    }

    #[test]
    fn instants_found_late_come_back_counted_per_job() {
        let mut s = ScheduleSet::default();
        s.extend(vec![job(1, "* * * * * *"), job(2, "0 0 * * * *")], 0);
        // A clock stepped a day forward: now = 86,400 s, grace 5 s.
        let now = 86_400_000;
        let popped = s.pop_due(now, now - 5000);
        let mut late: Vec<(i64, Tally)> = popped.late.clone();
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
        let due: Vec<(i64, Millis)> = popped.due.clone();
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

    /// The bounds change only the memory: a schedule that keeps no whole job and no parsed
    /// rule (parsing again at each fire, planned from the store's fields) fires exactly what
    /// one that keeps everything fires, and counts the same misfires.
    #[test]
    fn a_schedule_that_keeps_nothing_fires_what_one_that_keeps_everything_fires() {
        let rules = [
            "* * * * * *",
            "*/7 * * * * *",
            "3,17,41 * * * * *",
            "0 */2 * * * *",
            "@every 13s",
            "30 0 0 * * *",
            "15 * * 1,15 * *",
            "0 0 9 * * 1-5",
            "5 4 * * 0",
        ];
        let zones = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"];
        let mut jobs = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            for (z, zone) in zones.iter().enumerate() {
                let mut j = job((i * zones.len() + z + 1) as i64, rule);
                j.timezone = (*zone).into();
                j.misfire_window_secs = 86_400;
                jobs.push(j);
            }
        }
        // Around a DST change in Europe (2026-03-29 01:00 UTC) and in New York (03-08).
        let start = 1_774_740_000_000; // 2026-03-28T23:20:00Z
        let mut full = ScheduleSet::default();
        full.extend(jobs.clone(), start);
        let mut bare = ScheduleSet::with_limits(0, 0);
        bare.extend_planned(jobs.iter().map(Planned::of).collect(), start);
        assert!(bare.job(1).is_none(), "no whole job kept");
        assert_eq!(bare.len(), full.len());
        let last: HashMap<i64, Millis> = jobs.iter().map(|j| (j.id, start - 7_200_000)).collect();
        let sorted = |mut v: Vec<(i64, Tally)>| {
            v.sort_unstable_by_key(|(id, _)| *id);
            v
        };
        assert_eq!(
            sorted(bare.misfired(&last, start)),
            sorted(full.misfired(&last, start))
        );
        let mut now = start;
        let mut fired = 0;
        while now < start + 4 * 3_600_000 {
            now += 4_999;
            let (a, b) = (
                full.pop_due(now, now - 10_000),
                bare.pop_due(now, now - 10_000),
            );
            let mut a_due = a.due.clone();
            let mut b_due = b.due.clone();
            a_due.sort_unstable();
            b_due.sort_unstable();
            assert_eq!(a_due, b_due, "at {now}");
            assert_eq!(full.next_instant(), bare.next_instant());
            fired += a_due.len();
        }
        assert!(fired > 20_000, "{fired}");
    }

    #[test]
    fn a_rule_is_kept_while_a_job_has_it_and_whole_jobs_up_to_the_bound() {
        let mut s = ScheduleSet::with_limits(2, 1);
        s.extend(
            vec![
                job(1, "* * * * * *"),
                job(2, "* * * * * *"),
                job(3, "*/5 * * * * *"),
            ],
            0,
        );
        assert!(s.job(1).is_some() && s.job(2).is_some());
        assert!(s.job(3).is_none(), "past the bound: read from the store");
        assert_eq!(s.rules.by_key.len(), 2);
        assert_eq!(s.rules.parsed, 1, "one parsed rule kept");
        // The job past the bound fires all the same (its rule parsed again).
        let due: Vec<(i64, Millis)> = s.pop_due(5000, 0).due;
        assert!(due.contains(&(3, 5000)), "{due:?}");
        s.upsert(1, None, 5000);
        assert_eq!(s.rules.by_key.len(), 2, "job 2 still has the rule");
        s.upsert(2, None, 5000);
        s.upsert(3, None, 5000);
        assert!(s.rules.by_key.is_empty());
        assert_eq!(s.rules.parsed, 0);
        // A freed slot is reused, and an unparsable stored rule is reported, not scheduled.
        let mut bad = Planned::of(&job(4, "* * * * * *"));
        bad.schedule = "61 * * * * *".into();
        s.extend_planned(vec![bad, Planned::of(&job(5, "0 * * * * *"))], 5000);
        assert_eq!(s.ids(), vec![5]);
        assert_eq!(s.rules.slots.len(), 2, "slots reused");
    }
}
