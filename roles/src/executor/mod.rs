//! The executor: takes runs from dispatchers over a token-protected RPC, runs each in its own
//! process group, and records the state, times, exit code and capped output in the store.
//!
//! On SIGTERM it stops accepting, lets running jobs finish (up to the drain timeout), then kills
//! what is left and records it `killed`; on SIGINT it kills and records at once. Either way no
//! run it started is left `running`.

mod accept;
mod counters;
mod fence;
mod live;
mod orphans;
pub(crate) mod process;
mod recorder;
mod start;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::ExecutorConfig;
use crate::http::auth::{require_token, Token};
use crate::model::RunRequest;
use crate::presence::{Heartbeat, Presence};
use crate::runtime::{self, RoleContext, RoleError, Shutdown, Stop};
use crate::store::{GivenUp, Store};

use counters::Counters;
pub use process::KillReason;
use recorder::Recorder;
use start::start;

/// How often a draining executor writes the output of its runs so far to the store.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// How many recently accepted run ids are remembered, so a retried RPC never starts a run twice.
const RECENT_RUNS: usize = 100_000;

/// Run ids this executor has accepted: a set for lookups, a queue for eviction order.
#[derive(Default)]
struct Seen {
    ids: HashSet<i64>,
    order: VecDeque<i64>,
}

impl Seen {
    /// True when `id` is new (and remembers it).
    fn first_time(&mut self, id: i64) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > RECENT_RUNS {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        true
    }
}

struct Executor {
    id: String,
    store: Store,
    /// Whether this executor's last heartbeat reached the store. While it does not, runs are
    /// refused (503) so dispatchers send them to an executor that can record their results.
    store_ok: Arc<crate::presence::Reach>,
    cfg: ExecutorConfig,
    /// Whom jobs run as (`executor.run_as`, when this executor can switch users).
    run_as: Option<process::RunAs>,
    /// The capabilities this executor holds (none of them reach a job).
    caps: process::Caps,
    /// Tells every running run to stop (fast stop, or drain timeout reached).
    kill: watch::Sender<Option<KillReason>>,
    runs: Mutex<JoinSet<()>>,
    /// The runs in progress: each one's kill switch and output.
    active: Mutex<HashMap<i64, ActiveRun>>,
    /// The role's stop signal (live-output readers stop waiting on it).
    shutdown: Shutdown,
    seen: Mutex<Seen>,
    /// Runs whose claim failed with a store error (it may have been written): their claims
    /// are read again until the store answers (`accept::resolve_unsure`).
    unsure: Mutex<Vec<RunRequest>>,
    recorder: Recorder,
    counters: Counters,
    /// For HTTP jobs; each job's own timeout bounds its request.
    http: crate::http::client::HttpClient,
}

/// A run in progress here.
struct ActiveRun {
    kill: watch::Sender<Option<KillReason>>,
    output: Arc<live::LiveOutput>,
    /// Its job's overlap is `forbid`: fenced when the store is away too long (`fence.rs`).
    forbid: bool,
}

impl Executor {
    /// Stops every run in progress (and refuses new ones).
    fn kill_all(&self) {
        let _ = self.kill.send(Some(KillReason::Shutdown));
        if let Ok(active) = self.active.lock() {
            for run in active.values() {
                let _ = run.kill.send(Some(KillReason::Shutdown));
            }
        }
    }

    /// Stops one run; false when it is not running here.
    fn kill_run(&self, run_id: i64, reason: KillReason) -> bool {
        self.active
            .lock()
            .ok()
            .and_then(|a| a.get(&run_id).map(|r| r.kill.send(Some(reason)).is_ok()))
            .unwrap_or(false)
    }

    /// The output of a run in progress here.
    fn output_of(&self, run_id: i64) -> Option<Arc<live::LiveOutput>> {
        self.active
            .lock()
            .ok()
            .and_then(|a| a.get(&run_id).map(|r| r.output.clone()))
    }

    /// Writes what each run in progress printed so far to the store: while this executor
    /// drains after a reload its RPC belongs to the next generation, and readers of live
    /// output find it there.
    async fn checkpoint_outputs(&self) {
        let outputs: Vec<(i64, Arc<live::LiveOutput>)> = match self.active.lock() {
            Ok(a) => a.iter().map(|(id, r)| (*id, r.output.clone())).collect(),
            Err(_) => return,
        };
        for (id, output) in outputs {
            let ((out, out_cut), (err, err_cut)) = output.rendered();
            if let Err(e) = self
                .store
                .checkpoint_output(id, &out, &err, (out_cut, err_cut))
                .await
            {
                tracing::debug!(run = id, error = %e, "output checkpoint not written");
            }
        }
    }
}

/// Runs the executor until `shutdown`, in named phases: `start` (RPC and health server,
/// presence, etcd registration, orphans of a previous executor, ready), then on the stop
/// signal `drain` (leave the registry, let running jobs finish within the drain budget or kill
/// them, write every result, leave the presence table).
pub async fn run(ctx: RoleContext, shutdown: Shutdown) -> Result<(), RoleError> {
    let serving = Serving::start(ctx, &shutdown).await?;
    runtime::stopped(shutdown.clone()).await;
    serving.drain(shutdown).await;
    Ok(())
}

/// A serving executor and what its drain must end.
struct Serving {
    exec: Arc<Executor>,
    store: Store,
    draining: Arc<std::sync::atomic::AtomicBool>,
    drain_budget: Duration,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    heartbeat: Heartbeat,
    leave: watch::Sender<bool>,
    registration: Option<tokio::task::JoinHandle<()>>,
    /// Stops the runs the store gave up on, and fences the `forbid` runs (`fence.rs`).
    given_up: tokio::task::JoinHandle<()>,
    /// Reads again the claims a store error left unsure (`accept::resolve_unsure`).
    resolver: tokio::task::JoinHandle<()>,
    recorder_task: tokio::task::JoinHandle<()>,
}

/// Whom this executor runs jobs as, and the capabilities it holds, said at start. Jobs that
/// would run as the executor's own user (it cannot switch users) are allowed on a standalone
/// host only, loudly (its monitor then keeps to admin-only mode); a cluster executor refuses
/// to start so, as one whose jobs could not be stopped (switching users without `CAP_KILL`).
fn job_identity(
    config: &crate::config::Config,
) -> Result<(Option<process::RunAs>, process::Caps), RoleError> {
    let run_as = process::RunAs::resolve(&config.executor.run_as)?;
    let caps = process::Caps::current();
    match &run_as {
        Some(u) if !caps.can_kill_others() => {
            return Err(process::RunAsError::CannotKill(u.user.name.clone()).into())
        }
        Some(u) => tracing::info!(user = %u.user.name, uid = u.user.uid.as_raw(), "jobs run as"),
        None if nix::unistd::geteuid().is_root() => tracing::warn!(
            "jobs run as root (executor.run_as = \"root\"): any job can read cronvisor's secrets"
        ),
        None => {
            let why = crate::privilege::not_separated(
                nix::unistd::geteuid().as_raw(),
                &config.executor.run_as,
            );
            if config.cluster.enabled() {
                return Err(why.into());
            }
            tracing::warn!("admin-only mode: {why}");
        }
    }
    Ok((run_as, caps))
}

impl Executor {
    fn new(
        ctx: &RoleContext,
        shutdown: &Shutdown,
        id: String,
        recorder: Recorder,
    ) -> Result<Executor, RoleError> {
        let (run_as, caps) = job_identity(&ctx.config)?;
        let (kill, _) = watch::channel(None);
        Ok(Executor {
            id,
            store: ctx.store.clone(),
            store_ok: Arc::default(),
            cfg: ctx.config.executor.clone(),
            run_as,
            caps,
            kill,
            runs: Mutex::new(JoinSet::new()),
            active: Mutex::new(HashMap::new()),
            shutdown: shutdown.clone(),
            seen: Mutex::new(Seen::default()),
            unsure: Mutex::new(Vec::new()),
            recorder,
            counters: Counters::new(&ctx.metrics),
            http: crate::http::client::HttpClient::for_jobs(
                Duration::from_secs(86_400),
                &ctx.trust()?,
                crate::http::egress::Egress::new(&ctx.config.executor.http_allow),
            ),
        })
    }
}

/// The RPC and the probes. Starting runs takes the dispatchers' token (`rpc.token`); kills and
/// live output take it or the monitors' (`monitor.token`, when one is given), which starts
/// nothing.
fn rpc_router(
    exec: Arc<Executor>,
    tokens: RpcTokens,
    health: crate::http::health::Health,
) -> Router {
    let start = Router::new()
        .route("/rpc/v1/runs", post(accept::accept_runs))
        .with_state(exec.clone())
        .layer(axum::middleware::from_fn_with_state(
            Token::new(tokens.dispatch.clone()),
            require_token,
        ));
    let read = Router::new()
        .route("/rpc/v1/runs/{id}/kill", post(kill_run))
        .route("/rpc/v1/runs/{id}/output", get(live::read_output))
        .with_state(exec)
        .layer(axum::middleware::from_fn_with_state(
            Token::any(
                [Some(tokens.dispatch), tokens.monitor]
                    .into_iter()
                    .flatten()
                    .collect(),
            ),
            require_token,
        ));
    start.merge(read).merge(crate::http::health::router(health))
}

/// The RPC's tokens: the dispatchers' and, when given, the monitors'.
struct RpcTokens {
    dispatch: String,
    monitor: Option<String>,
}

impl Serving {
    async fn start(ctx: RoleContext, shutdown: &Shutdown) -> Result<Serving, RoleError> {
        let token = RpcTokens {
            dispatch: crate::tokens::load(&ctx.config.data_dir, crate::tokens::RPC)?,
            monitor: crate::tokens::load_optional(&ctx.config.data_dir, crate::tokens::MONITOR)?,
        };
        let host = crate::cluster::host_identity(ctx.config.host.as_deref());
        let addr = ctx
            .listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let (recorder, recorder_task) = Recorder::start(
            ctx.store.clone(),
            ctx.metrics.gauge(
                "cronvisor_results_waiting",
                "",
                "Run results queued for the store (they wait there while it is away).",
            ),
        );
        // The instance id names this process (a restarted or reloaded executor is another
        // one), so the monitor can tell whose runs were lost.
        let id = format!("{host}/{addr}/{}", std::process::id());
        let exec = Arc::new(Executor::new(&ctx, shutdown, id, recorder)?);
        let app = rpc_router(exec.clone(), token, ctx.health());
        let options = ctx.http_options(true)?;
        let server = tokio::spawn(crate::http::server::serve(
            ctx.listener,
            app,
            shutdown.clone(),
            options,
        ));
        // Alive before ready: the monitor never sees this executor's runs without a heartbeat.
        let card = crate::store::ExecutorCard {
            url: format!(
                "{}://{}",
                ctx.config.tls.scheme(),
                advertised(&ctx.config, &addr)
            ),
            groups: crate::cluster::groups_of(&ctx.config.machine, &host).join(","),
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let heartbeat = Heartbeat::start(
            &ctx.store,
            &ctx.config.store_url(),
            Presence::Executor(card),
            exec.id.clone(),
            crate::model::now_millis(),
            ctx.config.executor.heartbeat,
            exec.store_ok.clone(),
        )
        .await?;
        let (leave, leave_rx) = watch::channel(false);
        let registration = ctx
            .config
            .cluster
            .enabled()
            .then(|| register_in_etcd(&ctx.config, ctx.deps.clone(), &addr, leave_rx));
        reap_orphans(
            &ctx.store,
            &ctx.config,
            &format!("{host}/{addr}/"),
            &exec.id,
        )
        .await;
        let lost_after = ctx.config.monitor.lost_after;
        let given_up = tokio::spawn({
            let (a, b) = (exec.clone(), exec.clone());
            async move {
                tokio::join!(
                    stop_given_up(a, (lost_after / 2).max(Duration::from_millis(100))),
                    fence::forbid_runs(b, fence::fence_after(lost_after)),
                );
            }
        });
        let resolver = tokio::spawn(accept::resolve_unsure(exec.clone()));
        runtime::notify_ready(&format!("executor {} serving", exec.id));
        tracing::info!(executor = %exec.id, "executor ready");
        Ok(Serving {
            exec,
            store: ctx.store,
            draining: ctx.draining,
            drain_budget: ctx.config.supervisor.drain_timeout.mul_f64(0.8),
            server,
            heartbeat,
            leave,
            registration,
            given_up,
            resolver,
            recorder_task,
        })
    }

    async fn drain(self, shutdown: Shutdown) {
        self.draining.store(true, Ordering::Relaxed);
        runtime::notify_stopping();
        // Leave the registry first, so dispatchers stop sending work here while it drains.
        let _ = self.leave.send(true);
        if let Some(r) = self.registration {
            let _ = tokio::time::timeout(Duration::from_secs(3), r).await;
        }
        let kind = *shutdown.borrow();
        if kind == Some(Stop::Fast) {
            self.exec.kill_all();
        }
        // The server finishes the requests it has (each may add a run) before the set is taken.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
        finish_runs(&self.exec, &shutdown, self.drain_budget, kind).await;
        // Every result is queued; the recorder writes what is left and ends.
        let id = self.exec.id.clone();
        // The check holds the executor too: end it, so the recorder sees the last sender go.
        self.given_up.abort();
        let _ = self.given_up.await;
        self.resolver.abort();
        let _ = self.resolver.await;
        drop(self.exec);
        if tokio::time::timeout(Duration::from_secs(30), self.recorder_task)
            .await
            .is_err()
        {
            tracing::error!("results still unwritten after 30 s; giving up");
        }
        self.heartbeat.stop().await;
        if runtime::orphaned() {
            tracing::warn!(
                "supervisor gone: not deregistering, so the monitor reports this executor lost"
            );
        } else if let Err(e) = self.store.deregister(&id).await {
            tracing::warn!(error = %e, "cannot deregister; the monitor will expire this executor");
        }
        self.store.close().await;
        tracing::info!("executor stopped");
    }
}

/// Cluster mode: announces this executor in etcd until `leave` (it leaves before draining).
fn register_in_etcd(
    cfg: &crate::config::Config,
    deps: Arc<crate::cluster::Dependencies>,
    addr: &str,
    leave: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let host = crate::cluster::host_identity(cfg.host.as_deref());
    let advertised = advertised(cfg, addr);
    if advertised.starts_with("0.0.0.0") || advertised.starts_with("[::]") {
        tracing::warn!(%advertised, "rpc listener is a wildcard address: set cluster.advertise_rpc so dispatchers can reach this executor");
    }
    let info = crate::cluster::ExecutorInfo {
        id: format!("{host}@{advertised}"),
        url: format!("{}://{advertised}", cfg.tls.scheme()),
        groups: crate::cluster::groups_of(&cfg.machine, &host),
        host,
        version: env!("CARGO_PKG_VERSION").to_string(),
        capacity: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
    };
    let settings = crate::cluster::registry::EtcdSettings {
        endpoints: cfg.cluster.etcd_endpoints.clone(),
        prefix: cfg.cluster.etcd_prefix.clone(),
        lease_ttl_secs: cfg.cluster.lease_ttl_secs(),
        timeout: cfg.cluster.call_timeout,
        secure: crate::cluster::secure::Secure::of(cfg).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the cluster's TLS files");
            Default::default()
        }),
        https_only: false,
    };
    tokio::spawn(crate::cluster::registry::register(
        settings, info, deps, leave,
    ))
}

/// The address dispatchers (and the monitor) reach this executor's RPC at.
fn advertised(cfg: &crate::config::Config, addr: &str) -> String {
    match cfg.cluster.advertise_rpc {
        Some(a) => a.to_string(),
        None => addr.to_string(),
    }
}

/// Stops the process groups of runs a previous executor of this host left running when it
/// died (`prefix` names this host's executors).
async fn reap_orphans(store: &Store, cfg: &crate::config::Config, prefix: &str, me: &str) {
    let grace = cfg.executor.kill_grace;
    match orphans::reap(store, prefix, me, grace).await {
        Ok(r) if !r.is_empty() => {
            tracing::warn!(runs = ?r, "stopped the processes of runs whose executor died")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot look for runs left by a previous executor"),
    }
}

/// Lets the running jobs finish within `budget` (SIGTERM), then kills what is left; a fast
/// stop (SIGINT, now or later) kills at once.
async fn finish_runs(exec: &Executor, shutdown: &Shutdown, budget: Duration, kind: Option<Stop>) {
    let mut runs = match exec.runs.lock() {
        Ok(mut r) => std::mem::take(&mut *r),
        Err(_) => JoinSet::new(),
    };
    tracing::info!(running = runs.len(), ?kind, "executor draining");
    let fast = runtime::stopped_fast(shutdown.clone());
    tokio::pin!(fast);
    let deadline = tokio::time::sleep(budget);
    tokio::pin!(deadline);
    let mut checkpoint = tokio::time::interval(CHECKPOINT_EVERY);
    loop {
        tokio::select! {
            next = runs.join_next() => if next.is_none() { break },
            _ = checkpoint.tick() => exec.checkpoint_outputs().await,
            _ = &mut deadline => {
                tracing::warn!(running = runs.len(), "drain timeout: killing remaining runs");
                exec.kill_all();
                deadline.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(3600));
            }
            _ = &mut fast => {
                exec.kill_all();
            }
        }
    }
}

/// Stops the runs in progress here that the store gave up on: recorded `lost` (this executor
/// was cut off from the store long enough for the monitor to give up on it, and perhaps retry
/// them elsewhere), or deleted with their job (`job delete --force`). Whatever the partition,
/// a run on record as lost does not keep running.
async fn stop_given_up(exec: Arc<Executor>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ids: Vec<i64> = match exec.active.lock() {
            Ok(a) => a.keys().copied().collect(),
            Err(_) => continue,
        };
        if ids.is_empty() {
            continue;
        }
        match exec.store.given_up_among(&ids).await {
            Ok(given_up) => {
                for (id, why) in given_up {
                    let reason = match why {
                        GivenUp::Lost => KillReason::DeclaredLost,
                        GivenUp::Deleted => KillReason::JobDeleted,
                        GivenUp::KillRequested => KillReason::Operator,
                    };
                    if exec.kill_run(id, reason) {
                        tracing::warn!(
                            run = id,
                            reason = reason.message(),
                            "stopping a run the store gave up on"
                        );
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot check for runs given up on"),
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct KillQuery {
    /// `operator` (run kill, the console); otherwise a replacement (overlap `replace`).
    reason: Option<String>,
}

/// `POST /rpc/v1/runs/{id}/kill`: stop a run; it is recorded `killed`.
async fn kill_run(
    State(exec): State<Arc<Executor>>,
    axum::extract::Path(run_id): axum::extract::Path<i64>,
    axum::extract::Query(q): axum::extract::Query<KillQuery>,
) -> StatusCode {
    let reason = match q.reason.as_deref() {
        Some("operator") => KillReason::Operator,
        _ => KillReason::Replaced,
    };
    if exec.kill_run(run_id, reason) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::NOT_FOUND
    }
}
