//! The checks of a complete job: every bound matches its store column, a job runs a command
//! *or* calls a URL, HTTP settings belong to HTTP jobs, names and lists hold what they may.

use std::collections::BTreeMap;

use super::durations::secs_text;
use super::fields::*;
use super::{FieldError, Job};
use crate::schedule::{Schedule, ScheduleError};

/// Which of the kind-specific fields a request gave (to name the right one in an error).
pub(super) struct Given {
    command: bool,
    http_url: bool,
    /// The first HTTP-only field given with a value (not a clearing "").
    http_only: Option<&'static str>,
}

impl Given {
    pub(super) fn of(f: &JobFields) -> Given {
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
pub(super) fn check_work(job: &mut Job, given: &Given, was_http: bool) -> Result<(), FieldError> {
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

fn max_len(field: &str, v: &str, max: usize) -> Result<(), FieldError> {
    if v.len() > max {
        return Err(FieldError::new(field, format!("longer than {max} bytes")));
    }
    if v.contains('\0') {
        return Err(FieldError::new(field, "must not contain a NUL byte"));
    }
    Ok(())
}

/// `calendars` and the SLAs' bounds. Calendars: names, on a job with a rule of its own (a job
/// that runs after others follows its root's instants: the root's calendars decide them).
/// Whether each exists is the store's to say.
fn check_calendars(job: &Job) -> Result<(), FieldError> {
    for name in &job.calendars {
        validate_name(name)
            .map_err(|e| FieldError::new("calendars", format!("`{name}`: {}", e.message)))?;
    }
    if job.calendars.len() > 8 {
        return Err(FieldError::new("calendars", "at most 8"));
    }
    if !job.calendars.is_empty() && !job.after.is_empty() {
        return Err(FieldError::new(
            "calendars",
            "a job that runs after others follows its root's instants: give the root the calendar",
        ));
    }
    // SLAs: a second to a week.
    if job
        .late_after_secs
        .is_some_and(|s| !(1..=7 * 86_400).contains(&s))
    {
        return Err(FieldError::new("late_after_secs", "must be 1 s to 7 days"));
    }
    Ok(())
}

/// `requires`: another job, named as jobs are, of a job that keeps its own schedule.
fn check_requires(job: &Job) -> Result<(), FieldError> {
    if let Some(r) = &job.requires {
        validate_name(r).map_err(|e| FieldError::new("requires", e.message))?;
        if r.eq_ignore_ascii_case(&job.name) {
            return Err(FieldError::new("requires", "a job cannot require itself"));
        }
        if !job.after.is_empty() {
            return Err(FieldError::new(
                "requires",
                "a job that runs after others is released by them: give it an edge instead",
            ));
        }
    }
    if let Some(w) = job.within_secs {
        range_secs("within_secs", w, 1, super::fields::MAX_WITHIN_SECS)?;
    }
    Ok(())
}

/// Every field of a complete job.
pub(super) fn check(job: &Job) -> Result<(), FieldError> {
    validate_name(&job.name)?;
    check_group_name("group", &job.group)?;
    max_len("schedule", &job.schedule, MAX_SCHEDULE)?;
    super::flows::check_edges(&job.name, &job.after)?;
    check_requires(job)?;
    check_calendars(job)?;
    // A job that runs after others has no rule, but its zone still names its instants.
    let rule = if job.after.is_empty() {
        job.schedule.as_str()
    } else {
        "@daily"
    };
    Schedule::parse(rule, &job.timezone).map_err(|e| match e {
        ScheduleError::TimeZone(_) => FieldError::new("timezone", e.to_string()),
        e => FieldError::new("schedule", e.to_string()),
    })?;
    if let Some(c) = &job.command {
        max_len("command", c, MAX_COMMAND)?;
    }
    if let Some(url) = &job.http_url {
        check_url(url).map_err(|reason| FieldError::new("http_url", reason))?;
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
    if let Some(u) = &job.run_as {
        let ok = !u.is_empty()
            && u.len() <= 32
            && u.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(FieldError::new(
                "run_as",
                format!("`{u}` is not a user name (letters, digits, `-`, `_`, `.`; 32 at most)"),
            ));
        }
    }
    if let Some(v) = &job.description {
        max_len("description", v, MAX_DESCRIPTION)?;
    }
    if let Some(n) = job.limits.max_open_files {
        range("max_open_files", n, 3, MAX_OPEN_FILES)?;
    }
    if let Some(n) = job.limits.max_address_space_mb {
        range("max_address_space_mb", n, 1, MAX_ADDRESS_SPACE_MB)?;
    }
    if let Some(t) = job.limits.max_cpu_secs {
        range_secs("max_cpu_secs", t, 1, MAX_TIMEOUT_SECS)?;
    }
    for (field, v) in [
        ("admin_email", &job.admin_email),
        ("admin_mobile", &job.admin_mobile),
    ] {
        if let Some(v) = v {
            max_len(field, v, MAX_RECIPIENTS)?;
        }
    }
    if let Some(v) = &job.admin_email {
        check_emails("admin_email", v)?;
    }
    if let Some(v) = &job.admin_mobile {
        check_mobiles("admin_mobile", v)?;
    }
    Ok(())
}

/// Comma-separated e-mail addresses, each `local@domain` without spaces.
pub fn check_emails(field: &str, text: &str) -> Result<(), FieldError> {
    for a in text.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        let ok = a.len() <= 254
            && !a.contains(char::is_whitespace)
            && a.split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'));
        if !ok {
            return Err(FieldError::new(
                field,
                format!("`{a}` is not an e-mail address"),
            ));
        }
    }
    Ok(())
}

/// Comma-separated phone numbers: an optional `+`, then 3 to 20 digits (short codes too;
/// spaces and `-` allowed between them). They go into SMS gateway requests, so nothing else is.
pub fn check_mobiles(field: &str, text: &str) -> Result<(), FieldError> {
    for n in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let body = n.strip_prefix('+').unwrap_or(n);
        let digits = body.chars().filter(char::is_ascii_digit).count();
        let ok = body
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
            && body.starts_with(|c: char| c.is_ascii_digit())
            && (3..=20).contains(&digits);
        if !ok {
            return Err(FieldError::new(
                field,
                format!("`{n}` is not a phone number (+ and 3 to 20 digits)"),
            ));
        }
    }
    Ok(())
}

/// Whether a header's value is a secret to people (credentials, keys, signatures): shown as
/// [`MASK`] by the API, the CLI and the console.
pub fn secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "auth",
        "token",
        "secret",
        "key",
        "password",
        "cookie",
        "signature",
        "credential",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// HTTP headers from `Name: value` lines (`current` gives the values kept by [`MASK`]).
pub(super) fn headers(
    lines: &[HeaderLine],
    current: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, FieldError> {
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
        let value = if v == MASK {
            let kept = current
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone());
            kept.ok_or_else(|| {
                FieldError::new(
                    "http_headers",
                    format!("`{k}: {MASK}` keeps a value, but `{k}` has none"),
                )
            })?
        } else {
            v.to_string()
        };
        out.insert(k.to_string(), value);
    }
    if out.len() > MAX_HEADERS {
        return Err(FieldError::new(
            "http_headers",
            format!("more than {MAX_HEADERS} headers"),
        ));
    }
    Ok(out)
}

/// The masked form of a secret value, as people see it; sent back, it keeps the value.
pub const MASK: &str = "***";

/// A job's environment from `NAME=VALUE` lines (`current` gives the values kept by `***`).
pub(super) fn env(
    lines: &[super::fields::EnvLine],
    current: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, FieldError> {
    let mut out = BTreeMap::new();
    for line in lines.iter().filter(|l| !l.0.trim().is_empty()) {
        let Some((k, v)) = line.0.split_once('=') else {
            return Err(FieldError::new(
                "env",
                format!("`{}`: expected NAME=VALUE", line.0),
            ));
        };
        let k = k.trim();
        let mut chars = k.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(FieldError::new(
                "env",
                format!("`{k}` is not a variable name (letters, digits, `_`)"),
            ));
        }
        if k.starts_with("CRONVISOR_") {
            return Err(FieldError::new(
                "env",
                format!("`{k}`: CRONVISOR_* variables are cronvisor's own"),
            ));
        }
        let value = if v == MASK {
            match current.get(k) {
                Some(old) => old.clone(),
                None => {
                    return Err(FieldError::new(
                        "env",
                        format!("`{k}={MASK}` keeps a value, but `{k}` has none"),
                    ))
                }
            }
        } else {
            v.to_string()
        };
        if value.len() > super::fields::MAX_ENV_VALUE || value.contains('\0') {
            return Err(FieldError::new(
                "env",
                format!(
                    "`{k}`: a value is at most {} bytes, without NUL",
                    super::fields::MAX_ENV_VALUE
                ),
            ));
        }
        out.insert(k.to_string(), value);
    }
    if out.len() > super::fields::MAX_ENV {
        return Err(FieldError::new(
            "env",
            format!("more than {} variables", super::fields::MAX_ENV),
        ));
    }
    Ok(out)
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

/// A group's name: 1 to 64 letters, digits, `-`, `_` or `.` (it is typed in scopes and URLs).
pub fn check_group_name(field: &str, name: &str) -> Result<(), FieldError> {
    if name.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if name.len() > super::fields::MAX_GROUP {
        return Err(FieldError::new(
            field,
            format!(
                "`{name}` is longer than {} characters",
                super::fields::MAX_GROUP
            ),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(FieldError::new(
            field,
            format!("`{name}`: `{c}` is not allowed (letters, digits, `-`, `_`, `.`)"),
        ));
    }
    Ok(())
}

/// A URL as people may see it: scheme, host and path — not its query or credentials, which
/// may hold keys. Anything that is not a URL is returned as is.
pub fn masked_url(value: &str) -> String {
    if let Some((scheme, rest)) = value.split_once("://") {
        let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        let base = rest.split(['?', '#']).next().unwrap_or("");
        let hidden = if base.len() < rest.len() { "?***" } else { "" };
        return format!("{scheme}://{base}{hidden}");
    }
    value.to_string()
}

/// A URL as it may be shown: `rediss://cv:***@host:6379/0` for one with a password.
pub fn without_password(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user_info, host)) if user_info.contains(':') => {
                let user = user_info.split(':').next().unwrap_or("");
                format!("{scheme}://{user}:***@{host}")
            }
            _ => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Why `url` cannot be called: it must be an absolute http:// or https:// URL with a host.
pub fn check_url(url: &str) -> Result<(), &'static str> {
    let uri = url.parse::<hyper::Uri>().map_err(|_| "not a valid URL")?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("must be an http:// or https:// URL");
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("names no host");
    }
    Ok(())
}
