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
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if ! command -v cargo >/dev/null; then
    echo "cargo is missing: install Rust with rustup (https://rustup.rs) and run again" >&2
    exit 1
  fi
}
