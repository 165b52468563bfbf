//! `POST /rpc/v1/runs`: taking runs from dispatchers. A run starts here only once the store
//! names this executor as the run's (see `store/claims.rs`): a request read late — this process
//! was paused with it in its socket while the dispatcher gave up and sent the run elsewhere —
//! finds the run taken or ended, and is not run a second time. What it runs is its job as
//! the store has it (`with_stored_work`), not what the request says.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use tokio::task::JoinSet;

use super::{start, Executor};
use crate::http::ApiError;
use crate::model::work::Work;
use crate::model::{BatchAccepted, RunAccepted, RunBatch, RunRequest};
use crate::store::{Claim, RunOutcome, Stored};

/// Most runs held whose claim could not be read back (the store failed mid-claim). Beyond it
/// runs are refused before any claim is tried, so none is left claimed and forgotten.
const MAX_UNSURE: usize = 10_000;
/// How long a claim may take before the runs are held and refused (503): the dispatcher fails
/// over meanwhile (its answer timeout, `dispatcher/deliver.rs`, is longer).
const CLAIM_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the held runs' claims are read again.
const RESOLVE_EVERY: Duration = Duration::from_secs(1);

/// `POST /rpc/v1/runs`: claim each run, spawn the ones that are this executor's and answer
/// with the pids; each run is watched in the background. A run id seen before is acknowledged,
/// not started again; a run another executor has is answered with that executor; a run that
/// ended meanwhile is answered in `not_started`.
pub(super) async fn accept_runs(
    State(exec): State<Arc<Executor>>,
    Json(batch): Json<RunBatch>,
) -> Result<(StatusCode, Json<BatchAccepted>), ApiError> {
    refuse_when_unable(&exec)?;
    let mut reply = BatchAccepted {
        claimed: true,
        ..BatchAccepted::default()
    };
    let fresh = not_seen_before(&exec, batch.runs, &mut reply);
    if fresh.is_empty() {
        return Ok((StatusCode::ACCEPTED, Json(reply)));
    }
    // On a task of its own: a dispatcher that stops waiting (its connection closes) cancels
    // this handler, and a claim written must still be followed by its start.
    let claimed = tokio::spawn(claim_and_start(exec.clone(), fresh))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    reply.accepted.extend(claimed.accepted);
    reply.failed.extend(claimed.failed);
    reply.not_started.extend(claimed.not_started);
    Ok((StatusCode::ACCEPTED, Json(reply)))
}

/// Claims the runs in the store and starts the ones that are this executor's.
async fn claim_and_start(
    exec: Arc<Executor>,
    runs: Vec<RunRequest>,
) -> Result<BatchAccepted, ApiError> {
    let ids: Vec<i64> = runs.iter().map(|r| r.run_id).collect();
    // Bounded: a store that stopped answering (its packets dropped) must not hold the
    // dispatcher's request — it fails over to an executor that can claim.
    let claimed = tokio::time::timeout(CLAIM_TIMEOUT, exec.store.claim_runs(&exec.id, &ids))
        .await
        .unwrap_or(Err(crate::store::StoreError::NoAnswer(CLAIM_TIMEOUT)));
    let claims = match claimed {
        Ok(claims) => claims,
        Err(e) => {
            // The claim may have been written before the error: hold the runs and read their
            // claims again later, starting what turns out to be ours. The dispatcher fails over
            // meanwhile; an executor there finds the run taken if it was.
            tracing::warn!(runs = ids.len(), error = %e, "cannot claim runs; holding them until the store answers");
            if let Ok(mut unsure) = exec.unsure.lock() {
                unsure.extend(runs);
            }
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("executor cannot claim the runs in the store: {e}"),
            ));
        }
    };
    let mut reply = BatchAccepted::default();
    let mine = sort_by_claim(&exec, runs, &claims, &mut reply);
    start_all(&exec, mine, &mut reply).await;
    Ok(reply)
}

/// 503 (the dispatcher fails over) while this executor cannot take runs: stopping, cut off
/// from the store, full, or holding too many unsure claims.
fn refuse_when_unable(exec: &Executor) -> Result<(), ApiError> {
    let unavailable = |why: String| Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why));
    if exec.kill.borrow().is_some() {
        return unavailable("executor stopping".into());
    }
    if !exec.store_ok.ok() {
        // Taken now, these runs' results could not be recorded, and the monitor would soon
        // mark them lost (and retry them) although they ran: let another executor take them.
        return unavailable(
            "executor cut off from the store: taking no runs until it can record them".into(),
        );
    }
    let max = exec.cfg.max_running;
    if max > 0 {
        let going = exec.active.lock().map(|a| a.len()).unwrap_or(0);
        if going >= max {
            // Another executor of the target may have room; the dispatcher fails over.
            return unavailable(format!(
                "executor full: {going} runs going (executor.max_running = {max})"
            ));
        }
    }
    let unsure = exec.unsure.lock().map(|u| u.len()).unwrap_or(0);
    if unsure >= MAX_UNSURE {
        return unavailable(format!(
            "executor holding {unsure} runs whose claim the store has not confirmed"
        ));
    }
    Ok(())
}

/// The runs not accepted here before; the others are acknowledged (a dispatcher that did not
/// hear the first answer asks again).
fn not_seen_before(
    exec: &Executor,
    runs: Vec<RunRequest>,
    reply: &mut BatchAccepted,
) -> Vec<RunRequest> {
    let mut fresh = Vec::with_capacity(runs.len());
    for req in runs {
        let first = exec
            .seen
            .lock()
            .map(|mut s| s.first_time(req.run_id))
            .unwrap_or(true);
        if first {
            fresh.push(req);
        } else {
            reply.accepted.push(RunAccepted {
                run_id: req.run_id,
                executor: exec.id.clone(),
                pid: None,
            });
        }
    }
    fresh
}

/// The runs the store names this executor's; the others go into the answer as they are.
fn sort_by_claim(
    exec: &Executor,
    runs: Vec<RunRequest>,
    claims: &std::collections::HashMap<i64, Claim>,
    reply: &mut BatchAccepted,
) -> Vec<RunRequest> {
    let mut mine = Vec::with_capacity(runs.len());
    for req in runs {
        match claims.get(&req.run_id).cloned().unwrap_or(Claim::Over) {
            Claim::Mine(stored) => match with_stored_work(req, &stored) {
                Ok(req) => mine.push(req),
                Err((run_id, why)) => {
                    tracing::warn!(run = run_id, executor = %exec.id, reason = %why,
                        "refusing a run request that asks for other work than its job's");
                    exec.recorder
                        .finish(run_id, RunOutcome::failed(why), None, None);
                    reply.failed.push(run_id);
                }
            },
            Claim::Taken(other) => {
                tracing::warn!(run = req.run_id, executor = %exec.id, taken_by = %other,
                    "not starting a run another executor has (its request reached this one late)");
                reply.accepted.push(RunAccepted {
                    run_id: req.run_id,
                    executor: other,
                    pid: None,
                });
            }
            Claim::Over => {
                tracing::warn!(run = req.run_id, executor = %exec.id,
                    "not starting a run that is no longer dispatched (ended, started or deleted)");
                reply.not_started.push(req.run_id);
            }
        }
    }
    mine
}

/// How long after a job's change a dispatcher may still send the job as it was: it follows
/// the changes within a poll, but one cut off from the store keeps its copy until it can read
/// them again.
const STALE_COPY_GRACE_MS: i64 = 10 * 60_000;

/// The request with its job's work as stored (`model::work`): never what the request says.
/// A request asking for other work is refused — it was not sent by a dispatcher from the job
/// — unless the job changed shortly before the run was recorded (a dispatcher's copy from
/// before the change): then the job runs as stored now.
fn with_stored_work(mut req: RunRequest, stored: &Stored) -> Result<RunRequest, (i64, String)> {
    let work = Work::of(&stored.job).map_err(|e| (req.run_id, e))?;
    let differs = work.differences(&Work::asked(&req));
    if !differs.is_empty() {
        if stored.job.updated_at + STALE_COPY_GRACE_MS < stored.run_created {
            return Err((
                req.run_id,
                format!(
                    "refused: the request's {} {} from the job's as stored (not run)",
                    differs.join(", "),
                    if differs.len() == 1 {
                        "differs"
                    } else {
                        "differ"
                    }
                ),
            ));
        }
        tracing::info!(run = req.run_id, fields = %differs.join(", "),
            "the job changed just before its run was recorded: running it as stored now");
    }
    work.put_into(&mut req);
    Ok(req)
}

/// Starts each run on its own task, so a burst's spawns (a fork/exec each) spread over every
/// worker thread instead of queueing on this one.
async fn start_all(exec: &Arc<Executor>, runs: Vec<RunRequest>, reply: &mut BatchAccepted) {
    let mut starts = JoinSet::new();
    for req in runs {
        let exec = exec.clone();
        starts.spawn(async move { start(&exec, req) });
    }
    while let Some(started) = starts.join_next().await {
        match started {
            Ok(Ok(accepted)) => reply.accepted.push(accepted),
            Ok(Err(run_id)) => reply.failed.push(run_id),
            Err(e) => tracing::error!(error = %e, "a run's start task failed"),
        }
    }
}

/// Reads again the claims of the runs held after a failed claim, until the store answers:
/// starts the ones that are this executor's, lets the others go.
pub(super) async fn resolve_unsure(exec: Arc<Executor>) {
    let mut tick = tokio::time::interval(RESOLVE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let held: Vec<RunRequest> = match exec.unsure.lock() {
            Ok(mut u) => std::mem::take(&mut *u),
            Err(_) => continue,
        };
        if held.is_empty() || exec.kill.borrow().is_some() {
            continue;
        }
        let ids: Vec<i64> = held.iter().map(|r| r.run_id).collect();
        match exec.store.claim_runs(&exec.id, &ids).await {
            Ok(claims) => {
                let mut reply = BatchAccepted::default();
                let mine = sort_by_claim(&exec, held, &claims, &mut reply);
                tracing::info!(
                    runs = mine.len(),
                    "starting held runs whose claim the store confirmed"
                );
                start_all(&exec, mine, &mut reply).await;
            }
            Err(e) => {
                tracing::debug!(runs = ids.len(), error = %e, "held runs' claims still unread");
                if let Ok(mut u) = exec.unsure.lock() {
                    u.extend(held);
                }
            }
        }
    }
}
