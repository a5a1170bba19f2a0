#!/usr/bin/env bash
# Builds tern, installs it and starts it, then shows one message going
# through: swaks sends it to a local user over SMTP on 127.0.0.1:25, and the
# journal lines for its queue id and the delivered Maildir file are printed.
#
# Under a systemd host (PID 1 is systemd) tern is installed for real (meson
# install to /usr/local, systemctl enable --now tern.target) and the message
# goes to $TERN_DEMO_USER (default: the user who ran sudo, else root).
# Otherwise tern runs in a throwaway systemd container (systemd-nspawn) and
# the message goes to a user "alice" created there; TERN_KEEP_CONTAINER=1
# leaves the container running afterwards.
#
# Usage: sudo ./scripts/run.sh        (TERN_BUILD=dir overrides build/)
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "$0")/common.sh"
# shellcheck source=scripts/container.sh
. "$root/scripts/container.sh"

require_root
build=${TERN_BUILD:-$root/build}

if [ -d /run/systemd/system ]; then
        mode=host
        install_packages "${BUILD_PACKAGES[@]}" swaks iproute2
else
        mode=container
        install_packages "${BUILD_PACKAGES[@]}" swaks systemd-container
fi

say "building in $build"
meson_build "$build"

# send_demo_message RUNNER USER MAILDIR_NEW: RUNNER is "" (host) or "ct".
send_demo_message() {
        local runner=$1 user=$2 maildir_new=$3 out qid file
        say "sending a message to $user@localhost with swaks"
        out=$($runner swaks --server 127.0.0.1 --port 25 --helo demo.client \
                --from demo@example.org --to "$user@localhost" \
                --header "Subject: hello from scripts/run.sh" \
                --body "tern delivered this message.") ||
                { printf '%s\n' "$out"; die "swaks failed"; }
        printf '%s\n' "$out" | grep -E '^ *(<-|->|<~|~>) '
        qid=$(printf '%s\n' "$out" | sed -n 's/.*250 2\.0\.0 Ok: queued as \([0-9A-F]*\).*/\1/p')
        [ -n "$qid" ] || die "no queue id in the reply to DATA"
        file=
        for _ in $(seq 1 300); do
                file=$(grep -l "id $qid" "$maildir_new"/* 2>/dev/null | head -n 1) && break
                sleep 0.1
        done
        [ -n "$file" ] || die "message $qid was not delivered to $maildir_new within 30 s"
        say "journalctl TERN_QUEUE_ID=$qid"
        $runner journalctl --no-pager -o short-precise "TERN_QUEUE_ID=$qid"
        say "delivered: ${file#/proc/*/root}"
        cat "$file"
}

if [ $mode = host ]; then
        say "installing to /usr/local and starting tern.target"
        meson install -C "$build" --no-rebuild --quiet
        systemd-sysusers /usr/local/lib/sysusers.d/tern.conf
        systemd-tmpfiles --create /usr/local/lib/tmpfiles.d/tern.conf
        systemctl daemon-reload
        if ! systemctl -q is-active tern-smtp.socket &&
                ss -Hltn 'sport = :25' | grep -q .; then
                ss -Hltnp 'sport = :25' >&2
                die "port 25 is taken by another MTA; stop and disable it first"
        fi
        systemctl enable tern.target
        # restart picks up new binaries and units on a second run.
        systemctl restart tern.target
        user=${TERN_DEMO_USER:-${SUDO_USER:-root}}
        home=$(getent passwd "$user" | cut -d: -f6)
        send_demo_message "" "$user" "$home/Maildir/new"
        say "tern is running: systemctl status tern.target; journalctl -u 'tern*'"
else
        stage=$root/stage
        say "PID 1 is not systemd: running tern in a throwaway systemd container"
        rm -rf "$stage"
        mkdir -p "$stage"
        meson install -C "$build" --no-rebuild --quiet --destdir "$stage"
        if [ -z "${TERN_KEEP_CONTAINER:-}" ]; then
                trap ct_stop EXIT
        fi
        ct_boot "$stage" "tern-demo-$$"
        ct useradd --create-home --shell /bin/sh alice
        ct systemctl start tern.target
        ct systemctl --no-pager --no-legend list-units 'tern*'
        send_demo_message ct alice "/proc/$ct_pid/root/home/alice/Maildir/new"
        if [ -n "${TERN_KEEP_CONTAINER:-}" ]; then
                say "container left running: nsenter -t $ct_pid -a bash; stop it with kill $ct_nspawn_pid"
        fi
fi
