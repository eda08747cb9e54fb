#!/bin/sh
# Creates the namespace the worker runs in and registers the worker's
# custom search attributes in it (what an operator filters on in the Web
# UI), once the frontend answers. Safe to run again: what exists is kept.
# The worker registers missing attributes itself at start-up when it may;
# this job is for a cluster where it may not, and makes the set explicit.
#
# It is the namespace job of docker-compose.yml and k8s/temporal.yaml (image
# temporalio/admin-tools), and the integration tests' cluster runs this very
# file (internal/localcluster). The attribute list must match
# workflows.SearchAttributes(): go test ./deploy checks it.
#
# Environment:
#   TEMPORAL_ADDRESS              the frontend (127.0.0.1:7233)
#   TEMPORAL_NAMESPACE            default
#   TEMPORAL_NAMESPACE_RETENTION  how long closed workflows are kept (72h)
#   TEMPORAL_CLI                  temporal
set -eu
cli=${TEMPORAL_CLI:-temporal}
address=${TEMPORAL_ADDRESS:-127.0.0.1:7233}
ns=${TEMPORAL_NAMESPACE:-default}
retention=${TEMPORAL_NAMESPACE_RETENTION:-72h}

# retry CMD...: runs CMD until it succeeds, for up to two minutes (the
# frontend may still be starting, a new namespace takes a few seconds to
# reach every service).
retry() {
  i=0
  until "$@" >/dev/null 2>"${TMPDIR:-/tmp}/temporal-namespace.err"; do
    i=$((i + 1))
    if [ "$i" -ge 60 ]; then
      echo "temporal-namespace: gave up: $*" >&2
      cat "${TMPDIR:-/tmp}/temporal-namespace.err" >&2
      return 1
    fi
    sleep 2
  done
}

retry "$cli" operator cluster health --address "$address"
if "$cli" operator namespace describe --address "$address" --namespace "$ns" >/dev/null 2>&1; then
  echo "temporal-namespace: namespace $ns exists"
else
  echo "temporal-namespace: creating namespace $ns (retention $retention)"
  retry "$cli" operator namespace create --address "$address" --namespace "$ns" --retention "$retention"
fi

# attribute NAME TYPE registers one search attribute.
attribute() {
  echo "temporal-namespace: search attribute $1 ($2)"
  retry "$cli" operator search-attribute create --address "$address" --namespace "$ns" --name "$1" --type "$2"
}

attribute LipsyncStatus Keyword
attribute LipsyncStatusSince Datetime
attribute LipsyncRequestId Keyword
attribute LipsyncReferenceId Keyword
attribute LipsyncBatchId Keyword
attribute LipsyncEscalated Keyword
attribute LipsyncBatchCompleted Int
attribute LipsyncBatchRemaining Int
echo "temporal-namespace: done"
