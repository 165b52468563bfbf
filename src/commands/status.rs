//! `cronvisor status`: the supervisor's view of its children, from the status file it keeps in
//! the data dir.

use std::process::ExitCode;

use anyhow::Context;
use cronvisor_supervisor::status::Status;

use crate::cli::{Cli, JsonFlag};

pub fn run(cli: &Cli, out: JsonFlag) -> anyhow::Result<ExitCode> {
    let config = super::load_config(cli)?;
    let path = config.data_dir.join("run").join("status.json");
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "reading {} (is cronvisor up with this data dir?)",
            path.display()
        )
    })?;
    let status: Status =
        serde_json::from_slice(&bytes).with_context(|| format!("decoding {}", path.display()))?;
    let alive = std::path::Path::new(&format!("/proc/{}", status.pid)).exists();
    if out.json {
        crate::print::json(&status)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "supervisor pid {} ({}), version {}, generation {}, phase {}",
        status.pid,
        if alive { "running" } else { "not running" },
        status.version,
        status.generation,
        status.phase
    );
    for (name, addr) in &status.listeners {
        println!("listener {name}: {addr}");
    }
    let now = chrono::Utc::now().timestamp_millis();
    crate::print::table(
        &[
            "ROLE",
            "PID",
            "GEN",
            "READY",
            "UPTIME",
            "RESTARTS",
            "LAST EXIT",
        ],
        status
            .children
            .iter()
            .map(|c| {
                vec![
                    c.role.clone(),
                    c.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                    c.generation.to_string(),
                    c.ready.to_string(),
                    if c.pid.is_some() {
                        format!("{}s", (now - c.started_at).max(0) / 1000)
                    } else {
                        "-".into()
                    },
                    c.restarts.to_string(),
                    c.last_exit.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect(),
    );
    Ok(ExitCode::SUCCESS)
}
