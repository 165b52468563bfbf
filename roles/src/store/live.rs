//! What the console and `run tail` / `run kill` need from the store while runs go: where an
//! executor serves its RPC, the fleet as people read it, output checkpoints of runs whose
//! executor can no longer be asked (draining after a reload), and kill requests that reach an
//! executor the monitor cannot (it polls them with the runs it must give up).

use sqlx::Row;

use super::{rows, Store, StoreError};
use crate::model::{Millis, RunState};

/// What an executor tells about itself with its first heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutorCard {
    /// Base URL of its RPC (`http://host:port`), as dispatchers reach it.
    pub url: String,
    /// Groups it serves, comma-separated.
    pub groups: String,
    pub version: String,
}

/// An executor or dispatcher row, for the fleet page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Member {
    pub instance: String,
    pub started_at: Millis,
    pub last_seen: Millis,
    /// Executors only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Dispatchers only: stopped cleanly at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left_at: Option<Millis>,
    /// Executors only: runs it holds now.
    pub running: i64,
}

/// The answer to a kill request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KillAsk {
    /// Recorded; the executor holding the run (named, if it took it already) stops it.
    Requested {
        executor: Option<String>,
    },
    /// The run already ended.
    Ended(RunState),
    Missing,
}

impl Store {
    /// Writes the card of an executor (after its first heartbeat created its row).
    pub async fn set_executor_card(
        &self,
        instance: &str,
        card: &ExecutorCard,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE executors SET url = ?, groups_served = ?, version = ? WHERE instance = ?",
        )
        .bind(&card.url)
        .bind(&card.groups)
        .bind(&card.version)
        .bind(instance)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The RPC base URL of a live executor instance, if it is still there.
    pub async fn executor_url(&self, instance: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT url FROM executors WHERE instance = ?")
            .bind(instance)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => rows::text_at(&r, 0)?,
            None => None,
        })
    }

    /// Executors (with the runs each holds) and dispatchers, by instance.
    pub async fn fleet_members(&self) -> Result<(Vec<Member>, Vec<Member>), StoreError> {
        let execs = sqlx::query(
            "SELECT e.instance, e.started_at, e.last_seen, e.url, e.groups_served, e.version, \
             (SELECT COUNT(*) FROM runs r WHERE r.executor = e.instance AND r.state = 'running') \
             FROM executors e ORDER BY e.instance",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(Member {
                instance: r.try_get(0)?,
                started_at: r.try_get(1)?,
                last_seen: r.try_get(2)?,
                url: rows::text_at(r, 3)?,
                groups: rows::text_at(r, 4)?,
                version: rows::text_at(r, 5)?,
                left_at: None,
                running: r.try_get(6)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let disps = sqlx::query(
            "SELECT instance, started_at, last_seen, left_at FROM dispatchers ORDER BY instance",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(Member {
                instance: r.try_get(0)?,
                started_at: r.try_get(1)?,
                last_seen: r.try_get(2)?,
                url: None,
                groups: None,
                version: None,
                left_at: r.try_get(3)?,
                running: 0,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((execs, disps))
    }

    /// Asks for a run to be stopped: flagged in the store (its executor checks the flag with
    /// the runs it must give up), so the request holds whoever the monitor can reach.
    pub async fn request_kill(&self, run_id: i64) -> Result<KillAsk, StoreError> {
        let n = sqlx::query(
            "UPDATE runs SET kill_requested = 1 WHERE id = ? \
             AND state IN ('scheduled', 'dispatched', 'running')",
        )
        .bind(run_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let row = sqlx::query("SELECT state, executor FROM runs WHERE id = ?")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(KillAsk::Missing);
        };
        let state: String = row.try_get(0)?;
        let state = RunState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("run {run_id}: state `{state}`")))?;
        if n == 0 && state.is_final() {
            return Ok(KillAsk::Ended(state));
        }
        Ok(KillAsk::Requested {
            executor: rows::text_at(&row, 1)?,
        })
    }

    /// Writes what a running run printed so far, for readers that cannot ask its executor (it
    /// drains after a reload: its RPC is the next generation's). The final record replaces it.
    pub async fn checkpoint_output(
        &self,
        run_id: i64,
        stdout: &str,
        stderr: &str,
        cuts: (i64, i64),
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE runs SET stdout = ?, stderr = ?, stdout_cut = ?, stderr_cut = ? \
             WHERE id = ? AND state = 'running'",
        )
        .bind(stdout)
        .bind(stderr)
        .bind(cuts.0)
        .bind(cuts.1)
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
