"""Local aliases through the real queued and deliverd, mail submitted with
tern's sendmail: to a user, to an address (sent on as a new message), to a
file, to a command (environment and user checked), :include: lists,
owner- aliases, the recursion limit and loops, command exit codes."""

import os
import pwd
import stat

import harness
from local_util import LocalUser, headers, result, send

FWD = "fwd.example"   # routed back to local delivery by the transport table


def setup(t, u, aliases, owner=None):
    """Writes and compiles the aliases file (owned by `owner`, default u) and
    the transport table, and configures them; then starts queued and deliverd."""
    path = os.path.join(t.dir, "aliases")
    with open(path, "w") as f:
        f.write(aliases)
    transport = os.path.join(t.dir, "transport")
    with open(transport, "w") as f:
        f.write(f"{FWD} local\n")
    with open(os.path.join(t.conf_path + ".d", "60-aliases.conf"), "w") as f:
        f.write(f"[Local]\nAliasFile = {path}\nMailboxPath = ~/Maildir/\n"
                f"[Delivery]\nTransportTable = {transport}\n")
    uid, gid = (owner if owner is not None else (u.uid, u.gid))
    os.chown(path, uid, gid)
    p = t.run_cli(["newaliases"])
    assert p.returncode == 0, p
    assert os.stat(path + ".cdb").st_uid == uid
    p = t.run_cli(["ternctl", "map", transport])
    assert p.returncode == 0, p
    t.start("queued")
    t.start("deliverd")


def test_alias_to_user_and_address_and_include():
    with harness.Tern(start=()) as t, LocalUser(t) as u:
        inc = os.path.join(t.dir, "list.inc")
        box = os.path.join(t.dir, "files", "incbox")
        os.makedirs(os.path.dirname(box))
        os.chown(os.path.dirname(box), u.uid, u.gid)
        with open(inc, "w") as f:
            f.write(f"# members\n{u.name}\n{box}\n")
        os.chown(inc, u.uid, u.gid)
        setup(t, u, f"team: {u.name}\n"
                    f"away: {u.name}@{FWD}\n"
                    f"list: :include:{inc}\n"
                    f"Mixed: \\{u.name}\n")
        send(t, ["team@test.example"], "to team")
        assert result(t, "team@test.example")[:2] == ("2.0.0", "sent")
        (m,) = u.maildir_messages()
        h = headers(m)
        assert h[0] == "Return-Path: <sender@example.org>", h
        assert h[1] == "Delivered-To: team@test.example", h
        assert b"Subject: to team\n" in m

        # An address: a new message, whose copy carries both Delivered-To lines.
        send(t, ["away@test.example"], "to away")
        dsn, status, text, relay = result(t, "away@test.example")
        assert (dsn, status, relay) == ("2.0.0", "sent", "local"), (dsn, status, text)
        assert text.startswith("forwarded as "), text
        result(t, f"{u.name}@{FWD}", "sent")
        m = [x for x in u.maildir_messages() if b"Subject: to away" in x]
        assert len(m) == 1
        h = headers(m[0])
        assert h[:3] == ["Return-Path: <sender@example.org>", f"Delivered-To: {u.name}@{FWD}",
                         "Delivered-To: away@test.example"], h

        # :include: with a user and a file (written as the include file's owner).
        send(t, ["list@test.example"], "to list")
        assert result(t, "list@test.example")[:2] == ("2.0.0", "sent")
        assert len([x for x in u.maildir_messages() if b"Subject: to list" in x]) == 1
        st = os.stat(box)
        assert st.st_uid == u.uid and stat.S_IMODE(st.st_mode) == 0o600
        with open(box, "rb") as f:
            data = f.read()
        assert data.startswith(b"From sender@example.org "), data[:80]
        assert b"\nDelivered-To: list@test.example\n" in data
        assert data.endswith(b"Hello.\n\n"), data[-40:]

        # Alias names are case-insensitive; "\user" is the mailbox itself.
        send(t, ["MIXED@test.example"], "to mixed")
        assert result(t, "MIXED@test.example")[:2] == ("2.0.0", "sent")


def test_command_environment_and_user():
    with harness.Tern(start=()) as t, LocalUser(t) as u:
        out = os.path.join(t.dir, "cmd")
        os.makedirs(out)
        os.chown(out, u.uid, u.gid)
        setup(t, u, f'tocmd: "|env > {out}/env; id -un > {out}/id; cat > {out}/msg"\n'
                    f"tempfail: |exit 75\n"
                    f"fail: \"|echo no such mailbox here >&2; exit 67\"\n")
        send(t, ["tocmd+tag@test.example"], "to command", sender="s+x@example.org")
        dsn, status, text, _ = result(t, "tocmd+tag@test.example")
        assert (dsn, status) == ("2.0.0", "sent"), text
        assert text.startswith("delivered to command: env >"), text
        with open(os.path.join(out, "env")) as f:
            env = dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)
        env.pop("PWD", None)      # set by the shell itself
        env.pop("SHLVL", None)
        env.pop("_", None)
        assert env == {
            "PATH": "/usr/bin:/bin",
            "SENDER": "s+x@example.org",
            "RECIPIENT": "tocmd+tag@test.example",
            "ORIGINAL_RECIPIENT": "tocmd+tag@test.example",
            "USER": u.name,
            "LOGNAME": u.name,
            "HOME": u.home,
            "SHELL": "/bin/sh",
            "LOCAL": "tocmd+tag",
            "EXTENSION": "tag",
            "DOMAIN": "test.example",
        }, env
        with open(os.path.join(out, "id")) as f:
            assert f.read() == u.name + "\n"
        with open(os.path.join(out, "msg"), "rb") as f:
            msg = f.read()
        assert msg.startswith(b"Return-Path: <s+x@example.org>\nDelivered-To: tocmd+tag@test.example\n")

        send(t, ["tempfail@test.example"], "tempfail")
        dsn, status, text, _ = result(t, "tempfail@test.example")
        assert (dsn, status, text) == ("4.3.0", "deferred", "Command died with status 75"), text

        send(t, ["fail@test.example"], "fail")
        dsn, status, text, _ = result(t, "fail@test.example")
        assert (dsn, status) == ("5.3.0", "bounced"), text
        assert text == "Command died with status 67: no such mailbox here", text


def test_root_owned_aliases_run_as_default_privileges():
    with harness.Tern(start=()) as t, LocalUser(t) as u:
        out = os.path.join(t.dir, "cmd")
        os.makedirs(out)
        os.chmod(out, 0o777)
        setup(t, u, f"who: |id -un > {out}/id\n", owner=(0, 0))
        send(t, ["who@test.example"], "who")
        assert result(t, "who@test.example")[:2] == ("2.0.0", "sent")
        with open(os.path.join(out, "id")) as f:
            assert f.read() == "nobody\n"
        assert os.stat(os.path.join(out, "id")).st_uid == pwd.getpwnam("nobody").pw_uid


def test_owner_alias_becomes_the_sender_of_the_expansion():
    with harness.Tern(start=()) as t, LocalUser(t) as u:
        setup(t, u, f"staff: {u.name}@{FWD}\nowner-staff: {u.name}\n")
        send(t, ["staff@test.example"], "owned")
        result(t, f"{u.name}@{FWD}", "sent")
        (m,) = u.maildir_messages()
        assert headers(m)[0] == "Return-Path: <owner-staff@test.example>", headers(m)


def test_loops_end():
    with harness.Tern(start=()) as t, LocalUser(t) as u:
        # In place: a -> b -> a ends at a's (missing) mailbox.
        # Through new messages: Delivered-To stops the second pass.
        setup(t, u, "la: lb\nlb: la\n"
                    f"loopa: loopb@{FWD}\nloopb: loopa@{FWD}\n"
                    + "".join(f"d{i}: d{i + 1}\n" for i in range(30)) + f"d30: {u.name}\n")
        send(t, ["la@test.example"], "in place")
        dsn, status, text, _ = result(t, "la@test.example")
        assert (dsn, status, text) == ("5.1.1", "bounced", 'unknown user: "la"'), text

        send(t, ["loopa@test.example"], "forwarded loop")
        dsn, status, text, _ = result(t, f"loopb@{FWD}", "bounced")
        assert (dsn, text) == ("5.4.6", f"mail forwarding loop for loopb@{FWD}"), text

        send(t, ["d0@test.example"], "deep")
        dsn, status, text, _ = result(t, "d0@test.example")
        assert (dsn, status) == ("5.4.6", "bounced"), text
        assert u.maildir_messages() == []


def test_message_already_delivered_here_bounces():
    with harness.Tern(start=()) as t, LocalUser(t) as u:
        setup(t, u, "")
        rcpt = f"{u.name}@test.example"
        body = f"Delivered-To: {rcpt.upper()}\nSubject: loop\n\nx\n".encode()
        p = t.run_cli(["sendmail", "-f", "s@example.org", rcpt], input=body)
        assert p.returncode == 0, p
        dsn, status, text, _ = result(t, rcpt)
        assert (dsn, status, text) == ("5.4.6", "bounced", f"mail forwarding loop for {rcpt}")
        assert u.maildir_messages() == []


harness.main(globals())
