//! Hosts whose wall clock is off the store's. Every role measures its host's clock against the
//! store's at each heartbeat (`presence`); a host off by more than `monitor.max_clock_skew` is
//! alarmed once (`clock_skew`), and its return once (`clock_back`), however many monitors and
//! processes see it — each flip is a conditional update of the fleet fact `clock:<host>`.
//!
//! Why it matters: a dispatcher fires by its own clock, so a host 12 s ahead fires 12 s early,
//! and an executor's start and end times are its clock's. The store's clock is the one every
//! host shares.

use std::collections::BTreeMap;

use crate::model::Millis;
use crate::monitor::delivery::alarms::Alarmer;
use crate::store::Store;

pub struct Clocks {
    store: Store,
    /// Off by more than this is a fault (`monitor.max_clock_skew`).
    max_skew: Millis,
    /// Processes heard from within this are the ones whose measurement counts.
    lost_after: Millis,
}

impl Clocks {
    pub fn new(store: Store, max_skew: Millis, lost_after: Millis) -> Clocks {
        Clocks {
            store,
            max_skew,
            lost_after,
        }
    }

    /// Alarms each host whose clock went off, or came back, since the fact was last flipped.
    pub async fn check(&self, alarmer: &Alarmer, now: Millis) {
        let skews = match self.store.clock_skews(now - self.lost_after).await {
            Ok(s) => per_host(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the hosts' clocks");
                return;
            }
        };
        let facts = match self.store.fleet_facts("clock:").await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the hosts' clock facts");
                return;
            }
        };
        for (host, skew) in skews {
            let fact = format!("clock:{host}");
            let skewed = skew.abs() > self.max_skew;
            let was_down = facts.get(&fact).is_some_and(|s| s == "down");
            if skewed != was_down {
                self.flip(alarmer, &host, &fact, skewed.then_some(skew), now)
                    .await;
            }
        }
    }

    /// Flips `clock:<host>` to skewed (`Some(skew)`) or back, with its alarm.
    async fn flip(
        &self,
        alarmer: &Alarmer,
        host: &str,
        fact: &str,
        skew: Option<Millis>,
        now: Millis,
    ) {
        let max = self.max_skew as f64 / 1000.0;
        let alarms = |since: Millis| match skew {
            Some(skew) => alarmer.system_alarms(
                "clock_skew",
                &format!(
                    "{host}'s clock is {:.1} s {} the store's (more than \
                     monitor.max_clock_skew, {max} s): its dispatcher fires by it and its \
                     executor times runs by it",
                    skew.abs() as f64 / 1000.0,
                    if skew > 0 { "ahead of" } else { "behind" },
                ),
            ),
            None => alarmer.system_alarms(
                "clock_back",
                &format!(
                    "{host}'s clock agrees with the store's again (within {max} s) after {} s",
                    (now - since) / 1000
                ),
            ),
        };
        let (from, to) = if skew.is_some() {
            ("up", "down")
        } else {
            ("down", "up")
        };
        let merge_since = alarmer.merge_since();
        let flipped = match self.store.ensure_fleet_fact(fact).await {
            Ok(()) => {
                self.store
                    .flip_fleet_state_alarmed(fact, from, to, now, &alarms, merge_since)
                    .await
            }
            Err(e) => Err(e),
        };
        match flipped {
            Ok(Some(_)) => {
                tracing::warn!(host, skew_ms = skew, "system alarm raised");
                alarmer.count_system_raised(1);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, host, "cannot record the host's clock"),
        }
    }
}

/// Per host, the skew nearest zero among its processes' measurements: they read one clock,
/// so a host counts as off only when every live process of it says so.
fn per_host(skews: Vec<(String, Millis)>) -> BTreeMap<String, Millis> {
    let mut out: BTreeMap<String, Millis> = BTreeMap::new();
    for (instance, skew) in skews {
        let host = host_of(&instance).to_string();
        out.entry(host)
            .and_modify(|s| {
                if skew.abs() < s.abs() {
                    *s = skew
                }
            })
            .or_insert(skew);
    }
    out
}

/// The host of an instance id: `host/pid/start` (dispatchers, monitors) or `host/address/pid`
/// (executors), read from the right since a host name may hold a `/`.
fn host_of(instance: &str) -> &str {
    instance.rsplitn(3, '/').nth(2).unwrap_or(instance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_off_only_when_each_of_its_processes_says_so() {
        let m = per_host(vec![
            ("h1/12/1700".into(), 12_000),
            ("h1/127.0.0.1:7071/13".into(), 300),
            ("h/2/9/1700".into(), -6_000),
            ("h/2/127.0.0.1:7071/10".into(), -5_900),
        ]);
        assert_eq!(m.get("h1"), Some(&300));
        assert_eq!(m.get("h/2"), Some(&-5_900));
        assert_eq!(host_of("nohost"), "nohost");
    }
}
