//! `cronvisor next RULE|JOB`: the upcoming instants of a rule, or of a job's rule in its zone,
//! computed with the same code the dispatcher uses.

use std::process::ExitCode;

use cronvisor_roles::schedule::{parse_timezone, Schedule};
use hyper::Method;
use serde_json::Value;

use crate::api_client::{segment, Api};
use crate::cli::{Cli, NextArgs};

/// A rule has spaces (5 or 6 fields) or starts with `@`; a job name has neither.
fn is_rule(text: &str) -> bool {
    text.trim().contains(char::is_whitespace) || text.trim_start().starts_with('@')
}

pub async fn run(cli: &Cli, args: &NextArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(cli)?;
    let (instants, tz, undecided) = if is_rule(&args.rule) {
        let tz = args.tz.clone().unwrap_or_else(|| config.timezone.clone());
        let schedule = Schedule::parse(&args.rule, &tz)?;
        let from = args.from.unwrap_or_else(chrono::Utc::now);
        (
            schedule.upcoming(from, args.count as usize),
            schedule.timezone(),
            None,
        )
    } else {
        // A job's instants come from the monitor, which knows its calendars.
        let api = Api::from_cli(cli, &config)?;
        let mut path = format!(
            "/api/v1/next?job={}&count={}",
            segment(&args.rule),
            args.count
        );
        if let Some(tz) = &args.tz {
            path.push_str(&format!("&tz={}", segment(tz)));
        }
        if let Some(from) = args.from {
            path.push_str(&format!("&from={}", segment(&from.to_rfc3339())));
        }
        let v: Value = api.call(Method::GET, &path, None).await?;
        let tz = parse_timezone(v["timezone"].as_str().unwrap_or("UTC"))?;
        let instants = v["instants"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| chrono::DateTime::from_timestamp_millis(t.as_i64()?))
            .collect();
        (instants, tz, v["undecided"].as_str().map(str::to_string))
    };
    let instants: Vec<String> = instants
        .into_iter()
        .map(|t| {
            t.with_timezone(&tz)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .collect();
    if args.out.json {
        crate::print::json(&instants)?;
    } else {
        for t in instants {
            println!("{t}");
        }
        if let Some(why) = undecided {
            eprintln!("warning: {why}; such an instant is recorded missed, not run");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rules_and_job_names_are_told_apart() {
        assert!(super::is_rule("*/5 * * * *"));
        assert!(super::is_rule("@hourly"));
        assert!(super::is_rule("@every 90s"));
        assert!(!super::is_rule("backup"));
        assert!(!super::is_rule("42"));
    }
}
