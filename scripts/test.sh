#!/usr/bin/env bash
# The one test command, for users and CI alike: installs what the tests need on a fresh Debian
# machine (idempotent), then checks formatting, lints, and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

echo "== tests"
# Every test is bounded: integration tests wait on readiness signals with deadlines, and
# nextest kills anything that runs past the slow-timeout below.
cargo nextest run --workspace --no-fail-fast --config-file .config/nextest.toml

echo "== chaos (2 minutes)"
# Three hosts in network namespaces, real etcd, Redis and MariaDB, a seeded nemesis, and a
# checker of the whole history (scripts/chaos.sh; long runs: docs/RELIABILITY.md). A fixed
# seed, so that a red run can be replayed as it was.
bash scripts/chaos.sh --minutes 2 --seed 2
