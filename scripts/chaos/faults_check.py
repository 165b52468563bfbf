"""What the checker holds the alarms and the deliveries to, fault by fault (issue 28): each
fault alarmed once — not zero times, not twice, and nothing alarmed that no fault explains —
and no run failed undelivered while another executor that could take it was healthy.

The nemesis log gives each fault its true start and end (`at`, `until`, ms), its host (None
for a shared server) and the host's role pids when it began. Alarms are matched to faults by
host and time; their `created_at` is the raising monitor's clock, which the nemesis may have
stepped (up to 12 s), so the windows are wide."""
import json

# How long after a fault ends its alarm may still come: monitor.lost_after (6 s) plus a
# monitor pass, the heal's lag (the nemesis heals within 2 s), a host's restart, and the
# widest clock step.
LAG_MS = 30_000
SLACK_MS = 15_000

# The faults that can make a role process of their host look gone (silent past lost_after).
SILENCING = {"kill_role", "pause_role", "kill_supervisor", "kill_host", "cut_store",
             "cut_store_hang", "cut_store_long", "clock_step", "slow_link", "lossy_link"}
# Faults of a shared server: every host sees them.
SHARED = {"restart_etcd", "restart_redis", "restart_mariadb"}


def system_alarms(servers):
    """(id, kind, created_at, count, host, subject) of every system alarm, by id."""
    rows = servers.sql(
        "SELECT id, kind, created_at, count, details FROM cron.alarms WHERE job_id = 0 "
        "ORDER BY id").splitlines()
    out = []
    for line in rows:
        f = line.split("\t", 4)
        if len(f) < 5:
            continue
        try:
            d = json.loads(f[4].replace("\\\\", "\\"))
        except ValueError:
            d = {}
        out.append({"id": int(f[0]), "kind": f[1], "at": int(f[2]), "count": int(f[3]),
                    "host": d.get("host", ""), "subject": d.get("error", "")})
    return out


def lost_process(alarm):
    """(host, role, pid) named by an `<role>_lost` alarm: `<role> <instance> stopped ...`,
    the instance `host/address/pid` (executors) or `host/pid/start` (the others)."""
    role = alarm["kind"][: -len("_lost")]
    words = alarm["subject"].split()
    if len(words) < 2:
        return None
    parts = words[1].rsplit("/", 2)
    if len(parts) != 3:
        return None
    pid = parts[2] if role == "executor" else parts[1]
    return parts[0], role, int(pid) if pid.isdigit() else 0


def near(fault, at, before=5_000, after=LAG_MS):
    return fault["at"] - before <= at <= fault["until"] + after


def check_alarms(servers, faults, t1, anomaly):
    """Returns the system alarms by kind (with merged repeats counted)."""
    alarms = system_alarms(servers)
    by_kind = {}
    for a in alarms:
        by_kind[a["kind"]] = by_kind.get(a["kind"], 0) + a["count"]
    lost = [a for a in alarms if a["kind"].endswith("_lost")]
    # Each process gone: alarmed once per fault that silenced it, never unexplained.
    per_process = {}
    for a in lost:
        who = lost_process(a)
        if who is None:
            anomaly("alarm_unwanted", f"{a['kind']}: cannot read {a['subject']!r}")
            continue
        per_process.setdefault(who, []).append(a)
    for (host, role, pid), found in per_process.items():
        total = sum(a["count"] for a in found)
        causes = [f for f in faults if (f["kind"] in SILENCING and f["host"] == host
                                        and any(near(f, a["at"], SLACK_MS) for a in found))
                  or (f["kind"] in SHARED and any(near(f, a["at"], SLACK_MS) for a in found))]
        if not causes:
            anomaly("alarm_unwanted", f"{role} {host} pid {pid} alarmed lost at "
                    f"{found[0]['at']} with no fault of its host near")
        elif total > len(causes):
            anomaly("alarm_twice", f"{role} {host} pid {pid}: {total} alarms for "
                    f"{len(causes)} fault(s)")
    # A role killed (alone on its host at the time) is alarmed lost.
    for f in faults:
        if f["kind"] not in ("kill_role", "kill_host", "kill_supervisor") or f["at"] > t1:
            continue
        others = [g for g in faults if g is not f and g.get("host") == f["host"]
                  and g["kind"] in SILENCING and g["at"] - 10_000 <= f["at"] <= g["until"] + 10_000]
        if others:
            continue
        for role, pid in f["pids"].items():
            if (f["host"], role, pid) not in per_process:
                anomaly("alarm_missing", f"{f['kind']} {f['what']}: no {role}_lost for pid {pid}")
    check_clock_alarms(alarms, faults, t1, anomaly)
    check_store_alarms(alarms, faults, t1, anomaly)
    # A shared dependency's outages alternate down / back (one alarm per event), and one
    # restarted for long enough is alarmed.
    dep_state = {}
    for a in alarms:
        if a["kind"] in ("dependency_down", "dependency_back"):
            dep = a["subject"].split()[0] if a["subject"] else "?"
            if dep_state.get(dep) == a["kind"] or a["count"] > 1:
                anomaly("alarm_twice", f"{a['kind']} twice in a row for {dep}: {a['subject']}")
            dep_state[dep] = a["kind"]
    for f in faults:
        dep = {"restart_etcd": "etcd", "restart_redis": "redis"}.get(f["kind"])
        if dep and f["until"] - f["at"] >= 5_000 and f["until"] < t1:
            # Alarmed near it, or already down when it began: an outage that another fault
            # had opened (a host cut from it just before) and that this one prolonged is one
            # outage, alarmed once (seed 32).
            if not any(a["kind"] == "dependency_down" and a["subject"].startswith(dep)
                       and near(f, a["at"]) for a in alarms) \
                    and not dependency_down_at(alarms, dep, f["at"]):
                anomaly("alarm_missing", f"{f['kind']} {f['what']}: no dependency_down")
    return by_kind


def dependency_down_at(alarms, dep, at):
    """Whether `dep`'s last alarm before `at` says it is down."""
    last = None
    for a in alarms:
        if a["at"] <= at and a["kind"] in ("dependency_down", "dependency_back") \
                and a["subject"].startswith(dep):
            last = a["kind"]
    return last == "dependency_down"


def check_clock_alarms(alarms, faults, t1, anomaly):
    """A host's clock stepped (3 s or more, held 5 s or more, nothing else on that host) is
    alarmed `clock_skew`; every `clock_skew` is explained by a step of its host; per host the
    alarms alternate skew / back."""
    state = {}
    for a in alarms:
        if a["kind"] not in ("clock_skew", "clock_back"):
            continue
        host = a["subject"].split("'s clock")[0]
        if state.get(host) == a["kind"] or a["count"] > 1:
            anomaly("alarm_twice", f"{a['kind']} twice in a row for {host}")
        state[host] = a["kind"]
        if a["kind"] == "clock_skew" and not any(
                f["kind"] == "clock_step" and f["host"] == host and near(f, a["at"], SLACK_MS)
                for f in faults):
            anomaly("alarm_unwanted", f"clock_skew of {host} with no step near: {a['subject']}")
    for f in faults:
        if f["kind"] != "clock_step" or f["until"] - f["at"] < 5_000 or f["until"] > t1:
            continue
        others = [g for g in faults if g is not f and g.get("host") == f["host"]
                  and g["at"] - 10_000 <= f["until"] and f["at"] <= g["until"] + 10_000
                  and g["kind"] in SILENCING | {"reload", "upgrade"}]
        shared = [g for g in faults if g["kind"] == "restart_mariadb"
                  and g["at"] <= f["until"] and f["at"] <= g["until"]]
        if others or shared:
            continue
        if not any(a["kind"] == "clock_skew" and a["subject"].startswith(f["host"] + "'s")
                   and near(f, a["at"], SLACK_MS) for a in alarms):
            anomaly("alarm_missing", f"clock_step {f['what']}: no clock_skew")


def check_store_alarms(alarms, faults, t1, anomaly):
    """The store's outage: each restart of MariaDB has its `store_back`; a `store_down` is
    explained by a restart or by its own host cut from the store, and one restart has one
    `store_down` unless Redis (where the monitors agree) was faulted too."""
    downs = [a for a in alarms if a["kind"] == "store_down"]
    for a in downs:
        if not any((f["kind"] == "restart_mariadb" or (f["kind"].startswith("cut_store")
                    and f["host"] == a["host"]) or (f["kind"] in ("slow_link", "lossy_link")
                                                     and f["host"] == a["host"]))
                   and near(f, a["at"], SLACK_MS) for f in faults):
            anomaly("alarm_unwanted", f"store_down from {a['host']} with no store fault near")
    for f in faults:
        if f["kind"] != "restart_mariadb" or f["until"] > t1:
            continue
        backs = [a for a in alarms if a["kind"] == "store_back" and near(f, a["at"])]
        if not backs:
            anomaly("alarm_missing", f"restart_mariadb {f['what']}: no store_back")
        mine = [a for a in downs if near(f, a["at"], 2_000, SLACK_MS)]
        redis_hurt = any(g["kind"] in ("restart_redis", "cut_redis", "slow_link", "lossy_link",
                                       "pause_role", "kill_host", "kill_supervisor", "kill_role")
                         and g["at"] - 10_000 <= f["until"] and f["at"] <= g["until"] + 10_000
                         for g in faults)
        if len(mine) > 1 and not redis_hurt:
            anomaly("alarm_twice", f"restart_mariadb {f['what']}: {len(mine)} store_down")


def host_of(instance):
    parts = (instance or "").rsplit("/", 2)
    return parts[0] if len(parts) == 3 else ""


def check_undelivered(all_runs, faults, hosts, anomaly):
    """No run failed undelivered while an executor that could take it was healthy: a run
    `failed: no executor took the run` is excused only by a shared server's fault near its
    instant, a fault of the dispatcher's own host, or every candidate host faulted (for a
    `fanout = all` run, its target host). Returns how many were excused."""
    excused = 0
    for r in all_runs:
        if r["state"] != "failed" or "no executor took the run" not in r["error"]:
            continue
        t = r["instant"]
        active = [f for f in faults if f["at"] - 5_000 <= t + 15_000
                  and t - 5_000 <= f["until"] + 10_000]
        if any(f["host"] is None for f in active):
            excused += 1
            continue
        hurt = {f["host"] for f in active}
        if host_of(r.get("fired_by", "")) in hurt:
            excused += 1
            continue
        candidates = {r["target"]} if r["job"] == "fanout" and r["target"] in hosts else set(hosts)
        if candidates - hurt:
            anomaly("undelivered_while_healthy",
                    f"{r['job']} run {r['id']} at {t}: {r['error'][:100]} (healthy: "
                    f"{sorted(candidates - hurt)})")
        else:
            excused += 1
    return excused
