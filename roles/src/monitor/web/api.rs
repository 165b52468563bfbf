//! `/api/v1`: jobs as JSON (runs, alarms, the fleet and next instants: `runs.rs`). Every rejected input answers 400 with
//! `{"error": {"field": ..., "message": ...}}` and stores nothing.
//!
//! Every handler gets the [`Caller`] (`access.rs`): reads need a role, changes `operator`, and
//! a job or run outside the caller's groups answers exactly as a missing one (404), so ids
//! cannot be probed. Every change is recorded in the audit log.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::Caller;
use crate::http::{ApiError, ErrorBody};
use crate::metrics::Metric;
use crate::model::{Job, JobFields, JobView, Run};

use crate::store::{Deleted, Store};

#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub default_tz: String,
    pub requests: Arc<Metric>,
    /// For reading live output from executors and asking them to kill.
    pub rpc: crate::http::client::HttpClient,
    pub rpc_token: Arc<String>,
    /// Ends live-output streams when the monitor stops.
    pub shutdown: crate::runtime::Shutdown,
    /// Sends test alarms (`POST /api/v1/alarms/test`).
    pub alarmer: Arc<crate::monitor::delivery::alarms::Alarmer>,
    /// Why this install keeps to admin-only mode, if it does (`access::admin_only_refusal`).
    pub admin_only: Option<Arc<String>>,
    /// Live output streams open, per caller (`live.rs`: at most `STREAMS_PER_CALLER` each).
    pub streams: super::live::Streams,
    /// Executor long-polls in flight, shared by the readers at one run and position.
    pub polls: super::polls::Polls,
    /// `monitor.max_backfill`: the most instants one backfill may hold.
    pub max_backfill: usize,
}

/// Jobs (and, from `runs.rs`, runs, fleet and alarms): each route registered with its entry in the OpenAPI
/// document (`openapi.rs`).
pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs, add_job))
        .routes(routes!(show_job, edit_job, delete_job))
        .routes(routes!(pause_job))
        .routes(routes!(resume_job))
        .routes(routes!(run_job))
        .merge(super::runs::routes())
        .merge(super::backfills::routes())
        .merge(super::calendars::routes())
        .merge(super::windows::routes())
}

/// Parses a JSON object body, turning serde's message into a field error where it names one.
///
/// Only an object: serde reads a struct from an array too, by position (schemathesis found
/// `PATCH /api/v1/jobs/{job}` taking `[null, null]` as "change nothing", and `[...]` a
/// whole job with its fields in declaration order).
pub(super) fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid JSON body: expected an object ({\"field\": value, ...})",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        // serde names fields as `name` in "missing field `name`" / "unknown field `x`".
        let field = msg
            .split('`')
            .nth(1)
            .filter(|_| msg.contains("field `"))
            .map(str::to_string);
        ApiError {
            status: StatusCode::BAD_REQUEST,
            field,
            message: format!("invalid JSON body: {msg}"),
        }
    })
}

/// A job by name or id, if the caller may see it: one outside its groups is "no job", as a
/// missing one.
pub(super) async fn find(state: &ApiState, caller: &Caller, key: &str) -> Result<Job, ApiError> {
    state
        .store
        .find_job(key)
        .await?
        .filter(|j| caller.principal.sees(&j.group))
        .ok_or_else(|| ApiError::not_found(format!("no job `{key}`")))
}

/// A run by id, if the caller may see its job.
pub(super) async fn find_run(state: &ApiState, caller: &Caller, id: i64) -> Result<Run, ApiError> {
    state
        .store
        .run(id)
        .await?
        .filter(|r| caller.principal.sees(&r.job_group))
        .ok_or_else(|| ApiError::not_found(format!("no run {id}")))
}

/// A job's fields as the audit log shows them: secrets (header values, a URL's query) masked.
fn audited(job: &Job) -> serde_json::Value {
    let mut v = serde_json::to_value(job).unwrap_or_default();
    if let Some(h) = v.get_mut("http_headers").and_then(|h| h.as_object_mut()) {
        for value in h.values_mut() {
            *value = json!("***");
        }
    }
    if let Some(url) = job.http_url.as_deref() {
        v["http_url"] = json!(super::console::masked(url));
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("updated_at");
        o.remove("created_at");
    }
    v
}

/// The fields that changed, as `{"field": [before, after]}`.
fn changes(before: &Job, after: &Job) -> serde_json::Value {
    let (b, a) = (audited(before), audited(after));
    let mut out = serde_json::Map::new();
    if let (Some(b), Some(a)) = (b.as_object(), a.as_object()) {
        for (k, new) in a {
            let old = b.get(k).cloned().unwrap_or(serde_json::Value::Null);
            if &old != new {
                out.insert(k.clone(), json!([old, new]));
            }
        }
    }
    serde_json::Value::Object(out)
}

/// A job's group must be one the caller may use.
fn check_group(caller: &Caller, job: &Job) -> Result<(), ApiError> {
    if caller.principal.sees(&job.group) {
        Ok(())
    } else {
        Err(ApiError {
            status: StatusCode::FORBIDDEN,
            field: Some("group".into()),
            message: format!(
                "`{}` may not use group `{}`",
                caller.principal.name, job.group
            ),
        })
    }
}

/// Jobs as shown to people: with their next fire and their last run.
pub(super) async fn views(s: &ApiState, jobs: Vec<Job>) -> Result<Vec<JobView>, ApiError> {
    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    let mut last = s.store.last_runs(&ids).await?;
    let now = chrono::Utc::now();
    // Fleets repeat rules: each distinct (rule, zone) is parsed once per listing.
    let mut next: std::collections::HashMap<(String, String), Option<i64>> =
        std::collections::HashMap::new();
    Ok(jobs
        .into_iter()
        .map(|job| JobView {
            next_fire: *next
                .entry((
                    crate::schedule::days::keyed(&job.schedule, job.day_filter().as_ref()),
                    job.timezone.clone(),
                ))
                .or_insert_with(|| {
                    job.timetable()
                        .ok()
                        .and_then(|sch| sch.next_after(now))
                        .map(|t| t.timestamp_millis())
                }),
            last_run: last.remove(&job.id),
            usual: None,
            job,
        })
        .collect())
}

/// One job's view, with its usual duration.
pub(super) async fn view(s: &ApiState, job: Job) -> Result<JobView, ApiError> {
    let id = job.id;
    let mut v = views(s, vec![job])
        .await?
        .pop()
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "job view lost"))?;
    v.usual = s.store.usual_duration(id).await?;
    Ok(v)
}

/// Every job the caller may see, with its next fire and its last run.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs",
    responses((status = 200, description = "The jobs", body = Vec<JobView>)))]
async fn list_jobs(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<JobView>>, ApiError> {
    s.requests.inc();
    let jobs: Vec<Job> = s
        .store
        .jobs()
        .await?
        .into_iter()
        .filter(|j| caller.principal.sees(&j.group))
        .map(|j| shown_to(&caller, j))
        .collect();
    Ok(Json(views(&s, jobs).await?))
}

/// Adds a job. Unset fields take the model's defaults.
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", request_body = JobFields,
    responses((status = 201, description = "The job as stored", body = JobView), (status = 400, description = "A field is wrong: the error names it", body = ErrorBody), (status = 403, description = "The caller's role or groups do not allow it", body = ErrorBody),
        (status = 409, description = "A job of that name exists", body = ErrorBody)))]
async fn add_job(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    s.requests.inc();
    caller.require_write()?;
    let fields: JobFields = parse_body(&body)?;
    let valid = fields.create(&s.default_tz)?;
    check_group(&caller, &valid)?;
    super::flows::check_relations(&s, &caller, None, &valid).await?;
    super::calendars::check_job_calendars(&s, &valid).await?;
    let job = s.store.insert_job(&valid).await?;
    tracing::info!(job = %job.name, id = job.id, schedule = %job.schedule, by = %caller.principal.name, "job added");
    caller
        .audit(
            &s.store,
            "job.add",
            format!("job {}", job.name),
            Some(job.id),
            json!({"after": audited(&job)}),
        )
        .await;
    Ok((StatusCode::CREATED, Json(view(&s, job).await?)))
}

/// One job.
#[utoipa::path(get, path = "/api/v1/jobs/{job}", tag = "jobs", params(("job" = String, Path, description = "The job's name or id")),
    responses((status = 200, description = "The job", body = JobView), (status = 404, description = "No such job (or not in the caller's groups)", body = ErrorBody)))]
async fn show_job(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    s.requests.inc();
    let job = find(&s, &caller, &key).await?;
    Ok(Json(view(&s, shown_to(&caller, job)).await?))
}

/// A job as `caller` may see it: whole to those who may change it, masked to readers.
fn shown_to(caller: &Caller, job: Job) -> Job {
    if caller.principal.can_write() {
        job
    } else {
        job.for_reader()
    }
}

/// Changes the fields given; the others keep their values.
#[utoipa::path(patch, path = "/api/v1/jobs/{job}", tag = "jobs", params(("job" = String, Path, description = "The job's name or id")),
    request_body = JobFields,
    responses((status = 200, description = "The job as stored", body = JobView), (status = 400, description = "A field is wrong: the error names it", body = ErrorBody), (status = 403, description = "The caller's role or groups do not allow it", body = ErrorBody),
        (status = 404, description = "No such job (or not in the caller's groups)", body = ErrorBody), (status = 409, description = "A job of that name exists", body = ErrorBody)))]
async fn edit_job(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Json<JobView>, ApiError> {
    s.requests.inc();
    let before = find(&s, &caller, &key).await?;
    caller.require_write()?;
    let fields: JobFields = parse_body(&body)?;
    let valid = fields.apply(before.clone())?;
    check_group(&caller, &valid)?;
    super::flows::check_relations(&s, &caller, Some(&before), &valid).await?;
    if before.calendars != valid.calendars {
        super::calendars::check_job_calendars(&s, &valid).await?;
    }
    let job = s.store.update_job(&valid).await?;
    tracing::info!(job = %job.name, by = %caller.principal.name, "job edited");
    caller
        .audit(
            &s.store,
            "job.edit",
            format!("job {}", job.name),
            Some(job.id),
            changes(&before, &job),
        )
        .await;
    Ok(Json(view(&s, job).await?))
}

async fn set_paused(
    s: &ApiState,
    caller: &Caller,
    key: &str,
    paused: bool,
) -> Result<Json<JobView>, ApiError> {
    let mut job = find(s, caller, key).await?;
    caller.require_write()?;
    if job.paused != paused {
        let fields = JobFields {
            paused: Some(paused),
            ..JobFields::default()
        };
        job = s.store.update_job(&fields.apply(job)?).await?;
        tracing::info!(job = %job.name, paused, by = %caller.principal.name, "job paused state changed");
        let action = if paused { "job.pause" } else { "job.resume" };
        caller
            .audit(
                &s.store,
                action,
                format!("job {}", job.name),
                Some(job.id),
                json!({}),
            )
            .await;
    }
    Ok(Json(view(s, job).await?))
}

/// Stops firing the job on schedule (it can still be run by hand).
#[utoipa::path(post, path = "/api/v1/jobs/{job}/pause", tag = "jobs", params(("job" = String, Path, description = "The job's name or id")),
    responses((status = 200, description = "The job", body = JobView), (status = 403, description = "The caller's role or groups do not allow it", body = ErrorBody), (status = 404, description = "No such job (or not in the caller's groups)", body = ErrorBody)))]
async fn pause_job(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    s.requests.inc();
    set_paused(&s, &caller, &key, true).await
}

/// Fires the job on schedule again.
#[utoipa::path(post, path = "/api/v1/jobs/{job}/resume", tag = "jobs", params(("job" = String, Path, description = "The job's name or id")),
    responses((status = 200, description = "The job", body = JobView), (status = 403, description = "The caller's role or groups do not allow it", body = ErrorBody), (status = 404, description = "No such job (or not in the caller's groups)", body = ErrorBody)))]
async fn resume_job(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    s.requests.inc();
    set_paused(&s, &caller, &key, false).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeleteQuery {
    /// Delete even with runs going: their executors stop them.
    #[serde(default)]
    force: bool,
}

/// Deletes a job with its history. A job with runs going is refused (409) unless `force`:
/// then its executors stop those runs (they are recorded nowhere: the history goes too).
#[utoipa::path(delete, path = "/api/v1/jobs/{job}", tag = "jobs", params(("job" = String, Path, description = "The job's name or id"), DeleteQuery),
    responses((status = 204, description = "Deleted, with its history"), (status = 400, description = "A field is wrong: the error names it", body = ErrorBody), (status = 403, description = "The caller's role or groups do not allow it", body = ErrorBody), (status = 404, description = "No such job (or not in the caller's groups)", body = ErrorBody),
        (status = 409, description = "The job has runs going, or other jobs run after it (and no `force`)", body = ErrorBody)))]
async fn delete_job(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    query: Result<Query<DeleteQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, ApiError> {
    s.requests.inc();
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let job = find(&s, &caller, &key).await?;
    caller.require_write()?;
    match s.store.delete_job(job.id, q.force).await? {
        Deleted::Done => {
            tracing::info!(job = %job.name, force = q.force, by = %caller.principal.name, "job deleted");
            caller
                .audit(
                    &s.store,
                    "job.delete",
                    format!("job {}", job.name),
                    Some(job.id),
                    json!({"before": audited(&job), "force": q.force}),
                )
                .await;
            Ok(StatusCode::NO_CONTENT)
        }
        Deleted::Missing => Err(ApiError::not_found(format!("no job `{key}`"))),
        Deleted::Busy(ids) => {
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            Err(ApiError {
                status: StatusCode::CONFLICT,
                field: None,
                message: format!(
                    "job `{}` has runs going (run {}): wait for them to end, or delete with \
                     force (--force) to stop them and drop the job with its history",
                    job.name,
                    ids.join(", ")
                ),
            })
        }
        Deleted::Depended(names) => Err(ApiError {
            status: StatusCode::CONFLICT,
            field: None,
            message: format!(
                "job `{}` is upstream of {}: delete with force (--force) to remove their \
                 edges too (a job left with no upstream is paused)",
                job.name,
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// A run asked for by hand.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct RunRequested {
    /// The run recorded for it; a dispatcher fires it within a poll.
    run_id: i64,
    job: String,
}

/// `POST /api/v1/jobs/{job}/run` options.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RunQuery {
    /// Run this job only: the jobs that run after it are not started.
    #[serde(default)]
    alone: bool,
    /// The run's instant (its `CRONVISOR_INSTANT`, and its flow's): RFC 3339, or a local time
    /// `2026-12-06 02:00` in the job's zone. Default: now.
    instant: Option<String>,
}

/// `POST /api/v1/jobs/{job}/run` body, optional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RunBody {
    /// Values of the job's declared parameters; the others take their defaults.
    #[serde(default)]
    params: std::collections::BTreeMap<String, String>,
}

/// Runs the job now, whatever its schedule (and paused or not). Unless `alone`, the jobs that
/// run after it follow, as a flow of which it is the root.
#[utoipa::path(post, path = "/api/v1/jobs/{job}/run", tag = "jobs", params(("job" = String, Path, description = "The job's name or id"), RunQuery), request_body(content = Option<RunBody>, description = "Parameter values (optional)"),
    responses((status = 202, description = "The run is recorded", body = RunRequested), (status = 400, description = "A parameter is wrong: the error names it", body = ErrorBody), (status = 403, description = "The caller's role or groups do not allow it", body = ErrorBody),
        (status = 404, description = "No such job (or not in the caller's groups)", body = ErrorBody)))]
async fn run_job(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    query: Result<Query<RunQuery>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Result<(StatusCode, Json<RunRequested>), ApiError> {
    s.requests.inc();
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let given: RunBody = match body.is_empty() {
        true => RunBody::default(),
        false => parse_body(&body)?,
    };
    let job = find(&s, &caller, &key).await?;
    caller.require_write()?;
    let values = crate::model::params::resolve(&job.params, &given.params)?;
    let how = crate::store::ManualRun {
        alone: q.alone,
        params: (!job.params.is_empty()).then(|| values.to_json()),
        backfill: None,
    };
    let run_id = match q.instant.as_deref() {
        None => s.store.request_run(job.id, &how).await?,
        Some(t) => {
            let instant = crate::model::parse_instant(t, &job.timezone)
                .map_err(|m| ApiError::field("instant", m))?;
            s.store.request_run_at(job.id, instant, &how).await?
        }
    };
    caller
        .audit(
            &s.store,
            "job.run",
            format!("job {}", job.name),
            Some(job.id),
            json!({"run_id": run_id, "alone": q.alone, "instant": q.instant,
                "params": values.shown}),
        )
        .await;
    Ok((
        StatusCode::ACCEPTED,
        Json(RunRequested {
            run_id,
            job: job.name,
        }),
    ))
}

pub(super) use super::runs::{run_id, RunsQuery};
