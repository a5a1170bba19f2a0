#!/usr/bin/env python3
"""tern-queued's scheduling, seen from a stand-in deliverd written here: the
recipients of one message are split into one job per destination; at most
DestinationConcurrency jobs go to one destination and at most
DeliveryConcurrency in all, so a destination that never answers (its jobs
hang) does not hold back mail to another one."""

import os
import socket
import threading

import harness
import ternipc as ipc
from queued_util import cdb_read, connect, queue_list, submit

BODY = b"Subject: schedule\r\n\r\nhello\r\n"


class FakeDeliverd:
    """Answers HELLO; delivers at once every job whose recipients are not in
    a domain of `dead` (RESULT delivered + JOB_DONE); never answers jobs for
    `dead` (a blackhole). Records every job and the most jobs in flight."""

    def __init__(self, t, dead=()):
        self.t = t
        self.dead = set(dead)
        self.lock = threading.Lock()
        self.jobs = []             # (queue id, [recipients])
        self.hanging = 0           # dead jobs in flight (never end)
        self.max_hanging = 0
        self.delivered = []        # (queue id, recipient)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.bind(t.deliverd_socket)
        self.sock.listen(16)
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            while True:
                data, fds, _, _ = socket.recv_fds(c, ipc.FRAME_MAX, 4)
                for fd in fds:
                    os.close(fd)
                if not data:
                    return
                m = ipc.Msg(*ipc.decode(data))
                if m.type == ipc.HELLO:
                    c.send(ipc.encode(ipc.HELLO, [(ipc.F_VERSION, ipc.VERSION)]))
                    continue
                assert m.type == ipc.DELIVER, m
                qid = m.str(ipc.F_QUEUE_ID)
                job = m.u64(ipc.F_JOB)
                idx = [int.from_bytes(v, "little") for tag, v in m.fields
                       if tag == ipc.F_RCPT_INDEX]
                env = cdb_read(os.path.join(self.t.spool, "queue", qid))
                rcpts = [env[f"rcpt.{i}"].decode() for i in idx]
                domains = {r.rsplit("@", 1)[1] for r in rcpts}
                with self.lock:
                    self.jobs.append((qid, rcpts))
                    if domains & self.dead:
                        self.hanging += 1
                        self.max_hanging = max(self.max_hanging, self.hanging)
                        continue
                for i, r in zip(idx, rcpts):
                    c.send(ipc.encode(ipc.RESULT, [
                        (ipc.F_JOB, job), (ipc.F_RCPT_INDEX, i), (ipc.F_STATUS, ipc.DELIVERED),
                        (ipc.F_DSN, "2.0.0"), (ipc.F_TEXT, "ok"), (ipc.F_RELAY, "fake")]))
                    with self.lock:
                        self.delivered.append((qid, r))
                c.send(ipc.encode(ipc.JOB_DONE, [(ipc.F_JOB, job)]))
        except OSError:
            return


def test_recipients_are_split_into_one_job_per_destination():
    with harness.Tern(start=()) as t:
        fake = FakeDeliverd(t)
        try:
            t.start("queued")
            with connect(t) as c:
                qid = submit(c, "a@example.org",
                             ["a@one.example", "b@two.example", "c@one.example"], BODY)
            t.wait_until(lambda: len(fake.delivered) == 3, what="three deliveries")
            jobs = sorted(sorted(r) for q, r in fake.jobs if q == qid)
            assert jobs == [["a@one.example", "c@one.example"], ["b@two.example"]], jobs
            t.wait_until(lambda: t.queue_files() == [], what="the message removed")
        finally:
            fake.close()


def test_relay_host_is_one_destination():
    conf = "[Delivery]\nRelayHost = [127.0.0.1]:2525\n"
    with harness.Tern(conf=conf, start=()) as t:
        fake = FakeDeliverd(t)
        try:
            t.start("queued")
            with connect(t) as c:
                qid = submit(c, "a@example.org", ["a@one.example", "b@two.example"], BODY)
            t.wait_until(lambda: len(fake.delivered) == 2, what="two deliveries")
            assert [sorted(r) for q, r in fake.jobs if q == qid] == \
                [["a@one.example", "b@two.example"]], fake.jobs
        finally:
            fake.close()


def test_dead_destination_does_not_hold_back_the_others():
    conf = "[Queue]\nDeliveryConcurrency = 4\nDestinationConcurrency = 2\n"
    with harness.Tern(conf=conf, start=()) as t:
        fake = FakeDeliverd(t, dead=("dead.example",))
        try:
            t.start("queued")
            with connect(t) as c:
                dead = [submit(c, "a@example.org", [f"u{i}@dead.example"], BODY)
                        for i in range(6)]
                t.wait_until(lambda: fake.hanging == 2, what="two jobs to the dead destination")
                live = [submit(c, "a@example.org", [f"u{i}@live.example"], BODY)
                        for i in range(30)]
            t.wait_until(lambda: len(fake.delivered) == 30,
                         what="30 messages to the live destination delivered")
            assert sorted(q for q, _ in fake.delivered) == sorted(live)
            # The dead destination never got more than its share, and its
            # other messages wait in the queue.
            assert fake.max_hanging == 2, fake.max_hanging
            t.wait_until(lambda: sorted(t.queue_files()) == sorted(dead),
                         what="only the dead destination's messages left")
            entries = {e.str(ipc.F_QUEUE_ID): e.str(ipc.F_STATE)
                       for e in queue_list(t)}
            assert set(entries) == set(dead), entries
        finally:
            fake.close()


def test_the_default_limits_leave_a_slot_for_other_destinations():
    # DestinationConcurrency = DeliveryConcurrency = 2: a destination never
    # takes the last free slot.
    conf = "[Queue]\nDeliveryConcurrency = 2\nDestinationConcurrency = 2\n"
    with harness.Tern(conf=conf, start=()) as t:
        fake = FakeDeliverd(t, dead=("dead.example",))
        try:
            t.start("queued")
            with connect(t) as c:
                for i in range(3):
                    submit(c, "a@example.org", [f"u{i}@dead.example"], BODY)
                t.wait_until(lambda: fake.hanging == 1, what="one job to the dead destination")
                live = [submit(c, "a@example.org", [f"u{i}@live.example"], BODY)
                        for i in range(5)]
            t.wait_until(lambda: len(fake.delivered) == 5, what="5 live messages delivered")
            assert fake.max_hanging == 1
            assert sorted(q for q, _ in fake.delivered) == sorted(live)
        finally:
            fake.close()


if __name__ == "__main__":
    harness.main(globals())
