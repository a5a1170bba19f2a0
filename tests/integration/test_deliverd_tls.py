#!/usr/bin/env python3
"""deliverd's STARTTLS and AUTH as an SMTP client, against a receiving
server run by the test (Python's ssl module over OpenSSL, certificates made
with the openssl command): opportunistic TLS by default, the plaintext retry
when the handshake fails under "may", 4.7.5 deferrals for "encrypt" without
STARTTLS and for "verify" with a certificate for another name, a verified
connection with TLSCAFile, the policy table overriding the default level,
and AUTH PLAIN / AUTH LOGIN with the relay's credentials from the password
table (sent only over TLS, never logged)."""

import base64
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_deliverd_smtp import log_line, submit  # noqa: E402


def make_certs(d):
    """A CA and two server certificates signed by it: localhost, other.test."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=tern test CA")
    for name in ("localhost", "other.test"):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName=DNS:{name}\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    return d


class TlsSink:
    """An SMTP server on 127.0.0.1 with STARTTLS and AUTH, recording each
    connection's command lines (AUTH payloads included)."""

    def __init__(self, certdir, cert="localhost", starttls=True, auth=None, break_tls=False):
        self.starttls = starttls
        self.auth = auth                # None, or list of mechanisms to offer
        self.break_tls = break_tls      # answer 220 to STARTTLS, then send garbage
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(os.path.join(certdir, f"{cert}.pem"),
                                 os.path.join(certdir, f"{cert}.key"))
        self.lock = threading.Lock()
        self.sessions = []              # per connection: {"lines": [...], "tls": bool, "data": bytes}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()
        return False

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        s = {"lines": [], "tls": False, "data": None, "version": None}
        with self.lock:
            self.sessions.append(s)
        conn.settimeout(20)
        f = conn.makefile("rb")
        try:
            conn.sendall(b"220 sink.test ESMTP\r\n")
            while True:
                line = f.readline(4096)
                if not line:
                    return
                s["lines"].append(line)
                verb = line[:4].upper()
                if verb == b"EHLO":
                    ext = ["sink.test", "PIPELINING", "8BITMIME"]
                    if self.starttls and not s["tls"]:
                        ext.append("STARTTLS")
                    if self.auth and s["tls"]:
                        ext.append("AUTH " + " ".join(self.auth))
                    out = "".join(f"250-{x}\r\n" for x in ext[:-1]) + f"250 {ext[-1]}\r\n"
                    conn.sendall(out.encode())
                elif line.upper().startswith(b"STARTTLS"):
                    conn.sendall(b"220 2.0.0 Ready to start TLS\r\n")
                    if self.break_tls:
                        conn.sendall(b"this is not a TLS server hello\r\n" * 4)
                        return
                    conn = self.ctx.wrap_socket(conn, server_side=True)
                    f = conn.makefile("rb")
                    s["tls"] = True
                    s["version"] = conn.version()
                elif line.upper().startswith(b"AUTH PLAIN "):
                    s["auth"] = base64.b64decode(line[11:].strip())
                    conn.sendall(b"235 2.7.0 Authentication successful\r\n")
                elif line.upper().startswith(b"AUTH LOGIN"):
                    conn.sendall(b"334 VXNlcm5hbWU6\r\n")
                    user = base64.b64decode(f.readline(4096).strip())
                    conn.sendall(b"334 UGFzc3dvcmQ6\r\n")
                    password = base64.b64decode(f.readline(4096).strip())
                    s["auth"] = b"\0" + user + b"\0" + password
                    conn.sendall(b"235 2.7.0 Authentication successful\r\n")
                elif verb == b"MAIL":
                    if self.auth and "auth" not in s:
                        conn.sendall(b"530 5.7.0 Authentication required\r\n")
                    else:
                        conn.sendall(b"250 2.1.0 Ok\r\n")
                elif verb == b"RCPT":
                    conn.sendall(b"250 2.1.5 Ok\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    raw = b""
                    while True:
                        dl = f.readline(100000)
                        if not dl or dl == b".\r\n":
                            break
                        raw += dl
                    s["data"] = raw
                    conn.sendall(b"250 2.0.0 Ok: queued as TLS1\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 2.0.0 Bye\r\n")
                    return
                else:
                    conn.sendall(b"502 5.5.2 Error: command not recognized\r\n")
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def delivered(self):
        with self.lock:
            return [s for s in self.sessions if s["data"] is not None]


def conf(port, extra=""):
    return f"[Delivery]\nRelayHost = [localhost]:{port}\nReplyTimeout = 10s\n" + extra


def ternctl_map(t, path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    r = t.run_cli(["ternctl", "map", path])
    assert r.returncode == 0, r


class Certs:
    def __enter__(self):
        if not shutil.which("openssl"):
            raise harness.Skip("openssl is not installed")
        self.dir = make_certs(tempfile.mkdtemp(prefix="tern-tls-"))
        return self.dir

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


def test_may_uses_starttls_when_offered_and_logs_protocol_and_cipher():
    with Certs() as certs, TlsSink(certs) as sink, harness.Tern(conf=conf(sink.port)) as t:
        submit(t, ["remote@example.net"])
        t.wait_until(lambda: sink.delivered(), what="the message over TLS")
        s = sink.delivered()[0]
        assert s["tls"] and s["version"] in ("TLSv1.2", "TLSv1.3"), s
        verbs = [x.split(b" ")[0].strip().upper() for x in s["lines"]]
        assert verbs[:3] == [b"EHLO", b"STARTTLS", b"EHLO"], verbs
        t.wait_until(lambda: re.search(
            r"Untrusted TLS connection established to localhost\[127\.0\.0\.1\]:%d: TLSv1\.[23] with "
            r"cipher \S+ \(\d+/\d+ bits\)" % sink.port, t.log("deliverd")), what="the TLS log line")
        t.wait_until(lambda: log_line(t, "remote@example.net", "sent", "2.0.0",
                                      "250 2.0.0 Ok: queued as TLS1"), what="delivered")


def test_may_retries_in_plaintext_when_the_handshake_fails():
    with Certs() as certs, TlsSink(certs, break_tls=True) as sink, \
            harness.Tern(conf=conf(sink.port)) as t:
        submit(t, ["remote@example.net"])
        t.wait_until(lambda: sink.delivered(), what="the message in plaintext")
        assert not sink.delivered()[0]["tls"]
        # First connection: STARTTLS that failed; second: no STARTTLS at all.
        assert any(x.upper().startswith(b"STARTTLS") for x in sink.sessions[0]["lines"])
        assert not any(x.upper().startswith(b"STARTTLS") for x in sink.delivered()[0]["lines"])
        assert "trying localhost[127.0.0.1]:%d again without TLS" % sink.port in t.log("deliverd")


def test_encrypt_without_starttls_defers_4_7_5():
    with Certs() as certs, TlsSink(certs, starttls=False) as sink, \
            harness.Tern(conf=conf(sink.port, "TLSSecurityLevel = encrypt\n")) as t:
        submit(t, ["remote@example.net"])
        t.wait_until(lambda: log_line(t, "remote@example.net", "deferred", "4.7.5",
                                      "TLS is required, but was not offered by host localhost[127.0.0.1]"),
                     what="the 4.7.5 deferral")
        assert not sink.delivered()


def test_verify_with_the_ca_file_delivers_and_a_wrong_name_defers():
    with Certs() as certs:
        extra = f"TLSSecurityLevel = verify\nTLSCAFile = {certs}/ca.pem\n"
        with TlsSink(certs) as sink, harness.Tern(conf=conf(sink.port, extra)) as t:
            submit(t, ["remote@example.net"])
            t.wait_until(lambda: sink.delivered(), what="the message over verified TLS")
            t.wait_until(lambda: "Verified TLS connection established to localhost[127.0.0.1]"
                         in t.log("deliverd"), what="the verified log line")
        with TlsSink(certs, cert="other.test") as sink, harness.Tern(conf=conf(sink.port, extra)) as t:
            submit(t, ["remote@example.net"])
            t.wait_until(lambda: log_line(
                t, "remote@example.net", "deferred", "4.7.5",
                "Server certificate not verified: hostname mismatch with host localhost[127.0.0.1]"),
                what="the verification failure")
            assert not sink.delivered()


def test_policy_table_raises_the_level_for_one_relay():
    with Certs() as certs, TlsSink(certs, starttls=False) as sink, \
            harness.Tern(conf=conf(sink.port)) as t:
        path = os.path.join(t.dir, "tls_policy")
        ternctl_map(t, path, f"[localhost]:{sink.port} encrypt\n")
        with open(os.path.join(t.conf_path + ".d", "60-policy.conf"), "w") as f:
            f.write(f"[Delivery]\nTLSPolicyTable = {path}\n")
        t.stop("deliverd")
        t.start("deliverd")
        submit(t, ["remote@example.net"])
        t.wait_until(lambda: log_line(t, "remote@example.net", "deferred", "4.7.5",
                                      "TLS is required, but was not offered by host localhost[127.0.0.1]"),
                     what="the policy's 4.7.5 deferral")


def run_auth(mechs):
    with Certs() as certs, TlsSink(certs, auth=mechs) as sink, \
            harness.Tern(conf=conf(sink.port)) as t:
        path = os.path.join(t.dir, "relay_passwords")
        ternctl_map(t, path, f"[localhost]:{sink.port} relayuser:s3cret pass\n")
        with open(os.path.join(t.conf_path + ".d", "60-auth.conf"), "w") as f:
            f.write(f"[Delivery]\nRelayPasswordTable = {path}\n")
        t.stop("deliverd")
        t.start("deliverd")
        submit(t, ["remote@example.net"])
        t.wait_until(lambda: sink.delivered(), what="the authenticated delivery")
        s = sink.delivered()[0]
        assert s["tls"] and s["auth"] == b"\0relayuser\0s3cret pass", s
        t.wait_until(lambda: log_line(t, "remote@example.net", "sent", "2.0.0",
                                      "250 2.0.0 Ok: queued as TLS1"), what="delivered")
        assert "s3cret" not in t.log("deliverd")
        return s


def test_auth_plain_with_the_relay_password_table():
    s = run_auth(["PLAIN", "LOGIN"])
    assert any(x.startswith(b"AUTH PLAIN ") for x in s["lines"]), s["lines"]


def test_auth_login_when_plain_is_not_offered():
    s = run_auth(["LOGIN"])
    assert any(x.startswith(b"AUTH LOGIN") for x in s["lines"]), s["lines"]


if __name__ == "__main__":
    harness.main(globals())
