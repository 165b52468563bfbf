//! The dispatcher: keeps every active job's next instant in a min-heap, sleeps until the
//! earliest, and fires it: record the run (the store's unique key on job + instant is the
//! fence that keeps a fire single however many dispatchers race), then hand it to an executor.
//!
//! Job changes and manual runs are picked up from the store's change log every
//! `poll_interval_ms`, without a restart.

mod backfill;
mod backlog;
mod calendars;
mod changes;
mod deliver;
mod fire;
mod flows;
mod pending;
mod requires;
pub(crate) mod schedule_set;
mod setup;
mod sync;
mod targets;
mod windows;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::instance::Instance;
use crate::model::{now_millis, Job, Trigger};
use crate::presence::{Heartbeat, Presence};
use crate::runtime::{self, RoleContext, RoleError, Shutdown};
use crate::schedule::Tally;

use crate::cluster::host_identity;
use changes::ChangeCursor;
use fire::Firer;
use schedule_set::ScheduleSet;
use setup::{executor_registry, fire_lock, may_be_firing};
use sync::{follow_changes, load_all, reconcile, with_jobs};
use targets::Targets;

/// While another dispatcher runs, instants this recent are not treated as missed at start-up:
/// it is firing them right now (a reload overlaps two dispatchers).
const MISSED_GRACE_MS: i64 = 2000;

/// Runs the dispatcher until `shutdown`, in named phases: `start` (registry, fire lock,
/// schedule, health server, presence, ready), `catch_up` (instants missed while no dispatcher
/// ran), `serve` (fire due instants, follow job changes and manual runs, resync) and `drain`.
/// `executor_url` is the base URL of the local executor, the only one in standalone mode; in
/// cluster mode the executors come from etcd.
pub async fn run(
    ctx: RoleContext,
    shutdown: Shutdown,
    executor_url: String,
) -> Result<(), RoleError> {
    let mut d = Dispatcher::start(ctx, &shutdown, executor_url).await?;
    d.catch_up().await;
    d.serve(shutdown).await;
    d.drain().await;
    Ok(())
}

/// A running dispatcher between its phases.
struct Dispatcher {
    config: crate::config::Config,
    draining: Arc<std::sync::atomic::AtomicBool>,
    store: crate::store::Store,
    firer: Arc<Firer>,
    set: ScheduleSet,
    cursor: ChangeCursor,
    jobs_gauge: Arc<crate::metrics::Metric>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    heartbeat: Heartbeat,
    host: String,
    me: Instance,
    fires: JoinSet<()>,
    /// For the one alarm this role raises itself: a planned stop's summary.
    trust: crate::http::tls::Trust,
    /// The tasks that read maintenance windows (`windows.rs`, from set-up on), release flows
    /// (`flows.rs`) and drive backfills (`backfill.rs`, while serving).
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Dispatcher {
    /// Set-up, up to ready: everything a fire needs, the health server, and this dispatcher's
    /// presence in the store (before ready, so the monitor never counts a serving dispatcher
    /// as gone).
    async fn start(
        ctx: RoleContext,
        shutdown: &Shutdown,
        executor_url: String,
    ) -> Result<Dispatcher, RoleError> {
        let token = crate::tokens::load(&ctx.config.data_dir, crate::tokens::RPC)?;
        let store = ctx.store.clone();
        let host = host_identity(ctx.config.host.as_deref());
        let registry = executor_registry(&ctx, shutdown, executor_url, &host).await;
        let trust = ctx.trust()?;
        let firer = Arc::new(Firer::new(
            store.clone(),
            Targets::new(registry, ctx.config.machine.clone()),
            fire_lock(&ctx, &host),
            token,
            &ctx.config.dispatcher,
            &ctx.rpc_trust()?,
            &ctx.metrics,
        ));
        let jobs_gauge = ctx.metrics.gauge(
            "cronvisor_jobs_scheduled",
            "",
            "Active jobs in this dispatcher's schedule.",
        );

        // Read the change sequence before the jobs, so no change between the two is missed.
        let cursor = ChangeCursor::new(store.last_change().await?);
        let d = &ctx.config.dispatcher;
        let mut set = ScheduleSet::with_limits(d.jobs_kept, d.rules_kept);
        let loading = std::time::Instant::now();
        load_all(&store, &mut set).await?;
        tracing::info!(
            jobs = set.len(),
            rules = set.rules_len(),
            ms = loading.elapsed().as_millis() as u64,
            "schedule loaded"
        );
        jobs_gauge.set(set.len() as i64);

        let options = ctx.http_options(false)?;
        let health = ctx.health();
        let server = tokio::spawn(crate::http::server::serve(
            ctx.listener,
            crate::http::health::router(health),
            shutdown.clone(),
            options,
        ));
        let me = Instance::this(&host);
        let heartbeat = Heartbeat::start(
            &store,
            &ctx.config.store_url(),
            Presence::Dispatcher,
            me.to_string(),
            me.start,
            (ctx.config.monitor.lost_after / 4).max(Duration::from_millis(50)),
            Arc::default(),
        )
        .await?;
        let executors = firer.registry_size();
        runtime::notify_ready(&format!(
            "dispatcher: {} jobs, {executors} executor(s)",
            set.len()
        ));
        tracing::info!(
            jobs = set.len(),
            executors,
            cluster = ctx.config.cluster.enabled(),
            "dispatcher ready"
        );
        // Windows are read from the start: the catch-up fires respect them too.
        let background = vec![windows::spawn(store.clone(), firer.windows.clone())];
        Ok(Dispatcher {
            config: ctx.config,
            draining: ctx.draining,
            firer,
            set,
            cursor,
            jobs_gauge,
            server,
            heartbeat,
            host,
            me,
            fires: JoinSet::new(),
            store,
            trust,
            background,
        })
    }

    /// Instants missed while no dispatcher ran. If another one runs (a reload overlaps two),
    /// the last MISSED_GRACE_MS are its to fire; if none does (a crash), every instant up to
    /// now is accounted for here, so that none falls between the two.
    async fn catch_up(&mut self) {
        let since = now_millis() - crate::config::values::ms(self.config.monitor.lost_after);
        let grace = match self.store.live_dispatchers(since).await {
            Ok(live) if !live.iter().any(|i| may_be_firing(i, &self.me, &self.host)) => 0,
            _ => MISSED_GRACE_MS,
        };
        let last = match self.store.last_instants().await {
            Ok(last) => last,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the last instants; no misfire handling");
                return;
            }
        };
        // A planned stop (the last dispatcher left cleanly and none runs now): what it
        // missed is summed up in one alarm, not one per job; a crash alarms per job.
        let stopped_at = match grace {
            0 => self
                .store
                .last_clean_stop(&self.me.to_string())
                .await
                .unwrap_or(None),
            _ => None,
        };
        let mut catch_up = Vec::new();
        let (mut jobs, mut instants) = (0u64, 0u64);
        let missed = self.set.misfired(&last, now_millis() - grace);
        let jobs_of = self.jobs_of(missed.iter().map(|(id, _)| *id)).await;
        for (job, tally) in with_jobs(missed, &jobs_of) {
            let (instant, count) = (tally.latest, tally);
            if job.misfire == crate::model::Misfire::RunOnce {
                catch_up.push((job, instant));
                continue;
            }
            let reason = format!(
                "missed: {count} instant(s) passed while no dispatcher ran (misfire = skip)"
            );
            let recorded = match stopped_at {
                Some(_) => {
                    self.store
                        .record_missed_in_stop(job.id, instant, &reason)
                        .await
                }
                None => self.store.record_missed(job.id, instant, &reason).await,
            };
            match recorded {
                Ok(crate::store::Recorded::New(_))
                    if job.alarm_on.contains(&crate::model::AlarmKind::Missed) =>
                {
                    jobs += 1;
                    instants += count.count;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(job = %job.name, error = %e, "cannot record missed instants")
                }
            }
        }
        if let (Some(at), true) = (stopped_at, jobs > 0) {
            self.alarm_planned_stop(at, jobs, instants).await;
        }
        if !catch_up.is_empty() {
            tracing::info!(
                jobs = catch_up.len(),
                "misfire: running missed instants once"
            );
            self.fires
                .spawn(self.firer.clone().fire_due(catch_up, Trigger::Misfire));
        }
    }

    /// One alarm for the instants missed while the system was stopped on purpose ("stopped
    /// 25 s: 74 instants of 30 jobs missed"), stored like any system alarm for the monitor to
    /// deliver.
    async fn alarm_planned_stop(&self, stopped_at: i64, jobs: u64, instants: u64) {
        let alarmer = crate::monitor::alarms::Alarmer::new(
            self.store.clone(),
            self.config.alarm.clone(),
            &self.trust,
            &crate::metrics::Metrics::new("dispatcher"),
        );
        let subject = format!(
            "stopped {} s: {instants} instant(s) of {jobs} job(s) missed (a planned stop; each \
             job's are recorded `missed`)",
            (now_millis() - stopped_at).max(0) / 1000
        );
        alarmer.raise_system("stopped", &subject).await;
    }

    /// The event loop: fire what is due, sleep until the next instant, and on the poll tick
    /// follow the change log and take manual runs and retries; resync now and then.
    async fn serve(&mut self, shutdown: Shutdown) {
        let dispatcher = &self.config.dispatcher;
        let mut poll = tokio::time::interval(dispatcher.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let resync_every = dispatcher.resync_interval;
        let mut resync =
            tokio::time::interval_at(tokio::time::Instant::now() + resync_every, resync_every);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = runtime::stopped(shutdown);
        tokio::pin!(stop);
        let released = Arc::new(tokio::sync::Notify::new());
        self.background.extend([
            flows::spawn(
                self.store.clone(),
                dispatcher.poll_interval,
                released.clone(),
            ),
            backfill::spawn(
                self.store.clone(),
                dispatcher.poll_interval,
                released.clone(),
            ),
        ]);
        let late_grace = crate::config::values::ms(self.config.dispatcher.late_grace);
        let mut last_now = now_millis();
        loop {
            let now = now_millis();
            if now < last_now - 1000 {
                tracing::warn!(
                    back_ms = last_now - now,
                    "the clock stepped back: instants already fired are not fired again (the store's fence)"
                );
            }
            last_now = now;
            let schedule_set::Popped { due, late } = self.set.pop_due(now, now - late_grace);
            let jobs_of = self
                .jobs_of(due.iter().map(|d| d.0).chain(late.iter().map(|l| l.0)))
                .await;
            let (due, late) = (with_jobs(due, &jobs_of), with_jobs(late, &jobs_of));
            if !late.is_empty() {
                self.misfire_late(late, now, Behind::Paused);
            }
            if !due.is_empty() {
                self.fires
                    .spawn(self.firer.clone().fire_due(due, Trigger::Schedule));
            }
            while self.fires.try_join_next().is_some() {}
            tokio::select! {
                _ = tokio::time::sleep(self.until_next()) => {}
                _ = poll.tick() => self.poll().await,
                _ = released.notified() => self.fire_pending().await,
                _ = resync.tick() => self.resync().await,
                _ = &mut stop => return,
            }
        }
    }

    /// Instants found due past the grace (paused, clock stepped forward, or held while the
    /// store was away), per job: the misfire policy applies as after downtime — `run_once`
    /// fires the latest once, `skip` records it `missed` with the count. Both under the
    /// store's fence; a record that fails is held again.
    fn misfire_late(&mut self, late: Vec<(Arc<Job>, Tally)>, now: i64, why: Behind) {
        let mut run_once = Vec::new();
        for (job, count) in late {
            let latest = count.latest;
            tracing::warn!(job = %job.name, count = %count, late_ms = now - latest, cause = why.cause(),
                "instants found due late: misfire policy applies");
            if job.misfire == crate::model::Misfire::RunOnce {
                run_once.push((job, latest));
                continue;
            }
            let firer = self.firer.clone();
            let reason = format!(
                "missed: {count} instant(s) came due while {} (misfire = skip)",
                why.reason((now - latest) / 1000)
            );
            self.fires.spawn(async move {
                if let Err(e) = firer.store.record_missed(job.id, latest, &reason).await {
                    tracing::warn!(job = %job.name, error = %e,
                        "cannot record missed instants; held until the store is back");
                    firer.backlog.hold_counted(job, count);
                }
            });
        }
        if !run_once.is_empty() {
            self.fires
                .spawn(self.firer.clone().fire_due(run_once, Trigger::Misfire));
        }
    }

    /// Instants held while the store was away: once it may take them again, each fires if
    /// still within the grace, or follows its job's misfire policy.
    fn release_held(&mut self, now: i64) {
        if self.firer.backlog.is_empty() {
            return;
        }
        let late_before = now - crate::config::values::ms(self.config.dispatcher.late_grace);
        let set = &self.set;
        // A job still scheduled fires with its current version if kept, else as held.
        let held = self.firer.backlog.release(late_before, |id, held| {
            set.job(id)
                .or_else(|| set.contains(id).then(|| held.clone()))
        });
        tracing::info!(
            on_time = held.on_time.len(),
            late_jobs = held.late.len(),
            "recording the instants held while the store was unavailable"
        );
        if !held.late.is_empty() {
            // `skip` records each run of consecutive instants with its own count; `run_once`
            // runs once for them all.
            let mut late = Vec::with_capacity(held.late.len());
            for (job, runs) in held.late {
                if job.misfire == crate::model::Misfire::RunOnce {
                    late.extend(runs.into_iter().reduce(Tally::merge).map(|t| (job, t)));
                } else {
                    late.extend(runs.into_iter().map(|t| (job.clone(), t)));
                }
            }
            self.misfire_late(late, now, Behind::StoreAway);
        }
        if !held.on_time.is_empty() {
            self.fires
                .spawn(self.firer.clone().fire_due(held.on_time, Trigger::Schedule));
        }
    }

    /// The whole jobs of `ids`: the ones the schedule keeps, and the others read from the
    /// store in one query (a fleet larger than `dispatcher.jobs_kept`), tried four times over
    /// about 1.5 s. A job deleted meanwhile is absent. If the store stays away, the unkept
    /// jobs are left out and their instants dropped, logged as an error (the backlog holds
    /// whole jobs only): see ARCHITECTURE "Not built yet".
    async fn jobs_of(&self, ids: impl Iterator<Item = i64>) -> HashMap<i64, Arc<Job>> {
        let mut out = HashMap::new();
        let mut fetch = Vec::new();
        for id in ids {
            match self.set.job(id) {
                Some(job) => {
                    out.insert(id, job);
                }
                None => fetch.push(id),
            }
        }
        if fetch.is_empty() {
            return out;
        }
        fetch.sort_unstable();
        fetch.dedup();
        let mut pause = Duration::from_millis(100);
        for attempt in 1..=4 {
            match self.store.jobs_by_ids(&fetch).await {
                Ok(jobs) => {
                    for job in jobs {
                        out.insert(job.id, Arc::new(job));
                    }
                    break;
                }
                Err(e) if attempt < 4 => {
                    tracing::debug!(jobs = fetch.len(), attempt, error = %e,
                        "cannot read the jobs that came due; trying again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(e) => tracing::error!(jobs = fetch.len(), error = %e,
                    "cannot read the jobs that came due: their instants are dropped"),
            }
        }
        out
    }

    /// How long until the earliest instant. Microseconds, so the wake-up is not rounded a
    /// millisecond late before the timer's own millisecond resolution adds its part.
    fn until_next(&mut self) -> Duration {
        self.set
            .next_instant()
            .map(|t| {
                let now_us = chrono::Utc::now().timestamp_micros();
                Duration::from_micros((t * 1000 - now_us).max(0) as u64)
            })
            .unwrap_or(Duration::from_secs(3600))
    }

    /// Job changes from the log, then the runs recorded ahead (manual, retries) that are due.
    async fn poll(&mut self) {
        match follow_changes(&self.store, &mut self.set, &mut self.cursor).await {
            Ok(()) => self.jobs_gauge.set(self.set.len() as i64),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read job changes; keeping the current schedule")
            }
        }
        self.release_held(now_millis());
        self.fire_pending().await;
    }

    /// The runs recorded ahead that are due (manual runs, retries, jobs a flow released),
    /// fired in one batch.
    async fn fire_pending(&mut self) {
        match self.store.pending_runs(now_millis()).await {
            Ok(pending) if pending.is_empty() => {}
            Ok(pending) => {
                let known = pending
                    .iter()
                    .filter_map(|r| self.set.job(r.job_id).map(|j| (r.job_id, j)))
                    .collect();
                self.fires
                    .spawn(self.firer.clone().fire_pending(pending, known));
            }
            Err(e) => tracing::warn!(error = %e, "cannot read pending runs"),
        }
    }

    /// The whole job table against the schedule: corrects what the change log missed.
    async fn resync(&mut self) {
        match reconcile(&self.store, &mut self.set).await {
            Ok(0) => {}
            Ok(n) => {
                self.jobs_gauge.set(self.set.len() as i64);
                tracing::warn!(
                    jobs = n,
                    "periodic resync corrected the schedule: a job change was missed"
                );
            }
            Err(e) => tracing::warn!(error = %e, "periodic resync failed"),
        }
    }

    /// No new fires; the ones started finish their hand-over (bounded by the delivery
    /// timeout); then leave the store's presence table.
    async fn drain(mut self) {
        self.draining.store(true, Ordering::Relaxed);
        for task in self.background.drain(..) {
            task.abort();
        }
        runtime::notify_stopping();
        tracing::info!(
            in_flight = self.fires.len(),
            "dispatcher stopping: no new fires"
        );
        let _ = tokio::time::timeout(
            self.config.dispatcher.delivery_timeout + Duration::from_secs(1),
            async { while self.fires.join_next().await.is_some() {} },
        )
        .await;
        let _ = self.server.await;
        self.heartbeat.stop().await;
        if runtime::orphaned() {
            tracing::warn!(
                "supervisor gone: not leaving, so the monitor reports this dispatcher lost"
            );
        } else if let Err(e) = self.store.dispatcher_left(&self.me.to_string()).await {
            tracing::warn!(error = %e, "cannot record leaving; the monitor will report this dispatcher lost");
        }
        self.store.close().await;
        tracing::info!("dispatcher stopped");
    }
}

/// Why instants were found late, for the log and the `missed` record.
#[derive(Debug, Clone, Copy)]
enum Behind {
    /// The loop fell behind: the host paused, or the clock stepped forward.
    Paused,
    /// The store could not take their records.
    StoreAway,
}

impl Behind {
    fn cause(self) -> &'static str {
        match self {
            Behind::Paused => "paused or clock stepped",
            Behind::StoreAway => "store unavailable",
        }
    }

    fn reason(self, behind_secs: i64) -> String {
        match self {
            Behind::Paused => {
                format!("this dispatcher was {behind_secs} s behind (paused, its clock stepped, or its \
                 store slow to answer)")
            }
            Behind::StoreAway => {
                format!("the store was unavailable (recorded {behind_secs} s after the latest)")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::JobFields;
    use crate::store::tests::{spec, temp_store};

    #[test]
    fn only_a_dead_process_of_this_host_is_known_not_to_be_firing() {
        let me = Instance {
            host: "h".into(),
            pid: std::process::id(),
            start: 1,
        };
        assert!(!may_be_firing(&me.to_string(), &me, "h"), "itself");
        // Alive here: this very process under another start time.
        assert!(may_be_firing(
            &format!("h/{}/0", std::process::id()),
            &me,
            "h"
        ));
        // No such process here (pids stop far below this).
        assert!(!may_be_firing("h/2147483000/1", &me, "h"));
        // Another host's is never known dead from here.
        assert!(may_be_firing("other/2147483000/1", &me, "h"));
        // A host name with slashes still parses from the right.
        assert!(!may_be_firing("a/b/2147483000/1", &me, "a/b"));
    }

    #[tokio::test]
    async fn the_periodic_resync_corrects_only_what_the_change_log_missed() {
        let t = temp_store("resync").await;
        let a = t.store.insert_job(&spec("a")).await.expect("a");
        let b = t.store.insert_job(&spec("b")).await.expect("b");
        let mut set = ScheduleSet::default();
        load_all(&t.store, &mut set).await.expect("load");
        assert_eq!(reconcile(&t.store, &mut set).await.expect("resync"), 0);
        // Changes this dispatcher never read from the log: an edit, a delete, an insert.
        let patch = JobFields {
            schedule: Some("*/5 * * * * *".into()),
            ..JobFields::default()
        };
        let edited = patch.apply(a.clone()).expect("patch");
        std::thread::sleep(std::time::Duration::from_millis(2));
        t.store.update_job(&edited).await.expect("update");
        t.store.delete_job(b.id, false).await.expect("delete");
        let c = t.store.insert_job(&spec("c")).await.expect("c");
        assert_eq!(reconcile(&t.store, &mut set).await.expect("resync"), 3);
        let mut ids = set.ids();
        ids.sort_unstable();
        assert_eq!(ids, vec![a.id, c.id]);
        assert_eq!(
            set.job(a.id).map(|j| j.schedule.clone()).as_deref(),
            Some("*/5 * * * * *")
        );
        assert_eq!(reconcile(&t.store, &mut set).await.expect("resync"), 0);
    }

    /// A fleet past `dispatcher.jobs_kept`: the first jobs are kept whole, the others only by
    /// their schedule, read whole from the store when they fire; the resync still corrects an
    /// edit the change log missed on either.
    #[tokio::test]
    async fn jobs_past_the_bound_are_scheduled_and_read_whole_when_they_fire() {
        let t = temp_store("bounded").await;
        let mut ids = Vec::new();
        for name in ["a", "b", "c"] {
            ids.push(t.store.insert_job(&spec(name)).await.expect("job").id);
        }
        let mut set = ScheduleSet::with_limits(1, 0);
        load_all(&t.store, &mut set).await.expect("load");
        assert_eq!(set.len(), 3);
        assert!(set.job(ids[0]).is_some());
        assert!(set.job(ids[1]).is_none() && set.job(ids[2]).is_none());
        let fetched = t.store.jobs_by_ids(&ids[1..]).await.expect("by ids");
        let jobs: HashMap<i64, Arc<Job>> =
            fetched.into_iter().map(|j| (j.id, Arc::new(j))).collect();
        let both = with_jobs(vec![(ids[1], 1), (ids[2], 2), (999_999, 3)], &jobs);
        assert_eq!(
            both.iter()
                .map(|(j, n)| (j.name.as_str(), *n))
                .collect::<Vec<_>>(),
            vec![("b", 1), ("c", 2)],
            "a job deleted meanwhile is left out"
        );
        assert_eq!(reconcile(&t.store, &mut set).await.expect("resync"), 0);
        let c = t.store.job(ids[2]).await.expect("read").expect("c");
        let patch = JobFields {
            paused: Some(true),
            ..JobFields::default()
        };
        std::thread::sleep(std::time::Duration::from_millis(2));
        t.store
            .update_job(&patch.apply(c).expect("patch"))
            .await
            .expect("update");
        assert_eq!(reconcile(&t.store, &mut set).await.expect("resync"), 1);
        assert_eq!(set.len(), 2, "the paused job left the schedule");
    }
}
