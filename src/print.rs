//! Output for people: aligned columns and readable times. `--json` bypasses all of this.
//!
//! Times are shown in the local zone of the terminal (`TZ`, else `/etc/localtime`) with their
//! offset, so `TZ=UTC cronvisor runs` reads in UTC.

use chrono::{DateTime, Local};
use cronvisor_roles::model::{JobView, Millis, Run};
use serde::Serialize;

pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `2026-12-01 09:40:12 +00:00` in the local zone, or `-`.
pub fn time(ms: Option<Millis>) -> String {
    ms.and_then(DateTime::from_timestamp_millis)
        .map(|t| {
            t.with_timezone(&Local)
                .format("%Y-%m-%d %H:%M:%S %:z")
                .to_string()
        })
        .unwrap_or_else(|| "-".into())
}

/// A span of milliseconds as people say it: `850ms`, `12s`, `4m 05s`, `3h 20m`, `2d 04h`.
pub fn span(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match s {
        _ if ms < 1000 => format!("{ms}ms"),
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// How long ago (`12s ago`) or how far ahead (`in 4m 05s`) `at` is.
pub fn relative(at: Millis, now: Millis) -> String {
    if at <= now {
        format!("{} ago", span(now - at))
    } else {
        format!("in {}", span(at - now))
    }
}

/// `a, b, c`.
fn names<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// One column of a table: its header and how a row renders in it. Header and cells come from
/// the same list, so a row can never have more cells than the table has columns.
pub type Column<'a, T> = (&'static str, &'a dyn Fn(&T) -> String);

/// Prints `items` with columns padded to the widest cell.
pub fn table<T>(columns: &[Column<'_, T>], items: &[T]) {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| columns.iter().map(|(_, cell)| cell(item)).collect())
        .collect();
    let mut widths: Vec<usize> = columns.iter().map(|(h, _)| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    let header: Vec<String> = columns.iter().map(|(h, _)| h.to_string()).collect();
    line(&header);
    for row in &rows {
        line(row);
    }
}

/// What a job does, in one cell: its command, or its HTTP method and URL.
fn work(j: &JobView) -> String {
    match (&j.job.command, &j.job.http_url) {
        (Some(c), _) => c.replace('\n', " "),
        (None, Some(u)) => format!("{} {u}", j.job.http_method),
        (None, None) => "-".into(),
    }
}

fn last_run(j: &JobView, now: Millis) -> String {
    match &j.last_run {
        Some(r) => format!(
            "{} {}",
            r.state.as_str(),
            relative(r.ended_at.unwrap_or(r.instant), now)
        ),
        None => "-".into(),
    }
}

fn next_fire(j: &JobView) -> String {
    if j.job.paused {
        return "paused".into();
    }
    if !j.job.after.is_empty() {
        return "after upstream".into();
    }
    time(j.next_fire)
}

/// A job's rule, or what it runs after.
fn schedule(j: &cronvisor_roles::model::Job) -> String {
    if j.after.is_empty() {
        j.schedule.clone()
    } else {
        format!(
            "after {}",
            cronvisor_roles::model::flows::edges_text(&j.after)
        )
    }
}

pub fn jobs(jobs: &[JobView]) {
    let now = chrono::Utc::now().timestamp_millis();
    table(
        &[
            ("ID", &|j: &JobView| j.job.id.to_string()),
            ("NAME", &|j: &JobView| j.job.name.clone()),
            ("SCHEDULE", &|j: &JobView| schedule(&j.job)),
            ("TZ", &|j: &JobView| j.job.timezone.clone()),
            ("NEXT FIRE", &next_fire),
            ("LAST RUN", &|j: &JobView| last_run(j, now)),
            ("COMMAND", &work),
        ],
        jobs,
    );
}

/// What starts a job: its rule, or the jobs it runs after; and what it requires.
fn when(j: &cronvisor_roles::model::Job) {
    match j.after.is_empty() {
        true => println!("schedule:   {} ({})", j.schedule, j.timezone),
        false => println!(
            "after:      {} (once per flow; zone {})",
            cronvisor_roles::model::flows::edges_text(&j.after),
            j.timezone
        ),
    }
    if !j.calendars.is_empty() {
        let how = match j.calendar_mode {
            cronvisor_roles::model::CalendarMode::Skip => "skips their days",
            cronvisor_roles::model::CalendarMode::Only => "only on their days",
            cronvisor_roles::model::CalendarMode::NextWorkday => {
                "a day off moves to the next day that is not"
            }
        };
        println!("calendars:  {} ({how})", j.calendars.join(", "));
    }
    let secs = cronvisor_roles::model::durations::secs_text;
    match (j.late_after_secs, j.deadline) {
        (None, None) => {}
        (late, deadline) => {
            let mut parts = Vec::new();
            if let Some(l) = late {
                parts.push(format!("late if not started {} after its instant", secs(l)));
            }
            match deadline {
                Some(cronvisor_roles::model::durations::Deadline::After(d)) => {
                    parts.push(format!("overdue if not done {} after it", secs(d)))
                }
                Some(at) => parts.push(format!("overdue if not done by {} (its zone)", at.text())),
                None => {}
            }
            println!("sla:        {}", parts.join("; "));
        }
    }
    if let (Some(r), Some(w)) = (&j.requires, j.within_secs) {
        println!(
            "requires:   {r} succeeded within {} before each instant",
            cronvisor_roles::model::durations::secs_text(w)
        );
    }
    for p in cronvisor_roles::model::params::masked(&j.params) {
        let mut line = match &p.default {
            Some(d) => format!("{}={d}", p.name),
            None => format!("{} (required)", p.name),
        };
        if !p.choices.is_empty() {
            line.push_str(&format!(", one of {}", p.choices.join("|")));
        }
        if p.secret {
            line.push_str(", secret");
        }
        println!("param:      {line}");
    }
}

/// Its last run and its usual duration.
fn history(view: &JobView, now: i64) {
    match &view.last_run {
        Some(r) => println!(
            "last run:   {} ({}, {}, run {})",
            r.state.as_str(),
            time(r.ended_at.or(Some(r.instant))),
            relative(r.ended_at.unwrap_or(r.instant), now),
            r.id
        ),
        None => println!("last run:   -"),
    }
    let setting = view.job.duration_alarm;
    match &view.usual {
        Some(u) => println!("usual:      {}", u.text(setting)),
        None if setting.slow || setting.short => println!(
            "usual:      not learned yet (duration alarms after {} successes)",
            cronvisor_roles::model::usual::MIN_SAMPLES
        ),
        None => {}
    }
}

pub fn job(view: &JobView) {
    let j = &view.job;
    let now = chrono::Utc::now().timestamp_millis();
    println!("id:         {}", j.id);
    println!("name:       {}", j.name);
    if let Some(d) = &j.description {
        println!("about:      {d}");
    }
    if let Some(u) = &j.run_as {
        println!("runs as:    {u}");
    }
    if !j.limits.is_none() {
        println!("limits:     {}", limits(&j.limits));
    }
    println!("group:      {}", j.group);
    when(j);
    println!("state:      {}", if j.paused { "paused" } else { "active" });
    println!("next fire:  {}", next_fire(view));
    history(view, now);
    match &j.http_url {
        Some(url) => {
            println!(
                "http:       {} {} (success: {})",
                j.http_method,
                url,
                if j.http_expect_status == 0 {
                    "2xx".to_string()
                } else {
                    j.http_expect_status.to_string()
                }
            );
            for (k, v) in &j.http_headers {
                println!("header:     {k}: {v}");
            }
            if let Some(b) = &j.http_body {
                println!("body:       {b}");
            }
        }
        None => println!("command:    {}", j.command.as_deref().unwrap_or("-")),
    }
    for (k, v) in &j.env {
        println!("env:        {k}={v}");
    }
    println!(
        "timeout:    {}",
        j.timeout_secs
            .map(|t| span(t.saturating_mul(1000)))
            .unwrap_or_else(|| "none".into())
    );
    println!(
        "run at:     {} (fanout {})",
        j.run_at.as_deref().unwrap_or("any executor"),
        j.fanout.as_str()
    );
    println!("overlap:    {}", j.overlap.as_str());
    println!(
        "retries:    {} (backoff {})",
        j.retries,
        span(j.retry_backoff_secs.saturating_mul(1000))
    );
    println!(
        "misfire:    {} (window {})",
        j.misfire.as_str(),
        span(j.misfire_window_secs.saturating_mul(1000))
    );
    println!(
        "alarm on:   {}",
        if j.alarm_on.is_empty() {
            "nothing".to_string()
        } else {
            names(&j.alarm_on)
        }
    );
    println!(
        "alarm via:  {}",
        if j.alarm_channels.is_empty() {
            "every configured channel".to_string()
        } else {
            names(&j.alarm_channels)
        }
    );
    if let Some(e) = &j.admin_email {
        println!("email to:   {e}");
    }
    if let Some(m) = &j.admin_mobile {
        println!("sms to:     {m}");
    }
    println!("created:    {}", time(Some(j.created_at)));
    println!("updated:    {}", time(Some(j.updated_at)));
}

fn duration(r: &Run) -> String {
    match (r.started_at, r.ended_at) {
        (Some(s), Some(e)) => span(e - s),
        (Some(s), None) => format!("{} so far", span(chrono::Utc::now().timestamp_millis() - s)),
        _ => "-".into(),
    }
}

pub fn runs(runs: &[Run]) {
    table(
        &[
            ("ID", &|r: &Run| r.id.to_string()),
            ("JOB", &|r: &Run| r.job_name.clone()),
            ("INSTANT", &|r: &Run| time(Some(r.instant))),
            ("TRIGGER", &|r: &Run| r.trigger.as_str().into()),
            ("ATTEMPT", &|r: &Run| r.attempt.to_string()),
            ("STATE", &|r: &Run| r.state.as_str().into()),
            ("EXIT", &|r: &Run| or_dash(r.exit_code)),
            ("DURATION", &duration),
            ("EXECUTOR", &|r: &Run| or_dash(r.executor.as_deref())),
        ],
        runs,
    );
}

pub fn run(r: &Run) {
    println!("run:        {}", r.id);
    println!("job:        {} (id {})", r.job_name, r.job_id);
    println!("instant:    {}", time(Some(r.instant)));
    println!("trigger:    {}", r.trigger.as_str());
    match r.retry_of {
        Some(first) => println!("attempt:    {} (retry of run {first})", r.attempt),
        None => println!("attempt:    {}", r.attempt),
    }
    if let Some(flow) = r.flow_run {
        println!(
            "flow:       of run {flow} (see: cronvisor flow show {} --run {})",
            r.job_name, r.id
        );
    }
    if let Some(up) = &r.upstream_runs {
        println!("released:   by {}", up.replace(',', ", "));
    }
    if let Some(old) = r.rerun_of {
        println!("rerun of:   run {old}");
    }
    if let Some(b) = r.backfill {
        println!("backfill:   {b} (see: cronvisor backfill show {b})");
    }
    if let Some((index, total)) = r.shard {
        println!("shard:      {index} of {total} (0-based)");
    }
    for (k, v) in r.params.iter().flatten() {
        println!("param:      {k}={v}");
    }
    println!("state:      {}", r.state.as_str());
    println!("executor:   {}", or_dash(r.executor.as_deref()));
    println!("pid:        {}", or_dash(r.pid));
    println!("exit code:  {}", or_dash(r.exit_code));
    if let Some(e) = &r.error {
        println!("error:      {e}");
    }
    println!("created:    {}", time(Some(r.created_at)));
    println!("dispatched: {}", time(r.dispatched_at));
    println!("started:    {}", time(r.started_at));
    println!("ended:      {}", time(r.ended_at));
    println!("duration:   {}", duration(r));
    for (name, text, cut) in [
        ("stdout", &r.stdout, r.stdout_cut),
        ("stderr", &r.stderr, r.stderr_cut),
    ] {
        let text = text.as_deref().unwrap_or("");
        let note = if cut > 0 {
            format!(" ({cut} bytes cut)")
        } else {
            String::new()
        };
        println!("--- {name}{note} ---");
        print!("{text}");
        if !text.is_empty() && !text.ends_with('\n') {
            println!();
        }
    }
}

/// "open files 64, address space 512 MiB, CPU 10m".
fn limits(l: &cronvisor_roles::model::Limits) -> String {
    let mut parts = Vec::new();
    if let Some(n) = l.max_open_files {
        parts.push(format!("open files {n}"));
    }
    if let Some(n) = l.max_address_space_mb {
        parts.push(format!("address space {n} MiB"));
    }
    if let Some(t) = l.max_cpu_secs {
        parts.push(format!(
            "CPU {}",
            cronvisor_roles::model::durations::secs_text(t)
        ));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(span(850), "850ms");
        assert_eq!(span(12_000), "12s");
        assert_eq!(span(245_000), "4m 05s");
        assert_eq!(span(3 * 3_600_000 + 20 * 60_000), "3h 20m");
        assert_eq!(span(2 * 86_400_000 + 4 * 3_600_000), "2d 04h");
        assert_eq!(relative(1_000, 13_000), "12s ago");
        assert_eq!(relative(13_000, 1_000), "in 12s");
    }
}
