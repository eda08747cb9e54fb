#!/usr/bin/env bash
# The project's test command (README: `make test`). It installs what it needs,
# checks formatting and vet, then runs the fast tier (unit tests; database
# tests start their own PostgreSQL) and the integration tier against real
# parts it starts itself: Temporal, PostgreSQL, the emulator, worker and
# starter binaries. The integration tier runs twice: every test on the
# Temporal dev server built from the pinned CLI, then the end-to-end, batch,
# encryption and run-command tests and the cluster's fault suite on the
# cluster (the server built from tools/temporal-server on PostgreSQL, one
# process per service; LIPSYNC_TEMPORAL_BACKEND=cluster).
# Extra arguments are passed to every `go test` run (for example -run X).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
start=$(date +%s)
banner() { printf '\n==> %s\n' "$*"; }

banner "install dependencies"
bash scripts/install-deps.sh

banner "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './tools/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi

banner "go vet"
go vet ./...
go vet -tags integration ./integration/...

banner "Temporal CLI (pinned, cached)"
TEMPORAL_CLI=$(bash scripts/build-temporal.sh)
export TEMPORAL_CLI
echo "$TEMPORAL_CLI"

banner "Temporal server, SQL tool and Web UI (pinned, cached): the cluster backend"
TEMPORAL_SERVER_DIR=$(bash scripts/build-temporal-server.sh)
export TEMPORAL_SERVER_DIR
echo "$TEMPORAL_SERVER_DIR"

banner "fast tier: go test -race ./..."
go test -race -count=1 "$@" ./...

banner "integration tier on the dev server: real Temporal, PostgreSQL, emulator, worker, starter"
go test -race -count=1 -tags integration -timeout 30m -skip '^TestFaultsCluster$' "$@" ./integration/...

banner "integration tier on the cluster: PostgreSQL persistence, one process per service"
cluster_tests='^(TestEndToEnd|TestBatch|TestHistoriesAreEncryptedWithTheCodec|TestRunCommand)$'
cluster() { LIPSYNC_TEMPORAL_BACKEND=cluster go test -race -count=1 -tags integration -timeout 30m "$@" ./integration/...; }
if [ $# -gt 0 ]; then
  cluster -run "$cluster_tests|^TestFaultsCluster\$" "$@"
else
  # The cluster's fault suite is paced by its rate budget (six minutes,
  # mostly waiting): it runs beside the other cluster tests, each on a
  # cluster of its own, after one build of the test binary.
  cluster -run '^$' >/dev/null
  logs=$(mktemp -d)
  cluster -run '^TestFaultsCluster$' >"$logs/faults" 2>&1 &
  faults=$!
  status=0
  cluster -run "$cluster_tests" || status=1
  wait "$faults" || status=1
  cat "$logs/faults"
  rm -rf "$logs"
  [ "$status" -eq 0 ]
fi

printf '\n==> all tests passed in %ss\n' "$(( $(date +%s) - start ))"
