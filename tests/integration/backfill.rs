//! Backfills and retries through the binary: each past instant of a range run once, in order,
//! a few at a time, across a kill -9 of the dispatcher and of the supervisor; a second
//! backfill adds nothing; cancel; every refusal naming its field; `run retry`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{alive, now_ms, wait_for, Cronvisor};

const DAY: i64 = 86_400_000;

/// `YYYY-MM-DD` of `days` ago (UTC).
fn date(days_ago: i64) -> String {
    chrono::DateTime::from_timestamp_millis(now_ms() - days_ago * DAY)
        .expect("time")
        .format("%Y-%m-%d")
        .to_string()
}

fn backfill(cv: &Cronvisor, id: &str) -> Value {
    cv.json(&["backfill", "show", id])
}

fn wait_ended(cv: &Cronvisor, id: &str, limit: Duration) -> Value {
    wait_for(limit, "the backfill to end", || {
        let b = backfill(cv, id);
        (b["state"] != "running").then_some(b)
    })
}

/// The backfill's runs by instant: (state, attempt) of each row.
fn runs_by_instant(cv: &Cronvisor, id: &str) -> BTreeMap<i64, Vec<(String, i64)>> {
    let rows = cv.sqlite(&format!(
        "SELECT instant, state, attempt FROM runs WHERE backfill_id = {id} ORDER BY instant"
    ));
    let mut out: BTreeMap<i64, Vec<(String, i64)>> = BTreeMap::new();
    for line in rows.lines().filter(|l| !l.is_empty()) {
        let cols: Vec<&str> = line.split('|').collect();
        out.entry(cols[0].parse().expect("instant"))
            .or_default()
            .push((cols[1].to_string(), cols[2].parse().expect("attempt")));
    }
    out
}

fn kill9(pid: u32) {
    // SAFETY: kill(2) of a process this test started.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

#[test]
fn a_backfill_runs_each_past_instant_once_across_kills_and_a_second_adds_nothing() {
    let mut cv = Cronvisor::start("backfill");
    let seen = cv.data_dir().join("seen.txt");
    cv.add_job(
        "daily",
        "0 0 3 * * *",
        &format!("echo $CRONVISOR_INSTANT >> {}; sleep 0.3", seen.display()),
        &["--tz", "UTC"],
    );
    // 30 days, three at a time.
    let (from, to) = (date(31), date(2));
    let out = cv.ok(&[
        "job",
        "backfill",
        "daily",
        "--from",
        &from,
        "--to",
        &to,
        "--parallel",
        "3",
    ]);
    assert!(
        out.starts_with("backfill 1 of `daily` recorded: 30 instants from "),
        "{out}"
    );
    assert!(
        out.contains(", 3 at a time (see: cronvisor backfill show 1)"),
        "{out}"
    );
    // A kill -9 of the dispatcher once it is under way, then of the whole supervisor.
    wait_for(Duration::from_secs(30), "a few instants run", || {
        (backfill(&cv, "1")["succeeded"].as_i64() >= Some(3)).then_some(())
    });
    kill9(cv.child_pid("dispatcher").expect("dispatcher"));
    wait_for(Duration::from_secs(30), "more instants run", || {
        (backfill(&cv, "1")["succeeded"].as_i64() >= Some(12)).then_some(())
    });
    let roles = cv.role_pids();
    cv.stop_with(libc::SIGKILL, Duration::from_secs(10));
    for pid in roles {
        if alive(pid) {
            kill9(pid);
        }
    }
    cv.restart();
    let b = wait_ended(&cv, "1", Duration::from_secs(90));
    assert_eq!(b["state"], "done", "{b}");
    assert_eq!(b["total"], 30);
    assert_eq!(b["queued"], 30);
    // Every instant of the range has one run (a run lost in the supervisor's kill is not run
    // again: it is recorded, as any run presumed lost), oldest first, none twice.
    let runs = runs_by_instant(&cv, "1");
    assert_eq!(runs.len(), 30, "{runs:?}");
    let first = chrono::NaiveDate::parse_from_str(&from, "%Y-%m-%d")
        .expect("date")
        .and_hms_opt(3, 0, 0)
        .expect("time")
        .and_utc()
        .timestamp_millis();
    for (i, (instant, rows)) in runs.iter().enumerate() {
        assert_eq!(*instant, first + i as i64 * DAY);
        assert_eq!(rows.len(), 1, "instant {instant}: {rows:?}");
    }
    let lines = std::fs::read_to_string(&seen).expect("seen");
    let mut started: Vec<&str> = lines.lines().collect();
    let all = started.len();
    started.sort_unstable();
    started.dedup();
    assert_eq!(started.len(), all, "an instant started twice: {lines}");
    let succeeded = runs.values().filter(|r| r[0].0 == "succeeded").count();
    assert!(all >= succeeded && succeeded >= 20, "{all} {succeeded}");
    // Each run carries its instant and says which backfill it is of.
    let one = cv.runs("daily");
    let r = one
        .iter()
        .find(|r| r["state"] == "succeeded")
        .expect("a run");
    assert_eq!(r["trigger"], "backfill");
    let text = cv.ok(&["run", "show", &r["id"].to_string()]);
    assert!(text.contains("trigger:    backfill"), "{text}");
    assert!(
        text.contains("backfill:   1 (see: cronvisor backfill show 1)"),
        "{text}"
    );
    // The same range again: every instant that succeeded is left out.
    let plan = cv.ok(&[
        "job",
        "backfill",
        "daily",
        "--from",
        &from,
        "--to",
        &to,
        "--dry-run",
    ]);
    assert!(
        plan.starts_with(&format!(
            "`daily` would run {} of 30 instants ({succeeded} already succeeded: left out, \
             --all runs them too):",
            30 - succeeded
        )),
        "{plan}"
    );
    assert!(plan.contains("  already succeeded\n"), "{plan}");
    let again = cv.json(&["job", "backfill", "daily", "--from", &from, "--to", &to]);
    let id2 = again["id"].to_string();
    let b2 = wait_ended(&cv, &id2, Duration::from_secs(60));
    assert_eq!(b2["skipped"].as_i64(), Some(succeeded as i64), "{b2}");
    assert_eq!(b2["queued"].as_i64(), Some(30 - succeeded as i64), "{b2}");
    // --all runs two days again; the list shows the three.
    let b3 = cv.json(&[
        "job",
        "backfill",
        "daily",
        "--from",
        &date(3),
        "--to",
        &date(2),
        "--all",
    ]);
    let b3 = wait_ended(&cv, &b3["id"].to_string(), Duration::from_secs(60));
    assert_eq!(
        (b3["queued"].as_i64(), b3["skipped"].as_i64()),
        (Some(2), Some(0))
    );
    assert_eq!(b3["succeeded"], 2, "{b3}");
    let list = cv.ok(&["backfill", "list", "--job", "daily"]);
    let header = list.lines().next().unwrap_or("");
    assert!(
        header.starts_with("ID  JOB    STATE  FROM") && header.ends_with("PROGRESS"),
        "{list}"
    );
    assert_eq!(list.lines().count(), 4, "{list}");
    assert!(list.contains("2/2, 2 succeeded"), "{list}");
    let show = cv.ok(&["backfill", "show", "1"]);
    assert!(show.contains("state:    done"), "{show}");
    assert!(
        show.contains("instants: 30 (succeeded ones left out)"),
        "{show}"
    );
    assert!(
        show.contains("runs:     cronvisor runs --job daily --trigger backfill"),
        "{show}"
    );
}

#[test]
fn a_cancelled_backfill_starts_nothing_more_and_bad_requests_name_their_field() {
    let cv = Cronvisor::start_with("backfill-cancel", "[monitor]\nmax_backfill = 100\n");
    cv.add_job("slow", "0 0 3 * * *", "sleep 3", &["--tz", "UTC"]);
    let b = cv.json(&[
        "job",
        "backfill",
        "slow",
        "--from",
        &date(11),
        "--to",
        &date(2),
    ]);
    let id = b["id"].to_string();
    wait_for(Duration::from_secs(20), "the first instant running", || {
        (backfill(&cv, &id)["going"] == 1).then_some(())
    });
    let out = cv.ok(&["backfill", "cancel", &id]);
    assert!(
        out.starts_with(&format!(
            "backfill {id} of `slow` cancelled: 0 of 10 instants"
        )),
        "{out}"
    );
    let b = backfill(&cv, &id);
    assert_eq!(b["state"], "cancelled");
    assert_eq!(b["reason"], "cancelled by api.token", "{b}");
    // The run going ends as it ends; nothing after it starts.
    wait_for(Duration::from_secs(20), "the run going to end", || {
        (backfill(&cv, &id)["going"] == 0).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let rows = runs_by_instant(&cv, &id);
    assert_eq!(rows.len(), 1, "{rows:?}");
    cv.refused(
        &["backfill", "cancel", &id],
        &format!("backfill {id} is cancelled, not running"),
    );
    // Refusals, each naming its field.
    cv.refused(
        &[
            "job",
            "backfill",
            "slow",
            "--from",
            &date(2),
            "--to",
            &date(5),
        ],
        "error: to: is before `from`",
    );
    cv.refused(
        &[
            "job",
            "backfill",
            "slow",
            "--from",
            &date(5),
            "--to",
            &date(-2),
        ],
        "error: to: is in the future",
    );
    cv.refused(
        &[
            "job",
            "backfill",
            "slow",
            "--from",
            &date(5),
            "--to",
            &date(2),
            "--parallel",
            "0",
        ],
        "error: parallel: must be 1 to 64, not 0",
    );
    cv.refused(
        &[
            "job",
            "backfill",
            "slow",
            "--from",
            "last week",
            "--to",
            &date(2),
        ],
        "error: from: `last week` is neither an RFC 3339 time",
    );
    cv.refused(
        &[
            "job",
            "backfill",
            "slow",
            "--from",
            &format!("{}T03:30:00Z", date(2)),
            "--to",
            &format!("{}T04:00:00Z", date(2)),
        ],
        "error: from: no instant of the rule `0 0 3 * * *` falls in the range",
    );
    cv.add_job("often", "0 * * * * *", "true", &["--tz", "UTC"]);
    cv.refused(
        &[
            "job",
            "backfill",
            "often",
            "--from",
            &date(3),
            "--to",
            &date(2),
        ],
        "error: to: the range holds 2880 instants, more than monitor.max_backfill = 100",
    );
    cv.ok(&[
        "job",
        "add",
        "--name",
        "after-slow",
        "--after",
        "slow",
        "--command",
        "true",
    ]);
    cv.refused(
        &[
            "job",
            "backfill",
            "after-slow",
            "--from",
            &date(3),
            "--to",
            &date(2),
        ],
        "error: job: `after-slow` has no rule of its own",
    );
    cv.refused(
        &[
            "job",
            "backfill",
            "ghost",
            "--from",
            &date(3),
            "--to",
            &date(2),
        ],
        "no job `ghost`",
    );
    cv.refused(&["backfill", "show", "999"], "no backfill 999");
    // A paused job's backfill waits, saying so, and goes on once it is resumed.
    cv.add_job("quick", "0 0 3 * * *", "true", &["--tz", "UTC", "--paused"]);
    let b = cv.json(&[
        "job",
        "backfill",
        "quick",
        "--from",
        &date(3),
        "--to",
        &date(2),
    ]);
    let id = b["id"].to_string();
    let waiting = wait_for(Duration::from_secs(10), "the backfill to wait", || {
        let out = cv.ok(&["backfill", "show", &id]);
        out.contains("reason:   waiting: its job is paused")
            .then_some(out)
    });
    assert!(waiting.contains("progress: 0/2"), "{waiting}");
    cv.ok(&["job", "resume", "quick"]);
    let b = wait_ended(&cv, &id, Duration::from_secs(20));
    assert_eq!(
        (b["state"].as_str(), b["succeeded"].as_i64()),
        (Some("done"), Some(2))
    );
    assert_eq!(b["reason"], Value::Null, "{b}");
    cv.refused(
        &["backfill", "list", "--state", "paused"],
        "error: state: unknown `paused` (one of running, done, cancelled)",
    );
}

#[test]
fn run_retry_runs_an_ended_run_again_as_its_next_attempt() {
    let cv = Cronvisor::start("retry");
    let flag = cv.data_dir().join("flag");
    cv.add_job(
        "flaky",
        "@yearly",
        &format!(
            "echo $CRONVISOR_INSTANT $CRONVISOR_SHARD_INDEX/$CRONVISOR_SHARD_TOTAL \
             $CRONVISOR_PARAM_DAY; test -e {}",
            flag.display()
        ),
        &["--param", "DAY=today"],
    );
    let id = cv.json(&["job", "run", "flaky", "--param", "DAY=monday"])["run_id"].to_string();
    let first = cv.wait_run(&id, "the first attempt", |s| s == "failed");
    std::fs::write(&flag, "").expect("flag");
    let out = cv.ok(&["run", "retry", &id]);
    let new = out
        .split("runs again as run ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("new id")
        .to_string();
    assert_eq!(
        out,
        format!("run {id} of `flaky` runs again as run {new} (see: cronvisor run show {new})\n")
    );
    let second = cv.wait_run(&new, "the retry", |s| s == "succeeded");
    assert_eq!(second["trigger"], "retry");
    assert_eq!(second["attempt"], 2);
    assert_eq!(second["retry_of"].to_string(), id);
    assert_eq!(second["instant"], first["instant"]);
    // The same instant, shard and parameters as the run it retries.
    assert!(
        first["stdout"]
            .as_str()
            .unwrap_or("")
            .ends_with(" 0/1 monday\n"),
        "{first}"
    );
    assert_eq!(second["stdout"], first["stdout"]);
    let text = cv.ok(&["run", "show", &new]);
    assert!(
        text.contains(&format!("attempt:    2 (retry of run {id})")),
        "{text}"
    );
    // A second retry is the next attempt; one of a run going, or of a flow, is refused.
    let again = cv.json(&["run", "retry", &id]);
    let third = cv.wait_run(&again["run_id"].to_string(), "again", |s| s == "succeeded");
    assert_eq!(third["attempt"], 3);
    cv.add_job("long", "@yearly", "sleep 30", &[]);
    let going = cv.run_now("long");
    cv.wait_run(&going, "running", |s| s == "running");
    cv.refused(
        &["run", "retry", &going],
        &format!("run {going} is still running"),
    );
    cv.ok(&["run", "kill", &going]);
    cv.ok(&[
        "job",
        "add",
        "--name",
        "next",
        "--after",
        "flaky",
        "--command",
        "true",
    ]);
    cv.refused(
        &["run", "retry", &id],
        &format!("run {id} is in a flow: `cronvisor flow rerun {id}`"),
    );
    cv.refused(&["run", "retry", "99999"], "no run 99999");
}
