//! `[executor]`: how an executor runs jobs — output capture, whom jobs run as, what HTTP jobs
//! may call, how much runs at once.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::sections::{at_least, MS};
use super::values::duration;
use super::{invalid, ConfigError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    /// Bytes of the start of each output stream kept per run. Default 65536.
    pub output_head_bytes: usize,
    /// Bytes of the end of each output stream kept per run. Default 65536.
    pub output_tail_bytes: usize,
    /// Between SIGTERM and SIGKILL when a run's process group is stopped. Default "5s".
    #[serde(with = "duration")]
    pub kill_grace: Duration,
    /// After the job's shell exits, how long to keep reading output that background processes
    /// still write to its pipes. Default "1s".
    #[serde(with = "duration")]
    pub output_linger: Duration,
    /// How often the executor records that it is alive. Default "2s".
    #[serde(with = "duration")]
    pub heartbeat: Duration,
    /// Names of the executor's environment variables passed on to jobs (e.g. `["HTTP_PROXY"]`).
    /// Jobs otherwise start from a clean environment: PATH, HOME, USER, LOGNAME, SHELL, LANG,
    /// TZ (the job's zone), CRONVISOR_JOB, CRONVISOR_RUN_ID, CRONVISOR_INSTANT,
    /// CRONVISOR_ATTEMPT, CRONVISOR_SHARD_INDEX/TOTAL, the flow variables, and the job's own
    /// `env`. Default none.
    pub pass_env: Vec<String>,
    /// Runs going at once on this executor; when that many are going it refuses more (503), so
    /// dispatchers send them to another executor of the target — with none, a run not taken
    /// within `dispatcher.delivery_timeout` is recorded failed with the reason. A burst sent in
    /// one request is taken whole. Default 0: no limit.
    pub max_running: usize,
    /// The user jobs run as when the executor can switch users (root, or `CAP_SETUID` +
    /// `CAP_SETGID` + `CAP_KILL`, as the shipped systemd unit gives): its uid and groups, its
    /// HOME, USER and LOGNAME, its home (or `/`) as the working directory, and no capability.
    /// "root" keeps root. An executor that cannot switch users runs jobs as itself: standalone,
    /// the install is then admin-only; in cluster mode it does not start. Default "nobody"
    /// (Debian's unprivileged user), so that a job cannot read the data dir (tokens, the SQLite
    /// store) or anything else only cronvisor may.
    pub run_as: String,
    /// Networks HTTP jobs may call although the egress policy refuses them by default
    /// (loopback, link-local — cloud metadata services —, unspecified and multicast
    /// addresses), e.g. `["127.0.0.1/32"]`. Default none.
    pub http_allow: Vec<String>,
    /// The users any job may name as its own `run_as` on this executor (one that can switch
    /// users). A job naming another one fails with the reason. Default none.
    pub allowed_users: Vec<String>,
    /// Users only the jobs of one group may name (`billing = ["billing-etl"]`): an operator of
    /// another group cannot borrow them. Default none.
    pub allowed_users_by_group: std::collections::BTreeMap<String, Vec<String>>,
    /// The job groups whose runs this executor takes (`["billing"]`): a run of another group's
    /// job — an operator of that group naming this host in `run_at` — fails saying so. Default
    /// none: every group's.
    pub job_groups: Vec<String>,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            output_head_bytes: 64 * 1024,
            output_tail_bytes: 64 * 1024,
            kill_grace: Duration::from_secs(5),
            output_linger: Duration::from_secs(1),
            heartbeat: Duration::from_secs(2),
            pass_env: Vec::new(),
            max_running: 0,
            run_as: "nobody".to_string(),
            http_allow: Vec::new(),
            allowed_users: Vec::new(),
            allowed_users_by_group: std::collections::BTreeMap::new(),
            job_groups: Vec::new(),
        }
    }
}

impl ExecutorConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.run_as.trim().is_empty() {
            return Err(invalid(
                "executor.run_as",
                "a user name (\"root\" to keep running jobs as root)",
            ));
        }
        at_least("executor.heartbeat", self.heartbeat, MS)?;
        for net in &self.http_allow {
            super::auth::parse_net(net).map_err(|m| invalid("executor.http_allow", m))?;
        }
        for (group, users) in &self.allowed_users_by_group {
            if users.iter().any(|u| u.trim().is_empty()) {
                return Err(invalid(
                    &format!("executor.allowed_users_by_group.{group}"),
                    "user names, none empty",
                ));
            }
        }
        if self.output_head_bytes + self.output_tail_bytes == 0 {
            return Err(invalid(
                "executor.output_head_bytes",
                "head and tail cannot both be 0",
            ));
        }
        for name in &self.pass_env {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(invalid(
                    "executor.pass_env",
                    format!("`{name}` is not a variable name"),
                ));
            }
        }
        Ok(())
    }
}
