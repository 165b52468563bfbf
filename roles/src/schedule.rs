//! Cron rules, parsed by `croner` with the semantics of Vixie cron. Plain rules in a zone
//! without clock changes (UTC, `Etc/GMT+5`) are then kept in a compact form of cronvisor's
//! own (32 bytes against croner's ~5 KB; [`compact`]), held to croner's instants by a
//! differential test.
//!
//! - 5 fields (`min hour dom month dow`) or 6 with seconds first; `@hourly`-style macros.
//! - Day-of-week 0 and 7 are both Sunday.
//! - When both day-of-month and day-of-week are restricted, a day matching *either* fires; a
//!   day field whose text starts with `*` (`*/2` too) is unrestricted and the two AND, as in
//!   Vixie cron (`0 9 */2 * 1`: Mondays that are odd days of the month).
//! - `N/step` is accepted as "from N every step" (croner's sloppy ranges), as the rules of the
//!   system cronvisor descends from use it.
//! - `@every 90s` (robfig/cron's interval rules): every multiple of the interval since the Unix
//!   epoch, the same instants on every dispatcher whenever it started.
//! - Instants are computed in the job's IANA time zone. A fixed time that falls in a
//!   spring-forward gap fires once at the first valid instant after the gap (02:30 -> 03:00); a
//!   fixed time repeated in the autumn overlap fires once (the first occurrence); wildcard and
//!   step rules follow real time and never go backwards.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

mod compact;
pub mod days;
mod fields;
pub mod words;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ScheduleError {
    #[error("invalid cron rule `{rule}`: {reason}")]
    Rule { rule: String, reason: String },
    #[error("unknown time zone `{0}` (expected an IANA name such as `Europe/Paris`)")]
    TimeZone(String),
}

/// A parsed rule bound to its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    rule: Rule,
    tz: Tz,
    /// The job's calendars, if it has some: its rule's instants kept, dropped or moved by them.
    days: Option<std::sync::Arc<days::DayFilter>>,
}

#[derive(Debug, Clone)]
enum Rule {
    /// Plain fields in a zone without clock changes: 32 bytes ([`compact`]).
    Fields(compact::Fields),
    Cron(Box<Cron>),
    /// `@every 90s`: every multiple of this many milliseconds since the Unix epoch.
    Every(i64),
}

/// An IANA zone by its exact name; `utc` in any case is UTC.
pub fn parse_timezone(name: &str) -> Result<Tz, ScheduleError> {
    if name.eq_ignore_ascii_case("utc") {
        return Ok(Tz::UTC);
    }
    name.parse::<Tz>()
        .map_err(|_| ScheduleError::TimeZone(name.to_string()))
}

/// The offset (seconds east of UTC) of a zone whose clock never changes: UTC and its aliases,
/// and the `Etc/` zones (`Etc/GMT+5`). Other zones (even those without daylight saving
/// today, which may have had it once) are croner's.
fn fixed_offset(tz: Tz) -> Option<i32> {
    use chrono::{Offset, TimeZone};
    let name = tz.name();
    let fixed = name.starts_with("Etc/")
        || matches!(
            name,
            "UTC" | "UCT" | "GMT" | "GMT0" | "GMT+0" | "GMT-0" | "Greenwich" | "Universal" | "Zulu"
        );
    fixed.then(|| {
        tz.offset_from_utc_datetime(&DateTime::UNIX_EPOCH.naive_utc())
            .fix()
            .local_minus_utc()
    })
}

/// The longest `@every` interval: a year.
const MAX_EVERY_SECS: i64 = 366 * 86_400;

impl Schedule {
    pub fn parse(rule: &str, timezone: &str) -> Result<Schedule, ScheduleError> {
        // Croner is the judge of what a rule may be, whatever form it is kept in after.
        Schedule::parse_with(rule, timezone, false)?;
        let schedule = Schedule::parse_stored(rule, timezone)?;
        // A rule that parses but never matches (e.g. 30 February) would spin the search forever.
        if schedule.next_after(Utc::now()).is_none() {
            return Err(ScheduleError::Rule {
                rule: rule.to_string(),
                reason: "it never fires".to_string(),
            });
        }
        Ok(schedule)
    }

    /// A rule already checked by [`Schedule::parse`] when its job was stored: parsed without
    /// the search for a first instant (the dispatcher parses a million at start-up, and a rule
    /// that never fires just gets no instant).
    pub fn parse_stored(rule: &str, timezone: &str) -> Result<Schedule, ScheduleError> {
        match rule.split_once(days::KEY_SEP) {
            None => Schedule::parse_with(rule, timezone, true),
            Some((rule, filter)) => Ok(Schedule::parse_with(rule, timezone, true)?
                .with_days(days::DayFilter::from_key(filter))),
        }
    }

    /// Whether the parsed rule is the compact form (32 bytes) rather than croner's (~5 KB).
    pub fn is_compact(&self) -> bool {
        matches!(self.rule, Rule::Fields(_) | Rule::Every(_))
    }

    fn parse_with(rule: &str, timezone: &str, compact: bool) -> Result<Schedule, ScheduleError> {
        let tz = parse_timezone(timezone)?;
        let rule_err = |reason: String| ScheduleError::Rule {
            rule: rule.to_string(),
            reason,
        };
        let trimmed = rule.trim();
        if let Some(every) = trimmed.strip_prefix("@every") {
            let secs = parse_every(every.trim()).map_err(rule_err)?;
            return Ok(Schedule {
                rule: Rule::Every(secs * 1000),
                tz,
                days: None,
            });
        }
        if trimmed.eq_ignore_ascii_case("@reboot") {
            return Err(rule_err(
                "`@reboot` is not supported: cronvisor fires on a schedule, not when a machine \
                 boots (use a systemd unit for that)"
                    .to_string(),
            ));
        }
        let fields = rule.split_whitespace().count();
        if !trimmed.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(rule_err(format!(
                "expected 5 fields (min hour dom month dow) or 6 (sec min hour dom month dow), got {fields}"
            )));
        }
        if let Some(fields) = compact
            .then(|| fixed_offset(tz))
            .flatten()
            .filter(|_| !trimmed.starts_with('@'))
            .and_then(|offset| compact::Fields::parse(trimmed, day_fields_and(trimmed), offset))
        {
            return Ok(Schedule {
                rule: Rule::Fields(fields),
                tz,
                days: None,
            });
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .dom_and_dow(day_fields_and(trimmed))
            .sloppy_ranges(true)
            .build()
            .parse(rule)
            .map_err(|e| rule_err(fields::explain(trimmed).unwrap_or_else(|| e.to_string())))?;
        Ok(Schedule {
            rule: Rule::Cron(Box::new(cron)),
            tz,
            days: None,
        })
    }

    /// The same rule, its instants filtered by calendars (none: unfiltered).
    pub fn with_days(mut self, days: Option<days::DayFilter>) -> Schedule {
        self.days = days.map(std::sync::Arc::new);
        self
    }

    /// Whether the job's calendars can decide the day of `instant` (always, without any).
    pub fn decidable(&self, instant: DateTime<Utc>) -> Result<(), crate::model::calendar::Unknown> {
        match &self.days {
            Some(f) => f.decidable(instant, self.tz),
            None => Ok(()),
        }
    }

    /// The first instant strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Some(f) = &self.days else {
            return self.rule_next_after(after);
        };
        let next = |t| self.rule_next_after(t);
        match f.mode {
            crate::model::CalendarMode::NextWorkday => days::next_moved(f, self.tz, after, next),
            _ => days::next_kept(f, self.tz, after, next),
        }
    }

    /// The latest instant at or before `at`.
    pub fn last_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Some(f) = &self.days else {
            return self.rule_last_at_or_before(at);
        };
        let prev = |t| self.rule_last_at_or_before(t);
        match f.mode {
            crate::model::CalendarMode::NextWorkday => days::last_moved(f, self.tz, at, prev),
            _ => days::last_kept(f, self.tz, at, prev),
        }
    }

    /// The rule's own first instant strictly after `after`.
    fn rule_next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.rule {
            Rule::Fields(fields) => fields
                .next_after(after.timestamp_millis())
                .and_then(DateTime::from_timestamp_millis),
            Rule::Cron(cron) => {
                let local = after.with_timezone(&self.tz);
                cron.find_next_occurrence(&local, false)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            }
            Rule::Every(ms) => {
                let next = after
                    .timestamp_millis()
                    .div_euclid(*ms)
                    .checked_add(1)?
                    .checked_mul(*ms)?;
                DateTime::from_timestamp_millis(next)
            }
        }
    }

    /// The rule's own latest instant at or before `at`.
    fn rule_last_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.rule {
            Rule::Fields(fields) => fields
                .last_at_or_before(at.timestamp_millis())
                .and_then(DateTime::from_timestamp_millis),
            Rule::Cron(cron) => {
                let local = at.with_timezone(&self.tz);
                cron.find_previous_occurrence(&local, true)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            }
            Rule::Every(ms) => {
                DateTime::from_timestamp_millis(at.timestamp_millis().div_euclid(*ms) * ms)
            }
        }
    }

    /// The instants in `(after, until]`: the latest and how many, at the cost of at most
    /// `cap` schedule steps whatever the span (a week of every-second instants is 604,800).
    /// Past the cap the count is extrapolated from the steps walked and marked inexact.
    pub fn tally(&self, after: DateTime<Utc>, until: DateTime<Utc>, cap: u32) -> Option<Tally> {
        let latest = self.last_at_or_before(until).filter(|t| *t > after)?;
        let (from, to) = (after.timestamp_millis(), latest.timestamp_millis());
        if let (Rule::Every(ms), None) = (&self.rule, &self.days) {
            let count = (to.div_euclid(*ms) - from.div_euclid(*ms)).max(1) as u64;
            return Some(Tally {
                latest: to,
                count,
                exact: true,
            });
        }
        let mut cursor = after;
        let mut first = None;
        let mut count = 0u64;
        for _ in 0..cap {
            match self.next_after(cursor) {
                Some(t) if t <= latest && t > cursor => {
                    first.get_or_insert(t);
                    cursor = t;
                    count += 1;
                }
                _ => {
                    return Some(Tally {
                        latest: to,
                        count: count.max(1),
                        exact: true,
                    })
                }
            }
        }
        let Some(first) = first.filter(|_| cursor < latest && count > 1) else {
            return Some(Tally {
                latest: to,
                count,
                exact: true,
            });
        };
        // The mean gap between the instants walked, over the part not walked.
        let gap = (cursor - first).num_milliseconds() as f64 / (count - 1) as f64;
        let rest = ((to - cursor.timestamp_millis()) as f64 / gap.max(1.0)).round() as u64;
        let estimate = count + rest;
        Some(Tally {
            latest: to,
            count: estimate.max(count),
            exact: false,
        })
    }

    /// The instants in `[from, to]` (milliseconds), oldest first, at most `cap + 1` of them:
    /// one more than `cap` says "more than `cap`" without walking the rest.
    pub fn instants_between(&self, from: i64, to: i64, cap: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let Some(mut cursor) = DateTime::from_timestamp_millis(from.saturating_sub(1)) else {
            return out;
        };
        while out.len() <= cap {
            match self.next_after(cursor) {
                Some(t) if t > cursor && t.timestamp_millis() <= to => {
                    out.push(t.timestamp_millis());
                    cursor = t;
                }
                _ => break,
            }
        }
        out
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

/// The instants of a span, counted at a bounded cost: see [`Schedule::tally`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// The latest instant of the span (ms).
    pub latest: i64,
    pub count: u64,
    /// False when `count` was extrapolated (a span of more than the cap's instants).
    pub exact: bool,
}

impl Tally {
    /// Two spans' instants counted as one span's.
    pub fn merge(self, other: Tally) -> Tally {
        Tally {
            latest: self.latest.max(other.latest),
            count: self.count + other.count,
            exact: self.exact && other.exact,
        }
    }
}

impl std::fmt::Display for Tally {
    /// "12" or "about 604800": the count as a person reads it in a `missed` reason.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.exact {
            write!(f, "{}", self.count)
        } else {
            write!(f, "about {}", self.count)
        }
    }
}

/// Whether the day-of-month and day-of-week fields combine with AND. As in Vixie cron
/// (`entry.c`): a day field whose text starts with `*` (`*/2` too) counts as unrestricted,
/// and then the two AND (`0 9 */2 * 1`: Mondays that are odd days); when both are
/// restricted, a day matching either fires (OR). `?` counts as `*`.
fn day_fields_and(rule: &str) -> bool {
    let fields: Vec<&str> = rule.split_whitespace().collect();
    let (dom, dow) = match fields.len() {
        5 => (fields[2], fields[4]),
        6 => (fields[3], fields[5]),
        _ => return false,
    };
    let star = |f: &str| f.starts_with('*') || f.starts_with('?');
    star(dom) || star(dow)
}

/// `90s`, `1h30m`, `2h`, `1d` (whole seconds, at least 1 s, at most a year) -> seconds.
fn parse_every(text: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "`@every {text}`: expected an interval such as `@every 90s`, `@every 5m` or \
             `@every 1h30m` (units d, h, m, s)"
        )
    };
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    if !(1..=MAX_EVERY_SECS).contains(&total) {
        return Err(format!(
            "`@every {text}`: the interval must be between 1s and 366d"
        ));
    }
    Ok(total)
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
        // Vixie's `*` rule: a day field starting with `*` is unrestricted, so the two AND:
        // Mondays that are odd days of the month (Jan 2026: Mondays 5, 12, 19, 26; Feb: 9, 23).
        (
            "0 9 */2 * 1",
            "UTC",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-05T09:00:00+00:00",
                "2026-01-19T09:00:00+00:00",
                "2026-02-09T09:00:00+00:00",
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
    fn every_rules_fire_on_multiples_of_the_interval_since_the_epoch() {
        assert_eq!(
            next_n("@every 90s", "UTC", "2026-01-01T00:00:10Z", 3),
            [
                "2026-01-01T00:01:30+00:00",
                "2026-01-01T00:03:00+00:00",
                "2026-01-01T00:04:30+00:00"
            ]
        );
        assert_eq!(
            next_n("@every 1h30m", "Europe/Paris", "2026-01-01T00:00:00Z", 1),
            ["2026-01-01T01:30:00+00:00"]
        );
        for bad in [
            "@every",
            "@every 0s",
            "@every 5x",
            "@every 90",
            "@every 400d",
        ] {
            let err = Schedule::parse(bad, "UTC").expect_err(bad).to_string();
            assert!(err.contains("@every"), "{bad}: {err}");
        }
    }

    #[test]
    fn reboot_is_refused_with_its_own_reason() {
        let err = Schedule::parse("@reboot", "UTC")
            .expect_err("reboot")
            .to_string();
        assert!(err.contains("`@reboot` is not supported"), "{err}");
    }

    #[test]
    fn rule_errors_name_the_field_and_its_range() {
        let err = Schedule::parse("61 * * * *", "UTC")
            .expect_err("61")
            .to_string();
        assert!(err.ends_with("minute: 61 is out of range 0-59"), "{err}");
    }

    #[test]
    fn zones_are_iana_names_and_utc_in_any_case() {
        for z in ["utc", "Utc", "UTC"] {
            assert_eq!(parse_timezone(z).map(|t| t.name()), Ok("UTC"));
        }
        assert!(parse_timezone("europe/paris").is_err());
        assert!(parse_timezone("Europe/Paris").is_ok());
    }

    #[test]
    fn unknown_zone_is_rejected() {
        assert_eq!(
            Schedule::parse("* * * * *", "Mars/Olympus").unwrap_err(),
            ScheduleError::TimeZone("Mars/Olympus".into())
        );
    }

    /// A small deterministic generator, so a failing case can be replayed.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u32) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 33) % u64::from(n)) as u32
        }
    }

    /// One field's text from the plain grammar: `*`, `*/k`, `a`, `a-b`, `a-b/k`, `a/k`, names,
    /// lists of them.
    fn random_field(g: &mut Lcg, min: u32, max: u32, names: &[&str]) -> String {
        let items = 1 + g.below(3);
        let mut out = Vec::new();
        for _ in 0..items {
            let span = max - min + 1;
            let a = min + g.below(span);
            let b = a + g.below(max - a + 1);
            let k = 1 + g.below(span.min(13));
            let name = |g: &mut Lcg, v: u32| -> String {
                if !names.is_empty() && g.below(3) == 0 {
                    let i = ((v - min) as usize) % names.len();
                    names[i].to_lowercase()
                } else {
                    v.to_string()
                }
            };
            out.push(match g.below(7) {
                0 => "*".to_string(),
                1 => format!("*/{k}"),
                2 | 3 => name(g, a),
                4 => format!("{}-{}", name(g, a), name(g, b)),
                5 => format!("{a}-{b}/{k}"),
                _ => format!("{a}/{k}"),
            });
            if out.last().is_some_and(|i| i == "*") {
                break;
            }
        }
        out.join(",")
    }

    /// The compact form answers exactly as croner does, for random plain rules (5 and 6
    /// fields, both day-field choices, names, steps) in fixed zones, from random instants
    /// (with milliseconds) over two centuries, both ways.
    #[test]
    fn the_compact_form_finds_the_instants_croner_finds() {
        const MONTHS: &[&str] = &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ];
        const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
        let mut g = Lcg(17);
        let mut compared = 0;
        for case in 0..3000 {
            let mut fields = vec![
                random_field(&mut g, 0, 59, &[]),
                random_field(&mut g, 0, 23, &[]),
                random_field(&mut g, 1, 31, &[]),
                random_field(&mut g, 1, 12, MONTHS),
                random_field(&mut g, 0, 7, DAYS),
            ];
            // Wide sets often, so instants come close enough to compare many.
            if g.below(2) == 0 {
                fields[1] = "*".into();
            }
            if g.below(2) == 0 {
                fields.insert(0, random_field(&mut g, 0, 59, &[]));
            }
            let rule = fields.join(" ");
            let zone = ["UTC", "Etc/GMT+5", "Etc/GMT-14", "Etc/UTC"][case % 4];
            let Ok(cron) = Schedule::parse_with(&rule, zone, false) else {
                continue;
            };
            let compact = Schedule::parse_with(&rule, zone, true).expect("parses");
            // A range written backwards through a name (`6-sun`) is left to croner.
            if !compact.is_compact() {
                continue;
            }
            let from =
                946_684_800_000 + i64::from(g.below(u32::MAX)) * 735 + i64::from(g.below(1000));
            let from = DateTime::from_timestamp_millis(from).expect("instant");
            let mut cursor = from;
            for _ in 0..4 {
                let (want, got) = (cron.next_after(cursor), compact.next_after(cursor));
                assert_eq!(got, want, "`{rule}` in {zone} after {cursor}");
                let Some(t) = want else { break };
                cursor = t;
            }
            for at in [from, cursor] {
                let (want, got) = (cron.last_at_or_before(at), compact.last_at_or_before(at));
                assert_eq!(got, want, "`{rule}` in {zone} at or before {at}");
            }
            compared += 1;
        }
        assert!(compared > 1000, "only {compared} rules compared");
    }
}
