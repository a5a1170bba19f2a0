#!/usr/bin/env python3
"""A client that talks before the greeting (Postfix postscreen's PREGREET) is
refused with 554 5.5.1 and disconnected, with one log line naming it; a
polite client waits PregreetWait for its 220. Junk-command, unknown-command
and per-session recipient limits live in test_smtpd_limits.py."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import smtpd_util  # noqa: E402

REFUSAL = "554 5.5.1 mx.test.example Protocol error: talked before greeting"


def test_input_pending_at_the_greeting_is_refused_even_without_a_wait():
    with smtpd_util.Smtpd() as s:
        c = smtpd_util.Client(s.port)
        with c:
            # Sent right after connect(): smtpd is still starting (config,
            # queued, sandbox), so the bytes are there when it looks.
            c.send("EHLO client.test\r\n")
            c.expect(REFUSAL)
            c.expect_eof()
        s.wait_log("disconnect from")
        log = s.log()
        assert ("PREGREET 18 after 0.00 from unknown[127.0.0.1]: EHLO client.test\\r\\n") in log, log
        assert "talked before greeting after CONNECT from unknown[127.0.0.1]" in log, log
        assert s.queued.messages == []


def test_talking_during_the_wait_is_refused():
    with smtpd_util.Smtpd(conf="[SMTP]\nPregreetWait = 2s\n") as s:
        with s.client() as c:
            # Part of the scenario, not a synchronisation: the client speaks
            # 0.3 s into smtpd's 2 s pause.
            time.sleep(0.3)
            c.send(b"\x16\x03\x01HELO\r\n")
            c.expect(REFUSAL)
            c.expect_eof()
        s.wait_log("disconnect from")
        assert "PREGREET 9 after " in s.log() and ": \\x16\\x03\\x01HELO\\r\\n" in s.log(), s.log()


def test_a_polite_client_gets_its_greeting_after_the_wait():
    with smtpd_util.Smtpd(conf="[SMTP]\nPregreetWait = 1s\n") as s:
        start = time.monotonic()
        with s.client() as c:
            c.expect("220 mx.test.example ESMTP tern")
            waited = time.monotonic() - start
            c.send("QUIT\r\n")
            c.expect("221 2.0.0 Bye")
        assert waited >= 0.95, waited
        assert "PREGREET" not in s.log()


def test_a_client_that_connects_and_leaves_is_not_a_pregreet():
    with smtpd_util.Smtpd() as s:
        sock = socket.create_connection(("127.0.0.1", s.port))
        sock.close()
        s.wait_log("disconnect from")
        assert "PREGREET" not in s.log(), s.log()


if __name__ == "__main__":
    harness.main(globals())
