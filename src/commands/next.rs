//! `cronvisor next RULE`: the upcoming instants of a rule, computed locally with the same code
//! the dispatcher uses.

use std::process::ExitCode;

use cronvisor_roles::schedule::Schedule;

use crate::cli::{Cli, NextArgs};

pub fn run(cli: &Cli, args: &NextArgs) -> anyhow::Result<ExitCode> {
    let tz = match &args.tz {
        Some(z) => z.clone(),
        None => super::load_config(cli)?.timezone,
    };
    let schedule = Schedule::parse(&args.rule, &tz)?;
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
