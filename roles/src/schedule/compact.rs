//! A compact form of the plain rules in a zone without daylight saving: six bitsets and an
//! offset, 32 bytes, against croner's ~5 KB (its year bitfield alone is 5,000 bytes). A
//! dispatcher with a million distinct rules keeps them all parsed in 32 MB and parses each in
//! about a microsecond, where croner's parse costs tens.
//!
//! Only what it can answer exactly takes this form: numbers, names, `*`, ranges, steps and
//! lists (no `L`, `W`, `#`, no macro), in UTC or a fixed-offset zone (`Etc/GMT+5`): with no
//! clock change, the next matching wall-clock second is the next instant, with none of the
//! daylight-saving choices croner makes. Every other rule stays croner's, and a differential
//! test holds the two to the same instants.

use chrono::{Datelike, NaiveDate};

/// Days searched for a match before a rule is taken for one that never fires: a whole
/// Gregorian cycle (400 years), so 29 February on a Monday (every 28 years) is found.
const MAX_DAYS: u32 = 146_097;

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A rule as six sets of values. Bit `n` of a set is value `n` (days and months from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    seconds: u64,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Vixie's choice, made from the rule's text: a day field starting with `*` is
    /// unrestricted and the two AND; both restricted, a day matching either fires.
    days_and: bool,
    /// The zone's fixed offset east of UTC, in seconds.
    offset: i32,
}

/// One field's grammar: its range and its names.
struct Grammar {
    min: u32,
    max: u32,
    names: &'static [&'static str],
    names_from: u32,
}

const SECOND: Grammar = Grammar {
    min: 0,
    max: 59,
    names: &[],
    names_from: 0,
};
const HOUR: Grammar = Grammar { max: 23, ..SECOND };
const DOM: Grammar = Grammar {
    min: 1,
    max: 31,
    ..SECOND
};
const MONTH: Grammar = Grammar {
    min: 1,
    max: 12,
    names: &MONTHS,
    names_from: 1,
};
const DOW: Grammar = Grammar {
    min: 0,
    max: 7,
    names: &DAYS,
    names_from: 0,
};

impl Fields {
    /// The compact form of `rule` in a zone `offset` seconds east of UTC, or `None` when the
    /// rule uses anything beyond plain fields (it is then croner's).
    pub fn parse(rule: &str, days_and: bool, offset: i32) -> Option<Fields> {
        let parts: Vec<&str> = rule.split_whitespace().collect();
        let (sec, rest) = match parts.len() {
            5 => ("0", &parts[..]),
            6 => (parts[0], &parts[1..]),
            _ => return None,
        };
        let weekdays = set(rest[4], &DOW)?;
        // Sunday is 0 and 7.
        let weekdays = ((weekdays | (weekdays >> 7)) & 0x7f) as u8;
        Some(Fields {
            seconds: set(sec, &SECOND)?,
            minutes: set(rest[0], &SECOND)?,
            hours: u32::try_from(set(rest[1], &HOUR)?).ok()?,
            days: u32::try_from(set(rest[2], &DOM)?).ok()?,
            months: u16::try_from(set(rest[3], &MONTH)?).ok()?,
            weekdays,
            days_and,
            offset,
        })
    }

    /// The first instant (ms) strictly after `after` (ms).
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let start = after.div_euclid(1000).checked_add(1)? + i64::from(self.offset);
        let mut date = date_of(start.div_euclid(86_400))?;
        let mut from = start.rem_euclid(86_400) as u32;
        for _ in 0..MAX_DAYS {
            if self.months & (1 << date.month()) == 0 {
                date = first_of_next_month(date)?;
                from = 0;
                continue;
            }
            if self.day_matches(date) {
                if let Some(second) = self.first_time_from(from) {
                    return self.instant(date, second);
                }
            }
            date = date.succ_opt()?;
            from = 0;
        }
        None
    }

    /// The latest instant (ms) at or before `at` (ms).
    pub fn last_at_or_before(&self, at: i64) -> Option<i64> {
        let start = at.div_euclid(1000) + i64::from(self.offset);
        let mut date = date_of(start.div_euclid(86_400))?;
        let mut until = start.rem_euclid(86_400) as u32;
        for _ in 0..MAX_DAYS {
            if self.months & (1 << date.month()) == 0 {
                date = date.with_day(1)?.pred_opt()?;
                until = 86_399;
                continue;
            }
            if self.day_matches(date) {
                if let Some(second) = self.last_time_until(until) {
                    return self.instant(date, second);
                }
            }
            date = date.pred_opt()?;
            until = 86_399;
        }
        None
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.days_and {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first matching second of a day at or after second-of-day `from`.
    fn first_time_from(&self, from: u32) -> Option<u32> {
        let (h0, m0, s0) = (from / 3600, from / 60 % 60, from % 60);
        let mut hour = first_at_or_after(u64::from(self.hours), h0)?;
        loop {
            let mfrom = if hour == h0 { m0 } else { 0 };
            let mut minute = first_at_or_after(self.minutes, mfrom);
            while let Some(m) = minute {
                let sfrom = if hour == h0 && m == m0 { s0 } else { 0 };
                if let Some(s) = first_at_or_after(self.seconds, sfrom) {
                    return Some(hour * 3600 + m * 60 + s);
                }
                minute = first_at_or_after(self.minutes, m + 1);
            }
            hour = first_at_or_after(u64::from(self.hours), hour + 1)?;
        }
    }

    /// The last matching second of a day at or before second-of-day `until`.
    fn last_time_until(&self, until: u32) -> Option<u32> {
        let (h0, m0, s0) = (until / 3600, until / 60 % 60, until % 60);
        let mut hour = last_at_or_before(u64::from(self.hours), h0)?;
        loop {
            let muntil = if hour == h0 { m0 } else { 59 };
            let mut minute = last_at_or_before(self.minutes, muntil);
            while let Some(m) = minute {
                let suntil = if hour == h0 && m == m0 { s0 } else { 59 };
                if let Some(s) = last_at_or_before(self.seconds, suntil) {
                    return Some(hour * 3600 + m * 60 + s);
                }
                minute = m
                    .checked_sub(1)
                    .and_then(|m| last_at_or_before(self.minutes, m));
            }
            hour = last_at_or_before(u64::from(self.hours), hour.checked_sub(1)?)?;
        }
    }

    /// Local `date` at `second` of its day, as UTC milliseconds.
    fn instant(&self, date: NaiveDate, second: u32) -> Option<i64> {
        let days = i64::from(date.num_days_from_ce()) - UNIX_EPOCH_DAYS_FROM_CE;
        let local = days * 86_400 + i64::from(second);
        (local - i64::from(self.offset)).checked_mul(1000)
    }
}

/// 1970-01-01 counted from 0001-01-01 (day 1).
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;

fn date_of(days_since_epoch: i64) -> Option<NaiveDate> {
    let ce = i32::try_from(days_since_epoch.checked_add(UNIX_EPOCH_DAYS_FROM_CE)?).ok()?;
    NaiveDate::from_num_days_from_ce_opt(ce)
}

fn first_of_next_month(date: NaiveDate) -> Option<NaiveDate> {
    let (y, m) = if date.month() == 12 {
        (date.year().checked_add(1)?, 1)
    } else {
        (date.year(), date.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
}

/// The lowest set bit of `mask` at or above `from`.
fn first_at_or_after(mask: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let above = mask >> from;
    (above != 0).then(|| from + above.trailing_zeros())
}

/// The highest set bit of `mask` at or below `until`.
fn last_at_or_before(mask: u64, until: u32) -> Option<u32> {
    let below = if until >= 63 {
        mask
    } else {
        mask & ((2u64 << until) - 1)
    };
    (below != 0).then(|| 63 - below.leading_zeros())
}

/// A field's text as a set of values, or `None` beyond the plain grammar.
fn set(text: &str, g: &Grammar) -> Option<u64> {
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s.parse::<u32>().ok().filter(|s| *s > 0)?)),
            None => (item, None),
        };
        let (lo, hi) = match range {
            "*" => (g.min, g.max),
            _ => match range.split_once('-') {
                // `SAT-SUN`: a range ending in Sunday ends at 7 (as croner reads it).
                Some((a, b)) if g.max == 7 && b.eq_ignore_ascii_case("SUN") => (value(a, g)?, 7),
                Some((a, b)) => (value(a, g)?, value(b, g)?),
                // `N/step` is "from N every step" (sloppy ranges, as croner is told).
                None if step.is_some() => (value(range, g)?, g.max),
                None => {
                    let v = value(range, g)?;
                    (v, v)
                }
            },
        };
        if lo > hi {
            return None;
        }
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Some(bits)
}

fn value(text: &str, g: &Grammar) -> Option<u32> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok().filter(|n| (g.min..=g.max).contains(n));
    }
    let upper = text.to_ascii_uppercase();
    g.names
        .iter()
        .position(|n| *n == upper)
        .map(|i| i as u32 + g.names_from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_searches_find_the_nearest_value_each_way() {
        let mask = (1 << 5) | (1 << 20) | (1 << 59);
        assert_eq!(first_at_or_after(mask, 0), Some(5));
        assert_eq!(first_at_or_after(mask, 6), Some(20));
        assert_eq!(first_at_or_after(mask, 60), None);
        assert_eq!(last_at_or_before(mask, 19), Some(5));
        assert_eq!(last_at_or_before(mask, 63), Some(59));
        assert_eq!(last_at_or_before(mask, 4), None);
    }

    #[test]
    fn only_plain_fields_take_the_compact_form() {
        assert!(Fields::parse("0 9 * * MON-FRI", true, 0).is_some());
        assert!(Fields::parse("*/15 0-30/7 1,2 * JAN-mar 0-7", false, 0).is_some());
        for other in [
            "0 0 L * *",
            "0 0 * * 5#2",
            "0 0 15W * *",
            "@daily",
            "0 0 ? * *",
        ] {
            assert_eq!(Fields::parse(other, true, 0), None, "{other}");
        }
    }
}
