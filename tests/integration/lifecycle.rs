//! The supervisor's side: health on every role, restart of a killed child, clean stop.

use std::time::Duration;

use crate::harness::{alive, group_survivors, http, ms, wait_for, Cronvisor};

#[test]
fn every_role_answers_health_readiness_and_metrics() {
    let cv = Cronvisor::start("health");
    for (listener, role) in [
        ("api", "monitor"),
        ("rpc", "executor"),
        ("dispatch", "dispatcher"),
    ] {
        let addr = cv.endpoint(listener);
        let (code, body) = http(&addr, "GET", "/healthz", None, None);
        assert_eq!(code, 200, "{role} healthz: {body}");
        assert!(body.contains(&format!("\"role\":\"{role}\"")), "{body}");
        let (code, body) = http(&addr, "GET", "/readyz", None, None);
        assert_eq!(code, 200, "{role} readyz: {body}");
        let (code, body) = http(&addr, "GET", "/metrics", None, None);
        assert_eq!(code, 200);
        assert!(
            body.contains(&format!("cronvisor_up{{role=\"{role}\"")),
            "{body}"
        );
    }
    // The executor's RPC and the API refuse requests without their token.
    let (code, _) = http(
        &cv.endpoint("rpc"),
        "POST",
        "/rpc/v1/runs",
        None,
        Some("{}"),
    );
    assert_eq!(code, 401);
    let (code, _) = http(
        &cv.endpoint("api"),
        "GET",
        "/api/v1/jobs",
        Some("wrong"),
        None,
    );
    assert_eq!(code, 401);
}

#[test]
fn a_killed_executor_is_restarted_and_runs_resume() {
    let cv = Cronvisor::start("kill-executor");
    cv.add_job("tick", "* * * * * *", "echo alive", &[]);
    cv.wait_succeeded("tick", 1);
    let old = cv.child_pid("executor").expect("executor pid");
    // SAFETY: kill(2) of the executor child.
    unsafe {
        libc::kill(old as i32, libc::SIGKILL);
    }
    let new = wait_for(Duration::from_secs(15), "a new ready executor", || {
        let st = cv.status();
        let ex = st["children"]
            .as_array()?
            .iter()
            .find(|c| c["role"] == "executor")?
            .clone();
        let pid = ex["pid"].as_u64()? as u32;
        (pid != old && ex["ready"] == true && ex["restarts"] == 1).then_some(pid)
    });
    assert!(!alive(old));
    let restarted_at = ms(
        cv.status()["children"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["role"] == "executor"))
            .expect("executor"),
        "started_at",
    );
    // Runs started after the restart succeed, on the new executor.
    wait_for(Duration::from_secs(15), "runs after the restart", || {
        let after = cv
            .runs("tick")
            .into_iter()
            .filter(|r| r["state"] == "succeeded" && r["started_at"].as_i64() > Some(restarted_at))
            .count();
        (after >= 2).then_some(())
    });
    assert!(alive(new));
}

#[test]
fn sigterm_drains_a_running_job_and_leaves_no_process() {
    let mut cv = Cronvisor::start("sigterm");
    cv.add_job("slow", "@yearly", "sleep 1; echo finished", &[]);
    let id = cv.run_now("slow");
    let pid = cv.wait_running_pid(&id);
    let children: Vec<u32> = ["dispatcher", "executor", "monitor"]
        .iter()
        .map(|r| cv.child_pid(r).expect("child pid"))
        .collect();

    let status = cv.stop_with(libc::SIGTERM, Duration::from_secs(20));
    assert!(status.success(), "supervisor exit: {status}");
    for p in children.iter().chain([&pid]) {
        assert!(!alive(*p), "process {p} survived the stop");
    }
    // The drain let the job finish and record its result.
    assert_eq!(
        cv.sqlite(&format!("SELECT state, stdout FROM runs WHERE id = {id}")),
        "succeeded|finished\n\n"
    );
    assert!(cv.log().contains("cronvisor stopped"));
}

#[test]
fn sigint_stops_fast_and_records_the_running_job_killed() {
    let mut cv = Cronvisor::start("sigint");
    cv.add_job("long", "@yearly", "sleep 300 & sleep 300", &[]);
    let id = cv.run_now("long");
    let pid = cv.wait_running_pid(&id);
    let status = cv.stop_with(libc::SIGINT, Duration::from_secs(20));
    assert!(status.success(), "supervisor exit: {status}");
    assert!(!alive(pid), "job survived");
    // No process of the job's group survived either (the backgrounded sleep included).
    let left = group_survivors(pid);
    assert!(left.is_empty(), "processes of group {pid} left: {left:?}");
    assert_eq!(
        cv.sqlite(&format!("SELECT state FROM runs WHERE id = {id}")),
        "killed\n"
    );
}

#[test]
fn a_retried_rpc_never_starts_a_run_twice() {
    let cv = Cronvisor::start("rpc-retry");
    let rpc = cv.endpoint("rpc");
    let token = std::fs::read_to_string(cv.data_dir().join("rpc.token")).expect("rpc token");
    let marker = cv.dir.0.join("marker");
    let body = serde_json::json!({"runs": [{
        "run_id": 424242, "job_id": 1, "job_name": "x", "instant": 0,
        "command": format!("echo once >> {}", marker.display()), "timeout_secs": null
    }]})
    .to_string();
    let (code, first) = http(
        &rpc,
        "POST",
        "/rpc/v1/runs",
        Some(token.trim()),
        Some(&body),
    );
    assert_eq!(code, 202, "{first}");
    let (code, second) = http(
        &rpc,
        "POST",
        "/rpc/v1/runs",
        Some(token.trim()),
        Some(&body),
    );
    assert_eq!(code, 202, "{second}");
    let second: serde_json::Value = serde_json::from_str(&second).expect("json");
    assert_eq!(second["accepted"][0]["run_id"], 424242);
    assert!(
        second["accepted"][0]["pid"].is_null(),
        "not started again: {second}"
    );
    let text = wait_for(Duration::from_secs(10), "the run's output", || {
        std::fs::read_to_string(&marker)
            .ok()
            .filter(|t| !t.is_empty())
    });
    assert_eq!(text, "once\n");
}

#[test]
fn a_job_inherits_no_descriptor_but_its_standard_streams() {
    let cv = Cronvisor::start("fd-leak");
    cv.add_job("fds", "@yearly", "ls -l /proc/$$/fd", &[]);
    let id = cv.run_now("fds");
    let run = cv.wait_run(&id, "the run to end", |s| s == "succeeded");
    let out = run["stdout"].as_str().expect("stdout");
    // fds 0-2 are the job's; above them only what the shell opens itself (its saved copy of
    // stdin). No listening socket, store file, notify socket
    // or descriptor inherited from whoever started cronvisor reaches the job.
    for line in out.lines().filter(|l| l.contains(" -> ")) {
        let (left, target) = line.split_once(" -> ").unwrap_or((line, ""));
        let fd: u32 = left
            .split_whitespace()
            .last()
            .and_then(|f| f.parse().ok())
            .expect("fd number");
        if fd <= 2 {
            continue;
        }
        assert!(
            target == "/dev/null",
            "fd {fd} -> {target} leaked into the job:\n{out}"
        );
    }
}
