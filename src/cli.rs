//! The command line. Every listing takes `--json`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod calendars;
mod run_control;
mod windows;
pub use calendars::{CalendarCommand, CalendarWriteArgs};
use cronvisor_roles::model::{JobFields, RunState, Trigger};
pub use run_control::{BackfillCommand, JobBackfillArgs};
pub use windows::WindowCommand;

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
    /// Workflows: the flows of jobs that run after others.
    #[command(subcommand)]
    Flow(FlowCommand),
    /// Backfills (`job backfill`): their progress, and cancelling one.
    #[command(subcommand)]
    Backfill(BackfillCommand),
    /// Business calendars: days that filter jobs' instants (workdays, holidays).
    #[command(subcommand)]
    Calendar(CalendarCommand),
    /// Maintenance windows: spans in which jobs' scheduled instants are skipped.
    #[command(subcommand)]
    Window(WindowCommand),
    /// Print the next instants of a cron rule.
    Next(NextArgs),
    /// Start a new generation of the roles (new binary and config); waits until it serves or
    /// was rolled back, and exits non-zero with the reason on failure. Same as SIGHUP.
    Reload(ReloadArgs),
    /// Show the supervisor's children and their state.
    Status(JsonFlag),
    /// List alarms (newest first) with their delivery state.
    Alarms(AlarmsArgs),
    /// Manage users: who may log in to the console, with which role and groups (admin).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage named API tokens (admin).
    #[command(subcommand)]
    Token(TokenCommand),
    /// The audit log: who changed what, when, from where (admin).
    Audit(AuditArgs),
    /// Who the CLI's token is, and what it may do.
    Whoami(JsonFlag),
    /// Apply the store's schema migrations.
    Migrate,
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Bring jobs in from elsewhere.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Print a shell completion script (e.g. `cronvisor completions bash >
    /// /etc/bash_completion.d/cronvisor`).
    Completions(CompletionsArgs),
    /// Print the man page (roff), e.g. `cronvisor man > /usr/local/share/man/man1/cronvisor.1`.
    Man,
    /// Print the API's OpenAPI 3 document (JSON), as the monitor serves it at
    /// `/api/v1/openapi.json`: for client generators, without a running system.
    Openapi,
}

/// A role, as `--role` takes it.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    Admin,
    Operator,
    Viewer,
}

impl RoleArg {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleArg::Admin => "admin",
            RoleArg::Operator => "operator",
            RoleArg::Viewer => "viewer",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add(UserAddArgs),
    /// List users.
    List(JsonFlag),
    /// Change a user's role, groups or e-mail, or rename it.
    Edit(UserEditArgs),
    /// Set a user's password (read from standard input); ends its sessions.
    Passwd(UserPasswdArgs),
    /// Stop a user from logging in (its sessions end at once).
    Disable(UserRef),
    /// Let a disabled user log in again.
    Enable(UserRef),
    /// Delete a user.
    Delete(UserRef),
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    pub name: String,
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// The job groups it sees, comma-separated; default: every group.
    #[arg(long, value_name = "G1,G2")]
    pub groups: Option<String>,
    #[arg(long)]
    pub email: Option<String>,
    /// Read the password from standard input (one line): never on the command line.
    #[arg(long, required = true)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct UserEditArgs {
    pub name: String,
    #[arg(long, value_enum)]
    pub role: Option<RoleArg>,
    /// The job groups it sees, comma-separated; "" for every group.
    #[arg(long, value_name = "G1,G2")]
    pub groups: Option<String>,
    /// "" clears it.
    #[arg(long)]
    pub email: Option<String>,
    #[arg(long, value_name = "NEW_NAME")]
    pub rename: Option<String>,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct UserPasswdArgs {
    pub name: String,
    /// Read the password from standard input (one line).
    #[arg(long, required = true)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct UserRef {
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once (the store keeps only its hash).
    Create(TokenCreateArgs),
    /// List tokens: name, role, scope, creation, expiry, last use.
    List(JsonFlag),
    /// Revoke a token: refused at once by every monitor.
    Revoke(UserRef),
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    #[arg(long)]
    pub name: String,
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// The job groups it sees, comma-separated; default: every group.
    #[arg(long, value_name = "G1,G2")]
    pub groups: Option<String>,
    /// Expires this long from now (30d, 12h); default: never.
    #[arg(long, value_name = "SPAN")]
    pub expires: Option<String>,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only entries about this job (name or id).
    #[arg(long)]
    pub job: Option<String>,
    /// Only entries by this user (or `token:NAME`, `api.token`).
    #[arg(long)]
    pub user: Option<String>,
    /// Only entries since (a span back from now: 1h, 7d; or an RFC 3339 time).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub limit: i64,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A crontab's lines as jobs: a user crontab (`crontab -l > FILE`) or a system one
    /// (/etc/crontab, /etc/cron.d/*, with a user column). MAILTO, CRON_TZ / TZ, SHELL and PATH
    /// lines apply to the lines after them; each job is named FILE-LINE and keeps its line in
    /// its description; `@reboot` is reported, not imported.
    Crontab(ImportCrontabArgs),
    /// The `[machine]` groups of the system cronvisor replaces (its conf.ini:
    /// `phpgroup = 192.168.2.74|192.168.2.75`), printed as cronvisor's TOML.
    GocronConfig(ImportGocronConfigArgs),
    /// The jobs of the system cronvisor replaces, from its MySQL table `tb_cron_schedule`:
    /// rule, command (or the URL of a curl/wget job), state, runat, the overflow policy (as
    /// overlap), alarm recipients and remark.
    Gocron(ImportGocronArgs),
}

#[derive(Debug, Args)]
pub struct ImportGocronArgs {
    /// Its database, e.g. mysql://user:password@host:3306/gocron.
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// Print what would be added; add nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ImportGocronConfigArgs {
    /// Its conf.ini.
    pub file: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct ImportCrontabArgs {
    /// The crontab file.
    pub file: std::path::PathBuf,
    /// Where the jobs run (a [machine] group or a host).
    #[arg(long, value_name = "GROUP|HOST")]
    pub run_at: Option<String>,
    /// Print what would be added; add nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The file has a user column (as /etc/crontab and /etc/cron.d/* have; those paths are
    /// recognised without it).
    #[arg(long)]
    pub system: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
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
    #[command(
        mut_arg("name", |a| a.required(true)),
        mut_arg("schedule", |a| a.required_unless_present("after"))
    )]
    Add(Box<JobAddArgs>),
    /// List jobs.
    List(JsonFlag),
    /// Show one job (by name or id).
    Show(JobRef),
    /// Change any field of a job (the flags of `job add`; "" clears a field).
    Edit(Box<JobEditArgs>),
    /// Stop firing a job (it can still be run by hand).
    Pause(JobRef),
    /// Fire a paused job again.
    Resume(JobRef),
    /// Run a job now, once (--follow: print its output as it runs, exit with its outcome).
    Run(JobRunArgs),
    /// Run a job once for each past instant of its rule in a range, oldest first, a few at a
    /// time (`backfill show` follows it).
    Backfill(JobBackfillArgs),
    /// Delete a job and its run history (refused while a run of it is going, unless --force).
    Delete(JobDeleteArgs),
}

#[derive(Debug, Subcommand)]
pub enum FlowCommand {
    /// A flow of a job's graph as an indented tree, each job with its state (the latest flow
    /// unless --run or --instant).
    Show(FlowShowArgs),
    /// List flows, newest first: root, instant, state, duration.
    List(FlowListArgs),
    /// Rerun the jobs of a run's flow that did not succeed, and what depends on them.
    Rerun(FlowRerunArgs),
}

#[derive(Debug, Args)]
pub struct FlowShowArgs {
    /// A job of the flow (name or id).
    pub job: String,
    /// The flow of this run.
    #[arg(long, conflicts_with = "instant")]
    pub run: Option<i64>,
    /// The flow of the root's instant (RFC 3339).
    #[arg(long)]
    pub instant: Option<String>,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct FlowListArgs {
    /// Only the flows of this job's root.
    #[arg(long)]
    pub job: Option<String>,
    /// running, succeeded, failed or partial.
    #[arg(long)]
    pub state: Option<String>,
    /// At most this many (default 50).
    #[arg(long)]
    pub limit: Option<i64>,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct FlowRerunArgs {
    /// Any run of the flow.
    pub run: i64,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct JobRef {
    /// Job name or id.
    pub job: String,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct JobRunArgs {
    /// Job name or id.
    pub job: String,
    /// Run this job only: the jobs that run after it are not started.
    #[arg(long)]
    pub alone: bool,
    /// Run it as of this instant (its CRONVISOR_INSTANT, and its flow's): RFC 3339, or a local
    /// time "2026-12-06 02:00" in the job's zone. An instant it already ran runs again.
    #[arg(long, value_name = "TIME")]
    pub instant: Option<String>,
    /// A value of one of the job's parameters, NAME=VALUE (repeatable); the others take their
    /// defaults.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Follow the run's output until it ends, as `run tail --follow` (same exit status).
    #[arg(long, short = 'f')]
    pub follow: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct JobAddArgs {
    #[command(flatten)]
    pub fields: JobFields,
    /// Create the job paused.
    #[arg(long)]
    pub paused: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct JobEditArgs {
    /// Job name or id.
    pub job: String,
    #[command(flatten)]
    pub fields: JobFields,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct JobDeleteArgs {
    /// Job name or id.
    pub job: String,
    /// Also when runs of it are going: they are stopped (killed) and go with the job's
    /// history. Without it, such a job is not deleted.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only runs of this job (name or id).
    #[arg(long)]
    pub job: Option<String>,
    /// Only runs in these states, comma-separated (e.g. failed,timed_out,lost).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub state: Vec<RunState>,
    /// Only runs scheduled at or after this: a span back from now (90s, 15m, 1h, 7d) or an
    /// RFC 3339 time.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only runs scheduled before this (same forms as --since).
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Only the runs of this instant (RFC 3339): one instant's shards, or a flow's jobs.
    #[arg(long, value_name = "TIME", conflicts_with_all = ["since", "until"],
          value_parser = parse_rfc3339_ms)]
    pub instant: Option<i64>,
    /// Only runs fired this way.
    #[arg(long, value_enum)]
    pub trigger: Option<Trigger>,
    /// Only runs on this executor (its host, or its full id).
    #[arg(long)]
    pub executor: Option<String>,
    /// Only runs older than this run id (the next page: the last id shown).
    #[arg(long, value_name = "RUN_ID")]
    pub before: Option<i64>,
    /// How many runs, newest first (1..=10000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub limit: i64,
    /// Print only the run ids, one per line (for `run kill $(cronvisor runs ... -q)`).
    #[arg(long, short = 'q', conflicts_with = "json")]
    pub quiet: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AlarmsArgs {
    #[command(subcommand)]
    pub cmd: Option<AlarmsCommand>,
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub limit: i64,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum AlarmsCommand {
    /// Send a test alarm now to the recipients of every configured channel (admin); exits
    /// non-zero when a delivery failed or no channel is configured.
    Test(AlarmsTestArgs),
}

#[derive(Debug, Args)]
pub struct AlarmsTestArgs {
    /// Only these channels (webhook, sms, email), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub channels: Vec<String>,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// State, times, exit code and output of one run.
    Show(RunShowArgs),
    /// A run's output: what it printed so far, or with --follow as it prints, until it ends.
    Tail(RunTailArgs),
    /// Stop a run (it ends `killed`).
    Kill(RunShowArgs),
    /// Run an ended run again as its next attempt: same instant, shard number and parameters.
    Retry(RunShowArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "With --follow the exit status tells how the run ended: 0 succeeded, \
the job's exit code when it failed with one (else 1), 124 timed out, 137 killed, 1 otherwise."
)]
pub struct RunTailArgs {
    pub id: i64,
    /// Keep printing what the run prints until it ends (reconnecting if the monitor restarts).
    #[arg(long, short = 'f')]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct RunShowArgs {
    pub id: i64,
    #[command(flatten)]
    pub out: JsonFlag,
}

#[derive(Debug, Args)]
pub struct NextArgs {
    /// Cron rule ("0 30 2 * * *", "*/5 * * * *", "@every 90s"), or the name or id of a job
    /// (its rule and zone).
    #[arg(value_name = "RULE|JOB")]
    pub rule: String,
    /// IANA time zone; default: the job's, or the config's `timezone`.
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

fn parse_rfc3339(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            format!("`{s}` is not an RFC 3339 instant ({e}); example: 2026-03-07T12:00:00Z")
        })
}

/// `NAME=VALUE` of `job run --param`.
fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}`: expected NAME=VALUE"))
}

/// An RFC 3339 time as epoch milliseconds (`--instant`).
fn parse_rfc3339_ms(s: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|_| format!("`{s}` is not an RFC 3339 time (2026-12-06T02:00:00Z)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
