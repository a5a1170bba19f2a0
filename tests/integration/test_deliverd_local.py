#!/usr/bin/env python3
"""deliverd's dispatcher and local transport to Maildir, driven directly over
its socket as queued would drive it (ternipc.py), plus one message through
smtpd and queued when they are built: results, logs, and the delivered bytes
are checked exactly."""

import os
import re
import signal
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import ternipc as ipc  # noqa: E402

SENDER = "sender@example.org"
BODY = (b"From: Sender <sender@example.org>\r\n"
        b"To: someone\r\n"
        b"Subject: local delivery\r\n"
        b"\r\n"
        b"first line\r\n"
        b"From the middle (not quoted in Maildir)\r\n"
        b"bare\rCR stays\r\n"
        b"\r\n"
        b"last line\r\n")
MAILDIR_NAME = re.compile(r"^\d+\.M\d+P\d+Q\d+\.mx\.test\.example$")


def stored(sender, rcpt, body):
    return (f"Return-Path: <{sender}>\nDelivered-To: {rcpt}\n".encode()
            + body.replace(b"\r\n", b"\n"))


def spool(t, rcpts, body=BODY, sender=SENDER, **kw):
    """Writes a spool file for rcpts; returns (queue id, open read-only fd)."""
    qid = ipc.new_queue_id()
    path = os.path.join(t.dir, f"job-{qid}")
    ipc.write_spool_file(path, qid, sender, rcpts, body, **kw)
    return qid, os.open(path, os.O_RDONLY)


def deliver(conn, qid, fd, job, indexes):
    fields = [(ipc.F_QUEUE_ID, qid), (ipc.F_JOB, job)]
    fields += [(ipc.F_RCPT_INDEX, i) for i in indexes]
    conn.send(ipc.DELIVER, fields, fd=fd)
    os.close(fd)


def collect(conn, job):
    """RESULT frames of job until its JOB_DONE: {index: (status, dsn, relay, text)}."""
    results = {}
    while True:
        m = conn.recv()
        assert m is not None, "deliverd closed the connection"
        assert m.u64(ipc.F_JOB) == job, m
        if m.type == ipc.JOB_DONE:
            return results
        assert m.type == ipc.RESULT, m
        idx = m.u64(ipc.F_RCPT_INDEX)
        assert idx not in results, f"two results for {idx}"
        results[idx] = (m.u64(ipc.F_STATUS), m.str(ipc.F_DSN), m.str(ipc.F_RELAY), m.str(ipc.F_TEXT))


def connect(t):
    c = ipc.Conn(t.deliverd_socket)
    c.hello("queued")
    return c


def test_maildir_delivery_is_byte_exact_and_unknown_user_bounces():
    with harness.Tern(start=("deliverd",)) as t:
        rcpt = f"{t.user}@{t.domain}"
        qid, fd = spool(t, [rcpt, "no-such-user-x7@test.example"])
        with connect(t) as c:
            deliver(c, qid, fd, 7, [0, 1])
            res = collect(c, 7)
        assert res == {
            0: (ipc.DELIVERED, "2.0.0", "local", "delivered to maildir"),
            1: (ipc.BOUNCED, "5.1.1", "local", 'unknown user: "no-such-user-x7"'),
        }, res
        new = os.path.join(t.maildir(), "new")
        names = os.listdir(new)
        assert len(names) == 1 and MAILDIR_NAME.match(names[0]), names
        assert t.delivered() == [stored(SENDER, rcpt, BODY)], t.delivered()
        assert os.listdir(os.path.join(t.maildir(), "tmp")) == []
        assert os.path.isdir(os.path.join(t.maildir(), "cur"))
        assert os.stat(t.maildir()).st_mode & 0o777 == 0o700
        assert os.stat(os.path.join(new, names[0])).st_mode & 0o777 == 0o600
        log = t.log("deliverd")
        assert re.search(rf"{qid}: to=<{re.escape(rcpt)}>, relay=local, delay=\d+\.\d\d, "
                         r"dsn=2\.0\.0, status=sent \(delivered to maildir\)", log), log
        assert re.search(rf"{qid}: to=<no-such-user-x7@test\.example>, relay=local, "
                         r"delay=\d+\.\d\d, dsn=5\.1\.1, status=bounced "
                         r"\(unknown user: \"no-such-user-x7\"\)", log), log


def test_null_sender_uppercase_local_part_and_bare_user():
    with harness.Tern(start=("deliverd",)) as t:
        rcpts = [f"{t.user.upper()}@{t.domain.upper()}", t.user]
        qid, fd = spool(t, rcpts, sender="")
        with connect(t) as c:
            deliver(c, qid, fd, 1, [1, 0])
            res = collect(c, 1)
        assert res == {0: (ipc.DELIVERED, "2.0.0", "local", "delivered to maildir"),
                       1: (ipc.DELIVERED, "2.0.0", "local", "delivered to maildir")}, res
        got = sorted(t.delivered())
        assert got == sorted([stored("", r, BODY) for r in rcpts]), got


def test_postmaster_is_root():
    with harness.Tern(start=("deliverd",)) as t:
        qid, fd = spool(t, ["Postmaster@localhost"])
        with connect(t) as c:
            deliver(c, qid, fd, 3, [0])
            res = collect(c, 3)
        if os.geteuid() == 0:
            assert res == {0: (ipc.DELIVERED, "2.0.0", "local", "delivered to maildir")}, res
            assert t.delivered("root") == [stored(SENDER, "Postmaster@localhost", BODY)]
        else:
            assert res == {0: (ipc.DEFERRED, "4.3.0", "local",
                               'cannot change to user "root" (not running as root)')}, res


def test_child_writes_as_the_recipient_without_dac_override():
    if os.geteuid() != 0:
        raise harness.Skip("needs root to deliver to another user")
    import pwd
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        raise harness.Skip("no user nobody")
    with harness.Tern(start=("deliverd",)) as t:
        # t.dir/mail is root's 0755: the child, being nobody, cannot create
        # nobody/Maildir there; deliverd as root could.
        qid, fd = spool(t, ["nobody@localhost"])
        with connect(t) as c:
            deliver(c, qid, os.dup(fd), 1, [0])
            res = collect(c, 1)
            maildir = t.maildir("nobody")
            assert res == {0: (ipc.DEFERRED, "4.2.0", "local",
                               f'cannot create maildir "{maildir}/": Permission denied')}, res
            os.makedirs(os.path.dirname(maildir))
            os.chown(os.path.dirname(maildir), nobody.pw_uid, nobody.pw_gid)
            deliver(c, qid, fd, 2, [0])
            assert collect(c, 2) == {0: (ipc.DELIVERED, "2.0.0", "local", "delivered to maildir")}
        new = os.path.join(maildir, "new")
        (name,) = os.listdir(new)
        st = os.stat(os.path.join(new, name))
        assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid), st
        assert t.delivered("nobody") == [stored(SENDER, "nobody@localhost", BODY)]


def test_not_root_delivers_only_to_its_own_user():
    if os.geteuid() != 0:
        raise harness.Skip("needs root to start deliverd as another user")
    import pwd
    import subprocess
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        raise harness.Skip("no user nobody")
    with harness.Tern(start=()) as t:
        os.chown(t.run_dir, nobody.pw_uid, nobody.pw_gid)
        os.makedirs(os.path.join(t.mail_dir, "nobody"))
        os.chown(os.path.join(t.mail_dir, "nobody"), nobody.pw_uid, nobody.pw_gid)
        with t._logfile("deliverd") as log:
            t.procs["deliverd"] = subprocess.Popen(
                [harness.binary("deliverd/tern-deliverd"), "-c", t.conf_path], env=t.env,
                user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        t.wait_until(lambda: t._seqpacket_accepts(t.deliverd_socket) or t._died("deliverd"),
                     what="deliverd listening")
        assert os.stat(t.deliverd_socket).st_mode & 0o777 == 0o600
        qid, fd = spool(t, [f"root@{t.domain}", "nobody@localhost"])
        with connect(t) as c:
            deliver(c, qid, fd, 1, [0, 1])
            res = collect(c, 1)
        assert res == {
            0: (ipc.DEFERRED, "4.3.0", "local", 'cannot change to user "root" (not running as root)'),
            1: (ipc.DELIVERED, "2.0.0", "local", "delivered to maildir"),
        }, res
        assert t.delivered("nobody") == [stored(SENDER, "nobody@localhost", BODY)]


def test_other_users_are_refused_by_credentials():
    if os.geteuid() != 0:
        raise harness.Skip("needs root to connect as another user")
    import subprocess
    with harness.Tern(start=("deliverd",)) as t:
        # The socket's mode is the first barrier; open it to test the second.
        os.chmod(t.deliverd_socket, 0o666)
        script = ("import socket, struct, sys\n"
                  "s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
                  "s.connect(sys.argv[1])\n"
                  "hello = struct.pack('<HHIQHI', 1, 1, 8, 1, 2, 6) + b'queued'\n"
                  "try:\n"
                  "    s.send(hello)\n"
                  "    print('EOF' if s.recv(65536) == b'' else 'ANSWERED')\n"
                  "except (ConnectionResetError, BrokenPipeError):\n"
                  "    print('EOF')\n")
        py = "/usr/bin/python3"
        if not os.access(py, os.X_OK):
            raise harness.Skip("no system python3 that user nobody can run")
        out = subprocess.run([py, "-c", script, t.deliverd_socket], user="nobody",
                             capture_output=True, timeout=30)
        assert out.stdout == b"EOF\n", out
        assert "Refusing connection from uid" in t.log("deliverd")


def test_remote_recipient_goes_to_the_smtp_transport():
    # A relay host on a closed port: the SMTP transport (or, in a build
    # without it, the dispatcher) defers with a 4.x.x code.
    port = harness.free_port()
    with harness.Tern(conf=f"[Delivery]\nRelayHost = [127.0.0.1]:{port}\n",
                      start=("deliverd",)) as t:
        qid, fd = spool(t, ["someone@example.net", f"{t.user}@{t.domain}"])
        with connect(t) as c:
            deliver(c, qid, fd, 4, [0, 1])
            res = collect(c, 4)
        assert res[1] == (ipc.DELIVERED, "2.0.0", "local", "delivered to maildir"), res
        status, dsn, relay, text = res[0]
        assert status == ipc.DEFERRED and dsn.startswith("4."), res
        assert len(t.delivered()) == 1


def socket_uid(port):
    """uid owning the local TCP socket bound to 127.0.0.1:port (from /proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port:
                return int(fields[7])
    return None


def test_remote_delivery_runs_unprivileged():
    import socket
    import threading
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    seen = {}

    def serve():
        conn, peer = srv.accept()
        seen["uid"] = socket_uid(peer[1])
        f = conn.makefile("rb")
        conn.sendall(b"220 sink ESMTP\r\n")
        while True:
            line = f.readline()
            if not line:
                break
            verb = line[:4].upper()
            if verb == b"DATA":
                conn.sendall(b"354 go\r\n")
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    chunk = f.readline()
                    if not chunk:
                        break
                    data += chunk
                seen["data"] = data
                conn.sendall(b"250 2.0.0 Ok: queued\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                break
            else:
                conn.sendall(b"250 ok\r\n")
        conn.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        with harness.Tern(conf=f"[Delivery]\nRelayHost = [127.0.0.1]:{port}\n",
                          start=("deliverd",)) as t:
            # (No bare CR: the SMTP client is free to normalise it.)
            body = BODY.replace(b"bare\rCR", b"bare CR")
            qid, fd = spool(t, ["someone@example.net"], body=body)
            with connect(t) as c:
                deliver(c, qid, fd, 4, [0])
                res = collect(c, 4)
            if res[0][3] == "remote delivery not available in this build":
                raise harness.Skip("built without the SMTP transport")
            assert res[0][:2] == (ipc.DELIVERED, "2.0.0"), res
            th.join(10)
            assert seen["data"] == body + b".\r\n", seen
            if os.geteuid() == 0:
                import pwd
                assert seen["uid"] == pwd.getpwnam("nobody").pw_uid, seen
    finally:
        srv.close()


def test_bad_frames_close_the_connection():
    with harness.Tern(start=("deliverd",)) as t:
        pid = t.procs["deliverd"].pid
        # The socket accepts before the sandbox and the event loop are set up:
        # count once deliverd says it is ready.
        t.wait_until(lambda: "Ready, delivering" in t.log("deliverd"), what="deliverd ready")
        fds_before = len(os.listdir(f"/proc/{pid}/fd"))
        qid, fd = spool(t, [f"{t.user}@{t.domain}"])
        # A HELLO carrying a file descriptor.
        with ipc.Conn(t.deliverd_socket) as c:
            c.send(ipc.HELLO, [(ipc.F_VERSION, ipc.VERSION), (ipc.F_ROLE, "queued")],
                   fd=os.dup(fd))
            assert c.recv() is None
        # A job before HELLO.
        with ipc.Conn(t.deliverd_socket) as c:
            deliver(c, qid, os.dup(fd), 1, [0])
            assert c.recv() is None
        # Wrong role.
        with ipc.Conn(t.deliverd_socket) as c:
            c.send(ipc.HELLO, [(ipc.F_VERSION, ipc.VERSION), (ipc.F_ROLE, "smtpd")])
            assert c.recv() is None
        # Wrong version.
        with ipc.Conn(t.deliverd_socket) as c:
            c.send(ipc.HELLO, [(ipc.F_VERSION, 99), (ipc.F_ROLE, "queued")])
            assert c.recv() is None
        # A truncated field.
        with connect(t) as c:
            c.send_raw(ipc.encode(ipc.DELIVER, [(ipc.F_JOB, 1)])[:-3])
            assert c.recv() is None
        # A bad queue id, a missing fd, no recipient index, an unknown field.
        for fields, with_fd in (
                ([(ipc.F_QUEUE_ID, "../../etc"), (ipc.F_JOB, 1), (ipc.F_RCPT_INDEX, 0)], True),
                ([(ipc.F_QUEUE_ID, qid), (ipc.F_JOB, 1), (ipc.F_RCPT_INDEX, 0)], False),
                ([(ipc.F_QUEUE_ID, qid), (ipc.F_JOB, 1)], True),
                ([(ipc.F_QUEUE_ID, qid), (ipc.F_JOB, 1), (ipc.F_RCPT_INDEX, 0),
                  (ipc.F_TEXT, "x")], True)):
            with connect(t) as c:
                c.send(ipc.DELIVER, fields, fd=os.dup(fd) if with_fd else None)
                assert c.recv() is None, fields
        os.close(fd)
        assert t.delivered() == []
        assert t.procs["deliverd"].poll() is None
        # Every passed descriptor and connection was closed.
        # "<=": the harness's readiness probe connection may still have been open
        # when fds_before was counted; a leak would leave more, never fewer.
        t.wait_until(lambda: len(os.listdir(f"/proc/{pid}/fd")) <= fds_before,
                     what="deliverd back to its descriptors")


def test_bad_jobs_end_without_results_and_the_connection_stays():
    with harness.Tern(start=("deliverd",)) as t:
        rcpt = f"{t.user}@{t.domain}"
        qid, fd = spool(t, [rcpt])
        other, fd2 = spool(t, [rcpt])
        garbage = os.path.join(t.dir, "garbage")
        with open(garbage, "wb") as f:
            f.write(b"not a cdb file" * 300)
        with connect(t) as c:
            deliver(c, qid, os.dup(fd), 1, [1])          # index out of range
            assert collect(c, 1) == {}
            deliver(c, qid, os.dup(fd), 2, [0, 0])       # duplicate index
            assert collect(c, 2) == {}
            deliver(c, other, os.dup(fd), 3, [0])        # id does not match the file
            assert collect(c, 3) == {}
            deliver(c, qid, os.open(garbage, os.O_RDONLY), 4, [0])
            assert collect(c, 4) == {}
            deliver(c, qid, fd, 5, [0])                  # and a good one still works
            assert collect(c, 5) == {0: (ipc.DELIVERED, "2.0.0", "local",
                                         "delivered to maildir")}
        os.close(fd2)
        assert len(t.delivered()) == 1


def test_many_jobs_on_two_connections():
    with harness.Tern(conf="[Queue]\nDeliveryConcurrency = 3\n", start=("deliverd",)) as t:
        rcpt = f"{t.user}@{t.domain}"
        c1, c2 = connect(t), connect(t)
        try:
            bodies = {}
            for job in range(1, 21):
                body = BODY + f"job {job}\r\n".encode()
                qid, fd = spool(t, [rcpt], body=body)
                bodies[job] = body
                deliver(c1 if job % 2 else c2, qid, fd, job, [0])
            done = {}
            for c, jobs in ((c1, range(1, 21, 2)), (c2, range(2, 21, 2))):
                pending = set(jobs)
                results = {}
                while pending:
                    m = c.recv()
                    assert m is not None
                    job = m.u64(ipc.F_JOB)
                    if m.type == ipc.JOB_DONE:
                        pending.remove(job)
                        done[job] = results.pop(job, None)
                    else:
                        results[job] = m.u64(ipc.F_STATUS)
            assert done == {j: ipc.DELIVERED for j in range(1, 21)}, done
            assert sorted(t.delivered()) == sorted(stored(SENDER, rcpt, b) for b in bodies.values())
        finally:
            c1.close()
            c2.close()


def test_sigterm_lets_running_workers_finish():
    import fcntl
    with harness.Tern(conf=f"[Local]\nMailboxFormat = mbox\n",
                      start=()) as t:
        mbox = os.path.join(t.dir, "mail", f"{t.user}.mbox")
        with open(os.path.join(t.conf_path + ".d", "60-mbox.conf"), "w") as f:
            f.write(f"[Local]\nMailboxPath = {t.dir}/mail/%u.mbox\n")
        t.start("deliverd")
        rcpt = f"{t.user}@{t.domain}"
        qid, fd = spool(t, [rcpt])
        holder = open(mbox, "ab")
        fcntl.lockf(holder, fcntl.LOCK_EX)
        with connect(t) as c:
            deliver(c, qid, fd, 9, [0])
            # The worker's child holds the dot-lock and waits for our fcntl lock.
            t.wait_until(lambda: os.path.exists(mbox + ".lock"), what="dot-lock taken")
            t.procs["deliverd"].send_signal(signal.SIGTERM)
            t.wait_until(lambda: not t._seqpacket_accepts(t.deliverd_socket) or
                         "Stopping" in t.log("deliverd"), what="deliverd stopping")
            assert t.procs["deliverd"].poll() is None, "deliverd exited before its worker"
            fcntl.lockf(holder, fcntl.LOCK_UN)
            holder.close()
            assert collect(c, 9) == {0: (ipc.DELIVERED, "2.0.0", "local", "delivered to mailbox")}
        assert t.procs["deliverd"].wait(20) == 0
        t.procs.pop("deliverd")
        with open(mbox, "rb") as f:
            assert f.read().count(b"\nDelivered-To: " + rcpt.encode() + b"\n") == 1
        assert not os.path.exists(mbox + ".lock")


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def workers(t):
    """deliverd's job workers: its children except the local-delivery helper."""
    return [p for p in children(t.procs["deliverd"].pid) if comm(p) != "deliverd-local"]


def delivery_children(t):
    """The processes that became a recipient: under the worker when deliverd
    is not root, under the privileged helper's per-job child when it is."""
    out = []
    for p in children(t.procs["deliverd"].pid):
        if comm(p) == "deliverd-local":
            for serving in children(p):
                out += children(serving)
        else:
            out += children(p)
    return out


def gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def test_killed_worker_gets_job_done_from_the_parent_and_writes_nothing():
    import fcntl
    with harness.Tern(conf="[Local]\nMailboxFormat = mbox\n", start=()) as t:
        mbox = os.path.join(t.dir, "mail", f"{t.user}.mbox")
        with open(os.path.join(t.conf_path + ".d", "60-mbox.conf"), "w") as f:
            f.write(f"[Local]\nMailboxPath = {t.dir}/mail/%u.mbox\n")
        t.start("deliverd")
        qid, fd = spool(t, [f"{t.user}@{t.domain}"])
        holder = open(mbox, "ab")
        fcntl.lockf(holder, fcntl.LOCK_EX)
        with connect(t) as c:
            deliver(c, qid, fd, 5, [0])
            t.wait_until(lambda: os.path.exists(mbox + ".lock"), what="dot-lock taken")
            (worker,) = workers(t)
            (child,) = delivery_children(t)
            os.kill(worker, signal.SIGKILL)
            assert collect(c, 5) == {}
            t.wait_until(lambda: gone(child), what="the delivery child to die with its worker")
            fcntl.lockf(holder, fcntl.LOCK_UN)
            holder.close()
            # deliverd is still serving.
            qid2, fd2 = spool(t, [f"{t.user}@{t.domain}"])
            os.unlink(mbox + ".lock")  # left by the killed child, as after any kill -9
            deliver(c, qid2, fd2, 6, [0])
            assert collect(c, 6) == {0: (ipc.DELIVERED, "2.0.0", "local", "delivered to mailbox")}
        with open(mbox, "rb") as f:
            assert f.read().count(b"\nReturn-Path: ") == 1
        t.wait_until(lambda: f"delivery worker {worker} was killed by signal 9" in t.log("deliverd"),
                     what="the killed worker logged")


def test_stuck_delivery_child_is_killed_at_the_time_limit():
    import fcntl
    with harness.Tern(conf="[Local]\nMailboxFormat = mbox\nLocalDeliveryTimeout = 1\n",
                      start=()) as t:
        mbox = os.path.join(t.dir, "mail", f"{t.user}.mbox")
        with open(os.path.join(t.conf_path + ".d", "60-mbox.conf"), "w") as f:
            f.write(f"[Local]\nMailboxPath = {t.dir}/mail/%u.mbox\n")
        t.start("deliverd")
        qid, fd = spool(t, [f"{t.user}@{t.domain}"])
        with open(mbox, "ab") as holder:
            fcntl.lockf(holder, fcntl.LOCK_EX)
            with connect(t) as c:
                deliver(c, qid, fd, 5, [0])
                t.wait_until(lambda: os.path.exists(mbox + ".lock"), what="dot-lock taken")
                (child,) = delivery_children(t)
                # Stopped, its own alarm cannot run: the worker's deadline must.
                os.kill(child, signal.SIGSTOP)
                assert collect(c, 5) == {0: (ipc.DEFERRED, "4.3.0", "local", "delivery timed out")}
                assert gone(child)
        assert os.path.getsize(mbox) == 0


def test_waiting_jobs_are_bounded_and_end_at_sigterm():
    import fcntl
    with harness.Tern(conf="[Queue]\nDeliveryConcurrency = 1\n[Local]\nMailboxFormat = mbox\n",
                      start=()) as t:
        mbox = os.path.join(t.dir, "mail", f"{t.user}.mbox")
        with open(os.path.join(t.conf_path + ".d", "60-mbox.conf"), "w") as f:
            f.write(f"[Local]\nMailboxPath = {t.dir}/mail/%u.mbox\n")
        t.start("deliverd")
        qid, fd = spool(t, [f"{t.user}@{t.domain}"])
        holder = open(mbox, "ab")
        fcntl.lockf(holder, fcntl.LOCK_EX)
        with connect(t) as c:
            deliver(c, qid, os.dup(fd), 1, [0])          # runs, waits for the lock
            t.wait_until(lambda: os.path.exists(mbox + ".lock"), what="dot-lock taken")
            for job in range(2, 2 + 512):                  # wait for the one worker
                deliver(c, qid, os.dup(fd), job, [0])
            deliver(c, qid, fd, 999, [0])                  # one too many: ends at once
            assert collect(c, 999) == {}
            t.procs["deliverd"].send_signal(signal.SIGTERM)
            ended = set()
            while len(ended) < 512:                        # waiting jobs end without results
                m = c.recv()
                assert m is not None and m.type == ipc.JOB_DONE, m
                ended.add(m.u64(ipc.F_JOB))
            assert ended == set(range(2, 2 + 512))
            fcntl.lockf(holder, fcntl.LOCK_UN)
            holder.close()
            assert collect(c, 1) == {0: (ipc.DELIVERED, "2.0.0", "local", "delivered to mailbox")}
        assert t.procs.pop("deliverd").wait(20) == 0
        assert "512 jobs already wait for a worker, deferring job 999" in t.log("deliverd")


def test_capabilities_are_reduced():
    # The main process (and so every worker and the SMTP client) keeps no
    # capability; only the local-delivery helper keeps what becoming the
    # recipient needs.
    if os.geteuid() != 0:
        raise harness.Skip("deliverd keeps no capabilities to reduce when not root")
    with harness.Tern(start=("deliverd",)) as t:
        def status(pid):
            with open(f"/proc/{pid}/status") as f:
                return dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
        # The socket accepts before the sandbox is entered: read once ready.
        t.wait_until(lambda: "Ready, delivering" in t.log("deliverd"), what="deliverd ready")
        main = status(t.procs["deliverd"].pid)
        assert int(main["CapEff"], 16) == 0, main
        assert int(main["CapPrm"], 16) == 0, main
        assert int(main["CapAmb"], 16) == 0, main
        assert main["NoNewPrivs"].strip() == "1", main
        (helper,) = [p for p in children(t.procs["deliverd"].pid) if comm(p) == "deliverd-local"]
        h = status(helper)
        want = (1 << 6) | (1 << 7) | (1 << 5)   # CAP_SETGID, CAP_SETUID, CAP_KILL
        assert int(h["CapBnd"], 16) == want, h
        assert int(h["CapEff"], 16) == want, h
        assert int(h["CapPrm"], 16) == want, h


def test_deliverd_exits_when_its_local_helper_dies():
    # Without the helper no local delivery can succeed and nothing without
    # capabilities can start it again: deliverd ends with a failure, for
    # systemd to restart it.
    if os.geteuid() != 0:
        raise harness.Skip("the helper exists only when deliverd runs as root")
    with harness.Tern(start=("deliverd",)) as t:
        t.wait_until(lambda: "Ready, delivering" in t.log("deliverd"), what="deliverd ready")
        (helper,) = [p for p in children(t.procs["deliverd"].pid) if comm(p) == "deliverd-local"]
        os.kill(helper, signal.SIGKILL)
        assert t.procs["deliverd"].wait(20) == 1
        t.procs.pop("deliverd")
        assert "The local-delivery helper exited; stopping so that deliverd is started anew" \
            in t.log("deliverd")


def test_smtp_to_maildir_end_to_end():
    with harness.Tern() as t:
        rcpt = f"{t.user}@{t.domain}"
        body = BODY.replace(b"bare\rCR", b"bare CR")  # smtpd refuses a bare CR
        with t.smtp() as s:
            s.sendmail(SENDER, [rcpt], body)
        t.wait_until(lambda: len(t.delivered()) == 1, what="delivery to the Maildir")
        msg = t.delivered()[0]
        head = f"Return-Path: <{SENDER}>\nDelivered-To: {rcpt}\n".encode()
        assert msg.startswith(head), msg
        rest = msg[len(head):]
        # smtpd's Received: header (folded lines start with white space), then our bytes.
        assert rest.startswith(b"Received: "), rest
        lines = rest.split(b"\n")
        i = 1
        while lines[i][:1] in (b" ", b"\t"):
            i += 1
        assert b"\n".join(lines[i:]) == body.replace(b"\r\n", b"\n"), rest


if __name__ == "__main__":
    harness.main(globals())
