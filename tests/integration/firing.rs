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
    assert_every_second_accounted_for(&runs);
}

/// Every second from a job's first instant to its last is accounted for: a run, or covered by
/// a `missed` record whose count spans the gap before it.
fn assert_every_second_accounted_for(runs: &[serde_json::Value]) {
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

/// A dispatcher that falls behind (its host paused: SIGSTOP) does not fire everything it slept
/// through at once: instants found later than `late_grace` follow the misfire policy — one
/// `missed` record with the count (`skip`), one catch-up run (`run_once`).
#[test]
fn a_paused_dispatcher_applies_the_misfire_policy_to_what_it_slept_through() {
    let cv = Cronvisor::start_with("paused", "[dispatcher]\nlate_grace = \"1s\"\n");
    cv.add_job("skipper", "* * * * * *", "true", &[]);
    cv.add_job("catcher", "* * * * * *", "true", &["--misfire", "run_once"]);
    cv.wait_succeeded("skipper", 2);
    let pid = cv.child_pid("dispatcher").expect("dispatcher");
    // SAFETY: kill(2) of the dispatcher child (stop, then continue).
    unsafe {
        libc::kill(pid as i32, libc::SIGSTOP);
    }
    let paused_at = now_ms();
    std::thread::sleep(Duration::from_secs(6)); // the fault under test: six seconds pass
    unsafe {
        libc::kill(pid as i32, libc::SIGCONT);
    }
    let resumed_at = now_ms();
    let skipper = wait_for(
        Duration::from_secs(20),
        "the missed record and later runs",
        || {
            let runs = cv.runs("skipper");
            (runs.iter().any(|r| r["state"] == "missed")
                && runs
                    .iter()
                    .any(|r| r["state"] == "succeeded" && ms(r, "instant") > resumed_at + 2000))
            .then_some(runs)
        },
    );
    let slept = |r: &&serde_json::Value| {
        let t = ms(r, "instant");
        t > paused_at + 1000 && t < resumed_at - 2000
    };
    let missed: Vec<_> = skipper.iter().filter(|r| r["state"] == "missed").collect();
    assert_eq!(missed.len(), 1, "{missed:?}");
    let reason = missed[0]["error"].as_str().unwrap_or("");
    assert!(reason.contains("while this dispatcher was"), "{reason}");
    assert!(
        skipper.iter().filter(slept).all(|r| r["state"] == "missed"),
        "instants slept through were fired late: {skipper:?}"
    );
    assert_every_second_accounted_for(&skipper);

    let catcher = wait_for(Duration::from_secs(20), "the catch-up run", || {
        let runs = cv.runs("catcher");
        runs.iter()
            .any(|r| r["trigger"] == "misfire" && r["state"] == "succeeded")
            .then_some(runs)
    });
    let catch_ups = catcher.iter().filter(|r| r["trigger"] == "misfire").count();
    assert_eq!(catch_ups, 1, "{catcher:?}");
    assert!(
        catcher
            .iter()
            .filter(slept)
            .all(|r| r["trigger"] == "misfire"),
        "instants slept through were fired late: {catcher:?}"
    );
}

#[test]
fn fired_by_names_the_configured_host() {
    let cv = Cronvisor::start_with("fired-by", "host = \"cron74\"\n");
    cv.add_job("tick", "* * * * * *", "true", &[]);
    cv.wait_succeeded("tick", 1);
    let fired_by = cv.sqlite("SELECT fired_by FROM runs ORDER BY id LIMIT 1");
    assert!(fired_by.starts_with("cron74/"), "{fired_by}");
}

/// Holds SQLite's write lock (another process, as a backup tool or a stuck writer would) for
/// the given seconds: `locked` on stdout once held.
const HOLD_WRITE_LOCK: &str = "import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
c.execute('BEGIN EXCLUSIVE')
print('locked', flush=True)
time.sleep(float(sys.argv[2]))
c.execute('ROLLBACK')
";

/// The store unavailable for writes while instants come due, longer than the delivery timeout:
/// the instants are held, and once the store is back every second is accounted for — a
/// `missed` record with the count (`skip`), one catch-up run (`run_once`) — never a gap.
#[test]
fn instants_due_while_the_store_is_unavailable_are_recorded_once_it_is_back() {
    let cv = Cronvisor::start_with(
        "store-away",
        "[dispatcher]\ndelivery_timeout = \"3s\"\nconnect_timeout = \"1s\"\nlate_grace = \"2s\"\n",
    );
    cv.add_job("skipper", "* * * * * *", "true", &[]);
    cv.add_job("catcher", "* * * * * *", "true", &["--misfire", "run_once"]);
    cv.wait_succeeded("skipper", 2);
    cv.wait_succeeded("catcher", 1);
    let db = cv.data_dir().join("cronvisor.db");
    let mut locker = std::process::Command::new("python3")
        .args(["-c", HOLD_WRITE_LOCK])
        .arg(&db)
        .arg("14")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(locker.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("read");
    assert_eq!(line.trim(), "locked");
    let locked_at = now_ms();
    let status = locker.wait().expect("locker ends");
    assert!(status.success());
    let released_at = now_ms();
    let skipper = wait_for(
        Duration::from_secs(40),
        "the missed record and runs after the outage",
        || {
            let runs = cv.runs("skipper");
            (runs
                .iter()
                .any(|r| r["state"] == "missed" && ms(r, "instant") > locked_at + 5000)
                && runs
                    .iter()
                    .any(|r| r["state"] == "succeeded" && ms(r, "instant") > released_at + 3000))
            .then_some(runs)
        },
    );
    assert_every_second_accounted_for(&skipper);
    let missed: Vec<&serde_json::Value> =
        skipper.iter().filter(|r| r["state"] == "missed").collect();
    // Held by the failed records, or found late by a loop whose store calls waited.
    let reason = |r: &serde_json::Value| r["error"].as_str().unwrap_or("").to_string();
    assert!(
        missed
            .iter()
            .any(|r| reason(r).contains("the store was unavailable")),
        "{missed:?}"
    );
    assert!(
        missed.iter().all(|r| {
            let e = reason(r);
            e.contains("the store was unavailable") || e.contains("this dispatcher was")
        }),
        "{missed:?}"
    );
    let catcher = wait_for(Duration::from_secs(20), "the catch-up run", || {
        let runs = cv.runs("catcher");
        runs.iter()
            .any(|r| r["trigger"] == "misfire" && r["state"] == "succeeded")
            .then_some(runs)
    });
    // Every instant of the outage is either fired before the lock, the catch-up run, or
    // fired after: none fired twice, and one catch-up (or one per failed attempt to record).
    let mut instants: Vec<i64> = catcher.iter().map(|r| ms(r, "instant")).collect();
    let n = instants.len();
    instants.sort_unstable();
    instants.dedup();
    assert_eq!(instants.len(), n, "an instant fired twice: {catcher:?}");
    assert!(
        catcher.iter().filter(|r| r["trigger"] == "misfire").count() >= 1,
        "{catcher:?}"
    );
}

/// The wall clock stepped under a running system (issue 16, item 2): forward 20 s — the
/// instants stepped over follow the misfire policy (one `missed` record with the count), not
/// a burst of 20 runs; back 3 s — logged, no instant fired twice, firing resumes.
#[test]
fn a_clock_stepped_forward_or_back_neither_bursts_nor_fires_twice() {
    let clock = crate::harness::TempDir::new("faketime");
    let offset = clock.0.join("offset");
    std::fs::write(&offset, "+0\n").expect("offset");
    let env = crate::harness::faketime_env(&offset);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cv = Cronvisor::start_with_env("clock-step", "[dispatcher]\nlate_grace = \"2s\"\n", &env);
    cv.add_job("tick", "* * * * * *", "true", &[]);
    cv.wait_succeeded("tick", 2);
    std::fs::write(&offset, "+20\n").expect("step forward");
    let runs = wait_for(Duration::from_secs(20), "the missed record", || {
        let runs = cv.runs("tick");
        runs.iter().any(|r| r["state"] == "missed").then_some(runs)
    });
    let missed: Vec<&serde_json::Value> = runs.iter().filter(|r| r["state"] == "missed").collect();
    assert_eq!(missed.len(), 1, "{missed:?}");
    let reason = missed[0]["error"].as_str().unwrap_or("");
    assert!(reason.contains("behind"), "{reason}");
    let count: i64 = reason
        .strip_prefix("missed: ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!((15..=21).contains(&count), "{reason}");
    // No burst: the instants still within the 2 s grace fire at once (three at most), the
    // others were counted into the missed record.
    let mut created: Vec<i64> = runs
        .iter()
        .filter(|r| r["state"] != "missed")
        .map(|r| ms(r, "created_at"))
        .collect();
    created.sort_unstable();
    assert!(
        created.windows(4).all(|w| w[3] - w[0] >= 100),
        "a burst: {created:?}"
    );
    let before_back = runs.iter().map(|r| ms(r, "instant")).max().unwrap_or(0);
    std::fs::write(&offset, "+17\n").expect("step back");
    let runs = wait_for(Duration::from_secs(20), "firing to resume", || {
        let runs = cv.runs("tick");
        runs.iter()
            .any(|r| r["state"] == "succeeded" && ms(r, "instant") > before_back + 1000)
            .then_some(runs)
    });
    let mut instants: Vec<i64> = runs.iter().map(|r| ms(r, "instant")).collect();
    let n = instants.len();
    instants.sort_unstable();
    instants.dedup();
    assert_eq!(instants.len(), n, "an instant fired twice");
    assert_every_second_accounted_for(&runs);
    assert!(cv.log().contains("the clock stepped back"), "logged");
}

/// A hole in a job's history — an instant with no record while the next ones fired as usual
/// (a dispatcher locked it and died before recording it: found by the chaos suite, seed 11) —
/// is found by the monitor's gap check and recorded `missed`, once the dispatchers are done
/// with it.
#[test]
fn an_instant_that_fell_between_dispatchers_is_recorded_missed_by_the_gap_check() {
    let cv = Cronvisor::start_with(
        "gap-check",
        "[dispatcher]\ndelivery_timeout = \"2s\"\nconnect_timeout = \"500ms\"\nlate_grace = \"1s\"\n\
         [cluster]\nlock_ttl = \"1s\"\n",
    );
    cv.add_job("tick", "* * * * * *", "true", &[]);
    let runs = cv.wait_succeeded("tick", 2);
    // The record of one instant vanishes, as if its dispatcher had never written it.
    let hole = runs
        .iter()
        .filter(|r| r["state"] == "succeeded")
        .map(|r| ms(r, "instant"))
        .max()
        .unwrap_or(0);
    cv.sqlite(&format!("DELETE FROM runs WHERE instant = {hole}"));
    let run = wait_for(Duration::from_secs(45), "the gap check's record", || {
        cv.runs("tick")
            .into_iter()
            .find(|r| ms(r, "instant") == hole)
    });
    assert_eq!(run["state"], "missed", "{run}");
    assert!(
        run["error"].as_str().unwrap_or("").contains("gap check"),
        "{run}"
    );
    // Only that one: every other second has its record.
    assert_every_second_accounted_for(&cv.runs("tick"));
}

/// A rare job's hole (issue 28): a daily job's instant with no record, and nothing after it
/// for a day, is found by the monitor's per-job cursor within seconds (the span check, which
/// needs a record after the hole, would find it a day later).
#[test]
fn a_daily_jobs_instant_without_a_record_is_recorded_missed_by_its_cursor() {
    let cv = Cronvisor::start_with(
        "gap-daily",
        "[dispatcher]\ndelivery_timeout = \"2s\"\nconnect_timeout = \"500ms\"\nlate_grace = \"1s\"\n\
         [cluster]\nlock_ttl = \"1s\"\n",
    );
    // Once a day, 15 s from now (UTC).
    let at = chrono::Utc::now() + chrono::Duration::seconds(15);
    let rule = at.format("%-S %-M %-H * * *").to_string();
    cv.add_job("daily", &rule, "true", &[]);
    let run = wait_for(Duration::from_secs(40), "the daily run", || {
        cv.runs("daily")
            .into_iter()
            .find(|r| r["state"] == "succeeded")
    });
    let instant = ms(&run, "instant");
    // Its record vanishes, as if no dispatcher had written it.
    cv.sqlite(&format!("DELETE FROM runs WHERE instant = {instant}"));
    let found = wait_for(Duration::from_secs(45), "the cursor check's record", || {
        cv.runs("daily")
            .into_iter()
            .find(|r| ms(r, "instant") == instant)
    });
    assert_eq!(found["state"], "missed", "{found}");
    assert!(
        found["error"].as_str().unwrap_or("").contains("gap check"),
        "{found}"
    );
    assert_eq!(cv.runs("daily").len(), 1, "only that instant");
}

/// A fleet past the memory bounds (`dispatcher.jobs_kept`, `rules_kept`; here 0, so every
/// job is past them): each job fires from its schedule alone, read whole from the store when
/// it fires, and an edit reaches its next runs as usual.
#[test]
fn a_dispatcher_that_keeps_no_whole_job_fires_each_from_the_store() {
    let cv = Cronvisor::start_with("bounded", "[dispatcher]\njobs_kept = 0\nrules_kept = 0\n");
    cv.add_job("old", "* * * * * *", "echo before", &[]);
    cv.wait_succeeded("old", 2);
    cv.ok(&["job", "edit", "old", "--command", "echo after"]);
    let runs = wait_for(
        Duration::from_secs(20),
        "a run of the edited command",
        || {
            let runs = cv.runs("old");
            let newest = runs.iter().find(|r| r["state"] == "succeeded")?;
            let shown = cv.json(&["run", "show", &newest["id"].to_string()]);
            (shown["stdout"] == "after\n").then_some(runs)
        },
    );
    let mut per_instant: BTreeMap<i64, usize> = BTreeMap::new();
    for r in &runs {
        *per_instant.entry(ms(r, "instant")).or_default() += 1;
    }
    assert!(per_instant.values().all(|&n| n == 1), "{per_instant:?}");
    // A manual run of a job not kept is read from the store too.
    let id = cv.run_now("old");
    cv.wait_run(&id, "the manual run", |s| s == "succeeded");
}
