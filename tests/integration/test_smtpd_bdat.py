#!/usr/bin/env python3
"""CHUNKING / BDAT (RFC 3030) at smtpd: chunks reach queued as one message
without dot-unstuffing, refused chunks are still read to their announced end
(the next command is understood), BDAT and DATA do not mix, the size limit
counts every chunk, bare CR/LF in chunks follow BareLineEnding."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import smtpd_util  # noqa: E402
from queued_util import cdb_read, spool_path  # noqa: E402

GREETING = "220 mx.test.example ESMTP tern"


def envelope(c, rcpt="user@test.example"):
    c.expect(GREETING)
    c.send("EHLO client.test\r\n")
    assert "250 CHUNKING" in c.reply()
    c.send(f"MAIL FROM:<a@example.org>\r\nRCPT TO:<{rcpt}>\r\n")
    c.expect("250 2.1.0 Ok", "250 2.1.5 Ok")


def body_of(m):
    return m["data"].split(b"\r\n", 3)[3]


def test_chunks_make_one_message_without_unstuffing():
    with smtpd_util.Smtpd() as s:
        with s.client() as c:
            envelope(c)
            one = b"Subject: chunks\r\n\r\n.leading dot\r\n"
            two = b".\r\nlast line\r\n"
            c.send(b"BDAT %d\r\n" % len(one) + one)
            c.expect(f"250 2.0.0 Ok: {len(one)} octets")
            c.send(b"BDAT %d LAST\r\n" % len(two) + two)
            c.expect("250 2.0.0 Ok: queued as ABC000001")
            c.send("QUIT\r\n")
            c.expect("221 2.0.0 Bye")
        (m,) = s.queued.messages
        assert m["data"].startswith(b"Received: from client.test (unknown [127.0.0.1])\r\n"), m
        assert body_of(m) == one + two, m["data"]
        s.wait_log("disconnect from")
        assert "bdat=2" in s.log(), s.log()


def test_pipelined_chunks_and_empty_last_chunk_and_missing_final_crlf():
    with smtpd_util.Smtpd() as s:
        with s.client() as c:
            c.expect(GREETING)
            c.send("EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<user@test.example>\r\n"
                   "BDAT 5\r\nab\r\ncBDAT 3\r\ndefBDAT 0 LAST\r\n"
                   "MAIL FROM:<b@example.org>\r\nRCPT TO:<user@test.example>\r\nBDAT 3 LAST\r\nxyzQUIT\r\n")
            lines = c.reply()
            assert lines[-1] == "250 CHUNKING", lines
            c.expect("250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.0.0 Ok: 5 octets", "250 2.0.0 Ok: 3 octets",
                     "250 2.0.0 Ok: queued as ABC000001",
                     "250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.0.0 Ok: queued as ABC000002",
                     "221 2.0.0 Bye")
        m1, m2 = s.queued.messages
        # RFC 3030 needs no CRLF at the end; the spool does: one is added.
        assert body_of(m1) == b"ab\r\ncdef\r\n", m1["data"]
        assert body_of(m2) == b"xyz\r\n", m2["data"]


def test_refused_chunks_are_read_to_their_end():
    with smtpd_util.Smtpd() as s:
        with s.client() as c:
            c.expect(GREETING)
            c.send("BDAT 12\r\nQUIT\r\nQUIT\r\n")
            c.expect("503 5.5.1 Error: send HELO/EHLO first")
            c.send("EHLO client.test\r\n")
            c.reply()
            c.send("BDAT 6 LAST\r\nRSET\r\n")
            c.expect("503 5.5.1 Error: need MAIL command")
            c.send("MAIL FROM:<a@example.org>\r\nBDAT 4\r\nNOOP")
            c.expect("250 2.1.0 Ok", "503 5.5.1 Error: need RCPT command")
            c.send("BDAT x\r\n")
            c.expect("501 5.5.4 Syntax: BDAT count [LAST]")
            # The size was readable: its octets are skipped, not run as commands.
            c.send("BDAT 6 FIRST\r\nQUIT\r\n")
            c.expect("501 5.5.4 Syntax: BDAT count [LAST]")
            c.send("RCPT TO:<user@test.example>\r\nBDAT 2\r\nhi")
            c.expect("250 2.1.5 Ok", "250 2.0.0 Ok: 2 octets")
            c.send("DATA\r\n")
            c.expect("503 5.5.1 Error: DATA can not be used with BDAT")
            c.send("BDAT 2 LAST\r\n!\n")
            c.expect("550 5.5.2 Error: bare <LF> received")
            # The transaction is over: the next chunk has no MAIL.
            c.send("BDAT 1 LAST\r\nx")
            c.expect("503 5.5.1 Error: need MAIL command")
            c.send("QUIT\r\n")
            c.expect("221 2.0.0 Bye")
        assert s.queued.messages == []
        harness.Tern.wait_until(lambda: s.queued.aborted >= 1, what="ABORT at queued")


def test_size_limit_counts_every_chunk():
    with smtpd_util.Smtpd(conf="[SMTP]\nMessageSizeLimit = 1024\n") as s:
        with s.client() as c:
            envelope(c)
            c.send(b"BDAT 2000 LAST\r\n" + b"x" * 2000)
            c.expect("552 5.3.4 Error: message file too big")
            c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<user@test.example>\r\n")
            c.expect("250 2.1.0 Ok", "250 2.1.5 Ok")
            chunk = b"y" * 78 + b"\r\n"
            for _ in range(5):
                c.send(b"BDAT 80\r\n" + chunk)
                c.expect("250 2.0.0 Ok: 80 octets")
            # 400 + Received: so far; 700 more is over 1024.
            c.send(b"BDAT 700\r\n" + chunk * 8 + b"z" * 60)
            c.expect("552 5.3.4 Error: message file too big")
            c.send("NOOP\r\n")
            c.expect("250 2.0.0 Ok")
            c.send("QUIT\r\n")
            c.expect("221 2.0.0 Bye")
        assert s.queued.messages == []


def test_normalize_turns_bare_line_ends_in_chunks_into_crlf():
    with smtpd_util.Smtpd(conf="[SMTP]\nBareLineEnding = normalize\n") as s:
        with s.client() as c:
            envelope(c)
            data = b"a\nb\rc\r"
            c.send(b"BDAT %d\r\n" % len(data) + data)
            c.expect("250 2.0.0 Ok: 6 octets")
            data = b"\nd\r"
            c.send(b"BDAT %d LAST\r\n" % len(data) + data)
            c.expect("250 2.0.0 Ok: queued as ABC000001")
        (m,) = s.queued.messages
        # The CR ending the first chunk and the LF starting the next are one CRLF.
        assert body_of(m) == b"a\r\nb\r\nc\r\nd\r\n", m["data"]


def test_real_queued_spools_a_chunked_message():
    with harness.Tern(start=("queued", "smtpd")) as t:
        with smtpd_util.Client(t.smtp_port) as c:
            c.line()
            c.send(f"EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<{t.user}@{t.domain}>\r\n")
            c.reply()
            c.expect("250 2.1.0 Ok", "250 2.1.5 Ok")
            big = b"".join(b"line %06d ........................................\r\n" % i
                           for i in range(3000))
            c.send(b"BDAT %d\r\n" % len(big) + big)
            c.expect(f"250 2.0.0 Ok: {len(big)} octets")
            c.send(b"BDAT 8 LAST\r\n.\r\nend\r\n")
            reply = c.line()
            assert reply.startswith("250 2.0.0 Ok: queued as "), reply
            qid = reply.rsplit(" ", 1)[1]
        kv = cdb_read(spool_path(t, "queue", qid))
        assert kv["body"].endswith(b"\r\n" + big + b".\r\nend\r\n"), kv["body"][-100:]


if __name__ == "__main__":
    harness.main(globals())
