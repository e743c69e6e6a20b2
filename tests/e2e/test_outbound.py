"""Outbound delivery: queued sends mail for other domains to their MX hosts.

Two real servers on loopback: the sender ("src", hosting example.test) and
the destination MX ("dst", mx.remote.test on 127.0.0.2, which holds what it
receives in its spool so the test can read it).  DNS answers come from test
zones only (MX, A, DKIM TXT; a zone signed with ldns-signzone for DANE).
Inbound SMTP never accepts remote recipients (no open relay), so messages
enter src's spool through tests/unit/spool-inject, as submission and
forwarding will, and a SIGHUP makes queued look at the spool at once.

Checked from the outside: the message arrives over STARTTLS; a destination
that is down gets the message on a later attempt; a 5xx brings a DSN
(RFC 3464) into the local sender's mailbox, once; the DKIM signatures (RSA
and Ed25519) verify with dkimpy against the published records; DANE with a
matching TLSA record delivers over verified TLS, a wrong record defers.
"""
import hashlib
import os
import pwd
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import dkim
import dns.name
import dns.rdatatype
import dns.zone
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from conftest import (BIN, CATCHALL, CATCHALL_PASSWORD, DOMAIN, IS_ROOT, SERVICE_USER, SMTPConn,
                      wait_until)

INJECT = Path(os.environ.get("SEALMAIL_SPOOL_INJECT") or
              Path(BIN).resolve().parent / "tests" / "unit" / "spool-inject")
REMOTE = "remote.test"
DST_HOST = "mx.remote.test"
DST_ADDR = "127.0.0.2"
SENDER = f"alice@{DOMAIN}"


def message(marker, sender=SENDER, to=f"bob@{REMOTE}"):
    return (f"From: Alice <{sender}>\r\n"
            f"To: <{to}>\r\n"
            f"Subject: outbound {marker}\r\n"
            f"Message-ID: <{marker}@{DOMAIN}>\r\n"
            f"Date: Sun, 22 Nov 2026 12:00:00 +0000\r\n"
            f"MIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n"
            f"\r\n"
            f"Hello Bob, this is {marker}.\r\n"
            f".a line starting with a dot\r\n").encode()


def inject(srv, rcpts, data, sender=SENDER):
    """Write a spool entry into srv's data directory and wake queued."""
    assert INJECT.exists(), f"{INJECT} not built (ninja tests/unit/spool-inject)"
    res = subprocess.run([str(INJECT), str(srv.data), sender, *rcpts], input=data,
                         capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr.decode()
    queue_id = res.stdout.decode().strip()
    if IS_ROOT:  # queued runs as the service user
        pw = pwd.getpwnam(SERVICE_USER)
        for path in (srv.data / "spool" / "incoming").iterdir():  # a file or a segment
            if path.stat().st_uid != pw.pw_uid:
                os.chown(path, pw.pw_uid, pw.pw_gid)
    srv.signal(signal.SIGHUP)  # a fresh queued scans the spool at once
    return queue_id


def rcpt_accepted(srv, rcpt):
    try:
        with SMTPConn(srv.smtp_port, timeout=10) as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<probe@client.test>").code == 250
            ok = c.cmd(f"RCPT TO:<{rcpt}>").code == 250
            c.quit()
            return ok
    except (OSError, EOFError):
        return False


def destination(make_server, start=True):
    """A second sealmail as remote.test's MX, listening on 127.0.0.2."""
    dst = make_server(start=False, name="dst")
    port = dst.smtp_port
    # (its host name stays conftest's: SMTPConn checks the greeting)
    dst.write_config({"smtp": {"listen": f"{DST_ADDR}:{port} 127.0.0.1:{port}"}})
    if start:
        start_destination(dst)
    return dst


def start_destination(dst):
    # remote.test and bob exist before the first connection can arrive
    dst.cli("init")
    dst.cli("domain", "add", REMOTE)
    dst.add_user(f"bob@{REMOTE}")
    dst.start()
    wait_until(lambda: rcpt_accepted(dst, f"bob@{REMOTE}"), 30, 0.2, "remote.test hosted")


def source(make_server, dst, zone=(), dns=None):
    src = make_server(start=False, name="src")
    src.write_config({"spool": {"hold": "no"},
                      "queue": {"remote_port": str(dst.smtp_port), "retry_schedule": "1s",
                                "scan_interval": "1s", "delay_notice": "0"},
                      "dns": dns or {"zone_file": str(src.zone_path), "trust_anchor": ""}})
    src.set_zone(list(zone))
    src.start()
    src.cli("dkim", "generate", DOMAIN)
    return src


def plain_zone():
    return [f"{REMOTE}. 300 IN MX 10 {DST_HOST}.", f"{DST_HOST}. 300 IN A {DST_ADDR}"]


def received(dst, marker, timeout=60):
    """The message with marker as dst stored it (its spool holds it)."""
    found = {}

    def arrived():
        for qid in dst.queue_list():
            _, msg = dst.queue_show(qid)
            if marker.encode() in msg:
                found["msg"] = msg
                return True
        return False
    wait_until(arrived, timeout, 0.3, f"{marker} at the destination")
    return found["msg"]


def outbound_lines(srv):
    return [line for line in srv.cli("queue", "list").stdout.splitlines() if " outbound " in line]


def dkim_dns(src):
    """A dkimpy DNS function answering from `sealmail dkim show` output."""
    zone = dns.zone.from_text(src.cli("dkim", "show", DOMAIN).stdout, origin=DOMAIN + ".",
                              relativize=False, check_origin=False)
    records = {}
    for name, node in zone.nodes.items():
        rds = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.TXT)
        if rds is not None:
            records[name.to_text(omit_final_dot=True)] = b"".join(rds[0].strings)

    def lookup(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return records.get(name.rstrip(".").lower())
    return lookup


# --------------------------------------------------------------------------

def test_delivered_over_starttls_and_dkim_signed(make_server):
    dst = destination(make_server)
    src = source(make_server, dst, plain_zone())
    marker = "STARTTLS-" + uuid.uuid4().hex[:8]
    qid = inject(src, [f"bob@{REMOTE}"], message(marker))
    msg = received(dst, marker)

    # over TLS: the destination's Received header says ESMTPS, src's log the version
    assert re.search(rb"Received: from [^\r\n]*\r?\n?[^\r\n]*with ESMTPS", msg), msg[:800]
    wait_until(lambda: f"outbound done queue={qid}" in src.log_text(), 30, 0.2, "done")
    assert re.search(rf"outbound session queue={qid} domain={REMOTE} mx={DST_HOST} "
                     r"result=delivered stage=done tls=TLSv1\.[23] \S+ sts=- policy=opportunistic",
                     src.log_text())
    # dot-stuffing survived the trip
    assert b"\r\n.a line starting with a dot\r\n" in msg
    # both signatures verify with dkimpy against the published records
    d = dkim.DKIM(msg)
    sigs = [line for line in msg.split(b"\r\n") if line.startswith(b"DKIM-Signature:")]
    assert len(sigs) == 2, msg[:2000]
    algs = set()
    for i in range(2):
        assert d.verify(idx=i, dnsfunc=dkim_dns(src)), f"signature {i}: {d.logger}"
        algs.add(re.search(rb"a=([a-z0-9-]+)", msg.split(b"DKIM-Signature:")[i + 1]).group(1))
    assert algs == {b"rsa-sha256", b"ed25519-sha256"}
    # a modified body fails
    assert not dkim.verify(msg.replace(b"Hello Bob", b"Hello Eve"), dnsfunc=dkim_dns(src))
    # the queue is empty again; the spool too
    wait_until(lambda: outbound_lines(src) == [] and src.queue_list() == [], 30, 0.2,
               "queues empty")


def test_destination_down_then_retried(make_server):
    dst = destination(make_server, start=False)
    src = source(make_server, dst, plain_zone())
    marker = "RETRY-" + uuid.uuid4().hex[:8]
    qid = inject(src, [f"bob@{REMOTE}"], message(marker))
    wait_until(lambda: f"outbound retry queue={qid}" in src.log_text(), 60, 0.2,
               "a deferred attempt")
    lines = outbound_lines(src)
    assert len(lines) == 1 and lines[0].startswith(qid), lines
    assert "1 pending, 0 delivered, 0 failed" in lines[0]
    shown = src.cli("queue", "show", qid).stdout
    assert f"rcpt: <bob@{REMOTE}> pending" in shown and "queue: outbound" in shown

    start_destination(dst)
    msg = received(dst, marker)
    assert msg.count(b"Subject: outbound " + marker.encode()) == 1
    wait_until(lambda: outbound_lines(src) == [], 30, 0.2, "the outbound queue to empty")
    # delivered once: no second copy arrives
    assert sum(1 for q in dst.queue_list() if marker.encode() in dst.queue_show(q)[1]) == 1


def test_permanent_failure_bounces_to_local_sender_once(make_server):
    dst = destination(make_server)
    src = source(make_server, dst, plain_zone())
    marker = "BOUNCE-" + uuid.uuid4().hex[:8]
    qid = inject(src, [f"nobody@{REMOTE}", f"bob@{REMOTE}"], message(marker, to=f"nobody@{REMOTE}"))
    received(dst, marker)  # bob got it
    wait_until(lambda: f"outbound done queue={qid}" in src.log_text(), 60, 0.2, "done")

    # the DSN lands in the sender's mailbox (the catch-all of example.test)
    def bounced():
        rows = src.mailbox("list", CATCHALL, password=CATCHALL_PASSWORD).stdout.splitlines()
        return [r for r in rows if "Undelivered Mail Returned to Sender" in r]
    wait_until(bounced, 60, 0.5, "the DSN in the sender's mailbox")
    rows = bounced()
    assert len(rows) == 1, rows
    uid = rows[0].split("\t")[0]
    dsn = src.mailbox("show", CATCHALL, uid, password=CATCHALL_PASSWORD).stdout
    assert "multipart/report; report-type=delivery-status" in dsn
    assert f"Final-Recipient: rfc822; nobody@{REMOTE}" in dsn
    assert "Action: failed" in dsn and "Status: 5.1.1" in dsn
    assert "Diagnostic-Code: smtp; 550 5.1.1" in dsn
    assert f"bob@{REMOTE}" not in dsn.split("message/delivery-status")[1].split("rfc822-headers")[0]
    assert f"Subject: outbound {marker}" in dsn     # the original header ...
    assert "Hello Bob" not in dsn                     # ... never its body
    assert "From: Mail Delivery System <MAILER-DAEMON@" in dsn
    assert outbound_lines(src) == []


def test_null_sender_is_never_bounced(make_server):
    dst = destination(make_server)
    src = source(make_server, dst, plain_zone())
    marker = "NULL-" + uuid.uuid4().hex[:8]
    qid = inject(src, [f"nobody@{REMOTE}"], message(marker), sender="")
    wait_until(lambda: f"outbound bounced-silently queue={qid}" in src.log_text(), 60, 0.2,
               "the silent bounce")
    wait_until(lambda: outbound_lines(src) == [], 30, 0.2, "the outbound queue to empty")
    assert "outbound notice" not in src.log_text()


def test_queue_cli_retry_and_remove(make_server):
    dst = destination(make_server, start=False)
    src = make_server(start=False, name="src")
    src.write_config({"spool": {"hold": "no"},
                      "queue": {"remote_port": str(dst.smtp_port), "retry_schedule": "1h",
                                "scan_interval": "1s"}})
    src.set_zone(plain_zone())
    src.start()
    qid = inject(src, [f"bob@{REMOTE}"], message("CLI"))
    wait_until(lambda: f"outbound retry queue={qid}" in src.log_text(), 60, 0.2, "deferred")
    assert "attempts=1" in outbound_lines(src)[0]
    src.cli("queue", "retry", qid)
    wait_until(lambda: "attempts=2" in (outbound_lines(src) or [""])[0], 60, 0.3,
               "a second attempt after `queue retry`")
    assert "removed" in src.cli("queue", "remove", qid).stdout
    assert outbound_lines(src) == []
    bad = src.cli("queue", "retry", "../../etc/passwd", ok=False)
    assert bad.returncode == 2
    gone = src.cli("queue", "retry", qid, ok=False)
    assert gone.returncode == 1 and "no such entry" in gone.stderr


# --------------------------------------------------------------------------
# DANE (RFC 7672): TLSA records from a zone signed with ldns-signzone

def spki_sha256(cert_path):
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def signed_zone(workdir, port, tlsa_hex):
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "remote.zone").write_text(
        f"{REMOTE}. 3600 IN SOA ns.{REMOTE}. admin.{REMOTE}. 1 3600 600 86400 300\n"
        f"{REMOTE}. 3600 IN NS ns.{REMOTE}.\n"
        f"ns.{REMOTE}. 3600 IN A 192.0.2.53\n"
        f"{REMOTE}. 3600 IN MX 10 {DST_HOST}.\n"
        f"{DST_HOST}. 3600 IN A {DST_ADDR}\n"
        f"_{port}._tcp.{DST_HOST}. 3600 IN TLSA 3 1 1 {tlsa_hex}\n")
    key = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", REMOTE], cwd=workdir,
                         capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["ldns-signzone", "-f", "remote.zone.signed", "remote.zone", key],
                   cwd=workdir, check=True, capture_output=True)
    for p in workdir.iterdir():
        os.chmod(p, 0o644)
    os.chmod(workdir, 0o755)
    return workdir / "remote.zone.signed", workdir / f"{key}.ds"


@pytest.mark.parametrize("matching", [True, False], ids=["tlsa-match", "tlsa-mismatch"])
def test_dane(make_server, matching):
    dst = destination(make_server)
    digest = spki_sha256(dst.data / "keys" / "tls" / "cert.pem")
    if not matching:
        digest = hashlib.sha256(b"some other key").hexdigest()
    zone, anchor = signed_zone(dst.dir / "dane", dst.smtp_port, digest)
    src = make_server(start=False, name="src")
    src.write_config({"spool": {"hold": "no"},
                      "queue": {"remote_port": str(dst.smtp_port), "retry_schedule": "1s",
                                "scan_interval": "1s"},
                      "dns": {"zone_file": str(src.zone_path), "trust_anchor": str(anchor),
                              "signed_zone_file": str(zone)}})
    src.start()
    marker = "DANE-" + uuid.uuid4().hex[:8]
    qid = inject(src, [f"bob@{REMOTE}"], message(marker))
    if matching:
        received(dst, marker)
        wait_until(lambda: f"outbound done queue={qid}" in src.log_text(), 30, 0.2, "done")
        assert re.search(rf"outbound session queue={qid} .*result=delivered .*policy=dane "
                         r"verified=yes", src.log_text()), src.log_text()[-3000:]
    else:
        wait_until(lambda: f"outbound retry queue={qid}" in src.log_text(), 60, 0.2,
                   "a deferred attempt")
        log = src.log_text()
        assert re.search(rf"outbound session queue={qid} .*result=deferred .*policy=dane", log)
        assert f"outbound done queue={qid}" not in log
        assert not any(marker.encode() in dst.queue_show(q)[1] for q in dst.queue_list())
        lines = outbound_lines(src)
        assert len(lines) == 1 and "1 pending" in lines[0]


def test_delay_notice_once_while_retrying(make_server):
    dst = destination(make_server, start=False)  # down: every attempt is deferred
    src = make_server(start=False, name="src")
    src.write_config({"spool": {"hold": "no"},
                      "queue": {"remote_port": str(dst.smtp_port), "retry_schedule": "1s",
                                "scan_interval": "1s", "delay_notice": "2s"}})
    src.set_zone(plain_zone())
    src.start()
    marker = "DELAY-" + uuid.uuid4().hex[:8]
    qid = inject(src, [f"bob@{REMOTE}"], message(marker))

    def delayed():
        rows = src.mailbox("list", CATCHALL, password=CATCHALL_PASSWORD).stdout.splitlines()
        return [r for r in rows if "Delayed Mail" in r]
    wait_until(delayed, 60, 0.5, "the delay notice in the sender's mailbox")
    # more attempts follow, but no second notice
    wait_until(lambda: re.search(rf"outbound retry queue={qid} pending=1 attempts=([4-9]|\d\d)",
                                 src.log_text()), 60, 0.3, "further attempts")
    assert len(delayed()) == 1
    uid = delayed()[0].split("\t")[0]
    notice = src.mailbox("show", CATCHALL, uid, password=CATCHALL_PASSWORD).stdout
    assert "Action: delayed" in notice and f"Final-Recipient: rfc822; bob@{REMOTE}" in notice
    assert "Connection refused" in notice
    assert "1 pending" in outbound_lines(src)[0]


# --------------------------------------------------------------------------
# kill -9 of queued in the middle of an outbound attempt

class Sink:
    """A minimal SMTP server (stdlib only, no TLS) that records what it
    accepts; with hold_first, the first message's final reply waits until
    released, so that the sender can be killed in between.  It counts the
    sessions open at once (most_at_once); greet_delay holds each greeting
    back that many seconds, so that sessions overlap when they can;
    tempfail_rcpts answers that many first RCPTs with a 451."""

    def __init__(self, addr, port, hold_first=False, greet_delay=0, tempfail_rcpts=0):
        import socketserver
        import threading
        self.messages = []
        self.release = threading.Event()
        self.holding = threading.Event()
        self.hold_first = hold_first
        self.lock = threading.Lock()
        self.open_now = self.most_at_once = 0
        self.tempfails_left = tempfail_rcpts
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                with sink.lock:
                    sink.open_now += 1
                    sink.most_at_once = max(sink.most_at_once, sink.open_now)
                self.counted = True
                try:
                    time.sleep(greet_delay)
                    self.converse()
                finally:
                    self.uncount()

            def uncount(self):
                with sink.lock:
                    sink.open_now -= self.counted
                    self.counted = False

            def converse(self):
                self.request.settimeout(60)
                w = self.wfile.write
                w(b"220 sink ESMTP\r\n")
                rcpts, data = [], None
                for raw in self.rfile:
                    line = raw.rstrip(b"\r\n")
                    verb = line[:4].upper()
                    if verb in (b"EHLO", b"HELO"):
                        w(b"250 sink\r\n")
                    elif verb == b"MAIL":
                        rcpts = []
                        w(b"250 ok\r\n")
                    elif verb == b"RCPT":
                        with sink.lock:
                            tempfail = sink.tempfails_left > 0
                            sink.tempfails_left -= tempfail
                        if tempfail:
                            w(b"451 4.3.0 sink: try again later\r\n")
                            continue
                        rcpts.append(line.split(b"<")[1].split(b">")[0].decode())
                        w(b"250 ok\r\n")
                    elif verb == b"DATA" and not rcpts:
                        w(b"554 5.5.1 no valid recipients\r\n")
                    elif verb == b"DATA":
                        w(b"354 go\r\n")
                        data = b""
                        for body in self.rfile:
                            if body == b".\r\n":
                                break
                            data += body
                        first = not sink.messages
                        sink.messages.append((rcpts, data))
                        if first and sink.hold_first:
                            sink.holding.set()
                            sink.release.wait(60)
                            return  # the connection drops: no 250 ever came
                        w(b"250 queued\r\n")
                    elif verb == b"QUIT":
                        # the session ends here: the sender may start another
                        # as soon as it reads the 221, before this thread runs
                        # again, so it stops counting first
                        self.uncount()
                        w(b"221 bye\r\n")
                        return
                    else:
                        w(b"250 ok\r\n")

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer((addr, port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_kill9_mid_delivery_sends_nothing_twice(make_server):
    from conftest import free_ports
    port = free_ports(1)[0]
    fast = Sink("127.0.0.2", port)
    slow = Sink("127.0.0.3", port, hold_first=True)
    try:
        src = make_server(start=False, name="src")
        src.write_config({"spool": {"hold": "no"},
                          "queue": {"remote_port": str(port), "retry_schedule": "1s",
                                    "scan_interval": "1s"}})
        src.set_zone(["fast.test. 300 IN MX 10 mx.fast.test.", "mx.fast.test. 300 IN A 127.0.0.2",
                      "slow.test. 300 IN MX 10 mx.slow.test.", "mx.slow.test. 300 IN A 127.0.0.3"])
        src.start()
        marker = "KILL-" + uuid.uuid4().hex[:8]
        qid = inject(src, ["a@fast.test", "b@slow.test"], message(marker))
        # fast.test accepted (and that is saved) before slow.test's session starts
        assert slow.holding.wait(60), "the slow destination never got the message"
        assert len(fast.messages) == 1
        queued = src.children_of_role("queued")
        assert len(queued) == 1
        os.kill(queued[0], signal.SIGKILL)
        slow.release.set()
        # the master starts a new queued, which finishes the job
        wait_until(lambda: len(slow.messages) >= 2, 90, 0.3, "slow.test retried after the kill")
        wait_until(lambda: outbound_lines(src) == [], 30, 0.3, "the outbound queue to empty")
        assert len(fast.messages) == 1, "fast.test got the message twice"
        assert [m[0] for m in slow.messages] == [["b@slow.test"], ["b@slow.test"]]
        assert all(marker.encode() in m[1] for m in fast.messages + slow.messages)
        assert f"outbound done queue={qid}" in src.log_text()
    finally:
        fast.close()
        slow.close()


# --------------------------------------------------------------------------
# sessions per destination ([queue] max_per_destination)

def test_sessions_to_one_domain_are_limited(make_server):
    from conftest import free_ports
    port = free_ports(1)[0]
    sink = Sink("127.0.0.2", port, greet_delay=1.5)  # sessions overlap when allowed to
    try:
        src = make_server(start=False, name="src")
        src.write_config({"spool": {"hold": "no"},
                          "queue": {"remote_port": str(port), "retry_schedule": "1s",
                                    "scan_interval": "1s", "max_per_destination": "2"}})
        src.set_zone(["wide.test. 300 IN MX 10 mx.wide.test.", "mx.wide.test. 300 IN A 127.0.0.2"])
        src.start()
        markers = ["LIMIT-" + uuid.uuid4().hex[:8] for _ in range(6)]
        for marker in markers:
            inject(src, [f"{marker.lower()}@wide.test"], message(marker))
        wait_until(lambda: len(sink.messages) >= len(markers), 120, 0.3, "all six at the sink")
        # two at once, never more: the limit held, and sessions did run in parallel
        assert sink.most_at_once == 2, sink.most_at_once
        assert "outbound wait queue=" in src.log_text()
        assert sorted(m for m in markers if any(m.encode() in d for _, d in sink.messages)) == \
            sorted(markers)
        wait_until(lambda: outbound_lines(src) == [], 30, 0.3, "the outbound queue to empty")
    finally:
        sink.close()


def test_reloads_while_routing_leave_one_spool_consumer(make_server):
    """A SIGHUP starts a new queued while the old one still finishes its batches.  Both
    routing one spool entry wrote the same outbound queue file at once (a damaged entry,
    never delivered); the new queued must wait for the old one's spool lock instead."""
    from conftest import free_ports
    port = free_ports(1)[0]
    sink = Sink("127.0.0.2", port)
    try:
        src = make_server(start=False, name="src")
        src.write_config({"spool": {"hold": "no"},
                          "queue": {"remote_port": str(port), "retry_schedule": "1s",
                                    "scan_interval": "1s"}})
        src.set_zone(["reload.test. 300 IN MX 10 mx.reload.test.",
                      "mx.reload.test. 300 IN A 127.0.0.2"])
        src.start()
        markers = ["RELOAD-" + uuid.uuid4().hex[:8] for _ in range(10)]
        for marker in markers:  # each inject ends with a SIGHUP: queued processes overlap
            inject(src, [f"{marker.lower()}@reload.test"], message(marker))
        wait_until(lambda: len(sink.messages) >= len(markers), 120, 0.3, "all ten at the sink")
        wait_until(lambda: outbound_lines(src) == [], 30, 0.3, "the outbound queue to empty")
        for marker in markers:
            assert sum(marker.encode() in d for _, d in sink.messages) == 1, marker
        log = src.log_text()
        assert "open-failed" not in log and "cannot rename queue file" not in log, log[-3000:]
        assert (src.data / "spool" / "queued.lock").exists()
    finally:
        sink.close()


def test_a_4xx_answer_is_retried_and_delivered_once(make_server):
    from conftest import free_ports
    port = free_ports(1)[0]
    sink = Sink("127.0.0.2", port, tempfail_rcpts=2)  # two attempts get "451", the third a 250
    try:
        src = make_server(start=False, name="src")
        src.write_config({"spool": {"hold": "no"},
                          "queue": {"remote_port": str(port), "retry_schedule": "1s",
                                    "scan_interval": "1s"}})
        src.set_zone(["busy.test. 300 IN MX 10 mx.busy.test.", "mx.busy.test. 300 IN A 127.0.0.2"])
        src.start()
        marker = "TEMP-" + uuid.uuid4().hex[:8]
        qid = inject(src, ["bob@busy.test"], message(marker))
        wait_until(lambda: sink.messages, 60, 0.3, "the message at the sink after the 451s")
        wait_until(lambda: f"outbound done queue={qid}" in src.log_text(), 30, 0.2, "done")
        log = src.log_text()
        deferred = re.findall(rf"outbound session queue={qid} .*result=deferred .*451 4\.3\.0", log)
        assert len(deferred) == 2, log[-3000:]
        assert re.search(rf"outbound retry queue={qid} pending=1 attempts=2", log)
        assert len(sink.messages) == 1 and sink.messages[0][0] == ["bob@busy.test"]
        assert marker.encode() in sink.messages[0][1]
        assert "outbound notice" not in log  # a temporary failure tells nobody
    finally:
        sink.close()
