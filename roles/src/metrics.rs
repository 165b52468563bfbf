//! Prometheus text metrics: a handful of counters and gauges per role, no registry crate.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
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

/// The metrics of one role process.
#[derive(Debug)]
pub struct Metrics {
    role: &'static str,
    items: Mutex<Vec<Arc<Metric>>>,
}

impl Metrics {
    pub fn new(role: &'static str) -> Arc<Metrics> {
        Arc::new(Metrics {
            role,
            items: Mutex::new(Vec::new()),
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
}
