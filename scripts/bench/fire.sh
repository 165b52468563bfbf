#!/usr/bin/env bash
# Firing benchmark, standalone mode (SQLite). In `precision` and `burst` each job is
# `date +%s%N`: lateness = when the job's own command started (the time it prints) minus the
# scheduled instant, true for any design; the executor's record of the spawn is shown beside.
# The other cases run the trivial command `true`, lateness = the executor's spawn record.
#
#   scripts/bench/fire.sh [case ...]     cases: raw precision burst sustained scale (default)
#                                        and http (HTTP jobs over http vs https),
#                                        scale-distinct, million, million-distinct (1,000,000
#                                        jobs: about 3 minutes each); `precision@nobody` and
#                                        `burst@nobody` run jobs as that user (fork + setuid)
#
# `BASELINE=/path/to/cronvisor scripts/bench/fire.sh precision burst` runs each case on that
# build first, then on this one, in the same invocation (before/after a change).
#
# Builds the release binary, then runs scripts/bench/fire.py, which starts `cronvisor up` on
# loopback ports in a temp dir per case, and prints a Markdown table for docs/BENCHMARKS.md.
# Every case is bounded in time (about 6 minutes for all of them).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
exec python3 scripts/bench/fire.py --bin target/release/cronvisor ${BASELINE:+--baseline "$BASELINE"} "$@"
