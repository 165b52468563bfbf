//! `GET /healthz` (the process is alive), `GET /readyz` (its dependencies answer and it is not
//! draining) and `GET /metrics` (Prometheus text), the same on every role.
//!
//! The monitor serves its own `/metrics` (`monitor/job_metrics.rs::scrape`): these series and
//! each job's, for a caller with an API token (a viewer's is enough; a scoped token sees its
//! groups' jobs).
//!
//! `/readyz` tells anyone only `ready`, `degraded`, `draining` or `not ready` (load balancers
//! need no more); what is degraded and why — error texts that name hosts, ports and users —
//! only a caller with the API or RPC token sees.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct Health {
    pub role: &'static str,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub draining: Arc<AtomicBool>,
    /// Outside dependencies (etcd, Redis) currently unreachable. The role keeps working
    /// without them, so they make `/readyz` say `degraded` but still answer 200.
    pub deps: Arc<Dependencies>,
    /// The dependencies configured (`cronvisor_dependency_up` is reported for these only: a
    /// standalone system has no etcd to be up).
    pub configured: Vec<&'static str>,
    /// Bearer tokens that see `/readyz`'s details.
    pub detail_tokens: Arc<Vec<String>>,
}

impl Health {
    fn sees_details(&self, headers: &axum::http::HeaderMap) -> bool {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        !given.is_empty()
            && self
                .detail_tokens
                .iter()
                .any(|t| super::auth::same(t.as_bytes(), given.as_bytes()))
    }
}

/// `/healthz`, `/readyz` and `/metrics`.
pub fn router(health: Health) -> Router {
    probes(health.clone()).merge(
        Router::new()
            .route("/metrics", get(metrics))
            .with_state(health),
    )
}

/// `/healthz` and `/readyz` only, for a role that serves a `/metrics` of its own.
pub fn probes(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn healthz(State(h): State<Health>) -> impl IntoResponse {
    Json(json!({"status": "ok", "role": h.role, "pid": std::process::id()}))
}

async fn readyz(State(h): State<Health>, headers: axum::http::HeaderMap) -> impl IntoResponse {
    let details = h.sees_details(&headers);
    if h.draining.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining", "role": h.role})),
        );
    }
    match h.store.ping().await {
        Ok(()) => {
            let degraded = h.deps.snapshot();
            let status = if degraded.is_empty() {
                "ready"
            } else {
                "degraded"
            };
            let body = if details {
                json!({"status": status, "role": h.role, "store": "ok", "degraded": degraded})
            } else {
                json!({"status": status, "role": h.role})
            };
            (StatusCode::OK, Json(body))
        }
        Err(e) => {
            let body = if details {
                json!({"status": "not ready", "role": h.role, "store": e.to_string()})
            } else {
                json!({"status": "not ready", "role": h.role})
            };
            (StatusCode::SERVICE_UNAVAILABLE, Json(body))
        }
    }
}

async fn metrics(State(h): State<Health>) -> impl IntoResponse {
    prometheus(render(&h))
}

/// A Prometheus text answer.
pub fn prometheus(text: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// The role's own series and its dependencies', as Prometheus text.
pub fn render(h: &Health) -> String {
    let mut text = h.metrics.render();
    let degraded = h.deps.snapshot();
    if !h.configured.is_empty() {
        text.push_str(
            "# HELP cronvisor_dependency_up Outside dependencies reachable (1) or not (0).\n",
        );
        text.push_str("# TYPE cronvisor_dependency_up gauge\n");
    }
    for dep in &h.configured {
        let up = u8::from(!degraded.contains_key(dep));
        text.push_str(&format!(
            "cronvisor_dependency_up{{role=\"{}\",dep=\"{dep}\"}} {up}\n",
            h.role
        ));
    }
    text
}

/// Outside dependencies that are currently unreachable, by name, with the last error. A role
/// keeps working when one is degraded (dispatchers fire to the last known executors, or on the
/// store fence alone); this is what it reports meanwhile.
#[derive(Debug, Default)]
pub struct Dependencies {
    degraded: Mutex<BTreeMap<&'static str, String>>,
    /// Set once every probed dependency has been tried at least once (the monitor's probe).
    probed: std::sync::atomic::AtomicBool,
}

impl Dependencies {
    pub fn mark_probed(&self) {
        self.probed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the snapshot is a view of the dependencies yet, not just "nothing known".
    pub fn probed(&self) -> bool {
        self.probed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks `name` degraded; true when it was fine before (a transition worth logging).
    pub fn degrade(&self, name: &'static str, error: impl Into<String>) -> bool {
        match self.degraded.lock() {
            Ok(mut d) => d.insert(name, error.into()).is_none(),
            Err(_) => false,
        }
    }

    /// Marks `name` healthy again; true when it was degraded before.
    pub fn restore(&self, name: &'static str) -> bool {
        match self.degraded.lock() {
            Ok(mut d) => d.remove(name).is_some(),
            Err(_) => false,
        }
    }

    pub fn is_degraded(&self, name: &str) -> bool {
        self.degraded
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, String> {
        self.degraded.lock().map(|d| d.clone()).unwrap_or_default()
    }
}
