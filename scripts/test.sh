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
