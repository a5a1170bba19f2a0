"""Helpers for the tern-queued integration tests: submission over IPC (with
ternipc.py's codec) and a reader of the tinycdb spool files."""

import os
import struct

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
