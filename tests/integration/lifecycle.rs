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

/// A run on record as `dispatched` (what a dispatcher does before it sends it), for a request
/// sent to the executor by hand; its id.
fn dispatched_run(cv: &Cronvisor, job: &str, id: i64, state: &str, executor: &str) -> i64 {
    dispatched_run_of(cv, job, "true", id, state, executor)
}

/// As [`dispatched_run`], of a job running `command`.
fn dispatched_run_of(
    cv: &Cronvisor,
    job: &str,
    command: &str,
    id: i64,
    state: &str,
    executor: &str,
) -> i64 {
    cv.add_job(job, "@yearly", command, &[]);
    let executor = if executor.is_empty() {
        "NULL".to_string()
    } else {
        format!("'{executor}'")
    };
    // Again while another role holds SQLite's write lock: the CLI does not wait for it.
    wait_for(Duration::from_secs(10), "the run on record", || {
        cv.sqlite(&format!(
            "INSERT OR IGNORE INTO runs (id, job_id, instant, target, trigger_kind, state, \
             executor, created_at, dispatched_at, stdout, stderr) SELECT {id}, id, 1000, '', \
             'manual', '{state}', {executor}, 1000, 1000, '', '' FROM jobs WHERE name = '{job}'"
        ));
        (cv.sqlite(&format!("SELECT state FROM runs WHERE id = {id}")) == format!("{state}\n"))
            .then_some(())
    });
    id
}

/// Posts one run request for `run_id` to the executor; the answer.
fn post_run(cv: &Cronvisor, run_id: i64, marker: &std::path::Path) -> serde_json::Value {
    post_command(cv, run_id, &format!("echo once >> {}", marker.display()))
}

/// Posts one run request for `run_id` (of its job, as the store has it) with `command`.
fn post_command(cv: &Cronvisor, run_id: i64, command: &str) -> serde_json::Value {
    let token = std::fs::read_to_string(cv.data_dir().join("rpc.token")).expect("rpc token");
    let job = cv.sqlite(&format!(
        "SELECT j.id || ' ' || j.name FROM runs r JOIN jobs j ON j.id = r.job_id WHERE r.id = {run_id}"
    ));
    let (job_id, job_name) = job.trim().split_once(' ').expect("the run's job");
    let body = serde_json::json!({"runs": [{
        "run_id": run_id, "job_id": job_id.parse::<i64>().expect("id"), "job_name": job_name,
        "instant": 1000, "command": command, "timeout_secs": null, "retry_backoff_secs": 10
    }]})
    .to_string();
    let (code, reply) = http(
        &cv.endpoint("rpc"),
        "POST",
        "/rpc/v1/runs",
        Some(token.trim()),
        Some(&body),
    );
    assert_eq!(code, 202, "{reply}");
    serde_json::from_str(&reply).expect("json")
}

#[test]
fn a_retried_rpc_never_starts_a_run_twice() {
    let cv = Cronvisor::start("rpc-retry");
    let marker = cv.dir.0.join("marker");
    let command = format!("echo once >> {}", marker.display());
    let id = dispatched_run_of(&cv, "x", &command, 424242, "dispatched", "");
    let first = post_run(&cv, id, &marker);
    assert!(first["accepted"][0]["pid"].is_i64(), "started: {first}");
    let second = post_run(&cv, id, &marker);
    assert_eq!(second["accepted"][0]["run_id"], id);
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

/// Found by the chaos suite: a request that reaches an executor late (its process was paused
/// with the request in its socket, and the dispatcher gave up and sent the run elsewhere) is
/// not run again. The executor starts a run only once the store names it the run's executor.
#[test]
fn a_request_for_a_run_taken_elsewhere_or_ended_is_not_run() {
    let cv = Cronvisor::start("rpc-late");
    let marker = cv.dir.0.join("marker");
    let taken = dispatched_run(&cv, "taken", 5001, "dispatched", "other/127.0.0.1:1/1");
    let reply = post_run(&cv, taken, &marker);
    assert_eq!(
        reply["accepted"][0]["executor"], "other/127.0.0.1:1/1",
        "answered with the executor that has it: {reply}"
    );
    assert!(reply["accepted"][0]["pid"].is_null(), "{reply}");
    let failed = dispatched_run(&cv, "gave-up", 5002, "failed", "");
    let reply = post_run(&cv, failed, &marker);
    assert_eq!(reply["not_started"], serde_json::json!([failed]), "{reply}");
    assert_eq!(reply["accepted"], serde_json::json!([]), "{reply}");
    // The answer comes after the spawns: nothing was spawned for either.
    assert!(!marker.exists(), "a late request was run");
    assert_eq!(
        cv.sqlite(&format!("SELECT state FROM runs WHERE id = {failed}")),
        "failed\n"
    );
}

/// The review's "executor runs any command it is sent": a request holding the RPC token but
/// asking for another command than the run's job has is refused and recorded, and nothing of
/// it runs; a dispatcher's copy from just before an edit runs the job as stored now.
#[test]
fn an_executor_runs_only_the_stored_work_of_a_run() {
    let cv = Cronvisor::start("rpc-forged");
    let (stored, forged) = (cv.dir.0.join("stored"), cv.dir.0.join("forged"));
    let command = format!("echo stored >> {}", stored.display());
    let other = format!("echo forged >> {}", forged.display());
    // A run recorded now of a job unchanged for an hour.
    let id = dispatched_run_of(&cv, "victim", &command, 6001, "dispatched", "");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    cv.sqlite(&format!(
        "UPDATE runs SET created_at = {now} WHERE id = {id}; \
         UPDATE jobs SET updated_at = {} WHERE name = 'victim'",
        now - 3_600_000
    ));
    let reply = post_command(&cv, id, &other);
    assert_eq!(reply["failed"], serde_json::json!([id]), "{reply}");
    let run = cv.wait_run(&id.to_string(), "the refused run", |s| s == "failed");
    assert_eq!(
        run["error"], "refused: the request's command differs from the job's as stored (not run)",
        "{run}"
    );
    // A copy from just before an edit (the run recorded before the job's change): the job as
    // stored runs, not the copy.
    let raced = dispatched_run_of(&cv, "edited", &command, 6002, "dispatched", "");
    let reply = post_command(&cv, raced, &other);
    assert!(reply["accepted"][0]["pid"].is_i64(), "{reply}");
    cv.wait_run(&raced.to_string(), "the raced run", |s| s == "succeeded");
    assert_eq!(
        std::fs::read_to_string(&stored).expect("stored ran"),
        "stored\n"
    );
    assert!(!forged.exists(), "a command the job does not have was run");
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

/// The chaos suite's stale request, end to end: an executor paused (SIGSTOP) with a run's
/// request in its socket, whose sender's connection stays open (its FIN lost in a partition, as
/// in the chaos run); meanwhile the dispatcher gives up and records the run `failed`. Resumed,
/// the executor reads the request and does not run it: the store has the run ended.
#[test]
fn a_paused_executor_does_not_run_a_request_the_dispatcher_gave_up_on() {
    use std::io::{Read, Write};
    let cv = Cronvisor::start("stale-request");
    let marker = cv.dir.0.join("marker");
    let id = dispatched_run(&cv, "late", 7001, "dispatched", "");
    let pid = cv.child_pid("executor").expect("executor") as i32;
    // SAFETY: kill(2) of the executor child (stop, then continue).
    unsafe {
        libc::kill(pid, libc::SIGSTOP);
    }
    let token = std::fs::read_to_string(cv.data_dir().join("rpc.token")).expect("rpc token");
    let body = serde_json::json!({"runs": [{
        "run_id": id, "job_id": 1, "job_name": "late", "instant": 1000,
        "command": format!("echo ran >> {}", marker.display()), "timeout_secs": null
    }]})
    .to_string();
    let mut conn = std::net::TcpStream::connect(cv.endpoint("rpc")).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        conn,
        "POST /rpc/v1/runs HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        token.trim(),
        body.len()
    )
    .expect("send");
    // What a dispatcher that gave up on the request records (again while another role holds
    // SQLite's write lock: the CLI does not wait for it).
    wait_for(Duration::from_secs(10), "the run recorded failed", || {
        cv.sqlite(&format!(
            "UPDATE runs SET state = 'failed', error = 'no executor took the run' WHERE id = {id}"
        ));
        (cv.sqlite(&format!("SELECT state FROM runs WHERE id = {id}")) == "failed\n").then_some(())
    });
    unsafe {
        libc::kill(pid, libc::SIGCONT);
    }
    let mut reply = String::new();
    conn.read_to_string(&mut reply)
        .expect("the executor's answer");
    assert!(reply.starts_with("HTTP/1.1 202"), "{reply}");
    assert!(
        reply.contains(&format!("\"not_started\":[{id}]")),
        "{reply}"
    );
    assert!(!marker.exists(), "the request given up on was run");
    assert_eq!(
        cv.sqlite(&format!("SELECT state FROM runs WHERE id = {id}")),
        "failed\n"
    );
}
