#!/bin/sh
# Rewrites the generated key reference in docs/configuration.md from the table
# in common/config.c: man/update-configuration-md.sh BUILD_DIR
set -eu
build=${1:?usage: $0 BUILD_DIR}
top=$(dirname "$0")/..
doc=$top/docs/configuration.md
gen=$build/man/gen-config-doc
tmp=$(mktemp)
"$gen" markdown > "$tmp.keys"
awk -v keys="$tmp.keys" '
  /^<!-- BEGIN KEYS/ { while ((getline l < keys) > 0) print l; skip = 1; next }
  /^<!-- END KEYS -->/ { skip = 0; next }
  !skip { print }' "$doc" > "$tmp"
mv "$tmp" "$doc"
rm -f "$tmp.keys"
