#!/usr/bin/env bash
# One-shot demo: installs what is missing, builds the worker, makes a 20 s sample clip
# (ProRes 422 HQ 1080p25 with stereo PCM) and transcodes it into an HLS review ladder.
#   ./scripts/demo.sh [SOURCE] [OUTPUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
farm_install_debs
cargo build --release -p farm-worker --bin worker
src="${1:-}"
out="${2:-target/demo/hls}"
if [ -z "$src" ]; then
  src=target/demo/sample-prores.mov
  if [ ! -f "$src" ]; then
    mkdir -p target/demo
    echo "making a sample clip: $src"
    ffmpeg -nostdin -v error -y \
      -f lavfi -i "testsrc2=size=1920x1080:rate=25:duration=20" \
      -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=20" \
      -c:v prores_ks -profile:v 3 -pix_fmt yuv422p10le -c:a pcm_s24le -ac 2 "$src"
  fi
fi
master=$(target/release/worker transcode "$src" "$out")
echo
echo "master playlist: $master"
echo "play it:  ffplay $master"
echo "   or serve it: (cd $out && python3 -m http.server 8080) and open http://localhost:8080/index.m3u8 in Safari or an hls.js page"
