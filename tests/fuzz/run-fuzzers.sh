#!/bin/sh
# Builds the tests/fuzz targets as libFuzzer binaries with clang in build-fuzz
# and runs each for SECONDS (default 30), starting from its seed corpus.
# Usage: tests/fuzz/run-fuzzers.sh [SECONDS]   (TERN_FUZZ_BUILD overrides the build dir)
# New inputs go to a temporary corpus; crashes are kept in <build>/fuzz-artifacts/.
set -eu

seconds=${1:-30}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${TERN_FUZZ_BUILD:-$root/build-fuzz}

if [ ! -f "$build/build.ninja" ]; then
        CC=clang meson setup "$build" "$root" -Dfuzzer=true -Dbuildtype=debugoptimized
else
        meson configure "$build" -Dfuzzer=true
fi
ninja -C "$build" fuzzers

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
artifacts=$build/fuzz-artifacts
mkdir -p "$artifacts"

status=0
ran=0
for src in "$root"/tests/fuzz/fuzz-*.c; do
        name=$(basename "$src" .c)
        name=${name#fuzz-}
        [ "$name" = main ] && continue
        exe=$build/tests/fuzz/fuzz-$name
        if [ ! -x "$exe" ]; then
                echo "fuzz-$name: not built (not listed in tests/fuzz/meson.build?), skipped"
                continue
        fi
        mkdir -p "$work/$name"
        log=$work/$name.log
        if "$exe" -max_total_time="$seconds" -print_final_stats=1 \
                        -artifact_prefix="$artifacts/$name-" \
                        "$work/$name" "$root/tests/fuzz/$name" >"$log" 2>&1; then
                execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
                echo "fuzz-$name: ok, ${execs:-?} executions in ${seconds}s"
        else
                echo "fuzz-$name: FAILED (artifacts in $artifacts)"
                tail -n 60 "$log"
                status=1
        fi
        ran=$((ran + 1))
done

if [ "$ran" -eq 0 ]; then
        echo "no fuzz target ran" >&2
        exit 1
fi
exit $status
