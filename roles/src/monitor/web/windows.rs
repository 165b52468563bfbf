//! `/api/v1/windows`: maintenance windows. Anyone sees the windows over the jobs they may see;
//! a window over a group or a job is added and deleted by those who may change that group's
//! jobs, one over every job by an admin of every group.

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::Caller;
use super::api::{find, parse_body, ApiState};
use crate::http::{ApiError, ErrorBody};
use crate::model::window::{Window, MAX_FOR_SECS};
use crate::model::Millis;

/// Each route registered with its entry in the OpenAPI document.
pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_windows, add_window))
        .routes(routes!(delete_window))
}

/// A window, and the span of it going now, if one is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WindowView {
    pub window: Window,
    /// (start, end) of the span going now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<(Millis, Millis)>,
}

/// `POST /api/v1/windows` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct WindowBody {
    name: String,
    /// Start (RFC 3339, or a local time in `timezone`); for a recurring window, its first.
    #[serde(default)]
    from: Option<String>,
    /// End (exclusive); for a recurring window, when it stops.
    #[serde(default)]
    to: Option<String>,
    /// Only this group's jobs.
    #[serde(default)]
    group: Option<String>,
    /// Only this job.
    #[serde(default)]
    job: Option<String>,
    /// Recurring: a rule whose every instant starts the window…
    #[serde(default)]
    every: Option<String>,
    /// …for this long (`90m`, `2h`; at most a week).
    #[serde(default, rename = "for")]
    lasts: Option<String>,
    /// The zone of `from`, `to` and `every`; default the config's `timezone`.
    #[serde(default)]
    timezone: Option<String>,
}

/// Whether the caller sees (and so may know of) the window.
fn sees(caller: &Caller, w: &Window, job_group: Option<&str>) -> bool {
    match (job_group, &w.group) {
        (Some(g), _) => caller.principal.sees(g),
        (None, Some(g)) => caller.principal.sees(g),
        (None, None) => true,
    }
}

/// The maintenance windows the caller may see, each with its span going now.
#[utoipa::path(get, path = "/api/v1/windows", tag = "calendars",
    responses((status = 200, description = "The windows", body = Vec<WindowView>)))]
async fn list_windows(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<WindowView>>, ApiError> {
    s.requests.inc();
    let now = crate::model::now_millis();
    let mut out = Vec::new();
    for w in s.store.windows().await? {
        let group = match &w.job {
            Some(j) => s.store.find_job(j).await?.map(|j| j.group),
            None => None,
        };
        if sees(&caller, &w, group.as_deref()) {
            let active = w.span_at(now);
            out.push(WindowView { window: w, active });
        }
    }
    Ok(Json(out))
}

/// Who may add or delete a window: of a group or a job, who may change its jobs; of every
/// job, an admin of every group.
async fn may_change(s: &ApiState, caller: &Caller, w: &Window) -> Result<(), ApiError> {
    caller.require_write()?;
    match (&w.job, &w.group) {
        (Some(job), _) => find(s, caller, job).await.map(|_| ()),
        (None, Some(g)) if caller.principal.sees(g) => Ok(()),
        (None, Some(g)) => Err(ApiError::field("group", format!("no group `{g}` of yours"))),
        (None, None) => {
            caller.require_admin()?;
            match caller.principal.groups {
                None => Ok(()),
                Some(_) => Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "a window over every job is for an admin of every group: give --group or --job",
                )),
            }
        }
    }
}

fn checked(s: &ApiState, b: WindowBody) -> Result<Window, ApiError> {
    crate::model::validate_name(&b.name)?;
    let tz = b
        .timezone
        .clone()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or(s.default_tz.clone());
    crate::schedule::parse_timezone(&tz).map_err(|e| ApiError::field("timezone", e.to_string()))?;
    let at = |field: &str, v: &Option<String>| -> Result<Option<Millis>, ApiError> {
        v.as_deref()
            .filter(|t| !t.trim().is_empty())
            .map(|t| crate::model::parse_instant(t, &tz).map_err(|m| ApiError::field(field, m)))
            .transpose()
    };
    let (from, to) = (at("from", &b.from)?, at("to", &b.to)?);
    if let (Some(f), Some(t)) = (from, to) {
        if t <= f {
            return Err(ApiError::field("to", "is not after `from`"));
        }
    }
    if b.job.is_some() && b.group.is_some() {
        return Err(ApiError::field("job", "give a group or a job, not both"));
    }
    let (every, for_secs) = match (b.every.as_deref(), b.lasts.as_deref()) {
        (None, None) => {
            if from.is_none() || to.is_none() {
                return Err(ApiError::field(
                    if from.is_none() { "from" } else { "to" },
                    "a window is given by --from and --to, or recurs with --every and --for",
                ));
            }
            (None, None)
        }
        (Some(rule), Some(lasts)) => {
            crate::schedule::Schedule::parse(rule, &tz)
                .map_err(|e| ApiError::field("every", e.to_string()))?;
            let secs = crate::model::durations::parse_duration_secs(lasts)
                .map_err(|m| ApiError::field("for", m))?;
            if !(1..=MAX_FOR_SECS).contains(&secs) {
                return Err(ApiError::field("for", "must be 1 s to 7 days"));
            }
            (Some(rule.trim().to_string()), Some(secs))
        }
        (Some(_), None) => return Err(ApiError::field("for", "a recurring window needs --for")),
        (None, Some(_)) => return Err(ApiError::field("every", "--for goes with --every")),
    };
    Ok(Window {
        name: b.name.trim().to_string(),
        from,
        to,
        group: b.group.filter(|g| !g.trim().is_empty()),
        job: b.job.filter(|j| !j.trim().is_empty()),
        every,
        for_secs,
        timezone: tz,
        created_by: None,
    })
}

/// Adds a maintenance window: the scheduled instants of the jobs it holds are recorded
/// `skipped` while it lasts (within a second of its adding).
#[utoipa::path(post, path = "/api/v1/windows", tag = "calendars", request_body = WindowBody,
    responses((status = 201, description = "Added", body = WindowView),
        (status = 400, description = "A field is wrong: the error names it", body = ErrorBody),
        (status = 403, description = "The caller's role or groups do not allow it", body = ErrorBody),
        (status = 404, description = "No such job (or not in the caller's groups)", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody)))]
async fn add_window(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<WindowView>), ApiError> {
    s.requests.inc();
    let mut w = checked(&s, parse_body(&body)?)?;
    may_change(&s, &caller, &w).await?;
    if let Some(j) = &w.job {
        w.job = Some(find(&s, &caller, j).await?.name);
    }
    w.created_by = Some(caller.principal.name.clone());
    s.store.insert_window(&w).await?;
    caller
        .audit(
            &s.store,
            "window.add",
            format!("window {}", w.name),
            None,
            json!({"scope": w.scope_text(), "from": w.from, "to": w.to, "every": w.every,
                "for_secs": w.for_secs}),
        )
        .await;
    let active = w.span_at(crate::model::now_millis());
    Ok((StatusCode::CREATED, Json(WindowView { window: w, active })))
}

/// Deletes a maintenance window.
#[utoipa::path(delete, path = "/api/v1/windows/{name}", tag = "calendars",
    params(("name" = String, Path, description = "The window's name")),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "The caller's role or groups do not allow it", body = ErrorBody),
        (status = 404, description = "No such window", body = ErrorBody)))]
async fn delete_window(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.requests.inc();
    let w = s
        .store
        .windows()
        .await?
        .into_iter()
        .find(|w| w.name.eq_ignore_ascii_case(&name))
        .ok_or_else(|| ApiError::not_found(format!("no window `{name}`")))?;
    may_change(&s, &caller, &w).await?;
    s.store.delete_window(&w.name).await?;
    caller
        .audit(
            &s.store,
            "window.delete",
            format!("window {}", w.name),
            None,
            json!({}),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}
