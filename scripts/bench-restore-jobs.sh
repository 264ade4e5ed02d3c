#!/usr/bin/env bash
# restore --jobs N on a plain pg_dumpall (issue 12), against psql -f on the decrypted file.
#
#   scripts/bench-restore.sh --jobs [SCALE] [RUNS] [DATA]   e.g. scripts/bench-restore.sh --jobs 30 3
#
# DATA is `pgbench` (the default, below) or `mixed`: 200 tables of mixed sizes (SCALE * 20000
# rows over them, table k of size proportional to 1/k), each with a key and an index.
#
# The dump: `pgbench -i -s SCALE` plus `orders` (SCALE * 66667 rows) and `items` (SCALE * 50000
# rows, a foreign key to orders) with secondary indexes, dumped with pg_dumpall, packed with the
# real gzip | openssl enc | split. Each contender runs RUNS times, alternating, each time into a
# fresh cluster (initdb, not timed):
#
#   psql -f:   psql -X -q -f dump.sql        (the decrypted file already there)
#   jobs1:     a9s-recover restore --no-verify            (one psql reading the stream)
#   jobs2/4:   a9s-recover restore --no-verify --jobs N   (the stream split over N connections)
#
# psql -f is timed in two halves, the dump cut before its first index or constraint (the
# second half starts with `\connect bench`): schema and data, then post-data. Their sum is the
# psql -f time; the first half is its data phase (with the schema, a fraction of a second).
#
# Printed: the medians, the ratio to psql -f, the phases of the --jobs runs (from --json), and
# the peak memory (max RSS) of a9s-recover itself. Then one more run with --jobs 1 --trace,
# and `a9s-recover simulate` of that trace: its prediction beside the median measured at
# N = 1, 2 and 4, and the predicted curve to 16 connections on this machine's cores. The clusters run PostgreSQL's default
# settings (the issue's goal is stated for them); BENCH_PG_OPTS adds server options, e.g.
# BENCH_PG_OPTS="-c fsync=off -c full_page_writes=off" to compare the loaders without the disk.
#
# Where the time goes: each run's CPU is split into the server's (the postmaster and all its
# children, from /proc) and the client's (psql, pg_restore, a9s-recover and its psql
# children, from bash's `times`). BENCH_UNITS=1 also logs every statement's duration
# (log_min_duration_statement=0) and prints, per contender, the server time of each unit of
# work: a table's COPY statements (ours are chunks), each index, key and foreign key, the
# rest (scripts/bench-units.py; the logging costs every contender alike, a few thousand lines).
set -euo pipefail
SCALE=${1:-30}
RUNS=${2:-3}
DATA=${3:-pgbench}
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin a9s-recover
BIN=$PWD/target/release/a9s-recover
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/a9s-bench-jobs.XXXXXX")
AS=""
if [ "$(id -u)" = 0 ]; then chown postgres: "$WORK"; AS="runuser -u postgres --"; fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { $AS "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate stop > /dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
fresh() {
  $AS "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate stop > /dev/null 2>&1 || true
  rm -rf "$WORK/data" "$WORK/log"
  $AS "$PGBIN/initdb" -D "$WORK/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync > /dev/null
  $AS "$PGBIN/pg_ctl" -D "$WORK/data" -o "-p $PORT -k $WORK -c listen_addresses='' ${BENCH_PG_OPTS:-}" -l "$WORK/log" -w start > /dev/null
}
DSN="host=$WORK port=$PORT user=postgres dbname=postgres"
UNITS=$PWD/scripts/bench-units.py
if [ -n "${BENCH_UNITS:-}" ]; then
  BENCH_PG_OPTS="${BENCH_PG_OPTS:-} -c log_min_duration_statement=0 -c log_line_prefix=%m#%p#"
fi
export S=bench-secret-not-real A9S_SECRET=bench-secret-not-real
ID=bench0000-0000-0000-0000-000000000000-1700000000000

fresh
"$PGBIN/psql" -X -q -d "$DSN" -c "CREATE DATABASE bench"
if [ "$DATA" = mixed ]; then
"$PGBIN/psql" -X -q -d "host=$WORK port=$PORT user=postgres dbname=bench" <<SQL
DO \$\$ BEGIN
  FOR k IN 1..200 LOOP
    EXECUTE format('CREATE TABLE t%s (id bigint PRIMARY KEY, g int, note text)', k);
    EXECUTE format('INSERT INTO t%s SELECT g, g %% 97, repeat(''x'', 20) || g FROM generate_series(1, %s) g',
                   k, greatest(10, ($SCALE * 20000 * 0.17 / k)::int));
    EXECUTE format('CREATE INDEX t%s_g ON t%s (g)', k, k);
  END LOOP;
END \$\$;
SQL
else
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
ALTER TABLE pgbench_accounts ADD CONSTRAINT accounts_branch FOREIGN KEY (bid) REFERENCES pgbench_branches (bid);
SQL
fi
"$PGBIN/pg_dumpall" -h "$WORK" -p "$PORT" -U postgres > "$WORK/dump.sql"
DUMP=$(stat -c %s "$WORK/dump.sql")
CUT=$(grep -n -m1 -E '^-- Name: .*; Type: (CONSTRAINT|INDEX|FK CONSTRAINT);' "$WORK/dump.sql" | cut -d: -f1)
head -n $((CUT - 1)) "$WORK/dump.sql" > "$WORK/pre-and-data.sql"
{ echo '\connect bench'; tail -n +"$CUT" "$WORK/dump.sql"; } > "$WORK/post.sql"
mkdir -p "$WORK/b"
( cd "$WORK/b" && gzip -6 < "$WORK/dump.sql" | openssl enc -aes256 -md md5 -pass env:S 2>/dev/null \
    | split -b 256M --numeric-suffixes=1 -a 4 - "$ID-" )
for f in "$WORK/b/$ID-"*; do n=${f##*-}; mv "$f" "$WORK/b/$ID-$((10#$n))"; done
# The same database as a custom archive: on local disk for pg_restore -j, and packed as a
# backup of its own for our restore of custom archives.
"$PGBIN/pg_dump" -Fc -h "$WORK" -p "$PORT" -U postgres -d bench -f "$WORK/bench.dump"
CID=benchc000-0000-0000-0000-000000000000-1700000000000
mkdir -p "$WORK/c"
( cd "$WORK/c" && gzip -6 < "$WORK/bench.dump" | openssl enc -aes256 -md md5 -pass env:S 2>/dev/null \
    | split -b 256M --numeric-suffixes=1 -a 4 - "$CID-" )
for f in "$WORK/c/$CID-"*; do n=${f##*-}; mv "$f" "$WORK/c/$CID-$((10#$n))"; done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'); commit $(git rev-parse --short HEAD)"
echo "dump:    $DUMP bytes (pg_dumpall of $([ "$DATA" = mixed ] && echo "200 tables of mixed sizes, scale $SCALE" || echo "pgbench -s $SCALE + orders/items")), $(grep -c '^COPY ' "$WORK/dump.sql") COPY blocks"

# Busy core-seconds of the whole machine (/proc/stat, all processes: server, psql, ours) and
# the share of the cores they kept busy, per run: where a contender leaves cores idle.
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8, $5+$6}' /proc/stat; }
t() {
  local s e b0 i0 b1 i1
  read -r b0 i0 < <(busy); s=$(date +%s.%N)
  "$@"
  e=$(date +%s.%N); read -r b1 i1 < <(busy)
  echo "$1 busy $(( (b1 - b0) / 100 )).$(( (b1 - b0) % 100 / 10 )) core-s, $(( 100 * (b1 - b0) / (b1 - b0 + i1 - i0 + 1) ))% of the cores" >> "$WORK/cpu.txt"
  echo "$e - $s" | bc
}
psqlf() {
  local s m e
  s=$(date +%s.%N)
  "$PGBIN/psql" -X -q -d "$DSN" -f "$WORK/pre-and-data.sql" > /dev/null 2>&1
  m=$(date +%s.%N)
  "$PGBIN/psql" -X -q -d "$DSN" -f "$WORK/post.sql" > /dev/null 2>&1
  e=$(date +%s.%N)
  echo "schema+data $(echo "$m - $s" | bc | xargs printf %.1f) post-data $(echo "$e - $m" | bc | xargs printf %.1f)" >> "$WORK/psqlf.phases"
}
pgrj() {
  "$PGBIN/pg_restore" -j "$1" -C -d "$DSN" "$WORK/bench.dump" > /dev/null 2>&1
}
pgrj2() { pgrj 2; }
# ours NAME JOBS [FLAGS…]: a9s-recover restore of the plain backup (or, with --custom, of the
# custom archive's, into a database bench made first, as pg_restore -C makes it).
ours() {
  local name=$1 jobs=$2 bucket=$WORK/b id=$ID dsn=$DSN
  shift 2
  local extra=()
  for a in "$@"; do
    if [ "$a" = --custom ]; then
      bucket=$WORK/c id=$CID dsn="host=$WORK port=$PORT user=postgres dbname=bench"
      "$PGBIN/psql" -X -q -d "$DSN" -c "CREATE DATABASE bench"
    else
      extra+=("$a")
    fi
  done
  /usr/bin/time -f %M -o "$WORK/rss.$name" "$BIN" restore --bucket "$bucket" --backup-id "$id" --target "$dsn" \
    --yes --no-verify -q --jobs "$jobs" ${extra[@]+"${extra[@]}"} --json > "$WORK/last.$name.json"
  cat "$WORK/rss.$name" >> "$WORK/$name.rss"
  python3 - "$WORK/last.$name.json" >> "$WORK/$name.phases" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
p = (d.get("stream") or {}).get("restore", {}).get("phases")
if p:
    print("schema %.1f data %.1f indexes %.1f fks %.1f rest %.1f chunks %d early %d of %d%s" % (
        p["schema_seconds"], p["data_seconds"], p["index_seconds"], p["fk_seconds"], p["rest_seconds"],
        p["copy_chunks"], p.get("early_items", 0), p["parallel_items"],
        "" if not p["fallback"] else " FALLBACK: " + p["fallback"]))
PY
}
jobs1() { ours jobs1 1; }
jobs2() { ours jobs2 2; }
jobs4() { ours jobs4 4; }
# --single-pass: the data, then every index (the load before issue 20).
single2() { ours single2 2 --single-pass; }
custom2() { ours custom2 2 --custom; }
# BENCH_NAMES picks the contenders (psqlf first: it is the reference of the ratios).
NAMES=${BENCH_NAMES:-psqlf pgrj2 jobs1 jobs2 single2 jobs4}
mkdir -p "$WORK/units"
server_cpu() { python3 "$UNITS" server-cpu "$(head -1 "$WORK/data/postmaster.pid")"; }
# bash's `times` in this shell (not in a $(…) subshell, whose children are none of these)
client_cpu() { python3 "$UNITS" client-cpu "$1"; }
for i in $(seq "$RUNS"); do
  for name in $NAMES; do
    fresh
    s0=$(server_cpu); times > "$WORK/times0"
    t $name >> "$WORK/$name.t"
    times > "$WORK/times1"; s1=$(server_cpu)
    c0=$(client_cpu "$WORK/times0"); c1=$(client_cpu "$WORK/times1")
    echo "$s1 - $s0" | bc >> "$WORK/$name.server"
    echo "$c1 - $c0" | bc >> "$WORK/$name.client"
    [ -z "${BENCH_UNITS:-}" ] || cp "$WORK/log" "$WORK/units/$name.$i.log"
  done
done
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
P=$(median < "$WORK/psqlf.t")
R=$P; [ -f "$WORK/pgrj2.t" ] && R=$(median < "$WORK/pgrj2.t")
printf '\n| contender | median s | vs psql -f | vs pg_restore -j 2 | peak RSS of a9s-recover |\n|---|---:|---:|---:|---:|\n'
for name in $NAMES; do
  m=$(median < "$WORK/$name.t")
  rss="-"
  [ -f "$WORK/$name.rss" ] && rss="$(( $(sort -n "$WORK/$name.rss" | tail -1) / 1024 )) MiB"
  awk -v n="$name" -v m="$m" -v P="$P" -v R="$R" -v r="$rss" 'BEGIN {printf "| %s | %.2f | %.2fx | %.2fx | %s |\n", n, m, m/P, m/R, r}'
done
echo
for name in $NAMES; do echo "  $name: $(tr '\n' ' ' < "$WORK/$name.t")"; done
printf '\n| contender | server CPU core-s (median) | client CPU core-s (median) | per run, server / client |\n|---|---:|---:|---|\n'
for name in $NAMES; do
  printf '| %s | %.2f | %.2f | %s |\n' "$name" "$(median < "$WORK/$name.server")" "$(median < "$WORK/$name.client")" \
    "$(paste -d/ "$WORK/$name.server" "$WORK/$name.client" | tr '\n' ' ')"
done
if [ -n "${BENCH_UNITS:-}" ]; then
  printf '\nServer time per unit of work (statement durations from the server log, summed; medians of the runs):\n\n'
  python3 "$UNITS" units "$WORK/units" $NAMES
fi
echo
echo "  machine CPU per run (all processes):"
sed 's/^/    /' "$WORK/cpu.txt"
echo "  phases psql -f (s):"
sed 's/^/    /' "$WORK/psqlf.phases"
for name in $NAMES; do
  [ "$name" != psqlf ] && [ -f "$WORK/$name.phases" ] || continue
  echo "  phases $name (s):"
  sed 's/^/    /' "$WORK/$name.phases"
done

# The simulator, checked where it can be: a trace of one more --jobs 1 run, replayed.
fresh
"$BIN" restore --bucket "$WORK/b" --backup-id "$ID" --target "$DSN" --yes --no-verify -q --jobs 1 \
  --trace "$WORK/trace.jsonl" > /dev/null
CORES=$(nproc)
"$BIN" simulate --trace "$WORK/trace.jsonl" --cores "$CORES" --max-connections 16 --json > "$WORK/sim.json"
# BENCH_KEEP=DIR keeps the trace and the measured times, to replay them with other models.
if [ -n "${BENCH_KEEP:-}" ]; then mkdir -p "$BENCH_KEEP"; cp "$WORK"/trace.jsonl "$WORK"/*.t "$BENCH_KEEP"/; fi
printf '\n| connections | measured median s | predicted s (%s cores) |\n|---:|---:|---:|\n' "$CORES"
python3 - "$WORK" <<'PY'
import json, sys, statistics
w = sys.argv[1]
sim = {p["connections"]: p["seconds"] for p in json.load(open(w + "/sim.json"))["predicted"]}
for n in range(1, 17):
    try:
        m = "%.2f" % statistics.median(float(x) for x in open("%s/jobs%d.t" % (w, n)))
    except OSError:
        m = "-"
    print("| %d | %s | %.2f |" % (n, m, sim[n]))
PY
