#!/usr/bin/env bash
# Screenshots of every console page for docs/CONSOLE.md, taken in a real headless Chromium from
# a real `cronvisor up` by the browser test (tests/browser/console_test.py).
#   bash scripts/console-screenshots.sh [DIR]   (default: docs/console)
set -euo pipefail
cd "$(dirname "$0")/.."
dir="$(realpath -m "${1:-docs/console}")"
mkdir -p "$dir"
cargo build --quiet
CONSOLE_SCREENSHOTS="$dir" cargo nextest run --test integration --no-capture \
  console::the_console_works_in_a_real_browser
ls -1 "$dir"
