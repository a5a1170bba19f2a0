#!/usr/bin/env python3
"""System test: the installed units under a real systemd, in a throwaway
systemd-nspawn container that shares the host's /usr and sees the build
installed at /usr/local.

It proves that
  - the units, sysusers.d and tmpfiles.d entries work as installed and the
    compiled-in defaults (no tern.conf at all) give a working local MTA;
  - messages sent to 127.0.0.1:25 with swaks and with smtplib reach alice's
    Maildir byte-exact, and `journalctl TERN_QUEUE_ID=` shows smtpd, queued
    and deliverd handling each; `sendmail -t` run by alice is delivered too;
  - a message accepted while deliverd is stopped stays queued and is
    delivered once deliverd's socket is back;
  - `systemctl kill -s KILL tern-queued.service` right after a 250 loses
    nothing and delivers the message exactly once;
  - a burst of connections does not fail tern-smtp.socket;
  - and it prints each tern service's `systemd-analyze security` exposure,
    failing if one is above 9.0 ("UNSAFE").

Needs root and systemd-nspawn (package systemd-container); exits 77 otherwise.
Environment: TERN_BUILD_DIR (the meson build dir to install), TERN_SOURCE_DIR.
TERN_KEEP_CONTAINER=1 leaves the container running at the end for debugging.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77
BINARIES = ("smtpd/tern-smtpd", "queued/tern-queued", "deliverd/tern-deliverd",
            "cli/ternctl", "cli/sendmail")
# Other MTAs the host may have installed: the container's presets would start
# them (they see the host's /usr) and one would take port 25.
OTHER_MTAS = ("postfix.service", "postfix@-.service", "postfix-resolvconf.path",
              "postfix-resolvconf.service", "exim4.service", "sendmail.service",
              "opensmtpd.service", "nullmailer.service", "courier-mta.service",
              "dma.service", "msmtpd.service")
# Units that only slow the boot down or fail in a container without a network,
# or that other tests install on the host (the container would start them).
USELESS_IN_CONTAINER = ("systemd-networkd-wait-online.service", "dovecot.service",
                        "dovecot.socket", "dnsmasq.service")
# The volatile /etc starts empty; tools look these up (swaks:
# getprotobyname("tcp")), so they are copied from the host.
HOST_ETC_FILES = ("/etc/protocols", "/etc/services")

SENDER = "sender@example.org"
RCPT = "alice@localhost"
HELO = "client.test"


def body(subject):
    """A message with LF line ends (what the Maildir file holds); senders use CRLF."""
    return (f"From: Sender <{SENDER}>\n"
            f"To: Alice <{RCPT}>\n"
            f"Subject: {subject}\n"
            "\n"
            "first line\n"
            ".leading dot survives dot-stuffing\n"
            "\n"
            "last line\n").encode()


class Failure(AssertionError):
    pass


def log(msg):
    print(f"system-test: {msg}", flush=True)


class Container:
    """A booted systemd in systemd-nspawn; every command runs inside it via nsenter."""

    def __init__(self, stage, name):
        self.stage = stage
        self.name = name
        self.proc = None
        self.pid = None  # the container's PID 1, as seen from the host
        self.console = os.path.join(stage, "console.log")

    # The host's files a volatile / lacks (DNS, hosts): copied in at boot.
    copy_host_etc = True

    def nspawn_command(self, options=()):
        """The host's / booted volatile, with the staged build on /usr/local;
        options go before the arguments for systemd."""
        masks = [f"systemd.mask={u}" for u in OTHER_MTAS + USELESS_IN_CONTAINER]
        return ["systemd-nspawn", "-D", "/", "--volatile=yes", "-b", "--register=no",
                "--keep-unit", "--private-network", "-M", self.name,
                f"--bind-ro={self.stage}/usr/local:/usr/local", *options,
                "systemd.firstboot=off", "systemd.unit=multi-user.target", *masks]

    def boot(self, timeout=120):
        cmd = self.nspawn_command()
        with open(self.console, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while self.pid is None:
            if self.proc.poll() is not None:
                raise Failure(f"systemd-nspawn exited with {self.proc.returncode}:\n"
                              + self.console_text())
            if time.monotonic() > deadline:
                raise Failure("no systemd appeared in the container")
            self.pid = self._find_init()
            if self.pid is None:
                time.sleep(0.05)
        # Right after exec, systemd does not answer yet: systemctl fails to
        # connect and prints no state. Ask again until it does.
        while True:
            r = self.run(["systemctl", "is-system-running", "--wait"], check=False,
                         timeout=timeout)
            state = r.stdout.strip()
            # "offline": systemctl found no bus yet (PID 1 not answering).
            if (state and state != "offline") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        log(f"container {self.name}: systemd is PID {self.pid} (host), state {state}")
        for p in HOST_ETC_FILES if self.copy_host_etc else ():
            if os.path.exists(p) and not os.path.exists(self.path(p)):
                shutil.copyfile(p, self.path(p))
        if state != "running":
            log("failed units:\n" + self.run(["systemctl", "--failed", "--no-pager",
                                               "--no-legend"], check=False).stdout)
        if state not in ("running", "degraded"):
            raise Failure(f"system state is {state!r}")

    def _find_init(self):
        """The first process called systemd below our systemd-nspawn (breadth first):
        the container's PID 1, whether nspawn forked an intermediate process or not."""
        queue = [self.proc.pid]
        while queue:
            pid = queue.pop(0)
            if pid != self.proc.pid and _comm(pid) == "systemd":
                return pid
            queue.extend(_children(pid))
        return None

    def run(self, cmd, input=None, check=True, timeout=60):
        r = subprocess.run(["nsenter", "-t", str(self.pid), "-a", *cmd], input=input,
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise Failure(f"{' '.join(cmd)} exited with {r.returncode}:\n{r.stdout}{r.stderr}")
        return r

    def sh(self, script, **kw):
        return self.run(["sh", "-ec", script], **kw)

    def path(self, p):
        """A path inside the container, reachable from the host."""
        return f"/proc/{self.pid}/root{p}"

    def console_text(self):
        try:
            with open(self.console, errors="replace") as f:
                return f.read()[-5000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        # SIGTERM makes systemd-nspawn shut the container down cleanly; give it
        # a few seconds, then kill it (its PID 1 dies with it).
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def _children(pid):
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def wait_until(fn, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


QUEUED_RE = re.compile(r"250[ -]2\.0\.0 Ok: queued as ([0-9A-F]+)")


class SystemTest:
    def __init__(self, c):
        self.c = c
        self.maildir_new = c.path("/home/alice/Maildir/new")

    # --- senders (run inside the container, against its loopback) --------------

    def send_swaks(self, subject):
        self.c.run(["mkdir", "-p", "/run/system-test"])
        data = f"/run/system-test/{subject}.eml"
        with open(self.c.path(data), "wb") as f:
            # swaks ends the data with CRLF itself before the final dot.
            f.write(body(subject).rstrip(b"\n"))
        r = self.c.run(["swaks", "--server", "127.0.0.1", "--port", "25", "--helo", HELO,
                        "--from", SENDER, "--to", RCPT, "--data", data], check=False)
        m = QUEUED_RE.search(r.stdout)
        if r.returncode != 0 or not m:
            raise Failure(f"swaks did not get 250 queued (exit {r.returncode}):\n{r.stdout}{r.stderr}")
        return m.group(1)

    def send_smtplib(self, subject):
        script = f"""
import smtplib, sys
body = {body(subject)!r}.replace(b"\\n", b"\\r\\n")
with smtplib.SMTP("127.0.0.1", 25, local_hostname={HELO!r}, timeout=30) as s:
    s.ehlo()
    s.mail({SENDER!r})
    code, reply = s.rcpt({RCPT!r})
    assert code == 250, (code, reply)
    code, reply = s.data(body)
    print(code, reply.decode())
"""
        r = self.c.run(["python3", "-"], input=script, check=False)
        m = re.fullmatch(r"250 2\.0\.0 Ok: queued as ([0-9A-F]+)\n", r.stdout)
        if r.returncode != 0 or not m:
            raise Failure(f"smtplib did not get 250 queued (exit {r.returncode}):\n{r.stdout}{r.stderr}")
        return m.group(1)

    # --- what arrived -----------------------------------------------------------

    def delivered(self):
        """{subject: [file contents]} of alice's Maildir/new."""
        out = {}
        try:
            names = sorted(os.listdir(self.maildir_new))
        except FileNotFoundError:
            return out
        for n in names:
            with open(os.path.join(self.maildir_new, n), "rb") as f:
                raw = f.read()
            m = re.search(rb"^Subject: (.*)$", raw, re.M)
            out.setdefault(m.group(1).decode() if m else "?", []).append(raw)
        return out

    def wait_delivered(self, subject, timeout=60):
        return wait_until(lambda: self.delivered().get(subject), timeout,
                          f"{subject!r} in alice's Maildir")

    def check_bytes(self, raw, subject, qid):
        """Return-Path, Delivered-To, smtpd's Received (checked loosely: the
        client name may come from reverse DNS), then the message byte-exact."""
        expected = body(subject)
        if not raw.endswith(b"\n" + expected) and not raw.endswith(expected):
            raise Failure(f"{subject}: body differs:\n{raw!r}\nexpected to end with\n{expected!r}")
        head = raw[:len(raw) - len(expected)].decode()
        pattern = (rf"Return-Path: <{re.escape(SENDER)}>\n"
                   rf"Delivered-To: {re.escape(RCPT)}\n"
                   rf"Received: from {re.escape(HELO)} [^\n]*\n(?:\t[^\n]*\n)*")
        if not re.fullmatch(pattern, head):
            raise Failure(f"{subject}: unexpected trace headers:\n{head}")
        if f"id {qid}" not in head:
            raise Failure(f"{subject}: Received does not name queue id {qid}:\n{head}")

    def spool_has(self, qid):
        return os.path.exists(self.c.path(f"/var/spool/tern/queue/{qid}"))

    def spool_empty(self):
        try:
            return os.listdir(self.c.path("/var/spool/tern/queue")) == []
        except FileNotFoundError:
            return False

    def journal(self, qid):
        r = self.c.run(["journalctl", "--no-pager", "-o", "json", f"TERN_QUEUE_ID={qid}"],
                       check=False)
        return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]

    def check_journal(self, qid):
        want = {"tern-smtpd", "tern-queued", "tern-deliverd"}
        entries = wait_until(
            lambda: (lambda e: e if want <= {x.get("SYSLOG_IDENTIFIER") for x in e} else None)(
                self.journal(qid)),
            timeout=20, what=f"journal entries of smtpd, queued and deliverd for {qid}")
        for e in entries:
            log(f"  journal {e.get('SYSLOG_IDENTIFIER')}: {e.get('MESSAGE')}")

    # --- the scenarios ----------------------------------------------------------

    def start(self):
        self.c.run(["systemctl", "start", "tern.target"])
        r = self.c.run(["systemctl", "is-active", "tern-smtp.socket", "tern-queued.socket",
                        "tern-deliverd.socket", "tern-queued.service"], check=False)
        if r.stdout.split() != ["active"] * 4:
            raise Failure("tern units not active after starting tern.target:\n" + r.stdout)

    def defaults_deliver_locally(self):
        log("no tern.conf at all: send with swaks and smtplib to alice@localhost")
        q1 = self.send_swaks("swaks message")
        q2 = self.send_smtplib("smtplib message")
        for subject, qid in (("swaks message", q1), ("smtplib message", q2)):
            msgs = self.wait_delivered(subject)
            if len(msgs) != 1:
                raise Failure(f"{subject}: delivered {len(msgs)} times")
            self.check_bytes(msgs[0], subject, qid)
            log(f"{subject}: queue id {qid}, delivered byte-exact")
            self.check_journal(qid)
        wait_until(self.spool_empty, 20, "the queue to empty")

    def local_submission(self):
        log("local submission: alice runs sendmail -t (world-connectable socket, SO_PEERCRED)")
        subject = "sendmail message"
        msg = f"To: {RCPT}\nSubject: {subject}\n\nsubmitted locally by alice\n"
        # setpriv rather than runuser/su: the volatile /etc has no PAM configuration.
        uid = self.c.run(["id", "-u", "alice"]).stdout.strip()
        gid = self.c.run(["id", "-g", "alice"]).stdout.strip()
        r = self.c.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", "--",
                        "/usr/local/sbin/sendmail", "-t"], input=msg, check=False)
        if r.returncode != 0:
            raise Failure(f"sendmail -t exited with {r.returncode}:\n{r.stdout}{r.stderr}")
        msgs = self.wait_delivered(subject)
        raw = msgs[0]
        if not raw.endswith(b"\n\nsubmitted locally by alice\n") or \
                b"\nDelivered-To: " + RCPT.encode() + b"\n" not in raw:
            raise Failure(f"{subject}: unexpected content:\n{raw.decode(errors='replace')}")
        log(f"{subject}: delivered")

    def configure_fast_retries(self):
        # A drop-in, as an administrator would add one; queued reads it at start.
        self.c.sh("mkdir -p /etc/tern/tern.conf.d && cat > /etc/tern/tern.conf.d/50-system-test.conf",
                  input="# written by tests/system/test_system.py\n"
                        "[Queue]\nMinBackoff = 1s\nMaxBackoff = 2s\n")
        self.c.run(["systemctl", "restart", "tern-queued.service"])

    def deliverd_down_then_up(self):
        log("deliverd stopped: a message is accepted and stays queued")
        self.c.run(["systemctl", "stop", "tern-deliverd.service", "tern-deliverd.socket"])
        subject = "while deliverd was down"
        qid = self.send_swaks(subject)
        if not self.spool_has(qid):
            raise Failure(f"{qid} accepted but not in /var/spool/tern/queue")
        r = self.c.run(["ternctl", "queue"], check=False)
        log(f"ternctl queue (exit {r.returncode}):\n{r.stdout}{r.stderr}".rstrip())
        if r.returncode == 0 and qid not in r.stdout:
            raise Failure(f"ternctl queue does not list {qid}")
        if self.delivered().get(subject):
            raise Failure(f"{subject}: delivered although deliverd is stopped")
        self.c.run(["systemctl", "start", "tern-deliverd.socket"])
        # Ask for an immediate retry if ternctl can; otherwise the retry timer
        # (MinBackoff = 1s) brings it.
        r = self.c.run(["ternctl", "queue", "flush"], check=False)
        log(f"ternctl queue flush: exit {r.returncode} {r.stderr.strip()}")
        msgs = self.wait_delivered(subject)
        self.check_bytes(msgs[0], subject, qid)
        wait_until(self.spool_empty, 20, "the queue to empty")
        msgs = self.delivered()[subject]
        if len(msgs) != 1:
            raise Failure(f"{subject}: delivered {len(msgs)} times")
        log(f"{subject}: {qid} delivered once deliverd's socket was back")

    def kill_queued_after_250(self):
        log("systemctl kill -s KILL tern-queued.service right after 250")
        subject = "queued killed after 250"
        qid = self.send_smtplib(subject)
        # The main process only: signalling the whole cgroup races with
        # queued's short-lived fsync threads and can fail with EIO.
        self.c.run(["systemctl", "kill", "--kill-who=main", "-s", "KILL", "tern-queued.service"])
        wait_until(lambda: self.c.run(["systemctl", "is-active", "tern-queued.service"],
                                      check=False).stdout.strip() == "active",
                   30, "tern-queued.service to be restarted")
        msgs = self.wait_delivered(subject)
        self.check_bytes(msgs[0], subject, qid)
        wait_until(self.spool_empty, 30, "the queue to empty")
        msgs = self.delivered()[subject]
        if len(msgs) != 1:
            raise Failure(f"{subject}: delivered {len(msgs)} times")
        r = self.c.run(["systemctl", "show", "-p", "NRestarts", "tern-queued.service"])
        log(f"{subject}: {qid} delivered exactly once ({r.stdout.strip()})")

    def connection_burst(self):
        """A burst from one address over MaxConnectionsPerSource= is cut short
        connection by connection; the socket itself stays listening (systemd's
        default trigger limit would have failed it)."""
        script = """
import socket, concurrent.futures as cf
def one(i):
    try:
        with socket.create_connection(("127.0.0.1", 25), timeout=30) as s:
            return s.recv(3) == b"220"
    except OSError:
        return False
with cf.ThreadPoolExecutor(50) as ex:
    r = list(ex.map(one, range(400)))
print(sum(r), len(r) - sum(r))
"""
        r = self.c.run(["python3", "-"], input=script, timeout=120)
        served, cut = map(int, r.stdout.split())
        state = self.c.run(["systemctl", "is-active", "tern-smtp.socket"], check=False)
        log(f"burst of 400 connections, 50 at a time: {served} served, {cut} cut off; "
            f"tern-smtp.socket {state.stdout.strip()}")
        if state.stdout.strip() != "active" or served == 0:
            raise Failure("tern-smtp.socket did not survive a burst of connections")
        # And it still serves mail afterwards.
        self.send_smtplib("after the burst")
        self.wait_delivered("after the burst")

    def security(self):
        worst = 0.0
        for unit in ("tern-smtp@x.service", "tern-queued.service", "tern-deliverd.service"):
            r = self.c.run(["systemd-analyze", "security", "--no-pager", unit], check=False)
            m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", r.stdout)
            if not m:
                raise Failure(f"no exposure level for {unit}:\n{r.stdout}{r.stderr}")
            level = float(m.group(1))
            log(f"security exposure {unit}: {level} {m.group(2)}")
            worst = max(worst, level)
        if worst > 9.0:
            raise Failure(f"a tern unit is rated UNSAFE ({worst})")

    def no_failed_units(self):
        r = self.c.run(["systemctl", "list-units", "--failed", "--no-legend", "--plain",
                        "tern*"], check=False)
        if r.stdout.strip():
            raise Failure("failed tern units:\n" + r.stdout)

    def dump_logs(self):
        r = self.c.run(["journalctl", "--no-pager", "-n", "300", "-u", "tern*"], check=False)
        print("----- container journal (tern units) -----\n" + r.stdout[-30000:], flush=True)
        r = self.c.run(["systemctl", "--failed", "--no-pager"], check=False)
        print(r.stdout, flush=True)


def run_system_test(name, body, tools=("swaks",), binaries=(), test_class=None,
                    stage_setup=None):
    """The frame every system test shares. Skips (77) without root, the tools
    or a build; installs the build into a stage; boots it; adds alice (a
    local user with a private home, as many distributions make them: deliverd
    has no CAP_DAC_OVERRIDE and must write her Maildir as alice); starts tern;
    runs body(t, stage) with t a test_class (default SystemTest); checks that
    no unit failed; stops the container. If body returns a function, it runs
    after the container is stopped (e.g. restoring a backup elsewhere).
    stage_setup(stage) runs before the installation. Returns the exit code."""
    if os.geteuid() != 0:
        print(f"{name}: needs root (systemd-nspawn), skipped")
        return SKIP
    for tool in ("systemd-nspawn", "nsenter", "meson") + tuple(tools):
        if not shutil.which(tool):
            print(f"{name}: {tool} is not installed, skipped")
            return SKIP
    if not os.path.isdir("/run/systemd/system") and not shutil.which("systemd") and \
            not os.path.exists("/lib/systemd/systemd"):
        print(f"{name}: systemd is not installed, skipped")
        return SKIP
    build = os.environ.get("TERN_BUILD_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "../../build")
    missing = [b for b in BINARIES + tuple(binaries)
               if not os.path.exists(os.path.join(build, b))]
    if missing:
        print(f"{name}: not built yet: {', '.join(missing)}; skipped")
        return SKIP

    started = time.monotonic()
    stage = tempfile.mkdtemp(prefix=f"tern-{name}-")
    os.chmod(stage, 0o755)
    c = Container(stage, f"tern-{name}-{os.getpid()}")
    t = None
    ok = False
    try:
        if stage_setup:
            stage_setup(stage)
        r = subprocess.run(["meson", "install", "-C", build, "--no-rebuild", "--destdir", stage],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise Failure(f"meson install failed:\n{r.stdout}{r.stderr}")
        c.boot()
        log(f"booted in {time.monotonic() - started:.1f}s")
        t = (test_class or SystemTest)(c)
        c.run(["useradd", "--create-home", "--shell", "/bin/sh", "alice"])
        c.run(["chmod", "0700", "/home/alice"])
        t.start()
        after = body(t, stage)
        t.no_failed_units()
        if callable(after):
            c.stop()
            after()
        ok = True
    except Failure as e:
        print(f"{name}: FAIL: {e}", flush=True)
        if t is not None and c.proc is not None and c.proc.poll() is None:
            t.dump_logs()
        elif c.pid is None:
            print(c.console_text())
    finally:
        if os.environ.get("TERN_KEEP_CONTAINER") and c.pid is not None and \
                c.proc.poll() is None:
            log(f"kept container: nsenter -t {c.pid} -a bash  (kill {c.proc.pid} to stop)")
        else:
            c.stop()
            shutil.rmtree(stage, ignore_errors=True)
    log(f"{'passed' if ok else 'failed'} in {time.monotonic() - started:.1f}s")
    return 0 if ok else 1


def main():
    def body(t, stage):
        t.defaults_deliver_locally()
        t.local_submission()
        t.configure_fast_retries()
        t.deliverd_down_then_up()
        t.kill_queued_after_250()
        t.connection_burst()
        t.security()
    return run_system_test("system-test", body)


if __name__ == "__main__":
    sys.exit(main())
