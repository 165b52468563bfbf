//! The flows' exactness at the store: each (job, flow, round) decided once whoever releases,
//! fan-in decided by the last upstream to end, skips propagated, reruns in a new round.

use super::tests::{fields, temp_store};
use super::*;
use crate::model::{Job, RunState, Trigger};

async fn job(store: &Store, name: &str, after: &str) -> Job {
    let mut f = fields(name);
    if !after.is_empty() {
        f.schedule = None;
        f.after = Some(
            after
                .split(',')
                .map(|s| crate::model::fields::AfterLine(s.to_string()))
                .collect(),
        );
    }
    store
        .insert_job(&f.create("UTC").expect("valid"))
        .await
        .expect("insert")
}

/// Ends a run as an executor records it.
async fn end(store: &Store, run: i64, state: RunState) {
    let mut outcome = RunOutcome::failed(String::new());
    outcome.state = state;
    outcome.error = None;
    store.finish_run(run, &outcome, None).await.expect("finish");
}

/// Releases until nothing is left, as the dispatchers' polls do.
async fn settle(store: &Store) {
    for _ in 0..20 {
        if store
            .release_flows(500, &mut None)
            .await
            .expect("release")
            .runs
            == 0
        {
            return;
        }
    }
    panic!("releasing never settled");
}

/// The runs of `job` at `instant`: (id, state, error).
async fn runs_of(store: &Store, job: i64, instant: i64) -> Vec<(i64, String, Option<String>)> {
    let rows = sqlx::query(
        "SELECT id, state, error FROM runs WHERE job_id = ? AND instant = ? ORDER BY id",
    )
    .bind(job)
    .bind(instant)
    .fetch_all(&store.pool)
    .await
    .expect("runs");
    rows.iter()
        .map(|r| {
            use sqlx::Row;
            (
                r.try_get(0).expect("id"),
                r.try_get(1).expect("state"),
                rows::text_at(r, 2).expect("error"),
            )
        })
        .collect()
}

async fn fire(store: &Store, job: i64, instant: i64) -> i64 {
    match store
        .record_fire(job, instant, "", Trigger::Schedule, RunState::Dispatched)
        .await
        .expect("fire")
    {
        Recorded::New(id) => id,
        Recorded::AlreadyFired => panic!("fired twice"),
    }
}

#[tokio::test]
async fn a_chain_a_fan_in_and_a_failure_path_are_each_decided_once() {
    let t = temp_store("flow-shape").await;
    let s = &t.store;
    let export = job(s, "export", "").await;
    let load = job(s, "load", "export").await;
    let fx = job(s, "fx", "export").await;
    let report = job(s, "report", "load,fx").await;
    let page = job(s, "page", "load:failure").await;
    let t0 = 1_000_000;
    let root = fire(s, export.id, t0).await;
    end(s, root, RunState::Succeeded).await;
    settle(s).await;
    let load_run = runs_of(s, load.id, t0).await;
    let fx_run = runs_of(s, fx.id, t0).await;
    assert_eq!(load_run.len(), 1, "load released once: {load_run:?}");
    assert_eq!(fx_run.len(), 1);
    assert!(
        runs_of(s, report.id, t0).await.is_empty(),
        "report waits for both"
    );
    end(s, load_run[0].0, RunState::Failed).await;
    settle(s).await;
    // The failure path runs; the fan-in is skipped at once, naming the failed upstream.
    let page_run = runs_of(s, page.id, t0).await;
    assert_eq!(page_run.len(), 1);
    assert_eq!(page_run[0].1, "scheduled");
    let report_run = runs_of(s, report.id, t0).await;
    assert_eq!(report_run.len(), 1);
    assert_eq!(report_run[0].1, "skipped");
    let reason = report_run[0].2.clone().unwrap_or_default();
    assert!(reason.contains("upstream `load` failed"), "{reason}");
    end(s, fx_run[0].0, RunState::Succeeded).await;
    end(s, page_run[0].0, RunState::Succeeded).await;
    settle(s).await;
    assert_eq!(runs_of(s, report.id, t0).await.len(), 1, "decided once");
    let flows = s
        .flows(&FlowFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("flows");
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].0.state, "failed");
    assert!(flows[0].0.failed.as_deref().unwrap_or("").contains("load"));
}

#[tokio::test]
async fn releasers_racing_decide_each_dependent_once_and_the_fan_in_runs() {
    let t = temp_store("flow-race").await;
    let s = &t.store;
    let root = job(s, "root", "").await;
    let mut mids = Vec::new();
    for i in 0..6 {
        mids.push(job(s, &format!("mid{i}"), "root").await);
    }
    let names: Vec<String> = mids.iter().map(|m| m.name.clone()).collect();
    let join = job(s, "join", &names.join(",")).await;
    for flow in 0..5 {
        let t0 = 2_000_000 + flow * 1000;
        let r = fire(s, root.id, t0).await;
        end(s, r, RunState::Succeeded).await;
        settle(s).await;
        // Every upstream of the fan-in ends at once, and four releasers run at once.
        let mut ends = Vec::new();
        for m in &mids {
            let run = runs_of(s, m.id, t0).await;
            assert_eq!(run.len(), 1);
            ends.push(run[0].0);
        }
        for id in ends {
            end(s, id, RunState::Succeeded).await;
        }
        let mut racers = Vec::new();
        for _ in 0..4 {
            let s = s.clone();
            racers.push(tokio::spawn(async move {
                for _ in 0..10 {
                    s.release_flows(3, &mut None).await.expect("release");
                }
            }));
        }
        for r in racers {
            r.await.expect("racer");
        }
        settle(s).await;
        let joined = runs_of(s, join.id, t0).await;
        assert_eq!(joined.len(), 1, "flow {flow}: {joined:?}");
        assert_eq!(joined[0].1, "scheduled");
    }
}

#[tokio::test]
async fn a_rerun_runs_what_failed_then_what_depends_on_it_in_a_new_round() {
    let t = temp_store("flow-rerun").await;
    let s = &t.store;
    let a = job(s, "a", "").await;
    let b = job(s, "b", "a").await;
    let c = job(s, "c", "b").await;
    let t0 = 3_000_000;
    let ra = fire(s, a.id, t0).await;
    end(s, ra, RunState::Succeeded).await;
    settle(s).await;
    let rb = runs_of(s, b.id, t0).await[0].0;
    let graph = s.graph().await.expect("graph");
    assert_eq!(
        s.rerun_flow(&graph, a.id, t0).await.expect("rerun"),
        Rerun::Going
    );
    end(s, rb, RunState::Failed).await;
    settle(s).await;
    assert_eq!(runs_of(s, c.id, t0).await[0].1, "skipped");
    let Rerun::Started(new) = s.rerun_flow(&graph, a.id, t0).await.expect("rerun") else {
        panic!("not rerun");
    };
    assert_eq!(new.len(), 1, "only b, whose upstream succeeded");
    let again = s.run(new[0]).await.expect("run").expect("exists");
    assert_eq!(
        (again.job_id, again.rerun_of, again.flow_round),
        (b.id, Some(rb), 1)
    );
    end(s, new[0], RunState::Succeeded).await;
    settle(s).await;
    let c_runs = runs_of(s, c.id, t0).await;
    assert_eq!(c_runs.len(), 2, "c decided again in round 1: {c_runs:?}");
    assert_eq!(c_runs[1].1, "scheduled");
    end(s, c_runs[1].0, RunState::Succeeded).await;
    settle(s).await;
    let flows = s
        .flows(&FlowFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("flows");
    assert_eq!(
        (flows[0].0.state.as_str(), flows[0].0.round),
        ("succeeded", 1)
    );
    assert_eq!(
        s.rerun_flow(&graph, a.id, t0).await.expect("rerun"),
        Rerun::AllSucceeded
    );
}

#[tokio::test]
async fn a_retried_upstream_releases_once_its_last_attempt_ends() {
    let t = temp_store("flow-retry").await;
    let s = &t.store;
    let a = job(s, "a", "").await;
    let b = job(s, "b", "a").await;
    let t0 = 4_000_000;
    let ra = fire(s, a.id, t0).await;
    let mut outcome = RunOutcome::failed("exit 1".into());
    outcome.ended_at = t0;
    s.finish_runs(&[Finished {
        run_id: ra,
        outcome,
        started: None,
        retry: Some(Retry {
            job_id: a.id,
            instant: t0,
            attempt: 2,
            retry_of: ra,
            not_before: 0,
        }),
    }])
    .await
    .expect("finish");
    settle(s).await;
    assert!(
        runs_of(s, b.id, t0).await.is_empty(),
        "the retry is pending"
    );
    let retry = runs_of(s, a.id, t0).await[1].0;
    end(s, retry, RunState::Succeeded).await;
    settle(s).await;
    assert_eq!(runs_of(s, b.id, t0).await.len(), 1);
}

#[tokio::test]
async fn cycles_missing_jobs_and_two_roots_are_refused_and_store_nothing() {
    let t = temp_store("flow-refuse").await;
    let s = &t.store;
    let a = job(s, "a", "").await;
    job(s, "b", "a").await;
    job(s, "x", "").await;
    let mut f = crate::model::JobFields {
        after: Some(vec![crate::model::fields::AfterLine("b".into())]),
        ..Default::default()
    };
    let err = s
        .update_job(&f.clone().apply(a.clone()).expect("valid"))
        .await;
    let msg = format!("{:?}", err.expect_err("cycle"));
    assert!(msg.contains("a cycle a -> b -> a"), "{msg}");
    f.after = Some(vec![crate::model::fields::AfterLine("nope".into())]);
    let err = s
        .update_job(&f.clone().apply(a.clone()).expect("valid"))
        .await;
    assert!(format!("{:?}", err.expect_err("missing")).contains("no job `nope`"));
    let two = job_fields_after("c", "b,x").create("UTC").expect("valid");
    let err = s.insert_job(&two).await.expect_err("two roots");
    assert!(format!("{err:?}").contains("`a` and `x`"), "{err:?}");
    assert!(s.find_job("c").await.expect("read").is_none());
    assert_eq!(s.graph().await.expect("graph").upstreams(a.id), &[]);
}

fn job_fields_after(name: &str, after: &str) -> crate::model::JobFields {
    let mut f = fields(name);
    f.schedule = None;
    f.after = Some(
        after
            .split(',')
            .map(|s| crate::model::fields::AfterLine(s.to_string()))
            .collect(),
    );
    f
}
