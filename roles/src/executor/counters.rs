//! The executor's own metrics: runs started, running, finished by state, spawn failures and
//! times, output kept and cut.

use std::collections::HashMap;
use std::sync::Arc;

use crate::metrics::Metric;
use crate::model::RunState;

/// The executor's counters, registered once at start.
pub(super) struct Counters {
    pub(super) started: Arc<Metric>,
    pub(super) spawn_failed: Arc<Metric>,
    pub(super) running: Arc<Metric>,
    pub(super) finished: HashMap<&'static str, Arc<Metric>>,
    pub(super) spawn_time: Arc<crate::metrics::Histogram>,
    pub(super) output_kept: Arc<Metric>,
    pub(super) output_cut: Arc<Metric>,
    /// Output reads waiting (long-polls) now.
    pub(super) output_waiting: Arc<Metric>,
}

impl Counters {
    pub(super) fn new(m: &crate::metrics::Metrics) -> Counters {
        let finished = RunState::ALL
            .iter()
            .copied()
            .filter(|s| s.is_final())
            .map(|s| {
                (
                    s.as_str(),
                    m.counter(
                        "cronvisor_runs_finished_total",
                        &format!("state=\"{}\"", s.as_str()),
                        "Runs this executor finished, by final state.",
                    ),
                )
            })
            .collect();
        Counters {
            started: m.counter("cronvisor_runs_started_total", "", "Processes spawned."),
            spawn_failed: m.counter(
                "cronvisor_spawn_failures_total",
                "",
                "Runs whose process could not be started.",
            ),
            running: m.gauge("cronvisor_runs_running", "", "Runs in progress."),
            output_waiting: m.gauge(
                "cronvisor_output_reads_waiting",
                "",
                "Reads of a running run's output waiting here for more (monitors' long-polls).",
            ),
            finished,
            spawn_time: m.histogram(
                "cronvisor_spawn_seconds",
                "Time to start a run's process (fork, limits, user, exec).",
                crate::metrics::LATENCY_BUCKETS,
            ),
            output_kept: m.counter(
                "cronvisor_output_bytes_total",
                "kept=\"true\"",
                "Bytes of run output, kept in the run's record or cut (past the head and tail caps).",
            ),
            output_cut: m.counter(
                "cronvisor_output_bytes_total",
                "kept=\"false\"",
                "Bytes of run output, kept in the run's record or cut (past the head and tail caps).",
            ),
        }
    }
}
