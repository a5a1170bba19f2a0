#!/usr/bin/env python3
"""tern-smtpd-supervisor (the alternative socket mode): behind
`systemd-socket-activate` without --inetd (Accept=no, the listening socket is
passed as LISTEN_FDS with its name), it forks one tern-smtpd per connection:
  - a message sent with smtplib gets 250 and reaches queued (the spool), the
    smtpd being started with --role taken from the socket's name;
  - a client holding --max-per-source connections has its next one closed
    without a greeting, while its open sessions still work, and a new one is
    served once one of them ends;
  - each session is its own process (two concurrent sessions, two smtpd PIDs
    below the supervisor);
  - SIGTERM ends the supervisor once the sessions it has are over.
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


def main():
    activate = shutil.which("systemd-socket-activate")
    if not activate:
        raise harness.Skip("systemd-socket-activate is not installed")
    sup = harness.binary("supervisor/tern-smtpd-supervisor")
    smtpd = harness.binary("smtpd/tern-smtpd")
    with harness.Tern(start=("queued",)) as t:
        port = harness.free_port()
        cmd = [activate, "-l", f"127.0.0.1:{port}", "--fdname=smtp"]
        for var in harness.FORWARDED_ENV + ("TERN_CONFIG",):
            if var in t.env:
                cmd += ["-E", f"{var}={t.env[var]}"]
        cmd += [sup, "--max-per-source", "2", "--", smtpd, "-c", t.conf_path]
        log_path = os.path.join(t.dir, "supervisor.log")
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
            print("ok - a message through the supervisor gets 250", reply.decode())

            # Two sessions held: two smtpd processes; the third is closed.
            s1, g1 = greeting(port)
            s2, g2 = greeting(port)
            assert g1.startswith(b"220") and g2.startswith(b"220"), (g1, g2)
            # systemd-socket-activate execs the supervisor: same PID.
            kids = t.wait_until(lambda: (lambda k: k if len(k) >= 2 else None)(children(proc.pid)),
                                what="two smtpd children")
            comms = {open(f"/proc/{k}/comm").read().strip() for k in kids}
            assert comms == {"tern-smtpd"}, comms
            print(f"ok - two sessions, two smtpd processes {sorted(kids)}")
            s3, g3 = greeting(port)
            s3.close()
            assert g3 == b"", g3
            print("ok - the third connection from the same source is closed unanswered")
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
            print("ok - after one session ends a new connection is served")
            t.wait_until(lambda: "connection refused" in open(log_path).read(),
                         what="the refusal in the supervisor's log")
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
        print("ok - SIGTERM: the supervisor exits 0 once its sessions are over")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except harness.Skip as e:
        print(f"skipped: {e}")
        sys.exit(77)
