#!/usr/bin/env python3
"""Access tables (ClientAccess, HeloAccess, SenderAccess, RecipientAccess),
compiled with `ternctl map`, decided at RCPT (Postfix's smtpd_delay_reject)
with OK, DUNNO, REJECT, DEFER and "NNN X.Y.Z text" actions; each refusal is
one log line with the recipient. Clients come from several 127.x addresses
to exercise the network-prefix lookups."""

import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import smtpd_util  # noqa: E402

GREETING = "220 mx.test.example ESMTP tern"

TABLES = {
    "client": """# client addresses and networks
127.0.0.2   REJECT
127.0.0.3   DEFER try later
127.0.0.4   550 5.7.2 go away
127.0.0.5   OK
127.0.0.6   FOOBAR
127.0.1     REJECT network
127.0.2.7   DUNNO
127.0.2     REJECT never reached for .7
""",
    "helo": """bad.example     REJECT no thanks
example.net     DEFER
[192.0.2.1]     REJECT literal
""",
    "sender": """<>                      REJECT null sender here
spammer@example.org     REJECT
example.com             553 5.7.9 domain blocked
friend@                 OK
""",
    "recipient": """blocked@test.example    REJECT
closed.test.example     451 4.2.1 mailbox busy
""",
}


class Tables:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tern-policy-test-")
        self.paths = {}
        ternctl = harness.binary("cli/ternctl")
        for name, text in TABLES.items():
            path = os.path.join(self.dir, name + "_access")
            with open(path, "w") as f:
                f.write(text)
            subprocess.run([ternctl, "map", path], check=True, capture_output=True)
            self.paths[name] = path

    def conf(self, **override):
        p = dict(self.paths, **override)
        return (f"[SMTP]\nClientAccess = {p['client']}\nHeloAccess = {p['helo']}\n"
                f"SenderAccess = {p['sender']}\nRecipientAccess = {p['recipient']}\nHardErrorLimit = 100\n")

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def session(port, source, helo, sender, rcpts):
    """Replies to EHLO/MAIL/RCPT* from a client at source; EHLO lines skipped."""
    with smtpd_util.Client(port, source=source) as c:
        c.expect(GREETING)
        c.send(f"EHLO {helo}\r\n")
        c.reply()
        c.send(f"MAIL FROM:<{sender}>\r\n")
        out = [c.line()]
        for r in rcpts:
            c.send(f"RCPT TO:<{r}>\r\n")
            out.append(c.line())
        c.send("QUIT\r\n")
        c.expect("221 2.0.0 Bye")
        return out


def test_client_access_by_address_and_network():
    t = Tables()
    try:
        with smtpd_util.Smtpd(conf=t.conf()) as s:
            rc = "user@test.example"
            cases = [
                ("127.0.0.2", "554 5.7.1 <unknown[127.0.0.2]>: Client host rejected: Access denied"),
                ("127.0.0.3", "450 4.7.1 <unknown[127.0.0.3]>: Client host rejected: try later"),
                ("127.0.0.4", "550 5.7.2 <unknown[127.0.0.4]>: Client host rejected: go away"),
                ("127.0.0.5", "250 2.1.5 Ok"),
                ("127.0.0.6", "451 4.3.5 Server configuration error"),
                ("127.0.1.9", "554 5.7.1 <unknown[127.0.1.9]>: Client host rejected: network"),
                ("127.0.2.7", "250 2.1.5 Ok"),
                ("127.0.2.8", "554 5.7.1 <unknown[127.0.2.8]>: Client host rejected: never reached for .7"),
                ("127.0.0.1", "250 2.1.5 Ok"),
            ]
            for source, want in cases:
                # MAIL is accepted: the decision waits for RCPT (delay_reject).
                got = session(s.port, source, "client.test", "a@example.org", [rc])
                assert got == ["250 2.1.0 Ok", want], (source, got)
            s.wait_log("disconnect from unknown[127.0.0.1]")
            log = s.log()
            assert ("reject: RCPT from unknown[127.0.0.2]: 554 5.7.1 <unknown[127.0.0.2]>: Client host "
                    "rejected: Access denied; from=<a@example.org> to=<user@test.example> proto=ESMTP "
                    "helo=<client.test>") in log, log
            assert 'ClientAccess: bad action "FOOBAR" for "127.0.0.6"' in log, log
    finally:
        t.close()


def test_helo_sender_and_recipient_access():
    t = Tables()
    try:
        with smtpd_util.Smtpd(conf=t.conf()) as s:
            p = s.port
            assert session(p, None, "bad.example", "a@example.org", ["u@test.example"])[1] == \
                "554 5.7.1 <bad.example>: Helo command rejected: no thanks"
            assert session(p, None, "mx.Example.NET", "a@example.org", ["u@test.example"])[1] == \
                "450 4.7.1 <mx.Example.NET>: Helo command rejected: Access denied"
            assert session(p, None, "[192.0.2.1]", "a@example.org", ["u@test.example"])[1] == \
                "554 5.7.1 <[192.0.2.1]>: Helo command rejected: literal"
            assert session(p, None, "client.test", "", ["u@test.example"])[1] == \
                "554 5.7.1 <>: Sender address rejected: null sender here"
            assert session(p, None, "client.test", "spammer@example.org", ["u@test.example"])[1] == \
                "554 5.7.1 <spammer@example.org>: Sender address rejected: Access denied"
            assert session(p, None, "client.test", "x@sub.example.com", ["u@test.example"])[1] == \
                "553 5.7.9 <x@sub.example.com>: Sender address rejected: domain blocked"
            assert session(p, None, "client.test", "friend@example.com", ["u@test.example"])[1] == \
                "250 2.1.5 Ok"
            got = session(p, None, "client.test", "a@example.org",
                          ["blocked+tag@test.example", "ok@test.example", "x@closed.test.example",
                           "BLOCKED@test.example"])
            assert got == ["250 2.1.0 Ok",
                           "554 5.7.1 <blocked+tag@test.example>: Recipient address rejected: Access denied",
                           "250 2.1.5 Ok",
                           "451 4.2.1 <x@closed.test.example>: Recipient address rejected: mailbox busy",
                           "554 5.7.1 <BLOCKED@test.example>: Recipient address rejected: Access denied"], got
            s.wait_log("to=<x@closed.test.example>")
            assert "to=<blocked+tag@test.example>" in s.log()
    finally:
        t.close()


def test_a_table_that_is_not_compiled_defers_with_451():
    t = Tables()
    try:
        missing = os.path.join(t.dir, "never_mapped")
        with smtpd_util.Smtpd(conf=t.conf(client=missing)) as s:
            got = session(s.port, None, "client.test", "a@example.org", ["u@test.example"])
            assert got == ["250 2.1.0 Ok", "451 4.3.5 Server configuration error"], got
            s.wait_log("disconnect from")
            assert f'Cannot open ClientAccess table "{missing}.cdb" (run `ternctl map {missing}`)' in s.log()
    finally:
        t.close()


def test_access_tables_with_the_real_queued_and_swaks():
    swaks = shutil.which("swaks")
    if not swaks:
        raise harness.Skip("swaks is not installed")
    t = Tables()
    try:
        with harness.Tern(conf=t.conf(), start=("queued", "smtpd")) as tern:
            r = subprocess.run([swaks, "--server", "127.0.0.1", "--port", str(tern.smtp_port),
                                "--from", "spammer@example.org", "--to", f"{tern.user}@{tern.domain}",
                                "--helo", "client.test"], capture_output=True, text=True, timeout=60)
            assert ("<** 554 5.7.1 <spammer@example.org>: Sender address rejected: Access denied"
                    in r.stdout), r.stdout
            r = subprocess.run([swaks, "--server", "127.0.0.1", "--port", str(tern.smtp_port),
                                "--from", "ok@example.org", "--to", f"{tern.user}@{tern.domain}",
                                "--helo", "client.test"], capture_output=True, text=True, timeout=60)
            assert "<-  250 2.0.0 Ok: queued as " in r.stdout, r.stdout
    finally:
        t.close()


if __name__ == "__main__":
    harness.main(globals())
