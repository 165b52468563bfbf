#!/usr/bin/env python3
"""Scrape time of the monitor's /metrics with N jobs (standalone, SQLite): with the API token
(per-job series) against without (the role's own series only), in the same invocation, and
a run counted per job so their rows are real.

    python3 scripts/bench/metrics.py --bin target/release/cronvisor [--jobs 10000] [--scrapes 20]
"""
import argparse
import json
import os
import sqlite3
import statistics
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from fire import Instance  # noqa: E402


def scrape(url, token):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    t0 = time.monotonic()
    with urllib.request.urlopen(req, timeout=60) as r:
        body = r.read()
    return (time.monotonic() - t0) * 1000, len(body)


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--bin", required=True)
    a.add_argument("--jobs", type=int, default=10_000)
    a.add_argument("--scrapes", type=int, default=20)
    args = a.parse_args()
    # Rules that do not fire during the bench: the scrape is measured, not the firing.
    inst = Instance(args.bin, [f"{i % 60} {i // 60 % 60} 3 * * *" for i in range(args.jobs)])
    con = sqlite3.connect(inst.db)
    now = int(time.time() * 1000)
    con.executemany(
        "INSERT INTO job_stats (job_id, succeeded, failed, last_success_at, last_end_at, d2, "
        "duration_ms_sum) VALUES (?, 10, 1, ?, ?, 11, 33000)",
        [(i + 1, now, now) for i in range(args.jobs)])
    con.commit()
    con.close()
    try:
        inst.up()
        with open(os.path.join(inst.data, "endpoints.json")) as f:
            url = f"http://{json.load(f)['api']}/metrics"
        with open(os.path.join(inst.data, "api.token")) as f:
            token = f.read().strip()
        rows = []
        for label, tok in (("without token (role series)", None), ("with token (per-job series)", token)):
            scrape(url, tok)  # warm
            times, size = [], 0
            for _ in range(args.scrapes):
                ms, size = scrape(url, tok)
                times.append(ms)
            rows.append((label, statistics.median(times), max(times), size))
    finally:
        inst.close()
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {args.jobs:,} jobs, "
          f"{args.scrapes} scrapes each\n")
    print("| scrape | p50 ms | max ms | bytes |\n|---|---|---|---|")
    for label, p50, mx, size in rows:
        print(f"| {label} | {p50:.1f} | {mx:.1f} | {size:,} |")


if __name__ == "__main__":
    main()
