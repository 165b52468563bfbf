#!/usr/bin/env bash
# Console benchmark: page server times with 10,000 jobs and 1,000,000 runs (SQLite and MariaDB,
# the API reading the same data as the baseline), and the delay from a job printing a line to
# the line on the console page (headless Chromium) and in `run tail --follow` (the baseline).
#
#   scripts/bench/console.sh [latency] [viewers] [pages] [--repeat N] [--backends sqlite,mariadb]
#
# Builds the release binary; every case is bounded (a few minutes, most of it filling stores).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
exec python3 scripts/bench/console.py --bin target/release/cronvisor "$@"
