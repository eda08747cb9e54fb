#!/usr/bin/env bash
# Photographs a web page with headless Chromium (Debian's chromium package).
#   scripts/screenshot.sh URL OUT.png [WIDTHxHEIGHT]
set -euo pipefail
url=$1 out=$2 size=${3:-1400,800}
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "screenshot: chromium is not installed (apt-get install chromium)" >&2
  exit 1
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size="$size" \
  --virtual-time-budget=15000 --screenshot="$out" "$url" >/dev/null 2>&1
test -s "$out"
