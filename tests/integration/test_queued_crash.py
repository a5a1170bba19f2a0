#!/usr/bin/env python3
"""Promise 1 and 2 under fire: several smtplib clients send at least 1,000
messages (TERN_CRASH_MESSAGES, default 1000, 300 under ASAN_OPTIONS)
through tern-smtpd to a remote recipient; RelayHost points at an SMTP sink
written here that records the unique X-Crash-Id of everything it receives.
Meanwhile queued and deliverd are killed with SIGKILL at random moments
(TERN_CRASH_KILLS, default 6) and restarted. At the end every message that
got a 250 has reached the sink (a lost one fails the test); duplicates are
counted and printed (allowed only where a result was not yet recorded)."""

import collections
import os
import random
import signal
import smtplib
import threading
import time

import harness
from queued_util import RecordingSink

# scripts/test.sh sets ASAN_OPTIONS for the sanitizer build, which is several
# times slower: a smaller load there keeps the test within its time.
N_MESSAGES = int(os.environ.get("TERN_CRASH_MESSAGES",
                                "300" if os.environ.get("ASAN_OPTIONS") else "1000"))
N_KILLS = int(os.environ.get("TERN_CRASH_KILLS", "6"))
# TERN_CRASH_VICTIMS=queued|deliverd kills only one of them (to see where
# duplicates come from); by default each kill picks queued, deliverd or both.
VICTIMS = {"queued": (["queued"],), "deliverd": (["deliverd"],)}.get(
    os.environ.get("TERN_CRASH_VICTIMS"), (["queued"], ["deliverd"], ["queued", "deliverd"]))
N_CLIENTS = 8
PER_CONNECTION = 20


class Load:
    """N_CLIENTS threads sending until N_MESSAGES got a 250. Every attempt
    carries a fresh id, so a retried message is not taken for a duplicate."""

    def __init__(self, t):
        self.t = t
        self.lock = threading.Lock()
        self.next_id = 0
        self.acked = set()
        self.refused = 0
        self.errors = 0

    def _new_id(self):
        with self.lock:
            if len(self.acked) >= N_MESSAGES:
                return None
            self.next_id += 1
            return f"c{self.next_id}"

    def client(self, n):
        while True:
            try:
                with self.t.smtp(timeout=20) as s:
                    for _ in range(PER_CONNECTION):
                        mid = self._new_id()
                        if mid is None:
                            return
                        body = (f"From: crash@client.test\r\nTo: sink@remote.example\r\n"
                                f"Subject: crash test\r\nX-Crash-Id: {mid}\r\n\r\n"
                                f"message {mid} from client {n}\r\n")
                        try:
                            s.sendmail("crash@client.test", ["sink@remote.example"], body)
                        except smtplib.SMTPResponseException:
                            with self.lock:
                                self.refused += 1
                            break
                        with self.lock:
                            self.acked.add(mid)
            except (OSError, smtplib.SMTPException):
                with self.lock:
                    self.errors += 1
                time.sleep(0.05)  # queued is restarting: back off a little


def test_sigkill_of_queued_and_deliverd_under_load_loses_no_acknowledged_message():
    sink = RecordingSink()
    # TLSSecurityLevel = none: the sink offers no STARTTLS, and each delivery
    # worker would load the CA store for nothing.
    conf = (f"[Delivery]\nRelayHost = [127.0.0.1]:{sink.port}\nTLSSecurityLevel = none\n"
            "[Queue]\nMinBackoff = 1s\nMaxBackoff = 1s\n")
    try:
        with harness.Tern(conf=conf) as t:
            load = Load(t)
            start = time.monotonic()
            clients = [threading.Thread(target=load.client, args=(i,), daemon=True)
                       for i in range(N_CLIENTS)]
            for c in clients:
                c.start()
            seed = int(os.environ.get("TERN_CRASH_SEED") or random.SystemRandom().randrange(1 << 32))
            print(f"crash test: TERN_CRASH_SEED={seed}", flush=True)
            rng = random.Random(seed)
            kills = collections.Counter()
            for k in range(N_KILLS):
                # Spread the kills over the load: wait for a share of it.
                target = N_MESSAGES * (k + 1) // (N_KILLS + 1)
                t.wait_until(lambda: len(load.acked) >= target, timeout=60,
                             what=f"{target} messages acknowledged")
                time.sleep(rng.uniform(0, 0.3))
                victims = rng.choice(VICTIMS)
                for v in victims:
                    t.kill(v, signal.SIGKILL)
                    kills[v] += 1
                for v in victims:
                    t.start(v)
            for c in clients:
                c.join(90)
                assert not c.is_alive(), "a client is stuck"
            acked = set(load.acked)
            assert len(acked) >= N_MESSAGES
            t.wait_until(lambda: acked <= set(sink.received), timeout=60,
                         what="every acknowledged message at the sink")
            t.wait_until(lambda: t.queue_files() == [], timeout=30, what="the queue to empty")
            with sink.lock:
                received = dict(sink.received)
            lost = sorted(acked - set(received))
            dups = sum(n - 1 for n in received.values() if n > 1)
            unacked_delivered = len(set(received) - acked)
            print(f"crash test: {len(acked)} messages acknowledged by 250, "
                  f"{kills['queued']} SIGKILLs of queued, {kills['deliverd']} of deliverd, "
                  f"{len(lost)} lost, {dups} duplicate deliveries, {unacked_delivered} delivered "
                  f"without a 250 (connection cut after commit), {load.refused} refused and "
                  f"{load.errors} connection errors during restarts, "
                  f"{time.monotonic() - start:.1f} s")
            assert lost == [], f"lost {len(lost)} acknowledged messages: {lost[:20]}"
    finally:
        sink.close()


if __name__ == "__main__":
    harness.main(globals())
