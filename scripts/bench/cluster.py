#!/usr/bin/env python3
"""Cluster benchmark for cronvisor (see cluster.sh). Standard library only.

Starts real etcd, redis-server and mariadbd on free loopback ports (temp dirs), then for each
(dispatchers, N) phase: N jobs firing `true` every second are inserted into MariaDB, hosts are
started as separate `cronvisor up` processes (d1 = dispatcher + monitor, d2.. = dispatcher,
e1 and e2 = executor), a 15 s window runs, and the runs table is analysed: exactly-once
(doubled and missing instants), lateness (executor spawn - instant), sustained succeeded runs
per second, Redis round trips per fire (the dispatchers' own counter) and MySQL statements per
fire (server `Questions`, all roles; each statement is one round trip).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fire import pct, proc_stats, raw_spawn_rate  # noqa: E402

API_TOKEN = "bench-api-token"
RPC_TOKEN = "bench-rpc-token"
WINDOW_S = 15


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(what, f, limit_s=30):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        try:
            if f():
                return
        except Exception:  # noqa: BLE001 - a server still starting fails in many ways
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


class Servers:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="cv-cluster-bench-")
        self.procs = []
        # etcd
        self.etcd_port, peer = free_port(), free_port()
        url, purl = f"http://127.0.0.1:{self.etcd_port}", f"http://127.0.0.1:{peer}"
        self.start(["etcd", "--name", "b", "--data-dir", f"{self.tmp}/etcd",
                    "--listen-client-urls", url, "--advertise-client-urls", url,
                    "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
                    "--initial-cluster", f"b={purl}", "--log-level", "warn"], "etcd")
        self.etcd = url
        wait("etcd", lambda: subprocess.run(
            ["etcdctl", f"--endpoints={url}", "endpoint", "health"], env=dict(os.environ, ETCDCTL_API="3"),
            capture_output=True, timeout=5).returncode == 0)
        # redis
        self.redis_port = free_port()
        self.start(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir", self.tmp], "redis")
        wait("redis", lambda: self.redis("PING").strip() == "PONG")
        # mariadb
        self.sock = f"{self.tmp}/mysql.sock"
        self.db_port = free_port()
        subprocess.run(["mariadb-install-db", "--no-defaults", "--user=root",
                        "--auth-root-authentication-method=socket", f"--datadir={self.tmp}/db"],
                       check=True, capture_output=True, timeout=120)
        self.start(["mariadbd", "--no-defaults", "--user=root", "--bind-address=127.0.0.1",
                    "--skip-log-bin", "--max-connections=500", f"--datadir={self.tmp}/db",
                    f"--socket={self.sock}", f"--port={self.db_port}",
                    f"--pid-file={self.tmp}/db.pid"], "mariadb")
        wait("mariadb", lambda: self.sql("SELECT 1").strip() == "1")
        self.sql("CREATE DATABASE cron; CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app-pw'; "
                 "GRANT ALL ON cron.* TO 'app'@'127.0.0.1';")
        self.db_url = f"mysql://app:app-pw@127.0.0.1:{self.db_port}/cron"

    def start(self, argv, name):
        log = open(f"{self.tmp}/{name}.log", "w")
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=log))

    def redis(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.redis_port), *args],
                              capture_output=True, text=True, timeout=10).stdout

    def sql(self, q):
        # On stdin: a few thousand rows of INSERT exceed an argument's size limit.
        r = subprocess.run(["mariadb", "--no-defaults", "-u", "root", "-N", "-B",
                            f"--socket={self.sock}"],
                           input=q, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        return r.stdout

    def questions(self):
        return self.status("Questions")

    def status(self, name):
        out = self.sql(f"SHOW GLOBAL STATUS LIKE '{name}'")
        return int(out.split()[1])

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Host:
    def __init__(self, binary, servers, name, roles):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"cv-bench-{name}-")
        data = f"{self.dir}/var"
        os.makedirs(data)
        for f, t in (("api.token", API_TOKEN), ("rpc.token", RPC_TOKEN)):
            with open(f"{data}/{f}", "w") as fh:
                fh.write(t)
            os.chmod(f"{data}/{f}", 0o600)
        self.data = data
        roles_toml = ", ".join(f'"{r}"' for r in roles)
        config = f"{self.dir}/cronvisor.toml"
        with open(config, "w") as f:
            f.write(f'data_dir = "{data}"\nroles = [{roles_toml}]\nhost = "{name}"\n'
                    '[listeners]\napi = "127.0.0.1:0"\nrpc = "127.0.0.1:0"\ndispatch = "127.0.0.1:0"\n'
                    f'[cluster]\netcd_endpoints = ["{servers.etcd}"]\n'
                    f'redis_url = "redis://127.0.0.1:{servers.redis_port}/0"\n'
                    f'[store]\nurl = "{servers.db_url}"\nmax_connections = 8\n'
                    '[monitor]\nretention = "0"\n[executor]\nrun_as = "root"\n')
        self.log = open(f"{self.dir}/up.log", "w")
        self.proc = subprocess.Popen([binary, "--config", config, "up"], stdout=subprocess.DEVNULL,
                                     stderr=self.log, env=dict(os.environ, RUST_LOG="warn"))
        status = f"{data}/run/status.json"

        def ready():
            if self.proc.poll() is not None:
                raise SystemExit(f"{name} exited early; see {self.log.name}")
            with open(status) as fh:
                s = json.load(fh)
            if s["phase"] == "ready":
                self.pids = {c["role"]: c["pid"] for c in s["children"]}
                return True
            return False
        wait(f"host {name}", ready, 60)
        with open(f"{data}/endpoints.json") as fh:
            self.endpoints = json.load(fh)

    def metric(self, name):
        addr = self.endpoints.get("dispatch")
        if not addr:
            return 0
        text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=5).read().decode()
        for line in text.splitlines():
            if line.startswith(name):
                return float(line.rsplit(" ", 1)[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def propagation(hosts, samples=10):
    """Adds jobs one at a time through d1's API and times until every dispatcher schedules each
    (its `cronvisor_jobs_scheduled` gauge); returns the per-job maxima in ms."""
    api = next(h for h in hosts if h.name == "d1").endpoints["api"]
    dispatchers = [h for h in hosts if h.name.startswith("d")]
    out = []
    for i in range(samples):
        before = [h.metric("cronvisor_jobs_scheduled") for h in dispatchers]
        body = json.dumps({"name": f"prop{i}", "schedule": "0 0 0 1 1 *", "command": "true"}).encode()
        req = urllib.request.Request(f"http://{api}/api/v1/jobs", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {API_TOKEN}",
                                              "Content-Type": "application/json"})
        t0 = time.monotonic()
        urllib.request.urlopen(req, timeout=5).read()
        pending = set(range(len(dispatchers)))
        while pending and time.monotonic() - t0 < 10:
            for k in list(pending):
                if dispatchers[k].metric("cronvisor_jobs_scheduled") > before[k]:
                    pending.discard(k)
            time.sleep(0.005)
        out.append((time.monotonic() - t0) * 1000 if not pending else float("inf"))
    return out


def phase(binary, servers, dispatchers, n, measure_propagation=False):
    servers.sql("TRUNCATE cron.runs; TRUNCATE cron.jobs; TRUNCATE cron.job_changes; "
                "TRUNCATE cron.alarms; TRUNCATE cron.executors;")
    servers.redis("FLUSHALL")
    now = int(time.time() * 1000)
    values = ",".join(f"('j{i}', '* * * * * *', 'UTC', 'true', 0, {now}, {now})" for i in range(n))
    servers.sql("INSERT INTO cron.jobs (name, schedule, timezone, command, paused, created_at, "
                f"updated_at) VALUES {values}")
    hosts = [Host(binary, servers, "e1", ["executor"]), Host(binary, servers, "e2", ["executor"]),
             Host(binary, servers, "d1", ["dispatcher", "monitor"])]
    hosts += [Host(binary, servers, f"d{i}", ["dispatcher"]) for i in range(2, dispatchers + 1)]
    try:
        t0 = (int(time.time()) + 2) * 1000
        time.sleep(max(0, t0 / 1000 - time.time()))
        q0 = servers.questions()
        dl0 = servers.status("Innodb_deadlocks")
        rt0 = sum(h.metric("cronvisor_redis_round_trips_total") for h in hosts)
        time.sleep(WINDOW_S)
        t1 = t0 + WINDOW_S * 1000
        q1 = servers.questions()
        rt1 = sum(h.metric("cronvisor_redis_round_trips_total") for h in hosts)
        time.sleep(4)  # the window's last runs end and are recorded
        deadlocks = servers.status("Innodb_deadlocks") - dl0
        if deadlocks and os.environ.get("CLUSTER_BENCH_DEADLOCKS"):
            status = servers.sql("SHOW ENGINE INNODB STATUS").replace("\\n", "\n")
            start = status.find("LATEST DETECTED DEADLOCK")
            print(status[start:status.find("TRANSACTIONS", start)], file=sys.stderr)
        cpu = {h.name: sum(proc_stats(p)[0] for p in h.pids.values()) for h in hosts}
        prop = propagation(hosts) if measure_propagation else None
    finally:
        for h in hosts:
            h.stop()
    rows = servers.sql(f"SELECT job_id, instant, target, state, COALESCE(started_at - instant, -1) "
                       f"FROM cron.runs WHERE instant >= {t0} AND instant < {t1}").splitlines()
    seen, late, ok, states = {}, [], 0, {}
    for r in rows:
        job, instant, target, state, lat = r.split("\t")
        states[state] = states.get(state, 0) + 1
        seen[(job, instant, target)] = seen.get((job, instant, target), 0) + 1
        if state == "succeeded":
            ok += 1
            late.append(int(lat))
    distinct_instants = {(j, i) for j, i, _ in seen}
    fires = len(rows)
    return {
        "n": n, "dispatchers": dispatchers,
        "rate": ok / WINDOW_S,
        "doubled": sum(1 for c in seen.values() if c > 1),
        "missing": n * WINDOW_S - len(distinct_instants),
        "not_succeeded": fires - ok,
        "p50": pct(late, 50), "p99": pct(late, 99),
        "redis_rt": (rt1 - rt0) / fires if fires else float("nan"),
        "mysql_st": (q1 - q0) / fires if fires else float("nan"),
        "cpu": cpu,
        "states": states,
        "propagation": prop,
        "deadlocks": deadlocks,
    }


def phase_flows(binary, servers, dispatchers, roots, nodes=10):
    """`roots` flows every 5 s (each root `*/5`), each of `nodes` jobs: half chains, half
    fan-ins; the dependents' latency from their last upstream's end to their process start,
    each (job, flow) once, and MySQL statements per run (all roles)."""
    servers.sql("TRUNCATE cron.runs; TRUNCATE cron.jobs; TRUNCATE cron.job_changes; "
                "TRUNCATE cron.alarms; TRUNCATE cron.executors; TRUNCATE cron.job_edges; "
                "TRUNCATE cron.flows;")
    servers.redis("FLUSHALL")
    now = int(time.time() * 1000)
    jobs, edges = [], []
    for f in range(roots):
        root = len(jobs) + 1
        jobs.append(f"('r{f}', '*/5 * * * * *', 'UTC', 'true', 0, {now}, {now})")
        ids = [root + k for k in range(1, nodes)]
        jobs.extend(f"('r{f}d{k}', '', 'UTC', 'true', 0, {now}, {now})" for k in range(1, nodes))
        if f % 2 == 0:
            chain = [root] + ids
            edges.extend((chain[k + 1], chain[k]) for k in range(nodes - 1))
        else:
            edges.extend((d, root) for d in ids[:-1])
            edges.extend((ids[-1], d) for d in ids[:-1])
    servers.sql("INSERT INTO cron.jobs (name, schedule, timezone, command, paused, created_at, "
                f"updated_at) VALUES {','.join(jobs)}")
    servers.sql("INSERT INTO cron.job_edges (job_id, upstream_id, on_kind, created_at) VALUES "
                + ",".join(f"({j}, {u}, 'success', {now})" for j, u in edges))
    hosts = [Host(binary, servers, "e1", ["executor"]), Host(binary, servers, "e2", ["executor"]),
             Host(binary, servers, "d1", ["dispatcher", "monitor"])]
    hosts += [Host(binary, servers, f"d{i}", ["dispatcher"]) for i in range(2, dispatchers + 1)]
    try:
        t0 = (int(time.time()) + 2) * 1000
        time.sleep(max(0, t0 / 1000 - time.time()))
        q0 = servers.questions()
        time.sleep(WINDOW_S)
        t1 = t0 + WINDOW_S * 1000
        time.sleep(10)  # the window's flows end
        q1 = servers.questions()
        cpu = {h.name: sum(proc_stats(p)[0] for p in h.pids.values()) for h in hosts}
    finally:
        for h in hosts:
            h.stop()
    rows = servers.sql(f"SELECT job_id, flow_root, instant, COALESCE(started_at, 0), "
                       f"COALESCE(ended_at, 0), state, created_at FROM cron.runs "
                       f"WHERE instant >= {t0} AND instant < {t1}").splitlines()
    runs = [tuple(r.split("\t")) for r in rows]
    ended, count = {}, {}
    for job, root, t, _s, e, _st, _c in runs:
        ended[(int(job), int(t))] = int(e)
        if root != "0":
            count[(root, t, job)] = count.get((root, t, job), 0) + 1
    ups = {}
    for j, u in edges:
        ups.setdefault(j, []).append(u)
    late = []
    for job, root, t, s, _e, st, _c in runs:
        if root != "0" and int(s):
            last = max(ended.get((u, int(t)), 0) for u in ups[int(job)])
            late.append(int(s) - last)
    flows = sum(1 for r in runs if r[1] == "0")
    return {"flows": flows, "released": len(count), "expected": flows * (nodes - 1),
            "doubled": sum(1 for c in count.values() if c > 1),
            "not_succeeded": sum(1 for r in runs if r[5] != "succeeded"),
            "p50": pct(late, 50), "p99": pct(late, 99),
            "mysql_per_run": (q1 - q0) / len(runs) if runs else float("nan"), "cpu": cpu}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--rates", default="250,500,1000,1500")
    ap.add_argument("--dispatchers", default="1,3")
    ap.add_argument("--flows", type=int, default=0,
                    help="also a phase of this many flows of 10 jobs every 5 s, 3 dispatchers")
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    raw = raw_spawn_rate()
    servers = Servers()
    results, results_p = [], []
    try:
        subprocess.run([binary, "migrate"], check=True, stdout=subprocess.DEVNULL, timeout=60,
                       env=dict(os.environ, CRONVISOR_STORE_URL=servers.db_url))
        for d in [int(x) for x in a.dispatchers.split(",")]:
            for n in [int(x) for x in a.rates.split(",")]:
                r = phase(binary, servers, d, n, measure_propagation=(d > 1 and not results_p))
                if r["propagation"]:
                    results_p.extend(r["propagation"])
                results.append(r)
                print(f"dispatchers={d} N={n}: {r['rate']:.0f}/s p99 {r['p99']} ms "
                      f"doubled {r['doubled']} missing {r['missing']} states {r['states']} "
                      f"deadlocks {r['deadlocks']}",
                      file=sys.stderr)
                if r["missing"] or r["not_succeeded"] > n:
                    break
        flows = phase_flows(binary, servers, 3, a.flows) if a.flows else None
    finally:
        servers.close()
    print(f"\n{time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, raw spawn rate {raw:.0f}/s, "
          f"`scripts/bench/cluster.sh --rates {a.rates} --dispatchers {a.dispatchers}`\n")
    if results_p:
        print(f"\nJob added through d1's API until every dispatcher schedules it ({len(results_p)} jobs, "
              f"during the first 3-dispatcher phase's tail): p50 {pct(results_p, 50):.0f} ms, "
              f"max {max(results_p):.0f} ms\n")
    print("| dispatchers | N jobs/s | succeeded/s | doubled | missing | not succeeded | lateness p50 / p99 | "
          "Redis round trips / fire | MySQL statements / fire | InnoDB deadlocks | CPU s of its roles per host (whole phase) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        cpu = ", ".join(f"{k} {v:.1f}" for k, v in sorted(r["cpu"].items()))
        print(f"| {r['dispatchers']} | {r['n']} | {r['rate']:.0f} | {r['doubled']} | {r['missing']} | "
              f"{r['not_succeeded']} | {r['p50']} / {r['p99']} ms | {r['redis_rt']:.3f} | "
              f"{r['mysql_st']:.2f} | {r['deadlocks']} | {cpu} |")

    if flows:
        cpu = ", ".join(f"{k} {v:.1f}" for k, v in sorted(flows["cpu"].items()))
        print(f"\nFlows, 3 dispatchers: {a.flows} flows of 10 jobs every 5 s (half chains, half "
              f"fan-ins), {WINDOW_S} s: {flows['flows']} flows, {flows['released']} jobs released "
              f"({flows['expected']} expected), doubled {flows['doubled']}, not succeeded "
              f"{flows['not_succeeded']}; upstream end -> dependent's process start p50 "
              f"{flows['p50']} ms, p99 {flows['p99']} ms; MySQL statements per run (all roles) "
              f"{flows['mysql_per_run']:.1f}; CPU s per host: {cpu}")


if __name__ == "__main__":
    main()
