//! A job's settable fields, declared once. [`JobFields`] is at the same time the body of
//! `POST /api/v1/jobs` and `PATCH /api/v1/jobs/{job}` (serde) and the flags of `job add` and
//! `job edit` (clap): a new field is added here, in the stored [`Job`], in its migration and
//! where it is used — nowhere else.
//!
//! Every field is optional: absent keeps the current value (edit) or takes the default (add).
//! An empty string (or list) clears a field where clearing means something (`run_at`,
//! `http_url`, `admin_email`, ...); `timeout_secs = 0` (`--timeout none`) means no timeout.
//! Add and edit go through the same [`JobFields::apply`], so they accept and refuse exactly the
//! same things; the result is a [`ValidJob`], the only thing the store writes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::checks::{check, check_work, headers, Given};
use super::durations::{parse_duration_secs, parse_timeout};
use super::{AlarmKind, Channel, Fanout, FieldError, Job, Misfire, Overlap};

/// Bounds that match the store's columns and keep a typo from becoming a storm or a year-long
/// wait.
pub const MAX_NAME: usize = 128;
pub const MAX_SCHEDULE: usize = 255;
pub const MAX_RUN_AT: usize = 255;
pub const MAX_COMMAND: usize = 64 * 1024;
pub const MAX_HTTP_BODY: usize = 64 * 1024;
pub const MAX_HEADERS: usize = 64;
pub const MAX_ENV: usize = 64;
pub const MAX_ENV_VALUE: usize = 4096;
pub const MAX_RECIPIENTS: usize = 1024;
pub const MAX_DESCRIPTION: usize = 4096;
pub const MAX_TIMEOUT_SECS: i64 = 30 * 86_400;
pub const MAX_RETRIES: i64 = 100;
pub const MAX_BACKOFF_SECS: i64 = 86_400;
pub const MAX_MISFIRE_WINDOW_SECS: i64 = 7 * 86_400;
/// Linux's own ceiling of open files per process (`fs.nr_open`'s default).
pub const MAX_OPEN_FILES: i64 = 1_048_576;
/// A TiB of address space.
pub const MAX_ADDRESS_SPACE_MB: i64 = 1_048_576;

/// Defaults of a new job, in one place.
pub const MAX_GROUP: usize = 64;

pub const DEFAULT_GROUP: &str = "default";
pub const DEFAULT_HTTP_METHOD: &str = "GET";
pub const DEFAULT_RETRY_BACKOFF_SECS: i64 = 10;
pub const DEFAULT_MISFIRE_WINDOW_SECS: i64 = 3600;
/// `--requires` without `--within`: a day.
pub const DEFAULT_WITHIN_SECS: i64 = 86_400;
pub const MAX_WITHIN_SECS: i64 = 31 * 86_400;
/// Default `alarm_on`.
pub const DEFAULT_ALARM_ON: &[AlarmKind] = &[
    AlarmKind::Failed,
    AlarmKind::TimedOut,
    AlarmKind::Lost,
    AlarmKind::Missed,
    AlarmKind::Recovered,
];

/// One `Name: value` header of an HTTP job, as typed on the command line; on the wire the
/// headers are a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderLine(pub String);

impl std::str::FromStr for HeaderLine {
    type Err = String;
    fn from_str(s: &str) -> Result<HeaderLine, String> {
        if !s.trim().is_empty() && !s.contains(':') {
            return Err(format!("`{s}`: expected \"Name: value\""));
        }
        Ok(HeaderLine(s.to_string()))
    }
}

impl HeaderLine {
    pub(super) fn split(&self) -> Option<(&str, &str)> {
        self.0.split_once(':').map(|(k, v)| (k.trim(), v.trim()))
    }
}

/// Serde for `Option<Vec<HeaderLine>>` as `{"Name": "value", ...}`.
/// `NAME=VALUE`, as `--env` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvLine(pub String);

impl std::str::FromStr for EnvLine {
    type Err = String;
    fn from_str(s: &str) -> Result<EnvLine, String> {
        if !s.trim().is_empty() && !s.contains('=') {
            return Err(format!("`{s}`: expected NAME=VALUE"));
        }
        Ok(EnvLine(s.to_string()))
    }
}

mod env_map {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<EnvLine>>, s: S) -> Result<S::Ok, S::Error> {
        let map: Option<BTreeMap<&str, &str>> = v
            .as_ref()
            .map(|lines| lines.iter().filter_map(|l| l.0.split_once('=')).collect());
        map.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<EnvLine>>, D::Error> {
        let map: Option<BTreeMap<String, String>> = Option::deserialize(d)?;
        Ok(map.map(|m| {
            m.into_iter()
                .map(|(k, v)| EnvLine(format!("{k}={v}")))
                .collect()
        }))
    }
}

/// `JOB[:success|failure|end]`, one item of `--after` (empty: none, to clear them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterLine(pub String);

impl std::str::FromStr for AfterLine {
    type Err = String;
    fn from_str(s: &str) -> Result<AfterLine, String> {
        if !s.trim().is_empty() {
            s.parse::<super::Edge>()?;
        }
        Ok(AfterLine(s.to_string()))
    }
}

/// Serde for `Option<Vec<AfterLine>>` as `[{"job": "load", "on": "success"}, ...]`.
mod after_list {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<AfterLine>>, s: S) -> Result<S::Ok, S::Error> {
        let edges: Option<Vec<super::super::Edge>> = v
            .as_ref()
            .map(|lines| lines.iter().filter_map(|l| l.0.parse().ok()).collect());
        edges.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<AfterLine>>, D::Error> {
        let edges: Option<Vec<super::super::Edge>> = Option::deserialize(d)?;
        Ok(edges.map(|e| e.iter().map(|e| AfterLine(e.to_string())).collect()))
    }
}

mod header_map {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<HeaderLine>>, s: S) -> Result<S::Ok, S::Error> {
        let map: Option<BTreeMap<&str, &str>> = v
            .as_ref()
            .map(|lines| lines.iter().filter_map(HeaderLine::split).collect());
        map.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<HeaderLine>>, D::Error> {
        let map: Option<BTreeMap<String, String>> = Option::deserialize(d)?;
        Ok(map.map(|m| {
            m.into_iter()
                .map(|(k, v)| HeaderLine(format!("{k}: {v}")))
                .collect()
        }))
    }
}

/// Every field a user sets on a job. See the module doc for absent / empty.
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct JobFields {
    /// Job name: letters, digits, `-`, `_` and `.`; unique whatever the case. On `job edit`,
    /// renames the job.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The group the job belongs to (who may see and change it); default `default`.
    #[arg(long, value_name = "GROUP")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Cron rule: 5 fields, 6 with seconds first, a macro such as @hourly, or an interval
    /// such as `@every 90s`.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Run after other jobs instead of on a schedule, comma-separated
    /// `JOB[:success|failure|end]` (default `success`): once per flow of their root, when each
    /// ended as its edge asks ("" for none: give a --schedule then).
    #[arg(long, value_delimiter = ',', value_name = "JOB[:ON],...")]
    #[serde(default, skip_serializing_if = "Option::is_none", with = "after_list")]
    #[schema(value_type = Option<Vec<super::Edge>>)]
    pub after: Option<Vec<AfterLine>>,
    /// A job that must have succeeded within --within before each instant of this one, or
    /// the instant is recorded `skipped` with the reason ("" for none).
    #[arg(long, value_name = "JOB")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<String>,
    /// With --requires: how long before the instant its success counts (default 24h).
    #[arg(long = "within", value_name = "DURATION", value_parser = parse_duration_secs)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_secs: Option<i64>,
    /// A parameter of its runs, `NAME=DEFAULT` or `NAME` (required): a run sees
    /// `CRONVISOR_PARAM_<NAME>`; `job run --param NAME=VALUE` gives one (repeatable; replaces
    /// them all; "" for none).
    #[arg(long = "param", value_name = "NAME[=DEFAULT]")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<String>>,
    /// The only values a parameter may take, `NAME=a|b|c` (repeatable).
    #[arg(long = "param-choices", value_name = "NAME=A|B")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_choices: Option<Vec<String>>,
    /// A parameter whose values are shown `***` (repeatable).
    #[arg(long = "secret-param", value_name = "NAME")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_params: Option<Vec<String>>,
    /// Calendars that filter its instants, comma-separated (shipped: cn-workdays, cn-holidays,
    /// us-holidays, de-holidays, gb-holidays, fr-holidays, jp-holidays; `cronvisor calendar
    /// list`); "" for none.
    #[arg(long = "calendar", value_delimiter = ',', value_name = "NAME,...")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendars: Option<Vec<String>>,
    /// How its calendars filter its instants: `skip` their days (default), `only` their days,
    /// or `next-workday`: an instant on a day off moves to the next day that is not.
    #[arg(long = "calendar-mode", value_name = "MODE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar_mode: Option<super::CalendarMode>,
    /// SLA: alarm `late` when a run has not started this long after its instant (90s, 5m;
    /// 0: none).
    #[arg(long = "late-after", value_name = "DURATION", value_parser = parse_timeout)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_after_secs: Option<i64>,
    /// SLA: alarm `overdue` when an instant has not ended successfully by then — this long
    /// after it (30m, 2h) or at this time of day in the job's zone (09:30: that day's, or the
    /// next day's for an instant past it); for the root of a flow, the whole flow ("" or 0:
    /// none).
    #[arg(long = "deadline", value_name = "DURATION|HH:MM")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// Alarms from its learned usual duration: `both` (default) raises `slow` for a run going
    /// far longer than usual and `short` for a success far shorter, `slow` or `short` one of
    /// them, `off` none; `:K` sets how far (in spreads past the usual band, default 3).
    #[arg(long = "duration-alarm", value_name = "both|slow|short|off[:K]")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_alarm: Option<String>,
    /// IANA time zone of the rule (`UTC`, `Europe/Paris`); default: the config's `timezone`.
    #[arg(long = "tz", value_name = "ZONE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Shell command, run with `sh -c` (a job runs a command or an HTTP call, not both).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Maximum runtime (90, 90s, 5m, 2h, 1d; at most 30d); `none` or 0: no limit (default).
    #[arg(long = "timeout", value_name = "DURATION", value_parser = parse_timeout)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<i64>,
    /// Machine group or host to run on; "" for any executor (default).
    #[arg(long, value_name = "GROUP|HOST")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<String>,
    /// With --run-at (or none: every executor): one run per instant on one executor, picked
    /// round-robin (default), or `all`: one run on every live executor of the target.
    #[arg(long, value_enum)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fanout: Option<Fanout>,
    /// URL of an HTTP job (http:// or https://), instead of --command; "" turns an HTTP job
    /// back into a command job (with --command).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_url: Option<String>,
    /// HTTP job method (default GET).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_method: Option<String>,
    /// Environment variables of the job's process (repeatable `--env NAME=VALUE`; in JSON an
    /// object). Shown as `***`; a value `***` keeps the current one.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    #[serde(default, skip_serializing_if = "Option::is_none", with = "env_map")]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub env: Option<Vec<EnvLine>>,
    /// HTTP job header, "Name: value" (repeatable; replaces all headers; "" for none).
    #[arg(long = "http-header", value_name = "NAME: VALUE")]
    #[serde(default, skip_serializing_if = "Option::is_none", with = "header_map")]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub http_headers: Option<Vec<HeaderLine>>,
    /// HTTP job request body ("" for none).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_body: Option<String>,
    /// HTTP status that means success (100-599; 0: any 2xx, the default).
    #[arg(long = "http-expect", value_name = "STATUS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_expect_status: Option<i64>,
    /// When an instant comes while the previous run is still going: allow (default), forbid
    /// (record it skipped) or replace (kill the running one).
    #[arg(long, value_enum)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<Overlap>,
    /// Attempts after a failure or timeout (0-100; default 0).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    /// First retry delay (30s, 5m; doubles per attempt, capped at a day; default 10s).
    #[arg(long = "retry-backoff", value_name = "DURATION", value_parser = parse_duration_secs)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff_secs: Option<i64>,
    /// After downtime: skip missed instants (default) or run_once for the latest.
    #[arg(long, value_enum)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misfire: Option<Misfire>,
    /// How far back run_once looks (at most 7d; default 1h).
    #[arg(long = "misfire-window", value_name = "DURATION", value_parser = parse_duration_secs)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misfire_window_secs: Option<i64>,
    /// Outcomes that raise an alarm, comma-separated: failed, timed_out, killed, lost, skipped,
    /// missed, recovered (default failed,timed_out,lost,missed,recovered; "" for none).
    #[arg(long, value_delimiter = ',', value_name = "OUTCOMES")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_on: Option<Vec<String>>,
    /// Channels of this job's alarms, comma-separated: webhook, sms, email (default: every
    /// configured one; "" for all again).
    #[arg(long, value_delimiter = ',', value_name = "CHANNELS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_channels: Option<Vec<String>>,
    /// The user the job runs as on a root executor, one of its `executor.allowed_users` ("" for
    /// the executor's `run_as`).
    #[arg(long = "run-as", value_name = "USER")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
    /// What the job is for, in words (shown in `job show` and the console; "" for none).
    #[arg(long, value_name = "TEXT")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Most files the job's process may have open (`ulimit -n`; 0 for the executor's own).
    #[arg(long = "max-open-files", value_name = "N")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_open_files: Option<i64>,
    /// Address space of the job's process in MiB (`ulimit -v`: allocations past it fail; 0 for
    /// none).
    #[arg(long = "max-address-space-mb", value_name = "MIB")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_address_space_mb: Option<i64>,
    /// CPU time of the job's process (`ulimit -t`, e.g. 10m: then SIGXCPU; 0 for none).
    #[arg(long = "max-cpu", value_name = "DURATION", value_parser = parse_duration_secs)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cpu_secs: Option<i64>,
    /// Extra alarm e-mail recipients of this job, comma-separated ("" for none).
    #[arg(long, value_name = "ADDRESSES")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_email: Option<String>,
    /// Extra alarm SMS recipients of this job, comma-separated ("" for none).
    #[arg(long, value_name = "NUMBERS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_mobile: Option<String>,
    /// Paused: not fired on schedule (it can still be run by hand). `job add --paused`;
    /// `job pause` / `job resume` change it.
    #[arg(skip)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// A job whose every field was checked: the only thing the store writes.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidJob(Job);

impl ValidJob {
    pub fn job(&self) -> &Job {
        &self.0
    }
}

impl std::ops::Deref for ValidJob {
    type Target = Job;
    fn deref(&self) -> &Job {
        &self.0
    }
}

/// A new job with the model's defaults (not yet valid: no name, rule or work).
fn blank(default_tz: &str) -> Job {
    Job {
        id: 0,
        name: String::new(),
        group: DEFAULT_GROUP.to_string(),
        schedule: String::new(),
        timezone: default_tz.to_string(),
        command: None,
        http_url: None,
        http_method: DEFAULT_HTTP_METHOD.to_string(),
        http_headers: BTreeMap::new(),
        env: BTreeMap::new(),
        http_body: None,
        http_expect_status: 0,
        timeout_secs: None,
        run_at: None,
        fanout: Fanout::default(),
        paused: false,
        overlap: Overlap::default(),
        retries: 0,
        retry_backoff_secs: DEFAULT_RETRY_BACKOFF_SECS,
        misfire: Misfire::default(),
        misfire_window_secs: DEFAULT_MISFIRE_WINDOW_SECS,
        alarm_on: DEFAULT_ALARM_ON.to_vec(),
        alarm_channels: Vec::new(),
        run_as: None,
        description: None,
        limits: super::Limits::default(),
        admin_email: None,
        admin_mobile: None,
        after: Vec::new(),
        requires: None,
        within_secs: None,
        calendars: Vec::new(),
        calendar_mode: super::CalendarMode::default(),
        late_after_secs: None,
        deadline: None,
        duration_alarm: Default::default(),
        params: Vec::new(),
        created_at: 0,
        updated_at: 0,
    }
}

/// "" (or only spaces) means "cleared".
fn non_empty(s: String) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

impl JobFields {
    /// A new job from these fields over the model's defaults; `name`, `schedule` and a
    /// command or an HTTP URL are required.
    pub fn create(self, default_tz: &str) -> Result<ValidJob, FieldError> {
        if self.name.is_none() {
            return Err(FieldError::new("name", "is required"));
        }
        let after = self
            .after
            .as_ref()
            .is_some_and(|a| a.iter().any(|l| !l.0.trim().is_empty()));
        if self.schedule.is_none() && !after {
            return Err(FieldError::new(
                "schedule",
                "is required (or `after` for a job that runs after others)",
            ));
        }
        if self.command.is_none() && self.http_url.is_none() {
            return Err(FieldError::new(
                "command",
                "is required (or `http_url` for an HTTP job)",
            ));
        }
        self.apply(blank(default_tz))
    }

    /// `job` with these fields changed, checked as a whole.
    pub fn apply(self, job: Job) -> Result<ValidJob, FieldError> {
        let was_http = job.http_url.is_some();
        let given = Given::of(&self);
        let mut job = job;
        self.assign(&mut job)?;
        if let Ok(tz) = crate::schedule::parse_timezone(&job.timezone) {
            job.timezone = tz.name().to_string();
        }
        check_work(&mut job, &given, was_http)?;
        check(&job)?;
        Ok(ValidJob(job))
    }

    /// Copies the given fields into `job`, parsing what has a typed form.
    fn assign(self, job: &mut Job) -> Result<(), FieldError> {
        if let Some(v) = self.name {
            job.name = v.trim().to_string();
        }
        if let Some(v) = self.group {
            job.group = v.trim().to_string();
        }
        assign_after(self.after.as_deref(), self.schedule.as_deref(), job)?;
        if let Some(v) = self.schedule {
            job.schedule = v.trim().to_string();
        }
        assign_requires(self.requires, self.within_secs, job);
        assign_params(self.params, self.param_choices, self.secret_params, job)?;
        assign_calendars(self.calendars, self.calendar_mode, job);
        assign_sla(
            self.late_after_secs,
            self.deadline.as_deref(),
            self.duration_alarm.as_deref(),
            job,
        )?;
        if let Some(v) = self.timezone {
            job.timezone = v.trim().to_string();
        }
        if let Some(v) = self.command {
            job.command = (!v.trim().is_empty()).then_some(v);
        }
        if let Some(v) = self.timeout_secs {
            job.timeout_secs = (v != 0).then_some(v);
        }
        if let Some(v) = self.run_at {
            job.run_at = non_empty(v);
        }
        if let Some(v) = self.fanout {
            job.fanout = v;
        }
        if let Some(v) = self.http_url {
            job.http_url = non_empty(v);
        }
        if let Some(v) = self.http_method {
            job.http_method = v.trim().to_ascii_uppercase();
        }
        if let Some(lines) = self.http_headers {
            job.http_headers = headers(&lines, &job.http_headers)?;
        }
        if let Some(lines) = self.env {
            job.env = super::checks::env(&lines, &job.env)?;
        }
        if let Some(v) = self.http_body {
            job.http_body = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = self.http_expect_status {
            job.http_expect_status = v;
        }
        if let Some(v) = self.overlap {
            job.overlap = v;
        }
        if let Some(v) = self.retries {
            job.retries = v;
        }
        if let Some(v) = self.retry_backoff_secs {
            job.retry_backoff_secs = v;
        }
        if let Some(v) = self.misfire {
            job.misfire = v;
        }
        if let Some(v) = self.misfire_window_secs {
            job.misfire_window_secs = v;
        }
        if let Some(v) = self.alarm_on {
            job.alarm_on = AlarmKind::parse_list(&v).map_err(|m| FieldError::new("alarm_on", m))?;
        }
        if let Some(v) = self.alarm_channels {
            job.alarm_channels =
                Channel::parse_list(&v).map_err(|m| FieldError::new("alarm_channels", m))?;
        }
        if let Some(v) = self.run_as {
            job.run_as = non_empty(v);
        }
        if let Some(v) = self.description {
            job.description = non_empty(v);
        }
        assign_limits(
            [
                self.max_open_files,
                self.max_address_space_mb,
                self.max_cpu_secs,
            ],
            &mut job.limits,
        );
        if let Some(v) = self.admin_email {
            job.admin_email = non_empty(v);
        }
        if let Some(v) = self.admin_mobile {
            job.admin_mobile = non_empty(v);
        }
        if let Some(v) = self.paused {
            job.paused = v;
        }
        Ok(())
    }
}

/// `--max-open-files`, `--max-address-space-mb`, `--max-cpu` given: 0 unsets a limit, as ""
/// unsets a text.
fn assign_limits(given: [Option<i64>; 3], limits: &mut super::Limits) {
    let [files, address, cpu] = given;
    for (field, value) in [
        (&mut limits.max_open_files, files),
        (&mut limits.max_address_space_mb, address),
        (&mut limits.max_cpu_secs, cpu),
    ] {
        if let Some(v) = value {
            *field = (v != 0).then_some(v);
        }
    }
}

/// `after` given: its edges replace the job's, and its rule goes (a job with edges has none);
/// cleared, a rule must come with it. Not given: a rule may not be given to a job with edges.
mod relations;
use relations::{assign_after, assign_calendars, assign_params, assign_requires, assign_sla};

#[cfg(test)]
mod tests;
