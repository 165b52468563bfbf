//! The job and run records, and validation of what a user submits.

use serde::{Deserialize, Serialize};

use crate::schedule::Schedule;

/// Milliseconds since the Unix epoch: the one time unit of the store and the wire.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: i64,
    pub name: String,
    pub schedule: String,
    pub timezone: String,
    pub command: Option<String>,
    pub http_url: Option<String>,
    /// HTTP jobs: method (default GET), headers, body, and the status that means success
    /// (0: any 2xx).
    pub http_method: String,
    pub http_headers: std::collections::BTreeMap<String, String>,
    pub http_body: Option<String>,
    pub http_expect_status: i64,
    pub timeout_secs: Option<i64>,
    pub run_at: Option<String>,
    /// With `run_at` (or none: every executor): one run on one executor, or one per executor.
    pub fanout: Fanout,
    pub paused: bool,
    pub overlap: Overlap,
    pub retries: i64,
    pub retry_backoff_secs: i64,
    pub misfire: Misfire,
    pub misfire_window_secs: i64,
    /// Outcomes that raise an alarm: failed, timed_out, killed, lost, skipped, recovered.
    pub alarm_on: Vec<String>,
    /// Channels this job's alarms use (webhook, sms, email); empty: every configured one.
    pub alarm_channels: Vec<String>,
    /// Extra recipients of this job's alarms (the original's admin_email / admin_mobile).
    pub admin_email: Option<String>,
    pub admin_mobile: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// The outcomes an alarm can be about.
pub const ALARM_KINDS: [&str; 7] = [
    "failed",
    "timed_out",
    "killed",
    "lost",
    "skipped",
    "missed",
    "recovered",
];

/// The channels an alarm can go through.
pub const ALARM_CHANNELS: [&str; 3] = ["webhook", "sms", "email"];

fn validate_alarm_channels(list: &[String]) -> Result<(), FieldError> {
    for c in list {
        if !ALARM_CHANNELS.contains(&c.as_str()) {
            return Err(FieldError::new(
                "alarm_channels",
                format!(
                    "unknown channel `{c}` (one of {})",
                    ALARM_CHANNELS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Default `alarm_on`.
pub const DEFAULT_ALARM_ON: &str = "failed,timed_out,lost,missed,recovered";

fn validate_alarm_on(list: &[String]) -> Result<(), FieldError> {
    for k in list {
        if !ALARM_KINDS.contains(&k.as_str()) {
            return Err(FieldError::new(
                "alarm_on",
                format!("unknown outcome `{k}` (one of {})", ALARM_KINDS.join(", ")),
            ));
        }
    }
    Ok(())
}

/// What happens when an instant comes while the job's previous run is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Run both (cron's behaviour; the default).
    #[default]
    Allow,
    /// Record the new instant `skipped`, with the run still going as the reason.
    Forbid,
    /// Kill the running one (recorded `killed`), then start the new one.
    Replace,
}

/// How many executors of the job's target run each instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fanout {
    /// One executor, picked round-robin among the live ones of the target, failing over to the
    /// next when one is unreachable (the default).
    #[default]
    One,
    /// Every live executor of the target: one run each.
    All,
}

impl Fanout {
    pub fn as_str(self) -> &'static str {
        match self {
            Fanout::One => "one",
            Fanout::All => "all",
        }
    }

    pub fn parse(s: &str) -> Option<Fanout> {
        [Fanout::One, Fanout::All]
            .into_iter()
            .find(|f| f.as_str() == s)
    }
}

/// What a dispatcher does, when it starts, about instants missed while none was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Misfire {
    /// Nothing: the next instant fires as usual (the default).
    #[default]
    Skip,
    /// Run once for the latest missed instant, if it is within `misfire_window_secs`.
    RunOnce,
}

impl Overlap {
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Allow => "allow",
            Overlap::Forbid => "forbid",
            Overlap::Replace => "replace",
        }
    }

    pub fn parse(s: &str) -> Option<Overlap> {
        [Overlap::Allow, Overlap::Forbid, Overlap::Replace]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

impl Misfire {
    pub fn as_str(self) -> &'static str {
        match self {
            Misfire::Skip => "skip",
            Misfire::RunOnce => "run_once",
        }
    }

    pub fn parse(s: &str) -> Option<Misfire> {
        [Misfire::Skip, Misfire::RunOnce]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// Upper bounds that keep a typo from becoming a storm or a year-long wait.
const MAX_RETRIES: i64 = 100;
const MAX_BACKOFF_SECS: i64 = 86_400;
const MAX_MISFIRE_WINDOW_SECS: i64 = 7 * 86_400;

/// What a user submits to create a job (`POST /api/v1/jobs`, `cronvisor job add`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub name: String,
    pub schedule: String,
    /// IANA zone; default: the config's `timezone`.
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub http_url: Option<String>,
    #[serde(default)]
    pub http_method: Option<String>,
    #[serde(default)]
    pub http_headers: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    pub http_body: Option<String>,
    #[serde(default)]
    pub http_expect_status: Option<i64>,
    #[serde(default)]
    pub timeout_secs: Option<i64>,
    #[serde(default)]
    pub run_at: Option<String>,
    #[serde(default)]
    pub fanout: Option<Fanout>,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub overlap: Option<Overlap>,
    #[serde(default)]
    pub retries: Option<i64>,
    /// First retry delay; doubles per attempt, capped at a day. Default 10.
    #[serde(default)]
    pub retry_backoff_secs: Option<i64>,
    #[serde(default)]
    pub misfire: Option<Misfire>,
    /// Default 3600.
    #[serde(default)]
    pub misfire_window_secs: Option<i64>,
    /// Default failed, timed_out, lost, recovered.
    #[serde(default)]
    pub alarm_on: Option<Vec<String>>,
    /// Default: every configured channel.
    #[serde(default)]
    pub alarm_channels: Option<Vec<String>>,
    #[serde(default)]
    pub admin_email: Option<String>,
    #[serde(default)]
    pub admin_mobile: Option<String>,
}

/// A partial edit (`PATCH /api/v1/jobs/{job}`, `cronvisor job edit`): absent fields keep their
/// value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobPatch {
    #[serde(default)]
    pub schedule: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub timeout_secs: Option<i64>,
    /// A machine group or host; "" means any executor.
    #[serde(default)]
    pub run_at: Option<String>,
    #[serde(default)]
    pub fanout: Option<Fanout>,
    #[serde(default)]
    pub overlap: Option<Overlap>,
    #[serde(default)]
    pub retries: Option<i64>,
    #[serde(default)]
    pub retry_backoff_secs: Option<i64>,
    #[serde(default)]
    pub misfire: Option<Misfire>,
    #[serde(default)]
    pub misfire_window_secs: Option<i64>,
    #[serde(default)]
    pub alarm_on: Option<Vec<String>>,
    /// Default: every configured channel.
    #[serde(default)]
    pub alarm_channels: Option<Vec<String>>,
    #[serde(default)]
    pub admin_email: Option<String>,
    #[serde(default)]
    pub admin_mobile: Option<String>,
}

fn validate_range(field: &str, value: Option<i64>, min: i64, max: i64) -> Result<(), FieldError> {
    match value {
        Some(v) if v < min || v > max => Err(FieldError::new(
            field,
            format!("must be between {min} and {max}"),
        )),
        _ => Ok(()),
    }
}

/// Rejected input: the field and the reason, as the API returns them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

const MAX_NAME: usize = 128;
const MAX_COMMAND: usize = 64 * 1024;

pub fn validate_name(name: &str) -> Result<(), FieldError> {
    if name.is_empty() {
        return Err(FieldError::new("name", "must not be empty"));
    }
    if name.len() > MAX_NAME {
        return Err(FieldError::new(
            "name",
            format!("longer than {MAX_NAME} bytes"),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(FieldError::new(
            "name",
            "only letters, digits, `-`, `_` and `.` are allowed",
        ));
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return Err(FieldError::new(
            "name",
            "must not be all digits (numbers address jobs by id)",
        ));
    }
    Ok(())
}

fn validate_schedule(rule: &str, timezone: &str) -> Result<(), FieldError> {
    match Schedule::parse(rule, timezone) {
        Ok(_) => Ok(()),
        Err(crate::schedule::ScheduleError::TimeZone(z)) => Err(FieldError::new(
            "timezone",
            format!("unknown time zone `{z}` (expected an IANA name such as `Europe/Paris`)"),
        )),
        Err(e) => Err(FieldError::new("schedule", e.to_string())),
    }
}

fn validate_command(command: &str) -> Result<(), FieldError> {
    if command.trim().is_empty() {
        return Err(FieldError::new("command", "must not be empty"));
    }
    if command.len() > MAX_COMMAND {
        return Err(FieldError::new(
            "command",
            format!("longer than {MAX_COMMAND} bytes"),
        ));
    }
    if command.contains('\0') {
        return Err(FieldError::new("command", "must not contain a NUL byte"));
    }
    Ok(())
}

fn validate_http(
    url: &str,
    method: Option<&str>,
    headers: Option<&std::collections::BTreeMap<String, String>>,
    expect: Option<i64>,
) -> Result<(), FieldError> {
    crate::http::client::check_url(url).map_err(|reason| FieldError::new("http_url", reason))?;
    if let Some(m) = method {
        if m.parse::<hyper::Method>().is_err() || m.is_empty() {
            return Err(FieldError::new(
                "http_method",
                format!("`{m}` is not an HTTP method"),
            ));
        }
    }
    for (k, v) in headers.into_iter().flatten() {
        if k.parse::<hyper::header::HeaderName>().is_err()
            || v.parse::<hyper::header::HeaderValue>().is_err()
        {
            return Err(FieldError::new(
                "http_headers",
                format!("invalid header `{k}`"),
            ));
        }
    }
    validate_range("http_expect_status", expect.filter(|s| *s != 0), 100, 599)
}

fn validate_timeout(timeout: Option<i64>) -> Result<(), FieldError> {
    match timeout {
        Some(t) if t <= 0 => Err(FieldError::new(
            "timeout_secs",
            "must be a positive number of seconds",
        )),
        _ => Ok(()),
    }
}

impl JobSpec {
    /// Checks every field and fills in the default zone. Nothing is stored for a spec that fails.
    pub fn validate(mut self, default_tz: &str) -> Result<JobSpec, FieldError> {
        validate_name(&self.name)?;
        let tz = self
            .timezone
            .take()
            .unwrap_or_else(|| default_tz.to_string());
        validate_schedule(&self.schedule, &tz)?;
        self.timezone = Some(tz);
        match (&self.command, &self.http_url) {
            (Some(c), None) => validate_command(c)?,
            (None, Some(url)) => validate_http(
                url,
                self.http_method.as_deref(),
                self.http_headers.as_ref(),
                self.http_expect_status,
            )?,
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    "command",
                    "give either `command` or `http_url`, not both",
                ))
            }
            (None, None) => return Err(FieldError::new("command", "must not be empty")),
        }
        validate_timeout(self.timeout_secs)?;
        validate_range("retries", self.retries, 0, MAX_RETRIES)?;
        validate_range(
            "retry_backoff_secs",
            self.retry_backoff_secs,
            1,
            MAX_BACKOFF_SECS,
        )?;
        validate_range(
            "misfire_window_secs",
            self.misfire_window_secs,
            1,
            MAX_MISFIRE_WINDOW_SECS,
        )?;
        if let Some(run_at) = &self.run_at {
            if run_at.trim().is_empty() {
                return Err(FieldError::new("run_at", "must not be empty when given"));
            }
        }
        if let Some(list) = &self.alarm_on {
            validate_alarm_on(list)?;
        }
        if let Some(list) = &self.alarm_channels {
            validate_alarm_channels(list)?;
        }
        Ok(self)
    }
}

impl JobPatch {
    /// Applies the patch to `job` and validates the result as a whole.
    pub fn apply(self, mut job: Job) -> Result<Job, FieldError> {
        if let Some(s) = self.schedule {
            job.schedule = s;
        }
        if let Some(z) = self.timezone {
            job.timezone = z;
        }
        if let Some(c) = self.command {
            validate_command(&c)?;
            job.command = Some(c);
        }
        if self.timeout_secs.is_some() {
            validate_timeout(self.timeout_secs)?;
            job.timeout_secs = self.timeout_secs;
        }
        validate_range("retries", self.retries, 0, MAX_RETRIES)?;
        validate_range(
            "retry_backoff_secs",
            self.retry_backoff_secs,
            1,
            MAX_BACKOFF_SECS,
        )?;
        validate_range(
            "misfire_window_secs",
            self.misfire_window_secs,
            1,
            MAX_MISFIRE_WINDOW_SECS,
        )?;
        if let Some(r) = self.run_at {
            job.run_at = Some(r.trim().to_string()).filter(|r| !r.is_empty());
        }
        job.fanout = self.fanout.unwrap_or(job.fanout);
        job.overlap = self.overlap.unwrap_or(job.overlap);
        job.retries = self.retries.unwrap_or(job.retries);
        job.retry_backoff_secs = self.retry_backoff_secs.unwrap_or(job.retry_backoff_secs);
        job.misfire = self.misfire.unwrap_or(job.misfire);
        job.misfire_window_secs = self.misfire_window_secs.unwrap_or(job.misfire_window_secs);
        if let Some(list) = self.alarm_on {
            validate_alarm_on(&list)?;
            job.alarm_on = list;
        }
        if let Some(list) = self.alarm_channels {
            validate_alarm_channels(&list)?;
            job.alarm_channels = list;
        }
        if self.admin_email.is_some() {
            job.admin_email = self.admin_email.filter(|v| !v.is_empty());
        }
        if self.admin_mobile.is_some() {
            job.admin_mobile = self.admin_mobile.filter(|v| !v.is_empty());
        }
        validate_schedule(&job.schedule, &job.timezone)?;
        Ok(job)
    }
}

/// A run's state. Final states never change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Scheduled,
    Dispatched,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Killed,
    Lost,
    Skipped,
    /// Instants that should have fired while no dispatcher ran (one record per job and
    /// outage, for the latest of them).
    Missed,
}

impl RunState {
    pub const ALL: [RunState; 10] = [
        RunState::Scheduled,
        RunState::Dispatched,
        RunState::Running,
        RunState::Succeeded,
        RunState::Failed,
        RunState::TimedOut,
        RunState::Killed,
        RunState::Lost,
        RunState::Skipped,
        RunState::Missed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Scheduled => "scheduled",
            RunState::Dispatched => "dispatched",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::TimedOut => "timed_out",
            RunState::Killed => "killed",
            RunState::Lost => "lost",
            RunState::Skipped => "skipped",
            RunState::Missed => "missed",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        RunState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        !matches!(
            self,
            RunState::Scheduled | RunState::Dispatched | RunState::Running
        )
    }
}

/// How a run came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Schedule,
    Manual,
    /// A new attempt after a failure, per the job's `retries`.
    Retry,
    /// The one catch-up run of a `misfire = run_once` job after downtime.
    Misfire,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Retry => "retry",
            Trigger::Misfire => "misfire",
        }
    }

    pub fn parse(s: &str) -> Trigger {
        match s {
            "manual" => Trigger::Manual,
            "retry" => Trigger::Retry,
            "misfire" => Trigger::Misfire,
            _ => Trigger::Schedule,
        }
    }
}

/// A run as stored. `stdout`/`stderr` are only filled by `run show`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: i64,
    pub job_id: i64,
    pub job_name: String,
    /// The scheduled instant (for a manual run: when it was requested).
    pub instant: Millis,
    pub trigger: Trigger,
    /// 1 for the first run of an instant, then 2, 3... for its retries.
    pub attempt: i64,
    /// The first run of the retry chain, for attempts after the first.
    pub retry_of: Option<i64>,
    pub state: RunState,
    pub executor: Option<String>,
    pub pid: Option<i64>,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub created_at: Millis,
    pub dispatched_at: Option<Millis>,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    /// Bytes of stdout / stderr cut from the middle to respect the cap.
    pub stdout_cut: i64,
    pub stderr_cut: i64,
}

/// An alarm and its delivery, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    pub id: i64,
    pub job_id: i64,
    /// The run that raised it (the first, when several were merged).
    pub run_id: i64,
    /// failed, timed_out, killed, lost, skipped or recovered.
    pub kind: String,
    /// webhook, sms, or none (recorded only: no channel configured).
    pub channel: String,
    pub recipient: String,
    /// pending, sending, sent, failed or recorded.
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// How many events were merged into this alarm.
    pub count: i64,
    pub details: serde_json::Value,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// What the dispatcher sends the executor: everything needed to run, so the executor never
/// reads the job table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRequest {
    pub run_id: i64,
    pub job_id: i64,
    pub job_name: String,
    pub instant: Millis,
    pub command: String,
    /// Set for an HTTP job: the request to make instead of running `command`.
    #[serde(default)]
    pub http: Option<HttpCall>,
    pub timeout_secs: Option<i64>,
    /// Which attempt this is (1 = first).
    #[serde(default = "first_attempt")]
    pub attempt: i64,
    /// The first run of the chain (this run itself for attempt 1).
    #[serde(default)]
    pub retry_of: Option<i64>,
    /// Attempts allowed after the first, per the job.
    #[serde(default)]
    pub retries: i64,
    #[serde(default)]
    pub retry_backoff_secs: i64,
}

/// The request of an HTTP job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpCall {
    pub method: String,
    pub url: String,
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: Option<String>,
    /// 0: any 2xx.
    pub expect_status: i64,
}

fn first_attempt() -> i64 {
    1
}

/// Several runs in one RPC: a burst of instants costs one request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunBatch {
    pub runs: Vec<RunRequest>,
}

/// The executor's answer to a `RunBatch`: runs it started (or had already started: a retried
/// request never starts a run twice) and runs it could not start (already recorded `failed`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BatchAccepted {
    pub accepted: Vec<RunAccepted>,
    pub failed: Vec<i64>,
}

/// The executor's answer for one run of a batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunAccepted {
    pub run_id: i64,
    pub executor: String,
    pub pid: Option<i64>,
}

/// Delay before attempt `attempt + 1`: the backoff doubled per attempt already made, capped
/// at a day.
pub fn retry_delay_ms(backoff_secs: i64, attempt: i64) -> i64 {
    let doublings = (attempt - 1).clamp(0, 20) as u32;
    backoff_secs
        .max(0)
        .saturating_mul(1000)
        .saturating_mul(1 << doublings)
        .min(86_400_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        JobSpec {
            name: "hello".into(),
            schedule: "* * * * *".into(),
            command: Some("echo hi".into()),
            ..JobSpec::default()
        }
    }

    #[test]
    fn valid_spec_gets_the_default_zone() {
        let s = spec().validate("Europe/Paris").expect("valid");
        assert_eq!(s.timezone.as_deref(), Some("Europe/Paris"));
    }

    #[test]
    fn every_default_alarm_outcome_is_accepted() {
        let list: Vec<String> = DEFAULT_ALARM_ON.split(',').map(str::to_string).collect();
        JobSpec {
            alarm_on: Some(list),
            alarm_channels: Some(vec!["sms".into(), "email".into()]),
            ..spec()
        }
        .validate("UTC")
        .expect("the defaults are valid");
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(JobSpec, &str)> = vec![
            (
                JobSpec {
                    alarm_on: Some(vec!["failed".into(), "exploded".into()]),
                    ..spec()
                },
                "alarm_on",
            ),
            (
                JobSpec {
                    alarm_channels: Some(vec!["pager".into()]),
                    ..spec()
                },
                "alarm_channels",
            ),
            (
                JobSpec {
                    name: String::new(),
                    ..spec()
                },
                "name",
            ),
            (
                JobSpec {
                    name: "a b".into(),
                    ..spec()
                },
                "name",
            ),
            (
                JobSpec {
                    name: "42".into(),
                    ..spec()
                },
                "name",
            ),
            (
                JobSpec {
                    schedule: "nope".into(),
                    ..spec()
                },
                "schedule",
            ),
            (
                JobSpec {
                    timezone: Some("Nowhere/Town".into()),
                    ..spec()
                },
                "timezone",
            ),
            (
                JobSpec {
                    command: Some("  ".into()),
                    ..spec()
                },
                "command",
            ),
            (
                JobSpec {
                    command: None,
                    ..spec()
                },
                "command",
            ),
            (
                JobSpec {
                    timeout_secs: Some(0),
                    ..spec()
                },
                "timeout_secs",
            ),
        ];
        for (s, field) in cases {
            let err = s.validate("UTC").expect_err(field);
            assert_eq!(err.field, field, "{err}");
        }
    }

    #[test]
    fn states_round_trip() {
        for st in RunState::ALL {
            assert_eq!(RunState::parse(st.as_str()), Some(st));
        }
    }

    #[test]
    fn retry_delays_double_and_are_capped() {
        assert_eq!(retry_delay_ms(10, 1), 10_000);
        assert_eq!(retry_delay_ms(10, 2), 20_000);
        assert_eq!(retry_delay_ms(10, 4), 80_000);
        assert_eq!(retry_delay_ms(3600, 10), 86_400_000);
    }
}
