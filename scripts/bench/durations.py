#!/usr/bin/env python3
"""The cost of learned durations (issue 27) at N jobs, standalone on SQLite: the monitor
checking N x R ended successes (where each job's usual band is learned, in the transaction
that counts each run), then idle for a while (its pass reading the runs running for `slow`).
With --baseline, the same on a build without the model, in the same invocation.

    python3 scripts/bench/durations.py --bin target/release/cronvisor \
        [--baseline <older build>] [--jobs 10000] [--runs 12] [--idle 20]
"""
import argparse
import os
import random
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from fire import Instance, proc_stats  # noqa: E402


def measure(binary, jobs, runs, idle):
    # Rules that never fire during the bench: the checking is measured, not firing.
    inst = Instance(binary, [f"{i % 60} {i // 60 % 60} 3 1 1 *" for i in range(jobs)])
    con = sqlite3.connect(inst.db)
    now = int(time.time() * 1000)
    rnd = random.Random(7)
    rows = []
    for j in range(1, jobs + 1):
        usual = rnd.randint(2_000, 600_000)
        for k in range(runs):
            instant = now - (runs - k) * 3_600_000
            # The last run of every 100th job is short: the short path is exercised too.
            took = usual // 20 if (j % 100 == 0 and k == runs - 1) else int(usual * rnd.uniform(0.9, 1.1))
            rows.append((j, instant, instant, instant + 5, instant + 5 + took))
    con.executemany(
        "INSERT INTO runs (job_id, instant, target, trigger_kind, state, executor, exit_code,"
        " alarm_checked, created_at, dispatched_at, started_at, ended_at)"
        " VALUES (?, ?, '', 'schedule', 'succeeded', 'bench/127.0.0.1:1/1', 0, 0, ?, ?, ?, ?)",
        [(j, i, c, c, s, e) for (j, i, c, s, e) in rows])
    con.commit()
    total = len(rows)
    try:
        inst.up()
        mon = inst.pids["monitor"]
        cpu0, _ = proc_stats(mon)
        t0 = time.monotonic()
        while True:
            left = con.execute("SELECT COUNT(*) FROM runs WHERE alarm_checked = 0").fetchone()[0]
            if left == 0:
                break
            if time.monotonic() - t0 > 600:
                raise RuntimeError(f"{left} runs still unchecked after 600 s")
            time.sleep(0.2)
        checked_s = time.monotonic() - t0
        cpu1, rss = proc_stats(mon)
        time.sleep(idle)
        cpu2, rss = proc_stats(mon)
        try:
            learned = con.execute(
                "SELECT COUNT(*) FROM job_stats WHERE usual_q3_ms IS NOT NULL").fetchone()[0]
            short = con.execute("SELECT COALESCE(SUM(sla_short), 0) FROM job_stats").fetchone()[0]
        except sqlite3.OperationalError:  # the baseline has no model
            learned, short = 0, 0
    finally:
        con.close()
        inst.close()
    return dict(total=total, checked_s=checked_s, check_cpu=cpu1 - cpu0,
                idle_cpu=cpu2 - cpu1, rss=rss, learned=learned, short=short)


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--bin", required=True)
    a.add_argument("--baseline")
    a.add_argument("--jobs", type=int, default=10_000)
    a.add_argument("--runs", type=int, default=12)
    a.add_argument("--idle", type=int, default=20)
    args = a.parse_args()
    builds = ([("before", args.baseline)] if args.baseline else []) + [("after", args.bin)]
    results = [(label, measure(b, args.jobs, args.runs, args.idle)) for label, b in builds]
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {args.jobs:,} jobs x "
          f"{args.runs} successes, idle {args.idle} s\n")
    print("| build | successes checked | wall | monitor CPU | per success | monitor CPU idle "
          f"{args.idle} s | peak RSS | bands learned | short breaches |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, r in results:
        print(f"| {label} | {r['total']:,} | {r['checked_s']:.1f} s | {r['check_cpu']:.1f} s | "
              f"{r['check_cpu'] / r['total'] * 1e6:.0f} µs | {r['idle_cpu']:.2f} s | "
              f"{r['rss']:.0f} MiB | {r['learned']:,} | {r['short']:,} |")


if __name__ == "__main__":
    main()
