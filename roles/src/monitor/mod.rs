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

use crate::runtime::{self, RoleContext, RoleError, Shutdown};

pub use web::{openapi_document, ApiState, Proxy};

/// Runs the monitor until `shutdown`: `serve_api` (the API and health on the `api` listener),
/// then the checks loop — `prune` now and then, and on each check tick `check_store` (its
/// outage is alarmed from here, since it cannot be stored), the alarm scan and delivery, and
/// the fleet checks — and finally the drain.
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
    // Check until stopped: a pass every `check_interval`, pruning now and then.
    let mut checks = checks::Checks::new(&config, &store, &metrics, alarmer, deps);
    let mut check = tokio::time::interval(config.monitor.check_interval);
    let mut prune_tick = tokio::time::interval(checks::PRUNE_EVERY);
    // The store's calendars, for the instants this role computes (next fires, the gap
    // check); read again every few seconds (and by the API when it changes one).
    let mut calendars_tick = tokio::time::interval(std::time::Duration::from_secs(5));
    let stop = runtime::stopped(shutdown.clone());
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = prune_tick.tick() => checks::prune(&store, config.monitor.retention, config.auth.session_idle).await,
            _ = check.tick() => checks.pass().await,
            _ = calendars_tick.tick() => store.install_calendars().await,
            _ = &mut stop => break,
        }
    }
    // Drain: the server finishes what it serves.
    draining.store(true, Ordering::Relaxed);
    runtime::notify_stopping();
    let _ = server.await;
    store.close().await;
    tracing::info!("monitor stopped");
    Ok(())
}
