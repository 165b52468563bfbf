//! Where a run goes: the live executors a job's `run_at` allows (a `[machine]` group, a single
//! host or executor id, or any), and a round-robin pick among them that skips the executors
//! that just refused or could not be reached.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::cluster::registry::Registry;
use crate::cluster::ExecutorInfo;
use crate::model::Job;

#[derive(Debug)]
pub struct Targets {
    registry: Arc<Registry>,
    machine: BTreeMap<String, Vec<String>>,
    /// Round-robin position per target (`run_at`, "" for any): one shared counter would
    /// send a job always to the same executor whenever the other picks between two of its
    /// instants come in an even number.
    next: Mutex<HashMap<String, usize>>,
    /// Executors that lately did not take runs (unreachable, draining), and since when: a pick
    /// passes them over while another candidate is left.
    suspect: Mutex<HashMap<String, std::time::Instant>>,
}

/// How long an executor that did not take runs is passed over.
const SUSPECT_FOR: std::time::Duration = std::time::Duration::from_secs(30);

impl Targets {
    pub fn new(registry: Arc<Registry>, machine: BTreeMap<String, Vec<String>>) -> Targets {
        Targets {
            registry,
            machine,
            next: Mutex::new(HashMap::new()),
            suspect: Mutex::new(HashMap::new()),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The live executors that may run `job`, in a stable order.
    pub fn candidates(&self, job: &Job) -> Vec<ExecutorInfo> {
        let live = self.registry.live();
        match job.run_at.as_deref() {
            None => live.to_vec(),
            Some(target) => match self.machine.get(target) {
                Some(hosts) => live
                    .iter()
                    .filter(|e| hosts.contains(&e.host))
                    .cloned()
                    .collect(),
                None => live
                    .iter()
                    .filter(|e| e.host == target || e.id == target)
                    .cloned()
                    .collect(),
            },
        }
    }

    /// The next executor for `job` in round-robin order, skipping `exclude`. None when the
    /// target has no live executor left.
    pub fn pick(&self, job: &Job, exclude: &HashSet<String>) -> Option<ExecutorInfo> {
        let candidates: Vec<ExecutorInfo> = self
            .candidates(job)
            .into_iter()
            .filter(|e| !exclude.contains(&e.id))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        // Passed over while another candidate is left: a hung executor then costs one connect
        // timeout per SUSPECT_FOR, not one per fire.
        let trusted: Vec<ExecutorInfo> = candidates
            .iter()
            .filter(|e| !self.is_suspect(&e.id))
            .cloned()
            .collect();
        let candidates = if trusted.is_empty() {
            candidates
        } else {
            trusted
        };
        let n = match self.next.lock() {
            Ok(mut next) => {
                let n = next
                    .entry(job.run_at.clone().unwrap_or_default())
                    .or_insert(0);
                *n = n.wrapping_add(1);
                *n
            }
            Err(_) => 0,
        };
        let i = n % candidates.len();
        candidates.into_iter().nth(i)
    }

    /// Notes that `id` did not take runs just now.
    pub fn mark_suspect(&self, id: &str) {
        if let Ok(mut s) = self.suspect.lock() {
            s.insert(id.to_string(), std::time::Instant::now());
        }
    }

    fn is_suspect(&self, id: &str) -> bool {
        let Ok(mut s) = self.suspect.lock() else {
            return false;
        };
        match s.get(id) {
            Some(since) if since.elapsed() < SUSPECT_FOR => true,
            Some(_) => {
                s.remove(id);
                false
            }
            None => false,
        }
    }

    /// How a target is named in messages.
    pub fn describe(job: &Job) -> String {
        match job.run_at.as_deref() {
            None => "any executor".to_string(),
            Some(t) => format!("`{t}`"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(id: &str, host: &str) -> ExecutorInfo {
        ExecutorInfo {
            id: id.into(),
            url: format!("http://{id}"),
            host: host.into(),
            groups: vec![],
            version: "t".into(),
            capacity: 1,
        }
    }

    fn job(run_at: Option<&str>) -> Job {
        let mut j = crate::dispatcher::schedule_set::tests::job(1, "* * * * * *");
        j.run_at = run_at.map(str::to_string);
        j
    }

    #[test]
    fn run_at_selects_group_host_or_any_and_picks_round_robin() {
        let registry = Registry::fixed(vec![exec("a@1", "a"), exec("b@1", "b"), exec("c@1", "c")]);
        let mut machine = BTreeMap::new();
        machine.insert("g".to_string(), vec!["a".to_string(), "c".to_string()]);
        let t = Targets::new(registry, machine);
        let ids = |v: Vec<ExecutorInfo>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(t.candidates(&job(None))).len(), 3);
        assert_eq!(ids(t.candidates(&job(Some("g")))), ["a@1", "c@1"]);
        assert_eq!(ids(t.candidates(&job(Some("b")))), ["b@1"]);
        assert!(t.candidates(&job(Some("nowhere"))).is_empty());

        let none = HashSet::new();
        let picks: HashSet<String> = (0..4)
            .filter_map(|_| t.pick(&job(Some("g")), &none))
            .map(|e| e.id)
            .collect();
        assert_eq!(picks.len(), 2, "round-robin reaches both members");
        let refused: HashSet<String> = ["a@1".to_string()].into();
        for _ in 0..3 {
            assert_eq!(
                t.pick(&job(Some("g")), &refused).map(|e| e.id).as_deref(),
                Some("c@1")
            );
        }
        let all: HashSet<String> = ["a@1".to_string(), "c@1".to_string()].into();
        assert!(t.pick(&job(Some("g")), &all).is_none());
    }

    #[test]
    fn an_executor_that_did_not_take_runs_is_passed_over_while_another_is_left() {
        let registry = Registry::fixed(vec![exec("a@1", "a"), exec("b@1", "b")]);
        let t = Targets::new(registry, BTreeMap::new());
        t.mark_suspect("a@1");
        let none = HashSet::new();
        for _ in 0..4 {
            assert_eq!(
                t.pick(&job(None), &none).map(|e| e.id).as_deref(),
                Some("b@1")
            );
        }
        // With every candidate suspect, they are all tried again.
        t.mark_suspect("b@1");
        let picks: HashSet<String> = (0..4)
            .filter_map(|_| t.pick(&job(None), &none))
            .map(|e| e.id)
            .collect();
        assert_eq!(picks.len(), 2);
    }
}
