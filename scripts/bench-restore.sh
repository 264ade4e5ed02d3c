#!/usr/bin/env bash
# Restore into PostgreSQL: a9s-recover restore against the manual procedure and against psql
# on an already decrypted file, same dump, same throwaway cluster, alternating.
#
#   scripts/bench-restore.sh [SIZE] [RUNS]        e.g. scripts/bench-restore.sh 1GiB 3
#   scripts/bench-restore.sh --jobs [SCALE] [RUNS] restore --jobs N on a pgbench pg_dumpall
#                                                  (scripts/bench-restore-jobs.sh)
#
#   manual:  cat $(ls -1v ID-*) | openssl enc -d | gunzip -c > dump.sql; psql -X -q -f dump.sql
#   psql -f: psql -X -q -f dump.sql   (the decrypted file already there)
#   ours:    a9s-recover restore --target ... --yes --no-verify   (and once more with verify)
#   first:   a plan with a destructive stage before the stream (a no-op command), so the whole
#            backup is read and checked before it (the default); first_skip: the same plan
#            with --no-verify-first. The difference is what the whole read costs.
#
# The cluster runs with fsync=off and full_page_writes=off for every contender alike, so the
# numbers compare the pipelines, not the disk. The database the dump creates is dropped
# between runs.
set -euo pipefail
if [ "${1:-}" = "--jobs" ]; then shift; exec "$(dirname "$0")/bench-restore-jobs.sh" "$@"; fi
SIZE=${1:-1GiB}
RUNS=${2:-3}
cd "$(dirname "$0")/.."
cargo build --release --quiet --example gen_dump --bin a9s-recover
BIN=$PWD/target/release/a9s-recover
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/a9s-bench-restore.XXXXXX")
AS=""
if [ "$(id -u)" = 0 ]; then chown postgres: "$WORK"; AS="runuser -u postgres --"; fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$AS "$PGBIN/initdb" -D "$WORK/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync > /dev/null
$AS "$PGBIN/pg_ctl" -D "$WORK/data" -o "-p $PORT -k $WORK -c listen_addresses='' -c fsync=off -c full_page_writes=off -c max_wal_size=4GB" -l "$WORK/log" -w start > /dev/null
trap '$AS "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate stop > /dev/null 2>&1; rm -rf "$WORK"' EXIT
DSN="host=$WORK port=$PORT user=postgres dbname=postgres"
export S=bench-secret-not-real A9S_SECRET=bench-secret-not-real
ID=bench0000-0000-0000-0000-000000000000-1700000000000
mkdir -p "$WORK/b"
"$PWD/target/release/examples/gen_dump" "$SIZE" > "$WORK/dump.sql"
DUMP=$(stat -c %s "$WORK/dump.sql")
( cd "$WORK/b" && gzip -6 < "$WORK/dump.sql" | openssl enc -aes256 -md md5 -pass env:S 2>/dev/null \
    | split -b 256M --numeric-suffixes=1 -a 4 - "$ID-" )
for f in "$WORK/b/$ID-"*; do n=${f##*-}; mv "$f" "$WORK/b/$ID-$((10#$n))"; done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}')"
echo "dump:    $DUMP bytes (pg_dumpall-shaped, $(grep -c '^COPY ' "$WORK/dump.sql") COPY blocks)"

reset() { "$PGBIN/psql" -X -q -d "$DSN" -c "DROP DATABASE IF EXISTS bench" -c "DROP ROLE IF EXISTS app" > /dev/null; }
t() { local s e; s=$(date +%s.%N); "$@"; e=$(date +%s.%N); echo "$e - $s" | bc; }
manual() {
  ( cd "$WORK/b" && cat $(ls -1v $ID-*) | openssl enc -aes256 -md md5 -d -pass env:S 2>/dev/null | gunzip -c > "$WORK/manual.sql" )
  "$PGBIN/psql" -X -q -d "$DSN" -f "$WORK/manual.sql" > /dev/null
  rm -f "$WORK/manual.sql"
}
psqlf() { "$PGBIN/psql" -X -q -d "$DSN" -f "$WORK/dump.sql" > /dev/null; }
ours() { "$BIN" restore --bucket "$WORK/b" --backup-id "$ID" --target "$DSN" --yes --no-verify -q > /dev/null; }
ours_verify() { "$BIN" restore --bucket "$WORK/b" --backup-id "$ID" --target "$DSN" --yes -q > /dev/null; }
printf '[[stage]]\nkind = "command"\nname = "stop the application"\nrun = "true"\n\n[[stage]]\nkind = "restore"\n' > "$WORK/first.toml"
first() { "$BIN" restore --bucket "$WORK/b" --backup-id "$ID" --target "$DSN" --yes -q --plan "$WORK/first.toml" > /dev/null; }
first_skip() { "$BIN" restore --bucket "$WORK/b" --backup-id "$ID" --target "$DSN" --yes -q --plan "$WORK/first.toml" --no-verify-first > /dev/null; }
for _ in $(seq "$RUNS"); do
  for name in manual psqlf ours ours_verify first first_skip; do
    reset
    t $name >> "$WORK/$name.t"
  done
done
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
M=$(median < "$WORK/manual.t"); P=$(median < "$WORK/psqlf.t")
printf '\n| procedure | median s | vs manual | vs psql -f |\n|---|---:|---:|---:|\n'
for name in manual psqlf ours ours_verify first first_skip; do
  m=$(median < "$WORK/$name.t")
  awk -v n="$name" -v m="$m" -v M="$M" -v P="$P" 'BEGIN {printf "| %s | %.2f | %.2fx | %.2fx |\n", n, m, m/M, m/P}'
done
echo
for name in manual psqlf ours ours_verify first first_skip; do echo "  $name: $(tr '\n' ' ' < "$WORK/$name.t")"; done
