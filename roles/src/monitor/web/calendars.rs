//! `/api/v1/calendars`: the shipped calendars and the store's, read by anyone who may read;
//! added, replaced and deleted by an admin of every group (a calendar is shared by every
//! group's jobs, so a change to one reaches jobs the caller may not see otherwise).

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::Caller;
use super::api::{parse_body, ApiState};
use crate::http::{ApiError, ErrorBody};
use crate::model::calendar::CalendarSpec;
use crate::model::Job;
use crate::store::CalendarDeleted;

/// Each route registered with its entry in the OpenAPI document.
pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_calendars, add_calendar))
        .routes(routes!(show_calendar, replace_calendar, delete_calendar))
}

/// A calendar as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CalendarView {
    /// The calendar as written.
    #[serde(rename = "calendar")]
    pub spec: CalendarSpec,
    /// Shipped in the binary (read-only; refreshed with a new release).
    pub shipped: bool,
    /// The jobs that use it (the ones the caller may see).
    pub used_by: Vec<String>,
    /// With `?year=`: its days that year (a workdays calendar: its workdays).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_of_year: Option<Vec<String>>,
}

fn shipped(name: &str) -> Option<CalendarSpec> {
    crate::schedule::days::shipped_specs()
        .into_iter()
        .find(|s| s.name.eq_ignore_ascii_case(name))
}

/// Changing calendars: an admin of every group.
fn require_calendar_admin(caller: &Caller) -> Result<(), ApiError> {
    caller.require_admin()?;
    if caller.principal.groups.is_some() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "calendars are shared by every group's jobs: only an admin of every group may \
             change them",
        ));
    }
    Ok(())
}

/// The jobs that use a calendar, among those the caller may see (the API's and the console's).
pub(super) async fn used_by(
    s: &ApiState,
    caller: &Caller,
    name: &str,
) -> Result<Vec<String>, ApiError> {
    Ok(s.store
        .calendar_users(name)
        .await?
        .into_iter()
        .filter(|u| caller.principal.sees(&u.group))
        .map(|u| u.name)
        .collect())
}

/// Every calendar: the shipped ones, then the store's.
#[utoipa::path(get, path = "/api/v1/calendars", tag = "calendars",
    responses((status = 200, description = "The calendars", body = Vec<CalendarView>)))]
async fn list_calendars(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<CalendarView>>, ApiError> {
    s.requests.inc();
    let mut out = Vec::new();
    let specs = crate::schedule::days::shipped_specs()
        .into_iter()
        .map(|spec| (spec, true))
        .chain(
            s.store
                .calendars()
                .await?
                .into_iter()
                .map(|spec| (spec, false)),
        );
    for (spec, shipped) in specs {
        let used_by = used_by(&s, &caller, &spec.name).await?;
        out.push(CalendarView {
            spec,
            shipped,
            used_by,
            days_of_year: None,
        });
    }
    Ok(Json(out))
}

/// `GET /api/v1/calendars/{name}` options.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ShowQuery {
    /// List its days of this year.
    year: Option<i32>,
}

/// One calendar; with `year`, its days that year.
#[utoipa::path(get, path = "/api/v1/calendars/{name}", tag = "calendars",
    params(("name" = String, Path, description = "The calendar's name"), ShowQuery),
    responses((status = 200, description = "The calendar", body = CalendarView),
        (status = 400, description = "The year is past the calendar's data: the error says which years it covers", body = ErrorBody),
        (status = 404, description = "No such calendar", body = ErrorBody)))]
async fn show_calendar(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    query: Result<Query<ShowQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CalendarView>, ApiError> {
    s.requests.inc();
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let (spec, is_shipped) = match shipped(&name) {
        Some(spec) => (spec, true),
        None => (
            s.store
                .calendar(&name)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no calendar `{name}`")))?,
            false,
        ),
    };
    let days_of_year = match q.year {
        None => None,
        Some(year) => {
            let cal = spec
                .compile()
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.message))?;
            let days = cal
                .days_of(year)
                .map_err(|e| ApiError::field("year", e.to_string()))?;
            Some(days.iter().map(|d| d.to_string()).collect())
        }
    };
    let used_by = used_by(&s, &caller, &spec.name).await?;
    Ok(Json(CalendarView {
        spec,
        shipped: is_shipped,
        used_by,
        days_of_year,
    }))
}

/// A calendar from a request body, checked, named as the path says when it has a path.
fn checked(body: &Bytes, name: Option<&str>) -> Result<CalendarSpec, ApiError> {
    let mut spec: CalendarSpec = parse_body(body)?;
    if let Some(n) = name {
        if !spec.name.is_empty() && !spec.name.eq_ignore_ascii_case(n) {
            return Err(ApiError::field(
                "name",
                format!("`{}` is not `{n}`: a calendar is not renamed", spec.name),
            ));
        }
        spec.name = n.to_string();
    }
    spec.compile().map_err(ApiError::from)?;
    if shipped(&spec.name).is_some() {
        return Err(ApiError::field(
            "name",
            format!(
                "`{}` is a shipped calendar: add yours under another name",
                spec.name
            ),
        ));
    }
    Ok(spec)
}

/// Adds a calendar (its days as `days`, `workdays`; see `model::calendar`).
#[utoipa::path(post, path = "/api/v1/calendars", tag = "calendars", request_body = CalendarSpec,
    responses((status = 201, description = "Added", body = CalendarView),
        (status = 400, description = "A field is wrong: the error names it", body = ErrorBody),
        (status = 403, description = "Only an admin of every group changes calendars", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody)))]
async fn add_calendar(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<CalendarView>), ApiError> {
    s.requests.inc();
    require_calendar_admin(&caller)?;
    let spec = checked(&body, None)?;
    s.store.insert_calendar(&spec).await?;
    s.store.install_calendars().await;
    caller
        .audit(
            &s.store,
            "calendar.add",
            format!("calendar {}", spec.name),
            None,
            json!({"days": spec.days.len(), "workdays": spec.workdays.len()}),
        )
        .await;
    Ok((
        StatusCode::CREATED,
        Json(CalendarView {
            spec,
            shipped: false,
            used_by: Vec::new(),
            days_of_year: None,
        }),
    ))
}

/// Replaces a calendar's days; the jobs that use it are planned again with them.
#[utoipa::path(put, path = "/api/v1/calendars/{name}", tag = "calendars",
    params(("name" = String, Path, description = "The calendar's name")), request_body = CalendarSpec,
    responses((status = 200, description = "Replaced", body = CalendarView),
        (status = 400, description = "A field is wrong: the error names it", body = ErrorBody),
        (status = 403, description = "Only an admin of every group changes calendars", body = ErrorBody),
        (status = 404, description = "No such calendar", body = ErrorBody)))]
async fn replace_calendar(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<CalendarView>, ApiError> {
    s.requests.inc();
    require_calendar_admin(&caller)?;
    let spec = checked(&body, Some(&name))?;
    if !s.store.update_calendar(&spec).await? {
        return Err(ApiError::not_found(format!("no calendar `{name}`")));
    }
    s.store.install_calendars().await;
    caller
        .audit(
            &s.store,
            "calendar.edit",
            format!("calendar {}", spec.name),
            None,
            json!({"days": spec.days.len(), "workdays": spec.workdays.len()}),
        )
        .await;
    let used_by = used_by(&s, &caller, &spec.name).await?;
    Ok(Json(CalendarView {
        spec,
        shipped: false,
        used_by,
        days_of_year: None,
    }))
}

/// Deletes a calendar no job uses.
#[utoipa::path(delete, path = "/api/v1/calendars/{name}", tag = "calendars",
    params(("name" = String, Path, description = "The calendar's name")),
    responses((status = 204, description = "Deleted"),
        (status = 400, description = "A shipped calendar is not deleted", body = ErrorBody),
        (status = 403, description = "Only an admin of every group changes calendars", body = ErrorBody),
        (status = 404, description = "No such calendar", body = ErrorBody),
        (status = 409, description = "Jobs use it: the error names them", body = ErrorBody)))]
async fn delete_calendar(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.requests.inc();
    require_calendar_admin(&caller)?;
    if shipped(&name).is_some() {
        return Err(ApiError::field(
            "name",
            format!("`{name}` is a shipped calendar: it cannot be deleted"),
        ));
    }
    match s.store.delete_calendar(&name).await? {
        CalendarDeleted::Missing => Err(ApiError::not_found(format!("no calendar `{name}`"))),
        CalendarDeleted::Used(jobs) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("jobs use calendar `{name}`: {}", jobs.join(", ")),
        )),
        CalendarDeleted::Done => {
            s.store.install_calendars().await;
            caller
                .audit(
                    &s.store,
                    "calendar.delete",
                    format!("calendar {name}"),
                    None,
                    json!({}),
                )
                .await;
            Ok(StatusCode::NO_CONTENT)
        }
    }
}

/// The calendars a job names exist (the shipped ones, or the store's).
pub(super) async fn check_job_calendars(s: &ApiState, job: &Job) -> Result<(), ApiError> {
    for name in &job.calendars {
        if shipped(name).is_none() && s.store.calendar(name).await?.is_none() {
            return Err(ApiError::field(
                "calendars",
                format!("no calendar `{name}` (see `cronvisor calendar list`)"),
            ));
        }
    }
    Ok(())
}
