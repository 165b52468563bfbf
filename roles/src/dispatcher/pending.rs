//! Runs recorded ahead of their delivery — manual runs, retries, and the jobs of a flow that
//! their upstreams released — fired once a dispatcher claims them, delivered in one batch per
//! poll (a thousand flows ending at once are a thousand runs to hand over, not a thousand
//! round trips).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::fire::{Firer, Outgoing};
use crate::model::Job;
use crate::store::PendingRun;

impl Firer {
    /// Claims each of `runs` (the store lets one dispatcher have it), reads the jobs not in
    /// `known` in one query (a paused job can still be run by hand; a job that runs after
    /// others is not in the schedule), and delivers the claimed ones together.
    pub async fn fire_pending(
        self: Arc<Self>,
        runs: Vec<PendingRun>,
        known: HashMap<i64, Arc<Job>>,
    ) {
        let ids: Vec<i64> = runs.iter().map(|r| r.run_id).collect();
        let mine: std::collections::HashSet<i64> = match self.store.claim_pending(&ids).await {
            Ok(mine) => mine.into_iter().collect(),
            Err(e) => {
                tracing::warn!(runs = ids.len(), error = %e, "cannot claim pending runs");
                return;
            }
        };
        let claimed: Vec<PendingRun> = runs
            .into_iter()
            .filter(|r| mine.contains(&r.run_id))
            .collect();
        if claimed.is_empty() {
            return;
        }
        let mut jobs = known;
        let mut missing: Vec<i64> = claimed
            .iter()
            .map(|r| r.job_id)
            .filter(|id| !jobs.contains_key(id))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        let mut unread = false;
        if !missing.is_empty() {
            match self.store.jobs_by_ids(&missing).await {
                Ok(found) => jobs.extend(found.into_iter().map(|j| (j.id, Arc::new(j)))),
                Err(e) => {
                    unread = true;
                    for run in claimed.iter().filter(|r| !jobs.contains_key(&r.job_id)) {
                        self.give_up(run.run_id, &format!("cannot read the job: {e}"))
                            .await;
                    }
                }
            }
        }
        let mut batch = Vec::with_capacity(claimed.len());
        for run in claimed {
            let Some(job) = jobs.get(&run.job_id).cloned() else {
                if !unread {
                    self.give_up(run.run_id, "job deleted before it ran").await;
                }
                continue;
            };
            self.fired.inc();
            batch.push(Outgoing {
                run_id: run.run_id,
                job,
                instant: run.instant,
                attempt: run.attempt,
                retry_of: run.retry_of,
                pinned: None,
                shard: run.shard,
                flow: run.flow_run.map(|f| (f, run.upstream_runs.clone())),
                params: run
                    .params
                    .as_deref()
                    .and_then(|p| serde_json::from_str(p).ok()),
            });
        }
        self.deliver(batch, Instant::now()).await;
    }

    pub(super) async fn give_up(&self, run_id: i64, reason: &str) {
        self.delivery_failures.inc();
        if let Err(e) = self.store.fail_run(run_id, reason).await {
            tracing::error!(run = run_id, error = %e, "cannot record the delivery failure");
        }
    }
}
