//! A cluster of `cronvisor up` hosts on real etcd, Redis and MariaDB servers, each started on
//! free loopback ports: the harness of `cluster.rs` and `cluster_tls.rs`.
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::mariadb::MariaDb;
use super::services::{Etcd, Redis};
use super::{alive, http, wait_for, Cronvisor};

pub const API_TOKEN: &str = "cluster-test-api-token";
pub const RPC_TOKEN: &str = "cluster-test-rpc-token";
pub const LEASE_TTL_SECS: u64 = 3;

pub struct Cluster {
    pub etcd: Etcd,
    pub redis: Redis,
    pub db: MariaDb,
    /// The `cronvisor up` processes, by host name.
    pub hosts: BTreeMap<String, Cronvisor>,
    /// Added to every host's `[cluster]` table.
    pub cluster_keys: String,
    /// Further tables of every host's config.
    pub tables: String,
}

impl Cluster {
    pub fn start() -> Cluster {
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
    pub fn start_on(
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
    pub fn two_dispatchers_one_executor(prefix: &str) -> (Cluster, Vec<i64>) {
        let mut c = Cluster::start();
        c.host("d1", &["dispatcher", "monitor"]);
        c.host("d2", &["dispatcher", "monitor"]);
        c.host("e1", &["executor"]);
        let jobs = c.every_second_jobs(prefix, 20, &["d1", "d2"]);
        (c, jobs)
    }

    /// Starts host `name` running `roles`, with machine groups g1 = [e1], both = [e1, e2, e3].
    pub fn host(&mut self, name: &str, roles: &[&str]) {
        let url = self.db.url();
        self.host_on(name, roles, &url);
    }

    /// As [`Cluster::host`], reaching the store at `store_url` (through a relay, for one).
    pub fn host_on(&mut self, name: &str, roles: &[&str], store_url: &str) {
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

    /// A relay to the store that the test can cut or silence, and the store URL through it
    /// (for one host's `host_on`).
    pub fn relayed_store(&self) -> (super::relay::Relay, String) {
        let relay = super::relay::Relay::start(
            format!("127.0.0.1:{}", self.db.port)
                .parse()
                .expect("db addr"),
        );
        let via = self.db.url().replace(
            &format!(":{}/", self.db.port),
            &format!(":{}/", relay.addr.port()),
        );
        (relay, via)
    }

    pub fn get(&self, name: &str) -> &Cronvisor {
        &self.hosts[name]
    }

    /// SIGKILLs a host's supervisor and its roles at once, as a crashed machine.
    pub fn crash(&mut self, name: &str) {
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

    /// SIGKILLs a host's supervisor alone: its roles find themselves orphaned, drain and exit.
    pub fn kill_supervisor(&mut self, name: &str) {
        let mut cv = self.hosts.remove(name).expect("host");
        let pids: Vec<u32> = ["dispatcher", "executor", "monitor"]
            .iter()
            .filter_map(|r| cv.child_pid(r))
            .collect();
        let mut child = cv.child.take().expect("running");
        // SAFETY: plain kill(2) of this test's own process.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL);
        }
        let _ = child.wait();
        wait_for(
            Duration::from_secs(30),
            "the orphaned roles to drain and exit",
            || pids.iter().all(|p| !alive(*p)).then_some(()),
        );
    }

    /// Adds a job through the API of the host running the monitor.
    pub fn add_job(&self, api_host: &str, body: Value) -> i64 {
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
    pub fn every_second_jobs(&self, prefix: &str, n: usize, dispatchers: &[&str]) -> Vec<i64> {
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
    pub fn assert_window_succeeded_on(
        &self,
        job: i64,
        from: i64,
        until: i64,
        min: usize,
        host: &str,
    ) {
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

    pub fn sql(&self, q: &str) -> Vec<Vec<String>> {
        self.db
            .sql_root(q)
            .unwrap_or_else(|e| panic!("{q}: {e}"))
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    /// Once the runs up to `to` have ended: one run per (job, instant) in [from, to], none
    /// missing, and every one of them succeeded.
    pub fn assert_all_succeeded_once(&self, jobs: &[i64], from: i64, to: i64) {
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
    pub fn assert_exactly_once(&self, jobs: &[i64], from: i64, to: i64) {
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
    pub fn wait_settled(&self, jobs: &[i64], to: i64) {
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
    pub fn states(&self, jobs: &[i64], from: i64, to: i64) -> BTreeMap<String, i64> {
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
    pub fn readyz(&self, host: &str, listener: &str) -> Value {
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
    pub fn metric(&self, host: &str, listener: &str, name: &str) -> i64 {
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

pub fn every_second(name: &str, extra: Value) -> Value {
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
pub fn let_time_pass(d: Duration) {
    std::thread::sleep(d);
}
