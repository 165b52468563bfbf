#!/usr/bin/env bash
# Reload benchmark: wrk at full load against /healthz on cronvisor's inherited API socket while
# SIGHUP is sent every 2 s, next to the same load against nginx reloaded with `nginx -s reload`
# at the same rate. Two modes: keep-alive connections, and `Connection: close`.
#
#   scripts/bench/reload.sh            (about 5 minutes; loopback only; every run bounded)
#
# Installs wrk and nginx (Debian packages) if missing, builds the release binary, prints a
# Markdown table for docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ "${#need[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cargo build --release --quiet
exec python3 scripts/bench/reload.py --bin target/release/cronvisor "$@"
