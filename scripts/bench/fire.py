#!/usr/bin/env python3
"""Firing benchmark for cronvisor (see fire.sh). Standard library only.

Each case gets a fresh data dir: the store is migrated by `cronvisor migrate`, jobs are inserted
straight into SQLite (the API is not what is measured), then `cronvisor up` runs for a bounded
window and the runs table is analysed: lateness percentiles, per-instant duplicates, and
instants that should have fired in the window but did not.
"""
import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import tempfile
import time

CLK = os.sysconf("SC_CLK_TCK")


def raw_spawn_rate(n=3000, parallel=2, limit_s=60):
    """Spawn-and-reap `sh -c true` with `parallel` in flight, as tight as xargs does it."""
    t0 = time.monotonic()
    subprocess.run(
        ["xargs", f"-P{parallel}", "-n1", "sh", "-c", "true"],
        input=("x\n" * n).encode(), check=True, timeout=limit_s,
    )
    return n / (time.monotonic() - t0)


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def proc_stats(pid):
    """(cpu seconds, peak RSS MiB) of a live process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLK
        with open(f"/proc/{pid}/status") as f:
            hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
        return cpu, hwm / 1024.0
    except (OSError, StopIteration):
        return float("nan"), float("nan")


# A job that says when it started: its own first instruction reads the clock (`sh -c` execs a
# single command, so this is the job's process itself), printed to its stdout, which the run
# records. Lateness measured from it is true for any design — whatever the executor does
# before, at or after the instant, this is when the job's own command began.
STAMP = "date +%s%N"


class Instance:
    def __init__(self, binary, jobs, urls=None, extra_config="", top_config="", run_as="root",
                 command="true"):
        """`jobs` are rules; with `urls` (one per job) they are HTTP GET jobs, else `command`
        (`true`, or `STAMP`).
        `top_config` goes before the first section (`roles = [...]`), `extra_config` after.
        `run_as`: "root" spawns with posix_spawn; another user is a fork, setuid, exec."""
        self.binary = os.path.abspath(binary)
        self.tmp = tempfile.TemporaryDirectory(prefix="cv-bench-")
        self.dir = self.tmp.name
        self.data = os.path.join(self.dir, "var")
        os.makedirs(self.data)
        self.config = os.path.join(self.dir, "cronvisor.toml")
        with open(self.config, "w") as f:
            f.write(f'data_dir = "{self.data}"\n{top_config}[listeners]\napi = "127.0.0.1:0"\n'
                    'rpc = "127.0.0.1:0"\ndispatch = "127.0.0.1:0"\n'
                    f'[monitor]\nretention = "0"\n[executor]\nrun_as = "{run_as}"\n'
                    # HTTP jobs call a server on loopback, which the egress policy refuses
                    # by default.
                    + ('http_allow = ["127.0.0.0/8"]\n' if urls else '') + extra_config)
        subprocess.run([self.binary, "--config", self.config, "migrate"], check=True,
                       stdout=subprocess.DEVNULL, timeout=60)
        self.db = os.path.join(self.data, "cronvisor.db")
        con = sqlite3.connect(self.db)
        now = int(time.time() * 1000)
        urls = urls or [None] * len(jobs)
        con.executemany(
            "INSERT INTO jobs (name, schedule, timezone, command, http_url, paused, created_at,"
            " updated_at) VALUES (?, ?, 'UTC', ?, ?, 0, ?, ?)",
            [(f"j{i}", rule, None if url else command, url, now, now)
             for i, (rule, url) in enumerate(zip(jobs, urls))])
        con.commit()
        con.close()
        self.proc = None

    def up(self, limit_s=120):
        """Starts `up`; returns seconds until every role reported ready."""
        self.log = open(os.path.join(self.dir, "up.log"), "w")
        t0 = time.monotonic()
        self.proc = subprocess.Popen([self.binary, "--config", self.config, "up"],
                                     stdout=subprocess.DEVNULL, stderr=self.log,
                                     env=dict(os.environ, RUST_LOG="warn"))
        status = os.path.join(self.data, "run", "status.json")
        while time.monotonic() - t0 < limit_s:
            if self.proc.poll() is not None:
                raise RuntimeError("cronvisor up exited early; see " + self.log.name)
            try:
                with open(status) as f:
                    s = json.load(f)
                if s["phase"] == "ready":
                    self.pids = {c["role"]: c["pid"] for c in s["children"]}
                    return time.monotonic() - t0
            except (OSError, ValueError):
                pass
            time.sleep(0.01)
        raise RuntimeError("cronvisor not ready in time")

    def stats(self):
        return {role: proc_stats(pid) for role, pid in self.pids.items()}

    def down(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def runs(self, t0_ms, t1_ms, columns="job_id, instant, started_at, state, created_at"):
        con = sqlite3.connect(self.db)
        rows = con.execute(
            f"SELECT {columns} FROM runs WHERE instant >= ? AND instant < ?",
            (t0_ms, t1_ms)).fetchall()
        con.close()
        return rows

    def close(self):
        self.down()
        self.tmp.cleanup()


def second_rule_instants(rules_by_job, t0_ms, t1_ms):
    """Expected (job_id, instant) for rules of the form 'S M * * * *', 'S * * * * *',
    '*/10 * * * * *' and '* * * * * *', over [t0, t1)."""
    expected = set()
    start = (t0_ms + 999) // 1000
    for sec in range(start, (t1_ms + 999) // 1000):
        tm = time.gmtime(sec)
        for job_id, (s, m) in rules_by_job.items():
            if (s is None or s(tm.tm_sec)) and (m is None or m == tm.tm_min):
                expected.add((job_id, sec * 1000))
    return expected


def spawn_order_bound(rows, raw):
    """Lateness no executor could beat at the raw spawn rate: the k-th process of an instant
    cannot start before k / raw seconds. Returns (p50, p99) in ms."""
    per_instant = {}
    for _, instant, _, _, _ in rows:
        per_instant[instant] = per_instant.get(instant, 0) + 1
    bounds = [k / raw * 1000 for n in per_instant.values() for k in range(1, n + 1)]
    return round(pct(bounds, 50), 1), round(pct(bounds, 99), 1)


def own_starts(inst, t0_ms, t1_ms):
    """(job_id, instant) -> when the job's own command started (ms, from its STAMP output)."""
    out = {}
    for job_id, instant, stdout in inst.runs(t0_ms, t1_ms, "job_id, instant, stdout"):
        try:
            out[(job_id, instant)] = int((stdout or "").split()[0]) / 1e6
        except (ValueError, IndexError):
            pass
    return out


def analyse(inst, expected, t0_ms, t1_ms):
    """Lateness is the job's own start (STAMP) where the job says it, else the executor's
    record of the spawn (`started_at`, reported apart as `spawn_p50/p99`)."""
    rows = inst.runs(t0_ms, t1_ms)
    own = own_starts(inst, t0_ms, t1_ms)
    seen = {}
    for job_id, instant, _, _, _ in rows:
        seen[(job_id, instant)] = seen.get((job_id, instant), 0) + 1
    spawned = [started - instant for _, instant, started, _, _ in rows if started is not None]
    late = ([round(t - instant, 1) for (_, instant), t in own.items()] if own else spawned)
    recorded = [created - instant for _, instant, _, _, created in rows]
    failed = sum(1 for r in rows if r[3] not in ("succeeded",))
    return {
        "runs": len(rows),
        "p50": pct(late, 50), "p99": pct(late, 99), "max": max(late) if late else float("nan"),
        "own": len(own), "spawn_p50": pct(spawned, 50), "spawn_p99": pct(spawned, 99),
        "rec_p50": pct(recorded, 50), "rec_p99": pct(recorded, 99),
        "doubled": sum(1 for n in seen.values() if n > 1),
        "missed": len(expected - set(seen)),
        "unexpected": len(set(seen) - expected),
        "not_succeeded": failed,
        "rows": rows,
    }


def window(inst, seconds):
    """Runs `up`, waits past the next whole second, keeps a window of `seconds`, stops."""
    ready_s = inst.up()
    t0 = (int(time.time()) + 2) * 1000
    time.sleep(max(0, t0 / 1000 - time.time()) + seconds)
    t1 = t0 + seconds * 1000
    time.sleep(2)  # let the last instants of the window finish and be recorded
    stats = inst.stats()
    inst.down()
    return ready_s, t0, t1, stats


def as_user(run_as):
    """The row's note for jobs run as another user (a fork, then setuid, then exec)."""
    return "" if run_as == "root" else f", jobs as `{run_as}` (fork + setuid)"


def fmt_stats(stats):
    return ", ".join(f"{r} {c:.1f} s CPU / {m:.0f} MiB" for r, (c, m) in sorted(stats.items()))


def case_precision(binary, out, raw, run_as="root"):
    rng = random.Random(1)
    rules = {}
    jobs = []
    for i in range(1000):
        s = rng.randrange(60)
        jobs.append(f"{s} * * * * *")
        rules[i + 1] = ((lambda x: lambda v: v == x)(s), None)
    inst = Instance(binary, jobs, run_as=run_as, command=STAMP)
    try:
        ready, t0, t1, stats = window(inst, 60)
        r = analyse(inst, second_rule_instants(rules, t0, t1), t0, t1)
    finally:
        inst.close()
    b50, b99 = spawn_order_bound(r["rows"], raw)
    out.append(("precision: 1,000 jobs/min, seconds random (~17 fires/s), 60 s" + as_user(run_as),
                f"{r['runs']} runs; lateness p50 {r['p50']} ms, p99 {r['p99']} ms, max {r['max']} ms "
                f"(when the job's own command started, {r['own']} of them; the executor's spawn "
                f"record: p50 {r['spawn_p50']} ms, p99 {r['spawn_p99']} ms; "
                f"recorded by the dispatcher: p50 {r['rec_p50']} ms, p99 {r['rec_p99']} ms; "
                f"spawn-order bound at the raw rate: p50 {b50} ms, p99 {b99} ms); "
                f"doubled {r['doubled']}, missed {r['missed']}, not succeeded {r['not_succeeded']}",
                fmt_stats(stats)))


def case_burst(binary, out, raw, run_as="root"):
    jobs = ["*/10 * * * * *"] * 1000
    rules = {i + 1: (lambda v: v % 10 == 0, None) for i in range(1000)}
    inst = Instance(binary, jobs, run_as=run_as, command=STAMP)
    try:
        ready, t0, t1, stats = window(inst, 30)
        r = analyse(inst, second_rule_instants(rules, t0, t1), t0, t1)
        own = own_starts(inst, t0, t1)
    finally:
        inst.close()
    # When the last job of each burst began its own command (its STAMP); the executor's spawn
    # record where a job said nothing.
    drain = {}
    for job_id, instant, started, _, _ in r["rows"]:
        at = own.get((job_id, instant))
        late = at - instant if at is not None else (started - instant if started else None)
        if late is not None:
            drain[instant] = max(drain.get(instant, 0), round(late))
    bound = 1000 / raw * 1000
    out.append(("burst: 1,000 jobs due at the same second, every 10 s, 30 s" + as_user(run_as),
                f"last of 1,000 spawned after {sorted(drain.values())} ms per burst "
                f"(raw-rate bound 1,000 / {raw:.0f}/s = {bound:.0f} ms); "
                f"doubled {r['doubled']}, missed {r['missed']}, not succeeded {r['not_succeeded']}",
                fmt_stats(stats)))


def case_sustained(binary, out, raw):
    results = []
    best = 0.0
    for n in (250, 500, 1000, 1500, 2000):
        inst = Instance(binary, ["* * * * * *"] * n)
        rules = {i + 1: (None, None) for i in range(n)}
        try:
            ready, t0, t1, stats = window(inst, 15)
            r = analyse(inst, second_rule_instants(rules, t0, t1), t0, t1)
        finally:
            inst.close()
        ok = r["runs"] - r["not_succeeded"]
        rate = ok / 15.0
        results.append(f"N={n}: {rate:.0f} runs/s (p99 {r['p99']} ms, missed {r['missed']}, "
                       f"doubled {r['doubled']}, not succeeded {r['not_succeeded']})")
        if rate < best * 1.05 or r["missed"] > 0 or r["not_succeeded"] > 0:
            break
        best = max(best, rate)
    out.append(("sustained: N jobs every second, N rising, 15 s each",
                "; ".join(results) + f"; raw spawn rate {raw:.0f}/s", ""))


def scale_rules(n, distinct, rng):
    """`n` rules each firing once an hour at a random (second, minute) today: `S M * * * *`
    (3,600 distinct among them), or with `distinct` each rule's text its own — `S M * D * *`
    with D a random set of days of the month that includes today's (UTC). Returns the rules
    and, per (second, minute), the job ids (1-based, in insertion order)."""
    today = time.gmtime().tm_mday
    others = [d for d in range(1, 32) if d != today]
    rules, seen, by_sm = [], set(), {}
    while len(rules) < n:
        s, m = rng.randrange(60), rng.randrange(60)
        if distinct:
            days = sorted(rng.sample(others, rng.randrange(1, 7)) + [today])
            rule = f"{s} {m} * {','.join(map(str, days))} * *"
            if rule in seen:
                continue
            seen.add(rule)
        else:
            rule = f"{s} {m} * * * *"
        rules.append(rule)
        by_sm.setdefault((s, m), []).append(len(rules))
    return rules, by_sm


def hourly_instants(by_sm, t0_ms, t1_ms):
    """Expected (job_id, instant) over [t0, t1) for the rules of `scale_rules`."""
    expected = set()
    for sec in range((t0_ms + 999) // 1000, (t1_ms + 999) // 1000):
        tm = time.gmtime(sec)
        for job_id in by_sm.get((tm.tm_sec, tm.tm_min), ()):
            expected.add((job_id, sec * 1000))
    return expected


def case_scale(binary, out, raw, n=100_000, distinct=False, calendars=None):
    """With `calendars` ((names, mode)), every job has them: `cn-workdays` only, on a day that is
    a workday, keeps every instant and costs the lookups (the case says when it is not)."""
    rules, by_sm = scale_rules(n, distinct, random.Random(2))
    inst = Instance(binary, rules)
    if calendars:
        con = sqlite3.connect(inst.db)
        con.execute("UPDATE jobs SET calendars = ?, calendar_mode = ?", calendars)
        con.commit()
        con.close()
    try:
        ready, t0, t1, stats = window(inst, 60)
        if time.gmtime(t0 // 1000).tm_mday != time.gmtime(t1 // 1000).tm_mday:
            raise RuntimeError("the window crossed midnight UTC: run the case again")
        r = analyse(inst, hourly_instants(by_sm, t0, t1), t0, t1)
    finally:
        inst.close()
    b50, b99 = spawn_order_bound(r["rows"], raw)
    kind = "each rule distinct" if distinct else "3,600 distinct rules"
    if calendars:
        kind += f", every job `--calendar {calendars[0]} --calendar-mode {calendars[1]}`"
    out.append((f"scale: {n:,} jobs hourly ({kind}), minute and second random "
                f"(~{n / 3600:.0f} fires/s), 60 s",
                f"ready (schedule loaded) in {ready:.2f} s; {r['runs']} runs; p50 {r['p50']} ms, "
                f"p99 {r['p99']} ms, max {r['max']} ms (spawn-order bound p99 {b99} ms); "
                f"doubled {r['doubled']}, missed {r['missed']}",
                fmt_stats(stats)))


HTTP_SERVER = r"""
import http.server, ssl, sys
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def do_GET(self):
        body = b'ok'
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024
server = Server(('127.0.0.1', 0), Handler)
if len(sys.argv) > 1:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def test_ca(d):
    """A throwaway CA and a certificate for 127.0.0.1 signed by it, in `d`."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *a: subprocess.run(["openssl", *a], cwd=d, check=True, timeout=60,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("req", "-x509", "-days", "2", "-subj", "/CN=bench CA", *ec, "-keyout", "ca.key",
        "-out", "ca.pem")
    run("req", "-subj", "/CN=127.0.0.1", *ec, "-keyout", "s.key", "-out", "s.csr")
    with open(os.path.join(d, "s.ext"), "w") as f:
        f.write("subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\n")
    run("x509", "-req", "-days", "2", "-in", "s.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-extfile", "s.ext", "-out", "s.pem")
    return os.path.join(d, "ca.pem"), os.path.join(d, "s.pem"), os.path.join(d, "s.key")


def case_http(binary, out, raw):
    """N HTTP GET jobs every second against a local server, over http then https (same
    server code, same N, one invocation), so the ratio is TLS's cost on this path."""
    with tempfile.TemporaryDirectory(prefix="cv-bench-tls-") as d:
        ca, cert, key = test_ca(d)
        results = []
        for n in (100, 250, 500):
            row = {}
            for scheme in ("http", "https"):
                args = [cert, key] if scheme == "https" else []
                server = subprocess.Popen(["python3", "-c", HTTP_SERVER, *args],
                                          stdout=subprocess.PIPE, text=True)
                try:
                    port = int(server.stdout.readline())
                    url = f"{scheme}://127.0.0.1:{port}/ping"
                    inst = Instance(binary, ["* * * * * *"] * n, urls=[url] * n,
                                    extra_config=f'[tls]\nca_file = "{ca}"\n')
                    try:
                        _, t0, t1, stats = window(inst, 10)
                        rows = inst.runs(t0, t1, "instant, started_at, ended_at, state")
                    finally:
                        inst.close()
                finally:
                    server.kill()
                    server.wait()
                ok = [r for r in rows if r[3] == "succeeded"]
                late = [r[2] - r[0] for r in ok]
                took = [r[2] - r[1] for r in ok]
                row[scheme] = (len(ok) / 10.0, pct(late, 50), pct(late, 99), pct(took, 50),
                               pct(took, 99), len(rows) - len(ok), fmt_stats(stats))
            h, s = row["http"], row["https"]
            results.append(
                f"N={n}: http {h[0]:.0f}/s (lateness p50/p99 {h[1]}/{h[2]} ms, request "
                f"p50/p99 {h[3]}/{h[4]} ms, not succeeded {h[5]}); https {s[0]:.0f}/s "
                f"({s[1]}/{s[2]} ms, request {s[3]}/{s[4]} ms, not succeeded {s[5]})")
        out.append(("http: N HTTP GET jobs every second, http then https, 10 s each",
                    "; ".join(results), f"https at N=500: {row['https'][6]}"))


def run_case(binary, c, out, raw):
    """One case by name; `precision@nobody` runs it with jobs as that user."""
    c, _, run_as = c.partition("@")
    run_as = run_as or "root"
    if c == "precision":
        case_precision(binary, out, raw, run_as)
    elif c == "burst":
        case_burst(binary, out, raw, run_as)
    elif c == "sustained":
        case_sustained(binary, out, raw)
    elif c == "scale":
        case_scale(binary, out, raw)
    elif c == "scale-distinct":
        case_scale(binary, out, raw, distinct=True)
    elif c == "million":
        case_scale(binary, out, raw, n=1_000_000)
    elif c == "million-calendars":
        case_scale(binary, out, raw, n=1_000_000, calendars=("cn-workdays", "only"))
    elif c == "million-distinct":
        case_scale(binary, out, raw, n=1_000_000, distinct=True)
    elif c == "http":
        case_http(binary, out, raw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--baseline", help="another build: each case runs on it first, then on --bin, "
                    "in this one invocation (rows marked `baseline`)")
    ap.add_argument("cases", nargs="*", default=["raw", "precision", "burst", "sustained", "scale"])
    a = ap.parse_args()
    out = []
    raw = raw_spawn_rate()
    out.append(("raw: `sh -c true` spawn+reap, 2 in flight (xargs -P2), 3,000", f"{raw:.0f}/s", ""))
    for c in a.cases:
        if a.baseline:
            before = []
            run_case(a.baseline, c, before, raw)
            out.extend((f"{name} (baseline)", res, st) for name, res, st in before)
        run_case(a.bin, c, out, raw)
    print(f"\n{time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, `scripts/bench/fire.sh {' '.join(a.cases)}`\n")
    print("| case | result | CPU / peak RSS per role |")
    print("|---|---|---|")
    for name, res, st in out:
        print(f"| {name} | {res} | {st} |")


if __name__ == "__main__":
    main()
