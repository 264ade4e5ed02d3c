#!/usr/bin/env bash
# Installs the .deb with dpkg -i and checks what it installed: the binary on PATH and its
# --version, the man page, the completions, and the quick start on the example backup it
# ships. Removes the package again unless --keep; refuses to run without --keep where
# a9s-recover is already installed. Runs as root or with sudo.
#
#   scripts/check-deb.sh dist/a9s-recover_0.1.0-1_amd64.deb [--keep]
set -euo pipefail
deb=${1:?usage: check-deb.sh PACKAGE.deb [--keep]}
keep=${2:-}
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }
say() { echo "check-deb: $*"; }

# The check removes the package when done: it must not remove one the machine already had.
installed=$(dpkg-query -W -f='${Status} ${Version}' a9s-recover 2>/dev/null | grep '^install ok installed' || true)
if [ -n "$installed" ] && [ "$keep" != --keep ]; then
  fail "a9s-recover ${installed##* } is installed here; this check would replace it and then remove it. Run with --keep (it stays installed, replaced by $deb), or remove it first"
fi
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
"$(dirname "$0")/check-example.sh" a9s-recover /usr/share/doc/a9s-recover/examples/bucket
