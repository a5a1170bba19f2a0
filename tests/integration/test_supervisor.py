#!/usr/bin/env python3
"""tern-smtpd-supervisor (the alternative socket mode): behind
`systemd-socket-activate` without --inetd (Accept=no, the listening socket is
passed as LISTEN_FDS with its name), it forks one tern-smtpd per connection.
In both of its modes, pre-loaded (smtpd's code linked in, fork only, `-c
FILE`) and exec (`-- /path/tern-smtpd ARGS`):
  - a message sent with smtplib gets 250 and reaches queued (the spool), the
    session's role taken from the socket's name; so does one after STARTTLS;
  - a client holding --max-per-source connections has its next one closed
    without a greeting, while its open sessions still work, and a new one is
    served once one of them ends;
  - each session is its own process named tern-smtpd (two concurrent
    sessions, two children of the supervisor), in seccomp filter mode with
    no new privileges and no capabilities left;
  - SIGTERM ends the supervisor once the sessions it has are over.
Pre-loaded mode only:
  - a forked session holds neither the listening socket nor the supervisor's
    signalfd;
  - SIGHUP reloads the configuration (a new Hostname= is in the next
    greeting); a bad one is refused with an error and the old one kept;
  - a bad configuration at start makes the supervisor exit with 1;
  - a session killed by SIGSEGV makes the supervisor execute itself again
    (same pid): the next session has a new address-space layout, while the
    session of the old image carries on and still counts against the
    per-source limit.
"""

import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import tls_util  # noqa: E402


def greeting(port):
    """The first line the server sends, or b"" when it closes at once."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    buf = b""
    try:
        while b"\n" not in buf:
            d = s.recv(512)
            if not d:
                break
            buf += d
    except ConnectionResetError:
        pass
    return s, buf


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def status(pid):
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, v in (line.split(":", 1) for line in f if ":" in line)}


def check_sandboxed(pid):
    st = status(pid)
    want = {"Seccomp": "2", "NoNewPrivs": "1"}
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        want[cap] = "0000000000000000"
    wrong = {k: st.get(k) for k, v in want.items() if st.get(k) != v}
    assert not wrong, f"smtpd {pid} is not sandboxed: {wrong}"


def sockets_of(pid):
    """The socket inodes among a process's descriptors."""
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:") or link.startswith("anon_inode:[signalfd]"):
            out.add(link)
    return out


def command(activate, t, port, args):
    cmd = [activate, "-l", f"127.0.0.1:{port}", "--fdname=smtp"]
    for var in harness.FORWARDED_ENV + ("TERN_CONFIG",):
        if var in t.env:
            cmd += ["-E", f"{var}={t.env[var]}"]
    return cmd + args


def greeting_host(port):
    s, g = greeting(port)
    s.close()
    assert g.startswith(b"220 "), g
    return g.split()[1].decode()


def main():
    activate = shutil.which("systemd-socket-activate")
    if not activate:
        raise harness.Skip("systemd-socket-activate is not installed")
    sup = harness.binary("supervisor/tern-smtpd-supervisor")
    smtpd = harness.binary("smtpd/tern-smtpd")
    # With a certificate: the pre-loaded supervisor initializes OpenSSL once
    # and each session reads the files and offers STARTTLS.
    with harness.Tern(start=("queued",), conf=tls_util.tls_conf()) as t:
        # A bad configuration at start: no supervisor.
        bad = os.path.join(t.dir, "bad.conf")
        with open(bad, "w") as f:
            f.write("[Server]\nNoSuchKey = 1\n")
        port = harness.free_port()
        proc = subprocess.Popen(command(activate, t, port, [sup, "-c", bad]),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            t.wait_until(lambda: t._tcp_listening(port) or proc.poll() is not None,
                         what="the socket")
            # systemd-socket-activate starts the program at the first connection.
            s, g = greeting(port)
            s.close()
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert g == b"" and proc.returncode == 1 and "NoSuchKey" in out, (g, proc.returncode, out)
        print("ok - pre-loaded mode: a bad configuration at start, exit 1")

        run_mode(activate, t, "pre-loaded", [sup, "--max-per-source", "2", "-c", t.conf_path])
        run_mode(activate, t, "exec", [sup, "--max-per-source", "2", "--", smtpd, "-c", t.conf_path])
    return 0


def run_mode(activate, t, mode, args):
    if True:
        port = harness.free_port()
        cmd = command(activate, t, port, args)
        log_path = os.path.join(t.dir, f"supervisor-{mode}.log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT)
        try:
            t.wait_until(lambda: t._tcp_listening(port) or proc.poll() is not None,
                         what="the supervisor's socket")
            assert proc.poll() is None, open(log_path).read()

            # A message through a forked smtpd reaches the queue.
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                code, _ = s.ehlo("client.test")
                assert code == 250, code
                s.mail("a@example.org")
                code, _ = s.rcpt(f"{t.user}@{t.domain}")
                assert code == 250, code
                code, reply = s.data(b"Subject: via the supervisor\r\n\r\nhello\r\n")
                assert code == 250 and b"queued as" in reply, (code, reply)
            print(f"ok - {mode}: a message through the supervisor gets 250", reply.decode())
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                s.ehlo("client.test")
                code, _ = s.starttls(context=tls_util.client_context())
                assert code == 220, code
                s.ehlo("client.test")
                s.mail("a@example.org")
                s.rcpt(f"{t.user}@{t.domain}")
                code, reply = s.data(b"Subject: TLS via the supervisor\r\n\r\nhello\r\n")
                assert code == 250, (code, reply)
            print(f"ok - {mode}: STARTTLS and a message over TLS")

            # Two sessions held: two smtpd processes; the third is closed.
            s1, g1 = greeting(port)
            s2, g2 = greeting(port)
            assert g1.startswith(b"220") and g2.startswith(b"220"), (g1, g2)
            # systemd-socket-activate execs the supervisor: same PID.
            kids = t.wait_until(lambda: (lambda k: k if len(k) >= 2 else None)(children(proc.pid)),
                                what="two smtpd children")
            comms = {open(f"/proc/{k}/comm").read().strip() for k in kids}
            assert comms == {"tern-smtpd"}, comms
            print(f"ok - {mode}: two sessions, two smtpd processes {sorted(kids)}")
            for k in kids:
                # The greeting is sent from inside the sandbox.
                check_sandboxed(k)
            print(f"ok - {mode}: both in seccomp mode 2, NoNewPrivs 1, no capabilities")
            if mode == "pre-loaded":
                # Of the supervisor's descriptors, the child may share only
                # the journal socket and stdio, as an exec'd smtpd would.
                ours = sockets_of(proc.pid)
                for k in kids:
                    leaked = ours & sockets_of(k)
                    assert not leaked, (k, leaked)
                print("ok - pre-loaded: no session holds the listening socket or the signalfd")
            s3, g3 = greeting(port)
            s3.close()
            assert g3 == b"", g3
            print(f"ok - {mode}: the third connection from the same source is closed unanswered")
            s1.sendall(b"NOOP\r\n")
            assert s1.recv(512).startswith(b"250")
            s1.sendall(b"QUIT\r\n")
            s1.recv(512)
            s1.close()
            # Once the supervisor has reaped that session a new one is served.
            t.wait_until(lambda: len(children(proc.pid)) < 2, what="a session reaped")
            s4, g4 = greeting(port)
            assert g4.startswith(b"220"), g4
            s4.close()
            s2.close()
            print(f"ok - {mode}: after one session ends a new connection is served")
            t.wait_until(lambda: "connection refused" in open(log_path).read(),
                         what="the refusal in the supervisor's log")
            t.wait_until(lambda: len(children(proc.pid)) == 0, what="the sessions reaped")
            if mode == "pre-loaded":
                check_reload(t, proc, port, log_path)
                check_crash_reexec(t, proc, port, log_path)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError("the supervisor did not exit on SIGTERM")
        assert rc == 0, (rc, open(log_path).read())
        print(f"ok - {mode}: SIGTERM: the supervisor exits 0 once its sessions are over")


def new_child(t, proc, known):
    kid = t.wait_until(lambda: (lambda k: k[0] if k else None)(
        [k for k in children(proc.pid) if k not in known]), what="a new session process")
    known.add(kid)
    return kid


def text_base(pid):
    """Where the process's executable is mapped (its first mapping of the
    file; under AddressSanitizer the first lines are its fixed shadow)."""
    exe = os.readlink(f"/proc/{pid}/exe")
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            if line.rstrip("\n").endswith(" " + exe):
                return line.split("-")[0]
    raise AssertionError(f"no mapping of {exe} in /proc/{pid}/maps")


def check_crash_reexec(t, proc, port, log_path):
    known = set(children(proc.pid))
    s1, g1 = greeting(port)
    assert g1.startswith(b"220"), g1
    k1 = new_child(t, proc, known)
    base1 = text_base(k1)
    s2, g2 = greeting(port)
    assert g2.startswith(b"220"), g2
    k2 = new_child(t, proc, known)
    assert text_base(k2) == base1  # forks of one image share its layout
    os.kill(k2, signal.SIGSEGV)
    t.wait_until(lambda: "re-executed: 1 session(s)" in open(log_path).read(),
                 what="the supervisor re-executed")
    s2.close()
    assert proc.poll() is None
    s3, g3 = greeting(port)
    assert g3.startswith(b"220"), g3
    k3 = new_child(t, proc, known)
    assert text_base(k3) != base1, (base1, text_base(k3))
    print("ok - pre-loaded: after a crashed session the supervisor re-executes itself, "
          f"new layout ({base1} -> {text_base(k3)})")
    s4, g4 = greeting(port)
    s4.close()
    assert g4 == b"", g4
    s1.sendall(b"NOOP\r\n")
    assert s1.recv(512).startswith(b"250")
    for s in (s1, s3):
        s.sendall(b"QUIT\r\n")
        s.recv(512)
        s.close()
    t.wait_until(lambda: len(children(proc.pid)) == 0, what="the sessions reaped")
    print("ok - pre-loaded: the old image's session carries on and still counts against the limit")


def check_reload(t, proc, port, log_path):
    before = greeting_host(port)
    assert before == t.hostname, (before, t.hostname)
    dropin = os.path.join(t.conf_path + ".d", "60-reload.conf")
    with open(dropin, "w") as f:
        f.write("[Server]\nHostname = reloaded.test\n")
    proc.send_signal(signal.SIGHUP)
    t.wait_until(lambda: "Configuration reloaded" in open(log_path).read(), what="the reload")
    assert greeting_host(port) == "reloaded.test"
    print("ok - pre-loaded: SIGHUP reloads the configuration (new Hostname in the greeting)")
    with open(dropin, "w") as f:
        f.write("[Server]\nNoSuchKey = 1\n")
    proc.send_signal(signal.SIGHUP)
    t.wait_until(lambda: "Reload refused" in open(log_path).read(), what="the refused reload")
    assert "NoSuchKey" in open(log_path).read()
    assert greeting_host(port) == "reloaded.test"
    os.unlink(dropin)
    print("ok - pre-loaded: a bad configuration on SIGHUP is refused, the running one kept")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except harness.Skip as e:
        print(f"skipped: {e}")
        sys.exit(77)
