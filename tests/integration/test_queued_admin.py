#!/usr/bin/env python3
"""Queue administration through ternctl against a real queued: hold (kept
across a restart, recorded as "H 1"), release, delete (also a file in
corrupt/), requeue, show (envelope, per-recipient status and last error,
headers; human and JSON), flush of one domain, the incoming/corrupt states,
and that only root or the queue's owner may change the queue."""

import json
import os
import pwd
import shutil
import subprocess

import harness
import ternipc as ipc
from queued_util import connect, queue_list, spool_path, submit

BODY = b"Subject: admin test\r\nX-Tern-Test: yes\r\n\r\nhello\r\n"


def ctl(t, *args, user=None):
    if user is None:
        return t.run_cli(["ternctl"] + list(args))
    exe = harness.binary("cli/ternctl")
    return subprocess.run(["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups",
                           exe] + list(args), env=t.env, capture_output=True, timeout=30)


def states(t):
    return {e.str(ipc.F_QUEUE_ID): e.str(ipc.F_STATE) for e in queue_list(t)}


def block_maildir(t):
    blocker = os.path.join(t.mail_dir, t.user, "Maildir")
    with open(blocker, "w") as f:
        f.write("not a directory")
    return blocker


def test_hold_survives_a_restart_and_release_delivers():
    with harness.Tern(start=("queued",)) as t:
        with connect(t) as c:
            qid = submit(c, "a@example.org", [f"{t.user}@{t.domain}"], BODY)
        p = ctl(t, "queue", "hold", qid)
        assert (p.returncode, p.stdout, p.stderr) == (0, b"hold: 1 message put on hold\n", b""), p
        assert states(t) == {qid: "hold"}
        with open(spool_path(t, "queue", qid + ".st")) as f:
            assert f.read().splitlines()[-1] == "H 1"
        p = ctl(t, "queue")
        assert f"{qid}!".encode() in p.stdout, p.stdout
        t.stop("queued")
        t.start("queued")
        t.start("deliverd")
        assert states(t) == {qid: "hold"}
        assert t.delivered() == []
        p = ctl(t, "queue", "release", qid)
        assert (p.returncode, p.stdout) == (0, b"release: 1 message released\n"), p
        t.wait_until(lambda: len(t.delivered()) == 1, what="delivery after release")
        t.wait_until(lambda: t.queue_files() == [], what="the message removed")


def test_delete_removes_without_a_bounce_and_unknown_ids_fail():
    with harness.Tern(start=("queued",)) as t:
        with connect(t) as c:
            qid = submit(c, "a@example.org", [f"{t.user}@{t.domain}"], BODY)
        p = ctl(t, "queue", "delete", qid)
        assert (p.returncode, p.stdout) == (0, b"delete: 1 message deleted\n"), p
        assert t.queue_files() == [] and states(t) == {}
        assert not os.path.exists(spool_path(t, "queue", qid + ".st"))
        p = ctl(t, "queue", "delete", qid)
        assert p.returncode == 1 and p.stderr == f"ternctl: {qid}: no such message in the queue\n".encode(), p
        p = ctl(t, "queue", "hold", "not-an-id")
        assert p.returncode == 1 and b"is not a queue id" in p.stderr, p
        # Nothing was bounced to a@example.org.
        t.start("deliverd")
        assert t.queue_files() == []
        assert f"{qid}: removed (deleted by an administrator)" in t.log("queued")


def test_corrupt_and_incoming_are_listed_and_corrupt_can_be_deleted():
    with harness.Tern(start=()) as t:
        os.makedirs(spool_path(t, "queue"), exist_ok=True)
        os.makedirs(spool_path(t, "tmp"), exist_ok=True)
        bad = ipc.new_queue_id()
        with open(spool_path(t, "queue", bad), "wb") as f:
            f.write(b"not a cdb file")
        t.start("queued")
        assert states(t) == {bad: "corrupt"}
        # A file being committed shows as incoming.
        inc = "6B0000000000A"
        with open(spool_path(t, "tmp", inc), "wb") as f:
            f.write(b"x")
        assert states(t) == {bad: "corrupt", inc: "incoming"}
        os.unlink(spool_path(t, "tmp", inc))
        p = ctl(t, "queue", "delete", bad)
        assert p.returncode == 0, p
        assert states(t) == {} and os.listdir(spool_path(t, "corrupt")) == []


def test_show_prints_envelope_recipient_status_and_headers():
    conf = "[Queue]\nMinBackoff = 1h\nMaxBackoff = 2h\n"
    with harness.Tern(conf=conf, start=("queued", "deliverd")) as t:
        block_maildir(t)
        rcpt = f"{t.user}@{t.domain}"
        with connect(t) as c:
            qid = submit(c, "alice@example.org", [rcpt], BODY,
                         [(ipc.F_CLIENT_ADDR, "192.0.2.7"), (ipc.F_HELO, "client.example")])
        t.wait_until(lambda: states(t).get(qid) == "deferred", what="the message deferred")
        p = ctl(t, "queue", "show", qid)
        assert p.returncode == 0 and p.stderr == b"", p
        out = p.stdout.decode()
        assert out.startswith(f"Queue ID:     {qid}\nState:        deferred\n"
                              "Sender:       <alice@example.org>\n"), out
        assert "Client:       192.0.2.7\n" in out and "HELO:         client.example\n" in out, out
        assert "Attempts:     1, next " in out, out
        assert f"  <{rcpt}> deferred dsn=4.2.0 relay=local at " in out, out
        assert "(cannot open maildir" in out, out
        assert out.endswith("Headers:\nSubject: admin test\r\nX-Tern-Test: yes\r\n"), out
        p = ctl(t, "queue", "show", qid, "--json")
        assert p.returncode == 0, p
        d = json.loads(p.stdout)
        assert d["id"] == qid and d["state"] == "deferred" and d["attempts"] == 1, d
        assert d["sender"] == "alice@example.org" and d["client_address"] == "192.0.2.7", d
        assert d["headers"] == "Subject: admin test\r\nX-Tern-Test: yes\r\n", d
        (r,) = d["recipients"]
        assert r["address"] == rcpt and r["status"] == "deferred" and r["dsn"] == "4.2.0", r
        assert "cannot open maildir" in r["last_error"], r
        p = ctl(t, "queue", "show", "0000000000000")
        assert p.returncode == 1, p


def test_requeue_and_flush_of_one_domain():
    conf = "[Queue]\nMinBackoff = 1h\nMaxBackoff = 2h\n"
    with harness.Tern(conf=conf, start=("queued", "deliverd")) as t:
        blocker = block_maildir(t)
        with connect(t) as c:
            q1 = submit(c, "a@example.org", [f"{t.user}@{t.domain}"], BODY)
            q2 = submit(c, "a@example.org", [f"{t.user}@localhost"], BODY)
        t.wait_until(lambda: states(t) == {q1: "deferred", q2: "deferred"},
                     what="both messages deferred")
        os.unlink(blocker)
        p = ctl(t, "queue", "flush", "--domain", "LOCALHOST")
        assert (p.returncode, p.stdout) == (0, b"flush: 1 deferred message due now\n"), p
        t.wait_until(lambda: len(t.delivered()) == 1, what="the localhost message delivered")
        t.wait_until(lambda: states(t) == {q1: "deferred"}, what="only the other one left")
        p = ctl(t, "queue", "requeue", q1)
        assert (p.returncode, p.stdout) == (0, b"requeue: 1 message requeued\n"), p
        t.wait_until(lambda: len(t.delivered()) == 2, what="the requeued message delivered")
        t.wait_until(lambda: t.queue_files() == [], what="the queue to empty")


def test_only_root_or_the_queue_owner_may_change_the_queue():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        raise harness.Skip("needs root and setpriv to act as another user")
    nobody = pwd.getpwnam("nobody").pw_uid
    with harness.Tern(start=("queued",)) as t:
        with connect(t) as c:
            qid = submit(c, "a@example.org", [f"{t.user}@{t.domain}"], BODY)
        for verb in ("hold", "delete", "requeue", "release"):
            p = ctl(t, "queue", verb, qid, user=nobody)
            assert p.returncode == 1, p
            assert p.stderr == (b"ternctl: Permission denied: only root and the queue's owner "
                                b"may change the queue\n"), p
        p = ctl(t, "queue", "show", qid, user=nobody)
        assert p.returncode == 1 and b"Permission denied" in p.stderr, p
        p = ctl(t, "queue", "--json", user=nobody)
        assert p.returncode == 0 and [e["id"] for e in json.loads(p.stdout)] == [qid], p
        assert states(t) == {qid: "active"}


if __name__ == "__main__":
    harness.main(globals())
