#!/usr/bin/env python3
"""System test: least privilege, checked (DESIGN.md promise 5).

Boots the installed units in a throwaway container (test_system.Container) and
  - reads `systemd-analyze security` of every tern service unit installed
    (templates through an instance) and fails when one is above its limit in
    units/exposure.txt (the one place the limits live; docs/hardening.md
    explains each), or when a tern service has no limit there;
  - opens a live SMTP connection to port 25, waits for the greeting and shows
    that the smtpd serving it runs under a seccomp filter with no new
    privileges and no capabilities at all: /proc/PID/status has Seccomp: 2,
    NoNewPrivs: 1 and zero CapEff/CapPrm/CapBnd/CapAmb; and the same for an
    smtpd session forked by tern-smtpd-supervisor (the alternative socket
    mode, moved to port 2501 by a drop-in for the test), before and after
    `systemctl reload tern.target` reached the supervisor, and after a
    session killed by SIGSEGV made the supervisor re-execute itself.

Needs root and systemd-nspawn; exits 77 otherwise (as test_system.py).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_system as ts  # noqa: E402

SOURCE = os.environ.get("TERN_SOURCE_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "../..")
EXPOSURE_FILE = os.path.join(SOURCE, "units", "exposure.txt")


def log(msg):
    print(f"security-test: {msg}", flush=True)


def read_limits():
    """{unit file name: maximum exposure} from units/exposure.txt."""
    limits = {}
    with open(EXPOSURE_FILE) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ts.Failure(f"{EXPOSURE_FILE}:{n}: expected 'UNIT MAXIMUM'")
            limits[parts[0]] = float(parts[1])
    return limits


def installed_services(c):
    r = c.run(["systemctl", "list-unit-files", "--no-legend", "--plain", "tern*.service"])
    return sorted(line.split()[0] for line in r.stdout.splitlines() if line.strip())


def exposure(c, unit):
    name = unit.replace("@.service", "@check.service")
    r = c.run(["systemd-analyze", "security", "--no-pager", name], check=False)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
    if not m:
        raise ts.Failure(f"no exposure level for {name}:\n{r.stdout}{r.stderr}")
    return float(m.group(1))


def check_exposure(c):
    limits = read_limits()
    units = installed_services(c)
    if not units:
        raise ts.Failure("no tern services installed")
    bad = []
    for unit in units:
        if unit not in limits:
            bad.append(f"{unit}: no limit in units/exposure.txt")
            continue
        level = exposure(c, unit)
        verdict = "ok" if level <= limits[unit] else "ABOVE LIMIT"
        log(f"exposure {unit}: {level:.1f} (limit {limits[unit]:.1f}) {verdict}")
        if level > limits[unit]:
            bad.append(f"{unit}: exposure {level:.1f} above {limits[unit]:.1f}")
    if bad:
        raise ts.Failure("; ".join(bad))


HOLD_CLIENT = r"""
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
buf = b""
while b"\n" not in buf:
    d = s.recv(512)
    if not d:
        break
    buf += d
print(buf.decode(errors="replace").strip(), flush=True)
sys.stdin.read()  # hold the session open until the test closes stdin
s.sendall(b"QUIT\r\n")
"""


def status_fields(c, pid):
    r = c.run(["cat", f"/proc/{pid}/status"], check=False)
    return dict(line.split(":", 1) for line in r.stdout.splitlines() if ":" in line)


def check_live_sandbox(c, port=25):
    before = set(c.run(["pgrep", "-x", "tern-smtpd"], check=False).stdout.split())
    client = subprocess.Popen(["nsenter", "-t", str(c.pid), "-n", "python3", "-c", HOLD_CLIENT,
                               str(port)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        greeting = client.stdout.readline().strip()
        if not greeting.startswith("220"):
            raise ts.Failure(f"no 220 greeting on port {port}: {greeting!r}")
        pids = ts.wait_until(
            lambda: set(c.run(["pgrep", "-x", "tern-smtpd"], check=False).stdout.split()) - before,
            20, "the tern-smtpd serving the connection")
        pid = sorted(pids)[0]
        st = ts.wait_until(lambda: (lambda s: s if s.get("Seccomp", "").strip() == "2" else None)(
            status_fields(c, pid)), 10, f"seccomp filter mode in /proc/{pid}/status")
        shown = {k: st.get(k, "?").strip() for k in ("Seccomp", "Seccomp_filters", "NoNewPrivs",
                                                     "CapInh", "CapPrm", "CapEff", "CapBnd",
                                                     "CapAmb", "Uid")}
        log(f"live smtpd {pid} (port {port}): " + ", ".join(f"{k}={v}" for k, v in shown.items()))
        want = {"Seccomp": "2", "NoNewPrivs": "1"}
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            want[cap] = "0000000000000000"
        wrong = {k: shown[k] for k, v in want.items() if shown[k] != v}
        if wrong:
            raise ts.Failure(f"smtpd {pid} is not sandboxed as expected: {wrong}")
        if shown["Uid"].split()[0] == "0":
            raise ts.Failure(f"smtpd {pid} runs as root")
    finally:
        client.stdin.close()
        try:
            client.wait(timeout=30)
        except subprocess.TimeoutExpired:
            client.kill()
            client.wait()


def check_supervisor_reload(c):
    """The supervisor holds the configuration its sessions are forked with:
    `systemctl reload tern.target` must reach it (PropagatesReloadTo=), and
    the session after it is sandboxed as before."""
    pid = c.run(["systemctl", "show", "-P", "MainPID", "tern-smtpd-supervisor.service"]).stdout.strip()
    c.run(["systemctl", "reload", "tern.target"])
    ts.wait_until(lambda: "Configuration reloaded" in c.run(
        ["journalctl", "--no-pager", "-o", "cat", "_PID=" + pid], check=False).stdout,
        30, "the supervisor's reload entry")
    log(f"reload of tern.target reached tern-smtpd-supervisor (pid {pid})")
    check_live_sandbox(c, 2501)


def supervisor_journal(c, pid):
    return c.run(["journalctl", "--no-pager", "-o", "cat", "_PID=" + pid], check=False).stdout


def check_supervisor_reexec(c):
    """Under the installed unit: the supervisor prepared the seccomp filter
    once (no fallback warning), and a session killed by SIGSEGV makes it
    execute itself again (same main PID, still active, logged), after which
    new sessions are served and sandboxed as before."""
    pid = c.run(["systemctl", "show", "-P", "MainPID", "tern-smtpd-supervisor.service"]).stdout.strip()
    if "Cannot prepare" in supervisor_journal(c, pid):
        raise ts.Failure("the supervisor could not prepare the sandbox:\n" + supervisor_journal(c, pid))
    client = subprocess.Popen(["nsenter", "-t", str(c.pid), "-n", "python3", "-c", HOLD_CLIENT, "2501"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        greeting = client.stdout.readline().strip()
        if not greeting.startswith("220"):
            raise ts.Failure(f"no 220 greeting on port 2501: {greeting!r}")
        kids = ts.wait_until(lambda: c.run(["pgrep", "-x", "-P", pid, "tern-smtpd"],
                                           check=False).stdout.split(), 20, "the session process")
        c.run(["kill", "-SEGV", kids[0]])
        ts.wait_until(lambda: "re-executed" in supervisor_journal(c, pid), 30,
                      "the supervisor's re-execution after a crashed session")
    finally:
        client.stdin.close()
        try:
            client.wait(timeout=30)
        except subprocess.TimeoutExpired:
            client.kill()
            client.wait()
    r = c.run(["systemctl", "show", "-P", "MainPID,ActiveState", "tern-smtpd-supervisor.service"])
    if r.stdout.split() != [pid, "active"]:
        raise ts.Failure(f"after the re-execution the supervisor is {r.stdout.split()}, expected [{pid}, active]")
    log(f"a crashed session made the supervisor (pid {pid}) re-execute itself")
    check_live_sandbox(c, 2501)


def boot(c):
    """Container.boot, tolerating its one race: right after exec systemctl
    may answer "offline" (no bus yet), which boot() takes as the state."""
    try:
        c.boot()
    except ts.Failure as e:
        if c.pid is None or "'offline'" not in str(e):
            raise
        ts.wait_until(lambda: c.run(["systemctl", "is-system-running", "--wait"], check=False,
                                    timeout=120).stdout.strip() in ("running", "degraded"),
                      120, "systemd in the container to finish booting")


def main():
    if os.geteuid() != 0:
        print("security-test: needs root (systemd-nspawn), skipped")
        return ts.SKIP
    for tool in ("systemd-nspawn", "nsenter", "meson"):
        if not shutil.which(tool):
            print(f"security-test: {tool} is not installed, skipped")
            return ts.SKIP
    build = os.environ.get("TERN_BUILD_DIR") or os.path.join(SOURCE, "build")
    missing = [b for b in ts.BINARIES if not os.path.exists(os.path.join(build, b))]
    if missing:
        print(f"security-test: not built yet: {', '.join(missing)}; skipped")
        return ts.SKIP

    started = time.monotonic()
    stage = tempfile.mkdtemp(prefix="tern-security-")
    os.chmod(stage, 0o755)
    c = ts.Container(stage, f"tern-security-{os.getpid()}")
    ok = False
    try:
        r = subprocess.run(["meson", "install", "-C", build, "--no-rebuild", "--destdir", stage],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise ts.Failure(f"meson install failed:\n{r.stdout}{r.stderr}")
        boot(c)
        c.run(["systemctl", "start", "tern.target"])
        check_exposure(c)
        check_live_sandbox(c)
        # The alternative mode, beside port 25 for the test: the smtpd the
        # supervisor forks is sandboxed the same way.
        c.sh("mkdir -p /etc/systemd/system/tern-smtpd-supervisor.socket.d && "
             "cat > /etc/systemd/system/tern-smtpd-supervisor.socket.d/50-test.conf",
             input="[Socket]\nListenStream=\nListenStream=2501\n")
        c.run(["systemctl", "daemon-reload"])
        c.run(["systemctl", "start", "tern-smtpd-supervisor.socket"])
        check_live_sandbox(c, 2501)
        check_supervisor_reload(c)
        check_supervisor_reexec(c)
        ok = True
    except ts.Failure as e:
        print(f"security-test: FAIL: {e}", flush=True)
        if c.pid is not None:
            r = c.run(["journalctl", "--no-pager", "-n", "100"], check=False)
            print(r.stdout[-10000:])
        else:
            print(c.console_text())
    finally:
        c.stop()
        shutil.rmtree(stage, ignore_errors=True)
    log(f"{'passed' if ok else 'failed'} in {time.monotonic() - started:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
