//! Runs while they go: `run tail --follow` prints a run's lines as it prints them, resumes
//! across reloads of the monitor and the executor with no line lost or doubled, and exits with
//! the run's outcome; `run kill` ends a run `killed`.

use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::{http, wait_for, Cronvisor};

/// The lines a child prints, as they come (a thread reads them).
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits (bounded) for a child to exit; its exit code and stderr.
fn finish(mut child: Child, limit: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return (status.code(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("child still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn run_tail_follow_prints_lines_as_the_run_prints_them_and_exits_with_its_status() {
    let cv = Cronvisor::start("live-tail");
    cv.add_job(
        "counter",
        "@yearly",
        "for i in $(seq 1 20); do echo line $i; sleep 0.1; done; echo oops >&2; exit 3",
        &[],
    );
    let id = cv.run_now("counter");
    let mut tail = cv.cli_spawn(&["run", "tail", &id, "--follow"]);
    let lines = lines_of(&mut tail);
    let first = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("a first line");
    assert_eq!(first, "line 1");
    // Live: the first line is here while the run is still going (recorded `running` once it
    // has gone 200 ms; `dispatched` before).
    let run = cv.json(&["run", "show", &id]);
    assert!(
        matches!(run["state"].as_str(), Some("running" | "dispatched")),
        "{run}"
    );
    let mut got = vec![first];
    while let Ok(l) = lines.recv_timeout(Duration::from_secs(20)) {
        got.push(l);
    }
    let (code, err) = finish(tail, Duration::from_secs(20));
    let want: Vec<String> = (1..=20).map(|i| format!("line {i}")).collect();
    assert_eq!(got, want);
    assert_eq!(code, Some(3), "the run's exit code: {err}");
    assert!(err.contains("oops"), "{err}");
    assert!(
        err.contains(&format!("run {id} failed (exit code 3)")),
        "{err}"
    );

    // Once it ended, `run tail` prints the stored output, and the API gives it as JSON.
    assert_eq!(cv.ok(&["run", "tail", &id]).lines().count(), 20);
    let (status, body) = http(
        &cv.endpoint("api"),
        "GET",
        &format!("/api/v1/runs/{id}/output?from=8.0"),
        Some(&cv.token()),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    // From byte 8 of stdout ("line 1\nl|ine 2..."): nothing before it comes again.
    assert!(
        v["chunks"][0]["text"]
            .as_str()
            .unwrap_or("")
            .starts_with("ine 2\n"),
        "{v}"
    );
    let (status, body) = http(
        &cv.endpoint("api"),
        "GET",
        &format!("/api/v1/runs/{id}/output?from=eight"),
        Some(&cv.token()),
        None,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"field\":\"from\""), "{body}");
}

#[test]
fn a_tail_resumes_across_reloads_with_no_line_lost_or_doubled() {
    let cv = Cronvisor::start("live-reload");
    cv.add_job(
        "long",
        "@yearly",
        "for i in $(seq 1 80); do echo tick $i; sleep 0.1; done",
        &[],
    );
    let id = cv.run_now("long");
    let mut tail = cv.cli_spawn(&["run", "tail", &id, "--follow"]);
    let lines = lines_of(&mut tail);
    let mut got = Vec::new();
    // Two reloads while the run prints: each replaces the monitor (the stream ends and the
    // CLI reconnects from its last event id) and the executor (the old one drains with the
    // run; its output then comes from the store).
    for generation in [2, 3] {
        got.push(lines.recv_timeout(Duration::from_secs(20)).expect("a line"));
        assert!(cv.cli(&["reload"]).status.success(), "{}", cv.log());
        wait_for(Duration::from_secs(20), "the new generation", || {
            (cv.status()["generation"] == generation).then_some(())
        });
        // Still live: lines keep coming while the run goes on in the draining executor.
        got.push(lines.recv_timeout(Duration::from_secs(20)).expect("a line"));
        got.push(lines.recv_timeout(Duration::from_secs(20)).expect("a line"));
        let run = cv.json(&["run", "show", &id]);
        assert_eq!(run["state"], "running", "after reload {generation}: {run}");
    }
    while let Ok(l) = lines.recv_timeout(Duration::from_secs(20)) {
        got.push(l);
    }
    let (code, err) = finish(tail, Duration::from_secs(20));
    let want: Vec<String> = (1..=80).map(|i| format!("tick {i}")).collect();
    assert_eq!(got, want, "stderr: {err}");
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn run_kill_ends_a_run_killed_and_refuses_one_that_ended() {
    let cv = Cronvisor::start("live-kill");
    cv.add_job("sleeper", "@yearly", "echo started; sleep 300", &[]);
    let id = cv.run_now("sleeper");
    let pid = cv.wait_running_pid(&id);
    let mut tail = cv.cli_spawn(&["run", "tail", &id, "--follow"]);
    let lines = lines_of(&mut tail);
    assert_eq!(
        lines.recv_timeout(Duration::from_secs(20)).expect("line"),
        "started"
    );
    let out = cv.ok(&["run", "kill", &id]);
    assert_eq!(
        out,
        format!("run {id} asked to stop (see: cronvisor run show {id})\n")
    );
    let run = cv.wait_run(&id, "the run to be killed", |s| s == "killed");
    assert_eq!(run["error"], "killed: by an operator");
    assert!(!crate::harness::alive(pid));
    let (code, err) = finish(tail, Duration::from_secs(20));
    assert_eq!(code, Some(137), "{err}");
    let again = cv.cli(&["run", "kill", &id]);
    assert!(!again.status.success());
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        format!("error: run {id} already ended (killed)\n")
    );
    let missing = cv.cli(&["run", "kill", "999999"]);
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "error: no run 999999\n"
    );
}
