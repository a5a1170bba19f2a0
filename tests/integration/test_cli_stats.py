#!/usr/bin/env python3
"""Metrics without log parsing: `ternctl stats` and tern-metrics (HTTP on
stdin/stdout, as tern-metrics.socket runs it) show the same counters, kept by
queued: received, rejected by stage and DSN (reported by smtpd at session end),
delivered by transport, queue size by state, sessions, the delay histogram."""

import os
import re
import smtplib
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def metrics(text):
    """{'name{labels}': value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-z_]+(?:\{[^}]*\})?) (\S+)', line)
        assert m, f"not a sample line: {line!r}"
        out[m.group(1)] = float(m.group(2))
    return out


def stats(t):
    p = t.run_cli(["ternctl", "stats"])
    assert p.returncode == 0 and p.stderr == b"", p
    return p.stdout.decode()


def scrape(t, request):
    exe = harness.binary("metrics/tern-metrics")
    p = subprocess.run([exe], input=request, env=t.env, capture_output=True, timeout=30)
    head, _, body = p.stdout.partition(b"\r\n\r\n")
    return p.returncode, head.decode(), body.decode()


def test_counters_after_one_delivery_and_one_rejection():
    # 127.0.0.1 is not trusted here, so a remote recipient is a relay attempt.
    with harness.Tern(conf="[Server]\nTrustedNetworks = 192.0.2.0/24\n") as t:
        s = metrics(stats(t))
        assert s["tern_messages_received_total"] == 0, s
        assert s['tern_queue_messages{state="active"}'] == 0, s
        assert s["tern_queue_oldest_message_age_seconds"] == 0, s

        with t.smtp() as c:
            c.ehlo("client.example")
            c.mail("sender@client.example")
            code, _ = c.rcpt("someone@elsewhere.example")
            assert code == 554, code
            # The first refusal ends nothing: a local recipient is still fine.
            c.rset()
            c.sendmail("sender@client.example", [f"{t.user}@{t.domain}"],
                       b"Subject: stats\r\n\r\nhello\r\n")
        new = os.path.join(t.maildir(t.user), "new")
        t.wait_until(lambda: os.path.isdir(new) and os.listdir(new), what="local delivery")

        def settled():
            s = metrics(stats(t))
            return (s['tern_deliveries_total{transport="local",status="delivered"}'] == 1 and
                    s['tern_smtpd_sessions_total{tls="no"}'] == 1)
        t.wait_until(settled, what="delivery result and session report in the counters")
        s = metrics(stats(t))
        assert s["tern_messages_received_total"] == 1, s
        rejected = {k: v for k, v in s.items() if k.startswith("tern_messages_rejected_total")}
        assert rejected == {'tern_messages_rejected_total{stage="RCPT",dsn="5.7.1"}': 1}, rejected
        assert s['tern_delivery_delay_seconds_count{transport="local"}'] == 1, s
        assert s['tern_delivery_delay_seconds_bucket{transport="local",le="+Inf"}'] == 1, s
        assert s['tern_deliveries_total{transport="smtp",status="delivered"}'] == 0, s
        assert s["tern_smtpd_sessions_active"] == 0, s
        assert s['tern_smtpd_sessions_total{tls="yes"}'] == 0, s

        # The HTTP endpoint serves the same text.
        code, head, body = scrape(t, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert code == 0, (code, head)
        assert head.startswith("HTTP/1.1 200 OK\r\n"), head
        assert "Content-Type: text/plain; version=0.0.4; charset=utf-8" in head, head
        b = metrics(body)
        assert b['tern_deliveries_total{transport="local",status="delivered"}'] == 1, b
        assert b["tern_messages_received_total"] == 1, b


def test_queue_size_and_oldest_age_with_deliverd_stopped():
    with harness.Tern(start=("queued",)) as t:
        p = t.run_cli(["sendmail", t.user], input=b"Subject: wait\n\nwait\n")
        assert p.returncode == 0, p
        s = metrics(stats(t))
        assert s["tern_messages_received_total"] == 1, s
        queued = sum(v for k, v in s.items() if k.startswith("tern_queue_messages{"))
        assert queued == 1, s
        assert s["tern_queue_oldest_message_age_seconds"] >= 0, s


def test_http_errors():
    with harness.Tern(start=("queued",)) as t:
        code, head, _ = scrape(t, b"GET /nothing HTTP/1.1\r\n\r\n")
        assert head.startswith("HTTP/1.1 404 Not Found\r\n"), head
        code, head, _ = scrape(t, b"POST /metrics HTTP/1.1\r\n\r\n")
        assert head.startswith("HTTP/1.1 405 Method Not Allowed\r\n"), head
        code, head, _ = scrape(t, b"garbage-without-newline")
        assert head.startswith("HTTP/1.1 400 Bad Request\r\n"), head
        t.stop("queued")
        code, head, _ = scrape(t, b"GET /metrics HTTP/1.0\r\n\r\n")
        assert head.startswith("HTTP/1.1 503 Service Unavailable\r\n"), head


def test_ternctl_stats_without_queued_fails_clearly():
    with harness.Tern(start=()) as t:
        p = t.run_cli(["ternctl", "stats"])
        assert p.returncode == 1, p
        assert p.stderr.startswith(b"ternctl: cannot get statistics from the tern queue ("), p


if __name__ == "__main__":
    harness.main(globals())
