//! The monitor's checks: runs whose executor went away and processes gone (`fleet`), instants
//! nobody recorded (`gaps`, `cursors`), hosts' clocks (`clocks`), the store's own outage
//! (`outage`), and the store's bounds (retention, pruning). One pass per
//! `monitor.check_interval`; each finding becomes an alarm for `delivery`. Apart from the web
//! side so that no request can delay a pass, and apart from delivery so that a slow channel
//! never hides a finding.

mod clocks;
mod cursors;
pub mod fleet;
pub mod gaps;
mod outage;

use std::sync::Arc;
use std::time::Duration;

use super::delivery::alarms::Alarmer;
use crate::cluster::Dependencies;
use crate::config::values::ms;
use crate::config::Config;
use crate::metrics::{Histogram, Metrics};
use crate::model::now_millis;
use crate::store::Store;

/// How often the store is pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Job-change rows older than this are pruned; a dispatcher further behind resyncs fully.
const CHANGE_LOG_KEEP_MS: i64 = 3_600_000;

/// One pass of the checks, and what they remember between passes.
pub struct Checks {
    alarmer: Arc<Alarmer>,
    deps: Arc<Dependencies>,
    fleet: fleet::Fleet,
    gaps: gaps::Gaps,
    cursors: cursors::Cursors,
    clocks: clocks::Clocks,
    /// The store's own outage, alarmed from here.
    store_watch: outage::StoreWatch,
    /// This host's clock against the store's: the checks judge on the store's clock.
    clock: Arc<crate::presence::Reach>,
    time: Arc<Histogram>,
}

impl Checks {
    /// `me` names this monitor (its instance id) where monitors agree on who alarms what.
    pub fn new(
        config: &Config,
        store: &Store,
        metrics: &Metrics,
        alarmer: Arc<Alarmer>,
        deps: Arc<Dependencies>,
        me: String,
        clock: Arc<crate::presence::Reach>,
    ) -> Checks {
        let lost_after = ms(config.monitor.lost_after);
        let fleet = fleet::Fleet::new(
            store.clone(),
            lost_after,
            lost_after + ms(config.dispatcher.delivery_timeout),
            ms(config.executor.kill_grace) + lost_after,
            metrics.counter(
                "cronvisor_runs_lost_total",
                "",
                "Runs marked lost (their executor stopped, or could not end them past their timeout).",
            ),
            crate::cluster::probe::probed(&config.cluster),
        );
        // Instants this old are the dispatchers' no more: delivery, a record held over a store
        // hiccup, a second look after a lock's TTL.
        let settle = 2 * ms(config.dispatcher.delivery_timeout)
            + ms(config.cluster.lock_ttl)
            + ms(config.dispatcher.late_grace);
        Checks {
            alarmer,
            deps,
            fleet,
            gaps: gaps::Gaps::new(store.clone(), settle, now_millis()),
            cursors: cursors::Cursors::new(store.clone(), settle, lost_after, now_millis()),
            clocks: clocks::Clocks::new(
                store.clone(),
                ms(config.monitor.max_clock_skew),
                lost_after,
            ),
            store_watch: outage::StoreWatch::new(store.clone(), latch(config), me),
            clock,
            time: metrics.histogram(
                "cronvisor_monitor_check_seconds",
                "One pass of the monitor's checks (store, gaps, alarms, deliveries, fleet).",
                crate::metrics::LATENCY_BUCKETS,
            ),
        }
    }

    /// One pass: the store answers (else nothing more), instants missed, alarms raised and
    /// delivered, the fleet's dependencies and runs.
    pub async fn pass(&mut self) {
        // On the store's clock, which the heartbeats are written on: a monitor whose own clock
        // is stepped ahead must not find every process stale (chaos, a +12 s step).
        let started = now_millis();
        let now = started - self.clock.skew();
        match self.store_watch.check(&self.alarmer, now).await {
            outage::StoreState::Down => return,
            outage::StoreState::Back => {
                // During the outage no beat could land and nothing could be recorded: each
                // check waits as if this monitor had just started.
                self.fleet.wait_for_beats();
                self.gaps.wait(now);
                self.cursors.wait(now);
            }
            outage::StoreState::Up => {}
        }
        let alarmer = &*self.alarmer;
        self.gaps.check(now).await;
        // A store that went away since the ping makes each call wait its connect timeout:
        // the pass stops at the first such error, so the next one pings and alarms at once.
        if let Err(e) = alarmer.scan().await {
            tracing::warn!(error = %e, "alarm scan failed");
            if e.is_outage() {
                return;
            }
        }
        if let Err(e) = alarmer.deliver().await {
            tracing::warn!(error = %e, "alarm delivery pass failed");
            if e.is_outage() {
                return;
            }
        }
        self.fleet.dependencies(alarmer, &self.deps, now).await;
        self.fleet.check(alarmer, now).await;
        self.clocks.check(alarmer, now).await;
        // Last: the least urgent (a hole of a rare job is found within a check or two).
        self.cursors.check(now).await;
        self.time.observe_millis(started, now_millis());
    }
}

/// How long failed logins are remembered after the last one: longer than the longest wait
/// they impose (`access::MAX_WAIT_SECS`, 5 minutes), short enough to bound the table.
const LOGIN_FAILURES_KEEP_MS: i64 = 3_600_000;

/// Deletes finished runs, settled alarms and audit entries past `retention` (zero: keep
/// all), old change-log rows, failed logins quiet for an hour, and sessions expired or idle
/// past `session_idle`.
pub async fn prune(store: &crate::store::Store, retention: Duration, session_idle: Duration) {
    let now = now_millis();
    if !retention.is_zero() {
        let before = now - crate::config::values::ms(retention);
        match store.prune(before).await {
            Ok(n) if n > 0 => {
                tracing::info!(runs = n, retention = %humantime::format_duration(retention), "pruned old runs")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning runs failed"),
        }
        match store.prune_audit(before).await {
            Ok(n) if n > 0 => tracing::info!(entries = n, "pruned old audit entries"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning the audit log failed"),
        }
        match store.prune_alarms(before).await {
            Ok(n) if n > 0 => tracing::info!(alarms = n, "pruned old alarms"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning alarms failed"),
        }
    }
    if let Err(e) = store.prune_job_stats().await {
        tracing::warn!(error = %e, "pruning the counts of deleted jobs failed");
    }
    if let Err(e) = store
        .prune_sessions(now - crate::config::values::ms(session_idle))
        .await
    {
        tracing::warn!(error = %e, "pruning sessions failed");
    }
    if let Err(e) = store
        .prune_login_failures(now - LOGIN_FAILURES_KEEP_MS)
        .await
    {
        tracing::warn!(error = %e, "pruning failed logins failed");
    }
    if let Err(e) = store.prune_changes(now - CHANGE_LOG_KEEP_MS).await {
        tracing::warn!(error = %e, "pruning the job change log failed");
    }
}

/// Redis, where monitors agree on which of them alarms the store's outage (none without
/// `cluster.redis_url`, or with one that cannot be used: each monitor then alarms it).
fn latch(config: &Config) -> Option<(redis::Client, Duration)> {
    let url = config.cluster.redis_url.as_ref()?;
    let secure = crate::cluster::secure::Secure::of(config).ok()?;
    match secure.redis_client(url) {
        Ok(client) => Some((client, config.cluster.call_timeout)),
        Err(e) => {
            tracing::warn!(error = %e, "no redis for the store outage's latch");
            None
        }
    }
}
