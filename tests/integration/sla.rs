//! SLAs through the binary: `late` when a run has not started in time (its executor stopped),
//! `overdue` when an instant — or a flow, for its root — has not ended successfully by its
//! deadline; each raised once per run, none for a run in time.

use std::time::Duration;

use crate::harness::{wait_for, Cronvisor};

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) of a role of the instance this test started.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

#[test]
fn a_run_not_started_in_time_raises_late_once() {
    let cv = Cronvisor::start("sla-late");
    cv.add_job("punctual", "@yearly", "true", &["--late-after", "2s"]);
    let id = cv.run_now("punctual");
    cv.wait_run(&id, "the run", |s| s == "succeeded");
    // The executor stops answering: the next run waits past its bound.
    let executor = cv.child_pid("executor").expect("executor");
    signal(executor, libc::SIGSTOP);
    let waiting = cv.run_now("punctual");
    let late = wait_for(Duration::from_secs(20), "a late alarm", || {
        cv.alarms_of("late").into_iter().next()
    });
    signal(executor, libc::SIGCONT);
    assert_eq!(late["run_id"].to_string(), waiting, "{late}");
    let text = late["details"]["error"].as_str().unwrap_or("");
    assert!(
        text.starts_with(&format!("run {waiting} of `punctual` at "))
            && text.contains("is late: not started yet (late after 2s)"),
        "{late}"
    );
    // Once: later passes raise nothing more for it; the run on time raised nothing. Counted
    // for Prometheus (the series `conf/prometheus/alerts.yml` alerts on).
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(cv.alarms_of("late").len(), 1);
    let (_, metrics) = crate::harness::http(
        &cv.endpoint("api"),
        "GET",
        "/metrics",
        Some(&cv.token()),
        None,
    );
    assert!(
        metrics.contains(
            "cronvisor_job_sla_breaches_total{job=\"punctual\",group=\"default\",kind=\"late\"} 1"
        ),
        "{metrics}"
    );
    let shown = cv.ok(&["job", "show", "punctual"]);
    assert!(
        shown.contains("sla:        late if not started 2s after its instant"),
        "{shown}"
    );
}

#[test]
fn an_instant_not_done_by_its_deadline_raises_overdue_and_a_flow_counts_whole() {
    let cv = Cronvisor::start("sla-overdue");
    cv.add_job("slow", "@yearly", "sleep 3", &["--deadline", "1s"]);
    cv.add_job("quick", "@yearly", "true", &["--deadline", "5s"]);
    let slow = cv.run_now("slow");
    let quick = cv.run_now("quick");
    let overdue = wait_for(Duration::from_secs(20), "an overdue alarm", || {
        cv.alarms_of("overdue").into_iter().next()
    });
    assert_eq!(overdue["run_id"].to_string(), slow, "{overdue}");
    assert!(
        overdue["details"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("is overdue: it had not ended successfully by"),
        "{overdue}"
    );
    cv.wait_run(&quick, "quick", |s| s == "succeeded");
    // The root of a flow: done at once, but what runs after it is not.
    cv.add_job("root", "@yearly", "true", &["--deadline", "1s"]);
    cv.ok(&[
        "job",
        "add",
        "--name",
        "tail",
        "--after",
        "root",
        "--command",
        "sleep 3",
    ]);
    let root = cv.run_now("root");
    wait_for(Duration::from_secs(20), "the flow's overdue alarm", || {
        cv.alarms_of("overdue")
            .into_iter()
            .find(|a| a["run_id"] == root.parse::<i64>().unwrap_or(0))
            .filter(|a| {
                a["details"]["error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("its flow had not ended successfully")
            })
    });
    // A deadline as a time of day, in the job's zone: yesterday's instant was due by today's
    // HH:MM (two minutes ago), and it failed.
    let now = crate::harness::now_ms();
    let at = |ms: i64, f: &str| {
        chrono::DateTime::from_timestamp_millis(ms)
            .expect("time")
            .format(f)
            .to_string()
    };
    let hhmm = at(now - 120_000, "%H:%M");
    cv.add_job(
        "daily",
        "@yearly",
        "false",
        &["--tz", "UTC", "--deadline", &hhmm],
    );
    let shown = cv.ok(&["job", "show", "daily"]);
    assert!(
        shown.contains(&format!("overdue if not done by {hhmm} (its zone)")),
        "{shown}"
    );
    let yesterday = at(now - 86_400_000, "%Y-%m-%dT%H:%M:%SZ");
    let daily = cv.json(&["job", "run", "daily", "--instant", &yesterday])["run_id"].clone();
    wait_for(Duration::from_secs(20), "the time-of-day overdue", || {
        cv.alarms_of("overdue").into_iter().find(|a| {
            a["run_id"] == daily
                && a["details"]["error"]
                    .as_str()
                    .unwrap_or("")
                    .contains(&format!("({hhmm} in UTC)"))
        })
    });
    // `quick` met its deadline: never alarmed; each instant alarmed once.
    std::thread::sleep(Duration::from_millis(6000));
    let all = cv.alarms_of("overdue");
    assert!(
        all.iter()
            .all(|a| a["run_id"] != quick.parse::<i64>().unwrap_or(0)),
        "{all:?}"
    );
    assert_eq!(all.len(), 3, "{all:?}");
}
