#!/usr/bin/env python3
"""What calendars cost where instants are computed (see calendars.sh). Standard library only.

Against one `cronvisor up` (release build): `GET /api/v1/next?count=10000` — the code `next`,
the job form's preview, the dispatcher's planning and backfills share — for the same rules
without calendars and with each mode, timed over 20 calls each, in this one invocation.
"""
import argparse
import json
import os
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fire import Instance  # noqa: E402

CASES = [
    ("0 0 9 * * *", "Asia/Shanghai", None, None),
    ("0 0 9 * * *", "Asia/Shanghai", "cn-workdays", "only"),
    ("0 0 9 * * *", "Asia/Shanghai", "cn-holidays", "skip"),
    ("0 0 9 1 * *", "Asia/Shanghai", "cn-workdays", "next-workday"),
    ("0 */5 * * * *", "UTC", None, None),
    ("0 */5 * * * *", "UTC", "us-holidays,de-holidays", "skip"),
    ("0 */5 * * * *", "UTC", "us-holidays", "next-workday"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--calls", type=int, default=20)
    a = ap.parse_args()
    inst = Instance(a.bin, [])
    rows = []
    try:
        inst.up()
        with open(os.path.join(inst.data, "endpoints.json")) as f:
            api = json.load(f)["api"]
        if not api.startswith("http"):
            api = "http://" + api
        with open(os.path.join(inst.data, "api.token")) as f:
            token = f.read().strip()
        for rule, tz, cals, mode in CASES:
            q = {"rule": rule, "tz": tz, "count": "10000", "from": "2020-01-01T00:00:00Z"}
            if cals:
                q.update({"calendars": cals, "calendar_mode": mode})
            url = f"{api}/api/v1/next?{urllib.parse.urlencode(q)}"
            req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
            times = []
            for _ in range(a.calls):
                t = time.perf_counter()
                with urllib.request.urlopen(req, timeout=60) as r:
                    got = json.load(r)
                times.append(time.perf_counter() - t)
            times.sort()
            med = times[len(times) // 2] * 1000
            n = len(got["instants"])
            rows.append((rule, tz, f"{cals} ({mode})" if cals else "none", n, med,
                         med * 1000 / max(n, 1)))
    finally:
        inst.close()
    print(f"\n{time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, "
          f"`python3 scripts/bench/calendars.py --bin <release build>`\n")
    print("| rule | zone | calendars | instants | median of 20 calls | per instant |")
    print("|---|---|---|---|---|---|")
    for rule, tz, cals, n, med, per in rows:
        print(f"| `{rule}` | {tz} | {cals} | {n:,} | {med:.1f} ms | {per:.2f} µs |")


if __name__ == "__main__":
    main()
