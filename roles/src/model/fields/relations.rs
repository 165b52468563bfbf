//! How a job's relations are assigned from its fields: the jobs it runs after (`after`, which
//! takes the place of its rule), the job it requires, the parameters its runs are given, the
//! calendars that filter its instants and its SLAs.

use super::{non_empty, AfterLine, DEFAULT_WITHIN_SECS};
use crate::model::{FieldError, Job};

/// `requires` and its window: the window defaults to a day, and goes with the requirement.
pub(super) fn assign_requires(requires: Option<String>, within: Option<i64>, job: &mut Job) {
    if let Some(v) = requires {
        job.requires = non_empty(v);
    }
    if let Some(v) = within {
        job.within_secs = Some(v);
    }
    match job.requires {
        Some(_) => job.within_secs = job.within_secs.or(Some(DEFAULT_WITHIN_SECS)),
        None => job.within_secs = None,
    }
}

pub(super) fn assign_after(
    after: Option<&[AfterLine]>,
    schedule: Option<&str>,
    job: &mut Job,
) -> Result<(), FieldError> {
    let schedule_given = schedule.is_some_and(|s| !s.trim().is_empty());
    let Some(lines) = after else {
        if !job.after.is_empty() && schedule_given {
            return Err(FieldError::new(
                "schedule",
                "the job runs after other jobs: clear them with --after \"\" to give it a schedule",
            ));
        }
        return Ok(());
    };
    let edges = lines
        .iter()
        .filter(|l| !l.0.trim().is_empty())
        .map(|l| l.0.parse::<crate::model::Edge>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| FieldError::new("after", m))?;
    match (edges.is_empty(), schedule_given) {
        (false, true) => {
            return Err(FieldError::new(
                "after",
                "a job that runs after others has no schedule of its own: give --after or \
                 --schedule, not both",
            ))
        }
        // Now triggered by its upstreams: its rule goes.
        (false, false) => job.schedule.clear(),
        (true, _) if schedule.is_none() && !job.after.is_empty() => {
            return Err(FieldError::new(
                "schedule",
                "is required when `after` is cleared (the job runs on its own again)",
            ))
        }
        (true, _) => {}
    }
    job.after = edges;
    Ok(())
}

/// `--param`, `--param-choices`, `--secret-param` over the job's declaration.
pub(super) fn assign_params(
    lines: Option<Vec<String>>,
    choices: Option<Vec<String>>,
    secret: Option<Vec<String>>,
    job: &mut Job,
) -> Result<(), FieldError> {
    job.params = crate::model::params::declare(
        lines.as_deref(),
        choices.as_deref(),
        secret.as_deref(),
        &job.params,
    )?;
    Ok(())
}

/// `--calendar` (names, trimmed, once each; "" clears) and `--calendar-mode`.
pub(super) fn assign_calendars(
    names: Option<Vec<String>>,
    mode: Option<crate::model::CalendarMode>,
    job: &mut Job,
) {
    if let Some(v) = names {
        let mut names: Vec<String> = v
            .iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        names.dedup();
        job.calendars = names;
    }
    if let Some(v) = mode {
        job.calendar_mode = v;
    }
}

/// `--late-after` and `--deadline` ("" or 0 clears), `--duration-alarm` ("" is the default).
pub(super) fn assign_sla(
    late: Option<i64>,
    deadline: Option<&str>,
    duration_alarm: Option<&str>,
    job: &mut Job,
) -> Result<(), FieldError> {
    if let Some(v) = late {
        job.late_after_secs = (v != 0).then_some(v);
    }
    if let Some(v) = deadline {
        job.deadline = crate::model::durations::Deadline::parse(v)
            .map_err(|m| FieldError::new("deadline", m))?;
    }
    if let Some(v) = duration_alarm {
        job.duration_alarm = crate::model::usual::DurationAlarm::parse(v)
            .map_err(|m| FieldError::new("duration_alarm", m))?;
    }
    Ok(())
}
