//! Jobs: insert, read, update, delete, each change logged for the dispatchers in the same
//! transaction. The store writes only a [`ValidJob`]: every default and check is the model's.

use std::collections::HashMap;

use sqlx::Row;

use std::sync::LazyLock;

use super::{is_unique_violation, log_change, rows, Store, StoreError};
use crate::model::{FieldError, Job, LastRun, RunState, ValidJob};

/// What `delete_job` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// The job and its history are gone.
    Done,
    /// No such job.
    Missing,
    /// Not deleted: these runs of it are going (delete with `force` to stop them).
    Busy(Vec<i64>),
    /// Not deleted: these jobs run after it (delete with `force` to remove the edges too).
    Depended(Vec<String>),
}

/// The columns a user sets, in the order `bind_fields` binds them: the one list the SQL below
/// is made from. A new job field is a column here, a bind there, and its decoding in `rows.rs`.
const FIELD_COLUMNS: &[&str] = &[
    "name",
    "job_group",
    "schedule",
    "timezone",
    "command",
    "http_url",
    "http_method",
    "http_headers",
    "env",
    "http_body",
    "http_expect_status",
    "timeout_secs",
    "run_at",
    "fanout",
    "paused",
    "overlap",
    "retries",
    "retry_backoff_secs",
    "misfire",
    "misfire_window_secs",
    "alarm_on",
    "alarm_channels",
    "run_as",
    "description",
    "max_open_files",
    "max_address_space_mb",
    "max_cpu_secs",
    "admin_email",
    "admin_mobile",
    "requires_job",
    "requires_within_secs",
    "params",
    "calendars",
    "calendar_mode",
    "late_after_secs",
    "deadline",
    "duration_alarm",
    "updated_at",
];

/// Every column of a stored job, for reading it back (`rows::job`).
pub(crate) static JOB_COLUMNS: LazyLock<String> =
    LazyLock::new(|| format!("id, {}, created_at", FIELD_COLUMNS.join(", ")));

/// The fields, then `created_at`.
static INSERT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO jobs ({}, created_at) VALUES ({}?)",
        FIELD_COLUMNS.join(", "),
        "?, ".repeat(FIELD_COLUMNS.len())
    )
});

/// The fields, then the id.
static UPDATE_SQL: LazyLock<String> = LazyLock::new(|| {
    let sets: Vec<String> = FIELD_COLUMNS.iter().map(|c| format!("{c} = ?")).collect();
    format!("UPDATE jobs SET {} WHERE id = ?", sets.join(", "))
});

/// The states of a run that is not over.
const GOING: &str = "'scheduled', 'dispatched', 'running'";

/// A job's name is taken whatever its case (`Backup` and `backup` are one job to a person).
fn name_taken(name: &str, existing: &str) -> StoreError {
    let message = if name == existing {
        format!("a job named `{name}` exists already")
    } else {
        format!("`{name}`: a job named `{existing}` exists already (names are unique whatever their case)")
    };
    StoreError::Conflict(FieldError::new("name", message))
}

impl Store {
    /// Inserts a validated job and logs the change, in one transaction.
    pub async fn insert_job(&self, job: &ValidJob) -> Result<Job, StoreError> {
        // A read then a write in one transaction: SQLite refuses the write (BUSY_SNAPSHOT)
        // when another writer committed in between; the whole transaction is tried again.
        super::retry_transient(|| self.insert_job_once(job)).await
    }

    async fn insert_job_once(&self, job: &ValidJob) -> Result<Job, StoreError> {
        let now = crate::model::now_millis();
        let mut tx = self.pool.begin().await?;
        if let Some(existing) = name_in_use(&mut tx, &job.name, None).await? {
            return Err(name_taken(&job.name, &existing));
        }
        let inserted = bind_fields(sqlx::query(&INSERT_SQL), job, now)
            .bind(now)
            .execute(&mut *tx)
            .await;
        let result = match inserted {
            Ok(r) => r,
            Err(e) if is_unique_violation(&e) => return Err(name_taken(&job.name, &job.name)),
            Err(e) => return Err(e.into()),
        };
        let id = match result.last_insert_id() {
            Some(id) => id,
            None => {
                let row = sqlx::query("SELECT id FROM jobs WHERE name = ?")
                    .bind(&job.name)
                    .fetch_one(&mut *tx)
                    .await?;
                row.try_get::<i64, _>(0)?
            }
        };
        if !job.after.is_empty() {
            super::edges::write(&mut tx, self.backend, id, job, now).await?;
        }
        log_change(&mut tx, id, now).await?;
        tx.commit().await?;
        self.job(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("job {id} vanished after insert")))
    }

    pub async fn job(&self, id: i64) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!("SELECT {} FROM jobs WHERE id = ?", *JOB_COLUMNS))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        self.one_with_edges(row.map(|r| rows::job(&r)).transpose()?)
            .await
    }

    /// A job by id (all digits) or by name.
    pub async fn find_job(&self, key: &str) -> Result<Option<Job>, StoreError> {
        if let Ok(id) = key.parse::<i64>() {
            return self.job(id).await;
        }
        let row = sqlx::query(&format!("SELECT {} FROM jobs WHERE name = ?", *JOB_COLUMNS))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        self.one_with_edges(row.map(|r| rows::job(&r)).transpose()?)
            .await
    }

    pub async fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {} FROM jobs ORDER BY id", *JOB_COLUMNS))
            .fetch_all(&self.pool)
            .await?;
        let mut jobs = rows.iter().map(rows::job).collect::<Result<Vec<_>, _>>()?;
        self.attach_edges(&mut jobs).await?;
        Ok(jobs)
    }

    /// Jobs with an id above `after`, in id order, at most `limit`.
    pub async fn jobs_page(&self, after: i64, limit: i64) -> Result<Vec<Job>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM jobs WHERE id > ? ORDER BY id LIMIT ?",
            *JOB_COLUMNS
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut jobs = rows.iter().map(rows::job).collect::<Result<Vec<_>, _>>()?;
        self.attach_edges(&mut jobs).await?;
        Ok(jobs)
    }

    /// The newest run of each of `job_ids` that has one (one index seek per job).
    pub async fn last_runs(&self, job_ids: &[i64]) -> Result<HashMap<i64, LastRun>, StoreError> {
        let mut out = HashMap::with_capacity(job_ids.len());
        for chunk in job_ids.chunks(500) {
            let marks = super::placeholders(chunk.len());
            // One `MAX(id)` per job, each a single seek in `runs_by_job (job_id, id)`: a
            // `GROUP BY job_id` over the IN list walks every run of those jobs instead.
            let sql = format!(
                "SELECT r.job_id, r.id, r.state, r.instant, r.ended_at FROM runs r \
                 WHERE r.id IN (SELECT (SELECT MAX(x.id) FROM runs x WHERE x.job_id = j.id) \
                 FROM jobs j WHERE j.id IN ({marks}))"
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&self.pool).await? {
                let state: String = row.try_get(2)?;
                let state = RunState::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown run state `{state}`")))?;
                out.insert(
                    row.try_get::<i64, _>(0)?,
                    LastRun {
                        id: row.try_get(1)?,
                        state,
                        instant: row.try_get(3)?,
                        ended_at: row.try_get(4)?,
                    },
                );
            }
        }
        Ok(out)
    }

    async fn one_with_edges(&self, job: Option<Job>) -> Result<Option<Job>, StoreError> {
        let Some(job) = job else { return Ok(None) };
        let mut one = [job];
        self.attach_edges(&mut one).await?;
        let [job] = one;
        Ok(Some(job))
    }

    /// Stores an edited job (every field, the name included) and logs the change.
    pub async fn update_job(&self, job: &ValidJob) -> Result<Job, StoreError> {
        // A read then a write in one transaction: SQLite refuses the write (BUSY_SNAPSHOT)
        // when another writer committed in between; the whole transaction is tried again.
        super::retry_transient(|| self.update_job_once(job)).await
    }

    async fn update_job_once(&self, job: &ValidJob) -> Result<Job, StoreError> {
        let now = crate::model::now_millis();
        let mut tx = self.pool.begin().await?;
        if let Some(existing) = name_in_use(&mut tx, &job.name, Some(job.id)).await? {
            return Err(name_taken(&job.name, &existing));
        }
        let old_name: String = sqlx::query_scalar("SELECT name FROM jobs WHERE id = ?")
            .bind(job.id)
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or_else(|| job.name.clone());
        let updated = bind_fields(sqlx::query(&UPDATE_SQL), job, now)
            .bind(job.id)
            .execute(&mut *tx)
            .await;
        match updated {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(name_taken(&job.name, &job.name)),
            Err(e) => return Err(e.into()),
        }
        super::edges::write(&mut tx, self.backend, job.id, job, now).await?;
        for r in super::edges::rename_required(&mut tx, &old_name, &job.name, now).await? {
            log_change(&mut tx, r, now).await?;
        }
        log_change(&mut tx, job.id, now).await?;
        tx.commit().await?;
        self.job(job.id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("job {} vanished after update", job.id)))
    }

    /// Deletes a job and its runs, and logs the change so dispatchers drop it. A job with runs
    /// going is left alone unless `force`: then those runs go with it, and their executors,
    /// which look for runs the store gave up on, stop them.
    pub async fn delete_job(&self, id: i64, force: bool) -> Result<Deleted, StoreError> {
        // A read then a write in one transaction: SQLite refuses the write (BUSY_SNAPSHOT)
        // when another writer committed in between; the whole transaction is tried again.
        super::retry_transient(|| self.delete_job_once(id, force)).await
    }

    async fn delete_job_once(&self, id: i64, force: bool) -> Result<Deleted, StoreError> {
        let now = crate::model::now_millis();
        let mut tx = self.pool.begin().await?;
        let going: Vec<i64> = sqlx::query(&format!(
            "SELECT id FROM runs WHERE job_id = ? AND state IN ({GOING}) ORDER BY id"
        ))
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?;
        if !going.is_empty() && !force {
            return Ok(Deleted::Busy(going));
        }
        let dependents: Vec<String> = sqlx::query(
            "SELECT j.name FROM job_edges e JOIN jobs j ON j.id = e.job_id \
             WHERE e.upstream_id = ? UNION SELECT r.name FROM jobs r JOIN jobs me \
             ON LOWER(r.requires_job) = LOWER(me.name) WHERE me.id = ? ORDER BY 1",
        )
        .bind(id)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| rows::text_at(r, 0).map(Option::unwrap_or_default))
        .collect::<Result<_, _>>()?;
        if !dependents.is_empty() && !force {
            return Ok(Deleted::Depended(dependents));
        }
        for d in super::edges::unlink(&mut tx, id, now).await? {
            log_change(&mut tx, d, now).await?;
        }
        let deleted = sqlx::query("DELETE FROM jobs WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Ok(Deleted::Missing);
        }
        sqlx::query("DELETE FROM runs WHERE job_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM flows WHERE root_job_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        log_change(&mut tx, id, now).await?;
        tx.commit().await?;
        Ok(Deleted::Done)
    }
}

/// The name of the job other than `except` that holds `name`, whatever its case.
async fn name_in_use(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    except: Option<i64>,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT name FROM jobs WHERE LOWER(name) = LOWER(?) AND id <> ? LIMIT 1")
        .bind(name)
        .bind(except.unwrap_or(0))
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|r| rows::text_at(&r, 0).map(Option::unwrap_or_default))
        .transpose()
}

/// Binds a job's fields in the order of `FIELD_COLUMNS` (`now` is `updated_at`).
fn bind_fields<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    job: &'q Job,
    now: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(&job.name)
        .bind(&job.group)
        .bind(&job.schedule)
        .bind(&job.timezone)
        .bind(job.command.as_deref())
        .bind(job.http_url.as_deref())
        .bind(&job.http_method)
        .bind(serde_json::to_string(&job.http_headers).unwrap_or_else(|_| "{}".into()))
        .bind(serde_json::to_string(&job.env).unwrap_or_else(|_| "{}".into()))
        .bind(job.http_body.as_deref())
        .bind(job.http_expect_status)
        .bind(job.timeout_secs)
        .bind(job.run_at.as_deref())
        .bind(job.fanout.as_str())
        .bind(i64::from(job.paused))
        .bind(job.overlap.as_str())
        .bind(job.retries)
        .bind(job.retry_backoff_secs)
        .bind(job.misfire.as_str())
        .bind(job.misfire_window_secs)
        .bind(crate::model::join(&job.alarm_on))
        .bind(crate::model::join(&job.alarm_channels))
        .bind(job.run_as.as_deref())
        .bind(job.description.as_deref())
        .bind(job.limits.max_open_files)
        .bind(job.limits.max_address_space_mb)
        .bind(job.limits.max_cpu_secs)
        .bind(job.admin_email.as_deref())
        .bind(job.admin_mobile.as_deref())
        .bind(job.requires.as_deref())
        .bind(job.within_secs)
        .bind(serde_json::to_string(&job.params).unwrap_or_else(|_| "[]".into()))
        .bind((!job.calendars.is_empty()).then(|| job.calendars.join(",")))
        .bind(job.calendar_mode.as_str())
        .bind(job.late_after_secs)
        .bind(job.deadline.map(|d| d.text()))
        .bind(job.duration_alarm.text())
        .bind(now)
}
