//! Firing one (job, instant): record the run (the fence), then hand it to the executor,
//! retrying over a short outage; a run that cannot be delivered is recorded `failed` with the
//! reason, never left `dispatched`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;

use crate::http::client::HttpClient;
use crate::metrics::{Metric, Metrics};
use crate::model::{Job, Millis, RunRequest, RunState, Trigger};
use crate::store::{Recorded, Store};

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

    /// Fires the scheduled instants due now: records them all in one transaction, then hands
    /// each new run to the executor concurrently.
    pub async fn fire_due(self: Arc<Self>, due: Vec<(Arc<Job>, Millis)>) {
        let started = Instant::now();
        let keys: Vec<(i64, Millis)> = due.iter().map(|(j, t)| (j.id, *t)).collect();
        let mut delay = Duration::from_millis(20);
        let recorded = loop {
            match self
                .store
                .record_fires(&keys, Trigger::Schedule, RunState::Dispatched)
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
        let mut deliveries = tokio::task::JoinSet::new();
        for ((job, instant), rec) in due.into_iter().zip(recorded) {
            match rec {
                Recorded::New(run_id) => {
                    self.fired.inc();
                    let me = self.clone();
                    deliveries
                        .spawn(async move { me.deliver(run_id, &job, instant, started).await });
                }
                Recorded::AlreadyFired => self.duplicates.inc(),
            }
        }
        while deliveries.join_next().await.is_some() {}
    }

    /// Fires a manual run requested through the API, once claimed.
    pub async fn fire_manual(
        &self,
        run_id: i64,
        job_id: i64,
        job: Option<Arc<Job>>,
        instant: Millis,
    ) {
        match self.store.claim_run(run_id).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(run = run_id, error = %e, "cannot claim manual run");
                return;
            }
        }
        // A paused job can still be run by hand: read it from the store if not scheduled here.
        let job = match job {
            Some(j) => j,
            None => match self.store.job(job_id).await {
                Ok(Some(j)) => Arc::new(j),
                Ok(None) => {
                    let _ = self
                        .store
                        .fail_run(run_id, "job deleted before it ran")
                        .await;
                    return;
                }
                Err(e) => {
                    let _ = self
                        .store
                        .fail_run(run_id, &format!("cannot read the job: {e}"))
                        .await;
                    return;
                }
            },
        };
        self.fired.inc();
        self.deliver(run_id, &job, instant, Instant::now()).await;
    }

    async fn deliver(&self, run_id: i64, job: &Job, instant: Millis, started: Instant) {
        let Some(command) = job.command.clone() else {
            let _ = self.store.fail_run(run_id, "job has no command").await;
            return;
        };
        let req = RunRequest {
            run_id,
            job_id: job.id,
            job_name: job.name.clone(),
            instant,
            command,
            timeout_secs: job.timeout_secs,
        };
        let body = match serde_json::to_vec(&req) {
            Ok(b) => b,
            Err(e) => {
                let _ = self
                    .store
                    .fail_run(run_id, &format!("encoding the run: {e}"))
                    .await;
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
                Ok(r) if r.status.is_success() => return,
                // The executor recorded the failure itself (the process could not start).
                Ok(r) if r.status == hyper::StatusCode::INTERNAL_SERVER_ERROR => return,
                Ok(r) if r.status == hyper::StatusCode::SERVICE_UNAVAILABLE => {
                    format!("executor busy or stopping ({})", r.status)
                }
                Ok(r) => {
                    break format!(
                        "executor refused the run: {} {}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    )
                }
                Err(e) => e.to_string(),
            };
            if started.elapsed() + delay >= self.delivery_timeout {
                break retryable;
            }
            tracing::debug!(run = run_id, error = %retryable, "executor unreachable; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        };
        self.delivery_failures.inc();
        tracing::error!(run = run_id, job = %job.name, error = %last_error, "run not delivered");
        if let Err(e) = self
            .store
            .fail_run(run_id, &format!("no executor took the run: {last_error}"))
            .await
        {
            tracing::error!(run = run_id, error = %e, "cannot record the delivery failure");
        }
    }
}
