"""The chaos checker: the whole history of the window from the store and the jobs' execution
log, against what the schedule says should have happened."""
import os
import re
import subprocess
import sys

from faults_check import check_alarms, check_undelivered

FINAL = {"succeeded", "failed", "timed_out", "killed", "lost", "skipped", "missed"}


def instants(rule, t0, t1):
    """The instants (ms) of a seconds-first rule in [t0, t1): the rules the suite uses only
    restrict the seconds field (`*`, `*/N`, `S`)."""
    sec = rule.split()[0]
    if sec == "*":
        secs = set(range(60))
    elif sec.startswith("*/"):
        secs = set(range(0, 60, int(sec[2:])))
    else:
        secs = {int(sec)}
    out = []
    t = (t0 + 999) // 1000
    while t * 1000 < t1:
        if t % 60 in secs:
            out.append(t * 1000)
        t += 1
    return out


def covered_by(rec):
    """How many instants back a record accounts for: a `missed` record its count (`None`: as
    many as the gap), a `misfire` catch-up run the whole gap before it, any other record one."""
    if rec["state"] == "missed":
        m = re.match(r"missed: (about )?(\d+) instant", rec["error"])
        if m and not m.group(1):
            return int(m.group(2))
        return None
    if rec["trigger"] == "misfire":
        return None
    return 1


def runs(servers):
    rows = servers.sql(
        "SELECT r.id, j.name, r.instant, r.target, r.state, r.trigger_kind, r.attempt, "
        "COALESCE(r.retry_of, 0), REPLACE(REPLACE(COALESCE(r.error, ''), '\\t', ' '), '\\n', ' '), "
        "COALESCE(r.started_at, 0), COALESCE(r.ended_at, 0), COALESCE(f.name, ''), "
        "r.flow_round, COALESCE(r.flow_run, 0), COALESCE(r.backfill_id, 0), "
        "COALESCE(r.fired_by, '') "
        "FROM cron.runs r JOIN cron.jobs j ON j.id = r.job_id "
        "LEFT JOIN cron.jobs f ON f.id = r.flow_root ORDER BY r.id").splitlines()
    out = []
    for line in rows:
        f = line.split("\t")
        out.append({"id": int(f[0]), "job": f[1], "instant": int(f[2]), "target": f[3],
                    "state": f[4], "trigger": f[5], "attempt": int(f[6]),
                    "retry_of": int(f[7]), "error": f[8], "started_at": int(f[9]),
                    "ended_at": int(f[10]), "flow_root": f[11], "flow_round": int(f[12]),
                    "flow_run": int(f[13]), "backfill": int(f[14]), "fired_by": f[15]})
    return out


def check_backfill(servers, all_runs, backfill, anomaly):
    """The backfill started under the faults, `(name, first instant, last instant, step)`: it
    ended `done`, and each instant of its range has exactly one first attempt of it (retries of
    a failed one aside), none outside the range. Returns how many instants were checked."""
    if not backfill:
        return 0
    name, first, last, step = backfill
    row = servers.sql(
        "SELECT b.id, b.state, b.total, b.queued, b.skipped FROM cron.backfills b "
        f"JOIN cron.jobs j ON j.id = b.job_id WHERE j.name = '{name}'").split()
    if not row:
        anomaly("backfill_missing", f"no backfill of {name}")
        return 0
    bid, state = int(row[0]), row[1]
    if state != "done":
        anomaly("backfill_unfinished", f"backfill {bid} is {state}: {row}")
    mine = [r for r in all_runs if r["backfill"] == bid]
    by_instant = {}
    for r in mine:
        if r["retry_of"] == 0:
            by_instant.setdefault(r["instant"], []).append(r["id"])
    wanted = set(range(first, last + 1, step))
    for t, ids in by_instant.items():
        if t not in wanted:
            anomaly("backfill_extra", f"{name} at {t}: runs {ids}")
        if len(ids) > 1:
            anomaly("backfill_doubled", f"{name} at {t}: runs {ids}")
    for t in sorted(wanted - set(by_instant)):
        anomaly("backfill_missing", f"{name} at {t}: no run of backfill {bid}")
    return len(wanted)


def execlog(path):
    """run id -> {"starts": [ms], "ends": [ms], "job": name}."""
    out = {}
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) not in (5, 6):
                continue
            kind, job, run_id, _attempt, at = p[:5]
            e = out.setdefault(int(run_id), {"job": job, "starts": [], "ends": [], "rc": None})
            e["starts" if kind == "S" else "ends"].append(int(at))
            if kind == "E" and len(p) == 6:
                e["rc"] = int(p[5])
    return out


def latest(recs):
    """The record that counts of a job in a flow: its latest attempt."""
    return max(recs, key=lambda r: (r["attempt"], r["id"])) if recs else None


FAILED = {"failed", "timed_out", "killed", "lost"}


def check_flows(all_runs, flow, t0, t1, anomaly, presumed):
    """Each flow of the root whose first run ended in the window: every job of it has exactly
    one record (first attempt, round 0), with the root's instant and first run, decided as its
    edges say. A decision made while an upstream was presumed lost, whose real end came later
    (the record then says so), is reported in `presumed`, not as an anomaly: the same limit as
    `forbid` across a partition. Returns how many flows were checked."""
    if not flow:
        return 0
    root_name = flow[0][1]
    after = {name: [e.split(":") for e in up.split(",")] for name, up, _ in flow}
    roots = [r for r in all_runs if r["job"] == root_name and r["flow_root"] == ""
             and r["attempt"] == 1 and t0 <= r["instant"] < t1 and r["state"] in FINAL]
    members = {}
    for r in all_runs:
        if r["flow_root"] == root_name and r["flow_round"] == 0:
            members.setdefault((r["instant"], r["job"]), []).append(r)
    for root in roots:
        t = root["instant"]
        outcome = {root_name: latest([r for r in all_runs if r["job"] == root_name
                                      and r["flow_root"] == "" and r["instant"] == t])}
        for name, _up, _ in flow:
            recs = members.get((t, name), [])
            firsts = [r for r in recs if r["attempt"] == 1]
            if not firsts:
                anomaly("flow_missing", f"{name} in the flow of {root_name} run {root['id']}")
                continue
            if len(firsts) > 1:
                anomaly("flow_doubled", f"{name} in the flow of run {root['id']}: "
                        f"{[r['id'] for r in firsts]}")
            for r in recs:
                if r["flow_run"] != root["id"]:
                    anomaly("flow_mixed", f"{name} run {r['id']} names flow run {r['flow_run']}, "
                            f"not {root['id']}")
            outcome[name] = latest(recs)
        # Each decision as its edges say, from its upstreams' last attempts.
        for name, _up, _ in flow:
            me = outcome.get(name)
            if me is None or me["state"] not in FINAL:
                continue
            ran = me["state"] != "skipped"
            should = True
            for up, *on in after[name]:
                u = outcome.get(up)
                edge = on[0] if on else "success"
                if u is None or u["state"] not in FINAL:
                    should = None
                    break
                if "presumed lost" in u["error"]:
                    presumed.append(f"{name} run {me['id']} ({me['state']}) after {up} run "
                                    f"{u['id']}, lost then {u['state']}")
                    should = None
                    break
                if u["state"] in ("skipped", "missed"):
                    should = False
                elif edge == "success":
                    should = should and u["state"] == "succeeded"
                elif edge == "failure":
                    should = should and u["state"] in FAILED
            if should is not None and ran != should:
                anomaly("flow_decision", f"{name} run {me['id']} ({me['state']}) in the flow "
                        f"of run {root['id']}: should {'run' if should else 'be skipped'}")
    return len(roots)


def check(servers, jobs, log_path, tmp, t0, t1, flow=(), backfill=None, faults=()):
    anomalies = []

    def anomaly(kind, detail):
        anomalies.append((kind, detail))

    all_runs = runs(servers)
    flow_presumed = []
    flows_checked = check_flows(all_runs, list(flow), t0, t1, anomaly, flow_presumed)
    backfilled = check_backfill(servers, all_runs, backfill, anomaly)
    executed = execlog(log_path)
    checked = 0
    for name, rule, _cmd, extra in jobs:
        fanout = "all" in extra and "--fanout" in extra
        first = [r for r in all_runs if r["job"] == name and r["retry_of"] == 0
                 and r["trigger"] in ("schedule", "misfire")]
        expected = instants(rule, t0, t1)
        expected_set = set(expected)
        checked += len(expected)
        by_instant = {}
        for r in first:
            by_instant.setdefault(r["instant"], []).append(r)
        # No record for an instant the schedule does not have.
        for r in first:
            if t0 <= r["instant"] < t1 and r["instant"] not in expected_set:
                anomaly("extra_instant", f"{name} run {r['id']} at {r['instant']}")
        # Exactly one record per (instant, target).
        for t, recs in by_instant.items():
            targets = [r["target"] for r in recs]
            if len(targets) != len(set(targets)) or (not fanout and len(recs) > 1):
                anomaly("doubled", f"{name} at {t}: runs {[r['id'] for r in recs]}")
        # Every instant: its record, or covered by the misfire record after it.
        recorded = sorted(by_instant)
        for t in expected:
            if t in by_instant:
                continue
            later = [x for x in recorded if x > t]
            if not later:
                anomaly("missing", f"{name} at {t}: no record at or after it")
                continue
            nxt = later[0]
            # A `missed` record of N covers the N instants up to and including its own.
            span = len(instants(rule, t, nxt + 1))
            covers = [covered_by(r) for r in by_instant[nxt]]
            if not any(c is None or c >= span for c in covers):
                anomaly("missing", f"{name} at {t}: next record {nxt} covers {covers}, span {span}")
    # Final states only, once everything settled.
    for r in all_runs:
        if r["instant"] < t1 and r["state"] not in FINAL:
            anomaly("not_final", f"{r['job']} run {r['id']} {r['state']}")
    # What really ran: each run at most once; a forbid job never twice at once.
    for run_id, e in executed.items():
        if len(e["starts"]) > 1:
            anomaly("executed_twice", f"{e['job']} run {run_id} started {len(e['starts'])} times")
    # An instant whose job ran to success is never run again (by a retry of a run presumed
    # lost, say): a doubled payroll cannot be undone.
    by_id = {r["id"]: r for r in all_runs}
    per_instant = {}
    for rid, e in executed.items():
        run = by_id.get(rid)
        if run and e["starts"]:
            key = (run["job"], run["instant"], run["target"])
            per_instant.setdefault(key, []).append((min(e["starts"]), e["rc"], rid))
    for key, execs in per_instant.items():
        execs.sort()
        for (s1, rc1, r1), (s2, _rc2, r2) in zip(execs, execs[1:]):
            if rc1 == 0:
                anomaly("ran_again_after_success",
                        f"{key[0]} at {key[1]}: run {r1} succeeded, run {r2} ran it again")
    forbid = sorted((min(e["starts"]), max(e["ends"]) if e["ends"] else None, rid)
                    for rid, e in executed.items() if e["job"] == "forbid" and e["starts"])
    presumed = []
    for (s1, e1, r1), (s2, _e2, r2) in zip(forbid, forbid[1:]):
        end1 = e1 or (by_id.get(r1, {}).get("ended_at") or None)
        if end1 is not None and s2 < end1:
            first = by_id.get(r1, {})
            detail = (f"forbid runs {r1} and {r2} ran at once ({end1 - s2} ms); "
                      f"{r1} is {first.get('state')}: {first.get('error', '')[:80]}")
            # The first was presumed lost (its executor silent past lost_after) while it went
            # on: its executor was paused (SIGSTOP), so its fence could not stop it in time —
            # it stops it when it resumes ("could not reach the store for nearly ..."). The
            # documented limit of `forbid`: no fence acts in a stopped process.
            err = first.get("error", "")
            if ("presumed lost" in err or first.get("state") == "lost"
                    or "could not reach the store for nearly" in err):
                presumed.append(detail)
            else:
                anomaly("overlap", detail)
    # Lost runs whose process really ended (its executor was paused or cut off past
    # lost_after): reported, as the system chose to presume that executor gone.
    ran_but_lost = [rid for rid, e in executed.items()
                    if e["ends"] and by_id.get(rid, {}).get("state") == "lost"]
    # No job process outlives its run: a process of the suite still going whose run is
    # recorded final is a leftover (its executor died and nothing stopped its group).
    pids = subprocess.run(["pgrep", "-f", f"{tmp}/exec.log"], capture_output=True,
                          text=True).stdout.split()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        except OSError:
            continue
        rid = int(env.get(b"CRONVISOR_RUN_ID", b"0") or 0)
        run = by_id.get(rid)
        if run and run["state"] in FINAL:
            anomaly("leftover_process", f"pid {pid} of run {rid} ({run['job']}, {run['state']})")
    # Each fault's alarm once, nothing alarmed that no fault explains; no run failed
    # undelivered while an executor that could take it was healthy (faults_check.py).
    system = check_alarms(servers, list(faults), t1, anomaly)
    undelivered_excused = check_undelivered(all_runs, list(faults), ["h1", "h2", "h3"], anomaly)
    states, reasons = {}, {}
    for r in all_runs:
        if t0 <= r["instant"] < t1:
            states[r["state"]] = states.get(r["state"], 0) + 1
            if r["state"] not in ("succeeded", "skipped"):
                why = re.sub(r"\d+", "N", r["error"])[:90]
                key = f"{r['state']}: {why}"
                reasons[key] = reasons.get(key, 0) + 1
    return {"anomalies": anomalies, "instants": checked, "states": states,
            "ran_but_lost": len(ran_but_lost), "executed": len(executed), "reasons": reasons,
            "overlap_presumed_lost": presumed, "system_alarms": system,
            "undelivered_excused": undelivered_excused,
            "flows": flows_checked, "flow_presumed": flow_presumed,
            "backfilled": backfilled}


def print_report(result, seed, minutes):
    faults = result["faults"]
    print(f"\nchaos run: seed {seed}, {minutes} min of faults\n")
    print("| fault | injected |\n|---|---|")
    for k in sorted(faults):
        print(f"| {k} | {faults[k]} |")
    print(f"\ninstants checked: {result['instants']}; runs executed: {result['executed']}; "
          f"records by state: {result['states']}; lost though their process ended: "
          f"{result['ran_but_lost']}; forbid runs beside one presumed lost (not an anomaly: "
          f"the documented limit across a partition): {len(result['overlap_presumed_lost'])}; "
          f"flows checked: {result.get('flows', 0)}; flow decisions made on an upstream "
          f"presumed lost that ended after all: {len(result.get('flow_presumed', []))}; "
          f"backfill instants checked: {result.get('backfilled', 0)}; runs failed undelivered "
          f"with every candidate (or their dispatcher) under a fault: "
          f"{result.get('undelivered_excused', 0)}\n")
    print("| system alarm | raised |\n|---|---|")
    for k, n in sorted(result["system_alarms"].items()):
        print(f"| {k} | {n} |")
    print()
    print("| outcome other than success | count |\n|---|---|")
    for k, n in sorted(result["reasons"].items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {n} |")
    print()
    kinds = {}
    for kind, _ in result["anomalies"]:
        kinds[kind] = kinds.get(kind, 0) + 1
    print("| anomaly | count |\n|---|---|")
    for k in ("missing", "doubled", "extra_instant", "not_final", "executed_twice",
              "ran_again_after_success", "overlap", "leftover_process", "alarm_twice",
              "alarm_missing", "alarm_unwanted", "undelivered_while_healthy",
              "flow_missing", "flow_doubled", "flow_mixed", "flow_decision",
              "backfill_missing", "backfill_doubled", "backfill_extra", "backfill_unfinished"):
        print(f"| {k} | {kinds.get(k, 0)} |")
    for kind, detail in result["anomalies"][:50]:
        print(f"  {kind}: {detail}", file=sys.stderr)
