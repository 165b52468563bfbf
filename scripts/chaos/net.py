"""The chaos cluster's network: one namespace per machine on a bridge, all addresses private to
the run (10.231.<n>.0/24), and the partitions the nemesis makes on it.

- A **fast** partition is a blackhole route on the cut-off side: its connects fail at once.
- A **hanging** partition is a blackhole route for the replies on the *far* side: the cut-off
  side's packets still leave and its connects hang, as in a real partition (there is no
  iptables or nft on these machines).
"""
import subprocess


def sh(*argv, check=True):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")
    return r


class Net:
    def __init__(self, tag, names, subnet=231):
        """`names`: the machines, e.g. ["etcd", "redis", "db", "h1", "h2", "h3"]: servers get
        .1, .2, ...; hosts (h*) .11, .12, ... Interface names stay within 15 characters."""
        self.tag = tag
        self.bridge = f"cvb{tag}"
        self.ns = {n: f"cvc{tag}-{n}" for n in names}
        self.addr = {}
        servers = [n for n in names if not n.startswith("h")]
        hosts = [n for n in names if n.startswith("h")]
        for i, n in enumerate(servers):
            self.addr[n] = f"10.{subnet}.0.{1 + i}"
        for i, n in enumerate(hosts):
            self.addr[n] = f"10.{subnet}.0.{11 + i}"
        self.cuts = set()

    def up(self):
        self.down(quiet=True)
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "link", "set", self.bridge, "up")
        for i, (n, ns) in enumerate(self.ns.items()):
            outer, inner = f"cv{self.tag}o{i}", f"cv{self.tag}i{i}"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
            sh("ip", "link", "set", inner, "netns", ns)
            sh("ip", "link", "set", outer, "master", self.bridge)
            sh("ip", "link", "set", outer, "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.addr[n]}/24", "dev", inner)
            sh("ip", "-n", ns, "link", "set", inner, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")

    def kill_all(self):
        """Kills every process left in the run's namespaces."""
        import os
        import signal
        for ns in self.ns.values():
            pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass

    def down(self, quiet=True):
        for ns in self.ns.values():
            sh("ip", "netns", "del", ns, check=False)
        sh("ip", "link", "del", self.bridge, check=False)

    def prefix(self, name):
        """The argv prefix that runs a command in machine `name`'s namespace."""
        return ["ip", "netns", "exec", self.ns[name]]

    def cut(self, a, b, hang):
        """Cuts `a` off from `b`: fast (a's connects fail) or hanging (b's replies vanish)."""
        side, dest = (b, a) if hang else (a, b)
        key = (side, dest)
        if key in self.cuts:
            return False
        sh("ip", "-n", self.ns[side], "route", "add", "blackhole", f"{self.addr[dest]}/32")
        self.cuts.add(key)
        return True

    def heal(self, a, b, hang):
        side, dest = (b, a) if hang else (a, b)
        if (side, dest) in self.cuts:
            sh("ip", "-n", self.ns[side], "route", "del", "blackhole", f"{self.addr[dest]}/32",
               check=False)
            self.cuts.discard((side, dest))

    def heal_all(self):
        for side, dest in list(self.cuts):
            sh("ip", "-n", self.ns[side], "route", "del", "blackhole", f"{self.addr[dest]}/32",
               check=False)
        self.cuts.clear()
