#!/usr/bin/env bash
# The project's test command (README: `make test`). It installs what it needs,
# checks formatting and vet, then runs the fast tier (unit tests; database
# tests start their own PostgreSQL) and the integration tier against real
# parts it starts itself: Temporal, PostgreSQL, the emulator, worker and
# starter binaries. The integration tier runs on two backends: every test on
# the Temporal dev server built from the pinned CLI, and the end-to-end,
# batch, encryption and run-command tests and the cluster's fault suite on
# the cluster (the server built from tools/temporal-server on PostgreSQL, one
# process per service; LIPSYNC_TEMPORAL_BACKEND=cluster); the two fault
# suites run beside the other tests.
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

cluster_tests='^(TestEndToEnd|TestBatch|TestHistoriesAreEncryptedWithTheCodec|TestRunCommand)$'
dev() { go test -race -count=1 -tags integration -timeout 45m "$@" ./integration/...; }
cluster() { LIPSYNC_TEMPORAL_BACKEND=cluster go test -race -count=1 -tags integration -timeout 45m "$@" ./integration/...; }
if [ $# -gt 0 ]; then
  banner "integration tier on the dev server: real Temporal, PostgreSQL, emulator, worker, starter"
  dev -skip '^TestFaultsCluster$' "$@"
  banner "integration tier on the cluster: PostgreSQL persistence, one process per service"
  cluster -run "$cluster_tests|^TestFaultsCluster\$" "$@"
else
  # The tier is mostly waiting (timers, outages, rate budgets: about half a
  # core busy on average), so it runs as two lines side by side, each test
  # on parts of its own: the two fault suites one after the other, and
  # every other test, on the dev server and then on the cluster. One build
  # of the test binary first.
  dev -run '^$' >/dev/null
  logs=$(mktemp -d)
  {
    failed=0
    dev -run '^TestFaults$' || failed=1
    cluster -run '^TestFaultsCluster$' || failed=1
    exit "$failed"
  } >"$logs/faults" 2>&1 &
  faults=$!
  status=0
  banner "integration tier on the dev server: real Temporal, PostgreSQL, emulator, worker, starter"
  dev -skip '^TestFaults(Cluster)?$' || status=1
  banner "integration tier on the cluster: PostgreSQL persistence, one process per service"
  cluster -run "$cluster_tests" || status=1
  wait "$faults" || status=1
  banner "fault suites, beside the above: TestFaults on the dev server, TestFaultsCluster on the cluster"
  cat "$logs/faults"
  rm -rf "$logs"
  [ "$status" -eq 0 ]
fi

printf '\n==> all tests passed in %ss\n' "$(( $(date +%s) - start ))"
