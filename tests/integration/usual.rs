//! Learned durations through the binary: after ten successes a job knows its usual band
//! (`job show`, the API); a success far under it raises `short`, a run far past it raises
//! `slow` while it still runs — once each, counted for Prometheus — and a job with
//! `--duration-alarm off` raises neither.

use std::time::Duration;

use crate::harness::{wait_for, Cronvisor};

/// Ten runs of each job at once (their overlap allows it), all succeeded.
fn learn(cv: &Cronvisor, jobs: &[&str]) {
    let ids: Vec<String> = (0..10)
        .flat_map(|_| jobs.iter().map(|j| cv.run_now(j)))
        .collect();
    for id in &ids {
        cv.wait_run(id, "a learning run", |s| s == "succeeded");
    }
}

#[test]
fn a_run_far_from_the_usual_duration_raises_short_or_slow_once() {
    short_and_slow_once(&Cronvisor::start("usual"));
}

/// The whole of it on `cv` (SQLite here, MariaDB in `mysql.rs`).
pub fn short_and_slow_once(cv: &Cronvisor) {
    // Tolerance 1: the band's bounds one spread (here its floor, 1 s) past the quartiles.
    let common = ["--overlap", "allow", "--duration-alarm"];
    cv.add_job(
        "etl",
        "@yearly",
        "sleep 2",
        &[&common[..], &["both:1"]].concat(),
    );
    cv.add_job(
        "quiet",
        "@yearly",
        "sleep 2",
        &[&common[..], &["off"]].concat(),
    );
    let shown = cv.ok(&["job", "show", "etl"]);
    assert!(
        shown.contains("usual:      not learned yet (duration alarms after 10 successes)"),
        "{shown}"
    );
    learn(cv, &["etl", "quiet"]);
    // Learned by the monitor's pass over the ended runs.
    let usual = wait_for(Duration::from_secs(20), "the usual band", || {
        let v = cv.json(&["job", "show", "etl"]);
        (v["usual"]["samples"] == 10).then(|| v["usual"].clone())
    });
    let median = usual["median_ms"].as_i64().expect("median");
    assert!((1900..4000).contains(&median), "{usual}");
    let shown = cv.ok(&["job", "show", "etl"]);
    assert!(
        shown.contains("(its last 10 successes); slow past ") && shown.contains("short under"),
        "{shown}"
    );

    // Far shorter: `short` when it succeeds — for `etl`, not for `quiet`.
    for job in ["etl", "quiet"] {
        cv.ok(&["job", "edit", job, "--command", "true"]);
    }
    let quick = cv.run_now("etl");
    let quiet = cv.run_now("quiet");
    cv.wait_run(&quick, "the short run", |s| s == "succeeded");
    cv.wait_run(&quiet, "the quiet run", |s| s == "succeeded");
    let short = wait_for(Duration::from_secs(20), "a short alarm", || {
        cv.alarms_of("short").into_iter().next()
    });
    assert_eq!(short["run_id"].to_string(), quick, "{short}");
    let text = short["details"]["error"].as_str().unwrap_or("");
    assert!(
        text.starts_with(&format!("run {quick} of `etl` succeeded short: it took "))
            && text.contains(", usually 2."),
        "{short}"
    );

    // Far longer: `slow` while it runs.
    cv.ok(&["job", "edit", "etl", "--command", "sleep 60"]);
    let long = cv.run_now("etl");
    cv.wait_run(&long, "the long run", |s| s == "running");
    let slow = wait_for(Duration::from_secs(20), "a slow alarm", || {
        cv.alarms_of("slow").into_iter().next()
    });
    assert_eq!(slow["run_id"].to_string(), long, "{slow}");
    let text = slow["details"]["error"].as_str().unwrap_or("");
    assert!(
        text.starts_with(&format!("run {long} of `etl` is slow: running for "))
            && text.contains("(slow past "),
        "{slow}"
    );
    assert_eq!(cv.json(&["run", "show", &long])["state"], "running");
    cv.ok(&["run", "kill", &long]);
    cv.wait_run(&long, "the killed run", |s| s == "killed");

    // Once each (the passes after raise nothing more), none for `quiet`; counted per job.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(cv.alarms_of("short").len(), 1);
    assert_eq!(cv.alarms_of("slow").len(), 1);
    let (_, metrics) = crate::harness::http(
        &cv.endpoint("api"),
        "GET",
        "/metrics",
        Some(&cv.token()),
        None,
    );
    for (job, kind, n) in [
        ("etl", "short", 1),
        ("etl", "slow", 1),
        ("quiet", "short", 0),
    ] {
        let series = format!(
            "cronvisor_job_sla_breaches_total{{job=\"{job}\",group=\"default\",kind=\"{kind}\"}} {n}"
        );
        assert!(metrics.contains(&series), "{series}\n{metrics}");
    }
}

#[test]
fn a_wrong_duration_alarm_is_refused_naming_the_field() {
    let cv = Cronvisor::start("usual-bad");
    cv.refused(
        &[
            "job",
            "add",
            "--name",
            "x",
            "--schedule",
            "@daily",
            "--command",
            "true",
            "--duration-alarm",
            "fast",
        ],
        "duration_alarm: `fast` is not one of both, slow, short, off",
    );
    cv.refused(
        &[
            "job",
            "add",
            "--name",
            "x",
            "--schedule",
            "@daily",
            "--command",
            "true",
            "--duration-alarm",
            "slow:0",
        ],
        "duration_alarm: the tolerance `0` is not a whole number 1 to 100",
    );
}
