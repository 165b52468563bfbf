//! The sections of the config, each with its defaults (the documentation of every key says
//! it) and its own `validate`. Durations are `Duration`s written as `"250ms"`, `"30s"`; a
//! value that may be unset is an `Option`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::values::{duration, optional};
use super::{invalid, ConfigError, ExecutorConfig};

/// At least `min`, or the key is named.
pub(super) fn at_least(key: &str, d: Duration, min: Duration) -> Result<(), ConfigError> {
    if d < min {
        return Err(invalid(
            key,
            format!(
                "must be at least {} (got {})",
                humantime::format_duration(min),
                humantime::format_duration(d)
            ),
        ));
    }
    Ok(())
}

pub(super) const MS: Duration = Duration::from_millis(1);

/// Trust for outbound https (HTTP jobs, webhooks, the SMS gateway). Mozilla's roots are always
/// trusted and certificates are always verified.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// A PEM file of extra CA certificates to trust, e.g. an internal CA. Read when a role
    /// starts (a reload picks up a changed file). Default none.
    #[serde(with = "optional", skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// With `key_file`: every listener (API and console, executor RPC, dispatcher health)
    /// serves https with this certificate chain (PEM), and clients reach them over https,
    /// verifying against Mozilla's roots and `ca_file`. Read when a role starts, so a reload
    /// picks up rotated files. Default none: http.
    #[serde(with = "optional", skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file` (PEM).
    #[serde(with = "optional", skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Mutual TLS on the executors' RPC: they accept only clients with a certificate signed
    /// by `ca_file` (not by a public root), and dispatchers and monitors present `cert_file`
    /// as theirs (it needs the clientAuth usage too). Needs `ca_file`, `cert_file` and
    /// `key_file`. Default false.
    pub client_auth: bool,
}

impl TlsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(f) = &self.ca_file {
            crate::tls::load_ca_file(f).map_err(|e| invalid("tls.ca_file", e.to_string()))?;
        }
        match (&self.cert_file, &self.key_file) {
            (None, None) => {}
            (Some(c), Some(k)) => {
                crate::tls::server_config(c, k, None)
                    .map_err(|e| invalid("tls.cert_file", e.to_string()))?;
            }
            (Some(_), None) => {
                return Err(invalid("tls.key_file", "is required with tls.cert_file"))
            }
            (None, Some(_)) => {
                return Err(invalid("tls.cert_file", "is required with tls.key_file"))
            }
        }
        if self.client_auth && (self.ca_file.is_none() || self.cert_file.is_none()) {
            return Err(invalid(
                "tls.client_auth",
                "needs tls.ca_file (the CA of the clients' certificates) and tls.cert_file / \
                 tls.key_file (the certificate this install presents)",
            ));
        }
        Ok(())
    }

    /// The scheme clients use to reach this install's listeners.
    pub fn scheme(&self) -> &'static str {
        if self.cert_file.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// Cluster mode: etcd for the executor registry, Redis for the fire lock. With no etcd
/// endpoint the host is standalone (its dispatcher sends to its own executor).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// etcd client URLs, e.g. `["http://10.0.0.1:2379"]`. Default none (standalone).
    /// Environment override: `CRONVISOR_ETCD_ENDPOINTS` (comma-separated).
    pub etcd_endpoints: Vec<String>,
    /// Key prefix of this cluster in etcd. Default "/cronvisor".
    pub etcd_prefix: String,
    /// TTL of an executor's registration lease (whole seconds); kept alive at a third of it.
    /// Default "10s".
    #[serde(with = "duration")]
    pub lease_ttl: Duration,
    /// Timeout of each etcd and Redis call. Default "2s".
    #[serde(with = "duration")]
    pub call_timeout: Duration,
    /// Redis URL of the fire lock, e.g. `redis://10.0.0.5:6379/0`. Default none: fire on the
    /// store's unique key alone. Environment override: `CRONVISOR_REDIS_URL`.
    #[serde(with = "optional", skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Lifetime of a fire lock: a dispatcher that lost the lock looks again after this, and
    /// records the run through the store fence if its owner has not. Default "3s".
    #[serde(with = "duration")]
    pub lock_ttl: Duration,
    /// The RPC address other hosts reach this executor at (`ip:port`). Default none: the
    /// address the `rpc` listener is bound to (which must then not be a wildcard address).
    #[serde(with = "optional", skip_serializing_if = "Option::is_none")]
    pub advertise_rpc: Option<SocketAddr>,
    /// etcd user (etcd's auth enabled); its password comes from `etcd_password`, better given
    /// as `CRONVISOR_ETCD_PASSWORD`. Default none.
    #[serde(with = "optional", skip_serializing_if = "Option::is_none")]
    pub etcd_user: Option<String>,
    /// The password of `etcd_user`. Environment override: `CRONVISOR_ETCD_PASSWORD`. Never
    /// logged.
    #[serde(with = "optional", skip_serializing_if = "Option::is_none")]
    pub etcd_password: Option<String>,
}

impl std::fmt::Debug for ClusterConfig {
    /// Without the secrets: etcd's password, and the password in a Redis URL.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("etcd_endpoints", &self.etcd_endpoints)
            .field("etcd_prefix", &self.etcd_prefix)
            .field("lease_ttl", &self.lease_ttl)
            .field("call_timeout", &self.call_timeout)
            .field(
                "redis_url",
                &self
                    .redis_url
                    .as_deref()
                    .map(crate::model::without_password),
            )
            .field("lock_ttl", &self.lock_ttl)
            .field("advertise_rpc", &self.advertise_rpc)
            .field("etcd_user", &self.etcd_user)
            .field(
                "etcd_password",
                &self.etcd_password.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            etcd_endpoints: Vec::new(),
            etcd_prefix: "/cronvisor".to_string(),
            lease_ttl: Duration::from_secs(10),
            call_timeout: Duration::from_secs(2),
            redis_url: None,
            lock_ttl: Duration::from_secs(3),
            advertise_rpc: None,
            etcd_user: None,
            etcd_password: None,
        }
    }
}

impl ClusterConfig {
    /// Cluster mode is on when etcd is configured.
    pub fn enabled(&self) -> bool {
        !self.etcd_endpoints.is_empty()
    }

    /// The outside dependencies this config uses (what `/metrics` reports on).
    pub fn dependencies(&self) -> Vec<&'static str> {
        let mut deps = Vec::new();
        if self.enabled() {
            deps.push("etcd");
        }
        if self.redis_url.is_some() {
            deps.push("redis");
        }
        deps
    }

    /// The lease TTL in whole seconds, as etcd takes it.
    pub fn lease_ttl_secs(&self) -> i64 {
        i64::try_from(self.lease_ttl.as_secs()).unwrap_or(i64::MAX)
    }

    pub(super) fn validate(&self, store: &StoreConfig) -> Result<(), ConfigError> {
        for (i, e) in self.etcd_endpoints.iter().enumerate() {
            if !(e.starts_with("http://") || e.starts_with("https://")) || e.len() < 9 {
                return Err(invalid(
                    &format!("cluster.etcd_endpoints[{i}]"),
                    format!("`{e}` is not an http:// URL"),
                ));
            }
        }
        if self.etcd_prefix.is_empty() || !self.etcd_prefix.starts_with('/') {
            return Err(invalid("cluster.etcd_prefix", "must start with `/`"));
        }
        at_least("cluster.lease_ttl", self.lease_ttl, Duration::from_secs(2))?;
        at_least("cluster.call_timeout", self.call_timeout, MS)?;
        at_least(
            "cluster.lock_ttl",
            self.lock_ttl,
            Duration::from_millis(100),
        )?;
        if let Some(url) = &self.redis_url {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(invalid("cluster.redis_url", "must start with `redis://`"));
            }
            if redis::Client::open(url.as_str()).is_err() {
                return Err(invalid("cluster.redis_url", "not a valid Redis URL"));
            }
        }
        if self.enabled()
            && !store
                .url
                .as_deref()
                .is_some_and(|u| u.starts_with("mysql:"))
        {
            return Err(invalid(
                "store.url",
                "cluster mode (cluster.etcd_endpoints set) needs a shared mysql:// store",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// sqlx URL of the store. Default none: SQLite at `<data_dir>/cronvisor.db`.
    /// Environment override: `CRONVISOR_STORE_URL`.
    #[serde(with = "optional", skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Connection pool size per process. Default 4.
    pub max_connections: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            max_connections: 4,
        }
    }
}

impl StoreConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.url {
            if !(url.starts_with("sqlite:") || url.starts_with("mysql:")) {
                return Err(invalid(
                    "store.url",
                    "must start with `sqlite:` or `mysql:`",
                ));
            }
        }
        if self.max_connections == 0 {
            return Err(invalid("store.max_connections", "must be at least 1"));
        }
        Ok(())
    }

    /// The URL, defaulting to SQLite under `data_dir`.
    pub fn url_in(&self, data_dir: &Path) -> String {
        match &self.url {
            Some(u) => u.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("cronvisor.db").display()
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisorConfig {
    /// A child that has not sent `READY=1` within this time is killed. Default "30s".
    #[serde(with = "duration")]
    pub ready_timeout: Duration,
    /// How long a stopping child may take to finish its requests and running jobs before it is
    /// killed. Default "30s".
    #[serde(with = "duration")]
    pub drain_timeout: Duration,
    /// After a stop, how long a role keeps serving its open HTTP connections, answering with
    /// `Connection: close`, before it closes the idle ones. Default "2s".
    #[serde(with = "duration")]
    pub http_close_grace: Duration,
    /// First restart delay after a child dies; doubles per crash. Default "100ms".
    #[serde(with = "duration")]
    pub restart_backoff_initial: Duration,
    /// Cap of the restart delay. Default "10s".
    #[serde(with = "duration")]
    pub restart_backoff_max: Duration,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            ready_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
            http_close_grace: Duration::from_secs(2),
            restart_backoff_initial: Duration::from_millis(100),
            restart_backoff_max: Duration::from_secs(10),
        }
    }
}

impl SupervisorConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        at_least(
            "supervisor.ready_timeout",
            self.ready_timeout,
            Duration::from_secs(1),
        )?;
        at_least(
            "supervisor.restart_backoff_initial",
            self.restart_backoff_initial,
            MS,
        )?;
        at_least(
            "supervisor.restart_backoff_max",
            self.restart_backoff_max,
            self.restart_backoff_initial,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatcherConfig {
    /// How often the dispatcher looks for job changes and manual runs. Default "250ms".
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// How long a fire keeps trying to hand a run to an executor before recording it `failed`.
    /// Default "10s" (long enough to ride over an executor restart).
    #[serde(with = "duration")]
    pub delivery_timeout: Duration,
    /// How often the whole schedule is compared with the store, as a backstop behind the job
    /// change log. Default "5m".
    #[serde(with = "duration")]
    pub resync_interval: Duration,
    /// An instant found due later than this (the host was paused, the clock stepped forward)
    /// is not fired late: it follows the job's misfire policy, as at start-up (`skip`: one
    /// `missed` record with the count; `run_once`: one run). Default "5s".
    #[serde(with = "duration")]
    pub late_grace: Duration,
    /// How long connecting to an executor may take. One that does not answer within it
    /// (packets dropped, not refused) is passed over for the next executor of the target
    /// while the delivery timeout lasts, and avoided for a while after. Default "2s".
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// Whole jobs kept in memory (about 600 bytes each). Beyond them a job is read from the
    /// store when it fires, one query per burst; its schedule is always in memory (about 100
    /// bytes a job). Default 100000.
    pub jobs_kept: usize,
    /// Distinct parsed rules kept in memory (about 5 KB each); a rarer one is parsed again
    /// when its job fires (about 17 µs). Default 4096.
    pub rules_kept: usize,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            poll_interval: Duration::from_millis(250),
            delivery_timeout: Duration::from_secs(10),
            resync_interval: Duration::from_secs(300),
            late_grace: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            jobs_kept: 100_000,
            rules_kept: 4096,
        }
    }
}

impl DispatcherConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        at_least("dispatcher.poll_interval", self.poll_interval, MS)?;
        at_least("dispatcher.connect_timeout", self.connect_timeout, MS)?;
        if self.connect_timeout >= self.delivery_timeout {
            return Err(invalid(
                "dispatcher.connect_timeout",
                "must be shorter than dispatcher.delivery_timeout, or a hung connect uses the \
                 whole delivery and no other executor is tried",
            ));
        }
        at_least(
            "dispatcher.resync_interval",
            self.resync_interval,
            Duration::from_secs(1),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// Finished runs and settled alarms older than this are deleted; "0" keeps them forever.
    /// Default "30d".
    #[serde(with = "duration")]
    pub retention: Duration,
    /// A run whose executor has not heartbeaten for this long is marked `lost`.
    /// Default "10s" (five heartbeats).
    #[serde(with = "duration")]
    pub lost_after: Duration,
    /// How often the monitor checks runs, alarms and the fleet. Default "1s".
    #[serde(with = "duration")]
    pub check_interval: Duration,
    /// A backfill of more instants than this is refused, saying how many it would be.
    /// Default 10000.
    pub max_backfill: u32,
    /// A host whose wall clock is off the store's by more than this is alarmed
    /// (`clock_skew`, then `clock_back`): its dispatcher fires by it and its executor times
    /// runs by it. Measured at each heartbeat to within a quarter second. Default "1s".
    #[serde(with = "duration")]
    pub max_clock_skew: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            retention: Duration::from_secs(30 * 86_400),
            lost_after: Duration::from_secs(10),
            check_interval: Duration::from_secs(1),
            max_backfill: 10_000,
            max_clock_skew: Duration::from_secs(1),
        }
    }
}

impl MonitorConfig {
    fn validate(&self, executor: &ExecutorConfig) -> Result<(), ConfigError> {
        at_least("monitor.check_interval", self.check_interval, MS)?;
        if self.max_backfill == 0 {
            return Err(invalid("monitor.max_backfill", "must be at least 1"));
        }
        // A heartbeat's measurement is trusted to within a quarter second.
        at_least(
            "monitor.max_clock_skew",
            self.max_clock_skew,
            Duration::from_millis(500),
        )?;
        if self.lost_after < 2 * executor.heartbeat {
            return Err(invalid(
                "monitor.lost_after",
                "must be at least twice executor.heartbeat, or live runs would be marked lost",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// A client must send a request's headers within this long, from when its connection opens
    /// and again after each response (so idle keep-alive connections close after it too).
    /// Default "20s".
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// Connections open at once per listener; beyond it new ones wait to be accepted.
    /// Default 4096.
    pub max_connections: usize,
    /// Connections open at once from one client address, per listener; beyond it a new one is
    /// closed at once, so one client cannot take every slot. Default 256.
    pub max_connections_per_client: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_read_timeout: Duration::from_secs(20),
            max_connections: 4096,
            max_connections_per_client: 256,
        }
    }
}

impl HttpConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        at_least("http.header_read_timeout", self.header_read_timeout, MS)?;
        if self.max_connections < 16 {
            return Err(invalid("http.max_connections", "must be at least 16"));
        }
        if self.max_connections_per_client < 4 {
            return Err(invalid(
                "http.max_connections_per_client",
                "must be at least 4 (a browser opens several)",
            ));
        }
        Ok(())
    }
}

/// Every section's own checks, in the order of the file.
pub(super) fn validate_sections(c: &super::Config) -> Result<(), ConfigError> {
    c.cluster.validate(&c.store)?;
    c.store.validate()?;
    c.supervisor.validate()?;
    c.dispatcher.validate()?;
    c.executor.validate()?;
    c.monitor.validate(&c.executor)?;
    c.alarm.validate()?;
    c.tls.validate()?;
    c.http.validate()?;
    c.auth.validate()
}
