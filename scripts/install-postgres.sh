#!/usr/bin/env bash
# Install PostgreSQL's server binaries (Debian's `postgresql` package: initdb, pg_ctl, postgres)
# for the fleet-wallet tests and benchmarks/bench_fleet.py. Idempotent: does nothing when a
# server is already there. The tests start their own throwaway cluster (tests/fleet/pg_cluster.py)
# as an unprivileged user; nothing here starts or configures a server.
set -euo pipefail

found() {
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null \
    || { [[ -n "${PG_BIN:-}" && -x "$PG_BIN/initdb" ]]; }
}

if found; then
  echo "PostgreSQL server already installed: $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tr '\n' ' ')"
  exit 0
fi
if [[ "$(id -u)" != "0" ]]; then
  echo "install-postgres.sh: run as root (apt-get install postgresql), or set PG_BIN" >&2
  exit 1
fi
command -v apt-get >/dev/null || { echo "install-postgres.sh: apt-get is required" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The package's own cluster is not needed (the tests make theirs); installing it is harmless.
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
found || { echo "install-postgres.sh: initdb not found after installing postgresql" >&2; exit 1; }
ls -d /usr/lib/postgresql/*/bin
