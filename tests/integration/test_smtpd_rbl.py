#!/usr/bin/env python3
"""DNS blocklists (DNSBlocklists, Postfix's reject_rbl_client) against a real
dnsmasq started here on 127.0.0.1 and a random port ([Server] DNSResolver):
a listed client (A 127.0.0.x) is refused at RCPT with 554 5.7.1 and the TXT
record, other answers and DNS failures count as not listed (logged), trusted
clients are not looked up. The lookups run inside smtpd's sandbox."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import smtpd_util  # noqa: E402

GREETING = "220 mx.test.example ESMTP tern"
DNSMASQ = "/usr/sbin/dnsmasq"


class Dnsmasq:
    def __init__(self):
        if not os.access(DNSMASQ, os.X_OK):
            raise harness.Skip("dnsmasq is not installed (Debian package dnsmasq-base)")
        self.dir = tempfile.mkdtemp(prefix="tern-rbl-test-")
        self.port = harness.free_port()
        self.log = open(os.path.join(self.dir, "dnsmasq.log"), "w+")
        args = [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                "--listen-address=127.0.0.1", "--bind-interfaces", f"--port={self.port}",
                "--pid-file=", "--user=root", "--log-facility=-",
                # Everything under the zones that is not listed: NXDOMAIN.
                "--local=/bl.test/", "--local=/other.test/",
                "--host-record=2.0.0.127.bl.test,127.0.0.2",
                "--txt-record=2.0.0.127.bl.test,Listed: see https://bl.test/q?127.0.0.2",
                "--host-record=1.0.0.127.bl.test,127.0.0.2",
                "--host-record=4.0.0.127.other.test,127.0.0.10",
                "--host-record=5.0.0.127.bl.test,127.0.1.1"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        harness.Tern.wait_until(lambda: self._answers() or self.proc.poll() is not None,
                                what="dnsmasq answering")
        if self.proc.poll() is not None:
            self.log.seek(0)
            raise AssertionError("dnsmasq exited: " + self.log.read())

    def _answers(self):
        # A query for the listed name; any well-formed answer means it is up.
        q = bytes.fromhex("abcd01000001000000000000") + b"".join(
            bytes([len(x)]) + x.encode() for x in "2.0.0.127.bl.test".split(".")) + b"\0\0\1\0\1"
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.2)
        try:
            s.sendto(q, ("127.0.0.1", self.port))
            return s.recv(512)[:2] == b"\xab\xcd"
        except OSError:
            return False
        finally:
            s.close()

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def rcpt_reply(port, source):
    with smtpd_util.Client(port, source=source) as c:
        c.expect(GREETING)
        c.send("EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<user@test.example>\r\n"
               "RCPT TO:<other@test.example>\r\nQUIT\r\n")
        c.reply()
        c.expect("250 2.1.0 Ok")
        first, second = c.line(), c.line()
        c.expect("221 2.0.0 Bye")
        assert first == second, (first, second)
        return first


def conf(dns_port, zones="bl.test other.test"):
    return (f"[Server]\nTrustedNetworks = 127.0.0.1/32\nDNSResolver = 127.0.0.1:{dns_port}\n"
            f"[SMTP]\nDNSBlocklists = {zones}\n")


def test_listed_clients_are_refused_at_rcpt():
    d = Dnsmasq()
    try:
        with smtpd_util.Smtpd(conf=conf(d.port)) as s:
            assert rcpt_reply(s.port, "127.0.0.2") == (
                "554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using bl.test; "
                "Listed: see https://bl.test/q?127.0.0.2")
            # The second zone, without a TXT record.
            assert rcpt_reply(s.port, "127.0.0.4") == (
                "554 5.7.1 Service unavailable; Client host [127.0.0.4] blocked using other.test")
            # Not listed anywhere (NXDOMAIN).
            assert rcpt_reply(s.port, "127.0.0.3") == "250 2.1.5 Ok"
            # Listed with an address outside 127.0.0.x: not a listing.
            assert rcpt_reply(s.port, "127.0.0.5") == "250 2.1.5 Ok"
            # Trusted (TrustedNetworks): not looked up, although listed.
            assert rcpt_reply(s.port, "127.0.0.1") == "250 2.1.5 Ok"
            s.wait_log("disconnect from unknown[127.0.0.1]")
            log = s.log()
            assert ("reject: RCPT from unknown[127.0.0.2]: 554 5.7.1 Service unavailable; Client host "
                    "[127.0.0.2] blocked using bl.test; Listed: see https://bl.test/q?127.0.0.2; "
                    "from=<a@example.org> to=<user@test.example> proto=ESMTP helo=<client.test>") in log, log
            assert "DNS blocklist bl.test lists 127.0.0.2 (127.0.0.2)" in log, log
            assert ("DNS blocklist bl.test: 5.0.0.127.bl.test has the unexpected address 127.0.1.1, "
                    "treating as not listed") in log, log
            # One lookup per session, not one per RCPT.
            assert log.count("DNS blocklist bl.test lists 127.0.0.2") == 1, log
    finally:
        d.close()


def test_dns_failure_is_no_listing_and_is_logged():
    dead = harness.free_port()  # nothing answers there: ICMP port unreachable
    with smtpd_util.Smtpd(conf=conf(dead, zones="bl.test")) as s:
        assert rcpt_reply(s.port, "127.0.0.2") == "250 2.1.5 Ok"
        s.wait_log("disconnect from")
        assert "DNS blocklist bl.test: no answer for 2.0.0.127.bl.test, treating as not listed" in s.log()


if __name__ == "__main__":
    harness.main(globals())
