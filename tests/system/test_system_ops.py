#!/usr/bin/env python3
"""System test of the operations tools, under a real systemd in
systemd-nspawn (the Container of test_system.py):

  - `ternctl log ID` shows one message's life from the journal: smtpd's
    connect (matched by TERN_SESSION), queued, deliverd, removal, in order;
    `journalctl -x` explains a delivery with tern's message catalog;
  - tern-metrics.socket (enabled by hand: off by default) serves the same
    counters as `ternctl stats`;
  - `systemctl reload tern.target` applies a valid change (new sessions see
    it, queued and deliverd log the reload, their PIDs stay), refuses an
    invalid one (the reload fails, nothing restarts), and an SMTP session
    opened before both reloads still gets its message delivered;
  - `ternctl backup` taken with mail queued, restored into a second, fresh
    container, delivers that mail there.

Needs root and systemd-nspawn; exits 77 otherwise (as test_system.py)."""

import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_system as ts  # noqa: E402
from test_system import Container, Failure, SystemTest, log, wait_until  # noqa: E402

LOG_MID_DELIVERED = "4f2b8a7e0c6d4b1e9a3f5c7d2e1b0a94"
LOG_MID_RELOADED = "4f2b8a7e0c6d4b1e9a3f5c7d2e1b0a99"

HELD_SESSION = """
import os, smtplib, sys, time
s = smtplib.SMTP("127.0.0.1", 25, local_hostname="held.test", timeout=120)
s.ehlo()
s.mail("sender@example.org")
code, _ = s.rcpt("alice@localhost")
assert code == 250, code
print("waiting", flush=True)
while not os.path.exists("/run/system-test/go"):
    time.sleep(0.05)
code, reply = s.data(b"Subject: held session\\r\\n\\r\\nsent across two reloads\\r\\n")
print(code, reply.decode(), flush=True)
s.quit()
"""


def ctl(c, *args, check=True):
    return c.run(["ternctl", *args], check=check)


def main_pids(c):
    r = c.run(["systemctl", "show", "-p", "MainPID", "--value", "tern-queued.service",
               "tern-deliverd.service"])
    return r.stdout.split()


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise Failure(f"{name} not in the metrics:\n{text}")


def journal_log(t):
    log("ternctl log: one message's life, in order")
    qid = t.send_swaks("traced message")
    t.wait_delivered("traced message")
    wait_until(lambda: "removed" in ctl(t.c, "log", qid, check=False).stdout, 20,
               "the removal in ternctl log")
    out = ctl(t.c, "log", qid).stdout
    lines = out.splitlines()
    for ln in lines:
        log("  " + ln)
    idents = [re.search(r" (tern-[a-z]+)\[\d+\]: ", ln).group(1) for ln in lines]
    if idents[0] != "tern-smtpd" or not re.search(r"tern-smtpd\[\d+\]: connect from ", lines[0]):
        raise Failure("ternctl log does not start with smtpd's connect line:\n" + out)
    if not {"tern-smtpd", "tern-queued", "tern-deliverd"} <= set(idents):
        raise Failure("ternctl log misses a process:\n" + out)
    if not lines[-1].endswith(f"{qid}: removed"):
        raise Failure("ternctl log does not end with the removal:\n" + out)
    stamps = [ln[:22] for ln in lines]
    if not any(f"{qid}: to=<alice@localhost>, relay=local, delay=" in ln for ln in lines):
        raise Failure("no Postfix-shaped delivery line:\n" + out)
    if stamps != sorted(stamps, key=lambda s: time.strptime(s[:15], "%b %d %H:%M:%S")):
        raise Failure("ternctl log is not in time order:\n" + out)
    if ctl(t.c, "log", "NOSUCHID", check=False).returncode != 1:
        raise Failure("ternctl log of an unknown id did not fail")

    log("ternctl log --follow: a delivery shows up live")
    follow = subprocess.Popen(["nsenter", "-t", str(t.c.pid), "-a", "ternctl", "log", "--follow"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = follow.stdout.readline()  # the recent history comes first
        if f"{qid}: " not in first and "tern-" not in first:
            raise Failure(f"ternctl log --follow printed {first!r}")
        live = t.send_swaks("followed message")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = follow.stdout.readline()
            if not line:
                raise Failure("ternctl log --follow ended: " + follow.stderr.read())
            if f"{live}: to=<alice@localhost>, relay=local" in line and "status=sent" in line:
                log("  " + line.rstrip())
                break
        else:
            raise Failure("the live delivery did not show in ternctl log --follow")
    finally:
        follow.kill()
        follow.wait()

    log("a rejection is one entry with TERN_DSN, counted by the metrics")
    r = t.c.run(["python3", "-c", "import smtplib\n"
                 "s = smtplib.SMTP('127.0.0.1', 25)\ns.ehlo('client.test')\n"
                 "s.mail('sender@example.org')\nprint(s.rcpt('nosuchuser@localhost')[0])\ns.quit()"])
    if r.stdout.strip() != "550":
        raise Failure(f"RCPT to an unknown user: {r.stdout}")
    rej = wait_until(lambda: t.c.run(["journalctl", "--no-pager", "-o", "cat",
                                      "MESSAGE_ID=4f2b8a7e0c6d4b1e9a3f5c7d2e1b0a92", "TERN_DSN=5.1.1",
                                      "TERN_RCPT=nosuchuser@localhost"]).stdout.strip(), 20,
                     "the rejection in the journal")
    log("  " + rej)
    if "reject: RCPT from " not in rej:
        raise Failure(f"not a Postfix-shaped rejection: {rej}")

    log("journalctl -x: the catalog explains a delivery")
    t.c.run(["journalctl", "--update-catalog"])
    r = t.c.run(["journalctl", "--no-pager", "-x", f"MESSAGE_ID={LOG_MID_DELIVERED}",
                 f"TERN_QUEUE_ID={qid}"])
    if "delivered the message to this recipient" not in r.stdout:
        raise Failure("journalctl -x shows no catalog text:\n" + r.stdout)


def metrics(t):
    log("metrics: tern-metrics.socket serves ternctl stats' counters")
    # (Off by default in the package; this container applies the host's
    # presets to every unit at first boot, so it is not checked here.)
    t.c.run(["systemctl", "start", "tern-metrics.socket"])
    script = ("import urllib.request\n"
              "r = urllib.request.urlopen('http://127.0.0.1:9154/metrics', timeout=30)\n"
              "print(r.headers['Content-Type'])\n"
              "print(r.read().decode(), end='')\n")
    http = t.c.run(["python3", "-c", script]).stdout
    ctype, _, text = http.partition("\n")
    if ctype != "text/plain; version=0.0.4; charset=utf-8":
        raise Failure(f"Content-Type {ctype!r}")
    stats = ctl(t.c, "stats").stdout
    key = 'tern_deliveries_total{transport="local",status="delivered"}'
    if metric(text, key) < 2 or metric(text, key) != metric(stats, key):
        raise Failure(f"{key}: http {metric(text, key)}, ternctl stats {metric(stats, key)}")
    if metric(text, 'tern_messages_rejected_total{stage="RCPT",dsn="5.1.1"}') != 1:
        raise Failure("the rejection is not counted")
    if metric(text, "tern_messages_received_total") < 2:
        raise Failure("tern_messages_received_total below 2")
    sessions = metric(text, 'tern_smtpd_sessions_total{tls="no"}')
    log(f"  {key} = {metric(text, key):.0f}, sessions without TLS {sessions:.0f}")


def reload(t):
    log("reload: a session held open across a valid and an invalid reload")
    c = t.c
    c.run(["mkdir", "-p", "/run/system-test", "/etc/tern/tern.conf.d"])
    held = subprocess.Popen(["nsenter", "-t", str(c.pid), "-a", "python3", "-c", HELD_SESSION],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if held.stdout.readline().strip() != "waiting":
            raise Failure("held session failed: " + held.stderr.read())
        pids = main_pids(c)
        with open(c.path("/etc/tern/tern.conf.d/50-ops.conf"), "w") as f:
            f.write("[SMTP]\nBanner = ESMTP reloaded\n")
        c.run(["systemctl", "reload", "tern.target"])
        wait_until(lambda: len(c.run(["journalctl", "--no-pager", "-o", "cat",
                                      f"MESSAGE_ID={LOG_MID_RELOADED}"]).stdout.splitlines()) == 2,
                   20, "queued and deliverd logging the reload")
        if main_pids(c) != pids:
            raise Failure("a reload restarted a daemon")
        greeting = c.run(["python3", "-c", "import smtplib; s = smtplib.SMTP(); "
                          "print(s.connect('127.0.0.1', 25)[1].decode()); s.quit()"]).stdout.strip()
        if not greeting.endswith("ESMTP reloaded"):
            raise Failure(f"a new session greets with {greeting!r}")

        with open(c.path("/etc/tern/tern.conf.d/60-bad.conf"), "w") as f:
            f.write("[Queue]\nMaxBackoff = soon\n")
        # The target's own reload job succeeds whatever its services do; the
        # services' reloads fail at ExecReload=+ternctl check, before SIGHUP.
        c.run(["systemctl", "reload", "tern.target"], check=False)
        r = c.run(["systemctl", "reload", "tern-queued.service"], check=False)
        if r.returncode == 0:
            raise Failure("systemctl reload tern-queued accepted an invalid configuration")
        failed = c.run(["journalctl", "--no-pager", "-o", "cat", "-u", "tern-deliverd.service",
                        "-u", "tern-queued.service"]).stdout
        if failed.count("Reload failed for tern-") < 3:
            raise Failure("the invalid configuration was not refused by the reloads:\n" + failed)
        if len(c.run(["journalctl", "--no-pager", "-o", "cat",
                      f"MESSAGE_ID={LOG_MID_RELOADED}"]).stdout.splitlines()) != 2:
            raise Failure("a daemon took the invalid configuration")
        log("  invalid configuration refused by ExecReload=+ternctl check")
        if main_pids(c) != pids:
            raise Failure("a refused reload restarted a daemon")
        if c.run(["systemctl", "is-active", "tern-queued.service", "tern-deliverd.service"],
                 check=False).stdout.split() != ["active", "active"]:
            raise Failure("a refused reload stopped a daemon")

        with open(c.path("/run/system-test/go"), "w"):
            pass
        out, err = held.communicate(timeout=60)
        if not out.startswith("250 "):
            raise Failure(f"held session after the reloads: {out}{err}")
        t.wait_delivered("held session")
        log("  held session: " + out.strip())
    finally:
        if held.poll() is None:
            held.kill()
            held.wait()
        for f in ("/etc/tern/tern.conf.d/60-bad.conf", "/etc/tern/tern.conf.d/50-ops.conf"):
            try:
                os.unlink(c.path(f))
            except FileNotFoundError:
                pass


def backup(t, stage):
    log("backup: two messages queued while deliverd is stopped")
    c = t.c
    c.run(["systemctl", "stop", "tern-deliverd.socket", "tern-deliverd.service"])
    q1 = t.send_swaks("backed up one")
    q2 = t.send_swaks("backed up two")
    ctl(c, "backup", "/root/tern-backup.tar.gz")
    archive = os.path.join(stage, "tern-backup.tar.gz")
    shutil.copyfile(c.path("/root/tern-backup.tar.gz"), archive)
    names = subprocess.run(["tar", "-tzf", archive], capture_output=True, text=True,
                           check=True).stdout.split()
    for q in (q1, q2):
        if f"var/spool/tern/queue/{q}" not in names:
            raise Failure(f"{q} not in the backup: {names}")
    return (q1, q2), archive


def restore(stage, archive, qids):
    log("restore into a fresh container, then start tern: the queued mail is delivered")
    c = Container(stage, f"tern-ops-restore-{os.getpid()}")
    t = None
    try:
        c.boot()
        t = SystemTest(c)
        c.run(["useradd", "--create-home", "--shell", "/bin/sh", "alice"])
        c.run(["chmod", "0700", "/home/alice"])
        shutil.copyfile(archive, c.path("/root/tern-backup.tar.gz"))
        # The documented procedure: nothing of tern running or listening.
        c.run(["systemctl", "stop", "tern.target", "tern-queued.socket", "tern-queued.service",
               "tern-deliverd.socket", "tern-deliverd.service", "tern-smtp.socket"])
        ctl(c, "restore", "/root/tern-backup.tar.gz")
        for q in qids:
            if not t.spool_has(q):
                raise Failure(f"{q} not in the restored spool")
        t.start()
        t.wait_delivered("backed up one")
        t.wait_delivered("backed up two")
        wait_until(t.spool_empty, 30, "the restored queue to empty")
        t.no_failed_units()
    except Failure:
        if t is not None:
            t.dump_logs()
        raise
    finally:
        c.stop()


def main():
    def body(t, stage):
        journal_log(t)
        reload(t)
        metrics(t)
        qids, archive = backup(t, stage)
        # After the container is stopped: restore into a fresh one.
        return lambda: restore(stage, archive, qids)
    return ts.run_system_test("system-test-ops", body, binaries=("metrics/tern-metrics",))

if __name__ == "__main__":
    sys.exit(main())
