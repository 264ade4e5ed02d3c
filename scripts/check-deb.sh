#!/usr/bin/env bash
# Installs the .deb with dpkg -i and checks what it installed: the binary on PATH and its
# --version, the man page, the completions, and the quick start on the example backup it
# ships. Removes the package again unless --keep. Runs as root or with sudo.
#
#   scripts/check-deb.sh dist/a9s-recover_0.1.0-1_amd64.deb [--keep]
set -euo pipefail
deb=${1:?usage: check-deb.sh PACKAGE.deb [--keep]}
keep=${2:-}
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }
say() { echo "check-deb: $*"; }

$SUDO dpkg -i "$deb"
[ "$keep" = --keep ] || trap '$SUDO dpkg -r a9s-recover > /dev/null' EXIT
[ "$(command -v a9s-recover)" = /usr/bin/a9s-recover ] \
  || fail "a9s-recover on PATH is $(command -v a9s-recover || echo nothing), not /usr/bin/a9s-recover"
a9s-recover --version
a9s-recover --version | grep -q 'ISA-L .*linked statically' || fail "--version: ISA-L not linked statically"

for f in /usr/share/man/man1/a9s-recover.1.gz \
  /usr/share/bash-completion/completions/a9s-recover \
  /usr/share/zsh/vendor-completions/_a9s-recover \
  /usr/share/fish/vendor_completions.d/a9s-recover.fish; do
  [ -s "$f" ] || fail "$f is missing or empty"
done
zcat /usr/share/man/man1/a9s-recover.1.gz | grep -q '^\.TH a9s-recover' || fail "the man page has no .TH header"
bash -c 'source /usr/share/bash-completion/completions/a9s-recover && complete -p a9s-recover' > /dev/null \
  || fail "the bash completion does not register a9s-recover"
say "man page and completions installed"

# The quick start, from the example backup the package ships.
examples=/usr/share/doc/a9s-recover/examples/bucket
out=$(mktemp)
trap 'rm -f "$out"; [ "$keep" = --keep ] || $SUDO dpkg -r a9s-recover > /dev/null' EXIT
A9S_SECRET=demo a9s-recover --bucket "$examples" \
  --backup-id 5d3c9a1e-7f2b-4c1a-9e8d-2b6f0a4c8e17-1732183200000 > "$out"
head -n 3 "$out"
grep -q 'PostgreSQL database' "$out" || fail "the quick start did not print a PostgreSQL dump"
want=$(grep -o '"plaintext_sha256": *"[0-9a-f]*"' "$examples"/*.json | grep -o '[0-9a-f]\{64\}')
got=$(sha256sum < "$out" | cut -d' ' -f1)
[ "$want" = "$got" ] || fail "the recovered dump's sha256 is $got, the metadata says $want"
say "the installed package recovered the example backup ($(wc -c < "$out") bytes, sha256 ${got:0:12}…)"
