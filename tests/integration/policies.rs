//! Job policies: timeout, overlap (allow / forbid / replace), retries with backoff, misfire.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{group_survivors, ms, now_ms, wait_for, Cronvisor};

fn by_state<'a>(runs: &'a [Value], state: &str) -> Vec<&'a Value> {
    runs.iter().filter(|r| r["state"] == state).collect()
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let cv = Cronvisor::start("timeout");
    cv.add_job(
        "hang",
        "@yearly",
        "sleep 300 & sleep 300",
        &["--timeout", "1"],
    );
    let id = cv.run_now("hang");
    let pid = cv.wait_running_pid(&id);
    let run = cv.wait_run(&id, "the timeout", |s| s == "timed_out");
    assert_eq!(run["error"], "timed out after 1 s");
    assert!(
        group_survivors(pid).is_empty(),
        "the backgrounded sleep survived"
    );
}

#[test]
fn overlap_forbid_skips_instants_while_a_run_is_going() {
    let cv = Cronvisor::start("overlap-forbid");
    cv.add_job("long", "* * * * * *", "sleep 3", &["--overlap", "forbid"]);
    let runs = wait_for(Duration::from_secs(20), "2 skipped instants", || {
        let runs = cv.runs("long");
        (by_state(&runs, "skipped").len() >= 2).then_some(runs)
    });
    for r in by_state(&runs, "skipped") {
        let err = r["error"].as_str().unwrap_or("");
        assert!(err.contains("still going (overlap = forbid)"), "{r}");
    }
    // Never two runs at once.
    let mut spans: Vec<(i64, i64)> = runs
        .iter()
        .filter(|r| r["started_at"].is_i64())
        .map(|r| {
            (
                ms(r, "started_at"),
                r["ended_at"].as_i64().unwrap_or(i64::MAX),
            )
        })
        .collect();
    spans.sort_unstable();
    for w in spans.windows(2) {
        assert!(w[1].0 >= w[0].1, "two runs overlapped: {spans:?}");
    }
}

#[test]
fn overlap_replace_kills_the_running_one_and_starts_the_new() {
    let cv = Cronvisor::start("overlap-replace");
    cv.add_job(
        "long",
        "*/2 * * * * *",
        "sleep 30",
        &["--overlap", "replace"],
    );
    let runs = wait_for(Duration::from_secs(20), "a replaced run", || {
        let runs = cv.runs("long");
        (!by_state(&runs, "killed").is_empty() && !by_state(&runs, "running").is_empty())
            .then_some(runs)
    });
    let killed = by_state(&runs, "killed")[0];
    assert!(
        killed["error"].as_str().unwrap_or("").contains("replaced"),
        "{killed}"
    );
    assert!(group_survivors(killed["pid"].as_u64().expect("pid") as u32).is_empty());
}

#[test]
fn overlap_allow_runs_side_by_side() {
    let cv = Cronvisor::start("overlap-allow");
    cv.add_job("long", "* * * * * *", "sleep 3", &[]);
    wait_for(Duration::from_secs(20), "two runs at once", || {
        (by_state(&cv.runs("long"), "running").len() >= 2).then_some(())
    });
}

#[test]
fn retries_follow_the_backoff_and_stop_at_the_limit() {
    let cv = Cronvisor::start("retries");
    cv.add_job(
        "flaky",
        "@yearly",
        "exit 7",
        &["--retries", "2", "--retry-backoff", "1s"],
    );
    let first = cv.run_now("flaky");
    let runs = wait_for(Duration::from_secs(30), "three failed attempts", || {
        let runs = cv.runs("flaky");
        (by_state(&runs, "failed").len() == 3).then_some(runs)
    });
    let mut runs = runs;
    runs.sort_by_key(|r| ms(r, "id"));
    let attempts: Vec<i64> = runs.iter().map(|r| ms(r, "attempt")).collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    let first: i64 = first.parse().expect("id");
    assert!(runs[0]["retry_of"].is_null());
    assert_eq!(runs[1]["retry_of"], first);
    assert_eq!(runs[2]["retry_of"], first);
    assert!(runs.iter().all(|r| r["exit_code"] == 7));
    // Backoff: 1 s after the first failure, then 2 s.
    let gap1 = ms(&runs[1], "started_at") - ms(&runs[0], "ended_at");
    let gap2 = ms(&runs[2], "started_at") - ms(&runs[1], "ended_at");
    assert!(gap1 >= 1000, "first retry after {gap1} ms");
    assert!(gap2 >= 2000, "second retry after {gap2} ms");
    // The limit: no fourth attempt was even recorded.
    assert_eq!(cv.runs("flaky").len(), 3);
}

#[test]
fn a_success_ends_the_retry_chain() {
    let cv = Cronvisor::start("retry-success");
    let marker = cv.dir.0.join("marker");
    let command = format!(
        "test -f {m} && echo second || {{ touch {m}; exit 1; }}",
        m = marker.display()
    );
    cv.add_job(
        "once-flaky",
        "@yearly",
        &command,
        &["--retries", "3", "--retry-backoff", "1s"],
    );
    cv.run_now("once-flaky");
    let runs = wait_for(Duration::from_secs(30), "a succeeded retry", || {
        let runs = cv.runs("once-flaky");
        (!by_state(&runs, "succeeded").is_empty()).then_some(runs)
    });
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(by_state(&runs, "failed").len(), 1);
}

/// Two every-second jobs, `catch-up` (misfire = run_once, window 60 s) and `no-catch-up`
/// (misfire = skip), each seen succeeding once.
pub fn add_misfire_jobs(cv: &Cronvisor) {
    cv.add_job(
        "catch-up",
        "* * * * * *",
        "true",
        &["--misfire", "run_once", "--misfire-window", "60s"],
    );
    cv.add_job("no-catch-up", "* * * * * *", "true", &[]);
    cv.wait_succeeded("catch-up", 1);
    cv.wait_succeeded("no-catch-up", 1);
}

#[test]
fn misfire_run_once_catches_up_one_missed_instant_and_skip_does_not() {
    let mut cv = Cronvisor::start("misfire");
    add_misfire_jobs(&cv);
    cv.stop_with(libc::SIGTERM, Duration::from_secs(20));
    // Downtime across several instants (this sleep *is* the outage under test).
    std::thread::sleep(Duration::from_millis(3500));
    let stopped_at = now_ms();
    cv.restart();
    let runs = wait_for(Duration::from_secs(20), "the catch-up run", || {
        let runs = cv.runs("catch-up");
        runs.iter()
            .any(|r| r["trigger"] == "misfire" && r["state"] == "succeeded")
            .then_some(runs)
    });
    let misfires: Vec<&Value> = runs.iter().filter(|r| r["trigger"] == "misfire").collect();
    assert_eq!(misfires.len(), 1, "one catch-up, not a storm: {misfires:?}");
    assert!(ms(misfires[0], "instant") <= stopped_at + 1000);
    assert!(cv
        .runs("no-catch-up")
        .iter()
        .all(|r| r["trigger"] != "misfire"));
}

#[test]
fn a_run_whose_executor_dies_becomes_lost_is_not_retried_and_nothing_stays_running() {
    let cv = Cronvisor::start_with(
        "lost",
        "[executor]\nheartbeat_ms = 200\n[monitor]\nlost_after_ms = 1000\ncheck_interval_ms = 100\n",
    );
    let marker = cv.dir.0.join("second-attempt");
    let command = format!(
        "test -f {m} && echo retried || {{ touch {m}; sleep 30; }}",
        m = marker.display()
    );
    cv.add_job(
        "long",
        "@yearly",
        &command,
        &["--retries", "1", "--retry-backoff", "1s"],
    );
    let id = cv.run_now("long");
    let pid = cv.wait_running_pid(&id);
    let executor = cv.child_pid("executor").expect("executor");
    // SAFETY: kill(2) of the executor child.
    unsafe {
        libc::kill(executor as i32, libc::SIGKILL);
    }
    let run = cv.wait_run(&id, "the run to be marked lost", |s| s == "lost");
    assert!(
        run["error"]
            .as_str()
            .unwrap_or("")
            .contains("executor stopped"),
        "{run}"
    );
    assert!(ms(&run, "ended_at") >= ms(&run, "started_at"));
    assert!(
        run["error"].as_str().unwrap_or("").contains("not retried"),
        "{run}"
    );
    // One alarm for the lost run, one for the executor that vanished.
    let alarms = wait_for(
        Duration::from_secs(10),
        "the lost and executor alarms",
        || {
            let a = cv.json(&["alarms"]);
            let kinds: Vec<String> = a
                .as_array()?
                .iter()
                .map(|x| x["kind"].as_str().unwrap_or("").to_string())
                .collect();
            (kinds.iter().any(|k| k == "lost") && kinds.iter().any(|k| k == "executor_lost"))
                .then_some(a)
        },
    );
    let lost: Vec<&Value> = alarms
        .as_array()
        .map(|a| a.iter().filter(|x| x["kind"] == "lost").collect())
        .unwrap_or_default();
    assert_eq!(lost.len(), 1, "{alarms}");
    assert_eq!(lost[0]["run_id"].to_string(), id);
    // The restarted executor's runs are not mistaken for lost ones.
    cv.add_job("after", "@yearly", "sleep 2; echo fine", &[]);
    let id = cv.run_now("after");
    let run = cv.wait_run(&id, "a run on the new executor", |s| {
        !matches!(s, "scheduled" | "dispatched" | "running")
    });
    assert_eq!(run["state"], "succeeded", "{run}");
    // The restarted executor stopped the lost run's process group (`sleep 30` left behind by
    // the killed one).
    wait_for(
        Duration::from_secs(10),
        "the orphaned group to be stopped",
        || {
            crate::harness::group_survivors(pid)
                .is_empty()
                .then_some(())
        },
    );
    assert!(
        cv.log().contains("whose executor died"),
        "the executor says what it stopped"
    );
    // The job allows a retry, but a run its executor took may have run to its end: it is not
    // retried (a doubled run cannot be undone; the `lost` alarm asks a person).
    assert!(
        cv.runs("long").iter().all(|r| r["attempt"] == 1),
        "{:?}",
        cv.runs("long")
    );
}

#[test]
fn a_run_on_record_as_lost_does_not_keep_running() {
    // What an executor cut off from the store finds when it reaches it again: the monitor gave
    // up on its run. Here the record is changed directly, the executor never left.
    let cv = Cronvisor::start_with(
        "declared-lost",
        "[executor]\nheartbeat_ms = 200\n[monitor]\nlost_after_ms = 1000\n",
    );
    cv.add_job("long", "@yearly", "sleep 300 & sleep 300", &[]);
    let id = cv.run_now("long");
    let pid = cv.wait_running_pid(&id);
    cv.sqlite(&format!("UPDATE runs SET state = 'lost' WHERE id = {id}"));
    wait_for(
        Duration::from_secs(10),
        "the lost run's group to stop",
        || group_survivors(pid).is_empty().then_some(()),
    );
    // The record stays what the fleet decided.
    let run = cv.json(&["run", "show", &id]);
    assert_eq!(run["state"], "lost", "{run}");
    assert!(cv
        .log()
        .contains("recorded lost while this executor could not reach the store"));
}

#[test]
fn an_http_job_records_the_status_and_the_body() {
    let ok = crate::harness::capture::Capture::start(0);
    let failing = crate::harness::capture::Capture::start(100);
    let cv = Cronvisor::start("http-job");
    cv.ok(&[
        "job",
        "add",
        "--name",
        "ping",
        "--schedule",
        "@yearly",
        "--http-url",
        &format!("http://{}/ping?x=1", ok.addr),
        "--http-method",
        "POST",
        "--http-header",
        "X-Token: abc",
        "--http-body",
        "hello",
    ]);
    let id = cv.run_now("ping");
    let run = cv.wait_run(&id, "the HTTP run", |s| {
        !matches!(s, "scheduled" | "dispatched" | "running")
    });
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["exit_code"], 200);
    let got = ok.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].path, "/ping?x=1");
    assert_eq!(got[0].body, "hello");

    cv.ok(&[
        "job",
        "add",
        "--name",
        "broken-endpoint",
        "--schedule",
        "@yearly",
        "--http-url",
        &format!("http://{}/", failing.addr),
    ]);
    let id = cv.run_now("broken-endpoint");
    let run = cv.wait_run(&id, "the failing HTTP run", |s| {
        !matches!(s, "scheduled" | "dispatched" | "running")
    });
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["exit_code"], 500);
    assert_eq!(run["error"], "HTTP status 500 (expected 2xx)");
    // A URL that is not http(s) is refused at once, naming the field.
    let out = cv.cli(&[
        "job",
        "add",
        "--name",
        "ftp",
        "--schedule",
        "@daily",
        "--http-url",
        "ftp://example.test/",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("http_url"));
}
