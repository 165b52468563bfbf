//! Runs recorded ahead of their delivery — manual runs, retries, and the jobs of a flow that
//! their upstreams released — fired once a dispatcher claims them.

use std::sync::Arc;
use std::time::Instant;

use super::fire::{Firer, Outgoing};
use crate::model::Job;
use crate::store::PendingRun;

impl Firer {
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
            flow: run.flow_run.map(|f| (f, run.upstream_runs.clone())),
        };
        self.deliver(vec![out], Instant::now()).await;
    }

    pub(super) async fn give_up(&self, run_id: i64, reason: &str) {
        self.delivery_failures.inc();
        if let Err(e) = self.store.fail_run(run_id, reason).await {
            tracing::error!(run = run_id, error = %e, "cannot record the delivery failure");
        }
    }
}
