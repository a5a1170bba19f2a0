#!/usr/bin/env python3
"""`ternctl import-postfix`: the main.cf Debian's postfix package writes
(its /usr/share/postfix templates plus what its postinst adds) and a crafted
one with $variables, continuation lines, tables, SASL, virtual domains and
values tern refuses become a drop-in that tern loads, plus an exact list of
what was not translated."""

import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEBIAN = "/usr/share/postfix"

# What postfix's postinst appends to main.cf.debian + main.cf.tls for an
# "Internet Site" named mail.example.org.
POSTINST = """smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination
myhostname = mail.example.org
alias_maps = hash:/etc/aliases
alias_database = hash:/etc/aliases
myorigin = /etc/mailname
mydestination = $myhostname, example.org, localhost.localdomain, , localhost
relayhost =
mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128
mailbox_size_limit = 0
recipient_delimiter = +
inet_interfaces = all
inet_protocols = all
"""


def settings(text):
    """{(section, key): value} of a drop-in."""
    out, section = {}, None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            section = m.group(1)
            continue
        k, _, v = line.partition(" = ")
        out[(section, k)] = v
    return out


def not_translated(stderr):
    return [re.match(r"not translated: [^:]+:\d+: (\S+) = ", ln).group(1)
            for ln in stderr.decode().splitlines()]


def import_and_load(t, main_cf):
    out = os.path.join(t.conf_path + ".d", "60-postfix.conf")
    p = t.run_cli(["ternctl", "import-postfix", "-o", out, main_cf])
    assert p.returncode == 0, p
    with open(out) as f:
        text = f.read()
    # tern loads it (ternctl config fails on any bad line).
    c = t.run_cli(["ternctl", "config"])
    assert c.returncode == 0, c
    return settings(text), not_translated(p.stderr), c.stdout.decode()


def test_debian_main_cf():
    if not os.path.exists(os.path.join(DEBIAN, "main.cf.debian")):
        raise harness.Skip("postfix's /usr/share/postfix templates are not installed")
    with harness.Tern(start=()) as t:
        main_cf = os.path.join(t.dir, "main.cf")
        with open(main_cf, "w") as f:
            for name in ("main.cf.debian", "main.cf.tls"):
                with open(os.path.join(DEBIAN, name)) as g:
                    f.write(g.read())
            f.write(POSTINST)
        s, skipped, config = import_and_load(t, main_cf)
        assert s == {
            ("Server", "Hostname"): "mail.example.org",
            ("Server", "LocalDomains"): "mail.example.org example.org localhost.localdomain localhost",
            ("Server", "TrustedNetworks"): "127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128",
            ("SMTP", "Banner"): "ESMTP tern (Debian/GNU)",
            ("TLS", "CertificateFile"): "/etc/ssl/certs/ssl-cert-snakeoil.pem",
            ("TLS", "KeyFile"): "/etc/ssl/private/ssl-cert-snakeoil.key",
            ("TLS", "SecurityLevel"): "may",
            ("Delivery", "RelayHost"): "",
            ("Delivery", "TLSSecurityLevel"): "may",
            ("Local", "AliasFile"): "/etc/aliases",
            ("Local", "RecipientDelimiter"): "+",
            ("Local", "MailboxFormat"): "mbox",
            ("Local", "MailboxPath"): "/var/mail/%u",
        }, s
        assert skipped == ["myorigin"], skipped
        assert "Hostname = mail.example.org\n# " + t.conf_path + ".d/60-postfix.conf:" in config


def test_crafted_main_cf():
    with harness.Tern(start=()) as t:
        s, skipped, _ = import_and_load(t, os.path.join(HERE, "postfix", "crafted.cf"))
        assert s == {
            ("Server", "Hostname"): "mx.example.net",
            ("Server", "LocalDomains"): "mx.example.net localhost.example.net localhost",
            ("Server", "TrustedNetworks"): "10.0.0.0/8 192.168.1.0/24",
            ("Queue", "MaxQueueLifetime"): "3d",
            ("SMTP", "MessageSizeLimit"): "52428800",
            ("TLS", "SecurityLevel"): "encrypt",
            ("Auth", "Backend"): "dovecot",
            ("Auth", "DovecotSocket"): "/var/spool/postfix/private/auth",
            ("Auth", "SenderLoginMap"): "/etc/postfix/sender_logins",
            ("Delivery", "RelayHost"): "[smarthost.example.net]:587",
            ("Delivery", "TLSSecurityLevel"): "verify",
            ("Delivery", "TransportTable"): "/etc/postfix/transport",
            ("Local", "RecipientDelimiter"): "+-",
            ("Local", "MailboxFormat"): "maildir",
            ("Local", "MailboxPath"): "~/Maildir/",
            ("Virtual", "AliasMap"): "/etc/postfix/virtual",
            ("Virtual", "AliasDomains"): "alias.example.net",
            ("Virtual", "MailboxDomains"): "mbox.example.net other.example.net",
            ("Virtual", "MailboxMap"): "/etc/postfix/vmailbox",
            ("Virtual", "MailboxBase"): "/srv/vmail",
            ("Virtual", "MailboxUser"): "root",
        }, s
        assert skipped == ["mydestination", "smtpd_sasl_path", "virtual_alias_maps",
                           "smtpd_milters", "local_option", "smtpd_recipient_limit"], skipped


def test_output_to_stdout_and_errors():
    with harness.Tern(start=()) as t:
        main_cf = os.path.join(t.dir, "main.cf")
        with open(main_cf, "w") as f:
            f.write("myhostname = a.example\n")
        p = t.run_cli(["ternctl", "import-postfix", main_cf])
        assert p.returncode == 0 and p.stderr == b"", p
        assert b"[Server]\n# " + main_cf.encode() + b":1 myhostname\nHostname = a.example\n" in p.stdout, p
        # -o never overwrites.
        out = os.path.join(t.dir, "out.conf")
        shutil.copy(main_cf, out)
        p = t.run_cli(["ternctl", "import-postfix", "-o", out, main_cf])
        assert p.returncode == 1 and p.stderr.startswith(b"ternctl: cannot create"), p
        with open(main_cf, "a") as f:
            f.write("this is not a parameter\n")
        p = t.run_cli(["ternctl", "import-postfix", main_cf])
        assert p.returncode == 1, p
        assert p.stderr == f"ternctl: {main_cf}:2: not a main.cf line\n".encode(), p
        p = t.run_cli(["ternctl", "import-postfix", os.path.join(t.dir, "none.cf")])
        assert p.returncode == 1 and b"No such file or directory" in p.stderr, p


if __name__ == "__main__":
    harness.main(globals())
