#!/usr/bin/env python3
"""Offline checks of deploy/kubernetes/ (run by tests/integration/kubernetes.rs):

- every document is valid against the Kubernetes schemas (kubernetes-validate, strict: no
  unknown field), for the oldest and the newest version it knows of those checked here;
- the ConfigMap's configs pass `cronvisor config check` with the Secret's variables and the
  values the pods get from the downward API;
- what the design needs holds: an executor's termination grace outlasts its drain timeout,
  every Deployment has a PodDisruptionBudget, probes are /readyz and /healthz, rolling updates
  never take a pod away before its replacement is ready.

Usage: check-kubernetes.py --bin target/debug/cronvisor [--dir deploy/kubernetes]
Prints one line per check; exits non-zero naming the first failure.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile
import tomllib

import kubernetes_validate
import yaml

VERSIONS = ["1.28.0", "1.32.0"]


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def seconds(text):
    """'30s', '5m', '1h' -> seconds (the forms the ConfigMap uses)."""
    units = {"s": 1, "m": 60, "h": 3600}
    return int(text[:-1]) * units[text[-1]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--dir", default="deploy/kubernetes")
    a = ap.parse_args()
    docs = []
    for path in sorted(glob.glob(os.path.join(a.dir, "*.yaml"))):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    docs.append((os.path.basename(path), doc))
    if not docs:
        fail(f"no manifests in {a.dir}")
    for name, doc in docs:
        for v in VERSIONS:
            try:
                kubernetes_validate.validate(doc, v, strict=True)
            except Exception as e:  # the library raises several kinds
                fail(f"{name}: {doc['kind']} {doc['metadata']['name']} invalid for {v}: {e}")
    print(f"ok: {len(docs)} documents valid for Kubernetes {', '.join(VERSIONS)} (strict)")

    by_kind = {}
    for _, doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    secret = by_kind["Secret"][0]["stringData"]
    config = by_kind["ConfigMap"][0]["data"]
    env = dict(os.environ, **secret, CRONVISOR_HOST="cronvisor-executor-0",
               CRONVISOR_ADVERTISE_RPC="10.0.0.5:7071")
    with tempfile.TemporaryDirectory() as d:
        for key, text in config.items():
            path = os.path.join(d, key)
            with open(path, "w") as f:
                f.write(text)
            out = subprocess.run([a.bin, "--config", path, "config", "check"], env=env,
                                 capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                fail(f"configmap {key}: cronvisor config check: {out.stderr.strip()}")
            print(f"ok: configmap {key} passes `cronvisor config check`")

    pdb_selectors = [p["spec"]["selector"]["matchLabels"] for p in by_kind["PodDisruptionBudget"]]
    for dep in by_kind["Deployment"]:
        name = dep["metadata"]["name"]
        spec = dep["spec"]
        if spec["selector"]["matchLabels"] not in pdb_selectors:
            fail(f"{name}: no PodDisruptionBudget selects it")
        if spec["strategy"]["rollingUpdate"]["maxUnavailable"] != 0:
            fail(f"{name}: a rolling update may remove a pod before its replacement is ready")
        pod = spec["template"]["spec"]
        for c in pod["containers"]:
            if c["readinessProbe"]["httpGet"]["path"] != "/readyz":
                fail(f"{name}: readiness is not /readyz")
            if c["livenessProbe"]["httpGet"]["path"] != "/healthz":
                fail(f"{name}: liveness is not /healthz")
            given = set()
            for ref in c.get("envFrom", []):
                if ref["secretRef"]["name"] != by_kind["Secret"][0]["metadata"]["name"]:
                    fail(f"{name}: envFrom names a Secret that is not shipped")
                given |= set(secret)
            for var in c.get("env", []):
                key = var.get("valueFrom", {}).get("secretKeyRef", {}).get("key")
                if key is not None and key not in secret:
                    fail(f"{name}: {var['name']} names a key the Secret does not have")
                if key is not None:
                    given.add(var["name"])
            runs_jobs = "executor" in c["args"][c["args"].index("--config") + 1]
            if runs_jobs and "CRONVISOR_TOKEN" in given:
                fail(f"{name}: the pods that run jobs are given the API's admin token")
            # The pod's config passes with the secrets this pod is given, and no others.
            own = {k: v for k, v in os.environ.items() if k not in secret}
            own.update({k: secret[k] for k in given if k in secret})
            own.update(CRONVISOR_HOST="pod-0", CRONVISOR_ADVERTISE_RPC="10.0.0.5:7071")
            with tempfile.TemporaryDirectory() as d:
                conf = c["args"][c["args"].index("--config") + 1].rsplit("/", 1)[1]
                path = os.path.join(d, conf)
                with open(path, "w") as f:
                    f.write(config[conf])
                out = subprocess.run([a.bin, "--config", path, "config", "check"], env=own,
                                     capture_output=True, text=True, timeout=60)
                if out.returncode != 0:
                    fail(f"{name}: {conf} fails with this pod's secrets only: {out.stderr.strip()}")
            toml_name = c["args"][c["args"].index("--config") + 1].rsplit("/", 1)[1]
            drain = tomllib.loads(config[toml_name])["supervisor"]["drain_timeout"]
            grace = pod["terminationGracePeriodSeconds"]
            if grace <= seconds(drain):
                fail(f"{name}: terminationGracePeriodSeconds {grace} does not outlast "
                     f"supervisor.drain_timeout {drain}: running jobs would be killed")
        print(f"ok: {name}: PDB, rolling update without loss, probes, grace > drain")
    print("all Kubernetes checks passed")


if __name__ == "__main__":
    main()
