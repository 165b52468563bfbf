//! The console's pages of runs, the fleet, alarms, users and the audit log (the jobs' pages
//! and the overview are in `pages.rs`).

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::HeaderMap;
use maud::html;
use serde::Deserialize;

use super::layout::{self, href, job_href, none, run_duration, state, time, Section};
use super::pages::{render, runs_table, trouble, PageResult};
use super::{Bounce, Console, Visitor};
use crate::model::RunState;
use crate::monitor::web::api::{self, RunsQuery};

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
                    @if r.flow_run.is_some() || r.flow_root != 0 {
                        dt { "Flow" } dd { a href=(format!("/flows/{}", r.id)) { "the flow of this run" } }
                    }
                    @if let Some(up) = &r.upstream_runs {
                        dt { "Released by" } dd {
                            @for (i, pair) in up.split(',').enumerate() {
                                @if i > 0 { ", " }
                                @if let Some((name, id)) = pair.split_once('=') {
                                    (name) " " a href=(format!("/runs/{id}")) { "run " (id) }
                                }
                            }
                        }
                    }
                    @if let Some(params) = r.params.as_ref().filter(|p| !p.is_empty()) {
                        dt { "Parameters" } dd.wrap #params {
                            @for (i, (k, v)) in params.iter().enumerate() {
                                @if i > 0 { ", " }
                                code { (k) "=" (v) }
                            }
                        }
                    }
                    @if let Some(old) = r.rerun_of {
                        dt { "Rerun of" } dd { a href=(format!("/runs/{old}")) { "run " (old) } }
                    }
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
        let filter = crate::monitor::web::admin::audit_filter(
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
