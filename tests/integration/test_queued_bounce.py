#!/usr/bin/env python3
"""Recipients that fail for good are reported to the sender in one RFC 3464
multipart/report from MAILER-DAEMON with the null sender; the null sender
gets none."""

import os

import harness
import ternipc as ipc
from queued_util import spool_path

BODY = b"Subject: will bounce\r\nMessage-ID: <orig@client.test>\r\n\r\nsecret body\r\n"


def start_with(t, sender, rcpts):
    """Writes a spool file directly (queued's RCPT check would refuse the
    unknown local user), then starts queued and deliverd."""
    os.makedirs(spool_path(t, "queue"), mode=0o700)
    qid = ipc.new_queue_id()
    ipc.write_spool_file(spool_path(t, "queue", qid), qid, sender, rcpts, BODY)
    t.start("queued")
    t.start("deliverd")
    return qid


def test_bounce_reaches_the_sender():
    with harness.Tern(start=()) as t:
        qid = start_with(t, f"{t.user}@{t.domain}",
                         [f"no-such-user-4711@{t.domain}", f"{t.user}@localhost"])
        msgs = t.wait_until(lambda: len(t.delivered()) >= 2 and t.delivered(),
                            what="the delivery and the bounce")
        t.wait_until(lambda: t.queue_files() == [], what="both messages removed")
        bounces = [m for m in msgs if b"multipart/report" in m]
        assert len(bounces) == 1, msgs
        b = bounces[0]
        assert b"From: MAILER-DAEMON@mx.test.example (Mail Delivery System)\n" in b, b
        assert f"To: <{t.user}@{t.domain}>\n".encode() in b, b
        assert b"report-type=delivery-status" in b
        assert f"Final-Recipient: rfc822; no-such-user-4711@{t.domain}\n".encode() in b, b
        assert b"Action: failed\nStatus: 5." in b, b
        assert f"X-Tern-Queue-ID: {qid}\n".encode() in b
        # Without RET the whole original comes back (Postfix's default);
        # test_queued_dsn.py covers RET=HDRS.
        assert b"Content-Type: message/rfc822\n\nSubject: will bounce\n" in b, b
        assert b"\nsecret body\n" in b
        # Only the failed recipient is reported.
        assert f"Final-Recipient: rfc822; {t.user}@localhost".encode() not in b
        log = t.log("queued")
        assert f"{qid}: sender non-delivery notification: " in log, log
        assert "from=<>, size=" in log


def test_null_sender_gets_no_bounce():
    with harness.Tern(start=()) as t:
        qid = start_with(t, "", [f"no-such-user-4711@{t.domain}"])
        t.wait_until(lambda: t.queue_files() == [], what="the message removed")
        assert f"{qid}: no non-delivery notification to the null sender" in t.log("queued")
        assert t.delivered() == []


harness.main(globals())
