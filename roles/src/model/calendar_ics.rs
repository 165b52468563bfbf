//! Days from an iCalendar file (RFC 5545), as holiday calendars are published: each `VEVENT`
//! is its days (`DTSTART` to the day before an all-day `DTEND`, or its start's day), or a day
//! of every year with `RRULE:FREQ=YEARLY`. Everything else of the format is not needed for a
//! set of days and is ignored; a rule it cannot follow is refused naming its line. Hand-written:
//! these few properties are all a set of days needs, and the parser crates bring the whole of
//! iCalendar's object model for them.

use chrono::NaiveDate;

use super::calendar::CalendarSpec;
use super::CalendarKind;

/// The most events one file may hold.
const MAX_EVENTS: usize = 10_000;

fn date_of(value: &str, line: usize) -> Result<NaiveDate, String> {
    let day = value.get(..8).unwrap_or(value);
    NaiveDate::parse_from_str(day, "%Y%m%d")
        .map_err(|_| format!("line {line}: `{value}` is not an iCalendar date (20261001)"))
}

/// Unfolded lines with their first line number (a line starting with a space continues the
/// one before).
fn unfold(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let raw = raw.trim_end_matches('\r');
        match (raw.strip_prefix([' ', '\t']), out.last_mut()) {
            (Some(rest), Some(last)) => last.1.push_str(rest),
            _ => out.push((i + 1, raw.to_string())),
        }
    }
    out
}

/// An event's `DTSTART`, `DTEND` and `RRULE`, each with its line.
type Event = (Option<Line>, Option<Line>, Option<Line>);
type Line = (usize, String);

pub fn parse(text: &str, name: &str) -> Result<CalendarSpec, String> {
    let mut days = Vec::new();
    let mut event: Option<Event> = None;
    let mut events = 0;
    for (line, content) in unfold(text) {
        let Some((head, value)) = content.split_once(':') else {
            continue;
        };
        let prop = head.split(';').next().unwrap_or("").to_ascii_uppercase();
        match (prop.as_str(), value, event.as_mut()) {
            ("BEGIN", "VEVENT", _) => event = Some((None, None, None)),
            ("DTSTART", _, Some(e)) => e.0 = Some((line, value.to_string())),
            ("DTEND", _, Some(e)) => e.1 = Some((line, value.to_string())),
            ("RRULE", _, Some(e)) => e.2 = Some((line, value.to_string())),
            ("END", "VEVENT", Some(_)) => {
                let Some((start, end, rule)) = event.take() else {
                    continue;
                };
                events += 1;
                if events > MAX_EVENTS {
                    return Err(format!("more than {MAX_EVENTS} events"));
                }
                let Some((l, start)) = start else {
                    return Err(format!("line {line}: an event without DTSTART"));
                };
                let first = date_of(&start, l)?;
                if let Some((l, rule)) = rule {
                    let freq = rule
                        .split(';')
                        .find_map(|p| p.strip_prefix("FREQ="))
                        .unwrap_or("");
                    if freq != "YEARLY" || rule.contains("BY") {
                        return Err(format!(
                            "line {l}: RRULE `{rule}` cannot be followed (only FREQ=YEARLY on \
                             the start's day)"
                        ));
                    }
                    days.push(first.format("%m-%d").to_string());
                    continue;
                }
                // An all-day DTEND is the day after the last one.
                let last = match end {
                    Some((l, end)) if end.len() == 8 => {
                        date_of(&end, l)?.pred_opt().unwrap_or(first).max(first)
                    }
                    _ => first,
                };
                days.push(match last == first {
                    true => first.to_string(),
                    false => format!("{first}..{last}"),
                });
            }
            _ => {}
        }
    }
    if events == 0 {
        return Err("no VEVENT in the file".into());
    }
    Ok(CalendarSpec {
        name: name.to_string(),
        kind: CalendarKind::Days,
        description: None,
        source: Some("iCalendar file".into()),
        covers: None,
        days,
        workdays: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_day_events_ranges_and_yearly_ones_become_days() {
        let ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nSUMMARY:National Day\r\n\
                   DTSTART;VALUE=DATE:20261001\r\nDTEND;VALUE=DATE:20261008\r\nEND:VEVENT\r\n\
                   BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261225\r\nRRULE:FREQ=YEARLY\r\n\
                   END:VEVENT\r\nBEGIN:VEVENT\r\nDTSTART:20260501T090000Z\r\nEND:VEVENT\r\n\
                   END:VCALENDAR\r\n";
        let spec = super::parse(ics, "hols").expect("parsed");
        assert_eq!(spec.days, ["2026-10-01..2026-10-07", "12-25", "2026-05-01"]);
        let err = super::parse(
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260101\nRRULE:FREQ=WEEKLY\nEND:VEVENT\n",
            "x",
        )
        .expect_err("weekly");
        assert!(
            err.starts_with("line 4: RRULE `FREQ=WEEKLY` cannot be followed"),
            "{err}"
        );
    }
}
