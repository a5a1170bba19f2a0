#!/usr/bin/env python3
"""Mail loops: a message with more Received: header fields than HopCountLimit
(smtpd's own included) is accepted with 250, then every recipient is bounced
with 5.4.6 "mail forwarding loop" and nothing is delivered; at the limit it is
delivered. Received: lines in the body do not count, a folded field counts
once, and fields that straddle IPC frames are counted."""

import harness
from dsn_util import parse


def received(n, pad=0):
    line = "Received: from hop{i}.example.org by hop{j}.example.org;\r\n\tMon, 23 Nov 2026 09:00:00 +0000"
    extra = "".join(f"\r\n\t(padding {'x' * 600})" for _ in range(pad))
    return "".join(line.format(i=i, j=i + 1) + extra + "\r\n" for i in range(n))


def send(t, headers, body="hello\r\n"):
    msg = (headers + "Subject: loop test\r\nMessage-ID: <loop@client.test>\r\n\r\n" + body).encode()
    with t.smtp() as s:
        s.sendmail(f"{t.user}@{t.domain}", [f"{t.user}@{t.domain}", f"{t.user}@localhost"], msg)


def test_over_the_hop_count_limit_every_recipient_is_bounced_with_5_4_6():
    with harness.Tern() as t:
        send(t, received(50))   # + smtpd's own = 51 > 50 (the default)
        (raw,) = t.wait_until(lambda: t.delivered(), what="the bounce")
        t.wait_until(lambda: t.queue_files() == [], what="the queue to empty")
        msg, per_msg, rcpts, returned = parse(raw.replace(b"\n", b"\r\n"))
        assert msg["Subject"] == "Undelivered Mail Returned to Sender"
        assert [r["Final-Recipient"] for r in rcpts] == [f"rfc822; {t.user}@{t.domain}",
                                                        f"rfc822; {t.user}@localhost"]
        for r in rcpts:
            assert r["Action"] == "failed" and r["Status"] == "5.4.6", r.items()
            assert r["Diagnostic-Code"] == ("X-Tern; mail forwarding loop: 51 Received: header "
                                            "fields, more than HopCountLimit 50"), r["Diagnostic-Code"]
        log = t.log("queued")
        assert f"to=<{t.user}@{t.domain}>, relay=none, delay=0, dsn=5.4.6, status=bounced " \
               "(mail forwarding loop" in log, log
        # Nothing went to deliverd for the looping message: only the bounce.
        assert t.log("deliverd").count("status=sent") == 1, t.log("deliverd")


def test_at_the_limit_the_message_is_delivered():
    with harness.Tern() as t:
        send(t, received(49))
        msgs = t.wait_until(lambda: len(t.delivered()) == 2 and t.delivered(), what="two deliveries")
        assert all(b"multipart/report" not in m for m in msgs)
        assert all(m.count(b"\nReceived: ") + m.startswith(b"Received: ") == 50 for m in msgs), msgs[0][:300]


def test_body_lines_do_not_count_and_folded_fields_count_once():
    with harness.Tern(conf="[Queue]\nHopCountLimit = 5\n") as t:
        body = "".join(f"Received: quoted line {i}\r\n" for i in range(20))
        send(t, received(4, pad=2), body=body)   # 4 folded + smtpd's = 5: not over
        msgs = t.wait_until(lambda: len(t.delivered()) == 2 and t.delivered(), what="two deliveries")
        assert all(b"multipart/report" not in m for m in msgs)


def test_fields_across_ipc_frames_are_counted():
    # About 130 KiB of Received: fields: the header section spans three 64 KiB
    # MSG_DATA frames.
    with harness.Tern(conf="[Queue]\nHopCountLimit = 60\n") as t:
        send(t, received(60, pad=3))
        (raw,) = t.wait_until(lambda: t.delivered(), what="the bounce")
        assert b"Status: 5.4.6" in raw and b"61 Received: header fields" in raw, raw[:2000]


harness.main(globals())
