//! A job's `after` edges: written with the job in its transaction (the graph checked there,
//! against every edge, so two edits cannot make a cycle between them), and read back by name.

use std::collections::HashMap;

use sqlx::Row;

use super::{rows, Backend, Store, StoreError};
use crate::model::{Edge, EdgeOn, FieldError, Graph, Job};

/// The final states, for the SQL that looks for ended runs.
pub(super) const FINAL: &str =
    "'succeeded', 'failed', 'timed_out', 'killed', 'lost', 'skipped', 'missed'";

impl Store {
    /// Fills each job's `after` from the edges table (one query per 500 jobs).
    pub async fn attach_edges(&self, jobs: &mut [Job]) -> Result<(), StoreError> {
        let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        let mut after: HashMap<i64, Vec<Edge>> = HashMap::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT e.job_id, u.name, e.on_kind FROM job_edges e JOIN jobs u ON u.id = \
                 e.upstream_id WHERE e.job_id IN ({}) ORDER BY u.name",
                super::placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.pool).await? {
                let on = rows::text_at(&r, 2)?.unwrap_or_default();
                after.entry(r.try_get(0)?).or_default().push(Edge {
                    job: rows::text_at(&r, 1)?.unwrap_or_default(),
                    on: EdgeOn::parse(&on)
                        .ok_or_else(|| StoreError::Corrupt(format!("unknown edge `{on}`")))?,
                });
            }
        }
        for job in jobs {
            job.after = after.remove(&job.id).unwrap_or_default();
        }
        Ok(())
    }

    /// Every edge, as a graph.
    pub async fn graph(&self) -> Result<Graph, StoreError> {
        let rows = sqlx::query("SELECT job_id, upstream_id, on_kind FROM job_edges")
            .fetch_all(&self.pool)
            .await?;
        edges_of(&rows).map(Graph::new)
    }

    /// The names of the jobs that run after `job_id`, sorted.
    pub async fn dependents(&self, job_id: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT j.name FROM job_edges e JOIN jobs j ON j.id = e.job_id \
             WHERE e.upstream_id = ? ORDER BY j.name",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| rows::text_at(r, 0).map(Option::unwrap_or_default))
            .collect()
    }

    /// When the job named `name` last succeeded in [from, to], if it did (its newest runs
    /// first, over `runs_by_job`).
    pub async fn last_success(
        &self,
        name: &str,
        from: i64,
        to: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT r.ended_at FROM runs r JOIN jobs j ON j.id = r.job_id \
             WHERE LOWER(j.name) = LOWER(?) AND r.state = 'succeeded' AND r.ended_at >= ? \
             AND r.ended_at <= ? ORDER BY r.id DESC LIMIT 1",
        )
        .bind(name)
        .bind(from)
        .bind(to)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Names and groups of jobs by id (for showing a graph).
    pub async fn job_names(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, (String, String)>, StoreError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT id, name, job_group FROM jobs WHERE id IN ({})",
                super::placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.insert(
                    r.try_get(0)?,
                    (
                        rows::text_at(&r, 1)?.unwrap_or_default(),
                        rows::text_at(&r, 2)?.unwrap_or_default(),
                    ),
                );
            }
        }
        Ok(out)
    }
}

fn edges_of(rows: &[sqlx::any::AnyRow]) -> Result<Vec<(i64, i64, EdgeOn)>, StoreError> {
    rows.iter()
        .map(|r| {
            let on = rows::text_at(r, 2)?.unwrap_or_default();
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                EdgeOn::parse(&on)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown edge `{on}`")))?,
            ))
        })
        .collect()
}

/// Whether `job.after` is what is stored for `job_id` already.
async fn unchanged(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: i64,
    job: &Job,
) -> Result<bool, StoreError> {
    let stored = sqlx::query(
        "SELECT u.name, e.on_kind FROM job_edges e JOIN jobs u ON u.id = e.upstream_id \
         WHERE e.job_id = ?",
    )
    .bind(job_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut had: Vec<(String, String)> = stored
        .iter()
        .map(|r| {
            Ok((
                rows::text_at(r, 0)?.unwrap_or_default().to_lowercase(),
                rows::text_at(r, 1)?.unwrap_or_default(),
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    let mut wants: Vec<(String, String)> = job
        .after
        .iter()
        .map(|e| (e.job.to_lowercase(), e.on.as_str().to_string()))
        .collect();
    had.sort_unstable();
    wants.sort_unstable();
    Ok(had == wants)
}

/// The jobs `job.after` names, by id with their edge, and the names of those and of the job
/// (for the graph's messages); a job that does not exist is refused naming it.
async fn upstreams(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: i64,
    job: &Job,
) -> Result<(Vec<(i64, EdgeOn)>, HashMap<i64, String>), StoreError> {
    let mut wanted: Vec<(i64, EdgeOn)> = Vec::with_capacity(job.after.len());
    let mut names: HashMap<i64, String> = HashMap::from([(job_id, job.name.clone())]);
    for edge in &job.after {
        let row = sqlx::query("SELECT id, name FROM jobs WHERE LOWER(name) = LOWER(?)")
            .bind(&edge.job)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else {
            return Err(StoreError::Conflict(FieldError::new(
                "after",
                format!("no job `{}`", edge.job),
            )));
        };
        let id: i64 = row.try_get(0)?;
        names.insert(id, rows::text_at(&row, 1)?.unwrap_or_default());
        wanted.push((id, edge.on));
    }
    Ok((wanted, names))
}

/// Replaces job `job_id`'s edges with `job.after` inside the job's write transaction: the
/// named jobs must exist, and the graph stays without a cycle, with one root per job. Every
/// edge is read first (locked on MySQL), so concurrent edits are checked one after the other.
pub(super) async fn write(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    job_id: i64,
    job: &Job,
    now: i64,
) -> Result<(), StoreError> {
    // Most edits leave the edges alone (a pause, a new command): then the graph is not read,
    // nor locked, at all.
    if unchanged(tx, job_id, job).await? {
        return Ok(());
    }
    let lock = match backend {
        Backend::MySql => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let all = sqlx::query(&format!(
        "SELECT job_id, upstream_id, on_kind FROM job_edges{lock}"
    ))
    .fetch_all(&mut **tx)
    .await?;
    let graph = Graph::new(edges_of(&all)?);
    let (mut wanted, mut names) = upstreams(tx, job_id, job).await?;
    wanted.sort_unstable();
    let next = graph.with_job(job_id, &wanted);
    let mut ids: Vec<i64> = all
        .iter()
        .flat_map(|r| [r.try_get::<i64, _>(0), r.try_get::<i64, _>(1)])
        .collect::<Result<_, _>>()?;
    ids.retain(|id| !names.contains_key(id));
    ids.sort_unstable();
    ids.dedup();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT id, name FROM jobs WHERE id IN ({})",
            super::placeholders(chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&mut **tx).await? {
            names.insert(r.try_get(0)?, rows::text_at(&r, 1)?.unwrap_or_default());
        }
    }
    let name = |id: i64| names.get(&id).cloned().unwrap_or_else(|| format!("#{id}"));
    next.check(job_id, &name).map_err(StoreError::Conflict)?;
    sqlx::query("DELETE FROM job_edges WHERE job_id = ?")
        .bind(job_id)
        .execute(&mut **tx)
        .await?;
    // A job new to the graph: its past runs end no flow.
    if !graph.contains(job_id) {
        sqlx::query(&format!(
            "UPDATE runs SET released = 1 WHERE job_id = ? AND released = 0 AND state IN ({FINAL})"
        ))
        .bind(job_id)
        .execute(&mut **tx)
        .await?;
    }
    for (up, on) in &wanted {
        sqlx::query(
            "INSERT INTO job_edges (job_id, upstream_id, on_kind, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(job_id)
        .bind(*up)
        .bind(on.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?;
        // A job new to the graph: its past runs release nothing (only runs that end from now
        // on start flows).
        if !graph.contains(*up) {
            sqlx::query(&format!(
                "UPDATE runs SET released = 1 WHERE job_id = ? AND released = 0 AND state IN ({FINAL})"
            ))
            .bind(*up)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// A job renamed from `old` to `new`: the jobs that require it follow. Returns their ids,
/// whose change the caller logs.
pub(super) async fn rename_required(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    old: &str,
    new: &str,
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    if old == new {
        return Ok(Vec::new());
    }
    let requirers: Vec<i64> =
        sqlx::query("SELECT id FROM jobs WHERE LOWER(requires_job) = LOWER(?)")
            .bind(old)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?;
    for id in &requirers {
        sqlx::query("UPDATE jobs SET requires_job = ?, updated_at = ? WHERE id = ?")
            .bind(new)
            .bind(now)
            .bind(*id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(requirers)
}

/// Removes every edge from and to `job_id` (a forced delete): the jobs that ran after it
/// only are paused, as they no longer have anything to start them, and the jobs that required
/// it require nothing. Returns their ids, whose change is logged by the caller.
pub(super) async fn unlink(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: i64,
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    let dependents: Vec<i64> = sqlx::query("SELECT job_id FROM job_edges WHERE upstream_id = ?")
        .bind(job_id)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?;
    let requirers: Vec<i64> = sqlx::query(
        "SELECT r.id FROM jobs r JOIN jobs me ON LOWER(r.requires_job) = LOWER(me.name) \
         WHERE me.id = ?",
    )
    .bind(job_id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| r.try_get::<i64, _>(0))
    .collect::<Result<_, _>>()?;
    for r in &requirers {
        sqlx::query(
            "UPDATE jobs SET requires_job = NULL, requires_within_secs = NULL, updated_at = ? \
             WHERE id = ?",
        )
        .bind(now)
        .bind(*r)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("DELETE FROM job_edges WHERE job_id = ? OR upstream_id = ?")
        .bind(job_id)
        .bind(job_id)
        .execute(&mut **tx)
        .await?;
    for d in &dependents {
        sqlx::query(
            "UPDATE jobs SET paused = 1, updated_at = ? WHERE id = ? AND NOT EXISTS \
             (SELECT 1 FROM job_edges e WHERE e.job_id = ?)",
        )
        .bind(now)
        .bind(*d)
        .bind(*d)
        .execute(&mut **tx)
        .await?;
    }
    Ok(dependents.into_iter().chain(requirers).collect())
}
