#!/usr/bin/env python3
"""tern-queued takes messages over IPC: QUEUED only once the message is a valid
spool file in queue/, unknown local users get 550 5.1.1, client fields are
recorded only for trusted peers, bad frames close one peer only."""

import os
import harness
import ternipc as ipc
from queued_util import cdb_read, connect, expect, queue_list, spool_path, submit

BODY = b"Received: from client.test\r\nSubject: hi\r\n\r\nhello\r\n"


def test_queued_message_is_a_valid_spool_file():
    with harness.Tern(start=("queued",)) as t:
        with connect(t) as c:
            qid = submit(c, "alice@remote.example", [f"{t.user}@{t.domain}", "bob@remote.example"],
                         BODY, [(ipc.F_CLIENT_ADDR, "192.0.2.7"), (ipc.F_CLIENT_NAME, "client.test"),
                                (ipc.F_HELO, "client.test"), (ipc.F_PROTO, "ESMTP")])
            # QUEUED came: the file is in place now, not eventually.
            path = spool_path(t, "queue", qid)
            assert os.path.exists(path), path
            kv = cdb_read(path)
        assert kv["version"] == b"1"
        assert kv["id"] == qid.encode()
        assert kv["sender"] == b"alice@remote.example"
        assert kv["rcpt_count"] == b"2"
        assert kv["rcpt.0"] == f"{t.user}@{t.domain}".encode()
        assert kv["rcpt.1"] == b"bob@remote.example"
        assert kv["body"] == BODY
        assert kv["size"] == str(len(BODY)).encode()
        assert kv["client_addr"] == b"192.0.2.7"
        assert kv["helo"] == b"client.test"
        assert kv["proto"] == b"ESMTP"
        assert "submit_uid" not in kv
        assert os.listdir(spool_path(t, "tmp")) == []
        assert f"{qid}: from=<alice@remote.example>, size={len(BODY)}, nrcpt=2 (queue active)" \
            in t.log("queued")


def test_unknown_local_user_gets_550_5_1_1():
    with harness.Tern(start=("queued",)) as t:
        with connect(t) as c:
            c.send(ipc.MSG_BEGIN, [(ipc.F_SENDER, "")])
            expect(c.recv(), ipc.MSG_BEGUN)
            c.send(ipc.MSG_RCPT, [(ipc.F_RCPT, f"nosuchuser@{t.domain}")])
            m = expect(c.recv(), ipc.ERROR)
            assert m.u64(ipc.F_CODE) == 550
            assert m.str(ipc.F_DSN) == "5.1.1"
            assert m.str(ipc.F_TEXT) == (f"<nosuchuser@{t.domain}>: Recipient address rejected: "
                                         "User unknown in local recipient table")
            # Case does not matter for local users; postmaster always exists;
            # remote domains are smtpd's decision; no domain means local.
            for rcpt in (f"{t.user.upper()}@{t.domain}", "Postmaster@localhost",
                         "someone@remote.example", t.user):
                c.send(ipc.MSG_RCPT, [(ipc.F_RCPT, rcpt)])
                expect(c.recv(), ipc.MSG_RCPT_OK)
            c.send(ipc.MSG_RCPT, [(ipc.F_RCPT, "nosuchuser")])
            assert expect(c.recv(), ipc.ERROR).u64(ipc.F_CODE) == 550
            c.send(ipc.MSG_DATA, [(ipc.F_DATA, BODY)])
            c.send(ipc.MSG_END, [])
            qid = expect(c.recv(), ipc.MSG_QUEUED).str(ipc.F_QUEUE_ID)
        kv = cdb_read(spool_path(t, "queue", qid))
        assert kv["rcpt_count"] == b"4", kv
        assert kv["sender"] == b""


def test_abort_and_errors_leave_nothing():
    conf = "[SMTP]\nMessageSizeLimit = 2048\n"
    with harness.Tern(conf=conf, start=("queued",)) as t:
        with connect(t) as c:
            c.send(ipc.MSG_BEGIN, [(ipc.F_SENDER, "a@remote.example")])
            expect(c.recv(), ipc.MSG_BEGUN)
            c.send(ipc.MSG_RCPT, [(ipc.F_RCPT, f"{t.user}@{t.domain}")])
            expect(c.recv(), ipc.MSG_RCPT_OK)
            c.send(ipc.MSG_DATA, [(ipc.F_DATA, BODY)])
            c.send(ipc.MSG_ABORT, [])
            # Too big: the rest of DATA is read, the answer comes at END.
            c.send(ipc.MSG_BEGIN, [(ipc.F_SENDER, "a@remote.example")])
            expect(c.recv(), ipc.MSG_BEGUN)
            c.send(ipc.MSG_RCPT, [(ipc.F_RCPT, f"{t.user}@{t.domain}")])
            expect(c.recv(), ipc.MSG_RCPT_OK)
            for _ in range(3):
                c.send(ipc.MSG_DATA, [(ipc.F_DATA, b"x" * 60000)])
            c.send(ipc.MSG_END, [])
            m = expect(c.recv(), ipc.ERROR)
            assert (m.u64(ipc.F_CODE), m.str(ipc.F_DSN)) == (552, "5.3.4"), m
            # No recipients.
            c.send(ipc.MSG_BEGIN, [(ipc.F_SENDER, "a@remote.example")])
            expect(c.recv(), ipc.MSG_BEGUN)
            c.send(ipc.MSG_END, [])
            assert expect(c.recv(), ipc.ERROR).u64(ipc.F_CODE) == 554
            # The connection still works for a good message.
            qid = submit(c, "a@remote.example", [f"{t.user}@{t.domain}"], BODY)
        assert t.queue_files() == [qid]
        assert os.listdir(spool_path(t, "tmp")) == []


def test_bad_frames_close_only_that_peer():
    with harness.Tern(start=("queued",)) as t:
        bad = [
            b"\x01",                                           # short frame
            ipc.encode(ipc.MSG_BEGIN, [(ipc.F_SENDER, "a@b")]),  # before HELLO
            ipc.encode(ipc.HELLO, [(ipc.F_VERSION, 99), (ipc.F_ROLE, "smtpd")]),
            ipc.encode(999, []),
        ]
        for frame in bad:
            with ipc.Conn(t.queued_socket) as c:
                c.send_raw(frame)
                assert c.recv() is None, frame
        for frame in (ipc.encode(ipc.MSG_RCPT, [(ipc.F_RCPT, "x@y")]),      # no transaction
                      ipc.encode(ipc.MSG_END, []),
                      ipc.encode(ipc.HELLO, [(ipc.F_VERSION, 1)]),            # second HELLO
                      ipc.encode(ipc.MSG_BEGIN, [(ipc.F_SENDER, "a\nb@c")]),  # control character
                      ipc.encode(ipc.MSG_BEGIN, [(ipc.F_RCPT, "a@c")])):      # no SENDER
            with connect(t) as c:
                c.send_raw(frame)
                assert c.recv() is None, frame
        with connect(t) as c:
            qid = submit(c, "a@remote.example", [f"{t.user}@{t.domain}"], BODY)
        assert t.queue_files() == [qid]
        assert t.procs["queued"].poll() is None


def submit_as(uid, gid, path):
    """Forks a child that becomes uid and submits; returns the queue id."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(rfd)
            os.setgid(gid)
            os.setuid(uid)
            c = ipc.Conn(path)
            c.hello("sendmail")
            c.send(ipc.MSG_BEGIN, [(ipc.F_SENDER, "nobody@remote.example"),
                                   (ipc.F_CLIENT_ADDR, "192.0.2.66"), (ipc.F_HELO, "forged"),
                                   (ipc.F_PROTO, "ESMTPA"), (ipc.F_AUTH_USER, "root")])
            qid = expect(c.recv(), ipc.MSG_BEGUN).str(ipc.F_QUEUE_ID)
            c.send(ipc.MSG_RCPT, [(ipc.F_RCPT, "x@remote.example")])
            expect(c.recv(), ipc.MSG_RCPT_OK)
            c.send(ipc.MSG_DATA, [(ipc.F_DATA, b"Subject: x\r\n\r\nx\r\n")])
            c.send(ipc.MSG_END, [])
            expect(c.recv(), ipc.MSG_QUEUED)
            os.write(wfd, qid.encode())
            code = 0
        finally:
            os._exit(code)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        qid = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert status == 0 and qid, status
    return qid


def test_local_submitter_fields_come_from_the_kernel():
    if os.geteuid() != 0:
        raise harness.Skip("needs root to submit as another user")
    import pwd
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        raise harness.Skip("no user nobody")
    with harness.Tern(start=("queued",)) as t:
        os.chmod(t.run_dir, 0o755)

        qid = submit_as(nobody.pw_uid, nobody.pw_gid, t.queued_socket)
        kv = cdb_read(spool_path(t, "queue", qid))
        assert kv["submit_uid"] == str(nobody.pw_uid).encode(), kv
        assert kv["proto"] == b"local"
        for k in ("client_addr", "helo", "auth_user"):
            assert k not in kv, (k, kv)
        assert f"{qid}: uid={nobody.pw_uid} (nobody) from=<nobody@remote.example>" in t.log("queued")


def test_queue_list_and_flush():
    with harness.Tern(start=("queued",)) as t:
        with connect(t) as c:
            qid = submit(c, "alice@remote.example", [f"{t.user}@{t.domain}"], BODY)
        entries = queue_list(t)
        assert len(entries) == 1, entries
        e = entries[0]
        assert e.str(ipc.F_QUEUE_ID) == qid
        assert e.str(ipc.F_STATE) == "active"
        assert e.str(ipc.F_SENDER) == "alice@remote.example"
        assert e.u64(ipc.F_SIZE) == len(BODY)
        assert e.u64(ipc.F_ARRIVAL) > 0
        assert [v.decode() for tag, v in e.fields if tag == ipc.F_RCPT] == [f"{t.user}@{t.domain}"]
        with connect(t, "ctl") as c:
            c.send(ipc.QUEUE_FLUSH, [])
            expect(c.recv(), ipc.QUEUE_END)
            c.send(ipc.QUEUE_FLUSH, [(ipc.F_QUEUE_ID, qid)])
            expect(c.recv(), ipc.QUEUE_END)
            c.send(ipc.QUEUE_FLUSH, [(ipc.F_QUEUE_ID, "0000000000000")])
            assert expect(c.recv(), ipc.ERROR).str(ipc.F_TEXT) == \
                "0000000000000: no such message in the queue"
        # SIGTERM: a clean exit; the message stays for the next start.
        assert t.stop("queued") == 0
        assert "Stopping" in t.log("queued")
        assert t.queue_files() == [qid]


def test_write_error_is_451_never_queued():
    with harness.Tern(start=("queued",)) as t:
        tmp = spool_path(t, "tmp")
        os.rename(tmp, tmp + ".away")
        with open(tmp, "w") as f:
            f.write("a file where tmp/ belongs: spool_write fails")
        with connect(t) as c:
            c.send(ipc.MSG_BEGIN, [(ipc.F_SENDER, "a@remote.example")])
            qid = expect(c.recv(), ipc.MSG_BEGUN).str(ipc.F_QUEUE_ID)
            c.send(ipc.MSG_RCPT, [(ipc.F_RCPT, f"{t.user}@{t.domain}")])
            expect(c.recv(), ipc.MSG_RCPT_OK)
            c.send(ipc.MSG_DATA, [(ipc.F_DATA, BODY)])
            c.send(ipc.MSG_END, [])
            m = expect(c.recv(), ipc.ERROR)
            assert (m.u64(ipc.F_CODE), m.str(ipc.F_DSN), m.str(ipc.F_TEXT)) == \
                (451, "4.3.0", "Error: queue file write error"), m
            assert t.queue_files() == []
            assert f"{qid}: queue file write error, message refused: " in t.log("queued")
            os.unlink(tmp)
            os.rename(tmp + ".away", tmp)
            qid = submit(c, "a@remote.example", [f"{t.user}@{t.domain}"], BODY)
        assert t.queue_files() == [qid]


def test_socket_passed_by_systemd():
    import shutil
    import subprocess
    activate = shutil.which("systemd-socket-activate")
    if not activate:
        raise harness.Skip("systemd-socket-activate is not installed")
    with harness.Tern(start=()) as t:
        sock = os.path.join(t.run_dir, "activated.sock")
        log = open(os.path.join(t.dir, "queued.log"), "ab")
        t.logfiles["queued"] = log.name
        # QueuedSocket stays unbound: the socket must come from sd_listen_fds.
        p = subprocess.Popen([activate, "--seqpacket", "-l", sock, "-E", "TERN_LOG=stderr",
                              harness.binary("queued/tern-queued"), "-c", t.conf_path],
                             env=t.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        t.procs["queued"] = p
        t.wait_until(lambda: os.path.exists(sock), what="the activation socket")
        c = ipc.Conn(sock)
        c.hello("smtpd")
        qid = submit(c, "a@remote.example", [f"{t.user}@{t.domain}"], BODY)
        c.close()
        assert t.queue_files() == [qid]
        assert not os.path.exists(t.queued_socket)
        assert 'socket from systemd' in t.log("queued")


def test_concurrent_submissions_are_in_queue_when_acknowledged():
    # Group commit: messages ending together share fsyncs, but each QUEUED
    # still comes only once its file is in queue/ (and the directory synced).
    import threading
    errors = []

    def client(n):
        try:
            with connect(t) as c:
                for i in range(10):
                    qid = submit(c, "a@example.org", ["b@remote.example"],
                                 f"Subject: {n}/{i}\r\n\r\nx\r\n".encode())
                    env = cdb_read(spool_path(t, "queue", qid))
                    assert env["id"].decode() == qid, env
                    assert not os.path.exists(spool_path(t, "tmp", qid)), qid
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    with harness.Tern(start=("queued",)) as t:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert errors == [], errors
        assert len(t.queue_files()) == 200
        assert os.listdir(spool_path(t, "tmp")) == []


harness.main(globals())
