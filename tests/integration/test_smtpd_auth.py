"""AUTH (RFC 4954) in smtpd: PLAIN and LOGIN over TLS only, with the table
back end (crypt(3) hashes compiled by `ternctl map`) and with a real Dovecot
(passwd-file) behind its auth socket; the failure limit, relaying for
authenticated clients and the sender login map."""

import base64
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Tern  # noqa: E402
from tls_util import TlsClient, client_context, tls_conf  # noqa: E402

PASSWORD = "s3cret pass"


def sha512_crypt(password):
    """A $6$ hash, as `mkpasswd -m sha-512` makes it."""
    return subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password.encode(),
                          capture_output=True, check=True).stdout.decode().strip()


def yescrypt(password):
    """A $y$ hash (Debian's default since 11) through libcrypt; None without
    Python's crypt module (gone in Python 3.13)."""
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import crypt
    except ImportError:
        return None
    h = crypt.crypt(password, "$y$j9T$abcdefghijklmnop$")
    return h if h and h.startswith("$y$") else None
MESSAGE = "From: alice@test.example\r\nTo: x@example.net\r\nSubject: auth\r\n\r\nhi\r\n"


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


class TableAuth:
    """A Tern with AUTH against a password table (yescrypt and SHA-512 hashes)."""

    def __init__(self, role="smtp", extra="", logins=None):
        self.role, self.extra, self.logins = role, extra, logins

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="tern-auth-")
        os.chmod(self.dir, 0o755)
        self.passwd = os.path.join(self.dir, "passwd")
        with open(self.passwd, "w") as f:
            f.write(f"alice {yescrypt(PASSWORD) or sha512_crypt(PASSWORD)}\n")
            f.write(f"bob {sha512_crypt('bobpw')}\n")
        conf = tls_conf() + f"[Auth]\nBackend = table\nPasswordTable = {self.passwd}\n"
        if self.logins is not None:
            self.login_map = os.path.join(self.dir, "logins")
            with open(self.login_map, "w") as f:
                f.write(self.logins)
            conf += f"SenderLoginMap = {self.login_map}\n"
        self.t = Tern(conf=conf + self.extra, role=self.role, start=("queued", "deliverd"))
        t = self.t.__enter__()
        for table in [self.passwd] + ([self.login_map] if self.logins is not None else []):
            p = t.run_cli(["ternctl", "map", table])
            assert p.returncode == 0, p.stderr.decode()
        t.start("smtpd")
        return t

    def __exit__(self, *exc):
        try:
            return self.t.__exit__(*exc)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def tls_session(t):
    c = TlsClient(t.smtp_port, implicit=(t.role == "submissions"))
    c.line()
    if t.role != "submissions":
        c.ehlo()
        c.starttls()
    ehlo = c.ehlo()
    assert "250-AUTH PLAIN LOGIN" in ehlo, ehlo
    return c


def test_auth_plain_with_initial_response_and_esmtpsa_received():
    with TableAuth(role="submission") as t:
        with tls_session(t) as c:
            c.send(f"AUTH PLAIN {b64(chr(0) + 'alice' + chr(0) + PASSWORD)}\r\n")
            c.expect("235 2.7.0 Authentication successful")
            c.send("AUTH PLAIN =\r\n")
            c.expect("503 5.5.1 Error: already authenticated")
            c.send("MAIL FROM:<alice@test.example>\r\n")
            c.expect("250 2.1.0 Ok")
            c.send(f"RCPT TO:<{t.user}@{t.domain}>\r\nDATA\r\n")
            c.expect("250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>")
            c.send(MESSAGE + ".\r\nQUIT\r\n")
            assert c.line().startswith("250 2.0.0 Ok: queued as ")
            c.expect("221 2.0.0 Bye")
        msg = t.wait_until(lambda: t.delivered(), what="delivery")[0]
        head = msg.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n")
        assert b"\n\t(Authenticated sender: alice)\n\tby mx.test.example (tern) with ESMTPSA id " in head, head
        log = t.log("smtpd")
        assert "SASL PLAIN authentication succeeded, sasl_username=alice" in log, log
        assert ", sasl_username=alice" in log.split("client=", 1)[1].split("\n", 1)[0], log
        assert PASSWORD not in log and b64(chr(0) + "alice" + chr(0) + PASSWORD) not in log


def test_auth_login_and_plain_without_initial_response_with_smtplib():
    with TableAuth() as t:
        for mech in ("LOGIN", "PLAIN"):
            s = t.smtp()
            s.starttls(context=client_context())
            s.ehlo("client.test")
            assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
            fn = s.auth_login if mech == "LOGIN" else s.auth_plain
            s.user, s.password = "bob", "bobpw"
            code, text = s.auth(mech, fn, initial_response_ok=False)
            assert (code, text) == (235, b"2.7.0 Authentication successful")
            # On port 25, AUTH grants relaying.
            s.sendmail("bob@test.example", ["someone@example.net"], MESSAGE)
            s.quit()
        log = t.log("smtpd")
        assert "SASL LOGIN authentication succeeded, sasl_username=bob" in log


def test_login_challenges_are_username_and_password():
    with TableAuth() as t:
        with tls_session(t) as c:
            c.send("AUTH LOGIN\r\n")
            c.expect("334 VXNlcm5hbWU6")
            c.send(b64("alice") + "\r\n")
            c.expect("334 UGFzc3dvcmQ6")
            c.send(b64(PASSWORD) + "\r\n")
            c.expect("235 2.7.0 Authentication successful")


def test_auth_not_offered_nor_accepted_without_tls():
    with TableAuth() as t:
        with TlsClient(t.smtp_port) as c:
            c.line()
            ehlo = c.ehlo()
            assert not any("AUTH" in line for line in ehlo), ehlo
            c.send(f"AUTH PLAIN {b64(chr(0) + 'alice' + chr(0) + PASSWORD)}\r\n")
            c.expect("538 5.7.11 Encryption required for requested authentication mechanism")


def test_cancel_bad_base64_and_unknown_mechanism():
    with TableAuth() as t:
        with tls_session(t) as c:
            c.send("AUTH PLAIN\r\n")
            c.expect("334 ")
            c.send("*\r\n")
            c.expect("501 5.0.0 Authentication aborted")
            c.send("AUTH LOGIN\r\n*\r\n")
            c.expect("334 VXNlcm5hbWU6", "501 5.0.0 Authentication aborted")
            # Strict base64: bad characters, missing padding, non-zero pad bits.
            for bad in ("AGFsaWNl!", "AGFsaWNlAHM", "YR==", "AGFs aWNl"):
                c.send(f"AUTH PLAIN {bad}\r\n")
                if " " in bad:
                    c.expect("501 5.5.4 Syntax: AUTH mechanism [initial-response]")
                else:
                    c.expect("501 5.5.2 Cannot decode response")
            c.send("AUTH CRAM-MD5\r\n")
            c.expect("504 5.5.4 Unrecognized authentication type")
            c.send("AUTH\r\n")
            c.expect("501 5.5.4 Syntax: AUTH mechanism [initial-response]")
            # None of that counted as a failed password: this still works.
            c.send(f"AUTH PLAIN {b64('alice' + chr(0) + 'alice' + chr(0) + PASSWORD)}\r\n")
            c.expect("235 2.7.0 Authentication successful")


def test_failure_limit_disconnects_and_logs_without_password():
    with TableAuth(extra="FailureLimit = 3\n") as t:
        with tls_session(t) as c:
            for i in range(2):
                c.send(f"AUTH PLAIN {b64(chr(0) + 'alice' + chr(0) + 'wrong-' + str(i))}\r\n")
                c.expect("535 5.7.8 Error: authentication failed")
            # An unknown user fails the same way.
            c.send(f"AUTH PLAIN {b64(chr(0) + 'nobody' + chr(0) + 'wrong-2')}\r\n")
            c.expect("421 4.7.0 mx.test.example Error: too many failed authentication attempts")
            c.expect_eof()
        log = t.log("smtpd")
        assert log.count("[127.0.0.1]: SASL PLAIN authentication failed, sasl_username=") == 3, log
        assert "too many AUTH failures after AUTH from " in log, log
        assert "wrong-" not in log, log


def test_mail_auth_parameter_accepted_once_auth_is_offered():
    """RFC 4954 5: a server that offers AUTH accepts MAIL ... AUTH=<> (relaying MTAs send it)."""
    with TableAuth() as t:
        with TlsClient(t.smtp_port) as c:
            c.line()
            c.ehlo()
            c.send("MAIL FROM:<a@test.example> AUTH=<>\r\n")
            c.expect("555 5.5.4 Unsupported option: AUTH")  # not offered before TLS
            c.starttls()
            c.ehlo()
            for value, reply in (("<>", "250 2.1.0 Ok"), ("alice+40test.example", "250 2.1.0 Ok"),
                                 ("bad+4", "501 5.5.4 Bad AUTH parameter syntax")):
                c.send(f"MAIL FROM:<a@test.example> AUTH={value}\r\n")
                c.expect(reply)
                c.send("RSET\r\n")
                c.expect("250 2.0.0 Ok")


def test_submission_requires_auth_then_relays():
    with TableAuth(role="submission") as t:
        with tls_session(t) as c:
            c.send("MAIL FROM:<alice@test.example>\r\n")
            c.expect("530 5.7.0 Authentication required")
            c.send(f"AUTH PLAIN {b64(chr(0) + 'alice' + chr(0) + PASSWORD)}\r\n")
            c.expect("235 2.7.0 Authentication successful")
            c.send("MAIL FROM:<alice@test.example>\r\nRCPT TO:<x@example.net>\r\nRSET\r\n")
            c.expect("250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.0.0 Ok")


def test_implicit_tls_submissions_with_smtplib_login():
    with TableAuth(role="submissions") as t:
        s = smtplib.SMTP_SSL("127.0.0.1", t.smtp_port, local_hostname="client.test",
                             context=client_context(), timeout=20)
        s.login("alice", PASSWORD)
        s.sendmail("alice@test.example", [f"{t.user}@{t.domain}"], MESSAGE)
        s.quit()
        msg = t.wait_until(lambda: t.delivered(), what="delivery")[0]
        assert b"with ESMTPSA id " in msg


def test_sender_login_map():
    logins = "alice@test.example alice\n@shared.example alice, bob\n"
    with TableAuth(role="submission", logins=logins) as t:
        with tls_session(t) as c:
            c.send(f"AUTH PLAIN {b64(chr(0) + 'alice' + chr(0) + PASSWORD)}\r\n")
            c.expect("235 2.7.0 Authentication successful")
            for sender, ok in (("alice@test.example", True), ("bob@test.example", False),
                               ("anyone@shared.example", True), ("x@example.net", False)):
                c.send(f"MAIL FROM:<{sender}>\r\n")
                if ok:
                    c.expect("250 2.1.0 Ok")
                    c.send("RSET\r\n")
                    c.expect("250 2.0.0 Ok")
                else:
                    c.expect(f"553 5.7.1 <{sender}>: Sender address rejected: not owned by user alice")
        log = t.log("smtpd")
        assert "NOQUEUE: reject: MAIL from " in log and "not owned by user alice" in log, log


# ---- Dovecot ------------------------------------------------------------------

DOVECOT_CONF = """base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols =
ssl = no
auth_mechanisms = plain login
auth_failure_delay = 0
auth_verbose = yes
disable_plaintext_auth = no
passdb {{
  driver = passwd-file
  args = scheme=CRYPT {d}/users
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home=/nonexistent
}}
service auth {{
  unix_listener auth-client {{
    mode = 0666
  }}
}}
"""


def dovecot_group_alive(pgid):
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def test_dovecot_backend():
    dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not os.path.exists(dovecot):
        raise harness.Skip("dovecot is not installed")
    if os.geteuid() != 0:
        raise harness.Skip("a private dovecot instance needs root")
    d = tempfile.mkdtemp(prefix="tern-dovecot-")
    os.chmod(d, 0o755)
    proc = None
    try:
        with open(os.path.join(d, "users"), "w") as f:
            f.write(f"carol:{sha512_crypt(PASSWORD)}\n")
        conf = os.path.join(d, "dovecot.conf")
        with open(conf, "w") as f:
            f.write(DOVECOT_CONF.format(d=d))
        sock = os.path.join(d, "run", "auth-client")
        # Its own session: the group (master, auth, log, ...) can be killed at once.
        proc = subprocess.Popen([dovecot, "-F", "-c", conf], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        harness.Tern.wait_until(lambda: os.path.exists(sock) or proc.poll() is not None,
                                what="dovecot's auth-client socket")
        assert proc.poll() is None, "dovecot exited"
        conf = tls_conf() + f"[Auth]\nBackend = dovecot\nDovecotSocket = {sock}\nFailureLimit = 2\n"
        with Tern(conf=conf, role="submission") as t:
            with tls_session(t) as c:
                c.send(f"AUTH PLAIN {b64(chr(0) + 'carol' + chr(0) + 'nope')}\r\n")
                c.expect("535 5.7.8 Error: authentication failed")
                c.send("AUTH LOGIN " + b64("carol") + "\r\n")
                c.expect("334 UGFzc3dvcmQ6")
                c.send(b64(PASSWORD) + "\r\n")
                c.expect("235 2.7.0 Authentication successful")
                c.send("MAIL FROM:<carol@test.example>\r\n")
                c.expect("250 2.1.0 Ok")
                c.send(f"RCPT TO:<{t.user}@{t.domain}>\r\nDATA\r\n")
                c.expect("250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>")
                c.send(MESSAGE + ".\r\nQUIT\r\n")
                assert c.line().startswith("250 2.0.0 Ok: queued as ")
            msg = t.wait_until(lambda: t.delivered(), what="delivery")[0]
            assert b"(Authenticated sender: carol)" in msg and b"with ESMTPSA id " in msg, msg[:500]
            # Dovecot saw the client address and the TLS flag.
            def dovecot_log():
                with open(os.path.join(d, "dovecot.log")) as f:
                    return f.read()
            t.wait_until(lambda: "passwd-file(carol,127.0.0.1): Password mismatch" in dovecot_log(),
                         what="dovecot logging the failure with the client address")
            # Dovecot gone after smtpd connected to it: a temporary failure,
            # never a wrong password (the client must not give up).
            with tls_session(t) as c:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
                harness.Tern.wait_until(lambda: not dovecot_group_alive(proc.pid),
                                        what="dovecot's processes gone")
                proc = None
                c.send(f"AUTH PLAIN {b64(chr(0) + 'carol' + chr(0) + PASSWORD)}\r\n")
                c.expect("454 4.7.0 Temporary authentication failure")
            t.wait_until(lambda: "SASL PLAIN: the dovecot back end failed" in t.log("smtpd"),
                         what="the back-end failure in the log")
    finally:
        if proc:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    harness.main(globals())
