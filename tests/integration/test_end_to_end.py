#!/usr/bin/env python3
"""End to end without PID 1: a message sent to smtpd with Python's smtplib is
queued durably and delivered byte-exact into the recipient's Maildir, and the
queue id links the log lines of smtpd, queued and deliverd."""

import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

BODY = (b"From: Sender <sender@example.org>\r\n"
        b"To: someone\r\n"
        b"Subject: end to end\r\n"
        b"\r\n"
        b"first line\r\n"
        b".leading dot survives dot-stuffing\r\n"
        b"\r\n"
        b"last line\r\n")


def send(t, rcpt, body=BODY):
    with t.smtp() as s:
        s.ehlo()
        s.mail("sender@example.org")
        code, _ = s.rcpt(rcpt)
        assert code == 250, code
        code, reply = s.data(body)
    assert code == 250, (code, reply)
    m = re.fullmatch(rb"2\.0\.0 Ok: queued as ([0-9A-F]+)", reply)
    assert m, reply
    return m.group(1).decode()


def lf(b):
    return b.replace(b"\r\n", b"\n")


def check_delivered(t, qid, rcpt, raw):
    lines = raw.split(b"\n")
    assert lines[0] == b"Return-Path: <sender@example.org>", lines[0]
    assert lines[1] == f"Delivered-To: {rcpt}".encode(), lines[1]
    # The client name is "unknown" or what reverse DNS said; the rest is exact.
    assert re.fullmatch(rb"Received: from client\.test \([^ ]+ \[127\.0\.0\.1\]\)", lines[2]), \
        lines[2]
    assert lines[3] == f"\tby {t.hostname} (tern) with ESMTP id {qid}".encode(), lines[3]
    assert lines[4].startswith(f"\tfor <{rcpt}>; ".encode()), lines[4]
    assert b"\n".join(lines[5:]) == lf(BODY), raw


def test_message_is_delivered_byte_exact_and_traced_by_queue_id():
    with harness.Tern() as t:
        rcpt = f"{t.user}@{t.domain}"
        qid = send(t, rcpt)
        msgs = t.wait_until(lambda: t.delivered(), what="delivery to the Maildir")
        assert len(msgs) == 1, msgs
        check_delivered(t, qid, rcpt, msgs[0])
        # The queue is empty once the only recipient is delivered.
        t.wait_until(lambda: t.queue_files() == [], what="the queue to empty")
        for daemon in ("smtpd", "queued", "deliverd"):
            t.wait_until(lambda: qid in t.log(daemon), what=f"{qid} in {daemon}'s log")
        assert f"to=<{rcpt}>, relay=local" in t.log("deliverd"), t.log("deliverd")
        assert "status=sent" in t.log("deliverd")


def test_message_accepted_while_deliverd_is_down_is_delivered_when_it_starts():
    with harness.Tern(start=("queued", "smtpd")) as t:
        rcpt = f"{t.user}@{t.domain}"
        qid = send(t, rcpt)
        assert t.queue_files() == [qid], t.queue_files()
        assert t.delivered() == []
        t.start("deliverd")
        msgs = t.wait_until(lambda: t.delivered(), what="delivery after deliverd started")
        assert len(msgs) == 1
        check_delivered(t, qid, rcpt, msgs[0])


def test_kill_9_of_queued_right_after_250_loses_nothing():
    with harness.Tern(start=("queued", "smtpd")) as t:
        rcpt = f"{t.user}@{t.domain}"
        qids = [send(t, rcpt) for _ in range(3)]
        t.kill("queued", signal.SIGKILL)
        # Everything acknowledged is on disk before queued comes back.
        assert t.queue_files() == sorted(qids), (t.queue_files(), qids)
        t.start("queued")
        t.start("deliverd")
        msgs = t.wait_until(lambda: len(t.delivered()) >= 3 and t.queue_files() == [] and
                            t.delivered(), what="three deliveries after restart")
        assert len(msgs) == 3, len(msgs)
        got = sorted(re.search(rb"with ESMTP id ([0-9A-F]+)", m).group(1).decode()
                     for m in msgs)
        assert got == sorted(qids), (got, qids)


def test_unknown_local_user_is_rejected_at_rcpt():
    with harness.Tern() as t:
        with t.smtp() as s:
            s.ehlo()
            s.mail("sender@example.org")
            code, text = s.rcpt(f"no-such-user-4711@{t.domain}")
        assert code == 550, (code, text)
        assert text.startswith(b"5.1.1 "), text


def test_swaks_delivers():
    import shutil
    import subprocess
    if not shutil.which("swaks"):
        raise harness.Skip("swaks is not installed")
    with harness.Tern() as t:
        rcpt = f"{t.user}@{t.domain}"
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(t.smtp_port),
                            "--from", "sender@example.org", "--to", rcpt,
                            "--header", "Subject: via swaks", "--body", "hello from swaks"],
                           capture_output=True, timeout=60)
        out = r.stdout.decode(errors="replace")
        assert r.returncode == 0, out + r.stderr.decode(errors="replace")
        m = re.search(r"<[-~]  250 2\.0\.0 Ok: queued as ([0-9A-F]+)", out)
        assert m, out
        msgs = t.wait_until(lambda: t.delivered(), what="swaks message delivered")
        assert b"Subject: via swaks\n" in msgs[0]
        # swaks ends its body with an empty line of its own.
        assert msgs[0].split(b"\n\n", 1)[1].rstrip(b"\n") == b"hello from swaks", msgs[0]
        assert f"with ESMTP id {m.group(1)}".encode() in msgs[0]


if __name__ == "__main__":
    harness.main(globals())
