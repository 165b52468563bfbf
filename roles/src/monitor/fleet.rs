//! Who is alive in the fleet, from the heartbeats in the store: executors and dispatchers that
//! stopped without leaving are alarmed once each, and so is a fleet with no dispatcher at all
//! (nothing fires) and its end. Several monitors agree through conditional updates in the
//! store, so each event raises one alarm.

use std::time::{Duration, Instant};

use crate::model::Millis;
use crate::store::Store;

use super::alarms::Alarmer;

pub struct Fleet {
    store: Store,
    /// Silent this long means gone (`monitor.lost_after_ms`).
    lost_after: Millis,
    /// A monitor that just started has not yet given dispatchers the time to beat.
    started: Instant,
}

impl Fleet {
    pub fn new(store: Store, lost_after: Millis) -> Fleet {
        Fleet {
            store,
            lost_after,
            started: Instant::now(),
        }
    }

    pub async fn check(&self, alarmer: &Alarmer, now: Millis) {
        let stale = now - self.lost_after;
        match self.store.expire_executors(stale).await {
            Ok(gone) => {
                for instance in gone {
                    let subject = format!("executor {instance} stopped without leaving");
                    alarmer.raise_system("executor_lost", &subject).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot check executors"),
        }
        match self.store.expire_dispatchers(stale).await {
            Ok(gone) => {
                for instance in gone {
                    let subject = format!("dispatcher {instance} stopped without leaving");
                    alarmer.raise_system("dispatcher_lost", &subject).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot check dispatchers"),
        }
        if self.started.elapsed() < Duration::from_millis(self.lost_after as u64) {
            return;
        }
        let seen = match self.store.dispatchers_seen(stale).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot count dispatchers");
                return;
            }
        };
        // The outage began when the last dispatcher was last heard from.
        let flip = if seen == 0 {
            self.store
                .flip_fleet_state("dispatchers", "up", "down", stale)
                .await
        } else {
            self.store
                .flip_fleet_state("dispatchers", "down", "up", now)
                .await
        };
        match flip {
            Ok(Some(_)) if seen == 0 => {
                let subject = format!(
                    "no dispatcher has been heard from for {} s: no job fires until one runs \
                     again; the instants missed meanwhile are then recorded `missed`, or run once \
                     where a job's misfire policy says so",
                    self.lost_after / 1000
                );
                alarmer.raise_system("dispatchers_down", &subject).await;
            }
            Ok(Some(since)) => {
                let subject = format!(
                    "a dispatcher runs again after {} s without any",
                    (now - since) / 1000
                );
                alarmer.raise_system("dispatchers_back", &subject).await;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot record the dispatchers' state"),
        }
    }
}
