//! The job page's duration chart: the last runs' durations as bars, oldest to newest, over
//! the job's usual band (its learned quartiles) and the bound past which a run raises `slow`
//! (when it falls inside the chart)
//! — so an operator sees at a glance what "usual" means before an alarm says "unusual".

use maud::{html, Markup};

use super::layout::span;
use crate::model::usual::{DurationAlarm, Usual};
use crate::model::{Run, RunState};

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 120.0;

/// The chart of `ended` (newest first, as listed), or nothing when none has a duration.
pub fn chart(ended: &[&Run], usual: Option<Usual>, setting: DurationAlarm) -> Markup {
    let bars: Vec<(&Run, i64)> = ended
        .iter()
        .rev()
        .filter_map(|r| Some((*r, r.ended_at? - r.started_at?)))
        .collect();
    if bars.is_empty() {
        return html! {};
    }
    let slow = usual
        .filter(|_| setting.slow)
        .map(|u| u.slow_after(setting.tolerance));
    // Scaled to the runs and the band: a slow bound far above them (a job of milliseconds
    // is slow only past a second) would flatten every bar; the caption says it then.
    let longest = bars.iter().map(|(_, d)| *d).max().unwrap_or(0);
    let top = (longest.max(usual.map_or(0, |u| u.q3_ms)) as f64 * 1.25).max(1.0);
    let slow = slow.filter(|s| (*s as f64) < top);
    let y = |ms: i64| HEIGHT - (ms as f64 / top * HEIGHT).min(HEIGHT);
    let step = WIDTH / bars.len() as f64;
    let label = match usual {
        Some(u) => format!(
            "Durations of the last {} runs over the usual band {}",
            bars.len(),
            u.text(setting)
        ),
        None => format!("Durations of the last {} runs", bars.len()),
    };
    html! {
        figure.durations {
            svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) preserveAspectRatio="none" role="img" aria-label=(label) {
                @if let Some(u) = usual {
                    rect.usual-band x="0" width=(WIDTH) y=(y(u.q3_ms)) height=((y(u.q1_ms) - y(u.q3_ms)).max(1.0)) {
                        title { "usual: " (span(u.q1_ms)) " to " (span(u.q3_ms)) }
                    }
                }
                @if let Some(s) = slow {
                    line.slow-bound x1="0" x2=(WIDTH) y1=(y(s)) y2=(y(s)) {
                        title { "slow past " (span(s)) }
                    }
                }
                @for (i, (r, d)) in bars.iter().enumerate() {
                    rect class=(if r.state == RunState::Succeeded { "bar ok" } else { "bar bad" })
                        x=(format!("{:.1}", i as f64 * step + step * 0.15)) width=(format!("{:.1}", step * 0.7))
                        y=(format!("{:.1}", y(*d).min(HEIGHT - 1.0))) height=(format!("{:.1}", (HEIGHT - y(*d)).max(1.0))) {
                        title { "run " (r.id) ": " (span(*d)) " (" (r.state.as_str()) ")" }
                    }
                }
            }
            figcaption {
                @match usual {
                    Some(u) => { "Usual: " (u.text(setting)) }
                    None => { "Usual duration: learned after " (crate::model::usual::MIN_SAMPLES) " successes." }
                }
            }
        }
    }
}
