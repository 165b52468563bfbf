//! `job backfill`, `backfill list/show/cancel`, `run retry`: clients of `/api/v1/backfills`
//! and `/api/v1/runs/{id}/retry`.

use std::process::ExitCode;

use cronvisor_roles::model::backfill::Backfill;
use hyper::Method;
use serde_json::{json, Value};

use super::jobs::{api, job_path};
use crate::api_client::{segment, Api};
use crate::cli::{BackfillCommand, Cli, JobBackfillArgs, RunShowArgs};
use crate::print;

/// `job backfill`: records it (or prints its plan with `--dry-run`).
pub async fn start(api: &Api, a: &JobBackfillArgs) -> anyhow::Result<()> {
    let body = json!({"from": a.from, "to": a.to, "parallel": a.parallel, "all": a.all,
        "dry_run": a.dry_run});
    let path = format!("{}/backfill", job_path(&a.job));
    let v: Value = api.call(Method::POST, &path, Some(body)).await?;
    if a.out.json {
        return print::json(&v);
    }
    if a.dry_run {
        plan(&v, a.all);
        return Ok(());
    }
    let b: Backfill = serde_json::from_value(v)?;
    println!(
        "backfill {} of `{}` recorded: {} instants from {} to {}, {} at a time{} \
         (see: cronvisor backfill show {})",
        b.id,
        b.job,
        b.total,
        print::time(Some(b.from)),
        print::time(Some(b.to)),
        b.parallel,
        if b.all { ", succeeded ones too" } else { "" },
        b.id
    );
    Ok(())
}

/// A dry run's instants, each marked when it already succeeded.
fn plan(v: &Value, all: bool) {
    let total = v["total"].as_u64().unwrap_or(0);
    let skip = v["would_skip"].as_u64().unwrap_or(0);
    let job = v["job"].as_str().unwrap_or("?");
    match (skip, all) {
        (0, _) => println!("`{job}` would run {total} instants:"),
        (n, _) => println!(
            "`{job}` would run {} of {total} instants ({n} already succeeded: left out, \
             --all runs them too):",
            total - n
        ),
    }
    for i in v["instants"].as_array().into_iter().flatten() {
        let at = print::time(i["instant"].as_i64());
        match i["succeeded"].as_bool() == Some(true) {
            true if all => println!("  {at}  already succeeded, runs again"),
            true => println!("  {at}  already succeeded"),
            false => println!("  {at}"),
        }
    }
}

pub async fn backfill(cli: &Cli, cmd: &BackfillCommand) -> anyhow::Result<ExitCode> {
    let api = api(cli)?;
    match cmd {
        BackfillCommand::List(a) => {
            let mut query = vec![format!("limit={}", a.limit.unwrap_or(50))];
            if let Some(j) = &a.job {
                query.push(format!("job={}", segment(j)));
            }
            if let Some(s) = &a.state {
                query.push(format!("state={}", segment(s)));
            }
            let path = format!("/api/v1/backfills?{}", query.join("&"));
            let list: Vec<Backfill> = api.call(Method::GET, &path, None).await?;
            if a.out.json {
                print::json(&list)?;
            } else if list.is_empty() {
                println!("no backfills (start one: cronvisor job backfill JOB --from T --to T)");
            } else {
                table(&list);
            }
        }
        BackfillCommand::Show(a) => {
            let b: Backfill = api
                .call(Method::GET, &format!("/api/v1/backfills/{}", a.id), None)
                .await?;
            if a.out.json {
                print::json(&b)?;
            } else {
                show(&b);
            }
        }
        BackfillCommand::Cancel(a) => {
            let b: Backfill = api
                .call(
                    Method::POST,
                    &format!("/api/v1/backfills/{}/cancel", a.id),
                    None,
                )
                .await?;
            if a.out.json {
                print::json(&b)?;
            } else {
                println!(
                    "backfill {} of `{}` cancelled: {} of {} instants ran or were left out, \
                     {} still going (they end as they end; `run kill` stops one)",
                    b.id,
                    b.job,
                    b.settled(),
                    b.total,
                    b.going
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `settled/total` and the outcomes, in a few words.
fn progress(b: &Backfill) -> String {
    let mut parts = vec![format!("{}/{}", b.settled(), b.total)];
    if b.succeeded > 0 {
        parts.push(format!("{} succeeded", b.succeeded));
    }
    if b.failed > 0 {
        parts.push(format!("{} failed", b.failed));
    }
    if b.skipped > 0 {
        parts.push(format!("{} left out", b.skipped));
    }
    if b.going > 0 {
        parts.push(format!("{} going", b.going));
    }
    parts.join(", ")
}

fn table(list: &[Backfill]) {
    print::table(
        &[
            ("ID", &|b: &Backfill| b.id.to_string()),
            ("JOB", &|b: &Backfill| b.job.clone()),
            ("STATE", &|b: &Backfill| b.state.clone()),
            ("FROM", &|b: &Backfill| print::time(Some(b.from))),
            ("TO", &|b: &Backfill| print::time(Some(b.to))),
            ("PARALLEL", &|b: &Backfill| b.parallel.to_string()),
            ("PROGRESS", &progress),
        ],
        list,
    );
}

fn show(b: &Backfill) {
    let rows = [
        ("backfill", b.id.to_string()),
        ("job", b.job.clone()),
        ("state", b.state.clone()),
        ("from", print::time(Some(b.from))),
        ("to", print::time(Some(b.to))),
        ("parallel", b.parallel.to_string()),
        (
            "instants",
            match b.all {
                true => format!("{} (succeeded ones run again)", b.total),
                false => format!("{} (succeeded ones left out)", b.total),
            },
        ),
        ("progress", progress(b)),
        ("reached", print::time(b.reached)),
        ("reason", b.reason.clone().unwrap_or_else(|| "-".into())),
        ("by", b.created_by.clone().unwrap_or_else(|| "-".into())),
        ("created", print::time(Some(b.created_at))),
        ("ended", print::time(b.ended_at)),
    ];
    for (k, v) in rows {
        println!("{:<10}{v}", format!("{k}:"));
    }
    println!(
        "runs:     cronvisor runs --job {} --trigger backfill",
        b.job
    );
}

/// `run retry`.
pub async fn retry(api: &Api, a: &RunShowArgs) -> anyhow::Result<()> {
    let v: Value = api
        .call(Method::POST, &format!("/api/v1/runs/{}/retry", a.id), None)
        .await?;
    if a.out.json {
        return print::json(&v);
    }
    println!(
        "run {} of `{}` runs again as run {} (see: cronvisor run show {})",
        a.id,
        v["job"].as_str().unwrap_or("?"),
        v["run_id"],
        v["run_id"]
    );
    Ok(())
}
