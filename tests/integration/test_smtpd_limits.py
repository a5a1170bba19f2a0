#!/usr/bin/env python3
"""DESIGN promise 3, nothing unbounded: smtpd's limits on command lines, text
lines, message size, recipients, errors, idle time and session time, each
answered with the exact reply; and promise 1: no 250 unless queued said the
message is queued (451 4.3.0 otherwise)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import smtpd_util  # noqa: E402

GREETING = "220 mx.test.example ESMTP tern"


def start(c, size="10240000"):
    c.expect(GREETING)
    c.send("EHLO client.test\r\n")
    c.expect("250-mx.test.example", "250-PIPELINING", f"250-SIZE {size}",
             "250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250-DSN", "250-SMTPUTF8",
             "250 CHUNKING")


def test_command_line_over_512_octets_is_refused_and_skipped():
    with smtpd_util.Smtpd() as s:
        with s.client() as c:
            c.expect(GREETING)
            # 512 octets including CRLF is the limit (RFC 5321 4.5.3.1.4).
            c.send("NOOP " + "x" * 505 + "\r\n")
            c.expect("250 2.0.0 Ok")
            c.send("NOOP " + "x" * 506 + "\r\n")
            c.expect("500 5.5.0 Error: line too long")
            # A long line in many pieces is skipped up to its LF, once.
            c.send("MAIL FROM:<" + "y" * 100000)
            c.send("y" * 100000 + ">\r\nNOOP\r\n")
            c.expect("500 5.5.0 Error: line too long", "250 2.0.0 Ok")
            c.send("QUIT\r\n")
            c.expect("221 2.0.0 Bye")


def test_size_parameter_over_the_limit_is_refused_at_mail():
    with smtpd_util.Smtpd(conf="[SMTP]\nMessageSizeLimit = 5000\n") as s:
        with s.client() as c:
            start(c, size="5000")
            c.send("MAIL FROM:<a@example.org> SIZE=5001\r\n")
            c.expect("552 5.3.4 Message size exceeds fixed limit")
            c.send("MAIL FROM:<a@example.org> SIZE=99999999999999999999999\r\n")
            c.expect("552 5.3.4 Message size exceeds fixed limit")
            c.send("MAIL FROM:<a@example.org> SIZE=5000\r\n")
            c.expect("250 2.1.0 Ok")


def test_message_over_the_limit_is_read_to_the_end_and_not_queued():
    with smtpd_util.Smtpd(conf="[SMTP]\nMessageSizeLimit = 5000\n") as s:
        with s.client() as c:
            start(c, size="5000")
            c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<u@test.example>\r\nDATA\r\n")
            c.expect("250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>")
            c.send(("x" * 78 + "\r\n") * 100 + ".\r\nNOOP\r\n")
            c.expect("552 5.3.4 Error: message file too big", "250 2.0.0 Ok")
        s.wait_log("disconnect from")
        harness.Tern.wait_until(lambda: s.queued.aborted == 1, what="ABORT at queued")
        assert s.queued.messages == []


def test_text_line_over_1000_octets_refuses_the_message():
    with smtpd_util.Smtpd() as s:
        with s.client() as c:
            start(c)
            c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<u@test.example>\r\nDATA\r\n")
            c.expect("250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>")
            c.send("x" * 998 + "\r\n" + "y" * 999 + "\r\n.\r\n")
            c.expect("500 5.5.0 Error: line too long")
            c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<u@test.example>\r\nDATA\r\n")
            c.expect("250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>")
            c.send("x" * 998 + "\r\n.\r\n")
            c.expect("250 2.0.0 Ok: queued as ABC000002")
        s.wait_log("disconnect from")
        assert [m["id"] for m in s.queued.messages] == ["ABC000002"]


def test_recipient_limit_gives_452_4_5_3():
    with smtpd_util.Smtpd(conf="[SMTP]\nRecipientLimit = 2\n") as s:
        with s.client() as c:
            start(c)
            c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<a@test.example>\r\n"
                   "RCPT TO:<b@test.example>\r\nRCPT TO:<c@test.example>\r\n")
            c.expect("250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok",
                     "452 4.5.3 Error: too many recipients")


def test_hard_error_limit_closes_the_session_with_421():
    with smtpd_util.Smtpd(conf="[SMTP]\nHardErrorLimit = 3\n") as s:
        with s.client() as c:
            c.expect(GREETING)
            c.send("FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n")
            c.expect("500 5.5.2 Error: command not recognized",
                     "500 5.5.2 Error: command not recognized",
                     "500 5.5.2 Error: command not recognized",
                     "421 4.7.0 mx.test.example Error: too many errors")
            c.expect_eof()
        s.wait_log("too many errors after CONNECT from unknown[127.0.0.1]")


def test_junk_command_limit_closes_the_session_with_421():
    with smtpd_util.Smtpd(conf="[SMTP]\nJunkCommandLimit = 4\n") as s:
        with s.client() as c:
            start(c)
            c.send("NOOP\r\nRSET\r\nVRFY root\r\nHELP\r\nMAIL FROM:<a@example.org>\r\nNOOP\r\n"
                   "QUIT\r\n")
            c.expect("250 2.0.0 Ok", "250 2.0.0 Ok",
                     "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery")
            c.reply()  # HELP
            c.expect("250 2.1.0 Ok", "421 4.7.0 mx.test.example Error: too many junk commands")
            c.expect_eof()
        s.wait_log("disconnect from")
        log = s.log()
        assert "too many junk commands after NOOP from unknown[127.0.0.1]" in log, log
        assert " noop=1/2 " in log, log
        # The open transaction was discarded.
        harness.Tern.wait_until(lambda: s.queued.aborted == 1, what="ABORT at queued")


def test_session_recipient_limit_counts_all_transactions():
    with smtpd_util.Smtpd(conf="[SMTP]\nSessionRecipientLimit = 3\nRecipientLimit = 2\n") as s:
        with s.client() as c:
            start(c)
            c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<a@test.example>\r\nRCPT TO:<b@test.example>\r\n"
                   "RCPT TO:<c@test.example>\r\nRSET\r\n"
                   "MAIL FROM:<a@example.org>\r\nRCPT TO:<d@test.example>\r\nRCPT TO:<e@test.example>\r\n"
                   "DATA\r\nx\r\n.\r\nQUIT\r\n")
            c.expect("250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok",
                     "452 4.5.3 Error: too many recipients", "250 2.0.0 Ok",
                     "250 2.1.0 Ok", "250 2.1.5 Ok",
                     "452 4.5.3 Error: too many recipients in this session",
                     "354 End data with <CR><LF>.<CR><LF>", "250 2.0.0 Ok: queued as ABC000002",
                     "221 2.0.0 Bye")
        s.wait_log("disconnect from")
        assert [m["rcpts"] for m in s.queued.messages] == [["d@test.example"]]
        log = s.log()
        assert ("ABC000002: reject: RCPT from unknown[127.0.0.1]: 452 4.5.3 Error: too many recipients "
                "in this session; from=<a@example.org> to=<e@test.example> proto=ESMTP "
                "helo=<client.test>") in log, log


def test_idle_client_gets_421_timeout():
    with smtpd_util.Smtpd(conf="[SMTP]\nTimeout = 1s\n") as s:
        with s.client() as c:
            c.expect(GREETING)
            c.send("HELO client.test\r\n")
            c.expect("250 mx.test.example")
            c.expect("421 4.4.2 mx.test.example Error: timeout exceeded")
            c.expect_eof()
        s.wait_log("timeout after HELO from unknown[127.0.0.1]")


def test_idle_client_inside_data_gets_421_and_nothing_is_queued():
    with smtpd_util.Smtpd(conf="[SMTP]\nTimeout = 1s\n") as s:
        with s.client() as c:
            start(c)
            c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<u@test.example>\r\nDATA\r\npartial\r\n")
            c.expect("250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>",
                     "421 4.4.2 mx.test.example Error: timeout exceeded")
            c.expect_eof()
        harness.Tern.wait_until(lambda: s.queued.aborted == 1, what="ABORT at queued")
        assert s.queued.messages == []


def test_session_timeout_ends_a_busy_session():
    with smtpd_util.Smtpd(conf="[SMTP]\nSessionTimeout = 2s\n") as s:
        with s.client() as c:
            c.expect(GREETING)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                c.send("NOOP\r\n")
                line = c.line()
                if line != "250 2.0.0 Ok":
                    break
                time.sleep(0.2)  # pacing the client, not synchronising
            assert line == "421 4.4.2 mx.test.example Error: timeout exceeded", line
            c.expect_eof()


def test_queued_unreachable_gives_421_at_connect():
    with smtpd_util.Smtpd(queued=False) as s:
        with s.client() as c:
            c.expect("421 4.3.0 mx.test.example Service not available, closing transmission "
                     "channel")
            c.expect_eof()
        s.wait_log("Cannot reach queued at ")


def test_queued_failure_at_end_of_data_is_451_never_250():
    with smtpd_util.Smtpd(end_answer=lambda m: "close") as s:
        with s.client() as c:
            start(c)
            c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<u@test.example>\r\nDATA\r\n")
            c.expect("250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>")
            c.send("hello\r\n.\r\n")
            c.expect("451 4.3.0 Error: queue file write error")
            c.send("MAIL FROM:<a@example.org>\r\n")
            c.expect("451 4.3.0 Error: queue file write error")
        s.wait_log("queued failed during END")


def test_queued_refusal_at_end_of_data_is_passed_through():
    with smtpd_util.Smtpd(end_answer=lambda m: (452, "4.3.1", "Insufficient system storage")) as s:
        with s.client() as c:
            start(c)
            c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<u@test.example>\r\nDATA\r\n")
            c.expect("250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>")
            c.send("hello\r\n.\r\nNOOP\r\n")
            c.expect("452 4.3.1 Insufficient system storage", "250 2.0.0 Ok")


def test_malformed_queued_refusal_becomes_451():
    with smtpd_util.Smtpd(rcpt_answer=lambda r: (250, "2.0.0", "nonsense")) as s:
        with s.client() as c:
            start(c)
            c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<u@test.example>\r\n")
            c.expect("250 2.1.0 Ok", "451 4.3.0 Error: queue file write error")


if __name__ == "__main__":
    harness.main(globals())
