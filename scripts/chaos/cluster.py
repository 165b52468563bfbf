"""The chaos cluster's processes: etcd, Redis, MariaDB and an HTTP target in the `db`
machine's namespace, and one `cronvisor up` (every role) in each host's namespace. Each can be
killed, paused and started again by the nemesis."""
import json
import os
import shutil
import signal
import subprocess
import time

API_TOKEN = "chaos-api-token"
FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
# Every server ever started, so that a failed start-up still tears them all down.
STARTED = []
RPC_TOKEN = "chaos-rpc-token"


def wait(what, f, limit_s=60):
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < limit_s:
        try:
            if f():
                return
        except Exception as e:  # noqa: BLE001 - a server still starting fails in many ways
            last = e
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}: {last}")


class Server:
    """One dependency process, restartable with the same argv."""

    def __init__(self, net, machine, name, argv, log, ready):
        self.net, self.machine, self.name = net, machine, name
        self.argv, self.logpath, self.ready = argv, log, ready
        self.proc = None
        self.start()

    def start(self):
        log = open(self.logpath, "a")
        if self not in STARTED:
            STARTED.append(self)
        self.proc = subprocess.Popen(self.net.prefix(self.machine) + self.argv, stdout=log, stderr=log,
                                     start_new_session=True)
        wait(self.name, self.ready, 90)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Servers:
    def __init__(self, net, tmp):
        self.net, self.tmp = net, tmp
        try:
            self._start_all(net, tmp)
        except BaseException:
            self.close()
            raise

    def _start_all(self, net, tmp):
        ip = net.addr["etcd"]
        env3 = dict(os.environ, ETCDCTL_API="3")
        url, purl = f"http://{ip}:2379", f"http://{ip}:2380"
        self.etcd_url = url
        self.etcd = Server(net, "etcd", "etcd", [
            "etcd", "--name", "c", "--data-dir", f"{tmp}/etcd", "--listen-client-urls", url,
            "--advertise-client-urls", url, "--listen-peer-urls", purl,
            "--initial-advertise-peer-urls", purl, "--initial-cluster", f"c={purl}",
            "--log-level", "warn"], f"{tmp}/etcd.log",
            lambda: subprocess.run(net.prefix("etcd") + ["etcdctl", f"--endpoints={url}", "endpoint",
                                                       "health"], env=env3, capture_output=True,
                                   timeout=5).returncode == 0)
        ip = net.addr["redis"]
        self.redis_url = f"redis://{ip}:6379/0"
        self.redis = Server(net, "redis", "redis", [
            "redis-server", "--port", "6379", "--bind", ip, "--protected-mode", "no",
            "--save", "", "--appendonly", "no",
            "--dir", tmp], f"{tmp}/redis.log", lambda: self.redis_cli("PING").strip() == "PONG")
        self.sock = f"{tmp}/mysql.sock"
        subprocess.run(["mariadb-install-db", "--no-defaults", "--user=root",
                        "--auth-root-authentication-method=socket", f"--datadir={tmp}/db"],
                       check=True, capture_output=True, timeout=180)
        ip = net.addr["db"]
        self.db = Server(net, "db", "mariadb", [
            "mariadbd", "--no-defaults", "--user=root", f"--bind-address={ip}", "--skip-log-bin",
            "--max-connections=500", f"--datadir={tmp}/db", f"--socket={self.sock}",
            "--port=3306", f"--pid-file={tmp}/db.pid"], f"{tmp}/mariadb.log",
            lambda: self.sql("SELECT 1").strip() == "1")
        self.sql("CREATE DATABASE cron; CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw'; "
                 "GRANT ALL ON cron.* TO 'app'@'%';")
        self.db_url = f"mysql://app:app-pw@{ip}:3306/cron"
        # The HTTP jobs' target: answers 200 to any GET.
        self.http_url = f"http://{ip}:8080/"
        self.http = Server(net, "db", "http", ["python3", "-m", "http.server", "--bind", ip, "8080",
                                         "--directory", tmp], f"{tmp}/http.log",
                           lambda: subprocess.run(net.prefix("db") + [
                               "python3", "-c",
                               f"import urllib.request; urllib.request.urlopen('{self.http_url}')"],
                               capture_output=True, timeout=5).returncode == 0)

    def redis_cli(self, *args):
        return subprocess.run(self.net.prefix("redis") + ["redis-cli", "-h", self.net.addr["redis"],
                                                       "-p", "6379", *args],
                              capture_output=True, text=True, timeout=10).stdout

    def sql(self, q):
        r = subprocess.run(["mariadb", "--no-defaults", "-u", "root", "-N", "-B",
                            f"--socket={self.sock}"], input=q, capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        return r.stdout

    def all(self):
        return {"etcd": self.etcd, "redis": self.redis, "mariadb": self.db}

    def close(self):
        for s in reversed(STARTED):
            s.kill()


class Host:
    """`cronvisor up` with every role in one namespace; its listeners on the host's address."""

    def __init__(self, binary, net, servers, name, tmp):
        self.binary, self.net, self.name = binary, net, name
        self.dir = f"{tmp}/{name}"
        self.data = f"{self.dir}/var"
        os.makedirs(self.data, mode=0o700)
        for f, t in (("api.token", API_TOKEN), ("rpc.token", RPC_TOKEN)):
            with open(f"{self.data}/{f}", "w") as fh:
                fh.write(t)
            os.chmod(f"{self.data}/{f}", 0o600)
        ip = net.addr[name]
        # The host reaches its dependencies through a relay of its own (scripts/chaos/relay.py),
        # which the nemesis slows down or makes lossy.
        self.link = f"{self.dir}/link-mode"
        self.set_link("ok")
        self.relay_targets = [f"13306={net.addr['db']}:3306", f"16379={net.addr['redis']}:6379",
                              f"12379={net.addr['etcd']}:2379"]
        self.relay = None
        self.config = f"{self.dir}/cronvisor.toml"
        with open(self.config, "w") as f:
            f.write(f'data_dir = "{self.data}"\nhost = "{name}"\n'
                    '[machine]\nall = ["h1", "h2", "h3"]\n'
                    f'[listeners]\napi = "{ip}:7070"\nrpc = "{ip}:7071"\ndispatch = "{ip}:7072"\n'
                    '[cluster]\netcd_endpoints = ["http://127.0.0.1:12379"]\n'
                    'redis_url = "redis://127.0.0.1:16379/0"\n'
                    '[store]\nurl = "mysql://app:app-pw@127.0.0.1:13306/cron"\n'
                    'max_connections = 8\n'
                    '[monitor]\nlost_after = "6s"\n'
                    '[executor]\nheartbeat = "1s"\nrun_as = "root"\n'
                    '[supervisor]\nrestart_backoff_initial_ms = 500\n'
                    # Every alarm its own row, so the checker sees each event in order.
                    '[alarm]\nmerge_window = "0s"\n')
        self.proc = None
        self.pids = {}
        # The host's wall clock, as libfaketime reads it at every clock reading: the nemesis
        # steps it by writing an offset here (the monotonic clock stays, as under NTP).
        self.clock = f"{self.dir}/clock-offset"
        self.set_clock(0)
        self.start()

    def set_link(self, mode):
        with open(self.link, "w") as f:
            f.write(mode + "\n")

    def start_relay(self):
        if self.relay is not None and self.relay.poll() is None:
            return
        here = os.path.dirname(os.path.abspath(__file__))
        self.relay = subprocess.Popen(self.net.prefix(self.name) + [
            "python3", f"{here}/relay.py", self.link, *self.relay_targets],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        self.relay.stdout.readline()

    def set_clock(self, offset_s):
        with open(self.clock, "w") as f:
            f.write(f"{offset_s:+d}\n")

    def start(self):
        self.start_relay()
        log = open(f"{self.dir}/up.log", "a")
        env = dict(os.environ, RUST_LOG="warn")
        if os.path.exists(FAKETIME):
            env.update(LD_PRELOAD=FAKETIME, FAKETIME_TIMESTAMP_FILE=self.clock,
                       FAKETIME_NO_CACHE="1", FAKETIME_DONT_FAKE_MONOTONIC="1")
        self.proc = subprocess.Popen(self.net.prefix(self.name) + [
            self.binary, "--config", self.config, "up"], stdout=subprocess.DEVNULL, stderr=log,
            env=env, start_new_session=True)
        wait(f"host {self.name}", self.ready, 90)

    def ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited; see {self.dir}/up.log")
        with open(f"{self.data}/run/status.json") as fh:
            s = json.load(fh)
        if s["phase"] == "ready" and len(s["children"]) == 3:
            self.pids = {c["role"]: c["pid"] for c in s["children"]}
            return True
        return False

    def role_pids(self):
        """The roles' current pids (the supervisor restarts a killed one under a new pid)."""
        try:
            with open(f"{self.data}/run/status.json") as fh:
                s = json.load(fh)
            return {c["role"]: c["pid"] for c in s["children"] if c.get("pid")}
        except (OSError, ValueError, KeyError):
            return {}

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """The whole machine at once: every process in its namespace (supervisor, roles and
        the jobs they run), as when it loses power."""
        if self.proc is None:
            return
        for _ in range(3):
            pids = subprocess.run(["ip", "netns", "pids", self.net.ns[self.name]],
                                  capture_output=True, text=True, timeout=10).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        self.proc.wait(timeout=30)

    def cli(self, *args):
        r = subprocess.run(self.net.prefix(self.name) + [self.binary, "--config", self.config,
                                                         *args],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"cronvisor {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def cli_spawn(self, *args):
        return subprocess.Popen(self.net.prefix(self.name) + [self.binary, "--config",
                                                             self.config, *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


def cleanup_dir(path):
    shutil.rmtree(path, ignore_errors=True)
