//! Handing recorded runs to executors: one request per executor and chunk, failing over to
//! the next executor of the target when one did not take them — unreachable, refusing (503),
//! or not answering within [`ANSWER_TIMEOUT`] — until the delivery timeout; what no executor
//! took is recorded `failed` with the reason. Failing over is exact even when the first
//! executor may have received the runs: an executor starts a run only once its claim in the
//! store names it (`store/claims.rs`), so the second finds a run the first claimed taken, and
//! answers with the first.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use hyper::Method;

use super::fire::{Firer, Outgoing};
use super::targets::Targets;
use crate::cluster::ExecutorInfo;
use crate::http::client::HttpClient;
use crate::model::RunRequest;

/// Runs grouped by the executor they go to (by its id).
type Groups = BTreeMap<String, (ExecutorInfo, Vec<(Outgoing, RunRequest)>)>;

/// How long one executor has to answer a request before its runs go to another: its claim is
/// bounded at 2 s (`executor/accept.rs`), the spawns of a batch of 500 take under a second. A
/// slower answer fails over exactly (see above) instead of spending the whole delivery budget
/// on one executor while another is healthy.
pub(super) const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// What one delivery learned across its rounds.
#[derive(Default)]
struct Round {
    /// Executors that did not take runs this delivery (tried last, or again after a while).
    refused: HashSet<String>,
    last_error: String,
}

/// How one RPC to one executor ended.
enum Sent {
    /// Received; the executor's answer names the instance that took the runs.
    Taken(Option<crate::model::BatchAccepted>),
    /// Not taken (unreachable, it answered 503, or not in time): another executor may take
    /// the runs — the claim keeps one it did take from running twice.
    Elsewhere(String),
    Refused(String),
}

/// Most runs sent in one RPC.
const MAX_BATCH: usize = 500;

impl Firer {
    /// Hands runs to executors, one request per executor and chunk: each run to the next
    /// executor of its target in round-robin order (or to its pinned one). Runs an executor
    /// did not take fail over to the next. Runs no executor took within the delivery timeout
    /// are recorded `failed` with the reason.
    pub(super) async fn deliver(&self, runs: Vec<Outgoing>, started: Instant) {
        let mut pending: Vec<(Outgoing, RunRequest)> = Vec::with_capacity(runs.len());
        for o in runs {
            match request_of(&o) {
                Ok(r) => pending.push((o, r)),
                Err(reason) => self.give_up(o.run_id, &reason).await,
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
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
            if round.refused.len() >= self.targets.registry().live().len() {
                round.refused.clear();
            }
        }
        if pending.is_empty() {
            // Nothing to send (every instant of the burst was someone else's): not an error.
            return;
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

    /// Groups the pending runs by the executor each goes to: its pinned one, or the next of
    /// its target not refused this delivery. The runs no executor can take come back apart.
    fn place(
        &self,
        pending: &mut Vec<(Outgoing, RunRequest)>,
        round: &Round,
    ) -> (Groups, Vec<(Outgoing, RunRequest)>) {
        let mut groups: Groups = BTreeMap::new();
        let mut unplaced = Vec::new();
        for item in pending.drain(..) {
            let choice = match item.0.pinned.as_ref().map(|(e, _)| e) {
                Some(e) => Some(e.clone()),
                None => self.targets.pick(&item.0.job, &round.refused),
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
                    // An executor that claims has named itself in the store already: one
                    // write per batch fewer on the firing path.
                    if let Some(reply) = reply.filter(|r| !r.claimed) {
                        self.note_delivered(&reply).await;
                    }
                }
                Sent::Elsewhere(e) => {
                    tracing::debug!(executor = %executor.id, error = %e, "executor did not take the runs; failing over");
                    round.refused.insert(executor.id.clone());
                    self.targets.mark_suspect(&executor.id);
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
            // Without it the monitor takes the runs for never delivered and marks them lost
            // once `undelivered_after` passes: worth a few tries over a store hiccup.
            let mut pause = std::time::Duration::from_millis(100);
            for attempt in 1..=5 {
                match self.store.mark_delivered(instance, &ids).await {
                    Ok(()) => break,
                    Err(e) if attempt < 5 => {
                        tracing::debug!(runs = ids.len(), attempt, error = %e,
                            "cannot record which executor took the runs; trying again");
                        tokio::time::sleep(pause).await;
                        pause *= 2;
                    }
                    Err(e) => tracing::warn!(runs = ids.len(), error = %e,
                        "cannot record which executor took the runs"),
                }
            }
        }
    }
}

/// The RPC body of one run; why not, when the job has nothing to run or a parameter it
/// requires has no value (a scheduled or released run gets the defaults).
fn request_of(o: &Outgoing) -> Result<RunRequest, String> {
    let (params, params_shown) = match &o.params {
        Some(given) => (given.clone(), None),
        None if o.job.params.is_empty() => (Default::default(), None),
        None => {
            let v = crate::model::params::resolve(&o.job.params, &Default::default())
                .map_err(|e| format!("parameter {}", e.message))?;
            let (_, shown) = v.to_json();
            (v.real, Some(shown))
        }
    };
    let work = crate::model::work::Work::of(&o.job)?;
    let mut req = RunRequest {
        run_id: o.run_id,
        job_id: o.job.id,
        job_name: String::new(),
        instant: o.instant,
        command: String::new(),
        http: None,
        timeout_secs: None,
        timezone: String::new(),
        env: Default::default(),
        retries: 0,
        retry_backoff_secs: 0,
        run_as: None,
        group: String::new(),
        limits: Default::default(),
        attempt: o.attempt,
        retry_of: o.retry_of,
        shard_index: o
            .pinned
            .as_ref()
            .map(|(_, s)| *s)
            .or(o.shard)
            .map_or(0, |s| s.0),
        shard_total: o
            .pinned
            .as_ref()
            .map(|(_, s)| *s)
            .or(o.shard)
            .map_or(1, |s| s.1),
        params,
        params_shown,
        flow_run: o.flow.as_ref().map(|f| f.0),
        upstream_runs: o.flow.as_ref().and_then(|f| f.1.clone()),
        overlap: Default::default(),
    };
    work.put_into(&mut req);
    Ok(req)
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
        Ok(r) if r.status == hyper::StatusCode::SERVICE_UNAVAILABLE => {
            // Its reason (stopping, cut off from the store, full) goes into the record.
            let why = serde_json::from_slice::<crate::http::ErrorBody>(&r.body)
                .map(|b| b.error.message)
                .unwrap_or_else(|_| "busy or stopping".into());
            Sent::Elsewhere(format!(
                "executor {} refused: {why} ({})",
                executor.id, r.status
            ))
        }
        Ok(r) => Sent::Refused(format!("{} {}", r.status, String::from_utf8_lossy(&r.body))),
        Err(e) => Sent::Elsewhere(e.to_string()),
    }
}
