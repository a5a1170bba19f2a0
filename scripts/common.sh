# shellcheck shell=bash
# Shared by run.sh and test.sh (sourced, not run): root check, Debian
# packages, the meson build. Callers set -euo pipefail.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive

# What building tern needs on Debian 12 (used by the scripts that source this).
# shellcheck disable=SC2034
BUILD_PACKAGES=(meson ninja-build pkg-config gcc libc6-dev libsystemd-dev libssl-dev
        libcap-dev libseccomp-dev libcdb-dev tinycdb systemd python3)

say() {
        printf '\n==> %s\n' "$*"
}

die() {
        printf 'error: %s\n' "$*" >&2
        exit 1
}

require_root() {
        [ "$(id -u)" -eq 0 ] || die "run me as root (sudo $0)"
}

# Installs the given Debian packages that are missing; apt-get update runs
# only when something has to be installed, so a second run is quick.
install_packages() {
        local missing=() p
        for p in "$@"; do
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
                        missing+=("$p")
        done
        [ ${#missing[@]} -eq 0 ] && return 0
        say "installing ${missing[*]}"
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

# meson_build DIR [meson options...]: configures DIR once (prefix /usr/local,
# /etc for the configuration), reconfigures it with the options after that,
# and builds it.
meson_build() {
        local dir=$1
        shift
        # Explicit && and ||: callers may run this where set -e is off (if, ||).
        if [ -f "$dir/build.ninja" ]; then
                meson configure "$dir" "$@" >/dev/null || return
        else
                meson setup "$dir" "$root" -Dprefix=/usr/local -Dsysconfdir=/etc "$@" || return
        fi
        ninja -C "$dir"
}
