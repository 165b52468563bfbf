//! Per-job Prometheus metrics, served by the monitor's `/metrics` from the store's
//! `job_stats` (one row per job, counted when a run is checked): what a cron fleet's alerts
//! are written on — "backup has not succeeded for 26 h", "this job's runs fail".
//!
//! Every monitor serves the same per-job series (they come from the store): aggregate with
//! `max by (job, group)`, not `sum`.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;

use super::access::Gate;
use crate::http::health::Health;
use crate::model::access::Principal;
use crate::model::now_millis;
use crate::schedule::Schedule;
use crate::store::{JobStats, Store, StoreError, DURATION_BUCKETS};

/// Parsed rules kept between scrapes (croner's form is ~5 KB; a compact one 32 bytes).
const RULES_KEPT: usize = 4096;

type Rules = Mutex<HashMap<(String, String), Option<Arc<Schedule>>>>;

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The monitor's `/metrics`: the role's series, and each job's for a caller with an API token
/// (any role: a scraper needs no more than a viewer's; a token scoped to groups sees their
/// jobs only). Job names and groups are the operators' business, not everyone's.
pub async fn scrape(
    State((health, gate)): State<(Health, Gate)>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let mut text = crate::http::health::render(&health);
    let scraper = if headers.contains_key(header::AUTHORIZATION) {
        gate.identify(&headers, None).await.ok().flatten()
    } else {
        None
    };
    if let Some(scraper) = scraper {
        let started = std::time::Instant::now();
        match render(&health.store, &scraper.principal, &mut text).await {
            Ok(()) => {
                let _ = write!(
                    text,
                    "# HELP cronvisor_job_metrics_seconds Time spent reading and rendering the per-job series of this scrape.\n\
                     # TYPE cronvisor_job_metrics_seconds gauge\n\
                     cronvisor_job_metrics_seconds{{role=\"monitor\"}} {}\n",
                    started.elapsed().as_secs_f64()
                );
            }
            // The role's own series still answer; the store's outage shows in them.
            Err(e) => tracing::warn!(error = %e, "per-job metrics: cannot read the store"),
        }
    }
    crate::http::health::prometheus(text)
}

/// `cronvisor_job_sla_breaches_total{kind="late"|"overdue"|"slow"|"short"}` of each job.
fn sla_series(out: &mut String, jobs: &[JobStats], labels: &[String]) {
    header(
        out,
        "cronvisor_job_sla_breaches_total",
        "counter",
        "The job's SLA breaches: runs late (--late-after), instants overdue (--deadline), runs \
         slow or short against the job's usual duration (--duration-alarm).",
    );
    for (j, l) in jobs.iter().zip(labels) {
        for (kind, n) in crate::store::SLA_KINDS.iter().zip(j.sla) {
            let _ = writeln!(
                out,
                "cronvisor_job_sla_breaches_total{{{l},kind=\"{kind}\"}} {n}"
            );
        }
    }
}

/// The per-job series of the jobs `reader` sees, appended to `out`.
pub async fn render(store: &Store, reader: &Principal, out: &mut String) -> Result<(), StoreError> {
    let mut jobs = store.job_stats().await?;
    jobs.retain(|j| reader.sees(&j.group));
    let now = chrono::DateTime::from_timestamp_millis(now_millis()).unwrap_or_default();
    let labels: Vec<String> = jobs
        .iter()
        .map(|j| format!("job=\"{}\",group=\"{}\"", escape(&j.name), escape(&j.group)))
        .collect();
    header(
        out,
        "cronvisor_job_runs_total",
        "counter",
        "Runs of the job by final state (counted when the monitor checks them).",
    );
    for (j, l) in jobs.iter().zip(&labels) {
        for (state, n) in &j.by_state {
            let _ = writeln!(out, "cronvisor_job_runs_total{{{l},state=\"{state}\"}} {n}");
        }
    }
    gauge_of(
        out,
        &jobs,
        &labels,
        "cronvisor_job_last_success_timestamp_seconds",
        "When the job's last successful run ended (Unix seconds).",
        |j| j.last_success_at,
    );
    gauge_of(
        out,
        &jobs,
        &labels,
        "cronvisor_job_last_end_timestamp_seconds",
        "When the job's last run ended, whatever its state (Unix seconds).",
        |j| j.last_end_at,
    );
    header(
        out,
        "cronvisor_job_run_duration_seconds",
        "histogram",
        "Durations of the job's runs that started and ended.",
    );
    for (j, l) in jobs.iter().zip(&labels) {
        let mut cumulative = 0;
        for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
            cumulative += j.durations[i];
            let _ = writeln!(
                out,
                "cronvisor_job_run_duration_seconds_bucket{{{l},le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += j.durations[DURATION_BUCKETS.len()];
        let _ = writeln!(
            out,
            "cronvisor_job_run_duration_seconds_bucket{{{l},le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "cronvisor_job_run_duration_seconds_sum{{{l}}} {}",
            j.duration_ms_sum as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "cronvisor_job_run_duration_seconds_count{{{l}}} {cumulative}"
        );
    }
    sla_series(out, &jobs, &labels);
    forget_unused_rules(&jobs);
    let next: Vec<Option<i64>> = jobs.iter().map(|j| next_fire(j, now)).collect();
    header(
        out,
        "cronvisor_job_next_fire_timestamp_seconds",
        "gauge",
        "The job's next scheduled instant (Unix seconds); absent while it is paused.",
    );
    for (n, l) in next.iter().zip(&labels) {
        if let Some(t) = n {
            let _ = writeln!(
                out,
                "cronvisor_job_next_fire_timestamp_seconds{{{l}}} {}",
                *t / 1000
            );
        }
    }
    header(
        out,
        "cronvisor_job_paused",
        "gauge",
        "1 while the job is paused.",
    );
    for (j, l) in jobs.iter().zip(&labels) {
        let _ = writeln!(out, "cronvisor_job_paused{{{l}}} {}", u8::from(j.paused));
    }
    Ok(())
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn gauge_of(
    out: &mut String,
    jobs: &[JobStats],
    labels: &[String],
    name: &str,
    help: &str,
    value: impl Fn(&JobStats) -> Option<i64>,
) {
    header(out, name, "gauge", help);
    for (j, l) in jobs.iter().zip(labels) {
        if let Some(ms) = value(j) {
            let _ = writeln!(out, "{name}{{{l}}} {}", ms as f64 / 1000.0);
        }
    }
}

/// Once the kept rules are at their bound, drops those no job has any more (edited or
/// deleted since), so that the rules in use are kept rather than parsed at every scrape.
fn forget_unused_rules(jobs: &[JobStats]) {
    let Ok(mut rules) = rules().lock() else {
        return;
    };
    if rules.len() < RULES_KEPT {
        return;
    }
    let live: std::collections::HashSet<(&str, &str)> = jobs
        .iter()
        .map(|j| (j.schedule.as_str(), j.timezone.as_str()))
        .collect();
    rules.retain(|(rule, zone), _| live.contains(&(rule.as_str(), zone.as_str())));
}

fn next_fire(job: &JobStats, now: chrono::DateTime<chrono::Utc>) -> Option<i64> {
    if job.paused {
        return None;
    }
    let key = (job.schedule.clone(), job.timezone.clone());
    let mut rules = rules().lock().ok()?;
    let schedule = match rules.get(&key) {
        Some(s) => s.clone(),
        None => {
            let parsed = Schedule::parse_stored(&job.schedule, &job.timezone)
                .ok()
                .map(Arc::new);
            if rules.len() < RULES_KEPT {
                rules.insert(key, parsed.clone());
            }
            parsed
        }
    };
    drop(rules);
    schedule?.next_after(now).map(|t| t.timestamp_millis())
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rules of jobs edited or deleted filled the kept rules for good, and every rule after
    /// them was parsed at each scrape: once full, the unused ones go.
    #[test]
    fn kept_rules_make_room_for_the_rules_in_use() {
        let job = |rule: &str| JobStats {
            name: "j".into(),
            group: "default".into(),
            schedule: rule.into(),
            timezone: "UTC".into(),
            paused: false,
            by_state: Vec::new(),
            last_success_at: None,
            last_end_at: None,
            durations: [0; 11],
            duration_ms_sum: 0,
            sla: [0; 4],
        };
        let now = chrono::Utc::now();
        for i in 0..RULES_KEPT {
            next_fire(&job(&format!("{} * * * * *", i % 60 + (i / 60) * 100)), now);
        }
        let current = job("*/7 * * * * *");
        forget_unused_rules(&[job("0 * * * * *"), current.clone()]);
        next_fire(&current, now);
        let kept = rules().lock().expect("rules");
        assert_eq!(
            kept.len(),
            2,
            "only the rules of current jobs: {:?}",
            kept.keys()
        );
        assert!(kept.contains_key(&("*/7 * * * * *".to_string(), "UTC".to_string())));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
