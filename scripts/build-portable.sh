#!/usr/bin/env bash
# The portable binary: OpenSSL and ISA-L built from source and linked in, so that it needs
# nothing but glibc (2.35 or newer: Ubuntu Jammy, Debian Bookworm) and can be copied to a
# database host as it is. With --deb, also the Debian package (cargo deb, no second build).
#
#   scripts/build-portable.sh [--deb]
#
# Writes into dist/:
#   a9s-recover-x86_64-linux          the binary (checked: ldd and GLIBC_ symbol versions)
#   a9s-recover.1.gz                  the man page
#   completions/                      bash, zsh and fish completions
#   a9s-recover_<version>-1_amd64.deb with --deb
#
# Installs what the build needs when missing (through sudo when not root, saying what):
# nasm, autoconf, automake, libtool (ISA-L), perl and make (OpenSSL), binutils (objdump).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "build-portable: $*" >&2; }
deb=false
for arg in "$@"; do
  case "$arg" in
    --deb) deb=true ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) say "unknown argument $arg (see --help)"; exit 2 ;;
  esac
done
arch=$(uname -m)
[ "$arch" = x86_64 ] || { say "only x86_64 is built and checked so far (this is $arch)"; exit 1; }

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for p in nasm autoconf automake libtool make perl binutils pkg-config; do
  have "$p" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} with apt-get${SUDO:+ (through sudo)}"
  if ! command -v apt-get > /dev/null || { [ -n "$SUDO" ] && ! command -v sudo > /dev/null; }; then
    say "cannot install them here (no apt-get, or not root and no sudo): install ${missing[*]}"
    exit 1
  fi
  $SUDO apt-get update -qq > /dev/null || true
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" > /dev/null || { say "apt-get could not install ${missing[*]}"; exit 1; }
fi

features=s3,azure,portable
say "building (cargo build --release --locked --no-default-features --features $features);"
say "a clean build takes about 10 minutes on 2 cores (OpenSSL and ISA-L from source)"
cargo build --release --locked --no-default-features --features "$features" --quiet
mkdir -p dist/completions
bin=dist/a9s-recover-$arch-linux
# Without the line tables (110 MB → 27 MB); function names stay for backtraces. Checked under
# a temporary name, and only then put in place: a binary that fails a check is not left in
# dist/ looking like a good one.
rm -f "$bin"
strip --strip-debug -o "$bin.tmp" "${CARGO_TARGET_DIR:-target}/release/a9s-recover"
scripts/check-portable.sh "$bin.tmp" || { rm -f "$bin.tmp"; exit 1; }
mv -f "$bin.tmp" "$bin"

"$bin" man | gzip -9n > dist/a9s-recover.1.gz
"$bin" completions bash > dist/completions/a9s-recover.bash
"$bin" completions zsh > dist/completions/_a9s-recover
"$bin" completions fish > dist/completions/a9s-recover.fish
say "built $bin ($(du -h "$bin" | cut -f1)), its man page and completions"

if $deb; then
  if ! command -v cargo-deb > /dev/null; then
    say "installing cargo-deb (cargo install cargo-deb --locked, about a minute)"
    cargo install cargo-deb --locked --quiet
  fi
  # The assets in Cargo.toml's [package.metadata.deb] are the files above: no second build.
  rm -f dist/a9s-recover_*.deb   # one package in dist/, the one just built
  cargo deb --no-build --no-strip --locked --output dist/ --quiet
  say "built $(ls -1t dist/*.deb | head -1)"
fi
