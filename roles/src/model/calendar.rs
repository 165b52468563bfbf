//! Business calendars: named sets of days that filter a job's instants (`--calendar`,
//! `--calendar-mode`). A calendar is written as TOML (the shipped ones in `calendars/`, a
//! user's from `calendar add --file`, or `--dates`) and compiled into sets for lookups.
//!
//! A calendar made from a dataset says which years it `covers`: a date outside them is
//! *unknown* ([`Unknown`]), and whoever asks must say so — never guess a workday.

use std::collections::HashSet;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

use super::{CalendarKind, FieldError};

/// The longest range one `a..b` item may span: a calendar of days, not of eras.
const MAX_RANGE_DAYS: i64 = 400;

/// A calendar as written (TOML), every list item as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarSpec {
    pub name: String,
    #[serde(default)]
    pub kind: CalendarKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where the days come from (a dataset and its version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The first and last years its days are known for; unset: every year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covers: Option<(i32, i32)>,
    /// `2026-10-01`, `2026-10-01..2026-10-07`, or `12-25` (every year).
    #[serde(default)]
    pub days: Vec<String>,
    /// `workdays` calendars: Saturdays and Sundays that are workdays (make-up days).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workdays: Vec<String>,
}

/// A calendar compiled for lookups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    pub name: String,
    pub kind: CalendarKind,
    pub covers: Option<(i32, i32)>,
    dates: HashSet<NaiveDate>,
    yearly: HashSet<(u32, u32)>,
    workdays: HashSet<NaiveDate>,
}

/// A date a calendar cannot answer for: past (or before) the years its data covers, or the
/// calendar is not known (`covers` unset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    pub calendar: String,
    pub date: NaiveDate,
    pub covers: Option<(i32, i32)>,
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.covers {
            Some((first, last)) => write!(
                f,
                "calendar `{}` has no data for {}: it covers {first} to {last} (a newer dataset \
                 adds the next year: docs/CALENDARS.md)",
                self.calendar, self.date
            ),
            None => write!(
                f,
                "calendar `{}` is not known here: {} cannot be decided",
                self.calendar, self.date
            ),
        }
    }
}

impl std::error::Error for Unknown {}

/// One item of `days` or `workdays`.
enum Item {
    Date(NaiveDate),
    Range(NaiveDate, NaiveDate),
    Yearly(u32, u32),
}

fn item(text: &str) -> Result<Item, String> {
    let t = text.trim();
    let date = |s: &str| {
        NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map_err(|_| format!("`{t}`: `{}` is not a date (2026-10-01)", s.trim()))
    };
    if let Some((a, b)) = t.split_once("..") {
        let (a, b) = (date(a)?, date(b)?);
        if b < a {
            return Err(format!("`{t}`: the range ends before it starts"));
        }
        if (b - a).num_days() >= MAX_RANGE_DAYS {
            return Err(format!(
                "`{t}`: a range spans at most {MAX_RANGE_DAYS} days"
            ));
        }
        return Ok(Item::Range(a, b));
    }
    if t.len() == 5 && t.as_bytes()[2] == b'-' {
        let (m, d) = (t[..2].parse::<u32>(), t[3..].parse::<u32>());
        if let (Ok(m), Ok(d)) = (m, d) {
            // Any leap year tells whether the day exists at all (02-29 does).
            if NaiveDate::from_ymd_opt(2024, m, d).is_some() {
                return Ok(Item::Yearly(m, d));
            }
        }
        return Err(format!("`{t}`: not a day of the year (12-25)"));
    }
    date(t).map(Item::Date)
}

impl CalendarSpec {
    /// Reads a calendar file: TOML, or iCalendar (`BEGIN:VCALENDAR`). `name` names it when
    /// the file does not (iCalendar) or overrides it.
    pub fn from_file(text: &str, name: Option<&str>) -> Result<CalendarSpec, FieldError> {
        let mut spec = if text.trim_start().starts_with("BEGIN:VCALENDAR") {
            super::calendar_ics::parse(text, name.unwrap_or_default())
                .map_err(|e| FieldError::new("file", e))?
        } else {
            toml::from_str::<CalendarSpec>(text)
                .map_err(|e| FieldError::new("file", e.to_string().trim().to_string()))?
        };
        if let Some(n) = name {
            spec.name = n.to_string();
        }
        spec.compile()?;
        Ok(spec)
    }

    /// Checks every field, naming the one that is wrong.
    pub fn compile(&self) -> Result<Calendar, FieldError> {
        super::validate_name(&self.name)?;
        if let Some((a, b)) = self.covers {
            if b < a || !(1900..=9999).contains(&a) {
                return Err(FieldError::new(
                    "covers",
                    format!("`[{a}, {b}]` is not a span of years"),
                ));
            }
        }
        if self.kind == CalendarKind::Days && !self.workdays.is_empty() {
            return Err(FieldError::new(
                "workdays",
                "only a `workdays` calendar has make-up workdays",
            ));
        }
        let mut cal = Calendar {
            name: self.name.clone(),
            kind: self.kind,
            covers: self.covers,
            dates: HashSet::new(),
            yearly: HashSet::new(),
            workdays: HashSet::new(),
        };
        for d in &self.days {
            match item(d).map_err(|e| FieldError::new("days", e))? {
                Item::Date(d) => {
                    cal.dates.insert(d);
                }
                Item::Range(a, b) => cal.dates.extend(a.iter_days().take_while(|d| *d <= b)),
                Item::Yearly(m, d) => {
                    cal.yearly.insert((m, d));
                }
            }
        }
        for d in &self.workdays {
            match item(d).map_err(|e| FieldError::new("workdays", e))? {
                Item::Date(d) => {
                    cal.workdays.insert(d);
                }
                Item::Range(a, b) => cal.workdays.extend(a.iter_days().take_while(|d| *d <= b)),
                Item::Yearly(..) => {
                    return Err(FieldError::new(
                        "workdays",
                        format!("`{d}`: a make-up workday has a year"),
                    ))
                }
            }
        }
        Ok(cal)
    }
}

impl Calendar {
    /// Whether `date` is one of its days: listed (`days`), or a workday (`workdays`).
    pub fn contains(&self, date: NaiveDate) -> Result<bool, Unknown> {
        if let Some((first, last)) = self.covers {
            if !(first..=last).contains(&date.year()) {
                return Err(Unknown {
                    calendar: self.name.clone(),
                    date,
                    covers: Some((first, last)),
                });
            }
        }
        let listed =
            self.dates.contains(&date) || self.yearly.contains(&(date.month(), date.day()));
        Ok(match self.kind {
            CalendarKind::Days => listed,
            CalendarKind::Workdays => {
                let weekday = !matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
                (weekday && !listed) || self.workdays.contains(&date)
            }
        })
    }

    /// Whether `date` is a day off by this calendar: listed by a `days` one, not a workday of a
    /// `workdays` one (what `next-workday` moves instants away from).
    pub fn off(&self, date: NaiveDate) -> Result<bool, Unknown> {
        let on = self.contains(date)?;
        Ok(match self.kind {
            CalendarKind::Days => on,
            CalendarKind::Workdays => !on,
        })
    }

    /// Its days in `year`, in order (`calendar show --year`).
    pub fn days_of(&self, year: i32) -> Result<Vec<NaiveDate>, Unknown> {
        let Some(first) = NaiveDate::from_ymd_opt(year, 1, 1) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for d in first.iter_days().take_while(|d| d.year() == year) {
            if self.contains(d)? {
                out.push(d);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn a_workdays_calendar_is_monday_to_friday_minus_its_days_plus_its_workdays() {
        let spec = CalendarSpec {
            name: "acme".into(),
            kind: CalendarKind::Workdays,
            description: None,
            source: None,
            covers: Some((2026, 2026)),
            days: vec!["2026-10-01..2026-10-07".into(), "12-25".into()],
            workdays: vec!["2026-10-10".into()],
        };
        let cal = spec.compile().expect("valid");
        assert_eq!(cal.contains(d("2026-09-30")), Ok(true)); // a Wednesday
        assert_eq!(cal.contains(d("2026-10-01")), Ok(false)); // National Day
        assert_eq!(cal.contains(d("2026-10-10")), Ok(true)); // a make-up Saturday
        assert_eq!(cal.contains(d("2026-10-11")), Ok(false)); // a Sunday
        assert_eq!(cal.contains(d("2026-12-25")), Ok(false)); // yearly
        assert_eq!(cal.off(d("2026-10-11")), Ok(true));
        let err = cal.contains(d("2027-01-04")).expect_err("past the data");
        assert!(err
            .to_string()
            .contains("has no data for 2027-01-04: it covers 2026 to 2026"));
    }

    #[test]
    fn bad_items_are_refused_naming_the_field_and_the_item() {
        let bad = |days: &[&str], workdays: &[&str], kind| {
            CalendarSpec {
                name: "x".into(),
                kind,
                description: None,
                source: None,
                covers: None,
                days: days.iter().map(|s| s.to_string()).collect(),
                workdays: workdays.iter().map(|s| s.to_string()).collect(),
            }
            .compile()
            .map(|_| ())
            .map_err(|e| format!("{}: {}", e.field, e.message))
            .expect_err("refused")
        };
        assert_eq!(
            bad(&["2026-13-01"], &[], CalendarKind::Days),
            "days: `2026-13-01`: `2026-13-01` is not a date (2026-10-01)"
        );
        assert_eq!(
            bad(&["02-30"], &[], CalendarKind::Days),
            "days: `02-30`: not a day of the year (12-25)"
        );
        assert_eq!(
            bad(&["2026-10-07..2026-10-01"], &[], CalendarKind::Days),
            "days: `2026-10-07..2026-10-01`: the range ends before it starts"
        );
        assert!(bad(&["2020-01-01..2026-01-01"], &[], CalendarKind::Days).contains("at most 400"));
        assert_eq!(
            bad(&[], &["2026-10-10"], CalendarKind::Days),
            "workdays: only a `workdays` calendar has make-up workdays"
        );
    }
}
