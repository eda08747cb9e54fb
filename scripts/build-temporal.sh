#!/usr/bin/env bash
# Builds the pinned Temporal CLI (dev server + Web UI) from tools/temporal into
# the cache folder, once, and prints the binary's path. About 3 minutes the
# first time on 2 cores; instant afterwards.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=$(awk '{ for (i = 1; i < NF; i++) if ($i == "github.com/temporalio/cli") print $(i+1) }' "$root/tools/temporal/go.mod" | head -n 1)
if [ -z "$version" ]; then
  echo "build-temporal: tools/temporal/go.mod does not require github.com/temporalio/cli" >&2
  exit 1
fi
cache=${LIPSYNC_CACHE_DIR:-$HOME/.cache/lipsync}
bin="$cache/temporal-$version"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$cache"
echo "build-temporal: building the Temporal CLI $version (first time only, about 3 minutes)..." >&2
tmp="$bin.partial.$$"
trap 'rm -f "$tmp"' EXIT
(cd "$root/tools/temporal" && go build -trimpath -o "$tmp" github.com/temporalio/cli/cmd/temporal)
mv "$tmp" "$bin"
echo "build-temporal: built $bin" >&2
echo "$bin"
