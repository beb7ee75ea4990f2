#!/usr/bin/env bash
# The PostgreSQL server the search tests share a study through (tests/search): starts the
# Debian cluster if it is down (creating it if the package made none), then makes sure the
# role `tinycc` (password `tinycc`) and its database `tinycc_search` exist, so that
#     postgresql://tinycc:tinycc@localhost/tinycc_search
# connects. Safe to run again: what exists or already runs is left as it is. Needs the
# Debian package `postgresql` (scripts/setup-dev.sh installs it) and root or sudo.
set -euo pipefail

as_root=()
[ "$(id -u)" = 0 ] || as_root=(sudo)
as_postgres() {
    if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$1"
    else sudo -u postgres sh -c "$1"
    fi
}

version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
[ -x "/usr/lib/postgresql/$version/bin/postgres" ] || {
    echo "setup-postgres: no PostgreSQL server under /usr/lib/postgresql" >&2; exit 1; }

# pg_lsclusters: "Ver Cluster Port Status Owner Data-directory Log-file"
status=$(pg_lsclusters --no-header 2>/dev/null | awk -v v="$version" '$1 == v && $2 == "main" {print $4}')
if [ -z "$status" ]; then
    "${as_root[@]}" pg_createcluster "$version" main >/dev/null
    status=down
fi
case "$status" in
    online*) ;;
    *) "${as_root[@]}" pg_ctlcluster "$version" main start ;;
esac

# the server accepts connections a moment after pg_ctlcluster returns
for _ in $(seq 30); do
    as_postgres "psql -qtAc 'SELECT 1'" >/dev/null 2>&1 && break
    sleep 1
done

as_postgres "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname = 'tinycc'\" | grep -q 1 \
    || psql -qc \"CREATE ROLE tinycc LOGIN PASSWORD 'tinycc'\""
as_postgres "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname = 'tinycc_search'\" | grep -q 1 \
    || psql -qc 'CREATE DATABASE tinycc_search OWNER tinycc'"
echo "PostgreSQL $version: postgresql://tinycc:tinycc@localhost/tinycc_search"
