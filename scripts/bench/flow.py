#!/usr/bin/env python3
"""Flow benchmark for cronvisor (see flow.sh). Standard library only.

1,000 flows of 10 jobs started in the same minute (each root fires once, at a random second):
half are chains (root -> d1 -> ... -> d9), half fan-ins (root -> d1..d8 -> d9). Measured from the
store: for each released job, its process start minus the end of the last of its upstreams to
end (what releasing adds), and that every flow ran each job exactly once. Beside them, in the
same instance, the 1,000 unrelated jobs of fire.py's precision case, whose lateness is compared
with the same jobs in an instance without flows, run first in this invocation.
"""
import argparse
import os
import random
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fire import (Instance, analyse, fmt_stats, pct, raw_spawn_rate,  # noqa: E402
                  second_rule_instants, spawn_order_bound, window)

NODES = 10


def plan(flows, precision=1000, seed=1):
    """(rules, edges, precision rules for the checker, {root job id: shape}) — job ids are the
    1-based positions in `rules` (fire.Instance inserts them in order into a fresh store)."""
    rng = random.Random(seed)
    rules, edges, checked, shapes = [], [], {}, {}
    for i in range(precision):
        s = rng.randrange(60)
        rules.append(f"{s} * * * * *")
        checked[i + 1] = ((lambda x: lambda v: v == x)(s), None)
    for f in range(flows):
        root = len(rules) + 1
        rules.append(f"{rng.randrange(60)} * * * * *")
        ids = [root + k for k in range(1, NODES)]
        rules.extend([""] * (NODES - 1))
        if f % 2 == 0:
            chain = [root] + ids
            edges.extend((chain[k + 1], chain[k]) for k in range(NODES - 1))
            shapes[root] = "chain"
        else:
            edges.extend((d, root) for d in ids[:-1])
            edges.extend((ids[-1], d) for d in ids[:-1])
            shapes[root] = "fan-in"
    return rules, edges, checked, shapes


def add_edges(inst, edges):
    con = sqlite3.connect(inst.db)
    now = int(time.time() * 1000)
    con.executemany("INSERT INTO job_edges (job_id, upstream_id, on_kind, created_at) "
                    "VALUES (?, ?, 'success', ?)", [(j, u, now) for j, u in edges])
    con.commit()
    con.close()


def flow_figures(inst, edges, shapes, t0, t1):
    con = sqlite3.connect(inst.db)
    roots = con.execute(
        "SELECT job_id, instant, ended_at, state FROM runs WHERE flow_root = 0 AND instant >= ? "
        "AND instant < ? AND job_id IN (SELECT upstream_id FROM job_edges)", (t0, t1)).fetchall()
    members = con.execute(
        "SELECT job_id, flow_root, instant, started_at, ended_at, state FROM runs "
        "WHERE flow_root <> 0 AND instant >= ? AND instant < ?", (t0, t1)).fetchall()
    con.close()
    ups = {}
    for j, u in edges:
        ups.setdefault(j, []).append(u)
    ended = {(j, t): e for j, t, e, _ in roots}
    count = {}
    for j, root, t, _s, e, _st in members:
        ended[(j, t)] = e
        count[(root, t, j)] = count.get((root, t, j), 0) + 1
    late, by_shape = [], {"chain": [], "fan-in": []}
    for j, root, t, started, _e, state in members:
        if started is None:
            continue
        last = max((ended.get((u, t)) or 0) for u in ups.get(j, []))
        if last:
            late.append(started - last)
            by_shape[shapes[root]].append(started - last)
    doubled = sum(1 for n in count.values() if n > 1)
    expected = len([r for r in roots if r[3] == "succeeded"]) * (NODES - 1)
    got = len({k for k in count})
    not_ok = sum(1 for m in members if m[5] != "succeeded")
    spans = {}
    for j, root, t, s, e, _ in members:
        spans.setdefault((root, t), []).append(e or 0)
    flow_ms = [max(v) - t for (root, t), v in spans.items()]
    return {
        "flows": len(roots), "released": len(members), "expected": expected,
        "missing": expected - got, "doubled": doubled, "not_succeeded": not_ok,
        "p50": pct(late, 50), "p99": pct(late, 99), "max": max(late) if late else float("nan"),
        "chain_p99": pct(by_shape["chain"], 99), "fan_p99": pct(by_shape["fan-in"], 99),
        "flow_p50": pct(flow_ms, 50), "flow_p99": pct(flow_ms, 99),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--flows", type=int, default=1000)
    a = ap.parse_args()
    raw = raw_spawn_rate()
    out = [("raw: `sh -c true` spawn+reap, 2 in flight (xargs -P2), 3,000", f"{raw:.0f}/s", "")]
    rules, edges, checked, shapes = plan(a.flows)
    # Baseline: the precision jobs alone.
    base = Instance(a.bin, rules[:1000])
    try:
        _ready, t0, t1, stats = window(base, 60)
        r = analyse(base, second_rule_instants(checked, t0, t1), t0, t1)
    finally:
        base.close()
    b50, b99 = spawn_order_bound(r["rows"], raw)
    out.append(("precision alone: 1,000 jobs/min, seconds random, 60 s",
                f"lateness p50 {r['p50']} ms, p99 {r['p99']} ms (spawn-order bound p99 {b99} ms); "
                f"doubled {r['doubled']}, missed {r['missed']}", fmt_stats(stats)))
    # The same number of runs a minute as the flows make, as plain scheduled jobs: what the
    # runs themselves cost the unrelated jobs, apart from releasing them.
    rng = random.Random(2)
    plain = rules[:1000] + [f"{rng.randrange(60)} * * * * *" for _ in range(a.flows * NODES)]
    volume = Instance(a.bin, plain)
    try:
        _ready, t0, t1, stats = window(volume, 60)
        r = analyse(volume, second_rule_instants(checked, t0, t1) | {
            k for k in second_rule_instants(
                {i + 1: ((lambda x: lambda v: v == x)(int(rule.split()[0])), None)
                 for i, rule in enumerate(plain)}, t0, t1)}, t0, t1)
        mine = [row for row in r["rows"] if row[0] <= 1000]
        late = [s - t for _, t, s, _, _ in mine if s is not None]
    finally:
        volume.close()
    out.append((f"precision beside {a.flows * NODES:,} plain jobs a minute (the flows' run count), "
                "60 s",
                f"lateness of the 1,000: p50 {pct(late, 50)} ms, p99 {pct(late, 99)} ms; all "
                f"{r['runs']} runs: doubled {r['doubled']}, missed {r['missed']}",
                fmt_stats(stats)))
    inst = Instance(a.bin, rules)
    try:
        add_edges(inst, edges)
        ready = inst.up()
        t0 = (int(time.time()) + 2) * 1000
        time.sleep(max(0, t0 / 1000 - time.time()) + 60)
        t1 = t0 + 60_000
        time.sleep(20)  # the flows of the window's last roots end
        stats = inst.stats()
        inst.down()
        r = analyse(inst, second_rule_instants(checked, t0, t1), t0, t1)
        fl = flow_figures(inst, edges, shapes, t0, t1)
    finally:
        inst.close()
    mine = [row for row in r["rows"] if row[0] <= 1000]
    late = [s - t for _, t, s, _, _ in mine if s is not None]
    out.append((f"precision beside {a.flows:,} flows of {NODES} jobs, 60 s",
                f"lateness of the 1,000: p50 {pct(late, 50)} ms, p99 {pct(late, 99)} ms; "
                f"doubled {r['doubled']}, missed {r['missed']}", fmt_stats(stats)))
    out.append((f"flows: {a.flows:,} flows of {NODES} jobs (half chains, half fan-ins of 8) "
                "started in one minute",
                f"{fl['flows']} flows, {fl['released']} released runs ({fl['expected']} expected); "
                f"upstream end -> dependent's process start p50 {fl['p50']} ms, p99 {fl['p99']} ms, "
                f"max {fl['max']} ms (chains p99 {fl['chain_p99']} ms, fan-ins p99 "
                f"{fl['fan_p99']} ms); whole flow from its instant p50 {fl['flow_p50']} ms, p99 "
                f"{fl['flow_p99']} ms; doubled {fl['doubled']}, missing {fl['missing']}, "
                f"not succeeded {fl['not_succeeded']}", ""))
    print(f"\n{time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, `scripts/bench/flow.sh`\n")
    print("| case | result | CPU / peak RSS per role |")
    print("|---|---|---|")
    for name, res, st in out:
        print(f"| {name} | {res} | {st} |")


if __name__ == "__main__":
    main()
