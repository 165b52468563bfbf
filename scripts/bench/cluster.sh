#!/usr/bin/env bash
# Cluster benchmark: real etcd, Redis and MariaDB on loopback, 1 and 3 dispatchers, 2
# executors, each host its own `cronvisor up`; N jobs running `true` every second, N rising.
#
#   scripts/bench/cluster.sh [--rates 250,500,1000,1500] [--dispatchers 1,3]
#
# Needs the servers of scripts/install-deps.sh. Builds the release binary, then runs
# scripts/bench/cluster.py, which prints a Markdown table for docs/BENCHMARKS.md. Every phase
# is bounded (15 s window, about 40 s with start and stop; ~6 minutes for the defaults).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
exec python3 scripts/bench/cluster.py --bin target/release/cronvisor "$@"
