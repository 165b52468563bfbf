//! Durations as people type them (`90s`, `5m`, `2h`, `1d`) and as error messages say them.

/// Seconds in the largest unit that divides them: `30d`, `90m`, `45s`.
pub fn secs_text(v: i64) -> String {
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if v != 0 && v % n == 0 {
            return format!("{}{unit}", v / n);
        }
    }
    format!("{v}s")
}

/// A measured duration in short words (`850 ms`, `12.0 s`, `3 min 4 s`, `2 h 5 min`), as
/// the console, `job show` and alarms say it.
pub fn span(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..=999 => format!("{ms} ms"),
        1000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{} h {} min", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// "90", "90s", "5m", "2h", "1d" -> seconds (positive).
pub fn parse_duration_secs(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (examples: 90, 90s, 5m, 2h, 1d)"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit `{unit}` in `{s}` (use s, m, h or d)")),
    };
    if n <= 0 {
        return Err("must be positive".to_string());
    }
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too long"))
}

/// A timeout: a duration, or `none` / `0` for no limit (sent as 0).
pub fn parse_timeout(s: &str) -> Result<i64, String> {
    match s.trim() {
        "none" | "0" => Ok(0),
        other => parse_duration_secs(other),
    }
}

/// An SLA deadline (`--deadline`): a span after the instant (`90m`), or a time of day in the
/// job's zone (`09:30`) — that day's, or the next day's when the instant is at or past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    After(i64),
    /// Minutes since midnight.
    At(u32),
}

impl Deadline {
    /// `""` or `0`: none.
    pub fn parse(s: &str) -> Result<Option<Deadline>, String> {
        let s = s.trim();
        if s.is_empty() || s == "0" {
            return Ok(None);
        }
        if let Some((h, m)) = s.split_once(':') {
            return match (h.parse::<u32>(), m.parse::<u32>()) {
                (Ok(h), Ok(m)) if h < 24 && m < 60 && m.to_string().len() <= 2 => {
                    Ok(Some(Deadline::At(h * 60 + m)))
                }
                _ => Err(format!(
                    "`{s}` is not a time of day (09:30) nor a duration (90m)"
                )),
            };
        }
        let secs = parse_duration_secs(s)?;
        if !(1..=7 * 86_400).contains(&secs) {
            return Err("a deadline after the instant is 1 s to 7 days".into());
        }
        Ok(Some(Deadline::After(secs)))
    }

    /// As written: `1h`, `09:30`.
    pub fn text(&self) -> String {
        match self {
            Deadline::After(s) => secs_text(*s),
            Deadline::At(m) => format!("{:02}:{:02}", m / 60, m % 60),
        }
    }

    /// When an instant of a job in `tz` is due to have ended.
    pub fn bound(&self, instant: super::Millis, tz: chrono_tz::Tz) -> Option<super::Millis> {
        match self {
            Deadline::After(s) => Some(instant + s * 1000),
            Deadline::At(m) => {
                let local = chrono::DateTime::from_timestamp_millis(instant)?.with_timezone(&tz);
                let time = chrono::NaiveTime::from_hms_opt(m / 60, m % 60, 0)?;
                let mut day = local.date_naive();
                if local.time() >= time {
                    day = day.succ_opt()?;
                }
                // A time the clocks skip that day: the first after the gap.
                crate::schedule::days::wall_time(tz, day.and_time(time))
                    .map(|t| t.timestamp_millis())
            }
        }
    }
}

impl serde::Serialize for Deadline {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}

impl<'de> serde::Deserialize<'de> for Deadline {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Deadline, D::Error> {
        let s = String::deserialize(d)?;
        Deadline::parse(&s)
            .map_err(serde::de::Error::custom)?
            .ok_or_else(|| serde::de::Error::custom("an empty deadline"))
    }
}

#[cfg(test)]
mod deadline_tests {
    use super::Deadline;

    #[test]
    fn a_deadline_is_a_span_or_a_time_of_day_the_same_day_or_the_next() {
        assert_eq!(Deadline::parse("90m"), Ok(Some(Deadline::After(5400))));
        assert_eq!(Deadline::parse("09:30"), Ok(Some(Deadline::At(570))));
        assert_eq!(Deadline::parse(""), Ok(None));
        assert!(Deadline::parse("25:00").is_err());
        assert!(Deadline::parse("8d").is_err());
        let tz: chrono_tz::Tz = "Asia/Shanghai".parse().expect("zone");
        // 2026-10-08 02:00 in Shanghai is 2026-10-07T18:00:00Z; 09:30 that day is 01:30Z.
        let instant = 1_791_396_000_000;
        assert_eq!(
            Deadline::At(570).bound(instant, tz),
            Some(instant + 7 * 3_600_000 + 30 * 60_000)
        );
        // An instant at 10:00 is due by 09:30 the next day.
        let ten = instant + 8 * 3_600_000;
        assert_eq!(
            Deadline::At(570).bound(ten, tz),
            Some(ten + 23 * 3_600_000 + 30 * 60_000)
        );
    }
}
