"""Virtual alias domains (expanded by queued at RCPT time) and virtual
mailbox domains (Maildir or mbox below MailboxBase, owned by MailboxUser),
with mail sent through tern-smtpd and checked in the mailboxes, the RCPT
replies for unknown users and alias loops, and `ternctl route`."""

import os
import smtplib
import stat

import harness
from local_util import LocalUser, headers, message, result


def setup(t, vmail, local_user):
    base = os.path.join(t.dir, "vhosts")
    os.makedirs(base)
    os.chown(base, vmail.uid, vmail.gid)
    valias = os.path.join(t.dir, "valias")
    with open(valias, "w") as f:
        f.write(f"info@alias.example alice@vbox.example, {local_user.name}@test.example\n"
                "@catch.example @vbox.example\n"
                "l1@alias.example l2@alias.example\n"
                "l2@alias.example l1@alias.example\n")
    vmbox = os.path.join(t.dir, "vmailbox")
    with open(vmbox, "w") as f:
        f.write("alice@vbox.example vbox.example/alice/\n"
                "bob@vbox.example vbox.example/bob.mbox\n")
    for p in (valias, vmbox):
        r = t.run_cli(["ternctl", "map", p])
        assert r.returncode == 0, r
    with open(os.path.join(t.conf_path + ".d", "60-virtual.conf"), "w") as f:
        f.write(f"[Local]\nMailboxPath = ~/Maildir/\nAliasFile =\n"
                f"[Virtual]\nAliasDomains = alias.example catch.example\nAliasMap = {valias}\n"
                f"MailboxDomains = vbox.example\nMailboxMap = {vmbox}\n"
                f"MailboxBase = {base}\nMailboxUser = {vmail.name}\n")
    return base


def send_smtp(t, rcpts, subject):
    with t.smtp() as s:
        s.sendmail("sender@example.org", rcpts, message(subject).replace(b"\n", b"\r\n"))


def rcpt_reply(t, rcpt):
    with t.smtp() as s:
        s.ehlo()
        s.mail("sender@example.org")
        return s.rcpt(rcpt)




def test_virtual_mailboxes_maildir_and_mbox():
    with harness.Tern(start=()) as t, LocalUser(t, "vm") as vmail, LocalUser(t) as u:
        base = setup(t, vmail, u)
        for d in ("queued", "deliverd", "smtpd"):
            t.start(d)
        send_smtp(t, ["alice@vbox.example", "Bob@VBOX.example"], "to the boxes")
        assert result(t, "alice@vbox.example")[:2] == ("2.0.0", "sent")
        assert result(t, "Bob@vbox.example")[:2] == ("2.0.0", "sent")
        (m,) = harness.maildir_messages(os.path.join(base, "vbox.example", "alice"))
        assert headers(m)[:2] == ["Return-Path: <sender@example.org>",
                                  "Delivered-To: alice@vbox.example"], headers(m)
        mbox = os.path.join(base, "vbox.example", "bob.mbox")
        st = os.stat(mbox)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (vmail.uid, 0o600)
        assert os.stat(os.path.join(base, "vbox.example")).st_uid == vmail.uid
        with open(mbox, "rb") as f:
            data = f.read()
        assert data.startswith(b"From sender@example.org ") and b"\nDelivered-To: Bob@vbox.example\n" in data

        code, text = rcpt_reply(t, "carol@vbox.example")
        assert (code, text) == (550, b"5.1.1 <carol@vbox.example>: Recipient address rejected: "
                                     b"User unknown in virtual mailbox table"), (code, text)


def test_virtual_alias_domain_expansion():
    with harness.Tern(start=()) as t, LocalUser(t, "vm") as vmail, LocalUser(t) as u:
        base = setup(t, vmail, u)
        for d in ("queued", "deliverd", "smtpd"):
            t.start(d)
        send_smtp(t, ["info@alias.example", "alice@catch.example"], "expanded")
        # The spool holds the expansion; each copy says where it was going.
        assert result(t, "alice@vbox.example")[:2] == ("2.0.0", "sent")
        assert result(t, f"{u.name}@test.example")[:2] == ("2.0.0", "sent")
        assert "info@alias.example" not in t.log("deliverd")
        (m,) = harness.maildir_messages(os.path.join(base, "vbox.example", "alice"))  # two routes, one copy
        (m,) = u.maildir_messages()
        assert headers(m)[1] == f"Delivered-To: {u.name}@test.example"

        code, text = rcpt_reply(t, "nobody@alias.example")
        assert (code, text) == (550, b"5.1.1 <nobody@alias.example>: Recipient address rejected: "
                                     b"User unknown in virtual alias table"), (code, text)
        code, text = rcpt_reply(t, "l1@alias.example")
        assert (code, text) == (550, b"5.4.6 <l1@alias.example>: Recipient address rejected: "
                                     b"virtual alias loop"), (code, text)

        p = t.run_cli(["ternctl", "route", "info@alias.example", "zed@vbox.example"])
        assert p.returncode == 1, p
        assert p.stdout.decode().splitlines() == [
            f"info@alias.example -> alice@vbox.example, {u.name}@test.example",
            f"alice@vbox.example: transport=virtual mailbox={base}/vbox.example/alice/ "
            "destination=virtual (virtual mailbox domain)",
            f"{u.name}@test.example: transport=local user={u.name} destination=local (local domain)",
            "zed@vbox.example: rejected: 550 5.1.1 Recipient address rejected: "
            "User unknown in virtual mailbox table",
        ], p.stdout


def test_virtual_domains_are_accepted_from_untrusted_clients():
    # smtpd's relay decision knows the virtual domains as its own: a client
    # outside TrustedNetworks may send to them, and only to them.
    with harness.Tern(conf="[Server]\nTrustedNetworks = 192.0.2.0/24\n", start=()) as t, \
            LocalUser(t, "vm") as vmail, LocalUser(t) as u:
        setup(t, vmail, u)
        for d in ("queued", "deliverd", "smtpd"):
            t.start(d)
        assert rcpt_reply(t, "alice@vbox.example")[0] == 250
        assert rcpt_reply(t, "info@alias.example")[0] == 250
        assert rcpt_reply(t, f"{u.name}@test.example")[0] == 250
        assert rcpt_reply(t, "someone@elsewhere.example") == (
            554, b"5.7.1 <someone@elsewhere.example>: Relay access denied")


harness.main(globals())
