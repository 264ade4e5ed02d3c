#!/usr/bin/env bash
# The quick start as a check: BINARY recovers the bundled example backup from BUCKET (the
# checkout's examples/bucket by default), and the dump's sha256 is the one its metadata
# records. Used by check-portable.sh, check-deb.sh and check-on-jammy.sh.
#
#   scripts/check-example.sh BINARY [BUCKET]
set -euo pipefail
bin=${1:?usage: check-example.sh BINARY [BUCKET]}
bucket=${2:-$(cd "$(dirname "$0")/.." && pwd)/examples/bucket}
id=5d3c9a1e-7f2b-4c1a-9e8d-2b6f0a4c8e17-1732183200000
want=$(grep -o '"plaintext_sha256": *"[0-9a-f]*"' "$bucket/$id.json" | grep -o '[0-9a-f]\{64\}')
got=$(A9S_SECRET=demo "$bin" --bucket "$bucket" --backup-id "$id" | sha256sum | cut -d' ' -f1)
if [ "$want" != "$got" ]; then
  echo "check-example: FAIL: $bin recovered a dump with sha256 $got from $bucket; its metadata says $want" >&2
  exit 1
fi
echo "check-example: $bin recovered the example backup from $bucket (sha256 ${got:0:12}…, as its metadata says)"
