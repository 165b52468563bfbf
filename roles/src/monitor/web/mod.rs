//! The monitor's web side: the API (`/api/v1`), the console, and who may do what — every
//! request a person or a script sends lands here, is authenticated (`access`), and reads or
//! changes the store. It exists apart from the checks and the alarm delivery because it changes
//! at a different pace (pages, routes, roles) and must never hold them up: a slow client holds a
//! connection, not a check pass.

pub(crate) mod access;
mod admin;
pub(crate) mod api;
mod backfills;
mod calendars;
mod console;
mod flows;
pub mod job_metrics;
mod live;
mod openapi;
mod passwords;
mod polls;
mod runs;
mod sso;
mod tokens;
mod windows;

use std::time::Duration;

use axum::Router;

use super::delivery::alarms;
use crate::runtime::{self, RoleError, Shutdown};

pub use api::ApiState;
pub use sso::Proxy;

/// The API's routes, and their OpenAPI document (without what every operation shares).
fn routes() -> (Router<ApiState>, utoipa::openapi::OpenApi) {
    utoipa_axum::router::OpenApiRouter::with_openapi(<openapi::ApiDoc as utoipa::OpenApi>::openapi())
        .merge(api::routes())
        .merge(admin::routes())
        .merge(flows::routes())
        .split_for_parts()
}

/// The API's OpenAPI document, as served at `/api/v1/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    openapi::complete(routes().1)
}

/// What the API handlers share.
pub(super) fn api_state(
    config: &crate::config::Config,
    store: &crate::store::Store,
    metrics: &crate::metrics::Metrics,
    rpc_trust: &crate::http::tls::Trust,
    shutdown: &Shutdown,
    alarmer: std::sync::Arc<alarms::Alarmer>,
) -> ApiState {
    // Live output and kills go to executors with the RPC token; a monitor without it still
    // serves everything else, and output from the store.
    // The monitor's own token (reads and kills, never starts a run) when one is given; else,
    // as before it existed, the dispatchers' RPC token.
    let rpc_token = crate::tokens::load_optional(&config.data_dir, crate::tokens::MONITOR)
        .transpose()
        .unwrap_or_else(|| crate::tokens::load(&config.data_dir, crate::tokens::RPC))
        .unwrap_or_else(|e| {
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
        streams: live::Streams::default(),
        polls: polls::Polls::default(),
        max_backfill: config.monitor.max_backfill as usize,
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
pub(super) fn serve_api(
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
