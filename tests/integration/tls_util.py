"""Helpers for the TLS and AUTH tests of smtpd: a throwaway self-signed
certificate (openssl req -x509), the [TLS] configuration naming it, a client
TLS context that trusts it, and a raw client that can switch to TLS."""

import atexit
import os
import shutil
import ssl
import subprocess
import tempfile

import harness
from smtpd_util import Client

_CERT_DIR = None


def cert_dir():
    """A directory holding cert.pem and key.pem for CN=mx.test.example (made once per run)."""
    global _CERT_DIR
    if _CERT_DIR:
        return _CERT_DIR
    if not shutil.which("openssl"):
        raise harness.Skip("openssl is not installed")
    d = tempfile.mkdtemp(prefix="tern-tls-")
    atexit.register(shutil.rmtree, d, True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=mx.test.example",
                    "-addext", "subjectAltName=DNS:mx.test.example,IP:127.0.0.1",
                    "-keyout", os.path.join(d, "key.pem"), "-out", os.path.join(d, "cert.pem")],
                   check=True, capture_output=True)
    os.chmod(d, 0o755)
    os.chmod(os.path.join(d, "key.pem"), 0o644)  # smtpd runs as the test user
    _CERT_DIR = d
    return d


def tls_conf(level=None):
    d = cert_dir()
    conf = f"[TLS]\nCertificateFile = {d}/cert.pem\nKeyFile = {d}/key.pem\n"
    if level:
        conf += f"SecurityLevel = {level}\n"
    return conf


def client_context(**kw):
    """A client context that trusts only the test certificate."""
    ctx = ssl.create_default_context(cafile=os.path.join(cert_dir(), "cert.pem"))
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


class TlsClient(Client):
    """smtpd_util.Client that can run STARTTLS or start with TLS."""

    def __init__(self, port, implicit=False, **kw):
        super().__init__(port, **kw)
        if implicit:
            self.start_tls()

    def start_tls(self):
        assert self.buf == b"", f"unread plain text before TLS: {self.buf!r}"
        self.sock = client_context().wrap_socket(self.sock, server_hostname="mx.test.example")

    def ehlo(self, name="client.test"):
        self.send(f"EHLO {name}\r\n")
        return self.reply()

    def starttls(self):
        self.send("STARTTLS\r\n")
        self.expect("220 2.0.0 Ready to start TLS")
        self.start_tls()
