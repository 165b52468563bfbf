//! Cluster mode against real servers: etcd (executor registry), Redis (fire lock) and MariaDB
//! (the shared store), each started by the harness on free loopback ports. Every host is its
//! own `cronvisor up` process running a subset of the roles. Faults are injected by stopping
//! and restarting the servers and by SIGKILLing hosts; exactly-once is proven by queries over
//! the `runs` table: one run per (job, instant, target), no instant missing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::cluster::{every_second, let_time_pass, Cluster, LEASE_TTL_SECS};
use crate::harness::{http, now_ms, wait_for};

#[test]
fn three_dispatchers_fire_each_instant_once_even_when_one_is_killed() {
    let mut c = Cluster::start();
    c.host("d1", &["dispatcher", "monitor"]);
    c.host("d2", &["dispatcher"]);
    c.host("d3", &["dispatcher"]);
    c.host("e1", &["executor"]);
    c.host("e2", &["executor"]);
    wait_for(Duration::from_secs(10), "two executors in etcd", || {
        (c.etcd.keys("/cronvisor/executors/").len() == 2).then_some(())
    });
    // Added on one host, the jobs reach every dispatcher without a restart.
    let jobs = c.every_second_jobs("tick", 100, &["d1", "d2", "d3"]);
    let from = now_ms();
    let_time_pass(Duration::from_secs(10));
    c.crash("d2");
    let_time_pass(Duration::from_secs(10));
    let to = now_ms() - 1000;
    c.assert_all_succeeded_once(&jobs, from, to);
    // Both executors took work, and the Redis lock did its part: the surviving dispatchers
    // lost most instants to each other instead of all reaching for the store.
    let per_executor = c.sql(&format!(
        "SELECT SUBSTRING_INDEX(executor, '/', 1), COUNT(*) FROM cron.runs WHERE job_id IN ({}) \
         AND instant BETWEEN {from} AND {to} GROUP BY 1",
        jobs.iter()
            .map(|j| j.to_string())
            .collect::<Vec<_>>()
            .join(",")
    ));
    assert_eq!(per_executor.len(), 2, "{per_executor:?}");
    let lost: i64 = ["d1", "d3"]
        .iter()
        .map(|d| c.metric(d, "dispatch", "cronvisor_fire_lock_lost_total"))
        .sum();
    assert!(lost > 0, "no dispatcher ever lost a lock: is Redis used?");
    // The killed dispatcher was reported, once; the fleet never lacked a dispatcher.
    let alarms =
        c.sql("SELECT kind, COUNT(*) FROM cron.alarms WHERE kind LIKE 'dispatcher%' GROUP BY kind");
    assert_eq!(
        alarms,
        [vec!["dispatcher_lost".to_string(), "1".to_string()]],
        "{alarms:?}"
    );
}

#[test]
fn redis_outage_keeps_fire_once_and_the_lock_returns() {
    let (mut c, jobs) = Cluster::two_dispatchers_one_executor("r");
    let from = now_ms();
    let_time_pass(Duration::from_secs(3));
    c.redis.stop();
    // Both dispatchers notice and say so, and keep firing on the fence.
    for d in ["d1", "d2"] {
        wait_for(Duration::from_secs(10), "readyz to report redis", || {
            let r = c.readyz(d, "dispatch");
            (r["status"] == "degraded" && r["degraded"]["redis"].is_string()).then_some(())
        });
    }
    let_time_pass(Duration::from_secs(5));
    let fenced_during = c.metric("d1", "dispatch", "cronvisor_fire_fenced_total")
        + c.metric("d2", "dispatch", "cronvisor_fire_fenced_total");
    assert!(
        fenced_during > 0,
        "nothing fired on the fence while Redis was down"
    );
    c.redis.resume();
    for d in ["d1", "d2"] {
        wait_for(Duration::from_secs(10), "readyz to be ready again", || {
            (c.readyz(d, "dispatch")["status"] == "ready").then_some(())
        });
    }
    // The fast path is back: locks are taken in Redis again.
    wait_for(Duration::from_secs(10), "fire locks in Redis again", || {
        let n: i64 = c
            .redis
            .cli(&["DBSIZE"])
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        (n > 0).then_some(())
    });
    let_time_pass(Duration::from_secs(3));
    let to = now_ms() - 1000;
    c.wait_settled(&jobs, to);
    c.assert_exactly_once(&jobs, from, to);
    // The two monitors alarmed the outage once, and its end once.
    let alarms = c.sql(
        "SELECT kind, COUNT(*) FROM cron.alarms WHERE kind IN ('dependency_down', 'dependency_back') \
         GROUP BY kind ORDER BY kind",
    );
    assert_eq!(
        alarms,
        [
            vec!["dependency_back".to_string(), "1".to_string()],
            vec!["dependency_down".to_string(), "1".to_string()]
        ],
        "{alarms:?}"
    );
}

#[test]
fn targets_groups_fanout_and_a_crashed_executor() {
    let mut c = Cluster::start();
    c.host("d1", &["dispatcher", "monitor"]);
    c.host("e1", &["executor"]);
    c.host("e2", &["executor"]);
    wait_for(Duration::from_secs(10), "two executors in etcd", || {
        (c.etcd.keys("/cronvisor/executors/").len() == 2).then_some(())
    });
    let any = c.add_job("d1", every_second("any", Value::Null));
    let g1 = c.add_job(
        "d1",
        every_second("g1", serde_json::json!({"run_at": "g1"})),
    );
    let all = c.add_job(
        "d1",
        every_second(
            "all",
            serde_json::json!({"run_at": "both", "fanout": "all",
                "command": "echo $CRONVISOR_SHARD_INDEX/$CRONVISOR_SHARD_TOTAL"}),
        ),
    );
    let nowhere = c.add_job(
        "d1",
        every_second("nowhere", serde_json::json!({"run_at": "g9"})),
    );
    let from = now_ms();
    let_time_pass(Duration::from_secs(4));
    let to = now_ms() - 1000;
    c.wait_settled(&[any, g1, all, nowhere], to);
    let window = |c: &Cluster, job: i64, from: i64, to: i64| {
        c.sql(&format!(
            "SELECT instant, state, SUBSTRING_INDEX(executor, '/', 1), target, error FROM cron.runs \
             WHERE job_id = {job} AND instant BETWEEN {from} AND {to} ORDER BY instant, target"
        ))
    };
    // run_at = a group: only its executors.
    let g1_runs = window(&c, g1, from + 1000, to);
    assert!(!g1_runs.is_empty());
    assert!(
        g1_runs.iter().all(|r| r[1] == "succeeded" && r[2] == "e1"),
        "{g1_runs:?}"
    );
    // fanout = all: one run per live member per instant, each pinned to its executor.
    let all_runs = window(&c, all, from + 1000, to);
    let mut per_instant: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &all_runs {
        assert_eq!(r[1], "succeeded", "{r:?}");
        per_instant
            .entry(r[0].clone())
            .or_default()
            .push(r[2].clone());
    }
    assert!(!per_instant.is_empty());
    for (instant, hosts) in &per_instant {
        assert_eq!(hosts, &["e1", "e2"], "instant {instant}");
    }
    // Each run knows its shard: a stable order of the executors of its instant.
    let shards = c.sql(&format!(
        "SELECT SUBSTRING_INDEX(executor, '/', 1), TRIM(TRAILING '\n' FROM stdout) FROM cron.runs \
         WHERE job_id = {all} AND instant BETWEEN {} AND {to} AND state = 'succeeded'",
        from + 1000
    ));
    assert!(!shards.is_empty());
    for r in &shards {
        let want = if r[0] == "e1" { "0/2" } else { "1/2" };
        assert_eq!(r[1], want, "{shards:?}");
    }
    // `run retry` of e2's shard runs it again as shard 1 of 2, wherever it lands.
    let e2_run = c.sql(&format!(
        "SELECT id, shard_index, shard_total FROM cron.runs WHERE job_id = {all} \
         AND state = 'succeeded' AND executor LIKE 'e2/%' ORDER BY id LIMIT 1"
    ));
    assert_eq!(
        e2_run[0][1..],
        ["1", "2"],
        "the shard is recorded: {e2_run:?}"
    );
    let retried = c.get("d1").json(&["run", "retry", &e2_run[0][0]]);
    let again = c
        .get("d1")
        .wait_run(&retried["run_id"].to_string(), "the shard's retry", |s| {
            s == "succeeded"
        });
    assert_eq!(again["stdout"], "1/2\n", "{again}");
    assert_eq!(again["shard"], serde_json::json!([1, 2]));
    // A target with no live executor: each instant recorded missed, never dropped.
    let nowhere_runs = window(&c, nowhere, from + 1000, to);
    assert!(!nowhere_runs.is_empty());
    assert!(
        nowhere_runs
            .iter()
            .all(|r| r[1] == "missed" && r[4].contains("no executor")),
        "{nowhere_runs:?}"
    );
    // Any executor: round-robin reaches both.
    let any_runs = window(&c, any, from + 1000, to);
    let hosts: std::collections::BTreeSet<&str> = any_runs.iter().map(|r| r[2].as_str()).collect();
    assert_eq!(hosts.len(), 2, "{any_runs:?}");

    // e2 crashes: once its lease expires it leaves the registry and every fire goes to e1.
    c.crash("e2");
    wait_for(
        Duration::from_secs(LEASE_TTL_SECS * 3),
        "e2's lease to expire",
        || (c.etcd.keys("/cronvisor/executors/").len() == 1).then_some(()),
    );
    let after_lease = now_ms() + 1000;
    let_time_pass(Duration::from_secs(3));
    let to = now_ms() - 1000;
    c.wait_settled(&[any, all], to);
    let any_after = window(&c, any, after_lease, to);
    assert!(!any_after.is_empty());
    assert!(
        any_after
            .iter()
            .all(|r| r[1] == "succeeded" && r[2] == "e1"),
        "{any_after:?}"
    );
    let all_after = window(&c, all, after_lease, to);
    assert!(all_after.iter().all(|r| r[2] == "e1"), "{all_after:?}");
    // Between the crash and the lease expiry, fires to e2 failed over to e1: nothing missing.
    c.assert_exactly_once(&[any], from, to);
}

#[test]
fn etcd_outage_keeps_firing_and_a_new_executor_gets_work_after() {
    let mut c = Cluster::start();
    c.host("d1", &["dispatcher", "monitor"]);
    c.host("e1", &["executor"]);
    let jobs = c.every_second_jobs("t", 10, &["d1"]);
    let from = now_ms();
    let_time_pass(Duration::from_secs(2));
    c.etcd.stop();
    wait_for(Duration::from_secs(10), "readyz to report etcd", || {
        c.readyz("d1", "dispatch")["degraded"]["etcd"]
            .is_string()
            .then_some(())
    });
    let_time_pass(Duration::from_secs(5));
    c.etcd.resume();
    wait_for(Duration::from_secs(15), "readyz to be ready again", || {
        (c.readyz("d1", "dispatch")["status"] == "ready").then_some(())
    });
    // Firing went on to the known executor through the outage.
    let to = now_ms() - 1000;
    c.assert_all_succeeded_once(&jobs, from, to);
    // A new executor registering after etcd returned receives work.
    c.host("e3", &["executor"]);
    let on_e3 = c.add_job(
        "d1",
        every_second("on-e3", serde_json::json!({"run_at": "e3"})),
    );
    let started = Instant::now();
    wait_for(Duration::from_secs(15), "a run on e3", || {
        let rows = c.sql(&format!(
            "SELECT COUNT(*) FROM cron.runs WHERE job_id = {on_e3} AND state = 'succeeded' \
             AND executor LIKE 'e3/%'"
        ));
        (rows[0][0] != "0").then_some(())
    });
    eprintln!(
        "new executor got work {:?} after its job was added",
        started.elapsed()
    );
    // The monitor's probe (one kept connection) alarmed the outage once, and its end once.
    let alarms = wait_for(Duration::from_secs(10), "the dependency alarms", || {
        let rows = c.sql(
            "SELECT kind, COUNT(*) FROM cron.alarms WHERE kind LIKE 'dependency%' \
             GROUP BY kind ORDER BY kind",
        );
        (rows.len() == 2).then_some(rows)
    });
    assert_eq!(
        alarms,
        [
            vec!["dependency_back".to_string(), "1".to_string()],
            vec!["dependency_down".to_string(), "1".to_string()]
        ],
        "{alarms:?}"
    );
}

/// A dispatcher host reloaded while etcd is away: the new dispatcher cannot read the registry,
/// and fires to the executors the store heard from lately instead of recording every instant
/// `missed` ("no executor") until etcd returns (found by the chaos suite).
#[test]
fn a_dispatcher_started_while_etcd_is_away_fires_to_the_executors_the_store_knows() {
    let mut c = Cluster::start();
    c.host("d1", &["dispatcher", "monitor"]);
    c.host("e1", &["executor"]);
    let jobs = c.every_second_jobs("w", 3, &["d1"]);
    let_time_pass(Duration::from_secs(2));
    c.etcd.stop();
    wait_for(Duration::from_secs(10), "readyz to report etcd", || {
        c.readyz("d1", "dispatch")["degraded"]["etcd"]
            .is_string()
            .then_some(())
    });
    c.get("d1").ok(&["reload"]);
    let from = now_ms() + 1000;
    let_time_pass(Duration::from_secs(5));
    let to = now_ms() - 1000;
    c.etcd.resume();
    c.assert_all_succeeded_once(&jobs, from, to);
}

/// `reload --upgrade` while the store is away (found by the chaos suite): the new image could
/// not migrate and exited, leaving its adopted roles without a supervisor — the host was dead.
/// It goes on instead, and the host fires again once the store is back.
#[test]
fn an_upgrade_while_the_store_is_away_keeps_the_host_running() {
    let mut c = Cluster::start();
    c.host("d1", &["dispatcher", "monitor", "executor"]);
    let jobs = c.every_second_jobs("u", 3, &["d1"]);
    let_time_pass(Duration::from_secs(2));
    c.db.stop();
    let upgrade = c.get("d1").cli(&["reload", "--upgrade"]);
    eprintln!(
        "upgrade with the store away: {}",
        String::from_utf8_lossy(&upgrade.stderr)
    );
    c.db.resume();
    let status = c.get("d1").status();
    assert_eq!(status["phase"], "ready", "{status}");
    let from = now_ms() + 3000;
    let_time_pass(Duration::from_secs(9));
    let to = now_ms() - 1000;
    c.assert_all_succeeded_once(&jobs, from, to);
}

#[test]
fn mariadb_restart_loses_and_doubles_nothing() {
    let (mut c, jobs) = Cluster::two_dispatchers_one_executor("m");
    let from = now_ms();
    let_time_pass(Duration::from_secs(3));
    c.db.stop();
    let_time_pass(Duration::from_secs(2));
    c.db.resume();
    let_time_pass(Duration::from_secs(4));
    let to = now_ms() - 1000;
    c.assert_all_succeeded_once(&jobs, from, to);
}

#[test]
fn reloading_the_only_executor_host_never_empties_the_registry() {
    let (c, jobs) = Cluster::two_dispatchers_one_executor("h");
    let from = now_ms();
    let_time_pass(Duration::from_secs(2));
    // Each reload starts a new executor process (registered under its own key) before the old
    // one drains and leaves: dispatchers always have e1.
    for _ in 0..3 {
        c.get("e1").ok(&["reload"]);
    }
    wait_for(
        Duration::from_secs(20),
        "the drained executors to leave",
        || (c.etcd.keys("/cronvisor/executors/").len() == 1).then_some(()),
    );
    let_time_pass(Duration::from_secs(2));
    let to = now_ms() - 1000;
    c.assert_all_succeeded_once(&jobs, from, to);
}

/// A healthy cluster on a stock etcd (default `--grpc-keepalive-min-time`, 5 s) stays healthy:
/// the registry watch is never dropped for pinging too often, nobody goes `degraded`.
#[test]
fn a_healthy_cluster_on_stock_etcd_stays_ready_and_never_degraded() {
    let mut c = Cluster::start();
    c.host("d1", &["dispatcher", "monitor"]);
    c.host("e1", &["executor"]);
    let probes = [("d1", "dispatch"), ("d1", "api"), ("e1", "rpc")];
    let started = Instant::now();
    // Long enough for several of etcd's ping-strike windows (it dropped the watch every ~4.5 s).
    while started.elapsed() < Duration::from_secs(15) {
        for (host, listener) in probes {
            let (code, body) = http(
                &c.get(host).endpoint(listener),
                "GET",
                "/readyz",
                None,
                None,
            );
            assert_eq!(code, 200, "{host} {listener}: {body}");
            assert!(
                body.contains("\"ready\""),
                "{host} {listener} after {:?}: {body}",
                started.elapsed()
            );
        }
        let_time_pass(Duration::from_millis(250));
    }
    for host in ["d1", "e1"] {
        let log = c.get(host).log();
        assert!(!log.contains("etcd unreachable"), "{host}:\n{log}");
    }
}

/// An executor whose connects hang (SYNs dropped, as behind a partition) is passed over: runs
/// routed to it fail over to a healthy executor of the target within the delivery timeout,
/// instead of being recorded `failed` when the whole budget is spent connecting.
#[test]
fn runs_fail_over_from_an_executor_whose_connects_hang() {
    let mut c = Cluster::start();
    c.host("d1", &["dispatcher", "monitor"]);
    c.host("e1", &["executor"]);
    // A listener that never accepts, its accept queue full: further connects hang.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hung_addr = hung.local_addr().expect("addr");
    let _queued: Vec<std::net::TcpStream> = (0..200)
        .map_while(|_| {
            std::net::TcpStream::connect_timeout(&hung_addr, Duration::from_millis(200)).ok()
        })
        .collect();
    assert!(
        std::net::TcpStream::connect_timeout(&hung_addr, Duration::from_millis(500)).is_err(),
        "connects to the full listener must hang"
    );
    // A second member of group `both` at that address, registered as an executor would be.
    let info = serde_json::json!({
        "id": format!("e2@{hung_addr}"), "url": format!("http://{hung_addr}"), "host": "e2",
        "groups": ["both"], "version": "test", "capacity": 1,
    });
    c.etcd
        .ctl(&[
            "put",
            &format!("/cronvisor/executors/e2@{hung_addr}/1"),
            &info.to_string(),
        ])
        .expect("register the hung executor");
    let job = c.add_job(
        "d1",
        every_second("hops", serde_json::json!({"run_at": "both"})),
    );
    let from = now_ms();
    // Instants of the next 6 s; with a connect as long as the delivery timeout (10 s), the
    // ones sent to e2 would end `failed` 10 s later.
    let_time_pass(Duration::from_secs(6));
    let until = now_ms();
    c.assert_window_succeeded_on(job, from, until, 4, "e1");
}

/// An executor cut off from the store (the others keep it) stops taking runs: they go to an
/// executor that can record them, and none that ran is marked lost. It takes runs again once
/// the store is back.
#[test]
fn an_executor_cut_off_from_the_store_takes_no_runs_until_it_is_back() {
    executor_losing_the_store(false);
}

/// The same when the store's packets are dropped rather than its connections closed (issue
/// 28): the executor's calls hang instead of failing. Its claim and its heartbeat are bounded,
/// so runs sent to it fail over within seconds instead of failing undelivered.
#[test]
fn an_executor_whose_store_goes_silent_hands_its_runs_over() {
    executor_losing_the_store(true);
}

fn executor_losing_the_store(silent: bool) {
    let mut c = Cluster::start();
    let (relay, via_relay) = c.relayed_store();
    c.host("d1", &["dispatcher", "monitor"]);
    c.host_on("e1", &["executor"], &via_relay);
    c.host("e2", &["executor"]);
    let job = c.add_job(
        "d1",
        every_second("spread", serde_json::json!({"run_at": "both"})),
    );
    let on = |host: &str| {
        format!("SELECT COUNT(*) FROM cron.runs WHERE job_id = {job} AND state = 'succeeded' AND executor LIKE '{host}/%'")
    };
    wait_for(Duration::from_secs(30), "runs on both executors", || {
        (c.sql(&on("e1"))[0][0] != "0" && c.sql(&on("e2"))[0][0] != "0").then_some(())
    });
    let lose = |on: bool| match silent {
        true => relay.silence(on),
        false => relay.cut(on),
    };
    lose(true);
    let cut_at = now_ms();
    let_time_pass(Duration::from_secs(6));
    // Every instant of the cut ran and succeeded — none failed undelivered while e2 was
    // healthy, not even before e1 noticed (its claim is bounded, the dispatcher fails over).
    // Those after e1's bounded heartbeat found the store away went to e2 directly.
    c.assert_window_succeeded_on(job, cut_at + 3000, now_ms(), 2, "e2");
    lose(false);
    let back_at = now_ms();
    let rows = wait_for(Duration::from_secs(30), "the cut's runs to end", || {
        let rows = c.sql(&format!(
            "SELECT state, COALESCE(error, '') FROM cron.runs WHERE job_id = {job} \
             AND instant >= {cut_at} AND instant < {back_at}"
        ));
        (rows.len() >= 5
            && rows
                .iter()
                .all(|r| r[0] != "dispatched" && r[0] != "running"))
        .then_some(rows)
    });
    assert!(rows.iter().all(|r| r[0] == "succeeded"), "{rows:?}");
    // Back: e1 takes runs again.
    wait_for(Duration::from_secs(30), "e1 taking runs again", || {
        let n = c.sql(&format!(
            "SELECT COUNT(*) FROM cron.runs WHERE job_id = {job} AND state = 'succeeded' \
             AND executor LIKE 'e1/%' AND instant > {}",
            back_at + 2000
        ));
        (n[0][0] != "0").then_some(())
    });
}

/// `forbid` across a partition longer than `lost_after` (issue 28): an executor whose store
/// goes silent stops its `forbid` runs before the monitor presumes it gone, so a run recorded
/// `lost` has no process left to go on beside the next one.
#[test]
fn a_forbid_run_is_fenced_before_its_executor_is_presumed_lost() {
    let mut c = Cluster::start();
    let (relay, via_relay) = c.relayed_store();
    c.host("d1", &["dispatcher", "monitor"]);
    c.host_on("e1", &["executor"], &via_relay);
    let job = c.add_job(
        "d1",
        serde_json::json!({"name": "exclusive", "schedule": "@yearly", "command": "sleep 60",
            "overlap": "forbid", "run_at": "e1"}),
    );
    let (code, body) = http(
        &c.get("d1").endpoint("api"),
        "POST",
        "/api/v1/jobs/exclusive/run",
        Some(crate::harness::cluster::API_TOKEN),
        None,
    );
    assert_eq!(code, 202, "{body}");
    let pid: u32 = wait_for(Duration::from_secs(20), "the run going on e1", || {
        let rows = c.sql(&format!(
            "SELECT pid FROM cron.runs WHERE job_id = {job} AND state = 'running' AND pid IS NOT NULL"
        ));
        rows.first().and_then(|r| r[0].parse().ok())
    });
    relay.silence(true);
    // The monitor gives up on e1 after `lost_after` (3 s here): by then its run is gone.
    wait_for(Duration::from_secs(30), "the run presumed lost", || {
        let rows = c.sql(&format!(
            "SELECT state FROM cron.runs WHERE job_id = {job} AND state = 'lost'"
        ));
        (!rows.is_empty()).then_some(())
    });
    assert!(
        !crate::harness::alive(pid),
        "the forbid run still runs while the next may start"
    );
    relay.silence(false);
    assert!(
        c.get("e1").log().contains("stopping a `forbid` run"),
        "{}",
        c.get("e1").log()
    );
}

#[test]
fn a_forged_done_key_in_redis_does_not_silence_an_instant() {
    let mut c = Cluster::start();
    c.host("d1", &["dispatcher", "monitor"]);
    c.host("e1", &["executor"]);
    let jobs = c.every_second_jobs("forged", 1, &["d1"]);
    let job = jobs[0];
    // Someone with access to Redis marks the next seconds of the job as already fired.
    let first = (now_ms() / 1000 + 3) * 1000;
    let instants: Vec<i64> = (0..5).map(|i| first + i * 1000).collect();
    for t in &instants {
        let key = format!("cronvisor:fire:{job}:{t}");
        assert_eq!(
            c.redis
                .cli(&["SET", &key, "done", "PX", "60000"])
                .as_deref()
                .map(str::trim),
            Some("OK")
        );
    }
    // Each forged instant still gets its run, exactly once, through the store's fence.
    let last = *instants.last().expect("instants");
    wait_for(
        Duration::from_secs(30),
        "the forged instants to be fired",
        || {
            let rows = c.sql(&format!(
                "SELECT COUNT(DISTINCT instant), COUNT(*) FROM cron.runs WHERE job_id = {job} \
             AND instant BETWEEN {first} AND {last}"
            ));
            (rows[0][0] == "5").then_some(())
        },
    );
    c.assert_exactly_once(&jobs, first - 2000, last);
}
