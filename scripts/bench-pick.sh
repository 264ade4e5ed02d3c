#!/usr/bin/env bash
# A one-table restore out of the restore benchmark's backup (issue 22), against the whole
# restore and against pg_restore -t of the same table from a local custom archive.
#
#   scripts/bench-pick.sh [SCALE] [RUNS]        e.g. scripts/bench-pick.sh 30 3
#
# The backup is the one of scripts/bench-restore-jobs.sh: a pg_dumpall of `pgbench -i -s
# SCALE` plus `orders` (SCALE * 66667 rows, a key and two indexes) and `items` (SCALE * 50000
# rows, a foreign key to orders), packed with the real gzip | openssl enc | split. Each
# contender runs RUNS times, alternating, each into a fresh cluster (initdb, not timed):
#
#   whole:       a9s-recover restore --jobs 2 --no-verify                (every database)
#   pick:        a9s-recover restore --jobs 2 --database bench --table public.orders
#                --into orders_back                                     (the stream read whole,
#                                                                        one table sent)
#   pick+verify: the same with its row-count verification
#   pg_restore:  pg_restore -j 2 -t orders -I orders_customer -I orders_placed from the local
#                custom archive (already on disk), into a database made first
#
# Printed: the medians, the ratios, and a9s-recover's peak memory (max RSS).
set -euo pipefail
SCALE=${1:-30}
RUNS=${2:-3}
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin a9s-recover
BIN=$PWD/target/release/a9s-recover
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/a9s-bench-pick.XXXXXX")
AS=""
if [ "$(id -u)" = 0 ]; then chown postgres: "$WORK"; AS="runuser -u postgres --"; fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { $AS "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate stop > /dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
fresh() {
  $AS "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate stop > /dev/null 2>&1 || true
  rm -rf "$WORK/data"
  $AS "$PGBIN/initdb" -D "$WORK/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync > /dev/null
  $AS "$PGBIN/pg_ctl" -D "$WORK/data" -o "-p $PORT -k $WORK -c listen_addresses=''" -l "$WORK/log" -w start > /dev/null
}
DSN="host=$WORK port=$PORT user=postgres dbname=postgres"
export S=bench-secret-not-real A9S_SECRET=bench-secret-not-real
ID=bench0000-0000-0000-0000-000000000000-1700000000000

fresh
"$PGBIN/psql" -X -q -d "$DSN" -c "CREATE DATABASE bench"
"$PGBIN/pgbench" -q -i -s "$SCALE" -h "$WORK" -p "$PORT" -U postgres bench > /dev/null 2>&1
"$PGBIN/psql" -X -q -d "host=$WORK port=$PORT user=postgres dbname=bench" <<SQL
CREATE TABLE orders (id bigint PRIMARY KEY, customer int NOT NULL, placed date NOT NULL, note text);
INSERT INTO orders SELECT g, g % 50000, date '2024-01-01' + g % 365, 'order ' || g FROM generate_series(1, $SCALE * 66667) g;
CREATE TABLE items (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders(id), sku text, qty int);
INSERT INTO items SELECT g, 1 + g % ($SCALE * 66667), 'sku-' || (g % 1000), g % 9 FROM generate_series(1, $SCALE * 50000) g;
CREATE INDEX orders_customer ON orders (customer);
CREATE INDEX orders_placed ON orders (placed);
CREATE INDEX items_order ON items (order_id);
CREATE INDEX items_sku ON items (sku);
SQL
"$PGBIN/pg_dumpall" -h "$WORK" -p "$PORT" -U postgres > "$WORK/dump.sql"
"$PGBIN/pg_dump" -Fc -h "$WORK" -p "$PORT" -U postgres -d bench -f "$WORK/bench.dump"
DUMP=$(stat -c %s "$WORK/dump.sql")
mkdir -p "$WORK/b"
( cd "$WORK/b" && gzip -6 < "$WORK/dump.sql" | openssl enc -aes256 -md md5 -pass env:S 2>/dev/null \
    | split -b 256M --numeric-suffixes=1 -a 4 - "$ID-" )
for f in "$WORK/b/$ID-"*; do n=${f##*-}; mv "$f" "$WORK/b/$ID-$((10#$n))"; done
rm "$WORK/dump.sql"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'); commit $(git rev-parse --short HEAD)"
echo "dump:    $DUMP bytes (pg_dumpall of pgbench -s $SCALE + orders/items), the pick: public.orders, $((SCALE * 66667)) rows"

t() {
  local s e
  s=$(date +%s.%N)
  "$@"
  e=$(date +%s.%N)
  echo "$e - $s" | bc
}
ours() {
  local name=$1
  shift
  /usr/bin/time -f %M -o "$WORK/rss.$name" "$BIN" restore --bucket "$WORK/b" --backup-id "$ID" --target "$DSN" \
    --yes -q --jobs 2 "$@" > /dev/null
  cat "$WORK/rss.$name" >> "$WORK/$name.rss"
}
whole() { ours whole --no-verify; }
pick() { ours pick --no-verify --database bench --table public.orders --into orders_back; }
pickv() { ours pickv --database bench --table public.orders --into orders_back; }
# The pick restored what the source holds (checked outside the timing).
check() {
  local rows
  rows=$("$PGBIN/psql" -X -At -d "host=$WORK port=$PORT user=postgres dbname=orders_back" -c "SELECT count(*) FROM orders")
  [ "$rows" = $((SCALE * 66667)) ] || { echo "orders_back.orders has $rows rows" >&2; exit 1; }
}
# pg_restore -t brings the table and its rows, -I its indexes; its primary key no flag can
# pick (a CONSTRAINT item), so pg_restore does one index build less than we do.
pgr() {
  "$PGBIN/psql" -X -q -d "$DSN" -c "CREATE DATABASE orders_cmp"
  "$PGBIN/pg_restore" -j 2 -t orders -I orders_customer -I orders_placed \
    -d "host=$WORK port=$PORT user=postgres dbname=orders_cmp" "$WORK/bench.dump"
}
for i in $(seq "$RUNS"); do
  for c in whole pick pickv pgr; do
    fresh
    t "$c" >> "$WORK/$c.times"
    if [ "$c" = pickv ]; then check; fi
  done
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
W=$(median "$WORK/whole.times"); P=$(median "$WORK/pick.times"); V=$(median "$WORK/pickv.times"); R=$(median "$WORK/pgr.times")
printf '%-12s %8s  %s\n' contender "median s" "runs"
for c in whole pick pickv pgr; do
  printf '%-12s %8.2f  %s\n' "$c" "$(median "$WORK/$c.times")" "$(tr '\n' ' ' < "$WORK/$c.times")"
done
printf 'pick / whole:            %.2fx\n' "$(echo "$P / $W" | bc -l)"
printf 'pick / pg_restore -t:    %.2fx\n' "$(echo "$P / $R" | bc -l)"
printf 'pick+verify / pg_restore -t: %.2fx\n' "$(echo "$V / $R" | bc -l)"
for c in whole pick; do
  echo "$c peak RSS: $(sort -n "$WORK/$c.rss" | tail -1) KiB"
done
