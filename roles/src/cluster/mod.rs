//! What cluster mode adds to the roles: the executor registry on etcd ([`registry`]), the Redis
//! fire lock ([`fire_lock`]), and the bookkeeping of which outside dependency is degraded
//! ([`Dependencies`]) so that `/readyz`, metrics and alarms can say so.
//!
//! Standalone mode uses none of it: the registry is the one local executor and the fence in the
//! store is the whole fire-once story.

pub mod fire_lock;
pub mod probe;
pub mod registry;
pub mod secure;

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// A call to etcd or Redis that failed: what was being done, and the client's error. Callers
/// branch only on "it failed" (degrade, retry later), so one enum serves the cluster code; the
/// source is kept for logs.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{what}: {source}")]
    Etcd {
        what: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("{what}: {source}")]
    Redis {
        what: &'static str,
        #[source]
        source: redis::RedisError,
    },
    #[error("{what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// etcd ended a watch or a lease on its side.
    #[error("{0}")]
    Ended(String),
    /// The TLS files of the cluster's dependencies cannot be read.
    #[error("cluster TLS: {0}")]
    Setup(String),
}

impl ClusterError {
    pub fn etcd(what: impl Into<String>) -> impl FnOnce(etcd_client::Error) -> ClusterError {
        let what = what.into();
        move |source| ClusterError::Etcd { what, source }
    }

    pub fn redis(what: &'static str) -> impl FnOnce(redis::RedisError) -> ClusterError {
        move |source| ClusterError::Redis { what, source }
    }
}

/// One executor as it announces itself in the registry (the value of its etcd key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorInfo {
    /// `host@address`: stable across restarts of the same executor, unique per executor.
    pub id: String,
    /// Base URL of its RPC endpoint.
    pub url: String,
    /// The host identity it runs on (what `run_at` and `[machine]` groups name).
    pub host: String,
    /// The `[machine]` groups its host belongs to.
    pub groups: Vec<String>,
    pub version: String,
    /// How many runs it may start at once (its CPU count; informational).
    pub capacity: u32,
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

/// The host identity: configured, or the hostname.
pub fn host_identity(configured: Option<&str>) -> String {
    if let Some(h) = configured {
        return h.to_string();
    }
    crate::instance::hostname()
}

/// The `[machine]` groups that list `host`.
pub fn groups_of(machine: &BTreeMap<String, Vec<String>>, host: &str) -> Vec<String> {
    machine
        .iter()
        .filter(|(_, hosts)| hosts.iter().any(|h| h == host))
        .map(|(g, _)| g.clone())
        .collect()
}

/// A URL as it may be shown: `rediss://cv:***@host:6379/0` for one with a password.
pub fn without_password(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user_info, host)) if user_info.contains(':') => {
                let user = user_info.split(':').next().unwrap_or("");
                format!("{scheme}://{user}:***@{host}")
            }
            _ => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_url_is_shown_without_its_password() {
        assert_eq!(
            without_password("rediss://cv:s3cret@10.0.0.2:6380/0"),
            "rediss://cv:***@10.0.0.2:6380/0"
        );
        assert_eq!(
            without_password("redis://10.0.0.2:6379/0"),
            "redis://10.0.0.2:6379/0"
        );
        assert_eq!(without_password("redis://:pw@h:1"), "redis://:***@h:1");
    }

    #[test]
    fn groups_are_those_listing_the_host() {
        let mut m = BTreeMap::new();
        m.insert("php".to_string(), vec!["a".to_string(), "b".to_string()]);
        m.insert("cron74".to_string(), vec!["c".to_string()]);
        assert_eq!(groups_of(&m, "b"), vec!["php".to_string()]);
        assert!(groups_of(&m, "z").is_empty());
    }

    #[test]
    fn degradation_transitions_are_reported_once() {
        let d = Dependencies::default();
        assert!(d.degrade("redis", "refused"));
        assert!(!d.degrade("redis", "refused again"));
        assert!(d.is_degraded("redis"));
        assert!(d.restore("redis"));
        assert!(!d.restore("redis"));
    }
}
