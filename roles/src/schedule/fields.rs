//! Which field of a cron rule is wrong, and why, in words: croner says only "Number out of
//! bounds"; a person needs `minute: 61 is out of range 0-59`. Used only to explain a rule
//! croner refused; `None` leaves croner's own reason.

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// First value of `names` (months count from 1, days from 0).
    names_from: u32,
}

const fn field(name: &'static str, min: u32, max: u32) -> Field {
    Field {
        name,
        min,
        max,
        names: &[],
        names_from: 0,
    }
}

const SECOND: Field = field("second", 0, 59);
const MINUTE: Field = field("minute", 0, 59);
const HOUR: Field = field("hour", 0, 23);
const DOM: Field = field("day-of-month", 1, 31);
const MONTH: Field = Field {
    names: &MONTHS,
    names_from: 1,
    ..field("month", 1, 12)
};
const DOW: Field = Field {
    names: &DAYS,
    names_from: 0,
    ..field("day-of-week", 0, 7)
};

/// The first problem found in a 5- or 6-field rule, naming its field.
pub fn explain(rule: &str) -> Option<String> {
    let parts: Vec<&str> = rule.split_whitespace().collect();
    let fields: &[Field] = match parts.len() {
        5 => &[MINUTE, HOUR, DOM, MONTH, DOW],
        6 => &[SECOND, MINUTE, HOUR, DOM, MONTH, DOW],
        _ => return None,
    };
    parts
        .iter()
        .zip(fields)
        .find_map(|(text, f)| check(f, text).err().map(|e| format!("{}: {e}", f.name)))
}

fn check(f: &Field, text: &str) -> Result<(), String> {
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("empty item in `{text}`"));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        if let Some(step) = step {
            let n: u32 = step
                .parse()
                .map_err(|_| format!("step `{step}` is not a number"))?;
            if n == 0 {
                return Err("a step must be at least 1".to_string());
            }
            if n > f.max {
                return Err(format!("step {n} is larger than {}", f.max));
            }
        }
        if range == "*" || range == "?" {
            continue;
        }
        // L, W and # (last day, weekday, nth weekday) are left to croner.
        if range.contains(['L', 'W', '#', 'l', 'w']) {
            continue;
        }
        match range.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (value(f, a)?, value(f, b)?);
                if a > b {
                    return Err(format!("range {a}-{b} goes backwards"));
                }
            }
            None => {
                value(f, range)?;
            }
        }
    }
    Ok(())
}

fn value(f: &Field, text: &str) -> Result<u32, String> {
    if let Ok(n) = text.parse::<u32>() {
        if n < f.min || n > f.max {
            return Err(format!("{n} is out of range {}-{}", f.min, f.max));
        }
        return Ok(n);
    }
    let upper = text.to_ascii_uppercase();
    match f.names.iter().position(|n| *n == upper) {
        Some(i) => Ok(i as u32 + f.names_from),
        None if f.names.is_empty() => Err(format!("`{text}` is not a number")),
        None => Err(format!(
            "`{text}` is not a number or a name ({})",
            f.names.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::explain;

    #[test]
    fn the_wrong_field_is_named_with_its_range() {
        for (rule, want) in [
            ("61 * * * *", "minute: 61 is out of range 0-59"),
            ("* 25 * * *", "hour: 25 is out of range 0-23"),
            ("* * 0 * *", "day-of-month: 0 is out of range 1-31"),
            ("* * * 13 *", "month: 13 is out of range 1-12"),
            ("* * * * 8", "day-of-week: 8 is out of range 0-7"),
            ("60 * * * * *", "second: 60 is out of range 0-59"),
            ("*/0 * * * *", "minute: a step must be at least 1"),
            ("5-2 * * * *", "minute: range 5-2 goes backwards"),
            ("x * * * *", "minute: `x` is not a number"),
            (
                "* * * FOO *",
                "month: `FOO` is not a number or a name (JAN, FEB, MAR, APR, MAY, JUN, JUL, AUG, SEP, OCT, NOV, DEC)",
            ),
        ] {
            assert_eq!(explain(rule).as_deref(), Some(want), "{rule}");
        }
        assert_eq!(explain("0 9 * * MON-FRI"), None);
    }
}
