#!/usr/bin/env python3
"""deliverd's mbox delivery: the exact bytes (separator line, Return-Path and
Delivered-To, LF line ends, mboxrd ">From " quoting, empty last line); 20
concurrent deliveries to one mbox leave 20 intact messages; a mailbox held
locked by another program makes the delivery wait and then time out as
deferred; symlinks and hard links are refused."""

import fcntl
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import ternipc as ipc  # noqa: E402
from test_deliverd_local import collect, connect, deliver, spool  # noqa: E402

SENDER = "sender@example.org"
BODY = (b"From: Sender <sender@example.org>\r\n"
        b"Subject: mbox\r\n"
        b"\r\n"
        b"From here on, quoted\r\n"
        b">From already quoted once\r\n"
        b">>From twice\r\n"
        b" From not at the start\r\n"
        b"Fromage is not From_\r\n"
        b"last line without a line end")


def conf(t_dir, extra=""):
    return f"[Local]\nMailboxFormat = mbox\nMailboxPath = {t_dir}/mail/%u.mbox\n{extra}"


def start(extra=""):
    """A Tern running deliverd with mbox delivery into t.dir/mail/%u.mbox."""
    t = harness.Tern(start=())
    t.__enter__()
    with open(os.path.join(t.conf_path + ".d", "60-mbox.conf"), "w") as f:
        f.write(conf(t.dir, extra))
    try:
        t.start("deliverd")
    except BaseException:
        t.__exit__(*sys.exc_info())
        raise
    return t


def separator(sender, arrival_usec):
    date = time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(arrival_usec // 1000000))
    return f"From {sender or 'MAILER-DAEMON'} {date}\n".encode()


def expected(sender, rcpt, body, arrival_usec):
    text = body.replace(b"\r\n", b"\n")
    lines = []
    for line in text.split(b"\n"):
        if line.lstrip(b">").startswith(b"From "):
            line = b">" + line
        lines.append(line)
    text = b"\n".join(lines)
    if not text.endswith(b"\n"):
        text += b"\n"
    return (separator(sender, arrival_usec)
            + f"Return-Path: <{sender}>\nDelivered-To: {rcpt}\n".encode() + text + b"\n")


def mbox_path(t):
    return os.path.join(t.dir, "mail", f"{t.user}.mbox")


def test_mbox_bytes_and_from_quoting():
    t = start()
    try:
        rcpt = f"{t.user}@{t.domain}"
        arrival = 1700000000123456
        qid, fd = spool(t, [rcpt], body=BODY, arrival_usec=arrival)
        qid2, fd2 = spool(t, [rcpt], body=b"From x\r\n", sender="", arrival_usec=arrival)
        with connect(t) as c:
            deliver(c, qid, fd, 1, [0])
            assert collect(c, 1) == {0: (ipc.DELIVERED, "2.0.0", "local", "delivered to mailbox")}
            deliver(c, qid2, fd2, 2, [0])
            assert collect(c, 2) == {0: (ipc.DELIVERED, "2.0.0", "local", "delivered to mailbox")}
        with open(mbox_path(t), "rb") as f:
            got = f.read()
        want = expected(SENDER, rcpt, BODY, arrival) + expected("", rcpt, b"From x\r\n", arrival)
        # Spelled out once, so the helper above cannot hide a mistake.
        assert b"\n>From here on, quoted\n>>From already quoted once\n>>>From twice\n" \
               b" From not at the start\nFromage is not From_\nlast line without a line end\n\n" \
               b"From MAILER-DAEMON " in want
        assert got == want, got
        assert os.stat(mbox_path(t)).st_mode & 0o777 == 0o600
        assert not os.path.exists(mbox_path(t) + ".lock")
    finally:
        t.__exit__(None, None, None)


class LockingWriter:
    """Another mail program appending to the mbox the way mutt or procmail do:
    dot-lock, then fcntl lock, then the message in many small write()s. Any
    delivery that ignored either lock would land inside its messages."""

    def __init__(self, path):
        self.path = path
        self.count = 0
        self.stop = False
        self.error = None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.message = (b"From tester Thu Jan  1 00:00:00 1970\n" +
                        b"".join(b"tester line %d\n" % i for i in range(300)) + b"\n")

    def run(self):
        try:
            while not self.stop:
                self.append_one()
                # Not synchronisation: a real program does not append in a
                # tight loop, and deliverd polls the locks.
                time.sleep(0.03)
        except Exception as e:  # reported by the test
            self.error = e

    def append_one(self):
        lock = self.path + ".lock"
        while True:
            try:
                os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                break
            except FileExistsError:
                time.sleep(0.001)  # lock retry, as every dot-locking program does
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX)
                for line in self.message.splitlines(keepends=True):
                    os.write(fd, line)
                self.count += 1
            finally:
                os.close(fd)
        finally:
            os.unlink(lock)


def test_twenty_concurrent_deliveries_to_one_mbox():
    t = start("[Queue]\nDeliveryConcurrency = 20\n")
    writer = None
    try:
        rcpt = f"{t.user}@{t.domain}"
        arrival = int(time.time()) * 1000000
        bodies = [b"Subject: %d\r\n\r\n" % i + (b"line of message %d\r\n" % i) * 2000
                  for i in range(20)]
        writer = LockingWriter(mbox_path(t))
        writer.thread.start()
        t.wait_until(lambda: writer.count > 0 or writer.error, what="the other writer")
        with connect(t) as c:
            for i, body in enumerate(bodies):
                qid, fd = spool(t, [rcpt], body=body, arrival_usec=arrival)
                deliver(c, qid, fd, 100 + i, [0])
            results = {}
            while len(results) < 20:
                m = c.recv()
                assert m is not None
                if m.type == ipc.RESULT:
                    results[m.u64(ipc.F_JOB)] = m.u64(ipc.F_STATUS)
        writer.stop = True
        writer.thread.join(20)
        assert writer.error is None, writer.error
        assert results == {100 + i: ipc.DELIVERED for i in range(20)}, results
        with open(mbox_path(t), "rb") as f:
            got = f.read()
        # Split before every separator line; order is free, bytes are not.
        chunks = re.split(rb"(?m)^(?=From )", got)
        assert chunks[0] == b""
        chunks = chunks[1:]
        parts = [expected(SENDER, rcpt, b, arrival) for b in bodies]
        assert sorted(c for c in chunks if c != writer.message) == sorted(parts), \
            [c[:60] for c in chunks if c != writer.message and c not in parts]
        assert len(chunks) == 20 + writer.count
        assert not os.path.exists(mbox_path(t) + ".lock")
    finally:
        if writer:
            writer.stop = True
        t.__exit__(None, None, None)


def test_locked_mailbox_times_out_as_deferred():
    t = start("LocalDeliveryTimeout = 1\n")
    try:
        rcpt = f"{t.user}@{t.domain}"
        qid, fd = spool(t, [rcpt])
        with open(mbox_path(t), "ab") as holder:
            fcntl.lockf(holder, fcntl.LOCK_EX)
            with connect(t) as c:
                deliver(c, qid, fd, 1, [0])
                # Half of LocalDeliveryTimeout waits for the locks.
                assert collect(c, 1) == {0: (ipc.DEFERRED, "4.2.0", "local",
                                             f'cannot lock mailbox "{mbox_path(t)}": timed out')}
        assert os.path.getsize(mbox_path(t)) == 0
        assert not os.path.exists(mbox_path(t) + ".lock")
    finally:
        t.__exit__(None, None, None)


def test_stale_dot_lock_is_removed_and_fresh_one_waited_for():
    t = start("LocalDeliveryTimeout = 1\n")
    try:
        rcpt = f"{t.user}@{t.domain}"
        lock = mbox_path(t) + ".lock"
        open(lock, "w").close()
        qid, fd = spool(t, [rcpt])
        with connect(t) as c:
            deliver(c, qid, os.dup(fd), 1, [0])
            assert collect(c, 1) == {0: (ipc.DEFERRED, "4.2.0", "local",
                                         f'cannot lock mailbox "{mbox_path(t)}": '
                                         f'"{lock}" is held by another process')}
            assert os.path.exists(lock)
            old = time.time() - 600
            os.utime(lock, (old, old))
            deliver(c, qid, fd, 2, [0])
            assert collect(c, 2) == {0: (ipc.DELIVERED, "2.0.0", "local", "delivered to mailbox")}
        assert not os.path.exists(lock)
    finally:
        t.__exit__(None, None, None)


def test_fifo_as_mbox_does_not_hang():
    t = start("LocalDeliveryTimeout = 5\n")
    try:
        os.mkfifo(mbox_path(t))
        qid, fd = spool(t, [f"{t.user}@{t.domain}"])
        with connect(t) as c:
            deliver(c, qid, fd, 1, [0])
            assert collect(c, 1) == {0: (ipc.DEFERRED, "4.2.0", "local",
                                         f'cannot open mailbox "{mbox_path(t)}": '
                                         "No such device or address")}
        assert not os.path.exists(mbox_path(t) + ".lock")
    finally:
        t.__exit__(None, None, None)


def test_symlinked_or_hard_linked_mbox_is_refused():
    t = start()
    try:
        rcpt = f"{t.user}@{t.domain}"
        victim = os.path.join(t.dir, "victim")
        with open(victim, "wb") as f:
            f.write(b"precious\n")
        os.symlink(victim, mbox_path(t))
        qid, fd = spool(t, [rcpt])
        with connect(t) as c:
            deliver(c, qid, os.dup(fd), 1, [0])
            (status, dsn, relay, text), = collect(c, 1).values()
            assert (status, dsn, relay) == (ipc.DEFERRED, "4.2.0", "local"), text
            assert text.startswith(f'cannot open mailbox "{mbox_path(t)}": '), text
            os.unlink(mbox_path(t))
            os.link(victim, mbox_path(t))
            deliver(c, qid, fd, 2, [0])
            assert collect(c, 2) == {0: (ipc.DEFERRED, "4.2.0", "local",
                                         f'mailbox "{mbox_path(t)}" is not a regular file '
                                         'with one link')}
        with open(victim, "rb") as f:
            assert f.read() == b"precious\n"
    finally:
        t.__exit__(None, None, None)


def test_shared_spool_directory_uses_its_group():
    # Debian's /var/mail: root:mail 2775. The child, being the recipient, gets
    # the directory's group to create the mailbox and the dot-lock.
    if os.geteuid() != 0:
        raise harness.Skip("needs root to deliver to another user")
    import grp
    import pwd
    try:
        nobody = pwd.getpwnam("nobody")
        mail = grp.getgrnam("mail")
    except KeyError:
        raise harness.Skip("no user nobody or group mail")
    with harness.Tern(start=()) as t:
        spool_dir = os.path.join(t.dir, "varmail")
        os.mkdir(spool_dir)
        os.chown(spool_dir, 0, mail.gr_gid)
        os.chmod(spool_dir, 0o2775)
        with open(os.path.join(t.conf_path + ".d", "60-mbox.conf"), "w") as f:
            f.write(f"[Local]\nMailboxFormat = mbox\nMailboxPath = {spool_dir}/%u\n")
        t.start("deliverd")
        qid, fd = spool(t, ["nobody@localhost"])
        with connect(t) as c:
            deliver(c, qid, fd, 1, [0])
            assert collect(c, 1) == {0: (ipc.DELIVERED, "2.0.0", "local", "delivered to mailbox")}
        st = os.stat(os.path.join(spool_dir, "nobody"))
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (nobody.pw_uid, mail.gr_gid, 0o600), st
        assert os.listdir(spool_dir) == ["nobody"]


def test_smtp_to_mbox_end_to_end():
    with harness.Tern(start=()) as t:
        with open(os.path.join(t.conf_path + ".d", "60-mbox.conf"), "w") as f:
            f.write(conf(t.dir))
        for name in ("queued", "deliverd", "smtpd"):
            t.start(name)
        rcpt = f"{t.user}@{t.domain}"
        with t.smtp() as s:
            s.sendmail(SENDER, [rcpt], BODY + b"\r\n")
        t.wait_until(lambda: os.path.exists(mbox_path(t)) and
                     open(mbox_path(t), "rb").read().endswith(b"\n\n"), what="mbox delivery")
        with open(mbox_path(t), "rb") as f:
            got = f.read()
        assert got.startswith(b"From " + SENDER.encode() + b" "), got
        assert got.endswith(b"\n>From here on, quoted\n>>From already quoted once\n>>>From twice\n"
                            b" From not at the start\nFromage is not From_\n"
                            b"last line without a line end\n\n"), got


harness.main(globals())
