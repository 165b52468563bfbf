//! What the dispatcher connects to at start: where runs go (the executors in etcd, or the
//! local one, seeded from the store while etcd is away), and the fire lock (Redis) with the
//! rule that tells a live dispatcher of this host from a dead one.

use std::sync::Arc;
use std::time::Duration;

use crate::instance::Instance;
use crate::model::now_millis;
use crate::runtime::{RoleContext, Shutdown};

use crate::cluster::fire_lock::FireLock;
use crate::cluster::registry::{self, EtcdSettings, Registry};
use crate::cluster::{groups_of, ExecutorInfo};

/// Where runs go: the executors registered in etcd (cluster mode), or the local one. Ready
/// means "knows where to send": in cluster mode this waits for the first read of the registry
/// (or for etcd to be found away, then fires to whoever registers when it returns).
pub(super) async fn executor_registry(
    ctx: &RoleContext,
    shutdown: &Shutdown,
    executor_url: String,
    host: &str,
) -> Arc<Registry> {
    let cfg = &ctx.config;
    if !cfg.cluster.enabled() {
        return Registry::fixed(vec![ExecutorInfo {
            id: format!("{host}@local"),
            url: executor_url,
            host: host.to_string(),
            groups: groups_of(&cfg.machine, host),
            version: env!("CARGO_PKG_VERSION").to_string(),
            capacity: 0,
        }]);
    }
    let call_timeout = cfg.cluster.call_timeout;
    let https_only = cfg.tls.cert_file.is_some();
    let registry = Arc::new(Registry::watched(https_only));
    let settings = EtcdSettings {
        endpoints: cfg.cluster.etcd_endpoints.clone(),
        prefix: cfg.cluster.etcd_prefix.clone(),
        lease_ttl_secs: cfg.cluster.lease_ttl_secs(),
        timeout: call_timeout,
        secure: secure(cfg),
        https_only,
    };
    tokio::spawn(registry::watch(
        settings,
        registry.clone(),
        ctx.deps.clone(),
        shutdown.clone(),
    ));
    let loaded = tokio::time::timeout(call_timeout * 2, async {
        while !registry.is_loaded() && !ctx.deps.is_degraded("etcd") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let _ = loaded.await;
    if !registry.is_loaded() {
        seed_from_store(ctx, &registry).await;
    }
    registry
}

/// etcd away at start-up (a reload during an etcd outage): rather than fire to nobody until it
/// returns, fire to the executors whose heartbeats the store has lately, as a running
/// dispatcher fires to the last executors it knew. etcd's first answer replaces them.
pub(super) async fn seed_from_store(ctx: &RoleContext, registry: &Registry) {
    let since = now_millis() - crate::config::values::ms(ctx.config.monitor.lost_after);
    let members = match ctx.store.fleet_members().await {
        Ok((executors, _)) => executors,
        Err(e) => {
            tracing::warn!(error = %e, "etcd and the store unreachable: no executor known yet");
            return;
        }
    };
    // Two generations of one executor (a reload) are one entry, as in etcd.
    let known: Vec<ExecutorInfo> = members
        .into_iter()
        .filter(|m| m.last_seen >= since)
        .filter_map(|m| {
            let url = m.url.filter(|u| !u.is_empty())?;
            // The heartbeat instance is `host/address/pid`; the registry names `host@address`.
            let mut parts = m.instance.splitn(3, '/');
            let (host, address) = (parts.next()?, parts.next()?);
            let id = format!("{host}@{address}");
            Some((
                id.clone(),
                ExecutorInfo {
                    id,
                    url,
                    host: host.to_string(),
                    groups: m
                        .groups
                        .unwrap_or_default()
                        .split(',')
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect(),
                    version: m.version.unwrap_or_default(),
                    capacity: 0,
                },
            ))
        })
        .collect::<std::collections::BTreeMap<String, ExecutorInfo>>()
        .into_values()
        .collect();
    let n = known.len();
    if registry.seed(known) {
        tracing::warn!(
            executors = n,
            "etcd unreachable at start: firing to the executors the store heard from lately"
        );
    }
}

/// The TLS and credentials of etcd and Redis; a CA or key file that cannot be read leaves them
/// without (logged), and their calls then fail verification, as etcd and Redis go degraded.
pub(super) fn secure(cfg: &crate::config::Config) -> crate::cluster::secure::Secure {
    crate::cluster::secure::Secure::of(cfg).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot read the cluster's TLS files");
        Default::default()
    })
}

/// The Redis fire lock, when `redis_url` is set (a bad URL means the store fence alone).
pub(super) fn fire_lock(ctx: &RoleContext, host: &str) -> Option<Arc<FireLock>> {
    let cluster = &ctx.config.cluster;
    let url = cluster.redis_url.as_deref()?;
    let client = match secure(&ctx.config).redis_client(url) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no fire lock; firing on the store fence alone");
            return None;
        }
    };
    match FireLock::new(
        client,
        Instance::this(host).to_string(),
        cluster.lock_ttl,
        cluster.call_timeout,
        ctx.deps.clone(),
        ctx.metrics.counter(
            "cronvisor_redis_round_trips_total",
            "",
            "Round trips to Redis for fire locks (a burst's locks take one).",
        ),
    ) {
        Ok(l) => Some(Arc::new(l)),
        Err(e) => {
            tracing::error!(error = %e, "no fire lock; firing on the store fence alone");
            None
        }
    }
}

/// Whether the dispatcher `other` (an instance `host/pid/start` that beats and has not left)
/// may be firing now: any other one may, except one of this host whose process is gone (it
/// crashed, and this dispatcher replaces it).
pub(super) fn may_be_firing(other: &str, me: &Instance, host: &str) -> bool {
    match other.parse::<Instance>() {
        Ok(other) => other != *me && !other.is_gone_from(host),
        // Not an id this version writes: assume it may be firing.
        Err(_) => true,
    }
}
