//! `flow show`, `flow list`, `flow rerun`: clients of `/api/v1/flows`.

use std::collections::BTreeSet;
use std::process::ExitCode;

use cronvisor_roles::model::flows::{FlowNode, FlowSummary, FlowView};
use cronvisor_roles::model::EdgeOn;
use hyper::Method;
use serde_json::Value;

use super::jobs::{api, job_path};
use crate::api_client::segment;
use crate::cli::{Cli, FlowCommand};
use crate::print;

pub async fn flow(cli: &Cli, cmd: &FlowCommand) -> anyhow::Result<ExitCode> {
    let api = api(cli)?;
    match cmd {
        FlowCommand::Show(a) => {
            let mut query = Vec::new();
            if let Some(run) = a.run {
                query.push(format!("run={run}"));
            }
            if let Some(t) = &a.instant {
                query.push(format!("instant={}", segment(t)));
            }
            let path = format!("{}/flow?{}", job_path(&a.job), query.join("&"));
            let flow: FlowView = api.call(Method::GET, &path, None).await?;
            if a.out.json {
                print::json(&flow)?;
            } else {
                print!("{}", tree(&flow));
            }
        }
        FlowCommand::List(a) => {
            let mut query = vec![format!("limit={}", a.limit.unwrap_or(50))];
            if let Some(j) = &a.job {
                query.push(format!("job={}", segment(j)));
            }
            if let Some(s) = &a.state {
                query.push(format!("state={}", segment(s)));
            }
            let path = format!("/api/v1/flows?{}", query.join("&"));
            let flows: Vec<FlowSummary> = api.call(Method::GET, &path, None).await?;
            if a.out.json {
                print::json(&flows)?;
            } else if flows.is_empty() {
                println!(
                    "no flows (a job with --after starts them: see `cronvisor job add --help`)"
                );
            } else {
                list(&flows);
            }
        }
        FlowCommand::Rerun(a) => {
            let path = format!("/api/v1/flows/{}/rerun", a.run);
            let v: Value = api.call(Method::POST, &path, None).await?;
            if a.out.json {
                print::json(&v)?;
            } else {
                let runs: Vec<String> = v["runs"]
                    .as_array()
                    .map(|a| a.iter().map(|r| r.to_string()).collect())
                    .unwrap_or_default();
                println!(
                    "flow of `{}` rerun: run {} recorded (see: cronvisor flow show {} --run {})",
                    v["root_job"].as_str().unwrap_or("?"),
                    runs.join(", "),
                    v["root_job"].as_str().unwrap_or("?"),
                    a.run
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list(flows: &[FlowSummary]) {
    print::table(
        &[
            ("ROOT", &|f: &FlowSummary| f.root_job.clone()),
            ("RUN", &|f: &FlowSummary| f.root_run.to_string()),
            ("INSTANT", &|f: &FlowSummary| print::time(Some(f.instant))),
            ("STATE", &|f: &FlowSummary| match f.round {
                0 => f.state.clone(),
                n => format!("{} (rerun {n})", f.state),
            }),
            ("DURATION", &|f: &FlowSummary| {
                f.ended_at
                    .map(|e| print::span((e - f.instant).max(0)))
                    .unwrap_or_else(|| "-".into())
            }),
            ("FAILED", &|f: &FlowSummary| {
                f.failed.clone().unwrap_or_else(|| "-".into())
            }),
        ],
        flows,
    );
}

/// The flow as an indented tree from its root: each job under each of its upstreams (a job
/// of a fan-in is shown whole once, then as `(above)`), with its state and run.
pub fn tree(flow: &FlowView) -> String {
    let mut out = format!(
        "flow of `{}` at {}{}: {}{}{}\n",
        flow.root_job,
        print::time(Some(flow.instant)),
        flow.root_run
            .map(|r| format!(" (run {r})"))
            .unwrap_or_default(),
        flow.state,
        flow.duration_ms
            .map(|d| format!(", {}", print::span(d)))
            .unwrap_or_default(),
        match flow.round {
            0 => String::new(),
            n => format!(", rerun {n}"),
        }
    );
    let Some(root) = flow.nodes.iter().find(|n| n.layer == 0) else {
        return out;
    };
    let width = flow
        .nodes
        .iter()
        .map(|n| n.job.chars().count() + 3 * n.layer + 12)
        .max()
        .unwrap_or(20);
    let mut shown = BTreeSet::new();
    node(flow, root, None, "", "", width, &mut shown, &mut out);
    out
}

#[allow(clippy::too_many_arguments)]
fn node(
    flow: &FlowView,
    n: &FlowNode,
    on: Option<EdgeOn>,
    lead: &str,
    branch: &str,
    width: usize,
    shown: &mut BTreeSet<String>,
    out: &mut String,
) {
    let edge = match on {
        Some(EdgeOn::Failure) => " [on failure]",
        Some(EdgeOn::End) => " [on end]",
        _ => "",
    };
    let label = format!("{lead}{branch}{}{edge}", n.job);
    let seen = !shown.insert(n.job.clone());
    if seen {
        out.push_str(&format!("{label} (above)\n"));
        return;
    }
    let run = n
        .runs
        .first()
        .map(|r| {
            let mut s = format!("run {}", r.id);
            if let Some(code) = r.exit_code {
                s.push_str(&format!(", exit {code}"));
            }
            if let Some(e) = r
                .error
                .as_deref()
                .filter(|_| r.state != cronvisor_roles::model::RunState::Succeeded)
            {
                s.push_str(&format!(": {e}"));
            }
            s
        })
        .unwrap_or_default();
    out.push_str(&format!(
        "{:<width$}  {:<10} {run}\n",
        label,
        n.state,
        width = width
    ));
    let children: Vec<(&FlowNode, EdgeOn)> = flow
        .nodes
        .iter()
        .filter_map(|c| c.after.iter().find(|e| e.job == n.job).map(|e| (c, e.on)))
        .collect();
    let next_lead = match branch {
        "" => lead.to_string(),
        "├─ " => format!("{lead}│  "),
        _ => format!("{lead}   "),
    };
    for (i, (c, on)) in children.iter().enumerate() {
        let b = if i + 1 == children.len() {
            "└─ "
        } else {
            "├─ "
        };
        node(flow, c, Some(*on), &next_lead, b, width, shown, out);
    }
}
