"""Helpers for smtpd's integration tests: a send/expect dialog runner over a
raw socket (dialogs/*.dialog), and FakeQueued, a scriptable stand-in for
queued that records what smtpd submits and can refuse or fail on demand
(things the real queued cannot be made to do on purpose).

Dialog format, one line each:
    C: <text>          client sends text + CRLF ("\\r", "\\n" escapes allowed; no CRLF
                       added when the line ends in "\\" + "c")
    S: <reply line>    the next reply line must be exactly this (a line containing
                       "<any>" matches anything from that point on)
    # comment, or blank
    CLOSE              the server must close the connection (EOF) next
"""

import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternipc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


class Client:
    """A raw SMTP client that reads replies line by line."""

    def __init__(self, port, timeout=20, source=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        """The next reply line without CRLF, or None at EOF."""
        while b"\r\n" not in self.buf:
            try:
                d = self.sock.recv(65536)
            except ConnectionResetError:
                d = b""
            if not d:
                if self.buf:
                    raise AssertionError(f"unterminated reply at EOF: {self.buf!r}")
                return None
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        """A whole (possibly multi-line) reply as a list of lines."""
        lines = []
        while True:
            ln = self.line()
            if ln is None:
                raise AssertionError(f"EOF inside a reply after {lines!r}")
            lines.append(ln)
            if len(ln) < 4 or ln[3] != "-":
                return lines

    def expect(self, *lines):
        for want in lines:
            got = self.line()
            assert got == want, f"expected {want!r}, got {got!r}"

    def expect_eof(self):
        got = self.line()
        assert got is None, f"expected EOF, got {got!r}"


def unescape(s):
    return s.encode().decode("unicode_escape").encode("latin-1")


def run_dialog(port, text, subst=None):
    """Runs a dialog script (see module doc) against 127.0.0.1:port."""
    subst = subst or {}
    with Client(port) as c:
        for n, raw in enumerate(text.splitlines(), 1):
            for k, v in subst.items():
                raw = raw.replace("${" + k + "}", v)
            if not raw.strip() or raw.startswith("#"):
                continue
            where = f"line {n}: {raw!r}"
            if raw.startswith("C: "):
                data = raw[3:]
                if data.endswith("\\c"):
                    c.send(unescape(data[:-2]))
                else:
                    c.send(unescape(data) + b"\r\n")
            elif raw.startswith("S: "):
                want = raw[3:]
                got = c.line()
                if "<any>" in want:
                    prefix = want.split("<any>", 1)[0]
                    ok = got is not None and got.startswith(prefix)
                else:
                    ok = got == want
                assert ok, f"{where}: got {got!r}"
            elif raw.strip() == "CLOSE":
                got = c.line()
                assert got is None, f"{where}: expected EOF, got {got!r}"
            else:
                raise AssertionError(f"bad dialog {where}")


def load_dialog(name):
    with open(os.path.join(HERE, "dialogs", name)) as f:
        return f.read()


class FakeQueued:
    """A queued stand-in on a SOCK_SEQPACKET socket. Policy hooks:
    rcpt_answer(rcpt) -> None (accept) or (code, dsn, text);
    end_answer(msg) -> None (queued) or (code, dsn, text) or "close"."""

    def __init__(self, path, rcpt_answer=None, end_answer=None):
        self.path = path
        self.rcpt_answer = rcpt_answer or (lambda r: None)
        self.end_answer = end_answer or (lambda m: None)
        self.messages = []   # completed: dict(sender, rcpts, data, id, ...)
        self.aborted = 0
        self.n = 0
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.bind(path)
        self.sock.listen(64)
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def close(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _send(self, conn, t, fields):
        conn.send(ternipc.encode(t, fields))

    def _serve(self, conn):
        msg = None
        with conn:
            while True:
                try:
                    data = conn.recv(ternipc.FRAME_MAX)
                except OSError:
                    return
                if not data:
                    return
                m = ternipc.Msg(*ternipc.decode(data))
                if m.type == ternipc.HELLO:
                    self._send(conn, ternipc.HELLO, [(ternipc.F_VERSION, 1), (ternipc.F_ROLE, "queued")])
                elif m.type == ternipc.MSG_BEGIN:
                    with self.lock:
                        self.n += 1
                        qid = f"ABC{self.n:06d}"
                    msg = {"id": qid, "sender": m.str(ternipc.F_SENDER), "rcpts": [], "data": b"",
                           "helo": m.str(ternipc.F_HELO), "proto": m.str(ternipc.F_PROTO),
                           "client_addr": m.str(ternipc.F_CLIENT_ADDR),
                           "size": m.u64(ternipc.F_SIZE), "body_type": m.str(ternipc.F_BODY_TYPE),
                           "envid": m.str(ternipc.F_ENVID), "ret": m.str(ternipc.F_RET),
                           "smtputf8": m.u64(ternipc.F_SMTPUTF8), "notify": [], "orcpt": []}
                    self._send(conn, ternipc.MSG_BEGUN, [(ternipc.F_QUEUE_ID, qid)])
                elif m.type == ternipc.MSG_RCPT:
                    rcpt = m.str(ternipc.F_RCPT)
                    a = self.rcpt_answer(rcpt)
                    if a is None:
                        msg["rcpts"].append(rcpt)
                        msg["notify"].append(m.str(ternipc.F_NOTIFY))
                        msg["orcpt"].append(m.str(ternipc.F_ORCPT))
                        self._send(conn, ternipc.MSG_RCPT_OK, [])
                    else:
                        self._send(conn, ternipc.ERROR, [(ternipc.F_CODE, a[0]), (ternipc.F_DSN, a[1]),
                                                         (ternipc.F_TEXT, a[2])])
                elif m.type == ternipc.MSG_DATA:
                    msg["data"] += m.get(ternipc.F_DATA)
                elif m.type == ternipc.MSG_END:
                    a = self.end_answer(msg)
                    if a == "close":
                        return
                    if a is None:
                        with self.lock:
                            self.messages.append(msg)
                        self._send(conn, ternipc.MSG_QUEUED, [(ternipc.F_QUEUE_ID, msg["id"])])
                    else:
                        self._send(conn, ternipc.ERROR, [(ternipc.F_CODE, a[0]), (ternipc.F_DSN, a[1]),
                                                         (ternipc.F_TEXT, a[2])])
                    msg = None
                elif m.type == ternipc.MSG_ABORT:
                    with self.lock:
                        self.aborted += 1
                    msg = None


class Smtpd:
    """tern-smtpd behind systemd-socket-activate with a FakeQueued, without the
    rest of tern: Smtpd(conf_extra, **fake_queued_hooks)."""

    def __init__(self, conf="", queued=True, **hooks):
        import harness
        self.harness = harness
        self.extra = conf
        self.with_queued = queued
        self.hooks = hooks

    def __enter__(self):
        import tempfile
        import shutil
        import subprocess
        self.dir = tempfile.mkdtemp(prefix="tern-smtpd-test-")
        self.sock_path = os.path.join(self.dir, "queued.sock")
        self.conf_path = os.path.join(self.dir, "tern.conf")
        with open(self.conf_path, "w") as f:
            f.write(f"""[Server]
Hostname = mx.test.example
LocalDomains = test.example localhost

[Queue]
SpoolDirectory = {self.dir}/spool
QueuedSocket = {self.sock_path}
""")
        os.makedirs(self.conf_path + ".d")
        if self.extra:
            with open(os.path.join(self.conf_path + ".d", "50-test.conf"), "w") as f:
                f.write(self.extra)
        self.queued = FakeQueued(self.sock_path, **self.hooks) if self.with_queued else None
        exe = self.harness.binary("smtpd/tern-smtpd")
        activate = shutil.which("systemd-socket-activate")
        if not activate:
            raise self.harness.Skip("systemd-socket-activate is not installed")
        self.port = self.harness.free_port()
        self.logpath = os.path.join(self.dir, "smtpd.log")
        cmd = [activate, "--inetd", "-a", "-l", f"127.0.0.1:{self.port}",
               "-E", "TERN_LOG=stderr"]
        for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "TERN_DEBUG"):
            if var in os.environ:
                cmd += ["-E", f"{var}={os.environ[var]}"]
        cmd += [exe, "-c", self.conf_path, "--role", "smtp"]
        self.log_f = open(self.logpath, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log_f,
                                     stderr=subprocess.STDOUT)
        self.harness.Tern.wait_until(lambda: self.harness.Tern._tcp_listening(self.port)
                                     or self.proc.poll() is not None, what="smtpd listener")
        if self.proc.poll() is not None:
            raise AssertionError("systemd-socket-activate exited")
        return self

    def __exit__(self, exc_type, exc, tb):
        import shutil
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        self.log_f.close()
        if self.queued:
            self.queued.close()
        if exc_type is not None:
            print("----- smtpd log -----\n" + self.log(), file=sys.stderr)
        shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def client(self):
        return Client(self.port)

    def wait_log(self, text, timeout=10):
        self.harness.Tern.wait_until(lambda: text in self.log(), timeout=timeout,
                                     what=f"{text!r} in smtpd's log")
