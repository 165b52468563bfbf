//! The monitor: serves the HTTP API (`/api/v1/...`, bearer token) that the CLI and the console
//! use, and keeps the store bounded (run retention, change-log pruning). Health checks of runs
//! and alarms come here too.

mod access;
mod admin;
pub(crate) mod alarms;
mod api;
mod console;
mod fleet;
mod gaps;
pub mod job_metrics;
mod live;
mod openapi;
mod passwords;
mod sms;
mod sso;

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;

use crate::model::now_millis;
use crate::runtime::{self, RoleContext, RoleError, Shutdown};

pub use api::ApiState;
pub use sso::Proxy;

/// How often the store is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Job-change rows older than this are pruned; a dispatcher further behind resyncs fully.
const CHANGE_LOG_KEEP_MS: i64 = 3_600_000;

/// Runs the monitor until `shutdown`: `serve_api` (the API and health on the `api` listener),
/// then the checks loop — `prune` now and then, and on each check tick `check_store` (its
/// outage is alarmed from here, since it cannot be stored), the alarm scan and delivery, and
/// the fleet checks — and finally the drain.
pub async fn run(ctx: RoleContext, shutdown: Shutdown) -> Result<(), RoleError> {
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
    let alarmer = std::sync::Arc::new(alarms::Alarmer::new(
        store.clone(),
        config.alarm.clone(),
        &trust,
        &metrics,
    ));
    let state = api_state(
        &config,
        &store,
        &metrics,
        &rpc_trust,
        &shutdown,
        alarmer.clone(),
    );
    let server = serve_api(
        &config,
        state,
        deps.clone(),
        health,
        listener,
        http_options,
        &shutdown,
    )?;
    let lost_after = crate::config::values::ms(config.monitor.lost_after);
    let mut fleet = fleet::Fleet::new(
        store.clone(),
        lost_after,
        lost_after + crate::config::values::ms(config.dispatcher.delivery_timeout),
        crate::config::values::ms(config.executor.kill_grace) + lost_after,
        metrics.counter(
            "cronvisor_runs_lost_total",
            "",
            "Runs marked lost (their executor stopped, or could not end them past their timeout).",
        ),
        crate::cluster::probe::probed(&config.cluster),
    );
    if config.cluster.enabled() || config.cluster.redis_url.is_some() {
        let secure = crate::cluster::secure::Secure::of(&config)?;
        tokio::spawn(crate::cluster::probe::watch(
            config.cluster.clone(),
            secure,
            deps.clone(),
            shutdown.clone(),
        ));
    }
    // Instants this old are the dispatchers' no more: delivery, a record held over a store
    // hiccup, a second look after a lock's TTL.
    let settle = 2 * crate::config::values::ms(config.dispatcher.delivery_timeout)
        + crate::config::values::ms(config.cluster.lock_ttl)
        + crate::config::values::ms(config.dispatcher.late_grace);
    let mut gaps = gaps::Gaps::new(store.clone(), settle, now_millis());
    let mut check = tokio::time::interval(config.monitor.check_interval);
    let check_time = metrics.histogram(
        "cronvisor_monitor_check_seconds",
        "One pass of the monitor's checks (store, gaps, alarms, deliveries, fleet).",
        crate::metrics::LATENCY_BUCKETS,
    );
    // Since when the store has not answered (and the first error), to alarm its outage.
    let mut store_down: Option<(i64, String)> = None;
    let mut prune_tick = tokio::time::interval(PRUNE_EVERY);
    let stop = runtime::stopped(shutdown.clone());
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = prune_tick.tick() => prune(&store, config.monitor.retention, config.auth.session_idle).await,
            _ = check.tick() => {
                let now = now_millis();
                let was_down = store_down.is_some();
                if !check_store(&store, &alarmer, &mut fleet, &mut store_down, now).await {
                    continue;
                }
                if was_down {
                    gaps.wait(now);
                }
                gaps.check(now).await;
                if let Err(e) = alarmer.scan().await {
                    tracing::warn!(error = %e, "alarm scan failed");
                }
                if let Err(e) = alarmer.deliver().await {
                    tracing::warn!(error = %e, "alarm delivery pass failed");
                }
                fleet.dependencies(&alarmer, &deps, now).await;
                fleet.check(&alarmer, now).await;
                check_time.observe_millis(now, now_millis());
            }
            _ = &mut stop => break,
        }
    }
    draining.store(true, Ordering::Relaxed);
    runtime::notify_stopping();
    let _ = server.await;
    store.close().await;
    tracing::info!("monitor stopped");
    Ok(())
}

/// The API's routes, and their OpenAPI document (without what every operation shares).
fn routes() -> (Router<ApiState>, utoipa::openapi::OpenApi) {
    utoipa_axum::router::OpenApiRouter::with_openapi(<openapi::ApiDoc as utoipa::OpenApi>::openapi())
        .merge(api::routes())
        .merge(admin::routes())
        .split_for_parts()
}

/// The API's OpenAPI document, as served at `/api/v1/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    openapi::complete(routes().1)
}

/// What the API handlers share.
fn api_state(
    config: &crate::config::Config,
    store: &crate::store::Store,
    metrics: &crate::metrics::Metrics,
    rpc_trust: &crate::http::tls::Trust,
    shutdown: &Shutdown,
    alarmer: std::sync::Arc<alarms::Alarmer>,
) -> ApiState {
    // Live output and kills go to executors with the RPC token; a monitor without it still
    // serves everything else, and output from the store.
    let rpc_token = crate::tokens::load(&config.data_dir, crate::tokens::RPC).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "no RPC token: live output comes from the store only");
        String::new()
    });
    ApiState {
        store: store.clone(),
        default_tz: config.timezone.clone(),
        requests: metrics.counter("cronvisor_api_requests_total", "", "API requests served."),
        rpc: crate::http::client::HttpClient::with_connect_timeout(
            Duration::from_secs(30),
            config.dispatcher.connect_timeout,
            rpc_trust,
        ),
        rpc_token: std::sync::Arc::new(rpc_token),
        shutdown: shutdown.clone(),
        alarmer,
        admin_only: admin_only(config),
    }
}

/// Why this install keeps to admin-only mode: its own executor runs jobs as the roles' user
/// (a person's own `up`), so a job could read the admin token. Monitors of a host without an
/// executor keep the full model (a cluster executor that cannot separate does not start).
fn admin_only(config: &crate::config::Config) -> Option<std::sync::Arc<String>> {
    if !config.runs(crate::config::Role::Executor) {
        return None;
    }
    match crate::privilege::separation(&config.executor.run_as) {
        crate::privilege::Separation::None { reason } => {
            tracing::warn!("admin-only mode: {reason}");
            Some(std::sync::Arc::new(reason))
        }
        _ => None,
    }
}

/// The API (bearer token or console session), the console and the health endpoints on the
/// role's listener; ready once serving.
fn serve_api(
    config: &crate::config::Config,
    state: ApiState,
    deps: std::sync::Arc<crate::cluster::Dependencies>,
    health: crate::http::health::Health,
    listener: std::net::TcpListener,
    options: crate::http::server::Options,
    shutdown: &Shutdown,
) -> Result<tokio::task::JoinHandle<std::io::Result<()>>, RoleError> {
    let mut gate = access::Gate::new(
        state.store.clone(),
        crate::tokens::load(&config.data_dir, crate::tokens::API)?,
        Proxy::from_config(&config.auth),
    );
    gate.idle = config.auth.session_idle;
    gate.lifetime = config.auth.session_lifetime;
    // Served over https: the session cookie is `Secure`.
    gate.secure = config.tls.cert_file.is_some();
    gate.admin_only = state.admin_only.clone();
    let (api, document) = routes();
    let api = api
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            gate.clone(),
            access::api_auth,
        ))
        .layer(axum::middleware::from_fn(access::json_bodies));
    let scrape = Router::new()
        .route("/metrics", axum::routing::get(job_metrics::scrape))
        .with_state((health.clone(), gate.clone()));
    let console = console::router(console::Console {
        api: state,
        gate,
        deps,
    });
    let mut app = Router::new()
        .merge(api)
        .merge(openapi::router(openapi::complete(document)))
        .merge(console)
        .layer(axum::middleware::from_fn(console::security_headers))
        .merge(crate::http::health::probes(health))
        .merge(scrape);
    if config.tls.cert_file.is_some() {
        app = app.layer(axum::middleware::from_fn(console::strict_transport));
    }
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let server = tokio::spawn(crate::http::server::serve(
        listener,
        app,
        shutdown.clone(),
        options,
    ));
    let scheme = config.tls.scheme();
    runtime::notify_ready(&format!(
        "monitor: console on {scheme}://{addr}/, API on {scheme}://{addr}/api/v1"
    ));
    tracing::info!(console = %format!("{scheme}://{addr}/"), api = %format!("{scheme}://{addr}/api/v1"), "monitor ready");
    Ok(server)
}

/// How long failed logins are remembered after the last one: longer than the longest wait
/// they impose (`access::MAX_WAIT_SECS`, 5 minutes), short enough to bound the table.
const LOGIN_FAILURES_KEEP_MS: i64 = 3_600_000;

/// Deletes finished runs, settled alarms and audit entries past `retention` (zero: keep
/// all), old change-log rows, failed logins quiet for an hour, and sessions expired or idle
/// past `session_idle`.
async fn prune(store: &crate::store::Store, retention: Duration, session_idle: Duration) {
    let now = now_millis();
    if !retention.is_zero() {
        let before = now - crate::config::values::ms(retention);
        match store.prune(before).await {
            Ok(n) if n > 0 => {
                tracing::info!(runs = n, retention = %humantime::format_duration(retention), "pruned old runs")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning runs failed"),
        }
        match store.prune_audit(before).await {
            Ok(n) if n > 0 => tracing::info!(entries = n, "pruned old audit entries"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning the audit log failed"),
        }
        match store.prune_alarms(before).await {
            Ok(n) if n > 0 => tracing::info!(alarms = n, "pruned old alarms"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning alarms failed"),
        }
    }
    if let Err(e) = store.prune_job_stats().await {
        tracing::warn!(error = %e, "pruning the counts of deleted jobs failed");
    }
    if let Err(e) = store
        .prune_sessions(now - crate::config::values::ms(session_idle))
        .await
    {
        tracing::warn!(error = %e, "pruning sessions failed");
    }
    if let Err(e) = store
        .prune_login_failures(now - LOGIN_FAILURES_KEEP_MS)
        .await
    {
        tracing::warn!(error = %e, "pruning failed logins failed");
    }
    if let Err(e) = store.prune_changes(now - CHANGE_LOG_KEEP_MS).await {
        tracing::warn!(error = %e, "pruning the job change log failed");
    }
}

/// Is the store answering? Its outage is alarmed once (sent directly: it cannot be stored),
/// and its return once; false while it is down (the other checks need it).
async fn check_store(
    store: &crate::store::Store,
    alarmer: &alarms::Alarmer,
    fleet: &mut fleet::Fleet,
    store_down: &mut Option<(i64, String)>,
    now: i64,
) -> bool {
    match (store.ping().await, &*store_down) {
        (Err(e), None) => {
            alarmer.send_store_down(&e.to_string()).await;
            *store_down = Some((now, e.to_string()));
            false
        }
        (Err(_), Some(_)) => false,
        (Ok(()), Some((since, error))) => {
            let subject = format!(
                "the store was unreachable for {} s ({error})",
                (now - since) / 1000
            );
            alarmer.raise_system("store_back", &subject).await;
            tracing::info!("store reachable again");
            *store_down = None;
            fleet.wait_for_beats();
            true
        }
        (Ok(()), None) => true,
    }
}
