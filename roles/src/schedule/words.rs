//! A rule read out in plain words for people ("at 02:30 every day", "every 5 minutes"), for
//! the common shapes; anything else gets `None` and is shown as the rule itself. This is for
//! reading only: the instants always come from [`super::Schedule`].

/// The rule in words, when it has one of the shapes people write most.
pub fn describe(rule: &str) -> Option<String> {
    let rule = rule.trim();
    if let Some(every) = rule.strip_prefix("@every") {
        return Some(format!("every {}", every.trim()));
    }
    let macro_words = match rule.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => Some("at 00:00 on 1 January"),
        "@monthly" => Some("at 00:00 on day 1 of every month"),
        "@weekly" => Some("at 00:00 every Sunday"),
        "@daily" | "@midnight" => Some("at 00:00 every day"),
        "@hourly" => Some("at minute 0 of every hour"),
        _ => None,
    };
    if let Some(w) = macro_words {
        return Some(w.to_string());
    }
    let f: Vec<&str> = rule.split_whitespace().collect();
    let (sec, min, hour, dom, month, dow) = match f.len() {
        5 => ("0", f[0], f[1], f[2], f[3], f[4]),
        6 => (f[0], f[1], f[2], f[3], f[4], f[5]),
        _ => return None,
    };
    if month != "*" {
        return None;
    }
    let days = days(dom, dow)?;
    let time = time_of_day(sec, min, hour)?;
    Some(match (time, days.as_str()) {
        (Time::Every(t), "every day") => t,
        (Time::Every(t), d) => match d.strip_prefix("every ") {
            Some(weekdays) => format!("{t} on {weekdays}"),
            None => format!("{t} {d}"),
        },
        (Time::At(t), d) => format!("{t} {d}"),
    })
}

enum Time {
    /// "every 5 minutes" — says how often, within the days.
    Every(String),
    /// "at 02:30" — fixed times.
    At(String),
}

fn number(s: &str, max: u32) -> Option<u32> {
    s.parse::<u32>().ok().filter(|n| *n <= max)
}

fn step(s: &str) -> Option<u32> {
    s.strip_prefix("*/")
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| *n > 0)
}

fn plural(n: u32, unit: &str) -> String {
    if n == 1 {
        format!("every {unit}")
    } else {
        format!("every {n} {unit}s")
    }
}

fn time_of_day(sec: &str, min: &str, hour: &str) -> Option<Time> {
    match (sec, min, hour) {
        ("*", "*", "*") => Some(Time::Every("every second".into())),
        (s, "*", "*") if step(s).is_some() => Some(Time::Every(plural(step(s)?, "second"))),
        ("0", "*", "*") => Some(Time::Every("every minute".into())),
        ("0", m, "*") if step(m).is_some() => Some(Time::Every(plural(step(m)?, "minute"))),
        ("0", m, "*") => Some(Time::Every(format!(
            "at minute {} of every hour",
            number(m, 59)?
        ))),
        ("0", m, h) if step(h).is_some() => Some(Time::Every(format!(
            "at minute {} {}",
            number(m, 59)?,
            plural(step(h)?, "hour")
        ))),
        (s, m, h) => {
            let (s, m) = (number(s, 59)?, number(m, 59)?);
            let hours: Vec<u32> = h.split(',').map(|h| number(h, 23)).collect::<Option<_>>()?;
            let times: Vec<String> = hours
                .iter()
                .map(|h| {
                    if s == 0 {
                        format!("{h:02}:{m:02}")
                    } else {
                        format!("{h:02}:{m:02}:{s:02}")
                    }
                })
                .collect();
            Some(Time::At(format!("at {}", list(&times))))
        }
    }
}

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn weekday(s: &str) -> Option<&'static str> {
    let n = match s.to_ascii_lowercase().as_str() {
        "sun" => 0,
        "mon" => 1,
        "tue" => 2,
        "wed" => 3,
        "thu" => 4,
        "fri" => 5,
        "sat" => 6,
        other => number(other, 7)? % 7,
    };
    WEEKDAYS.get(n as usize).copied()
}

fn days(dom: &str, dow: &str) -> Option<String> {
    let any = |f: &str| f == "*" || f == "?";
    match (any(dom), any(dow)) {
        (true, true) => Some("every day".into()),
        (true, false) => {
            if let Some((a, b)) = dow.split_once('-') {
                return Some(format!("every {} to {}", weekday(a)?, weekday(b)?));
            }
            let names: Vec<String> = dow
                .split(',')
                .map(|d| weekday(d).map(str::to_string))
                .collect::<Option<_>>()?;
            Some(format!("every {}", list(&names)))
        }
        (false, true) => {
            let days: Vec<String> = dom
                .split(',')
                .map(|d| number(d, 31).filter(|d| *d > 0).map(|d| d.to_string()))
                .collect::<Option<_>>()?;
            Some(format!("on day {} of every month", list(&days)))
        }
        (false, false) => None,
    }
}

/// "a", "a and b", "a, b and c".
fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn common_rules_read_in_plain_words() {
        let cases = [
            ("0 30 2 * * *", Some("at 02:30 every day")),
            ("30 2 * * *", Some("at 02:30 every day")),
            ("*/5 * * * *", Some("every 5 minutes")),
            ("0 */1 * * * *", Some("every minute")),
            ("*/10 * * * * *", Some("every 10 seconds")),
            ("15 * * * *", Some("at minute 15 of every hour")),
            ("0 9 * * 1-5", Some("at 09:00 every Monday to Friday")),
            (
                "0 9,18 * * mon,fri",
                Some("at 09:00 and 18:00 every Monday and Friday"),
            ),
            ("0 0 1 * *", Some("at 00:00 on day 1 of every month")),
            ("*/5 * * * 1", Some("every 5 minutes on Monday")),
            ("@every 90s", Some("every 90s")),
            ("@daily", Some("at 00:00 every day")),
            ("0 0 1 1 *", None),
            ("0 9 1 * 1", None),
        ];
        for (rule, words) in cases {
            assert_eq!(describe(rule).as_deref(), words, "{rule}");
        }
    }
}
