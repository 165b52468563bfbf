//! The monitor, in three rooms: [`web`] (the API and the console, and who may do what),
//! [`checks`] (runs lost, instants missed, the fleet, the store's bounds) and [`delivery`]
//! (alarms and the channels that carry them). `run` wires them: the web side serves on the
//! `api` listener while the checks pass runs on a timer and hands its findings to delivery.

pub mod checks;
pub mod delivery;
pub mod web;

pub(crate) use delivery::alarms;
pub use web::job_metrics;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::presence::{Heartbeat, Presence};
use crate::runtime::{self, RoleContext, RoleError, Shutdown};
use crate::store::Beating;

pub use web::{openapi_document, ApiState, Proxy};

/// Runs the monitor until `shutdown`: `serve_api` (the API and health on the `api` listener),
/// its heartbeat, then the checks loop — on each check tick the store's outage (alarmed from
/// here, since it cannot be stored), the alarm scan and delivery, and the fleet checks; `prune`
/// and the calendars beside it — and finally the drain.
pub async fn run(ctx: RoleContext, shutdown: Shutdown) -> Result<(), RoleError> {
    // Prepare: trust, the role's parts, the alarm delivery the other rooms raise into.
    let trust = ctx.trust()?;
    // Calls to executors (live output, kills) present the client certificate under mTLS.
    let rpc_trust = ctx.rpc_trust()?;
    let health = ctx.health();
    let http_options = ctx.http_options(false)?;
    let RoleContext {
        config,
        store,
        metrics,
        draining,
        deps,
        listener,
        ..
    } = ctx;
    let alarmer = Arc::new(alarms::Alarmer::new(
        store.clone(),
        config.alarm.clone(),
        &trust,
        &metrics,
    ));
    // Serve: the API, the console and the probes on the `api` listener.
    let state = web::api_state(
        &config,
        &store,
        &metrics,
        &rpc_trust,
        &shutdown,
        alarmer.clone(),
    );
    let server = web::serve_api(
        &config,
        state,
        deps.clone(),
        health,
        listener,
        http_options,
        &shutdown,
    )?;
    // Watch the cluster's dependencies (etcd, Redis) for the checks to report on.
    if config.cluster.enabled() || config.cluster.redis_url.is_some() {
        let secure = crate::cluster::secure::Secure::of(&config)?;
        tokio::spawn(crate::cluster::probe::watch(
            config.cluster.clone(),
            secure,
            deps.clone(),
            shutdown.clone(),
        ));
    }
    // Beat, as the other roles do: a monitor killed is alarmed once, by whichever monitor
    // (this one restarted, or another) finds its row silent.
    let me = crate::instance::Instance::this(&crate::instance::identity());
    let heartbeat = Heartbeat::start_when_reachable(
        &store,
        Presence::Monitor,
        me.to_string(),
        (config.monitor.lost_after / 4).max(std::time::Duration::from_millis(50)),
    )
    .await;
    // Check until stopped: a pass every `check_interval`.
    let mut checks = checks::Checks::new(
        &config,
        &store,
        &metrics,
        alarmer,
        deps,
        me.to_string(),
        heartbeat.reach(),
    );
    check_until_stopped(&mut checks, &config, &store, &shutdown).await;
    // Drain: the server finishes what it serves.
    draining.store(true, Ordering::Relaxed);
    runtime::notify_stopping();
    let _ = server.await;
    heartbeat.stop().await;
    if runtime::orphaned() {
        tracing::warn!("supervisor gone: not leaving, so this monitor is reported lost");
    } else if let Err(e) = store.role_left(Beating::Monitors, &me.to_string()).await {
        tracing::warn!(error = %e, "cannot record leaving; this monitor will be reported lost");
    }
    store.close().await;
    tracing::info!("monitor stopped");
    Ok(())
}

/// A pass every `check_interval` until `shutdown`. Pruning and the calendars' reads wait on
/// the store; in tasks of their own, so that a store going away during one never holds the
/// pass that alarms it.
async fn check_until_stopped(
    checks: &mut checks::Checks,
    config: &crate::config::Config,
    store: &crate::store::Store,
    shutdown: &Shutdown,
) {
    let mut check = tokio::time::interval(config.monitor.check_interval);
    let background = [
        tokio::spawn(prune_now_and_then(
            store.clone(),
            config.monitor.retention,
            config.auth.session_idle,
        )),
        tokio::spawn(read_calendars(store.clone())),
    ];
    let stop = runtime::stopped(shutdown.clone());
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = check.tick() => checks.pass().await,
            _ = &mut stop => break,
        }
    }
    for task in background {
        task.abort();
    }
}

/// `checks::prune` every `checks::PRUNE_EVERY`, the first at once.
async fn prune_now_and_then(
    store: crate::store::Store,
    retention: std::time::Duration,
    session_idle: std::time::Duration,
) {
    let mut tick = tokio::time::interval(checks::PRUNE_EVERY);
    loop {
        tick.tick().await;
        checks::prune(&store, retention, session_idle).await;
    }
}

/// The store's calendars, for the instants this role computes (next fires, the gap check);
/// read again every few seconds (and by the API when it changes one).
async fn read_calendars(store: crate::store::Store) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        store.install_calendars().await;
    }
}
