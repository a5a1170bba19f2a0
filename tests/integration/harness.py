"""Runs the real tern binaries together without PID 1, for integration tests.

queued and deliverd run on sockets and a spool inside a temporary directory;
smtpd runs behind `systemd-socket-activate --inetd`, one process per
connection, exactly as tern-smtp@.service runs it. Local mail goes to Maildirs
under the temporary directory, as the user running the test.

A test script defines test_* functions taking a Tern-free signature and calls
harness.main(globals()) at the end; exit code 0 = all passed, 77 = skipped.
"""

import getpass
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import traceback

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))

DAEMONS = {
    "queued": "queued/tern-queued",
    "deliverd": "deliverd/tern-deliverd",
}
CLI = {
    "ternctl": "cli/ternctl",
    "sendmail": "cli/sendmail",
    "mailq": "cli/sendmail",
    "newaliases": "cli/sendmail",
}
# Variables forwarded to smtpd through systemd-socket-activate, which starts
# its child with an empty environment except what -E names.
FORWARDED_ENV = ("TERN_LOG", "TERN_DEBUG", "ASAN_OPTIONS", "UBSAN_OPTIONS",
                 "LSAN_OPTIONS", "PATH")



def maildir_messages(maildir):
    """Contents (bytes) of the messages in maildir's new/, oldest name first;
    none when it does not exist yet."""
    new = os.path.join(maildir, "new")
    out = []
    for name in sorted(os.listdir(new)) if os.path.isdir(new) else []:
        with open(os.path.join(new, name), "rb") as f:
            out.append(f.read())
    return out

class Skip(Exception):
    """Raised by a test that cannot run here; the script exits 77."""


def build_dir():
    d = os.environ.get("TERN_BUILD_DIR")
    if not d:
        d = os.path.join(HERE, "..", "..", "build")
    return os.path.abspath(d)


def binary(rel):
    path = os.path.join(build_dir(), rel)
    if not os.path.exists(path):
        raise Skip(f"{path} is not built")
    return path


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tern:
    """A throwaway tern: Tern(conf="[SMTP]\\nRecipientLimit = 5\\n")."""

    def __init__(self, conf="", start=("queued", "deliverd", "smtpd"), role="smtp"):
        self.extra_conf = conf
        self.start_list = start
        self.role = role
        self.procs = {}
        self.logfiles = {}
        self.user = getpass.getuser()
        self.domain = "test.example"
        self.hostname = "mx.test.example"

    # --- set-up and tear-down -------------------------------------------------

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="tern-test-")
        os.chmod(self.dir, 0o755)
        self.spool = os.path.join(self.dir, "spool")
        self.run_dir = os.path.join(self.dir, "run")
        self.mail_dir = os.path.join(self.dir, "mail")
        for d in (self.spool, self.run_dir, self.mail_dir,
                  os.path.join(self.mail_dir, self.user)):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.spool, 0o700)
        self.queued_socket = os.path.join(self.run_dir, "queued.sock")
        self.deliverd_socket = os.path.join(self.run_dir, "deliverd.sock")
        self.conf_path = os.path.join(self.dir, "tern.conf")
        with open(self.conf_path, "w") as f:
            f.write(f"""# written by tests/integration/harness.py
[Server]
Hostname = {self.hostname}
LocalDomains = {self.domain} localhost
SmtpdUser = {self.user}
QueueUser = {self.user}

[Queue]
SpoolDirectory = {self.spool}
QueuedSocket = {self.queued_socket}
DeliverdSocket = {self.deliverd_socket}
MinBackoff = 1s
MaxBackoff = 2s

[Local]
MailboxPath = {self.mail_dir}/%u/Maildir/
""")
        # Test-specific settings go into a drop-in, so they override the above
        # the way an administrator's drop-in would.
        os.makedirs(self.conf_path + ".d", exist_ok=True)
        if self.extra_conf:
            with open(os.path.join(self.conf_path + ".d", "50-test.conf"), "w") as f:
                f.write(self.extra_conf)
        self.env = dict(os.environ)
        self.env["TERN_CONFIG"] = self.conf_path
        self.env.setdefault("TERN_LOG", "stderr")
        try:
            for name in self.start_list:
                self.start(name)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        # smtpd first, queued last: deliverd's last results still reach queued.
        for name in reversed(list(self.procs)):
            self.stop(name)
        if exc_type is not None and exc_type is not Skip:
            self.dump_logs()
        if os.environ.get("TERN_KEEP_TEST_DIR"):
            print(f"harness: kept {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def dump_logs(self):
        for name, path in self.logfiles.items():
            try:
                with open(path, errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            print(f"----- {name} log -----\n{text[-20000:]}", file=sys.stderr)

    # --- processes --------------------------------------------------------------

    def _logfile(self, name):
        path = os.path.join(self.dir, f"{name}.log")
        self.logfiles[name] = path
        return open(path, "ab")

    def start(self, name):
        if name in self.procs and self.procs[name].poll() is None:
            raise AssertionError(f"{name} is already running")
        if name == "smtpd":
            self._start_smtpd()
            return
        exe = binary(DAEMONS[name])
        sock = self.queued_socket if name == "queued" else self.deliverd_socket
        with self._logfile(name) as log:
            self.procs[name] = subprocess.Popen([exe, "-c", self.conf_path], env=self.env,
                                                stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT)
        self.wait_until(lambda: self._seqpacket_accepts(sock) or self._died(name),
                        what=f"{name} listening on {sock}")
        if self._died(name):
            self.dump_logs()
            raise AssertionError(f"{name} exited with {self.procs[name].returncode}")

    def _start_smtpd(self):
        exe = binary("smtpd/tern-smtpd")
        activate = shutil.which("systemd-socket-activate")
        if not activate:
            raise Skip("systemd-socket-activate is not installed")
        self.smtp_port = free_port()
        cmd = [activate, "--inetd", "-a", "-l", f"127.0.0.1:{self.smtp_port}"]
        for var in FORWARDED_ENV + ("TERN_CONFIG",):
            if var in self.env:
                cmd += ["-E", f"{var}={self.env[var]}"]
        cmd += [exe, "-c", self.conf_path, "--role", self.role]
        with self._logfile("smtpd") as log:
            self.procs["smtpd"] = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL,
                                                   stdout=log, stderr=subprocess.STDOUT)
        self.wait_until(lambda: self._tcp_listening(self.smtp_port) or self._died("smtpd"),
                        what="smtpd listener")
        if self._died("smtpd"):
            raise AssertionError("systemd-socket-activate exited")

    def _died(self, name):
        return self.procs[name].poll() is not None

    @staticmethod
    def _seqpacket_accepts(path):
        if not os.path.exists(path):
            return False
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            s.connect(path)
            return True
        except OSError:
            return False
        finally:
            s.close()

    @staticmethod
    def _tcp_listening(port):
        # Probing would spawn an smtpd; ask the kernel instead.
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                local, state = fields[1], fields[3]
                if state == "0A" and int(local.split(":")[1], 16) == port:
                    return True
        return False

    def stop(self, name, timeout=10):
        p = self.procs.pop(name, None)
        if not p or p.poll() is not None:
            return p.returncode if p else None
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise AssertionError(f"{name} did not stop within {timeout}s of SIGTERM")

    def kill(self, name, sig=signal.SIGKILL):
        p = self.procs.pop(name)
        p.send_signal(sig)
        p.wait(10)
        return p.returncode

    def log(self, name):
        path = self.logfiles.get(name)
        if not path or not os.path.exists(path):
            return ""
        with open(path, errors="replace") as f:
            return f.read()

    # --- clients ------------------------------------------------------------------

    def smtp(self, timeout=30):
        return smtplib.SMTP("127.0.0.1", self.smtp_port, local_hostname="client.test",
                            timeout=timeout)

    def run_cli(self, args, input=b"", timeout=60):
        exe = binary(CLI[args[0]])
        if args[0] in ("mailq", "newaliases"):
            # Same program, chosen by argv[0].
            return subprocess.run([args[0]] + list(args[1:]), executable=exe, input=input,
                                  env=self.env, capture_output=True, timeout=timeout)
        return subprocess.run([exe] + list(args[1:]), input=input, env=self.env,
                              capture_output=True, timeout=timeout)

    def maildir(self, user=None):
        return os.path.join(self.mail_dir, user or self.user, "Maildir")

    def delivered(self, user=None):
        """Contents (bytes) of the messages in user's Maildir new/, oldest name first."""
        return maildir_messages(self.maildir(user))

    def queue_files(self):
        q = os.path.join(self.spool, "queue")
        if not os.path.isdir(q):
            return []
        return sorted(n for n in os.listdir(q) if not n.endswith(".st"))

    # --- waiting ------------------------------------------------------------------

    @staticmethod
    def wait_until(fn, timeout=20, what="condition"):
        """Polls fn() until it is true; fails with `what` after timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            v = fn()
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.05)


def main(namespace):
    """Runs every test_* function of a script; prints one line per test."""
    tests = [(n, f) for n, f in sorted(namespace.items())
             if n.startswith("test_") and callable(f)]
    only = sys.argv[1:]
    failed = skipped = passed = 0
    for name, fn in tests:
        if only and name not in only:
            continue
        start = time.monotonic()
        try:
            fn()
        except Skip as e:
            skipped += 1
            print(f"SKIP {name}: {e}")
            continue
        except Exception:
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
            continue
        passed += 1
        print(f"ok   {name} ({time.monotonic() - start:.2f}s)")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    if failed:
        sys.exit(1)
    if skipped and not passed:
        sys.exit(SKIP)
    sys.exit(0)
