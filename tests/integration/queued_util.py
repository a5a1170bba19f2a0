"""Helpers for the tern-queued integration tests: submission over IPC (with
ternipc.py's codec) and a reader of the tinycdb spool files."""

import collections
import os
import socket
import struct
import threading

import ternipc as ipc


def cdb_read(path):
    """All (key, value) pairs of a CDB file, in file order; checks the hash
    tables point at every record (a file tinycdb would accept)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 2048:
        raise AssertionError(f"{path}: shorter than a CDB header")
    tables = [struct.unpack_from("<II", data, 8 * i) for i in range(256)]
    end = min(pos for pos, _ in tables)
    items, pos = [], 2048
    while pos < end:
        klen, vlen = struct.unpack_from("<II", data, pos)
        key = data[pos + 8:pos + 8 + klen]
        items.append((pos, key, data[pos + 8 + klen:pos + 8 + klen + vlen]))
        pos += 8 + klen + vlen
    assert pos == end, f"{path}: records end at {pos}, tables start at {end}"
    for rpos, key, _ in items:
        h = ipc._cdb_hash(key)
        tpos, n = tables[h & 0xFF]
        assert n > 0, f"{path}: key {key!r} has an empty table"
        found = False
        for i in range(n):
            slot = (((h >> 8) % n) + i) % n
            sh, sp = struct.unpack_from("<II", data, tpos + 8 * slot)
            if sp == 0:
                break
            if sh == h and sp == rpos:
                found = True
                break
        assert found, f"{path}: key {key!r} is not reachable through its hash table"
    return {k.decode(): v for _, k, v in items}


def connect(t, role="smtpd"):
    c = ipc.Conn(t.queued_socket)
    c.hello(role)
    return c


def expect(m, msg_type):
    assert m is not None, "queued closed the connection"
    assert m.type == msg_type, f"expected type {msg_type}, got {m!r}"
    return m


def submit(c, sender, rcpts, body, begin_fields=()):
    """A whole transaction on connection c; returns the queue id (asserts QUEUED)."""
    c.send(ipc.MSG_BEGIN, [(ipc.F_SENDER, sender)] + list(begin_fields))
    qid = expect(c.recv(), ipc.MSG_BEGUN).str(ipc.F_QUEUE_ID)
    for r in rcpts:
        c.send(ipc.MSG_RCPT, [(ipc.F_RCPT, r)])
        expect(c.recv(), ipc.MSG_RCPT_OK)
    for i in range(0, len(body), 60000):
        c.send(ipc.MSG_DATA, [(ipc.F_DATA, body[i:i + 60000])])
    c.send(ipc.MSG_END, [])
    m = expect(c.recv(), ipc.MSG_QUEUED)
    assert m.str(ipc.F_QUEUE_ID) == qid, m
    return qid


def queue_list(t):
    """[(Msg entry)] from IPC_QUEUE_LIST."""
    with connect(t, "ctl") as c:
        c.send(ipc.QUEUE_LIST, [])
        out = []
        while True:
            m = c.recv()
            assert m is not None, "queued closed the connection during QUEUE_LIST"
            if m.type == ipc.QUEUE_END:
                return out
            expect(m, ipc.QUEUE_ENTRY)
            out.append(m)


def spool_path(t, *parts):
    return os.path.join(t.spool, *parts)


class SocketServer:
    """A listening socket whose connections are accepted by a thread; each
    gets a thread running _serve(conn) (by default it is only kept open).
    close() ends them all."""

    def __init__(self, sock):
        self.sock = sock
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        # shutdown first: a thread blocked in recv keeps a closed socket alive.
        for s in [self.sock] + self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        pass


class FakeDeliverd(SocketServer):
    """Answers HELLO; delivers at once every job whose recipients are not in
    a domain of `dead` (RESULT delivered + JOB_DONE); never answers jobs for
    `dead` (a blackhole). Records every job and the most jobs in flight."""

    def __init__(self, t, dead=(), manual=False):
        self.t = t
        self.dead = set(dead)
        self.manual = manual       # jobs wait for finish() instead of being delivered at once
        self.waiting = []          # (conn, job, idx, qid, rcpts) kept by manual mode
        self.lock = threading.Lock()
        self.jobs = []             # (queue id, [recipients])
        self.hanging = 0           # dead jobs in flight (never end)
        self.max_hanging = 0
        self.delivered = []        # (queue id, recipient)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if os.path.exists(t.deliverd_socket):
            os.unlink(t.deliverd_socket)
        sock.bind(t.deliverd_socket)
        sock.listen(16)
        super().__init__(sock)

    def finish(self):
        """Manual mode: delivers every job received so far."""
        with self.lock:
            jobs, self.waiting = self.waiting, []
        for c, job, idx, qid, rcpts in jobs:
            self._deliver(c, job, idx, qid, rcpts)

    def _serve(self, c):
        try:
            while True:
                data, fds, _, _ = socket.recv_fds(c, ipc.FRAME_MAX, 4)
                for fd in fds:
                    os.close(fd)
                if not data:
                    return
                m = ipc.Msg(*ipc.decode(data))
                if m.type == ipc.HELLO:
                    c.send(ipc.encode(ipc.HELLO, [(ipc.F_VERSION, ipc.VERSION)]))
                    continue
                assert m.type == ipc.DELIVER, m
                qid = m.str(ipc.F_QUEUE_ID)
                job = m.u64(ipc.F_JOB)
                idx = [int.from_bytes(v, "little") for tag, v in m.fields
                       if tag == ipc.F_RCPT_INDEX]
                env = cdb_read(os.path.join(self.t.spool, "queue", qid))
                rcpts = [env[f"rcpt.{i}"].decode() for i in idx]
                domains = {r.rsplit("@", 1)[1] for r in rcpts}
                with self.lock:
                    self.jobs.append((qid, rcpts))
                    if domains & self.dead:
                        self.hanging += 1
                        self.max_hanging = max(self.max_hanging, self.hanging)
                        continue
                    if self.manual:
                        self.waiting.append((c, job, idx, qid, rcpts))
                        continue
                self._deliver(c, job, idx, qid, rcpts)
        except OSError:
            return

    def _deliver(self, c, job, idx, qid, rcpts):
        for i, r in zip(idx, rcpts):
            c.send(ipc.encode(ipc.RESULT, [
                (ipc.F_JOB, job), (ipc.F_RCPT_INDEX, i), (ipc.F_STATUS, ipc.DELIVERED),
                (ipc.F_DSN, "2.0.0"), (ipc.F_TEXT, "ok"), (ipc.F_RELAY, "fake")]))
            with self.lock:
                self.delivered.append((qid, r))
        c.send(ipc.encode(ipc.JOB_DONE, [(ipc.F_JOB, job)]))


class TcpServer(SocketServer):
    """SocketServer on a free port of 127.0.0.1 (self.port)."""

    def __init__(self, backlog=128):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(backlog)
        self.port = sock.getsockname()[1]
        super().__init__(sock)


class RecordingSink(TcpServer):
    """A threaded SMTP server on 127.0.0.1 that answers 250 to everything and
    records the X-Crash-Id header of every message it accepts."""

    def __init__(self):
        self.lock = threading.Lock()
        self.received = collections.Counter()
        super().__init__()

    def _serve(self, c):
        f = c.makefile("rb")
        try:
            c.sendall(b"220 sink.test ESMTP\r\n")
            while True:
                line = f.readline(4096)
                if not line:
                    return
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    c.sendall(b"250-sink.test\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    c.sendall(b"354 go ahead\r\n")
                    ids = []
                    while True:
                        ln = f.readline(65536)
                        if not ln or ln == b".\r\n":
                            break
                        if ln.lower().startswith(b"x-crash-id:"):
                            ids.append(ln.split(b":", 1)[1].strip().decode())
                    if not ln:
                        return  # cut off mid-message: not accepted
                    with self.lock:
                        for i in ids:
                            self.received[i] += 1
                    c.sendall(b"250 2.0.0 Ok: queued\r\n")
                elif verb == b"QUIT":
                    c.sendall(b"221 2.0.0 Bye\r\n")
                    return
                else:
                    c.sendall(b"250 2.0.0 Ok\r\n")
        except OSError:
            return
        finally:
            f.close()
            c.close()
