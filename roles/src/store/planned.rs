//! What a dispatcher reads of the jobs: the few fields that plan instants, for every job, and
//! whole jobs by id when they fire (a large fleet is not kept whole in its memory).

use sqlx::Row;

use super::jobs::JOB_COLUMNS;
use super::{rows, Store, StoreError};
use crate::model::{Job, Millis};

/// The fields of a job its instants are planned from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub id: i64,
    pub schedule: String,
    pub timezone: String,
    /// Not paused, with something to run (a command or an HTTP call), and a rule of its own
    /// (a job that runs after others has none: its upstreams release it).
    pub schedulable: bool,
    pub updated_at: Millis,
    pub misfire_window_secs: i64,
}

impl Planned {
    pub fn of(job: &Job) -> Planned {
        Planned {
            id: job.id,
            schedule: crate::schedule::days::keyed(&job.schedule, job.day_filter().as_ref()),
            timezone: job.timezone.clone(),
            schedulable: !job.paused
                && (job.command.is_some() || job.http_url.is_some())
                && !job.schedule.is_empty(),
            updated_at: job.updated_at,
            misfire_window_secs: job.misfire_window_secs,
        }
    }
}

impl Store {
    /// The planning fields of the jobs with an id above `after`, in id order, at most `limit`.
    pub async fn planned_page(&self, after: i64, limit: i64) -> Result<Vec<Planned>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, schedule, timezone, paused, \
             CASE WHEN command IS NULL AND http_url IS NULL THEN 0 ELSE 1 END, \
             updated_at, misfire_window_secs, calendars, calendar_mode FROM jobs \
             WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let rule = rows::text_at(r, 1)?.unwrap_or_default();
                let filter = rows::day_filter(r, 7, 8)?;
                Ok(Planned {
                    id: r.try_get(0)?,
                    schedule: crate::schedule::days::keyed(&rule, filter.as_ref()),
                    timezone: rows::text_at(r, 2)?.unwrap_or_default(),
                    schedulable: r.try_get::<i64, _>(3)? == 0
                        && r.try_get::<i64, _>(4)? == 1
                        && !rows::text_at(r, 1)?.unwrap_or_default().is_empty(),
                    updated_at: r.try_get(5)?,
                    misfire_window_secs: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// How many jobs there are (paused ones too).
    pub async fn count_jobs(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM jobs")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// The jobs of `ids` that exist (a deleted one is absent), whole.
    pub async fn jobs_by_ids(&self, ids: &[i64]) -> Result<Vec<Job>, StoreError> {
        let mut out = self.jobs_without_edges(ids).await?;
        self.attach_edges(&mut out).await?;
        Ok(out)
    }

    /// The jobs of `ids` that exist, without their edges (what a run does needs none).
    pub(super) async fn jobs_without_edges(&self, ids: &[i64]) -> Result<Vec<Job>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT {} FROM jobs WHERE id IN ({})",
                *JOB_COLUMNS,
                super::placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(rows::job(&r)?);
            }
        }
        Ok(out)
    }
}
