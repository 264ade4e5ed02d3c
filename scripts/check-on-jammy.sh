#!/usr/bin/env bash
# Runs the portable binary and the .deb on Ubuntu 22.04 (Jammy, glibc 2.35, the oldest glibc
# they are built for) in a chroot: debootstrap's minimal Jammy, then --version, the quick start
# from a copied example, dpkg -i of the package and the quick start from what it installed.
# Root only (debootstrap, chroot); not part of .ci/run (it downloads about 40 MB from
# archive.ubuntu.com). Run scripts/build-portable.sh --deb first.
#
#   sudo scripts/check-on-jammy.sh [ROOT]        # ROOT defaults to .test-tools/jammy
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-.test-tools/jammy}
fail() { echo "check-on-jammy: FAIL: $*" >&2; exit 1; }
bin=dist/a9s-recover-x86_64-linux
deb=$(ls -1t dist/a9s-recover_*_amd64.deb 2> /dev/null | head -1)
[ -x "$bin" ] && [ -n "$deb" ] || fail "no $bin or .deb in dist/: run scripts/build-portable.sh --deb"
command -v debootstrap > /dev/null || apt-get install -y -qq --no-install-recommends debootstrap > /dev/null
# The root is a Jammy chroot this script made, or an empty or new directory: never the host
# (`/`) or another system, where dpkg -i and dpkg -r would act for real.
if [ -n "$(ls -A "$root" 2>/dev/null)" ] \
  && ! grep -qs '^VERSION_CODENAME=jammy$' "$root/etc/os-release"; then
  fail "$root is neither empty nor an Ubuntu Jammy root: name a new directory"
fi
[ "$(cd "$root" 2>/dev/null && pwd -P)" != / ] || fail "the root is /: name a new directory"
if [ ! -x "$root/usr/bin/dpkg" ]; then
  # Debian has no ubuntu-keyring package; the chroot is a throwaway test root.
  debootstrap --no-check-gpg --variant=minbase jammy "$root" http://archive.ubuntu.com/ubuntu > /dev/null
fi
cp "$bin" "$root/tmp/a9s-recover-portable"
cp "$deb" "$root/tmp/a9s-recover.deb"
cp scripts/check-example.sh "$root/tmp/"
rm -rf "$root/tmp/bucket" && cp -r examples/bucket "$root/tmp/bucket"
chroot "$root" /bin/bash -ec "
  grep PRETTY_NAME /etc/os-release; ldd --version | head -1
  /tmp/a9s-recover-portable --version
  /tmp/check-example.sh /tmp/a9s-recover-portable /tmp/bucket
  dpkg -i /tmp/a9s-recover.deb > /dev/null
  /tmp/check-example.sh a9s-recover /usr/share/doc/a9s-recover/examples/bucket
  dpkg -r a9s-recover > /dev/null
" || fail "on Jammy (above)"
echo "check-on-jammy: OK"
