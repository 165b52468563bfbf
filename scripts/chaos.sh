#!/usr/bin/env bash
# The chaos suite: three `cronvisor up` hosts in network namespaces, etcd, Redis and MariaDB in
# their own, a mix of jobs, and a seeded nemesis (kill -9 and SIGSTOP of roles and whole hosts,
# fast and hanging partitions, dependency restarts, reloads and upgrades); then a checker of the
# whole history. Exits non-zero on any anomaly, with the seed to replay it.
#
#   scripts/chaos.sh [--minutes M] [--seed S] [--keep]
#
# Needs root and the servers of scripts/install-deps.sh. Uses the debug binary (built here).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin cronvisor
exec python3 scripts/chaos/chaos.py --bin target/debug/cronvisor "$@"
