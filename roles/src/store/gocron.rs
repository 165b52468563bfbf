//! The job table of the system cronvisor replaces (gocron's `tb_cron_schedule`), read for
//! `cronvisor import gocron`: a [`Store`] opened on that database, read only, every column cast
//! to a plain type so that its exact column types do not matter.

use sqlx::Row;

use super::{rows, Store, StoreError};

/// One row of `tb_cron_schedule`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GocronJob {
    pub jobid: i64,
    pub job_name: String,
    pub cmd: String,
    /// robfig/cron's seconds-first six fields (or `@every`), as cronvisor reads them.
    pub rule: String,
    /// `shell`, `curl` or `wget` (the last two: `cmd` is a URL to fetch).
    pub querytype: String,
    /// 1 = active.
    pub state: i64,
    pub runat: Option<String>,
    /// 1 = skip and alarm, 2 = kill the previous run and start, 3 = skip silently, 4 = both run.
    pub overflow: i64,
    pub admin_mobile: Option<String>,
    pub admin_email: Option<String>,
    pub remark: Option<String>,
}

impl Store {
    pub async fn gocron_jobs(&self) -> Result<Vec<GocronJob>, StoreError> {
        let rows = sqlx::query(
            "SELECT CAST(jobid AS SIGNED), CAST(job_name AS CHAR), CAST(cmd AS CHAR), \
             CAST(rule AS CHAR), CAST(querytype AS CHAR), CAST(state AS SIGNED), \
             CAST(runat AS CHAR), CAST(overflow AS SIGNED), CAST(admin_mobile AS CHAR), \
             CAST(admin_email AS CHAR), CAST(remark AS CHAR) FROM tb_cron_schedule ORDER BY jobid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(GocronJob {
                    jobid: r.try_get(0)?,
                    job_name: rows::text_at(r, 1)?.unwrap_or_default(),
                    cmd: rows::text_at(r, 2)?.unwrap_or_default(),
                    rule: rows::text_at(r, 3)?.unwrap_or_default(),
                    querytype: rows::text_at(r, 4)?.unwrap_or_default(),
                    state: r.try_get::<Option<i64>, _>(5)?.unwrap_or(0),
                    runat: rows::text_at(r, 6)?.filter(|s| !s.trim().is_empty()),
                    overflow: r.try_get::<Option<i64>, _>(7)?.unwrap_or(4),
                    admin_mobile: rows::text_at(r, 8)?.filter(|s| !s.trim().is_empty()),
                    admin_email: rows::text_at(r, 9)?.filter(|s| !s.trim().is_empty()),
                    remark: rows::text_at(r, 10)?.filter(|s| !s.trim().is_empty()),
                })
            })
            .collect()
    }
}
