use super::*;
use crate::model::{JobFields, RunState, Trigger, ValidJob};

/// A fresh SQLite store in its own temp dir, removed on drop.
pub(crate) struct TempStore {
    pub(crate) store: Store,
    dir: std::path::PathBuf,
}

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) async fn temp_store(tag: &str) -> TempStore {
    let dir = std::env::temp_dir().join(format!("cronvisor-store-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
    let store = Store::connect(&url, 2).await.expect("connect");
    store.migrate().await.expect("migrate");
    // Migrating twice is a no-op, as every start of `up` does it.
    store.migrate().await.expect("migrate again");
    TempStore { store, dir }
}

pub(crate) fn fields(name: &str) -> JobFields {
    JobFields {
        name: Some(name.into()),
        schedule: Some("* * * * * *".into()),
        timezone: Some("UTC".into()),
        command: Some("true".into()),
        ..JobFields::default()
    }
}

/// An alarm kept for the record only (channel `none`).
fn recorded_alarm(job_id: i64, run_id: i64, kind: &str, recipient: &str) -> NewAlarm {
    NewAlarm {
        job_id,
        run_id,
        kind: kind.into(),
        channel: "none".into(),
        recipient: recipient.into(),
        status: "recorded",
        details: serde_json::json!({}),
    }
}

/// Makes the store refuse (`true`) or take again (`false`) every new alarm row.
pub(crate) async fn refuse_alarms(t: &TempStore, refuse: bool) {
    let sql = if refuse {
        "CREATE TRIGGER refuse_alarm BEFORE INSERT ON alarms \
         BEGIN SELECT RAISE(ABORT, 'refused'); END"
    } else {
        "DROP TRIGGER refuse_alarm"
    };
    sqlx::query(sql)
        .execute(&t.store.pool)
        .await
        .expect("trigger");
}

/// Fires `instant` of `job` as a dispatcher does; it must be the first to.
async fn fire_new(store: &Store, job: i64, instant: i64) -> i64 {
    match store
        .record_fire(job, instant, "", Trigger::Schedule, RunState::Dispatched)
        .await
        .expect("fire")
    {
        Recorded::New(id) => id,
        Recorded::AlreadyFired => panic!("instant {instant} of job {job} fired twice"),
    }
}

pub(crate) fn spec(name: &str) -> ValidJob {
    fields(name).create("UTC").expect("valid job")
}

#[tokio::test]
async fn duplicate_job_name_is_a_conflict_and_stores_nothing() {
    let t = temp_store("dup").await;
    t.store.insert_job(&spec("a")).await.expect("first");
    let err = t.store.insert_job(&spec("a")).await.expect_err("second");
    assert!(
        matches!(err, StoreError::Conflict(ref f) if f.field == "name"),
        "{err}"
    );
    assert_eq!(t.store.jobs().await.expect("jobs").len(), 1);
    // The failed insert rolled back its change-log row too.
    assert_eq!(
        t.store.changes_after(0).await.expect("changes"),
        vec![(1, 1)]
    );
}

#[tokio::test]
async fn a_burst_overlapping_another_dispatchers_records_only_the_new_rows() {
    let t = temp_store("burst").await;
    let a = t.store.insert_job(&spec("a")).await.expect("job");
    let b = t.store.insert_job(&spec("b")).await.expect("job");
    // Another dispatcher recorded a@1000 already.
    let first = t
        .store
        .record_fires(
            &[(a.id, 1_000, String::new(), None)],
            Trigger::Schedule,
            RunState::Dispatched,
        )
        .await
        .expect("first");
    let Recorded::New(taken) = first[0] else {
        panic!("{first:?}")
    };
    let burst = [
        (b.id, 1_000, String::new(), None),
        (a.id, 1_000, String::new(), None),
        (a.id, 2_000, String::new(), None),
        (b.id, 1_000, "exec-2".to_string(), Some((0, 1))),
    ];
    let got = t
        .store
        .record_fires(&burst, Trigger::Schedule, RunState::Dispatched)
        .await
        .expect("burst");
    assert_eq!(got[1], Recorded::AlreadyFired);
    let new: Vec<i64> = got
        .iter()
        .filter_map(|r| match r {
            Recorded::New(id) => Some(*id),
            Recorded::AlreadyFired => None,
        })
        .collect();
    assert_eq!(new.len(), 3, "{got:?}");
    assert!(!new.contains(&taken));
    // Each id is the run of its own key.
    let run = t.store.run(new[1]).await.expect("get").expect("run");
    assert_eq!((run.job_id, run.instant), (a.id, 2_000));
}

#[tokio::test]
async fn an_instant_is_recorded_once() {
    let t = temp_store("fence").await;
    let job = t.store.insert_job(&spec("a")).await.expect("job");
    let first = t
        .store
        .record_fire(job.id, 1_000, "", Trigger::Schedule, RunState::Dispatched)
        .await
        .expect("first");
    assert!(matches!(first, Recorded::New(_)));
    let again = t
        .store
        .record_fire(job.id, 1_000, "", Trigger::Schedule, RunState::Dispatched)
        .await
        .expect("again");
    assert_eq!(again, Recorded::AlreadyFired);
    // Another target (fan-out) is another run.
    let other = t
        .store
        .record_fire(
            job.id,
            1_000,
            "exec-2",
            Trigger::Schedule,
            RunState::Dispatched,
        )
        .await
        .expect("other target");
    assert!(matches!(other, Recorded::New(_)));
}

#[tokio::test]
async fn a_manual_run_is_claimed_once() {
    let t = temp_store("claim").await;
    let job = t.store.insert_job(&spec("a")).await.expect("job");
    let a = t
        .store
        .request_run(job.id, &ManualRun::default())
        .await
        .expect("a");
    let b = t
        .store
        .request_run(job.id, &ManualRun::default())
        .await
        .expect("b");
    assert_ne!(a, b);
    assert_eq!(
        t.store.pending_runs(i64::MAX).await.expect("pending").len(),
        2
    );
    assert_eq!(t.store.claim_pending(&[a]).await.expect("claim"), vec![a]);
    assert!(t
        .store
        .claim_pending(&[a])
        .await
        .expect("claim again")
        .is_empty());
}

#[tokio::test]
async fn a_final_state_is_never_overwritten() {
    let t = temp_store("final").await;
    let job = t.store.insert_job(&spec("a")).await.expect("job");
    let id = fire_new(&t.store, job.id, 5).await;
    t.store.fail_run(id, "no executor").await.expect("fail");
    t.store
        .mark_running(id, "x", Some(1), 6)
        .await
        .expect("late running");
    let run = t.store.run(id).await.expect("get").expect("exists");
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(run.error.as_deref(), Some("no executor"));
}

#[tokio::test]
async fn a_job_with_a_run_going_is_deleted_only_by_force_and_its_executor_is_told() {
    let t = temp_store("delete-busy").await;
    let job = t.store.insert_job(&spec("a")).await.expect("job");
    let id = fire_new(&t.store, job.id, 5).await;
    assert_eq!(
        t.store.delete_job(job.id, false).await.expect("delete"),
        crate::store::Deleted::Busy(vec![id])
    );
    assert!(t.store.job(job.id).await.expect("get").is_some(), "kept");
    assert_eq!(t.store.given_up_among(&[id]).await.expect("ask"), vec![]);
    assert_eq!(
        t.store.delete_job(job.id, true).await.expect("force"),
        crate::store::Deleted::Done
    );
    assert_eq!(
        t.store.given_up_among(&[id]).await.expect("ask"),
        vec![(id, crate::store::GivenUp::Deleted)]
    );
}

#[tokio::test]
async fn job_names_are_unique_whatever_their_case() {
    let t = temp_store("nocase").await;
    t.store.insert_job(&spec("Backup")).await.expect("first");
    let err = t.store.insert_job(&spec("backup")).await.expect_err("twin");
    assert!(
        matches!(err, StoreError::Conflict(ref f) if f.field == "name"),
        "{err}"
    );
    let other = t.store.insert_job(&spec("other")).await.expect("other");
    let rename = fields("BACKUP");
    let err = t
        .store
        .update_job(&rename.apply(other).expect("valid"))
        .await
        .expect_err("rename onto a twin");
    assert!(
        matches!(err, StoreError::Conflict(ref f) if f.field == "name"),
        "{err}"
    );
}

#[tokio::test]
async fn deleting_a_job_is_logged_for_dispatchers() {
    let t = temp_store("delete").await;
    let job = t.store.insert_job(&spec("a")).await.expect("job");
    let seq = t.store.last_change().await.expect("seq");
    assert_eq!(
        t.store.delete_job(job.id, false).await.expect("delete"),
        crate::store::Deleted::Done
    );
    let changes = t.store.changes_after(seq).await.expect("changes");
    assert_eq!(
        changes.iter().map(|c| c.1).collect::<Vec<_>>(),
        vec![job.id]
    );
    assert!(t.store.job(job.id).await.expect("get").is_none());
}

#[tokio::test]
async fn a_run_accepted_by_a_live_executor_is_not_lost_however_late_its_result() {
    let t = temp_store("lost").await;
    let job = t.store.insert_job(&spec("a")).await.expect("job");
    let fire = |instant| fire_new(&t.store, job.id, instant);
    let (queued, orphan, undelivered) = (fire(1_000).await, fire(2_000).await, fire(3_000).await);
    t.store
        .heartbeat("live/1", 0, &Default::default())
        .await
        .expect("heartbeat");
    t.store
        .mark_delivered("live/1", &[queued])
        .await
        .expect("delivered");
    t.store
        .mark_delivered("gone/2", &[orphan])
        .await
        .expect("delivered");
    let far_future = crate::model::now_millis() + 60_000;
    // Heartbeats before `stale_before` are stale: only the live one is fresh.
    let lost = t
        .store
        .mark_lost(crate::model::now_millis() - 60_000, far_future, 60_000)
        .await
        .expect("lost");
    let mut lost = lost;
    lost.sort_unstable();
    assert_eq!(lost, vec![orphan, undelivered]);
    let run = t.store.run(queued).await.expect("get").expect("run");
    assert_eq!(run.state, RunState::Dispatched);
}

#[tokio::test]
async fn a_dispatcher_that_left_counts_until_stale_and_only_a_silent_one_is_reported() {
    let t = temp_store("dispatchers").await;
    let s = &t.store;
    s.dispatcher_heartbeat("a", 1).await.expect("beat a");
    s.dispatcher_heartbeat("b", 1).await.expect("beat b");
    s.dispatcher_heartbeat("b", 1).await.expect("beat b again");
    s.dispatcher_left("a").await.expect("a leaves");
    let now = crate::model::now_millis();
    // Leaving is no outage: both still count while their beats are fresh.
    assert_eq!(s.dispatchers_seen(now - 10_000).await.expect("seen"), 2);
    // Both stale: each removed once, only the one that did not leave is reported.
    let stale = now + 1;
    assert_eq!(s.dispatchers_seen(stale).await.expect("seen"), 0);
    let alarm = |instance: &str| vec![recorded_alarm(0, 0, "dispatcher_lost", instance)];
    assert_eq!(
        s.expire_dispatchers(stale, &alarm, 0)
            .await
            .expect("expire"),
        ["b"]
    );
    assert!(s
        .expire_dispatchers(stale, &alarm, 0)
        .await
        .expect("again")
        .is_empty());
    // The alarm was stored with the removal: one, for b.
    let alarms = s.alarms(10).await.expect("alarms");
    let lost: Vec<&str> = alarms.iter().map(|a| a.recipient.as_str()).collect();
    assert_eq!(lost, ["b"]);
}

#[tokio::test]
async fn a_fleet_state_flips_once_however_many_monitors_try() {
    let t = temp_store("fleet").await;
    let s = &t.store;
    assert_eq!(
        s.flip_fleet_state("dispatchers", "up", "down", 100)
            .await
            .expect("flip"),
        Some(0)
    );
    assert_eq!(
        s.flip_fleet_state("dispatchers", "up", "down", 200)
            .await
            .expect("flip"),
        None,
        "a second monitor finds it already down"
    );
    assert_eq!(
        s.flip_fleet_state("dispatchers", "down", "up", 300)
            .await
            .expect("back"),
        Some(100),
        "back, with when it went down"
    );
}

#[tokio::test]
async fn a_run_past_its_timeout_and_grace_on_a_live_executor_is_lost_and_only_with_a_timeout() {
    let t = temp_store("overdue").await;
    let capped = t
        .store
        .insert_job(
            &JobFields {
                timeout_secs: Some(1),
                ..fields("capped")
            }
            .create("UTC")
            .expect("valid"),
        )
        .await
        .expect("job");
    let free = t.store.insert_job(&spec("free")).await.expect("job");
    let now = crate::model::now_millis();
    let mut ids = Vec::new();
    for job in [capped.id, free.id] {
        let id = fire_new(&t.store, job, 1_000).await;
        // Started a minute ago on an executor that is alive and well.
        t.store
            .mark_running(id, "live/1", Some(42), now - 60_000)
            .await
            .expect("running");
        ids.push(id);
    }
    t.store
        .heartbeat("live/1", 0, &Default::default())
        .await
        .expect("heartbeat");
    let far_past = now - 600_000;
    // 1 s timeout + 30 s grace: 29 s overdue. The job without a timeout has no cap.
    let lost = t
        .store
        .mark_lost(far_past, far_past, 30_000)
        .await
        .expect("lost");
    assert_eq!(lost, vec![ids[0]]);
    let run = t.store.run(ids[0]).await.expect("get").expect("run");
    assert!(
        run.error
            .as_deref()
            .unwrap_or("")
            .contains("past its timeout"),
        "{run:?}"
    );
    // Within the grace, nothing.
    let t2 = t
        .store
        .mark_lost(far_past, far_past, 120_000)
        .await
        .expect("lost");
    assert!(t2.is_empty());
}

#[tokio::test]
async fn every_job_field_is_stored_and_read_back_as_given() {
    use crate::model::fields::HeaderLine;
    use crate::model::{Fanout, Misfire, Overlap};
    let t = temp_store("fields").await;
    let given = JobFields {
        name: Some("web".into()),
        group: Some("web-team".into()),
        env: Some(vec![crate::model::fields::EnvLine("REGION=eu".into())]),
        schedule: Some("*/7 * * * *".into()),
        timezone: Some("Europe/Paris".into()),
        command: None,
        timeout_secs: Some(90),
        run_at: Some("phpgroup".into()),
        fanout: Some(Fanout::All),
        http_url: Some("https://127.0.0.1:9/x".into()),
        http_method: Some("PUT".into()),
        http_headers: Some(vec![HeaderLine("X-A: 1".into())]),
        http_body: Some("{}".into()),
        http_expect_status: Some(201),
        overlap: Some(Overlap::Forbid),
        retries: Some(3),
        retry_backoff_secs: Some(30),
        misfire: Some(Misfire::RunOnce),
        misfire_window_secs: Some(600),
        alarm_on: Some(vec!["failed".into(), "recovered".into()]),
        alarm_channels: Some(vec!["sms".into()]),
        run_as: Some("daemon".into()),
        description: Some("line 3 of /etc/crontab".into()),
        max_open_files: Some(256),
        max_address_space_mb: Some(2048),
        max_cpu_secs: Some(600),
        admin_email: Some("a@example.com".into()),
        admin_mobile: Some("5550100".into()),
        after: None,
        requires: None,
        within_secs: None,
        params: Some(vec!["REGION=eu".into(), "DAY".into()]),
        param_choices: Some(vec!["REGION=eu|us".into()]),
        secret_params: Some(vec!["DAY".into()]),
        calendars: Some(vec!["cn-workdays".into()]),
        calendar_mode: Some(crate::model::CalendarMode::Only),
        late_after_secs: Some(30),
        deadline: Some("09:30".into()),
        duration_alarm: Some("slow:5".into()),
        paused: Some(true),
    }
    .create("UTC")
    .expect("valid");
    let stored = t.store.insert_job(&given).await.expect("insert");
    let mut expected = given.job().clone();
    expected.id = stored.id;
    expected.created_at = stored.created_at;
    expected.updated_at = stored.updated_at;
    assert_eq!(stored, expected, "insert and read back");
    // An update writes every field too.
    let renamed = JobFields {
        name: Some("web2".into()),
        retries: Some(4),
        ..JobFields::default()
    }
    .apply(stored)
    .expect("valid");
    let updated = t.store.update_job(&renamed).await.expect("update");
    assert_eq!(
        (
            updated.name.as_str(),
            updated.retries,
            updated.http_method.as_str()
        ),
        ("web2", 4, "PUT")
    );
}

#[tokio::test]
async fn a_skipped_or_missed_instant_is_final_from_its_first_write_and_fenced() {
    let t = temp_store("final-at-once").await;
    let job = t.store.insert_job(&spec("a")).await.expect("job").id;
    let Recorded::New(id) = t
        .store
        .record_missed(job, 5_000, "missed: 3 instant(s)")
        .await
        .expect("missed")
    else {
        panic!("not new")
    };
    let run = t.store.run(id).await.expect("get").expect("exists");
    assert_eq!(run.state, RunState::Missed);
    assert_eq!(run.error.as_deref(), Some("missed: 3 instant(s)"));
    assert!(run.ended_at.is_some());
    // The fence holds both ways: again, or after a fire of the same instant.
    assert_eq!(
        t.store
            .record_skipped(job, 5_000, "x")
            .await
            .expect("again"),
        Recorded::AlreadyFired
    );
    let fired = fire_new(&t.store, job, 6_000).await;
    assert_eq!(
        t.store
            .record_missed(job, 6_000, "x")
            .await
            .expect("after a fire"),
        Recorded::AlreadyFired
    );
    let run = t.store.run(fired).await.expect("get").expect("exists");
    assert_eq!(
        run.state,
        RunState::Dispatched,
        "the fired run is untouched"
    );
}

#[tokio::test]
async fn settled_alarms_are_pruned_by_retention_and_pending_ones_kept() {
    let t = temp_store("prune-alarms").await;
    let raise = |status: &'static str, kind: &str| NewAlarm {
        status,
        ..recorded_alarm(1, 1, kind, "")
    };
    t.store
        .raise_alarms(&[raise("recorded", "failed")], 0)
        .await
        .expect("recorded");
    t.store
        .raise_alarms(&[raise("pending", "lost")], 0)
        .await
        .expect("pending");
    let later = crate::model::now_millis() + 1_000;
    assert_eq!(t.store.prune_alarms(later).await.expect("prune"), 1);
    let left: Vec<String> = t
        .store
        .alarms(10)
        .await
        .expect("alarms")
        .into_iter()
        .map(|a| a.kind)
        .collect();
    assert_eq!(left, ["lost"], "a pending alarm is kept whatever its age");
    assert_eq!(t.store.prune_alarms(0).await.expect("prune"), 0);
}

#[tokio::test]
async fn a_store_error_while_raising_leaves_the_run_and_its_alarm_to_the_next_scan() {
    let t = temp_store("alarm-claim").await;
    let job = t.store.insert_job(&spec("a")).await.expect("job").id;
    let Recorded::New(run) = t
        .store
        .record_missed(job, 5_000, "missed: 1 instant(s)")
        .await
        .expect("missed")
    else {
        panic!("not new")
    };
    let alarm = recorded_alarm(job, run, "missed", "");
    refuse_alarms(&t, true).await;
    let failed = t
        .store
        .check_run(run, Some((job, true)), std::slice::from_ref(&alarm), 0)
        .await;
    assert!(failed.is_err(), "{failed:?}");
    // Nothing of it applied: the run is still to look at, the job not marked failing.
    let unchecked: Vec<i64> = t
        .store
        .unchecked_runs(10)
        .await
        .expect("unchecked")
        .iter()
        .map(|e| e.run_id)
        .collect();
    assert_eq!(unchecked, [run]);
    let failing: i64 = sqlx::query_scalar("SELECT alarm_failing FROM jobs WHERE id = ?")
        .bind(job)
        .fetch_one(&t.store.pool)
        .await
        .expect("flag");
    assert_eq!(failing, 0);
    refuse_alarms(&t, false).await;
    let raised = t
        .store
        .check_run(run, Some((job, true)), std::slice::from_ref(&alarm), 0)
        .await
        .expect("check");
    assert!(
        matches!(raised.as_deref(), Some([Raised::New(_)])),
        "{raised:?}"
    );
    assert_eq!(t.store.alarms(10).await.expect("alarms").len(), 1);
    // Claimed once: a second monitor gets nothing.
    let again = t
        .store
        .check_run(run, None, &[alarm], 0)
        .await
        .expect("again");
    assert!(again.is_none());
}

#[tokio::test]
async fn a_late_result_of_a_run_presumed_lost_replaces_the_presumption() {
    let t = temp_store("late-result").await;
    let job = t.store.insert_job(&spec("a")).await.expect("job");
    let mut ids = Vec::new();
    for instant in [1_000, 2_000, 3_000] {
        match t
            .store
            .record_fire(job.id, instant, "", Trigger::Schedule, RunState::Dispatched)
            .await
            .expect("fire")
        {
            Recorded::New(id) => ids.push(id),
            Recorded::AlreadyFired => panic!("fired twice"),
        }
    }
    t.store
        .mark_delivered("paused/1", &ids)
        .await
        .expect("delivered");
    // Its executor was silent past lost_after (paused, cut off): all three presumed lost.
    let now = crate::model::now_millis();
    let mut lost = t
        .store
        .mark_lost(now + 1, now + 60_000, 60_000)
        .await
        .expect("lost");
    lost.sort_unstable();
    assert_eq!(lost, ids);
    let ended = |state: RunState| RunOutcome {
        state,
        exit_code: Some(0),
        error: None,
        stdout: "done\n".into(),
        stderr: String::new(),
        stdout_cut: 0,
        stderr_cut: 0,
        ended_at: now,
    };
    let by = |executor: &str| Started {
        executor: executor.into(),
        pid: Some(7),
        started_at: now - 10,
        params_shown: None,
    };
    // Its own executor reports it ran to the end: the truth is recorded, with a note.
    t.store
        .finish_run(ids[0], &ended(RunState::Succeeded), Some(&by("paused/1")))
        .await
        .expect("late result");
    let run = t.store.run(ids[0]).await.expect("get").expect("run");
    assert_eq!(run.state, RunState::Succeeded);
    assert_eq!(
        run.error.as_deref(),
        Some("its result arrived after it was presumed lost")
    );
    // Another executor's word does not count, nor a kill (the executor stopping a run it
    // found recorded lost): those stay lost.
    t.store
        .finish_run(ids[1], &ended(RunState::Succeeded), Some(&by("other/2")))
        .await
        .expect("other");
    t.store
        .finish_run(ids[2], &ended(RunState::Killed), Some(&by("paused/1")))
        .await
        .expect("killed");
    for id in &ids[1..] {
        let run = t.store.run(*id).await.expect("get").expect("run");
        assert_eq!(run.state, RunState::Lost, "{id}");
    }
}

/// Found by the chaos suite: two dispatchers firing two instants of a `forbid` job at once
/// both found no run going and both started one. Checked and recorded together, one starts
/// and the other is skipped, whoever is first.
#[tokio::test]
async fn two_forbid_fires_at_once_start_one_run() {
    let t = temp_store("forbid-race").await;
    let mut f = fields("f");
    f.overlap = Some(crate::model::Overlap::Forbid);
    let job = t
        .store
        .insert_job(&f.create("UTC").expect("valid"))
        .await
        .expect("job")
        .id;
    let (a, b) = tokio::join!(
        t.store.fire_forbid(job, 1_000, Trigger::Schedule),
        t.store.fire_forbid(job, 2_000, Trigger::Schedule)
    );
    let mut got = [a.expect("a"), b.expect("b")];
    got.sort_by_key(|g| matches!(g, Forbid::Skipped));
    assert!(matches!(got[0], Forbid::New(_)), "{got:?}");
    assert_eq!(got[1], Forbid::Skipped, "{got:?}");
    // The same instant again: taken.
    assert_eq!(
        t.store
            .fire_forbid(job, 1_000, Trigger::Schedule)
            .await
            .expect("again"),
        Forbid::AlreadyFired
    );
}

/// Found by the chaos suite: a dependency's fact flipped `down` while its alarm failed to be
/// written, so two `dependency_back` came in a row. Flip and alarm are one transaction.
#[tokio::test]
async fn a_fleet_fact_flips_with_its_alarm_or_not_at_all() {
    let t = temp_store("flip-alarm").await;
    t.store
        .ensure_fleet_fact("dependency:etcd")
        .await
        .expect("fact");
    let alarm = |_since: crate::model::Millis| vec![recorded_alarm(0, 0, "dependency_down", "")];
    refuse_alarms(&t, true).await;
    let failed = t
        .store
        .flip_fleet_state_alarmed("dependency:etcd", "up", "down", 5, &alarm, 0)
        .await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(
        t.store
            .fleet_fact("dependency:etcd")
            .await
            .expect("fact")
            .as_deref(),
        Some("up"),
        "not flipped without its alarm"
    );
    refuse_alarms(&t, false).await;
    let flipped = t
        .store
        .flip_fleet_state_alarmed("dependency:etcd", "up", "down", 5, &alarm, 0)
        .await
        .expect("flip");
    assert!(flipped.is_some());
    assert_eq!(t.store.alarms(10).await.expect("alarms").len(), 1);
}

/// Found by the chaos suite (a paused executor's late request): a run is started only by the
/// executor the store names, and only while it is `dispatched`.
#[tokio::test]
async fn a_run_is_claimed_by_one_executor_and_an_ended_run_by_none() {
    let t = temp_store("claims").await;
    let job = t
        .store
        .insert_job(&fields("c").create("UTC").expect("valid"))
        .await
        .expect("job");
    let fire = |instant| fire_new(&t.store, job.id, instant);
    let (run, ended) = (fire(1_000).await, fire(2_000).await);
    t.store.fail_run(ended, "gave up").await.expect("fail");
    let (asked_a, asked_b) = ([run, ended, 999_999], [run]);
    let (a, b) = tokio::join!(
        t.store.claim_runs("a/1", &asked_a),
        t.store.claim_runs("b/2", &asked_b)
    );
    let (a, b) = (a.expect("a"), b.expect("b"));
    let winner = if matches!(a[&run], Claim::Mine(_)) {
        "a/1"
    } else {
        "b/2"
    };
    let (mine, theirs) = if winner == "a/1" { (&a, &b) } else { (&b, &a) };
    assert!(matches!(mine[&run], Claim::Mine(_)));
    assert_eq!(theirs[&run], Claim::Taken(winner.to_string()));
    assert_eq!(a[&ended], Claim::Over, "an ended run is nobody's");
    assert_eq!(a[&999_999], Claim::Over, "a deleted run is nobody's");
    // Asking again (after an error, say) reads the same.
    let again = t.store.claim_runs(winner, &[run]).await.expect("again");
    assert!(matches!(again[&run], Claim::Mine(_)));
    t.store
        .mark_running(run, winner, None, 1)
        .await
        .expect("running");
    let started = t.store.claim_runs(winner, &[run]).await.expect("started");
    assert_eq!(
        started[&run],
        Claim::Over,
        "a started run is not started again"
    );
}

/// A final run counts once in its job's stats, whichever path checks it and however often
/// (two monitors scanning at once try twice).
#[tokio::test]
async fn a_final_run_counts_once_in_its_jobs_stats() {
    let t = temp_store("job-stats").await;
    let job = t.store.insert_job(&spec("counted")).await.expect("job").id;
    let Recorded::New(missed) = t
        .store
        .record_missed(job, 5_000, "missed: 1 instant(s)")
        .await
        .expect("missed")
    else {
        panic!("not new")
    };
    for _ in 0..2 {
        t.store
            .check_run(missed, None, &[], 0)
            .await
            .expect("check");
    }
    t.store
        .record_fire(job, 6_000, "", Trigger::Schedule, RunState::Succeeded)
        .await
        .expect("success");
    for _ in 0..2 {
        t.store.check_plain_successes().await.expect("successes");
    }
    let stats = t.store.job_stats().await.expect("stats");
    let counts: std::collections::HashMap<RunState, i64> =
        stats[0].by_state.iter().copied().collect();
    assert_eq!(counts[&RunState::Missed], 1);
    assert_eq!(counts[&RunState::Succeeded], 1);
    assert_eq!(counts[&RunState::Failed], 0);
    // A deleted job's counts go with the pruning pass.
    t.store.delete_job(job, true).await.expect("delete");
    assert_eq!(t.store.prune_job_stats().await.expect("prune"), 1);
}

/// Found while adding `run retry`: the retries of two shards of one instant were both keyed
/// with an empty target, so the second was dropped as a duplicate.
#[tokio::test]
async fn two_failed_shards_of_one_instant_each_get_their_retry_with_their_shard() {
    let t = temp_store("shard-retries").await;
    let job = t.store.insert_job(&spec("all")).await.expect("job");
    let keys = [
        (job.id, 5_000, "e1".to_string(), Some((0, 2))),
        (job.id, 5_000, "e2".to_string(), Some((1, 2))),
    ];
    let ids: Vec<i64> = t
        .store
        .record_fires(&keys, Trigger::Schedule, RunState::Dispatched)
        .await
        .expect("fire")
        .into_iter()
        .map(|r| match r {
            Recorded::New(id) => id,
            Recorded::AlreadyFired => panic!("fired twice"),
        })
        .collect();
    let finished: Vec<crate::store::Finished> = ids
        .iter()
        .map(|id| crate::store::Finished {
            run_id: *id,
            outcome: crate::store::RunOutcome::failed("exit code 1".into()),
            started: None,
            retry: Some(crate::store::Retry {
                job_id: job.id,
                instant: 5_000,
                attempt: 2,
                retry_of: *id,
                not_before: 0,
            }),
        })
        .collect();
    t.store.finish_runs(&finished).await.expect("finish");
    let mut pending: Vec<Option<(i64, i64)>> = t
        .store
        .pending_runs(i64::MAX)
        .await
        .expect("pending")
        .into_iter()
        .map(|p| p.shard)
        .collect();
    pending.sort_unstable();
    assert_eq!(pending, vec![Some((0, 2)), Some((1, 2))]);
}

/// Nothing a backfill or a window leaves grows without bound: ended backfills and one-off
/// windows long over go with retention; running backfills and recurring windows stay.
#[tokio::test]
async fn retention_prunes_ended_backfills_and_windows_long_over() {
    let t = temp_store("prune-backfills").await;
    let job = t.store.insert_job(&spec("b")).await.expect("job");
    let new = |from| crate::store::NewBackfill {
        job_id: job.id,
        from,
        to: from + 1,
        parallel: 1,
        all: false,
        total: 1,
        created_by: None,
    };
    let ended = t.store.create_backfill(&new(1_000)).await.expect("one");
    let running = t.store.create_backfill(&new(5_000)).await.expect("two");
    assert!(t
        .store
        .cancel_backfill(ended, "test")
        .await
        .expect("cancel"));
    let window = |name: &str, every: Option<&str>| crate::model::window::Window {
        name: name.into(),
        from: Some(0),
        to: Some(10),
        group: None,
        job: None,
        every: every.map(str::to_string),
        for_secs: every.map(|_| 60),
        timezone: "UTC".into(),
        created_by: None,
    };
    t.store
        .insert_window(&window("once", None))
        .await
        .expect("once");
    t.store
        .insert_window(&window("nightly", Some("0 0 2 * * *")))
        .await
        .expect("nightly");
    t.store.prune(i64::MAX).await.expect("prune");
    let left: Vec<i64> = t
        .store
        .backfills(None, None, 10)
        .await
        .expect("list")
        .into_iter()
        .map(|(b, _)| b.id)
        .collect();
    assert_eq!(left, vec![running]);
    let windows: Vec<String> = t
        .store
        .windows()
        .await
        .expect("windows")
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(windows, ["nightly"]);
}

#[tokio::test]
async fn a_system_alarm_merges_only_into_the_same_event() {
    let t = temp_store("system-merge").await;
    let s = &t.store;
    let system = |subject: &str| NewAlarm {
        details: serde_json::json!({ "error": subject }),
        ..recorded_alarm(0, 0, "executor_lost", "")
    };
    for subject in [
        "executor h1/a/1 gone",
        "executor h2/a/2 gone",
        "executor h1/a/1 gone",
    ] {
        s.raise_alarms(&[system(subject)], 0).await.expect("raise");
    }
    let alarms = s.alarms(10).await.expect("alarms");
    // Two events: h2's loss is its own alarm; h1's repeat folds into h1's.
    let mut counts: Vec<(String, i64)> = alarms
        .iter()
        .map(|a| {
            (
                a.details["error"].as_str().unwrap_or("").to_string(),
                a.count,
            )
        })
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [
            ("executor h1/a/1 gone".to_string(), 2),
            ("executor h2/a/2 gone".to_string(), 1)
        ]
    );
}
