#!/usr/bin/env python3
"""System test of the Debian package: builds the .deb from this tree with
dpkg-buildpackage, installs it with apt into a minimal Debian 12 root
(debootstrap, cached in /var/cache/tern-test/ between runs) booted with
systemd-nspawn, and checks that

  - the install enables and starts tern.target (not tern-metrics.socket);
  - mail sent with the packaged sendmail and over SMTP reaches a Maildir;
  - `apt-get remove` stops every tern unit and keeps the spool and
    /etc/tern; `apt-get purge` removes the spool.

The root is made once from the mirror apt uses on this machine (with tern's
run-time dependencies included, so installing the .deb needs no network) and
reused; a fresh copy is booted each run. Creating it takes minutes, so
without a cached root the test is skipped (77) unless TERN_PACKAGE_TEST=1.
Needs root, debootstrap, dpkg-buildpackage and systemd-nspawn.
TERN_PACKAGE_DEB=FILE skips the build and tests that .deb."""

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_system as ts  # noqa: E402
from test_system import Container, Failure, log, wait_until  # noqa: E402

CACHE = "/var/cache/tern-test"
ROOT = os.path.join(CACHE, "bookworm-root")
INCLUDE = "systemd,systemd-sysv,libcdb1,libssl3,libseccomp2,libcap2,libcrypt1"
BUILD_TIMEOUT = 900
DEBOOTSTRAP_TIMEOUT = 1200

SMTP_SCRIPT = r"""
exec 3<>/dev/tcp/127.0.0.1/25
expect() { IFS= read -r line <&3; case "$line" in "$1"*) ;; *) echo "got: $line" >&2; exit 1;; esac
           while [ "${line:3:1}" = "-" ]; do IFS= read -r line <&3; done; }
expect 220
printf 'EHLO client.test\r\n' >&3; expect 250
printf 'MAIL FROM:<sender@example.org>\r\n' >&3; expect 250
printf 'RCPT TO:<alice@localhost>\r\n' >&3; expect 250
printf 'DATA\r\n' >&3; expect 354
printf 'Subject: over smtp\r\n\r\nhello from bash\r\n.\r\n' >&3; expect 250
echo "$line"
printf 'QUIT\r\n' >&3; expect 221
"""


def mirror():
    """The Debian mirror apt uses here (deb822 or one-line sources)."""
    for path in glob.glob("/etc/apt/sources.list.d/*.sources"):
        with open(path) as f:
            text = f.read()
        for stanza in text.split("\n\n"):
            m = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            if m and re.search(r"^Suites:.*\bbookworm\b", stanza, re.M) and "security" not in m.group(1):
                return m.group(1)
    if os.path.exists("/etc/apt/sources.list"):
        with open("/etc/apt/sources.list") as f:
            for line in f:
                m = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", line)
                if m:
                    return m.group(1)
    return "http://deb.debian.org/debian"


def make_root():
    if os.path.exists(os.path.join(ROOT, ".complete")):
        return
    os.makedirs(CACHE, exist_ok=True)
    tmp = ROOT + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    started = time.monotonic()
    log(f"debootstrap bookworm from {mirror()} into {ROOT} (cached for later runs)")
    r = subprocess.run(["debootstrap", "--variant=minbase", f"--include={INCLUDE}", "bookworm",
                        tmp, mirror()], capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT)
    if r.returncode != 0:
        raise Failure(f"debootstrap failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    with open(os.path.join(tmp, ".complete"), "w") as f:
        f.write(f"debootstrap took {time.monotonic() - started:.0f}s\n")
    shutil.rmtree(ROOT, ignore_errors=True)
    os.rename(tmp, ROOT)
    log(f"root made in {time.monotonic() - started:.0f}s")


def build_deb(source, work):
    """dpkg-buildpackage on a copy of the tree (it writes into the source)."""
    src = os.path.join(work, "tern")
    files = subprocess.run(["git", "-C", source, "ls-files", "-co", "--exclude-standard", "-z"],
                           capture_output=True, check=True).stdout.split(b"\0")
    os.makedirs(src)
    for f in files:
        f = f.decode()
        if not f or not os.path.isfile(os.path.join(source, f)):
            continue
        os.makedirs(os.path.join(src, os.path.dirname(f)), exist_ok=True)
        shutil.copy2(os.path.join(source, f), os.path.join(src, f))
    started = time.monotonic()
    env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck parallel=2")
    r = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env,
                       capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    if r.returncode != 0:
        raise Failure(f"dpkg-buildpackage failed:\n{r.stdout[-5000:]}{r.stderr[-3000:]}")
    debs = glob.glob(os.path.join(work, "tern_*.deb"))
    if len(debs) != 1:
        raise Failure(f"expected one tern_*.deb, found {debs}")
    log(f"built {os.path.basename(debs[0])} in {time.monotonic() - started:.0f}s")
    return debs[0]


class RootContainer(Container):
    """Container booting a directory of its own instead of the host's /."""

    def __init__(self, stage, name, root):
        super().__init__(stage, name)
        self.root = root

    copy_host_etc = False

    def nspawn_command(self):
        return ["systemd-nspawn", "-D", self.root, "-b", "--register=no", "--keep-unit",
                "--private-network", "-M", self.name, "systemd.firstboot=off"]


def active(c, *units):
    return c.run(["systemctl", "is-active", *units], check=False).stdout.split()


def maildir(c):
    d = c.path("/home/alice/Maildir/new")
    out = []
    for n in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        with open(os.path.join(d, n), "rb") as f:
            out.append(f.read())
    return out


def scenario(c, deb):
    shutil.copyfile(deb, c.path("/root/" + os.path.basename(deb)))
    log("apt-get install the .deb")
    # The root already holds tern's run-time dependencies and has no network.
    r = c.run(["apt-get", "install", "-y", "/root/" + os.path.basename(deb)],
              check=False, timeout=300)
    if r.returncode != 0:
        raise Failure(f"apt-get install failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    wait_until(lambda: active(c, "tern.target", "tern-queued.service", "tern-smtp.socket")
               == ["active"] * 3, 30, "tern.target started by the package")
    en = c.run(["systemctl", "is-enabled", "tern.target", "tern-metrics.socket"],
               check=False).stdout.split()
    if en != ["enabled", "disabled"]:
        raise Failure(f"is-enabled tern.target tern-metrics.socket: {en}")
    for f in ("/usr/sbin/sendmail", "/usr/lib/sendmail", "/usr/bin/mailq", "/usr/sbin/ternctl"):
        if not os.path.exists(c.path(f)):
            raise Failure(f"{f} missing")

    log("mail through it: sendmail and SMTP to alice")
    c.run(["useradd", "--create-home", "--shell", "/bin/sh", "alice"])
    c.run(["sh", "-c", "printf 'Subject: via sendmail\\n\\nhello\\n' | sendmail alice"])
    r = c.run(["bash", "-c", SMTP_SCRIPT], check=False)
    if r.returncode != 0 or not r.stdout.startswith("250 "):
        raise Failure(f"SMTP dialogue failed: {r.stdout}{r.stderr}")
    got = wait_until(lambda: (lambda m: m if len(m) == 2 else None)(maildir(c)), 30,
                     "two messages in alice's Maildir")
    subjects = sorted(re.search(rb"^Subject: (.*)$", m, re.M).group(1).decode() for m in got)
    if subjects != ["over smtp", "via sendmail"]:
        raise Failure(f"delivered: {subjects}")

    log("apt-get remove: stops tern, keeps the spool and /etc/tern")
    c.run(["apt-get", "remove", "-y", "tern"], timeout=120)
    units = ("tern.target", "tern-queued.service", "tern-deliverd.service", "tern-smtp.socket",
             "tern-queued.socket", "tern-deliverd.socket")
    states = active(c, *units)
    if any(s == "active" for s in states):
        raise Failure(f"still active after remove: {dict(zip(units, states))}")
    for p in ("/var/spool/tern/queue", "/etc/tern/tern.conf"):
        if not os.path.exists(c.path(p)):
            raise Failure(f"{p} removed by apt-get remove")
    log("apt-get purge: removes the spool")
    c.run(["apt-get", "purge", "-y", "tern"], timeout=120)
    if os.path.exists(c.path("/var/spool/tern")):
        raise Failure("/var/spool/tern left after purge")


def main():
    for tool in ("systemd-nspawn", "nsenter", "debootstrap", "dpkg-buildpackage", "git"):
        if not shutil.which(tool):
            print(f"system-test-package: {tool} is not installed, skipped")
            return ts.SKIP
    if os.geteuid() != 0:
        print("system-test-package: needs root, skipped")
        return ts.SKIP
    if not os.path.exists(os.path.join(ROOT, ".complete")) and os.environ.get("TERN_PACKAGE_TEST") != "1":
        print(f"system-test-package: no cached Debian root in {ROOT}; making one takes minutes: "
              "run with TERN_PACKAGE_TEST=1 once (later runs reuse it). Skipped.")
        return ts.SKIP
    source = os.environ.get("TERN_SOURCE_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "../..")

    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="tern-package-")
    os.chmod(work, 0o755)
    c = None
    ok = False
    try:
        make_root()
        # TERN_PACKAGE_DEB=FILE tests an already built .deb (for debugging).
        deb = os.environ.get("TERN_PACKAGE_DEB") or build_deb(source, work)
        root = os.path.join(work, "root")
        r = subprocess.run(["cp", "-a", "--reflink=auto", ROOT, root], capture_output=True, text=True)
        if r.returncode != 0:
            raise Failure(f"copying the root failed: {r.stderr}")
        c = RootContainer(work, f"tern-pkg-{os.getpid()}", root)
        c.boot()
        scenario(c, deb)
        ok = True
    except (Failure, subprocess.TimeoutExpired) as e:
        print(f"system-test-package: FAIL: {e}", flush=True)
        if c is not None and c.pid is not None:
            r = c.run(["journalctl", "--no-pager", "-n", "200"], check=False)
            print(r.stdout[-20000:])
    finally:
        if c is not None:
            c.stop()
        shutil.rmtree(work, ignore_errors=True)
    log(f"{'passed' if ok else 'failed'} in {time.monotonic() - started:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
