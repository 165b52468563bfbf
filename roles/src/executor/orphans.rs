//! Process groups left behind by a previous executor on this host.
//!
//! Every run is the leader of its own process group, so when an executor dies (SIGKILL, OOM)
//! its jobs keep running, re-parented, with nobody to read their output or record their end;
//! the monitor marks those runs `lost` and may retry them. The next executor on the same host
//! and address stops such groups when it starts, so a lost run never goes on beside its retry.
//! Only runs of an executor process that is gone are touched (during a reload the previous
//! generation's executor is alive and finishing its runs), and a pid is only signalled if it is
//! still a group leader that started when the run did (pids are reused).

use std::time::Duration;

use crate::model::Millis;
use crate::store::{Store, StoreError};

/// How far a process's start may be from the run's recorded start and still be that run.
const START_TOLERANCE_MS: i64 = 1500;

/// Stops the groups of runs of earlier executors at `host_addr` (`host/address/`) that are
/// still alive; returns the run ids whose group was signalled.
pub async fn reap(
    store: &Store,
    host_addr: &str,
    me: &str,
    grace: Duration,
) -> Result<Vec<i64>, StoreError> {
    let mut reaped = Vec::new();
    for (run_id, instance, pid, started_at) in
        store.runs_of_earlier_executors(host_addr, me).await?
    {
        // A reload's previous executor is still draining its runs: never touch those.
        if executor_alive(&instance) {
            continue;
        }
        let Ok(pid) = i32::try_from(pid) else {
            continue;
        };
        if !is_that_run(pid, started_at) {
            continue;
        }
        tracing::warn!(
            run = run_id,
            pid,
            "stopping the process group of a run whose executor died"
        );
        let group = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        });
        reaped.push(run_id);
    }
    Ok(reaped)
}

/// Whether the executor process named by an instance id (`host/address/pid`, on this host)
/// is still running. Unparsable means alive: when in doubt, leave the runs alone.
fn executor_alive(instance: &str) -> bool {
    let Some(pid) = instance
        .rsplit('/')
        .next()
        .and_then(|p| p.parse::<i32>().ok())
    else {
        return true;
    };
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Whether `pid` is alive, leads its own process group and started within
/// `START_TOLERANCE_MS` of `started_at`.
fn is_that_run(pid: i32, started_at: Millis) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Fields after the command name (which may hold spaces and parentheses).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); pgrp is field 5, starttime field 22.
    let (Some(state), Some(pgrp), Some(start_ticks)) =
        (fields.first(), fields.get(2), fields.get(19))
    else {
        return false;
    };
    if *state == "Z" || pgrp.parse::<i32>().ok() != Some(pid) {
        return false;
    }
    let (Some(boot), Ok(ticks)) = (boot_time_secs(), start_ticks.parse::<i64>()) else {
        return false;
    };
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    let started = boot * 1000 + ticks * 1000 / hz;
    (started - started_at).abs() <= START_TOLERANCE_MS
}

fn boot_time_secs() -> Option<i64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn only_a_live_group_leader_started_at_that_time_is_the_run() {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("spawn");
        let pid = child.id() as i32;
        let now = crate::model::now_millis();
        assert!(is_that_run(pid, now));
        assert!(!is_that_run(pid, now - 60_000), "a reused pid");
        assert!(!is_that_run(std::process::id() as i32 + 1_000_000, now));
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        assert!(!is_that_run(pid, now), "gone");
    }

    #[test]
    fn a_live_executor_keeps_its_runs() {
        let me = format!("h/127.0.0.1:1/{}", std::process::id());
        assert!(executor_alive(&me));
        assert!(!executor_alive("h/127.0.0.1:1/999999999"));
        assert!(executor_alive("garbled"));
    }
}
