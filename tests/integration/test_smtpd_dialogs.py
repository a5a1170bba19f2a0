#!/usr/bin/env python3
"""smtpd's SMTP dialogs with exact replies (tests/integration/dialogs/), against
tern-smtpd behind systemd-socket-activate and a scripted queued, plus the
unknown-user answer of the real queued passed through unchanged."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import smtpd_util  # noqa: E402

UNKNOWN = (550, "5.1.1", "<nobody@test.example>: Recipient address rejected: "
           "User unknown in local recipient table")


def rcpt_answer(rcpt):
    return UNKNOWN if rcpt == "nobody@test.example" else None


def run(name):
    with smtpd_util.Smtpd(rcpt_answer=rcpt_answer) as s:
        smtpd_util.run_dialog(s.port, smtpd_util.load_dialog(name))
        return s


def test_basic_transaction_has_exact_replies_and_queues_the_body_behind_received():
    with smtpd_util.Smtpd() as s:
        smtpd_util.run_dialog(s.port, smtpd_util.load_dialog("basic.dialog"))
        s.wait_log("disconnect from")
        (m,) = s.queued.messages
        assert m["sender"] == "sender@example.org" and m["rcpts"] == ["user@test.example"], m
        assert m["size"] == 42 and m["body_type"] == "8BITMIME" and m["proto"] == "ESMTP", m
        head, body = m["data"].split(b"\r\nSubject:", 1)
        lines = head.split(b"\r\n")
        assert lines[0] == b"Received: from client.test (unknown [127.0.0.1])", lines
        assert lines[1] == b"\tby mx.test.example (tern) with ESMTP id ABC000001", lines
        assert lines[2].startswith(b"\tfor <user@test.example>; "), lines
        assert body == b" hello\r\n\r\n.leading dot\r\n", body
        log = s.log()
        assert "connect from unknown[127.0.0.1]" in log, log
        assert "ABC000001: client=unknown[127.0.0.1]" in log, log
        assert ("disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 "
                "commands=5") in log, log


def test_command_sequencing_and_syntax_errors():
    with smtpd_util.Smtpd() as s:
        smtpd_util.run_dialog(s.port, smtpd_util.load_dialog("sequence.dialog"))
        s.wait_log("disconnect from")
        assert s.queued.messages == []
        # The transaction opened by MAIL FROM:<> was discarded by RSET.
        harness.Tern.wait_until(lambda: s.queued.aborted == 1, what="ABORT at queued")


def test_pipelined_transactions_are_answered_in_order():
    with smtpd_util.Smtpd(rcpt_answer=rcpt_answer) as s:
        smtpd_util.run_dialog(s.port, smtpd_util.load_dialog("pipelining.dialog"))
        s.wait_log("disconnect from")
        assert [m["rcpts"] for m in s.queued.messages] == [
            ["one@test.example", "two@test.example"], ["three@test.example"]]
        # Two recipients: the Received: header names none.
        first = s.queued.messages[0]["data"].split(b"\r\n")
        assert first[1] == b"\tby mx.test.example (tern) with ESMTP id ABC000001;", first
        assert s.queued.messages[1]["data"].endswith(b"\r\nsecond\r\n")
        assert ("NOQUEUE: reject" not in s.log() and
                "ABC000001: reject: RCPT from unknown[127.0.0.1]: 550 5.1.1 "
                "<nobody@test.example>: Recipient address rejected: User unknown in local "
                "recipient table; from=<a@example.org> to=<nobody@test.example> proto=ESMTP "
                "helo=<client.test>") in s.log(), s.log()


def test_postmaster_without_domain_is_local():
    with smtpd_util.Smtpd() as s:
        smtpd_util.run_dialog(s.port, smtpd_util.load_dialog("postmaster.dialog"))


def test_unknown_user_of_the_real_queued_gets_550_5_1_1():
    if not os.path.exists(os.path.join(harness.build_dir(), "queued/tern-queued")):
        raise harness.Skip("queued is not built")
    with harness.Tern(start=("queued", "smtpd")) as t:
        with smtpd_util.Client(t.smtp_port) as c:
            c.expect(f"220 {t.hostname} ESMTP tern")
            c.send("HELO client.test\r\nMAIL FROM:<a@example.org>\r\n"
                   f"RCPT TO:<no-such-user-xyz@{t.domain}>\r\nRCPT TO:<{t.user}@{t.domain}>\r\n"
                   "QUIT\r\n")
            c.expect(f"250 {t.hostname}", "250 2.1.0 Ok")
            r = c.line()
            assert r.startswith("550 5.1.1 "), r
            c.expect("250 2.1.5 Ok", "221 2.0.0 Bye")


def test_address_forms_lengths_and_rset():
    domain = ".".join(["d" * 63, "d" * 63, "d" * 56]) + ".test"   # 189 octets
    assert len(domain) == 189
    subst = {"L64": "l" * 64, "L65": "l" * 65, "D189": domain, "D190": "e" + domain}
    with smtpd_util.Smtpd() as s:
        smtpd_util.run_dialog(s.port, smtpd_util.load_dialog("addresses.dialog"), subst)
        s.wait_log("disconnect from")
        (m,) = s.queued.messages
        assert m["sender"] == '"john doe"@example.org', m
        assert m["rcpts"] == ['"a\\"b"@test.example', "route@test.example", "lit@[192.0.2.1]",
                             "lit6@[IPv6:2001:db8::1]", "l" * 64 + "@test.example",
                             "l" * 64 + "@" + domain], m["rcpts"]
        harness.Tern.wait_until(lambda: s.queued.aborted >= 2, what="ABORT at queued (RSET, HELO)")


if __name__ == "__main__":
    harness.main(globals())
