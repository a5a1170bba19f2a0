#!/usr/bin/env bash
# Installs what the tests need, then runs them all:
#   1. build/ (gcc): every meson suite: unit, fuzz (corpus replay),
#      integration and system (a real systemd in a throwaway container);
#   2. build-asan/ (gcc, -Db_sanitize=address,undefined): unit, fuzz and
#      integration, with UBSan fatal;
#   3. tests/fuzz/run-fuzzers.sh with clang/libFuzzer for a short while.
# Prints meson's summary of each step and exits non-zero if any step failed.
#
# Usage: sudo ./scripts/test.sh
#   TERN_BUILD, TERN_ASAN_BUILD, TERN_FUZZ_BUILD override the build dirs;
#   TERN_FUZZ_SECONDS (default 20) is each fuzz target's run time, 0 skips.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "$0")/common.sh"

require_root
build=${TERN_BUILD:-$root/build}
asan_build=${TERN_ASAN_BUILD:-$root/build-asan}
fuzz_build=${TERN_FUZZ_BUILD:-$root/build-fuzz}
fuzz_seconds=${TERN_FUZZ_SECONDS:-20}

# Besides the build: clang and its libFuzzer runtime for the fuzzers; swaks,
# Python and OpenSSL's tools as real clients; systemd-container (nspawn) for
# the system test; iproute2 and util-linux (nsenter) for the scripts.
# Real peers of the integration and system tests: Dovecot (auth socket and
# LMTP), dnsmasq (MX, null MX and DNSBL records), Postfix (smtp-source and
# smtp-sink, and the benchmark's smoke mode), testssl.sh; dpkg-dev, debhelper
# and debootstrap build and install the Debian package.
install_packages "${BUILD_PACKAGES[@]}" clang libclang-rt-dev swaks python3 openssl \
        systemd-container util-linux iproute2 dovecot-core dovecot-lmtpd dnsmasq-base \
        postfix testssl.sh bsdextrautils dpkg-dev debhelper fakeroot debootstrap strace \
        libcrypt-dev

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=()
summary=()

# step NAME CMD...: runs one step with its output shown and kept, and records
# meson's summary lines (Ok:, Fail:, Skipped: ...) and whether it passed.
step() {
        local name=$1 log
        shift
        log=$logs/${name// /_}.log
        say "$name"
        if "$@" 2>&1 | tee "$log"; then
                summary+=("$name: passed")
        else
                summary+=("$name: FAILED")
                failed+=("$name")
        fi
        while IFS= read -r line; do
                summary+=("    $line")
        done < <(grep -E '^(Ok|Expected Fail|Fail|Unexpected Pass|Skipped|Timeout): ' "$log" || true)
}

build_and_test() {
        local dir=$1
        shift
        local opts=() suites=()
        while [ $# -gt 0 ] && [ "$1" != -- ]; do
                opts+=("$1")
                shift
        done
        [ $# -gt 0 ] && shift
        suites=("$@")
        meson_build "$dir" "${opts[@]}" &&
                meson test -C "$dir" --print-errorlogs "${suites[@]}"
}

# The package test debootstraps a Debian 12 root once (minutes; cached in
# /var/cache/tern-test for later runs): the test command always runs it.
export TERN_PACKAGE_TEST=${TERN_PACKAGE_TEST:-1}
step "gcc build, all suites" build_and_test "$build" -- \
        --suite unit --suite fuzz --suite integration --suite system

# The sanitized build. Leak checking is off: LeakSanitizer suspends the
# process with ptrace at exit, which smtpd's seccomp filter forbids, so every
# sandboxed smtpd would die in the leak checker; the filter is never relaxed
# for tests. Address errors and undefined behaviour still abort the process.
asan_build_and_test() {
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
                ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
                build_and_test "$@"
}
step "address,undefined sanitizers: unit fuzz integration" asan_build_and_test "$asan_build" \
        -Db_sanitize=address,undefined -- \
        --suite unit --suite fuzz --suite integration --timeout-multiplier 3

if [ -x "$root/tests/fuzz/run-fuzzers.sh" ] && [ "$fuzz_seconds" != 0 ]; then
        step "libFuzzer (clang), ${fuzz_seconds}s per target" \
                env TERN_FUZZ_BUILD="$fuzz_build" "$root/tests/fuzz/run-fuzzers.sh" "$fuzz_seconds"
fi

say "summary"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
        echo "FAILED: ${failed[*]}"
        exit 1
fi
echo "all steps passed"
