//! `/api/v1/jobs/{job}/backfill` and `/api/v1/backfills`: asking for a backfill (or its plan,
//! with `dry_run`), reading how far backfills got, and cancelling one. The dispatchers drive
//! them (`store/backfills.rs`); this only checks and records the request.

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::Caller;
use super::api::{find, parse_body, ApiState};
use crate::http::{ApiError, ErrorBody};
use crate::model::backfill::{parse_bound, Backfill, STATES};
use crate::model::{Job, Millis};
use crate::schedule::Schedule;
use crate::store::NewBackfill;

/// Each route registered with its entry in the OpenAPI document.
pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(start_backfill))
        .routes(routes!(list_backfills))
        .routes(routes!(show_backfill))
        .routes(routes!(cancel_backfill))
}

/// Most instants one backfill may run at once.
const MAX_PARALLEL: i64 = 64;

/// `POST /api/v1/jobs/{job}/backfill` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BackfillBody {
    /// The range's first end: RFC 3339, a local time `2026-11-01 02:00` or a date
    /// `2026-11-01` (its start) in the job's zone.
    from: String,
    /// The range's last end, inclusive: as `from`; a date means its end.
    to: String,
    /// At most this many instants at a time (1 to 64; default 1).
    #[serde(default)]
    parallel: Option<i64>,
    /// Run again the instants that already had a succeeded run (default: leave them out).
    #[serde(default)]
    all: bool,
    /// Answer with the instants it would run, recording nothing.
    #[serde(default)]
    dry_run: bool,
}

/// A backfill's plan (`dry_run`): each instant, and whether it would be left out.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Plan {
    job: String,
    total: usize,
    would_run: usize,
    would_skip: usize,
    instants: Vec<PlannedInstant>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct PlannedInstant {
    instant: Millis,
    /// It already had a succeeded run: left out unless `all`.
    succeeded: bool,
}

/// Runs the job once for each instant of its rule in [from, to], oldest first, `parallel` at
/// a time, each as of its instant (trigger `backfill`; what runs after the job follows). It is
/// recorded and any dispatcher drives it on, through reloads and crashes.
#[utoipa::path(post, path = "/api/v1/jobs/{job}/backfill", tag = "backfills",
    params(("job" = String, Path, description = "The job's name or id")), request_body = BackfillBody,
    responses((status = 201, description = "The backfill is recorded", body = Backfill),
        (status = 200, description = "`dry_run`: what it would run", body = Plan),
        (status = 400, description = "A field is wrong: the error names it", body = ErrorBody),
        (status = 403, description = "The caller's role or groups do not allow it", body = ErrorBody),
        (status = 404, description = "No such job (or not in the caller's groups)", body = ErrorBody)))]
async fn start_backfill(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    s.requests.inc();
    let b: BackfillBody = parse_body(&body)?;
    let job = find(&s, &caller, &key).await?;
    caller.require_write()?;
    let (from, to, parallel, instants) = check(&s, &job, &b)?;
    if b.dry_run {
        let done = s.store.succeeded_instants(job.id, from, to).await?;
        let instants: Vec<PlannedInstant> = instants
            .into_iter()
            .map(|instant| PlannedInstant {
                instant,
                succeeded: done.contains(&instant),
            })
            .collect();
        let would_skip = match b.all {
            true => 0,
            false => instants.iter().filter(|i| i.succeeded).count(),
        };
        let plan = Plan {
            job: job.name,
            total: instants.len(),
            would_run: instants.len() - would_skip,
            would_skip,
            instants,
        };
        return Ok((StatusCode::OK, Json(plan)).into_response());
    }
    let id = s
        .store
        .create_backfill(&NewBackfill {
            job_id: job.id,
            from,
            to,
            parallel,
            all: b.all,
            total: instants.len() as i64,
            created_by: Some(caller.principal.name.clone()),
        })
        .await?;
    caller
        .audit(
            &s.store,
            "job.backfill",
            format!("job {}", job.name),
            Some(job.id),
            json!({"backfill": id, "from": from, "to": to, "parallel": parallel,
                "all": b.all, "instants": instants.len()}),
        )
        .await;
    let (made, _) = s
        .store
        .backfill(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no backfill {id}")))?;
    Ok((StatusCode::CREATED, Json(made)).into_response())
}

/// Checks a request against the job and the bounds: the range's ends, `parallel`, and the
/// instants it holds (at most `max_backfill`).
fn check(
    s: &ApiState,
    job: &Job,
    b: &BackfillBody,
) -> Result<(Millis, Millis, i64, Vec<Millis>), ApiError> {
    if !job.after.is_empty() || job.schedule.is_empty() {
        return Err(ApiError::field(
            "job",
            format!(
                "`{}` has no rule of its own (it runs after other jobs): backfill the job its \
                 flow starts from, and it follows",
                job.name
            ),
        ));
    }
    let from =
        parse_bound(&b.from, &job.timezone, false).map_err(|m| ApiError::field("from", m))?;
    let to = parse_bound(&b.to, &job.timezone, true).map_err(|m| ApiError::field("to", m))?;
    if to < from {
        return Err(ApiError::field("to", "is before `from`"));
    }
    let now = crate::model::now_millis();
    if to > now {
        return Err(ApiError::field(
            "to",
            "is in the future: a backfill runs past instants (the schedule runs the coming ones)",
        ));
    }
    let parallel = b.parallel.unwrap_or(1);
    if !(1..=MAX_PARALLEL).contains(&parallel) {
        return Err(ApiError::field(
            "parallel",
            format!("must be 1 to {MAX_PARALLEL}, not {parallel}"),
        ));
    }
    let schedule = job
        .timetable()
        .map_err(|e| ApiError::field("job", format!("its rule: {e}")))?;
    let instants = schedule.instants_between(from, to, s.max_backfill);
    if instants.len() > s.max_backfill {
        return Err(ApiError::field(
            "to",
            too_many(&schedule, from, to, s.max_backfill),
        ));
    }
    if instants.is_empty() {
        return Err(ApiError::field(
            "from",
            format!(
                "no instant of the rule `{}` falls in the range",
                job.schedule
            ),
        ));
    }
    Ok((from, to, parallel, instants))
}

/// The refusal of a range past the bound, with how many instants it would be.
fn too_many(schedule: &Schedule, from: Millis, to: Millis, max: usize) -> String {
    let (Some(after), Some(until)) = (
        chrono::DateTime::from_timestamp_millis(from - 1),
        chrono::DateTime::from_timestamp_millis(to),
    ) else {
        return format!("the range holds more than {max} instants (monitor.max_backfill)");
    };
    match schedule.tally(after, until, 1_000_000) {
        Some(t) => format!(
            "the range holds {}{} instants, more than monitor.max_backfill = {max}: split it \
             or raise the bound",
            if t.exact { "" } else { "about " },
            t.count
        ),
        None => format!("the range holds more than {max} instants (monitor.max_backfill)"),
    }
}

/// `GET /api/v1/backfills` filters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct BackfillsQuery {
    /// One job's backfills.
    job: Option<String>,
    /// running, done or cancelled.
    state: Option<String>,
    /// 1 to 1000; default 50.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// Backfills, newest first, with their progress.
#[utoipa::path(get, path = "/api/v1/backfills", tag = "backfills", params(BackfillsQuery),
    responses((status = 200, description = "The backfills", body = Vec<Backfill>),
        (status = 400, description = "A filter is wrong: the error names it", body = ErrorBody),
        (status = 404, description = "No such job (or not in the caller's groups)", body = ErrorBody)))]
async fn list_backfills(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<BackfillsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Backfill>>, ApiError> {
    s.requests.inc();
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    if let Some(st) = q.state.as_deref() {
        if !STATES.contains(&st) {
            return Err(ApiError::field(
                "state",
                format!("unknown `{st}` (one of {})", STATES.join(", ")),
            ));
        }
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1 to 1000"));
    }
    let job = match q.job.as_deref() {
        Some(key) => Some(find(&s, &caller, key).await?.id),
        None => None,
    };
    let list = s
        .store
        .backfills(job, q.state.as_deref(), limit)
        .await?
        .into_iter()
        .filter(|(_, group)| caller.principal.sees(group))
        .map(|(b, _)| b)
        .collect();
    Ok(Json(list))
}

async fn find_backfill(s: &ApiState, caller: &Caller, id: i64) -> Result<Backfill, ApiError> {
    s.store
        .backfill(id)
        .await?
        .filter(|(_, group)| caller.principal.sees(group))
        .map(|(b, _)| b)
        .ok_or_else(|| ApiError::not_found(format!("no backfill {id}")))
}

fn backfill_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::field("id", format!("`{raw}` is not a backfill id")))
}

/// One backfill and its progress.
#[utoipa::path(get, path = "/api/v1/backfills/{id}", tag = "backfills",
    params(("id" = i64, Path, description = "The backfill's id")),
    responses((status = 200, description = "The backfill", body = Backfill),
        (status = 404, description = "No such backfill (or not in the caller's groups)", body = ErrorBody)))]
async fn show_backfill(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
) -> Result<Json<Backfill>, ApiError> {
    s.requests.inc();
    Ok(Json(find_backfill(&s, &caller, backfill_id(&raw)?).await?))
}

/// Cancels a running backfill: no further instant starts, and its runs not started yet are
/// recorded `skipped`; runs already going end as they end (`run kill` stops one).
#[utoipa::path(post, path = "/api/v1/backfills/{id}/cancel", tag = "backfills",
    params(("id" = i64, Path, description = "The backfill's id")),
    responses((status = 200, description = "Cancelled", body = Backfill),
        (status = 403, description = "The caller's role or groups do not allow it", body = ErrorBody),
        (status = 404, description = "No such backfill (or not in the caller's groups)", body = ErrorBody),
        (status = 409, description = "It is not running any more", body = ErrorBody)))]
async fn cancel_backfill(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
) -> Result<Json<Backfill>, ApiError> {
    s.requests.inc();
    let id = backfill_id(&raw)?;
    let b = find_backfill(&s, &caller, id).await?;
    caller.require_write()?;
    if !s.store.cancel_backfill(id, &caller.principal.name).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("backfill {id} is {}, not running", b.state),
        ));
    }
    caller
        .audit(
            &s.store,
            "backfill.cancel",
            format!("backfill {id}"),
            Some(b.job_id),
            json!({"job": b.job}),
        )
        .await;
    Ok(Json(find_backfill(&s, &caller, id).await?))
}
