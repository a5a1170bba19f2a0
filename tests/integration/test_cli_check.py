#!/usr/bin/env python3
"""`ternctl check` names file:line of each problem (configuration, tables not
compiled or older than their source, TLS key not matching the certificate);
SIGHUP (what `systemctl reload tern.target` sends) makes queued and deliverd
use a new valid configuration and refuse an invalid one, keeping the old one,
without dropping anything."""

import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


# No aliases: the host's /etc/aliases (the default AliasFile) is not ours to compile.
NO_ALIASES = "[Local]\nAliasFile =\n"


def check(t):
    p = t.run_cli(["ternctl", "check"])
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def dropin(t, name, text):
    path = os.path.join(t.conf_path + ".d", name)
    with open(path, "w") as f:
        f.write(text)
    return path


def make_cert(d, name):
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=mx.test.example", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def test_clean_configuration_is_silent():
    with harness.Tern(conf=NO_ALIASES, start=()) as t:
        assert check(t) == (0, "", ""), check(t)


def test_bad_value_names_file_and_line():
    with harness.Tern(conf=NO_ALIASES, start=()) as t:
        path = dropin(t, "60-bad.conf", "[SMTP]\n\nMessageSizeLimit = lots\n")
        code, out, err = check(t)
        assert code == 1 and out == "", (code, out, err)
        assert err.startswith(f"ternctl: {path}:3: "), err
        assert "MessageSizeLimit" in err, err


def test_tables_must_be_compiled_and_current():
    with harness.Tern(conf=NO_ALIASES, start=()) as t:
        src = os.path.join(t.dir, "access")
        with open(src, "w") as f:
            f.write("192.0.2.1 REJECT\n")
        path = dropin(t, "60-access.conf", f"[SMTP]\nClientAccess = {src}\n")
        code, _, err = check(t)
        assert code == 1, err
        assert err.splitlines()[0] == (f"{path}:2: SMTP.ClientAccess: \"{src}\" is not compiled "
                                       f"(No such file or directory): run ternctl map {src}"), err
        p = t.run_cli(["ternctl", "map", src])
        assert p.returncode == 0, p
        assert check(t) == (0, "", ""), check(t)
        # An edited source without a new map is what check is for.
        future = time.time() + 10
        os.utime(src, (future, future))
        code, _, err = check(t)
        assert code == 1, err
        assert err.splitlines()[0] == (f"{path}:2: SMTP.ClientAccess: \"{src}.cdb\" is older than "
                                       f"its source: run ternctl map {src}"), err
        # A missing source explicitly named.
        os.unlink(src)
        code, _, err = check(t)
        assert code == 1 and f"table source \"{src}\": No such file or directory" in err, err


def test_tls_key_must_match_certificate():
    with harness.Tern(conf=NO_ALIASES, start=()) as t:
        cert, key = make_cert(t.dir, "a")
        _, other = make_cert(t.dir, "b")
        path = dropin(t, "60-tls.conf", f"[TLS]\nCertificateFile = {cert}\nKeyFile = {key}\n")
        assert check(t) == (0, "", ""), check(t)
        dropin(t, "60-tls.conf", f"[TLS]\nCertificateFile = {cert}\nKeyFile = {other}\n")
        code, _, err = check(t)
        assert code == 1, err
        assert err.startswith(f"{path}:3: TLS.KeyFile: \"{other}\" "), err
        dropin(t, "60-tls.conf", f"[TLS]\nCertificateFile = {t.dir}/nothing.pem\nKeyFile = {key}\n")
        code, _, err = check(t)
        assert code == 1, err
        assert err.startswith(f"{path}:2: TLS.CertificateFile: \"{t.dir}/nothing.pem\": "
                              "No such file or directory"), err


def deliver(t, subject, conf=None):
    env = dict(t.env, TERN_CONFIG=conf) if conf else t.env
    p = subprocess.run([harness.binary("cli/sendmail"), t.user], env=env, capture_output=True,
                       input=f"Subject: {subject}\n\nbody\n".encode(), timeout=30)
    assert p.returncode == 0, p


def files_in(d):
    new = os.path.join(d, "new")
    return os.listdir(new) if os.path.isdir(new) else []


def test_sighup_applies_a_valid_configuration_and_refuses_a_bad_one():
    with harness.Tern(start=("queued", "deliverd")) as t:
        deliver(t, "before")
        t.wait_until(lambda: len(files_in(t.maildir(t.user))) == 1, what="first delivery")

        other = os.path.join(t.dir, "other")
        dropin(t, "70-reload.conf", f"[Local]\nMailboxPath = {other}/%u/\n")
        for name in ("queued", "deliverd"):
            t.procs[name].send_signal(signal.SIGHUP)
        for name in ("queued", "deliverd"):
            t.wait_until(lambda: "Configuration reloaded" in t.log(name), what=f"{name} reload")
        deliver(t, "after")
        t.wait_until(lambda: len(files_in(os.path.join(other, t.user))) == 1,
                     what="delivery to the reloaded MailboxPath")

        # Every new client process (smtpd, sendmail) reads the configuration
        # too; keep a good copy for this one.
        good = os.path.join(t.dir, "good.conf")
        shutil.copy(t.conf_path, good)
        shutil.copytree(t.conf_path + ".d", good + ".d")
        bad = dropin(t, "80-bad.conf", "[Local]\nNoSuchKey = 1\n")
        for name in ("queued", "deliverd"):
            t.procs[name].send_signal(signal.SIGHUP)
        for name in ("queued", "deliverd"):
            t.wait_until(lambda: "Reload refused, keeping the running configuration: "
                         f"{bad}:2" in t.log(name), what=f"{name} refusing")
        deliver(t, "still running", conf=good)
        t.wait_until(lambda: len(files_in(os.path.join(other, t.user))) == 2,
                     what="delivery with the kept configuration")
        for name in ("queued", "deliverd"):
            assert t.procs[name].poll() is None, f"{name} exited"


if __name__ == "__main__":
    harness.main(globals())
