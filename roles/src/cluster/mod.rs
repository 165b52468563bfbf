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

pub use crate::http::health::Dependencies;

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

pub use crate::model::without_password;

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
