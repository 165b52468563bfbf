//! Firing one (job, instant): record the run (the fence), then hand it to the executor,
//! retrying over a short outage; a run that cannot be delivered is recorded `failed` with the
//! reason, never left `dispatched`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;

use crate::http::client::HttpClient;
use crate::metrics::{Metric, Metrics};
use crate::model::{HttpCall, Job, Millis, Overlap, RunBatch, RunRequest, RunState, Trigger};
use crate::store::{PendingRun, Recorded, Store};

/// A recorded run on its way to an executor.
struct Outgoing {
    run_id: i64,
    job: Arc<Job>,
    instant: Millis,
    attempt: i64,
    retry_of: Option<i64>,
}

/// Most runs sent in one RPC.
const MAX_BATCH: usize = 500;

pub struct Firer {
    store: Store,
    url: String,
    token: String,
    client: HttpClient,
    delivery_timeout: Duration,
    fired: Arc<Metric>,
    duplicates: Arc<Metric>,
    delivery_failures: Arc<Metric>,
    record_failures: Arc<Metric>,
}

impl Firer {
    pub fn new(
        store: Store,
        executor_url: String,
        token: String,
        delivery_timeout: Duration,
        metrics: &Metrics,
    ) -> Firer {
        Firer {
            store,
            url: format!("{}/rpc/v1/runs", executor_url.trim_end_matches('/')),
            token,
            client: HttpClient::new(Duration::from_secs(10)),
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
        }
    }

    /// Fires the instants due now: applies each job's overlap policy, records the runs in one
    /// transaction, then hands them to the executor.
    pub async fn fire_due(self: Arc<Self>, due: Vec<(Arc<Job>, Millis)>, trigger: Trigger) {
        let started = Instant::now();
        let mut due = due;
        if due.iter().any(|(j, _)| j.overlap != Overlap::Allow) {
            due = self.apply_overlap(due).await;
        }
        if due.is_empty() {
            return;
        }
        let keys: Vec<(i64, Millis)> = due.iter().map(|(j, t)| (j.id, *t)).collect();
        let mut delay = Duration::from_millis(20);
        let recorded = loop {
            match self
                .store
                .record_fires(&keys, "", trigger, RunState::Dispatched)
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
                    return;
                }
            }
        };
        let mut batch = Vec::with_capacity(due.len());
        for ((job, instant), rec) in due.into_iter().zip(recorded) {
            match rec {
                Recorded::New(run_id) => {
                    self.fired.inc();
                    batch.push(Outgoing {
                        run_id,
                        job,
                        instant,
                        attempt: 1,
                        retry_of: None,
                    });
                }
                Recorded::AlreadyFired => self.duplicates.inc(),
            }
        }
        let mut deliveries = tokio::task::JoinSet::new();
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(MAX_BATCH));
            let chunk = std::mem::replace(&mut batch, rest);
            let me = self.clone();
            deliveries.spawn(async move { me.deliver(chunk, started).await });
        }
        while deliveries.join_next().await.is_some() {}
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
                    for (run_id, _) in active {
                        let url = format!("{}/{run_id}/kill", self.url);
                        if let Err(e) = self
                            .client
                            .send(Method::POST, &url, Some(&self.token), None)
                            .await
                        {
                            tracing::warn!(run = run_id, error = %e, "cannot stop the run being replaced");
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
        };
        self.deliver(vec![out], Instant::now()).await;
    }

    /// Hands runs to the executor in one request, retrying the whole request over a short
    /// outage (the executor acknowledges a run id it has seen without starting it again). Runs
    /// no executor took are recorded `failed` with the reason.
    async fn deliver(&self, runs: Vec<Outgoing>, started: Instant) {
        let mut requests = Vec::with_capacity(runs.len());
        for o in &runs {
            let http = o.job.http_url.as_ref().map(|url| HttpCall {
                method: o.job.http_method.clone(),
                url: url.clone(),
                headers: o.job.http_headers.clone(),
                body: o.job.http_body.clone(),
                expect_status: o.job.http_expect_status,
            });
            let command = o.job.command.clone().or_else(|| o.job.http_url.clone());
            match command {
                Some(command) => requests.push(RunRequest {
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
                }),
                None => self.give_up(o.run_id, "job has no command").await,
            }
        }
        if requests.is_empty() {
            return;
        }
        let ids: Vec<i64> = requests.iter().map(|r| r.run_id).collect();
        let body = match serde_json::to_vec(&RunBatch { runs: requests }) {
            Ok(b) => b,
            Err(e) => {
                for id in ids {
                    self.give_up(id, &format!("encoding the run: {e}")).await;
                }
                return;
            }
        };
        let mut delay = Duration::from_millis(20);
        let last_error = loop {
            let reply = self
                .client
                .send(
                    Method::POST,
                    &self.url,
                    Some(&self.token),
                    Some(body.clone()),
                )
                .await;
            let retryable = match reply {
                // Runs it could not start, the executor recorded itself.
                Ok(r) if r.status.is_success() => return,
                Ok(r) if r.status == hyper::StatusCode::SERVICE_UNAVAILABLE => {
                    format!("executor busy or stopping ({})", r.status)
                }
                Ok(r) => {
                    break format!(
                        "executor refused the runs: {} {}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    )
                }
                Err(e) => e.to_string(),
            };
            if started.elapsed() + delay >= self.delivery_timeout {
                break retryable;
            }
            tracing::debug!(runs = ids.len(), error = %retryable, "executor unreachable; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        };
        tracing::error!(runs = ids.len(), error = %last_error, "runs not delivered");
        for id in ids {
            self.give_up(id, &format!("no executor took the run: {last_error}"))
                .await;
        }
    }

    async fn give_up(&self, run_id: i64, reason: &str) {
        self.delivery_failures.inc();
        if let Err(e) = self.store.fail_run(run_id, reason).await {
            tracing::error!(run = run_id, error = %e, "cannot record the delivery failure");
        }
    }
}
