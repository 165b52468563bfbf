#!/usr/bin/env python3
"""The API as a contract (run by tests/integration/openapi.rs):

- `/api/v1/openapi.json` is served without a token and is a valid OpenAPI document
  (openapi-spec-validator);
- schemathesis fuzzes every operation of the running API with the install's token, a bounded
  number of examples each, and checks every answer: no 5xx, a status the document lists for
  the operation, the documented content type and body — every error the
  `{"error": {"field", "message"}}` shape — and a request the document calls invalid refused.

The API runs alone (`roles = ["monitor"]`, SQLite in a temp dir): the jobs the fuzzer adds are
stored and listed but never fired, so nothing it makes up is run as a command. A job, a run,
a user and a token are made first, so that the operations on one (`/jobs/{job}`, ...) reach
past their 404.

Usage: check-openapi.py --bin target/debug/cronvisor [--examples N] [--seed S]
Prints schemathesis's report; exits non-zero on the first failure.
"""
import argparse
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

from openapi_spec_validator import validate

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "bench"))
from fire import Instance  # noqa: E402

CHECKS = ",".join([
    "negative_data_rejection",
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def call(base, method, path, token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def seed(base, token):
    """What the operations on one thing need: a job with a run, a user, a token."""
    status, job = call(base, "POST", "/api/v1/jobs", token,
                       {"name": "fuzz-job", "schedule": "@daily", "command": "true"})
    if status != 201:
        fail(f"cannot add the seed job: {status} {job}")
    status, run = call(base, "POST", "/api/v1/jobs/fuzz-job/run", token)
    if status != 202:
        fail(f"cannot request the seed run: {status} {run}")
    status, user = call(base, "POST", "/api/v1/users", token,
                        {"name": "fuzz-user", "role": "viewer", "password": "fuzz-password"})
    if status != 201:
        fail(f"cannot add the seed user: {status} {user}")
    status, tok = call(base, "POST", "/api/v1/tokens", token,
                       {"name": "fuzz-token", "role": "viewer"})
    if status != 201:
        fail(f"cannot create the seed token: {status} {tok}")
    return run["run_id"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--examples", type=int, default=25)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    # The bench's instance: a temp dir, ports the kernel picks, ready from `up`'s status.
    inst = Instance(a.bin, [], top_config='roles = ["monitor"]\n')
    try:
        inst.up()
        with open(os.path.join(inst.data, "endpoints.json")) as f:
            base = f"http://{json.load(f)['api']}"
        with urllib.request.urlopen(base + "/api/v1/openapi.json", timeout=10) as r:
            doc = json.loads(r.read())
        validate(doc)
        print(f"openapi: {doc['openapi']} document valid, "
              f"{sum(len(v) for v in doc['paths'].values())} operations")
        with open(os.path.join(inst.data, "api.token")) as f:
            token = f.read().strip()
        run_id = seed(base, token)
        config = os.path.join(inst.dir, "schemathesis.toml")
        with open(config, "w") as f:
            f.write(f'[parameters]\njob = "fuzz-job"\nid = {run_id}\n'
                    '[[operations]]\ninclude-path-regex = "^/api/v1/users/"\n'
                    'parameters = { name = "fuzz-user" }\n'
                    '[[operations]]\ninclude-path-regex = "^/api/v1/tokens/"\n'
                    'parameters = { name = "fuzz-token" }\n')
        cmd = ["schemathesis", "--config-file", config, "run",
               f"{base}/api/v1/openapi.json", "--checks", CHECKS,
               "--max-examples", str(a.examples), "--seed", str(a.seed),
               "-H", f"Authorization: Bearer {token}", "--no-color",
               "--request-timeout", "10"]
        # In the temp dir: schemathesis keeps a cache (`.schemathesis/`) where it runs.
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=inst.dir)
        print(result.stdout[-20000:])
        if result.returncode != 0:
            print(result.stderr[-5000:])
            fail(f"schemathesis found failures (exit {result.returncode})")
        if inst.proc.poll() is not None:
            fail(f"cronvisor up exited during the run; see {inst.log.name}")
    finally:
        inst.close()
    print("all OpenAPI checks passed")


if __name__ == "__main__":
    main()
