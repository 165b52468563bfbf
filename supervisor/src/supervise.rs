//! The supervision loop: start every child, wait for readiness, restart what dies, stop all on
//! request. Phases are logged (`starting`, `ready`, `stopping`, `stopped`) and mirrored in the
//! status file, so an operator and a test can observe them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::Child;
use tokio::sync::{mpsc, watch};

use crate::backoff::Backoff;
use crate::child::{spawn, ChildSpec};
use crate::listeners::Listeners;
use crate::notify::{Message, NotifySocket};
use crate::status::{ChildStatus, Status, StatusBoard};

/// How to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM to each child, which finishes its requests and running jobs within the drain
    /// timeout.
    Graceful,
    /// SIGINT to each child, which stops at once (running jobs are killed and recorded).
    Fast,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub children: Vec<ChildSpec>,
    /// Where the notify sockets and the status file live.
    pub run_dir: PathBuf,
    pub ready_timeout: Duration,
    pub drain_timeout: Duration,
    pub fast_stop_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("cannot prepare {path}: {source}")]
    RunDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A child that stayed up this long gets its backoff reset.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// Runs the children until `stop` carries a value, then stops them and returns once every
/// child has exited. `on_ready` is called once, when every child has reported ready the first
/// time.
pub async fn run(
    settings: Settings,
    listeners: Listeners,
    stop: watch::Receiver<Option<Stop>>,
    on_ready: impl FnOnce(&Status) + Send + 'static,
) -> Result<(), SuperviseError> {
    std::fs::create_dir_all(&settings.run_dir).map_err(|source| SuperviseError::RunDir {
        path: settings.run_dir.clone(),
        source,
    })?;
    let status = Status {
        pid: std::process::id(),
        version: settings.version.clone(),
        generation: 1,
        phase: "starting".into(),
        listeners: listeners
            .addrs()
            .into_iter()
            .map(|(n, a, _)| (n, a.to_string()))
            .collect(),
        children: settings
            .children
            .iter()
            .map(|c| ChildStatus {
                role: c.role.clone(),
                pid: None,
                generation: 1,
                ready: false,
                started_at: 0,
                restarts: 0,
                last_exit: None,
                status: None,
            })
            .collect(),
    };
    let board = Arc::new(StatusBoard::new(
        settings.run_dir.join("status.json"),
        status,
    ));
    let listeners = Arc::new(listeners);
    let settings = Arc::new(settings);
    let (ready_tx, mut ready_rx) = mpsc::channel::<String>(16);

    let mut tasks = Vec::new();
    for spec in settings.children.clone() {
        tasks.push(tokio::spawn(supervise_child(
            spec,
            settings.clone(),
            listeners.clone(),
            board.clone(),
            stop.clone(),
            ready_tx.clone(),
        )));
    }
    drop(ready_tx);

    let mut waiting: std::collections::HashSet<String> =
        settings.children.iter().map(|c| c.role.clone()).collect();
    let mut on_ready = Some(on_ready);
    let mut stop_rx = stop.clone();
    loop {
        tokio::select! {
            role = ready_rx.recv() => {
                let Some(role) = role else { break };
                waiting.remove(&role);
                if waiting.is_empty() {
                    if let Some(f) = on_ready.take() {
                        board.update(|s| s.phase = "ready".into());
                        if let Some(s) = board.snapshot() {
                            f(&s);
                        }
                    }
                }
            }
            changed = stop_rx.changed() => {
                if changed.is_err() || stop_rx.borrow().is_some() {
                    break;
                }
            }
        }
    }
    board.update(|s| s.phase = "stopping".into());
    for t in tasks {
        let _ = t.await;
    }
    board.update(|s| s.phase = "stopped".into());
    Ok(())
}

async fn supervise_child(
    spec: ChildSpec,
    settings: Arc<Settings>,
    listeners: Arc<Listeners>,
    board: Arc<StatusBoard>,
    mut stop: watch::Receiver<Option<Stop>>,
    ready_tx: mpsc::Sender<String>,
) {
    let role = spec.role.clone();
    let mut backoff = Backoff::new(settings.backoff_initial, settings.backoff_max);
    let mut restarts: u64 = 0;
    let mut incarnation: u64 = 0;
    loop {
        if stop.borrow().is_some() {
            return;
        }
        incarnation += 1;
        let notify_path = settings.run_dir.join(format!("{role}.{incarnation}.sock"));
        let outcome = match NotifySocket::bind(&notify_path) {
            Ok(notify) => match spawn(&spec, &listeners, notify.path()) {
                Ok(child) => {
                    run_child(
                        child, &notify, &role, &settings, &board, &mut stop, &ready_tx,
                    )
                    .await
                }
                Err(e) => Exit::Failed(e.to_string(), Duration::ZERO),
            },
            Err(e) => Exit::Failed(
                format!("cannot bind notify socket {}: {e}", notify_path.display()),
                Duration::ZERO,
            ),
        };
        let (reason, uptime) = match outcome {
            Exit::Stopped => return,
            Exit::Failed(reason, uptime) => (reason, uptime),
        };
        restarts += 1;
        if uptime >= STABLE_AFTER {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tracing::warn!(role = %role, reason = %reason, restarts, delay_ms = delay.as_millis() as u64,
            "role exited; restarting");
        board.child(&role, |c| {
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
    /// Died or failed readiness: restart after backoff. (reason, uptime)
    Failed(String, Duration),
}

async fn run_child(
    mut child: Child,
    notify: &NotifySocket,
    role: &str,
    settings: &Settings,
    board: &StatusBoard,
    stop: &mut watch::Receiver<Option<Stop>>,
    ready_tx: &mpsc::Sender<String>,
) -> Exit {
    let started = Instant::now();
    let pid = child.id();
    board.started(role, pid);
    tracing::info!(role, pid, "role started");
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
                            tracing::info!(role, pid, ms = started.elapsed().as_millis() as u64, "role ready");
                            board.child(role, |c| c.ready = true);
                            let _ = ready_tx.send(role.to_string()).await;
                        }
                        Message::Status(s) => board.child(role, |c| c.status = Some(s)),
                        _ => {}
                    }
                }
            }
            status = child.wait() => {
                let reason = match status {
                    Ok(s) => format!("exited: {s}"),
                    Err(e) => format!("wait failed: {e}"),
                };
                return Exit::Failed(reason, started.elapsed());
            }
            _ = &mut ready_deadline, if !ready => {
                tracing::error!(role, pid, timeout_s = settings.ready_timeout.as_secs(), "role not ready in time; killing it");
                signal(pid, Signal::SIGKILL);
                let _ = child.wait().await;
                return Exit::Failed(format!("not ready within {} s", settings.ready_timeout.as_secs()), started.elapsed());
            }
            changed = stop.changed() => {
                let how = if changed.is_err() { Some(Stop::Fast) } else { *stop.borrow() };
                if let Some(how) = how {
                    stop_child(&mut child, role, how, settings).await;
                    board.child(role, |c| { c.pid = None; c.ready = false; });
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
