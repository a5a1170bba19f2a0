#!/usr/bin/env python3
"""ternctl against a real queued: the queue in mailq's shape and as JSON, a
flush that sends deferred mail once deliverd is back, config and check."""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HEADER = ("-Queue ID-     --Size-- ----Arrival Time---- -Sender/Recipient-------\n")


def ctl(t, *args):
    return t.run_cli(["ternctl"] + list(args))


def submit(t, body=b"Subject: queued\n\nwaiting\n"):
    p = t.run_cli(["sendmail", t.user], input=body)
    assert p.returncode == 0, p


def test_queue_shows_a_message_while_deliverd_is_stopped():
    with harness.Tern(start=("queued",)) as t:
        p = ctl(t, "queue")
        assert (p.returncode, p.stdout, p.stderr) == (0, b"Mail queue is empty\n", b""), p
        submit(t)
        (qid,) = t.queue_files()
        for args in (("queue",), ("queue", "list")):
            p = ctl(t, *args)
            assert p.returncode == 0 and p.stderr == b"", p
            out = p.stdout.decode()
            assert out.startswith(HEADER), out
            lines = out[len(HEADER):].split("\n")
            m = re.fullmatch(rf"{qid}([ *!]) +(\d+) (\w{{3}} \w{{3}} [ \d]\d \d\d:\d\d:\d\d)  "
                             rf"{re.escape(t.user)}(@\S+)?", lines[0])
            assert m, lines
            # An error line "(...)" may come first if queued already tried deliverd.
            rest = [ln for ln in lines[1:] if not ln.lstrip().startswith("(")]
            assert rest[0] == " " * 45 + t.user, rest
            assert rest[1:] == ["", "-- 1 Kbytes in 1 Request.", ""], rest


def test_queue_json_parses_and_describes_the_message():
    with harness.Tern(start=("queued",)) as t:
        p = ctl(t, "queue", "--json")
        assert p.returncode == 0 and json.loads(p.stdout) == [], p
        submit(t)
        (qid,) = t.queue_files()
        p = ctl(t, "--json", "queue", "list")
        assert p.returncode == 0, p
        entries = json.loads(p.stdout)
        assert len(entries) == 1, entries
        e = entries[0]
        assert set(e) == {"id", "state", "sender", "size", "arrival", "recipients", "error"}, e
        assert e["id"] == qid, e
        assert e["recipients"] == [t.user], e
        assert e["sender"].split("@")[0] == t.user, e
        assert e["size"] > len(b"Subject: queued\n\nwaiting\n"), e
        assert isinstance(e["arrival"], int) and e["arrival"] > 1_600_000_000, e
        assert e["state"] in ("incoming", "active", "deferred", "hold"), e
        assert e["error"] is None or isinstance(e["error"], str), e


def test_flush_is_accepted_and_the_message_goes_once_deliverd_runs():
    # queued keeps a message "active" while deliverd is away and dispatches it
    # when deliverd connects, so this proves the flush round trip and its
    # errors, not that the flush alone caused the delivery.
    with harness.Tern(conf="[Queue]\nMinBackoff = 1h\nMaxBackoff = 2h\n",
                      start=("queued",)) as t:
        submit(t)
        (qid,) = t.queue_files()
        p = ctl(t, "queue", "flush", "0000000000000")
        assert p.returncode == 1, p
        assert p.stderr == b"ternctl: 0000000000000: no such message in the queue\n", p.stderr
        t.start("deliverd")
        p = ctl(t, "queue", "flush", qid)
        assert (p.returncode, p.stderr) in ((0, b""), (1, f"ternctl: {qid}: no such message "
                                                           f"in the queue\n".encode())), p
        t.wait_until(lambda: t.delivered(), what="delivery after the flush")
        t.wait_until(lambda: t.queue_files() == [], what="the queue to empty")
        p = ctl(t, "queue", "flush")
        assert (p.returncode, p.stderr) == (0, b""), p
        p = t.run_cli(["sendmail", "-q"])
        assert (p.returncode, p.stderr) == (0, b""), p


def test_queue_without_queued_fails_with_the_socket_path():
    with harness.Tern(start=()) as t:
        p = ctl(t, "queue")
        assert p.returncode == 1, p
        assert p.stderr == (f"ternctl: cannot connect to the tern queue ({t.queued_socket}): "
                            f"No such file or directory\n").encode(), p.stderr


def test_config_prints_the_effective_configuration():
    # AliasFile off: check warns about the host's uncompiled /etc/aliases.
    with harness.Tern(start=(), conf="[Local]\nAliasFile =\n") as t:
        p = ctl(t, "config")
        assert p.returncode == 0 and p.stderr == b"", p
        assert t.queued_socket.encode() in p.stdout, p.stdout
        assert t.conf_path.encode() in p.stdout, p.stdout  # where the value came from
        p = ctl(t, "-c", t.conf_path, "check")
        assert (p.returncode, p.stdout, p.stderr) == (0, b"", b""), p


def test_check_names_file_line_and_key_of_an_error():
    with harness.Tern(start=(), conf="[Server]\nNoSuchKey = 1\n") as t:
        p = ctl(t, "check")
        assert p.returncode == 1, p
        dropin = os.path.join(t.conf_path + ".d", "50-test.conf")
        assert p.stderr.startswith(f"ternctl: {dropin}:2: NoSuchKey".encode()), p.stderr
        p = ctl(t, "config")
        assert p.returncode == 1 and p.stdout == b"", p


def test_usage():
    with harness.Tern(start=()) as t:
        p = ctl(t, "frobnicate")
        assert p.returncode == 2, p
        assert p.stderr.startswith(b'ternctl: unknown command "frobnicate"'), p.stderr
        p = ctl(t)
        assert p.returncode == 2, p
        p = ctl(t, "queue", "sideways")
        assert p.returncode == 2, p
        p = ctl(t, "--help")
        assert p.returncode == 0 and p.stdout.startswith(b"Usage: ternctl"), p
        p = ctl(t, "--version")
        assert p.returncode == 0 and re.fullmatch(rb"tern \d+\.\d+\.\d+\n", p.stdout), p


harness.main(globals())
