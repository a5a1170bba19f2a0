#!/usr/bin/env python3
"""sendmail's flags beyond test_cli_sendmail.py, each with its exit code
(sysexits.h): the DSN flags -N -R -V and -B land in the spool envelope, -v
says what happened, -bs holds an SMTP dialogue on stdin/stdout (through
tern-smtpd, driven by smtplib over a socketpair and by a plain pipe), -bi and
newaliases compile AliasFile, -q flushes, -- ends the options; the
submitting user comes from the socket's credentials; queued started by socket
activation on the first connection; EX_USAGE, EX_DATAERR, EX_NOINPUT,
EX_UNAVAILABLE, EX_SOFTWARE, EX_TEMPFAIL."""

import os
import shutil
import smtplib
import socket
import subprocess
import threading

import harness
import ternipc as ipc
from queued_util import cdb_read

EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_UNAVAILABLE, EX_SOFTWARE, EX_TEMPFAIL = 64, 65, 66, 69, 70, 75


def sendmail(t, args, data=b"", env=None):
    exe = harness.binary("cli/sendmail")
    return subprocess.run([exe] + args, input=data, env=env or t.env, capture_output=True, timeout=60)


def spool_env(t):
    (qid,) = t.queue_files()
    return qid, cdb_read(os.path.join(t.spool, "queue", qid))


def test_dsn_flags_and_body_type_are_in_the_envelope():
    with harness.Tern(start=("queued",)) as t:
        p = sendmail(t, ["-N", "success,DELAY", "-R", "hdrs", "-V", "cron-job-7", "-B", "8bitmime",
                         "-oem", "-oep", "-odi", t.user], b"Subject: x\n\nhello\n")
        assert (p.returncode, p.stderr) == (0, b""), p
        _, kv = spool_env(t)
        assert kv["notify.0"] == b"SUCCESS,DELAY"
        assert kv["ret"] == b"HDRS"
        assert kv["envid"] == b"cron-job-7"
        assert kv["body_type"] == b"8BITMIME"
        assert kv["proto"] == b"local"


def test_n_never_and_bad_dsn_values():
    with harness.Tern(start=("queued",)) as t:
        p = sendmail(t, ["-N", "never", t.user], b"hi\n")
        assert p.returncode == 0, p
        assert spool_env(t)[1]["notify.0"] == b"NEVER"
        for args, text in ((["-N", "sometimes"], b"-N wants never or a list of success, failure, delay"),
                           (["-R", "body"], b"-R wants full or hdrs"),
                           (["-B", "binary"], b"-B wants 7BIT or 8BITMIME"),
                           (["-bd"], b"-bd is not supported by tern")):
            p = sendmail(t, args + [t.user], b"hi\n")
            assert p.returncode == EX_USAGE, (args, p)
            assert text in p.stderr, (args, p.stderr)
        assert len(t.queue_files()) == 1


def test_v_reports_recipients_and_queue_id():
    with harness.Tern(start=("queued",)) as t:
        p = sendmail(t, ["-v", t.user], b"hi\n")
        assert p.returncode == 0, p
        (qid,) = t.queue_files()
        assert p.stderr == f"sendmail: <{t.user}>... Recipient ok\nsendmail: queued as {qid}\n".encode(), \
            p.stderr


def test_double_dash_ends_options():
    with harness.Tern(start=("queued",)) as t:
        p = sendmail(t, ["-i", "--", t.user, "-not-an-option@remote.example"], b"hi\n")
        assert p.returncode == 0, p
        _, kv = spool_env(t)
        assert (kv["rcpt.0"], kv["rcpt.1"]) == (t.user.encode(), b"-not-an-option@remote.example"), kv


def test_t_without_recipients_is_ex_dataerr():
    with harness.Tern(start=("queued",)) as t:
        p = sendmail(t, ["-t"], b"Subject: nobody\n\nhi\n")
        assert p.returncode == EX_DATAERR, p
        assert p.stderr == b"sendmail: no recipient addresses found in the message header\n"
        assert t.queue_files() == []


class PipeSocket:
    """What smtplib needs of a socket, over the two pipes of a child."""

    def __init__(self, proc):
        self.proc = proc

    def sendall(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def makefile(self, mode):
        return self.proc.stdout

    def close(self):
        pass


def bs_env(t):
    return dict(t.env, TERN_SMTPD=harness.binary("smtpd/tern-smtpd"))


def test_bs_smtp_dialogue_over_pipes_with_smtplib():
    with harness.Tern(start=("queued", "deliverd")) as t:
        proc = subprocess.Popen([harness.binary("cli/sendmail"), "-bs"], env=bs_env(t),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        class PipeSMTP(smtplib.SMTP):
            def _get_socket(self, host, port, timeout):
                return PipeSocket(proc)

        s = PipeSMTP()
        code, banner = s.connect("localhost", 25)
        assert code == 220 and banner.startswith(b"mx.test.example ESMTP"), (code, banner)
        code, _ = s.ehlo("cron.local")
        assert code == 250 and s.has_extn("dsn") and s.has_extn("pipelining"), s.esmtp_features
        refused = s.sendmail(f"{t.user}@{t.domain}", [f"{t.user}@{t.domain}"],
                             b"Subject: over -bs\r\n\r\nthrough pipes\r\n",
                             rcpt_options=["NOTIFY=NEVER"])
        assert refused == {}
        code, text = s.docmd("RCPT", "TO:<x@y>")
        assert code == 503, (code, text)
        assert s.quit()[0] == 221
        assert proc.wait(timeout=20) == 0
        (raw,) = t.wait_until(lambda: t.delivered(), what="delivery")
        assert raw.endswith(b"Subject: over -bs\n\nthrough pipes\n"), raw


def test_bs_plain_pipe_dialogue_and_rejection():
    with harness.Tern(start=("queued",)) as t:
        dialogue = (f"HELO me\r\nMAIL FROM:<{t.user}@{t.domain}>\r\nRCPT TO:<nobody-tern@{t.domain}>\r\n"
                    "QUIT\r\n").encode()
        r, w = os.pipe()
        os.write(w, dialogue)
        os.close(w)
        try:
            p = subprocess.run([harness.binary("cli/sendmail"), "-bs"], stdin=r, env=bs_env(t),
                               capture_output=True, timeout=60)
            # smtpd made the pipe it shares with us non-blocking; sendmail put it back.
            assert os.get_blocking(r)
        finally:
            os.close(r)
        assert p.returncode == 0, p
        lines = p.stdout.split(b"\r\n")
        assert lines[0].startswith(b"220 mx.test.example"), lines
        assert lines[1].startswith(b"250 mx.test.example"), lines
        assert lines[2] == b"250 2.1.0 Ok", lines
        assert lines[3].startswith(b"550 5.1.1 "), lines
        assert lines[4].startswith(b"221 2.0.0"), lines
        assert t.queue_files() == []


def test_bs_without_smtpd_is_ex_unavailable():
    with harness.Tern(start=()) as t:
        env = dict(t.env, TERN_SMTPD=os.path.join(t.dir, "no-such-smtpd"))
        p = sendmail(t, ["-bs"], b"QUIT\r\n", env=env)
        assert p.returncode == EX_UNAVAILABLE, p
        assert p.stderr.startswith(f"sendmail: cannot run {t.dir}/no-such-smtpd: ".encode()), p.stderr


def test_bs_with_queued_down_is_ex_tempfail():
    with harness.Tern(start=()) as t:
        p = sendmail(t, ["-bs"], b"QUIT\r\n", env=bs_env(t))
        assert p.returncode == EX_TEMPFAIL, p
        assert p.stdout.startswith(b"421 4.3.0 mx.test.example Service not available"), p.stdout


def test_newaliases_and_bi_compile_the_alias_file():
    with harness.Tern(start=()) as t:
        aliases = os.path.join(t.dir, "aliases")
        with open(aliases, "w") as f:
            f.write("# test\npostmaster: root\nwebmaster: root,\n  alice\n")
        with open(os.path.join(t.conf_path + ".d", "60-aliases.conf"), "w") as f:
            f.write(f"[Local]\nAliasFile = {aliases}\n")
        for p in (t.run_cli(["newaliases"]), sendmail(t, ["-bi"])):
            assert (p.returncode, p.stdout, p.stderr) == (0, f"{aliases}: 2 aliases\n".encode(), b""), p
            assert os.path.getsize(aliases + ".cdb") > 2048
        with open(aliases, "a") as f:
            f.write("no colon here\n")
        p = t.run_cli(["newaliases"])
        assert p.returncode == EX_DATAERR, p
        assert f"{aliases}:5".encode() in p.stderr, p.stderr
        os.unlink(aliases)
        p = t.run_cli(["newaliases"])
        assert p.returncode == EX_NOINPUT, p
        assert p.stderr == f"{aliases}: No such file or directory\n".encode(), p.stderr


def test_q_flushes_the_queue():
    with harness.Tern(start=("queued",)) as t:
        p = sendmail(t, ["-q"])
        assert (p.returncode, p.stderr) == (0, b""), p
        p = sendmail(t, ["-q30m"])
        assert (p.returncode, p.stderr) == (0, b""), p


def test_submitting_user_comes_from_the_socket_credentials():
    if os.getuid() != 0 or not shutil.which("setpriv"):
        raise harness.Skip("needs root and setpriv to submit as another user")
    with harness.Tern(start=("queued",)) as t:
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            harness.binary("cli/sendmail"), "-f", "forged@example.org", t.user],
                           input=b"hi\n", env=t.env, capture_output=True, timeout=60)
        assert p.returncode == 0, p
        qid, kv = spool_env(t)
        assert kv["submit_uid"] == b"65534" and kv["proto"] == b"local", kv
        assert kv["sender"] == b"forged@example.org"
        assert f"{qid}: uid=65534 (nobody) from=<forged@example.org>" in t.log("queued"), t.log("queued")


def test_bs_as_a_user_is_a_local_submission_by_that_uid():
    if os.getuid() != 0 or not shutil.which("setpriv"):
        raise harness.Skip("needs root and setpriv to submit as another user")
    with harness.Tern(start=("queued",)) as t:
        dialogue = (f"EHLO me\r\nMAIL FROM:<nobody@{t.domain}>\r\nRCPT TO:<{t.user}@{t.domain}>\r\n"
                    "DATA\r\nSubject: from nobody\r\n\r\nhi\r\n.\r\nQUIT\r\n").encode()
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            harness.binary("cli/sendmail"), "-bs"],
                           input=dialogue, env=bs_env(t), capture_output=True, timeout=60)
        assert p.returncode == 0, p
        assert b"\r\n250 2.0.0 Ok: queued as " in p.stdout, p.stdout
        qid, kv = spool_env(t)
        # smtpd ran as nobody, so queued trusted none of its client fields.
        assert kv["submit_uid"] == b"65534" and kv["proto"] == b"local", kv
        assert "client_addr" not in kv
        assert f"{qid}: uid=65534 (nobody) from=<nobody@{t.domain}>" in t.log("queued")


def test_queued_started_by_socket_activation_on_first_submission():
    activate = shutil.which("systemd-socket-activate")
    if not activate:
        raise harness.Skip("systemd-socket-activate is not installed")
    with harness.Tern(start=()) as t:
        log = open(os.path.join(t.dir, "queued.log"), "ab")
        t.logfiles["queued"] = log.name
        p = subprocess.Popen([activate, "--seqpacket", "-l", t.queued_socket, "-E", "TERN_LOG=stderr",
                              harness.binary("queued/tern-queued"), "-c", t.conf_path],
                             env=t.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        t.procs["queued"] = p
        t.wait_until(lambda: os.path.exists(t.queued_socket), what="the activation socket")
        assert "Ready" not in t.log("queued")
        r = sendmail(t, [t.user], b"hi\n")
        assert (r.returncode, r.stderr) == (0, b""), r
        assert len(t.queue_files()) == 1
        assert "socket from systemd" in t.log("queued")


def fake_queue(t, answers):
    """A stand-in queued that greets and then answers each frame with the next
    of answers (raw frames); returns the thread."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    srv.bind(t.queued_socket)
    srv.listen(1)

    def serve():
        c, _ = srv.accept()
        with c:
            c.recv(ipc.FRAME_MAX)
            c.send(ipc.encode(ipc.HELLO, [(ipc.F_VERSION, ipc.VERSION)]))
            for a in answers:
                if not c.recv(ipc.FRAME_MAX):
                    break
                c.send(a)
            c.recv(ipc.FRAME_MAX)
        srv.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    return th


def test_permanent_and_temporary_refusals_map_to_69_and_75():
    error = [(ipc.F_CODE, 554), (ipc.F_DSN, "5.7.1"), (ipc.F_TEXT, "Error: not allowed")]
    with harness.Tern(start=()) as t:
        fake_queue(t, [ipc.encode(ipc.ERROR, error)])
        p = sendmail(t, [t.user], b"hi\n")
        assert p.returncode == EX_UNAVAILABLE, p
        assert p.stderr == b"sendmail: sender refused: 554 5.7.1 Error: not allowed\n", p.stderr
    error = [(ipc.F_CODE, 451), (ipc.F_DSN, "4.3.0"), (ipc.F_TEXT, "Error: try later")]
    with harness.Tern(start=()) as t:
        fake_queue(t, [ipc.encode(ipc.MSG_BEGUN, [(ipc.F_QUEUE_ID, "0000000000001")]),
                       ipc.encode(ipc.MSG_RCPT_OK, []), ipc.encode(ipc.ERROR, error)])
        p = sendmail(t, [t.user], b"hi\n")
        assert p.returncode == EX_TEMPFAIL, p
        assert p.stderr == b"sendmail: message refused: 451 4.3.0 Error: try later\n", p.stderr


def test_queue_answering_nonsense_is_ex_software():
    with harness.Tern(start=()) as t:
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        srv.bind(t.queued_socket)
        srv.listen(1)

        def serve():
            c, _ = srv.accept()
            with c:
                c.recv(ipc.FRAME_MAX)
                c.send(ipc.encode(ipc.HELLO, [(ipc.F_VERSION, ipc.VERSION)]))
                c.recv(ipc.FRAME_MAX)
                c.send(b"\x01")       # a frame too short to be one
                c.recv(ipc.FRAME_MAX)

        th = threading.Thread(target=serve, daemon=True)
        th.start()
        try:
            p = sendmail(t, [t.user], b"hi\n")
        finally:
            srv.close()
        assert p.returncode == EX_SOFTWARE, p
        assert p.stderr.startswith(b"sendmail: the tern queue answered something unexpected: "), p.stderr


harness.main(globals())
