#!/usr/bin/env python3
"""The chaos suite (see scripts/chaos.sh): a cluster of three hosts, each `cronvisor up` in its
own network namespace, with etcd, Redis and MariaDB in namespaces of their own, firing a mix of
jobs while a seeded nemesis kills, pauses, cuts off and restarts things; then a checker reads
the whole history from the store, the jobs' own execution log and the nemesis log.

Standard library only. Needs root (namespaces) and the servers of scripts/install-deps.sh.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check import check, print_report  # noqa: E402
from cluster import Host, Servers, cleanup_dir  # noqa: E402
from nemesis import Nemesis  # noqa: E402
from net import Net  # noqa: E402

# (name, rule, command tail, extra flags). Every command logs its start and end (run id and
# wall clock) to the shared execution log, which is how the checker sees what really ran. The
# time is read with libfaketime unloaded: the true clock, whatever the nemesis did to the
# host's, so that runs on different hosts compare (two `forbid` runs overlapping as the
# executors saw them).
JOBS = [
    ("tick1", "* * * * * *", "true", []),
    ("tick2", "* * * * * *", "true", []),
    ("every3", "*/3 * * * * *", "true", ["--misfire", "run_once", "--misfire-window", "60s"]),
    ("forbid", "* * * * * *", "sleep 1.5", ["--overlap", "forbid"]),
    ("replace", "*/4 * * * * *", "sleep 6", ["--overlap", "replace"]),
    ("flaky", "*/2 * * * * *", "test $(( $(od -An -N1 -tu1 /dev/urandom) % 3 )) -ne 0",
     ["--retries", "1", "--retry-backoff", "1s"]),
    ("fanout", "*/2 * * * * *", "true", ["--fanout", "all", "--run-at", "all"]),
    ("fixed", "0 * * * * *", "true", []),
    ("froot", "*/3 * * * * *", "true", []),
]

# The flows of `froot` (name, after, command tail): a chain, a fan-in, a job that fails half
# the time and the path taken on its failure. The checker holds each flow to exactly one
# record per job, decided as its edges say.
FLOW = [
    ("fa", "froot", "true"),
    ("fb", "froot", "sleep 0.5"),
    ("fjoin", "fa,fb", "true"),
    ("ffail", "froot", "test $(( $(od -An -N1 -tu1 /dev/urandom) % 2 )) -ne 0"),
    ("fpage", "ffail:failure", "true"),
]


# A daily job backfilled over the days before the run, started as the faults start: each of its
# instants must run once for the backfill, whichever dispatcher drives it and whatever is killed.
BACKFILL = ("bfill", "0 0 3 * * *", "sleep 0.3", 120, 3)  # name, rule, tail, days, parallel
DAY_MS = 86_400_000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs) afterwards")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("chaos: needs root (network namespaces)")
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1, 10**6)
    binary = os.path.abspath(a.bin)
    tmp = tempfile.mkdtemp(prefix="cv-chaos-")
    os.chmod(tmp, 0o755)
    tag = str(os.getpid() % 1000)
    net = Net(tag, ["etcd", "redis", "db", "h1", "h2", "h3"])
    print(f"chaos: seed {seed}, {a.minutes} min, logs in {tmp}", file=sys.stderr)
    servers, hosts, nemesis_log = None, [], []
    code = 2
    try:
        net.up()
        servers = Servers(net, tmp)
        subprocess.run(net.prefix("h1") + [binary, "migrate"], check=True, timeout=120,
                       stdout=subprocess.DEVNULL,
                       env=dict(os.environ, CRONVISOR_STORE_URL=servers.db_url))
        hosts = [Host(binary, net, servers, n, tmp) for n in ("h1", "h2", "h3")]
        execlog = f"{tmp}/exec.log"
        open(execlog, "w").close()
        os.chmod(execlog, 0o666)
        for name, rule, tail, extra in JOBS:
            mark = f'"$CRONVISOR_JOB $CRONVISOR_RUN_ID $CRONVISOR_ATTEMPT $(env -u LD_PRELOAD date +%s%3N)"'
            command = (f"echo S {mark} >> {execlog}; {tail}; rc=$?; "
                       f"echo E {mark} $rc >> {execlog}; exit $rc")
            hosts[0].cli("job", "add", "--name", name, "--schedule", rule, "--command", command,
                         *extra)
        for name, after, tail in FLOW:
            mark = f'"$CRONVISOR_JOB $CRONVISOR_RUN_ID $CRONVISOR_ATTEMPT $(env -u LD_PRELOAD date +%s%3N)"'
            command = (f"echo S {mark} >> {execlog}; {tail}; rc=$?; "
                       f"echo E {mark} $rc >> {execlog}; exit $rc")
            hosts[0].cli("job", "add", "--name", name, "--after", after, "--command", command)
        hosts[0].cli("job", "add", "--name", "http", "--schedule", "*/2 * * * * *",
                     "--http-url", servers.http_url)
        bf_name, bf_rule, bf_tail, bf_days, bf_parallel = BACKFILL
        mark = f'"$CRONVISOR_JOB $CRONVISOR_RUN_ID $CRONVISOR_ATTEMPT $(env -u LD_PRELOAD date +%s%3N)"'
        hosts[0].cli("job", "add", "--name", bf_name, "--schedule", bf_rule, "--tz", "UTC",
                     "--command", f"echo S {mark} >> {execlog}; {bf_tail}; rc=$?; "
                     f"echo E {mark} $rc >> {execlog}; exit $rc")
        last_day = (int(time.time() * 1000) // DAY_MS - 1) * DAY_MS
        bf_first, bf_last = last_day - (bf_days - 1) * DAY_MS + 3 * 3_600_000, \
            last_day + 3 * 3_600_000
        bf_range = (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(bf_first / 1000)),
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(bf_last / 1000)))
        time.sleep(4)  # the first fires; the window starts once every job has fired
        t0 = int(time.time() * 1000)
        hosts[0].cli("job", "backfill", bf_name, "--from", bf_range[0], "--to", bf_range[1],
                     "--parallel", str(bf_parallel))
        nemesis = Nemesis(seed, net, servers, hosts, nemesis_log)
        end = time.monotonic() + a.minutes * 60
        while time.monotonic() < end:
            nemesis.step()
            time.sleep(nemesis.rng.uniform(0.5, 2.0))
        t1 = int(time.time() * 1000)
        nemesis.heal_all()
        # Settle: every run of the window ends (lost ones after lost_after, replaced ones
        # after their kill grace), retries fire, held instants are recorded, and the monitors'
        # gap check (which waits 2 x delivery timeout + lock TTL + late grace after an instant,
        # and as long after a monitor starts) has been over the window's last instants.
        settle_until = time.monotonic() + 120
        while time.monotonic() < settle_until:
            open_runs = servers.sql(
                f"SELECT COUNT(*) FROM cron.runs WHERE instant < {t1} AND state IN "
                "('scheduled', 'dispatched', 'running')").strip()
            backfilling = servers.sql(
                "SELECT COUNT(*) FROM cron.backfills WHERE state = 'running'").strip()
            if open_runs == "0" and backfilling == "0" and time.monotonic() > settle_until - 45:
                break
            time.sleep(1)
        result = check(servers, JOBS + [("http", "*/2 * * * * *", None, [])], execlog, tmp,
                       t0, t1, FLOW, (bf_name, bf_first, bf_last, DAY_MS), nemesis_log)
        result["faults"] = nemesis.counts
        print_report(result, seed, a.minutes)
        with open(f"{tmp}/nemesis.json", "w") as f:
            json.dump(nemesis_log, f, indent=1)
        code = 1 if result["anomalies"] else 0
    finally:
        for h in hosts:
            try:
                h.stop()
            except Exception as e:  # noqa: BLE001 - tear down whatever is left
                print(f"chaos: stopping {h.name}: {e}", file=sys.stderr)
                h.kill()
        if servers:
            servers.close()
        net.kill_all()
        net.down()
        if code == 0 and not a.keep:
            cleanup_dir(tmp)
        else:
            print(f"chaos: logs kept in {tmp}", file=sys.stderr)
    if code:
        print(f"chaos: anomalies found; replay with --seed {seed}", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
