//! Who is alive in the fleet, from the heartbeats in the store: runs of executors that went
//! silent are marked lost; executors, dispatchers and monitors that stopped without leaving
//! are alarmed once each, and so is a fleet with no dispatcher at all (nothing fires) and its end, and an
//! outside dependency (etcd, Redis) going away and coming back. Several monitors agree through
//! conditional updates in the store, so each event is acted on once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::Dependencies;
use crate::metrics::Metric;
use crate::model::Millis;
use crate::store::Store;

use crate::monitor::delivery::alarms::Alarmer;

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
    /// The dependencies this monitor probes, and its view of them as of the last check.
    probed: Vec<&'static str>,
    degraded: BTreeMap<String, String>,
    deps_seeded: bool,
}

impl Fleet {
    pub fn new(
        store: Store,
        lost_after: Millis,
        undelivered_after: Millis,
        overdue_grace: Millis,
        lost_runs: Arc<Metric>,
        probed: Vec<&'static str>,
    ) -> Fleet {
        let mut fleet = Fleet {
            store,
            lost_after,
            undelivered_after,
            overdue_grace,
            lost_runs,
            settled_at: Instant::now(),
            probed,
            degraded: BTreeMap::new(),
            deps_seeded: false,
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
        let merge_since = alarmer.merge_since();
        let executors = self
            .store
            .expire_executors(stale, &gone_alarms(alarmer, "executor"), merge_since)
            .await;
        count_gone(alarmer, "executor", executors);
        let dispatchers = self
            .store
            .expire_dispatchers(stale, &gone_alarms(alarmer, "dispatcher"), merge_since)
            .await;
        count_gone(alarmer, "dispatcher", dispatchers);
        let monitors = self
            .store
            .expire_monitors(stale, &gone_alarms(alarmer, "monitor"), merge_since)
            .await;
        count_gone(alarmer, "monitor", monitors);
        let seen = match self.store.dispatchers_seen(stale).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot count dispatchers");
                return;
            }
        };
        // The outage began when the last dispatcher was last heard from. Each flip is stored
        // with its alarm, in one transaction.
        let lost_after_s = self.lost_after / 1000;
        let merge_since = alarmer.merge_since();
        let flip = if seen == 0 {
            let down = |_since| {
                let subject = format!(
                    "no dispatcher has been heard from for {lost_after_s} s: no job fires until \
                     one runs again; the instants missed meanwhile are then recorded `missed`, or \
                     run once where a job's misfire policy says so"
                );
                alarmer.system_alarms("dispatchers_down", &subject)
            };
            self.store
                .flip_fleet_state_alarmed("dispatchers", "up", "down", stale, &down, merge_since)
                .await
                .map(|f| f.map(|_| "dispatchers_down"))
        } else {
            let back = |since: Millis| {
                let subject = format!(
                    "a dispatcher runs again after {} s without any",
                    (now - since) / 1000
                );
                alarmer.system_alarms("dispatchers_back", &subject)
            };
            self.store
                .flip_fleet_state_alarmed("dispatchers", "down", "up", now, &back, merge_since)
                .await
                .map(|f| f.map(|_| "dispatchers_back"))
        };
        match flip {
            Ok(Some(kind)) => {
                tracing::warn!(kind, "system alarm raised");
                alarmer.count_system_raised(1);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot record the dispatchers' state"),
        }
    }

    /// Alarms the changes of this monitor's view of its dependencies since the last check. The
    /// view starts from the shared facts, once the probe has tried each dependency: a monitor
    /// started during an outage reports its end, and a fact left `down` by a monitor that
    /// stopped never mutes the next outage.
    pub async fn dependencies(&mut self, alarmer: &Alarmer, deps: &Dependencies, now: Millis) {
        if !deps.probed() {
            return;
        }
        if !self.deps_seeded {
            for name in &self.probed {
                let fact = format!("dependency:{name}");
                match self.store.fleet_fact(&fact).await {
                    Ok(Some(state)) if state == "down" => {
                        self.degraded
                            .insert(name.to_string(), "down when this monitor started".into());
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the dependencies' state");
                        return;
                    }
                }
            }
            self.deps_seeded = true;
        }
        let current: BTreeMap<String, String> = deps
            .snapshot()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        // A change whose fact could not be written (the store erred) is not taken into this
        // monitor's view: the next pass tries it again. Taken anyway, the fact would stay as
        // it was — `down` for good, muting the next outage's alarm (chaos seed 33).
        let mut view = current.clone();
        for (dep, error) in &current {
            if !self.degraded.contains_key(dep)
                && !self.dependency(alarmer, dep, Some(error), now).await
            {
                view.remove(dep);
            }
        }
        for (dep, error) in &self.degraded {
            if !current.contains_key(dep) && !self.dependency(alarmer, dep, None, now).await {
                view.insert(dep.clone(), error.clone());
            }
        }
        self.degraded = view;
    }

    /// A dependency (etcd, Redis) this monitor saw go away (`down` = the error) or come back:
    /// one alarm per event however many monitors see it, raised by the first to flip the
    /// shared fact `dependency:<name>`.
    /// False when the store could not record it (to be tried again).
    async fn dependency(
        &self,
        alarmer: &Alarmer,
        dep: &str,
        down: Option<&str>,
        now: Millis,
    ) -> bool {
        let fact = format!("dependency:{dep}");
        let merge_since = alarmer.merge_since();
        let alarms = |since: Millis| match down {
            Some(error) => {
                alarmer.system_alarms("dependency_down", &format!("{dep} unreachable: {error}"))
            }
            None => alarmer.system_alarms(
                "dependency_back",
                &format!("{dep} reachable again after {} s", (now - since) / 1000),
            ),
        };
        let (from, to, at) = match down {
            Some(_) => ("up", "down", now),
            None => ("down", "up", now),
        };
        // The flip and its alarm in one transaction: a store error between them cannot leave
        // the fact flipped and the alarm unwritten (found by the chaos suite, seed 23).
        let flipped = match self.store.ensure_fleet_fact(&fact).await {
            Ok(()) => {
                self.store
                    .flip_fleet_state_alarmed(&fact, from, to, at, &alarms, merge_since)
                    .await
            }
            Err(e) => Err(e),
        };
        match flipped {
            Ok(Some(_)) => {
                tracing::warn!(dep, down = down.is_some(), "system alarm raised");
                alarmer.count_system_raised(1);
                true
            }
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(error = %e, dep, "cannot record the dependency's state; trying again");
                false
            }
        }
    }
}

/// One `<role>_lost` alarm per process that stopped without leaving, stored with the removal
/// of its row.
fn gone_alarms<'a>(
    alarmer: &'a Alarmer,
    role: &'a str,
) -> impl Fn(&str) -> Vec<crate::store::NewAlarm> + Send + Sync + 'a {
    move |instance| {
        let subject = format!("{role} {instance} stopped without leaving");
        tracing::warn!(kind = %format!("{role}_lost"), subject, "system alarm raised");
        alarmer.system_alarms(&format!("{role}_lost"), &subject)
    }
}

fn count_gone(alarmer: &Alarmer, role: &str, gone: Result<Vec<String>, crate::store::StoreError>) {
    match gone {
        Ok(gone) => alarmer.count_system_raised(gone.len()),
        Err(e) => tracing::warn!(error = %e, role, "cannot check for silent processes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AlarmConfig;
    use crate::http::tls::Trust;
    use crate::metrics::Metrics;
    use crate::store::tests::temp_store;

    fn monitor(store: &Store, metrics: &Metrics) -> Fleet {
        let lost = metrics.counter("lost", "", "");
        Fleet::new(store.clone(), 1000, 1000, 1000, lost, vec!["redis"])
    }

    fn view(down: Option<&str>) -> Dependencies {
        let deps = Dependencies::default();
        if let Some(error) = down {
            deps.degrade("redis", error);
        }
        deps.mark_probed();
        deps
    }

    /// Every event alarmed, by kind (merged repeats counted).
    async fn kinds(store: &Store) -> Vec<String> {
        let mut kinds: Vec<String> = store
            .alarms(100)
            .await
            .expect("alarms")
            .into_iter()
            .flat_map(|a| std::iter::repeat_n(a.kind, a.count as usize))
            .collect();
        kinds.sort();
        kinds
    }

    #[tokio::test]
    async fn dependency_outages_are_alarmed_once_across_monitors_and_restarts() {
        let t = temp_store("fleet-deps").await;
        let metrics = Metrics::new("monitor");
        let trust = Trust::load(None).expect("roots");
        let alarmer = Alarmer::new(t.store.clone(), AlarmConfig::default(), &trust, &metrics);
        // Two monitors see Redis go away: one alarm.
        let (mut a, mut b) = (monitor(&t.store, &metrics), monitor(&t.store, &metrics));
        let down = view(Some("refused"));
        a.dependencies(&alarmer, &down, 1_000).await;
        b.dependencies(&alarmer, &down, 1_100).await;
        assert_eq!(kinds(&t.store).await, ["dependency_down"]);
        // Both stop during the outage; a new monitor starts after Redis came back: it reports
        // the end, once, although it never saw the outage itself.
        drop((a, b));
        let mut c = monitor(&t.store, &metrics);
        let up = view(None);
        c.dependencies(&alarmer, &up, 5_000).await;
        c.dependencies(&alarmer, &up, 6_000).await;
        assert_eq!(
            kinds(&t.store).await,
            ["dependency_back", "dependency_down"]
        );
        // The next outage is not muted by what the stopped monitors left behind.
        c.dependencies(&alarmer, &view(Some("refused again")), 9_000)
            .await;
        let k = kinds(&t.store).await;
        assert_eq!(
            k.iter().filter(|k| *k == "dependency_down").count(),
            2,
            "{k:?}"
        );
        // Nothing before the probe has run: an empty view is not "everything is fine".
        let mut d = monitor(&t.store, &metrics);
        d.dependencies(&alarmer, &Dependencies::default(), 10_000)
            .await;
        assert_eq!(kinds(&t.store).await.len(), 3);
    }

    /// A change the store could not record is tried again at the next pass: taken into the
    /// monitor's view anyway, the fact would stay `down` and mute the next outage.
    #[tokio::test]
    async fn a_dependency_change_the_store_refused_is_recorded_at_the_next_pass() {
        let t = temp_store("fleet-deps-retry").await;
        let metrics = Metrics::new("monitor");
        let trust = Trust::load(None).expect("roots");
        let alarmer = Alarmer::new(t.store.clone(), AlarmConfig::default(), &trust, &metrics);
        let mut a = monitor(&t.store, &metrics);
        a.dependencies(&alarmer, &view(None), 1_000).await;
        a.dependencies(&alarmer, &view(Some("refused")), 2_000)
            .await;
        assert_eq!(kinds(&t.store).await, ["dependency_down"]);
        // Redis is back while the store refuses the alarm: nothing recorded yet...
        crate::store::tests::refuse_alarms(&t, true).await;
        a.dependencies(&alarmer, &view(None), 3_000).await;
        crate::store::tests::refuse_alarms(&t, false).await;
        assert_eq!(kinds(&t.store).await, ["dependency_down"]);
        // ...and at the next pass it is.
        a.dependencies(&alarmer, &view(None), 4_000).await;
        assert_eq!(
            kinds(&t.store).await,
            ["dependency_back", "dependency_down"]
        );
        // So the next outage is alarmed.
        a.dependencies(&alarmer, &view(Some("refused")), 5_000)
            .await;
        let k = kinds(&t.store).await;
        assert_eq!(
            k.iter().filter(|k| *k == "dependency_down").count(),
            2,
            "{k:?}"
        );
    }
}
