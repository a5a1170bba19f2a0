#!/usr/bin/env python3
"""DSN parameters (RFC 3461) and SMTPUTF8 (RFC 6531) at smtpd: advertised,
validated with exact replies, passed to queued, and stored in the spool file
by the real queued (keys envid, ret, notify.N, orcpt.N, smtputf8)."""

import os
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import smtpd_util  # noqa: E402
from queued_util import cdb_read, spool_path  # noqa: E402

GREETING = "220 mx.test.example ESMTP tern"


def ehlo(c):
    c.expect(GREETING)
    c.send("EHLO client.test\r\n")
    lines = c.reply()
    assert "250-DSN" in lines and "250-SMTPUTF8" in lines, lines
    return lines


def test_dsn_parameters_reach_queued():
    with smtpd_util.Smtpd() as s:
        with s.client() as c:
            ehlo(c)
            c.send("MAIL FROM:<a@example.org> RET=hdrs ENVID=QQ+2B314\r\n")
            c.expect("250 2.1.0 Ok")
            c.send("RCPT TO:<user@test.example> NOTIFY=failure,success "
                   "ORCPT=rfc822;user+2Balias@test.example\r\n")
            c.expect("250 2.1.5 Ok")
            c.send("RCPT TO:<other@test.example> NOTIFY=NEVER\r\n")
            c.expect("250 2.1.5 Ok")
            c.send("RCPT TO:<third@test.example>\r\n")
            c.expect("250 2.1.5 Ok")
            c.send("DATA\r\n")
            c.expect("354 End data with <CR><LF>.<CR><LF>")
            c.send("Subject: dsn\r\n\r\nbody\r\n.\r\n")
            c.expect("250 2.0.0 Ok: queued as ABC000001")
            c.send("QUIT\r\n")
            c.expect("221 2.0.0 Bye")
        (m,) = s.queued.messages
        assert m["ret"] == "HDRS" and m["envid"] == "QQ+2B314" and m["smtputf8"] is None, m
        assert m["notify"] == ["SUCCESS,FAILURE", "NEVER", None], m
        assert m["orcpt"] == ["rfc822;user+2Balias@test.example", None, None], m


BAD = [
    ("MAIL FROM:<a@example.org> RET=ALL", "501 5.5.4 Bad RET parameter syntax"),
    ("MAIL FROM:<a@example.org> RET", "501 5.5.4 Bad RET parameter syntax"),
    ("MAIL FROM:<a@example.org> RET=FULL RET=HDRS", "501 5.5.4 Bad RET parameter syntax"),
    ("MAIL FROM:<a@example.org> ENVID=a+2x", "501 5.5.4 Bad ENVID parameter syntax"),
    ("MAIL FROM:<a@example.org> ENVID=a+2b", "501 5.5.4 Bad ENVID parameter syntax"),
    ("MAIL FROM:<a@example.org> ENVID=" + "x" * 101, "501 5.5.4 Bad ENVID parameter syntax"),
    ("MAIL FROM:<a@example.org> ENVID=a ENVID=b", "501 5.5.4 Bad ENVID parameter syntax"),
    ("MAIL FROM:<a@example.org> SMTPUTF8=yes", "501 5.5.4 Bad SMTPUTF8 parameter syntax"),
    ("MAIL FROM:<a@example.org> SIZE=1 SIZE=2", "501 5.5.4 Bad message size syntax"),
    ("MAIL FROM:<a@example.org> NOTIFY=NEVER", "555 5.5.4 Unsupported option: NOTIFY"),
]

BAD_RCPT = [
    ("NOTIFY=NEVER,SUCCESS", "501 5.5.4 Bad NOTIFY parameter syntax"),
    ("NOTIFY=SUCCESS,SUCCESS", "501 5.5.4 Bad NOTIFY parameter syntax"),
    ("NOTIFY=", "501 5.5.4 Syntax error in parameters"),
    ("NOTIFY", "501 5.5.4 Bad NOTIFY parameter syntax"),
    ("NOTIFY=ALWAYS", "501 5.5.4 Bad NOTIFY parameter syntax"),
    ("NOTIFY=DELAY NOTIFY=FAILURE", "501 5.5.4 Bad NOTIFY parameter syntax"),
    ("ORCPT=user@test.example", "501 5.5.4 Bad ORCPT parameter syntax"),
    ("ORCPT=rfc822;", "501 5.5.4 Bad ORCPT parameter syntax"),
    ("ORCPT=rfc822;a+zz@b", "501 5.5.4 Bad ORCPT parameter syntax"),
    ("ORCPT=rfc822;a@b ORCPT=rfc822;c@d", "501 5.5.4 Bad ORCPT parameter syntax"),
    ("ORCPT=rfc822;" + "x" * 494, "501 5.5.4 Bad ORCPT parameter syntax"),
    ("RET=FULL", "555 5.5.4 Unsupported option: RET"),
]


def test_bad_dsn_syntax_gets_exact_replies():
    with smtpd_util.Smtpd(conf="[SMTP]\nHardErrorLimit = 100\n") as s:
        with s.client() as c:
            ehlo(c)
            for line, want in BAD:
                c.send(line + "\r\n")
                c.expect(want)
            c.send("MAIL FROM:<a@example.org>\r\n")
            c.expect("250 2.1.0 Ok")
            for params, want in BAD_RCPT:
                c.send(f"RCPT TO:<user@test.example> {params}\r\n")
                c.expect(want)
            c.send("RCPT TO:<user@test.example> ORCPT=rfc822;" + "x" * 493 + "\r\n")
            c.expect("250 2.1.5 Ok")
            c.send("QUIT\r\n")
            c.expect("221 2.0.0 Bye")
        assert s.queued.messages == []


def test_smtputf8_addresses_need_the_parameter():
    with smtpd_util.Smtpd() as s:
        with s.client() as c:
            ehlo(c)
            c.send("MAIL FROM:<jörg@example.org>\r\n")
            c.expect("553 5.6.7 Error: non-ASCII sender address requires SMTPUTF8")
            c.send("MAIL FROM:<a@example.org>\r\n")
            c.expect("250 2.1.0 Ok")
            c.send("RCPT TO:<josé@test.example>\r\n")
            c.expect("553 5.6.7 Error: non-ASCII recipient address requires SMTPUTF8")
            c.send("RCPT TO:<a@test.example> ORCPT=utf-8;josé@test.example\r\n")
            c.expect("501 5.5.4 Bad ORCPT parameter syntax")
            c.send("RSET\r\n")
            c.expect("250 2.0.0 Ok")
            # Not UTF-8 at all: a syntax error, SMTPUTF8 or not.
            c.send(b"MAIL FROM:<j\xf6rg@example.org> SMTPUTF8\r\n")
            c.expect("501 5.1.7 Bad sender address syntax")
            c.send("MAIL FROM:<jörg@bücher.example> SMTPUTF8\r\n")
            c.expect("250 2.1.0 Ok")
            c.send("RCPT TO:<josé@test.example> ORCPT=utf-8;josé@test.example\r\n")
            c.expect("250 2.1.5 Ok")
            c.send("DATA\r\n")
            c.expect("354 End data with <CR><LF>.<CR><LF>")
            c.send("Subject: ünïcode\r\n\r\nbody\r\n.\r\n")
            c.expect("250 2.0.0 Ok: queued as ABC000002")
            c.send("QUIT\r\n")
            c.expect("221 2.0.0 Bye")
        (m,) = s.queued.messages
        assert m["smtputf8"] == 1 and m["sender"] == "jörg@bücher.example", m
        assert m["rcpts"] == ["josé@test.example"], m
        assert m["orcpt"] == ["utf-8;josé@test.example"], m
        first = m["data"].split(b"\r\n")[:3]
        assert first[1] == b"\tby mx.test.example (tern) with UTF8ESMTP id ABC000002", first
        assert first[2].startswith("\tfor <josé@test.example>; ".encode()), first
        log = s.log()
        assert "553 5.6.7 Error: non-ASCII sender address requires SMTPUTF8" in log, log


def test_real_queued_stores_the_dsn_fields_in_the_spool_file():
    with harness.Tern(start=("queued", "smtpd")) as t:
        with t.smtp() as c:
            code, text = c.ehlo("client.test")
            assert code == 250 and b"DSN" in text and b"SMTPUTF8" in text, text
            c.mail("sender@example.org", ["RET=FULL", "ENVID=env+2B1", "SMTPUTF8"])
            code, _ = c.rcpt(f"{t.user}@{t.domain}", ["NOTIFY=DELAY,FAILURE",
                                                      f"ORCPT=rfc822;{t.user}@{t.domain}"])
            assert code == 250
            code, _ = c.rcpt(f"postmaster@{t.domain}", ["NOTIFY=NEVER"])
            assert code == 250
            code, text = c.data(b"Subject: spool\r\n\r\nhello\r\n")
            assert code == 250, text
            qid = text.decode().rsplit(" ", 1)[1]
        kv = cdb_read(spool_path(t, "queue", qid))
        assert kv["ret"] == b"FULL" and kv["envid"] == b"env+2B1", kv
        assert kv["smtputf8"] == b"1", kv
        assert kv["rcpt.0"] == f"{t.user}@{t.domain}".encode(), kv
        assert kv.get("notify.0") == b"FAILURE,DELAY" and kv.get("notify.1") == b"NEVER", {k: v for k, v in kv.items() if k != "body"}
        assert kv["orcpt.0"] == f"rfc822;{t.user}@{t.domain}".encode(), kv
        assert "orcpt.1" not in kv, kv
        assert b"with UTF8ESMTP id " + qid.encode() in kv["body"], kv["body"][:300]


def test_smtplib_with_swaks_style_dsn_options():
    # Python's smtplib sends the options verbatim: the same check a real
    # client library makes (it refuses options the server did not list).
    with smtpd_util.Smtpd() as s:
        c = smtplib.SMTP("127.0.0.1", s.port, timeout=20)
        try:
            c.ehlo("client.test")
            assert c.has_extn("dsn") and c.has_extn("smtputf8") and c.has_extn("chunking")
            c.sendmail("a@example.org", ["user@test.example"], b"Subject: x\r\n\r\nx\r\n",
                       mail_options=["RET=HDRS"], rcpt_options=["NOTIFY=SUCCESS"])
        finally:
            c.quit()
        (m,) = s.queued.messages
        assert m["ret"] == "HDRS" and m["notify"] == ["SUCCESS"], m


if __name__ == "__main__":
    harness.main(globals())
