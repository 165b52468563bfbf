//! `/api/v1/runs`, `/api/v1/alarms`, `/api/v1/fleet` and `/api/v1/next`: what the API reads
//! about runs and the fleet, with the filters the CLI and the console share.

use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::Caller;
use super::api::{find, find_run, ApiState};
use crate::http::{ApiError, ErrorBody};
use crate::model::{parse_time_bound, Run, RunState, Trigger};
use crate::schedule::Schedule;
use crate::store::{Retried, RunFilter};

/// Each route registered with its entry in the OpenAPI document (`openapi.rs`).
pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_runs))
        .routes(routes!(show_run))
        .routes(routes!(super::live::output))
        .routes(routes!(super::live::kill))
        .routes(routes!(retry_run))
        .routes(routes!(next_instants))
        .routes(routes!(fleet))
        .routes(routes!(list_alarms))
}

/// `GET /api/v1/runs` filters; every one optional. `state` is a comma-separated list;
/// `since` / `until` an RFC 3339 time, epoch milliseconds or a span back from now (`1h`);
/// `before` the cursor (the last id of the previous page).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct RunsQuery {
    /// A job's name or id.
    pub job: Option<String>,
    /// States, comma-separated (`failed,timed_out`).
    pub state: Option<String>,
    /// schedule, manual, retry or misfire.
    pub trigger: Option<String>,
    /// An executor instance.
    pub executor: Option<String>,
    /// Runs at or after: RFC 3339, epoch milliseconds, or a span back from now (`1h`).
    pub since: Option<String>,
    /// Runs before, as `since`.
    pub until: Option<String>,
    /// The cursor: the last id of the previous page.
    pub before: Option<i64>,
    /// 1 to 10000; default 50.
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
}

impl RunsQuery {
    /// The filter, every value checked (the job is resolved by the caller).
    pub(super) fn filter(&self, job_id: Option<i64>) -> Result<RunFilter, ApiError> {
        let now = crate::model::now_millis();
        let mut states = Vec::new();
        for st in self.state.iter().flat_map(|s| s.split(',')).map(str::trim) {
            if st.is_empty() {
                continue;
            }
            states.push(RunState::parse(st).ok_or_else(|| {
                let all: Vec<&str> = RunState::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::field(
                    "state",
                    format!("unknown state `{st}` (one of {})", all.join(", ")),
                )
            })?);
        }
        let trigger = match self.trigger.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(t) => Some(Trigger::parse(t).ok_or_else(|| {
                ApiError::field(
                    "trigger",
                    format!("unknown trigger `{t}` (one of {})", Trigger::names()),
                )
            })?),
        };
        let bound = |name: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
            v.as_deref()
                .filter(|v| !v.trim().is_empty())
                .map(|v| parse_time_bound(v, now).map_err(|m| ApiError::field(name, m)))
                .transpose()
        };
        let limit = self.limit.unwrap_or(50);
        if !(1..=10_000).contains(&limit) {
            return Err(ApiError::field("limit", "must be between 1 and 10000"));
        }
        Ok(RunFilter {
            job_id,
            states,
            trigger,
            executor: self.executor.clone().filter(|e| !e.trim().is_empty()),
            since: bound("since", &self.since)?,
            until: bound("until", &self.until)?,
            before: self.before,
            limit,
            groups: None,
        })
    }
}

/// Runs, newest first, filtered.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(RunsQuery),
    responses((status = 200, description = "The runs", body = Vec<Run>), (status = 400, description = "A field is wrong: the error names it", body = ErrorBody), (status = 404, description = "No such job (or not in the caller's groups)", body = ErrorBody)))]
async fn list_runs(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Run>>, ApiError> {
    s.requests.inc();
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let job_id = match &q.job {
        Some(key) => Some(find(&s, &caller, key).await?.id),
        None => None,
    };
    let mut filter = q.filter(job_id)?;
    filter.groups = caller.principal.groups.clone();
    Ok(Json(s.store.runs(&filter).await?))
}

/// A run id from a path.
pub(super) fn run_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::field("id", format!("`{id}` is not a run id")))
}

/// One run, with its output.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs", params(("id" = i64, Path, description = "The run's id")),
    responses((status = 200, description = "The run", body = Run), (status = 400, description = "A field is wrong: the error names it", body = ErrorBody), (status = 404, description = "No such run (or not in the caller's groups)", body = ErrorBody)))]
async fn show_run(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Run>, ApiError> {
    s.requests.inc();
    let id = run_id(&id)?;
    Ok(Json(find_run(&s, &caller, id).await?))
}

/// A run asked to run again (`run retry`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct RetryRequested {
    /// The new attempt's run.
    run_id: i64,
    /// The run it retries.
    retry_of: i64,
    job: String,
}

/// Runs an ended run again as its next attempt: same instant, same shard number, same
/// parameters, on any executor of its job's target (trigger `retry`). A run of a flow is
/// rerun with what runs after it by `POST /api/v1/flows/{run}/rerun` instead.
#[utoipa::path(post, path = "/api/v1/runs/{id}/retry", tag = "runs", params(("id" = i64, Path, description = "The run's id")),
    responses((status = 202, description = "The next attempt is recorded", body = RetryRequested), (status = 400, description = "A field is wrong: the error names it", body = ErrorBody),
        (status = 403, description = "The caller's role or groups do not allow it", body = ErrorBody), (status = 404, description = "No such run (or not in the caller's groups)", body = ErrorBody),
        (status = 409, description = "It is still going, or it is in a flow", body = ErrorBody)))]
async fn retry_run(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<RetryRequested>), ApiError> {
    s.requests.inc();
    let id = run_id(&id)?;
    let run = find_run(&s, &caller, id).await?;
    caller.require_write()?;
    let new = match s.store.retry_run(id).await? {
        None => return Err(ApiError::not_found(format!("no run {id}"))),
        Some(Retried::Going(other)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                match other == id {
                    true => format!("run {id} is still {}", run.state.as_str()),
                    false => format!("run {other}, an attempt of the same instant, is still going"),
                },
            ))
        }
        Some(Retried::InFlow) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "run {id} is in a flow: `cronvisor flow rerun {id}` runs it again with what \
                     runs after it"
                ),
            ))
        }
        Some(Retried::Started(new)) => new,
    };
    caller
        .audit(
            &s.store,
            "run.retry",
            format!("run {id}"),
            Some(run.job_id),
            serde_json::json!({"job": run.job_name, "run_id": new}),
        )
        .await;
    Ok((
        StatusCode::ACCEPTED,
        Json(RetryRequested {
            run_id: new,
            retry_of: id,
            job: run.job_name,
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AlarmsQuery {
    /// 1 to 10000; default 50.
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<i64>,
}

/// Alarms, newest first, with their delivery.
#[utoipa::path(get, path = "/api/v1/alarms", tag = "alarms", params(AlarmsQuery),
    responses((status = 200, description = "The alarms", body = Vec<crate::model::Alarm>), (status = 400, description = "A field is wrong: the error names it", body = ErrorBody)))]

async fn list_alarms(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<AlarmsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<crate::model::Alarm>>, ApiError> {
    s.requests.inc();
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 10000"));
    }
    Ok(Json(
        s.store
            .alarms_in(limit, caller.principal.groups.as_deref())
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct NextQuery {
    /// A cron rule, as a job's `schedule` (or give `job`).
    rule: Option<String>,
    /// A job (name or id): its rule, zone and calendars.
    job: Option<String>,
    /// Its IANA zone; default the job's, or the config's `timezone`.
    tz: Option<String>,
    /// Calendars filtering the rule, comma-separated (as a job's `calendars`).
    calendars: Option<String>,
    /// How they filter it: skip (default), only, next-workday.
    calendar_mode: Option<String>,
    /// After this instant (RFC 3339); default now.
    from: Option<String>,
    /// 1 to 10000; default 5.
    #[param(minimum = 1, maximum = 10000)]
    count: Option<usize>,
}

/// The upcoming instants of a rule.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct NextInstants {
    /// Epoch milliseconds.
    instants: Vec<i64>,
    /// The rule in words, when it reads simply.
    words: Option<String>,
    /// Why one of these days cannot be decided by the calendars (past their data), if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    undecided: Option<String>,
    timezone: String,
}

/// `GET /api/v1/next?rule=..&tz=..&count=..`: the upcoming instants of a rule, as the
/// dispatcher computes them, with the rule in words (the job form previews them as you type).
#[utoipa::path(get, path = "/api/v1/next", tag = "jobs", params(NextQuery),
    responses((status = 200, description = "The instants", body = NextInstants), (status = 400, description = "A field is wrong: the error names it", body = ErrorBody),
        (status = 404, description = "No such job (or not in the caller's groups)", body = ErrorBody)))]
async fn next_instants(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<NextQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<NextInstants>, ApiError> {
    s.requests.inc();
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let count = q.count.unwrap_or(5);
    if !(1..=10_000).contains(&count) {
        return Err(ApiError::field("count", "must be between 1 and 10000"));
    }
    let from = match q.from.as_deref() {
        None => chrono::Utc::now(),
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|_| ApiError::field("from", format!("`{t}` is not an RFC 3339 time")))?,
    };
    let (rule, zone, filter) = rule_of(&s, &caller, &q).await?;
    let tz =
        q.tz.clone()
            .filter(|t| !t.trim().is_empty())
            .or(zone)
            .unwrap_or(s.default_tz.clone());
    let schedule = Schedule::parse(&rule, &tz).map_err(|e| match e {
        crate::schedule::ScheduleError::TimeZone(_) => ApiError::field("timezone", e.to_string()),
        _ => ApiError::field("schedule", e.to_string()),
    })?;
    let schedule = schedule.with_days(filter);
    let upcoming = schedule.upcoming(from, count);
    // A day its calendars cannot decide is said, not guessed: it would be recorded `missed`.
    let undecided = upcoming
        .iter()
        .find_map(|t| schedule.decidable(*t).err())
        .map(|e| e.to_string());
    Ok(Json(NextInstants {
        instants: upcoming.iter().map(|t| t.timestamp_millis()).collect(),
        words: crate::schedule::words::describe(&rule),
        timezone: tz,
        undecided,
    }))
}

/// The rule, zone and calendars asked about: a job's, or the ones given.
async fn rule_of(
    s: &ApiState,
    caller: &Caller,
    q: &NextQuery,
) -> Result<
    (
        String,
        Option<String>,
        Option<crate::schedule::days::DayFilter>,
    ),
    ApiError,
> {
    if let Some(key) = q.job.as_deref() {
        let job = find(s, caller, key).await?;
        if job.schedule.is_empty() {
            return Err(ApiError::field(
                "job",
                format!(
                    "`{}` has no rule of its own: it runs after other jobs",
                    job.name
                ),
            ));
        }
        let filter = job.day_filter();
        return Ok((job.schedule, Some(job.timezone), filter));
    }
    let rule = q
        .rule
        .clone()
        .ok_or_else(|| ApiError::field("rule", "give a rule, or a job"))?;
    let names: Vec<String> = q
        .calendars
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    for n in &names {
        if crate::schedule::days::get(n).is_none() {
            return Err(ApiError::field("calendars", format!("no calendar `{n}`")));
        }
    }
    let mode = match q.calendar_mode.as_deref().filter(|m| !m.is_empty()) {
        None => crate::model::CalendarMode::default(),
        Some(m) => crate::model::CalendarMode::parse(m).ok_or_else(|| {
            ApiError::field(
                "calendar_mode",
                format!(
                    "unknown `{m}` (one of {})",
                    crate::model::CalendarMode::names()
                ),
            )
        })?,
    };
    let filter = (!names.is_empty()).then_some(crate::schedule::days::DayFilter { mode, names });
    Ok((rule, None, filter))
}

/// Executors and dispatchers, as their heartbeats tell.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct Fleet {
    executors: Vec<crate::store::Member>,
    dispatchers: Vec<crate::store::Member>,
}

/// Executors and dispatchers, as their heartbeats tell.
#[utoipa::path(get, path = "/api/v1/fleet", tag = "fleet",
    responses((status = 200, description = "The fleet", body = Fleet)))]
async fn fleet(State(s): State<ApiState>) -> Result<Json<Fleet>, ApiError> {
    s.requests.inc();
    let (executors, dispatchers) = s.store.fleet_members().await?;
    Ok(Json(Fleet {
        executors,
        dispatchers,
    }))
}
