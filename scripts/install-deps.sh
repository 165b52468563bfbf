#!/usr/bin/env bash
# Installs, idempotently, what the test suite needs on a fresh Debian 12 machine: the real
# servers the integration harness starts (MariaDB, etcd, Redis), protoc for etcd-client's build,
# sqlite3, openssl (the TLS test's certificates), systemd's socket-activation tool, Debian's
# chromium (the console's browser tests), and aiosmtpd and Playwright for Python (PyPI; Playwright
# drives /usr/bin/chromium, it downloads no browser), and iproute2 for the chaos suite's network
# namespaces, faketime for the clock-step test, prometheus for promtool (alert rules), and
# adduser for the Debian package's postinst (tests/integration/package.rs installs it).
set -euo pipefail

pkgs=(mariadb-server mariadb-client etcd-server etcd-client redis-server
      protobuf-compiler libprotobuf-dev sqlite3 procps systemd python3-pip openssl chromium
      iproute2 faketime prometheus curl util-linux adduser)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  # Packages must not start their services: the tests start every server themselves.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install-deps: all packages present"
fi

# A real SMTP server for the alarm tests.
if ! python3 -c "import aiosmtpd" >/dev/null 2>&1; then
  echo "install-deps: installing aiosmtpd (PyPI)"
  python3 -m pip install --quiet aiosmtpd || python3 -m pip install --quiet --break-system-packages aiosmtpd
fi

# The Kubernetes manifests' offline check: the Kubernetes schemas, bundled.
if ! python3 -c "import kubernetes_validate" >/dev/null 2>&1; then
  echo "install-deps: installing kubernetes-validate (PyPI)"
  python3 -m pip install --quiet kubernetes-validate || python3 -m pip install --quiet --break-system-packages kubernetes-validate
fi

# The API contract's checks: the OpenAPI validator and the fuzzer (pinned: what was measured).
if ! python3 -c "import schemathesis, openapi_spec_validator" >/dev/null 2>&1; then
  echo "install-deps: installing schemathesis and openapi-spec-validator (PyPI)"
  python3 -m pip install --quiet schemathesis==4.32.5 openapi-spec-validator==0.9.0 \
    || python3 -m pip install --quiet --break-system-packages schemathesis==4.32.5 openapi-spec-validator==0.9.0
fi

# The console's browser tests: Playwright's Python client, driving Debian's chromium.
if ! python3 -c "import playwright" >/dev/null 2>&1; then
  echo "install-deps: installing playwright (PyPI)"
  python3 -m pip install --quiet playwright || python3 -m pip install --quiet --break-system-packages playwright
fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "install-deps: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
