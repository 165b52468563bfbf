"""The nemesis: faults chosen at random from a seed, each held for a few seconds and healed,
one at a time or overlapping, logged with their start and end."""
import os
import random
import signal
import time


class Nemesis:
    KINDS = [
        "kill_role", "pause_role", "kill_supervisor", "kill_host", "cut_store", "cut_store_hang",
        "cut_store_long", "cut_etcd",
        "cut_redis", "cut_hosts", "restart_etcd", "restart_redis", "restart_mariadb",
        "reload", "upgrade", "clock_step", "slow_link", "lossy_link",
    ]

    def __init__(self, seed, net, servers, hosts, log):
        self.rng = random.Random(seed)
        self.net, self.servers, self.hosts = net, servers, hosts
        self.log = log
        self.active = []  # (heal_at, kind, undo)
        self.counts = {}

    def note(self, kind, what, host=None, hold=0.0, pids=None):
        """Logs a fault: when (true time, ms), what, on which host (None: a shared server),
        held how long, and the host's role pids when it began — what the checker holds each
        alarm to."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        at = int(time.time() * 1000)
        self.log.append({"at": at, "until": at + int(hold * 1000), "kind": kind, "what": what,
                         "host": host, "pids": pids or {}})

    def step(self):
        """Heals what is due, then maybe injects one more fault (at most two at a time)."""
        now = time.monotonic()
        for item in [a for a in self.active if a[0] <= now]:
            self.active.remove(item)
            item[2]()
        if len(self.active) >= 2 or self.rng.random() < 0.4:
            return
        kind = self.rng.choice(self.KINDS)
        # A long silent cut outlasts monitor.lost_after (6 s): the fence's fault.
        hold = self.rng.uniform(9, 14) if kind == "cut_store_long" else self.rng.uniform(2, 9)
        undo = getattr(self, kind)(hold)
        if undo is not None:
            self.active.append((now + hold, kind, undo))

    def heal_all(self):
        for _, _, undo in self.active:
            undo()
        self.active.clear()
        self.net.heal_all()
        for s in self.servers.all().values():
            if not s.alive():
                s.start()
        for h in self.hosts:
            h.set_clock(0)
            h.set_link("ok")
            if not h.alive():
                h.start()
            for pid in h.role_pids().values():
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass

    def host(self, alive=True):
        hosts = [h for h in self.hosts if h.alive() == alive]
        return self.rng.choice(hosts) if hosts else None

    # -- the faults: each returns its undo, or None when it heals by itself --

    def kill_role(self, _hold):
        h = self.host()
        if h is None:
            return None
        role = self.rng.choice(["dispatcher", "executor", "monitor"])
        pid = h.role_pids().get(role)
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return None
            self.note("kill_role", f"{h.name} {role} {pid}", h.name, 0, {role: pid})
        return None

    def pause_role(self, hold):
        h = self.host()
        if h is None:
            return None
        role = self.rng.choice(["dispatcher", "executor", "monitor"])
        pid = h.role_pids().get(role)
        if not pid:
            return None
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            return None
        self.note("pause_role", f"{h.name} {role} {pid} {hold:.1f}s", h.name, hold, {role: pid})

        def undo():
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        return undo

    def kill_supervisor(self, hold):
        """kill -9 of one host's supervisor alone: its roles find themselves orphaned and
        drain; the host is started again when the fault heals."""
        if sum(h.alive() for h in self.hosts) < 2:
            return None
        h = self.host()
        pids = h.role_pids()
        try:
            os.kill(h.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        h.proc.wait(timeout=30)
        self.note("kill_supervisor", h.name, h.name, hold, pids)

        def undo():
            h.kill()  # whatever of it is still draining
            h.start()
        return undo

    def kill_host(self, hold):
        if sum(h.alive() for h in self.hosts) < 2:
            return None
        h = self.host()
        pids = h.role_pids()
        h.kill()
        self.note("kill_host", h.name, h.name, hold, pids)
        return h.start

    def _cut(self, kind, peer, hang, hold):
        h = self.host()
        if h is None or not self.net.cut(h.name, peer, hang):
            return None
        self.note(kind, f"{h.name} from {peer} {hold:.1f}s", h.name, hold, h.role_pids())
        return lambda: self.net.heal(h.name, peer, hang)

    def cut_store(self, hold):
        return self._cut("cut_store", "db", False, hold)

    def cut_store_hang(self, hold):
        return self._cut("cut_store_hang", "db", True, hold)

    def cut_store_long(self, hold):
        """Silent (replies dropped) and longer than monitor.lost_after: the host is presumed
        gone while its processes go on — its executor must fence its `forbid` runs first."""
        return self._cut("cut_store_long", "db", True, hold)

    def cut_etcd(self, hold):
        return self._cut("cut_etcd", "etcd", self.rng.random() < 0.5, hold)

    def cut_redis(self, hold):
        return self._cut("cut_redis", "redis", self.rng.random() < 0.5, hold)

    def cut_hosts(self, hold):
        a = self.host()
        others = [h for h in self.hosts if h is not a]
        if a is None or not others:
            return None
        b = self.rng.choice(others)
        hang = self.rng.random() < 0.5
        if not self.net.cut(a.name, b.name, hang):
            return None
        self.note("cut_hosts", f"{a.name} from {b.name} {'hang' if hang else 'fast'} {hold:.1f}s",
                  a.name, hold, a.role_pids())
        return lambda: self.net.heal(a.name, b.name, hang)

    def _restart(self, kind, server, hold):
        if not server.alive():
            return None
        server.kill()
        self.note(kind, f"down {hold:.1f}s", None, hold)
        return server.start

    def restart_etcd(self, hold):
        return self._restart("restart_etcd", self.servers.etcd, hold)

    def restart_redis(self, hold):
        return self._restart("restart_redis", self.servers.redis, hold)

    def restart_mariadb(self, hold):
        return self._restart("restart_mariadb", self.servers.db, hold)

    def slow_link(self, hold):
        """Delays everything between one host and its dependencies (its relay)."""
        h = self.host()
        if h is None:
            return None
        ms = self.rng.choice([50, 200, 800])
        h.set_link(f"delay {ms}")
        self.note("slow_link", f"{h.name} +{ms} ms for {hold:.1f}s", h.name, hold, h.role_pids())
        return lambda: h.set_link("ok")

    def lossy_link(self, hold):
        """Stalls a share of the chunks between one host and its dependencies for 1 s, as
        lost segments do."""
        h = self.host()
        if h is None:
            return None
        p = self.rng.choice([0.05, 0.2, 0.5])
        h.set_link(f"loss {p}")
        self.note("lossy_link", f"{h.name} {p:.0%} for {hold:.1f}s", h.name, hold, h.role_pids())
        return lambda: h.set_link("ok")

    def clock_step(self, hold):
        """Steps one host's wall clock forward or back by a few seconds, then back to true."""
        h = self.host()
        if h is None:
            return None
        step = self.rng.choice([-6, -3, 3, 6, 12])
        h.set_clock(step)
        self.note("clock_step", f"{h.name} {step:+d}s for {hold:.1f}s", h.name, hold,
                  h.role_pids())
        return lambda: h.set_clock(0)

    def reload(self, _hold):
        h = self.host()
        if h is None:
            return None
        h.proc.send_signal(signal.SIGHUP)
        self.note("reload", h.name, h.name, 0, h.role_pids())
        return None

    def upgrade(self, _hold):
        """`reload --upgrade`, left to finish in the background (it waits for the upgraded
        supervisor, which may take a while under the other faults)."""
        h = self.host()
        if h is None:
            return None
        self.background = [p for p in getattr(self, "background", []) if p.poll() is None]
        self.background.append(h.cli_spawn("reload", "--upgrade"))
        self.note("upgrade", h.name, h.name, 0, h.role_pids())
        return None
