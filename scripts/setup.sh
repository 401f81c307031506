#!/usr/bin/env bash
# Installs what building and testing the farm needs, when it is missing (idempotent).
# Sourced by test.sh and demo.sh.
set -euo pipefail

FARM_DEB_PACKAGES=(
  libavcodec-dev libavformat-dev libavfilter-dev libavdevice-dev
  libswscale-dev libswresample-dev libavutil-dev
  clang libclang-dev pkg-config
  ffmpeg   # the CLI makes test fixtures and checks output; the product never calls it
  prometheus   # the tests run a real Prometheus against the dashboard and promtool on the alert rules
  fonts-dejavu-core   # the burn-in font (DejaVu Sans Mono); the worker image installs it too
  tesseract-ocr   # the tests read burnt-in timecode back by OCR
  chromium   # the tests play ladders in a browser with hls.js
  # a one-node OpenStack Swift (tempauth, s3api) the Swift tests read and write
  swift swift-proxy swift-account swift-container swift-object memcached
  python3-keystone   # Keystone v3, which the Swift tests log in to (no Apache: a WSGI server)
)

farm_install_debs() {
  local missing=()
  for p in "${FARM_DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    # Packages with services (Swift, memcached) try to start them on install: not here,
    # the services script starts what the tests need, as the tests need it.
    local blocker=/usr/sbin/policy-rc.d blocked=""
    if [ ! -e "$blocker" ]; then
      printf '#!/bin/sh\nexit 101\n' | $sudo tee "$blocker" >/dev/null && $sudo chmod +x "$blocker" && blocked=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    [ -z "$blocked" ] || $sudo rm -f "$blocker"
  fi
  if ! command -v cargo >/dev/null; then
    echo "cargo is missing: install Rust with rustup (https://rustup.rs) and run again" >&2
    exit 1
  fi
}

# The chart's offline validators: Helm SDK and Kubernetes schemas (PyPI), KEDA's schemas (npm).
farm_install_chart_tools() {
  if ! python3 -c "import helm_python, kubernetes_validate, yaml" 2>/dev/null; then
    echo "installing chart validators (PyPI helm-python-sdk, kubernetes-validate)"
    python3 -m pip install -q --disable-pip-version-check helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 PyYAML
  fi
  if [ ! -d tests/chart/node_modules/@kubernetes-models/keda ]; then
    command -v npm >/dev/null || { echo "npm is missing (Node.js): needed to validate the chart's KEDA objects" >&2; exit 1; }
    echo "installing @kubernetes-models/keda (npm)"
    (cd tests/chart && npm ci --no-audit --no-fund --silent)
  fi
}

# Playback in a browser: hls.js and playwright-core (npm, pinned in tests/browser) driving
# Debian's chromium.
farm_install_browser_tools() {
  # Also when the pinned versions changed since the last install.
  if [ ! -d tests/browser/node_modules/hls.js ] || [ ! -d tests/browser/node_modules/playwright-core ] \
     || [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
    command -v npm >/dev/null || { echo "npm is missing (Node.js): needed for the browser playback tests" >&2; exit 1; }
    echo "installing hls.js and playwright-core (npm)"
    (cd tests/browser && npm ci --no-audit --no-fund --silent)
  fi
}

# The API's contract checks: the OpenAPI validator and the property-based tester (PyPI).
farm_install_api_tools() {
  if ! command -v schemathesis >/dev/null || ! command -v openapi-spec-validator >/dev/null; then
    echo "installing API checkers (PyPI openapi-spec-validator, schemathesis)"
    python3 -m pip install -q --disable-pip-version-check openapi-spec-validator==0.9.0 schemathesis==4.32.5
  fi
}
