//! The supervision loop: start a generation of children, wait for readiness, restart what
//! dies, replace the generation on reload (new one ready first, then the old one drains; a new
//! one that fails is stopped and the old one keeps serving), and stop everything on request.
//! Phases (`starting`, `ready`, `reloading`, `stopping`, `stopped`) are logged and mirrored in
//! the status file, so an operator and a test can observe them.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::child::ChildSpec;
use crate::keeper::{supervise_child, watch_adopted};
use crate::listeners::Listeners;
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
pub(crate) const STABLE_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub(crate) enum Event {
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
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) listeners: Listeners,
    pub(crate) board: StatusBoard,
    pub(crate) events: mpsc::UnboundedSender<Event>,
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
///
/// Phases: `starting` (the first generation, or the adopted one of a self-upgrade replaced as a
/// reload would), `ready`, `reloading` on request, then `stopping` and `stopped`.
pub async fn run(
    settings: Settings,
    listeners: Listeners,
    mut stop: watch::Receiver<Option<Stop>>,
    mut requests: mpsc::Receiver<Request>,
    reconfigure: Reconfigure,
    adopted: Option<UpgradeState>,
    on_ready: impl FnOnce(&Status) + Send + 'static,
) -> Result<(), SuperviseError> {
    let (shared, mut events) = Shared::new(settings, listeners)?;
    let mut on_ready = Some(on_ready);
    let mut draining: Vec<JoinHandle<()>> = Vec::new();
    let (mut current, mut waiting) = match adopted {
        None => {
            let g = Generation::start(&shared, 1, shared.settings.children.clone(), false);
            let waiting: HashSet<String> = g.roles.iter().cloned().collect();
            (g, waiting)
        }
        Some(state) => {
            let g = replace_adopted(
                &shared,
                state,
                &mut events,
                &mut stop,
                &reconfigure,
                &mut draining,
            )
            .await;
            (g, HashSet::new())
        }
    };
    if waiting.is_empty() {
        announce_ready(&shared, &mut on_ready);
    }
    loop {
        tokio::select! {
            event = events.recv() => {
                if let Some(Event::Ready { generation, role }) = event {
                    if generation == current.id {
                        waiting.remove(&role);
                    }
                    if waiting.is_empty() {
                        announce_ready(&shared, &mut on_ready);
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
                    reloaded(&shared, &current, on_ready.is_none(), &outcome);
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

impl Shared {
    /// The run dir and the status board (phase `starting`), and the channel children report on.
    fn new(
        settings: Settings,
        listeners: Listeners,
    ) -> Result<(Arc<Shared>, mpsc::UnboundedReceiver<Event>), SuperviseError> {
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
        let (events_tx, events) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            settings,
            listeners,
            board,
            events: events_tx,
        });
        Ok((shared, events))
    }
}

/// A self-upgrade: keep serving with the adopted children, then replace them the way a reload
/// does (new generation ready first, then the old one drains).
async fn replace_adopted(
    shared: &Arc<Shared>,
    state: UpgradeState,
    events: &mut mpsc::UnboundedReceiver<Event>,
    stop: &mut watch::Receiver<Option<Stop>>,
    reconfigure: &Reconfigure,
    draining: &mut Vec<JoinHandle<()>>,
) -> Generation {
    shared.board.update(|s| s.generation = state.generation);
    let mut g = Generation::adopt(shared, state.generation, state.children);
    let mut outcome = reload(shared, &mut g, events, stop, reconfigure, draining).await;
    outcome.message = format!(
        "upgraded from {} to {}: {}",
        state.from_version, shared.settings.version, outcome.message
    );
    shared.board.update(|s| s.last_reload = Some(outcome));
    g
}

/// The first time every child of the serving generation is ready: phase `ready`, `on_ready`.
fn announce_ready(shared: &Shared, on_ready: &mut Option<impl FnOnce(&Status)>) {
    if let Some(f) = on_ready.take() {
        shared.board.update(|s| s.phase = "ready".into());
        if let Some(s) = shared.board.snapshot() {
            f(&s);
        }
    }
}

/// After a reload, whatever its outcome: the status says it, systemd hears READY again.
fn reloaded(shared: &Shared, current: &Generation, was_ready: bool, outcome: &ReloadOutcome) {
    shared.board.update(|s| {
        s.last_reload = Some(outcome.clone());
        s.phase = if was_ready { "ready" } else { "starting" }.into();
    });
    let line = format!("generation {} serving", current.id);
    notify_systemd(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&line),
    ]);
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

pub(crate) fn notify_systemd(states: &[sd_notify::NotifyState]) {
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
