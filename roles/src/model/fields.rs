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

use super::{Fanout, FieldError, Job, Misfire, Overlap, ALARM_CHANNELS, ALARM_KINDS};
use crate::schedule::{Schedule, ScheduleError};

/// Bounds that match the store's columns and keep a typo from becoming a storm or a year-long
/// wait.
pub const MAX_NAME: usize = 128;
pub const MAX_SCHEDULE: usize = 255;
pub const MAX_RUN_AT: usize = 255;
pub const MAX_COMMAND: usize = 64 * 1024;
pub const MAX_HTTP_BODY: usize = 64 * 1024;
pub const MAX_HEADERS: usize = 64;
pub const MAX_RECIPIENTS: usize = 1024;
pub const MAX_TIMEOUT_SECS: i64 = 30 * 86_400;
pub const MAX_RETRIES: i64 = 100;
pub const MAX_BACKOFF_SECS: i64 = 86_400;
pub const MAX_MISFIRE_WINDOW_SECS: i64 = 7 * 86_400;

/// Defaults of a new job, in one place.
pub const DEFAULT_HTTP_METHOD: &str = "GET";
pub const DEFAULT_RETRY_BACKOFF_SECS: i64 = 10;
pub const DEFAULT_MISFIRE_WINDOW_SECS: i64 = 3600;
/// Default `alarm_on`.
pub const DEFAULT_ALARM_ON: &str = "failed,timed_out,lost,missed,recovered";

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
    fn split(&self) -> Option<(&str, &str)> {
        self.0.split_once(':').map(|(k, v)| (k.trim(), v.trim()))
    }
}

/// Serde for `Option<Vec<HeaderLine>>` as `{"Name": "value", ...}`.
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct JobFields {
    /// Job name: letters, digits, `-`, `_` and `.`; unique whatever the case. On `job edit`,
    /// renames the job.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Cron rule: 5 fields, 6 with seconds first, a macro such as @hourly, or an interval
    /// such as `@every 90s`.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
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
    /// HTTP job header, "Name: value" (repeatable; replaces all headers; "" for none).
    #[arg(long = "http-header", value_name = "NAME: VALUE")]
    #[serde(default, skip_serializing_if = "Option::is_none", with = "header_map")]
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
        schedule: String::new(),
        timezone: default_tz.to_string(),
        command: None,
        http_url: None,
        http_method: DEFAULT_HTTP_METHOD.to_string(),
        http_headers: BTreeMap::new(),
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
        alarm_on: DEFAULT_ALARM_ON.split(',').map(str::to_string).collect(),
        alarm_channels: Vec::new(),
        admin_email: None,
        admin_mobile: None,
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
        if self.schedule.is_none() {
            return Err(FieldError::new("schedule", "is required"));
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
        if let Some(v) = self.schedule {
            job.schedule = v.trim().to_string();
        }
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
            job.http_headers = headers(&lines)?;
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
            job.alarm_on = v.into_iter().filter_map(non_empty).collect();
        }
        if let Some(v) = self.alarm_channels {
            job.alarm_channels = v.into_iter().filter_map(non_empty).collect();
        }
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

/// Which of the kind-specific fields a request gave (to name the right one in an error).
struct Given {
    command: bool,
    http_url: bool,
    /// The first HTTP-only field given with a value (not a clearing "").
    http_only: Option<&'static str>,
}

impl Given {
    fn of(f: &JobFields) -> Given {
        let http_only = [
            (
                "http_method",
                f.http_method.as_deref().is_some_and(|v| !v.is_empty()),
            ),
            (
                "http_headers",
                f.http_headers
                    .as_ref()
                    .is_some_and(|h| h.iter().any(|l| !l.0.trim().is_empty())),
            ),
            (
                "http_body",
                f.http_body.as_deref().is_some_and(|v| !v.is_empty()),
            ),
            (
                "http_expect_status",
                f.http_expect_status.is_some_and(|v| v != 0),
            ),
        ]
        .into_iter()
        .find(|(_, given)| *given)
        .map(|(name, _)| name);
        Given {
            command: f.command.as_deref().is_some_and(|c| !c.trim().is_empty()),
            http_url: f.http_url.as_deref().is_some_and(|u| !u.trim().is_empty()),
            http_only,
        }
    }
}

/// A job runs a command or makes an HTTP call: exactly one, and HTTP settings only on an
/// HTTP job. A command job keeps no leftover HTTP settings.
fn check_work(job: &mut Job, given: &Given, was_http: bool) -> Result<(), FieldError> {
    match (&job.command, &job.http_url) {
        (Some(_), Some(_)) => {
            let (field, hint) = match (given.command, given.http_url) {
                (true, false) if was_http => (
                    "command",
                    "this is an HTTP job: clear `http_url` (--http-url \"\") to make it run a command",
                ),
                (false, true) => (
                    "http_url",
                    "this job runs a command: clear `command` (--command \"\") to make it an HTTP job",
                ),
                _ => ("command", "give either `command` or `http_url`, not both"),
            };
            Err(FieldError::new(field, hint))
        }
        (None, None) => Err(FieldError::new(
            if was_http { "http_url" } else { "command" },
            "must not be empty (a job runs a command or calls an http_url)",
        )),
        (Some(_), None) => {
            if let Some(field) = given.http_only {
                return Err(FieldError::new(
                    field,
                    "only applies to an HTTP job (this job runs a command)",
                ));
            }
            job.http_method = DEFAULT_HTTP_METHOD.to_string();
            job.http_headers.clear();
            job.http_body = None;
            job.http_expect_status = 0;
            Ok(())
        }
        (None, Some(_)) => Ok(()),
    }
}

fn range(field: &str, v: i64, min: i64, max: i64) -> Result<(), FieldError> {
    if v < min || v > max {
        return Err(FieldError::new(
            field,
            format!("{v} is out of range {min}-{max}"),
        ));
    }
    Ok(())
}

/// A bound on seconds, said in the units people use (`must be between 1s and 30d`).
fn range_secs(field: &str, v: i64, min: i64, max: i64) -> Result<(), FieldError> {
    if v < min || v > max {
        return Err(FieldError::new(
            field,
            format!(
                "must be between {} and {} (got {})",
                secs_text(min),
                secs_text(max),
                secs_text(v)
            ),
        ));
    }
    Ok(())
}

/// Seconds in the largest unit that divides them: `30d`, `90m`, `45s`.
pub fn secs_text(v: i64) -> String {
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if v != 0 && v % n == 0 {
            return format!("{}{unit}", v / n);
        }
    }
    format!("{v}s")
}

fn max_len(field: &str, v: &str, max: usize) -> Result<(), FieldError> {
    if v.len() > max {
        return Err(FieldError::new(field, format!("longer than {max} bytes")));
    }
    if v.contains('\0') {
        return Err(FieldError::new(field, "must not contain a NUL byte"));
    }
    Ok(())
}

/// Every field of a complete job.
fn check(job: &Job) -> Result<(), FieldError> {
    validate_name(&job.name)?;
    max_len("schedule", &job.schedule, MAX_SCHEDULE)?;
    Schedule::parse(&job.schedule, &job.timezone).map_err(|e| match e {
        ScheduleError::TimeZone(_) => FieldError::new("timezone", e.to_string()),
        e => FieldError::new("schedule", e.to_string()),
    })?;
    if let Some(c) = &job.command {
        max_len("command", c, MAX_COMMAND)?;
    }
    if let Some(url) = &job.http_url {
        crate::http::client::check_url(url)
            .map_err(|reason| FieldError::new("http_url", reason))?;
        if job.http_method.parse::<hyper::Method>().is_err() || job.http_method.is_empty() {
            return Err(FieldError::new(
                "http_method",
                format!("`{}` is not an HTTP method", job.http_method),
            ));
        }
        if job.http_expect_status != 0 {
            range("http_expect_status", job.http_expect_status, 100, 599)?;
        }
    }
    if let Some(b) = &job.http_body {
        max_len("http_body", b, MAX_HTTP_BODY)?;
    }
    if let Some(t) = job.timeout_secs {
        range_secs("timeout_secs", t, 1, MAX_TIMEOUT_SECS)?;
    }
    if let Some(r) = &job.run_at {
        max_len("run_at", r, MAX_RUN_AT)?;
    }
    range("retries", job.retries, 0, MAX_RETRIES)?;
    range_secs(
        "retry_backoff_secs",
        job.retry_backoff_secs,
        1,
        MAX_BACKOFF_SECS,
    )?;
    range_secs(
        "misfire_window_secs",
        job.misfire_window_secs,
        1,
        MAX_MISFIRE_WINDOW_SECS,
    )?;
    one_of("alarm_on", "outcome", &job.alarm_on, &ALARM_KINDS)?;
    one_of(
        "alarm_channels",
        "channel",
        &job.alarm_channels,
        &ALARM_CHANNELS,
    )?;
    for (field, v) in [
        ("admin_email", &job.admin_email),
        ("admin_mobile", &job.admin_mobile),
    ] {
        if let Some(v) = v {
            max_len(field, v, MAX_RECIPIENTS)?;
        }
    }
    Ok(())
}

fn headers(lines: &[HeaderLine]) -> Result<BTreeMap<String, String>, FieldError> {
    let mut out = BTreeMap::new();
    for line in lines.iter().filter(|l| !l.0.trim().is_empty()) {
        let Some((k, v)) = line.split() else {
            return Err(FieldError::new(
                "http_headers",
                format!("`{}`: expected \"Name: value\"", line.0),
            ));
        };
        if k.parse::<hyper::header::HeaderName>().is_err()
            || v.parse::<hyper::header::HeaderValue>().is_err()
        {
            return Err(FieldError::new(
                "http_headers",
                format!("invalid header `{k}`"),
            ));
        }
        out.insert(k.to_string(), v.to_string());
    }
    if out.len() > MAX_HEADERS {
        return Err(FieldError::new(
            "http_headers",
            format!("more than {MAX_HEADERS} headers"),
        ));
    }
    Ok(out)
}

fn one_of(field: &str, what: &str, list: &[String], allowed: &[&str]) -> Result<(), FieldError> {
    match list.iter().find(|v| !allowed.contains(&v.as_str())) {
        Some(v) => Err(FieldError::new(
            field,
            format!("unknown {what} `{v}` (one of {})", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

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

/// "90", "90s", "5m", "2h", "1d" -> seconds (positive).
pub fn parse_duration_secs(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (examples: 90, 90s, 5m, 2h, 1d)"))?;
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

/// A timeout: a duration, or `none` / `0` for no limit (sent as 0).
pub fn parse_timeout(s: &str) -> Result<i64, String> {
    match s.trim() {
        "none" | "0" => Ok(0),
        other => parse_duration_secs(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> JobFields {
        JobFields {
            name: Some("hello".into()),
            schedule: Some("* * * * *".into()),
            command: Some("echo hi".into()),
            ..JobFields::default()
        }
    }

    fn http_job() -> Job {
        JobFields {
            command: None,
            http_url: Some("http://127.0.0.1:1/x".into()),
            http_method: Some("post".into()),
            ..fields()
        }
        .create("UTC")
        .expect("http job")
        .job()
        .clone()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("90"), Ok(90));
        assert_eq!(parse_duration_secs("5m"), Ok(300));
        assert_eq!(parse_duration_secs("2h"), Ok(7200));
        assert!(parse_duration_secs("0").is_err());
        assert!(parse_duration_secs("5x").is_err());
        assert!(parse_duration_secs("abc").is_err());
        assert_eq!(parse_timeout("none"), Ok(0));
        assert_eq!(parse_timeout("30s"), Ok(30));
    }

    #[test]
    fn a_new_job_gets_the_model_defaults_and_the_default_zone() {
        let j = fields().create("Europe/Paris").expect("valid");
        assert_eq!(j.timezone, "Europe/Paris");
        assert_eq!(j.http_method, "GET");
        assert_eq!(j.retry_backoff_secs, 10);
        assert_eq!(j.misfire_window_secs, 3600);
        assert_eq!(j.alarm_on.join(","), DEFAULT_ALARM_ON);
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(JobFields, &str)> = vec![
            (
                JobFields {
                    alarm_on: Some(vec!["failed".into(), "exploded".into()]),
                    ..fields()
                },
                "alarm_on",
            ),
            (
                JobFields {
                    alarm_channels: Some(vec!["pager".into()]),
                    ..fields()
                },
                "alarm_channels",
            ),
            (
                JobFields {
                    name: Some(String::new()),
                    ..fields()
                },
                "name",
            ),
            (
                JobFields {
                    name: Some("a b".into()),
                    ..fields()
                },
                "name",
            ),
            (
                JobFields {
                    name: Some("42".into()),
                    ..fields()
                },
                "name",
            ),
            (
                JobFields {
                    name: None,
                    ..fields()
                },
                "name",
            ),
            (
                JobFields {
                    schedule: Some("nope".into()),
                    ..fields()
                },
                "schedule",
            ),
            (
                JobFields {
                    timezone: Some("Nowhere/Town".into()),
                    ..fields()
                },
                "timezone",
            ),
            (
                JobFields {
                    command: Some("  ".into()),
                    ..fields()
                },
                "command",
            ),
            (
                JobFields {
                    command: None,
                    ..fields()
                },
                "command",
            ),
            (
                JobFields {
                    timeout_secs: Some(-1),
                    ..fields()
                },
                "timeout_secs",
            ),
            (
                JobFields {
                    timeout_secs: Some(MAX_TIMEOUT_SECS + 1),
                    ..fields()
                },
                "timeout_secs",
            ),
            (
                JobFields {
                    retries: Some(101),
                    ..fields()
                },
                "retries",
            ),
            (
                JobFields {
                    http_method: Some("POST".into()),
                    ..fields()
                },
                "http_method",
            ),
            (
                JobFields {
                    http_url: Some("http://x/".into()),
                    ..fields()
                },
                "command",
            ),
            (
                JobFields {
                    schedule: Some("x".repeat(300)),
                    ..fields()
                },
                "schedule",
            ),
        ];
        for (f, field) in cases {
            let err = f.clone().create("UTC").expect_err(field);
            assert_eq!(err.field, field, "{f:?}: {err}");
        }
    }

    #[test]
    fn an_edit_accepts_and_refuses_what_an_add_does() {
        let base = fields().create("UTC").expect("valid").job().clone();
        // An HTTP setting on a command job is refused, not ignored.
        let err = JobFields {
            http_method: Some("POST".into()),
            ..JobFields::default()
        }
        .apply(base.clone())
        .expect_err("http_method on a command job");
        assert_eq!(err.field, "http_method");
        // A command on an HTTP job is refused unless the URL is cleared with it.
        let web = http_job();
        let err = JobFields {
            command: Some("true".into()),
            ..JobFields::default()
        }
        .apply(web.clone())
        .expect_err("command and URL");
        assert_eq!(err.field, "command");
        let now_shell = JobFields {
            command: Some("true".into()),
            http_url: Some(String::new()),
            ..JobFields::default()
        }
        .apply(web.clone())
        .expect("switched to a command");
        assert_eq!(now_shell.http_url, None);
        assert_eq!(now_shell.http_method, "GET", "no leftover HTTP settings");
        // Renaming, clearing the timeout, changing HTTP fields.
        let edited = JobFields {
            name: Some("renamed".into()),
            timeout_secs: Some(0),
            http_body: Some("{}".into()),
            http_headers: Some(vec![HeaderLine("X-A: 1".into())]),
            ..JobFields::default()
        }
        .apply(
            JobFields {
                timeout_secs: Some(30),
                ..JobFields::default()
            }
            .apply(web)
            .expect("t")
            .job()
            .clone(),
        )
        .expect("edit");
        assert_eq!(edited.name, "renamed");
        assert_eq!(edited.timeout_secs, None);
        assert_eq!(edited.http_body.as_deref(), Some("{}"));
        assert_eq!(
            edited.http_headers.get("X-A").map(String::as_str),
            Some("1")
        );
    }

    #[test]
    fn headers_travel_as_a_json_object() {
        let f = JobFields {
            http_headers: Some(vec![HeaderLine("Authorization: Bearer x".into())]),
            ..JobFields::default()
        };
        let v = serde_json::to_value(&f).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"http_headers": {"Authorization": "Bearer x"}})
        );
        let back: JobFields = serde_json::from_value(v).expect("back");
        assert_eq!(back, f);
    }
}
