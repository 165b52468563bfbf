#!/usr/bin/env bash
# The cost of learned durations at 10,000 jobs (scripts/bench/durations.py), on a release build.
#   bash scripts/bench/durations.sh [--baseline BUILD] [--jobs N] [--runs R] [--idle S]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
exec python3 scripts/bench/durations.py --bin target/release/cronvisor "$@"
