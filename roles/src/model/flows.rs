//! Workflows: a job's `after` edges, the graph they make, and what a flow of it is.
//!
//! A job with `after` has no schedule of its own: one firing of a **root** (a job upstream of
//! others and downstream of none) starts a **flow**, and each dependent runs once per flow when
//! its upstreams ended as its edges ask. The graph is kept simple enough to be exact: no
//! cycle, and every job of it descends from exactly one root, so that every node of a flow is
//! decided in that flow (a fan-in of two roots' jobs could never meet).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::{EdgeOn, FieldError, RunState};

/// Most upstream jobs one job may have, and most jobs one graph may have: a flow is decided
/// in one store transaction per ended node, reading the whole flow.
pub const MAX_UPSTREAMS: usize = 64;
pub const MAX_FLOW_JOBS: usize = 1000;

/// One edge of a job: it runs after `job` ended as `on` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Edge {
    pub job: String,
    #[serde(default)]
    pub on: EdgeOn,
}

impl std::fmt::Display for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.on {
            EdgeOn::Success => write!(f, "{}", self.job),
            on => write!(f, "{}:{}", self.job, on.as_str()),
        }
    }
}

/// `JOB[:success|failure|end]`, as `--after` takes it (comma-separated on the command line).
impl std::str::FromStr for Edge {
    type Err = String;
    fn from_str(s: &str) -> Result<Edge, String> {
        let s = s.trim();
        let (job, on) = match s.split_once(':') {
            Some((job, on)) => {
                let on = EdgeOn::parse(on.trim()).ok_or_else(|| {
                    format!("`{s}`: unknown edge `{on}` (one of {})", EdgeOn::names())
                })?;
                (job.trim(), on)
            }
            None => (s, EdgeOn::Success),
        };
        if job.is_empty() {
            return Err(format!("`{s}`: expected JOB[:{}]", EdgeOn::names()));
        }
        Ok(Edge {
            job: job.to_string(),
            on,
        })
    }
}

/// `a, b:failure`: how edges are shown to people.
pub fn edges_text(edges: &[Edge]) -> String {
    edges
        .iter()
        .map(Edge::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks a job's own edges, before the store sees the graph: each job named once, not the
/// job itself, at most [`MAX_UPSTREAMS`].
pub fn check_edges(name: &str, edges: &[Edge]) -> Result<(), FieldError> {
    if edges.len() > MAX_UPSTREAMS {
        return Err(FieldError::new(
            "after",
            format!("at most {MAX_UPSTREAMS} upstream jobs"),
        ));
    }
    let mut seen = BTreeSet::new();
    for e in edges {
        super::validate_name(&e.job).map_err(|m| FieldError::new("after", m.message))?;
        if e.job.eq_ignore_ascii_case(name) {
            return Err(FieldError::new(
                "after",
                format!("a job cannot run after itself (`{name}`)"),
            ));
        }
        if !seen.insert(e.job.to_ascii_lowercase()) {
            return Err(FieldError::new(
                "after",
                format!("`{}` is named twice", e.job),
            ));
        }
    }
    Ok(())
}

/// The graph of every job's edges, by job id.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    upstreams: BTreeMap<i64, Vec<(i64, EdgeOn)>>,
    dependents: BTreeMap<i64, Vec<(i64, EdgeOn)>>,
}

impl Graph {
    /// From (job, upstream, on) rows.
    pub fn new(edges: impl IntoIterator<Item = (i64, i64, EdgeOn)>) -> Graph {
        let mut g = Graph::default();
        for (job, up, on) in edges {
            g.upstreams.entry(job).or_default().push((up, on));
            g.dependents.entry(up).or_default().push((job, on));
        }
        for v in g.upstreams.values_mut().chain(g.dependents.values_mut()) {
            v.sort_unstable();
        }
        g
    }

    /// The graph with `job`'s upstreams replaced by `edges` (an edit not yet stored).
    pub fn with_job(&self, job: i64, edges: &[(i64, EdgeOn)]) -> Graph {
        let rows = self
            .upstreams
            .iter()
            .filter(|(j, _)| **j != job)
            .flat_map(|(j, ups)| ups.iter().map(move |(u, on)| (*j, *u, *on)))
            .chain(edges.iter().map(|(u, on)| (job, *u, *on)));
        Graph::new(rows.collect::<Vec<_>>())
    }

    pub fn upstreams(&self, job: i64) -> &[(i64, EdgeOn)] {
        self.upstreams.get(&job).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn dependents(&self, job: i64) -> &[(i64, EdgeOn)] {
        self.dependents.get(&job).map(Vec::as_slice).unwrap_or(&[])
    }

    /// In a graph: upstream of another job, or downstream of one.
    pub fn contains(&self, job: i64) -> bool {
        self.upstreams.contains_key(&job) || self.dependents.contains_key(&job)
    }

    /// The jobs upstream of `job`'s that have no upstream themselves (`job` itself if it has
    /// none).
    pub fn roots_of(&self, job: i64) -> BTreeSet<i64> {
        let mut roots = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut stack = vec![job];
        while let Some(j) = stack.pop() {
            if !seen.insert(j) {
                continue;
            }
            let ups = self.upstreams(j);
            if ups.is_empty() {
                roots.insert(j);
            }
            stack.extend(ups.iter().map(|(u, _)| *u));
        }
        roots
    }

    /// A path `job -> ... -> job` through upstream edges, if `job` is on a cycle.
    pub fn cycle_through(&self, job: i64) -> Option<Vec<i64>> {
        // Depth-first along upstreams, keeping the path; at most every job once.
        let mut seen = BTreeSet::new();
        let mut path = vec![job];
        self.find_back(job, job, &mut seen, &mut path)
            .then_some(path)
    }

    fn find_back(&self, at: i64, goal: i64, seen: &mut BTreeSet<i64>, path: &mut Vec<i64>) -> bool {
        for (up, _) in self.upstreams(at) {
            if *up == goal {
                path.push(goal);
                return true;
            }
            if seen.insert(*up) {
                path.push(*up);
                if self.find_back(*up, goal, seen, path) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }

    /// `root` and every job downstream of it, each after all its upstreams (layer by layer:
    /// a job's layer is one more than its deepest upstream's), for drawing and for deciding
    /// whether a flow is over.
    pub fn layers(&self, root: i64) -> Vec<Vec<i64>> {
        let mut members = BTreeSet::new();
        let mut stack = vec![root];
        while let Some(j) = stack.pop() {
            if members.insert(j) && members.len() <= MAX_FLOW_JOBS {
                stack.extend(self.dependents(j).iter().map(|(d, _)| *d));
            }
        }
        let mut depth: HashMap<i64, usize> = HashMap::new();
        // Longest path from the root; the graph has no cycle (the store refuses them), and
        // the bound keeps a corrupt one from looping.
        for _ in 0..=members.len() {
            let mut changed = false;
            for j in &members {
                let d = if *j == root {
                    0
                } else {
                    self.upstreams(*j)
                        .iter()
                        .filter_map(|(u, _)| depth.get(u))
                        .max()
                        .map_or(0, |d| d + 1)
                };
                if depth.get(j) != Some(&d) {
                    depth.insert(*j, d);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let mut layers: Vec<Vec<i64>> = Vec::new();
        for (j, d) in depth {
            if layers.len() <= d {
                layers.resize(d + 1, Vec::new());
            }
            layers[d].push(j);
        }
        for l in &mut layers {
            l.sort_unstable();
        }
        layers
    }

    /// Refuses a graph `job`'s edit would make: a cycle through it, or a job of it (`job` and
    /// those downstream) that descends from more than one root. `name` says who is who.
    pub fn check(&self, job: i64, name: &dyn Fn(i64) -> String) -> Result<(), FieldError> {
        if let Some(path) = self.cycle_through(job) {
            // Shown the way people read edges: each job runs after the next one.
            let names: Vec<String> = path.iter().map(|j| name(*j)).collect();
            return Err(FieldError::new(
                "after",
                format!("a cycle {}", names.join(" -> ")),
            ));
        }
        let mut below = BTreeSet::new();
        let mut stack = vec![job];
        while let Some(j) = stack.pop() {
            if below.insert(j) {
                stack.extend(self.dependents(j).iter().map(|(d, _)| *d));
            }
        }
        for j in below {
            let roots = self.roots_of(j);
            if roots.len() > 1 {
                let names: Vec<String> = roots.iter().map(|r| format!("`{}`", name(*r))).collect();
                return Err(FieldError::new(
                    "after",
                    format!(
                        "`{}` would descend from {}: jobs of different roots never share a \
                         flow, so it would wait for ever (give it upstreams of one root)",
                        name(j),
                        names.join(" and ")
                    ),
                ));
            }
        }
        let size = self
            .layers(*self.roots_of(job).iter().next().unwrap_or(&job))
            .concat();
        if size.len() > MAX_FLOW_JOBS {
            return Err(FieldError::new(
                "after",
                format!("a flow has at most {MAX_FLOW_JOBS} jobs"),
            ));
        }
        Ok(())
    }
}

/// How an upstream's runs in a flow ended, as its dependents see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not decided yet: no run, or a run (or retry) going.
    Pending,
    /// Every run of it in the flow succeeded (one per executor for `fanout = all`).
    Succeeded(Vec<i64>),
    /// It ran and did not succeed: the first such run and its state.
    Failed(i64, RunState),
    /// It did not run: skipped, missed (or its own upstreams did not let it).
    Skipped(i64),
}

impl Outcome {
    /// Of the latest attempt of each of a job's runs in a flow (several: one per executor).
    pub fn of(runs: &[(i64, RunState)]) -> Outcome {
        if runs.is_empty() || runs.iter().any(|(_, s)| !s.is_final()) {
            return Outcome::Pending;
        }
        if let Some((id, _)) = runs
            .iter()
            .find(|(_, s)| matches!(s, RunState::Skipped | RunState::Missed))
        {
            return Outcome::Skipped(*id);
        }
        match runs.iter().find(|(_, s)| *s != RunState::Succeeded) {
            Some((id, s)) => Outcome::Failed(*id, *s),
            None => Outcome::Succeeded(runs.iter().map(|(id, _)| *id).collect()),
        }
    }
}

/// What a dependent does in a flow, given its upstreams' outcomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Some upstream has not ended yet: the last one to end decides.
    Wait,
    /// Runs, released by these runs (`name=id`).
    Run(Vec<(String, i64)>),
    /// Recorded `skipped` with the reason (a path simply not taken — a `:failure` path after a
    /// success — says so first: see [`not_taken`]).
    Skip { reason: String },
}

/// The decision for a dependent from `(upstream name, edge, outcome)` of each upstream.
pub fn decide(upstreams: &[(String, EdgeOn, Outcome)]) -> Decision {
    let mut released = Vec::new();
    let mut waiting = false;
    for (name, on, outcome) in upstreams {
        match (outcome, on) {
            (Outcome::Pending, _) => waiting = true,
            (Outcome::Skipped(id), _) => {
                return Decision::Skip {
                    reason: format!("skipped: upstream `{name}` did not run (run {id})"),
                }
            }
            (Outcome::Succeeded(ids), EdgeOn::Success | EdgeOn::End) => {
                released.push((name.clone(), ids[0]))
            }
            (Outcome::Failed(id, _), EdgeOn::Failure | EdgeOn::End) => {
                released.push((name.clone(), *id))
            }
            (Outcome::Failed(id, state), EdgeOn::Success) => {
                return Decision::Skip {
                    reason: format!("skipped: upstream `{name}` {}, run {id}", state.as_str()),
                }
            }
            (Outcome::Succeeded(ids), EdgeOn::Failure) => {
                return Decision::Skip {
                    reason: format!(
                        "{NOT_TAKEN}: upstream `{name}` succeeded, run {} (runs on its failure)",
                        ids[0]
                    ),
                }
            }
        }
    }
    if waiting {
        Decision::Wait
    } else {
        Decision::Run(released)
    }
}

/// How a skip of a path not taken begins its reason: such a job did not fail its flow.
const NOT_TAKEN: &str = "not taken";

/// Was a job skipped as a path not taken (its reason says so)? Then its flow still succeeded,
/// and a rerun leaves it alone.
pub fn not_taken(error: &str) -> bool {
    error.starts_with(NOT_TAKEN)
}

/// A flow's overall state once every node ended.
pub fn flow_state(nodes: &[(RunState, Option<&str>)]) -> &'static str {
    if nodes.iter().any(|(s, _)| !s.is_final()) {
        return "running";
    }
    let failed = nodes.iter().any(|(s, _)| {
        matches!(
            s,
            RunState::Failed | RunState::TimedOut | RunState::Killed | RunState::Lost
        )
    });
    if failed {
        return "failed";
    }
    let partial = nodes.iter().any(|(s, e)| {
        matches!(s, RunState::Skipped | RunState::Missed) && !e.is_some_and(not_taken)
    });
    if partial {
        "partial"
    } else {
        "succeeded"
    }
}

/// A flow as people read it: its root, instant and state, and each job of it with its runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FlowView {
    /// The root job (the one whose firing started the flow).
    pub root_job: String,
    /// The flow's first run (the root's).
    pub root_run: Option<i64>,
    /// The root's instant, which every run of the flow carries.
    pub instant: super::Millis,
    /// How many times it was rerun.
    pub round: i64,
    /// running, succeeded, failed or partial.
    pub state: String,
    /// From the first run's creation to the last end (none while running).
    pub duration_ms: Option<i64>,
    /// Every job of the flow, layer by layer (a job after all its upstreams).
    pub nodes: Vec<FlowNode>,
}

/// One job of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FlowNode {
    /// Its name, or `hidden job` for one of a group the reader may not see.
    pub job: String,
    /// Its group ("" when hidden).
    pub group: String,
    pub hidden: bool,
    /// Depth from the root (0).
    pub layer: usize,
    /// Its edges (names of hidden upstreams hidden too).
    pub after: Vec<Edge>,
    /// Its state in the flow: of its latest run, `waiting` before it has one.
    pub state: String,
    /// Its latest runs in the flow (one per executor for `fanout = all`), without output.
    pub runs: Vec<super::Run>,
}

/// A flow in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FlowSummary {
    pub root_job: String,
    pub root_run: i64,
    pub instant: super::Millis,
    pub round: i64,
    /// running, succeeded, failed or partial.
    pub state: String,
    /// The nodes that failed, `name (run id, state)`.
    pub failed: Option<String>,
    pub created_at: super::Millis,
    pub ended_at: Option<super::Millis>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(i64, i64)]) -> Graph {
        Graph::new(edges.iter().map(|(j, u)| (*j, *u, EdgeOn::Success)))
    }

    #[test]
    fn edges_parse_with_success_by_default_and_name_what_is_wrong() {
        let e: Edge = "load".parse().expect("edge");
        assert_eq!(e.on, EdgeOn::Success);
        let e: Edge = "export:failure".parse().expect("edge");
        assert_eq!((e.job.as_str(), e.on), ("export", EdgeOn::Failure));
        let err = "x:sometimes".parse::<Edge>().expect_err("bad");
        assert!(err.contains("success, failure, end"), "{err}");
        assert!(check_edges("a", &["A".parse().expect("edge")]).is_err());
        assert!(check_edges("a", &["b".parse().expect("e"), "B".parse().expect("e")]).is_err());
    }

    #[test]
    fn a_cycle_is_found_and_shown_as_a_path() {
        // a after d, d after b, b after a.
        let g = graph(&[(4, 2), (2, 1), (1, 4)]);
        let names = |j: i64| ["", "a", "b", "c", "d"][j as usize].to_string();
        let err = g.check(1, &names).expect_err("cycle");
        assert_eq!(err.message, "a cycle a -> d -> b -> a");
    }

    #[test]
    fn fan_in_of_two_roots_is_refused_and_of_one_root_allowed() {
        let names = |j: i64| format!("j{j}");
        // 3 after 1 and 2, both roots.
        let err = graph(&[(3, 1), (3, 2)])
            .check(3, &names)
            .expect_err("roots");
        assert!(err.message.contains("`j1` and `j2`"), "{}", err.message);
        // 2 and 3 after 1; 4 after 2 and 3: one root.
        let g = graph(&[(2, 1), (3, 1), (4, 2), (4, 3)]);
        g.check(4, &names).expect("diamond");
        assert_eq!(g.layers(1), vec![vec![1], vec![2, 3], vec![4]]);
    }

    #[test]
    fn decisions_follow_the_edges() {
        let ok = Outcome::Succeeded(vec![7]);
        let failed = Outcome::Failed(8, RunState::Failed);
        let up = |o: &Outcome, on| vec![("x".to_string(), on, o.clone())];
        assert_eq!(
            decide(&up(&ok, EdgeOn::Success)),
            Decision::Run(vec![("x".into(), 7)])
        );
        assert!(matches!(
            decide(&up(&failed, EdgeOn::Success)),
            Decision::Skip { reason } if !not_taken(&reason)
        ));
        assert!(matches!(
            decide(&up(&ok, EdgeOn::Failure)),
            Decision::Skip { reason } if not_taken(&reason)
        ));
        assert!(matches!(
            decide(&up(&failed, EdgeOn::End)),
            Decision::Run(_)
        ));
        let mut two = up(&ok, EdgeOn::Success);
        two.push(("y".into(), EdgeOn::Success, Outcome::Pending));
        assert_eq!(decide(&two), Decision::Wait);
        assert_eq!(
            Outcome::of(&[(1, RunState::Succeeded), (2, RunState::Running)]),
            Outcome::Pending
        );
    }

    #[test]
    fn a_flow_that_took_its_success_path_succeeded() {
        assert_eq!(
            flow_state(&[
                (RunState::Succeeded, None),
                (RunState::Skipped, Some("not taken: upstream `a` succeeded"))
            ]),
            "succeeded"
        );
        assert_eq!(
            flow_state(&[(RunState::Failed, None), (RunState::Succeeded, None)]),
            "failed"
        );
        assert_eq!(
            flow_state(&[(RunState::Skipped, Some("skipped: job paused"))]),
            "partial"
        );
    }
}
