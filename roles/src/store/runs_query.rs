//! Listing runs: filters (job, states, trigger, executor, time range) and a cursor, newest
//! first. The query is built from fixed fragments; every value is a bound parameter.

use super::{rows, Store, StoreError, RUN_COLUMNS};
use crate::model::{Millis, Run, RunState, Trigger};

/// Which runs to list. Empty filters match everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    pub job_id: Option<i64>,
    /// Any of these states.
    pub states: Vec<RunState>,
    pub trigger: Option<Trigger>,
    /// Runs on this executor (its host, or its full instance id).
    pub executor: Option<String>,
    /// Scheduled instant at or after / before.
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    /// The cursor: only runs with a smaller id (the last id of the previous page).
    pub before: Option<i64>,
    pub limit: i64,
    /// Only runs of jobs in these groups (a caller's scope); `None`: every group.
    pub groups: Option<Vec<String>>,
}

impl Store {
    /// Runs matching `filter`, newest first, at most `filter.limit` (1..=10,000).
    pub async fn runs(&self, filter: &RunFilter) -> Result<Vec<Run>, StoreError> {
        // Two steps: the page's ids from `runs` alone, in id order, then those rows with their
        // job names. Joined in one query, MariaDB drives it from `jobs` and sorts every run
        // (3.7 s for the newest 50 of a million), and SQLite's plan for the same as a derived
        // table takes 170 ms; each step alone is an index walk (docs/BENCHMARKS.md).
        let mut sql = String::from("SELECT r.id FROM runs r");
        let mut clauses: Vec<String> = Vec::new();
        if filter.job_id.is_some() {
            clauses.push("r.job_id = ?".into());
        }
        if !filter.states.is_empty() {
            let marks = super::placeholders(filter.states.len());
            clauses.push(format!("r.state IN ({marks})"));
        }
        if filter.trigger.is_some() {
            clauses.push("r.trigger_kind = ?".into());
        }
        if filter.executor.is_some() {
            // An executor is named `host/pid/start`; a bare host matches all its processes.
            clauses.push("(r.executor = ? OR SUBSTR(r.executor, 1, ?) = ?)".into());
        }
        if filter.since.is_some() {
            clauses.push("r.instant >= ?".into());
        }
        if filter.until.is_some() {
            clauses.push("r.instant < ?".into());
        }
        if filter.before.is_some() {
            clauses.push("r.id < ?".into());
        }
        if let Some(groups) = &filter.groups {
            // No group at all: nothing (an empty IN list is not SQL).
            let marks = vec!["?"; groups.len().max(1)].join(", ");
            clauses.push(format!(
                "r.job_id IN (SELECT id FROM jobs WHERE job_group IN ({marks}))"
            ));
        }
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        sql.push_str(" ORDER BY r.id DESC LIMIT ?");

        let mut query = sqlx::query(&sql);
        if let Some(id) = filter.job_id {
            query = query.bind(id);
        }
        for s in &filter.states {
            query = query.bind(s.as_str());
        }
        if let Some(t) = filter.trigger {
            query = query.bind(t.as_str());
        }
        if let Some(e) = &filter.executor {
            let prefix = format!("{e}/");
            let chars = prefix.chars().count() as i64;
            query = query.bind(e.clone()).bind(chars).bind(prefix);
        }
        for v in [filter.since, filter.until, filter.before]
            .into_iter()
            .flatten()
        {
            query = query.bind(v);
        }
        if let Some(groups) = &filter.groups {
            if groups.is_empty() {
                query = query.bind("");
            }
            for g in groups {
                query = query.bind(g.clone());
            }
        }
        let ids: Vec<i64> = query
            .bind(filter.limit.clamp(1, 10_000))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| sqlx::Row::try_get(r, 0))
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let marks = super::placeholders(chunk.len());
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM runs r JOIN jobs j ON j.id = r.job_id \
                 WHERE r.id IN ({marks}) ORDER BY r.id DESC"
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&self.pool).await? {
                out.push(rows::run(&row, false)?);
            }
        }
        Ok(out)
    }

    /// Runs scheduled since `since`, counted by hour (the hour's start) and state.
    pub async fn runs_by_hour(
        &self,
        since: Millis,
        groups: Option<&[String]>,
    ) -> Result<Vec<(Millis, RunState, i64)>, StoreError> {
        let in_groups = match groups {
            None => String::new(),
            Some(g) => format!(
                " AND job_id IN (SELECT id FROM jobs WHERE job_group IN ({}))",
                vec!["?"; g.len().max(1)].join(", ")
            ),
        };
        let sql = format!(
            "SELECT instant - (instant % 3600000) AS hour, state, COUNT(*) FROM runs \
             WHERE instant >= ?{in_groups} GROUP BY hour, state ORDER BY hour"
        );
        let mut q = sqlx::query(&sql).bind(since);
        if let Some(g) = groups {
            if g.is_empty() {
                q = q.bind(String::new());
            }
            for group in g {
                q = q.bind(group.clone());
            }
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let state: String = sqlx::Row::try_get(r, 1)?;
            if let Some(st) = RunState::parse(&state) {
                out.push((sqlx::Row::try_get(r, 0)?, st, sqlx::Row::try_get(r, 2)?));
            }
        }
        Ok(out)
    }

    /// A run's retry chain: the first attempt and every retry of it, in order.
    pub async fn retry_chain(&self, first: i64) -> Result<Vec<Run>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN jobs j ON j.id = r.job_id \
             WHERE r.id = ? OR r.retry_of = ? ORDER BY r.id LIMIT 1000"
        ))
        .bind(first)
        .bind(first)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| rows::run(r, false)).collect()
    }
}
