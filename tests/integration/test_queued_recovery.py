#!/usr/bin/env python3
"""tern-queued's durability: a message queued while deliverd is down is
delivered once it is up; SIGKILL right after QUEUED loses nothing and
delivers exactly once; recorded results survive a restart (a recipient
recorded delivered is not delivered again); tmp/ leftovers and orphan state
files are cleaned at start-up."""

import os
import re
import signal
import time

import harness
import ternipc as ipc
from queued_util import connect, queue_list, spool_path, submit

BODY = b"Subject: recovery\r\n\r\nhello\r\n"


def stored(t, n):
    return t.wait_until(lambda: len(t.delivered()) >= n, what=f"{n} message(s) in the Maildir")


def test_queued_while_deliverd_down_is_delivered_after_it_starts():
    with harness.Tern(start=("queued",)) as t:
        with connect(t) as c:
            qid = submit(c, "alice@remote.example", [f"{t.user}@{t.domain}"], BODY)
        assert t.queue_files() == [qid]
        t.start("deliverd")
        stored(t, 1)
        t.wait_until(lambda: t.queue_files() == [] and
                     not os.path.exists(spool_path(t, "queue", qid + ".st")),
                     what="the message removed from the queue")
        assert len(t.delivered()) == 1
        assert t.delivered()[0].endswith(b"hello\n") or t.delivered()[0].endswith(b"hello\r\n")
        t.wait_until(lambda: f"{qid}: removed" in t.log("queued"), what="the removal logged")


def test_sigkill_after_queued_then_delivered_exactly_once():
    with harness.Tern(start=("queued",)) as t:
        with connect(t) as c:
            qid = submit(c, "alice@remote.example", [f"{t.user}@{t.domain}"], BODY)
        # Right after QUEUED, before anything else happened to it.
        t.kill("queued", signal.SIGKILL)
        assert t.queue_files() == [qid]
        t.start("queued")
        t.start("deliverd")
        stored(t, 1)
        t.wait_until(lambda: t.queue_files() == [], what="the message removed")
        # Another restart finds nothing to do and delivers nothing again.
        t.stop("queued")
        t.start("queued")
        assert queue_list(t) == []
        assert len(t.delivered()) == 1


def test_sigkill_during_delivery_loses_nothing():
    with harness.Tern(start=("queued", "deliverd")) as t:
        with connect(t) as c:
            ids = [submit(c, "alice@remote.example", [f"{t.user}@{t.domain}"],
                          BODY.replace(b"hello", f"hello {i}".encode())) for i in range(5)]
        t.kill("queued", signal.SIGKILL)
        t.start("queued")
        t.wait_until(lambda: t.queue_files() == [], what="every message delivered and removed")
        got = t.delivered()
        for i in range(5):
            # Once per recipient counts recorded results: a message whose result
            # was not yet recorded when queued died may be delivered twice,
            # but none is lost.
            assert sum(f"hello {i}".encode() in m for m in got) >= 1, (i, got)
        assert len(ids) == 5


def test_recorded_result_is_not_delivered_again():
    with harness.Tern(start=()) as t:
        os.makedirs(spool_path(t, "queue"), mode=0o700)
        os.makedirs(spool_path(t, "tmp"), mode=0o700)
        qid = ipc.new_queue_id()
        rcpts = [f"{t.user}@{t.domain}", f"{t.user}@localhost"]
        ipc.write_spool_file(spool_path(t, "queue", qid), qid, "alice@remote.example", rcpts, BODY)
        now = int(time.time() * 1000000)
        with open(spool_path(t, "queue", qid + ".st"), "w") as f:
            f.write(f"R 0 D {now} 2.0.0 local delivered to maildir\n")
            f.write(f"A {now} {now}\n")
        # A file in tmp/ was never acknowledged; a state file without its message
        # is left from an interrupted removal.
        with open(spool_path(t, "tmp", "0000000000001"), "wb") as f:
            f.write(b"partial")
        with open(spool_path(t, "queue", "0000000000002.st"), "w") as f:
            f.write(f"R 0 D {now} 2.0.0 local x\n")
        t.start("queued")
        assert os.listdir(spool_path(t, "tmp")) == []
        assert not os.path.exists(spool_path(t, "queue", "0000000000002.st"))
        entries = queue_list(t)
        assert [v.decode() for tag, v in entries[0].fields if tag == ipc.F_RCPT] == [rcpts[1]], entries
        t.start("deliverd")
        stored(t, 1)
        t.wait_until(lambda: t.queue_files() == [], what="the message removed")
        assert len(t.delivered()) == 1


def test_deferred_message_is_retried_with_backoff():
    with harness.Tern(start=("queued",)) as t:
        blocker = block_maildir(t)
        with connect(t) as c:
            qid = submit(c, "alice@remote.example", [f"{t.user}@{t.domain}"], BODY)
        t.start("deliverd")
        t.wait_until(lambda: deferred(t), what="the message deferred")
        with open(spool_path(t, "queue", qid + ".st")) as f:
            st = f.read()
        assert " F " in st and "\nA " in "\n" + st, st
        os.unlink(blocker)
        # MaxBackoff is 2s in the harness: the retry comes by itself.
        stored(t, 1)
        t.wait_until(lambda: t.queue_files() == [], what="the message removed")


def block_maildir(t):
    """A file where the user's Maildir belongs: local delivery defers."""
    blocker = os.path.join(t.mail_dir, t.user, "Maildir")
    with open(blocker, "w") as f:
        f.write("not a directory")
    return blocker


def deferred(t):
    e = queue_list(t)
    return e and e[0].str(ipc.F_STATE) == "deferred" and e[0].str(ipc.F_TEXT)


def test_flush_retries_a_deferred_message_now():
    conf = "[Queue]\nMinBackoff = 1h\nMaxBackoff = 2h\n"
    with harness.Tern(conf=conf, start=("queued", "deliverd")) as t:
        blocker = block_maildir(t)
        with connect(t) as c:
            submit(c, "alice@remote.example", [f"{t.user}@{t.domain}"], BODY)
        t.wait_until(lambda: deferred(t), what="the message deferred")
        os.unlink(blocker)
        with connect(t, "ctl") as c:
            c.send(ipc.QUEUE_FLUSH, [])
            assert c.recv().type == ipc.QUEUE_END
        stored(t, 1)
        t.wait_until(lambda: t.queue_files() == [], what="the message removed")


def test_message_past_max_queue_lifetime_expires():
    conf = "[Queue]\nMaxQueueLifetime = 1s\nBounceQueueLifetime = 1s\n"
    with harness.Tern(conf=conf, start=("queued", "deliverd")) as t:
        block_maildir(t)
        with connect(t) as c:
            qid = submit(c, "", [f"{t.user}@{t.domain}"], BODY)
        t.wait_until(lambda: t.queue_files() == [], what="the message expired and removed")
        # The files go first, the log line follows.
        t.wait_until(lambda: f"{qid}: removed" in t.log("queued"), what="the removal logged")
        log = t.log("queued")
        assert re.search(rf"{re.escape(qid)}: to=<{re.escape(t.user)}@{re.escape(t.domain)}>, "
                         r"relay=none, delay=\d+\.\d\d, dsn=4\.4\.7, status=expired, "
                         r"returned to sender \(message expired after ", log), log
        assert f"{qid}: removed" in log
        assert not os.path.exists(spool_path(t, "queue", qid + ".st"))


def test_many_recipients_and_messages_each_delivered_once():
    if os.geteuid() != 0:
        raise harness.Skip("needs root: postmaster goes to root's Maildir")
    import itertools
    import threading
    # 120 spellings of postmaster (all root): more than one job per message,
    # with fewer job slots than jobs.
    variants = ["".join(c.upper() if bit else c for c, bit in zip("postmaster", bits))
                for bits in itertools.product((0, 1), repeat=10)][:120]
    conf = "[Queue]\nDeliveryConcurrency = 2\n"
    with harness.Tern(conf=conf, start=("queued", "deliverd")) as t:
        os.makedirs(os.path.join(t.mail_dir, "root"), exist_ok=True)
        with connect(t) as c:
            submit(c, "alice@remote.example", [f"{v}@{t.domain}" for v in variants], BODY)
        errors = []

        def sender(n):
            try:
                with connect(t) as c:
                    for i in range(6):
                        submit(c, "bob@remote.example", [f"{t.user}@{t.domain}"],
                               f"Subject: m{n}.{i}\r\n\r\nbody {n}.{i}\r\n".encode())
            except Exception as e:  # reported below
                errors.append(e)
        threads = [threading.Thread(target=sender, args=(n,)) for n in range(5)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == [], errors
        t.wait_until(lambda: t.queue_files() == [], timeout=60, what="everything delivered")
        got = t.delivered("root")
        assert sum(b"hello" in m for m in got) == 120, len(got)
        for n in range(5):
            for i in range(6):
                assert sum(f"body {n}.{i}\n".encode() in m for m in got) == 1, (n, i)


harness.main(globals())
