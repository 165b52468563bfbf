//! The supervision loop: start a generation of children, wait for readiness, restart what
//! dies, replace the generation on reload (new one ready first, then the old one drains; a new
//! one that fails is stopped and the old one keeps serving), and stop everything on request.
//! Phases (`starting`, `ready`, `reloading`, `stopping`, `stopped`) are logged and mirrored in
//! the status file, so an operator and a test can observe them.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::child::{spawn, ChildSpec};
use crate::listeners::Listeners;
use crate::notify::{Message, NotifySocket};
use crate::status::{now_millis, ChildStatus, ReloadOutcome, Status, StatusBoard};
use crate::upgrade::{AdoptedChild, ExecSpec, UpgradeState};

/// How to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM to each child, which finishes its requests and running jobs within the drain
    /// timeout.
    Graceful,
    /// SIGINT to each child, which stops at once (running jobs are killed and recorded).
    Fast,
}

/// What the control socket and SIGHUP ask of the supervisor.
#[derive(Debug)]
pub enum Request {
    /// Start a new generation; the outcome goes to `reply` when the new generation serves or
    /// has been rolled back.
    Reload {
        reply: Option<oneshot::Sender<ReloadOutcome>>,
    },
    Status {
        reply: oneshot::Sender<Option<Status>>,
    },
    /// Re-execute the supervisor from the binary on disk after a dry-run. Answered only when it
    /// fails: on success the process image is replaced, and the new one reports through status.
    Upgrade {
        reply: oneshot::Sender<ReloadOutcome>,
    },
}

/// Re-reads the configuration for a reload: the children of the next generation, or why the
/// configuration cannot be used (the running generation is then left alone).
pub type Reconfigure = Box<dyn Fn() -> Result<Vec<ChildSpec>, ReconfigureError> + Send + Sync>;

/// Why a reload's configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ReconfigureError {
    /// The configuration does not load or validate (the source says where and why).
    #[error(transparent)]
    Invalid(Box<dyn std::error::Error + Send + Sync>),
    /// What only a restart can change: the data dir, the listeners.
    #[error("{what} changed ({before} -> {after}): that needs a restart")]
    NeedsRestart {
        what: &'static str,
        before: String,
        after: String,
    },
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
    /// How to re-execute for a self-upgrade; `None` disables it.
    pub exec: Option<ExecSpec>,
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

#[derive(Debug)]
enum Event {
    Ready {
        generation: u64,
        role: String,
    },
    /// A child of a generation on trial failed before it was ever ready.
    Failed {
        generation: u64,
        reason: String,
    },
}

/// Everything a child's task shares with the loop.
struct Shared {
    settings: Settings,
    listeners: Listeners,
    board: StatusBoard,
    events: mpsc::UnboundedSender<Event>,
}

struct Generation {
    id: u64,
    roles: Vec<String>,
    stop: watch::Sender<Option<Stop>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Generation {
    fn start(shared: &Arc<Shared>, id: u64, specs: Vec<ChildSpec>, on_trial: bool) -> Generation {
        let roles: Vec<String> = specs.iter().map(|c| c.role.clone()).collect();
        shared.board.add_generation(id, &roles);
        let (stop, stop_rx) = watch::channel(None);
        let tasks = specs
            .into_iter()
            .map(|spec| {
                tokio::spawn(supervise_child(
                    spec,
                    id,
                    on_trial,
                    shared.clone(),
                    stop_rx.clone(),
                ))
            })
            .collect();
        Generation {
            id,
            roles,
            stop,
            tasks,
        }
    }

    /// The serving generation handed over by the previous image (self-upgrade): its children
    /// are ours (same PID) but we hold no handle on them, so each is watched by polling
    /// `waitpid` until it is replaced.
    fn adopt(shared: &Arc<Shared>, id: u64, children: Vec<AdoptedChild>) -> Generation {
        shared.board.update(|s| {
            for c in &children {
                s.children.push(ChildStatus {
                    role: c.role.clone(),
                    pid: Some(c.pid),
                    generation: id,
                    ready: true,
                    started_at: c.started_at,
                    restarts: c.restarts,
                    last_exit: None,
                    status: Some("adopted across a self-upgrade".into()),
                });
            }
        });
        let (stop, stop_rx) = watch::channel(None);
        let roles = children.iter().map(|c| c.role.clone()).collect();
        let tasks = children
            .into_iter()
            .map(|c| tokio::spawn(watch_adopted(c, id, shared.clone(), stop_rx.clone())))
            .collect();
        Generation {
            id,
            roles,
            stop,
            tasks,
        }
    }

    /// Asks every child to stop and waits for all of them; then forgets the generation.
    async fn stop(self, how: Stop, board: &StatusBoard) {
        let _ = self.stop.send(Some(how));
        for t in self.tasks {
            let _ = t.await;
        }
        board.remove_generation(self.id);
    }
}

/// Runs generations of children until `stop` carries a value, then stops them and returns once
/// every child has exited. `on_ready` is called once, when the first generation is ready.
pub async fn run(
    settings: Settings,
    listeners: Listeners,
    mut stop: watch::Receiver<Option<Stop>>,
    mut requests: mpsc::Receiver<Request>,
    reconfigure: Reconfigure,
    adopted: Option<UpgradeState>,
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
        children: Vec::new(),
        last_reload: None,
    };
    let board = StatusBoard::new(settings.run_dir.join("status.json"), status);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        settings: settings.clone(),
        listeners,
        board,
        events: events_tx,
    });

    let mut on_ready = Some(on_ready);
    let mut draining: Vec<JoinHandle<()>> = Vec::new();
    let (mut current, mut waiting) = match adopted {
        None => {
            let g = Generation::start(&shared, 1, settings.children.clone(), false);
            let waiting: HashSet<String> = g.roles.iter().cloned().collect();
            (g, waiting)
        }
        Some(state) => {
            // A self-upgrade: keep serving with the adopted children, then replace them the
            // way a reload does (new generation ready first, then the old one drains).
            shared.board.update(|s| s.generation = state.generation);
            let mut g = Generation::adopt(&shared, state.generation, state.children);
            let mut outcome = reload(
                &shared,
                &mut g,
                &mut events,
                &mut stop,
                &reconfigure,
                &mut draining,
            )
            .await;
            outcome.message = format!(
                "upgraded from {} to {}: {}",
                state.from_version, settings.version, outcome.message
            );
            shared.board.update(|s| s.last_reload = Some(outcome));
            (g, HashSet::new())
        }
    };
    if waiting.is_empty() {
        if let Some(f) = on_ready.take() {
            shared.board.update(|s| s.phase = "ready".into());
            if let Some(s) = shared.board.snapshot() {
                f(&s);
            }
        }
    }
    loop {
        tokio::select! {
            event = events.recv() => {
                if let Some(Event::Ready { generation, role }) = event {
                    if generation == current.id {
                        waiting.remove(&role);
                    }
                    if waiting.is_empty() {
                        if let Some(f) = on_ready.take() {
                            shared.board.update(|s| s.phase = "ready".into());
                            if let Some(s) = shared.board.snapshot() {
                                f(&s);
                            }
                        }
                    }
                }
            }
            request = requests.recv() => match request {
                Some(Request::Status { reply }) => {
                    let _ = reply.send(shared.board.snapshot());
                }
                Some(Request::Upgrade { reply }) => {
                    let outcome = upgrade(&shared, &current).await;
                    shared.board.update(|s| s.last_reload = Some(outcome.clone()));
                    let _ = reply.send(outcome);
                }
                Some(Request::Reload { reply }) => {
                    let outcome = reload(&shared, &mut current, &mut events, &mut stop, &reconfigure, &mut draining).await;
                    shared.board.update(|s| {
                        s.last_reload = Some(outcome.clone());
                        s.phase = if on_ready.is_some() { "starting".into() } else { "ready".into() };
                    });
                    let line = format!("generation {} serving", current.id);
                    notify_systemd(&[
                        sd_notify::NotifyState::Ready,
                        sd_notify::NotifyState::Status(&line),
                    ]);
                    if let Some(reply) = reply {
                        let _ = reply.send(outcome);
                    }
                }
                None => {}
            },
            changed = stop.changed() => {
                if changed.is_err() || stop.borrow().is_some() {
                    break;
                }
            }
        }
    }
    let how = stop.borrow().unwrap_or(Stop::Fast);
    shared.board.update(|s| s.phase = "stopping".into());
    current.stop(how, &shared.board).await;
    for d in draining {
        let _ = d.await;
    }
    shared.board.update(|s| s.phase = "stopped".into());
    Ok(())
}

/// Dry-runs the binary on disk and, if it passes, re-executes into it. Returns only on failure.
async fn upgrade(shared: &Arc<Shared>, current: &Generation) -> ReloadOutcome {
    let failed = |message: String| {
        tracing::error!(reason = %message, "self-upgrade refused; nothing changed");
        ReloadOutcome {
            ok: false,
            generation: current.id,
            message,
            at: now_millis(),
        }
    };
    let Some(spec) = &shared.settings.exec else {
        return failed("self-upgrade is not available".into());
    };
    if let Err(e) = crate::upgrade::dry_run(spec, Duration::from_secs(30)).await {
        return failed(e);
    }
    let Some(status) = shared.board.snapshot() else {
        return failed("status unavailable".into());
    };
    let children: Vec<AdoptedChild> = status
        .children
        .iter()
        .filter(|c| c.generation == current.id)
        .filter_map(|c| {
            Some(AdoptedChild {
                role: c.role.clone(),
                pid: c.pid?,
                started_at: c.started_at,
                restarts: c.restarts,
            })
        })
        .collect();
    if children.len() != current.roles.len() {
        return failed("a child of the serving generation is not running; retry once it is".into());
    }
    let state = UpgradeState {
        from_version: shared.settings.version.clone(),
        generation: current.id,
        listeners: shared.listeners.raw_fds(),
        children,
    };
    tracing::info!(program = %spec.program.display(), "self-upgrade: dry-run passed; re-executing");
    let err = crate::upgrade::exec(spec, &state);
    failed(format!("exec of {} failed: {err}", spec.program.display()))
}

/// Watches a child adopted across a self-upgrade until it exits, and stops it on request.
async fn watch_adopted(
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

fn notify_systemd(states: &[sd_notify::NotifyState]) {
    let _ = sd_notify::notify(false, states);
}

/// One reload: new generation on trial; on success it replaces `current` and the old one
/// drains in the background; on failure it is stopped and `current` is untouched.
async fn reload(
    shared: &Arc<Shared>,
    current: &mut Generation,
    events: &mut mpsc::UnboundedReceiver<Event>,
    stop: &mut watch::Receiver<Option<Stop>>,
    reconfigure: &Reconfigure,
    draining: &mut Vec<JoinHandle<()>>,
) -> ReloadOutcome {
    let started = Instant::now();
    let status_line = format!("reloading: starting generation {}", current.id + 1);
    let mut states = vec![
        sd_notify::NotifyState::Reloading,
        sd_notify::NotifyState::Status(&status_line),
    ];
    if let Ok(t) = sd_notify::NotifyState::monotonic_usec_now() {
        states.push(t);
    }
    notify_systemd(&states);
    shared.board.update(|s| s.phase = "reloading".into());
    let old_id = current.id;
    let fail = |message: String| {
        tracing::error!(generation = old_id, reason = %message, "reload failed; the running generation keeps serving");
        ReloadOutcome {
            ok: false,
            generation: old_id,
            message,
            at: now_millis(),
        }
    };
    let specs = match reconfigure() {
        Ok(specs) => specs,
        Err(e) => return fail(format!("configuration rejected: {e}")),
    };
    let new_id = old_id + 1;
    tracing::info!(generation = new_id, "reload: starting a new generation");
    let candidate = Generation::start(shared, new_id, specs, true);
    let mut waiting: HashSet<String> = candidate.roles.iter().cloned().collect();
    let deadline = tokio::time::sleep(shared.settings.ready_timeout + Duration::from_secs(2));
    tokio::pin!(deadline);
    let verdict: Result<(), String> = loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::Ready { generation, role }) if generation == new_id => {
                    waiting.remove(&role);
                    if waiting.is_empty() {
                        break Ok(());
                    }
                }
                Some(Event::Failed { generation, reason }) if generation == new_id => break Err(reason),
                Some(_) => {}
                None => break Err("supervisor shutting down".into()),
            },
            _ = &mut deadline => break Err(format!(
                "not ready within {} s: {}",
                shared.settings.ready_timeout.as_secs(),
                waiting.iter().cloned().collect::<Vec<_>>().join(", ")
            )),
            changed = stop.changed() => {
                if changed.is_err() || stop.borrow().is_some() {
                    break Err("supervisor stopping".into());
                }
            }
        }
    };
    match verdict {
        Ok(()) => {
            let old = std::mem::replace(current, candidate);
            shared.board.update(|s| s.generation = new_id);
            let board_shared = shared.clone();
            tracing::info!(
                generation = new_id,
                old = old.id,
                ms = started.elapsed().as_millis() as u64,
                "reload: new generation serving; draining the old one"
            );
            draining.retain(|d| !d.is_finished());
            draining.push(tokio::spawn(async move {
                let id = old.id;
                old.stop(Stop::Graceful, &board_shared.board).await;
                tracing::info!(generation = id, "old generation drained");
            }));
            ReloadOutcome {
                ok: true,
                generation: new_id,
                message: format!("generation {new_id} serving; generation {old_id} draining"),
                at: now_millis(),
            }
        }
        Err(reason) => {
            candidate.stop(Stop::Fast, &shared.board).await;
            fail(format!("generation {new_id} rolled back: {reason}"))
        }
    }
}

async fn supervise_child(
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
