"""A user's ~/.forward through the real queued and deliverd: kept copy with
"\\user", commands and files as the user, addresses sent on as a new message,
a loop between two users stopped by Delivered-To, and an unsafe (group
writable) .forward ignored."""

import os

import harness
from local_util import LocalUser, headers, result, send

FWD = "fwd.example"


def start(t):
    transport = os.path.join(t.dir, "transport")
    with open(transport, "w") as f:
        f.write(f"{FWD} local\n")
    with open(os.path.join(t.conf_path + ".d", "60-forward.conf"), "w") as f:
        f.write(f"[Local]\nMailboxPath = ~/Maildir/\nAliasFile =\n"
                f"[Delivery]\nTransportTable = {transport}\n")
    p = t.run_cli(["ternctl", "map", transport])
    assert p.returncode == 0, p
    t.start("queued")
    t.start("deliverd")


def test_forward_keeps_a_copy_runs_a_command_and_appends_a_file():
    with harness.Tern(start=()) as t, LocalUser(t) as u:
        u.write(".forward", f'\\{u.name}, "|echo $EXTENSION $LOCAL $(id -un) > $HOME/cmd.out", '
                            f"{u.home}/saved\n")
        start(t)
        send(t, [f"{u.name}+news@test.example"], "kept")
        dsn, status, text, _ = result(t, f"{u.name}+news@test.example")
        assert (dsn, status) == ("2.0.0", "sent"), text
        (m,) = u.maildir_messages()
        assert headers(m)[1] == f"Delivered-To: {u.name}+news@test.example"
        with open(os.path.join(u.home, "cmd.out")) as f:
            assert f.read() == f"news {u.name}+news {u.name}\n"
        st = os.stat(os.path.join(u.home, "saved"))
        assert st.st_uid == u.uid
        with open(os.path.join(u.home, "saved"), "rb") as f:
            assert f.read().count(b"Subject: kept\n") == 1


def test_forward_to_another_user_and_loop():
    with harness.Tern(start=()) as t, LocalUser(t, "fa") as a, LocalUser(t, "fb") as b:
        a.write(".forward", f"# to b\n{b.name}@{FWD}\n")
        start(t)
        send(t, [f"{a.name}@test.example"], "for b")
        dsn, status, text, _ = result(t, f"{a.name}@test.example")
        assert (dsn, status) == ("2.0.0", "sent") and text.startswith("forwarded as "), text
        result(t, f"{b.name}@{FWD}", "sent")
        assert a.maildir_messages() == []
        (m,) = b.maildir_messages()
        assert headers(m)[:3] == ["Return-Path: <sender@example.org>",
                                  f"Delivered-To: {b.name}@{FWD}",
                                  f"Delivered-To: {a.name}@test.example"], headers(m)

        # b forwards back to a: the second visit to a's address bounces.
        b.write(".forward", f"{a.name}@test.example\n")
        send(t, [f"{a.name}@test.example"], "loop")
        dsn, status, text, _ = result(t, f"{a.name}@test.example", "bounced")
        assert (dsn, text) == ("5.4.6", f"mail forwarding loop for {a.name}@test.example"), text
        assert len(b.maildir_messages()) == 1 and a.maildir_messages() == []


def test_forward_with_extension_is_tried_first():
    with harness.Tern(start=()) as t, LocalUser(t) as u:
        u.write(".forward+lists", f'"|cat > {u.home}/lists.out"\n')
        u.write(".forward", f'"|cat > {u.home}/plain.out"\n')
        start(t)
        send(t, [f"{u.name}+Lists@test.example"], "with extension")
        assert result(t, f"{u.name}+Lists@test.example")[:2] == ("2.0.0", "sent")
        send(t, [f"{u.name}+other@test.example"], "other extension")
        assert result(t, f"{u.name}+other@test.example")[:2] == ("2.0.0", "sent")
        with open(os.path.join(u.home, "lists.out"), "rb") as f:
            assert b"Subject: with extension" in f.read()
        with open(os.path.join(u.home, "plain.out"), "rb") as f:
            assert b"Subject: other extension" in f.read()
        assert u.maildir_messages() == []


def test_unsafe_forward_is_ignored():
    with harness.Tern(start=()) as t, LocalUser(t) as u:
        u.write(".forward", "someone@elsewhere.example\n", mode=0o666)
        start(t)
        send(t, [f"{u.name}@test.example"], "unsafe")
        dsn, status, text, _ = result(t, f"{u.name}@test.example")
        assert (dsn, status, text) == ("2.0.0", "sent", "delivered to maildir"), text
        assert len(u.maildir_messages()) == 1


harness.main(globals())
