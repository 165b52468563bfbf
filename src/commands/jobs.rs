//! `job ...`, `runs`, `run show`: clients of the monitor API.

use std::process::ExitCode;

use cronvisor_roles::model::{Job, Run};
use hyper::Method;
use serde_json::{json, Map, Value};

use crate::api_client::{segment, Api};
use crate::cli::{Cli, JobCommand, PolicyArgs, RunCommand, RunsArgs};
use crate::print;

/// The policy and alarm fields given on the command line, as API body fields.
fn policy_fields(p: &PolicyArgs) -> Vec<(&'static str, Option<Value>)> {
    vec![
        ("overlap", p.overlap.as_ref().map(|v| json!(v))),
        ("fanout", p.fanout.as_ref().map(|v| json!(v))),
        ("retries", p.retries.map(|v| json!(v))),
        ("retry_backoff_secs", p.retry_backoff.map(|v| json!(v))),
        ("misfire", p.misfire.as_ref().map(|v| json!(v))),
        ("misfire_window_secs", p.misfire_window.map(|v| json!(v))),
        (
            "alarm_on",
            p.alarm_on
                .as_ref()
                .map(|v| json!(v.iter().filter(|s| !s.is_empty()).collect::<Vec<_>>())),
        ),
        (
            "alarm_channels",
            p.alarm_channels
                .as_ref()
                .map(|v| json!(v.iter().filter(|s| !s.is_empty()).collect::<Vec<_>>())),
        ),
        ("admin_email", p.admin_email.as_ref().map(|v| json!(v))),
        ("admin_mobile", p.admin_mobile.as_ref().map(|v| json!(v))),
    ]
}

fn api(cli: &Cli) -> anyhow::Result<Api> {
    let config = super::load_config(cli)?;
    Api::from_cli(cli, &config)
}

pub async fn job(cli: &Cli, cmd: &JobCommand) -> anyhow::Result<ExitCode> {
    let api = api(cli)?;
    match cmd {
        JobCommand::Add(a) => {
            let mut body = Map::new();
            body.insert("name".into(), json!(a.name));
            body.insert("schedule".into(), json!(a.schedule));
            let optional = vec![
                ("command", a.command.as_ref().map(|v| json!(v))),
                ("timezone", a.tz.as_ref().map(|v| json!(v))),
                ("timeout_secs", a.timeout.map(|v| json!(v))),
                ("run_at", a.run_at.as_ref().map(|v| json!(v))),
                ("http_url", a.http_url.as_ref().map(|v| json!(v))),
            ];
            for (k, v) in optional.into_iter().chain(policy_fields(&a.policy)) {
                if let Some(v) = v {
                    body.insert(k.into(), v);
                }
            }
            if a.paused {
                body.insert("paused".into(), json!(true));
            }
            if !a.http_headers.is_empty() {
                let mut headers = Map::new();
                for h in &a.http_headers {
                    let Some((k, v)) = h.split_once(':') else {
                        anyhow::bail!("--http-header `{h}`: expected \"Name: value\"");
                    };
                    headers.insert(k.trim().to_string(), json!(v.trim()));
                }
                body.insert("http_headers".into(), Value::Object(headers));
            }
            for (k, v) in [
                ("http_method", a.http_method.as_ref().map(|v| json!(v))),
                ("http_body", a.http_body.as_ref().map(|v| json!(v))),
                ("http_expect_status", a.http_expect.map(|v| json!(v))),
            ] {
                if let Some(v) = v {
                    body.insert(k.into(), v);
                }
            }
            let job: Job = api
                .call(Method::POST, "/api/v1/jobs", Some(Value::Object(body)))
                .await?;
            if a.out.json {
                print::json(&job)?;
            } else {
                println!("job `{}` added (id {})", job.name, job.id);
            }
        }
        JobCommand::List(out) => {
            let jobs: Vec<Job> = api.call(Method::GET, "/api/v1/jobs", None).await?;
            if out.json {
                print::json(&jobs)?;
            } else {
                print::jobs(&jobs);
            }
        }
        JobCommand::Show(r) => {
            let job: Job = api
                .call(
                    Method::GET,
                    &format!("/api/v1/jobs/{}", segment(&r.job)),
                    None,
                )
                .await?;
            if r.out.json {
                print::json(&job)?;
            } else {
                print::job(&job);
            }
        }
        JobCommand::Edit(e) => {
            let mut body = Map::new();
            let fields = vec![
                ("schedule", e.schedule.as_ref().map(|v| json!(v))),
                ("command", e.command.as_ref().map(|v| json!(v))),
                ("timezone", e.tz.as_ref().map(|v| json!(v))),
                ("timeout_secs", e.timeout.map(|v| json!(v))),
                ("run_at", e.run_at.as_ref().map(|v| json!(v))),
            ];
            for (k, v) in fields.into_iter().chain(policy_fields(&e.policy)) {
                if let Some(v) = v {
                    body.insert(k.into(), v);
                }
            }
            if body.is_empty() {
                anyhow::bail!(
                    "nothing to change: give --schedule, --command, --tz, --timeout, --run-at, \
                     --overlap, --fanout, --retries, --retry-backoff, --misfire or --misfire-window"
                );
            }
            let job: Job = api
                .call(
                    Method::PATCH,
                    &format!("/api/v1/jobs/{}", segment(&e.job)),
                    Some(Value::Object(body)),
                )
                .await?;
            if e.out.json {
                print::json(&job)?;
            } else {
                println!("job `{}` updated", job.name);
            }
        }
        JobCommand::Pause(r) | JobCommand::Resume(r) => {
            let verb = if matches!(cmd, JobCommand::Pause(_)) {
                "pause"
            } else {
                "resume"
            };
            let job: Job = api
                .call(
                    Method::POST,
                    &format!("/api/v1/jobs/{}/{verb}", segment(&r.job)),
                    None,
                )
                .await?;
            if r.out.json {
                print::json(&job)?;
            } else {
                println!(
                    "job `{}` {}",
                    job.name,
                    if job.paused { "paused" } else { "active" }
                );
            }
        }
        JobCommand::Run(r) => {
            let v: Value = api
                .call(
                    Method::POST,
                    &format!("/api/v1/jobs/{}/run", segment(&r.job)),
                    None,
                )
                .await?;
            if r.out.json {
                print::json(&v)?;
            } else {
                println!(
                    "run {} of `{}` requested (see: cronvisor run show {})",
                    v["run_id"], r.job, v["run_id"]
                );
            }
        }
        JobCommand::Delete(r) => {
            api.call_raw(
                Method::DELETE,
                &format!("/api/v1/jobs/{}", segment(&r.job)),
                None,
            )
            .await?;
            if r.out.json {
                print::json(&json!({"deleted": r.job}))?;
            } else {
                println!("job `{}` deleted", r.job);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn runs(cli: &Cli, args: &RunsArgs) -> anyhow::Result<ExitCode> {
    let api = api(cli)?;
    let mut path = format!("/api/v1/runs?limit={}", args.limit);
    if let Some(j) = &args.job {
        path.push_str(&format!("&job={}", segment(j)));
    }
    let runs: Vec<Run> = api.call(Method::GET, &path, None).await?;
    if args.out.json {
        print::json(&runs)?;
    } else {
        print::runs(&runs);
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
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn alarms(cli: &Cli, args: &crate::cli::AlarmsArgs) -> anyhow::Result<ExitCode> {
    let api = api(cli)?;
    let alarms: Vec<cronvisor_roles::model::Alarm> = api
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
    print::table(
        &[
            "ID", "JOB", "RUN", "KIND", "CHANNEL", "TO", "STATUS", "TRIES", "COUNT", "RAISED",
        ],
        alarms
            .iter()
            .map(|a| {
                vec![
                    a.id.to_string(),
                    a.details["job"].as_str().unwrap_or("").to_string(),
                    a.run_id.to_string(),
                    a.kind.clone(),
                    a.channel.clone(),
                    a.recipient.clone(),
                    a.status.clone(),
                    a.attempts.to_string(),
                    a.count.to_string(),
                    print::time(Some(a.created_at)),
                ]
            })
            .collect(),
    );
    Ok(ExitCode::SUCCESS)
}
