#!/usr/bin/env python3
"""SMTP smuggling (CVE-2023-51764): a bare LF or bare CR in DATA, and in
particular "\\n.\\n" or "\\n.\\r\\n" followed by more commands in the same
write, never ends the data and never gets a message queued. smtpd reads to
the real CR LF . CR LF, refuses the message with 550 5.5.2, and the smuggled
"commands" are never executed."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import smtpd_util  # noqa: E402

SMUGGLED = ("MAIL FROM:<admin@test.example>\r\nRCPT TO:<victim@test.example>\r\nDATA\r\n"
            "From: admin@test.example\r\n\r\nsmuggled\r\n")


def open_data(c):
    c.expect("220 mx.test.example ESMTP tern")
    c.send("HELO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<user@test.example>\r\n"
           "DATA\r\n")
    c.expect("250 mx.test.example", "250 2.1.0 Ok", "250 2.1.5 Ok",
             "354 End data with <CR><LF>.<CR><LF>")


def smuggle(end, expected):
    with smtpd_util.Smtpd() as s:
        with s.client() as c:
            open_data(c)
            # One write: first message, a fake end of data, a second transaction.
            c.send("Subject: first\r\n\r\nhello" + end + SMUGGLED + ".\r\nQUIT\r\n")
            c.expect(expected, "221 2.0.0 Bye")
            c.expect_eof()
        s.wait_log("disconnect from")
        assert s.queued.messages == [], s.queued.messages
        harness.Tern.wait_until(lambda: s.queued.aborted == 1, what="ABORT at queued")
        log = s.log()
        assert "ABC000001: reject: END-OF-MESSAGE from unknown[127.0.0.1]: " + expected in log, log
        # Only one MAIL was ever executed: the smuggled one was data.
        assert " mail=1 rcpt=1 data=0/1 quit=1 " in log, log
        assert "ABC000002" not in log, log


def test_lf_dot_lf_is_not_the_end_of_data():
    smuggle("\n.\n", "550 5.5.2 Error: bare <LF> received")


def test_crlf_dot_lf_is_not_the_end_of_data():
    smuggle("\r\n.\n", "550 5.5.2 Error: bare <LF> received")


def test_lf_dot_crlf_is_not_the_end_of_data():
    smuggle("\n.\r\n", "550 5.5.2 Error: bare <LF> received")


def test_cr_dot_cr_lf_is_not_the_end_of_data():
    smuggle("\r.\r\n", "550 5.5.2 Error: bare <CR> received")


def test_bare_lf_inside_a_line_refuses_the_message_and_the_session_goes_on():
    with smtpd_util.Smtpd() as s:
        with s.client() as c:
            open_data(c)
            c.send("a\nb\r\n.\r\n")
            c.expect("550 5.5.2 Error: bare <LF> received")
            c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<user@test.example>\r\nDATA\r\n")
            c.expect("250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>")
            c.send("clean\r\n.\r\n")
            c.expect("250 2.0.0 Ok: queued as ABC000002")
        s.wait_log("disconnect from")
        assert [m["id"] for m in s.queued.messages] == ["ABC000002"]
        assert s.queued.messages[0]["data"].endswith(b"\r\nclean\r\n")


def smuggle_normalized(end, body):
    """BareLineEnding=normalize: the bare line ends become CR LF inside the
    one message; the fake end of data and the smuggled commands are text."""
    with smtpd_util.Smtpd(conf="[SMTP]\nBareLineEnding = normalize\n") as s:
        with s.client() as c:
            open_data(c)
            c.send("Subject: first\r\n\r\nhello" + end + SMUGGLED + ".\r\nQUIT\r\n")
            c.expect("250 2.0.0 Ok: queued as ABC000001", "221 2.0.0 Bye")
            c.expect_eof()
        s.wait_log("disconnect from")
        (m,) = s.queued.messages
        got = m["data"].split(b"\r\n\r\n", 1)[1]
        assert got == body + SMUGGLED.encode(), got
        log = s.log()
        assert " mail=1 rcpt=1 data=1 quit=1 " in log, log
        assert "ABC000002" not in log, log


def test_normalize_lf_dot_lf_is_text():
    smuggle_normalized("\n.\n", b"hello\r\n.\r\n")


def test_normalize_crlf_dot_lf_is_text():
    # A line that starts with a dot loses it (dot-stuffing, RFC 5321 4.5.2).
    smuggle_normalized("\r\n.\n", b"hello\r\n\r\n")


def test_normalize_lf_dot_crlf_is_text():
    smuggle_normalized("\n.\r\n", b"hello\r\n.\r\n")


def test_normalize_cr_dot_cr_lf_is_text():
    smuggle_normalized("\r.\r\n", b"hello\r\n.\r\n")


def test_normalize_cr_lf_dot_cr_is_text():
    smuggle_normalized("\r\n.\r", b"hello\r\n\r\n")


if __name__ == "__main__":
    harness.main(globals())
