//! The audit log: who changed what, when, from where — every job change, run kill, user and
//! token change, login and failed login. Appended to only; pruned with the runs' retention.

use sqlx::Row;

use super::{rows, Store, StoreError};
use crate::model::access::AuditEntry;
use crate::model::Millis;

/// An entry to record.
#[derive(Debug, Clone, Default)]
pub struct NewAudit<'a> {
    pub actor: &'a str,
    pub address: Option<&'a str>,
    pub action: &'a str,
    pub object: String,
    pub job_id: Option<i64>,
    pub details: serde_json::Value,
}

/// Which entries to list, newest first. Empty filters match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub job_id: Option<i64>,
    /// The actor, exactly (a user name, `token:NAME`).
    pub actor: Option<String>,
    pub since: Option<Millis>,
    /// The cursor: entries with a smaller id.
    pub before: Option<i64>,
    pub limit: i64,
    /// Only entries about jobs of these groups (a group-scoped reader); `None`: all.
    pub groups: Option<Vec<String>>,
}

impl Store {
    pub async fn record_audit(&self, e: &NewAudit<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit (at, actor, address, action, object, job_id, details) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(crate::model::now_millis())
        .bind(e.actor)
        .bind(e.address)
        .bind(e.action)
        .bind(&e.object)
        .bind(e.job_id)
        .bind(e.details.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let mut clauses = Vec::new();
        if f.job_id.is_some() {
            clauses.push("job_id = ?");
        }
        if f.actor.is_some() {
            clauses.push("actor = ?");
        }
        if f.since.is_some() {
            clauses.push("at >= ?");
        }
        if f.before.is_some() {
            clauses.push("id < ?");
        }
        let in_groups = f.groups.as_ref().map(|g| {
            let marks = vec!["?"; g.len().max(1)].join(", ");
            format!("job_id IN (SELECT id FROM jobs WHERE job_group IN ({marks}))")
        });
        if let Some(c) = &in_groups {
            clauses.push(c);
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT id, at, actor, address, action, object, job_id, details FROM audit{filter} \
             ORDER BY id DESC LIMIT ?"
        );
        let mut q = sqlx::query(&sql);
        if let Some(j) = f.job_id {
            q = q.bind(j);
        }
        if let Some(a) = &f.actor {
            q = q.bind(a.clone());
        }
        for v in [f.since, f.before].into_iter().flatten() {
            q = q.bind(v);
        }
        if let Some(groups) = &f.groups {
            if groups.is_empty() {
                q = q.bind(String::new());
            }
            for g in groups {
                q = q.bind(g.clone());
            }
        }
        let rows = q
            .bind(f.limit.clamp(1, 10_000))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let details = rows::text_at(r, 7)?.unwrap_or_default();
                Ok(AuditEntry {
                    id: r.try_get(0)?,
                    at: r.try_get(1)?,
                    actor: r.try_get(2)?,
                    address: rows::text_at(r, 3)?,
                    action: r.try_get(4)?,
                    object: r.try_get(5)?,
                    job_id: r.try_get(6)?,
                    details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
                })
            })
            .collect()
    }

    /// Deletes entries older than `before`.
    pub async fn prune_audit(&self, before: Millis) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM audit WHERE at < ?")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
