//! The store's own outage: the one fault that cannot be alarmed through the store. A monitor
//! whose ping fails sends `store_down` straight to the global recipients — one monitor per
//! outage when Redis answers (the first to `SET NX` a latch there; without Redis, each
//! monitor that sees it sends its own) — and when the store answers again, the outage gets
//! one `store_back` (the first monitor to move the fleet fact `store` past the outage's
//! start) and the `store_down` actually sent is written down with how its deliveries went, so
//! `cronvisor alarms` lists both.

use std::time::Duration;

use redis::AsyncConnectionConfig;

use crate::model::Millis;
use crate::monitor::delivery::alarms::{Alarmer, Sent};
use crate::store::Store;

/// The Redis key whose holder alarms the store's current outage.
const LATCH: &str = "cronvisor:store_down";
/// How long the latch lives unless its holder, still seeing the outage, refreshes it: a holder
/// that dies leaves the next outage unalarmed at most this long.
const LATCH_TTL: Duration = Duration::from_secs(60);

/// What a pass finds of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreState {
    Up,
    Down,
    /// Answering again after an outage this monitor saw.
    Back,
}

/// One outage as this monitor saw it.
struct Outage {
    since: Millis,
    error: String,
    /// The `store_down` this monitor sent (none: another monitor holds the latch).
    sent: Option<Sent>,
}

/// The store's outage and its alarms, across passes.
pub struct StoreWatch {
    store: Store,
    /// Redis, to agree on who alarms an outage; `None` without `cluster.redis_url`.
    latch: Option<(redis::Client, Duration)>,
    /// Who this monitor is, as the latch's value.
    me: String,
    outage: Option<Outage>,
}

impl StoreWatch {
    pub fn new(store: Store, latch: Option<(redis::Client, Duration)>, me: String) -> StoreWatch {
        StoreWatch {
            store,
            latch,
            me,
            outage: None,
        }
    }

    /// Is the store answering? Alarms an outage's start and its end.
    pub async fn check(&mut self, alarmer: &Alarmer, now: Millis) -> StoreState {
        match (self.store.ping().await, &self.outage) {
            (Err(e), None) => {
                let error = e.to_string();
                let sent = if self.take_latch().await {
                    Some(alarmer.send_store_down(&error).await)
                } else {
                    tracing::warn!(error, "store unreachable; another monitor alarmed it");
                    None
                };
                self.outage = Some(Outage {
                    since: now,
                    error,
                    sent,
                });
                StoreState::Down
            }
            (Err(_), Some(o)) => {
                if o.sent.is_some() {
                    self.refresh_latch().await;
                }
                StoreState::Down
            }
            (Ok(()), Some(_)) => {
                if let Some(o) = self.outage.take() {
                    self.ended(alarmer, o, now).await;
                }
                StoreState::Back
            }
            (Ok(()), None) => StoreState::Up,
        }
    }

    /// The store answers again: this monitor's `store_down` written down, one `store_back`
    /// for the outage, the latch released.
    async fn ended(&mut self, alarmer: &Alarmer, o: Outage, now: Millis) {
        tracing::info!("store outage over");
        if let Some(sent) = &o.sent {
            if let Err(e) = alarmer.record_sent(sent).await {
                tracing::warn!(error = %e, "cannot record the store_down alarm sent");
            }
            self.release_latch().await;
        }
        let subject = format!(
            "the store was unreachable for {} s ({})",
            (now - o.since) / 1000,
            o.error
        );
        let alarms = alarmer.system_alarms("store_back", &subject);
        match self
            .store
            .outage_ended_once("store", o.since, now, &alarms, alarmer.merge_since())
            .await
        {
            Ok(true) => {
                tracing::warn!(kind = "store_back", subject, "system alarm raised");
                alarmer.count_system_raised(1);
            }
            Ok(false) => tracing::info!("the store's return was alarmed by another monitor"),
            Err(e) => tracing::warn!(error = %e, "cannot record the store's return"),
        }
    }

    async fn connection(&self) -> Option<redis::aio::MultiplexedConnection> {
        let (client, timeout) = self.latch.as_ref()?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(*timeout))
            .set_response_timeout(Some(*timeout));
        match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "redis unreachable: alarming the store's outage from this monitor too");
                None
            }
        }
    }

    /// True when this monitor alarms the outage: it took the latch, or there is no Redis to
    /// agree through (each monitor then sends its own: more than one beats none).
    async fn take_latch(&self) -> bool {
        let Some(mut conn) = self.connection().await else {
            return true;
        };
        let taken: Result<Option<String>, _> = redis::cmd("SET")
            .arg(LATCH)
            .arg(&self.me)
            .arg("NX")
            .arg("PX")
            .arg(LATCH_TTL.as_millis() as u64)
            .query_async(&mut conn)
            .await;
        match taken {
            Ok(v) => v.is_some(),
            Err(e) => {
                tracing::warn!(error = %e, "redis did not answer: alarming the store's outage from this monitor too");
                true
            }
        }
    }

    async fn refresh_latch(&self) {
        if let Some(mut conn) = self.connection().await {
            let _: Result<i64, _> = redis::cmd("PEXPIRE")
                .arg(LATCH)
                .arg(LATCH_TTL.as_millis() as u64)
                .query_async(&mut conn)
                .await;
        }
    }

    /// Deletes the latch if this monitor holds it.
    async fn release_latch(&self) {
        let Some(mut conn) = self.connection().await else {
            return;
        };
        let release = redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        );
        let _: Result<i64, _> = release
            .key(LATCH)
            .arg(&self.me)
            .invoke_async(&mut conn)
            .await;
    }
}
