#!/usr/bin/env bash
# End-to-end benchmark: a9s-recover against the a9s manual's shell pipeline, same backup,
# same run, alternating, page cache warm for both.
#
#   scripts/bench-e2e.sh [SIZE] [RUNS] [PART_SIZE]     e.g. scripts/bench-e2e.sh 2GiB 3 512M
#
# The backup is made the way a9s makes it, with the real tools:
#   gen_dump SIZE | gzip -6 | openssl enc -aes256 -md md5 | split -b PART_SIZE  ->  ID-1..N
# Then, RUNS times each, alternating:
#   manual:  cat $(ls -1v ID-*) | openssl enc -aes256 -md md5 -d | gunzip -c > /dev/null
#   ours:    a9s-recover --bucket DIR --backup-id ID > /dev/null
#   verify:  a9s-recover verify ... (sha256 + COPY row counts as well)
# and prints the median wall time, MB/s of dump, peak RSS and the ratio manual/ours.
set -euo pipefail
SIZE=${1:-1GiB}
RUNS=${2:-3}
PART=${3:-256M}
cd "$(dirname "$0")/.."
cargo build --release --quiet --example gen_dump --bin a9s-recover
BIN=$PWD/target/release/a9s-recover
GEN=$PWD/target/release/examples/gen_dump
WORK=$(mktemp -d "${TMPDIR:-/tmp}/a9s-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ID=bench0000-0000-0000-0000-000000000000-1700000000000
export S=bench-secret-not-real A9S_SECRET=bench-secret-not-real
mkdir -p "$WORK/b"

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "tools:   $(openssl version | cut -d' ' -f1-2), gzip $(gzip --version | head -1 | awk '{print $2}'), a9s-recover $($BIN --version | awk '{print $2}')"
"$GEN" "$SIZE" > "$WORK/plain"
DUMP=$(stat -c %s "$WORK/plain")
( cd "$WORK/b" && gzip -6 < "$WORK/plain" | openssl enc -aes256 -md md5 -pass env:S 2>/dev/null \
    | split -b "$PART" --numeric-suffixes=1 -a 4 - "$ID-" )
for f in "$WORK/b/$ID-"*; do n=${f##*-}; mv "$f" "$WORK/b/$ID-$((10#$n))"; done
STORED=$(cat "$WORK/b/$ID-"* | wc -c)
NPARTS=$(ls "$WORK/b" | wc -l)
rm "$WORK/plain"
echo "backup:  dump $DUMP bytes, stored $STORED bytes in $NPARTS parts of $PART"

measure() { # name, command...; appends "seconds maxrss_kib" to $WORK/$name
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" > /dev/null
  cat "$WORK/t" >> "$WORK/$name"
}
for _ in $(seq "$RUNS"); do
  measure manual bash -c "cd '$WORK/b' && cat \$(ls -1v $ID-*) | openssl enc -aes256 -md md5 -d -pass env:S 2>/dev/null | gunzip -c"
  measure ours "$BIN" --bucket "$WORK/b" --backup-id "$ID" -q
  measure verify "$BIN" verify --bucket "$WORK/b" --backup-id "$ID" -q
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ref=$(cut -d' ' -f1 "$WORK/manual" | median)
printf '\n| pipeline | median s | dump MB/s | peak RSS MiB | speed vs manual |\n|---|---:|---:|---:|---:|\n'
for name in manual ours verify; do
  t=$(cut -d' ' -f1 "$WORK/$name" | median)
  rss=$(cut -d' ' -f2 "$WORK/$name" | sort -n | tail -1)
  awk -v n="$name" -v t="$t" -v d="$DUMP" -v r="$rss" -v ref="$ref" \
    'BEGIN {printf "| %s | %.2f | %.0f | %.1f | %.2fx |\n", n, t, d/t/1e6, r/1024, ref/t}'
done
echo
echo "runs (seconds, max RSS KiB):"
for name in manual ours verify; do echo "  $name: $(tr '\n' ';' < "$WORK/$name")"; done
