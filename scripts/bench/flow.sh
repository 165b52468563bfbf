#!/usr/bin/env bash
# Flow benchmark, standalone mode (SQLite): 1,000 flows of 10 jobs (chains and fan-ins) started
# in one minute, beside 1,000 unrelated jobs whose lateness is compared with the same jobs alone
# (run first, in this invocation). About 3 minutes.
#
#   scripts/bench/flow.sh [--flows N]
#
# Builds the release binary, then runs scripts/bench/flow.py, which prints a Markdown table for
# docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
exec python3 scripts/bench/flow.py --bin target/release/cronvisor "$@"
