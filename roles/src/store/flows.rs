//! Releasing flows: when a run of a job that others run after has ended, its dependents are
//! decided — run, or recorded `skipped` with the reason — exactly once per (job, flow, round).
//!
//! Why it is exact: the decision is made from the store, in one transaction per ended run,
//! and written under the runs' fence, whose key holds the flow (root job, instant) and its
//! round: two dispatchers deciding the same dependent insert one row. An ended run is marked
//! `released` in the same transaction, so a crash before the commit leaves it to the next
//! pass, and one after leaves nothing to do. Releases of one flow take its root job's row
//! lock first, so for a fan-in the last upstream to end sees the others ended (two ends
//! deciding at once could otherwise each see the other still going, and nobody would run it).

use std::collections::{BTreeSet, HashMap};

use sqlx::Row;

use super::edges::FINAL;
use super::{rows, Store, StoreError};
use crate::model::flows::{decide, flow_state, Decision, Outcome};
use crate::model::{Graph, Millis, RunState};

/// An ended run whose dependents are not decided yet.
#[derive(Debug, Clone)]
struct Candidate {
    id: i64,
    job_id: i64,
    instant: Millis,
    flow_root: i64,
}

/// What one release pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Released {
    /// Ended runs whose dependents were looked at.
    pub runs: usize,
    /// Dependents released to run.
    pub started: usize,
    /// Dependents recorded `skipped`.
    pub skipped: usize,
    /// Flows that ended in this pass.
    pub flows_ended: usize,
}

/// Ended runs released per transaction.
const PER_TRANSACTION: usize = 16;

impl Candidate {
    /// The root job of the run's flow (its own job for a root's run).
    fn root(&self) -> i64 {
        if self.flow_root != 0 {
            self.flow_root
        } else {
            self.job_id
        }
    }
}

/// A run of a flow, as the release reads it.
#[derive(Debug, Clone)]
pub(super) struct FlowRun {
    pub id: i64,
    pub job_id: i64,
    pub state: RunState,
    pub error: Option<String>,
    pub attempt: i64,
    pub round: i64,
    pub target: String,
    pub flow_root: i64,
    pub flow_run: Option<i64>,
}

/// Each job's runs in a flow that count: those of its latest round, the latest attempt per
/// target.
pub(super) fn latest(runs: &[FlowRun]) -> HashMap<i64, (i64, Vec<&FlowRun>)> {
    let mut out: HashMap<i64, (i64, Vec<&FlowRun>)> = HashMap::new();
    for r in runs {
        let e = out.entry(r.job_id).or_insert((r.round, Vec::new()));
        if r.round > e.0 {
            *e = (r.round, Vec::new());
        }
        if r.round < e.0 {
            continue;
        }
        match e.1.iter_mut().find(|x| x.target == r.target) {
            Some(x) if x.attempt < r.attempt || (x.attempt == r.attempt && x.id < r.id) => *x = r,
            Some(_) => {}
            None => e.1.push(r),
        }
    }
    out
}

fn outcome(runs: &[&FlowRun]) -> Outcome {
    let states: Vec<(i64, RunState)> = runs.iter().map(|r| (r.id, r.state)).collect();
    Outcome::of(&states)
}

impl Store {
    /// One pass of releasing: up to `limit` ended runs, one transaction each. Passes are
    /// repeated by the caller until one finds nothing (a skip releases the next level).
    /// `graph` caches the edges with the change sequence they were read at: read again only
    /// when a job changed since (edges change only with their job, which logs the change).
    pub async fn release_flows(
        &self,
        limit: i64,
        graph: &mut Option<(i64, std::sync::Arc<Graph>)>,
    ) -> Result<Released, StoreError> {
        let candidates = self.release_candidates(limit).await?;
        let mut done = Released::default();
        if candidates.is_empty() {
            return Ok(done);
        }
        let seq = self.last_change().await?;
        let graph = match graph {
            Some((at, g)) if *at == seq => g.clone(),
            _ => {
                let g = std::sync::Arc::new(self.graph().await?);
                *graph = Some((seq, g.clone()));
                g
            }
        };
        let mut candidates = candidates;
        candidates.sort_unstable_by_key(|c| (c.root(), c.id));
        for chunk in candidates.chunks(PER_TRANSACTION) {
            let one = super::retry_transient(|| self.release_chunk(&graph, chunk)).await?;
            done.runs += one.runs;
            done.started += one.started;
            done.skipped += one.skipped;
            done.flows_ended += one.flows_ended;
        }
        Ok(done)
    }

    /// Releases a few ended runs in one transaction: every one of their flows' locks first
    /// (in id order, as every writer of several rows takes them), then each run in turn.
    /// Fewer, slightly longer transactions: on SQLite every writer waits for the one lock, and
    /// a thousand flows ending at once must not queue a thousand writers before a fire.
    async fn release_chunk(
        &self,
        graph: &Graph,
        chunk: &[Candidate],
    ) -> Result<Released, StoreError> {
        let mut roots: Vec<i64> = chunk.iter().map(Candidate::root).collect();
        roots.dedup();
        let mut tx = self.pool.begin().await?;
        // Phase `lock`: the flows' locks before any read, so that the reads (and MySQL's
        // snapshot, taken by the first plain read) see every release of these flows
        // committed before.
        let sql = format!(
            "UPDATE jobs SET paused = paused WHERE id IN ({})",
            super::placeholders(roots.len())
        );
        let mut q = sqlx::query(&sql);
        for r in &roots {
            q = q.bind(*r);
        }
        q.execute(&mut *tx).await?;
        let mut done = Released::default();
        for c in chunk {
            let one = self.release_one(&mut tx, graph, c).await?;
            done.runs += one.runs;
            done.started += one.started;
            done.skipped += one.skipped;
            done.flows_ended += one.flows_ended;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// Ended runs of jobs of a graph (upstream of others, or downstream: the last node to end
    /// ends its flow), not released yet (index ranges of `runs_to_release (released, job_id)`).
    async fn release_candidates(&self, limit: i64) -> Result<Vec<Candidate>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT id, job_id, instant, flow_root FROM runs WHERE released = 0 \
             AND job_id IN (SELECT upstream_id FROM job_edges UNION SELECT job_id FROM job_edges) \
             AND state IN ({FINAL}) \
             ORDER BY id LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Candidate {
                    id: r.try_get(0)?,
                    job_id: r.try_get(1)?,
                    instant: r.try_get(2)?,
                    flow_root: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// One ended run, inside a transaction that holds its flow's lock.
    async fn release_one(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        graph: &Graph,
        c: &Candidate,
    ) -> Result<Released, StoreError> {
        let root = c.root();
        // Phase `mark`: another dispatcher that got there first leaves nothing to do.
        let marked = sqlx::query("UPDATE runs SET released = 1 WHERE id = ? AND released = 0")
            .bind(c.id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        let dependents = graph.dependents(c.job_id);
        // A run of a job that starts no flow (it runs after nothing, or was run with nothing
        // after it) ends nothing but itself.
        let root_run = c.flow_root == 0;
        if marked == 0 || (root_run && dependents.is_empty()) {
            return Ok(Released::default());
        }
        // Phase `read`: the flow's runs and its jobs.
        let runs = flow_runs(tx, root, c.instant).await?;
        let nodes: Vec<i64> = graph.layers(root).concat();
        let jobs = node_jobs(tx, &nodes).await?;
        let flow_run = runs
            .iter()
            .filter(|r| r.job_id == root && r.flow_root == 0)
            .map(|r| r.id)
            .min()
            .or_else(|| runs.iter().find_map(|r| r.flow_run))
            .unwrap_or(c.id);
        let now = crate::model::now_millis();
        if root_run {
            sqlx::query(&format!(
                "{} INTO flows (root_job_id, instant, root_run, created_at) VALUES (?, ?, ?, ?)",
                self.insert_ignore()
            ))
            .bind(root)
            .bind(c.instant)
            .bind(flow_run)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        // Phase `decide`: each dependent of the ended job, if all it waits for has ended.
        let members: BTreeSet<i64> = nodes.iter().copied().collect();
        let mut decided: Vec<FlowRun> = Vec::new();
        let mut latest_runs = latest(&runs);
        let mut done = Released {
            runs: 1,
            ..Released::default()
        };
        for (d, _) in dependents {
            let Some(one) = decide_one(graph, *d, &members, &latest_runs, &jobs) else {
                continue;
            };
            if !self
                .insert_decided(tx, &one, root, c.instant, flow_run, now)
                .await?
            {
                continue;
            }
            match one.state {
                RunState::Skipped => done.skipped += 1,
                _ => done.started += 1,
            }
            decided.push(FlowRun {
                id: 0,
                job_id: *d,
                state: one.state,
                error: one.error,
                attempt: 1,
                round: one.round,
                target: String::new(),
                flow_root: root,
                flow_run: Some(flow_run),
            });
        }
        for r in &decided {
            latest_runs.insert(r.job_id, (r.round, vec![r]));
        }
        // Phase `end`: once every node of the flow ended, its overall state, once.
        done.flows_ended = end_flow(tx, root, c.instant, &nodes, &latest_runs, &jobs, now).await?;
        Ok(done)
    }

    /// Records a decision under the fence: false if the dependent was decided already.
    async fn insert_decided(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        one: &Decided,
        root: i64,
        instant: Millis,
        flow_run: i64,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let ended = (one.state == RunState::Skipped).then_some(now);
        let inserted = sqlx::query(&format!(
            "{} INTO runs (job_id, instant, target, trigger_kind, state, error, created_at, \
             ended_at, flow_root, flow_round, flow_run, upstream_runs, stdout, stderr) \
             VALUES (?, ?, '', 'upstream', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            self.insert_ignore()
        ))
        .bind(one.job)
        .bind(instant)
        .bind(one.state.as_str())
        .bind(one.error.as_deref())
        .bind(now)
        .bind(ended)
        .bind(root)
        .bind(one.round)
        .bind(flow_run)
        .bind(one.upstream_runs.as_deref())
        .bind(ended.map(|_| ""))
        .bind(ended.map(|_| ""))
        .execute(&mut **tx)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    pub(super) fn insert_ignore(&self) -> &'static str {
        match self.backend {
            super::Backend::MySql => "INSERT IGNORE",
            super::Backend::Sqlite => "INSERT OR IGNORE",
        }
    }
}

/// A dependent's decision in a flow, to record.
struct Decided {
    job: i64,
    state: RunState,
    error: Option<String>,
    upstream_runs: Option<String>,
    round: i64,
}

/// Decides dependent `d` from its upstreams' latest runs in the flow: `None` while it waits,
/// or when it was decided in this round already. Upstreams outside the flow (a flow started
/// from a middle job) are not waited for; a paused job is skipped.
fn decide_one(
    graph: &Graph,
    d: i64,
    members: &BTreeSet<i64>,
    latest_runs: &HashMap<i64, (i64, Vec<&FlowRun>)>,
    jobs: &HashMap<i64, (String, bool)>,
) -> Option<Decided> {
    let ups: Vec<_> = graph
        .upstreams(d)
        .iter()
        .filter(|(u, _)| members.contains(u))
        .collect();
    let round = ups
        .iter()
        .filter_map(|(u, _)| latest_runs.get(u).map(|l| l.0))
        .max()
        .unwrap_or(0);
    if latest_runs.get(&d).is_some_and(|l| l.0 >= round) {
        return None;
    }
    let (name, paused) = jobs.get(&d)?;
    let decision = if *paused {
        Decision::Skip {
            reason: format!("skipped: job `{name}` is paused"),
        }
    } else {
        let seen: Vec<_> = ups
            .iter()
            .map(|(u, on)| {
                let upstream = jobs.get(u).map(|j| j.0.clone()).unwrap_or_default();
                let o = latest_runs
                    .get(u)
                    .map(|l| outcome(&l.1))
                    .unwrap_or(Outcome::Pending);
                (upstream, *on, o)
            })
            .collect();
        decide(&seen)
    };
    let (state, error, upstream_runs) = match decision {
        Decision::Wait => return None,
        Decision::Run(by) => {
            let by: Vec<String> = by.iter().map(|(n, id)| format!("{n}={id}")).collect();
            (RunState::Scheduled, None, Some(by.join(",")))
        }
        Decision::Skip { reason } => (RunState::Skipped, Some(reason), None),
    };
    Some(Decided {
        job: d,
        state,
        error,
        upstream_runs,
        round,
    })
}

/// Records the flow's end if every node's latest runs are final: 1 if this call did.
async fn end_flow(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    root: i64,
    instant: Millis,
    nodes: &[i64],
    latest_runs: &HashMap<i64, (i64, Vec<&FlowRun>)>,
    jobs: &HashMap<i64, (String, bool)>,
    now: Millis,
) -> Result<usize, StoreError> {
    let mut states = Vec::new();
    let mut failed = Vec::new();
    for n in nodes {
        let Some((_, runs)) = latest_runs.get(n) else {
            return Ok(0);
        };
        for r in runs {
            if !r.state.is_final() {
                return Ok(0);
            }
            if matches!(
                r.state,
                RunState::Failed | RunState::TimedOut | RunState::Killed | RunState::Lost
            ) {
                let name = jobs.get(n).map(|j| j.0.as_str()).unwrap_or("?");
                failed.push(format!("{name} (run {}, {})", r.id, r.state.as_str()));
            }
            states.push((r.state, r.error.as_deref()));
        }
    }
    let state = flow_state(&states);
    let failed = (!failed.is_empty()).then(|| failed.join(", "));
    let round = latest_runs.values().map(|l| l.0).max().unwrap_or(0);
    let ended = sqlx::query(
        "UPDATE flows SET state = ?, failed = ?, ended_at = ?, flow_round = ? \
         WHERE root_job_id = ? AND instant = ? AND ended_at IS NULL",
    )
    .bind(state)
    .bind(failed.as_deref())
    .bind(now)
    .bind(round)
    .bind(root)
    .bind(instant)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(ended as usize)
}

/// Every run of the flow (root job, instant): the root's own runs and those released in it.
pub(super) async fn flow_runs(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    root: i64,
    instant: Millis,
) -> Result<Vec<FlowRun>, StoreError> {
    const COLUMNS: &str =
        "id, job_id, state, error, attempt, flow_round, target, flow_root, flow_run";
    let mut out = Vec::new();
    for (sql, a, b) in [
        (
            format!(
                "SELECT {COLUMNS} FROM runs WHERE job_id = ? AND instant = ? AND flow_root = 0"
            ),
            root,
            instant,
        ),
        (
            format!("SELECT {COLUMNS} FROM runs WHERE flow_root = ? AND instant = ?"),
            root,
            instant,
        ),
    ] {
        for r in sqlx::query(&sql)
            .bind(a)
            .bind(b)
            .fetch_all(&mut **tx)
            .await?
        {
            let state = rows::text_at(&r, 2)?.unwrap_or_default();
            out.push(FlowRun {
                id: r.try_get(0)?,
                job_id: r.try_get(1)?,
                state: RunState::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown run state `{state}`")))?,
                error: rows::text_at(&r, 3)?,
                attempt: r.try_get(4)?,
                round: r.try_get(5)?,
                target: rows::text_at(&r, 6)?.unwrap_or_default(),
                flow_root: r.try_get(7)?,
                flow_run: r.try_get(8)?,
            });
        }
    }
    Ok(out)
}

/// Name and paused flag of the flow's jobs.
async fn node_jobs(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    nodes: &[i64],
) -> Result<HashMap<i64, (String, bool)>, StoreError> {
    let mut out = HashMap::new();
    for chunk in nodes.chunks(500) {
        let sql = format!(
            "SELECT id, name, paused FROM jobs WHERE id IN ({})",
            super::placeholders(chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&mut **tx).await? {
            out.insert(
                r.try_get(0)?,
                (
                    rows::text_at(&r, 1)?.unwrap_or_default(),
                    r.try_get::<i64, _>(2)? != 0,
                ),
            );
        }
    }
    Ok(out)
}
