#!/usr/bin/env bash
# Builds the pinned Temporal server, its SQL schema tool and the Web UI server
# from tools/temporal-server into the cache folder, once, and prints the
# folder. The folder holds:
#   temporal-server      the server; `start --service X` runs one service
#   temporal-sql-tool    creates the databases and applies the schemas
#   temporal-ui-server   the Web UI, pointed at any frontend
#   config/docker.yaml   the server's configuration template read from the
#                        environment (the one the temporalio/server image uses)
#   ui-config/docker.yaml the Web UI's template (the temporalio/ui image's)
# About 5 minutes the first time on 2 cores (1 once the CLI's modules are
# cached); instant afterwards.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mod="$root/tools/temporal-server"
version=$(awk '$1 == "go.temporal.io/server" { print $2 } $2 == "go.temporal.io/server" { print $3 }' "$mod/go.mod" | head -n 1)
if [ -z "$version" ]; then
  echo "build-temporal-server: tools/temporal-server/go.mod does not require go.temporal.io/server" >&2
  exit 1
fi
cache=${LIPSYNC_CACHE_DIR:-$HOME/.cache/lipsync}
out="$cache/temporal-server-$version"
if [ -x "$out/temporal-server" ] && [ -x "$out/temporal-sql-tool" ] && [ -x "$out/temporal-ui-server" ] \
  && [ -f "$out/config/docker.yaml" ] && [ -f "$out/ui-config/docker.yaml" ]; then
  echo "$out"
  exit 0
fi
echo "build-temporal-server: building the Temporal server $version, its SQL tool and the Web UI server (first time only, about 5 minutes)..." >&2
tmp="$out.partial.$$"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/config" "$tmp/ui-config"
(
  cd "$mod"
  go build -trimpath -o "$tmp/temporal-server" go.temporal.io/server/cmd/server
  go build -trimpath -o "$tmp/temporal-sql-tool" go.temporal.io/server/cmd/tools/sql
  go build -trimpath -o "$tmp/temporal-ui-server" github.com/temporalio/ui-server/v2/cmd/server
  cp "$(go list -m -f '{{.Dir}}' go.temporal.io/server)/config/docker.yaml" "$tmp/config/docker.yaml"
  cp "$(go list -m -f '{{.Dir}}' github.com/temporalio/ui-server/v2)/config/docker.yaml" "$tmp/ui-config/docker.yaml"
)
chmod -R u+w "$tmp"
rm -rf "$out"
mv "$tmp" "$out"
echo "build-temporal-server: built $out" >&2
echo "$out"
