//! Output for people: aligned columns and readable times. `--json` bypasses all of this.

use cronvisor_roles::model::{Job, Millis, Run};
use serde::Serialize;

pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn time(ms: Option<Millis>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| "-".into())
}

/// Prints rows with columns padded to the widest cell.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r);
    }
}

pub fn jobs(jobs: &[Job]) {
    table(
        &["ID", "NAME", "SCHEDULE", "TZ", "STATE", "COMMAND"],
        jobs.iter()
            .map(|j| {
                vec![
                    j.id.to_string(),
                    j.name.clone(),
                    j.schedule.clone(),
                    j.timezone.clone(),
                    if j.paused { "paused" } else { "active" }.into(),
                    j.command
                        .clone()
                        .or_else(|| {
                            j.http_url
                                .as_ref()
                                .map(|u| format!("{} {u}", j.http_method))
                        })
                        .unwrap_or_default(),
                ]
            })
            .collect(),
    );
}

pub fn job(j: &Job) {
    println!("id:        {}", j.id);
    println!("name:      {}", j.name);
    println!("schedule:  {}", j.schedule);
    println!("timezone:  {}", j.timezone);
    match &j.http_url {
        Some(url) => println!(
            "http:      {} {} (success: {})",
            j.http_method,
            url,
            if j.http_expect_status == 0 {
                "2xx".to_string()
            } else {
                j.http_expect_status.to_string()
            }
        ),
        None => println!("command:   {}", j.command.as_deref().unwrap_or("-")),
    }
    println!(
        "timeout:   {}",
        j.timeout_secs
            .map(|t| format!("{t} s"))
            .unwrap_or_else(|| "none".into())
    );
    println!(
        "run_at:    {} (fanout {})",
        j.run_at.as_deref().unwrap_or("any executor"),
        j.fanout.as_str()
    );
    println!("state:     {}", if j.paused { "paused" } else { "active" });
    println!(
        "alarm on:  {}",
        if j.alarm_on.is_empty() {
            "nothing".to_string()
        } else {
            j.alarm_on.join(", ")
        }
    );
    println!(
        "alarm via: {}",
        if j.alarm_channels.is_empty() {
            "every configured channel".to_string()
        } else {
            j.alarm_channels.join(", ")
        }
    );
    if let Some(e) = &j.admin_email {
        println!("email to:  {e}");
    }
    if let Some(m) = &j.admin_mobile {
        println!("sms to:    {m}");
    }
    println!("created:   {}", time(Some(j.created_at)));
    println!("updated:   {}", time(Some(j.updated_at)));
}

pub fn runs(runs: &[Run]) {
    table(
        &[
            "ID", "JOB", "INSTANT", "TRIGGER", "STATE", "EXIT", "STARTED", "ENDED",
        ],
        runs.iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    r.job_name.clone(),
                    time(Some(r.instant)),
                    r.trigger.as_str().into(),
                    r.attempt.to_string(),
                    r.state.as_str().into(),
                    r.exit_code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "-".into()),
                    time(r.started_at),
                    time(r.ended_at),
                ]
            })
            .collect(),
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
    println!("state:      {}", r.state.as_str());
    println!("executor:   {}", r.executor.as_deref().unwrap_or("-"));
    println!(
        "pid:        {}",
        r.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into())
    );
    println!(
        "exit code:  {}",
        r.exit_code
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into())
    );
    if let Some(e) = &r.error {
        println!("error:      {e}");
    }
    println!("created:    {}", time(Some(r.created_at)));
    println!("dispatched: {}", time(r.dispatched_at));
    println!("started:    {}", time(r.started_at));
    println!("ended:      {}", time(r.ended_at));
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
