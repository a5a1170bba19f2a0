#!/usr/bin/env python3
"""System test of remote delivery: the installed tern under a real systemd
in a throwaway systemd-nspawn container (see test_system.py), with real peers
started inside the container as transient units:
  - Dovecot (Debian's dovecot-core + dovecot-lmtpd) with its own
    configuration: an LMTP socket delivering into Maildirs, and its auth
    socket for SASL;
  - a second tern instance whose submission port (127.0.0.1:2587) requires
    STARTTLS and AUTH (checked by that Dovecot) and delivers to its own
    Maildir.
It proves that
  - a message sent to the smtp port for carol@lmtp.test reaches carol's
    Dovecot Maildir through the transport table's lmtp:unix: entry;
  - a message for alice@relayed.test is relayed through the transport
    table's smtp:[localhost]:2587 entry over a verified STARTTLS connection
    (TLSPolicyTable says verify, TLSCAFile holds the test CA) with AUTH from
    RelayPasswordTable, and arrives at the second tern with an ESMTPSA
    Received: line naming the authenticated user;
  - `journalctl TERN_QUEUE_ID=` shows both deliveries with their relays.
Needs root, systemd-nspawn, openssl and dovecot; exits 77 otherwise."""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_system as ts  # noqa: E402
from test_system import Failure, SystemTest, log, wait_until  # noqa: E402

DT = "/run/dovecot-test"
T2 = "/run/tern-relay"
PASSWORD = "relay s3cret"

DOVECOT_CONF = f"""base_dir = {DT}/run
state_dir = {DT}/state
log_path = {DT}/dovecot.log
protocols = lmtp
ssl = no
default_internal_user = nobody
default_internal_group = nogroup
default_login_user = nobody
first_valid_uid = 0
auth_username_format = %Ln
auth_mechanisms = plain login
disable_plaintext_auth = no
mail_location = maildir:{DT}/mail/%n/Maildir
passdb {{
  driver = passwd-file
  args = {DT}/users
}}
userdb {{
  driver = passwd-file
  args = {DT}/users
  default_fields = uid=nobody gid=nogroup home={DT}/mail/%n
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
service auth {{
  unix_listener auth-client {{
    mode = 0666
  }}
}}
"""

T2_CONF = f"""[Server]
Hostname = relay.test
LocalDomains = relayed.test
SmtpdUser = root
QueueUser = root

[Queue]
SpoolDirectory = {T2}/spool
QueuedSocket = {T2}/queued.sock
DeliverdSocket = {T2}/deliverd.sock

[Local]
MailboxPath = {T2}/mail/%u/Maildir/

[TLS]
CertificateFile = {T2}/cert.pem
KeyFile = {T2}/key.pem

[Auth]
Backend = dovecot
DovecotSocket = {DT}/run/auth-client
"""

TERN_DROPIN = """# written by tests/system/test_system_delivery.py
[Delivery]
TransportTable = /etc/tern/transport
TLSPolicyTable = /etc/tern/tls_policy
TLSCAFile = /etc/tern/relay-ca.pem
RelayPasswordTable = /etc/tern/relay_passwords
[Queue]
MinBackoff = 1s
MaxBackoff = 2s
"""


def make_certs(d):
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=tern system test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "key.pem", "-out", "req.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost\n")
    run("x509", "-req", "-in", "req.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "cert.pem", "-days", "2", "-extfile", "ext")


class DeliveryTest(SystemTest):
    def write(self, path, text, mode=0o644):
        p = self.c.path(path)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)

    def start_dovecot(self):
        log("starting a private Dovecot (LMTP socket, auth socket) as a transient unit")
        self.c.sh(f"mkdir -p {DT}/mail {DT}/run {DT}/state && chown nobody:nogroup {DT}/mail")
        self.write(f"{DT}/users", f"carol:{{PLAIN}}{PASSWORD}::::::\n")
        self.write(f"{DT}/dovecot.conf", DOVECOT_CONF)
        self.c.run(["systemd-run", "--unit=dovecot-test", "--", "/usr/sbin/dovecot", "-F",
                    "-c", f"{DT}/dovecot.conf"])
        wait_until(lambda: os.path.exists(self.c.path(f"{DT}/run/lmtp")) and
                   os.path.exists(self.c.path(f"{DT}/run/auth-client")), 30,
                   "dovecot's lmtp and auth-client sockets")

    def start_relay(self, certs):
        log("starting a second tern whose submission port 2587 needs STARTTLS and AUTH")
        self.c.sh(f"mkdir -p {T2}/spool {T2}/mail/alice && chmod 0700 {T2}/spool && "
                  f"chown alice: {T2}/mail/alice")
        for name in ("cert.pem", "key.pem"):
            shutil.copyfile(os.path.join(certs, name), self.c.path(f"{T2}/{name}"))
        self.write(f"{T2}/tern.conf", T2_CONF)
        env = [f"--setenv=TERN_CONFIG={T2}/tern.conf"]
        self.c.run(["systemd-run", "--unit=tern-relay-queued", *env, "--",
                    "/usr/local/libexec/tern/tern-queued", "-c", f"{T2}/tern.conf"])
        self.c.run(["systemd-run", "--unit=tern-relay-deliverd", *env, "--",
                    "/usr/local/libexec/tern/tern-deliverd", "-c", f"{T2}/tern.conf"])
        self.c.run(["systemd-run", "--unit=tern-relay-smtpd", *env, "--",
                    "systemd-socket-activate", "--inetd", "-a", "-l", "127.0.0.1:2587",
                    "-E", f"TERN_CONFIG={T2}/tern.conf",
                    "/usr/local/libexec/tern/tern-smtpd", "-c", f"{T2}/tern.conf",
                    "--role", "submission"])
        wait_until(lambda: os.path.exists(self.c.path(f"{T2}/queued.sock")) and
                   os.path.exists(self.c.path(f"{T2}/deliverd.sock")), 30, "the relay's sockets")
        script = ("import socket\n"
                  "s = socket.create_connection(('127.0.0.1', 2587), timeout=10)\n"
                  "print(s.recv(100).decode().strip())\n")
        wait_until(lambda: self.c.run(["python3", "-c", script], check=False).stdout.startswith("220"),
                   30, "the relay's submission port")

    def configure(self, certs):
        log("tern: transport table (lmtp:unix:, smtp:[localhost]:2587), TLS policy verify, "
            "relay password table")
        self.c.run(["mkdir", "-p", "/etc/tern/tern.conf.d"])
        shutil.copyfile(os.path.join(certs, "ca.pem"), self.c.path("/etc/tern/relay-ca.pem"))
        self.write("/etc/tern/transport", f"lmtp.test lmtp:unix:{DT}/run/lmtp\n"
                                          "relayed.test smtp:[localhost]:2587\n")
        self.write("/etc/tern/tls_policy", "[localhost]:2587 verify\n")
        self.write("/etc/tern/relay_passwords", f"[localhost]:2587 carol:{PASSWORD}\n", 0o600)
        for name in ("transport", "tls_policy", "relay_passwords"):
            self.c.run(["/usr/local/sbin/ternctl", "map", f"/etc/tern/{name}"])
        st = os.stat(self.c.path("/etc/tern/relay_passwords.cdb"))
        if st.st_mode & 0o077:
            raise Failure(f"relay_passwords.cdb is mode {st.st_mode & 0o777:o}, not 0600")
        self.write("/etc/tern/tern.conf.d/60-delivery.conf", TERN_DROPIN)
        self.c.run(["systemctl", "restart", "tern-queued.service"])
        self.c.run(["systemctl", "stop", "tern-deliverd.service"], check=False)

    def send(self, rcpt, subject):
        self.c.run(["mkdir", "-p", "/run/system-test"])
        data = f"/run/system-test/{subject}.eml"
        with open(self.c.path(data), "wb") as f:
            # swaks ends the data with CRLF itself before the final dot.
            f.write(f"From: <{ts.SENDER}>\nTo: <{rcpt}>\nSubject: {subject}\n\nbody of {subject}".encode())
        r = self.c.run(["swaks", "--server", "127.0.0.1", "--port", "25", "--helo", ts.HELO,
                        "--from", ts.SENDER, "--to", rcpt, "--data", data], check=False)
        m = ts.QUEUED_RE.search(r.stdout)
        if r.returncode != 0 or not m:
            raise Failure(f"swaks did not get 250 queued (exit {r.returncode}):\n{r.stdout}{r.stderr}")
        return m.group(1)

    def maildir(self, path):
        new = self.c.path(path)
        try:
            names = sorted(os.listdir(new))
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            with open(os.path.join(new, n), "rb") as f:
                out.append(f.read())
        return out

    def deliverd_line(self, qid, rcpt):
        for e in self.journal(qid):
            if e.get("SYSLOG_IDENTIFIER") == "tern-deliverd" and e.get("TERN_RCPT") == rcpt:
                return e
        return None

    def lmtp_delivery(self):
        log("smtp port -> transport table -> Dovecot LMTP")
        qid = self.send("carol@lmtp.test", "to dovecot")
        msgs = wait_until(lambda: self.maildir(f"{DT}/mail/carol/Maildir/new"), 60,
                          "carol's Dovecot Maildir")
        if not msgs[0].endswith(b"\n\nbody of to dovecot\n") or b"Subject: to dovecot\n" not in msgs[0]:
            raise Failure(f"unexpected message in carol's Maildir:\n{msgs[0].decode(errors='replace')}")
        e = wait_until(lambda: self.deliverd_line(qid, "carol@lmtp.test"), 20, "deliverd's journal entry")
        log(f"  journal: {e.get('MESSAGE')}")
        if e.get("TERN_STATUS") != "sent" or e.get("TERN_RELAY") != f"{DT}/run/lmtp":
            raise Failure(f"unexpected delivery entry: {e}")

    def relayed_delivery(self):
        log("smtp port -> transport table -> relay with STARTTLS (verify) and AUTH")
        qid = self.send("alice@relayed.test", "through the relay")
        msgs = wait_until(lambda: self.maildir(f"{T2}/mail/alice/Maildir/new"), 60,
                          "alice's Maildir at the relay")
        raw = msgs[0].decode(errors="replace")
        if not raw.endswith("\n\nbody of through the relay\n"):
            raise Failure(f"unexpected message at the relay:\n{raw}")
        if not re.search(r"\(Authenticated sender: carol\)", raw) or " with ESMTPSA id " not in raw:
            raise Failure(f"the relay's Received: line shows no authenticated TLS session:\n{raw}")
        e = wait_until(lambda: self.deliverd_line(qid, "alice@relayed.test"), 20, "deliverd's journal entry")
        log(f"  journal: {e.get('MESSAGE')}")
        if e.get("TERN_STATUS") != "sent" or e.get("TERN_RELAY") != "localhost[127.0.0.1]:2587":
            raise Failure(f"unexpected delivery entry: {e}")
        r = self.c.run(["journalctl", "--no-pager", "-o", "cat", "-t", "tern-deliverd"], check=False)
        m = re.search(rf"{qid}: Verified TLS connection established to localhost\[127\.0\.0\.1\]:2587: .*",
                      r.stdout)
        if not m:
            raise Failure("no verified TLS connection in deliverd's journal:\n" + r.stdout[-3000:])
        log(f"  journal: {m.group(0)}")
        if PASSWORD in r.stdout:
            raise Failure("the relay password is in the journal")

    def dump_logs(self):
        super().dump_logs()
        for p in (f"{DT}/dovecot.log",):
            try:
                with open(self.c.path(p)) as f:
                    print(f"----- {p} -----\n" + f.read()[-5000:], flush=True)
            except OSError:
                pass
        r = self.c.run(["journalctl", "--no-pager", "-n", "100", "-u", "tern-relay-*"], check=False)
        print("----- relay tern -----\n" + r.stdout[-10000:], flush=True)


def main():
    if not os.path.exists("/usr/sbin/dovecot") or not os.path.exists("/usr/lib/dovecot/lmtp"):
        print("system-test-delivery: dovecot-core and dovecot-lmtpd are not installed, skipped")
        return ts.SKIP

    def stage_setup(stage):
        os.mkdir(os.path.join(stage, "certs"))
        make_certs(os.path.join(stage, "certs"))

    def body(t, stage):
        certs = os.path.join(stage, "certs")
        t.start_dovecot()
        t.start_relay(certs)
        t.configure(certs)
        t.lmtp_delivery()
        t.relayed_delivery()
    return ts.run_system_test("system-test-delivery", body,
                              tools=("swaks", "openssl", "systemd-socket-activate"),
                              test_class=DeliveryTest, stage_setup=stage_setup)

if __name__ == "__main__":
    sys.exit(main())
