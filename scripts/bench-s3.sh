#!/usr/bin/env bash
# End-to-end benchmark from a local S3-compatible server (moto), the manual's way against ours,
# same backup, same run, alternating:
#
#   scripts/bench-s3.sh [SIZE] [RUNS] [PART_SIZE]      e.g. scripts/bench-s3.sh 1GiB 3 256M
#
#   manual: download every part with boto3 (s3transfer, as `aws s3 cp --recursive` does) into
#           a temporary directory, then cat $(ls -1v ID-*) | openssl enc -d | gunzip -c > /dev/null
#   ours:   a9s-recover --bucket s3://bench --endpoint URL --backup-id ID > /dev/null
#
# Needs .test-tools/venv with moto[server] and boto3 (.ci/run installs them).
set -euo pipefail
SIZE=${1:-1GiB}
RUNS=${2:-3}
PART=${3:-256M}
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.test-tools/venv
[ -x "$VENV/bin/moto_server" ] || { echo "run .ci/run first (needs .test-tools/venv with moto)"; exit 1; }
cargo build --release --quiet --example gen_dump --bin a9s-recover
BIN=$ROOT/target/release/a9s-recover
WORK=$(mktemp -d "${TMPDIR:-/tmp}/a9s-bench-s3.XXXXXX")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" > "$WORK/moto.log" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null; rm -rf "$WORK"' EXIT
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export S=bench-secret-not-real A9S_SECRET=bench-secret-not-real
EP=http://127.0.0.1:$PORT
ID=bench0000-0000-0000-0000-000000000000-1700000000000
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "tools:   $(openssl version | cut -d' ' -f1-2), gzip $(gzip --version | head -1 | awk '{print $2}'), boto3 $("$VENV/bin/python" -c 'import boto3; print(boto3.__version__)'), moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)')"
mkdir "$WORK/parts"
"$ROOT/target/release/examples/gen_dump" "$SIZE" > "$WORK/plain"
DUMP=$(stat -c %s "$WORK/plain")
( cd "$WORK/parts" && gzip -6 < "$WORK/plain" | openssl enc -aes256 -md md5 -pass env:S 2>/dev/null \
    | split -b "$PART" --numeric-suffixes=1 -a 4 - "$ID-" )
rm "$WORK/plain"
for f in "$WORK/parts/$ID-"*; do n=${f##*-}; mv "$f" "$WORK/parts/$ID-$((10#$n))"; done
"$VENV/bin/python" - "$EP" "$WORK/parts" <<'PY'
import boto3, os, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
s3.create_bucket(Bucket="bench")
for name in sorted(os.listdir(sys.argv[2])):
    s3.upload_file(os.path.join(sys.argv[2], name), "bench", name)
PY
STORED=$(cat "$WORK/parts/"* | wc -c)
NPARTS=$(ls "$WORK/parts" | wc -l)
rm -r "$WORK/parts"
echo "backup:  dump $DUMP bytes, stored $STORED bytes in $NPARTS parts of $PART, served by moto at $EP"

cat > "$WORK/manual.sh" <<SH
set -euo pipefail
D=\$(mktemp -d "$WORK/dl.XXXXXX")
"$VENV/bin/python" - "$EP" "\$D" <<'PY'
import boto3, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix="$ID-"):
    for o in page.get("Contents", []):
        s3.download_file("bench", o["Key"], sys.argv[2] + "/" + o["Key"])
PY
cd "\$D" && cat \$(ls -1v $ID-*) | openssl enc -aes256 -md md5 -d -pass env:S 2>/dev/null | gunzip -c
rm -rf "\$D"
SH

measure() { # name, command...; appends "seconds maxrss_kib"
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" > /dev/null
  cat "$WORK/t" >> "$WORK/$name"
}
for _ in $(seq "$RUNS"); do
  measure manual bash "$WORK/manual.sh"
  measure ours "$BIN" --bucket s3://bench --endpoint "$EP" --backup-id "$ID" -q
done
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ref=$(cut -d' ' -f1 "$WORK/manual" | median)
printf '\n| pipeline | median s | dump MB/s | peak RSS MiB | speed vs manual |\n|---|---:|---:|---:|---:|\n'
for name in manual ours; do
  t=$(cut -d' ' -f1 "$WORK/$name" | median)
  rss=$(cut -d' ' -f2 "$WORK/$name" | sort -n | tail -1)
  awk -v n="$name" -v t="$t" -v d="$DUMP" -v r="$rss" -v ref="$ref" \
    'BEGIN {printf "| %s | %.2f | %.0f | %.1f | %.2fx |\n", n, t, d/t/1e6, r/1024, ref/t}'
done
echo
echo "runs (seconds, max RSS KiB):"
for name in manual ours; do echo "  $name: $(tr '\n' ';' < "$WORK/$name")"; done
