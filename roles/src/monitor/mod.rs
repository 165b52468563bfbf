//! The monitor: serves the HTTP API (`/api/v1/...`, bearer token) that the CLI and the console
//! use, and keeps the store bounded (run retention, change-log pruning). Health checks of runs
//! and alarms come here too.

mod alarms;
mod api;
mod fleet;

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;

use crate::http::auth::{require_token, Token};
use crate::model::now_millis;
use crate::runtime::{self, RoleContext, RoleError, Shutdown};

pub use api::ApiState;

/// How often the store is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Job-change rows older than this are pruned; a dispatcher further behind resyncs fully.
const CHANGE_LOG_KEEP_MS: i64 = 3_600_000;

pub async fn run(ctx: RoleContext, shutdown: Shutdown) -> Result<(), RoleError> {
    let token = Token::new(crate::tokens::load(
        &ctx.config.data_dir,
        crate::tokens::API,
    )?);
    let state = ApiState {
        store: ctx.store.clone(),
        default_tz: ctx.config.timezone.clone(),
        requests: ctx
            .metrics
            .counter("cronvisor_api_requests_total", "", "API requests served."),
    };
    let trust = ctx.trust()?;
    let api = api::router(state).layer(axum::middleware::from_fn_with_state(token, require_token));
    let app = Router::new()
        .merge(api)
        .merge(crate::http::health::router(ctx.health()));
    let addr = ctx
        .listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let grace = ctx.http_grace();
    let server = tokio::spawn(crate::http::server::serve(
        ctx.listener,
        app,
        shutdown.clone(),
        grace,
    ));
    runtime::notify_ready(&format!("monitor: API on http://{addr}/api/v1"));
    tracing::info!(api = %format!("http://{addr}/api/v1"), "monitor ready");

    let retention_days = ctx.config.monitor.retention_days;
    let lost_after = ctx.config.monitor.lost_after_ms as i64;
    let undelivered_after = lost_after + ctx.config.dispatcher.delivery_timeout_ms as i64;
    let lost_counter = ctx.metrics.counter(
        "cronvisor_runs_lost_total",
        "",
        "Runs marked lost (their executor stopped, or could not end them past their timeout).",
    );
    let alarmer = alarms::Alarmer::new(
        ctx.store.clone(),
        ctx.config.alarm.clone(),
        &trust,
        &ctx.metrics,
    );
    let mut check =
        tokio::time::interval(Duration::from_millis(ctx.config.monitor.check_interval_ms));
    let store = ctx.store.clone();
    let overdue_grace = ctx.config.executor.kill_grace_secs as i64 * 1000 + lost_after;
    let mut fleet = fleet::Fleet::new(
        store.clone(),
        lost_after,
        undelivered_after,
        overdue_grace,
        lost_counter,
        crate::cluster::probe::probed(&ctx.config.cluster),
    );
    if ctx.config.cluster.enabled() || !ctx.config.cluster.redis_url.is_empty() {
        tokio::spawn(crate::cluster::probe::watch(
            ctx.config.cluster.clone(),
            ctx.deps.clone(),
            shutdown.clone(),
        ));
    }
    // Since when the store has not answered (and the first error), to alarm its outage.
    let mut store_down: Option<(i64, String)> = None;
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    let stop = runtime::stopped(shutdown.clone());
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = prune.tick() => {
                let now = now_millis();
                if retention_days > 0 {
                    let before = now - (retention_days as i64) * 86_400_000;
                    match store.prune(before).await {
                        Ok(n) if n > 0 => tracing::info!(runs = n, retention_days, "pruned old runs"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "pruning runs failed"),
                    }
                }
                if let Err(e) = store.prune_changes(now - CHANGE_LOG_KEEP_MS).await {
                    tracing::warn!(error = %e, "pruning the job change log failed");
                }
            }
            _ = check.tick() => {
                let now = now_millis();
                match (store.ping().await, &store_down) {
                    (Err(e), None) => {
                        alarmer.send_store_down(&e.to_string()).await;
                        store_down = Some((now, e.to_string()));
                        continue;
                    }
                    (Err(_), Some(_)) => continue,
                    (Ok(()), Some((since, error))) => {
                        let subject = format!(
                            "the store was unreachable for {} s ({error})",
                            (now - since) / 1000
                        );
                        alarmer.raise_system("store_back", &subject).await;
                        tracing::info!("store reachable again");
                        store_down = None;
                        fleet.wait_for_beats();
                    }
                    (Ok(()), None) => {}
                }
                if let Err(e) = alarmer.scan().await {
                    tracing::warn!(error = %e, "alarm scan failed");
                }
                if let Err(e) = alarmer.deliver().await {
                    tracing::warn!(error = %e, "alarm delivery pass failed");
                }
                fleet.dependencies(&alarmer, &ctx.deps, now).await;
                fleet.check(&alarmer, now).await;
            }
            _ = &mut stop => break,
        }
    }
    ctx.draining.store(true, Ordering::Relaxed);
    runtime::notify_stopping();
    let _ = server.await;
    store.close().await;
    tracing::info!("monitor stopped");
    Ok(())
}
