#!/usr/bin/env python3
"""SMTP connection reuse: a worker that delivered to a destination keeps
the connection open for ConnectionReuseTime and deliverd hands it the next
job for the same destination. Proves: 20 messages sent one after the other
to one relay travel over one connection (each byte-exact, one transaction
each, one EHLO, QUIT at the end), and over 20 connections with
ConnectionReuseTime = 0; a connection the server closed meanwhile is
replaced without losing the message. Prints the time both runs took."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_deliverd_smtp import BODY, Sink, submit, unstuff  # noqa: E402

N = 20


def run(reuse):
    conf = (f"[Delivery]\nConnectionReuseTime = {reuse}\n")
    with Sink() as sink, harness.Tern(conf=conf + f"RelayHost = [127.0.0.1]:{sink.port}\n") as t:
        start = time.monotonic()
        for i in range(N):
            submit(t, ["remote@example.net"])
            t.wait_until(lambda: len(sink.transactions) == i + 1, what=f"message {i + 1} at the sink")
        elapsed = time.monotonic() - start
        for tx in sink.transactions:
            assert unstuff(tx["data"]).endswith(BODY), tx["data"][-200:]
            assert [r for r, _ in tx["rcpts"]] == [b"RCPT TO:<remote@example.net>\r\n"], tx["rcpts"]
        t.wait_until(lambda: not t.queue_files(), what="the queue to empty")
        t.wait_until(lambda: sink.commands.count(b"QUIT\r\n") == sink.connections,
                     what="QUIT on every connection")
        ehlos = sum(1 for c in sink.commands if c.startswith(b"EHLO"))
        return sink.connections, ehlos, elapsed


def test_twenty_messages_share_one_connection():
    conns, ehlos, reused = run("3s")
    assert conns == 1 and ehlos == 1, (conns, ehlos)
    conns0, ehlos0, fresh = run("0")
    assert conns0 == N and ehlos0 == N, (conns0, ehlos0)
    print(f"connection reuse: {N} messages in {reused:.2f}s over 1 connection, "
          f"{fresh:.2f}s over {N} connections without reuse")


def test_connection_closed_by_the_server_is_replaced():
    conf = "[Delivery]\nConnectionReuseTime = 10s\n"
    with Sink() as sink, harness.Tern(conf=conf + f"RelayHost = [127.0.0.1]:{sink.port}\n") as t:
        submit(t, ["remote@example.net"])
        t.wait_until(lambda: len(sink.transactions) == 1, what="the first message")
        # The server drops idle connections (as Postfix's smtpd does after its timeout).
        sink.drop_all()
        submit(t, ["remote@example.net"])
        t.wait_until(lambda: len(sink.transactions) == 2, what="the second message on a new connection")
        assert sink.connections == 2, sink.connections
        t.wait_until(lambda: not t.queue_files(), what="the queue to empty")
        t.stop("deliverd")
        # Stopping deliverd ends the idle worker's connection with QUIT.
        t.wait_until(lambda: sink.commands[-1] == b"QUIT\r\n", what="QUIT at stop")


if __name__ == "__main__":
    harness.main(globals())
