//! The Flows page, one flow's page, and the flow graph drawn on them and on each member job's
//! page: server-rendered SVG in layers (a job right of all its upstreams), each node coloured
//! by its state and linked to its run, edges labelled when they are not `success`.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::HeaderMap;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{href, job_href, none, time, Section};
use super::pages::{render, trouble, PageResult};
use super::Console;
use crate::model::flows::{FlowSummary, FlowView};
use crate::model::EdgeOn;
use crate::monitor::web::api;
use crate::store::FlowFilter;

const NODE_W: usize = 170;
const NODE_H: usize = 44;
const GAP_X: usize = 70;
const GAP_Y: usize = 22;

/// The tone of a node's state, as the run states are coloured elsewhere.
fn tone(state: &str) -> &'static str {
    match state {
        "succeeded" => "ok",
        "failed" | "timed_out" | "lost" | "missed" => "bad",
        "killed" | "skipped" => "warn",
        "waiting" => "idle",
        _ => "live",
    }
}

/// The flow as an SVG graph, layer by layer.
pub(super) fn graph(flow: &FlowView) -> Markup {
    let mut rows: HashMap<usize, usize> = HashMap::new();
    let positions: Vec<(usize, usize)> = flow
        .nodes
        .iter()
        .map(|n| {
            let row = rows.entry(n.layer).or_insert(0);
            *row += 1;
            (
                10 + n.layer * (NODE_W + GAP_X),
                10 + (*row - 1) * (NODE_H + GAP_Y),
            )
        })
        .collect();
    let at: HashMap<&str, (usize, usize)> = flow
        .nodes
        .iter()
        .zip(&positions)
        .map(|(n, p)| (n.job.as_str(), *p))
        .collect();
    let layers = flow.nodes.iter().map(|n| n.layer).max().unwrap_or(0) + 1;
    let tallest = rows.values().copied().max().unwrap_or(1);
    let width = 20 + layers * NODE_W + (layers - 1) * GAP_X;
    let height = 20 + tallest * NODE_H + (tallest - 1) * GAP_Y;
    html! {
        svg.flow role="img" viewBox=(format!("0 0 {width} {height}")) width=(width) height=(height)
            aria-label=(format!("Flow of {}: {}", flow.root_job, flow.state)) {
            @for (n, (x, y)) in flow.nodes.iter().zip(&positions) {
                @for e in &n.after {
                    @if let Some((ux, uy)) = at.get(e.job.as_str()) {
                        @let (x1, y1, x2, y2) = (ux + NODE_W, uy + NODE_H / 2, *x, y + NODE_H / 2);
                        path.edge class=(if e.on == EdgeOn::Success { "edge" } else { "edge alt" })
                            d=(format!("M{x1},{y1} C{},{y1} {},{y2} {x2},{y2}", x1 + GAP_X / 2, x2 - GAP_X / 2)) {}
                        @if e.on != EdgeOn::Success {
                            text.label x=((x1 + x2) / 2) y=((y1 + y2) / 2 - 4) text-anchor="middle" { (e.on.as_str()) }
                        }
                    }
                }
            }
            @for (n, (x, y)) in flow.nodes.iter().zip(&positions) {
                @let box_ = html! {
                    rect class=(format!("node {}", tone(&n.state))) x=(x) y=(y) width=(NODE_W) height=(NODE_H) rx="6" {}
                    text.name x=(x + 8) y=(y + 18) { (n.job) }
                    text.state x=(x + 8) y=(y + 35) { (n.state) }
                };
                g.node data-job=(n.job) data-state=(n.state) {
                    title { (n.job) ": " (n.state) }
                    @match n.runs.first() {
                        Some(r) if !n.hidden => a href=(format!("/runs/{}", r.id)) { (box_) },
                        _ => (box_),
                    }
                }
            }
        }
    }
}

/// A flow's heading line, graph and rerun button.
pub(super) fn flow_block(flow: &FlowView, writes: bool) -> Markup {
    html! {
        p.flow-facts {
            "Flow of " a href=(job_href(&flow.root_job)) { (flow.root_job) }
            " at " (time(Some(flow.instant)))
            @if let Some(r) = flow.root_run { " (run " a href=(format!("/runs/{r}")) { (r) } ")" }
            ": " span class=(format!("state {}", tone(&flow.state))) data-flow-state=(flow.state) { (flow.state) }
            @if let Some(d) = flow.duration_ms { ", " (super::layout::span(d)) }
            @if flow.round > 0 { ", rerun " (flow.round) }
        }
        div.flow-graph { (graph(flow)) }
        @if writes && matches!(flow.state.as_str(), "failed" | "partial") {
            @if let Some(r) = flow.root_run {
                p { button type="button" data-post=(format!("/api/v1/flows/{r}/rerun")) data-then="reload"
                    { "Rerun what did not succeed" } }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct FlowsQuery {
    #[serde(default)]
    state: String,
}

/// `/flows`: every flow the visitor may see, newest first.
pub async fn flows(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<FlowsQuery>,
) -> PageResult {
    let v = c.visitor(&headers, peer, "/flows").await?;
    let filter = FlowFilter {
        root: None,
        state: (!q.state.is_empty()).then(|| q.state.clone()),
        limit: 200,
    };
    let listed = c
        .api
        .store
        .flows(&filter)
        .await
        .map_err(|e| trouble(&v, Some(Section::Flows), e.into()))?;
    let shown: Vec<FlowSummary> = listed
        .into_iter()
        .filter(|(_, g)| v.caller.principal.sees(g))
        .map(|(f, _)| f)
        .collect();
    let body = html! {
        nav.filters aria-label="Flow states" {
            @for s in ["", "running", "succeeded", "failed", "partial"] {
                @let label = if s.is_empty() { "all" } else { s };
                @if q.state == s { strong { (label) } } @else { a href=(href("/flows", &[("state", s)])) { (label) } }
                " "
            }
        }
        @if shown.is_empty() { (none("No flow yet: jobs that run after others (--after) make them.")) } @else {
            table.flows {
                thead { tr { th { "Flow" } th { "Root" } th { "Instant" } th { "State" } th { "Duration" } th { "Failed" } } }
                tbody {
                    @for f in &shown {
                        tr {
                            td { a href=(format!("/flows/{}", f.root_run)) { "run " (f.root_run) } }
                            td { a href=(job_href(&f.root_job)) { (f.root_job) } }
                            td { (time(Some(f.instant))) }
                            td { span class=(format!("state {}", tone(&f.state))) { (f.state) }
                                 @if f.round > 0 { " " span.muted { "rerun " (f.round) } } }
                            td { @if let Some(e) = f.ended_at { (super::layout::span((e - f.instant).max(0))) } @else { "—" } }
                            td.wrap { (f.failed.as_deref().unwrap_or("—")) }
                        }
                    }
                }
            }
        }
    };
    Ok(render("Flows", Some(Section::Flows), &v, body))
}

/// `/flows/{run}`: the flow of a run, drawn, with its jobs' runs.
pub async fn flow(
    State(c): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(run): Path<String>,
) -> PageResult {
    let v = c.visitor(&headers, peer, &format!("/flows/{run}")).await?;
    let found = async {
        let run = crate::monitor::web::api::run_id(&run)?;
        api::find_run(&c.api, &v.caller, run).await?;
        let (root, instant) = c
            .api
            .store
            .flow_of_run(run)
            .await?
            .ok_or_else(|| crate::http::ApiError::not_found(format!("no run {run}")))?;
        let graph = c.api.store.graph().await?;
        let flow = c.api.store.flow(&graph, root, instant).await?;
        Ok::<_, crate::http::ApiError>(crate::monitor::web::flows::hidden(&v.caller, flow))
    }
    .await;
    let flow = found.map_err(|e| trouble(&v, Some(Section::Flows), e))?;
    let runs: Vec<crate::model::Run> = flow.nodes.iter().flat_map(|n| n.runs.clone()).collect();
    let body = html! {
        (flow_block(&flow, v.writes()))
        h2 { "Runs of the flow" }
        (super::pages::runs_table(&runs, true))
    };
    Ok(render(
        &format!("Flow of {}", flow.root_job),
        Some(Section::Flows),
        &v,
        body,
    ))
}

/// The latest flow a job is part of, for its page: none if it is in no graph or its root
/// never ran.
pub(super) async fn latest_of(
    c: &Console,
    caller: &crate::monitor::web::access::Caller,
    job_id: i64,
) -> Result<Option<FlowView>, crate::http::ApiError> {
    let graph = c.api.store.graph().await?;
    if !graph.contains(job_id) {
        return Ok(None);
    }
    let root = graph.roots_of(job_id).into_iter().next().unwrap_or(job_id);
    let Some(instant) = c.api.store.latest_flow(root).await? else {
        return Ok(None);
    };
    let flow = c.api.store.flow(&graph, root, instant).await?;
    Ok(Some(crate::monitor::web::flows::hidden(caller, flow)))
}
