//! One run on this executor, from its request to its recorded end, in phases: whom it runs as
//! (`job_user`), its process (`spawn_process`, nothing yet for an HTTP job), its entry among the
//! active runs (kills and live output find it there), then a task that watches it to the end
//! and records the outcome (`watch_and_record`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{live, process, ActiveRun, Executor, KillReason};
use crate::model::{RunAccepted, RunRequest};
use crate::store::{Retry, RunOutcome, Started};

/// How long a run may go before it is recorded `running` (shorter runs are recorded once).
const RUNNING_VISIBLE_AFTER: Duration = Duration::from_millis(200);

/// Spawns one run and the task that watches it to the end. On a failure to start it the run
/// is recorded `failed` and its id returned.
pub(super) fn start(exec: &Arc<Executor>, req: RunRequest) -> Result<RunAccepted, i64> {
    let output = live::LiveOutput::new(exec.cfg.output_head_bytes, exec.cfg.output_tail_bytes);
    let failed = |reason: String| {
        exec.counters.spawn_failed.inc();
        exec.recorder
            .finish(req.run_id, RunOutcome::failed(reason), None, None);
        req.run_id
    };
    if !exec.cfg.job_groups.is_empty() && !exec.cfg.job_groups.contains(&req.group) {
        return Err(failed(format!(
            "this executor takes runs of the job groups {} only (executor.job_groups), not `{}`",
            exec.cfg.job_groups.join(", "),
            req.group
        )));
    }
    let job_user = job_user(exec, &req).map_err(failed)?;
    let spawned = match &req.http {
        Some(_) => None,
        None => Some(spawn_process(exec, &req, job_user.as_ref(), &output).map_err(failed)?),
    };
    exec.counters.started.inc();
    exec.counters.running.inc();
    let pid = spawned.as_ref().and_then(|s| s.pid).map(i64::from);
    let started = Started {
        executor: exec.id.clone(),
        pid,
        started_at: spawned
            .as_ref()
            .map(|s| s.started_at)
            .unwrap_or_else(crate::model::now_millis),
        params_shown: req.params_shown.clone(),
    };
    let accepted = RunAccepted {
        run_id: req.run_id,
        executor: exec.id.clone(),
        pid,
    };
    let forbid = req.overlap == crate::model::Overlap::Forbid;
    let kill = register_active(exec, req.run_id, &output, forbid);
    let task = watch_and_record(exec.clone(), req, spawned, output, kill, started);
    if let Ok(mut runs) = exec.runs.lock() {
        // Reap finished tasks so the set stays as large as what is running.
        while runs.try_join_next().is_some() {}
        runs.spawn(task);
    }
    Ok(accepted)
}

/// Whom the run's process runs as: the job's own `run_as` (one of `allowed_users`), or the
/// executor's `run_as`.
fn job_user(exec: &Executor, req: &RunRequest) -> Result<Option<process::RunAs>, String> {
    match req.run_as.as_deref() {
        None => Ok(exec.run_as.clone()),
        Some(name) => process::RunAs::for_job(
            name,
            &req.group,
            &exec.cfg.allowed_users,
            &exec.cfg.allowed_users_by_group,
        )
        .map_err(|e| e.to_string()),
    }
}

/// A shell command's process, started, its start time measured.
fn spawn_process(
    exec: &Executor,
    req: &RunRequest,
    user: Option<&process::RunAs>,
    output: &Arc<live::LiveOutput>,
) -> Result<process::Spawned, String> {
    let spawning = std::time::Instant::now();
    let spawned = process::spawn(
        &req.command,
        process::job_env(req, &exec.cfg.pass_env, user),
        user,
        exec.caps,
        req.limits,
        output.clone(),
    )
    .map_err(|e| format!("cannot start /bin/sh: {e}"))?;
    exec.counters
        .spawn_time
        .observe(spawning.elapsed().as_secs_f64());
    Ok(spawned)
}

/// Puts the run among the active ones (where kills and live readers find it); the receiver
/// of its kill switch.
fn register_active(
    exec: &Executor,
    run_id: i64,
    output: &Arc<live::LiveOutput>,
    forbid: bool,
) -> watch::Receiver<Option<KillReason>> {
    let (switch, kill) = watch::channel(None);
    if let Ok(mut active) = exec.active.lock() {
        // A shutdown that began meanwhile reaches this run too.
        if exec.kill.borrow().is_some() {
            let _ = switch.send(Some(KillReason::Shutdown));
        }
        active.insert(
            run_id,
            ActiveRun {
                kill: switch,
                output: output.clone(),
                forbid,
            },
        );
    }
    kill
}

/// Watches the run to its end (process or HTTP call), then records the outcome and, when the
/// job allows another attempt, its retry.
async fn watch_and_record(
    e: Arc<Executor>,
    req: RunRequest,
    spawned: Option<process::Spawned>,
    output: Arc<live::LiveOutput>,
    kill: watch::Receiver<Option<KillReason>>,
    started: Started,
) {
    let timeout = req
        .timeout_secs
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64));
    let mut watch: std::pin::Pin<Box<dyn std::future::Future<Output = RunOutcome> + Send + '_>> =
        match (spawned, req.http.clone()) {
            (Some(spawned), _) => Box::pin(process::watch_to_end(spawned, timeout, &e.cfg, kill)),
            (None, Some(call)) => {
                Box::pin(process::http_call(&e.http, call, timeout, output, kill))
            }
            (None, None) => Box::pin(async { RunOutcome::failed("nothing to run".into()) }),
        };
    // A run that ends quickly is written once, with its outcome; a longer one shows as
    // `running` after RUNNING_VISIBLE_AFTER. This keeps a write off the firing path.
    let outcome = tokio::select! {
        outcome = &mut watch => outcome,
        _ = tokio::time::sleep(RUNNING_VISIBLE_AFTER) => {
            if let Err(err) = e.store.mark_running(req.run_id, &started.executor, started.pid, started.started_at).await {
                tracing::warn!(run = req.run_id, error = %err, "cannot record running; the result will still be recorded");
            }
            watch.await
        }
    };
    e.counters.running.dec();
    if let Some(c) = e.counters.finished.get(outcome.state.as_str()) {
        c.inc();
    }
    e.counters
        .output_kept
        .add((outcome.stdout.len() + outcome.stderr.len()) as u64);
    e.counters
        .output_cut
        .add(u64::try_from(outcome.stdout_cut + outcome.stderr_cut).unwrap_or(0));
    tracing::debug!(run = req.run_id, job = %req.job_name, state = outcome.state.as_str(), "run finished");
    if let Ok(mut active) = e.active.lock() {
        active.remove(&req.run_id);
    }
    let retry = (req.attempt <= req.retries).then(|| Retry {
        job_id: req.job_id,
        instant: req.instant,
        attempt: req.attempt + 1,
        retry_of: req.retry_of.unwrap_or(req.run_id),
        not_before: outcome.ended_at
            + crate::model::retry_delay_ms(req.retry_backoff_secs, req.attempt),
    });
    e.recorder.finish(req.run_id, outcome, Some(started), retry);
}
