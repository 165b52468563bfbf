//! The Redis fire lock: the fast path of fire-once across dispatchers.
//!
//! For each (job, instant) every dispatcher tries `SET key owner NX PX ttl`; the one that gets
//! it records the run and then turns the key into `done` (only if it still owns it). The others
//! do nothing now, but look again once the lock could have expired: a key that is not `done` by
//! then means the owner died or stalled between lock and record, and they fall back to the
//! store's unique key — the fence — which lets exactly one of them record it. So a dispatcher
//! killed mid-fire costs lateness, never a gap, and never a duplicate.
//!
//! All calls for a burst are one pipelined round trip. When Redis is unreachable every call
//! fails fast and the caller fires on the fence alone (still exactly once, one store round
//! trip per dispatcher instead of one in total).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Script};

use super::{ClusterError, Dependencies};
use crate::model::Millis;

/// The value of a lock whose run is recorded.
const DONE: &str = "done";

/// Owner-checked transition to `done` (or release when ARGV[3] is "release"): a lock is only
/// ever changed by the dispatcher that holds it.
const SETTLE: &str = r#"
local n = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    if ARGV[3] == 'release' then
      redis.call('DEL', key)
    else
      redis.call('SET', key, 'done', 'PX', ARGV[2])
    end
    n = n + 1
  end
end
return n
"#;

pub struct FireLock {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    owner: String,
    ttl: Duration,
    settle: Script,
    deps: Arc<Dependencies>,
    timeout: Duration,
    round_trips: Arc<crate::metrics::Metric>,
}

impl std::fmt::Debug for FireLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FireLock")
            .field("owner", &self.owner)
            .field("ttl", &self.ttl)
            .finish()
    }
}

fn key(job_id: i64, instant: Millis) -> String {
    format!("cronvisor:fire:{job_id}:{instant}")
}

impl FireLock {
    /// Parses the URL; connects lazily. `owner` must be unique per dispatcher process.
    pub fn new(
        client: redis::Client,
        owner: String,
        ttl: Duration,
        timeout: Duration,
        deps: Arc<Dependencies>,
        round_trips: Arc<crate::metrics::Metric>,
    ) -> Result<FireLock, ClusterError> {
        Ok(FireLock {
            client,
            conn: tokio::sync::Mutex::new(None),
            owner,
            ttl,
            settle: Script::new(SETTLE),
            deps,
            timeout,
            round_trips,
        })
    }

    /// How long a lock lives: the others look again after this.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn connection(&self) -> Result<MultiplexedConnection, ClusterError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(ClusterError::redis("connecting to redis"))?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Records the outcome of a call: an error drops the connection (the next call reconnects)
    /// and marks Redis degraded; a success marks it healthy.
    async fn outcome<T>(&self, r: Result<T, ClusterError>) -> Result<T, ClusterError> {
        self.round_trips.inc();
        match &r {
            Ok(_) => {
                if self.deps.restore("redis") {
                    tracing::info!("redis reachable again: the fire lock is back");
                }
            }
            Err(e) => {
                *self.conn.lock().await = None;
                if self.deps.degrade("redis", e.to_string()) {
                    tracing::warn!(error = %e, "redis unreachable: firing on the store fence alone");
                }
            }
        }
        r
    }

    /// Tries to take the lock of each (job, instant); true where this dispatcher got it.
    pub async fn acquire(&self, fires: &[(i64, Millis)]) -> Result<Vec<bool>, ClusterError> {
        let r = async {
            let mut conn = self.connection().await?;
            let mut pipe = redis::pipe();
            let ttl = self.ttl.as_millis() as u64;
            for (job, instant) in fires {
                pipe.cmd("SET")
                    .arg(key(*job, *instant))
                    .arg(&self.owner)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl);
            }
            let replies: Vec<Option<String>> = pipe
                .query_async(&mut conn)
                .await
                .map_err(ClusterError::redis("redis SET NX"))?;
            Ok(replies.into_iter().map(|r| r.is_some()).collect())
        }
        .await;
        self.outcome(r).await
    }

    /// Marks the given locks (held by this dispatcher) `done`: their runs are recorded. Kept for
    /// three lock lifetimes, long enough for the others' second look.
    pub async fn confirm(&self, fires: &[(i64, Millis)]) -> Result<(), ClusterError> {
        self.settle(fires, "done").await
    }

    /// Gives the given locks back (the runs could not be recorded): the others' second look
    /// then records them through the fence.
    pub async fn release(&self, fires: &[(i64, Millis)]) -> Result<(), ClusterError> {
        self.settle(fires, "release").await
    }

    async fn settle(&self, fires: &[(i64, Millis)], how: &str) -> Result<(), ClusterError> {
        if fires.is_empty() {
            return Ok(());
        }
        let r = async {
            let mut conn = self.connection().await?;
            let mut call = self.settle.prepare_invoke();
            for (job, instant) in fires {
                call.key(key(*job, *instant));
            }
            call.arg(&self.owner)
                .arg((self.ttl.as_millis() as u64) * 3)
                .arg(how);
            let _: i64 = call
                .invoke_async(&mut conn)
                .await
                .map_err(ClusterError::redis("redis settle"))?;
            Ok(())
        }
        .await;
        self.outcome(r).await
    }

    /// The second look: true where the fire is known recorded (`done`).
    pub async fn settled(&self, fires: &[(i64, Millis)]) -> Result<Vec<bool>, ClusterError> {
        let r = async {
            let mut conn = self.connection().await?;
            let keys: Vec<String> = fires.iter().map(|(j, t)| key(*j, *t)).collect();
            let values: Vec<Option<String>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .map_err(ClusterError::redis("redis MGET"))?;
            Ok(values
                .into_iter()
                .map(|v| v.as_deref() == Some(DONE))
                .collect())
        }
        .await;
        self.outcome(r).await
    }
}
