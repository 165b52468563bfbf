//! A job's usual duration, learned from its recent successes with no setting, and the
//! `slow` / `short` alarms it gives: a run still going far past the usual band, a success far
//! below it.
//!
//! The band is the interquartile range of the last [`WINDOW`] successes, once there are
//! [`MIN_SAMPLES`]: quartiles ignore the odd outlier (one run held up by a lock moves the mean,
//! not q3), and a job whose work grows moves its band within [`WINDOW`] runs. A run is *slow*
//! past `q3 + K × spread` and *short* under `q1 − K × spread`, where `spread` is the band's
//! width but at least a quarter of the median and at least [`FLOOR_MS`] — so a job that always
//! takes 1.00 s does not alarm at 1.05 s, and a job of a few seconds cannot be "short" at
//! all (its bound is below zero). `K` (the tolerance) is 3 unless the job says otherwise.

pub use crate::model::durations::span;
use crate::model::Millis;

/// How many recent successes the band is learned from.
pub const WINDOW: usize = 30;
/// How many successes before the band means anything: with fewer, one or two runs would be
/// the quartiles; with 10, each quartile lies between two order statistics that a single
/// outlier cannot both move.
pub const MIN_SAMPLES: usize = 10;
/// The least spread, in milliseconds (the noise of scheduling and a loaded host).
pub const FLOOR_MS: Millis = 1000;
/// The tolerance when the job does not say.
pub const DEFAULT_TOLERANCE: u32 = 3;

/// Which duration alarms a job raises, and how far from its band a run must be
/// (`--duration-alarm both|slow|short|off[:K]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationAlarm {
    pub slow: bool,
    pub short: bool,
    /// K: how many spreads past the band (1 to 100).
    pub tolerance: u32,
}

impl Default for DurationAlarm {
    fn default() -> DurationAlarm {
        DurationAlarm {
            slow: true,
            short: true,
            tolerance: DEFAULT_TOLERANCE,
        }
    }
}

impl DurationAlarm {
    /// `both`, `slow`, `short` or `off`, optionally `:K` (`slow:5`); `""` is the default.
    pub fn parse(s: &str) -> Result<DurationAlarm, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(DurationAlarm::default());
        }
        let (mode, k) = match s.split_once(':') {
            Some((m, k)) => (m.trim(), Some(k.trim())),
            None => (s, None),
        };
        let (slow, short) = match mode {
            "both" => (true, true),
            "slow" => (true, false),
            "short" => (false, true),
            "off" => (false, false),
            other => {
                return Err(format!(
                    "`{other}` is not one of both, slow, short, off (optionally :K, as in slow:5)"
                ))
            }
        };
        let tolerance = match k {
            None => DEFAULT_TOLERANCE,
            Some(k) => match k.parse::<u32>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "the tolerance `{k}` is not a whole number 1 to 100"
                    ))
                }
            },
        };
        Ok(DurationAlarm {
            slow,
            short,
            tolerance,
        })
    }

    /// As written, the tolerance only when not the default: `both`, `slow:5`.
    pub fn text(&self) -> String {
        let mode = match (self.slow, self.short) {
            (true, true) => "both",
            (true, false) => "slow",
            (false, true) => "short",
            (false, false) => "off",
        };
        match self.tolerance {
            DEFAULT_TOLERANCE => mode.to_string(),
            k => format!("{mode}:{k}"),
        }
    }
}

impl serde::Serialize for DurationAlarm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}

impl<'de> serde::Deserialize<'de> for DurationAlarm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DurationAlarm, D::Error> {
        DurationAlarm::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The band learned from a job's recent successes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Usual {
    pub q1_ms: Millis,
    pub median_ms: Millis,
    pub q3_ms: Millis,
    /// How many successes it was learned from.
    pub samples: usize,
}

/// The `q`-quantile of sorted values, linearly interpolated.
fn quantile(sorted: &[Millis], q: f64) -> Millis {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let frac = pos - lo as f64;
    (sorted[lo] as f64 + (sorted[hi] - sorted[lo]) as f64 * frac).round() as Millis
}

impl Usual {
    /// The band of `recent` durations, `None` with fewer than [`MIN_SAMPLES`].
    pub fn learn(recent: &[Millis]) -> Option<Usual> {
        if recent.len() < MIN_SAMPLES {
            return None;
        }
        let mut sorted = recent.to_vec();
        sorted.sort_unstable();
        Some(Usual {
            q1_ms: quantile(&sorted, 0.25),
            median_ms: quantile(&sorted, 0.5),
            q3_ms: quantile(&sorted, 0.75),
            samples: sorted.len(),
        })
    }

    /// The width the tolerance counts in: the band's, but at least a quarter of the median
    /// and [`FLOOR_MS`].
    pub fn spread(&self) -> Millis {
        (self.q3_ms - self.q1_ms)
            .max(self.median_ms / 4)
            .max(FLOOR_MS)
    }

    /// How long a run may go before it is slow.
    pub fn slow_after(&self, tolerance: u32) -> Millis {
        self.q3_ms + i64::from(tolerance) * self.spread()
    }

    /// What `job show` and the job page say of it under `setting`.
    pub fn text(&self, setting: DurationAlarm) -> String {
        let mut parts = vec![format!(
            "{}–{}, median {} (its last {} successes)",
            span(self.q1_ms),
            span(self.q3_ms),
            span(self.median_ms),
            self.samples
        )];
        if setting.slow {
            parts.push(format!(
                "slow past {}",
                span(self.slow_after(setting.tolerance))
            ));
        }
        if let Some(under) = self
            .short_under(setting.tolerance)
            .filter(|_| setting.short)
        {
            parts.push(format!("short under {}", span(under)));
        }
        if !setting.slow && !setting.short {
            parts.push("duration alarms off".into());
        }
        parts.join("; ")
    }

    /// Under how long a success is short; `None` when no duration is (the bound is not
    /// above zero).
    pub fn short_under(&self, tolerance: u32) -> Option<Millis> {
        let bound = self.q1_ms - i64::from(tolerance) * self.spread();
        (bound > 0).then_some(bound)
    }
}

/// The recent durations as stored (`job_stats.recent_ms`): milliseconds, oldest first,
/// comma-separated. Anything unreadable is dropped (it only holds what this code wrote).
pub fn decode(text: &str) -> Vec<Millis> {
    text.split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

/// The last [`WINDOW`] of `recent`, as stored.
pub fn encode(recent: &[Millis]) -> String {
    let from = recent.len().saturating_sub(WINDOW);
    recent[from..]
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alarm_setting_reads_modes_and_a_tolerance_and_says_what_is_wrong() {
        assert_eq!(DurationAlarm::parse(""), Ok(DurationAlarm::default()));
        let slow5 = DurationAlarm::parse("slow:5").expect("slow:5");
        assert_eq!((slow5.slow, slow5.short, slow5.tolerance), (true, false, 5));
        assert_eq!(slow5.text(), "slow:5");
        assert_eq!(
            DurationAlarm::parse("off").map(|d| d.text()),
            Ok("off".into())
        );
        assert_eq!(
            DurationAlarm::parse("both:3").map(|d| d.text()),
            Ok("both".into())
        );
        assert!(DurationAlarm::parse("fast")
            .unwrap_err()
            .contains("not one of both, slow, short, off"));
        assert!(DurationAlarm::parse("slow:0")
            .unwrap_err()
            .contains("1 to 100"));
        assert!(DurationAlarm::parse("slow:x").is_err());
    }

    #[test]
    fn the_band_needs_ten_successes_and_ignores_an_outlier() {
        assert_eq!(Usual::learn(&[1000; 9]), None);
        let mut runs = vec![10_000; 19];
        runs.push(600_000); // one run held up ten minutes
        let u = Usual::learn(&runs).expect("20 samples");
        assert_eq!((u.q1_ms, u.median_ms, u.q3_ms), (10_000, 10_000, 10_000));
        // The spread is a quarter of the median: slow past 10 s + 3 × 2.5 s, short under
        // 10 s − 7.5 s.
        assert_eq!(u.spread(), 2500);
        assert_eq!(u.slow_after(3), 17_500);
        assert_eq!(u.short_under(3), Some(2500));
    }

    #[test]
    fn a_job_of_a_few_seconds_is_never_short_and_its_floor_is_a_second() {
        let u = Usual::learn(&[2000, 2100, 1900, 2000, 2050, 1950, 2000, 2000, 2020, 1980])
            .expect("10 samples");
        assert_eq!(u.spread(), FLOOR_MS);
        assert_eq!(u.short_under(3), None);
        assert_eq!(u.short_under(1), Some(u.q1_ms - 1000));
        assert_eq!(u.slow_after(1), u.q3_ms + 1000);
    }

    #[test]
    fn the_stored_window_keeps_the_last_thirty() {
        let many: Vec<Millis> = (1..=40).collect();
        let kept = decode(&encode(&many));
        assert_eq!(kept.len(), WINDOW);
        assert_eq!(kept.first(), Some(&11));
        assert_eq!(decode("5,x,7"), vec![5, 7]);
    }
}
