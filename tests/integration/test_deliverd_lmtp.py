#!/usr/bin/env python3
"""deliverd's LMTP transport (RFC 2033) against Dovecot's LMTP server
(Debian dovecot-lmtpd), run by the test with its own configuration, a
passwd-file user database and Maildirs in the temp dir. The transport table
sends one domain to lmtp:unix:<socket> and another to lmtp:[127.0.0.1]:port.
Proves: messages land byte-exact in the users' Maildirs over both sockets,
one reply per recipient after DATA (a known and an unknown user in one
transaction: the known one delivered, the unknown one bounced 5.1.1)."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_deliverd_smtp import log_line  # noqa: E402

BODY = (b"From: Sender <sender@example.org>\r\n"
        b"Subject: over LMTP\r\n"
        b"\r\n"
        b"first line\r\n"
        b".leading dot\r\n"
        b"last line\r\n")

DOVECOT_CONF = """base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = lmtp
ssl = no
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
mail_location = maildir:{d}/mail/%n/Maildir
first_valid_uid = 0
auth_username_format = %Ln
lmtp_save_to_detail_mailbox = no
passdb {{
  driver = passwd-file
  args = {d}/users
}}
userdb {{
  driver = passwd-file
  args = {d}/users
  default_fields = uid={uid} gid={gid} home={d}/mail/%n
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""


class Dovecot:
    def __enter__(self):
        self.exe = shutil.which("dovecot") or "/usr/sbin/dovecot"
        if not os.path.exists(self.exe) or not os.path.exists("/usr/lib/dovecot/lmtp"):
            raise harness.Skip("dovecot-core and dovecot-lmtpd are needed")
        if os.geteuid() != 0:
            raise harness.Skip("a private dovecot instance needs root")
        self.d = tempfile.mkdtemp(prefix="tern-lmtp-")
        os.chmod(self.d, 0o755)
        self.port = harness.free_port()
        # Mailboxes owned by "nobody": dovecot refuses to deliver as root.
        import pwd
        pw = pwd.getpwnam("nobody")
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        import grp
        group = grp.getgrgid(pw.pw_gid).gr_name
        os.makedirs(os.path.join(self.d, "mail"))
        os.chown(os.path.join(self.d, "mail"), self.uid, self.gid)
        with open(os.path.join(self.d, "users"), "w") as f:
            f.write("alice:{PLAIN}x::::::\nbob:{PLAIN}x::::::\n")
        self.conf = os.path.join(self.d, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(DOVECOT_CONF.format(d=self.d, port=self.port, uid=self.uid, gid=self.gid,
                                        user="nobody", group=group))
        self.socket = os.path.join(self.d, "run", "lmtp")
        self.proc = subprocess.Popen([self.exe, "-F", "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        harness.Tern.wait_until(lambda: (os.path.exists(self.socket) and
                                         harness.Tern._tcp_listening(self.port)) or
                                self.proc.poll() is not None, what="dovecot's LMTP listeners")
        if self.proc.poll() is not None:
            raise AssertionError("dovecot exited: " + self.log())
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if exc[0] is not None:
            print("----- dovecot log -----\n" + self.log())
        shutil.rmtree(self.d, ignore_errors=True)
        return False

    def log(self):
        try:
            with open(os.path.join(self.d, "dovecot.log")) as f:
                return f.read()
        except OSError:
            return ""

    def delivered(self, user):
        return harness.maildir_messages(os.path.join(self.d, "mail", user, "Maildir"))


def setup(dc):
    text = (f"unix.test lmtp:unix:{dc.socket}\n"
            f"tcp.test lmtp:[127.0.0.1]:{dc.port}\n")
    conf_dir = tempfile.mkdtemp(prefix="tern-lmtp-map-")
    path = os.path.join(conf_dir, "transport")
    with open(path, "w") as f:
        f.write(text)
    return conf_dir, path, f"[Delivery]\nTransportTable = {path}\n"


def submit(t, rcpts):
    with t.smtp() as s:
        s.ehlo()
        s.mail(f"{t.user}@{t.domain}")  # the bounce stays local
        for r in rcpts:
            code, _ = s.rcpt(r)
            assert code == 250, (r, code)
        code, reply = s.data(BODY)
    assert code == 250, (code, reply)


def lmtp_tern(dc):
    conf_dir, path, conf = setup(dc)
    t = harness.Tern(conf=conf, start=())
    t.__enter__()
    try:
        r = t.run_cli(["ternctl", "map", path])
        assert r.returncode == 0, r
        for name in ("queued", "deliverd", "smtpd"):
            t.start(name)
    except BaseException:
        t.__exit__(*sys.exc_info())
        shutil.rmtree(conf_dir, ignore_errors=True)
        raise
    t.conf_dir_extra = conf_dir
    return t


def close_tern(t, exc):
    t.__exit__(*exc)
    shutil.rmtree(t.conf_dir_extra, ignore_errors=True)


def test_unix_socket_delivers_into_the_maildir_and_unknown_user_bounces_5_1_1():
    with Dovecot() as dc:
        t = lmtp_tern(dc)
        try:
            submit(t, ["alice@unix.test", "nobody-here@unix.test"])
            t.wait_until(lambda: dc.delivered("alice"), what="alice's Maildir")
            msg = dc.delivered("alice")[0]
            # Dovecot adds Return-Path and its Delivered-To/Received; the rest is the message.
            assert msg.replace(b"\r\n", b"\n").endswith(BODY.replace(b"\r\n", b"\n")), msg
            assert f"Return-Path: <{t.user}@{t.domain}>".encode() in msg, msg
            # The bounce for the unknown user came back to the sender.
            t.wait_until(lambda: any(b"nobody-here@unix.test" in m for m in t.delivered()),
                         what="the bounce to the sender")
            t.wait_until(lambda: log_line(t, "alice@unix.test", "sent", "2.0.0", "250 2.0.0 <alice@unix.test> ",
                                          dc.socket) or
                         f"to=<alice@unix.test>, relay={dc.socket}, " in t.log("deliverd"),
                         what="alice's delivery line")
            t.wait_until(lambda: log_line(
                t, "nobody-here@unix.test", "bounced", "5.1.1",
                f"host {dc.socket}[unix] said: 550 5.1.1 <nobody-here@unix.test> User doesn't exist: "
                f"nobody-here@unix.test (in reply to RCPT TO command)", dc.socket),
                what="the unknown user's bounce")
            assert "status=sent" in [ln for ln in t.log("deliverd").splitlines()
                                     if "to=<alice@unix.test>" in ln][0]
            close_tern(t, (None, None, None))
        except BaseException:
            close_tern(t, sys.exc_info())
            raise


def test_tcp_delivers_one_reply_per_recipient():
    with Dovecot() as dc:
        t = lmtp_tern(dc)
        try:
            submit(t, ["alice@tcp.test", "bob@tcp.test"])
            t.wait_until(lambda: dc.delivered("alice") and dc.delivered("bob"), what="both Maildirs")
            relay = f"127.0.0.1[127.0.0.1]:{dc.port}"
            for u in ("alice", "bob"):
                t.wait_until(lambda: f"to=<{u}@tcp.test>, relay={relay}, " in t.log("deliverd") and
                             "status=sent" in t.log("deliverd"), what=f"{u}'s delivery line")
            lines = [ln for ln in t.log("deliverd").splitlines() if "@tcp.test>, relay=" in ln]
            assert len(lines) == 2 and all("dsn=2.0.0, status=sent (250 2.0.0 <" in ln for ln in lines), lines
            close_tern(t, (None, None, None))
        except BaseException:
            close_tern(t, sys.exc_info())
            raise


if __name__ == "__main__":
    harness.main(globals())
