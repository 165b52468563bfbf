//! The one configuration struct of a cronvisor host.
//!
//! Parsed and validated without binding or connecting anything, so that `cronvisor config check`
//! and a reload can reject a bad file before it touches a running system. Every knob documents
//! its default; `conf/standalone.toml` spells the same defaults out and a test keeps the two equal.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::http::client::check_url;
use crate::schedule;

/// A configuration error names the key and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the SQLite store, the tokens and the runtime files live. Default `./var`.
    pub data_dir: PathBuf,
    /// Time zone of jobs that name none (IANA name). Default `UTC`.
    pub timezone: String,
    /// Log format: `text` (default) or `json`.
    pub log_format: String,
    /// Named listening sockets, `name = "host:port"`. The supervisor binds them (or adopts them
    /// from systemd by name) and hands each role its own. Defaults: `api = "127.0.0.1:7070"`
    /// (monitor: API and console), `rpc = "127.0.0.1:7071"` (executor), `dispatch =
    /// "127.0.0.1:7072"` (dispatcher: health and metrics only). Port 0 picks a free port; the
    /// addresses actually bound are written to `<data_dir>/endpoints.json`.
    pub listeners: BTreeMap<String, String>,
    /// The roles `cronvisor up` runs on this host: any of `dispatcher`, `executor`, `monitor`.
    /// Default all three. A cluster host may run any subset.
    pub roles: Vec<String>,
    /// This host's identity: what `run_at` and the `[machine]` groups name. Default empty: the
    /// hostname. Environment override: `CRONVISOR_HOST`.
    pub host: String,
    /// Machine groups, `name = ["host", ...]` (the original's `[machine]` section). A job's
    /// `run_at` names a group or a single host. Default none.
    pub machine: BTreeMap<String, Vec<String>>,
    pub cluster: ClusterConfig,
    pub store: StoreConfig,
    pub supervisor: SupervisorConfig,
    pub dispatcher: DispatcherConfig,
    pub executor: ExecutorConfig,
    pub monitor: MonitorConfig,
    pub alarm: AlarmConfig,
    pub tls: TlsConfig,
}

/// Trust for outbound https (HTTP jobs, webhooks, the SMS gateway). Mozilla's roots are always
/// trusted and certificates are always verified.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// A PEM file of extra CA certificates to trust, e.g. an internal CA. Read when a role
    /// starts (a reload picks up a changed file). Default "" (none).
    pub ca_file: String,
}

/// Where alarms go. With no channel configured, alarms are still recorded (and listed by
/// `cronvisor alarms`), just not delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlarmConfig {
    /// Base URL of the console, for the link to the run in every alarm.
    /// Default "http://127.0.0.1:7070".
    pub console_url: String,
    /// Repeated alarms of the same job, kind and recipient within this window are merged into
    /// one with a count, in seconds. Default 300.
    pub merge_window_secs: u64,
    /// Delivery attempts before an alarm is recorded `failed`. Default 10; the delay between
    /// attempts doubles from 1 s up to 5 minutes.
    pub max_attempts: u32,
    /// Webhooks: each gets a JSON POST with the run's details and a `text` field (so
    /// Slack/DingTalk/Feishu-style incoming hooks work). http:// or https:// URLs. Default none.
    pub webhook_urls: Vec<String>,
    pub sms: SmsConfig,
    pub email: EmailConfig,
}

/// E-mail through SMTP (the original's `[alarm_mail_list]` maps onto `to`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// SMTP server; empty disables e-mail. Default empty.
    pub smtp_host: String,
    /// Default 587.
    pub smtp_port: u16,
    /// "starttls" (default), "tls" (implicit TLS, usually port 465) or "none".
    pub security: String,
    /// SMTP login; empty for none. Default empty.
    pub username: String,
    /// SMTP password. Environment override: CRONVISOR_SMTP_PASSWORD. Never logged.
    pub password: String,
    /// Default "cronvisor@localhost".
    pub from: String,
    /// Addresses alarmed for every job, besides each job's `admin_email`. Default none.
    pub to: Vec<String>,
}

impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("from", &self.from)
            .field("to", &self.to)
            .finish()
    }
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            smtp_host: String::new(),
            smtp_port: 587,
            security: "starttls".to_string(),
            username: String::new(),
            password: String::new(),
            from: "cronvisor@localhost".to_string(),
            to: Vec::new(),
        }
    }
}

/// An HTTP SMS gateway. `body` and `url` may contain {job} {run} {state} {kind} {host} {time}
/// {link} {count} {mobile}; one request per recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// Gateway URL (http://). Empty disables SMS. Default empty.
    pub url: String,
    /// Default "POST".
    pub method: String,
    /// Extra request headers. Default none.
    pub headers: BTreeMap<String, String>,
    /// Request body template. Default "{job}: {kind} ({state}) at {time} {link}".
    pub body: String,
    /// Numbers alarmed for every job, besides each job's `admin_mobile`. Default none.
    pub to: Vec<String>,
}

impl Default for AlarmConfig {
    fn default() -> Self {
        AlarmConfig {
            console_url: "http://127.0.0.1:7070".to_string(),
            merge_window_secs: 300,
            max_attempts: 10,
            webhook_urls: Vec::new(),
            sms: SmsConfig::default(),
            email: EmailConfig::default(),
        }
    }
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            url: String::new(),
            method: "POST".to_string(),
            headers: BTreeMap::new(),
            body: "{job}: {kind} ({state}) at {time} {link}".to_string(),
            to: Vec::new(),
        }
    }
}

/// Cluster mode: etcd for the executor registry, Redis for the fire lock. With no etcd
/// endpoint the host is standalone (its dispatcher sends to its own executor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// etcd client URLs, e.g. `["http://10.0.0.1:2379"]`. Default none (standalone).
    /// Environment override: `CRONVISOR_ETCD_ENDPOINTS` (comma-separated).
    pub etcd_endpoints: Vec<String>,
    /// Key prefix of this cluster in etcd. Default "/cronvisor".
    pub etcd_prefix: String,
    /// TTL of an executor's registration lease, in seconds; kept alive at a third of it.
    /// Default 10.
    pub lease_ttl_secs: u64,
    /// Timeout of each etcd and Redis call, in ms. Default 2000.
    pub call_timeout_ms: u64,
    /// Redis URL of the fire lock, e.g. `redis://10.0.0.5:6379/0`. Default empty: fire on the
    /// store's unique key alone. Environment override: `CRONVISOR_REDIS_URL`.
    pub redis_url: String,
    /// Lifetime of a fire lock, in ms: a dispatcher that lost the lock looks again after this,
    /// and records the run through the store fence if its owner has not. Default 3000.
    pub lock_ttl_ms: u64,
    /// The RPC address other hosts reach this executor at (`host:port`). Default empty: the
    /// address the `rpc` listener is bound to (which must then not be a wildcard address).
    pub advertise_rpc: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            etcd_endpoints: Vec::new(),
            etcd_prefix: "/cronvisor".to_string(),
            lease_ttl_secs: 10,
            call_timeout_ms: 2000,
            redis_url: String::new(),
            lock_ttl_ms: 3000,
            advertise_rpc: String::new(),
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
        if !self.redis_url.is_empty() {
            deps.push("redis");
        }
        deps
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// sqlx URL of the store. Default empty: SQLite at `<data_dir>/cronvisor.db`.
    /// Environment override: `CRONVISOR_STORE_URL`.
    pub url: String,
    /// Connection pool size per process. Default 4.
    pub max_connections: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisorConfig {
    /// A child that has not sent `READY=1` within this many seconds is killed. Default 30.
    pub ready_timeout_secs: u64,
    /// How long a stopping child may take to finish its requests and running jobs before it is
    /// killed, in seconds. Default 30.
    pub drain_timeout_secs: u64,
    /// After a stop, how long a role keeps serving its open HTTP connections, answering with
    /// `Connection: close`, before it closes the idle ones, in ms. Default 2000.
    pub http_close_grace_ms: u64,
    /// First restart delay after a child dies, in milliseconds; doubles per crash. Default 100.
    pub restart_backoff_initial_ms: u64,
    /// Cap of the restart delay, in milliseconds. Default 10000.
    pub restart_backoff_max_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatcherConfig {
    /// How often the dispatcher looks for job changes and manual runs, in ms. Default 250.
    pub poll_interval_ms: u64,
    /// How long a fire keeps trying to hand a run to an executor before recording it `failed`,
    /// in ms. Default 10000 (long enough to ride over an executor restart).
    pub delivery_timeout_ms: u64,
    /// How often the whole schedule is compared with the store, as a backstop behind the job
    /// change log, in seconds. Default 300.
    pub resync_interval_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    /// Bytes of the start of each output stream kept per run. Default 65536.
    pub output_head_bytes: usize,
    /// Bytes of the end of each output stream kept per run. Default 65536.
    pub output_tail_bytes: usize,
    /// Seconds between SIGTERM and SIGKILL when a run's process group is stopped. Default 5.
    pub kill_grace_secs: u64,
    /// After the job's shell exits, how long to keep reading output that background processes
    /// still write to its pipes, in ms. Default 1000.
    pub output_linger_ms: u64,
    /// How often the executor records that it is alive, in ms. Default 2000.
    pub heartbeat_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// Finished runs older than this many days are deleted. 0 keeps them forever. Default 30.
    pub retention_days: u64,
    /// A run whose executor has not heartbeaten for this long is marked `lost`, in ms.
    /// Default 10000 (five heartbeats).
    pub lost_after_ms: u64,
    /// How often the monitor checks for lost runs, in ms. Default 1000.
    pub check_interval_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        let listeners = [
            ("api", "127.0.0.1:7070"),
            ("rpc", "127.0.0.1:7071"),
            ("dispatch", "127.0.0.1:7072"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Config {
            data_dir: PathBuf::from("./var"),
            timezone: "UTC".to_string(),
            log_format: "text".to_string(),
            listeners,
            roles: ROLES.iter().map(|r| r.to_string()).collect(),
            host: String::new(),
            machine: BTreeMap::new(),
            cluster: ClusterConfig::default(),
            store: StoreConfig::default(),
            supervisor: SupervisorConfig::default(),
            dispatcher: DispatcherConfig::default(),
            executor: ExecutorConfig::default(),
            monitor: MonitorConfig::default(),
            alarm: AlarmConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: String::new(),
            max_connections: 4,
        }
    }
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            ready_timeout_secs: 30,
            drain_timeout_secs: 30,
            http_close_grace_ms: 2000,
            restart_backoff_initial_ms: 100,
            restart_backoff_max_ms: 10_000,
        }
    }
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            poll_interval_ms: 250,
            delivery_timeout_ms: 10_000,
            resync_interval_secs: 300,
        }
    }
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            output_head_bytes: 64 * 1024,
            output_tail_bytes: 64 * 1024,
            kill_grace_secs: 5,
            output_linger_ms: 1000,
            heartbeat_ms: 2000,
        }
    }
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            retention_days: 30,
            lost_after_ms: 10_000,
            check_interval_ms: 1000,
        }
    }
}

/// The roles, in start order.
pub const ROLES: [&str; 3] = ["dispatcher", "executor", "monitor"];

/// The listeners each role is handed. A role whose listener is not configured cannot start.
pub const ROLE_LISTENERS: [(&str, &str); 3] = [
    ("dispatcher", "dispatch"),
    ("executor", "rpc"),
    ("monitor", "api"),
];

impl Config {
    /// Reads `path` (or the built-in defaults when `None`), applies `CRONVISOR_*` environment
    /// overrides, and validates the result.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match path {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Config::parse(&text).map_err(|message| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message,
                })?
            }
        };
        config.apply_env(|k| std::env::var(k).ok());
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text; unknown keys are errors, so a typo never silently means "default".
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Environment overrides: `CRONVISOR_DATA_DIR`, `CRONVISOR_STORE_URL`, `CRONVISOR_TIMEZONE`,
    /// `CRONVISOR_LOG_FORMAT`, `CRONVISOR_SMTP_PASSWORD`, `CRONVISOR_HOST`,
    /// `CRONVISOR_REDIS_URL`, `CRONVISOR_ETCD_ENDPOINTS`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        if let Some(v) = get("CRONVISOR_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("CRONVISOR_STORE_URL") {
            self.store.url = v;
        }
        if let Some(v) = get("CRONVISOR_TIMEZONE") {
            self.timezone = v;
        }
        if let Some(v) = get("CRONVISOR_LOG_FORMAT") {
            self.log_format = v;
        }
        if let Some(v) = get("CRONVISOR_SMTP_PASSWORD") {
            self.alarm.email.password = v;
        }
        if let Some(v) = get("CRONVISOR_HOST") {
            self.host = v;
        }
        if let Some(v) = get("CRONVISOR_REDIS_URL") {
            self.cluster.redis_url = v;
        }
        if let Some(v) = get("CRONVISOR_ETCD_ENDPOINTS") {
            self.cluster.etcd_endpoints = v
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_string)
                .collect();
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        schedule::parse_timezone(&self.timezone).map_err(|e| invalid("timezone", e.to_string()))?;
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(invalid("log_format", "must be \"text\" or \"json\""));
        }
        for (name, addr) in &self.listeners {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(invalid(
                    &format!("listeners.{name}"),
                    "listener names are letters, digits and `_`",
                ));
            }
            addr.parse::<SocketAddr>().map_err(|e| {
                invalid(
                    &format!("listeners.{name}"),
                    format!("`{addr}` is not host:port ({e})"),
                )
            })?;
        }
        if self.roles.is_empty() {
            return Err(invalid("roles", "name at least one role"));
        }
        for (i, role) in self.roles.iter().enumerate() {
            if !ROLES.contains(&role.as_str()) {
                return Err(invalid(
                    &format!("roles[{i}]"),
                    format!("unknown role `{role}` (one of {})", ROLES.join(", ")),
                ));
            }
            if self.roles[..i].contains(role) {
                return Err(invalid(
                    &format!("roles[{i}]"),
                    format!("`{role}` listed twice"),
                ));
            }
        }
        for (group, hosts) in &self.machine {
            if group.is_empty() || hosts.is_empty() || hosts.iter().any(|h| h.trim().is_empty()) {
                return Err(invalid(
                    &format!("machine.{group}"),
                    "a group lists at least one host, none empty",
                ));
            }
        }
        self.validate_cluster()?;
        for (role, listener) in ROLE_LISTENERS {
            if !self.roles.iter().any(|r| r == role) {
                continue;
            }
            if !self.listeners.contains_key(listener) {
                return Err(invalid(
                    &format!("listeners.{listener}"),
                    format!("missing: the {role} needs it"),
                ));
            }
        }
        let url = &self.store.url;
        if !(url.is_empty() || url.starts_with("sqlite:") || url.starts_with("mysql:")) {
            return Err(invalid(
                "store.url",
                "must start with `sqlite:` or `mysql:`",
            ));
        }
        if self.store.max_connections == 0 {
            return Err(invalid("store.max_connections", "must be at least 1"));
        }
        let s = &self.supervisor;
        if s.ready_timeout_secs == 0 {
            return Err(invalid(
                "supervisor.ready_timeout_secs",
                "must be at least 1",
            ));
        }
        if s.restart_backoff_initial_ms == 0
            || s.restart_backoff_max_ms < s.restart_backoff_initial_ms
        {
            return Err(invalid(
                "supervisor.restart_backoff_max_ms",
                "must be at least restart_backoff_initial_ms, which must be at least 1",
            ));
        }
        if self.dispatcher.poll_interval_ms == 0 {
            return Err(invalid("dispatcher.poll_interval_ms", "must be at least 1"));
        }
        if self.dispatcher.resync_interval_secs == 0 {
            return Err(invalid(
                "dispatcher.resync_interval_secs",
                "must be at least 1",
            ));
        }
        if self.executor.heartbeat_ms == 0 || self.monitor.check_interval_ms == 0 {
            return Err(invalid(
                "executor.heartbeat_ms",
                "heartbeat and check intervals must be at least 1 ms",
            ));
        }
        if self.monitor.lost_after_ms < 2 * self.executor.heartbeat_ms {
            return Err(invalid(
                "monitor.lost_after_ms",
                "must be at least twice executor.heartbeat_ms, or live runs would be marked lost",
            ));
        }
        for (i, url) in self.alarm.webhook_urls.iter().enumerate() {
            check_url(url)
                .map_err(|reason| invalid(&format!("alarm.webhook_urls[{i}]"), reason))?;
        }
        if !self.alarm.sms.url.is_empty() {
            check_url(&self.alarm.sms.url).map_err(|reason| invalid("alarm.sms.url", reason))?;
        }
        if !self.tls.ca_file.is_empty() {
            crate::http::tls::load_ca_file(Path::new(&self.tls.ca_file))
                .map_err(|e| invalid("tls.ca_file", e.to_string()))?;
        }
        if self.alarm.sms.method.parse::<hyper::Method>().is_err() {
            return Err(invalid("alarm.sms.method", "not an HTTP method"));
        }
        if !matches!(
            self.alarm.email.security.as_str(),
            "starttls" | "tls" | "none"
        ) {
            return Err(invalid(
                "alarm.email.security",
                "must be \"starttls\", \"tls\" or \"none\"",
            ));
        }
        if !self.alarm.email.smtp_host.is_empty()
            && self
                .alarm
                .email
                .from
                .parse::<lettre::message::Mailbox>()
                .is_err()
        {
            return Err(invalid("alarm.email.from", "not an e-mail address"));
        }
        if self.alarm.max_attempts == 0 {
            return Err(invalid("alarm.max_attempts", "must be at least 1"));
        }
        if self.executor.output_head_bytes + self.executor.output_tail_bytes == 0 {
            return Err(invalid(
                "executor.output_head_bytes",
                "head and tail cannot both be 0",
            ));
        }
        Ok(())
    }

    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let c = &self.cluster;
        for (i, e) in c.etcd_endpoints.iter().enumerate() {
            if !(e.starts_with("http://") || e.starts_with("https://")) || e.len() < 9 {
                return Err(invalid(
                    &format!("cluster.etcd_endpoints[{i}]"),
                    format!("`{e}` is not an http:// URL"),
                ));
            }
        }
        if c.etcd_prefix.is_empty() || !c.etcd_prefix.starts_with('/') {
            return Err(invalid("cluster.etcd_prefix", "must start with `/`"));
        }
        if c.lease_ttl_secs < 2 {
            return Err(invalid("cluster.lease_ttl_secs", "must be at least 2"));
        }
        if c.call_timeout_ms == 0 {
            return Err(invalid("cluster.call_timeout_ms", "must be at least 1"));
        }
        if c.lock_ttl_ms < 100 {
            return Err(invalid("cluster.lock_ttl_ms", "must be at least 100"));
        }
        if !c.redis_url.is_empty() {
            if !(c.redis_url.starts_with("redis://") || c.redis_url.starts_with("rediss://")) {
                return Err(invalid("cluster.redis_url", "must start with `redis://`"));
            }
            if redis::Client::open(c.redis_url.as_str()).is_err() {
                return Err(invalid("cluster.redis_url", "not a valid Redis URL"));
            }
        }
        if !c.advertise_rpc.is_empty() && c.advertise_rpc.parse::<SocketAddr>().is_err() {
            return Err(invalid("cluster.advertise_rpc", "must be ip:port"));
        }
        if c.enabled() && !self.store.url.starts_with("mysql:") {
            return Err(invalid(
                "store.url",
                "cluster mode (cluster.etcd_endpoints set) needs a shared mysql:// store",
            ));
        }
        Ok(())
    }

    /// The store URL, defaulting to SQLite under the data dir.
    pub fn store_url(&self) -> String {
        if self.store.url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("cronvisor.db").display()
            )
        } else {
            self.store.url.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_standalone_toml_equals_builtin_defaults() {
        let text = include_str!("../../conf/standalone.toml");
        let parsed = Config::parse(text).expect("conf/standalone.toml parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn shipped_cluster_toml_is_valid() {
        let text = include_str!("../../conf/cluster.toml");
        let parsed = Config::parse(text).expect("conf/cluster.toml parses");
        parsed.validate().expect("conf/cluster.toml validates");
        assert!(parsed.cluster.enabled());
        assert_eq!(parsed.machine["phpgroup"].len(), 2);
    }

    #[test]
    fn cluster_mistakes_name_the_key() {
        let mut c = Config::default();
        c.cluster.etcd_endpoints = vec!["http://127.0.0.1:2379".into()];
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("store.url") && err.contains("mysql"), "{err}");
        let mut c = Config::default();
        c.cluster.redis_url = "127.0.0.1:6379".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("cluster.redis_url"));
        let c = Config {
            roles: vec!["dispatcher".into(), "scheduler".into()],
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("roles[1]"));
        let mut c = Config::default();
        c.machine.insert("php".into(), vec![]);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("machine.php"));
        // A host without the executor role needs no rpc listener.
        let mut c = Config {
            roles: vec!["dispatcher".into()],
            ..Config::default()
        };
        c.listeners.remove("rpc");
        c.validate().expect("dispatcher-only host");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("[executor]\noutput_head = 3\n").unwrap_err();
        assert!(err.contains("output_head"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let c = Config {
            timezone: "Mars/Olympus".into(),
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("`timezone`"));
        let mut c = Config::default();
        c.listeners.insert("api".into(), "localhost".into());
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("listeners.api"));
        let mut c = Config::default();
        c.listeners.remove("rpc");
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("listeners.rpc"));
        let mut c = Config::default();
        c.alarm.webhook_urls = vec!["https://hooks.example/x".into(), "ftp://x/".into()];
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("alarm.webhook_urls[1]"),
            "https is fine: {err}"
        );
        let mut c = Config::default();
        c.tls.ca_file = "/nonexistent/ca.pem".into();
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("tls.ca_file") && err.contains("/nonexistent/ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn env_overrides_apply() {
        let mut c = Config::default();
        c.apply_env(|k| (k == "CRONVISOR_DATA_DIR").then(|| "/tmp/x".to_string()));
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    }
}
