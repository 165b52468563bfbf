//! Who is alive in the fleet, from the heartbeats in the store: runs of executors that went
//! silent are marked lost; executors and dispatchers that stopped without leaving are alarmed
//! once each, and so is a fleet with no dispatcher at all (nothing fires) and its end. Several
//! monitors agree through conditional updates in the store, so each event is acted on once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::Metric;
use crate::model::Millis;
use crate::store::Store;

use super::alarms::Alarmer;

pub struct Fleet {
    store: Store,
    /// Silent this long means gone (`monitor.lost_after_ms`).
    lost_after: Millis,
    /// A run dispatched this long ago that no executor accepted is lost.
    undelivered_after: Millis,
    /// A run still going this long past its job's timeout is lost (the kill grace, plus
    /// `lost_after` for its result to be written).
    overdue_grace: Millis,
    lost_runs: Arc<Metric>,
    /// No judgement before this: heartbeats are only evidence once everyone had `lost_after`
    /// to beat — after this monitor starts, and after the store comes back from an outage
    /// (during which no beat could land, so every row looks stale).
    settled_at: Instant,
}

impl Fleet {
    pub fn new(
        store: Store,
        lost_after: Millis,
        undelivered_after: Millis,
        overdue_grace: Millis,
        lost_runs: Arc<Metric>,
    ) -> Fleet {
        let mut fleet = Fleet {
            store,
            lost_after,
            undelivered_after,
            overdue_grace,
            lost_runs,
            settled_at: Instant::now(),
        };
        fleet.wait_for_beats();
        fleet
    }

    /// Suspends judgement for `lost_after`: the store just came back.
    pub fn wait_for_beats(&mut self) {
        self.settled_at = Instant::now() + Duration::from_millis(self.lost_after.max(0) as u64);
    }

    pub async fn check(&self, alarmer: &Alarmer, now: Millis) {
        if Instant::now() < self.settled_at {
            return;
        }
        let stale = now - self.lost_after;
        match self
            .store
            .mark_lost(stale, now - self.undelivered_after, self.overdue_grace)
            .await
        {
            Ok(lost) => {
                for run in lost {
                    self.lost_runs.inc();
                    tracing::warn!(run, "run lost: its executor stopped before it ended");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot check for lost runs"),
        }
        let executors = self.store.expire_executors(stale).await;
        alarm_gone(alarmer, "executor", executors).await;
        let dispatchers = self.store.expire_dispatchers(stale).await;
        alarm_gone(alarmer, "dispatcher", dispatchers).await;
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

impl Fleet {
    /// A dependency (etcd, Redis) this monitor saw go away (`down` = the error) or come back:
    /// one alarm per event however many monitors see it, raised by the first to flip the
    /// shared fact `dependency:<name>`.
    pub async fn dependency(&self, alarmer: &Alarmer, dep: &str, down: Option<&str>, now: Millis) {
        let fact = format!("dependency:{dep}");
        let flipped = match self.store.ensure_fleet_fact(&fact).await {
            Ok(()) => match down {
                Some(_) => self.store.flip_fleet_state(&fact, "up", "down", now).await,
                None => self.store.flip_fleet_state(&fact, "down", "up", now).await,
            },
            Err(e) => Err(e),
        };
        match (flipped, down) {
            (Ok(Some(_)), Some(error)) => {
                let subject = format!("{dep} unreachable: {error}");
                alarmer.raise_system("dependency_down", &subject).await;
            }
            (Ok(Some(since)), None) => {
                let subject = format!("{dep} reachable again after {} s", (now - since) / 1000);
                alarmer.raise_system("dependency_back", &subject).await;
            }
            (Ok(None), _) => {}
            (Err(e), _) => tracing::warn!(error = %e, dep, "cannot record the dependency's state"),
        }
    }
}

/// One `<role>_lost` alarm per process that stopped without leaving.
async fn alarm_gone(
    alarmer: &Alarmer,
    role: &str,
    gone: Result<Vec<String>, crate::store::StoreError>,
) {
    match gone {
        Ok(gone) => {
            for instance in gone {
                let subject = format!("{role} {instance} stopped without leaving");
                alarmer
                    .raise_system(&format!("{role}_lost"), &subject)
                    .await;
            }
        }
        Err(e) => tracing::warn!(error = %e, role, "cannot check for silent processes"),
    }
}
