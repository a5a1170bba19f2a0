"""Helpers for the delivery status notification tests: a stand-in for
tern-deliverd that answers each DELIVER by a policy chosen per recipient and
keeps every message it was given, submission over queued's socket with the
DSN parameters, and parsing of the reports with Python's email package."""

import email
import email.policy
import os
import socket
import struct
import threading

import ternipc as ipc
from queued_util import cdb_read

F_DSN_RELAYED = 50


class FakeDeliverd:
    """Listens on t.deliverd_socket like tern-deliverd. policy(rcpt, envelope)
    returns (status, dsn, text, relay, dsn_relayed). Every DELIVER is kept in
    self.seen as (queue_id, {cdb keys}, [rcpt])."""

    def __init__(self, t, policy):
        self.t = t
        self.policy = policy
        self.seen = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.bind(t.deliverd_socket)
        self.sock.listen(4)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                self._serve(conn)
            except OSError:
                pass
            finally:
                conn.close()

    def _serve(self, conn):
        while True:
            data, fds, _, _ = socket.recv_fds(conn, ipc.FRAME_MAX, 4)
            if not data:
                return
            m = ipc.Msg(*ipc.decode(data))
            if m.type == ipc.HELLO:
                conn.send(ipc.encode(ipc.HELLO, [(ipc.F_VERSION, ipc.VERSION)]))
                continue
            assert m.type == ipc.DELIVER, m
            (fd,) = fds
            try:
                env = cdb_read(f"/proc/self/fd/{fd}")
            finally:
                os.close(fd)
            job = m.u64(ipc.F_JOB)
            idx = [struct.unpack("<Q", v)[0] for tag, v in m.fields if tag == ipc.F_RCPT_INDEX]
            rcpts = [env[f"rcpt.{i}"].decode() for i in idx]
            with self.lock:
                self.seen.append((env["id"].decode(), env, rcpts))
            for i, rcpt in zip(idx, rcpts):
                status, dsn, text, relay, relayed = self.policy(rcpt, env)
                fields = [(ipc.F_JOB, job), (ipc.F_RCPT_INDEX, i), (ipc.F_STATUS, status),
                          (ipc.F_DSN, dsn), (ipc.F_TEXT, text), (ipc.F_RELAY, relay)]
                if relayed:
                    fields.append((F_DSN_RELAYED, 1))
                conn.send(ipc.encode(ipc.RESULT, fields))
            conn.send(ipc.encode(ipc.JOB_DONE, [(ipc.F_JOB, job)]))

    def messages(self, rcpt=None, sender=None):
        """Bodies of the messages seen (once per queue id), optionally only
        those for rcpt or from sender."""
        out, ids = [], set()
        with self.lock:
            seen = list(self.seen)
        for qid, env, rcpts in seen:
            if qid in ids or (rcpt is not None and rcpt not in rcpts):
                continue
            if sender is not None and env["sender"].decode() != sender:
                continue
            ids.add(qid)
            out.append(env)
        return out

    def attempts(self, qid):
        with self.lock:
            return sum(1 for q, _, _ in self.seen if q == qid)

    def close(self):
        self.stopping = True
        self.sock.close()


def local_ok(rcpt, env):
    return ipc.DELIVERED, "2.0.0", "delivered to maildir", "local", False


def submit(t, sender, rcpts, body, envid=None, ret=None):
    """One message over queued's socket; rcpts is a list of addresses or
    (address, notify, orcpt). Returns the queue id."""
    with ipc.Conn(t.queued_socket) as c:
        c.hello("sendmail")
        fields = [(ipc.F_SENDER, sender)]
        if envid is not None:
            fields.append((ipc.F_ENVID, envid))
        if ret is not None:
            fields.append((ipc.F_RET, ret))
        c.send(ipc.MSG_BEGIN, fields)
        m = c.recv()
        assert m.type == ipc.MSG_BEGUN, m
        for r in rcpts:
            addr, notify, orcpt = (r, None, None) if isinstance(r, str) else r
            f = [(ipc.F_RCPT, addr)]
            if notify:
                f.append((ipc.F_NOTIFY, notify))
            if orcpt:
                f.append((ipc.F_ORCPT, orcpt))
            c.send(ipc.MSG_RCPT, f)
            m = c.recv()
            assert m.type == ipc.MSG_RCPT_OK, m
        c.send(ipc.MSG_DATA, [(ipc.F_DATA, body)])
        c.send(ipc.MSG_END, [])
        m = c.recv()
        assert m.type == ipc.MSG_QUEUED, m
        return m.str(ipc.F_QUEUE_ID)


def parse(raw):
    """(message, per-message fields, [per-recipient fields], returned part)."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status", msg["Content-Type"]
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts][:2] == ["text/plain", "message/delivery-status"], \
        [p.get_content_type() for p in parts]
    status = parts[1].get_payload()
    return msg, status[0], status[1:], parts[2] if len(parts) > 2 else None


def reports(fake, to, subject=None):
    """Reports delivered to `to`, parsed."""
    out = []
    for env in fake.messages(rcpt=to, sender=""):
        p = parse(env["body"])
        if subject is None or p[0]["Subject"] == subject:
            out.append(p)
    return out
