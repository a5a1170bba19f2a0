#!/usr/bin/env python3
"""tern-queued's scheduling, seen from a stand-in deliverd written here (and
once with the real deliverd, a server that never answers and a sink): the
recipients of one message are split into one job per destination; at most
DestinationConcurrency jobs go to one destination and at most
DeliveryConcurrency in all, so a destination that never answers (its jobs
hang) does not hold back mail to another one."""

import os

import harness
import ternipc as ipc
from queued_util import FakeDeliverd, RecordingSink, TcpServer, connect, queue_list, submit

BODY = b"Subject: schedule\r\n\r\nhello\r\n"


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


class Blackhole(TcpServer):
    """Accepts TCP connections on 127.0.0.1 and never says anything."""


def test_real_deliverd_keeps_delivering_while_one_destination_never_answers():
    hole, sink = Blackhole(), RecordingSink()
    try:
        with harness.Tern(start=()) as t:
            transport = os.path.join(t.dir, "transport")
            with open(transport, "w") as f:
                f.write(f"dead.example smtp:[127.0.0.1]:{hole.port}\n"
                        f"live.example smtp:[127.0.0.1]:{sink.port}\n")
            with open(os.path.join(t.conf_path + ".d", "60-schedule.conf"), "w") as f:
                f.write(f"[Queue]\nDeliveryConcurrency = 4\nDestinationConcurrency = 2\n"
                        f"[Delivery]\nTransportTable = {transport}\nTLSSecurityLevel = none\n"
                        f"ReplyTimeout = 60s\n")
            p = t.run_cli(["ternctl", "map", transport])
            assert p.returncode == 0, p
            t.start("queued")
            t.start("deliverd")
            with connect(t) as c:
                dead = [submit(c, "a@example.org", [f"u{i}@dead.example"],
                               b"Subject: dead\r\n\r\nx\r\n") for i in range(4)]
                t.wait_until(lambda: len(hole.conns) == 2 or "type=MX" in t.log("deliverd"),
                             what="two connections to the dead server")
                if "type=MX" in t.log("deliverd"):
                    hole.close()
                    raise harness.Skip("this deliverd does not route by TransportTable yet")
                for i in range(20):
                    submit(c, "a@example.org", [f"u{i}@live.example"],
                           f"Subject: live\r\nX-Crash-Id: live{i}\r\n\r\nx\r\n".encode())
            t.wait_until(lambda: len(sink.received) == 20, what="20 messages at the live sink")
            # Their files go once the results are recorded, just after.
            t.wait_until(lambda: sorted(t.queue_files()) == sorted(dead),
                         what="only the dead destination's messages left")
            assert len(hole.conns) == 2, "more than DestinationConcurrency connections"
            # Let the dead server go, so the stop does not wait for it.
            hole.close()
    finally:
        hole.close()
        sink.close()


if __name__ == "__main__":
    harness.main(globals())
