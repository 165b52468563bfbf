//! The job and run records, the enums they are made of, and the dispatcher <-> executor
//! messages. What a user submits, and its validation, is in [`fields`].

pub mod access;
pub mod backfill;
pub mod calendar;
mod calendar_ics;
mod checks;
pub mod durations;
pub mod fields;
pub mod flows;
mod kinds;
pub mod params;
pub mod usual;
pub mod window;
pub mod work;

pub use checks::{
    check_emails, check_mobiles, check_url, masked_url, secret_header, validate_name,
    without_password, MASK,
};
pub use fields::{EnvLine, JobFields, ValidJob, DEFAULT_ALARM_ON};
pub use flows::{Edge, Graph};
pub use kinds::{
    join, AlarmKind, CalendarKind, CalendarMode, Channel, EdgeOn, Fanout, Misfire, Overlap,
    RunState, Trigger,
};

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch: the one time unit of the store and the wire.
pub type Millis = i64;

/// Now, in [`Millis`] (the supervisor's clock reading, shared by every crate).
pub use cronvisor_supervisor::status::now_millis;

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    pub id: i64,
    pub name: String,
    /// Who may see and change it: users and tokens limited to groups see only theirs.
    pub group: String,
    pub schedule: String,
    pub timezone: String,
    pub command: Option<String>,
    pub http_url: Option<String>,
    /// HTTP jobs: method (default GET), headers, body, and the status that means success
    /// (0: any 2xx).
    pub http_method: String,
    /// Serialized with secret values (`Authorization`, `*token*`, `*key*`, ...) masked.
    #[serde(serialize_with = "masked_secret_headers", default)]
    pub http_headers: std::collections::BTreeMap<String, String>,
    pub http_body: Option<String>,
    pub http_expect_status: i64,
    /// Environment variables of the job's process, besides the clean base the executor sets.
    /// Secrets to people: serialized with every value masked.
    #[serde(serialize_with = "masked_values", default)]
    pub env: std::collections::BTreeMap<String, String>,
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
    /// Outcomes that raise an alarm.
    pub alarm_on: Vec<AlarmKind>,
    /// Channels this job's alarms use; empty: every configured one.
    pub alarm_channels: Vec<Channel>,
    /// The user it runs as on a root executor (one of `executor.allowed_users`).
    pub run_as: Option<String>,
    /// What the job is for, in words.
    pub description: Option<String>,
    /// Resource limits of its process (commands only).
    #[serde(flatten)]
    pub limits: Limits,
    /// Extra recipients of this job's alarms (the original's admin_email / admin_mobile).
    pub admin_email: Option<String>,
    pub admin_mobile: Option<String>,
    /// The jobs it runs after (then it has no schedule): once per flow of their root.
    #[serde(default)]
    pub after: Vec<Edge>,
    /// A job that must have succeeded within `within_secs` before each scheduled instant, or
    /// the instant is recorded `skipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_secs: Option<i64>,
    /// Declared parameters (a run sees `CRONVISOR_PARAM_<NAME>`); secret defaults shown `***`.
    #[serde(default, serialize_with = "masked_params")]
    pub params: Vec<params::Param>,
    /// Calendars that filter its rule's instants, as `calendar_mode` says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calendars: Vec<String>,
    #[serde(default)]
    pub calendar_mode: CalendarMode,
    /// SLA: a run not started this long after its instant raises `late`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_after_secs: Option<i64>,
    /// SLA: an instant not ended successfully by then (a span after it, or a time of day in
    /// the job's zone; a flow's root: the whole flow) raises `overdue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub deadline: Option<durations::Deadline>,
    /// Which alarms its learned usual duration raises (`slow`, `short`), and how far from
    /// the band (`model::usual`).
    #[serde(default)]
    #[schema(value_type = String)]
    pub duration_alarm: usual::DurationAlarm,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl Job {
    /// Its calendars as a filter of its rule's instants, if it has some.
    pub fn day_filter(&self) -> Option<crate::schedule::days::DayFilter> {
        (!self.calendars.is_empty()).then(|| crate::schedule::days::DayFilter {
            mode: self.calendar_mode,
            names: self.calendars.clone(),
        })
    }

    /// Its rule as stored, its calendars with it: what its instants are computed from.
    pub fn timetable(&self) -> Result<crate::schedule::Schedule, crate::schedule::ScheduleError> {
        crate::schedule::Schedule::parse_stored(&self.schedule, &self.timezone)
            .map(|s| s.with_days(self.day_filter()))
    }

    /// The job as a reader (a viewer) may see it: an HTTP job's URL without its query or
    /// credentials and its body hidden — either may hold a key, and only those who may change
    /// the job need them.
    pub fn for_reader(mut self) -> Job {
        self.http_url = self.http_url.as_deref().map(checks::masked_url);
        if self.http_body.is_some() {
            self.http_body = Some(checks::MASK.to_string());
        }
        self
    }
}

/// A job's resource limits (`setrlimit` on its shell before exec), as cron operators know them
/// from `ulimit`; unset means the executor's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Limits {
    /// Open files (`ulimit -n`, RLIMIT_NOFILE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_open_files: Option<i64>,
    /// Address space in MiB (`ulimit -v`, RLIMIT_AS): allocations past it fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_address_space_mb: Option<i64>,
    /// CPU seconds (`ulimit -t`, RLIMIT_CPU): past it the process gets SIGXCPU, and SIGKILL
    /// five seconds of CPU later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cpu_secs: Option<i64>,
}

impl Limits {
    pub fn is_none(&self) -> bool {
        *self == Limits::default()
    }
}

fn masked_params<S: serde::Serializer>(v: &[params::Param], s: S) -> Result<S::Ok, S::Error> {
    params::masked(v).serialize(s)
}

/// Serializes a map with every value shown as `***`.
fn masked_recipient<S: serde::Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&checks::masked_url(v))
}

fn default_group() -> String {
    "default".into()
}

fn utc() -> String {
    "UTC".into()
}

/// Serializes headers with the values of secret ones shown as `***`.
fn masked_secret_headers<S: serde::Serializer>(
    map: &std::collections::BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(map.len()))?;
    for (k, v) in map {
        if checks::secret_header(k) {
            m.serialize_entry(k, checks::MASK)?;
        } else {
            m.serialize_entry(k, v)?;
        }
    }
    m.end()
}

fn masked_values<S: serde::Serializer>(
    map: &std::collections::BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(map.len()))?;
    for k in map.keys() {
        m.serialize_entry(k, checks::MASK)?;
    }
    m.end()
}

/// A bound of a time range, as typed by a person or put in a URL: an RFC 3339 instant
/// (`2026-12-01T09:00:00Z`), milliseconds since the epoch, or a span back from `now` (`90s`,
/// `15m`, `1h`, `7d`).
pub fn parse_time_bound(s: &str, now: Millis) -> Result<Millis, String> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    match durations::parse_duration_secs(s) {
        Ok(secs) => Ok(now.saturating_sub(secs.saturating_mul(1000))),
        Err(_) => Err(format!(
            "`{s}` is neither a span back from now (90s, 15m, 1h, 7d) nor an RFC 3339 time \
             (2026-12-01T09:00:00Z)"
        )),
    }
}

/// An instant a run is "as of" (`job run --instant`): RFC 3339 (`2026-12-06T02:00:00Z`), or a
/// local time `2026-12-06 02:00[:00]` (or with a `T`) in the job's zone `tz`.
pub fn parse_instant(s: &str, tz: &str) -> Result<Millis, String> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let zone = crate::schedule::parse_timezone(tz).map_err(|e| e.to_string())?;
    let local = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
    .ok_or_else(|| {
        format!(
            "`{s}` is neither an RFC 3339 time (2026-12-06T02:00:00Z) nor a local time \
                 (2026-12-06 02:00) in the job's zone"
        )
    })?;
    use chrono::TimeZone;
    match zone.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => Ok(t.timestamp_millis()),
        chrono::LocalResult::Ambiguous(a, b) => Err(format!(
            "`{s}` happens twice in {tz} (clocks go back): give it with its offset, {} or {}",
            a.to_rfc3339(),
            b.to_rfc3339()
        )),
        chrono::LocalResult::None => Err(format!(
            "`{s}` does not exist in {tz} (clocks go forward then)"
        )),
    }
}

/// A job as the API shows it: the stored job, when it fires next, and how its last run went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobView {
    #[serde(flatten)]
    pub job: Job,
    /// The next scheduled instant (also shown for a paused job: when it would fire).
    pub next_fire: Option<Millis>,
    pub last_run: Option<LastRun>,
    /// Its usual duration learned from its recent successes (one job's view only; none
    /// before 10 successes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usual: Option<usual::Usual>,
}

/// The newest run of a job, in short.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LastRun {
    pub id: i64,
    pub state: RunState,
    pub instant: Millis,
    pub ended_at: Option<Millis>,
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

/// A run as stored. `stdout`/`stderr` are only filled by `run show`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Run {
    pub id: i64,
    pub job_id: i64,
    pub job_name: String,
    /// Its job's group.
    #[serde(default)]
    pub job_group: String,
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
    /// In a flow: the root job (0 for a run that no upstream released).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub flow_root: i64,
    /// In a flow: the flow's first run (the root's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_run: Option<i64>,
    /// In a flow: how many times it was rerun when this run was released.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub flow_round: i64,
    /// The runs that released it, `name=id,...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_runs: Option<String>,
    /// The run of the same node this one replaces (`flow rerun`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<i64>,
    /// The parameters it ran with (secret ones `***`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<std::collections::BTreeMap<String, String>>,
    /// The backfill it is an instant of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<i64>,
    /// A `fanout = all` run's shard: its 0-based index among the instant's, and how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<(i64, i64)>,
}

fn one() -> i64 {
    1
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// An alarm and its delivery, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alarm {
    pub id: i64,
    pub job_id: i64,
    /// The run that raised it (the first, when several were merged).
    pub run_id: i64,
    /// failed, timed_out, killed, lost, skipped or recovered.
    pub kind: String,
    /// webhook, sms, or none (recorded only: no channel configured).
    pub channel: String,
    /// Serialized masked: a webhook's or robot's URL keeps no query (it may hold a key).
    #[serde(serialize_with = "masked_recipient")]
    pub recipient: String,
    /// pending, sending, sent, failed or recorded.
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// How many events were merged into this alarm.
    pub count: i64,
    #[schema(value_type = Object)]
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
    /// The job's IANA zone: the run's `TZ`.
    #[serde(default = "utc")]
    pub timezone: String,
    /// The job's own environment variables.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
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
    /// The job's own user (checked against the executor's `allowed_users`, and those of the
    /// job's group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
    /// The job's group (which of `allowed_users_by_group` applies).
    #[serde(default = "default_group")]
    pub group: String,
    /// The job's resource limits.
    #[serde(default, skip_serializing_if = "Limits::is_none")]
    pub limits: Limits,
    /// Its shard among the runs of its instant (`fanout = all`: a stable order of the executors
    /// chosen; else 0 of 1): `CRONVISOR_SHARD_INDEX`, `CRONVISOR_SHARD_TOTAL`.
    #[serde(default)]
    pub shard_index: i64,
    #[serde(default = "one")]
    pub shard_total: i64,
    /// Its parameters' values (`CRONVISOR_PARAM_<NAME>`), and the same with secret ones masked,
    /// which the executor records with the run's result.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub params: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_shown: Option<String>,
    /// In a flow: the flow's first run (`CRONVISOR_FLOW_RUN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_run: Option<i64>,
    /// In a flow: the runs that released this one, `name=id,...` (`CRONVISOR_UPSTREAM_RUNS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_runs: Option<String>,
    /// Its job's overlap policy: the executor fences a `forbid` run when it loses the store
    /// (`executor/fence.rs`).
    #[serde(default)]
    pub overlap: Overlap,
}

/// The request of an HTTP job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Runs not started because the store has them ended, started or deleted (a request that
    /// reached the executor late). Nothing to send again.
    #[serde(default)]
    pub not_started: Vec<i64>,
    /// The executor claimed the runs in the store itself (its claim names it): the dispatcher
    /// need not note who took them. False from an executor that does not claim.
    #[serde(default)]
    pub claimed: bool,
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

    #[test]
    fn retry_delays_double_and_are_capped() {
        assert_eq!(retry_delay_ms(10, 1), 10_000);
        assert_eq!(retry_delay_ms(10, 2), 20_000);
        assert_eq!(retry_delay_ms(10, 4), 80_000);
        assert_eq!(retry_delay_ms(3600, 10), 86_400_000);
    }
}
