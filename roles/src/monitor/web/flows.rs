//! `/api/v1/flows` and `/api/v1/jobs/{job}/flow`: flows as people read them, and `rerun`.
//! A reader sees a job of a group it may not see as `hidden job`, with its state only.

use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::Caller;
use super::api::{find, find_run, ApiState};
use crate::http::{ApiError, ErrorBody};
use crate::model::flows::{FlowSummary, FlowView};
use crate::model::{parse_time_bound, Job};
use crate::store::{FlowFilter, Rerun};

/// Each route registered with its entry in the OpenAPI document.
pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_flows))
        .routes(routes!(show_flow))
        .routes(routes!(rerun_flow))
}

/// `GET /api/v1/flows` filters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct FlowsQuery {
    /// A job of the flows (its root's flows are listed).
    job: Option<String>,
    /// running, succeeded, failed or partial.
    state: Option<String>,
    /// 1 to 1000; default 50.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

const FLOW_STATES: &[&str] = &["running", "succeeded", "failed", "partial"];

/// Flows newest first: those whose root is still going, then the others.
#[utoipa::path(get, path = "/api/v1/flows", tag = "flows", params(FlowsQuery),
    responses((status = 200, description = "The flows", body = Vec<FlowSummary>), (status = 400, description = "A filter is wrong: the error names it", body = ErrorBody),
        (status = 404, description = "No such job (or not in the caller's groups)", body = ErrorBody)))]
async fn list_flows(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<FlowsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<FlowSummary>>, ApiError> {
    s.requests.inc();
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    if let Some(st) = q.state.as_deref() {
        if !FLOW_STATES.contains(&st) {
            return Err(ApiError::field(
                "state",
                format!("unknown `{st}` (one of {})", FLOW_STATES.join(", ")),
            ));
        }
    }
    let root = match q.job.as_deref() {
        Some(key) => {
            let job = find(&s, &caller, key).await?;
            Some(root_of(&s.store.graph().await?, &job))
        }
        None => None,
    };
    let filter = FlowFilter {
        root,
        state: q.state,
        limit: q.limit.unwrap_or(50),
    };
    let flows = s
        .store
        .flows(&filter)
        .await?
        .into_iter()
        .filter(|(_, group)| caller.principal.sees(group))
        .map(|(f, _)| f)
        .collect();
    Ok(Json(flows))
}

/// `GET /api/v1/jobs/{job}/flow`: which flow; the latest by default.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct FlowQuery {
    /// The flow of this run.
    run: Option<i64>,
    /// The flow of the root's instant: RFC 3339 or epoch milliseconds.
    instant: Option<String>,
}

/// A flow of the job's graph, each job with its state in it.
#[utoipa::path(get, path = "/api/v1/jobs/{job}/flow", tag = "flows", params(("job" = String, Path, description = "A job of the flow, by name or id"), FlowQuery),
    responses((status = 200, description = "The flow", body = FlowView), (status = 400, description = "A parameter is wrong: the error names it", body = ErrorBody),
        (status = 404, description = "No such job, run or flow (or not in the caller's groups)", body = ErrorBody)))]
async fn show_flow(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    query: Result<Query<FlowQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<FlowView>, ApiError> {
    s.requests.inc();
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let job = find(&s, &caller, &key).await?;
    let graph = s.store.graph().await?;
    let (root, instant) = match (q.run, q.instant.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                "instant",
                "give `run` or `instant`, not both",
            ))
        }
        (Some(run), None) => {
            find_run(&s, &caller, run).await?;
            s.store
                .flow_of_run(run)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no run {run}")))?
        }
        (None, Some(t)) => {
            let instant = parse_time_bound(t, crate::model::now_millis())
                .map_err(|m| ApiError::field("instant", m))?;
            (root_of(&graph, &job), instant)
        }
        (None, None) => {
            let root = root_of(&graph, &job);
            let instant =
                s.store.latest_flow(root).await?.ok_or_else(|| {
                    ApiError::not_found(format!("`{}` has no flow yet", job.name))
                })?;
            (root, instant)
        }
    };
    let flow = s.store.flow(&graph, root, instant).await?;
    Ok(Json(hidden(&caller, flow)))
}

/// The root of a job's graph (the job itself if it runs after nothing).
fn root_of(graph: &crate::model::Graph, job: &Job) -> i64 {
    graph.roots_of(job.id).into_iter().next().unwrap_or(job.id)
}

/// The flow as `caller` may see it: jobs of other groups named `hidden job` (`hidden job 2`,
/// ... when there are several, so the graph keeps its shape), with their state but no run
/// detail.
pub(super) fn hidden(caller: &Caller, mut flow: FlowView) -> FlowView {
    let mut names: std::collections::HashMap<String, String> = Default::default();
    for n in flow
        .nodes
        .iter()
        .filter(|n| !caller.principal.sees(&n.group))
    {
        let label = match names.len() {
            0 => HIDDEN.to_string(),
            k => format!("{HIDDEN} {}", k + 1),
        };
        names.insert(n.job.clone(), label);
    }
    if names.is_empty() {
        return flow;
    }
    if let Some(label) = names.get(&flow.root_job) {
        flow.root_job = label.clone();
        flow.root_run = None;
    }
    for n in &mut flow.nodes {
        for e in &mut n.after {
            if let Some(label) = names.get(&e.job) {
                e.job = label.clone();
            }
        }
        if let Some(label) = names.get(&n.job) {
            n.job = label.clone();
            n.group = String::new();
            n.hidden = true;
            n.runs = Vec::new();
        }
    }
    flow
}

const HIDDEN: &str = "hidden job";

/// What `flow rerun` recorded.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct Rerunning {
    /// The new runs, one per node that did not succeed.
    runs: Vec<i64>,
    root_job: String,
    instant: i64,
}

/// Reruns the nodes of a run's flow that did not succeed (and then what depends on them),
/// with the flow's instant; each new run links to the one it replaces.
#[utoipa::path(post, path = "/api/v1/flows/{run}/rerun", tag = "flows", params(("run" = i64, Path, description = "Any run of the flow")),
    responses((status = 202, description = "The reruns are recorded", body = Rerunning), (status = 400, description = "The run id is not a number", body = ErrorBody), (status = 403, description = "The caller's role or groups do not allow it", body = ErrorBody),
        (status = 404, description = "No such run (or not in the caller's groups)", body = ErrorBody),
        (status = 409, description = "The flow is still going, or every node of it succeeded", body = ErrorBody)))]
async fn rerun_flow(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(run): Path<String>,
) -> Result<(StatusCode, Json<Rerunning>), ApiError> {
    s.requests.inc();
    let run = super::api::run_id(&run)?;
    find_run(&s, &caller, run).await?;
    caller.require_write()?;
    let (root, instant) = s
        .store
        .flow_of_run(run)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {run}")))?;
    let graph = s.store.graph().await?;
    // Every job of the flow must be the caller's to run.
    let flow = s.store.flow(&graph, root, instant).await?;
    if flow.nodes.iter().any(|n| !caller.principal.sees(&n.group)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "the flow has jobs of a group `{}` may not change",
                caller.principal.name
            ),
        ));
    }
    let conflict = |m: String| ApiError {
        status: StatusCode::CONFLICT,
        field: None,
        message: m,
    };
    match s.store.rerun_flow(&graph, root, instant).await? {
        Rerun::Started(runs) => {
            caller
                .audit(
                    &s.store,
                    "flow.rerun",
                    format!("flow of {} at {instant}", flow.root_job),
                    Some(root),
                    json!({"run": run, "runs": runs}),
                )
                .await;
            Ok((
                StatusCode::ACCEPTED,
                Json(Rerunning {
                    runs,
                    root_job: flow.root_job,
                    instant,
                }),
            ))
        }
        Rerun::Going => Err(conflict(format!(
            "the flow of `{}` is still going: rerun it once every job of it has ended",
            flow.root_job
        ))),
        Rerun::AllSucceeded => Err(conflict(format!(
            "every job of the flow of `{}` succeeded: nothing to rerun",
            flow.root_job
        ))),
    }
}

/// Refuses edges to jobs (and a `requires` of a job) the caller may not see, as if they did
/// not exist — an edge joins two groups only for a caller who may change both. Only what the
/// change names anew is checked.
pub(super) async fn check_relations(
    s: &ApiState,
    caller: &Caller,
    before: Option<&Job>,
    job: &Job,
) -> Result<(), ApiError> {
    let edges_changed = before.is_none_or(|b| b.after != job.after);
    let requires_changed = before.is_none_or(|b| b.requires != job.requires);
    let named: Vec<(&str, &str)> = job
        .after
        .iter()
        .filter(|_| edges_changed)
        .map(|e| ("after", e.job.as_str()))
        .chain(
            job.requires
                .as_deref()
                .filter(|_| requires_changed)
                .map(|r| ("requires", r)),
        )
        .collect();
    for (field, name) in named {
        let visible = s
            .store
            .find_job(name)
            .await?
            .filter(|j| caller.principal.sees(&j.group));
        if visible.is_none() {
            return Err(ApiError::field(field, format!("no job `{name}`")));
        }
    }
    Ok(())
}
