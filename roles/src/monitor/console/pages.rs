//! The console's read-only pages. Each reads through the same store queries and checks as the
//! API (`api::views`, `RunsQuery::filter`, ...); what they change, they change through the API
//! from the page's script.

use std::collections::HashMap;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, href, job_href, none, page, run_duration, state, time, Section};
use super::{Bounce, Console, Visitor};
use crate::model::{Run, RunState};
use crate::monitor::api::{self, RunsQuery};
use crate::schedule::words;
use crate::store::RunFilter;

type PageResult = Result<Response, Bounce>;

fn render(title: &str, section: Option<Section>, v: &Visitor, body: Markup) -> Response {
    Html(page(title, section, Some(v), body).into_string()).into_response()
}

/// An error shown as a page (a bad filter, a missing job): the same message the API gives.
fn trouble(v: &Visitor, section: Option<Section>, e: crate::http::ApiError) -> Bounce {
    let status = e.status;
    let body = html! {
        p.error {
            @if let Some(f) = &e.field { strong { (f) ": " } }
            (e.message)
        }
        p { a href="/" { "Back to the overview" } }
    };
    (status, render("Not possible", section, v, body))
        .into_response()
        .into()
}

/// Where a job runs, in words.
fn target(job: &crate::model::Job) -> String {
    match &job.run_at {
        None => format!("any executor ({})", job.fanout.as_str()),
        Some(t) => format!("{t} ({})", job.fanout.as_str()),
    }
}

/// The rule, and under it its plain-words reading when it has one.
fn rule(job: &crate::model::Job) -> Markup {
    html! {
        code { (job.schedule) }
        @if let Some(w) = words::describe(&job.schedule) { br; span.muted { (w) } }
    }
}

fn runs_table(runs: &[Run], with_job: bool) -> Markup {
    if runs.is_empty() {
        return none("No runs match.");
    }
    html! {
        table.runs {
            thead { tr {
                th { "Run" }
                @if with_job { th { "Job" } }
                th { "State" } th { "Scheduled" } th { "Trigger" } th { "Attempt" }
                th { "Executor" } th { "Duration" } th { "Exit" }
            } }
            tbody {
                @for r in runs {
                    tr {
                        td { a href=(format!("/runs/{}", r.id)) { (r.id) } }
                        @if with_job { td { a href=(job_href(&r.job_name)) { (r.job_name) } } }
                        td { (state(r.state)) }
                        td { (time(Some(r.instant))) }
                        td { (r.trigger.as_str()) }
                        td { (r.attempt) }
                        td.wrap { (r.executor.as_deref().unwrap_or("—")) }
                        td { (run_duration(r.started_at, r.ended_at)) }
                        td { @if let Some(c) = r.exit_code { (c) } @else { "—" } }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Overview

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
                crate::schedule::Schedule::parse(rule, tz)
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
        let counts = api.store.runs_by_hour(since).await?;
        let scope = v.caller.principal.groups.as_deref();
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
        Ok::<_, crate::http::ApiError>((
            counts,
            failing,
            rules,
            going,
            executors,
            dispatchers,
            alarms,
        ))
    }
    .await;
    let (counts, (failing, failing_total), rules, going, executors, dispatchers, alarms) =
        body.map_err(|e| trouble(&v, Some(Section::Overview), e))?;
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
    let day = since.to_string();
    let body = html! {
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
            (chart(&counts, now))
        }
        div.grid {
            section.card {
                h2 { "Failing now" }
                @if failing.is_empty() { (none("No job's last run failed.")) } @else {
                    ul { @for (name, r) in &failing { li {
                        a href=(job_href(name)) { (name) } " "
                        (state(r.state)) " " a href=(format!("/runs/{}", r.id)) { "run " (r.id) }
                    } } }
                    @if failing_total > failing.len() { p.muted { "and " (failing_total - failing.len()) " more" } }
                }
            }
            section.card {
                h2 { "Going now" }
                @if going.is_empty() { (none("Nothing is running.")) } @else {
                    ul { @for r in &going { li {
                        a href=(format!("/runs/{}", r.id)) { "run " (r.id) } " of "
                        a href=(job_href(&r.job_name)) { (r.job_name) } " " (state(r.state))
                        " " (run_duration(r.started_at, None))
                    } } }
                }
            }
            section.card {
                h2 { "Next fires" }
                @if next.is_empty() { (none("No active job.")) } @else {
                    ul { @for (at, name) in &next { li {
                        (time(Some(*at))) " " a href=(job_href(name)) { (name) }
                    } } }
                }
            }
            section.card {
                h2 { "Fleet" }
                p {
                    a href="/fleet" { strong { (executors.len()) } " executors, " strong { (dispatchers.iter().filter(|d| d.left_at.is_none()).count()) } " dispatchers" }
                }
                @if degraded.is_empty() { p { span.state.ok { "dependencies ok" } } } @else {
                    ul { @for (name, error) in &degraded { li { span.state.bad { (name) " degraded" } " " span.muted { (error) } } } }
                }
            }
            section.card {
                h2 { "Alarms not delivered" }
                @if unsettled.is_empty() { (none("Every alarm was delivered.")) } @else {
                    p { a href="/alarms" { strong { (unsettled.len()) } " pending or failed" } }
                }
            }
        }
    };
    Ok(render("Overview", Some(Section::Overview), &v, body))
}

// ---------------------------------------------------------------------------------------------
// Jobs

/// Jobs per page of the jobs list.
const JOBS_PER_PAGE: usize = 100;

#[derive(Debug, Default, Deserialize)]
pub struct JobsQuery {
    #[serde(default)]
    q: String,
    /// `active` or `paused`.
    #[serde(default)]
    state: String,
    #[serde(default)]
    target: String,
    /// 1-based.
    #[serde(default)]
    page: Option<usize>,
}

pub async fn jobs(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<JobsQuery>,
) -> PageResult {
    let v = c.visitor(&headers, peer, "/jobs").await?;
    let per_page = JOBS_PER_PAGE as i64;
    let mut filter = crate::store::JobFilter {
        name: q.q.clone(),
        paused: match q.state.as_str() {
            "active" => Some(false),
            "paused" => Some(true),
            _ => None,
        },
        run_at: Some(q.target.clone()).filter(|t| !t.is_empty()),
        // Any page number: one past the last shows the last (below), and no number overflows.
        offset: (i64::try_from(q.page.unwrap_or(1))
            .unwrap_or(i64::MAX)
            .max(1)
            - 1)
        .saturating_mul(per_page),
        limit: per_page,
        groups: v.caller.principal.groups.clone(),
    };
    let listed = async {
        let (mut jobs, mut total) = c.api.store.jobs_matching(&filter).await?;
        if jobs.is_empty() && total > 0 {
            // Past the last page (a bookmark, the jobs went): show the last one.
            filter.offset = (total - 1) / per_page * per_page;
            (jobs, total) = c.api.store.jobs_matching(&filter).await?;
        }
        // Next fires and last runs only for the jobs shown.
        let shown = api::views(&c.api, jobs).await?;
        let targets = c.api.store.job_targets().await?;
        let everything = c
            .api
            .store
            .jobs_matching(&crate::store::JobFilter {
                limit: 1,
                groups: v.caller.principal.groups.clone(),
                ..Default::default()
            })
            .await?
            .1;
        Ok::<_, crate::http::ApiError>((shown, total, targets, everything))
    }
    .await;
    let (shown, total, targets, everything) =
        listed.map_err(|e| trouble(&v, Some(Section::Jobs), e))?;
    let total = total as usize;
    let pages = total.div_ceil(JOBS_PER_PAGE).max(1);
    let page = (filter.offset / per_page) as usize + 1;
    let page_href = |n: usize| {
        href(
            "/jobs",
            &[
                ("q", &q.q),
                ("state", &q.state),
                ("target", &q.target),
                ("page", &n.to_string()),
            ],
        )
    };
    let first = (page - 1) * JOBS_PER_PAGE;
    let body = html! {
        form.filters method="get" action="/jobs" role="search" {
            label { "Name " input type="search" name="q" value=(q.q) placeholder="search by name"; }
            label { "State "
                select name="state" {
                    @for (value, text) in [("", "any"), ("active", "active"), ("paused", "paused")] {
                        option value=(value) selected[q.state == value] { (text) }
                    }
                }
            }
            label { "Target "
                select name="target" {
                    option value="" { "any" }
                    @for t in &targets { option value=(t) selected[q.target == *t] { (t) } }
                }
            }
            button type="submit" { "Filter" }
            @if v.writes() { a.button.primary href="/jobs/new" { "New job" } }
        }
        p.muted {
            @if total == 0 { "0 of " (everything) " jobs" }
            @else { (first + 1) "–" (first + shown.len()) " of " (total) " matching, " (everything) " jobs in all" }
        }
        @if shown.is_empty() { (none("No job matches.")) } @else {
            table.jobs {
                thead { tr {
                    th { "Name" } th { "Rule" } th { "Zone" } th { "Target" } th { "Next fire" }
                    th { "Last run" } @if v.writes() { th { "Actions" } }
                } }
                tbody {
                    @for j in &shown {
                        tr data-job=(j.job.name) {
                            td { a href=(job_href(&j.job.name)) { (j.job.name) }
                                @if j.job.paused { " " span.state.warn { "paused" } } }
                            td { (rule(&j.job)) }
                            td { (j.job.timezone) }
                            td { (target(&j.job)) }
                            td { @if j.job.paused { span.muted { "paused" } } @else { (time(j.next_fire)) } }
                            td { @if let Some(r) = &j.last_run {
                                a href=(format!("/runs/{}", r.id)) { (state(r.state)) } " " (time(r.ended_at.or(Some(r.instant))))
                            } @else { span.muted { "never ran" } } }
                            @if v.writes() { td.actions { (job_actions(&j.job)) } }
                        }
                    }
                }
            }
            @if pages > 1 {
                nav.pager aria-label="Pages" {
                    @if page > 1 { a href=(page_href(page - 1)) rel="prev" { "Previous" } }
                    span.muted { "page " (page) " of " (pages) }
                    @if page < pages { a href=(page_href(page + 1)) rel="next" { "Next" } }
                }
            }
        }
    };
    Ok(render("Jobs", Some(Section::Jobs), &v, body))
}

/// Run now, pause/resume, edit, delete: each a request to the API from the page's script.
fn job_actions(job: &crate::model::Job) -> Markup {
    let base = format!("/api/v1/jobs/{}", layout::encode(&job.name));
    html! {
        button type="button" data-post=(format!("{base}/run")) data-then="run" { "Run now" }
        @if job.paused {
            button type="button" data-post=(format!("{base}/resume")) { "Resume" }
        } @else {
            button type="button" data-post=(format!("{base}/pause")) { "Pause" }
        }
        a.button href=(format!("{}/edit", job_href(&job.name))) { "Edit" }
        button.danger type="button" data-post=(base) data-method="DELETE" data-then="/jobs"
            data-confirm=(format!("Delete job {} and its history?", job.name)) { "Delete" }
    }
}

pub async fn job(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> PageResult {
    let v = c.visitor(&headers, peer, &job_href(&key)).await?;
    let found = async {
        let job = api::find(&c.api, &v.caller, &key).await?;
        let runs = c
            .api
            .store
            .runs(&RunFilter {
                job_id: Some(job.id),
                limit: 50,
                ..RunFilter::default()
            })
            .await?;

        let mut views = api::views(&c.api, vec![job]).await?;
        let view = views
            .pop()
            .ok_or_else(|| crate::http::ApiError::not_found(format!("no job `{key}`")))?;
        Ok::<_, crate::http::ApiError>((view, runs))
    }
    .await;
    let (view, runs) = found.map_err(|e| trouble(&v, Some(Section::Jobs), e))?;
    let j = &view.job;
    let ended: Vec<&Run> = runs.iter().filter(|r| r.state.is_final()).collect();
    let ok = ended
        .iter()
        .filter(|r| r.state == RunState::Succeeded)
        .count();
    let mut durations: Vec<i64> = ended
        .iter()
        .filter_map(|r| Some(r.ended_at? - r.started_at?))
        .collect();
    durations.sort_unstable();
    let pct = |p: usize| {
        durations
            .get((durations.len() * p / 100).min(durations.len().saturating_sub(1)))
            .copied()
    };
    let settings: Vec<(&str, Markup)> = vec![
        ("Rule", rule(j)),
        ("Zone", html! { (j.timezone) }),
        (
            "Next fire",
            if j.paused {
                html! { span.state.warn { "paused" } }
            } else {
                time(view.next_fire)
            },
        ),
        ("Target", html! { (target(j)) }),
        (
            "Work",
            match (&j.command, &j.http_url) {
                (Some(cmd), _) => html! { pre.command { (cmd) } },
                (None, Some(url)) => html! { code { (j.http_method) " " (layout::masked(url)) } },
                _ => html! { "—" },
            },
        ),
        (
            "Timeout",
            html! { @if let Some(t) = j.timeout_secs { (layout::span(t * 1000)) } @else { "none" } },
        ),
        ("Overlap", html! { (j.overlap.as_str()) }),
        (
            "Retries",
            html! { (j.retries) " (backoff " (j.retry_backoff_secs) " s)" },
        ),
        (
            "Misfire",
            html! { (j.misfire.as_str()) " (window " (j.misfire_window_secs) " s)" },
        ),
        (
            "Alarms on",
            html! { (j.alarm_on.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")) },
        ),
        ("Created", time(Some(j.created_at))),
        ("Changed", time(Some(j.updated_at))),
    ];
    let body = html! {
        @if v.writes() { div.actions.bar data-job=(j.name) { (job_actions(j)) } }
        div.grid {
            section.card {
                h2 { "Settings" }
                dl { @for (k, val) in &settings { dt { (k) } dd { (val) } } }
            }
            section.card {
                h2 { "Last " (ended.len()) " ended runs" }
                @if ended.is_empty() { (none("No run ended yet.")) } @else {
                    p.big { strong { (ok * 100 / ended.len()) "%" } " succeeded (" (ok) " of " (ended.len()) ")" }
                    @if let (Some(p50), Some(p90), Some(max)) = (pct(50), pct(90), durations.last()) {
                        p { "Duration: median " (layout::span(p50)) ", p90 " (layout::span(p90)) ", longest " (layout::span(*max)) }
                    }
                    p.strip aria-label="Outcomes, oldest to newest" {
                        @for r in ended.iter().rev() { a href=(format!("/runs/{}", r.id)) title=(r.state.as_str()) { (state(r.state)) } }
                    }
                }
            }
        }
        h2 { "Runs" }
        p {
            a href=(href("/runs", &[("job", &j.name)])) { "All runs of " (j.name) }
            @if v.caller.principal.is_admin() { " · " a href=(href("/audit", &[("job", &j.name)])) { "History of changes" } }
        }
        (runs_table(&runs, false))
    };
    Ok(render(
        &format!("Job {}", j.name),
        Some(Section::Jobs),
        &v,
        body,
    ))
}

// ---------------------------------------------------------------------------------------------
// Runs

pub async fn runs(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<RunsQuery>,
) -> PageResult {
    let v = c.visitor(&headers, peer, "/runs").await?;
    let listed = async {
        let job_id = match q.job.as_deref().filter(|j| !j.is_empty()) {
            Some(key) => Some(api::find(&c.api, &v.caller, key).await?.id),
            None => None,
        };
        let mut filter = q.filter(job_id)?;
        filter.limit = q.limit.unwrap_or(50);
        filter.groups = v.caller.principal.groups.clone();
        c.api.store.runs(&filter).await.map_err(Into::into)
    }
    .await;
    let list = listed.map_err(|e| trouble(&v, Some(Section::Runs), e))?;
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    let (job, st, trig, exec, since, until) = (
        s(&q.job),
        s(&q.state),
        s(&q.trigger),
        s(&q.executor),
        s(&q.since),
        s(&q.until),
    );
    let limit = q.limit.unwrap_or(50);
    let more = list.len() as i64 >= limit;
    let next_page = list.last().map(|r| r.id.to_string()).unwrap_or_default();
    let limit_text = limit.to_string();
    let pairs = |before: &str| -> String {
        href(
            "/runs",
            &[
                ("job", &job),
                ("state", &st),
                ("trigger", &trig),
                ("executor", &exec),
                ("since", &since),
                ("until", &until),
                ("before", before),
                ("limit", if limit == 50 { "" } else { &limit_text }),
            ],
        )
    };
    let body = html! {
        form.filters method="get" action="/runs" role="search" {
            label { "Job " input name="job" value=(job) placeholder="name"; }
            label { "State "
                select name="state" {
                    option value="" { "any" }
                    @for x in RunState::ALL { option value=(x.as_str()) selected[st == x.as_str()] { (x.as_str()) } }
                }
            }
            label { "Trigger "
                select name="trigger" {
                    option value="" { "any" }
                    @for x in crate::model::Trigger::ALL { option value=(x.as_str()) selected[trig == x.as_str()] { (x.as_str()) } }
                }
            }
            label { "Executor " input name="executor" value=(exec) placeholder="host"; }
            label { "Since " input name="since" value=(since) placeholder="1h, 2026-12-01T09:00:00Z"; }
            label { "Until " input name="until" value=(until) placeholder="time"; }
            button type="submit" { "Filter" }
        }
        (runs_table(&list, true))
        nav.pager aria-label="Pages" {
            @if q.before.is_some() { a href=(pairs("")) { "Newest" } }
            @if more { a href=(pairs(&next_page)) rel="next" { "Older runs" } }
        }
    };
    Ok(render("Runs", Some(Section::Runs), &v, body))
}

pub async fn run(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let v = c.visitor(&headers, peer, &format!("/runs/{id}")).await?;
    let found = async {
        let id = api::run_id(&id)?;
        let run = api::find_run(&c.api, &v.caller, id).await?;
        let chain = c
            .api
            .store
            .retry_chain(run.retry_of.unwrap_or(run.id))
            .await?;
        Ok::<_, crate::http::ApiError>((run, chain))
    }
    .await;
    let (r, chain) = found.map_err(|e| trouble(&v, Some(Section::Runs), e))?;
    let live = !r.state.is_final();
    let steps: [(&str, Option<i64>); 4] = [
        ("created", Some(r.created_at)),
        ("dispatched", r.dispatched_at),
        ("started", r.started_at),
        ("ended", r.ended_at),
    ];
    let body = html! {
        div.bar {
            (state(r.state)) " "
            a href=(job_href(&r.job_name)) { (r.job_name) }
            @if live && v.writes() {
                " " button.danger #kill type="button" data-post=(format!("/api/v1/runs/{}/kill", r.id))
                    data-confirm=(format!("Kill run {}?", r.id)) { "Kill" }
            }
        }
        div.grid {
            section.card {
                h2 { "Run" }
                dl #facts {
                    dt { "Scheduled" } dd { (time(Some(r.instant))) }
                    @for (name, at) in steps { dt { (name) } dd data-step=(name) { (time(at)) } }
                    dt { "Duration" } dd { (run_duration(r.started_at, r.ended_at)) }
                    dt { "Trigger" } dd { (r.trigger.as_str()) }
                    dt { "Executor" } dd.wrap { (r.executor.as_deref().unwrap_or("—")) }
                    dt { "Pid" } dd { @if let Some(p) = r.pid { (p) } @else { "—" } }
                    dt { "Exit code" } dd #exit { @if let Some(c) = r.exit_code { (c) } @else { "—" } }
                    dt { "Error" } dd #error { (r.error.as_deref().unwrap_or("—")) }
                }
            }
            section.card {
                h2 { "Attempts" }
                p { "Attempt " (r.attempt) }
                @if chain.len() > 1 {
                    ol { @for a in &chain { li {
                        @if a.id == r.id { strong { "run " (a.id) } } @else { a href=(format!("/runs/{}", a.id)) { "run " (a.id) } }
                        " " (state(a.state))
                    } } }
                } @else { (none("No retries.")) }
            }
        }
        section.output #output data-run=(r.id) data-live=(live) {
            h2 { "stdout" }
            pre #stdout tabindex="0" aria-live="polite" { @if !live {
                (r.stdout.as_deref().unwrap_or(""))
            } }
            h2 { "stderr" }
            pre #stderr tabindex="0" { @if !live { (r.stderr.as_deref().unwrap_or("")) } }
            @if live { p.muted #follow { "Following live output…" } }
        }
    };
    Ok(render(
        &format!("Run {}", r.id),
        Some(Section::Runs),
        &v,
        body,
    ))
}

// ---------------------------------------------------------------------------------------------
// Fleet and alarms

pub async fn fleet(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> PageResult {
    let v = c.visitor(&headers, peer, "/fleet").await?;
    let (executors, dispatchers) = c
        .api
        .store
        .fleet_members()
        .await
        .map_err(|e| trouble(&v, Some(Section::Fleet), e.into()))?;
    let degraded = c.deps.snapshot();
    let body = html! {
        section.card {
            h2 { "Dependencies" }
            @if degraded.is_empty() { p { span.state.ok { "all reachable" } } } @else {
                ul { @for (name, error) in &degraded { li { span.state.bad { (name) } " " (error) } } }
            }
        }
        h2 { "Executors" }
        @if executors.is_empty() { (none("No executor is heartbeating.")) } @else {
            table { thead { tr { th { "Host" } th { "Instance" } th { "Groups" } th { "Address" } th { "Version" } th { "Last heartbeat" } th { "Running" } } }
                tbody { @for e in &executors { tr {
                    td { (e.instance.split('/').next().unwrap_or("")) }
                    td.wrap { a href=(href("/runs", &[("executor", &e.instance)])) { (e.instance) } }
                    td { (e.groups.as_deref().filter(|g| !g.is_empty()).unwrap_or("—")) }
                    td { (e.url.as_deref().unwrap_or("—")) }
                    td { (e.version.as_deref().unwrap_or("—")) }
                    td { (time(Some(e.last_seen))) }
                    td { (e.running) }
                } } }
            }
        }
        h2 { "Dispatchers" }
        @if dispatchers.is_empty() { (none("No dispatcher is heartbeating.")) } @else {
            table { thead { tr { th { "Instance" } th { "Started" } th { "Last heartbeat" } th { "Left" } } }
                tbody { @for d in &dispatchers { tr {
                    td.wrap { (d.instance) }
                    td { (time(Some(d.started_at))) }
                    td { (time(Some(d.last_seen))) }
                    td { (time(d.left_at)) }
                } } }
            }
        }
    };
    Ok(render("Fleet", Some(Section::Fleet), &v, body))
}

pub async fn alarms(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> PageResult {
    let v = c.visitor(&headers, peer, "/alarms").await?;
    let found = async {
        let alarms = c
            .api
            .store
            .alarms_in(200, v.caller.principal.groups.as_deref())
            .await?;
        let names: HashMap<i64, String> = c
            .api
            .store
            .jobs()
            .await?
            .into_iter()
            .map(|j| (j.id, j.name))
            .collect();
        Ok::<_, crate::store::StoreError>((alarms, names))
    }
    .await;
    let (alarms, names) = found.map_err(|e| trouble(&v, Some(Section::Alarms), e.into()))?;
    let body = html! {
        @if alarms.is_empty() { (none("No alarm was raised.")) } @else {
            table { thead { tr { th { "Raised" } th { "Kind" } th { "Job" } th { "Run" } th { "Channel" } th { "Recipient" } th { "Delivery" } th { "Attempts" } th { "Merged" } th { "Last error" } } }
                tbody { @for a in &alarms { tr {
                    td { (time(Some(a.created_at))) }
                    td { (a.kind) }
                    td { @match names.get(&a.job_id) { Some(n) => a href=(job_href(n)) { (n) }, None => span.muted { "—" } } }
                    td { @if a.run_id > 0 { a href=(format!("/runs/{}", a.run_id)) { (a.run_id) } } @else { "—" } }
                    td { (a.channel) }
                    td.wrap { (layout::masked(&a.recipient)) }
                    td { span class=(format!("state {}", match a.status.as_str() { "sent" | "recorded" => "ok", "failed" => "bad", _ => "live" })) { (a.status) } }
                    td { (a.attempts) }
                    td { (a.count) }
                    td.wrap { (a.last_error.as_deref().map(layout::masked).unwrap_or_default()) }
                } } }
            }
        }
    };
    Ok(render("Alarms", Some(Section::Alarms), &v, body))
}

// ---------------------------------------------------------------------------------------------
// Audit and users (admins)

/// Admin pages: anyone else gets the same "not possible" page as a missing object.
fn admin_only(v: &Visitor, section: Section) -> Result<(), Bounce> {
    v.caller
        .require_admin()
        .map_err(|e| trouble(v, Some(section), e))
}

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    job: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    since: String,
    before: Option<i64>,
}

pub async fn audit(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> PageResult {
    let v = c.visitor(&headers, peer, "/audit").await?;
    admin_only(&v, Section::Audit)?;
    let found = async {
        let filter = crate::monitor::admin::audit_filter(
            &c.api, &v.caller, &q.job, &q.user, &q.since, q.before, 100,
        )
        .await?;
        c.api
            .store
            .audit(&filter)
            .await
            .map_err(crate::http::ApiError::from)
    }
    .await;
    let entries = found.map_err(|e| trouble(&v, Some(Section::Audit), e))?;
    let next = entries.last().map(|e| e.id.to_string()).unwrap_or_default();
    let body = html! {
        form.filters method="get" action="/audit" role="search" {
            label { "Job " input name="job" value=(q.job) placeholder="name"; }
            label { "User " input name="user" value=(q.user) placeholder="name or token:NAME"; }
            label { "Since " input name="since" value=(q.since) placeholder="1h, 2026-12-01T09:00:00Z"; }
            button type="submit" { "Filter" }
        }
        @if entries.is_empty() { (none("Nothing recorded.")) } @else {
            table.audit { thead { tr { th { "When" } th { "Who" } th { "From" } th { "Action" } th { "Object" } th { "Details" } } }
                tbody { @for e in &entries { tr {
                    td { (time(Some(e.at))) }
                    td.wrap { (e.actor) }
                    td { (e.address.as_deref().unwrap_or("—")) }
                    td { code { (e.action) } }
                    td.wrap { (e.object) }
                    td.wrap { code { (e.details.to_string()) } }
                } } }
            }
            @if entries.len() == 100 {
                nav.pager { a rel="next" href=(href("/audit", &[("job", &q.job), ("user", &q.user), ("since", &q.since), ("before", &next)])) { "Older entries" } }
            }
        }
    };
    Ok(render("Audit log", Some(Section::Audit), &v, body))
}

pub async fn users(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> PageResult {
    let v = c.visitor(&headers, peer, "/users").await?;
    admin_only(&v, Section::Users)?;
    let found = async {
        Ok::<_, crate::store::StoreError>((c.api.store.users().await?, c.api.store.tokens().await?))
    }
    .await;
    let (users, tokens) = found.map_err(|e| trouble(&v, Some(Section::Users), e.into()))?;
    let scope = |g: &Option<Vec<String>>| {
        g.as_ref()
            .map(|g| g.join(", "))
            .unwrap_or_else(|| "every group".into())
    };
    let roles: Vec<&str> = crate::model::access::Access::ALL
        .iter()
        .map(|a| a.as_str())
        .collect();
    let body = html! {
        h2 { "Users" }
        table.users { thead { tr { th { "Name" } th { "Role" } th { "Groups" } th { "E-mail" } th { "State" } th { "Last login" } th { "Actions" } } }
            tbody { @for u in &users { tr data-user=(u.name) {
                td { (u.name) }
                td { (u.access.as_str()) }
                td { (scope(&u.groups)) }
                td { (u.email.as_deref().unwrap_or("—")) }
                td { @if u.active { span.state.ok { "active" } } @else { span.state.warn { "disabled" } } }
                td { (time(u.last_login_at)) }
                td.actions {
                    @let base = format!("/api/v1/users/{}", layout::encode(&u.name));
                    @if u.active {
                        button type="button" data-post=(base.clone()) data-method="PATCH" data-body=r#"{"active":false}"# { "Disable" }
                    } @else {
                        button type="button" data-post=(base.clone()) data-method="PATCH" data-body=r#"{"active":true}"# { "Enable" }
                    }
                    button.danger type="button" data-post=(base) data-method="DELETE" data-confirm=(format!("Delete user {}?", u.name)) { "Delete" }
                }
            } } }
        }
        form.job #user-form data-action="/api/v1/users" data-method="POST" data-then="/users" novalidate {
            fieldset {
                legend { "Add a user" }
                div.field { label for="u-name" { "Name" } input #u-name data-field="name"; small.error data-error-for="name" {} }
                div.field { label for="u-role" { "Role" }
                    select #u-role data-field="role" { @for r in &roles { option value=(r) selected[*r == "viewer"] { (r) } } }
                    small.error data-error-for="role" {} }
                div.field { label for="u-groups" { "Groups" } input #u-groups data-field="groups" placeholder="empty: every group"; small.error data-error-for="groups" {} }
                div.field { label for="u-email" { "E-mail" } input #u-email data-field="email"; small.error data-error-for="email" {} }
                div.field { label for="u-password" { "Password" } input #u-password type="password" autocomplete="new-password" data-field="password"; small.error data-error-for="password" {} }
                div.field { button.primary type="submit" { "Add user" } }
            }
        }
        h2 { "API tokens" }
        @if tokens.is_empty() { (none("No named token. Create one: cronvisor token create --name NAME --role ROLE")) } @else {
            table.tokens { thead { tr { th { "Name" } th { "Role" } th { "Groups" } th { "Created" } th { "By" } th { "Expires" } th { "Last used" } th { "State" } th { "Actions" } } }
                tbody { @for t in &tokens { tr data-token=(t.name) {
                    td { (t.name) }
                    td { (t.access.as_str()) }
                    td { (scope(&t.groups)) }
                    td { (time(Some(t.created_at))) }
                    td { (t.created_by) }
                    td { (time(t.expires_at)) }
                    td { (time(t.last_used_at)) }
                    td { @if t.revoked_at.is_some() { span.state.bad { "revoked" } } @else { span.state.ok { "live" } } }
                    td.actions { @if t.revoked_at.is_none() {
                        button.danger type="button" data-post=(format!("/api/v1/tokens/{}", layout::encode(&t.name))) data-method="DELETE" data-confirm=(format!("Revoke token {}?", t.name)) { "Revoke" }
                    } }
                } } }
            }
        }
    };
    Ok(render("Users and tokens", Some(Section::Users), &v, body))
}
