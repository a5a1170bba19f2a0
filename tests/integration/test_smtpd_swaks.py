#!/usr/bin/env python3
"""A real SMTP client, swaks, against tern-smtpd: plain and pipelined
transactions are accepted and the message arrives at queued byte for byte
behind smtpd's Received: header; a relay attempt from an untrusted client
fails the way swaks reports it. With the real queued built, a swaks message
ends up in the spool."""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import smtpd_util  # noqa: E402


def swaks(port, *args):
    exe = shutil.which("swaks")
    if not exe:
        raise harness.Skip("swaks is not installed")
    return subprocess.run([exe, "--server", "127.0.0.1", "--port", str(port),
                           "--helo", "client.test", "--from", "sender@example.org",
                           "--timeout", "20", *args],
                          capture_output=True, text=True, timeout=60)


def sent_body(transcript):
    """The message as swaks logged sending it (" -> " lines between 354 and ".")."""
    lines = transcript.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("<-  354 "))
    out = []
    for ln in lines[start + 1:]:
        if ln == " -> .":
            break
        assert ln.startswith(" -> "), ln
        out.append(ln[4:].encode() + b"\r\n")
    return b"".join(out)


def test_swaks_plain_and_pipelined_messages_arrive_byte_exact():
    transcripts = []
    with smtpd_util.Smtpd() as s:
        for extra in ([], ["--pipeline"]):
            r = swaks(s.port, "--to", "user@test.example", "--body", "hello from swaks",
                      "--header", "Subject: swaks test", *extra)
            assert r.returncode == 0, r.stdout + r.stderr
            assert re.search(r"<-  250 2\.0\.0 Ok: queued as ABC00000\d", r.stdout), r.stdout
            transcripts.append(sent_body(r.stdout))
        s.wait_log("disconnect from")
        assert len(s.queued.messages) == 2
        for m, sent in zip(s.queued.messages, transcripts):
            received, body = m["data"].split(b"\r\n", 3)[:3], m["data"].split(b"\r\n", 3)[3]
            assert received[0] == b"Received: from client.test (unknown [127.0.0.1])", received
            assert body == sent, (body, sent)


def test_swaks_relay_attempt_from_untrusted_client_is_refused():
    with smtpd_util.Smtpd(conf="[Server]\nTrustedNetworks = 192.0.2.0/24\n") as s:
        r = swaks(s.port, "--to", "victim@elsewhere.example")
        assert r.returncode != 0, r.stdout
        assert "<** 554 5.7.1 <victim@elsewhere.example>: Relay access denied" in r.stdout, r.stdout


def test_swaks_message_reaches_the_real_queued():
    if not os.path.exists(os.path.join(harness.build_dir(), "queued/tern-queued")):
        raise harness.Skip("queued is not built")
    with harness.Tern(start=("queued", "smtpd")) as t:
        r = swaks(t.smtp_port, "--to", f"{t.user}@{t.domain}", "--body", "via swaks")
        assert r.returncode == 0, r.stdout + r.stderr
        m = re.search(r"<-  250 2\.0\.0 Ok: queued as ([0-9A-Za-z]+)", r.stdout)
        assert m, r.stdout
        t.wait_until(lambda: m.group(1) in t.queue_files(), what="the message in the spool")


if __name__ == "__main__":
    harness.main(globals())
