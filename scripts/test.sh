#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs unit and end-to-end tests.
#   ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
farm_install_debs
farm_install_chart_tools
farm_install_api_tools
farm_install_browser_tools
./scripts/services.sh s3 rabbitmq postgres swift keystone
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast
