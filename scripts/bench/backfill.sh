#!/usr/bin/env bash
# Backfill benchmark, standalone mode (SQLite): a backfill of 10,000 instants with --parallel 8
# (`sh -c true` each), beside 1,000 jobs a minute whose lateness is compared with the same jobs
# alone (run first, in this invocation). About 4 minutes.
#
#   scripts/bench/backfill.sh [--instants N] [--parallel N]
#
# Builds the release binary, then runs scripts/bench/backfill.py, which prints a Markdown table
# for docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
exec python3 scripts/bench/backfill.py --bin target/release/cronvisor "$@"
