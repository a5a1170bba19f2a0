#!/usr/bin/env python3
"""tern-queued and its service manager: READY=1, STATUS= with the queue
counts, WATCHDOG=1 when WATCHDOG_USEC is set, STOPPING=1; SIGTERM waits for
the deliveries in flight (their results recorded), hands the rest back to
the queue and exits 0; a second SIGTERM does not wait."""

import os
import re
import signal
import socket

import harness
import ternipc as ipc
from queued_util import FakeDeliverd, connect, spool_path, submit

BODY = b"Subject: notify\r\n\r\nhello\r\n"


class Notify:
    """A NOTIFY_SOCKET that collects what queued says."""

    def __init__(self, t):
        self.path = os.path.join(t.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        self.lines = []
        t.env["NOTIFY_SOCKET"] = self.path

    def read(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return self.lines
            self.lines += data.decode().split("\n")

    def has(self, pattern):
        return any(re.fullmatch(pattern, ln) for ln in self.read())

    def last_status(self):
        st = [ln for ln in self.read() if ln.startswith("STATUS=")]
        return st[-1] if st else None


def test_ready_status_watchdog_and_stopping():
    with harness.Tern(start=()) as t:
        n = Notify(t)
        t.env["WATCHDOG_USEC"] = "400000"
        t.start("queued")
        t.wait_until(lambda: n.has("READY=1"), what="READY=1")
        assert re.fullmatch(r"STATUS=0 queued, 0 active, 0 deferred, 0 held; 0 deliveries in "
                            r"flight; 0 received, 0 sent, 0 bounced", n.last_status()), n.lines
        with connect(t) as c:
            qid = submit(c, "a@example.org", [f"{t.user}@{t.domain}"], BODY)
        t.wait_until(lambda: n.last_status().startswith("STATUS=1 queued, 1 active, 0 deferred, "
                                                        "0 held;"), what="STATUS with 1 active")
        p = t.run_cli(["ternctl", "queue", "hold", qid])
        assert p.returncode == 0, p
        t.wait_until(lambda: n.last_status().startswith("STATUS=1 queued, 0 active, 0 deferred, "
                                                        "1 held;"), what="STATUS with 1 held")
        t.wait_until(lambda: sum(ln == "WATCHDOG=1" for ln in n.read()) >= 2,
                     what="WATCHDOG=1 twice")
        assert t.stop("queued") == 0
        assert n.has("STOPPING=1")
        assert t.queue_files() == [qid]


def test_sigterm_waits_for_deliveries_in_flight_and_records_them():
    with harness.Tern(start=()) as t:
        fake = FakeDeliverd(t, manual=True)
        n = Notify(t)
        try:
            t.start("queued")
            with connect(t) as c:
                qid = submit(c, "a@example.org", ["u@remote.example"], BODY)
                other = submit(c, "a@example.org", ["v@remote.example"], BODY)
            t.wait_until(lambda: len(fake.waiting) == 2, what="two jobs at deliverd")
            proc = t.procs["queued"]
            proc.send_signal(signal.SIGTERM)
            t.wait_until(lambda: n.has("STOPPING=1"), what="STOPPING=1")
            t.wait_until(lambda: "waiting up to 20 s for 2 deliveries under way" in t.log("queued"),
                         what="the stop waiting for deliverd")
            assert proc.poll() is None
            fake.finish()
            assert proc.wait(10) == 0
            t.procs.pop("queued")
            # Both results were recorded before the exit: nothing is left.
            assert t.queue_files() == [], t.queue_files()
            assert sorted(q for q, _ in fake.delivered) == sorted([qid, other])
            assert "Stopped; 0 messages stay queued" in t.log("queued")
        finally:
            fake.close()


def test_second_sigterm_hands_back_the_deliveries_in_flight():
    with harness.Tern(start=()) as t:
        fake = FakeDeliverd(t, dead=("dead.example",))
        try:
            t.start("queued")
            with connect(t) as c:
                qid = submit(c, "a@example.org", ["u@dead.example"], BODY)
            t.wait_until(lambda: fake.hanging == 1, what="a job at deliverd")
            proc = t.procs["queued"]
            proc.send_signal(signal.SIGTERM)
            t.wait_until(lambda: "waiting up to 20 s for 1 delivery under way" in t.log("queued"),
                         what="the stop waiting")
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
            t.procs.pop("queued")
            assert t.queue_files() == [qid]
            assert "Stopped; 1 message stay queued" in t.log("queued")
            # Nothing was recorded for it: it is delivered at the next start.
            st = spool_path(t, "queue", qid + ".st")
            assert not os.path.exists(st) or " D " not in open(st).read()
        finally:
            fake.close()
        fake = FakeDeliverd(t)
        try:
            t.start("queued")
            t.wait_until(lambda: fake.delivered == [(qid, "u@dead.example")],
                         what="the handed-back message delivered after the restart")
        finally:
            fake.close()


if __name__ == "__main__":
    harness.main(globals())
