#!/usr/bin/env bash
# Checks that a binary needs nothing but glibc, and no glibc newer than 2.35 (Ubuntu Jammy):
#   - ldd lists only libc, libm, libgcc_s and the dynamic loader (and libpthread, libdl,
#     librt, which older glibc keeps apart);
#   - the newest GLIBC_ symbol version it references (objdump -T) is at most 2.35;
#   - its --version says OpenSSL and ISA-L are linked statically;
#   - it recovers the bundled example backup (the quick start) byte for byte.
#
#   scripts/check-portable.sh dist/a9s-recover-x86_64-linux
set -euo pipefail
bin=${1:?usage: check-portable.sh BINARY}
max_glibc=${MAX_GLIBC:-2.35}
fail() { echo "check-portable: FAIL: $*" >&2; exit 1; }

libs=$(ldd "$bin" | awk '{print $1}')
allowed='^(linux-vdso\.so\.1|libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|/lib64/ld-linux-x86-64\.so\.2)$'
extra=$(echo "$libs" | grep -Ev "$allowed" || true)
[ -z "$extra" ] || fail "$bin needs libraries beyond glibc: $(echo $extra)"
echo "check-portable: ldd: $(echo $libs)"

newest=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
[ -n "$newest" ] || fail "no GLIBC_ symbol versions found in $bin (is it a glibc binary?)"
top=$(printf '%s\n%s\n' "$newest" "$max_glibc" | sort -V | tail -1)
[ "$top" = "$max_glibc" ] || {
  objdump -T "$bin" | grep "GLIBC_$newest" >&2
  fail "$bin references GLIBC_$newest, newer than $max_glibc"
}
echo "check-portable: newest glibc symbol version: GLIBC_$newest (at most $max_glibc)"

version=$("$bin" --version)
echo "$version" | grep -q '^OpenSSL: .*linked statically' || fail "OpenSSL is not linked statically: $version"
echo "$version" | grep -q 'ISA-L .*linked statically' || fail "ISA-L is not linked statically: $version"
echo "check-portable: --version says OpenSSL and ISA-L are linked statically"

# The quick start with this binary.
"$(dirname "$0")/check-example.sh" "$bin"
