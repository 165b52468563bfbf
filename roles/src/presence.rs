//! Heartbeats of role processes in the store, so that the monitor can tell a live executor or
//! dispatcher from a dead one. Beats go through a connection of their own: queued behind a
//! burst of writes in the shared pool they would go stale, and a live executor's runs would be
//! marked lost, or a busy dispatcher reported gone.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::model::Millis;
use crate::store::{Beating, ExecutorCard, Store, StoreError};

/// Which table a process beats in (an executor also says where its RPC is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    Executor(ExecutorCard),
    Dispatcher,
    Monitor,
}

impl Presence {
    async fn beat(
        &self,
        store: &Store,
        instance: &str,
        started_at: Millis,
        skew: Option<Millis>,
    ) -> Result<(), StoreError> {
        match self {
            Presence::Executor(card) => store.executor_beat(instance, started_at, card, skew).await,
            Presence::Dispatcher => {
                store
                    .role_beat(Beating::Dispatchers, instance, started_at, skew)
                    .await
            }
            Presence::Monitor => {
                store
                    .role_beat(Beating::Monitors, instance, started_at, skew)
                    .await
            }
        }
    }
}

/// A measurement of this host's clock against the store's is kept only when its round trip
/// took at most this: the host's reading is taken half-way, so the error is under half of it.
const SKEW_ROUND_TRIP: Duration = Duration::from_millis(500);

/// This host's wall clock minus the store's, in ms, NTP-style: the store's clock read in one
/// round trip, against this host's at the middle of it; `None` when the round trip was too
/// long to tell (a slow link), so the last measurement stands.
async fn measure_skew(store: &Store) -> Result<Option<Millis>, StoreError> {
    let sent = std::time::Instant::now();
    let before = crate::model::now_millis();
    let theirs = store.store_clock().await?;
    let round_trip = sent.elapsed();
    if round_trip > SKEW_ROUND_TRIP {
        return Ok(None);
    }
    let ours = before + (round_trip.as_millis() as Millis) / 2;
    Ok(Some(ours - theirs))
}

/// A running heartbeat; `stop` ends it (leaving the table is the role's business).
#[derive(Debug)]
pub struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
    own: Option<Store>,
    reach: Arc<Reach>,
}

/// Whether the store took this role's last beat, and how long ago it last took one — on the
/// monotonic clock: a step of the wall clock (an NTP correction) must not make the store look
/// away for that long, nor hide a real silence.
#[derive(Debug)]
pub struct Reach {
    ok: AtomicBool,
    base: std::time::Instant,
    /// Milliseconds since `base` at the last beat taken.
    last_ok: AtomicI64,
    /// This host's clock minus the store's, as last measured (0 until then).
    skew: AtomicI64,
}

impl Default for Reach {
    fn default() -> Reach {
        Reach {
            ok: AtomicBool::new(true),
            base: std::time::Instant::now(),
            last_ok: AtomicI64::new(0),
            skew: AtomicI64::new(0),
        }
    }
}

impl Reach {
    /// This host's clock minus the store's, in ms, as last measured (0 until then): what to
    /// take from this host's clock to read the store's — the one clock that heartbeats from
    /// different hosts compare on.
    /// Within the measurement's own error (half the longest round trip kept) it is noise,
    /// and 0: hosts in step (NTP) judge on their own clocks exactly as before, and only a real
    /// offset (a clock stepped by seconds) moves anything — noise taken off on both sides ate
    /// the `forbid` fence's margin under load.
    pub fn skew(&self) -> Millis {
        let skew = self.skew.load(Ordering::Relaxed);
        if skew.abs() <= SKEW_ROUND_TRIP.as_millis() as Millis / 2 {
            return 0;
        }
        skew
    }

    /// The last beat was taken.
    pub fn ok(&self) -> bool {
        self.ok.load(Ordering::Relaxed)
    }

    /// How long since the store last took a beat.
    pub fn silent_for(&self) -> Duration {
        let since = self.base.elapsed().as_millis() as i64 - self.last_ok.load(Ordering::Relaxed);
        Duration::from_millis(since.max(0) as u64)
    }

    fn took(&self) -> bool {
        self.last_ok
            .store(self.base.elapsed().as_millis() as i64, Ordering::Relaxed);
        !self.ok.swap(true, Ordering::Relaxed)
    }

    fn missed(&self) {
        self.ok.store(false, Ordering::Relaxed);
    }
}

/// The least time a beat may take before the store counts as away (a busy store answers a
/// small write within this).
const MIN_BEAT_BOUND: Duration = Duration::from_secs(2);

impl Heartbeat {
    /// Beats once now (an error here is the caller's: it is not alive yet), then every
    /// `every` in the background, logging failures. `reachable` says, after each beat, whether
    /// the store took it (an executor stops taking runs it could not record).
    pub async fn start(
        store: &Store,
        store_url: &str,
        presence: Presence,
        instance: String,
        started_at: Millis,
        every: Duration,
        reachable: Arc<Reach>,
    ) -> Result<Heartbeat, StoreError> {
        presence.beat(store, &instance, started_at, None).await?;
        reachable.took();
        let own_url = Some(store_url);
        Ok(Heartbeat::spawn(
            store, own_url, presence, instance, started_at, every, reachable,
        )
        .await)
    }

    /// [`Heartbeat::start`] for a role that works while the store is away (the monitor: it
    /// alarms the outage): nothing is awaited here — the first beat is the background's first
    /// tick, on the role's pool (a store away would hold this role's start for the pool's
    /// connect timeout, and with it the alarm of that very outage).
    pub async fn start_when_reachable(
        store: &Store,
        presence: Presence,
        instance: String,
        every: Duration,
    ) -> Heartbeat {
        let started_at = crate::model::now_millis();
        Heartbeat::spawn(
            store,
            None,
            presence,
            instance,
            started_at,
            every,
            Arc::default(),
        )
        .await
    }

    /// The background beat every `every`.
    async fn spawn(
        store: &Store,
        own_url: Option<&str>,
        presence: Presence,
        instance: String,
        started_at: Millis,
        every: Duration,
        reachable: Arc<Reach>,
    ) -> Heartbeat {
        let own = match own_url {
            Some(url) => match Store::connect(url, 1).await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "no separate heartbeat connection; sharing the pool");
                    None
                }
            },
            None => None,
        };
        let beat_store = own.clone().unwrap_or_else(|| store.clone());
        let reachable_out = reachable.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // Bounded: a store whose packets are dropped would hold a beat for minutes
                // (TCP's retries) while this role still believed it reachable.
                let bound = (every * 2).max(MIN_BEAT_BOUND);
                let beat = tokio::time::timeout(bound, async {
                    if let Some(skew) = measure_skew(&beat_store).await? {
                        reachable.skew.store(skew, Ordering::Relaxed);
                    }
                    let skew = Some(reachable.skew());
                    presence
                        .beat(&beat_store, &instance, started_at, skew)
                        .await
                })
                .await
                .unwrap_or(Err(StoreError::NoAnswer(bound)));
                match beat {
                    Ok(()) => {
                        if reachable.took() {
                            tracing::info!("store reachable again");
                        }
                    }
                    Err(e) => {
                        reachable.missed();
                        tracing::warn!(error = %e, "heartbeat not recorded");
                    }
                }
            }
        });
        Heartbeat {
            task,
            own,
            reach: reachable_out,
        }
    }

    /// Whether the store takes this role's beats, and this host's clock against the store's.
    pub fn reach(&self) -> Arc<Reach> {
        self.reach.clone()
    }

    pub async fn stop(self) {
        self.task.abort();
        if let Some(s) = self.own {
            s.close().await;
        }
    }
}
