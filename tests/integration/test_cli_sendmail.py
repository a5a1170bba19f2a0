#!/usr/bin/env python3
"""sendmail, mailq and newaliases against real queued and deliverd: local
submission adds the missing Date/From/Message-ID, -t takes To/Cc/Bcc and drops
Bcc, the exit codes are those of sysexits.h that cron and mailx expect."""

import email.utils
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

EX_USAGE, EX_DATAERR, EX_NOUSER, EX_TEMPFAIL = 64, 65, 67, 75


def split(raw):
    """(header lines, body) of a delivered message."""
    head, sep, body = raw.partition(b"\n\n")
    assert sep, raw
    # Unfold continuation lines so each field is one entry.
    return re.sub(rb"\n[ \t]", b" ", head).split(b"\n"), body


def field(lines, name):
    vals = [ln.split(b":", 1)[1].strip() for ln in lines
            if ln.split(b":", 1)[0].lower() == name.lower().encode()]
    return vals


def sendmail(t, args, data):
    return t.run_cli(["sendmail"] + args, input=data)


def ok(p):
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert p.stderr == b"", p.stderr


def test_echo_hi_is_delivered_with_date_from_and_message_id_added():
    with harness.Tern(start=("queued", "deliverd")) as t:
        ok(sendmail(t, [t.user], b"hi\n"))
        msgs = t.wait_until(lambda: t.delivered(), what="delivery to the Maildir")
        assert len(msgs) == 1, msgs
        lines, body = split(msgs[0])
        assert body == b"hi\n", msgs[0]
        (date,) = field(lines, "Date")
        assert email.utils.parsedate_to_datetime(date.decode()) is not None, date
        assert re.fullmatch(rb"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}",
                            date), date
        (frm,) = field(lines, "From")
        assert frm.endswith(f"<{t.user}@{t.hostname}>".encode()) or \
            frm == f"{t.user}@{t.hostname}".encode(), frm
        (mid,) = field(lines, "Message-ID")
        assert re.fullmatch(rb"<[0-9A-F]+@" + re.escape(t.hostname.encode()) + rb">", mid), mid
        t.wait_until(lambda: t.queue_files() == [], what="the queue to empty")


def test_existing_headers_are_kept_and_lf_becomes_crlf_in_the_queue():
    msg = (b"From: Someone <someone@example.org>\n"
           b"Date: Mon, 23 Nov 2020 06:58:00 +0000\n"
           b"Message-ID: <fixed@example.org>\n"
           b"Subject: kept\n"
           b"\n"
           b"line one\r\n"
           b"line two\n")
    with harness.Tern(start=("queued",)) as t:
        ok(sendmail(t, [t.user], msg))
        (qid,) = t.queue_files()
        with open(os.path.join(t.spool, "queue", qid), "rb") as f:
            spool = f.read()
        # Every line end in the spool file is CRLF, none doubled.
        want = msg.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        assert want in spool, spool
        t.start("deliverd")
        (raw,) = t.wait_until(lambda: t.delivered(), what="delivery")
        lines, body = split(raw)
        assert field(lines, "From") == [b"Someone <someone@example.org>"], lines
        assert field(lines, "Message-ID") == [b"<fixed@example.org>"], lines
        assert len(field(lines, "Date")) == 1, lines
        assert body == b"line one\nline two\n", raw


def test_t_sends_to_to_cc_and_bcc_and_removes_bcc():
    with harness.Tern(start=("queued", "deliverd")) as t:
        to = f"{t.user}@{t.domain}"
        cc = f"{t.user}@localhost"
        bcc = t.user
        msg = (f"To: Me Myself <{to}>\n"
               f"Cc: {cc} (copy),\n"
               f"  undisclosed-recipients:;\n"
               f"Bcc: {bcc}\n"
               f"Subject: extract\n"
               f"\n"
               f"Bcc: in the body stays\n").encode()
        ok(sendmail(t, ["-t", "-i"], msg))
        msgs = t.wait_until(lambda: len(t.delivered()) >= 3 and t.queue_files() == []
                            and t.delivered(), what="three deliveries")
        assert len(msgs) == 3, msgs
        delivered_to = set()
        for raw in msgs:
            lines, body = split(raw)
            assert field(lines, "Bcc") == [], raw
            assert field(lines, "To") == [f"Me Myself <{to}>".encode()], raw
            assert field(lines, "Cc") == [f"{cc} (copy),  undisclosed-recipients:;".encode()], raw
            assert body == b"Bcc: in the body stays\n", raw
            delivered_to.update(field(lines, "Delivered-To"))
        assert len(delivered_to) == 3, delivered_to


def test_single_dot_ends_input_unless_i():
    with harness.Tern(start=("queued", "deliverd")) as t:
        ok(sendmail(t, [t.user], b"Subject: dot\n\nbefore\n.\nafter\n"))
        (raw,) = t.wait_until(lambda: t.delivered(), what="first delivery")
        assert split(raw)[1] == b"before\n", raw
        ok(sendmail(t, ["-oi", t.user], b"Subject: dot\n\nbefore\n.\nafter\n"))
        msgs = t.wait_until(lambda: len(t.delivered()) == 2 and t.delivered(),
                            what="second delivery")
        bodies = sorted(split(m)[1] for m in msgs)
        assert bodies == [b"before\n", b"before\n.\nafter\n"], bodies


def test_f_and_F_set_envelope_sender_and_from_header():
    with harness.Tern(start=("queued", "deliverd")) as t:
        ok(sendmail(t, ["-f", "<list-bounces@example.org>", "-F", 'Jane "JD" Doe', "--",
                        t.user], b"Subject: x\n\nbody\n"))
        (raw,) = t.wait_until(lambda: t.delivered(), what="delivery")
        assert raw.startswith(b"Return-Path: <list-bounces@example.org>\n"), raw
        lines, _ = split(raw)
        assert field(lines, "From") == [b'"Jane \\"JD\\" Doe" <list-bounces@example.org>'], lines


def test_cron_and_mailx_flags_are_accepted():
    with harness.Tern(start=("queued", "deliverd")) as t:
        ok(sendmail(t, ["-odi", "-oem", "-oep", "-oi", "-N", "failure,delay", "-B", "8bitmime",
                        "-i", t.user], b"Subject: cron\n\nout\n"))
        t.wait_until(lambda: t.delivered(), what="delivery")


def test_unsupported_flag_is_a_usage_error_and_queues_nothing():
    with harness.Tern(start=("queued",)) as t:
        p = sendmail(t, ["-bd"], b"")
        assert p.returncode == EX_USAGE, p
        assert p.stderr.startswith(b"sendmail: -bd is not supported by tern\n"), p.stderr
        p = sendmail(t, [], b"hi\n")
        assert p.returncode == EX_USAGE, p
        assert t.queue_files() == []


def test_queued_not_running_is_a_temporary_failure():
    with harness.Tern(start=()) as t:
        p = sendmail(t, [t.user], b"hi\n")
        assert p.returncode == EX_TEMPFAIL, p
        assert p.stderr == (f"sendmail: cannot connect to the tern queue ({t.queued_socket}): "
                            f"No such file or directory\n").encode(), p.stderr


def test_unknown_local_user_is_ex_nouser_with_queued_reason():
    with harness.Tern(start=("queued",)) as t:
        p = sendmail(t, ["no-such-user-tern"], b"hi\n")
        assert p.returncode == EX_NOUSER, p
        assert re.fullmatch(rb"sendmail: no-such-user-tern: 550 5\.1\.1 .+\n", p.stderr), p.stderr
        assert t.queue_files() == []
        # One bad recipient does not stop the others (Sendmail's behaviour).
        p = sendmail(t, ["no-such-user-tern", t.user], b"hi\n")
        assert p.returncode == EX_NOUSER, p
        assert len(t.queue_files()) == 1, t.queue_files()


def test_message_over_size_limit_is_refused_and_nothing_queued():
    with harness.Tern(conf="[SMTP]\nMessageSizeLimit = 2000\n", start=("queued",)) as t:
        p = sendmail(t, [t.user], b"x" * 2001)
        assert p.returncode == EX_DATAERR, p
        assert p.stderr == b"sendmail: message exceeds size limit (2000 bytes)\n", p.stderr
        assert t.queue_files() == []


def test_mailq_and_bp_list_the_queue():
    with harness.Tern(start=("queued",)) as t:
        p = t.run_cli(["mailq"])
        assert (p.returncode, p.stdout, p.stderr) == (0, b"Mail queue is empty\n", b""), p
        ok(sendmail(t, [t.user], b"hi\n"))
        (qid,) = t.queue_files()
        for p in (t.run_cli(["mailq"]), sendmail(t, ["-bp"], b"")):
            assert p.returncode == 0, p
            out = p.stdout.decode()
            assert out.startswith("-Queue ID-"), out
            assert re.search(rf"^{qid}[ *!] +\d+ ", out, re.M), out
            assert out.endswith("-- 1 Kbytes in 1 Request.\n"), out


def test_newaliases_without_alias_file_says_there_is_nothing_to_do():
    # test_cli_sendmail_flags.py compiles a real one.
    with harness.Tern(conf="[Local]\nAliasFile =\n", start=()) as t:
        for p in (t.run_cli(["newaliases"]), sendmail(t, ["-bi"], b"")):
            assert p.returncode == 0, p
            assert p.stdout.endswith(b": no AliasFile is configured; nothing to do\n"), p


harness.main(globals())
