//! `cronvisor status` and `cronvisor reload`: the supervisor's control socket
//! (`<data_dir>/run/control.sock`); `status` falls back to the status file when the supervisor
//! is not running.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cronvisor_supervisor::status::{ChildStatus, ReloadOutcome, Status};

use crate::cli::{Cli, JsonFlag, ReloadArgs};

fn run_dir(cli: &Cli) -> anyhow::Result<PathBuf> {
    Ok(super::load_config(cli)?.data_dir.join("run"))
}

pub async fn reload(cli: &Cli, args: &ReloadArgs) -> anyhow::Result<ExitCode> {
    let socket = run_dir(cli)?.join("control.sock");
    let outcome = if args.upgrade {
        upgrade(&socket).await?
    } else {
        let answer = cronvisor_supervisor::control::call(&socket, "reload")
            .await
            .with_context(|| format!("is cronvisor up? (control socket {})", socket.display()))?;
        serde_json::from_value(answer.clone())
            .with_context(|| format!("unexpected answer: {answer}"))?
    };
    report(&outcome, args.out)
}

fn report(outcome: &ReloadOutcome, out: JsonFlag) -> anyhow::Result<ExitCode> {
    if out.json {
        crate::print::json(outcome)?;
    } else if outcome.ok {
        println!("reloaded: {}", outcome.message);
    } else {
        eprintln!("reload failed: {}", outcome.message);
    }
    Ok(if outcome.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A self-upgrade answers only if it is refused; otherwise the supervisor re-executes (the
/// connection closes) and the new image records the outcome of replacing the roles, which is
/// read from its status once it answers again.
async fn upgrade(socket: &std::path::Path) -> anyhow::Result<ReloadOutcome> {
    let before = chrono::Utc::now().timestamp_millis();
    if let Ok(answer) = cronvisor_supervisor::control::call(socket, "upgrade").await {
        if let Ok(outcome) = serde_json::from_value::<ReloadOutcome>(answer) {
            return Ok(outcome);
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        let status = cronvisor_supervisor::control::call(socket, "status")
            .await
            .ok()
            .and_then(|v| serde_json::from_value::<Status>(v).ok());
        if let Some(r) = status.and_then(|s| s.last_reload) {
            if r.at >= before {
                return Ok(r);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("no answer from the upgraded supervisor within 120 s (see its log)")
}

pub async fn run(cli: &Cli, out: JsonFlag) -> anyhow::Result<ExitCode> {
    let dir = run_dir(cli)?;
    let live = cronvisor_supervisor::control::call(&dir.join("control.sock"), "status")
        .await
        .ok()
        .and_then(|v| serde_json::from_value::<Status>(v).ok());
    let (status, alive) = match live {
        Some(s) => (s, true),
        None => {
            let path = dir.join("status.json");
            let bytes = std::fs::read(&path).with_context(|| {
                format!(
                    "reading {} (is cronvisor up with this data dir?)",
                    path.display()
                )
            })?;
            let s: Status = serde_json::from_slice(&bytes)
                .with_context(|| format!("decoding {}", path.display()))?;
            (s, false)
        }
    };
    if out.json {
        crate::print::json(&status)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "supervisor pid {} ({}), version {}, generation {}, phase {}",
        status.pid,
        if alive {
            "running"
        } else {
            "not running; last known state"
        },
        status.version,
        status.generation,
        status.phase
    );
    for (name, addr) in &status.listeners {
        println!("listener {name}: {addr}");
    }
    if let Some(r) = &status.last_reload {
        println!(
            "last reload: {} at {}: {}",
            if r.ok { "ok" } else { "FAILED" },
            crate::print::time(Some(r.at)),
            r.message
        );
    }
    let now = chrono::Utc::now().timestamp_millis();
    crate::print::table(
        &[
            ("ROLE", &|c: &ChildStatus| c.role.clone()),
            ("PID", &|c: &ChildStatus| {
                c.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into())
            }),
            ("GEN", &|c: &ChildStatus| c.generation.to_string()),
            ("READY", &|c: &ChildStatus| c.ready.to_string()),
            ("UPTIME", &|c: &ChildStatus| {
                if c.pid.is_some() {
                    crate::print::span(now - c.started_at)
                } else {
                    "-".into()
                }
            }),
            ("RESTARTS", &|c: &ChildStatus| c.restarts.to_string()),
            ("LAST EXIT", &|c: &ChildStatus| {
                c.last_exit.clone().unwrap_or_else(|| "-".into())
            }),
        ],
        &status.children,
    );
    Ok(ExitCode::SUCCESS)
}
