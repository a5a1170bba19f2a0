#!/usr/bin/env python3
"""DESIGN promise 4, no open relay: a client outside TrustedNetworks may only
mail local domains; a trusted client may relay, but never with routing tricks
('%', '!', quoted '@'); each refusal is logged in Postfix's shape."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import smtpd_util  # noqa: E402

UNTRUSTED = "[Server]\nTrustedNetworks = 192.0.2.0/24 [2001:db8::]/32\n"


def transaction(c, rcpts):
    """Sends HELO, MAIL and one RCPT per address; returns the RCPT replies."""
    c.expect("220 mx.test.example ESMTP tern")
    c.send("HELO client.test\r\n")
    c.expect("250 mx.test.example")
    c.send("MAIL FROM:<a@example.org>\r\n")
    c.expect("250 2.1.0 Ok")
    out = []
    for r in rcpts:
        c.send(f"RCPT TO:<{r}>\r\n")
        out.append(c.line())
    c.send("QUIT\r\n")
    c.expect("221 2.0.0 Bye")
    return out


def test_untrusted_client_cannot_relay_but_can_mail_local_domains():
    with smtpd_util.Smtpd(conf=UNTRUSTED) as s:
        with s.client() as c:
            got = transaction(c, ["victim@elsewhere.example", "user@test.example",
                                  "user@LOCALHOST", "x@[192.0.2.7]"])
        assert got == ["554 5.7.1 <victim@elsewhere.example>: Relay access denied",
                       "250 2.1.5 Ok", "250 2.1.5 Ok",
                       "554 5.7.1 <x@[192.0.2.7]>: Relay access denied"], got
        s.wait_log("disconnect from")
        log = s.log()
        assert ("ABC000001: reject: RCPT from unknown[127.0.0.1]: 554 5.7.1 "
                "<victim@elsewhere.example>: Relay access denied; from=<a@example.org> "
                "to=<victim@elsewhere.example> proto=SMTP helo=<client.test>") in log, log
        assert "rcpt=2/4" in log, log
        # queued never heard of the refused recipients.
        harness.Tern.wait_until(lambda: s.queued.aborted == 1, what="ABORT at queued")
        assert s.queued.messages == []


def test_trusted_client_may_relay():
    with smtpd_util.Smtpd(conf="[Server]\nTrustedNetworks = 127.0.0.0/8\n") as s:
        with s.client() as c:
            got = transaction(c, ["someone@elsewhere.example"])
        assert got == ["250 2.1.5 Ok"], got


def test_routing_tricks_are_never_relayed_even_for_trusted_clients():
    with smtpd_util.Smtpd(conf="[Server]\nTrustedNetworks = 127.0.0.0/8\n") as s:
        with s.client() as c:
            got = transaction(c, ["a%victim.example@elsewhere.example",
                                  "victim.example!a@elsewhere.example",
                                  '"a@victim.example"@elsewhere.example'])
        assert got == [
            "554 5.7.1 <a%victim.example@elsewhere.example>: Relay access denied",
            "554 5.7.1 <victim.example!a@elsewhere.example>: Relay access denied",
            '554 5.7.1 <"a@victim.example"@elsewhere.example>: Relay access denied'], got


def test_routing_tricks_to_a_local_domain_go_to_queued_which_decides():
    seen = []

    def answer(rcpt):
        seen.append(rcpt)
        return (550, "5.1.1", f"<{rcpt}>: Recipient address rejected: User unknown in "
                "local recipient table")

    with smtpd_util.Smtpd(conf=UNTRUSTED, rcpt_answer=answer) as s:
        with s.client() as c:
            got = transaction(c, ["a%b@test.example"])
        assert got == ["550 5.1.1 <a%b@test.example>: Recipient address rejected: User "
                       "unknown in local recipient table"], got
        assert seen == ["a%b@test.example"], seen


if __name__ == "__main__":
    harness.main(globals())
