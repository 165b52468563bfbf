#!/usr/bin/env python3
"""The API as a contract (run by tests/integration/openapi.rs):

- `/api/v1/openapi.json` is served without a token and is a valid OpenAPI document
  (openapi-spec-validator);
- schemathesis fuzzes every operation of the running API with the install's token, a bounded
  number of examples each, and checks every answer: no 5xx, a status the document lists for
  the operation, the documented content type and body — every error the
  `{"error": {"field", "message"}}` shape.

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
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from openapi_spec_validator import validate

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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def wait_ready(base, proc, log):
    """Until the document is served (the monitor answers), at most 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fail(f"cronvisor up exited ({proc.returncode}):\n{open(log).read()}")
        try:
            with urllib.request.urlopen(base + "/api/v1/openapi.json", timeout=2) as r:
                return json.loads(r.read())
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    fail(f"the API did not answer within 30 s:\n{open(log).read()}")


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
    binary = os.path.abspath(a.bin)
    with tempfile.TemporaryDirectory(prefix="cv-openapi-") as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        config = f"{tmp}/cronvisor.toml"
        with open(config, "w") as f:
            f.write(f'data_dir = "{tmp}/var"\nroles = ["monitor"]\n'
                    f'[listeners]\napi = "127.0.0.1:{port}"\n')
        log = f"{tmp}/up.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([binary, "up", "--config", config], stdout=out,
                                    stderr=subprocess.STDOUT)
        try:
            doc = wait_ready(base, proc, log)
            validate(doc)
            print(f"openapi: {doc['openapi']} document valid, "
                  f"{sum(len(v) for v in doc['paths'].values())} operations")
            token = open(f"{tmp}/var/api.token").read().strip()
            run_id = seed(base, token)
            with open(f"{tmp}/schemathesis.toml", "w") as f:
                f.write(f'[parameters]\njob = "fuzz-job"\nid = {run_id}\n'
                        '[[operations]]\ninclude-path-regex = "^/api/v1/users/"\n'
                        'parameters = { name = "fuzz-user" }\n'
                        '[[operations]]\ninclude-path-regex = "^/api/v1/tokens/"\n'
                        'parameters = { name = "fuzz-token" }\n')
            cmd = ["schemathesis", "--config-file", f"{tmp}/schemathesis.toml", "run",
                   f"{base}/api/v1/openapi.json", "--checks", CHECKS,
                   "--max-examples", str(a.examples), "--seed", str(a.seed),
                   "-H", f"Authorization: Bearer {token}", "--no-color",
                   "--request-timeout", "10"]
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            print(result.stdout[-20000:])
            if result.returncode != 0:
                print(result.stderr[-5000:])
                fail(f"schemathesis found failures (exit {result.returncode})")
            if proc.poll() is not None:
                fail(f"cronvisor up exited during the run:\n{open(log).read()}")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    print("all OpenAPI checks passed")


if __name__ == "__main__":
    main()
