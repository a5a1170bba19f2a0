#!/usr/bin/env python3
"""`ternctl backup FILE` while queued runs, then `ternctl restore FILE` into an
emptied spool: the queued mail is delivered after the restore, and the
archive lists each message's state file before the message."""

import os
import shutil
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def submit(t, subject):
    p = t.run_cli(["sendmail", t.user], input=f"Subject: {subject}\n\nbody\n".encode())
    assert p.returncode == 0, p


def delivered(t):
    new = os.path.join(t.maildir(t.user), "new")
    return sorted(os.listdir(new)) if os.path.isdir(new) else []


def test_backup_restore_delivers_the_queue():
    with harness.Tern(conf="[Local]\nAliasFile =\n", start=("queued",)) as t:
        submit(t, "one")
        submit(t, "two")
        ids = sorted(t.queue_files())
        assert len(ids) == 2, ids
        # A state file, as after a deferral, to check the order in the archive.
        with open(os.path.join(t.spool, "queue", ids[0] + ".st"), "wb"):
            pass
        archive = os.path.join(t.dir, "backup.tar.gz")
        p = t.run_cli(["ternctl", "backup", archive])
        assert p.returncode == 0 and p.stderr == b"", p
        assert stat.S_IMODE(os.stat(archive).st_mode) == 0o600

        names = subprocess.run(["tar", "-tzf", archive], capture_output=True,
                               check=True).stdout.decode().split("\n")
        rel = lambda p: p.lstrip("/")  # noqa: E731
        assert rel(t.conf_path) in names, names
        for i in ids:
            assert rel(os.path.join(t.spool, "queue", i)) in names, (i, names)
        st = names.index(rel(os.path.join(t.spool, "queue", ids[0] + ".st")))
        assert st < names.index(rel(os.path.join(t.spool, "queue", ids[0]))), names

        # Restore refuses to run under a live queued.
        p = t.run_cli(["ternctl", "restore", archive])
        assert p.returncode == 1 and b"tern-queued is running" in p.stderr, p

        # Into another root: everything where it was, below that root.
        other = os.path.join(t.dir, "root")
        os.mkdir(other)
        p = t.run_cli(["ternctl", "restore", "--root", other, archive])
        assert p.returncode == 0, p
        assert os.path.exists(other + t.conf_path)
        assert os.path.exists(other + os.path.join(t.spool, "queue", ids[1]))

        # Lose the spool, restore it, start again: both messages go out.
        t.stop("queued")
        os.unlink(os.path.join(t.spool, "queue", ids[0] + ".st"))
        shutil.rmtree(t.spool)
        p = t.run_cli(["ternctl", "restore", archive])
        assert p.returncode == 0 and p.stderr == b"", p
        assert sorted(t.queue_files()) == ids
        t.start("queued")
        t.start("deliverd")
        t.wait_until(lambda: len(delivered(t)) == 2, what="the restored messages delivered")
        t.wait_until(lambda: t.queue_files() == [], what="the queue emptied")


def test_usage():
    with harness.Tern(start=()) as t:
        p = t.run_cli(["ternctl", "backup"])
        assert p.returncode == 2, p
        p = t.run_cli(["ternctl", "restore"])
        assert p.returncode == 2, p


if __name__ == "__main__":
    harness.main(globals())
