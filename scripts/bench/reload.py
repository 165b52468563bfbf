#!/usr/bin/env python3
"""Reload benchmark (see reload.sh). Standard library only."""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

STEADY_S = 15
RELOAD_S = 60
EVERY_S = 2.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url, seconds, close):
    cmd = ["wrk", "-t2", "-c32", f"-d{seconds}s", "--timeout", "5s", "--latency", url]
    if close:
        cmd[1:1] = ["-H", "Connection: close"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    res = {"requests": 0, "connect": 0, "read": 0, "write": 0, "timeout": 0, "non2xx": 0}
    m = re.search(r"(\d+) requests in", out)
    if m:
        res["requests"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res.update(connect=int(m.group(1)), read=int(m.group(2)), write=int(m.group(3)),
                   timeout=int(m.group(4)))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    for p in ("50", "99"):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if m:
            v = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
            res[f"p{p}"] = round(v, 2)
    return res


def reloader(send, stop, durations):
    while not stop.wait(EVERY_S):
        durations.append(send())


class Cronvisor:
    def __init__(self, binary):
        self.tmp = tempfile.TemporaryDirectory(prefix="cv-reload-")
        self.data = os.path.join(self.tmp.name, "var")
        self.port = free_port()
        self.config = os.path.join(self.tmp.name, "cronvisor.toml")
        with open(self.config, "w") as f:
            f.write(f'data_dir = "{self.data}"\n[listeners]\napi = "127.0.0.1:{self.port}"\n'
                    'rpc = "127.0.0.1:0"\ndispatch = "127.0.0.1:0"\n[executor]\nrun_as = "root"\n')
        self.log = open(os.path.join(self.tmp.name, "up.log"), "w")
        self.proc = subprocess.Popen([binary, "--config", self.config, "up"],
                                     stdout=subprocess.DEVNULL, stderr=self.log,
                                     env=dict(os.environ, RUST_LOG="warn"))
        self.status_path = os.path.join(self.data, "run", "status.json")
        self.wait(lambda s: s["phase"] == "ready")

    def status(self):
        try:
            with open(self.status_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def wait(self, pred, limit=30):
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            s = self.status()
            if s and pred(s):
                return s
            time.sleep(0.002)
        raise RuntimeError("cronvisor: condition not reached; see " + self.log.name)

    def reload(self):
        """SIGHUP; returns ms until the new generation serves."""
        gen = self.status()["generation"]
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGHUP)
        self.wait(lambda s: s["generation"] > gen and s["phase"] == "ready")
        return (time.monotonic() - t0) * 1000

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.tmp.cleanup()


class Nginx:
    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="nginx-reload-")
        self.port = free_port()
        p = self.tmp.name
        os.makedirs(os.path.join(p, "logs"))
        self.conf = os.path.join(p, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(f"""worker_processes 1; pid {p}/nginx.pid; error_log {p}/logs/error.log;
daemon on;
events {{ worker_connections 1024; }}
http {{ access_log off;
  server {{ listen 127.0.0.1:{self.port}; location /healthz {{ return 200 "ok"; }} }} }}
""")
        self.cmd = ["nginx", "-p", p, "-c", self.conf]
        subprocess.run(self.cmd, check=True, timeout=30)
        time.sleep(0.3)

    def reload(self):
        t0 = time.monotonic()
        subprocess.run(self.cmd + ["-s", "reload"], check=True, timeout=30)
        return (time.monotonic() - t0) * 1000

    def close(self):
        subprocess.run(self.cmd + ["-s", "stop"], timeout=30)
        time.sleep(0.3)
        self.tmp.cleanup()


def run(server, close):
    url = f"http://127.0.0.1:{server.port}/healthz"
    steady = wrk(url, STEADY_S, close)
    stop, durations = threading.Event(), []
    t = threading.Thread(target=reloader, args=(server.reload, stop, durations))
    t.start()
    during = wrk(url, RELOAD_S, close)
    stop.set()
    t.join()
    return steady, during, durations


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    a = ap.parse_args()
    rows = []
    for close in (False, True):
        mode = "Connection: close" if close else "keep-alive"
        for name, make in (("cronvisor", lambda: Cronvisor(os.path.abspath(a.bin))), ("nginx", Nginx)):
            srv = make()
            try:
                steady, during, durs = run(srv, close)
            finally:
                srv.close()
            errors = sum(during[k] for k in ("connect", "read", "write", "timeout", "non2xx"))
            durs.sort()
            rows.append(
                f"| {name} | {mode} | {during['requests']:,} | {errors} (connect {during['connect']}, "
                f"read {during['read']}, write {during['write']}, timeout {during['timeout']}, "
                f"non-2xx {during['non2xx']}) | {steady.get('p50')} / {steady.get('p99')} | "
                f"{during.get('p50')} / {during.get('p99')} | {len(durs)} reloads; "
                f"p50 {durs[len(durs) // 2]:.0f} ms, max {durs[-1]:.0f} ms |")
    print(f"\n{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, `scripts/bench/reload.sh` "
          f"(wrk -t2 -c32; {STEADY_S} s steady, then {RELOAD_S} s with a reload every {EVERY_S:.0f} s)\n")
    print("| server | mode | requests during reloads | errors during reloads | steady p50 / p99 ms "
          "| during reloads p50 / p99 ms | reload to ready |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
