//! What an operator's Prometheus scrapes: per-job series from the monitor (with the API
//! token), the roles' own series, and the shipped alert rules and dashboard, which must name
//! only series that exist.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::harness::{http, wait_for, Cronvisor};

/// Every listener's `/metrics`, with the token.
fn scrape_all(cv: &Cronvisor) -> String {
    let token = cv.token();
    ["api", "rpc", "dispatch"]
        .iter()
        .map(|l| http(&cv.endpoint(l), "GET", "/metrics", Some(&token), None).1)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value of one exact series line (`name{labels}`), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The `cronvisor_*` metric names a rule or dashboard file uses (histogram suffixes dropped).
fn names_used(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("cronvisor_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let name = &text[start..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        out.insert(base.to_string());
        i = end;
    }
    out
}

#[test]
fn the_monitor_serves_per_job_series_that_the_shipped_alerts_and_dashboard_use() {
    let cv = Cronvisor::start("metrics-jobs");
    cv.add_job("nightly-ok", "* * * * * *", "true", &[]);
    cv.add_job(
        "often-bad",
        "* * * * * *",
        "exit 3",
        &["--group", "billing"],
    );
    cv.add_job("paused-one", "0 0 3 * * *", "true", &["--paused"]);
    let token = cv.token();
    let api = cv.endpoint("api");
    let ok = "cronvisor_job_runs_total{job=\"nightly-ok\",group=\"default\",state=\"succeeded\"}";
    let bad = "cronvisor_job_runs_total{job=\"often-bad\",group=\"billing\",state=\"failed\"}";
    let text = wait_for(Duration::from_secs(60), "per-job counts", || {
        let (code, text) = http(&api, "GET", "/metrics", Some(&token), None);
        assert_eq!(code, 200, "{text}");
        let counted = value(&text, ok)? >= 2.0 && value(&text, bad)? >= 2.0;
        counted.then_some(text)
    });
    // A success's end, a duration in the histogram, the next instant; a paused job has none.
    let ended = value(
        &text,
        "cronvisor_job_last_success_timestamp_seconds{job=\"nightly-ok\",group=\"default\"}",
    )
    .expect("last success");
    let now = crate::harness::now_ms() as f64 / 1000.0;
    assert!(
        (now - 120.0..=now + 1.0).contains(&ended),
        "{ended} vs {now}"
    );
    assert!(
        value(
            &text,
            "cronvisor_job_last_success_timestamp_seconds{job=\"often-bad\",group=\"billing\"}"
        )
        .is_none(),
        "a job that never succeeded has no last success"
    );
    let count = value(
        &text,
        "cronvisor_job_run_duration_seconds_count{job=\"nightly-ok\",group=\"default\"}",
    )
    .expect("duration count");
    let inf = value(
        &text,
        "cronvisor_job_run_duration_seconds_bucket{job=\"nightly-ok\",group=\"default\",le=\"+Inf\"}",
    )
    .expect("+Inf bucket");
    assert!(
        count >= 2.0 && (count - inf).abs() < f64::EPSILON,
        "{count} {inf}"
    );
    let next = value(
        &text,
        "cronvisor_job_next_fire_timestamp_seconds{job=\"nightly-ok\",group=\"default\"}",
    )
    .expect("next fire");
    assert!(next > now - 2.0 && next < now + 5.0, "{next} vs {now}");
    assert!(!text.contains("cronvisor_job_next_fire_timestamp_seconds{job=\"paused-one\""));
    assert_eq!(
        value(
            &text,
            "cronvisor_job_paused{job=\"paused-one\",group=\"default\"}"
        ),
        Some(1.0)
    );
    // Well-formed text: every sample line is `name{labels} number`, each series once.
    let mut seen = BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, v) = line.rsplit_once(' ').unwrap_or_else(|| panic!("`{line}`"));
        assert!(v.parse::<f64>().is_ok(), "`{line}`");
        assert!(series.ends_with('}') && series.contains('{'), "`{line}`");
        assert!(seen.insert(series.to_string()), "twice: `{series}`");
    }
    // Without the token: the role's series only, no job names.
    let (_, open) = http(&api, "GET", "/metrics", None, None);
    assert!(open.contains("cronvisor_up{role=\"monitor\""), "{open}");
    assert!(!open.contains("nightly-ok"), "{open}");
    // A scraper needs no admin token: a viewer's, scoped to a group, sees that group's jobs.
    let out = cv.cli(&[
        "token", "create", "--name", "scraper", "--role", "viewer", "--groups", "billing",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let viewer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (code, scoped) = http(&api, "GET", "/metrics", Some(&viewer), None);
    assert_eq!(code, 200);
    assert!(scoped.contains("job=\"often-bad\""), "{scoped}");
    assert!(!scoped.contains("nightly-ok"), "{scoped}");
    let (_, wrong) = http(&api, "GET", "/metrics", Some("not-a-token"), None);
    assert!(!wrong.contains("often-bad"), "{wrong}");
    // The dispatcher's lateness histogram and the executor's spawn times are being filled.
    let all = scrape_all(&cv);
    for series in [
        "cronvisor_fire_lateness_seconds_count{role=\"dispatcher\"}",
        "cronvisor_spawn_seconds_count{role=\"executor\"}",
        "cronvisor_store_write_seconds_count{role=\"dispatcher\"}",
        "cronvisor_monitor_check_seconds_count{role=\"monitor\"}",
    ] {
        assert!(value(&all, series).is_some_and(|v| v >= 1.0), "{series}");
    }
    assert!(value(&all, "cronvisor_results_waiting{role=\"executor\"}").is_some());
    assert!(value(
        &all,
        "cronvisor_output_bytes_total{role=\"executor\",kept=\"true\"}"
    )
    .is_some());
    // The alert rules and the dashboard name only series that exist (Redis's lock timing
    // exists in a cluster with Redis only: its TYPE line is registered whatever the mode).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["conf/prometheus/alerts.yml", "conf/grafana/cronvisor.json"] {
        let used = names_used(&std::fs::read_to_string(root.join(file)).expect(file));
        assert!(used.len() >= 5, "{file}: {used:?}");
        // Served only where a dependency is configured (a cluster), not standalone.
        for name in used.into_iter().filter(|n| n != "cronvisor_dependency_up") {
            assert!(
                all.contains(&format!("# TYPE {name} ")),
                "{file} uses {name}, which no role serves"
            );
        }
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("conf/grafana/cronvisor.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() >= 8));
}

#[test]
fn the_shipped_alert_rules_pass_promtool() {
    let args = ["check", "rules", "conf/prometheus/alerts.yml"];
    crate::harness::run_tool(
        "promtool",
        &args.map(std::ffi::OsStr::new),
        "scripts/install-deps.sh installs Debian's prometheus",
        "SUCCESS",
    );
}
