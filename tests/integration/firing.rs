//! Scheduled firing end to end: rule -> dispatcher -> executor -> recorded run.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::{ms, now_ms, wait_for, Cronvisor};

#[test]
fn a_job_every_second_runs_once_per_instant_with_its_output() {
    let cv = Cronvisor::start("every-second");
    cv.add_job("tick", "* * * * * *", "echo tick $((40+2))", &[]);

    let runs = cv.wait_succeeded("tick", 3);

    // Each scheduled instant appears exactly once.
    let mut per_instant: BTreeMap<i64, usize> = BTreeMap::new();
    for r in &runs {
        *per_instant.entry(ms(r, "instant")).or_default() += 1;
    }
    assert!(
        per_instant.values().all(|&n| n == 1),
        "an instant fired twice: {per_instant:?}"
    );

    // The succeeded ones are on whole seconds, one second apart, with the job's output.
    let mut done: Vec<i64> = runs
        .iter()
        .filter(|r| r["state"] == "succeeded")
        .map(|r| ms(r, "instant"))
        .collect();
    done.sort_unstable();
    assert!(
        done.iter().all(|t| t % 1000 == 0),
        "instants not on whole seconds: {done:?}"
    );
    for pair in done.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            1000,
            "instants not one second apart: {done:?}"
        );
    }
    for r in runs.iter().filter(|r| r["state"] == "succeeded").take(3) {
        let id = r["id"].as_i64().expect("id").to_string();
        let shown = cv.json(&["run", "show", &id]);
        assert_eq!(shown["stdout"], "tick 42\n");
        assert_eq!(shown["exit_code"], 0);
        assert!(ms(&shown, "started_at") >= ms(&shown, "instant"), "{shown}");
        assert!(
            ms(&shown, "ended_at") >= ms(&shown, "started_at"),
            "{shown}"
        );
        assert_eq!(shown["trigger"], "schedule");
    }
}

#[test]
fn pause_resume_run_now_and_delete() {
    let cv = Cronvisor::start("lifecycle-cmds");
    cv.add_job("yearly", "@yearly", "echo by hand", &[]);

    // `job run` triggers now, whatever the schedule.
    let id = cv.run_now("yearly");
    let run = cv.wait_run(&id, "the manual run to succeed", |s| s == "succeeded");
    assert_eq!(run["stdout"], "by hand\n");
    assert_eq!(run["trigger"], "manual");

    // Pause / resume show in the listing.
    assert_eq!(cv.json(&["job", "pause", "yearly"])["paused"], true);
    let listed = cv.json(&["job", "list"]);
    assert_eq!(listed[0]["paused"], true);
    assert_eq!(cv.json(&["job", "resume", "yearly"])["paused"], false);

    // A paused every-second job does not fire; resumed, it does.
    cv.add_job("often", "* * * * * *", "true", &["--paused"]);
    std::thread::sleep(Duration::from_millis(2500)); // two instants pass while paused
    assert!(cv.runs("often").is_empty(), "a paused job fired");
    cv.ok(&["job", "resume", "often"]);
    wait_for(Duration::from_secs(10), "the resumed job to fire", || {
        (!cv.runs("often").is_empty()).then_some(())
    });

    // Delete removes the job.
    cv.ok(&["job", "delete", "yearly"]);
    let out = cv.cli(&["job", "show", "yearly"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no job `yearly`"));
}

#[test]
fn next_prints_instants_in_the_rule_zone() {
    let cv = Cronvisor::start("next");
    let v = cv.json(&[
        "next",
        "0 30 2 * * *",
        "--tz",
        "America/New_York",
        "--count",
        "3",
        "--from",
        "2026-03-07T12:00:00Z",
    ]);
    assert_eq!(
        v,
        serde_json::json!([
            "2026-03-08T03:00:00-04:00",
            "2026-03-09T02:30:00-04:00",
            "2026-03-10T02:30:00-04:00"
        ])
    );
    let text = cv.ok(&[
        "next",
        "0 0 * * 7",
        "--count",
        "1",
        "--from",
        "2026-01-01T00:00:00Z",
    ]);
    assert_eq!(text.trim(), "2026-01-04T00:00:00Z");
}

#[test]
fn a_dispatcher_crash_leaves_no_instant_unaccounted_for() {
    // Restarted 1.5 s after the crash: an instant or two fall due while no dispatcher runs.
    let cv = Cronvisor::start_with(
        "dispatcher-crash",
        "[supervisor]\nrestart_backoff_initial_ms = 1500\n",
    );
    cv.add_job("tick", "* * * * * *", "true", &[]);
    cv.wait_succeeded("tick", 2);
    let before = cv.child_pid("dispatcher").expect("dispatcher");
    // SAFETY: kill(2) of the dispatcher child.
    unsafe {
        libc::kill(before as i32, libc::SIGKILL);
    }
    let killed_at = now_ms();
    wait_for(Duration::from_secs(10), "a new dispatcher", || {
        cv.child_pid("dispatcher").filter(|&p| p != before)
    });
    let runs = wait_for(Duration::from_secs(20), "runs after the restart", || {
        let runs = cv.runs("tick");
        runs.iter()
            .any(|r| r["state"] == "succeeded" && ms(r, "instant") > killed_at + 3000)
            .then_some(runs)
    });
    // Every second from the first instant to the last is accounted for: run, or covered by a
    // `missed` record whose count spans the gap before it.
    let mut recorded: Vec<(i64, &serde_json::Value)> =
        runs.iter().map(|r| (ms(r, "instant"), r)).collect();
    recorded.sort_by_key(|(i, _)| *i);
    for pair in recorded.windows(2) {
        let ((prev, _), (cur, run)) = (pair[0], pair[1]);
        let covered = if run["state"] == "missed" {
            let error = run["error"].as_str().unwrap_or("");
            error
                .strip_prefix("missed: ")
                .and_then(|e| e.split_whitespace().next())
                .and_then(|n| n.parse::<i64>().ok())
                .unwrap_or(0)
        } else {
            1
        };
        assert_eq!(
            cur - prev,
            covered * 1000,
            "instants between {prev} and {cur} are unaccounted for: {run}"
        );
    }
}

#[test]
fn fired_by_names_the_configured_host() {
    let cv = Cronvisor::start_with("fired-by", "host = \"cron74\"\n");
    cv.add_job("tick", "* * * * * *", "true", &[]);
    cv.wait_succeeded("tick", 1);
    let fired_by = cv.sqlite("SELECT fired_by FROM runs ORDER BY id LIMIT 1");
    assert!(fired_by.starts_with("cron74/"), "{fired_by}");
}
