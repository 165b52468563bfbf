//! `cronvisor next RULE|JOB`: the upcoming instants of a rule, or of a job's rule in its zone,
//! computed with the same code the dispatcher uses.

use std::process::ExitCode;

use cronvisor_roles::model::JobView;
use cronvisor_roles::schedule::Schedule;
use hyper::Method;

use crate::api_client::{segment, Api};
use crate::cli::{Cli, NextArgs};

/// A rule has spaces (5 or 6 fields) or starts with `@`; a job name has neither.
fn is_rule(text: &str) -> bool {
    text.trim().contains(char::is_whitespace) || text.trim_start().starts_with('@')
}

pub async fn run(cli: &Cli, args: &NextArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(cli)?;
    let (rule, job_tz) = if is_rule(&args.rule) {
        (args.rule.clone(), None)
    } else {
        let api = Api::from_cli(cli, &config)?;
        let view: JobView = api
            .call(
                Method::GET,
                &format!("/api/v1/jobs/{}", segment(&args.rule)),
                None,
            )
            .await?;
        (view.job.schedule, Some(view.job.timezone))
    };
    let tz = args
        .tz
        .clone()
        .or(job_tz)
        .unwrap_or_else(|| config.timezone.clone());
    let schedule = Schedule::parse(&rule, &tz)?;
    let from = args.from.unwrap_or_else(chrono::Utc::now);
    let instants: Vec<String> = schedule
        .upcoming(from, args.count as usize)
        .into_iter()
        .map(|t| {
            t.with_timezone(&schedule.timezone())
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .collect();
    if args.out.json {
        crate::print::json(&instants)?;
    } else {
        for t in instants {
            println!("{t}");
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
