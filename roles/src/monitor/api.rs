//! `/api/v1`: jobs and runs as JSON. Every rejected input answers 400 with
//! `{"error": {"field": ..., "message": ...}}` and stores nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use crate::http::ApiError;
use crate::metrics::Metric;
use crate::model::{Job, JobPatch, JobSpec, Run};
use crate::store::Store;

#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub default_tz: String,
    pub requests: Arc<Metric>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/jobs", get(list_jobs).post(add_job))
        .route(
            "/api/v1/jobs/{job}",
            get(show_job).patch(edit_job).delete(delete_job),
        )
        .route("/api/v1/jobs/{job}/pause", post(pause_job))
        .route("/api/v1/jobs/{job}/resume", post(resume_job))
        .route("/api/v1/jobs/{job}/run", post(run_job))
        .route("/api/v1/runs", get(list_runs))
        .route("/api/v1/runs/{id}", get(show_run))
        .route("/api/v1/alarms", get(list_alarms))
        .with_state(state)
}

/// Parses a JSON body, turning serde's message into a field error where it names one.
fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
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

async fn find(state: &ApiState, key: &str) -> Result<Job, ApiError> {
    state
        .store
        .find_job(key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job `{key}`")))
}

async fn list_jobs(State(s): State<ApiState>) -> Result<Json<Vec<Job>>, ApiError> {
    s.requests.inc();
    Ok(Json(s.store.jobs().await?))
}

async fn add_job(
    State(s): State<ApiState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    s.requests.inc();
    let spec: JobSpec = parse_body(&body)?;
    let spec = spec.validate(&s.default_tz)?;
    let job = s.store.insert_job(&spec).await?;
    tracing::info!(job = %job.name, id = job.id, schedule = %job.schedule, "job added");
    Ok((StatusCode::CREATED, Json(job)))
}

async fn show_job(
    State(s): State<ApiState>,
    Path(key): Path<String>,
) -> Result<Json<Job>, ApiError> {
    s.requests.inc();
    Ok(Json(find(&s, &key).await?))
}

async fn edit_job(
    State(s): State<ApiState>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Json<Job>, ApiError> {
    s.requests.inc();
    let patch: JobPatch = parse_body(&body)?;
    let job = patch.apply(find(&s, &key).await?)?;
    let job = s.store.update_job(&job).await?;
    tracing::info!(job = %job.name, "job edited");
    Ok(Json(job))
}

async fn set_paused(s: &ApiState, key: &str, paused: bool) -> Result<Json<Job>, ApiError> {
    let mut job = find(s, key).await?;
    if job.paused != paused {
        job.paused = paused;
        job = s.store.update_job(&job).await?;
        tracing::info!(job = %job.name, paused, "job paused state changed");
    }
    Ok(Json(job))
}

async fn pause_job(
    State(s): State<ApiState>,
    Path(key): Path<String>,
) -> Result<Json<Job>, ApiError> {
    s.requests.inc();
    set_paused(&s, &key, true).await
}

async fn resume_job(
    State(s): State<ApiState>,
    Path(key): Path<String>,
) -> Result<Json<Job>, ApiError> {
    s.requests.inc();
    set_paused(&s, &key, false).await
}

async fn delete_job(
    State(s): State<ApiState>,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.requests.inc();
    let job = find(&s, &key).await?;
    s.store.delete_job(job.id).await?;
    tracing::info!(job = %job.name, "job deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn run_job(
    State(s): State<ApiState>,
    Path(key): Path<String>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    s.requests.inc();
    let job = find(&s, &key).await?;
    let run_id = s.store.request_run(job.id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"run_id": run_id, "job": job.name})),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    job: Option<String>,
    limit: Option<i64>,
}

async fn list_runs(
    State(s): State<ApiState>,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Run>>, ApiError> {
    s.requests.inc();
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let job_id = match &q.job {
        Some(key) => Some(find(&s, key).await?.id),
        None => None,
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 10000"));
    }
    Ok(Json(s.store.runs(job_id, limit).await?))
}

async fn show_run(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Run>, ApiError> {
    s.requests.inc();
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::field("id", format!("`{id}` is not a run id")))?;
    s.store
        .run(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no run {id}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlarmsQuery {
    limit: Option<i64>,
}

async fn list_alarms(
    State(s): State<ApiState>,
    query: Result<Query<AlarmsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<crate::model::Alarm>>, ApiError> {
    s.requests.inc();
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 10000"));
    }
    Ok(Json(s.store.alarms(limit).await?))
}
