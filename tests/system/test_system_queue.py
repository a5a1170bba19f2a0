#!/usr/bin/env python3
"""System test of tern-queued under a real systemd, in systemd-nspawn (the
Container of test_system.py):

  - `systemctl status` shows queued's STATUS= line with the queue counts, and
    the unit runs with its watchdog (WatchdogSec=) without being killed;
  - with deliverd stopped, a message is put on hold with ternctl; `systemctl
    stop tern-queued.service` ends it cleanly (Result=success, exit 0, the
    STOPPING and "Stopped" log lines), the message stays queued and held
    across the restart, and `ternctl queue release` has it delivered;
  - `ternctl queue show` and `--json` describe it; an unprivileged user may
    list the queue but not change it;
  - 30 messages sent at once over 10 connections are all accepted and
    delivered, with the group commit's fsync threads allowed by the unit's
    sandbox (no "Cannot start threads" in the journal).

Needs root and systemd-nspawn; exits 77 otherwise (as test_system.py)."""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_system as ts  # noqa: E402
from test_system import Failure, log, wait_until  # noqa: E402


def show(c, prop, unit="tern-queued.service"):
    return c.run(["systemctl", "show", "-p", prop, "--value", unit]).stdout.strip()


def status_and_watchdog(t):
    c = t.c
    log("STATUS= and the watchdog")
    text = wait_until(lambda: (lambda s: s if re.match(r"\d+ queued, \d+ active, \d+ deferred, "
                                                       r"\d+ held; ", s) else None)(
        show(c, "StatusText")), 20, "queued's STATUS= in systemctl show")
    log(f"  StatusText={text}")
    wd = show(c, "WatchdogUSec")
    log(f"  WatchdogUSec={wd}")
    if wd in ("0", "infinity", ""):
        raise Failure(f"tern-queued.service runs without a watchdog (WatchdogUSec={wd})")


def hold_stop_release(t):
    c = t.c
    log("hold, systemctl stop, start, release")
    c.run(["systemctl", "stop", "tern-deliverd.service", "tern-deliverd.socket"])
    subject = "held across a stop"
    qid = t.send_smtplib(subject)
    r = c.run(["ternctl", "queue", "hold", qid])
    if r.stdout != "hold: 1 message put on hold\n":
        raise Failure(f"ternctl queue hold: {r.stdout}{r.stderr}")
    wait_until(lambda: re.search(r"\b1 held\b", show(c, "StatusText")), 20,
               "STATUS= counting the held message")
    pid = show(c, "MainPID")
    c.run(["systemctl", "stop", "tern-queued.service"])
    result, status = show(c, "Result"), show(c, "ExecMainStatus")
    log(f"  stopped: Result={result} ExecMainStatus={status}")
    if result != "success" or status != "0":
        raise Failure(f"tern-queued.service did not stop cleanly: Result={result}, "
                      f"ExecMainStatus={status}")
    j = c.run(["journalctl", "--no-pager", "-o", "cat", f"_PID={pid}"]).stdout
    if "Stopping: no new messages or deliveries" not in j or \
            "Stopped; 1 message stay queued" not in j:
        raise Failure(f"queued's stop is not in the journal:\n{j}")
    if not t.spool_has(qid):
        raise Failure(f"{qid} is gone from the spool after the stop")
    c.run(["systemctl", "start", "tern-queued.service", "tern-deliverd.socket"])
    out = c.run(["ternctl", "queue"]).stdout
    if not re.search(rf"^{qid}!", out, re.M):
        raise Failure(f"{qid} is not listed on hold after the restart:\n{out}")
    shown = c.run(["ternctl", "queue", "show", qid]).stdout
    log("  ternctl queue show:\n" + "\n".join("    " + ln for ln in shown.splitlines()))
    if not shown.startswith(f"Queue ID:     {qid}\nState:        hold\n") or \
            f"Subject: {subject}" not in shown:
        raise Failure(f"ternctl queue show {qid}:\n{shown}")
    d = json.loads(c.run(["ternctl", "queue", "show", qid, "--json"]).stdout)
    if d["state"] != "hold" or d["recipients"][0]["address"] != ts.RCPT:
        raise Failure(f"ternctl queue show --json: {d}")
    uid = c.run(["id", "-u", "alice"]).stdout.strip()
    gid = c.run(["id", "-g", "alice"]).stdout.strip()
    as_alice = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", "--",
                "/usr/local/sbin/ternctl"]
    r = c.run(as_alice + ["queue"], check=False)
    if r.returncode != 0 or qid not in r.stdout:
        raise Failure(f"alice cannot list the queue: {r.stdout}{r.stderr}")
    r = c.run(as_alice + ["queue", "release", qid], check=False)
    if r.returncode != 1 or "Permission denied" not in r.stderr:
        raise Failure(f"alice could release a message: {r.returncode} {r.stdout}{r.stderr}")
    if t.delivered().get(subject):
        raise Failure(f"{subject}: delivered while on hold")
    c.run(["ternctl", "queue", "release", qid])
    msgs = t.wait_delivered(subject)
    t.check_bytes(msgs[0], subject, qid)
    wait_until(t.spool_empty, 30, "the queue to empty")
    log(f"  {qid}: held across a stop and a start, delivered once released")


BURST = """
import smtplib, threading
codes = []
def one(n):
    with smtplib.SMTP("127.0.0.1", 25, local_hostname="burst.test", timeout=60) as s:
        s.ehlo()
        for i in range(3):
            s.mail("sender@example.org")
            s.rcpt("alice@localhost")
            codes.append(s.data(f"Subject: burst {n}/{i}\\r\\n\\r\\nx\\r\\n".encode())[0])
ts = [threading.Thread(target=one, args=(n,)) for n in range(10)]
[t.start() for t in ts]
[t.join() for t in ts]
print(sorted(codes) == [250] * 30, len(codes))
"""


def burst(t):
    c = t.c
    log("a burst of 30 messages over 10 connections (group commit under the unit's sandbox)")
    r = c.run(["python3", "-"], input=BURST, check=False)
    if r.stdout.strip() != "True 30":
        raise Failure(f"the burst was not all accepted: {r.stdout}{r.stderr}")
    wait_until(lambda: sum(1 for s in t.delivered() if s.startswith("burst ")) == 30, 60,
               "the 30 burst messages delivered")
    j = c.run(["journalctl", "--no-pager", "-o", "cat", "-u", "tern-queued.service"]).stdout
    if "Cannot start threads" in j:
        raise Failure("queued could not start its fsync threads under the unit's sandbox:\n" + j)


def main():
    def body(t, stage):
        status_and_watchdog(t)
        hold_stop_release(t)
        burst(t)
    return ts.run_system_test("system-test-queue", body)

if __name__ == "__main__":
    sys.exit(main())
