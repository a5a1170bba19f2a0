"""STARTTLS (RFC 3207) and implicit TLS (RFC 8314) in smtpd, with real
clients: openssl s_client, smtplib, swaks, and raw sockets for the cases no
client does on purpose (the CVE-2011-0411 plaintext injection)."""

import os
import shutil
import smtplib
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Tern  # noqa: E402
from tls_util import TlsClient, client_context, tls_conf, cert_dir  # noqa: E402

MESSAGE = "From: a@test.example\r\nTo: b@test.example\r\nSubject: tls\r\n\r\nover TLS\r\n"


def s_client(t, *args, data=b"", port=None):
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port or t.smtp_port}",
                           "-CAfile", os.path.join(cert_dir(), "cert.pem"), "-verify_return_error",
                           "-servername", "mx.test.example", "-quiet", *args],
                          input=data, capture_output=True, timeout=30)


def test_openssl_s_client_starttls_delivers_with_esmtps():
    with Tern(conf=tls_conf()) as t:
        rcpt = f"{t.user}@{t.domain}"
        data = (f"EHLO client.test\r\nMAIL FROM:<a@test.example>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n"
                f"{MESSAGE}.\r\nQUIT\r\n").encode()
        p = s_client(t, "-starttls", "smtp", "-tls1_3", data=data)
        out = p.stdout.decode()
        assert p.returncode == 0, p.stderr.decode()
        assert "250 2.0.0 Ok: queued as " in out, out
        # After the handshake the EHLO answer no longer offers STARTTLS.
        assert "STARTTLS" not in out, out
        msgs = t.wait_until(lambda: t.delivered(), what="delivery")
        assert b"with ESMTPS id " in msgs[0], msgs[0][:400]
        log = t.log("smtpd")
        assert "Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher" in log or \
            "Anonymous TLS connection established from unknown[127.0.0.1]: TLSv1.3 with cipher" in log, log


def test_smtplib_starttls_and_tls12():
    with Tern(conf=tls_conf()) as t:
        s = t.smtp()
        code, text = s.ehlo("client.test")
        assert code == 250 and "STARTTLS" in text.decode().split("\n"), text
        ctx = client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
        code, text = s.starttls(context=ctx)
        assert (code, text) == (220, b"2.0.0 Ready to start TLS")
        assert s.sock.version() == "TLSv1.2"
        # RFC 8996 forward secrecy for 1.2: an ECDHE AEAD suite.
        assert s.sock.cipher()[0].startswith("ECDHE-"), s.sock.cipher()
        code, text = s.ehlo("client.test")
        assert code == 250 and b"STARTTLS" not in text
        s.sendmail("a@test.example", [f"{t.user}@{t.domain}"], MESSAGE)
        s.quit()
        t.wait_until(lambda: t.delivered(), what="delivery")


def test_swaks_tls():
    if not shutil.which("swaks"):
        raise harness.Skip("swaks is not installed")
    with Tern(conf=tls_conf()) as t:
        p = subprocess.run(["swaks", "--server", f"127.0.0.1:{t.smtp_port}", "--tls",
                            "--tls-verify", "--tls-ca-path", os.path.join(cert_dir(), "cert.pem"),
                            "--tls-sni", "mx.test.example",
                            "--from", "a@test.example", "--to", f"{t.user}@{t.domain}",
                            "--helo", "client.test"],
                           capture_output=True, timeout=60)
        out = p.stdout.decode()
        assert p.returncode == 0, out + p.stderr.decode()
        assert "<-  220 2.0.0 Ready to start TLS" in out, out
        assert "<~  250 2.0.0 Ok: queued as" in out, out
        t.wait_until(lambda: t.delivered(), what="delivery")


def test_implicit_tls_on_submissions_greets_inside_tls():
    with Tern(conf=tls_conf(), role="submissions") as t:
        with TlsClient(t.smtp_port, implicit=True) as c:
            assert c.sock.version() == "TLSv1.3"
            greeting = c.line()
            assert greeting.startswith("220 mx.test.example "), greeting
            ehlo = c.ehlo()
            assert "250-STARTTLS" not in ehlo, ehlo
            c.send("STARTTLS\r\n")
            c.expect("503 5.5.1 Error: TLS already active")
            # Submission: no mail without AUTH (none is configured here).
            c.send("MAIL FROM:<a@test.example>\r\n")
            c.expect("530 5.7.0 Authentication required")
        # smtplib's own implicit-TLS client too.
        s = smtplib.SMTP_SSL("127.0.0.1", t.smtp_port, local_hostname="client.test",
                             context=client_context(), timeout=20)
        s.sock.server_hostname = "mx.test.example"
        assert s.noop()[0] == 250
        s.quit()


def test_submissions_without_certificate_closes():
    with Tern(role="submissions") as t:
        with TlsClient(t.smtp_port) as c:
            c.expect_eof()
        t.wait_until(lambda: "the submissions role cannot serve" in t.log("smtpd"), what="log line")


def test_submission_without_certificate_says_421():
    with Tern(role="submission") as t:
        with TlsClient(t.smtp_port) as c:
            c.expect("421 4.7.0 mx.test.example TLS not available, closing transmission channel")
            c.expect_eof()
        t.wait_until(lambda: "the submission role cannot serve" in t.log("smtpd"), what="log line")


def test_tls11_and_below_refused():
    with Tern(conf=tls_conf()) as t:
        for proto in ("-tls1_1", "-tls1"):
            p = s_client(t, "-starttls", "smtp", proto, "-cipher", "DEFAULT@SECLEVEL=0", data=b"QUIT\r\n")
            assert p.returncode != 0, p.stdout.decode()
            assert b"221 2.0.0 Bye" not in p.stdout
        t.wait_until(lambda: t.log("smtpd").count("SSL_accept error from ") >= 2,
                     what="two SSL_accept errors")
        assert "unsupported protocol" in t.log("smtpd"), t.log("smtpd")
        # TLS 1.2 and 1.3 still work.
        for proto in ("-tls1_2", "-tls1_3"):
            p = s_client(t, "-starttls", "smtp", proto, data=b"EHLO x\r\nQUIT\r\n")
            assert p.returncode == 0 and b"221 2.0.0 Bye" in p.stdout, p.stderr.decode()


def test_plaintext_injection_after_starttls_is_discarded():
    """CVE-2011-0411: "STARTTLS\\r\\nRSET\\r\\n" in one write; RSET must not run."""
    with Tern(conf=tls_conf()) as t:
        with TlsClient(t.smtp_port) as c:
            c.line()
            c.ehlo()
            c.send("STARTTLS\r\nRSET\r\n")
            c.expect("220 2.0.0 Ready to start TLS")
            c.start_tls()
            c.send("QUIT\r\n")
            # Had RSET been executed, its "250 2.0.0 Ok" would come first.
            c.expect("221 2.0.0 Bye")
            c.expect_eof()
        t.wait_until(lambda: "discarded 6 bytes sent in plain text before the TLS handshake"
                     in t.log("smtpd"), what="injection warning")
        assert "rset=" not in t.log("smtpd"), t.log("smtpd")


def test_session_resets_after_starttls_and_second_starttls_503():
    with Tern(conf=tls_conf()) as t:
        with TlsClient(t.smtp_port) as c:
            c.line()
            c.ehlo()
            c.starttls()
            # RFC 3207 4.2: the EHLO given in the clear is forgotten.
            c.send("MAIL FROM:<a@test.example>\r\n")
            c.expect("503 5.5.1 Error: send HELO/EHLO first")
            ehlo = c.ehlo()
            assert "250-STARTTLS" not in ehlo and "250 STARTTLS" not in ehlo, ehlo
            c.send("STARTTLS\r\n")
            c.expect("503 5.5.1 Error: TLS already active")
            c.send("MAIL FROM:<a@test.example>\r\n")
            c.expect("250 2.1.0 Ok")
            c.send("STARTTLS\r\n")
            c.expect("503 5.5.1 Error: TLS already active")
            c.send("QUIT\r\n")
            c.expect("221 2.0.0 Bye")


def test_starttls_inside_transaction_refused():
    with Tern(conf=tls_conf()) as t:
        with TlsClient(t.smtp_port) as c:
            c.line()
            c.ehlo()
            c.send("MAIL FROM:<a@test.example>\r\n")
            c.expect("250 2.1.0 Ok")
            c.send("STARTTLS\r\n")
            c.expect("503 5.5.1 Error: MAIL transaction in progress")


def test_no_starttls_without_certificate_or_with_level_none():
    for conf in ("", tls_conf("none")):
        with Tern(conf=conf) as t:
            with TlsClient(t.smtp_port) as c:
                c.line()
                ehlo = c.ehlo()
                assert not any("STARTTLS" in line for line in ehlo), ehlo
                c.send("STARTTLS\r\n")
                c.expect("502 5.5.1 Error: command not implemented")


def test_unreadable_certificate_means_no_starttls_and_a_log_line():
    with Tern(conf="[TLS]\nCertificateFile = /nonexistent/cert.pem\nKeyFile = /nonexistent/key.pem\n") as t:
        with TlsClient(t.smtp_port) as c:
            c.line()
            ehlo = c.ehlo()
            assert not any("STARTTLS" in line for line in ehlo), ehlo
        t.wait_until(lambda: 'TLS is unavailable for' in t.log("smtpd"), what="log line")
        assert ("Cannot read the certificate chain \"/nonexistent/cert.pem\": No such file or directory"
                in t.log("smtpd")), t.log("smtpd")


def test_broken_certificate_gives_454_at_starttls_and_plain_text_goes_on():
    """Port 25 reads the PEM before the sandbox but builds the context only at
    STARTTLS; a file that is no certificate shows there (Postfix's 454)."""
    bad = os.path.join(cert_dir(), "garbage.pem")
    with open(bad, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    with Tern(conf=f"[TLS]\nCertificateFile = {bad}\nKeyFile = {cert_dir()}/key.pem\n") as t:
        with TlsClient(t.smtp_port) as c:
            c.line()
            assert "250-STARTTLS" in c.ehlo()
            c.send("STARTTLS\r\n")
            c.expect("454 4.7.0 TLS not available due to local problem")
            assert not any("STARTTLS" in line for line in c.ehlo())
            c.send("MAIL FROM:<a@test.example>\r\n")
            c.expect("250 2.1.0 Ok")
        t.wait_until(lambda: f'Cannot load the certificate chain "{bad}"' in t.log("smtpd"),
                     what="log line")
    # The submission roles check the key before the greeting.
    with Tern(conf=f"[TLS]\nCertificateFile = {bad}\nKeyFile = {cert_dir()}/key.pem\n",
              role="submission") as t:
        with TlsClient(t.smtp_port) as c:
            c.expect("421 4.7.0 mx.test.example TLS not available, closing transmission channel")


def test_security_level_encrypt_requires_starttls_before_mail():
    with Tern(conf=tls_conf("encrypt")) as t:
        with TlsClient(t.smtp_port) as c:
            c.line()
            c.ehlo()
            c.send("MAIL FROM:<a@test.example>\r\n")
            c.expect("530 5.7.0 Must issue a STARTTLS command first")
            c.starttls()
            c.ehlo()
            c.send("MAIL FROM:<a@test.example>\r\n")
            c.expect("250 2.1.0 Ok")


def test_submission_role_needs_starttls_then_auth():
    with Tern(conf=tls_conf(), role="submission") as t:
        with TlsClient(t.smtp_port) as c:
            c.line()
            ehlo = c.ehlo()
            assert "250-STARTTLS" in ehlo and not any("AUTH" in line for line in ehlo), ehlo
            c.send("MAIL FROM:<a@test.example>\r\n")
            c.expect("530 5.7.0 Must issue a STARTTLS command first")
            c.starttls()
            c.ehlo()
            c.send("MAIL FROM:<a@test.example>\r\n")
            c.expect("530 5.7.0 Authentication required")


def test_handshake_timeout_and_garbage_end_the_session():
    with Tern(conf=tls_conf()) as t:
        with TlsClient(t.smtp_port) as c:
            c.line()
            c.ehlo()
            c.send("STARTTLS\r\n")
            c.expect("220 2.0.0 Ready to start TLS")
            c.send(b"this is not a TLS record\r\n" * 4)
            c.expect_eof()
        t.wait_until(lambda: "SSL_accept error from " in t.log("smtpd"), what="SSL_accept error")


if __name__ == "__main__":
    harness.main(globals())
