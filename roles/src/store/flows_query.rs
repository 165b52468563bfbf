//! Flows as people read them (`flow show`, `flow list`, the console's graph) and `flow rerun`.

use std::collections::{BTreeMap, HashMap};

use sqlx::Row;

use super::flows::{flow_runs, latest};
use super::{rows, Store, StoreError, RUN_COLUMNS};
use crate::model::flows::{flow_state, FlowNode, FlowSummary, FlowView};
use crate::model::{Graph, Millis, Run, RunState};

/// What `flow rerun` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rerun {
    /// These runs were recorded, one per node that did not succeed (what depends on them
    /// follows when they end).
    Started(Vec<i64>),
    /// A node of the flow is still going: a flow is rerun once it ended.
    Going,
    /// Every node succeeded (or was a path not taken).
    AllSucceeded,
}

/// A flow's listing filter.
#[derive(Debug, Clone, Default)]
pub struct FlowFilter {
    /// Only flows of this root job.
    pub root: Option<i64>,
    /// Only flows in this state.
    pub state: Option<String>,
    pub limit: i64,
}

impl Store {
    /// The flow a run belongs to: (root job, instant).
    pub async fn flow_of_run(&self, run_id: i64) -> Result<Option<(i64, Millis)>, StoreError> {
        let row = sqlx::query("SELECT job_id, instant, flow_root FROM runs WHERE id = ?")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let (job, instant, root): (i64, Millis, i64) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            Ok((if root != 0 { root } else { job }, instant))
        })
        .transpose()
    }

    /// The instant of the root job's latest flow (its newest run that no upstream released).
    pub async fn latest_flow(&self, root: i64) -> Result<Option<Millis>, StoreError> {
        let row = sqlx::query(
            "SELECT instant FROM runs WHERE job_id = ? AND flow_root = 0 ORDER BY id DESC LIMIT 1",
        )
        .bind(root)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// The flow (root, instant) with each job of the graph and its latest runs in it.
    pub async fn flow(
        &self,
        graph: &Graph,
        root: i64,
        instant: Millis,
    ) -> Result<FlowView, StoreError> {
        let mut runs = Vec::new();
        for (sql, a) in [
            (
                format!(
                    "SELECT {RUN_COLUMNS} FROM runs r JOIN jobs j ON j.id = r.job_id WHERE \
                     r.job_id = ? AND r.instant = ? AND r.flow_root = 0 ORDER BY r.id"
                ),
                root,
            ),
            (
                format!(
                    "SELECT {RUN_COLUMNS} FROM runs r JOIN jobs j ON j.id = r.job_id WHERE \
                     r.flow_root = ? AND r.instant = ? ORDER BY r.id"
                ),
                root,
            ),
        ] {
            for r in sqlx::query(&sql)
                .bind(a)
                .bind(instant)
                .fetch_all(&self.pool)
                .await?
            {
                runs.push(rows::run(&r, false)?);
            }
        }
        let layers = graph.layers(root);
        let ids: Vec<i64> = layers.concat();
        let jobs = self.job_names(&ids).await?;
        let newest = newest_runs(&runs);
        let mut nodes = Vec::with_capacity(ids.len());
        let mut states = Vec::new();
        for (layer, members) in layers.iter().enumerate() {
            for id in members {
                let (name, group) = jobs.get(id).cloned().unwrap_or_default();
                let after = graph
                    .upstreams(*id)
                    .iter()
                    .map(|(u, on)| crate::model::Edge {
                        job: jobs.get(u).map(|j| j.0.clone()).unwrap_or_default(),
                        on: *on,
                    })
                    .collect();
                let node_runs: Vec<Run> = newest.get(id).cloned().unwrap_or_default();
                let state = node_state(&node_runs);
                match node_runs.is_empty() {
                    true => states.push((RunState::Scheduled, None)),
                    false => states.extend(node_runs.iter().map(|r| (r.state, r.error.clone()))),
                }
                nodes.push(FlowNode {
                    job: name,
                    group: group.clone(),
                    hidden: false,
                    layer,
                    after,
                    state,
                    runs: node_runs.clone(),
                });
            }
        }
        let states: Vec<(RunState, Option<&str>)> =
            states.iter().map(|(s, e)| (*s, e.as_deref())).collect();
        let state = flow_state(&states).to_string();
        let duration_ms = (state != "running")
            .then(|| {
                let first = runs.iter().map(|r| r.created_at).min()?;
                let last = runs.iter().filter_map(|r| r.ended_at).max()?;
                Some(last - first)
            })
            .flatten();
        let root_run = runs
            .iter()
            .filter(|r| r.job_id == root && r.flow_root == 0)
            .map(|r| r.id)
            .min();
        let round = runs.iter().map(|r| r.flow_round).max().unwrap_or(0);
        Ok(FlowView {
            root_job: jobs.get(&root).map(|j| j.0.clone()).unwrap_or_default(),
            root_run,
            instant,
            round,
            state,
            duration_ms,
            nodes,
        })
    }

    /// Flows newest first, with their root job's group: those whose root is still going
    /// first (they have no `flows` row before their root ends), then the recorded ones.
    pub async fn flows(&self, f: &FlowFilter) -> Result<Vec<(FlowSummary, String)>, StoreError> {
        let mut out = match f.state.as_deref() {
            None | Some("running") => self.flows_starting(f).await?,
            Some(_) => Vec::new(),
        };
        out.extend(self.flows_recorded(f).await?);
        out.truncate(f.limit.clamp(1, 1000) as usize);
        Ok(out)
    }

    /// Root runs of a graph still going (over `runs_to_release`: not released yet).
    async fn flows_starting(
        &self,
        f: &FlowFilter,
    ) -> Result<Vec<(FlowSummary, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT j.name, j.job_group, r.id, r.instant, r.flow_round, 'running', NULL, \
             r.created_at, NULL \
             FROM runs r \
             JOIN jobs j ON j.id = r.job_id WHERE r.released = 0 AND r.flow_root = 0 \
             AND r.job_id IN (SELECT upstream_id FROM job_edges) \
             AND r.state IN ('scheduled', 'dispatched', 'running') AND (? = 0 OR r.job_id = ?) \
             ORDER BY r.id DESC LIMIT ?",
        )
        .bind(f.root.unwrap_or(0))
        .bind(f.root.unwrap_or(0))
        .bind(f.limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(summary).collect()
    }

    async fn flows_recorded(
        &self,
        f: &FlowFilter,
    ) -> Result<Vec<(FlowSummary, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT j.name, j.job_group, f.root_run, f.instant, f.flow_round, f.state, f.failed, \
             f.created_at, f.ended_at FROM flows f JOIN jobs j ON j.id = f.root_job_id \
             WHERE (? = 0 OR f.root_job_id = ?) AND (? = '' OR f.state = ?) \
             ORDER BY f.id DESC LIMIT ?",
        )
        .bind(f.root.unwrap_or(0))
        .bind(f.root.unwrap_or(0))
        .bind(f.state.clone().unwrap_or_default())
        .bind(f.state.clone().unwrap_or_default())
        .bind(f.limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(summary).collect()
    }

    /// Reruns the nodes of an ended flow that did not succeed and whose upstreams did, in a
    /// new round, each linked to the run it replaces; their dependents follow as they end.
    pub async fn rerun_flow(
        &self,
        graph: &Graph,
        root: i64,
        instant: Millis,
    ) -> Result<Rerun, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The flow's lock, as the release takes it: no release decides while this one reads.
        sqlx::query("UPDATE jobs SET paused = paused WHERE id = ?")
            .bind(root)
            .execute(&mut *tx)
            .await?;
        let runs = flow_runs(&mut tx, root, instant).await?;
        let newest = latest(&runs);
        let nodes: Vec<i64> = graph.layers(root).concat();
        if newest
            .values()
            .any(|(_, rs)| rs.iter().any(|r| !r.state.is_final()))
        {
            return Ok(Rerun::Going);
        }
        let ok = |id: &i64| {
            newest.get(id).is_some_and(|(_, rs)| {
                rs.iter().all(|r| {
                    r.state == RunState::Succeeded
                        || r.error
                            .as_deref()
                            .is_some_and(crate::model::flows::not_taken)
                })
            })
        };
        let members: std::collections::BTreeSet<i64> = nodes.iter().copied().collect();
        let frontier: Vec<i64> = nodes
            .iter()
            .copied()
            .filter(|n| newest.contains_key(n) && !ok(n))
            .filter(|n| {
                graph
                    .upstreams(*n)
                    .iter()
                    .filter(|(u, _)| members.contains(u))
                    .all(|(u, _)| ok(u))
            })
            .collect();
        if frontier.is_empty() {
            return Ok(Rerun::AllSucceeded);
        }
        let round = runs.iter().map(|r| r.round).max().unwrap_or(0) + 1;
        let flow_run = runs
            .iter()
            .filter(|r| r.job_id == root && r.flow_root == 0)
            .map(|r| r.id)
            .min();
        let now = crate::model::now_millis();
        let mut started = Vec::new();
        for n in frontier {
            let Some(replaced) = newest.get(&n).and_then(|(_, rs)| rs.first()) else {
                continue;
            };
            let flow_root = if n == root { 0 } else { root };
            let token = format!("rerun-{}-{round}-{now}", replaced.id);
            sqlx::query(
                "INSERT INTO runs (job_id, instant, target, trigger_kind, state, created_at, \
                 flow_root, flow_round, flow_run, rerun_of, fired_by) \
                 VALUES (?, ?, '', 'rerun', 'scheduled', ?, ?, ?, ?, ?, ?)",
            )
            .bind(n)
            .bind(instant)
            .bind(now)
            .bind(flow_root)
            .bind(round)
            .bind(if n == root { None } else { flow_run })
            .bind(replaced.id)
            .bind(token.as_str())
            .execute(&mut *tx)
            .await?;
            let id: i64 =
                sqlx::query_scalar("SELECT id FROM runs WHERE fired_by = ? AND job_id = ?")
                    .bind(token.as_str())
                    .bind(n)
                    .fetch_one(&mut *tx)
                    .await?;
            started.push(id);
        }
        sqlx::query(
            "UPDATE flows SET state = 'running', failed = NULL, ended_at = NULL, \
             alarm_checked = 0, flow_round = ? WHERE root_job_id = ? AND instant = ?",
        )
        .bind(round)
        .bind(root)
        .bind(instant)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Rerun::Started(started))
    }
}

/// A flow of a listing and its root job's group, from (name, group, root run, instant, round,
/// state, failed, created, ended).
fn summary(r: &sqlx::any::AnyRow) -> Result<(FlowSummary, String), StoreError> {
    Ok((
        FlowSummary {
            root_job: rows::text_at(r, 0)?.unwrap_or_default(),
            root_run: r.try_get(2)?,
            instant: r.try_get(3)?,
            round: r.try_get(4)?,
            state: rows::text_at(r, 5)?.unwrap_or_default(),
            failed: rows::text_at(r, 6)?,
            created_at: r.try_get(7)?,
            ended_at: r.try_get(8)?,
        },
        rows::text_at(r, 1)?.unwrap_or_default(),
    ))
}

/// Each job's latest runs: of its latest round, the latest attempt of each retry chain.
fn newest_runs(runs: &[Run]) -> HashMap<i64, Vec<Run>> {
    let mut rounds: HashMap<i64, i64> = HashMap::new();
    for r in runs {
        let e = rounds.entry(r.job_id).or_insert(r.flow_round);
        *e = (*e).max(r.flow_round);
    }
    let mut chains: BTreeMap<(i64, i64), &Run> = BTreeMap::new();
    for r in runs
        .iter()
        .filter(|r| rounds.get(&r.job_id) == Some(&r.flow_round))
    {
        let key = (r.job_id, r.retry_of.unwrap_or(r.id));
        match chains.get(&key) {
            Some(x) if x.attempt >= r.attempt => {}
            _ => {
                chains.insert(key, r);
            }
        }
    }
    let mut out: HashMap<i64, Vec<Run>> = HashMap::new();
    for ((job, _), r) in chains {
        out.entry(job).or_default().push(r.clone());
    }
    out
}

/// A node's state in its flow: `waiting` with no run yet, else the worst of its latest runs.
fn node_state(runs: &[Run]) -> String {
    if runs.is_empty() {
        return "waiting".into();
    }
    runs.iter()
        .map(|r| r.state)
        .find(|s| *s != RunState::Succeeded)
        .unwrap_or(RunState::Succeeded)
        .as_str()
        .to_string()
}
