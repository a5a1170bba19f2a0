"""A small client of tern's IPC (common/ipc.h) and a writer of spool files
(common/spool.h), so integration tests can drive one daemon directly.

Frame: u16 type, then fields (u16 tag, u32 length, bytes), little-endian, one
frame per SOCK_SEQPACKET datagram; a file descriptor may ride along."""

import os
import socket
import struct
import time

# IpcType
HELLO, ERROR = 1, 2
MSG_BEGIN, MSG_BEGUN, MSG_RCPT, MSG_RCPT_OK, MSG_DATA, MSG_END, MSG_QUEUED, MSG_ABORT = range(10, 18)
DELIVER, RESULT, JOB_DONE = 30, 31, 32
QUEUE_LIST, QUEUE_ENTRY, QUEUE_END, QUEUE_FLUSH = 50, 51, 52, 53

# IpcTag
(F_VERSION, F_ROLE, F_CODE, F_DSN, F_TEXT, F_QUEUE_ID, F_SENDER, F_RCPT, F_NOTIFY, F_ORCPT,
 F_ENVID, F_RET, F_CLIENT_ADDR, F_CLIENT_NAME, F_HELO, F_PROTO, F_AUTH_USER, F_SIZE,
 F_BODY_TYPE, F_SMTPUTF8, F_DATA, F_JOB, F_RCPT_INDEX, F_STATUS, F_RELAY, F_STATE,
 F_ARRIVAL) = range(1, 28)

VERSION = 1
FRAME_MAX = 128 * 1024

# DeliveryStatus (spool.h)
DELIVERED, BOUNCED, DEFERRED = 1, 2, 3


def u64(v):
    return struct.pack("<Q", v)


def encode(msg_type, fields):
    """fields: list of (tag, bytes | str | int); ints are u64."""
    out = [struct.pack("<H", msg_type)]
    for tag, value in fields:
        if isinstance(value, int):
            value = u64(value)
        elif isinstance(value, str):
            value = value.encode()
        out.append(struct.pack("<HI", tag, len(value)) + value)
    return b"".join(out)


def decode(buf):
    """Returns (type, [(tag, bytes)]); raises ValueError on a malformed frame."""
    if len(buf) < 2:
        raise ValueError("short frame")
    (msg_type,) = struct.unpack_from("<H", buf, 0)
    pos, fields = 2, []
    while pos < len(buf):
        if len(buf) - pos < 6:
            raise ValueError("short field header")
        tag, n = struct.unpack_from("<HI", buf, pos)
        pos += 6
        if len(buf) - pos < n:
            raise ValueError("short field")
        fields.append((tag, bytes(buf[pos:pos + n])))
        pos += n
    return msg_type, fields


class Msg:
    def __init__(self, msg_type, fields):
        self.type = msg_type
        self.fields = fields

    def get(self, tag):
        for t, v in self.fields:
            if t == tag:
                return v
        return None

    def str(self, tag):
        v = self.get(tag)
        return None if v is None else v.decode()

    def u64(self, tag):
        v = self.get(tag)
        return None if v is None else struct.unpack("<Q", v)[0]

    def __repr__(self):
        return f"Msg({self.type}, {self.fields!r})"


class Conn:
    def __init__(self, path, timeout=30):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(timeout)
        self.sock.connect(path)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def send(self, msg_type, fields, fd=None):
        data = encode(msg_type, fields)
        if fd is None:
            self.sock.send(data)
        else:
            socket.send_fds(self.sock, [data], [fd])

    def send_raw(self, data):
        self.sock.send(data)

    def recv(self):
        """The next frame as a Msg, or None at EOF."""
        data = self.sock.recv(FRAME_MAX)
        if not data:
            return None
        return Msg(*decode(data))

    def hello(self, role):
        self.send(HELLO, [(F_VERSION, VERSION), (F_ROLE, role)])
        m = self.recv()
        if m is None or m.type != HELLO or m.u64(F_VERSION) != VERSION:
            raise AssertionError(f"bad HELLO answer: {m!r}")
        return m


# --- spool files (tinycdb format) ---------------------------------------------

def _cdb_hash(key):
    h = 5381
    for c in key:
        h = ((h << 5) + h) ^ c
        h &= 0xFFFFFFFF
    return h


def cdb_bytes(items):
    """A CDB file holding items (list of (bytes key, bytes value))."""
    out = bytearray(2048)
    entries = [[] for _ in range(256)]
    for k, v in items:
        h = _cdb_hash(k)
        entries[h & 0xFF].append((h, len(out)))
        out += struct.pack("<II", len(k), len(v)) + k + v
    header = bytearray()
    for bucket in entries:
        n = len(bucket) * 2
        header += struct.pack("<II", len(out), n)
        slots = [(0, 0)] * n
        for h, pos in bucket:
            i = (h >> 8) % n
            while slots[i][1] != 0:
                i = (i + 1) % n
            slots[i] = (h, pos)
        for h, pos in slots:
            out += struct.pack("<II", h, pos)
    out[0:2048] = header
    return bytes(out)


def new_queue_id():
    """13 hex digits as spool_new_id makes them (seconds + microseconds)."""
    t = time.time()
    return f"{int(t):08X}{int((t % 1) * 1000000):05X}"


def spool_file_bytes(queue_id, sender, rcpts, body, arrival_usec=None, extra=None):
    """The bytes of a spool file (common/spool.h) for this envelope."""
    if arrival_usec is None:
        arrival_usec = int(time.time() * 1000000)
    items = [("version", "1"), ("id", queue_id), ("sender", sender),
             ("rcpt_count", str(len(rcpts)))]
    for i, r in enumerate(rcpts):
        items.append((f"rcpt.{i}", r))
    items += [("arrival", str(arrival_usec)), ("proto", "ESMTP"),
              ("size", str(len(body)))]
    items += list((extra or {}).items())
    items = [(k.encode(), v.encode() if isinstance(v, str) else v) for k, v in items]
    items.append((b"body", body))
    return cdb_bytes(items)


def write_spool_file(path, queue_id, sender, rcpts, body, **kw):
    with open(path, "wb") as f:
        f.write(spool_file_bytes(queue_id, sender, rcpts, body, **kw))
    return path
