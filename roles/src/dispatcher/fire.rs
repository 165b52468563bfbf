//! Firing one (job, instant): take the Redis lock when there is one (the fast path: only the
//! winner touches the store), record the run (the store's unique key is the fence), then hand
//! it (`deliver.rs`) to an executor of the job's target — round-robin, failing over to the next executor when
//! one cannot be reached — or to every executor of the target for `fanout = all`. A run that
//! cannot be delivered is recorded `failed` with the reason, never left `dispatched`; an
//! instant whose target has no live executor is recorded `missed` ("no executor"): it should
//! have run and did not, through no fault of the job.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;

use super::targets::Targets;
use crate::cluster::fire_lock::FireLock;
use crate::cluster::ExecutorInfo;
use crate::http::client::HttpClient;
use crate::http::tls::Trust;
use crate::metrics::{Metric, Metrics};
use crate::model::{Fanout, Job, Millis, Overlap, RunState, Trigger};
use crate::store::{Recorded, Store};

/// A recorded run on its way to an executor.
/// A run's shard among the runs of its instant: (0-based index, total); (0, 1) but for
/// `fanout = all`.
pub(super) type Shard = (i64, i64);

/// The executor a `fanout = all` run belongs to, and its shard.
pub(super) type Pinned = (ExecutorInfo, Shard);

pub(super) struct Outgoing {
    pub(super) run_id: i64,
    pub(super) job: Arc<Job>,
    pub(super) instant: Millis,
    pub(super) attempt: i64,
    pub(super) retry_of: Option<i64>,
    /// `fanout = all`: the run belongs to this executor and goes nowhere else, as the shard
    /// (index, total) of its instant.
    pub(super) pinned: Option<Pinned>,
    /// A retry of a `fanout = all` run, on any executor of the target: the shard it was.
    pub(super) shard: Option<Shard>,
    /// In a flow: its first run and the runs that released this one (`name=id,...`).
    pub(super) flow: Option<(i64, Option<String>)>,
    /// A manual run's parameter values, recorded with it; none: the job's defaults.
    pub(super) params: Option<std::collections::BTreeMap<String, String>>,
}

pub struct Firer {
    pub(super) store: Store,
    pub(super) targets: Targets,
    pub(super) lock: Option<Arc<FireLock>>,
    pub(super) token: String,
    pub(super) client: HttpClient,
    pub(super) delivery_timeout: Duration,
    pub(super) fired: Arc<Metric>,
    pub(super) duplicates: Arc<Metric>,
    pub(super) delivery_failures: Arc<Metric>,
    pub(super) record_failures: Arc<Metric>,
    pub(super) lock_lost: Arc<Metric>,
    pub(super) fenced: Arc<Metric>,
    pub(super) no_executor: Arc<Metric>,
    pub(super) lateness: Arc<crate::metrics::Histogram>,
    pub(super) store_write: Arc<crate::metrics::Histogram>,
    pub(super) lock_time: Arc<crate::metrics::Histogram>,
    /// Instants the store could not take, until it can.
    pub(super) backlog: super::backlog::Backlog,
    /// The maintenance windows last read (`windows.rs`).
    pub(super) windows: super::windows::Windows,
}

impl Firer {
    pub fn new(
        store: Store,
        targets: Targets,
        lock: Option<Arc<FireLock>>,
        token: String,
        delivery: &crate::config::DispatcherConfig,
        trust: &Trust,
        metrics: &Metrics,
    ) -> Firer {
        let names = targets.registry().server_names();
        Firer {
            store,
            targets,
            lock,
            token,
            client: HttpClient::naming(
                super::deliver::ANSWER_TIMEOUT,
                delivery.connect_timeout,
                trust,
                names,
            ),
            delivery_timeout: delivery.delivery_timeout,
            fired: metrics.counter(
                "cronvisor_fires_total",
                "",
                "Runs this dispatcher recorded and sent.",
            ),
            duplicates: metrics.counter(
                "cronvisor_fire_duplicates_total",
                "",
                "Instants found already recorded (fired by another dispatcher).",
            ),
            delivery_failures: metrics.counter(
                "cronvisor_delivery_failures_total",
                "",
                "Runs recorded failed because no executor took them.",
            ),
            record_failures: metrics.counter(
                "cronvisor_record_failures_total",
                "",
                "Instants that could not be recorded in the store.",
            ),
            lock_lost: metrics.counter(
                "cronvisor_fire_lock_lost_total",
                "",
                "Instants whose Redis lock another dispatcher took.",
            ),
            fenced: metrics.counter(
                "cronvisor_fire_fenced_total",
                "",
                "Instants fired on the store fence alone (Redis down, or a lock owner that never confirmed).",
            ),
            no_executor: metrics.counter(
                "cronvisor_no_executor_total",
                "",
                "Instants recorded missed because their target had no live executor.",
            ),
            lateness: metrics.histogram(
                "cronvisor_fire_lateness_seconds",
                "From a run's scheduled instant to its record in the store (this dispatcher's fires).",
                crate::metrics::LATENCY_BUCKETS,
            ),
            store_write: metrics.histogram(
                "cronvisor_store_write_seconds",
                "Round trip of recording a burst's runs in the store (one transaction).",
                crate::metrics::LATENCY_BUCKETS,
            ),
            lock_time: metrics.histogram(
                "cronvisor_redis_lock_seconds",
                "Round trip of taking a burst's fire locks in Redis (one pipeline).",
                crate::metrics::LATENCY_BUCKETS,
            ),
            backlog: Default::default(),
            windows: Default::default(),
        }
    }

    pub fn registry_size(&self) -> usize {
        self.targets.registry().live().len()
    }

    /// Fires the instants due now. With a Redis lock, only the instants this dispatcher wins
    /// go on; the others get a second look once their lock could have expired.
    pub async fn fire_due(self: Arc<Self>, due: Vec<(Arc<Job>, Millis)>, trigger: Trigger) {
        let Some(lock) = self.lock.clone() else {
            return self.fire_fenced(due, trigger, false).await;
        };
        let keys: Vec<(i64, Millis)> = due.iter().map(|(j, t)| (j.id, *t)).collect();
        let locking = Instant::now();
        let acquired = lock.acquire(&keys).await;
        self.lock_time.observe(locking.elapsed().as_secs_f64());
        match acquired {
            Ok(won) => {
                let (mine, theirs): (Vec<_>, Vec<_>) =
                    due.into_iter().zip(won).partition(|(_, w)| *w);
                let mine: Vec<_> = mine.into_iter().map(|(d, _)| d).collect();
                let theirs: Vec<_> = theirs.into_iter().map(|(d, _)| d).collect();
                if !theirs.is_empty() {
                    self.lock_lost.add(theirs.len() as u64);
                    tokio::spawn(self.clone().second_look(lock, theirs, trigger));
                }
                if !mine.is_empty() {
                    self.fire_fenced(mine, trigger, true).await;
                }
            }
            // Redis is down: the fence alone keeps every instant single.
            Err(_) => {
                self.fenced.add(keys.len() as u64);
                self.fire_fenced(due, trigger, false).await
            }
        }
    }

    /// The instants another dispatcher locked: once the lock could have expired, those not
    /// confirmed recorded (their owner died or stalled) are fired through the fence, which
    /// lets exactly one dispatcher record each.
    async fn second_look(
        self: Arc<Self>,
        lock: Arc<FireLock>,
        theirs: Vec<(Arc<Job>, Millis)>,
        trigger: Trigger,
    ) {
        tokio::time::sleep(lock.ttl() + Duration::from_millis(250)).await;
        let keys: Vec<(i64, Millis)> = theirs.iter().map(|(j, t)| (j.id, *t)).collect();
        // A `done` key is believed only if the store has the run: anyone who can write to Redis
        // could set one, and must not silence an instant that way.
        let done = match lock.settled(&keys).await {
            Ok(done) => done,
            Err(_) => vec![false; keys.len()],
        };
        let claimed: Vec<(i64, Millis)> = keys
            .iter()
            .zip(&done)
            .filter(|(_, d)| **d)
            .map(|(k, _)| *k)
            .collect();
        let recorded: std::collections::HashSet<(i64, Millis)> =
            match self.store.recorded_among(&claimed).await {
                Ok(found) => claimed
                    .into_iter()
                    .zip(found)
                    .filter(|(_, f)| *f)
                    .map(|(k, _)| k)
                    .collect(),
                // Store unreadable: the fence decides (it refuses a second record).
                Err(_) => std::collections::HashSet::new(),
            };
        let forged = done.iter().filter(|d| **d).count() - recorded.len();
        if forged > 0 {
            tracing::warn!(
                instants = forged,
                "fire locks say done but the store has no run: firing through the fence"
            );
        }
        let orphans: Vec<(Arc<Job>, Millis)> = theirs
            .into_iter()
            .filter(|(j, t)| !recorded.contains(&(j.id, *t)))
            .collect();
        if orphans.is_empty() {
            return;
        }
        self.fenced.add(orphans.len() as u64);
        tracing::info!(
            instants = orphans.len(),
            "lock owner did not confirm: firing through the store fence"
        );
        self.fire_fenced(orphans, trigger, false).await;
    }

    /// Applies each job's overlap policy, records the runs in one transaction (the fence),
    /// confirms the locks this dispatcher holds (`locked`), then hands the runs to executors —
    /// in phases: forbid, plan, record (with retry), the homeless, confirm, deliver.
    async fn fire_fenced(&self, due: Vec<(Arc<Job>, Millis)>, trigger: Trigger, locked: bool) {
        let started = Instant::now();
        let mut due = self.apply_windows(due).await;
        if due.iter().any(|(j, _)| !j.calendars.is_empty()) {
            due = self.apply_calendars(due).await;
        }
        if due.iter().any(|(j, _)| j.requires.is_some()) {
            due = self.apply_requires(due).await;
        }
        if due.iter().any(|(j, _)| j.overlap != Overlap::Allow) {
            due = self.apply_overlap(due).await;
        }
        if due.is_empty() {
            return;
        }
        let lock_keys: Vec<(i64, Millis)> = due.iter().map(|(j, t)| (j.id, *t)).collect();
        let (ready, due) = self.fire_forbid(due, trigger).await;
        let plan = self.plan(due);
        let Some(recorded) = self.record_with_retry(&plan.keys, trigger, started).await else {
            // Give the locks back: another dispatcher's second look retries them.
            if let (true, Some(lock)) = (locked, &self.lock) {
                let _ = lock.release(&lock_keys).await;
            }
            let planned = plan
                .runs
                .into_iter()
                .map(|(job, instant, _)| (job, instant));
            self.backlog.hold(planned.chain(plan.homeless));
            // The forbid jobs' runs are recorded: they still go.
            self.deliver(ready, started).await;
            return;
        };
        self.record_homeless(plan.homeless).await;
        if let (true, Some(lock)) = (locked, &self.lock) {
            let _ = lock.confirm(&lock_keys).await;
        }
        let mut batch = Vec::with_capacity(plan.runs.len() + ready.len());
        for ((job, instant, pinned), rec) in plan.runs.into_iter().zip(recorded) {
            match rec {
                Recorded::New(run_id) => batch.push(self.outgoing(run_id, job, instant, pinned)),
                Recorded::AlreadyFired => self.duplicates.inc(),
            }
        }
        batch.extend(ready);
        self.deliver(batch, started).await;
    }

    /// A newly recorded run, counted as fired, ready to deliver.
    fn outgoing(
        &self,
        run_id: i64,
        job: Arc<Job>,
        instant: Millis,
        pinned: Option<Pinned>,
    ) -> Outgoing {
        self.fired.inc();
        self.lateness
            .observe_millis(instant, crate::model::now_millis());
        Outgoing {
            run_id,
            job,
            instant,
            attempt: 1,
            retry_of: None,
            pinned,
            shard: None,
            flow: None,
            params: None,
        }
    }

    /// `forbid` jobs (of `fanout = one`) are checked and recorded in one transaction each, so
    /// that two dispatchers cannot both find no run going and both start one. Returns their
    /// runs to deliver, and the rest of `due` (with the forbid jobs that have no executor,
    /// recorded `missed` with the others).
    async fn fire_forbid(
        &self,
        due: Vec<(Arc<Job>, Millis)>,
        trigger: Trigger,
    ) -> (Vec<Outgoing>, Vec<(Arc<Job>, Millis)>) {
        let (forbid, mut due): (Vec<_>, Vec<_>) = due
            .into_iter()
            .partition(|(j, _)| j.overlap == Overlap::Forbid && j.fanout == Fanout::One);
        let mut ready = Vec::with_capacity(forbid.len());
        for (job, instant) in forbid {
            if self.targets.candidates(&job).is_empty() {
                due.push((job, instant));
                continue;
            }
            match self.store.fire_forbid(job.id, instant, trigger).await {
                Ok(crate::store::Forbid::New(run_id)) => {
                    ready.push(self.outgoing(run_id, job, instant, None));
                }
                Ok(crate::store::Forbid::Skipped) => {}
                Ok(crate::store::Forbid::AlreadyFired) => self.duplicates.inc(),
                Err(e) => {
                    tracing::warn!(job = %job.name, error = %e,
                        "cannot record the instant; held until the store is back");
                    self.backlog.hold([(job, instant)]);
                }
            }
        }
        (ready, due)
    }

    /// One row per run: `fanout = all` gives one per live executor of the target; a job with
    /// no executor is homeless.
    fn plan(&self, due: Vec<(Arc<Job>, Millis)>) -> Plan {
        let mut plan = Plan {
            keys: Vec::with_capacity(due.len()),
            runs: Vec::with_capacity(due.len()),
            homeless: Vec::new(),
        };
        for (job, instant) in due {
            let candidates = self.targets.candidates(&job);
            if candidates.is_empty() {
                plan.homeless.push((job, instant));
                continue;
            }
            match job.fanout {
                Fanout::One => {
                    plan.keys.push((job.id, instant, String::new(), None));
                    plan.runs.push((job, instant, None));
                }
                Fanout::All => {
                    // Shards in a stable order: the executors' ids.
                    let mut candidates = candidates;
                    candidates.sort_by(|a, b| a.id.cmp(&b.id));
                    let total = candidates.len() as i64;
                    for (i, e) in candidates.into_iter().enumerate() {
                        let shard = (i as i64, total);
                        plan.keys.push((job.id, instant, e.id.clone(), Some(shard)));
                        plan.runs
                            .push((job.clone(), instant, Some((e, (i as i64, total)))));
                    }
                }
            }
        }
        plan
    }

    /// Records the planned runs in one transaction, retried with backoff within the delivery
    /// timeout; `None` when the store stayed away (the caller holds the instants).
    async fn record_with_retry(
        &self,
        keys: &[crate::store::FireKey],
        trigger: Trigger,
        started: Instant,
    ) -> Option<Vec<Recorded>> {
        let mut delay = Duration::from_millis(20);
        loop {
            if keys.is_empty() {
                return Some(Vec::new());
            }
            let writing = Instant::now();
            let written = self
                .store
                .record_fires(keys, trigger, RunState::Dispatched)
                .await;
            self.store_write.observe(writing.elapsed().as_secs_f64());
            match written {
                Ok(r) => return Some(r),
                Err(e) if started.elapsed() < self.delivery_timeout => {
                    tracing::warn!(fires = keys.len(), error = %e, "cannot record fires; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    self.record_failures.inc();
                    tracing::error!(fires = keys.len(), error = %e,
                        "instants not recorded: store unavailable; held until it is back");
                    return None;
                }
            }
        }
    }

    /// Instants of jobs with no live executor: recorded `missed`, saying why.
    async fn record_homeless(&self, homeless: Vec<(Arc<Job>, Millis)>) {
        for (job, instant) in homeless {
            self.no_executor.inc();
            let reason = format!(
                "no executor: {} has no live executor",
                Targets::describe(&job)
            );
            tracing::warn!(job = %job.name, instant, %reason, "instant not run");
            if let Err(e) = self.store.record_missed(job.id, instant, &reason).await {
                tracing::error!(job = %job.name, error = %e,
                    "cannot record the missed instant; held until the store is back");
                self.backlog.hold([(job, instant)]);
            }
        }
    }

    /// Several instants of one `forbid` or `replace` job in one burst (held while the store was
    /// away, or due together after a stall): none is running yet, so the store check would let
    /// them all start at once. Only the latest goes on; the earlier ones are recorded
    /// `skipped`, as their policy would have had them once the latest ran.
    async fn one_per_job(&self, due: Vec<(Arc<Job>, Millis)>) -> Vec<(Arc<Job>, Millis)> {
        let mut latest: std::collections::HashMap<i64, Millis> = std::collections::HashMap::new();
        for (job, instant) in &due {
            if job.overlap != Overlap::Allow {
                let l = latest.entry(job.id).or_insert(*instant);
                *l = (*l).max(*instant);
            }
        }
        let mut keep = Vec::with_capacity(due.len());
        for (job, instant) in due {
            match latest.get(&job.id) {
                Some(l) if *l != instant => {
                    let reason = format!(
                        "skipped: a later instant of the job fired in the same burst (overlap = {})",
                        job.overlap.as_str()
                    );
                    if let Err(e) = self.store.record_skipped(job.id, instant, &reason).await {
                        tracing::warn!(job = %job.name, error = %e,
                            "cannot record the skipped instant; held until the store is back");
                        self.backlog.hold([(job, instant)]);
                    }
                }
                _ => keep.push((job, instant)),
            }
        }
        keep
    }

    /// Overlap policies: `forbid` records the instant `skipped` while a run of the job is
    /// still going; `replace` stops that run (the executor records it `killed`) and goes on.
    /// Returns the instants to fire.
    async fn apply_overlap(&self, due: Vec<(Arc<Job>, Millis)>) -> Vec<(Arc<Job>, Millis)> {
        let due = self.one_per_job(due).await;
        let mut keep = Vec::with_capacity(due.len());
        for (job, instant) in due {
            if job.overlap == Overlap::Allow {
                keep.push((job, instant));
                continue;
            }
            let active = match self.store.active_runs(job.id).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(job = %job.name, error = %e, "cannot check overlap; firing");
                    keep.push((job, instant));
                    continue;
                }
            };
            if active.is_empty() {
                keep.push((job, instant));
                continue;
            }
            match job.overlap {
                Overlap::Forbid => {
                    let ids: Vec<String> = active.iter().map(|(id, _)| id.to_string()).collect();
                    let reason = format!(
                        "skipped: run {} still going (overlap = forbid)",
                        ids.join(", ")
                    );
                    if let Err(e) = self.store.record_skipped(job.id, instant, &reason).await {
                        tracing::warn!(job = %job.name, error = %e,
                            "cannot record the skipped instant; held until the store is back");
                        self.backlog.hold([(job, instant)]);
                    }
                }
                _ => {
                    // The run may be on any executor of the target: ask each; the one that
                    // has it stops it (the others answer 404).
                    let executors = self.targets.candidates(&job);
                    for (run_id, _) in active {
                        let mut stopped = false;
                        for e in &executors {
                            let url = format!("{}/rpc/v1/runs/{run_id}/kill", e.url);
                            match self
                                .client
                                .send(Method::POST, &url, Some(&self.token), None)
                                .await
                            {
                                Ok(r) if r.status.is_success() => stopped = true,
                                Ok(_) => {}
                                Err(e) => {
                                    tracing::debug!(run = run_id, error = %e, "kill not sent")
                                }
                            }
                        }
                        if !stopped {
                            tracing::warn!(
                                run = run_id,
                                "no executor stopped the run being replaced"
                            );
                        }
                    }
                    keep.push((job, instant));
                }
            }
        }
        keep
    }
}

/// The runs of one fire, planned: the store keys, each run's job, instant and pinned
/// executor (`fanout = all`), and the instants that have no executor.
struct Plan {
    keys: Vec<crate::store::FireKey>,
    runs: Vec<(Arc<Job>, Millis, Option<Pinned>)>,
    homeless: Vec<(Arc<Job>, Millis)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::registry::Registry;
    use crate::store::tests::{fields, temp_store};

    /// Found by the chaos suite: five instants of a `forbid` job handed over in one burst all
    /// started at once, as none was running yet when each was checked.
    #[tokio::test]
    async fn a_burst_of_one_forbid_job_starts_only_its_latest_instant() {
        let t = temp_store("burst-forbid").await;
        let mut f = fields("f");
        f.overlap = Some(Overlap::Forbid);
        let stored = t
            .store
            .insert_job(&f.create("UTC").expect("valid"))
            .await
            .expect("job");
        let job = Arc::new(stored);
        let firer = Firer::new(
            t.store.clone(),
            Targets::new(Registry::fixed(Vec::new()), Default::default()),
            None,
            "token".into(),
            &crate::config::DispatcherConfig::default(),
            &Trust::load(None).expect("trust"),
            &Metrics::new("test"),
        );
        let burst: Vec<(Arc<Job>, Millis)> = (1..=5).map(|s| (job.clone(), s * 1000)).collect();
        let kept: Vec<Millis> = firer
            .apply_overlap(burst)
            .await
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        assert_eq!(kept, [5000]);
        for instant in [1000, 2000, 3000, 4000] {
            assert_eq!(
                t.store
                    .record_skipped(job.id, instant, "again")
                    .await
                    .expect("fence"),
                Recorded::AlreadyFired,
                "{instant} was recorded skipped"
            );
        }
    }
}
