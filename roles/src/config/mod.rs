//! The one configuration struct of a cronvisor host.
//!
//! Parsed and validated without binding or connecting anything, so that `cronvisor config check`
//! and a reload can reject a bad file before it touches a running system. Every knob documents
//! its default; `conf/standalone.toml` spells the same defaults out and a test keeps the two equal.
//! Typed values: `Duration`s (`"250ms"`), `SocketAddr` listeners, enums for roles and formats,
//! `Option` for what may be unset; each section validates itself (`sections.rs`, `alarm.rs`).

mod alarm;
pub mod auth;
mod executor;
mod legacy;
mod sections;
pub mod values;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use alarm::{
    AlarmConfig, EmailConfig, Robot, RobotKind, SmsConfig, SmsParams, SmsProvider, SmtpSecurity,
};
pub use auth::AuthConfig;
pub use executor::ExecutorConfig;
pub use sections::{
    ClusterConfig, DispatcherConfig, HttpConfig, MonitorConfig, StoreConfig, SupervisorConfig,
    TlsConfig,
};

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

pub(crate) fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

named! {
    /// A role a host runs.
    pub enum Role {
        Dispatcher = "dispatcher",
        Executor = "executor",
        Monitor = "monitor",
    }
}

impl Role {
    /// The listener the role is handed. A role whose listener is not configured cannot start.
    pub fn listener(self) -> &'static str {
        match self {
            Role::Dispatcher => "dispatch",
            Role::Executor => "rpc",
            Role::Monitor => "api",
        }
    }
}

named! {
    /// How logs are written.
    #[derive(Default)]
    pub enum LogFormat {
        /// For people (the default).
        #[default]
        Text = "text",
        /// JSON lines, for log shippers.
        Json = "json",
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
    pub log_format: LogFormat,
    /// Named listening sockets, `name = "ip:port"`. The supervisor binds them (or adopts them
    /// from systemd by name) and hands each role its own. Defaults: `api = "127.0.0.1:7070"`
    /// (monitor: API and console), `rpc = "127.0.0.1:7071"` (executor), `dispatch =
    /// "127.0.0.1:7072"` (dispatcher: health and metrics only). Port 0 picks a free port; the
    /// addresses actually bound are written to `<data_dir>/endpoints.json`.
    pub listeners: BTreeMap<String, SocketAddr>,
    /// The roles `cronvisor up` runs on this host: any of `dispatcher`, `executor`, `monitor`.
    /// Default all three. A cluster host may run any subset.
    pub roles: Vec<Role>,
    /// This host's identity: what `run_at` and the `[machine]` groups name. Default none: the
    /// hostname. Environment override: `CRONVISOR_HOST`.
    #[serde(with = "values::optional", skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
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
    pub http: HttpConfig,
    pub auth: AuthConfig,
}

impl Default for Config {
    fn default() -> Self {
        let listeners = [
            ("api", [127, 0, 0, 1], 7070),
            ("rpc", [127, 0, 0, 1], 7071),
            ("dispatch", [127, 0, 0, 1], 7072),
        ]
        .into_iter()
        .map(|(k, ip, port)| (k.to_string(), SocketAddr::from((ip, port))))
        .collect();
        Config {
            data_dir: PathBuf::from("./var"),
            timezone: "UTC".to_string(),
            log_format: LogFormat::default(),
            listeners,
            roles: Role::ALL.to_vec(),
            host: None,
            machine: BTreeMap::new(),
            cluster: ClusterConfig::default(),
            store: StoreConfig::default(),
            supervisor: SupervisorConfig::default(),
            dispatcher: DispatcherConfig::default(),
            executor: ExecutorConfig::default(),
            monitor: MonitorConfig::default(),
            alarm: AlarmConfig::default(),
            tls: TlsConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
        }
    }
}

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
        config.apply_env(|k| std::env::var(k).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text; unknown keys are errors, so a typo never silently means "default".
    /// The keys of earlier versions (`poll_interval_ms = 250`) are read as today's.
    pub fn parse(text: &str) -> Result<Config, String> {
        let mut doc: toml::Value = toml::from_str(text).map_err(|e| e.to_string())?;
        legacy::upgrade(&mut doc)?;
        check_roles(&doc)?;
        doc.try_into()
            .map_err(|e: toml::de::Error| e.to_string().trim().replace('\n', " "))
    }

    /// Environment overrides: `CRONVISOR_DATA_DIR`, `CRONVISOR_STORE_URL`, `CRONVISOR_TIMEZONE`,
    /// `CRONVISOR_LOG_FORMAT`, `CRONVISOR_SMTP_PASSWORD`, `CRONVISOR_SMS_KEY_SECRET`, `CRONVISOR_HOST`,
    /// `CRONVISOR_REDIS_URL`, `CRONVISOR_ETCD_ENDPOINTS`, `CRONVISOR_ETCD_PASSWORD`,
    /// `CRONVISOR_PROXY_SECRET`,
    /// `CRONVISOR_ADVERTISE_RPC`. An empty value unsets.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let set = |v: String| Some(v).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("CRONVISOR_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("CRONVISOR_STORE_URL") {
            self.store.url = set(v);
        }
        if let Some(v) = get("CRONVISOR_TIMEZONE") {
            self.timezone = v;
        }
        if let Some(v) = get("CRONVISOR_LOG_FORMAT") {
            self.log_format = LogFormat::parse(v.trim()).ok_or_else(|| {
                invalid(
                    "CRONVISOR_LOG_FORMAT",
                    format!("`{v}`: one of {}", LogFormat::names()),
                )
            })?;
        }
        if let Some(v) = get("CRONVISOR_SMS_KEY_SECRET") {
            self.alarm.sms.key_secret = v;
        }
        if let Some(v) = get("CRONVISOR_SMTP_PASSWORD") {
            self.alarm.email.password = v;
        }
        if let Some(v) = get("CRONVISOR_HOST") {
            self.host = set(v);
        }
        if let Some(v) = get("CRONVISOR_REDIS_URL") {
            self.cluster.redis_url = set(v);
        }
        if let Some(v) = get("CRONVISOR_PROXY_SECRET") {
            self.auth.proxy_secret = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = get("CRONVISOR_ETCD_PASSWORD") {
            self.cluster.etcd_password = set(v);
        }
        if let Some(v) = get("CRONVISOR_ADVERTISE_RPC") {
            self.cluster.advertise_rpc = match set(v) {
                None => None,
                Some(v) => Some(v.trim().parse().map_err(|_| {
                    invalid(
                        "CRONVISOR_ADVERTISE_RPC",
                        format!("`{v}` is not an address with a port, such as 10.0.0.5:7071"),
                    )
                })?),
            };
        }
        if let Some(v) = get("CRONVISOR_ETCD_ENDPOINTS") {
            self.cluster.etcd_endpoints = v
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_string)
                .collect();
        }
        Ok(())
    }

    /// What serving needs beyond a valid file: the secrets given through the environment
    /// (`CRONVISOR_PROXY_SECRET` with a proxy login). Checked by `up`, `config check` and a
    /// reload, not by every CLI command (which reads the config only to find the API).
    pub fn check_serving(&self) -> Result<(), ConfigError> {
        self.auth.check_proxy_secret()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        schedule::parse_timezone(&self.timezone).map_err(|e| invalid("timezone", e.to_string()))?;
        for name in self.listeners.keys() {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(invalid(
                    &format!("listeners.{name}"),
                    "listener names are letters, digits and `_`",
                ));
            }
        }
        if self.roles.is_empty() {
            return Err(invalid("roles", "name at least one role"));
        }
        for (i, role) in self.roles.iter().enumerate() {
            if self.roles[..i].contains(role) {
                return Err(invalid(
                    &format!("roles[{i}]"),
                    format!("`{role}` listed twice"),
                ));
            }
            if !self.listeners.contains_key(role.listener()) {
                return Err(invalid(
                    &format!("listeners.{}", role.listener()),
                    format!("missing: the {role} needs it"),
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
        sections::validate_sections(self)
    }

    /// The store URL, defaulting to SQLite under the data dir.
    pub fn store_url(&self) -> String {
        self.store.url_in(&self.data_dir)
    }

    /// Whether this host runs `role`.
    pub fn runs(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Names the wrong entry of `roles` by its index, which serde's message would not.
fn check_roles(doc: &toml::Value) -> Result<(), String> {
    let Some(roles) = doc.get("roles").and_then(toml::Value::as_array) else {
        return Ok(());
    };
    for (i, r) in roles.iter().enumerate() {
        if r.as_str().and_then(Role::parse).is_none() {
            let shown = r
                .as_str()
                .map(|v| format!("`{v}`"))
                .unwrap_or_else(|| format!("of type {}", r.type_str()));
            return Err(format!(
                "config key `roles[{i}]`: unknown role {shown} (one of {})",
                Role::names()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_standalone_toml_equals_builtin_defaults() {
        let text = include_str!("../../../conf/standalone.toml");
        let parsed = Config::parse(text).expect("conf/standalone.toml parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn shipped_cluster_toml_is_valid() {
        let text = include_str!("../../../conf/cluster.toml");
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
        c.cluster.redis_url = Some("127.0.0.1:6379".into());
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("cluster.redis_url"));
        let err = Config::parse("roles = [\"dispatcher\", \"scheduler\"]\n").unwrap_err();
        assert!(
            err.contains("roles[1]") && err.contains("scheduler"),
            "{err}"
        );
        let c = Config {
            roles: vec![Role::Dispatcher, Role::Dispatcher],
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
            roles: vec![Role::Dispatcher],
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
        let err = Config::parse("[listeners]\napi = \"localhost\"\n").unwrap_err();
        assert!(err.contains("listeners.api"), "{err}");
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
        c.tls.ca_file = Some("/nonexistent/ca.pem".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("tls.ca_file") && err.contains("/nonexistent/ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn env_overrides_apply() {
        let mut c = Config::default();
        c.apply_env(|k| (k == "CRONVISOR_DATA_DIR").then(|| "/tmp/x".to_string()))
            .expect("env");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    }

    /// What a Kubernetes pod gets from the downward API (`$(POD_IP):7071`), and what a typo
    /// gets: the variable named with the reason.
    #[test]
    fn the_advertised_rpc_address_and_the_etcd_password_come_from_the_environment() {
        let mut c = Config::default();
        c.apply_env(|k| match k {
            "CRONVISOR_ADVERTISE_RPC" => Some("10.0.0.5:7071".into()),
            "CRONVISOR_ETCD_PASSWORD" => Some("pw".into()),
            _ => None,
        })
        .expect("env");
        assert_eq!(
            c.cluster.advertise_rpc,
            Some("10.0.0.5:7071".parse().expect("addr"))
        );
        assert_eq!(c.cluster.etcd_password.as_deref(), Some("pw"));
        assert!(
            !format!("{:?}", c.cluster).contains("pw\""),
            "the password is redacted"
        );
        let err = Config::default()
            .apply_env(|k| (k == "CRONVISOR_ADVERTISE_RPC").then(|| "10.0.0.5".to_string()))
            .expect_err("no port");
        assert!(err.to_string().contains("CRONVISOR_ADVERTISE_RPC"), "{err}");
    }
}
