//! Cron rules, parsed by `croner` with the semantics of Vixie cron.
//!
//! - 5 fields (`min hour dom month dow`) or 6 with seconds first; `@hourly`-style macros.
//! - Day-of-week 0 and 7 are both Sunday.
//! - When both day-of-month and day-of-week are restricted, a day matching *either* fires.
//! - `N/step` is accepted as "from N every step" (croner's sloppy ranges), as the rules of the
//!   system cronvisor descends from use it.
//! - Instants are computed in the job's IANA time zone. A fixed time that falls in a
//!   spring-forward gap fires once at the first valid instant after the gap (02:30 -> 03:00); a
//!   fixed time repeated in the autumn overlap fires once (the first occurrence); wildcard and
//!   step rules follow real time and never go backwards.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScheduleError {
    #[error("invalid cron rule `{rule}`: {reason}")]
    Rule { rule: String, reason: String },
    #[error("unknown time zone `{0}` (expected an IANA name such as `Europe/Paris`)")]
    TimeZone(String),
}

/// A parsed rule bound to its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
}

pub fn parse_timezone(name: &str) -> Result<Tz, ScheduleError> {
    name.parse::<Tz>()
        .map_err(|_| ScheduleError::TimeZone(name.to_string()))
}

impl Schedule {
    pub fn parse(rule: &str, timezone: &str) -> Result<Schedule, ScheduleError> {
        let tz = parse_timezone(timezone)?;
        let rule_err = |reason: String| ScheduleError::Rule {
            rule: rule.to_string(),
            reason,
        };
        let fields = rule.split_whitespace().count();
        if !rule.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
            return Err(rule_err(format!(
                "expected 5 fields (min hour dom month dow) or 6 (sec min hour dom month dow), got {fields}"
            )));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .dom_and_dow(false)
            .sloppy_ranges(true)
            .build()
            .parse(rule)
            .map_err(|e| rule_err(e.to_string()))?;
        let schedule = Schedule { cron, tz };
        // A rule that parses but never matches (e.g. 30 February) would spin the search forever.
        if schedule.next_after(Utc::now()).is_none() {
            return Err(rule_err("it never fires".to_string()));
        }
        Ok(schedule)
    }

    /// The first instant strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The next `count` instants strictly after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(count);
        let mut cursor = after;
        while out.len() < count {
            match self.next_after(cursor) {
                Some(t) if t > cursor => {
                    out.push(t);
                    cursor = t;
                }
                _ => break,
            }
        }
        out
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("bad instant {s}: {e}"))
    }

    fn next_n(rule: &str, tz: &str, from: &str, n: usize) -> Vec<String> {
        Schedule::parse(rule, tz)
            .unwrap_or_else(|e| panic!("{rule}: {e}"))
            .upcoming(at(from), n)
            .into_iter()
            .map(|t| t.to_rfc3339())
            .collect()
    }

    /// (rule, zone, from, expected next instants in UTC)
    const TABLE: &[(&str, &str, &str, &[&str])] = &[
        // 5-field: every 15 minutes.
        (
            "*/15 * * * *",
            "UTC",
            "2026-01-01T00:07:00Z",
            &["2026-01-01T00:15:00+00:00", "2026-01-01T00:30:00+00:00"],
        ),
        // 6-field with seconds.
        (
            "*/20 * * * * *",
            "UTC",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-01T00:00:20+00:00",
                "2026-01-01T00:00:40+00:00",
                "2026-01-01T00:01:00+00:00",
            ],
        ),
        // Macro.
        (
            "@hourly",
            "UTC",
            "2026-01-01T10:30:00Z",
            &["2026-01-01T11:00:00+00:00", "2026-01-01T12:00:00+00:00"],
        ),
        (
            "@daily",
            "UTC",
            "2026-01-01T10:30:00Z",
            &["2026-01-02T00:00:00+00:00"],
        ),
        // Sunday as 0 and as 7: 2026-01-04 and 2026-01-11 are Sundays.
        (
            "0 9 * * 0",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-04T09:00:00+00:00", "2026-01-11T09:00:00+00:00"],
        ),
        (
            "0 9 * * 7",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-04T09:00:00+00:00", "2026-01-11T09:00:00+00:00"],
        ),
        // Weekday names; Monday is 1.
        (
            "0 9 * * MON",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-05T09:00:00+00:00"],
        ),
        (
            "0 9 * * 1",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-05T09:00:00+00:00"],
        ),
        // DOM/DOW OR (Vixie): the 15th, or any Friday. Jan 2026: Fri 2, Fri 9, Thu 15, Fri 16.
        (
            "0 0 15 * 5",
            "UTC",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-02T00:00:00+00:00",
                "2026-01-09T00:00:00+00:00",
                "2026-01-15T00:00:00+00:00",
                "2026-01-16T00:00:00+00:00",
            ],
        ),
        // Only DOM restricted: DOW `*` does not widen it.
        (
            "0 0 15 * *",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-15T00:00:00+00:00", "2026-02-15T00:00:00+00:00"],
        ),
        // `N/step`, as the original system writes it: from minute 5, every 20.
        (
            "5/20 * * * *",
            "UTC",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-01T00:05:00+00:00",
                "2026-01-01T00:25:00+00:00",
                "2026-01-01T00:45:00+00:00",
            ],
        ),
        // Per-job zone: 02:30 in New York is 07:30 UTC in winter (EST, -5).
        (
            "0 30 2 * * *",
            "America/New_York",
            "2026-01-10T00:00:00Z",
            &["2026-01-10T07:30:00+00:00", "2026-01-11T07:30:00+00:00"],
        ),
        // Spring forward, 2026-03-08: 02:00 EST jumps to 03:00 EDT. 02:30 does not exist that day:
        // it runs once at 03:00 EDT (07:00 UTC), then at 02:30 EDT (06:30 UTC) the next day.
        (
            "0 30 2 * * *",
            "America/New_York",
            "2026-03-07T12:00:00Z",
            &["2026-03-08T07:00:00+00:00", "2026-03-09T06:30:00+00:00"],
        ),
        // Autumn overlap, 2026-11-01: 01:30 happens twice (EDT, then EST). It runs once, at the
        // first (05:30 UTC), and the next day at 01:30 EST (06:30 UTC).
        (
            "0 30 1 * * *",
            "America/New_York",
            "2026-10-31T12:00:00Z",
            &["2026-11-01T05:30:00+00:00", "2026-11-02T06:30:00+00:00"],
        ),
        // A step rule follows real time through the overlap: every 30 minutes, never backwards,
        // the repeated hour included.
        (
            "0 */30 * * * *",
            "America/New_York",
            "2026-11-01T05:00:00Z",
            &[
                "2026-11-01T05:30:00+00:00",
                "2026-11-01T06:00:00+00:00",
                "2026-11-01T06:30:00+00:00",
                "2026-11-01T07:00:00+00:00",
            ],
        ),
        // ... and through the gap: 01:30 EST, then 03:00 EDT.
        (
            "0 */30 * * * *",
            "America/New_York",
            "2026-03-08T06:00:00Z",
            &[
                "2026-03-08T06:30:00+00:00",
                "2026-03-08T07:00:00+00:00",
                "2026-03-08T07:30:00+00:00",
            ],
        ),
    ];

    #[test]
    fn known_next_instants() {
        for (rule, tz, from, want) in TABLE {
            let got = next_n(rule, tz, from, want.len());
            assert_eq!(&got, want, "rule `{rule}` in {tz} after {from}");
        }
    }

    #[test]
    fn bad_rules_are_rejected_with_the_reason() {
        for rule in [
            "",
            "* * *",
            "61 * * * *",
            "* * * * * * * *",
            "0 0 30 2 *",
            "@fortnightly",
        ] {
            let err = Schedule::parse(rule, "UTC").expect_err(rule);
            assert!(matches!(err, ScheduleError::Rule { .. }), "{rule}: {err}");
        }
    }

    #[test]
    fn unknown_zone_is_rejected() {
        assert_eq!(
            Schedule::parse("* * * * *", "Mars/Olympus").unwrap_err(),
            ScheduleError::TimeZone("Mars/Olympus".into())
        );
    }
}
