#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build, run and test the
# project: Go must be there already; the PostgreSQL server binaries are
# installed from Debian's packages when missing. Idempotent and quiet.
set -euo pipefail

if ! command -v go >/dev/null 2>&1; then
  echo "install-deps: Go is required (https://go.dev/doc/install); it was not found on PATH" >&2
  exit 1
fi

have_postgres() {
  [ -n "${PG_BINDIR:-}" ] && [ -x "$PG_BINDIR/initdb" ] && return 0
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null 2>&1 && return 0
  command -v initdb >/dev/null 2>&1
}

apt_updated=""
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing $*; install it as root: apt-get install -y $*" >&2
    exit 1
  fi
  if [ -z "$apt_updated" ]; then
    echo "install-deps: apt-get update" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    apt_updated=1
  fi
  echo "install-deps: apt-get install $*" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

if ! have_postgres; then
  apt_install postgresql
fi
if ! id postgres >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  # The server binaries refuse to run as root; the tests run them as postgres.
  apt_install postgresql
fi
# Later additions (for example chromium for Web UI screenshots) go here.
