//! Row decoding, kept apart so the queries stay readable.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::StoreError;
use crate::model::{
    Alarm, AlarmKind, CalendarMode, Channel, Fanout, Job, Misfire, Overlap, Run, RunState, Trigger,
};

/// A nullable text column, by name or index. MySQL's TEXT types reach the `Any` driver as
/// blobs, SQLite's as text: accept both (and keep invalid UTF-8 readable rather than failing
/// the row).
pub(super) fn text_at<I>(r: &AnyRow, col: I) -> Result<Option<String>, StoreError>
where
    I: sqlx::ColumnIndex<AnyRow> + Copy,
{
    match r.try_get::<Option<String>, _>(col) {
        Ok(v) => Ok(v),
        Err(sqlx::Error::ColumnDecode { .. }) => Ok(r
            .try_get::<Option<Vec<u8>>, _>(col)?
            .map(|b| String::from_utf8_lossy(&b).into_owned())),
        Err(e) => Err(e.into()),
    }
}

fn text(r: &AnyRow, col: &str) -> Result<Option<String>, StoreError> {
    text_at(r, col)
}

/// A job's calendars as a filter, from its `calendars` and `calendar_mode` columns (by index).
pub(super) fn day_filter(
    r: &AnyRow,
    names: usize,
    mode: usize,
) -> Result<Option<crate::schedule::days::DayFilter>, StoreError> {
    let Some(list) = text_at(r, names)?.filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    Ok(Some(crate::schedule::days::DayFilter {
        mode: text_at(r, mode)?
            .and_then(|m| CalendarMode::parse(&m))
            .unwrap_or_default(),
        names: list.split(',').map(str::to_string).collect(),
    }))
}

pub(super) fn alarm(r: &AnyRow) -> Result<Alarm, StoreError> {
    let details = text(r, "details")?.unwrap_or_default();
    Ok(Alarm {
        id: r.try_get("id")?,
        job_id: r.try_get("job_id")?,
        run_id: r.try_get("run_id")?,
        kind: r.try_get("kind")?,
        channel: r.try_get("channel")?,
        recipient: r.try_get("recipient")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        last_error: text(r, "last_error")?,
        count: r.try_get("count")?,
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub(super) fn job(r: &AnyRow) -> Result<Job, StoreError> {
    Ok(Job {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        group: r.try_get("job_group")?,
        schedule: r.try_get("schedule")?,
        timezone: r.try_get("timezone")?,
        command: text(r, "command")?,
        http_url: text(r, "http_url")?,
        http_method: r.try_get("http_method")?,
        http_headers: serde_json::from_str(&text(r, "http_headers")?.unwrap_or_default())
            .unwrap_or_default(),
        env: serde_json::from_str(&text(r, "env")?.unwrap_or_default()).unwrap_or_default(),
        http_body: text(r, "http_body")?,
        http_expect_status: r.try_get("http_expect_status")?,
        timeout_secs: r.try_get("timeout_secs")?,
        run_at: text(r, "run_at")?,
        fanout: {
            let v: String = r.try_get("fanout")?;
            Fanout::parse(&v).ok_or_else(|| StoreError::Corrupt(format!("unknown fanout `{v}`")))?
        },
        paused: r.try_get::<i64, _>("paused")? != 0,
        overlap: {
            let v: String = r.try_get("overlap")?;
            Overlap::parse(&v)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown overlap `{v}`")))?
        },
        retries: r.try_get("retries")?,
        retry_backoff_secs: r.try_get("retry_backoff_secs")?,
        misfire: {
            let v: String = r.try_get("misfire")?;
            Misfire::parse(&v)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown misfire `{v}`")))?
        },
        misfire_window_secs: r.try_get("misfire_window_secs")?,
        alarm_on: AlarmKind::parse_list(&[r.try_get::<String, _>("alarm_on")?])
            .map_err(|e| StoreError::Corrupt(format!("alarm_on: {e}")))?,
        alarm_channels: Channel::parse_list(&[r.try_get::<String, _>("alarm_channels")?])
            .map_err(|e| StoreError::Corrupt(format!("alarm_channels: {e}")))?,
        run_as: text(r, "run_as")?,
        description: text(r, "description")?,
        limits: crate::model::Limits {
            max_open_files: r.try_get("max_open_files")?,
            max_address_space_mb: r.try_get("max_address_space_mb")?,
            max_cpu_secs: r.try_get("max_cpu_secs")?,
        },
        admin_email: text(r, "admin_email")?,
        admin_mobile: text(r, "admin_mobile")?,
        // Read by `Store::attach_edges`, from their own table.
        after: Vec::new(),
        requires: text(r, "requires_job")?,
        within_secs: r.try_get("requires_within_secs")?,
        calendars: text(r, "calendars")?
            .map(|c| c.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        late_after_secs: r.try_get("late_after_secs")?,
        deadline: text(r, "deadline")?
            .and_then(|d| crate::model::durations::Deadline::parse(&d).ok().flatten()),
        duration_alarm: text(r, "duration_alarm")?
            .and_then(|d| crate::model::usual::DurationAlarm::parse(&d).ok())
            .unwrap_or_default(),
        calendar_mode: {
            let v = text(r, "calendar_mode")?.unwrap_or_default();
            CalendarMode::parse(&v).unwrap_or_default()
        },
        params: match text(r, "params")? {
            Some(p) if !p.is_empty() => {
                serde_json::from_str(&p).map_err(|e| StoreError::Corrupt(format!("params: {e}")))?
            }
            _ => Vec::new(),
        },
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub(super) fn run(r: &AnyRow, with_output: bool) -> Result<Run, StoreError> {
    let state: String = r.try_get("state")?;
    let state = RunState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown run state `{state}`")))?;
    let trigger: String = r.try_get("trigger_kind")?;
    let (stdout, stderr) = if with_output {
        (
            Some(text(r, "stdout")?.unwrap_or_default()),
            Some(text(r, "stderr")?.unwrap_or_default()),
        )
    } else {
        (None, None)
    };
    Ok(Run {
        id: r.try_get("id")?,
        job_id: r.try_get("job_id")?,
        job_name: r.try_get("job_name")?,
        job_group: r.try_get("job_group")?,
        instant: r.try_get("instant")?,
        trigger: Trigger::parse(&trigger).unwrap_or(Trigger::Schedule),
        attempt: r.try_get("attempt")?,
        retry_of: r.try_get("retry_of")?,
        state,
        executor: r.try_get("executor")?,
        pid: r.try_get("pid")?,
        exit_code: r.try_get("exit_code")?,
        error: text(r, "error")?,
        created_at: r.try_get("created_at")?,
        dispatched_at: r.try_get("dispatched_at")?,
        started_at: r.try_get("started_at")?,
        ended_at: r.try_get("ended_at")?,
        stdout,
        stderr,
        stdout_cut: r.try_get("stdout_cut")?,
        stderr_cut: r.try_get("stderr_cut")?,
        flow_root: r.try_get("flow_root")?,
        flow_run: r.try_get("flow_run")?,
        flow_round: r.try_get("flow_round")?,
        upstream_runs: text(r, "upstream_runs")?,
        rerun_of: r.try_get("rerun_of")?,
        params: text(r, "params_shown")?.and_then(|p| serde_json::from_str(&p).ok()),
        backfill: r.try_get("backfill_id")?,
        shard: match (
            r.try_get::<Option<i64>, _>("shard_index")?,
            r.try_get::<Option<i64>, _>("shard_total")?,
        ) {
            (Some(i), Some(t)) => Some((i, t)),
            _ => None,
        },
    })
}
