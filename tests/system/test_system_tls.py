#!/usr/bin/env python3
"""System test of TLS and authenticated submission, under a real systemd in
systemd-nspawn (the Container of test_system.py):

  - a certificate and a password table configured as docs/tls-and-auth.md
    says (key 0640 root:tern-smtpd, `ternctl map /etc/tern/passwd`), then
    `systemctl enable --now tern-submission.socket tern-submissions.socket`
    ties them to tern.target;
  - testssl.sh (protocol checks only, to stay fast) against 465 (implicit
    TLS) and against 587 with --starttls smtp, in parallel: SSLv2, SSLv3,
    TLS 1.0 and 1.1 not offered, TLS 1.2 and 1.3 offered;
  - on 587 MAIL before AUTH is refused with 530; a message submitted on 587
    (STARTTLS + AUTH PLAIN) and one on 465 (AUTH LOGIN) reach alice's Maildir
    with "with ESMTPSA" and "(Authenticated sender: alice)" in Received:.

Needs root and systemd-nspawn; exits 77 otherwise (as test_system.py)."""

import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_system as ts  # noqa: E402
from test_system import Failure, log  # noqa: E402

PASSWORD = "alice-Pw 1"

SETUP = r"""
mkdir -p /etc/tern/tern.conf.d /run/system-test
chmod 0755 /etc/tern/tls
chown root:tern-smtpd /etc/tern/tls/key.pem
chmod 0640 /etc/tern/tls/key.pem
printf 'alice %s\n' "$(printf '%s' "$1" | openssl passwd -6 -stdin)" > /etc/tern/passwd
chgrp tern-smtpd /etc/tern/passwd
chmod 0640 /etc/tern/passwd
ternctl map /etc/tern/passwd
printf '[TLS]\nCertificateFile = /etc/tern/tls/cert.pem\nKeyFile = /etc/tern/tls/key.pem\n[Auth]\nBackend = table\nPasswordTable = /etc/tern/passwd\n' \
    > /etc/tern/tern.conf.d/50-tls.conf
"""

SUBMIT = """
import smtplib, ssl, sys
port, subject, mech = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile="/etc/tern/tls/cert.pem")
body = ("From: alice@localhost\\r\\nTo: alice@localhost\\r\\nSubject: " + subject +
        "\\r\\n\\r\\nsubmitted with AUTH\\r\\n").encode()
if port == 465:
    s = smtplib.SMTP_SSL("127.0.0.1", 465, local_hostname="client.test", context=ctx, timeout=30)
else:
    s = smtplib.SMTP("127.0.0.1", 587, local_hostname="client.test", timeout=30)
    s.ehlo()
    assert s.has_extn("starttls") and not s.has_extn("auth"), s.esmtp_features
    s.starttls(context=ctx)
s.ehlo()
assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"], s.esmtp_features
code, reply = s.mail("alice@localhost")
assert (code, reply) == (530, b"5.7.0 Authentication required"), (code, reply)
s.rset()
s.user, s.password = "alice", %r
code, reply = s.auth(mech, s.auth_plain if mech == "PLAIN" else s.auth_login)
assert code == 235, (code, reply)
s.mail("alice@localhost")
code, reply = s.rcpt("alice@localhost")
assert code == 250, (code, reply)
code, reply = s.data(body)
print(code, reply.decode())
s.quit()
""" % PASSWORD


def configure(t):
    log("certificate, password table, and the submission sockets enabled")
    # Made on the host: the container's volatile /etc has no openssl.cnf.
    tls = t.c.path("/etc/tern/tls")
    os.makedirs(tls)
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=mx.test.example",
                        "-addext", "subjectAltName=DNS:mx.test.example,IP:127.0.0.1",
                        "-keyout", f"{tls}/key.pem", "-out", f"{tls}/cert.pem"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise Failure("openssl req failed:\n" + r.stderr)
    t.c.run(["sh", "-ec", SETUP, "setup", PASSWORD])
    t.c.run(["systemctl", "enable", "--now", "tern-submission.socket", "tern-submissions.socket"])
    r = t.c.run(["systemctl", "is-active", "tern-submission.socket", "tern-submissions.socket"],
                check=False)
    if r.stdout.split() != ["active", "active"]:
        raise Failure("submission sockets not active:\n" + r.stdout + r.stderr)
    wants = t.c.run(["systemctl", "show", "-p", "Wants", "--value", "tern.target"]).stdout.split()
    if not {"tern-submission.socket", "tern-submissions.socket"} <= set(wants):
        raise Failure(f"tern.target does not want the enabled sockets: {wants}")


def testssl(t):
    log("testssl.sh --protocols against 465 and 587 (STARTTLS), in parallel")
    if not os.path.exists(t.c.path("/usr/bin/testssl")):
        log("testssl is not installed: protocol scan skipped")
        return
    # The container's volatile /etc starts empty. testssl.sh needs awk, which
    # is /usr/bin/awk -> /etc/alternatives/awk: the host's links are copied in.
    alt = t.c.path("/etc/alternatives")
    os.makedirs(alt, exist_ok=True)
    for name in os.listdir("/etc/alternatives"):
        src = os.path.join("/etc/alternatives", name)
        if os.path.islink(src) and not os.path.lexists(os.path.join(alt, name)):
            os.symlink(os.readlink(src), os.path.join(alt, name))
    # Its cipher mapping and data files live in /etc/testssl (Debian).
    if os.path.isdir("/etc/testssl") and not os.path.exists(t.c.path("/etc/testssl")):
        shutil.copytree("/etc/testssl", t.c.path("/etc/testssl"), symlinks=True)
    common = ["testssl", "--quiet", "--warnings", "batch", "--color", "0", "--nodns", "none",
              "--connect-timeout", "10", "--openssl-timeout", "10", "-p"]
    jobs = {}
    started = time.monotonic()
    for port, extra in ((465, []), (587, ["--starttls", "smtp"])):
        out = f"/run/system-test/testssl-{port}.json"
        cmd = common + extra + ["--jsonfile", out, f"127.0.0.1:{port}"]
        jobs[port] = (out, subprocess.Popen(["nsenter", "-t", str(t.c.pid), "-a", *cmd],
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            text=True))
    for port, (out, p) in jobs.items():
        try:
            text, _ = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise Failure(f"testssl against {port} took over 240 s")
        try:
            with open(t.c.path(out)) as f:
                findings = {e["id"]: e["finding"] for e in json.load(f)}
        except (OSError, ValueError) as e:
            raise Failure(f"testssl against {port} wrote no JSON ({e}), exit {p.returncode}:\n{text}")
        for proto in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
            if not findings.get(proto, "").startswith("not offered"):
                raise Failure(f"port {port}: {proto} is {findings.get(proto)!r}\n{text}")
        for proto in ("TLS1_2", "TLS1_3"):
            if not findings.get(proto, "").startswith("offered"):
                raise Failure(f"port {port}: {proto} is {findings.get(proto)!r}\n{text}")
        log(f"  port {port}: " + ", ".join(f"{k} {findings[k]}" for k in
                                            ("SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3")))
    log(f"  testssl took {time.monotonic() - started:.1f}s")


def submit(t):
    for port, subject, mech in ((587, "submitted on 587", "PLAIN"),
                                (465, "submitted on 465", "LOGIN")):
        log(f"AUTH {mech} on {port}: a message to alice@localhost")
        r = t.c.run(["python3", "-", str(port), subject, mech], input=SUBMIT, check=False)
        m = re.fullmatch(r"250 2\.0\.0 Ok: queued as ([0-9A-F]+)\n", r.stdout)
        if r.returncode != 0 or not m:
            raise Failure(f"submission on {port} failed (exit {r.returncode}):\n{r.stdout}{r.stderr}")
        msgs = t.wait_delivered(subject)
        head = msgs[0].split(b"\n\n", 1)[0]
        if b"(Authenticated sender: alice)" not in head or \
                b"with ESMTPSA id " + m.group(1).encode() not in head:
            raise Failure(f"Received: of the message from {port} is not ESMTPSA by alice:\n"
                          + head.decode(errors="replace"))
    r = t.c.run(["journalctl", "--no-pager", "-t", "tern-smtpd", "-g",
                 "Anonymous TLS connection established|sasl_username=alice"], check=False)
    if r.stdout.count("Anonymous TLS connection established") < 2 or \
            "SASL PLAIN authentication succeeded, sasl_username=alice" not in r.stdout:
        raise Failure("smtpd's TLS/AUTH log lines are missing:\n" + r.stdout)


def main():
    def body(t, stage):
        configure(t)
        testssl(t)
        submit(t)
    return ts.run_system_test("system-test-tls", body)

if __name__ == "__main__":
    sys.exit(main())
