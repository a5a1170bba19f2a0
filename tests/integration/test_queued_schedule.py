#!/usr/bin/env python3
"""tern-queued's scheduling, seen from a stand-in deliverd written here: the
recipients of one message are split into one job per destination; at most
DestinationConcurrency jobs go to one destination and at most
DeliveryConcurrency in all, so a destination that never answers (its jobs
hang) does not hold back mail to another one."""

import harness
import ternipc as ipc
from queued_util import FakeDeliverd, connect, queue_list, submit

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


if __name__ == "__main__":
    harness.main(globals())
