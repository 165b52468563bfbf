//! `job ...`, `runs`, `run show`, `alarms`: clients of the monitor API.

use std::process::ExitCode;

use cronvisor_roles::model::{Alarm, JobFields, JobView, Run};
use hyper::Method;
use serde_json::{json, Value};

use crate::api_client::{segment, Api};
use crate::cli::{Cli, JobAddArgs, JobCommand, JobDeleteArgs, JobEditArgs, RunCommand, RunsArgs};
use crate::print;

pub fn api(cli: &Cli) -> anyhow::Result<Api> {
    let config = super::load_config(cli)?;
    Api::from_cli(cli, &config)
}

/// The API path of a job.
pub(super) fn job_path(job: &str) -> String {
    format!("/api/v1/jobs/{}", segment(job))
}

/// `POST .../run` with its options.
fn run_path(job: &str, alone: bool, instant: Option<&str>) -> String {
    let mut query = Vec::new();
    if alone {
        query.push("alone=true".to_string());
    }
    if let Some(t) = instant {
        query.push(format!("instant={}", segment(t)));
    }
    match query.is_empty() {
        true => format!("{}/run", job_path(job)),
        false => format!("{}/run?{}", job_path(job), query.join("&")),
    }
}

pub async fn job(cli: &Cli, cmd: &JobCommand) -> anyhow::Result<ExitCode> {
    let api = api(cli)?;
    match cmd {
        JobCommand::Add(a) => add(&api, a).await?,
        JobCommand::List(out) => {
            let jobs: Vec<JobView> = api.call(Method::GET, "/api/v1/jobs", None).await?;
            if out.json {
                print::json(&jobs)?;
            } else if jobs.is_empty() {
                println!("no jobs (add one: cronvisor job add --help)");
            } else {
                print::jobs(&jobs);
            }
        }
        JobCommand::Show(r) => {
            let view: JobView = api.call(Method::GET, &job_path(&r.job), None).await?;
            if r.out.json {
                print::json(&view)?;
            } else {
                print::job(&view);
            }
        }
        JobCommand::Edit(e) => edit(&api, e).await?,
        JobCommand::Pause(r) | JobCommand::Resume(r) => {
            let verb = if matches!(cmd, JobCommand::Pause(_)) {
                "pause"
            } else {
                "resume"
            };
            let view: JobView = api
                .call(Method::POST, &format!("{}/{verb}", job_path(&r.job)), None)
                .await?;
            if r.out.json {
                print::json(&view)?;
            } else if view.job.paused {
                println!("job `{}` paused", view.job.name);
            } else {
                println!(
                    "job `{}` active, next fire {}",
                    view.job.name,
                    print::time(view.next_fire)
                );
            }
        }
        JobCommand::Run(r) => {
            let v: Value = api
                .call(
                    Method::POST,
                    &run_path(&r.job, r.alone, r.instant.as_deref()),
                    (!r.params.is_empty()).then(|| {
                        let params: std::collections::BTreeMap<&str, &str> = r
                            .params
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                            .collect();
                        json!({ "params": params })
                    }),
                )
                .await?;
            if r.follow {
                let Some(id) = v["run_id"].as_i64() else {
                    anyhow::bail!("the API gave no run id");
                };
                let tail = crate::cli::RunTailArgs { id, follow: true };
                return super::tail::tail(&api, &tail).await;
            }
            if r.out.json {
                print::json(&v)?;
            } else {
                println!(
                    "run {} of `{}` requested (see: cronvisor run show {})",
                    v["run_id"],
                    v["job"].as_str().unwrap_or(&r.job),
                    v["run_id"]
                );
            }
        }
        JobCommand::Backfill(b) => super::backfill::start(&api, b).await?,
        JobCommand::Delete(d) => delete(&api, d).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn add(api: &Api, a: &JobAddArgs) -> anyhow::Result<()> {
    let mut fields = a.fields.clone();
    if a.paused {
        fields.paused = Some(true);
    }
    let view: JobView = api
        .call(
            Method::POST,
            "/api/v1/jobs",
            Some(serde_json::to_value(&fields)?),
        )
        .await?;
    if a.out.json {
        return print::json(&view);
    }
    println!("job `{}` added (id {})", view.job.name, view.job.id);
    if !view.job.after.is_empty() {
        println!(
            "runs after: {}",
            cronvisor_roles::model::flows::edges_text(&view.job.after)
        );
    } else if !view.job.paused {
        println!("next fire: {}", print::time(view.next_fire));
    }
    Ok(())
}

/// Sends only the flags given (`JobFields` skips the unset ones); the API checks the result as
/// a whole, exactly as for an add.
async fn edit(api: &Api, e: &JobEditArgs) -> anyhow::Result<()> {
    if e.fields == JobFields::default() {
        anyhow::bail!(
            "nothing to change: give at least one field flag (see `cronvisor job edit --help`)"
        );
    }
    let view: JobView = api
        .call(
            Method::PATCH,
            &job_path(&e.job),
            Some(serde_json::to_value(&e.fields)?),
        )
        .await?;
    if e.out.json {
        return print::json(&view);
    }
    println!("job `{}` updated", view.job.name);
    Ok(())
}

async fn delete(api: &Api, d: &JobDeleteArgs) -> anyhow::Result<()> {
    let path = if d.force {
        format!("{}?force=true", job_path(&d.job))
    } else {
        job_path(&d.job)
    };
    api.call_raw(Method::DELETE, &path, None).await?;
    if d.out.json {
        return print::json(&json!({"deleted": d.job}));
    }
    println!("job `{}` deleted, with its run history", d.job);
    Ok(())
}

/// The query string of `GET /api/v1/runs` for these flags.
fn runs_query(args: &RunsArgs) -> String {
    let mut q = vec![format!("limit={}", args.limit)];
    let mut push = |k: &str, v: &str| q.push(format!("{k}={}", segment(v)));
    if let Some(j) = &args.job {
        push("job", j);
    }
    if !args.state.is_empty() {
        let states: Vec<&str> = args.state.iter().map(|s| s.as_str()).collect();
        push("state", &states.join(","));
    }
    if let Some(t) = args.trigger {
        push("trigger", t.as_str());
    }
    for (k, v) in [
        ("executor", &args.executor),
        ("since", &args.since),
        ("until", &args.until),
    ] {
        if let Some(v) = v {
            push(k, v);
        }
    }
    if let Some(t) = args.instant {
        push("since", &t.to_string());
        push("until", &(t + 1).to_string());
    }
    if let Some(b) = args.before {
        push("before", &b.to_string());
    }
    format!("/api/v1/runs?{}", q.join("&"))
}

pub async fn runs(cli: &Cli, args: &RunsArgs) -> anyhow::Result<ExitCode> {
    let api = api(cli)?;
    let runs: Vec<Run> = api.call(Method::GET, &runs_query(args), None).await?;
    if args.out.json {
        print::json(&runs)?;
    } else if args.quiet {
        for r in &runs {
            println!("{}", r.id);
        }
    } else if runs.is_empty() {
        println!("no runs");
    } else {
        print::runs(&runs);
        if runs.len() as i64 == args.limit {
            if let Some(last) = runs.last() {
                println!("(more: --before {})", last.id);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(cli: &Cli, cmd: &RunCommand) -> anyhow::Result<ExitCode> {
    let api = api(cli)?;
    match cmd {
        RunCommand::Show(a) => {
            let run: Run = api
                .call(Method::GET, &format!("/api/v1/runs/{}", a.id), None)
                .await?;
            if a.out.json {
                print::json(&run)?;
            } else {
                print::run(&run);
            }
        }
        RunCommand::Tail(a) => return super::tail::tail(&api, a).await,
        RunCommand::Retry(a) => super::backfill::retry(&api, a).await?,
        RunCommand::Kill(a) => {
            let v: Value = api
                .call(Method::POST, &format!("/api/v1/runs/{}/kill", a.id), None)
                .await?;
            if a.out.json {
                print::json(&v)?;
            } else {
                println!(
                    "run {} asked to stop (see: cronvisor run show {})",
                    a.id, a.id
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn alarms(cli: &Cli, args: &crate::cli::AlarmsArgs) -> anyhow::Result<ExitCode> {
    let api = api(cli)?;
    if let Some(crate::cli::AlarmsCommand::Test(t)) = &args.cmd {
        return test_alarms(&api, t).await;
    }
    let alarms: Vec<Alarm> = api
        .call(
            Method::GET,
            &format!("/api/v1/alarms?limit={}", args.limit),
            None,
        )
        .await?;
    if args.out.json {
        print::json(&alarms)?;
        return Ok(ExitCode::SUCCESS);
    }
    if alarms.is_empty() {
        println!("no alarms");
        return Ok(ExitCode::SUCCESS);
    }
    print::table(
        &[
            ("ID", &|a: &Alarm| a.id.to_string()),
            ("JOB", &|a: &Alarm| {
                a.details["job"].as_str().unwrap_or("-").to_string()
            }),
            ("RUN", &|a: &Alarm| a.run_id.to_string()),
            ("KIND", &|a: &Alarm| a.kind.clone()),
            ("CHANNEL", &|a: &Alarm| a.channel.clone()),
            ("TO", &|a: &Alarm| a.recipient.clone()),
            ("STATUS", &|a: &Alarm| a.status.clone()),
            ("TRIES", &|a: &Alarm| a.attempts.to_string()),
            ("COUNT", &|a: &Alarm| a.count.to_string()),
            ("RAISED", &|a: &Alarm| print::time(Some(a.created_at))),
        ],
        &alarms,
    );
    Ok(ExitCode::SUCCESS)
}

/// `alarms test`: one line per delivery, and a status that says whether all went out.
async fn test_alarms(api: &Api, t: &crate::cli::AlarmsTestArgs) -> anyhow::Result<ExitCode> {
    let v: Value = api
        .call(
            Method::POST,
            "/api/v1/alarms/test",
            Some(json!({"channels": t.channels})),
        )
        .await?;
    if t.out.json {
        print::json(&v)?;
    }
    let deliveries = v["deliveries"].as_array().cloned().unwrap_or_default();
    if deliveries.is_empty() {
        eprintln!(
            "no alarm channel configured (alarm.webhook_urls, alarm.sms.url with alarm.sms.to, \
             alarm.email.smtp_host with alarm.email.to)"
        );
        return Ok(ExitCode::FAILURE);
    }
    let mut all = true;
    for d in &deliveries {
        let ok = d["delivered"].as_bool().unwrap_or(false);
        all &= ok;
        if !t.out.json {
            let outcome = if ok {
                "delivered".to_string()
            } else {
                format!("failed: {}", d["error"].as_str().unwrap_or("?"))
            };
            println!(
                "{} {} {outcome}",
                d["channel"].as_str().unwrap_or("?"),
                d["recipient"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(if all {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
