#!/usr/bin/env python3
"""Delivery status notifications (RFC 3461/3464) from the real tern-queued:
failure, delay and success reports parsed with Python's email package,
NOTIFY, RET, ENVID and ORCPT honoured, failures of one round gathered into one
report, the null sender never answered, an undeliverable report sent to
postmaster once and then dropped, BounceQueueLifetime for reports. A stand-in
deliverd (dsn_util.FakeDeliverd) decides each recipient's fate; one test uses
the real deliverd and sendmail."""

import os
import re

import harness
import ternipc as ipc
from dsn_util import FakeDeliverd, local_ok, parse, reports, submit

SENDER = "alice@client.example"
BODY = (b"From: Alice <alice@client.example>\r\nSubject: dsn test\r\n"
        b"Message-ID: <orig@client.example>\r\n\r\nthe body text\r\n")
FAIL_TEXT = ("mx.remote.example[192.0.2.1] said: 550 5.1.1 <{r}>: Recipient address "
             "rejected: User unknown (in reply to RCPT TO command)")


def policy(rcpt, env):
    local = rcpt.split("@")[0]
    if local.startswith("fail"):
        return (ipc.BOUNCED, "5.1.1", FAIL_TEXT.format(r=rcpt), "mx.remote.example[192.0.2.1]:25",
                False)
    if local.startswith("defer"):
        return (ipc.DEFERRED, "4.4.1", "connect to mx.remote.example[192.0.2.1]:25: Connection refused",
                "mx.remote.example[192.0.2.1]:25", False)
    if local.startswith("relay"):
        return ipc.DELIVERED, "2.0.0", "250 2.0.0 Ok", "mx.remote.example[192.0.2.1]:25", False
    if local.startswith("dsnok"):
        return ipc.DELIVERED, "2.0.0", "250 2.0.0 Ok", "mx.remote.example[192.0.2.1]:25", True
    if local.startswith("gone"):
        return ipc.BOUNCED, "5.1.1", 'unknown user: "gone"', "local", False
    if local == "postmaster" and env.get("x-fail-postmaster"):
        return ipc.BOUNCED, "5.2.2", "mailbox full", "local", False
    return local_ok(rcpt, env)


class Setup:
    def __init__(self, conf="", pol=policy):
        self.conf = conf
        self.pol = pol

    def __enter__(self):
        self.t = harness.Tern(conf=self.conf, start=()).__enter__()
        self.fake = FakeDeliverd(self.t, self.pol)
        self.t.start("queued")
        return self.t, self.fake

    def __exit__(self, *exc):
        try:
            self.t.__exit__(*exc)
        finally:
            self.fake.close()
        return False


def empty_queue(t):
    t.wait_until(lambda: t.queue_files() == [], what="the queue to empty")


def test_failures_of_one_round_make_one_report_with_ret_hdrs_envid_and_orcpt():
    with Setup() as (t, fake):
        qid = submit(t, SENDER, [("fail1@remote.example", "FAILURE", "rfc822;first+2Bx@remote.example"),
                                 "fail2@remote.example", "ok@remote.example"],
                     BODY, envid="env+2Did-42", ret="HDRS")
        t.wait_until(lambda: reports(fake, SENDER), what="the failure report")
        empty_queue(t)
        (rep,) = reports(fake, SENDER)
        msg, per_msg, rcpts, returned = rep
        assert msg["From"] == "MAILER-DAEMON@mx.test.example (Mail Delivery System)", msg["From"]
        assert msg["To"] == f"<{SENDER}>"
        assert msg["Subject"] == "Undelivered Mail Returned to Sender"
        assert msg["Auto-Submitted"] == "auto-replied"
        assert per_msg["Reporting-MTA"] == "dns; mx.test.example"
        assert per_msg["Original-Envelope-Id"] == "env-id-42", per_msg.items()
        assert per_msg["X-Tern-Queue-ID"] == qid
        assert per_msg["Arrival-Date"]
        assert [r["Final-Recipient"] for r in rcpts] == ["rfc822; fail1@remote.example",
                                                        "rfc822; fail2@remote.example"]
        r1, r2 = rcpts
        assert r1["Original-Recipient"] == "rfc822; first+x@remote.example", r1.items()
        assert r2["Original-Recipient"] is None
        for r in rcpts:
            assert r["Action"] == "failed"
            assert r["Status"] == "5.1.1"
            assert r["Remote-MTA"] == "dns; mx.remote.example"
            assert r["Diagnostic-Code"].startswith("smtp; 550 5.1.1 <fail"), r["Diagnostic-Code"]
            assert "in reply to" not in r["Diagnostic-Code"]
        # RET=HDRS: the headers come back, the body does not.
        assert returned.get_content_type() == "text/rfc822-headers"
        text = returned.get_payload()
        assert "Subject: dsn test" in text and "the body text" not in text, text
        # The envelope of the report: null sender, to the original sender.
        (env,) = fake.messages(rcpt=SENDER)
        assert env["sender"] == b"" and env["proto"] == b"tern-dsn"
        assert f"{qid}: sender non-delivery notification: " in t.log("queued")


def test_ret_full_returns_the_whole_message_as_message_rfc822():
    with Setup() as (t, fake):
        submit(t, SENDER, ["fail@remote.example"], BODY, ret="FULL")
        (rep,) = t.wait_until(lambda: reports(fake, SENDER), what="the failure report")
        returned = rep[3]
        assert returned.get_content_type() == "message/rfc822"
        inner = returned.get_payload()[0]
        assert inner["Subject"] == "dsn test"
        assert inner.get_payload().replace("\r\n", "\n") == "the body text\n"
        (env,) = fake.messages(rcpt=SENDER)
        assert "body_type" not in env


def test_an_8bit_original_makes_an_8bitmime_report():
    with Setup() as (t, fake):
        submit(t, SENDER, ["fail@remote.example"], BODY.replace(b"the body", "café".encode()))
        t.wait_until(lambda: reports(fake, SENDER), what="the failure report")
        (env,) = fake.messages(rcpt=SENDER)
        assert env["body_type"] == b"8BITMIME"
        assert b"Content-Transfer-Encoding: 8bit\r\n" in env["body"]


def test_notify_never_and_success_only_give_no_failure_report():
    with Setup() as (t, fake):
        qid = submit(t, SENDER, [("fail1@remote.example", "NEVER", None),
                                 ("fail2@remote.example", "SUCCESS", None)], BODY)
        empty_queue(t)
        t.wait_until(lambda: f"{qid}: removed" in t.log("queued"), what="the removal")
        assert reports(fake, SENDER) == []
        log = t.log("queued")
        assert f"{qid}: <fail1@remote.example>: no non-delivery notification, NOTIFY=NEVER" in log, log
        assert f"{qid}: <fail2@remote.example>: no non-delivery notification, NOTIFY=SUCCESS" in log


def test_success_report_delivered_locally_and_relayed_to_a_next_hop_without_dsn():
    with Setup() as (t, fake):
        qid = submit(t, SENDER, [("box@remote.example", "SUCCESS,FAILURE", None),
                                 ("relay@remote.example", "SUCCESS", None),
                                 ("dsnok@remote.example", "SUCCESS", None),
                                 ("quiet@remote.example", None, None)], BODY)
        (rep,) = t.wait_until(lambda: reports(fake, SENDER), what="the success report")
        empty_queue(t)
        msg, per_msg, rcpts, returned = rep
        assert msg["Subject"] == "Successful Mail Delivery Report"
        got = {r["Final-Recipient"]: r for r in rcpts}
        # dsnok's next hop took the request and reports itself; quiet asked for nothing.
        assert sorted(got) == ["rfc822; box@remote.example", "rfc822; relay@remote.example"], got
        assert got["rfc822; box@remote.example"]["Action"] == "delivered"
        assert got["rfc822; box@remote.example"]["Status"] == "2.0.0"
        assert got["rfc822; relay@remote.example"]["Action"] == "relayed"
        assert got["rfc822; relay@remote.example"]["Remote-MTA"] == "dns; mx.remote.example"
        # Success reports carry the headers only (RFC 3461 4.3).
        assert returned.get_content_type() == "text/rfc822-headers"
        assert "the body text" not in returned.get_payload()
        assert f"{qid}: sender delivery status notification: " in t.log("queued")


def test_success_through_lmtp_is_delivered_not_relayed():
    with harness.Tern(start=()) as t:
        table = os.path.join(t.dir, "transport")
        with open(table, "w") as f:
            f.write("lmtp.example lmtp:[127.0.0.1]:24\n")
        p = t.run_cli(["ternctl", "map", table])
        assert p.returncode == 0, p
        with open(os.path.join(t.conf_path + ".d", "60-transport.conf"), "w") as f:
            f.write(f"[Delivery]\nTransportTable = {table}\n")

        def lmtp(rcpt, env):
            if rcpt.endswith("@lmtp.example"):
                return ipc.DELIVERED, "2.0.0", "250 2.0.0 Ok", "127.0.0.1[127.0.0.1]:24", False
            return policy(rcpt, env)

        fake = FakeDeliverd(t, lmtp)
        try:
            t.start("queued")
            submit(t, SENDER, [("box@lmtp.example", "SUCCESS", None),
                               ("relay@remote.example", "SUCCESS", None)], BODY)
            (rep,) = t.wait_until(lambda: reports(fake, SENDER), what="the success report")
            got = {r["Final-Recipient"]: r["Action"] for r in rep[2]}
            assert got == {"rfc822; box@lmtp.example": "delivered",
                           "rfc822; relay@remote.example": "relayed"}, got
        finally:
            fake.close()


def test_delay_warning_is_sent_once_per_message():
    conf = "[Queue]\nDelayWarningTime = 1s\nMinBackoff = 1s\nMaxBackoff = 1s\n"
    with Setup(conf) as (t, fake):
        qid = submit(t, SENDER, [("defer@remote.example", None, "rfc822;orig-defer@remote.example"),
                                 ("fail@remote.example", "FAILURE", None)], BODY)
        t.wait_until(lambda: fake.attempts(qid) >= 5, timeout=30, what="five delivery rounds")
        delays = reports(fake, SENDER, "Delayed Mail (still being retried)")
        assert len(delays) == 1, delays
        msg, per_msg, rcpts, returned = delays[0]
        (r,) = rcpts   # fail@ ended in the first round and never asked for DELAY
        assert r["Final-Recipient"] == "rfc822; defer@remote.example"
        assert r["Original-Recipient"] == "rfc822; orig-defer@remote.example"
        assert r["Action"] == "delayed"
        assert r["Status"] == "4.4.1"
        assert r["Will-Retry-Until"]
        assert "Connection refused" in r["Diagnostic-Code"]
        assert returned.get_content_type() == "text/rfc822-headers"
        assert "THIS IS A WARNING ONLY" in msg.get_payload()[0].get_payload()
        # The failure of the first round was reported at once, not at the end.
        fails = reports(fake, SENDER, "Undelivered Mail Returned to Sender")
        assert len(fails) == 1 and [x["Final-Recipient"] for x in fails[0][2]] == \
            ["rfc822; fail@remote.example"]
        assert t.queue_files() == [qid]


def test_delay_notify_never_gets_no_warning():
    conf = "[Queue]\nDelayWarningTime = 1s\nMinBackoff = 1s\nMaxBackoff = 1s\n"
    with Setup(conf) as (t, fake):
        qid = submit(t, SENDER, [("defer@remote.example", "FAILURE", None)], BODY)
        t.wait_until(lambda: fake.attempts(qid) >= 3, timeout=30, what="three delivery rounds")
        assert reports(fake, SENDER) == []


def test_null_sender_is_never_bounced():
    with Setup() as (t, fake):
        qid = submit(t, "", ["fail@remote.example"], BODY)
        t.wait_until(lambda: f"{qid}: removed" in t.log("queued"), what="the removal")
        assert f"{qid}: no non-delivery notification to the null sender" in t.log("queued")
        assert [env["id"].decode() for env in fake.messages()] == [qid]


def test_undeliverable_bounce_goes_to_postmaster_once():
    with Setup() as (t, fake):
        qid = submit(t, "gone@client.example", ["fail@remote.example"], BODY)
        t.wait_until(lambda: fake.messages(rcpt="postmaster"), what="the postmaster copy")
        empty_queue(t)
        (pm,) = fake.messages(rcpt="postmaster")
        assert pm["sender"] == b"" and pm["proto"] == b"tern-dsn-postmaster"
        msg, per_msg, rcpts, returned = parse(pm["body"])
        assert msg["Subject"] == "Postmaster Copy: Undelivered Mail"
        assert [r["Final-Recipient"] for r in rcpts] == ["rfc822; gone@client.example"]
        assert per_msg["X-Tern-Sender"] == "rfc822; "
        # The failed bounce itself is attached.
        bounce = returned.get_payload()[0]
        assert bounce["Subject"] == "Undelivered Mail Returned to Sender"
        # original, bounce, postmaster copy: nothing more.
        assert len(fake.messages()) == 3, [e["id"] for e in fake.messages()]
        assert "postmaster non-delivery notification" in t.log("queued")


def test_undeliverable_postmaster_copy_is_dropped_with_a_log_entry():
    with Setup() as (t, fake):
        os.makedirs(os.path.join(t.spool, "queue"), exist_ok=True)
        qid = ipc.new_queue_id()
        items = [("version", "1"), ("id", qid), ("sender", ""), ("rcpt_count", "1"),
                 ("rcpt.0", "postmaster"), ("arrival", str(int(__import__("time").time() * 1e6))),
                 ("proto", "tern-dsn-postmaster"), ("x-fail-postmaster", "1"),
                 ("size", str(len(BODY))), ("body", BODY)]
        t.stop("queued")
        with open(os.path.join(t.spool, "queue", qid), "wb") as f:
            f.write(ipc.cdb_bytes([(k.encode(), v if isinstance(v, bytes) else v.encode())
                                   for k, v in items]))
        t.start("queued")
        t.wait_until(lambda: f"{qid}: removed" in t.log("queued"), what="the removal")
        assert f"{qid}: undeliverable postmaster notification discarded" in t.log("queued")
        assert [e["id"].decode() for e in fake.messages()] == [qid]


def test_undeliverable_report_expires_after_bounce_queue_lifetime():
    conf = "[Queue]\nBounceQueueLifetime = 1s\nMaxQueueLifetime = 1h\nMinBackoff = 1s\nMaxBackoff = 1s\n"
    with Setup(conf) as (t, fake):
        qid = submit(t, "", ["defer@remote.example"], BODY)
        normal = submit(t, SENDER, [("defer@remote.example", "NEVER", None)], BODY)
        t.wait_until(lambda: f"{qid}: removed" in t.log("queued"), timeout=30, what="the expiry")
        log = t.log("queued")
        assert re.search(rf"{qid}: to=<defer@remote\.example>, relay=none, delay=\d+\.\d\d, "
                         r"dsn=4\.4\.7, status=expired", log), log
        # The sender's message is still queued (MaxQueueLifetime).
        assert normal in t.queue_files()


def test_success_report_through_sendmail_and_the_real_deliverd():
    with harness.Tern(start=("queued", "deliverd")) as t:
        p = t.run_cli(["sendmail", "-N", "success", "-V", "my-envid", t.user],
                      input=b"Subject: please confirm\n\nhello\n")
        assert p.returncode == 0, p
        msgs = t.wait_until(lambda: len(t.delivered()) >= 2 and t.delivered(), what="message and report")
        empty_queue(t)
        reps = [parse(m) for m in msgs if b"multipart/report" in m]
        assert len(reps) == 1, msgs
        msg, per_msg, rcpts, returned = reps[0]
        assert msg["Subject"] == "Successful Mail Delivery Report"
        assert per_msg["Original-Envelope-Id"] == "my-envid"
        (r,) = rcpts
        assert r["Action"] == "delivered" and r["Status"] == "2.0.0", r.items()
        assert r["Remote-MTA"] is None
        assert "Subject: please confirm" in returned.get_payload()


def test_dsn_parameters_from_smtp_reach_the_reports():
    with harness.Tern() as t:
        me = f"{t.user}@{t.domain}"
        with t.smtp() as s:
            s.ehlo("client.test")
            assert s.has_extn("dsn")
            s.sendmail(me, [me, f"no-such-user-4711@localhost"],
                       b"Subject: over smtp\r\n\r\nsmtp body\r\n",
                       mail_options=["RET=HDRS", "ENVID=smtp+2Benvid"],
                       rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;orig+2Bme@test.example"])
        # no-such-user is refused at RCPT by queued; the report is about `me`.
        msgs = t.wait_until(lambda: len(t.delivered()) >= 2 and t.delivered(), what="message and report")
        empty_queue(t)
        reps = [parse(m.replace(b"\n", b"\r\n")) for m in msgs if b"multipart/report" in m]
        assert len(reps) == 1, msgs
        msg, per_msg, rcpts, returned = reps[0]
        assert msg["Subject"] == "Successful Mail Delivery Report"
        assert per_msg["Original-Envelope-Id"] == "smtp+envid"
        (r,) = rcpts
        assert r["Original-Recipient"] == "rfc822; orig+me@test.example", r.items()
        assert r["Final-Recipient"] == f"rfc822; {me}"
        assert r["Action"] == "delivered"


harness.main(globals())
