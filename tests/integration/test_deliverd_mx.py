#!/usr/bin/env python3
"""deliverd's MX delivery against real peers, in a network namespace the
test creates (so the receiving servers listen on 127.0.0.x:25 and [::1]:25
like real MX hosts, and parallel tests never meet): dnsmasq (Debian) serves
the zone through DNSResolver; Postfix's smtp-sink and a second tern receive.
Proves: MX preference order with fallback to the next MX when the first
refuses, the implicit MX (AAAA only, delivered over IPv6 to a second tern),
null MX (RFC 7505) bounced at once with 5.1.10, a domain that does not exist
bounced with 5.1.2, a server that never greets deferred after ReplyTimeout.
Needs root for the namespace (skipped otherwise)."""

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_deliverd_smtp import log_line  # noqa: E402

SENDER = "sender@example.org"
BODY = b"Subject: mx test\r\n\r\nhello over the MX\r\n"
INNER = "TERN_TEST_IN_NETNS"

DNSMASQ_ARGS = [
    "--local=/test/",                     # authoritative NXDOMAIN for the rest of .test
    "--mx-host=multi.test,mx1.multi.test,10",
    "--mx-host=multi.test,mx2.multi.test,20",
    "--host-record=mx1.multi.test,127.0.0.2",  # nothing listens: connection refused
    "--host-record=mx2.multi.test,127.0.0.3",  # smtp-sink
    "--host-record=v6.test,::1",               # no MX: implicit MX, IPv6 only
    "--mx-host=null.test,.,0",                 # RFC 7505
    "--mx-host=slow.test,mx.slow.test,10",
    "--host-record=mx.slow.test,127.0.0.6",    # accepts, never greets
]


def enter_namespace():
    """Re-runs this script in a new network namespace with lo up."""
    if os.environ.get(INNER):
        return
    unshare = shutil.which("unshare")
    ip = shutil.which("ip")
    if os.geteuid() != 0 or not unshare or not ip:
        print("SKIP: needs root, unshare and ip for a network namespace")
        sys.exit(harness.SKIP)
    if subprocess.run([unshare, "--net", "--", "true"], capture_output=True).returncode != 0:
        print("SKIP: cannot create a network namespace here (no CAP_SYS_ADMIN?)")
        sys.exit(harness.SKIP)
    env = dict(os.environ, **{INNER: "1"})
    r = subprocess.run([unshare, "--net", "--", sys.executable, os.path.abspath(__file__)]
                       + sys.argv[1:], env=env)
    sys.exit(r.returncode)


class Peers:
    """dnsmasq on 127.0.0.1:53 and smtp-sink on 127.0.0.3:25."""

    def __enter__(self):
        self.procs = []
        self.dir = tempfile.mkdtemp(prefix="tern-mx-")
        os.chmod(self.dir, 0o777)
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        dnsmasq = "/usr/sbin/dnsmasq"
        sink = "/usr/sbin/smtp-sink"
        if not os.access(dnsmasq, os.X_OK) or not os.access(sink, os.X_OK):
            raise harness.Skip("dnsmasq-base and postfix (smtp-sink) are needed")
        self.dump = os.path.join(self.dir, "sink")
        os.mkdir(self.dump)
        os.chmod(self.dump, 0o777)
        self.procs.append(subprocess.Popen(
            [dnsmasq, "--no-resolv", "--no-hosts", "--port=53", "--listen-address=127.0.0.1",
             "--bind-interfaces", "--keep-in-foreground", "--pid-file=", "--user=root",
             f"--log-facility={self.dir}/dnsmasq.log"] + DNSMASQ_ARGS))
        self.procs.append(subprocess.Popen(
            [sink, "-u", "postfix", "-d", self.dump + "/%M.", "-c", "127.0.0.3:25", "10"]))
        # The never-greeting server: a listening socket nobody accepts from.
        self.silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.silent.bind(("127.0.0.6", 25))
        self.silent.listen(4)
        harness.Tern.wait_until(lambda: listening(("127.0.0.3", 25)), what="smtp-sink")
        harness.Tern.wait_until(lambda: dns_ready(), what="dnsmasq")
        return self

    def __exit__(self, *exc):
        self.silent.close()
        for p in self.procs:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def sink_messages(self):
        out = []
        for path in sorted(glob.glob(self.dump + "/*")):
            with open(path, "rb") as f:
                out.append(f.read())
        return out


def listening(addr, family=socket.AF_INET):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(addr) == 0


def dns_ready():
    # A raw query for mx1.multi.test A: any answer means dnsmasq is up.
    q = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
         b"\x03mx1\x05multi\x04test\x00\x00\x01\x00\x01")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        try:
            s.sendto(q, ("127.0.0.1", 53))
            return s.recv(512)[:2] == b"\x12\x34"
        except OSError:
            return False


def conf(extra=""):
    return ("[Server]\nHostname = sender.test\nDNSResolver = 127.0.0.1\n"
            "[Delivery]\nConnectTimeout = 5s\nReplyTimeout = 3s\n" + extra)


def submit(t, rcpts):
    with t.smtp() as s:
        s.ehlo()
        s.mail(SENDER)
        for r in rcpts:
            code, _ = s.rcpt(r)
            assert code == 250, (r, code)
        code, reply = s.data(BODY)
    assert code == 250, (code, reply)


def test_lowest_preference_refusing_falls_back_to_the_next_mx():
    with Peers() as peers, harness.Tern(conf=conf()) as t:
        submit(t, ["user@multi.test"])
        # smtp-sink creates its dump file first and writes it as the data comes.
        t.wait_until(lambda: any(m.endswith(b"hello over the MX\n\n") for m in peers.sink_messages()),
                     what="smtp-sink to receive the message")
        msg = peers.sink_messages()[0]
        assert b"X-Mail-Args: <sender@example.org>" in msg, msg
        assert b"X-Rcpt-Args: <user@multi.test>" in msg, msg
        assert b"X-Helo-Args: sender.test" in msg, msg
        # smtp-sink stores LF line ends and one empty line after the body.
        assert msg.endswith(b"\nSubject: mx test\n\nhello over the MX\n\n"), msg
        t.wait_until(lambda: log_line(t, "user@multi.test", "sent", "2.0.0", "250 2.0.0 Ok",
                                      "mx2.multi.test[127.0.0.3]:25"), what="the delivery log line")
        t.wait_until(lambda: not t.queue_files(), what="the queue to empty")


def test_no_mx_delivers_to_the_aaaa_address_of_a_second_tern():
    rconf = "[Server]\nLocalDomains = v6.test\nHostname = v6.test\n"
    with Peers(), harness.Tern(conf=rconf, start=("queued", "deliverd")) as r, \
            harness.Tern(conf=conf()) as t:
        # The receiving tern's smtpd on [::1]:25, as the harness runs it.
        cmd = [shutil.which("systemd-socket-activate"), "--inetd", "-a", "-l", "[::1]:25",
               "-E", f"TERN_CONFIG={r.conf_path}", "-E", "TERN_LOG=stderr",
               harness.binary("smtpd/tern-smtpd"), "-c", r.conf_path]
        with open(os.path.join(r.dir, "smtpd-v6.log"), "wb") as log:
            act = subprocess.Popen(cmd, env=r.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            t.wait_until(lambda: listening(("::1", 25), socket.AF_INET6), what="smtpd on [::1]:25")
            submit(t, [f"{r.user}@v6.test"])
            t.wait_until(lambda: r.delivered(), what="the second tern's Maildir to get the message")
            assert r.delivered()[0].endswith(BODY.replace(b"\r\n", b"\n")) or \
                r.delivered()[0].endswith(BODY), r.delivered()[0]
            t.wait_until(lambda: log_line(t, f"{r.user}@v6.test", "sent", "2.0.0", "250 2.0.0 Ok: queued as ",
                                          "v6.test[::1]:25") or
                         (r"relay=v6.test[::1]:25" in t.log("deliverd") and "status=sent" in t.log("deliverd")),
                         what="the delivery over IPv6")
        finally:
            act.terminate()
            act.wait(5)


def test_null_mx_bounces_at_once_with_5_1_10():
    with Peers(), harness.Tern(conf=conf()) as t:
        submit(t, ["user@null.test"])
        t.wait_until(lambda: log_line(t, "user@null.test", "bounced", "5.1.10",
                                      "Domain null.test does not accept mail (nullMX)", "none"),
                     what="the null MX bounce")


def test_unknown_domain_bounces_with_5_1_2():
    with Peers(), harness.Tern(conf=conf()) as t:
        submit(t, ["user@nowhere.test"])
        t.wait_until(lambda: log_line(
            t, "user@nowhere.test", "bounced", "5.1.2",
            "Host or domain name not found. Name service error for name=nowhere.test type=MX: "
            "Host not found", "none"), what="the unknown-domain bounce")


def test_server_that_never_greets_is_deferred_after_reply_timeout():
    with Peers(), harness.Tern(conf=conf()) as t:
        submit(t, ["user@slow.test"])
        t.wait_until(lambda: log_line(
            t, "user@slow.test", "deferred", "4.4.2",
            "conversation with mx.slow.test[127.0.0.6] timed out while receiving the initial "
            "server greeting", "none"), what="the greeting timeout", timeout=30)
        assert t.queue_files(), "the deferred message stays queued"


if __name__ == "__main__":
    enter_namespace()
    harness.main(globals())
