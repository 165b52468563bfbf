#!/usr/bin/env python3
"""Backfill benchmark for cronvisor (see backfill.sh). Standard library only.

One job with the rule `0 * * * * *` backfilled over the 10,000 minutes before now (10,000
instants, `sh -c true` each) with --parallel 8, started through the CLI as a person would.
Measured from the store: how long until the backfill is done (throughput), that each instant
ran exactly once and never more than 8 at a time, and — in the first 60 s of the backfill —
the lateness of the 1,000 jobs of fire.py's precision case beside it, compared with the same
jobs in an instance without a backfill, run first in this invocation.
"""
import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fire import (Instance, analyse, fmt_stats, pct, raw_spawn_rate,  # noqa: E402
                  second_rule_instants, spawn_order_bound, window)


def precision_rules(seed=1):
    rng = random.Random(seed)
    rules, checked = [], {}
    for i in range(1000):
        s = rng.randrange(60)
        rules.append(f"{s} * * * * *")
        checked[i + 1] = ((lambda x: lambda v: v == x)(s), None)
    return rules, checked


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def backfill_figures(inst, backfill_id):
    con = sqlite3.connect(inst.db)
    row = con.execute("SELECT state, total, queued, skipped, created_at, ended_at FROM backfills "
                      "WHERE id = ?", (backfill_id,)).fetchone()
    runs = con.execute("SELECT instant, state, started_at, ended_at FROM runs "
                       "WHERE backfill_id = ?", (backfill_id,)).fetchall()
    con.close()
    per_instant = {}
    for instant, *_ in runs:
        per_instant[instant] = per_instant.get(instant, 0) + 1
    # Most at a time: a sweep over the runs' [start, end] spans.
    events = sorted([(s, 1) for _, _, s, e in runs if s and e] +
                    [(e, -1) for _, _, s, e in runs if s and e])
    at_once = most = 0
    for _, d in events:
        at_once += d
        most = max(most, at_once)
    state, total, queued, skipped, created, ended = row
    return {
        "state": state, "total": total, "queued": queued, "skipped": skipped,
        "seconds": (ended - created) / 1000 if ended else float("nan"),
        "runs": len(runs), "instants": len(per_instant),
        "doubled": sum(1 for n in per_instant.values() if n > 1),
        "not_succeeded": sum(1 for r in runs if r[1] != "succeeded"),
        "most_at_once": most,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--instants", type=int, default=10_000)
    ap.add_argument("--parallel", type=int, default=8)
    a = ap.parse_args()
    raw = raw_spawn_rate()
    out = [("raw: `sh -c true` spawn+reap, 2 in flight (xargs -P2), 3,000", f"{raw:.0f}/s", "")]
    rules, checked = precision_rules()
    base = Instance(a.bin, rules)
    try:
        _ready, t0, t1, stats = window(base, 60)
        r = analyse(base, second_rule_instants(checked, t0, t1), t0, t1)
    finally:
        base.close()
    b50, b99 = spawn_order_bound(r["rows"], raw)
    out.append(("precision alone: 1,000 jobs/min, seconds random, 60 s",
                f"lateness p50 {r['p50']} ms, p99 {r['p99']} ms (spawn-order bound p99 {b99} ms); "
                f"doubled {r['doubled']}, missed {r['missed']}", fmt_stats(stats)))
    inst = Instance(a.bin, rules + ["0 * * * * *"])
    bf_job = f"j{len(rules)}"
    try:
        inst.up()
        last = (int(time.time()) // 60 - 1) * 60_000
        first = last - (a.instants - 1) * 60_000
        started = time.monotonic()
        made = subprocess.run(
            [inst.binary, "--config", inst.config, "job", "backfill", bf_job, "--from", iso(first),
             "--to", iso(last), "--parallel", str(a.parallel), "--json"],
            check=True, capture_output=True, text=True, timeout=60)
        backfill_id = json.loads(made.stdout)["id"]
        t0 = (int(time.time()) + 1) * 1000
        time.sleep(max(0, t0 / 1000 - time.time()) + 60)
        t1 = t0 + 60_000
        stats = inst.stats()
        deadline = started + 900
        while time.monotonic() < deadline:
            con = sqlite3.connect(inst.db)
            state = con.execute("SELECT state FROM backfills WHERE id = ?",
                                (backfill_id,)).fetchone()[0]
            con.close()
            if state != "running":
                break
            time.sleep(0.5)
        time.sleep(2)
        inst.down()
        fig = backfill_figures(inst, backfill_id)
        rows = [row for row in inst.runs(t0, t1) if row[0] <= 1000]
        expected = second_rule_instants(checked, t0, t1)
        seen = {}
        for job_id, instant, *_ in rows:
            seen[(job_id, instant)] = seen.get((job_id, instant), 0) + 1
        late = [s - t for _, t, s, _, _ in rows if s is not None]
    finally:
        inst.close()
    out.append((f"precision beside a backfill of {a.instants:,} instants, --parallel {a.parallel}, "
                "its first 60 s",
                f"lateness of the 1,000: p50 {pct(late, 50)} ms, p99 {pct(late, 99)} ms; "
                f"doubled {sum(1 for n in seen.values() if n > 1)}, "
                f"missed {len(expected - set(seen))}", fmt_stats(stats)))
    out.append((f"backfill: {a.instants:,} instants of `0 * * * * *`, `sh -c true`, "
                f"--parallel {a.parallel}",
                f"{fig['state']} in {fig['seconds']:.1f} s ({fig['queued'] / fig['seconds']:.0f} "
                f"instants/s); {fig['instants']} instants run, doubled {fig['doubled']}, "
                f"missing {fig['total'] - fig['instants'] - fig['skipped']}, not succeeded "
                f"{fig['not_succeeded']}; most at once {fig['most_at_once']}", ""))
    print(f"\n{time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, `scripts/bench/backfill.sh`\n")
    print("| case | result | CPU / peak RSS per role |")
    print("|---|---|---|")
    for name, res, st in out:
        print(f"| {name} | {res} | {st} |")


if __name__ == "__main__":
    main()
