#!/usr/bin/env bash
# The embedded farm in one command: installs what is missing, builds, starts the
# coordinator with in-process workers (no RabbitMQ, no S3: in-process queue, local disk
# under farm-data/; review copies encrypted with a master key made once in
# farm-data/master.key), submits a generated 20 s ProRes 422 HQ 1080p clip (or SOURCE),
# shows the job's progress and prints the review page of the job; the farm keeps running
# for the page until Ctrl-C.
#   ./scripts/demo.sh [SOURCE]          env: FARM_LISTEN (127.0.0.1:8080), FARM_WORKERS (2)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
farm_install_debs
cargo build --release -p farm-coordinator -p farm-worker
data="$(pwd)/farm-data"
mkdir -p "$data/samples" "$data/output"
src="${1:-}"
if [ -z "$src" ]; then
  src="$data/samples/sample-prores422hq-1080p25.mov"
  if [ ! -f "$src" ]; then
    echo "making a sample clip: $src"
    ffmpeg -nostdin -v error -y \
      -f lavfi -i "testsrc2=size=1920x1080:rate=25:duration=20" \
      -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=20" \
      -c:v prores_ks -profile:v 3 -pix_fmt yuv422p10le -c:a pcm_s24le -ac 2 "$src"
  fi
fi
src="$(cd "$(dirname "$src")" && pwd)/$(basename "$src")"
listen="${FARM_LISTEN:-127.0.0.1:8080}"
# The embedded farm runs without a token unless FARM_API_TOKEN is set; then send it.
auth=()
[ -n "${FARM_API_TOKEN:-}" ] && auth=(-H "Authorization: Bearer $FARM_API_TOKEN")
api="http://$listen"

# The master key that wraps the content keys (made once; keep it with the database).
key="${FARM_MASTER_KEY_FILE:-$data/master.key}"
if [ ! -f "$key" ]; then
  (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$key")
fi
FARM_DATA_DIR="$data" FARM_LISTEN="$listen" FARM_CHUNK_SECONDS="${FARM_CHUNK_SECONDS:-12}" FARM_MASTER_KEY_FILE="$key" \
  target/release/coordinator >"$data/coordinator.log" 2>&1 &
coordinator=$!
trap 'kill $coordinator 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fs "$api/readyz" >/dev/null 2>&1 && break
  kill -0 $coordinator 2>/dev/null || { cat "$data/coordinator.log"; exit 1; }
  sleep 0.2
done
echo "embedded farm up on $api (log: $data/coordinator.log)"

name="$(basename "${src%.*}")-$(date +%s)"
out="$data/output/$name"
reply=$(curl -fsS "${auth[@]}" -XPOST "$api/v1/jobs" -H 'content-type: application/json' \
  -d "{\"source\": \"$src\", \"output\": \"$out\"}")
id=$(printf '%s' "$reply" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "job $id submitted: $src"

playable=""
while true; do
  job=$(curl -fsS "${auth[@]}" "$api/v1/jobs/$id")
  line=$(printf '%s' "$job" | python3 -c '
import json, sys
j = json.load(sys.stdin)
eta = j.get("eta_seconds")
eta = "" if eta is None else " eta %.0f s" % eta
done = sum(1 for t in j["tasks"] if t["state"] == "succeeded")
print("%s %5.1f%%%s  tasks %d/%d done" % (j["state"], 100 * j["progress"], eta, done, len(j["tasks"])))
print(j["state"])
print(j.get("error") or "")')
  state=$(printf '%s\n' "$line" | sed -n 2p)
  printf '\r%-60s' "$(printf '%s\n' "$line" | sed -n 1p)"
  if [ -z "$playable" ] && [ -f "$out/index.m3u8" ]; then
    playable=1
    printf '\nplayable already (EVENT playlists, growing): %s/jobs/%s\n' "$api" "$id"
  fi
  case "$state" in
    succeeded) break ;;
    failed|cancelled) printf '\njob %s: %s\n' "$state" "$(printf '%s\n' "$line" | sed -n 3p)"; exit 1 ;;
  esac
  sleep 1
done
echo
echo "master playlist (encrypted): $out/index.m3u8"
echo "the farm keeps running for the review page (all jobs: $api/); Ctrl-C stops it"
echo "review page: $api/jobs/$id"
wait $coordinator
