//! The console's overview page: the last day's runs as a chart, and what needs a look now.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use maud::{html, Markup};

use super::layout::{href, job_href, none, run_duration, state, time, Section};
use super::pages::{render, trouble, PageResult};
use super::Console;
use crate::model::RunState;
use crate::store::RunFilter;

const HOURS: i64 = 24;
const HOUR_MS: i64 = 3_600_000;

/// Outcomes in the chart, bottom to top.
const CHART: [(RunState, &str); 6] = [
    (RunState::Succeeded, "ok"),
    (RunState::Failed, "bad"),
    (RunState::TimedOut, "bad"),
    (RunState::Lost, "bad"),
    (RunState::Killed, "warn"),
    (RunState::Skipped, "warn"),
];

/// One segment of the chart: where it links, its tone, geometry and tooltip.
struct Segment {
    link: String,
    tone: &'static str,
    x: i64,
    y: i64,
    height: i64,
    title: String,
}

/// Runs of the last 24 hours by hour and outcome: an SVG bar chart (attributes, no inline
/// style: the page's CSP allows none), each segment a link to those runs.
fn chart(counts: &[(i64, RunState, i64)], now: i64) -> Markup {
    let first = now - now % HOUR_MS - (HOURS - 1) * HOUR_MS;
    let mut by_hour: HashMap<i64, HashMap<RunState, i64>> = HashMap::new();
    for (hour, st, n) in counts {
        *by_hour.entry(*hour).or_default().entry(*st).or_default() += n;
    }
    let max = by_hour
        .values()
        .map(|m| m.values().sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let (w, h, bar) = (960, 160, 36);
    let mut segments = Vec::new();
    let mut labels = Vec::new();
    for i in 0..HOURS {
        let hour = first + i * HOUR_MS;
        let x = i * (w / HOURS) + 2;
        let mut y = h;
        for (st, tone) in CHART {
            let n = by_hour
                .get(&hour)
                .and_then(|m| m.get(&st))
                .copied()
                .unwrap_or(0);
            if n == 0 {
                continue;
            }
            let height = ((n * h) / max).max(2);
            y -= height;
            segments.push(Segment {
                link: href(
                    "/runs",
                    &[
                        ("state", st.as_str()),
                        ("since", &hour.to_string()),
                        ("until", &(hour + HOUR_MS).to_string()),
                    ],
                ),
                tone,
                x,
                y,
                height,
                title: format!("{n} {}", st.as_str()),
            });
        }
        if i % 3 == 0 {
            let text = chrono::DateTime::from_timestamp_millis(hour)
                .map(|t| t.format("%H:00").to_string())
                .unwrap_or_default();
            labels.push((x, hour, text));
        }
    }
    html! {
        svg.chart viewBox=(format!("0 0 {w} {}", h + 20)) role="img" aria-label="Runs per hour, last 24 hours" {
            @for s in &segments {
                a href=(s.link) {
                    rect class=(format!("bar {}", s.tone)) x=(s.x) y=(s.y) width=(bar) height=(s.height) {
                        title { (s.title) }
                    }
                }
            }
            @for (x, hour, text) in &labels {
                text.axis x=(x) y=(h + 15) data-hour=(hour) { (text) }
            }
        }
    }
}

/// The `count` soonest fires of the active jobs: each distinct rule and zone parsed once.
fn next_fires(rules: &[(String, String, String)], count: usize) -> Vec<(i64, String)> {
    let now = chrono::Utc::now();
    let mut parsed: HashMap<(&str, &str), Option<i64>> = HashMap::new();
    let mut next: Vec<(i64, String)> = rules
        .iter()
        .filter_map(|(name, rule, tz)| {
            let at = *parsed.entry((rule, tz)).or_insert_with(|| {
                crate::schedule::Schedule::parse_stored(rule, tz)
                    .ok()
                    .and_then(|s| s.next_after(now))
                    .map(|t| t.timestamp_millis())
            });
            at.map(|at| (at, name.clone()))
        })
        .collect();
    next.sort();
    next.truncate(count);
    next
}

pub async fn overview(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> PageResult {
    let v = c.visitor(&headers, peer, "/").await?;
    let now = crate::model::now_millis();
    let api = &c.api;
    let since = now - now % HOUR_MS - (HOURS - 1) * HOUR_MS;
    let body = async {
        let scope = v.caller.principal.groups.as_deref();
        let counts = api.store.runs_by_hour(since, scope).await?;
        let failing = api.store.failing_jobs(20, scope).await?;
        let rules = api.store.active_rules(scope).await?;
        let going = api
            .store
            .runs(&RunFilter {
                states: vec![RunState::Dispatched, RunState::Running],
                limit: 50,
                groups: v.caller.principal.groups.clone(),
                ..RunFilter::default()
            })
            .await?;
        let (executors, dispatchers) = api.store.fleet_members().await?;
        let alarms = api.store.alarms_in(200, scope).await?;
        let windows = api.store.windows().await?;
        Ok::<_, crate::http::ApiError>((
            counts,
            failing,
            rules,
            going,
            executors,
            dispatchers,
            alarms,
            windows,
        ))
    }
    .await;
    let (counts, (failing, failing_total), rules, going, executors, dispatchers, alarms, windows) =
        body.map_err(|e| trouble(&v, Some(Section::Overview), e))?;
    // Maintenance windows going now over jobs the visitor may see.
    let held: Vec<(String, String, i64)> = windows
        .iter()
        .filter(|w| {
            w.group
                .as_deref()
                .is_none_or(|g| v.caller.principal.sees(g))
        })
        .filter_map(|w| {
            w.span_at(now)
                .map(|(_, end)| (w.name.clone(), w.scope_text(), end))
        })
        .collect();
    let mut totals: HashMap<RunState, i64> = HashMap::new();
    for (_, st, n) in &counts {
        *totals.entry(*st).or_default() += n;
    }
    let next = next_fires(&rules, 10);
    let degraded = c.deps.snapshot();
    let unsettled: Vec<&crate::model::Alarm> = alarms
        .iter()
        .filter(|a| matches!(a.status.as_str(), "pending" | "sending" | "failed"))
        .collect();
    let shown = Shown {
        counts: &counts,
        totals: &totals,
        failing: &failing,
        failing_total,
        going: &going,
        next: &next,
        executors: executors.len(),
        dispatchers: dispatchers.iter().filter(|d| d.left_at.is_none()).count(),
        degraded: &degraded,
        unsettled: unsettled.len(),
    };
    let body = maud::html! {
        @for (name, scope, end) in &held {
            p.banner.warn data-window=(name) { "Maintenance window " strong { (name) } " holds " (scope) " until " (super::layout::time(Some(*end))) "." }
        }
        (shown.body(since, now))
    };
    Ok(render("Overview", Some(Section::Overview), &v, body))
}

/// What the overview shows, gathered.
struct Shown<'a> {
    counts: &'a [(i64, RunState, i64)],
    totals: &'a HashMap<RunState, i64>,
    failing: &'a [(String, crate::model::LastRun)],
    failing_total: usize,
    going: &'a [crate::model::Run],
    next: &'a [(i64, String)],
    executors: usize,
    dispatchers: usize,
    degraded: &'a std::collections::BTreeMap<&'static str, String>,
    unsettled: usize,
}

impl Shown<'_> {
    /// The page: the day's chart, then a card each for what is failing, going, next, the fleet
    /// and alarms not delivered.
    fn body(&self, since: i64, now: i64) -> Markup {
        let day = since.to_string();
        let Shown {
            counts,
            totals,
            failing,
            going,
            next,
            degraded,
            ..
        } = *self;
        let (failing_total, executors, dispatchers, unsettled) = (
            self.failing_total,
            self.executors,
            self.dispatchers,
            self.unsettled,
        );
        html! {
            section.card {
                h2 { "Runs, last 24 hours" }
                p.totals {
                    @for (st, _) in CHART {
                        a href=(href("/runs", &[("state", st.as_str()), ("since", &day)])) {
                            (state(st)) " " strong { (totals.get(&st).copied().unwrap_or(0)) }
                        }
                        " "
                    }
                }
                (chart(counts, now))
            }
            div.grid {
                section.card {
                    h2 { "Failing now" }
                    @if failing.is_empty() { (none("No job's last run failed.")) } @else {
                        ul { @for (name, r) in failing.iter() { li {
                            a href=(job_href(name)) { (name) } " "
                            (state(r.state)) " " a href=(format!("/runs/{}", r.id)) { "run " (r.id) }
                        } } }
                        @if failing_total > failing.len() { p.muted { "and " (failing_total - failing.len()) " more" } }
                    }
                }
                section.card {
                    h2 { "Going now" }
                    @if going.is_empty() { (none("Nothing is running.")) } @else {
                        ul { @for r in going.iter() { li {
                            a href=(format!("/runs/{}", r.id)) { "run " (r.id) } " of "
                            a href=(job_href(&r.job_name)) { (r.job_name) } " " (state(r.state))
                            " " (run_duration(r.started_at, None))
                        } } }
                    }
                }
                section.card {
                    h2 { "Next fires" }
                    @if next.is_empty() { (none("No active job.")) } @else {
                        ul { @for (at, name) in next.iter() { li {
                            (time(Some(*at))) " " a href=(job_href(name)) { (name) }
                        } } }
                    }
                }
                section.card {
                    h2 { "Fleet" }
                    p {
                        a href="/fleet" { strong { (executors) } " executors, " strong { (dispatchers) } " dispatchers" }
                    }
                    @if degraded.is_empty() { p { span.state.ok { "dependencies ok" } } } @else {
                        ul { @for (name, error) in degraded.iter() { li { span.state.bad { (name) " degraded" } " " span.muted { (error) } } } }
                    }
                }
                section.card {
                    h2 { "Alarms not delivered" }
                    @if unsettled == 0 { (none("Every alarm was delivered.")) } @else {
                        p { a href="/alarms" { strong { (unsettled) } " pending or failed" } }
                    }
                }
            }
        }
    }
}
