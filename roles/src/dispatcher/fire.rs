//! Firing one (job, instant): take the Redis lock when there is one (the fast path: only the
//! winner touches the store), record the run (the store's unique key is the fence), then hand
//! it to an executor of the job's target — round-robin, failing over to the next executor when
//! one cannot be reached — or to every executor of the target for `fanout = all`. A run that
//! cannot be delivered is recorded `failed` with the reason, never left `dispatched`; an
//! instant whose target has no live executor is recorded `missed` ("no executor"): it should
//! have run and did not, through no fault of the job.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;

use super::targets::Targets;
use crate::cluster::fire_lock::FireLock;
use crate::cluster::ExecutorInfo;
use crate::http::client::HttpClient;
use crate::http::tls::Trust;
use crate::metrics::{Metric, Metrics};
use crate::model::{Fanout, HttpCall, Job, Millis, Overlap, RunRequest, RunState, Trigger};
use crate::store::{PendingRun, Recorded, Store};

/// A recorded run on its way to an executor.
struct Outgoing {
    run_id: i64,
    job: Arc<Job>,
    instant: Millis,
    attempt: i64,
    retry_of: Option<i64>,
    /// `fanout = all`: the run belongs to this executor and goes nowhere else.
    pinned: Option<ExecutorInfo>,
}

/// Runs grouped by the executor they go to (by its id).
type Groups = BTreeMap<String, (ExecutorInfo, Vec<(Outgoing, RunRequest)>)>;

/// What one delivery learned across its rounds.
#[derive(Default)]
struct Round {
    /// Runs that must go back to the executor that may have them.
    sticky: BTreeMap<i64, ExecutorInfo>,
    /// Executors that did not take runs this delivery (tried last, or again after a while).
    refused: HashSet<String>,
    last_error: String,
}

/// How one RPC to one executor ended.
enum Sent {
    /// Received; the executor's answer names the instance that took the runs.
    Taken(Option<crate::model::BatchAccepted>),
    /// Not received (unreachable, or it answered 503): another executor may take the runs.
    Elsewhere(String),
    /// Maybe received (the connection broke mid-way): only this executor may get them again
    /// (it acknowledges a run id it has seen without starting it twice).
    Again(String),
    Refused(String),
}

/// Most runs sent in one RPC.
const MAX_BATCH: usize = 500;

pub struct Firer {
    store: Store,
    targets: Targets,
    lock: Option<Arc<FireLock>>,
    token: String,
    client: HttpClient,
    delivery_timeout: Duration,
    fired: Arc<Metric>,
    duplicates: Arc<Metric>,
    delivery_failures: Arc<Metric>,
    record_failures: Arc<Metric>,
    lock_lost: Arc<Metric>,
    fenced: Arc<Metric>,
    no_executor: Arc<Metric>,
}

impl Firer {
    pub fn new(
        store: Store,
        targets: Targets,
        lock: Option<Arc<FireLock>>,
        token: String,
        delivery_timeout: Duration,
        trust: &Trust,
        metrics: &Metrics,
    ) -> Firer {
        Firer {
            store,
            targets,
            lock,
            token,
            client: HttpClient::new(Duration::from_secs(10), trust),
            delivery_timeout,
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
        match lock.acquire(&keys).await {
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
        let orphans: Vec<(Arc<Job>, Millis)> = match lock.settled(&keys).await {
            Ok(done) => theirs
                .into_iter()
                .zip(done)
                .filter(|(_, d)| !d)
                .map(|(f, _)| f)
                .collect(),
            Err(_) => theirs,
        };
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
    /// confirms the locks this dispatcher holds (`locked`), then hands the runs to executors.
    async fn fire_fenced(&self, due: Vec<(Arc<Job>, Millis)>, trigger: Trigger, locked: bool) {
        let started = Instant::now();
        let mut due = due;
        if due.iter().any(|(j, _)| j.overlap != Overlap::Allow) {
            due = self.apply_overlap(due).await;
        }
        if due.is_empty() {
            return;
        }
        let lock_keys: Vec<(i64, Millis)> = due.iter().map(|(j, t)| (j.id, *t)).collect();
        // One row per run: `fanout = all` gives one per live executor of the target.
        let mut keys: Vec<(i64, Millis, String)> = Vec::with_capacity(due.len());
        let mut plan: Vec<(Arc<Job>, Millis, Option<ExecutorInfo>)> = Vec::with_capacity(due.len());
        let mut homeless: Vec<(Arc<Job>, Millis)> = Vec::new();
        for (job, instant) in due {
            let candidates = self.targets.candidates(&job);
            if candidates.is_empty() {
                homeless.push((job, instant));
                continue;
            }
            match job.fanout {
                Fanout::One => {
                    keys.push((job.id, instant, String::new()));
                    plan.push((job, instant, None));
                }
                Fanout::All => {
                    for e in candidates {
                        keys.push((job.id, instant, e.id.clone()));
                        plan.push((job.clone(), instant, Some(e)));
                    }
                }
            }
        }
        let mut delay = Duration::from_millis(20);
        let recorded = loop {
            if keys.is_empty() {
                break Vec::new();
            }
            match self
                .store
                .record_fires(&keys, trigger, RunState::Dispatched)
                .await
            {
                Ok(r) => break r,
                Err(e) if started.elapsed() < self.delivery_timeout => {
                    tracing::warn!(fires = keys.len(), error = %e, "cannot record fires; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    self.record_failures.inc();
                    tracing::error!(fires = keys.len(), error = %e, "instants not fired: store unavailable");
                    // Give the locks back: another dispatcher's second look retries them.
                    if let (true, Some(lock)) = (locked, &self.lock) {
                        let _ = lock.release(&lock_keys).await;
                    }
                    return;
                }
            }
        };
        for (job, instant) in homeless {
            self.no_executor.inc();
            let reason = format!(
                "no executor: {} has no live executor",
                Targets::describe(&job)
            );
            tracing::warn!(job = %job.name, instant, %reason, "instant not run");
            if let Err(e) = self.store.record_missed(job.id, instant, &reason).await {
                tracing::error!(job = %job.name, error = %e, "cannot record the missed instant");
            }
        }
        if let (true, Some(lock)) = (locked, &self.lock) {
            let _ = lock.confirm(&lock_keys).await;
        }
        let mut batch = Vec::with_capacity(plan.len());
        for ((job, instant, pinned), rec) in plan.into_iter().zip(recorded) {
            match rec {
                Recorded::New(run_id) => {
                    self.fired.inc();
                    batch.push(Outgoing {
                        run_id,
                        job,
                        instant,
                        attempt: 1,
                        retry_of: None,
                        pinned,
                    });
                }
                Recorded::AlreadyFired => self.duplicates.inc(),
            }
        }
        self.deliver(batch, started).await;
    }

    /// Overlap policies: `forbid` records the instant `skipped` while a run of the job is
    /// still going; `replace` stops that run (the executor records it `killed`) and goes on.
    /// Returns the instants to fire.
    async fn apply_overlap(&self, due: Vec<(Arc<Job>, Millis)>) -> Vec<(Arc<Job>, Millis)> {
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
                        tracing::warn!(job = %job.name, error = %e, "cannot record the skipped instant");
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

    /// Fires a run recorded ahead (manual run, retry), once claimed.
    pub async fn fire_pending(&self, run: PendingRun, job: Option<Arc<Job>>) {
        match self.store.claim_run(run.run_id).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(run = run.run_id, error = %e, "cannot claim a pending run");
                return;
            }
        }
        // A paused job can still be run by hand: read it from the store if not scheduled here.
        let job = match job {
            Some(j) => j,
            None => match self.store.job(run.job_id).await {
                Ok(Some(j)) => Arc::new(j),
                Ok(None) => {
                    self.give_up(run.run_id, "job deleted before it ran").await;
                    return;
                }
                Err(e) => {
                    self.give_up(run.run_id, &format!("cannot read the job: {e}"))
                        .await;
                    return;
                }
            },
        };
        self.fired.inc();
        let out = Outgoing {
            run_id: run.run_id,
            job,
            instant: run.instant,
            attempt: run.attempt,
            retry_of: run.retry_of,
            pinned: None,
        };
        self.deliver(vec![out], Instant::now()).await;
    }

    /// Hands runs to executors, one request per executor and chunk: each run to the next
    /// executor of its target in round-robin order (or to its pinned one). Runs an executor
    /// did not receive fail over to the next; runs it may have received are sent to it again
    /// (it acknowledges a run id it has seen without starting it twice). Runs no executor took
    /// within the delivery timeout are recorded `failed` with the reason.
    async fn deliver(&self, runs: Vec<Outgoing>, started: Instant) {
        let mut pending: Vec<(Outgoing, RunRequest)> = Vec::with_capacity(runs.len());
        for o in runs {
            match request_of(&o) {
                Some(r) => pending.push((o, r)),
                None => self.give_up(o.run_id, "job has no command").await,
            }
        }
        let mut round = Round::default();
        let mut delay = Duration::from_millis(20);
        while !pending.is_empty() {
            let (groups, unplaced) = self.place(&mut pending, &round);
            pending.extend(self.miss_unplaced(unplaced, &round).await);
            pending.extend(self.send_all(groups, &mut round).await);
            if pending.is_empty() {
                return;
            }
            if started.elapsed() + delay >= self.delivery_timeout {
                break;
            }
            // A run whose executor left the registry can no longer be sent to it.
            round.sticky.retain(|_, e| self.targets.is_live(&e.id));
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
            if round.refused.len() >= self.targets.registry().live().len() {
                round.refused.clear();
            }
        }
        tracing::error!(runs = pending.len(), error = %round.last_error, "runs not delivered");
        for (o, _) in pending {
            self.give_up(
                o.run_id,
                &format!("no executor took the run: {}", round.last_error),
            )
            .await;
        }
    }

    /// Groups the pending runs by the executor each goes to: its pinned one, the one that may
    /// have it already (sticky), or the next of its target not refused this delivery. The runs
    /// no executor can take come back apart.
    fn place(
        &self,
        pending: &mut Vec<(Outgoing, RunRequest)>,
        round: &Round,
    ) -> (Groups, Vec<(Outgoing, RunRequest)>) {
        let mut groups: Groups = BTreeMap::new();
        let mut unplaced = Vec::new();
        for item in pending.drain(..) {
            let choice = match (&item.0.pinned, round.sticky.get(&item.0.run_id)) {
                (Some(e), _) | (None, Some(e)) => Some(e.clone()),
                (None, None) => self.targets.pick(&item.0.job, &round.refused),
            };
            match choice {
                Some(e) => groups
                    .entry(e.id.clone())
                    .or_insert_with(|| (e, Vec::new()))
                    .1
                    .push(item),
                None => unplaced.push(item),
            }
        }
        (groups, unplaced)
    }

    /// Runs with no executor to go to: recorded `missed` when their target has none live, or
    /// returned to try again when every candidate refused this round.
    async fn miss_unplaced(
        &self,
        unplaced: Vec<(Outgoing, RunRequest)>,
        round: &Round,
    ) -> Vec<(Outgoing, RunRequest)> {
        if !round.refused.is_empty() {
            return unplaced;
        }
        for item in unplaced {
            let reason = format!(
                "no executor: {} has no live executor",
                Targets::describe(&item.0.job)
            );
            self.no_executor.inc();
            if let Err(e) = self.store.miss_run(item.0.run_id, &reason).await {
                tracing::error!(run = item.0.run_id, error = %e, "cannot record the missed run");
            }
        }
        Vec::new()
    }

    /// Sends every group in batches, all at once; returns the runs to try again.
    async fn send_all(&self, groups: Groups, round: &mut Round) -> Vec<(Outgoing, RunRequest)> {
        let mut sends = tokio::task::JoinSet::new();
        for (_, (executor, mut items)) in groups {
            while !items.is_empty() {
                let rest = items.split_off(items.len().min(MAX_BATCH));
                let chunk = std::mem::replace(&mut items, rest);
                let (client, token) = (self.client.clone(), self.token.clone());
                let executor = executor.clone();
                sends.spawn(async move {
                    let sent = send_batch(&client, &token, &executor, &chunk).await;
                    (executor, chunk, sent)
                });
            }
        }
        let mut again = Vec::new();
        while let Some(joined) = sends.join_next().await {
            let Ok((executor, chunk, sent)) = joined else {
                continue;
            };
            match sent {
                Sent::Taken(reply) => {
                    if let Some(reply) = reply {
                        self.note_delivered(&reply).await;
                    }
                }
                Sent::Elsewhere(e) => {
                    tracing::debug!(executor = %executor.id, error = %e, "executor did not take the runs; failing over");
                    round.refused.insert(executor.id.clone());
                    round.last_error = e;
                    again.extend(chunk);
                }
                Sent::Again(e) => {
                    for (o, _) in &chunk {
                        round.sticky.insert(o.run_id, executor.clone());
                    }
                    round.last_error = e;
                    again.extend(chunk);
                }
                Sent::Refused(e) => {
                    for (o, _) in chunk {
                        self.give_up(o.run_id, &format!("executor refused the run: {e}"))
                            .await;
                    }
                }
            }
        }
        again
    }

    /// Records which executor instance took the runs, so that the monitor tells a run queued
    /// on a live executor (whose result is not written yet) from one that never arrived.
    async fn note_delivered(&self, reply: &crate::model::BatchAccepted) {
        let mut by_instance: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for a in &reply.accepted {
            by_instance
                .entry(a.executor.as_str())
                .or_default()
                .push(a.run_id);
        }
        for (instance, ids) in by_instance {
            if let Err(e) = self.store.mark_delivered(instance, &ids).await {
                tracing::warn!(runs = ids.len(), error = %e, "cannot record which executor took the runs");
            }
        }
    }

    async fn give_up(&self, run_id: i64, reason: &str) {
        self.delivery_failures.inc();
        if let Err(e) = self.store.fail_run(run_id, reason).await {
            tracing::error!(run = run_id, error = %e, "cannot record the delivery failure");
        }
    }
}

/// The RPC body of one run; None when the job has nothing to run.
fn request_of(o: &Outgoing) -> Option<RunRequest> {
    let http = o.job.http_url.as_ref().map(|url| HttpCall {
        method: o.job.http_method.clone(),
        url: url.clone(),
        headers: o.job.http_headers.clone(),
        body: o.job.http_body.clone(),
        expect_status: o.job.http_expect_status,
    });
    let command = o.job.command.clone().or_else(|| o.job.http_url.clone())?;
    Some(RunRequest {
        run_id: o.run_id,
        job_id: o.job.id,
        job_name: o.job.name.clone(),
        instant: o.instant,
        command,
        http,
        timeout_secs: o.job.timeout_secs,
        attempt: o.attempt,
        retry_of: o.retry_of,
        retries: o.job.retries,
        retry_backoff_secs: o.job.retry_backoff_secs,
    })
}

/// One RPC: the chunk's runs to one executor.
async fn send_batch(
    client: &HttpClient,
    token: &str,
    executor: &ExecutorInfo,
    chunk: &[(Outgoing, RunRequest)],
) -> Sent {
    let runs: Vec<&RunRequest> = chunk.iter().map(|(_, r)| r).collect();
    let body = match serde_json::to_vec(&serde_json::json!({ "runs": runs })) {
        Ok(b) => b,
        Err(e) => return Sent::Refused(format!("encoding the runs: {e}")),
    };
    let url = format!("{}/rpc/v1/runs", executor.url.trim_end_matches('/'));
    match client
        .send(Method::POST, &url, Some(token), Some(body))
        .await
    {
        // Runs it could not start, the executor recorded itself.
        Ok(r) if r.status.is_success() => Sent::Taken(serde_json::from_slice(&r.body).ok()),
        Ok(r) if r.status == hyper::StatusCode::SERVICE_UNAVAILABLE => Sent::Elsewhere(format!(
            "executor {} busy or stopping ({})",
            executor.id, r.status
        )),
        Ok(r) => Sent::Refused(format!("{} {}", r.status, String::from_utf8_lossy(&r.body))),
        Err(e) if e.never_sent() => Sent::Elsewhere(e.to_string()),
        Err(e) => Sent::Again(e.to_string()),
    }
}
