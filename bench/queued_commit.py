#!/usr/bin/env python3
"""Group-commit throughput of tern-queued alone: N concurrent submitters, each
one IPC connection doing whole transactions (BEGIN, RCPT, DATA, END) one after
another as smtpd does, and waiting for QUEUED (file and directory durable).
Prints messages per second for each N. No deliverd runs: this measures only
the path to "250".

    TERN_BUILD_DIR=build-x python3 bench/queued_commit.py [SECONDS] [N...]
"""
import multiprocessing
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402
import queued_util  # noqa: E402

BODY = (b"From: a@example.org\r\nTo: b@example.net\r\nSubject: bench\r\n\r\n" +
        b"x" * 70 + b"\r\n") * 28  # about 2 KB


def worker(t, deadline, out):
    n = 0
    with queued_util.connect(t, "smtpd") as c:
        while time.monotonic() < deadline:
            queued_util.submit(c, "a@example.org", ["b@example.net"], BODY)
            n += 1
    out.put(n)


def run(seconds, n):
    with harness.Tern(start=("queued",)) as t:
        out = multiprocessing.Queue()
        start = time.monotonic()
        deadline = start + seconds
        procs = [multiprocessing.Process(target=worker, args=(t, deadline, out))
                 for _ in range(n)]
        for p in procs:
            p.start()
        total = sum(out.get() for _ in procs)
        for p in procs:
            p.join()
        elapsed = time.monotonic() - start
        return total, elapsed


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5
    ns = [int(a) for a in sys.argv[2:]] or [1, 5, 20]
    for n in ns:
        total, elapsed = run(seconds, n)
        print(f"{n:3d} submitters: {total:6d} messages in {elapsed:5.2f} s = "
              f"{total / elapsed:7.0f} msg/s", flush=True)


if __name__ == "__main__":
    main()
