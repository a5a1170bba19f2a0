# shellcheck shell=bash
# Shared by run.sh and test.sh (sourced, not run): root check, Debian
# packages, the meson build. Callers set -euo pipefail.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive

# What building tern needs on Debian 12 (used by the scripts that source this).
# shellcheck disable=SC2034
BUILD_PACKAGES=(meson ninja-build pkg-config gcc libc6-dev libsystemd-dev libssl-dev
        libcap-dev libseccomp-dev libcdb-dev tinycdb libcrypt-dev systemd python3)

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
        # Packages such as postfix, dovecot and dnsmasq start their daemon on
        # installation; a policy-rc.d that answers 101 keeps them stopped (the
        # tests start their own instances on their own ports). An existing
        # policy file is left alone. The dpkg lock is waited for, not fought.
        local policy=/usr/sbin/policy-rc.d placed=
        if [ ! -e $policy ]; then
                printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy && placed=1
        fi
        local rc=0
        apt-get -o DPkg::Lock::Timeout=600 update -q &&
                apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
                        "${missing[@]}" </dev/null || rc=$?
        [ -n "$placed" ] && rm -f $policy
        return $rc
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
