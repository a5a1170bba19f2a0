#!/usr/bin/env python3
"""A corrupt file in queue/ does not stop tern-queued: it is moved to corrupt/
(with its state file), logged, listed as corrupt, and the queue keeps working;
at start-up and when a file is damaged while queued runs."""

import os

import harness
import ternipc as ipc
from queued_util import connect, queue_list, spool_path, submit

BODY = b"Subject: after corruption\r\n\r\nstill working\r\n"


def test_corrupt_file_is_moved_and_queue_keeps_working():
    with harness.Tern(start=()) as t:
        for d in ("queue", "tmp", "corrupt"):
            os.makedirs(spool_path(t, d), mode=0o700)
        garbage = "0000000000AAA"
        with open(spool_path(t, "queue", garbage), "wb") as f:
            f.write(b"this is not a cdb file" * 200)
        with open(spool_path(t, "queue", garbage + ".st"), "w") as f:
            f.write("R 0 D 1 2.0.0 local x\n")
        # A valid CDB file whose id does not match its name is corrupt too.
        wrong = "0000000000BBB"
        ipc.write_spool_file(spool_path(t, "queue", wrong), "0000000000CCC", "a@remote.example",
                             [f"{t.user}@{t.domain}"], b"x\r\n")
        # Truncated in the middle of a record.
        cut = "0000000000DDD"
        data = ipc.spool_file_bytes(cut, "a@remote.example", [f"{t.user}@{t.domain}"], BODY)
        with open(spool_path(t, "queue", cut), "wb") as f:
            f.write(data[:len(data) // 2])
        t.start("queued")
        t.start("deliverd")
        for qid in (garbage, wrong, cut):
            assert os.path.exists(spool_path(t, "corrupt", qid)), qid
            assert not os.path.exists(spool_path(t, "queue", qid)), qid
            assert f"{qid}: queue file is unreadable" in t.log("queued"), t.log("queued")
        assert os.path.exists(spool_path(t, "corrupt", garbage + ".st"))
        assert not os.path.exists(spool_path(t, "queue", garbage + ".st"))
        listed = {e.str(ipc.F_QUEUE_ID): e.str(ipc.F_STATE) for e in queue_list(t)}
        assert listed == {garbage: "corrupt", wrong: "corrupt", cut: "corrupt"}, listed

        with connect(t) as c:
            qid = submit(c, "alice@remote.example", [f"{t.user}@{t.domain}"], BODY)
        t.wait_until(lambda: len(t.delivered()) == 1, what="the new message delivered")
        t.wait_until(lambda: qid not in t.queue_files(), what="the new message removed")
        assert b"still working" in t.delivered()[0]
        assert t.procs["queued"].poll() is None


def test_file_damaged_while_queued_goes_to_corrupt_and_the_queue_goes_on():
    with harness.Tern(start=("queued",)) as t:
        with connect(t) as c:
            bad = submit(c, "alice@remote.example", [f"{t.user}@{t.domain}"], BODY)
        # Spool files are immutable; this one is damaged behind queued's back.
        with open(spool_path(t, "queue", bad), "r+b") as f:
            f.write(b"\xff" * 2048)
        t.start("deliverd")
        t.wait_until(lambda: os.path.exists(spool_path(t, "corrupt", bad)),
                     what="the damaged file moved to corrupt/")
        # The file moves first, the log line follows.
        t.wait_until(lambda: f"{bad}: queue file is unreadable" in t.log("queued"),
                     what="the damaged file logged")
        listed = {e.str(ipc.F_QUEUE_ID): e.str(ipc.F_STATE) for e in queue_list(t)}
        assert listed == {bad: "corrupt"}, listed
        with connect(t) as c:
            good = submit(c, "alice@remote.example", [f"{t.user}@{t.domain}"], BODY)
        t.wait_until(lambda: len(t.delivered()) == 1, what="the next message delivered")
        t.wait_until(lambda: good not in t.queue_files(), what="the next message removed")
        assert t.procs["queued"].poll() is None


harness.main(globals())
