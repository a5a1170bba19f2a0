#!/usr/bin/env python3
"""deliverd's SMTP client against a receiving server run by the test: a
message relayed through RelayHost = [127.0.0.1]:port arrives byte-exact with
the right envelope; per-recipient 550 bounces only that recipient; 451 and a
closed port defer and keep the message queued; SIZE, HELO fallback and a
peer sending garbage are handled. With Postfix installed, Postfix's smtp-sink
is the peer of two more tests (Debian package postfix; skipped otherwise)."""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SENDER = "sender@example.org"
BODY = (b"From: Sender <sender@example.org>\r\n"
        b"To: remote@example.net\r\n"
        b"Subject: relayed\r\n"
        b"\r\n"
        b"first line\r\n"
        b".leading dot survives dot-stuffing\r\n"
        b"..two dots\r\n"
        b".\r\n"
        b"\r\n"
        b"last line\r\n")


class Sink:
    """A minimal SMTP server on 127.0.0.1 that records every command line and
    every DATA payload exactly as received (still dot-stuffed)."""

    def __init__(self, ehlo=("PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES"),
                 greeting=b"220 sink.test ESMTP\r\n", rcpt=None,
                 data_reply=b"250 2.0.0 Ok: queued as SINK1\r\n"):
        self.ehlo = ehlo
        self.greeting = greeting
        self.rcpt = rcpt or (lambda addr: b"250 2.1.5 Ok\r\n")
        self.data_reply = data_reply
        self.lock = threading.Lock()
        self.commands = []      # every command line, in order, all connections
        self.transactions = []  # dicts: mail, rcpts [(line, reply)], data (raw bytes)
        self.connections = 0
        self.live = set()       # open connections, for drop_all()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def close(self):
        self.stopping = True
        try:
            # Wake the accept() up.
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.stopping:
                conn.close()
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def drop_all(self):
        """Closes every open connection, as a server's idle timeout does."""
        with self.lock:
            for c in list(self.live):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _serve(self, conn):
        with self.lock:
            self.live.add(conn)
        conn.settimeout(30)
        f = conn.makefile("rb")
        try:
            conn.sendall(self.greeting)
            if not self.greeting.startswith(b"2"):
                # A refusing or broken server still answers QUIT.
                pass
            tx = None
            while True:
                line = f.readline(4096)
                if not line:
                    return
                with self.lock:
                    self.commands.append(line)
                verb = line[:4].upper()
                if verb == b"EHLO":
                    if self.ehlo is None:
                        conn.sendall(b"502 5.5.2 Error: command not recognized\r\n")
                    else:
                        lines = ["sink.test"] + list(self.ehlo)
                        out = b"".join(f"250-{x}\r\n".encode() for x in lines[:-1])
                        conn.sendall(out + f"250 {lines[-1]}\r\n".encode())
                elif verb == b"HELO":
                    conn.sendall(b"250 sink.test\r\n")
                elif verb == b"MAIL":
                    tx = {"mail": line, "rcpts": [], "data": None}
                    conn.sendall(b"250 2.1.0 Ok\r\n")
                elif verb == b"RCPT":
                    m = re.match(rb"RCPT TO:<([^>]*)>", line)
                    reply = self.rcpt(m.group(1).decode() if m else "")
                    tx["rcpts"].append((line, reply))
                    conn.sendall(reply)
                elif verb == b"DATA":
                    if not tx or not any(r.startswith(b"2") for _, r in tx["rcpts"]):
                        conn.sendall(b"554 5.5.1 Error: no valid recipients\r\n")
                        continue
                    conn.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    raw = b""
                    while True:
                        dl = f.readline(100000)
                        if not dl:
                            return
                        if dl == b".\r\n":
                            break
                        raw += dl
                    tx["data"] = raw
                    with self.lock:
                        self.transactions.append(tx)
                    tx = None
                    conn.sendall(self.data_reply)
                elif verb == b"RSET":
                    tx = None
                    conn.sendall(b"250 2.0.0 Ok\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 2.0.0 Bye\r\n")
                    return
                else:
                    conn.sendall(b"502 5.5.2 Error: command not recognized\r\n")
        except OSError:
            pass
        finally:
            with self.lock:
                self.live.discard(conn)
            f.close()
            conn.close()


def unstuff(raw):
    return b"".join(line[1:] if line.startswith(b".") else line
                    for line in raw.splitlines(keepends=True))


def relay_conf(port):
    return f"[Delivery]\nRelayHost = [127.0.0.1]:{port}\n"


def submit(t, rcpts, body=BODY):
    with t.smtp() as s:
        s.ehlo()
        s.mail(SENDER)
        for r in rcpts:
            code, _ = s.rcpt(r)
            assert code == 250, (r, code)
        code, reply = s.data(body)
    assert code == 250, (code, reply)
    m = re.fullmatch(rb"2\.0\.0 Ok: queued as ([0-9A-F]+)", reply)
    assert m, reply
    return m.group(1).decode()


def log_line(t, rcpt, status, dsn, text, relay=None):
    """The deliverd log line for rcpt with this outcome, or None."""
    relay_re = re.escape(relay) if relay else r"[^,]+"
    pat = (rf"to=<{re.escape(rcpt)}>, relay={relay_re}, .*dsn={re.escape(dsn)}, "
           rf"status={status} \({re.escape(text)}\)")
    return re.search(pat, t.log("deliverd"))


def test_relayed_message_arrives_byte_exact_with_envelope():
    with Sink() as sink, harness.Tern(conf=relay_conf(sink.port)) as t:
        qid = submit(t, ["remote@example.net"])
        t.wait_until(lambda: sink.transactions, what="the sink to receive the message")
        tx = sink.transactions[0]
        data = unstuff(tx["data"])
        # smtpd put one Received: header in front; the rest is the message as sent.
        assert data.startswith(b"Received: from client.test"), data[:200]
        assert f"with ESMTP id {qid}".encode() in data.split(b"\r\n\r\n")[0], data[:400]
        assert data.endswith(b"\r\n" + BODY), data
        assert tx["mail"] == f"MAIL FROM:<{SENDER}> SIZE={len(data)}\r\n".encode(), tx["mail"]
        assert [r for r, _ in tx["rcpts"]] == [b"RCPT TO:<remote@example.net>\r\n"], tx["rcpts"]
        # Dot-stuffing on the wire: each line starting with "." got one more.
        assert b"\r\n..leading dot" in tx["data"] and b"\r\n...two dots" in tx["data"], tx["data"]
        assert b"\r\n..\r\n" in tx["data"], tx["data"]
        assert sink.commands[0] == b"EHLO mx.test.example\r\n", sink.commands
        # QUIT comes when the connection is no longer kept for reuse.
        t.wait_until(lambda: sink.commands[-1] == b"QUIT\r\n", what="QUIT")
        t.wait_until(lambda: log_line(t, "remote@example.net", "sent", "2.0.0",
                                      "250 2.0.0 Ok: queued as SINK1",
                                      f"127.0.0.1[127.0.0.1]:{sink.port}"),
                     what="the delivery log line")
        t.wait_until(lambda: not t.queue_files(), what="the queue to empty")


def test_rcpt_550_bounces_that_recipient_and_delivers_the_other():
    def rcpt(addr):
        if addr.startswith("bad@"):
            return (b"550-5.1.1 <bad@example.net>: Recipient address rejected:\r\n"
                    b"550 5.1.1 User unknown in virtual mailbox table\r\n")
        return b"250 2.1.5 Ok\r\n"

    with Sink(rcpt=rcpt) as sink, harness.Tern(conf=relay_conf(sink.port)) as t:
        submit(t, ["good@example.net", "bad@example.net"])
        t.wait_until(lambda: sink.transactions, what="the sink to receive the message")
        tx = sink.transactions[0]
        assert [r for r, _ in tx["rcpts"]] == [b"RCPT TO:<bad@example.net>\r\n",
                                               b"RCPT TO:<good@example.net>\r\n"] or \
            [r for r, _ in tx["rcpts"]] == [b"RCPT TO:<good@example.net>\r\n",
                                            b"RCPT TO:<bad@example.net>\r\n"], tx["rcpts"]
        assert unstuff(tx["data"]).endswith(BODY)
        relay = f"127.0.0.1[127.0.0.1]:{sink.port}"
        t.wait_until(lambda: log_line(t, "good@example.net", "sent", "2.0.0",
                                      "250 2.0.0 Ok: queued as SINK1", relay),
                     what="good@ delivered")
        t.wait_until(lambda: log_line(
            t, "bad@example.net", "bounced", "5.1.1",
            f"host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <bad@example.net>: Recipient address "
            f"rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)",
            relay), what="bad@ bounced")


def test_451_defers_and_keeps_the_message_queued():
    with Sink(rcpt=lambda a: b"451 4.7.1 Greylisted, try again later\r\n") as sink, \
            harness.Tern(conf=relay_conf(sink.port)) as t:
        submit(t, ["remote@example.net"])
        t.wait_until(lambda: log_line(
            t, "remote@example.net", "deferred", "4.7.1",
            "host 127.0.0.1[127.0.0.1] said: 451 4.7.1 Greylisted, try again later "
            "(in reply to RCPT TO command)"), what="the deferral")
        assert len(t.queue_files()) == 1, t.queue_files()
        assert not sink.transactions
        # No recipient accepted: no DATA was sent unless pipelined, and then
        # the sink refused it; the session ended with QUIT.
        t.wait_until(lambda: b"QUIT\r\n" in sink.commands, what="QUIT")


def test_closed_port_defers_with_the_connect_error():
    port = harness.free_port()
    with harness.Tern(conf=relay_conf(port)) as t:
        submit(t, ["remote@example.net"])
        t.wait_until(lambda: log_line(
            t, "remote@example.net", "deferred", "4.4.1",
            f"connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused"),
            what="the deferral")
        assert len(t.queue_files()) == 1, t.queue_files()


def test_message_over_the_advertised_size_bounces_without_mail_from():
    with Sink(ehlo=("PIPELINING", "SIZE 100")) as sink, harness.Tern(conf=relay_conf(sink.port)) as t:
        submit(t, ["remote@example.net"])
        t.wait_until(lambda: re.search(
            r"to=<remote@example\.net>, .*dsn=5\.3\.4, status=bounced \(message size \d+ exceeds "
            r"size limit 100 of server 127\.0\.0\.1\[127\.0\.0\.1\]\)", t.log("deliverd")),
            what="the bounce")
        assert not any(c.startswith(b"MAIL FROM:<sender@") for c in sink.commands), sink.commands


def test_server_without_ehlo_gets_helo_and_no_extensions():
    with Sink(ehlo=None) as sink, harness.Tern(conf=relay_conf(sink.port)) as t:
        submit(t, ["remote@example.net"])
        t.wait_until(lambda: sink.transactions, what="the sink to receive the message")
        assert sink.commands[:4] == [b"EHLO mx.test.example\r\n", b"HELO mx.test.example\r\n",
                                     f"MAIL FROM:<{SENDER}>\r\n".encode(),
                                     b"RCPT TO:<remote@example.net>\r\n"], sink.commands
        assert unstuff(sink.transactions[0]["data"]).endswith(b"\r\n" + BODY)


def test_garbage_from_the_server_defers_and_deliverd_survives():
    with Sink(greeting=b"hello, I am not an SMTP server\r\n") as sink, \
            harness.Tern(conf=relay_conf(sink.port)) as t:
        submit(t, ["remote@example.net"])
        t.wait_until(lambda: log_line(
            t, "remote@example.net", "deferred", "4.4.2",
            "malformed reply from 127.0.0.1[127.0.0.1] while receiving the initial server greeting"),
            what="the deferral")
        assert t.procs["deliverd"].poll() is None, "deliverd died"
        assert len(t.queue_files()) == 1


def test_data_refused_with_554_bounces():
    with Sink(data_reply=b"554 5.7.1 Message rejected as spam\r\n") as sink, \
            harness.Tern(conf=relay_conf(sink.port)) as t:
        submit(t, ["remote@example.net"])
        t.wait_until(lambda: log_line(
            t, "remote@example.net", "bounced", "5.7.1",
            "host 127.0.0.1[127.0.0.1] said: 554 5.7.1 Message rejected as spam "
            "(in reply to end of DATA command)"), what="the bounce")


class PostfixSink:
    """Postfix's smtp-sink on 127.0.0.1, dumping each transaction to a file."""

    def __init__(self, *options):
        exe = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        if not os.path.exists(exe):
            raise harness.Skip("Postfix's smtp-sink is not installed (Debian package postfix)")
        self.dir = tempfile.mkdtemp(prefix="tern-smtp-sink-")
        os.chmod(self.dir, 0o777)
        self.port = harness.free_port()
        cmd = [exe]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]  # smtp-sink refuses to keep root
        cmd += list(options) + ["-d", os.path.join(self.dir, "%H%M%S."),
                                f"127.0.0.1:{self.port}", "10"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        harness.Tern.wait_until(lambda: harness.Tern._tcp_listening(self.port)
                                or self.proc.poll() is not None, what="smtp-sink listening")
        if self.proc.poll() is not None:
            raise AssertionError(f"smtp-sink exited with {self.proc.returncode}")

    def dumps(self):
        out = []
        for name in sorted(os.listdir(self.dir)):
            with open(os.path.join(self.dir, name), "rb") as f:
                out.append(f.read())
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


def test_postfix_smtp_sink_receives_the_message_dot_unstuffed():
    with PostfixSink() as sink, harness.Tern(conf=relay_conf(sink.port)) as t:
        submit(t, ["one@example.net", "two@example.net"])
        relay = f"127.0.0.1[127.0.0.1]:{sink.port}"
        for r in ("one@example.net", "two@example.net"):
            t.wait_until(lambda: log_line(t, r, "sent", "2.0.0", "250 2.0.0 Ok", relay),
                         what=f"{r} delivered")
        # smtp-sink writes LF line ends and one empty line after the message;
        # what it un-stuffed must be the message as tern received it.
        expected_end = BODY.replace(b"\r\n", b"\n") + b"\n"
        t.wait_until(lambda: any(d.endswith(expected_end) for d in sink.dumps()),
                     what="smtp-sink to finish its dump file")
        dumps = sink.dumps()
        assert len(dumps) == 1, dumps
        dump = dumps[0]
        assert b"X-Helo-Args: mx.test.example\n" in dump, dump
        assert b"X-Mail-Args: <sender@example.org>" in dump, dump
        assert re.search(b"X-Rcpt-Args: <one@example.net>\nX-Rcpt-Args: <two@example.net>\n|"
                         b"X-Rcpt-Args: <two@example.net>\nX-Rcpt-Args: <one@example.net>\n",
                         dump), dump


def test_postfix_smtp_sink_soft_rcpt_error_defers():
    with PostfixSink("-r", "RCPT") as sink, harness.Tern(conf=relay_conf(sink.port)) as t:
        submit(t, ["remote@example.net"])
        t.wait_until(lambda: log_line(
            t, "remote@example.net", "deferred", "4.3.0",
            "host 127.0.0.1[127.0.0.1] said: 450 4.3.0 Error: command failed "
            "(in reply to RCPT TO command)"), what="the deferral")
        assert len(t.queue_files()) == 1, t.queue_files()
        # smtp-sink opens its dump file at MAIL FROM and removes it when the
        # transaction ends without data: wait for that rather than race it.
        t.wait_until(lambda: not sink.dumps(), what="no message at smtp-sink")


if __name__ == "__main__":
    harness.main(globals())
