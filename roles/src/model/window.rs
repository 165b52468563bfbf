//! Maintenance windows (`window add`): spans of time in which the scheduled instants of some
//! jobs — all of them, a group's, or one job's — are not run but recorded `skipped`, saying
//! which window. Once (`--from --to`) or recurring (`--every RULE --for DURATION`, optionally
//! bounded by `--from` / `--to`), in the window's zone.

use serde::{Deserialize, Serialize};

use super::{Job, Millis};

/// A maintenance window as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub name: String,
    /// A one-off window's start, or the first start a recurring one may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Millis>,
    /// A one-off window's end (exclusive), or when a recurring one stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Millis>,
    /// Only this group's jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Only this job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Recurring: a window starts at each instant of this rule…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// …and lasts this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_secs: Option<i64>,
    /// The zone of `every`.
    #[serde(default)]
    pub timezone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// The longest a recurring window may last: a week.
pub const MAX_FOR_SECS: i64 = 7 * 86_400;

impl Window {
    /// Whether the window's scope holds `job`.
    pub fn scopes(&self, job: &Job) -> bool {
        match (&self.job, &self.group) {
            (Some(j), _) => j.eq_ignore_ascii_case(&job.name),
            (None, Some(g)) => *g == job.group,
            (None, None) => true,
        }
    }

    /// The span of the window that holds `at` (start, end), if one does.
    pub fn span_at(&self, at: Millis) -> Option<(Millis, Millis)> {
        match (&self.every, self.for_secs) {
            (Some(rule), Some(secs)) => {
                let schedule =
                    crate::schedule::Schedule::parse_stored(rule, &self.timezone).ok()?;
                let t = chrono::DateTime::from_timestamp_millis(at)?;
                let start = schedule.last_at_or_before(t)?.timestamp_millis();
                let end = start + secs * 1000;
                let started = self.from.is_none_or(|f| start >= f);
                let running = self.to.is_none_or(|e| at < e);
                (at < end && started && running).then_some((start, end))
            }
            _ => match (self.from, self.to) {
                (Some(f), Some(e)) if f <= at && at < e => Some((f, e)),
                _ => None,
            },
        }
    }

    /// Whether it holds the instant of a job.
    pub fn covers(&self, job: &Job, instant: Millis) -> bool {
        self.scopes(job) && self.span_at(instant).is_some()
    }

    /// Its scope in words.
    pub fn scope_text(&self) -> String {
        match (&self.job, &self.group) {
            (Some(j), _) => format!("job {j}"),
            (None, Some(g)) => format!("group {g}"),
            (None, None) => "every job".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Window;

    fn w(every: Option<&str>, for_secs: Option<i64>, from: Option<i64>, to: Option<i64>) -> Window {
        Window {
            name: "w".into(),
            from,
            to,
            group: None,
            job: None,
            every: every.map(str::to_string),
            for_secs,
            timezone: "UTC".into(),
            created_by: None,
        }
    }

    #[test]
    fn a_window_holds_its_span_once_or_each_time_its_rule_comes() {
        let once = w(None, None, Some(1_000), Some(2_000));
        assert_eq!(once.span_at(999), None);
        assert_eq!(once.span_at(1_000), Some((1_000, 2_000)));
        assert_eq!(once.span_at(2_000), None);
        // Every day at 02:00 for an hour.
        let nightly = w(Some("0 0 2 * * *"), Some(3_600), None, None);
        let day = 86_400_000;
        let two = 2 * 3_600_000;
        assert_eq!(
            nightly.span_at(day + two + 1),
            Some((day + two, day + two + 3_600_000))
        );
        assert_eq!(nightly.span_at(day + two + 3_600_000), None);
        assert_eq!(nightly.span_at(day + two - 1), None);
        // Bounded: not before `from`, not from `to` on.
        let bounded = w(
            Some("0 0 2 * * *"),
            Some(3_600),
            Some(2 * day),
            Some(3 * day),
        );
        assert_eq!(bounded.span_at(day + two + 1), None);
        assert!(bounded.span_at(2 * day + two + 1).is_some());
        assert_eq!(bounded.span_at(3 * day + two + 1), None);
    }
}
