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
