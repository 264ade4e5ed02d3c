#!/usr/bin/env bash
# From a fresh Debian or Ubuntu machine with only a Rust toolchain to a recovered example:
# installs what is missing (through sudo when not root, saying what), builds a release
# binary, and recovers the bundled example backup to stdout.
#
#   scripts/quickstart.sh | head -n 20
#
# Where packages cannot be installed, it builds without ISA-L (inflate with zlib-rs, about
# 30% slower) and says so; without OpenSSL's headers nothing can be built, and it says that.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "quickstart: $*" >&2; }
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for p in libssl-dev pkg-config libisal-dev; do
  have "$p" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} with apt-get${SUDO:+ (through sudo)}"
  if command -v apt-get > /dev/null && { [ -z "$SUDO" ] || sudo -n true 2> /dev/null || sudo true; }; then
    $SUDO apt-get update -qq > /dev/null || true
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null \
      || say "apt-get could not install everything"
  else
    say "cannot install packages here (no apt-get, or no sudo)"
  fi
fi
features=()
if ! have libisal-dev; then
  say "ISA-L (libisal-dev) is not installed: building without it; gunzip uses zlib-rs, about 30% slower"
  features=(--no-default-features --features s3,azure)
fi
have libssl-dev || say "OpenSSL's headers (libssl-dev) are missing: the build will fail; install libssl-dev"
say "building (cargo build --release ${features[*]:-}); the first build takes several minutes"
cargo build --release --quiet "${features[@]}"
say "recovering the example backup (secret: demo) to stdout"
A9S_SECRET=demo exec "${CARGO_TARGET_DIR:-target}/release/a9s-recover" --bucket examples/bucket \
  --backup-id 5d3c9a1e-7f2b-4c1a-9e8d-2b6f0a4c8e17-1732183200000
