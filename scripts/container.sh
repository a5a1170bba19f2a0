# shellcheck shell=bash
# Throwaway systemd container helpers (sourced by run.sh): boots a real
# systemd in systemd-nspawn on a volatile root that shares the host's /usr and
# sees a staged `meson install` at /usr/local. Used when PID 1 is not systemd.

ct_nspawn_pid=
ct_pid=

# Other MTAs installed on the host would be started by the container's presets
# (they see the host's /usr) and take port 25; wait-online only slows the boot
# of a container that has nothing but loopback.
CT_MASKS=(postfix.service postfix@-.service postfix-resolvconf.path postfix-resolvconf.service
        exim4.service sendmail.service opensmtpd.service nullmailer.service
        systemd-networkd-wait-online.service dovecot.service dovecot.socket dnsmasq.service)

# ct_find_init PID: the first process named systemd below PID, breadth first:
# the container's PID 1 as the host sees it.
ct_find_init() {
        local queue=("$1") pid c
        while [ ${#queue[@]} -gt 0 ]; do
                pid=${queue[0]}
                queue=("${queue[@]:1}")
                if [ "$pid" != "$1" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd ]; then
                        echo "$pid"
                        return 0
                fi
                # shellcheck disable=SC2013 # one number per word
                for c in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
                        queue+=("$c")
                done
        done
        return 1
}

# ct_boot STAGE NAME: boots the container and waits until systemd is up.
ct_boot() {
        local stage=$1 name=$2 masks=() m f
        for m in "${CT_MASKS[@]}"; do
                masks+=("systemd.mask=$m")
        done
        systemd-nspawn -D / --volatile=yes -b --register=no --keep-unit --private-network \
                -M "$name" --bind-ro="$stage/usr/local:/usr/local" \
                systemd.firstboot=off systemd.unit=multi-user.target "${masks[@]}" \
                </dev/null >"$stage/console.log" 2>&1 &
        ct_nspawn_pid=$!
        for _ in $(seq 1 600); do
                kill -0 "$ct_nspawn_pid" 2>/dev/null ||
                        { cat "$stage/console.log" >&2; die "systemd-nspawn exited"; }
                ct_pid=$(ct_find_init "$ct_nspawn_pid") && break
                sleep 0.05
        done
        [ -n "$ct_pid" ] || die "no systemd appeared in the container"
        # Right after exec, systemd does not answer yet: systemctl cannot
        # connect and prints no state. Ask again until it does.
        local state=
        for _ in $(seq 1 600); do
                state=$(ct systemctl is-system-running --wait 2>/dev/null) || true
                [ -n "$state" ] && break
                sleep 0.05
        done
        echo "container $name: systemd is up ($state)"
        # The volatile /etc starts empty; swaks needs getprotobyname("tcp").
        for f in /etc/protocols /etc/services; do
                [ -e "$f" ] && [ ! -e "/proc/$ct_pid/root$f" ] && cp "$f" "/proc/$ct_pid/root$f"
        done
        if [ "$state" != running ]; then
                ct systemctl --failed --no-pager --no-legend || true
        fi
}

# ct CMD...: runs CMD inside the container.
ct() {
        nsenter -t "$ct_pid" -a "$@"
}

# ct_stop: shuts the container down (SIGTERM is a clean shutdown for
# systemd-nspawn), and kills it if that takes too long.
ct_stop() {
        [ -n "$ct_nspawn_pid" ] || return 0
        kill -TERM "$ct_nspawn_pid" 2>/dev/null || return 0
        for _ in $(seq 1 150); do
                kill -0 "$ct_nspawn_pid" 2>/dev/null || break
                sleep 0.1
        done
        kill -KILL "$ct_nspawn_pid" 2>/dev/null || true
        wait "$ct_nspawn_pid" 2>/dev/null || true
        ct_nspawn_pid=
}
