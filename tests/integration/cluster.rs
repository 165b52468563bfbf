//! Cluster mode against real servers: etcd (executor registry), Redis (fire lock) and MariaDB
//! (the shared store), each started by the harness on free loopback ports. Every host is its
//! own `cronvisor up` process running a subset of the roles. Faults are injected by stopping
//! and restarting the servers and by SIGKILLing hosts; exactly-once is proven by queries over
//! the `runs` table: one run per (job, instant, target), no instant missing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::mariadb::MariaDb;
use crate::harness::services::{Etcd, Redis};
use crate::harness::{alive, http, now_ms, wait_for, Cronvisor};

const API_TOKEN: &str = "cluster-test-api-token";
const RPC_TOKEN: &str = "cluster-test-rpc-token";
const LEASE_TTL_SECS: u64 = 3;

struct Cluster {
    etcd: Etcd,
    redis: Redis,
    db: MariaDb,
    /// The `cronvisor up` processes, by host name.
    hosts: BTreeMap<String, Cronvisor>,
    /// Added to every host's `[cluster]` table.
    cluster_keys: String,
    /// Further tables of every host's config.
    tables: String,
}

impl Cluster {
    fn start() -> Cluster {
        Cluster::start_on(
            Etcd::start(),
            Redis::start(),
            MariaDb::start(),
            String::new(),
            String::new(),
        )
    }

    /// On these servers, with `cluster_keys` added to every host's `[cluster]` and `tables`
    /// (further TOML tables) to its config.
    fn start_on(
        etcd: Etcd,
        redis: Redis,
        db: MariaDb,
        cluster_keys: String,
        tables: String,
    ) -> Cluster {
        // Migrated once, as an operator would (`cronvisor migrate`), before the hosts start.
        db.migrate();
        Cluster {
            etcd,
            redis,
            db,
            hosts: BTreeMap::new(),
            cluster_keys,
            tables,
        }
    }

    /// d1 and d2 (dispatcher + monitor each: the monitors' checks must act once), e1
    /// (executor) and 20 jobs every second, scheduled on both dispatchers.
    fn two_dispatchers_one_executor(prefix: &str) -> (Cluster, Vec<i64>) {
        let mut c = Cluster::start();
        c.host("d1", &["dispatcher", "monitor"]);
        c.host("d2", &["dispatcher", "monitor"]);
        c.host("e1", &["executor"]);
        let jobs = c.every_second_jobs(prefix, 20, &["d1", "d2"]);
        (c, jobs)
    }

    /// Starts host `name` running `roles`, with machine groups g1 = [e1], both = [e1, e2, e3].
    fn host(&mut self, name: &str, roles: &[&str]) {
        let url = self.db.url();
        self.host_on(name, roles, &url);
    }

    /// As [`Cluster::host`], reaching the store at `store_url` (through a relay, for one).
    fn host_on(&mut self, name: &str, roles: &[&str], store_url: &str) {
        let roles: Vec<String> = roles.iter().map(|r| format!("\"{r}\"")).collect();
        let overrides = format!(
            "roles = [{}]\nhost = \"{name}\"\n\
             [cluster]\netcd_endpoints = [\"{}\"]\nredis_url = \"{}\"\nlease_ttl_secs = {LEASE_TTL_SECS}\n\
             call_timeout_ms = 1000\nlock_ttl_ms = 1500\n{}\
             [store]\nurl = \"{}\"\n\
             [machine]\ng1 = [\"e1\"]\nboth = [\"e1\", \"e2\", \"e3\"]\n\
             [executor]\nheartbeat_ms = 500\n[monitor]\nlost_after_ms = 3000\n{}",
            roles.join(", "),
            self.etcd.endpoint(),
            self.redis.url(),
            self.cluster_keys,
            store_url,
            self.tables,
        );
        let cv = Cronvisor::start_prepared(&format!("cl-{name}"), &overrides, |data| {
            for (file, token) in [("api.token", API_TOKEN), ("rpc.token", RPC_TOKEN)] {
                std::fs::write(data.join(file), token).expect("token");
                // Token files others can read are refused, as ssh refuses such keys.
                std::fs::set_permissions(
                    data.join(file),
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )
                .expect("chmod token");
            }
        });
        self.hosts.insert(name.to_string(), cv);
    }

    fn get(&self, name: &str) -> &Cronvisor {
        &self.hosts[name]
    }

    /// SIGKILLs a host's supervisor and its roles at once, as a crashed machine.
    fn crash(&mut self, name: &str) {
        let mut cv = self.hosts.remove(name).expect("host");
        let mut pids: Vec<u32> = ["dispatcher", "executor", "monitor"]
            .iter()
            .filter_map(|r| cv.child_pid(r))
            .collect();
        let mut child = cv.child.take().expect("running");
        pids.push(child.id());
        for pid in &pids {
            // SAFETY: plain kill(2) of this test's own processes.
            unsafe {
                libc::kill(*pid as i32, libc::SIGKILL);
            }
        }
        let _ = child.wait();
        wait_for(
            Duration::from_secs(10),
            "the crashed host's roles to die",
            || pids.iter().all(|p| !alive(*p)).then_some(()),
        );
    }

    /// Adds a job through the API of the host running the monitor.
    fn add_job(&self, api_host: &str, body: Value) -> i64 {
        let addr = self.get(api_host).endpoint("api");
        let (status, text) = http(
            &addr,
            "POST",
            "/api/v1/jobs",
            Some(API_TOKEN),
            Some(&body.to_string()),
        );
        assert_eq!(status, 201, "job add: {text}");
        let v: Value = serde_json::from_str(&text).expect("job json");
        v["id"].as_i64().expect("job id")
    }

    /// Adds `n` jobs firing `true` every second through d1's API, and waits until each of
    /// `dispatchers` schedules all of them (the change log reached it without a restart).
    fn every_second_jobs(&self, prefix: &str, n: usize, dispatchers: &[&str]) -> Vec<i64> {
        let jobs: Vec<i64> = (0..n)
            .map(|i| self.add_job("d1", every_second(&format!("{prefix}{i}"), Value::Null)))
            .collect();
        for d in dispatchers {
            wait_for(
                Duration::from_secs(10),
                "the jobs on every dispatcher",
                || {
                    (self.metric(d, "dispatch", "cronvisor_jobs_scheduled") == n as i64)
                        .then_some(())
                },
            );
        }
        jobs
    }

    /// Once the runs of `job` with instants in [from, until) have ended (at least `min` of
    /// them): every one succeeded, on executor host `host`.
    fn assert_window_succeeded_on(&self, job: i64, from: i64, until: i64, min: usize, host: &str) {
        let rows = wait_for(Duration::from_secs(30), "the window's runs to end", || {
            let rows = self.sql(&format!(
                "SELECT state, COALESCE(executor, ''), COALESCE(error, '') FROM cron.runs \
                 WHERE job_id = {job} AND instant >= {from} AND instant < {until}"
            ));
            (rows.len() >= min
                && rows
                    .iter()
                    .all(|r| r[0] != "dispatched" && r[0] != "running"))
            .then_some(rows)
        });
        for r in &rows {
            assert_eq!(r[0], "succeeded", "{r:?} (all: {rows:?})");
            assert!(r[1].starts_with(&format!("{host}/")), "{r:?}");
        }
    }

    fn sql(&self, q: &str) -> Vec<Vec<String>> {
        self.db
            .sql_root(q)
            .unwrap_or_else(|e| panic!("{q}: {e}"))
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    /// Once the runs up to `to` have ended: one run per (job, instant) in [from, to], none
    /// missing, and every one of them succeeded.
    fn assert_all_succeeded_once(&self, jobs: &[i64], from: i64, to: i64) {
        self.wait_settled(jobs, to);
        self.assert_exactly_once(jobs, from, to);
        let states = self.states(jobs, from, to);
        let ids: Vec<String> = jobs.iter().map(|j| j.to_string()).collect();
        let others = self.sql(&format!(
            "SELECT id, state, COALESCE(executor, ''), COALESCE(error, '') FROM cron.runs \
             WHERE job_id IN ({}) AND instant BETWEEN {from} AND {to} AND state <> 'succeeded' \
             LIMIT 10",
            ids.join(",")
        ));
        assert_eq!(
            states.keys().collect::<Vec<_>>(),
            ["succeeded"],
            "{states:?}: {others:?}"
        );
    }

    /// Asserts exactly one run per (job, instant) for every job in `jobs`, for every second in
    /// [from, to]: nothing doubled, nothing missing.
    fn assert_exactly_once(&self, jobs: &[i64], from: i64, to: i64) {
        // From the second whole second on: the first may precede the jobs' arrival.
        let from = from.div_euclid(1000) * 1000 + 2000;
        let to = to.div_euclid(1000) * 1000;
        assert!(to > from, "empty window");
        let ids: Vec<String> = jobs.iter().map(|j| j.to_string()).collect();
        let doubled = self.sql(&format!(
            "SELECT job_id, instant, target, COUNT(*) FROM cron.runs WHERE job_id IN ({}) \
             AND trigger_kind = 'schedule' GROUP BY job_id, instant, target, attempt \
             HAVING COUNT(*) > 1 LIMIT 10",
            ids.join(",")
        ));
        assert!(doubled.is_empty(), "doubled runs: {doubled:?}");
        let expected = (to - from) / 1000 + 1;
        let counts = self.sql(&format!(
            "SELECT job_id, COUNT(DISTINCT instant), COUNT(*) FROM cron.runs \
             WHERE job_id IN ({}) AND instant BETWEEN {from} AND {to} GROUP BY job_id",
            ids.join(",")
        ));
        assert_eq!(
            counts.len(),
            jobs.len(),
            "jobs without any run in the window"
        );
        for row in &counts {
            assert_eq!(
                row[1],
                expected.to_string(),
                "job {} has {} of {expected} instants in [{from}, {to}]",
                row[0],
                row[1]
            );
            assert_eq!(row[1], row[2], "job {} has duplicate rows", row[0]);
        }
    }

    /// Waits until every run of `jobs` with an instant up to `to` has ended.
    fn wait_settled(&self, jobs: &[i64], to: i64) {
        let ids: Vec<String> = jobs.iter().map(|j| j.to_string()).collect();
        wait_for(Duration::from_secs(30), "runs to end", || {
            let open = self.sql(&format!(
                "SELECT COUNT(*) FROM cron.runs WHERE job_id IN ({}) AND instant <= {to} \
                 AND state IN ('scheduled', 'dispatched', 'running')",
                ids.join(",")
            ));
            (open[0][0] == "0").then_some(())
        });
    }

    /// States of the runs of `jobs` in [from, to], with their counts.
    fn states(&self, jobs: &[i64], from: i64, to: i64) -> BTreeMap<String, i64> {
        let ids: Vec<String> = jobs.iter().map(|j| j.to_string()).collect();
        self.sql(&format!(
            "SELECT state, COUNT(*) FROM cron.runs WHERE job_id IN ({}) \
             AND instant BETWEEN {from} AND {to} GROUP BY state",
            ids.join(",")
        ))
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap_or(0)))
        .collect()
    }

    /// `GET /readyz` of a host's role listener.
    fn readyz(&self, host: &str, listener: &str) -> Value {
        // With a token: the details (what is degraded and why) are for its holders only.
        let (_, body) = http(
            &self.get(host).endpoint(listener),
            "GET",
            "/readyz",
            Some(&self.get(host).token()),
            None,
        );
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }

    /// A counter or gauge from a host's role `/metrics`.
    fn metric(&self, host: &str, listener: &str, name: &str) -> i64 {
        let (_, body) = http(
            &self.get(host).endpoint(listener),
            "GET",
            "/metrics",
            None,
            None,
        );
        body.lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

fn every_second(name: &str, extra: Value) -> Value {
    let mut v = serde_json::json!({"name": name, "schedule": "* * * * * *", "command": "true"});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in e {
            o.insert(k.clone(), val.clone());
        }
    }
    v
}

/// Sleeps in the test thread: used only to let wall-clock seconds pass while jobs fire (the
/// thing under test is what happens during that time), never to wait for a state.
fn let_time_pass(d: Duration) {
    std::thread::sleep(d);
}

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
    let mut c = Cluster::start();
    let relay = crate::harness::relay::Relay::start(
        format!("127.0.0.1:{}", c.db.port).parse().expect("db addr"),
    );
    let via_relay = c.db.url().replace(
        &format!(":{}/", c.db.port),
        &format!(":{}/", relay.addr.port()),
    );
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
    relay.cut(true);
    let cut_at = now_ms();
    let_time_pass(Duration::from_secs(6));
    relay.cut(false);
    let back_at = now_ms();
    c.assert_window_succeeded_on(job, cut_at + 1500, back_at, 3, "e2");
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

/// Every dependency over TLS, each with its user: etcd over https with its auth on, Redis over
/// TLS with an ACL user (the default user off), MariaDB taking TLS only. A cluster whose hosts
/// trust the CA (`tls.ca_file`, and `ssl-ca` in the store URL) and log in (`cluster.etcd_user`
/// and its password, the user and password in `rediss://` and `mysql://`) registers, locks,
/// records and fires as any other.
#[test]
fn a_cluster_reaches_etcd_redis_and_mariadb_over_tls_with_their_users() {
    let certs = crate::harness::TempDir::new("cluster-tls");
    crate::harness::tls::make_certificates(&certs.0, "server");
    let secured = crate::harness::services::Secured {
        certs: certs.0.clone(),
        user: "cv",
        password: "s3cret-pass",
    };
    let etcd = Etcd::start_secure(&secured);
    let redis = Redis::start_secure(&secured);
    assert!(redis.url().starts_with("rediss://cv:"));
    let db = MariaDb::start_secure(&certs.0);
    assert!(db.url().contains("ssl-mode=verify_identity"));
    // The server refuses a client without TLS.
    let plain = std::process::Command::new("mariadb")
        .args([
            "--no-defaults",
            "-h",
            "127.0.0.1",
            "-P",
            &db.port.to_string(),
        ])
        .args([
            "-u",
            "app",
            "-papp-pw",
            "--skip-ssl",
            "-e",
            "SELECT 1",
            "cron",
        ])
        .output()
        .expect("mariadb client");
    assert!(
        !plain.status.success(),
        "MariaDB took a connection without TLS"
    );
    let mut c = Cluster::start_on(
        etcd,
        redis,
        db,
        format!(
            "etcd_user = \"cv\"\netcd_password = \"{}\"\n",
            secured.password
        ),
        format!(
            "[tls]\nca_file = \"{}\"\n",
            certs.0.join("ca.pem").display()
        ),
    );
    c.host("d1", &["dispatcher", "monitor"]);
    c.host("e1", &["executor"]);
    wait_for(
        Duration::from_secs(20),
        "the executor registered in etcd",
        || (!c.etcd.keys("/cronvisor/executors/").is_empty()).then_some(()),
    );
    let jobs = c.every_second_jobs("tls", 3, &["d1"]);
    let from = now_ms();
    let_time_pass(Duration::from_secs(6));
    let to = now_ms() - 1000;
    c.assert_all_succeeded_once(&jobs, from, to);
    // The fire locks went through the TLS Redis, as that user.
    let locks = c
        .redis
        .cli(&["--scan", "--pattern", "cronvisor:fire:*"])
        .unwrap_or_default();
    assert!(!locks.trim().is_empty(), "no fire lock in Redis");
    // And nothing is degraded: the dispatcher's registry and lock, the monitor's probes.
    for listener in ["dispatch", "api"] {
        wait_for(Duration::from_secs(10), "ready, not degraded", || {
            (c.readyz("d1", listener)["status"] == "ready").then_some(())
        });
    }
}
