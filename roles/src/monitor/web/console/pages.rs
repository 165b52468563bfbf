//! The console's read-only pages. Each reads through the same store queries and checks as the
//! API (`api::views`, `RunsQuery::filter`, ...); what they change, they change through the API
//! from the page's script.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, href, job_href, none, page, run_duration, state, time, Section};
use super::{Bounce, Console, Visitor};
use crate::model::{Run, RunState};
use crate::monitor::web::api::{self};
use crate::schedule::words;
use crate::store::RunFilter;

pub(super) type PageResult = Result<Response, Bounce>;

pub(super) fn render(title: &str, section: Option<Section>, v: &Visitor, body: Markup) -> Response {
    Html(page(title, section, Some(v), body).into_string()).into_response()
}

/// An error shown as a page (a bad filter, a missing job): the same message the API gives.
pub(super) fn trouble(v: &Visitor, section: Option<Section>, e: crate::http::ApiError) -> Bounce {
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
pub(super) fn target(job: &crate::model::Job) -> String {
    match &job.run_at {
        None => format!("any executor ({})", job.fanout.as_str()),
        Some(t) => format!("{t} ({})", job.fanout.as_str()),
    }
}

/// The rule, and under it its plain-words reading when it has one.
pub(super) fn rule(job: &crate::model::Job) -> Markup {
    if !job.after.is_empty() {
        return html! {
            "after "
            @for (i, e) in job.after.iter().enumerate() {
                @if i > 0 { ", " }
                a href=(job_href(&e.job)) { (e.job) }
                @if e.on != crate::model::EdgeOn::Success { " (on " (e.on.as_str()) ")" }
            }
        };
    }
    html! {
        code { (job.schedule) }
        @if let Some(w) = words::describe(&job.schedule) { br; span.muted { (w) } }
    }
}

pub(super) fn runs_table(runs: &[Run], with_job: bool) -> Markup {
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
        let targets = c
            .api
            .store
            .job_targets(v.caller.principal.groups.as_deref())
            .await?;
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
        (jobs_table(&shown, v.writes(), page, pages, &page_href))
    };
    Ok(render("Jobs", Some(Section::Jobs), &v, body))
}

/// The jobs of one page, with the pager.
fn jobs_table(
    shown: &[crate::model::JobView],
    writes: bool,
    page: usize,
    pages: usize,
    page_href: &dyn Fn(usize) -> String,
) -> Markup {
    html! {
    @if shown.is_empty() { (none("No job matches.")) } @else {
        table.jobs {
            thead { tr {
                th { "Name" } th { "Rule" } th { "Zone" } th { "Target" } th { "Next fire" }
                th { "Last run" } @if writes { th { "Actions" } }
            } }
            tbody {
                @for j in shown.iter() {
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
                        @if writes { td.actions { (job_actions(&j.job)) } }
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
    }
}

/// Run now, pause/resume, edit, delete: each a request to the API from the page's script.
fn job_actions(job: &crate::model::Job) -> Markup {
    let base = format!("/api/v1/jobs/{}", layout::encode(&job.name));
    html! {
        @if job.params.is_empty() {
            button type="button" data-post=(format!("{base}/run")) data-then="run" { "Run now" }
        } @else {
            a.button href=(format!("{}/run", job_href(&job.name))) { "Run now…" }
        }
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

        let flow = super::flows::latest_of(&c, &v.caller, job.id).await?;
        let downstream = c.api.store.dependents(job.id).await?;
        let backfills = c.api.store.backfills(Some(job.id), None, 10).await?;
        let view = api::view(&c.api, job).await?;
        Ok::<_, crate::http::ApiError>((view, runs, flow, downstream, backfills))
    }
    .await;
    let (view, runs, flow, downstream, backfills) =
        found.map_err(|e| trouble(&v, Some(Section::Jobs), e))?;
    let backfills: Vec<_> = backfills.into_iter().map(|(b, _)| b).collect();
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
    let settings = job_settings(&view);
    let body = html! {
        @if v.writes() { div.actions.bar data-job=(j.name) {
            (job_actions(j))
            @if j.after.is_empty() { a.button href=(format!("{}/backfill", job_href(&j.name))) { "Backfill…" } }
        } }
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
                    (super::durations::chart(&ended, view.usual, j.duration_alarm))
                    p.strip aria-label="Outcomes, oldest to newest" {
                        @for r in ended.iter().rev() { a href=(format!("/runs/{}", r.id)) title=(r.state.as_str()) { (state(r.state)) } }
                    }
                }
            }
        }
        @if let Some(flow) = &flow {
            h2 { "Latest flow" }
            (super::flows::flow_block(flow, v.writes()))
        }
        @if !downstream.is_empty() {
            p.downstream { "Runs before: "
                @for (i, d) in downstream.iter().enumerate() {
                    @if i > 0 { ", " }
                    a href=(job_href(d)) { (d) }
                }
            }
        }
        @if !backfills.is_empty() || (v.writes() && j.after.is_empty()) {
            (super::backfills::backfills_block(&backfills, v.writes()))
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

/// A job's settings as the job page lists them.
fn job_settings(view: &crate::model::JobView) -> Vec<(&'static str, Markup)> {
    let j = &view.job;
    vec![
        (if j.after.is_empty() { "Rule" } else { "Runs" }, rule(j)),
        ("Zone", html! { (j.timezone) }),
        (
            "Calendars",
            match j.calendars.is_empty() {
                true => html! { "—" },
                false => html! {
                    @for (i, c) in j.calendars.iter().enumerate() {
                        @if i > 0 { ", " }
                        a href=(format!("/calendars/{}", layout::encode(c))) { (c) }
                    }
                    " (" (j.calendar_mode.as_str()) ")"
                },
            },
        ),
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
            "SLA",
            match (j.late_after_secs, j.deadline) {
                (None, None) => html! { "—" },
                (late, deadline) => html! {
                    @if let Some(l) = late { "late if not started " (crate::model::durations::secs_text(l)) " after its instant" }
                    @if late.is_some() && deadline.is_some() { "; " }
                    @if let Some(d) = deadline { "overdue if not done by " (d.text()) }
                },
            },
        ),
        (
            "Requires",
            match (&j.requires, j.within_secs) {
                (Some(r), Some(w)) => html! {
                    a href=(job_href(r)) { (r) } " succeeded within "
                    (crate::model::durations::secs_text(w)) " before each instant"
                },
                _ => html! { "—" },
            },
        ),
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
    ]
}

// ---------------------------------------------------------------------------------------------
// Runs
