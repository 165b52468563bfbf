//! Prometheus text metrics: counters, gauges and histograms per role, no registry crate.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct Metric {
    name: &'static str,
    labels: String,
    help: &'static str,
    kind: &'static str,
    value: AtomicI64,
}

impl Metric {
    pub fn inc(&self) {
        self.value.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, n: u64) {
        self.value
            .fetch_add(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    pub fn dec(&self) {
        self.value.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn set(&self, v: i64) {
        self.value.store(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// A histogram of seconds over fixed buckets (cumulative when rendered).
#[derive(Debug)]
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    bounds: &'static [f64],
    /// One per bound, then the overflow; not cumulative.
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        let seconds = seconds.max(0.0);
        let i = self
            .bounds
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// Observes the milliseconds from `from` to `to`.
    pub fn observe_millis(&self, from: i64, to: i64) {
        self.observe((to - from) as f64 / 1000.0);
    }

    fn render(&self, role: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} histogram", self.name);
        let mut cumulative = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "{}_bucket{{role=\"{role}\",le=\"{le}\"}} {cumulative}",
                self.name
            );
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{}_sum{{role=\"{role}\"}} {sum}", self.name);
        let _ = writeln!(out, "{}_count{{role=\"{role}\"}} {cumulative}", self.name);
    }
}

/// Buckets for latencies of a cron system: 1 ms to 1 minute.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The metrics of one role process.
#[derive(Debug)]
pub struct Metrics {
    role: &'static str,
    items: Mutex<Vec<Arc<Metric>>>,
    histograms: Mutex<Vec<Arc<Histogram>>>,
}

impl Metrics {
    pub fn new(role: &'static str) -> Arc<Metrics> {
        Arc::new(Metrics {
            role,
            items: Mutex::new(Vec::new()),
            histograms: Mutex::new(Vec::new()),
        })
    }

    fn add(
        &self,
        name: &'static str,
        labels: &str,
        help: &'static str,
        kind: &'static str,
    ) -> Arc<Metric> {
        let m = Arc::new(Metric {
            name,
            labels: labels.to_string(),
            help,
            kind,
            value: AtomicI64::new(0),
        });
        if let Ok(mut items) = self.items.lock() {
            items.push(m.clone());
        }
        m
    }

    /// A monotonically increasing count. `labels` is Prometheus label text without braces
    /// (`state="failed"`), or empty.
    pub fn counter(&self, name: &'static str, labels: &str, help: &'static str) -> Arc<Metric> {
        self.add(name, labels, help, "counter")
    }

    pub fn gauge(&self, name: &'static str, labels: &str, help: &'static str) -> Arc<Metric> {
        self.add(name, labels, help, "gauge")
    }

    /// A histogram of seconds over `bounds`.
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        bounds: &'static [f64],
    ) -> Arc<Histogram> {
        let h = Arc::new(Histogram {
            name,
            help,
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        });
        if let Ok(mut all) = self.histograms.lock() {
            all.push(h.clone());
        }
        h
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP cronvisor_up The role process is running.");
        let _ = writeln!(out, "# TYPE cronvisor_up gauge");
        let _ = writeln!(
            out,
            "cronvisor_up{{role=\"{}\",version=\"{}\"}} 1",
            self.role,
            env!("CARGO_PKG_VERSION")
        );
        let items = match self.items.lock() {
            Ok(items) => items.clone(),
            Err(_) => return out,
        };
        let mut described = std::collections::HashSet::new();
        for m in items.iter() {
            if described.insert(m.name) {
                let _ = writeln!(out, "# HELP {} {}", m.name, m.help);
                let _ = writeln!(out, "# TYPE {} {}", m.name, m.kind);
            }
            let labels = if m.labels.is_empty() {
                format!("role=\"{}\"", self.role)
            } else {
                format!("role=\"{}\",{}", self.role, m.labels)
            };
            let _ = writeln!(out, "{}{{{}}} {}", m.name, labels, m.get());
        }
        if let Ok(all) = self.histograms.lock() {
            for h in all.iter() {
                h.render(self.role, &mut out);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new("executor");
        let c = m.counter(
            "cronvisor_runs_total",
            "state=\"failed\"",
            "Runs by final state.",
        );
        c.inc();
        c.inc();
        let text = m.render();
        assert!(
            text.contains("# TYPE cronvisor_runs_total counter"),
            "{text}"
        );
        assert!(
            text.contains("cronvisor_runs_total{role=\"executor\",state=\"failed\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn histograms_render_cumulative_buckets_sum_and_count() {
        let m = Metrics::new("dispatcher");
        let h = m.histogram("cronvisor_x_seconds", "X.", &[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(3.0);
        let text = m.render();
        for line in [
            "cronvisor_x_seconds_bucket{role=\"dispatcher\",le=\"0.1\"} 1",
            "cronvisor_x_seconds_bucket{role=\"dispatcher\",le=\"1\"} 2",
            "cronvisor_x_seconds_bucket{role=\"dispatcher\",le=\"+Inf\"} 3",
            "cronvisor_x_seconds_sum{role=\"dispatcher\"} 3.55",
            "cronvisor_x_seconds_count{role=\"dispatcher\"} 3",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
