//! One child's keeper: spawn it with its sockets, wait for its readiness, restart it with
//! backoff when it dies (or, on trial, report the failure so the reload rolls back), and stop
//! it on request (SIGTERM or SIGINT, then SIGKILL past the limit). Also the watcher of a child
//! adopted across a self-upgrade.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::Child;
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::child::{spawn, ChildSpec};
use crate::notify::{Message, NotifySocket};
use crate::supervise::{Event, Settings, Shared, Stop, STABLE_AFTER};
use crate::upgrade::AdoptedChild;

/// Watches a child adopted across a self-upgrade until it exits, and stops it on request.
pub(crate) async fn watch_adopted(
    child: AdoptedChild,
    generation: u64,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<Option<Stop>>,
) {
    let pid = Pid::from_raw(child.pid as i32);
    let reaped = || {
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        !matches!(
            waitpid(pid, Some(WaitPidFlag::WNOHANG)),
            Ok(WaitStatus::StillAlive)
        )
    };
    let poll = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(poll) => {
                if reaped() {
                    tracing::warn!(role = %child.role, pid = child.pid, "adopted role exited");
                    shared.board.child(&child.role, generation, |c| c.pid = None);
                    return;
                }
            }
            changed = stop.changed() => {
                let how = if changed.is_err() { Some(Stop::Fast) } else { *stop.borrow() };
                let Some(how) = how else { continue };
                let (sig, limit) = match how {
                    Stop::Graceful => (Signal::SIGTERM, shared.settings.drain_timeout),
                    Stop::Fast => (Signal::SIGINT, shared.settings.fast_stop_timeout),
                };
                let _ = kill(pid, sig);
                let started = Instant::now();
                while !reaped() {
                    if started.elapsed() > limit {
                        let _ = kill(pid, Signal::SIGKILL);
                    }
                    tokio::time::sleep(poll).await;
                }
                shared.board.child(&child.role, generation, |c| c.pid = None);
                return;
            }
        }
    }
}

pub(crate) async fn supervise_child(
    spec: ChildSpec,
    generation: u64,
    on_trial: bool,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<Option<Stop>>,
) {
    let role = spec.role.clone();
    let settings = &shared.settings;
    let mut backoff = Backoff::new(settings.backoff_initial, settings.backoff_max);
    let mut restarts: u64 = 0;
    let mut incarnation: u64 = 0;
    let mut ever_ready = false;
    loop {
        if stop.borrow().is_some() {
            return;
        }
        incarnation += 1;
        let notify_path = settings
            .run_dir
            .join(format!("{role}.{generation}.{incarnation}.sock"));
        let outcome = match NotifySocket::bind(&notify_path) {
            Ok(notify) => match spawn(&spec, &shared.listeners, notify.path()) {
                Ok(child) => run_child(child, &notify, &role, generation, &shared, &mut stop).await,
                Err(e) => Exit::Failed(e.to_string(), Duration::ZERO, false),
            },
            Err(e) => Exit::Failed(
                format!("cannot bind notify socket {}: {e}", notify_path.display()),
                Duration::ZERO,
                false,
            ),
        };
        let (reason, uptime) = match outcome {
            Exit::Stopped => return,
            Exit::Failed(reason, uptime, was_ready) => {
                ever_ready |= was_ready;
                (reason, uptime)
            }
        };
        if on_trial && !ever_ready {
            // A generation on trial is not nursed: its failure rolls the reload back.
            let _ = shared.events.send(Event::Failed {
                generation,
                reason: format!("{role}: {reason}"),
            });
            shared.board.child(&role, generation, |c| {
                c.pid = None;
                c.last_exit = Some(reason.clone());
            });
            return;
        }
        restarts += 1;
        if uptime >= STABLE_AFTER {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tracing::warn!(role = %role, generation, reason = %reason, restarts, delay_ms = delay.as_millis() as u64,
            "role exited; restarting");
        shared.board.child(&role, generation, |c| {
            c.pid = None;
            c.ready = false;
            c.restarts = restarts;
            c.last_exit = Some(reason.clone());
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
    }
}

enum Exit {
    /// Stopped on request: do not restart.
    Stopped,
    /// Died or failed readiness: (reason, uptime, had been ready).
    Failed(String, Duration, bool),
}

async fn run_child(
    mut child: Child,
    notify: &NotifySocket,
    role: &str,
    generation: u64,
    shared: &Shared,
    stop: &mut watch::Receiver<Option<Stop>>,
) -> Exit {
    let settings = &shared.settings;
    let board = &shared.board;
    let started = Instant::now();
    let pid = child.id();
    board.started(role, generation, pid);
    tracing::info!(role, generation, pid, "role started");
    let mut ready = false;
    let ready_deadline = tokio::time::sleep(settings.ready_timeout);
    tokio::pin!(ready_deadline);
    loop {
        tokio::select! {
            msgs = notify.recv() => {
                let Ok(msgs) = msgs else { continue };
                for m in msgs {
                    match m {
                        Message::Ready if !ready => {
                            ready = true;
                            tracing::info!(role, generation, pid, ms = started.elapsed().as_millis() as u64, "role ready");
                            board.child(role, generation, |c| c.ready = true);
                            let _ = shared.events.send(Event::Ready { generation, role: role.to_string() });
                        }
                        Message::Status(s) => board.child(role, generation, |c| c.status = Some(s)),
                        _ => {}
                    }
                }
            }
            status = child.wait() => {
                let reason = match status {
                    Ok(s) => format!("exited: {s}"),
                    Err(e) => format!("wait failed: {e}"),
                };
                return Exit::Failed(reason, started.elapsed(), ready);
            }
            _ = &mut ready_deadline, if !ready => {
                tracing::error!(role, generation, pid, timeout_s = settings.ready_timeout.as_secs(), "role not ready in time; killing it");
                signal(pid, Signal::SIGKILL);
                let _ = child.wait().await;
                return Exit::Failed(format!("not ready within {} s", settings.ready_timeout.as_secs()), started.elapsed(), false);
            }
            changed = stop.changed() => {
                let how = if changed.is_err() { Some(Stop::Fast) } else { *stop.borrow() };
                if let Some(how) = how {
                    stop_child(&mut child, role, how, settings).await;
                    board.child(role, generation, |c| { c.pid = None; c.ready = false; });
                    return Exit::Stopped;
                }
            }
        }
    }
}

fn signal(pid: Option<u32>, sig: Signal) {
    if let Some(pid) = pid {
        let _ = kill(Pid::from_raw(pid as i32), sig);
    }
}

/// Asks a child to stop and waits for it, killing it when its time is up.
async fn stop_child(child: &mut Child, role: &str, how: Stop, settings: &Settings) {
    let pid = child.id();
    let (sig, limit) = match how {
        Stop::Graceful => (Signal::SIGTERM, settings.drain_timeout),
        Stop::Fast => (Signal::SIGINT, settings.fast_stop_timeout),
    };
    tracing::info!(role, pid, ?how, "stopping role");
    signal(pid, sig);
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => tracing::info!(role, pid, status = ?status.ok(), "role stopped"),
        Err(_) => {
            tracing::warn!(
                role,
                pid,
                limit_s = limit.as_secs(),
                "role did not stop in time; killing it"
            );
            signal(pid, Signal::SIGKILL);
            let _ = child.wait().await;
        }
    }
}
