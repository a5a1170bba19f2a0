"""Concurrent appends to one mbox: mail submitted with sendmail from several
processes at once, delivered by up to 20 deliverd workers, while two other
programs append to the same mbox line by line under the locks mail readers
use (dot-lock + fcntl like mutt, fcntl only like Dovecot). Every message
must come out whole and separate, byte for byte; any writer ignoring the
locks would interleave lines."""

import os
import re
import subprocess
import threading
import time
import sys

import harness
from local_util import LocalUser

N_MAIL = 30
N_LINES = 400


def body_of(i):
    lines = [f"message {i} line {k} " + "x" * (k % 50) for k in range(N_LINES)]
    lines[7] = f"From the middle of message {i}"          # mboxrd-quoted on disk
    return "\n".join(lines) + "\n"


WRITER = r"""
import fcntl, os, sys, time
path, name, dotlock, stop = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
i = 0
while not os.path.exists(stop) or i < 3:
    dl = None
    while dotlock:
        try:
            os.close(os.open(path + ".lock", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            dl = path + ".lock"
            break
        except FileExistsError:
            time.sleep(0.01)  # contending for the lock
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    os.write(fd, f"From {name}@writer.example Mon Nov 23 10:00:00 2026\n".encode())
    os.write(fd, f"Subject: {name} {i}\n\n".encode())
    for k in range(200):
        os.write(fd, f"{name} {i} line {k}\n".encode())
    os.write(fd, b"\n")
    fcntl.lockf(fd, fcntl.LOCK_UN)
    os.close(fd)
    if dl:
        os.unlink(dl)
    i += 1
    time.sleep(0.02)  # a reader's pace: a writer that never lets go would starve deliverd
print(i)
"""


class Writer:
    """Another program (its own process: fcntl locks are per process) that
    appends messages one line per write() while holding the locks, until the
    stop file exists (at least 3)."""

    def __init__(self, path, name, dotlock, stop):
        self.name = name
        self.args = [sys.executable, "-c", WRITER, path, name, "1" if dotlock else "0", stop]

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def join(self, timeout):
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, (self.name, err)
        self.count = int(out)


def test_concurrent_deliveries_and_writers_keep_every_message_whole():
    with harness.Tern(start=()) as t, LocalUser(t) as u:
        spool = os.path.join(t.dir, "mbox")
        os.makedirs(spool)
        os.chown(spool, u.uid, u.gid)
        path = os.path.join(spool, u.name)
        # The other writers run as root here: the mailbox is the user's from the start.
        with open(path, "wb"):
            pass
        os.chown(path, u.uid, u.gid)
        with open(os.path.join(t.conf_path + ".d", "60-mbox.conf"), "w") as f:
            f.write(f"[Local]\nMailboxFormat = mbox\nMailboxPath = {spool}/%u\nAliasFile =\n"
                    f"[Queue]\nDeliveryConcurrency = 20\n")
        t.start("queued")
        t.start("deliverd")
        rcpt = f"{u.name}@test.example"
        stop = os.path.join(t.dir, "stop-writers")
        writers = [Writer(path, "dotlocker", True, stop), Writer(path, "fcntler", False, stop)]

        def submit(i):
            msg = f"From: s@example.org\nSubject: mail {i}\n\n{body_of(i)}".encode()
            p = subprocess.run([harness.binary("cli/sendmail"), "-f", f"s{i}@example.org", "-i", rcpt],
                               input=msg, env=t.env, capture_output=True, timeout=60)
            assert p.returncode == 0, p

        senders = [threading.Thread(target=lambda k=k: [submit(i) for i in range(k, N_MAIL, 6)])
                   for k in range(6)]
        for th in writers + senders:
            th.start()
        for th in senders:
            th.join(60)
        # The writers go on until every message is delivered.
        t.wait_until(lambda: t.log("deliverd").count(f"to=<{rcpt}>, relay=local") >= N_MAIL,
                     timeout=60, what="all deliveries")
        with open(stop, "w"):
            pass
        for w in writers:
            w.join(60)
        n_written = sum(w.count for w in writers)
        assert t.log("deliverd").count("status=sent (delivered to mailbox)") == N_MAIL, t.log("deliverd")

        with open(path, "rb") as f:
            data = f.read().decode()
        chunks = re.split(r"(?m)^(?=From )", data)
        assert chunks[0] == ""
        chunks = chunks[1:]
        assert len(chunks) == N_MAIL + n_written, (len(chunks), n_written)
        seen = set()
        for c in chunks:
            first, rest = c.split("\n", 1)
            m = re.match(r"From (s(\d+)@example\.org|(\w+)@writer\.example) ", first)
            assert m, first
            if m.group(3):
                name = m.group(3)
                i = int(re.match(rf"Subject: {name} (\d+)\n", rest).group(1))
                want = f"Subject: {name} {i}\n\n" + "".join(f"{name} {i} line {k}\n"
                                                         for k in range(200)) + "\n"
                assert rest == want, (name, i)
                seen.add((name, i))
                continue
            i = int(m.group(2))
            head, body = rest.split("\n\n", 1)
            assert head.startswith(f"Return-Path: <s{i}@example.org>\nDelivered-To: {rcpt}\n"), head
            assert f"\nSubject: mail {i}" in head
            assert body == body_of(i).replace(f"\nFrom the middle", f"\n>From the middle") + "\n", i
            seen.add(("mail", i))
        assert len(seen) == N_MAIL + n_written
        assert not os.path.exists(path + ".lock")


harness.main(globals())
