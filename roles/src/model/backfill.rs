//! Backfills (`job backfill`): a job run once for each instant of its rule in a range, oldest
//! first, a few at a time, recorded in the store so that any dispatcher drives it on.

use serde::{Deserialize, Serialize};

use super::Millis;

/// What a backfill is doing.
pub const STATES: &[&str] = &["running", "done", "cancelled"];

/// A backfill as people read it: the range, how far it got and how its runs ended (the
/// latest attempt of each instant counts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Backfill {
    pub id: i64,
    pub job: String,
    pub job_id: i64,
    /// The range's ends, inclusive (milliseconds since the epoch, UTC).
    pub from: Millis,
    pub to: Millis,
    /// At most this many instants (or flows, for a job others run after) at a time.
    pub parallel: i64,
    /// Instants that already had a succeeded run are run again too.
    pub all: bool,
    /// running, done or cancelled.
    pub state: String,
    /// Instants of the rule in the range, counted when it was asked for.
    pub total: i64,
    /// Instants recorded to run so far.
    pub queued: i64,
    /// Instants left out: they already had a succeeded run.
    pub skipped: i64,
    /// Of the queued instants: their latest attempt succeeded, ended otherwise, or is going.
    pub succeeded: i64,
    pub failed: i64,
    pub going: i64,
    /// The last instant handed out, if any.
    pub reached: Option<Millis>,
    /// Why it ended (cancelled by whom, its job deleted), or why it waits (its job paused).
    pub reason: Option<String>,
    pub created_by: Option<String>,
    pub created_at: Millis,
    pub ended_at: Option<Millis>,
}

impl Backfill {
    /// Instants dealt with: ended runs and the ones left out.
    pub fn settled(&self) -> i64 {
        self.succeeded + self.failed + self.skipped
    }
}

/// One end of a backfill's range: an instant as `job run --instant` takes it, or a date alone
/// (`2026-11-01`), which means the start of that day in the job's zone for `from` and its end
/// for `to` — so `--from 2026-11-01 --to 2026-11-30` covers all of November.
pub fn parse_bound(s: &str, tz: &str, end: bool) -> Result<Millis, String> {
    let s = s.trim();
    if let Ok(day) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let (day, back) = match end {
            false => (day, 0),
            true => (
                day.succ_opt()
                    .ok_or("the date is past the calendar's end")?,
                1,
            ),
        };
        let midnight = day.format("%Y-%m-%d 00:00").to_string();
        return first_local(&midnight, tz).map(|t| t - back);
    }
    super::parse_instant(s, tz)
}

/// Midnight of a day in a zone: a zone whose clocks jump over midnight starts the day when it
/// comes back (no local time is skipped or doubled then, in practice, but say so if it is).
fn first_local(s: &str, tz: &str) -> Result<Millis, String> {
    super::parse_instant(s, tz).or_else(|e| {
        let zone = crate::schedule::parse_timezone(tz).map_err(|z| z.to_string())?;
        let local =
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").map_err(|_| e.clone())?;
        crate::schedule::days::wall_time(zone, local)
            .map(|t| t.timestamp_millis())
            .ok_or(e)
    })
}

#[cfg(test)]
mod tests {
    use super::parse_bound;

    #[test]
    fn a_date_alone_is_its_whole_day_in_the_zone() {
        let from = parse_bound("2026-11-01", "Asia/Shanghai", false).expect("from");
        let to = parse_bound("2026-11-01", "Asia/Shanghai", true).expect("to");
        // 2026-11-01 00:00 +08:00 is 2026-10-31T16:00:00Z.
        assert_eq!(from, 1_793_462_400_000);
        assert_eq!(to - from, 86_400_000 - 1);
        assert_eq!(
            parse_bound("2026-11-01T02:00:00Z", "UTC", true).expect("instant"),
            1_793_498_400_000
        );
        let err = parse_bound("yesterday", "UTC", false).expect_err("bad");
        assert!(err.contains("RFC 3339"), "{err}");
    }
}
