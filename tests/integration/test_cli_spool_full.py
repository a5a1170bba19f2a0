#!/usr/bin/env python3
"""A full spool: tern-queued runs with its spool on a 512 KiB tmpfs mounted
in a private mount namespace (unshare -m, so nothing on the host is touched).
A message that does not fit is refused with 452 4.3.1 "Insufficient system
storage" (sendmail: the reason on stderr and EX_TEMPFAIL; smtpd: the same
reply to the client), nothing is left half-written in tmp/ or queue/, and mail
that fits is taken again as soon as there is room. A bounce that cannot be
queued is not lost: the original stays until there is room for it."""

import os
import shutil
import smtplib
import subprocess

import threading

import harness
import ternipc as ipc
from dsn_util import FakeDeliverd, local_ok, reports, submit

EX_TEMPFAIL = 75
TMPFS_SIZE = 512 * 1024


def start_queued_on_tmpfs(t):
    if os.getuid() != 0 or not shutil.which("unshare"):
        raise harness.Skip("needs root and unshare(1) for a private tmpfs spool")
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs -o size=64k tern-probe /mnt"], capture_output=True)
    if probe.returncode != 0:
        raise harness.Skip(f"no private mount namespace here: {probe.stderr!r}")
    exe = harness.binary("queued/tern-queued")
    log = open(os.path.join(t.dir, "queued.log"), "ab")
    t.logfiles["queued"] = log.name
    # unshare and sh exec into tern-queued: the harness stops it by this pid.
    script = 'mount -t tmpfs -o size="$1",mode=0700 tern-test-spool "$2" && exec "$3" -c "$4"'
    p = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                          str(TMPFS_SIZE), t.spool, exe, t.conf_path],
                         env=t.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    log.close()
    t.procs["queued"] = p
    t.wait_until(lambda: t._seqpacket_accepts(t.queued_socket) or p.poll() is not None,
                 what="queued listening")
    if p.poll() is not None:
        raise AssertionError(f"queued on tmpfs exited: {t.log('queued')}")
    # The spool as queued sees it, through its mount namespace.
    return f"/proc/{p.pid}/root{t.spool}"


def spool_files(spool):
    return {d: sorted(os.listdir(os.path.join(spool, d))) for d in ("tmp", "queue")}


def test_sendmail_gets_ex_tempfail_and_nothing_is_half_written():
    with harness.Tern(start=()) as t:
        spool = start_queued_on_tmpfs(t)
        # The host's spool directory stays empty: the tmpfs is queued's alone.
        assert os.listdir(t.spool) == []
        big = b"Subject: big\n\n" + (b"x" * 76 + b"\n") * 8000   # ~600 KiB
        p = t.run_cli(["sendmail", t.user], input=big)
        assert p.returncode == EX_TEMPFAIL, p
        assert p.stderr == b"sendmail: message refused: 452 4.3.1 Insufficient system storage\n", p.stderr
        assert spool_files(spool) == {"tmp": [], "queue": []}
        assert "queue file write error, message refused: No space left on device" in t.log("queued")
        # Room for a small one: taken, and durable in queue/.
        p = t.run_cli(["sendmail", t.user], input=b"Subject: small\n\nfits\n")
        assert (p.returncode, p.stderr) == (0, b""), p
        files = spool_files(spool)
        assert files["tmp"] == [] and len(files["queue"]) == 1, files


def test_full_filesystem_gives_smtp_clients_452_4_3_1():
    with harness.Tern(start=()) as t:
        spool = start_queued_on_tmpfs(t)
        t.start("smtpd")
        # Fill the file system to the last block, as another writer would.
        fd = os.open(os.path.join(spool, "filler"), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError as e:
            assert e.errno == 28, e
        finally:
            os.close(fd)
        with t.smtp() as s:
            s.ehlo("client.test")
            s.mail(f"{t.user}@{t.domain}")
            assert s.rcpt(f"{t.user}@{t.domain}")[0] == 250
            code, text = s.data(b"Subject: no room\r\n\r\nhello\r\n")
            assert (code, text) == (452, b"4.3.1 Insufficient system storage"), (code, text)
            # The session goes on; the client may try again later.
            assert s.noop()[0] == 250
        assert spool_files(spool) == {"tmp": [], "queue": []}
        os.unlink(os.path.join(spool, "filler"))
        with t.smtp() as s:
            s.sendmail(f"{t.user}@{t.domain}", [f"{t.user}@{t.domain}"], b"Subject: room\r\n\r\nhi\r\n")
        assert len(spool_files(spool)["queue"]) == 1


def fill(spool, leave=0):
    """Fills the file system, then frees `leave` bytes again."""
    path = os.path.join(spool, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == 28, e
    finally:
        os.close(fd)
    if leave:
        os.truncate(path, max(0, os.path.getsize(path) - leave))
    return path


def test_a_bounce_that_does_not_fit_is_retried_and_the_original_kept():
    gate = threading.Event()

    def policy(rcpt, env):
        if rcpt == "fail@remote.example":
            gate.wait(30)
            return ipc.BOUNCED, "5.1.1", "user unknown", "mx.remote.example[192.0.2.1]:25", False
        return local_ok(rcpt, env)

    with harness.Tern(conf="[Queue]\nMinBackoff = 1s\nMaxBackoff = 1s\n", start=()) as t:
        fake = FakeDeliverd(t, policy)
        try:
            spool = start_queued_on_tmpfs(t)
            qid = submit(t, "alice@client.example", ["fail@remote.example"],
                         b"Subject: bounce me\r\n\r\n" + b"x" * 20000 + b"\r\n")
            # One page left: the result is recorded, the report does not fit.
            filler = fill(spool, leave=4096)
            gate.set()
            t.wait_until(lambda: f"{qid}: cannot queue the sender non-delivery notification, will retry"
                         in t.log("queued"), what="the failed report")
            assert spool_files(spool)["queue"] == [qid, qid + ".st"], spool_files(spool)
            assert spool_files(spool)["tmp"] == []
            assert reports(fake, "alice@client.example") == []
            os.unlink(filler)
            (rep,) = t.wait_until(lambda: reports(fake, "alice@client.example"), what="the report")
            assert [r["Status"] for r in rep[2]] == ["5.1.1"]
            t.wait_until(lambda: f"{qid}: removed" in t.log("queued"), what="the original removed")
            assert spool_files(spool)["tmp"] == []
        finally:
            gate.set()
            fake.close()


harness.main(globals())
