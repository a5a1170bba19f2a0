"""Helpers for the local-delivery tests: a throwaway system user (root only),
sending with tern's sendmail, and waiting for deliverd's log lines."""

import os
import pwd
import random
import re
import shutil
import subprocess

import harness


class LocalUser:
    """useradd a user with a home directory under the test directory; userdel at exit."""

    def __init__(self, t, prefix="tl"):
        if os.geteuid() != 0:
            raise harness.Skip("needs root to create a throwaway user")
        if not shutil.which("useradd"):
            raise harness.Skip("useradd is not installed")
        self.name = f"{prefix}{os.getpid() % 100000}{random.randint(100, 999)}"
        self.home = os.path.join(t.dir, "home", self.name)
        os.makedirs(os.path.dirname(self.home), exist_ok=True)
        os.chmod(os.path.dirname(self.home), 0o755)
        subprocess.run(["useradd", "-M", "-d", self.home, "-s", "/bin/sh", self.name],
                       check=True, capture_output=True)
        pw = pwd.getpwnam(self.name)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        os.makedirs(self.home)
        os.chown(self.home, self.uid, self.gid)
        os.chmod(self.home, 0o700)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        subprocess.run(["userdel", self.name], capture_output=True)
        return False

    def maildir_messages(self):
        return harness.maildir_messages(os.path.join(self.home, "Maildir"))

    def write(self, rel, text, mode=0o600):
        path = os.path.join(self.home, rel)
        with open(path, "w") as f:
            f.write(text)
        os.chown(path, self.uid, self.gid)
        os.chmod(path, mode)
        return path


def message(subject, body="Hello.\n"):
    return (f"From: sender@example.org\nTo: list@test.example\nSubject: {subject}\n"
            f"Message-ID: <{subject.replace(' ', '-')}@example.org>\n\n{body}").encode()


def send(t, rcpts, subject, sender="sender@example.org", body="Hello.\n"):
    p = t.run_cli(["sendmail", "-f", sender, "-i"] + list(rcpts), input=message(subject, body))
    assert p.returncode == 0, p
    return p


def result(t, rcpt, status=None, timeout=20):
    """Waits for deliverd's log line for rcpt (and status if given); returns
    (dsn, status, text) of the first such line."""
    pat = re.compile(r"to=<" + re.escape(rcpt) + r">, relay=([^,]*), delay=[0-9.]+, dsn=([0-9.]+), "
                     r"status=(\w+) \((.*)\)$", re.M)

    def find():
        for m in pat.finditer(t.log("deliverd")):
            if status is None or m.group(3) == status:
                return m
        return None
    m = t.wait_until(find, timeout=timeout, what=f"a delivery result for <{rcpt}>")
    return m.group(2), m.group(3), m.group(4), m.group(1)


def headers(msg):
    return msg.split(b"\n\n", 1)[0].decode(errors="replace").split("\n")
