#!/usr/bin/env python3
"""Console benchmark (see console.sh).

pages    10,000 jobs and 1,000,000 runs in the store (SQLite, then MariaDB), inserted straight
         into it; `cronvisor up` on that store; each console page and, as the baseline measured
         in the same invocation, the API call that reads the same data, fetched N times over
         one kept-alive connection with the session cookie (pages) or the token (API):
         server time p50 / p99 (client-side, loopback).
viewers  the CPU the executor and the monitor spend on one such run with 0, 1, 10 and 50
         readers of its live output (curl as the SSE client), 0 being the baseline.
latency  a job prints a line every 25 ms with its own clock (ns); the same run is watched by
         the console in headless Chromium (Playwright; a MutationObserver timestamps each
         text node) and by `run tail --follow` (the baseline, a plain SSE client): the delay
         from printing a line to it appearing, p50 / p99 / max.
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fire import pct  # noqa: E402

JOBS = 10_000
RUNS = 1_000_000


class Up:
    """`cronvisor up` on loopback ports in a temp dir; `store` None: SQLite."""

    def __init__(self, binary, store=None, extra=""):
        self.binary = os.path.abspath(binary)
        self.tmp = tempfile.TemporaryDirectory(prefix="cv-bench-console-")
        self.data = os.path.join(self.tmp.name, "var")
        os.makedirs(self.data)
        self.config = os.path.join(self.tmp.name, "cronvisor.toml")
        store_toml = f'[store]\nurl = "{store}"\n' if store else ""
        with open(self.config, "w") as f:
            f.write(f'data_dir = "{self.data}"\n[listeners]\napi = "127.0.0.1:0"\n'
                    'rpc = "127.0.0.1:0"\ndispatch = "127.0.0.1:0"\n'
                    '[monitor]\nretention = "0"\n[executor]\nrun_as = "root"\n' + store_toml + extra)
        self.cli("migrate")
        self.proc = None

    def cli(self, *args, timeout=60):
        return subprocess.run([self.binary, "--config", self.config, *args], check=True,
                              capture_output=True, text=True, timeout=timeout).stdout

    def up(self, limit_s=180):
        self.log = open(os.path.join(self.tmp.name, "up.log"), "w")
        self.proc = subprocess.Popen([self.binary, "--config", self.config, "up"],
                                     stdout=subprocess.DEVNULL, stderr=self.log,
                                     env=dict(os.environ, RUST_LOG="warn"))
        status = os.path.join(self.data, "run", "status.json")
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit_s:
            if self.proc.poll() is not None:
                raise RuntimeError("cronvisor up exited early; see " + self.log.name)
            try:
                with open(status) as f:
                    if json.load(f)["phase"] == "ready":
                        break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError("not ready in time")
        with open(os.path.join(self.data, "endpoints.json")) as f:
            self.api = json.load(f)["api"]
        with open(os.path.join(self.data, "api.token")) as f:
            self.token = f.read().strip()

    def login(self):
        """A session cookie, as the login form gets it."""
        host, port = self.api.rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=30)
        body = urllib.parse.urlencode({"token": self.token, "next": "/"})
        c.request("POST", "/login", body,
                  {"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        r.read()
        cookie = r.getheader("set-cookie").split(";")[0]
        c.close()
        return cookie

    def down(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.tmp.cleanup()


# ---- pages ------------------------------------------------------------------------------

def fill_sqlite(db, now):
    import sqlite3
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.executemany(
        "INSERT INTO jobs (name, schedule, timezone, command, paused, created_at, updated_at)"
        " VALUES (?, '@yearly', 'UTC', 'true', 0, ?, ?)",
        [(f"job-{i:05}", now, now) for i in range(JOBS)])
    con.execute(FILL_RUNS.format(seq="WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL "
                                     f"SELECT n + 1 FROM seq WHERE n < {RUNS - 1}) ",
                                 src="seq", now=now))
    con.execute(FAILING)
    con.commit()
    con.close()


# The jobs the alarm scan would mark failing (the runs below fail every 20th row).
FAILING = "UPDATE jobs SET alarm_failing = 1 WHERE id % 20 = 1"

# One run per row n: job n % JOBS, an instant 2.6 s apart going back 30 days, mostly succeeded.
FILL_RUNS = (
    "{seq}INSERT INTO runs (job_id, instant, target, trigger_kind, state, executor, exit_code,"
    " stdout, alarm_checked, created_at, dispatched_at, started_at, ended_at)"
    " SELECT n % 10000 + 1, {now} - n * 2600, '', 'schedule',"
    " CASE WHEN n % 20 = 0 THEN 'failed' WHEN n % 97 = 0 THEN 'timed_out' ELSE 'succeeded' END,"
    " 'bench/127.0.0.1:1/1', CASE WHEN n % 20 = 0 THEN 1 ELSE 0 END, 'ok', 1,"
    " {now} - n * 2600, {now} - n * 2600 + 2, {now} - n * 2600 + 5, {now} - n * 2600 + 40"
    " FROM {src}"
)


def fill_mariadb(servers, now):
    servers.sql("USE cron; " + "".join(
        "INSERT INTO jobs (name, schedule, timezone, command, paused, created_at, updated_at)"
        " VALUES " + ",".join(f"('job-{i:05}', '@yearly', 'UTC', 'true', 0, {now}, {now})"
                             for i in range(k, min(k + 2000, JOBS))) + ";"
        for k in range(0, JOBS, 2000)))
    servers.sql("USE cron; SET SESSION sql_mode=''; " + FILL_RUNS.format(
        seq="", src=f"(SELECT seq AS n FROM seq_0_to_{RUNS - 1}) s", now=now) + "; " + FAILING + ";")


def timed(api, path, headers, n):
    host, port = api.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    times, size = [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        body = r.read()
        times.append((time.perf_counter() - t0) * 1000)
        if r.status != 200:
            raise RuntimeError(f"{path}: {r.status} {body[:200]!r}")
        size = len(body)
    c.close()
    return pct(times, 50), pct(times, 99), size


PAGES = [
    ("jobs page", "/jobs", "/api/v1/jobs"),
    ("jobs page, search", "/jobs?q=job-0999", None),
    ("runs page (newest 50)", "/runs", "/api/v1/runs?limit=50"),
    ("runs page, failed", "/runs?state=failed", "/api/v1/runs?state=failed&limit=50"),
    ("runs page, a page deep", "/runs?before=500000", "/api/v1/runs?before=500000&limit=50"),
    ("runs page, one job", "/runs?job=job-00042", "/api/v1/runs?job=job-00042&limit=50"),
    ("job page", "/jobs/job-00042", "/api/v1/jobs/job-00042"),
    ("run page", "/runs/123456", "/api/v1/runs/123456"),
    ("overview", "/", None),
]


def pages(binary, n, backends):
    rows = []
    for backend in backends:
        servers = None
        now = int(time.time() * 1000)
        if backend == "mariadb":
            from cluster import Servers
            servers = Servers()
            inst = Up(binary, servers.db_url)
            t0 = time.monotonic()
            fill_mariadb(servers, now)
        else:
            inst = Up(binary)
            t0 = time.monotonic()
            fill_sqlite(os.path.join(inst.data, "cronvisor.db"), now)
        fill_s = time.monotonic() - t0
        try:
            inst.up()
            cookie = {"Cookie": inst.login()}
            bearer = {"Authorization": f"Bearer {inst.token}"}
            for name, page, api in PAGES:
                p50, p99, size = timed(inst.api, page, cookie, n)
                a = timed(inst.api, api, bearer, n) if api else None
                rows.append((backend, name, page, p50, p99, size, a))
                print(f"{backend:8} {name:26} {p50:8.1f} {p99:8.1f} ms  {size:>8} B"
                      + (f"   API {a[0]:.1f} / {a[1]:.1f} ms" if a else ""), flush=True)
        finally:
            inst.down()
            if servers:
                servers.close()
        print(f"({backend}: {JOBS} jobs and {RUNS} runs inserted in {fill_s:.0f} s)", flush=True)
    print()
    print(f"| store | page | URL | p50 ms | p99 ms | bytes | API baseline p50 / p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for backend, name, page, p50, p99, size, a in rows:
        base = f"{a[0]:.1f} / {a[1]:.1f} (`{next(x for x in PAGES if x[1] == page)[2]}`)" \
            if a else "—"
        print(f"| {backend} | {name} | `{page}` | {p50:.1f} | {p99:.1f} | {size} | {base} |")


# ---- latency ----------------------------------------------------------------------------

LINES = 400
COMMAND = (f"for i in $(seq 1 {LINES}); do echo \"$(date +%s%N) $i\"; sleep 0.025; done")

OBSERVER = """() => {
  window.__seen = [];
  const pre = document.getElementById('stdout');
  new MutationObserver(ms => {
    const t = performance.timeOrigin + performance.now();
    for (const m of ms) for (const n of m.addedNodes) window.__seen.push([t, n.textContent]);
  }).observe(pre, {childList: true});
}"""


def latency(binary):
    from playwright.sync_api import sync_playwright
    inst = Up(binary)
    try:
        inst.up()
        inst.cli("job", "add", "--name", "printer", "--schedule", "@yearly",
                 "--command", COMMAND)
        run_id = json.loads(inst.cli("job", "run", "printer", "--json"))["run_id"]
        cli_seen = []

        def tail():
            p = subprocess.Popen([inst.binary, "--config", inst.config, "run", "tail",
                                  str(run_id), "--follow"], stdout=subprocess.PIPE, text=True)
            for line in p.stdout:
                cli_seen.append((time.time() * 1000, line))
            p.wait(timeout=60)

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(f"http://{inst.api}/login?next=/runs/{run_id}")
            page.fill("#token", inst.token)
            page.click("button[type=submit]")
            page.wait_for_url(f"**/runs/{run_id}")
            page.evaluate(OBSERVER)
            t = threading.Thread(target=tail)
            t.start()
            page.wait_for_selector("#output[data-ended]", timeout=LINES * 25 * 4 + 30_000)
            browser_seen = page.evaluate("window.__seen")
            browser.close()
            t.join(timeout=60)
    finally:
        inst.down()

    def delays(seen):
        # Lines printed before the reader's first arrival came as a backlog: not live delays.
        first = seen[0][0] if seen else 0
        out = []
        for t, text in seen:
            for line in text.splitlines():
                parts = line.split()
                if len(parts) == 2 and int(parts[0]) / 1e6 > first:
                    out.append(t - int(parts[0]) / 1e6)
        return out

    rows = []
    for name, seen in (("browser (console)", browser_seen), ("run tail --follow", cli_seen)):
        d = delays(seen)
        rows.append((name, len(d), pct(d, 50), pct(d, 99), max(d) if d else float("nan")))
    print(f"| reader | lines | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    for name, n, p50, p99, mx in rows:
        print(f"| {name} | {n} | {p50:.1f} | {p99:.1f} | {mx:.1f} |")


# ---- viewers ----------------------------------------------------------------------------

def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def viewers(binary, counts=(0, 1, 10, 50)):
    """CPU the executor and the monitor spend on one run printing 400 lines over 10 s, with
    K readers of its live output (curl, SSE) — each reader is one long poll at the executor."""
    inst = Up(binary)
    rows = []
    try:
        inst.up()
        with open(os.path.join(inst.data, "run", "status.json")) as f:
            pids = {c["role"]: c["pid"] for c in json.load(f)["children"]}
        inst.cli("job", "add", "--name", "printer", "--schedule", "@yearly", "--command", COMMAND)
        for k in counts:
            run_id = json.loads(inst.cli("job", "run", "printer", "--json"))["run_id"]
            before = {r: cpu_s(pids[r]) for r in ("executor", "monitor")}
            readers = [subprocess.Popen(
                ["curl", "-sN", "--max-time", "60", "-H", "Accept: text/event-stream",
                 "-H", f"Authorization: Bearer {inst.token}",
                 f"http://{inst.api}/api/v1/runs/{run_id}/output"],
                stdout=subprocess.DEVNULL) for _ in range(k)]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                state = json.loads(inst.cli("run", "show", str(run_id), "--json"))["state"]
                if state not in ("scheduled", "dispatched", "running"):
                    break
                time.sleep(0.2)
            for r in readers:
                r.wait(timeout=60)
            after = {r: cpu_s(pids[r]) for r in ("executor", "monitor")}
            rows.append((k, after["executor"] - before["executor"],
                         after["monitor"] - before["monitor"]))
            print(f"{k:3} readers: executor {rows[-1][1]:.2f} s CPU, monitor {rows[-1][2]:.2f} s",
                  flush=True)
    finally:
        inst.down()
    print("| readers | executor CPU s | monitor CPU s |")
    print("|---|---|---|")
    for k, e, m in rows:
        print(f"| {k} | {e:.2f} | {m:.2f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("cases", nargs="*", default=["latency", "viewers", "pages"])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--backends", default="sqlite,mariadb")
    args = ap.parse_args()
    for case in args.cases:
        print(f"## {case}", flush=True)
        if case == "pages":
            pages(args.bin, args.repeat, args.backends.split(","))
        elif case == "latency":
            latency(args.bin)
        elif case == "viewers":
            viewers(args.bin)
        else:
            raise SystemExit(f"unknown case {case}")


if __name__ == "__main__":
    main()
