//! The command line. Every listing takes `--json`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cronvisor",
    version,
    about = "A distributed cron system with a hot-reloading supervisor"
)]
pub struct Cli {
    /// Config file (TOML). Without one, the built-in defaults (conf/standalone.toml) apply.
    #[arg(long, global = true, env = "CRONVISOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data dir (store, tokens, runtime files); overrides the config's `data_dir`.
    #[arg(long, global = true, env = "CRONVISOR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Monitor API base URL for client commands; default: found in the data dir.
    #[arg(long, global = true, env = "CRONVISOR_API_URL")]
    pub api_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the supervisor and all roles (standalone: SQLite, one machine).
    Up(UpArgs),
    /// Run the dispatcher role (normally started by `up`).
    Dispatcher,
    /// Run the executor role (normally started by `up`).
    Executor,
    /// Run the monitor role: API and health checks (normally started by `up`).
    Monitor,
    /// Manage jobs.
    #[command(subcommand)]
    Job(JobCommand),
    /// List runs, newest first.
    Runs(RunsArgs),
    /// Inspect one run.
    #[command(subcommand)]
    Run(RunCommand),
    /// Print the next instants of a cron rule.
    Next(NextArgs),
    /// Start a new generation of the roles (new binary and config); waits until it serves or
    /// was rolled back, and exits non-zero with the reason on failure. Same as SIGHUP.
    Reload(ReloadArgs),
    /// Show the supervisor's children and their state.
    Status(JsonFlag),
    /// List alarms (newest first) with their delivery state.
    Alarms(AlarmsArgs),
    /// Apply the store's schema migrations.
    Migrate,
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Validate the config and exit without starting anything.
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// Upgrade the supervisor itself: dry-run the binary on disk (`up --check`), then exec it
    /// in place (same PID, same sockets), then replace the roles as a reload does. Same as
    /// SIGUSR2.
    #[arg(long)]
    pub upgrade: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args, Clone, Copy)]
pub struct JsonFlag {
    /// Machine-readable JSON output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Add a job.
    Add(Box<JobAddArgs>),
    /// List jobs.
    List(JsonFlag),
    /// Show one job (by name or id).
    Show(JobRef),
    /// Change a job's schedule, zone, command, timeout or policies.
    Edit(Box<JobEditArgs>),
    /// Stop firing a job (it can still be run by hand).
    Pause(JobRef),
    /// Fire a paused job again.
    Resume(JobRef),
    /// Run a job now, once.
    Run(JobRef),
    /// Delete a job and its runs.
    Delete(JobRef),
}

#[derive(Debug, Args)]
pub struct JobRef {
    /// Job name or id.
    pub job: String,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct JobAddArgs {
    #[arg(long)]
    pub name: String,
    /// Cron rule: 5 fields, 6 with seconds first, or a macro such as @hourly.
    #[arg(long)]
    pub schedule: String,
    /// Shell command, run with `sh -c`.
    #[arg(long)]
    pub command: Option<String>,
    /// IANA time zone of the rule; default: the config's `timezone`.
    #[arg(long)]
    pub tz: Option<String>,
    /// Maximum runtime (e.g. 90, 90s, 5m, 2h). No default cap.
    #[arg(long, value_parser = parse_duration_secs)]
    pub timeout: Option<i64>,
    /// Machine group or host to run on (cluster mode).
    #[arg(long)]
    pub run_at: Option<String>,
    /// URL of an HTTP job (instead of --command; http:// for now).
    #[arg(long)]
    pub http_url: Option<String>,
    /// HTTP job method (default GET).
    #[arg(long)]
    pub http_method: Option<String>,
    /// HTTP job header, "Name: value" (repeatable).
    #[arg(long = "http-header")]
    pub http_headers: Vec<String>,
    /// HTTP job request body.
    #[arg(long)]
    pub http_body: Option<String>,
    /// HTTP status that means success (default: any 2xx).
    #[arg(long)]
    pub http_expect: Option<i64>,
    /// Create the job paused.
    #[arg(long)]
    pub paused: bool,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// Policies and alarm settings, the same for `job add` and `job edit`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// When an instant comes while the previous run is still going: allow (default), forbid
    /// (record it skipped) or replace (kill the running one).
    #[arg(long, value_parser = ["allow", "forbid", "replace"])]
    pub overlap: Option<String>,
    /// With --run-at (or none: every executor): one run per instant on one executor, picked
    /// round-robin (default), or `all`: one run on every live executor of the target.
    #[arg(long, value_parser = ["one", "all"])]
    pub fanout: Option<String>,
    /// Attempts after a failure or timeout (0..=100; default 0).
    #[arg(long)]
    pub retries: Option<i64>,
    /// First retry delay (e.g. 30s, 5m; doubles per attempt, capped at a day; default 10s).
    #[arg(long, value_parser = parse_duration_secs)]
    pub retry_backoff: Option<i64>,
    /// After downtime: skip missed instants (default) or run_once for the latest.
    #[arg(long, value_parser = ["skip", "run_once"])]
    pub misfire: Option<String>,
    /// How far back run_once looks (default 1h).
    #[arg(long, value_parser = parse_duration_secs)]
    pub misfire_window: Option<i64>,
    /// Outcomes that raise an alarm, comma-separated: failed, timed_out, killed, lost, skipped,
    /// missed, recovered (default failed,timed_out,lost,missed,recovered; "" for none).
    #[arg(long, value_delimiter = ',')]
    pub alarm_on: Option<Vec<String>>,
    /// Channels of this job's alarms, comma-separated: webhook, sms, email (default: every
    /// configured one; "" for all again).
    #[arg(long, value_delimiter = ',')]
    pub alarm_channels: Option<Vec<String>>,
    /// Extra alarm e-mail recipients of this job, comma-separated.
    #[arg(long)]
    pub admin_email: Option<String>,
    /// Extra alarm SMS recipients of this job, comma-separated.
    #[arg(long)]
    pub admin_mobile: Option<String>,
}

#[derive(Debug, Args)]
pub struct JobEditArgs {
    /// Job name or id.
    pub job: String,
    #[arg(long)]
    pub schedule: Option<String>,
    #[arg(long)]
    pub command: Option<String>,
    #[arg(long)]
    pub tz: Option<String>,
    #[arg(long, value_parser = parse_duration_secs)]
    pub timeout: Option<i64>,
    /// Machine group or host to run on; "" for any executor.
    #[arg(long)]
    pub run_at: Option<String>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only runs of this job (name or id).
    #[arg(long)]
    pub job: Option<String>,
    /// How many runs, newest first (1..=10000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub limit: i64,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct AlarmsArgs {
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub limit: i64,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// State, times, exit code and output of one run.
    Show(RunShowArgs),
}

#[derive(Debug, Args)]
pub struct RunShowArgs {
    pub id: i64,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct NextArgs {
    /// Cron rule, e.g. "0 30 2 * * *" or "*/5 * * * *".
    pub rule: String,
    /// IANA time zone; default: the config's `timezone`.
    #[arg(long)]
    pub tz: Option<String>,
    /// How many instants.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub count: u32,
    /// Start after this instant (RFC 3339) instead of now.
    #[arg(long, value_parser = parse_rfc3339)]
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config without starting anything.
    Check,
}

/// "90", "90s", "5m", "2h", "1d" -> seconds.
pub fn parse_duration_secs(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (examples: 90, 90s, 5m, 2h)"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit `{unit}` in `{s}` (use s, m, h or d)")),
    };
    if n <= 0 {
        return Err("must be positive".to_string());
    }
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too long"))
}

fn parse_rfc3339(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            format!("`{s}` is not an RFC 3339 instant ({e}); example: 2026-03-07T12:00:00Z")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("90"), Ok(90));
        assert_eq!(parse_duration_secs("5m"), Ok(300));
        assert_eq!(parse_duration_secs("2h"), Ok(7200));
        assert!(parse_duration_secs("0").is_err());
        assert!(parse_duration_secs("5x").is_err());
        assert!(parse_duration_secs("abc").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
