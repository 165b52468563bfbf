//! Listing jobs for people (the console): a page of the jobs matching a search, the targets in
//! use, the jobs failing now and the rules of the active jobs — each one query, so a fleet of
//! ten thousand jobs never has every row decoded to show a hundred.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Row};

use super::jobs::JOB_COLUMNS;
use super::{rows, Store, StoreError};
use crate::model::{Job, LastRun, RunState};

/// Which jobs, and which page of them. Empty filters match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Part of the name, any case.
    pub name: String,
    pub paused: Option<bool>,
    /// Jobs whose `run_at` is exactly this.
    pub run_at: Option<String>,
    /// Only jobs of these groups (a caller's scope); `None`: every group.
    pub groups: Option<Vec<String>>,
    pub offset: i64,
    pub limit: i64,
}

/// `%`, `_` and the escape itself taken literally in a LIKE pattern.
fn like_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '!') {
            out.push('!');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl JobFilter {
    /// The WHERE clause (fixed fragments only).
    fn clause(&self) -> String {
        let mut clauses: Vec<String> = Vec::new();
        if !self.name.trim().is_empty() {
            clauses.push("LOWER(name) LIKE ? ESCAPE '!'".to_string());
        }
        if self.paused.is_some() {
            clauses.push("paused = ?".into());
        }
        if self.run_at.is_some() {
            clauses.push("run_at = ?".into());
        }
        if let Some(g) = &self.groups {
            clauses.push(format!(
                "job_group IN ({})",
                vec!["?"; g.len().max(1)].join(", ")
            ));
        }
        if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        }
    }

    /// Binds the clause's values, in its order.
    fn bind<'q>(
        &self,
        mut q: Query<'q, Any, AnyArguments<'q>>,
    ) -> Query<'q, Any, AnyArguments<'q>> {
        if !self.name.trim().is_empty() {
            q = q.bind(like_literal(self.name.trim()));
        }
        if let Some(p) = self.paused {
            q = q.bind(i64::from(p));
        }
        if let Some(t) = &self.run_at {
            q = q.bind(t.clone());
        }
        if let Some(groups) = &self.groups {
            if groups.is_empty() {
                q = q.bind("");
            }
            for g in groups {
                q = q.bind(g.clone());
            }
        }
        q
    }
}

impl Store {
    /// The page of jobs matching `f`, in id order, and how many match in all.
    pub async fn jobs_matching(&self, f: &JobFilter) -> Result<(Vec<Job>, i64), StoreError> {
        let clause = f.clause();
        let count_sql = format!("SELECT COUNT(*) FROM jobs{clause}");
        let total: i64 = f
            .bind(sqlx::query(&count_sql))
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        let page_sql = format!(
            "SELECT {} FROM jobs{clause} ORDER BY id LIMIT ? OFFSET ?",
            *JOB_COLUMNS
        );
        let rows = f
            .bind(sqlx::query(&page_sql))
            .bind(f.limit.clamp(1, 10_000))
            .bind(f.offset.max(0))
            .fetch_all(&self.pool)
            .await?;
        let mut jobs = rows.iter().map(rows::job).collect::<Result<Vec<_>, _>>()?;
        self.attach_edges(&mut jobs).await?;
        Ok((jobs, total))
    }

    /// The `run_at` targets jobs name, sorted.
    pub async fn job_targets(&self, groups: Option<&[String]>) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT run_at, job_group FROM jobs WHERE run_at IS NOT NULL \
             ORDER BY run_at LIMIT 10000",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut targets: Vec<String> = rows
            .iter()
            .filter(|r| {
                groups.is_none_or(|gs| r.try_get::<String, _>(1).is_ok_and(|g| gs.contains(&g)))
            })
            .filter_map(|r| rows::text_at(r, 0).ok().flatten())
            .collect();
        targets.dedup();
        targets.truncate(1000);
        Ok(targets)
    }

    /// Jobs failing now — whose newest run failed, timed out or was lost (at most `limit`),
    /// with that run, and how many there are in all. The candidates are the jobs the alarm
    /// scan marked failing (`alarm_failing`), so a healthy fleet costs no look at its runs.
    pub async fn failing_jobs(
        &self,
        limit: usize,
        groups: Option<&[String]>,
    ) -> Result<(Vec<(String, LastRun)>, usize), StoreError> {
        let rows = sqlx::query(
            "SELECT j.name, r.id, r.state, r.instant, r.ended_at, j.job_group FROM jobs j \
             JOIN runs r ON r.id = (SELECT MAX(x.id) FROM runs x WHERE x.job_id = j.id) \
             WHERE j.alarm_failing = 1 AND r.state IN ('failed', 'timed_out', 'lost') \
             ORDER BY r.id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        let in_scope = |r: &&sqlx::any::AnyRow| {
            groups.is_none_or(|gs| r.try_get::<String, _>(5).is_ok_and(|g| gs.contains(&g)))
        };
        let rows: Vec<&sqlx::any::AnyRow> = rows.iter().filter(in_scope).collect();
        let total = rows.len();
        let mut out = Vec::new();
        for r in rows.into_iter().take(limit) {
            let state: String = r.try_get(2)?;
            let Some(state) = RunState::parse(&state) else {
                continue;
            };
            out.push((
                r.try_get(0)?,
                LastRun {
                    id: r.try_get(1)?,
                    state,
                    instant: r.try_get(3)?,
                    ended_at: r.try_get(4)?,
                },
            ));
        }
        Ok((out, total))
    }

    /// (name, rule, zone) of every active job in `groups` (`None`: all): what the next fires
    /// are computed from (the rule [`crate::schedule::days::keyed`] with its calendars).
    pub async fn active_rules(
        &self,
        groups: Option<&[String]>,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, schedule, timezone, job_group, calendars, calendar_mode FROM jobs \
                 WHERE paused = 0",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let group: String = r.try_get(3)?;
            if groups.is_none_or(|gs| gs.contains(&group)) {
                let rule: String = r.try_get(1)?;
                let filter = super::rows::day_filter(r, 4, 5)?;
                let rule = crate::schedule::days::keyed(&rule, filter.as_ref());
                out.push((r.try_get(0)?, rule, r.try_get(2)?));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(super::like_literal("a_b%C!"), "%a!_b!%c!!%");
    }
}
