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
if [ ! -x "$root/usr/bin/dpkg" ]; then
  # Debian has no ubuntu-keyring package; the chroot is a throwaway test root.
  debootstrap --no-check-gpg --variant=minbase jammy "$root" http://archive.ubuntu.com/ubuntu > /dev/null
fi
cp "$bin" "$root/tmp/a9s-recover-portable"
cp "$deb" "$root/tmp/a9s-recover.deb"
rm -rf "$root/tmp/bucket" && cp -r examples/bucket "$root/tmp/bucket"
id=5d3c9a1e-7f2b-4c1a-9e8d-2b6f0a4c8e17-1732183200000
want=$(grep -o '"plaintext_sha256": *"[0-9a-f]*"' "examples/bucket/$id.json" | grep -o '[0-9a-f]\{64\}')
chroot "$root" /bin/sh -ec "
  grep PRETTY_NAME /etc/os-release; ldd --version | head -1
  /tmp/a9s-recover-portable --version
  test \"\$(A9S_SECRET=demo /tmp/a9s-recover-portable --bucket /tmp/bucket --backup-id $id | sha256sum | cut -d' ' -f1)\" = $want
  echo 'portable binary: the quick start recovered the example byte for byte'
  dpkg -i /tmp/a9s-recover.deb > /dev/null
  test \"\$(A9S_SECRET=demo a9s-recover --bucket /usr/share/doc/a9s-recover/examples/bucket --backup-id $id | sha256sum | cut -d' ' -f1)\" = $want
  echo '.deb: installed, and the quick start from its example recovered byte for byte'
  dpkg -r a9s-recover > /dev/null
" || fail "on Jammy (above)"
echo "check-on-jammy: OK"
