"""Forwarding (issue #5): mail for an alias that points at another server
leaves with an SRS envelope sender in our domain and an ARC set over our
authentication results, and arrives intact.

Two real servers on loopback, as in test_outbound.py: "src" hosts
example.test with the alias, "dst" is remote.test's MX on 127.0.0.2 and
keeps what it receives in its spool.  The destination's view is checked
with independent implementations: dkimpy validates the ARC chain against
the key `sealmail dkim show` publishes, pyspf evaluates SPF for the SRS
sender, and the SRS address decodes to the original sender."""
import re
import uuid

import dkim
import spf

from conftest import DOMAIN, HOSTNAME, SMTPConn
from test_outbound import REMOTE, destination, dkim_dns, plain_zone, received, source

ORIGIN = "origin.test"
ALIAS = f"fwd@{DOMAIN}"
SPF_RECORD = "v=spf1 ip4:127.0.0.0/8 -all"


def pyspf_check(ip, sender, helo):
    """pyspf over a one-record DNS: example.test's SPF record."""
    def lookup(name, qtype, tcpfallback=True, timeout=30):
        if qtype == "TXT" and name.rstrip(".").lower() == DOMAIN:
            return [((name, "TXT"), [SPF_RECORD.encode()])]
        return []
    saved = spf.DNSLookup
    spf.DNSLookup = lookup
    try:
        return spf.check2(i=ip, s=sender, h=helo)
    finally:
        spf.DNSLookup = saved


def send(srv, rcpt, marker, sender=f"someone@{ORIGIN}"):
    body = (f"From: Someone <{sender}>\r\nTo: <{rcpt}>\r\nSubject: forward {marker}\r\n"
            f"Message-ID: <{marker}@{ORIGIN}>\r\nDate: Sun, 22 Nov 2026 12:00:00 +0000\r\n"
            f"\r\nHello, this is {marker}.\r\n").encode()
    with SMTPConn(srv.smtp_port) as c:
        c.ehlo()
        return c.send_message(body, rcpts=(rcpt,), sender=sender)


def test_alias_forwards_with_srs_and_arc(make_server):
    dst = destination(make_server)
    src = source(make_server, dst, plain_zone())
    src.cli("alias", "add", ALIAS, "--to", f"bob@{REMOTE}")
    marker = "FWD-" + uuid.uuid4().hex[:8]
    send(src, ALIAS, marker)
    msg = received(dst, marker)

    # the envelope sender is SRS in our domain and decodes to the original
    qid = next(q for q in dst.queue_list() if marker.encode() in dst.queue_show(q)[1])
    envelope, _ = dst.queue_show(qid)
    m = re.search(r"(?m)^from: <(SRS0=[^>]+)>$", envelope)
    assert m, envelope
    srs_sender = m.group(1)
    assert srs_sender.endswith(f"={ORIGIN}=someone@{DOMAIN}"), srs_sender
    # SPF for it passes at the destination (pyspf, from src's address)
    result, _ = pyspf_check("127.0.0.1", srs_sender, HOSTNAME)
    assert result == "pass", result

    # one ARC set by example.test over our results; dkimpy validates it
    seals = re.findall(rb"\r\nARC-Seal: [^\r]*(?:\r\n[ \t][^\r]*)*", msg)
    assert len(seals) == 1 and b"cv=none" in seals[0] and b"i=1;" in seals[0], seals
    assert re.search(rb"ARC-Authentication-Results: i=1; " + HOSTNAME.encode(), msg), msg[:1500]
    cv, results, comment = dkim.arc_verify(msg, dnsfunc=dkim_dns(src))
    assert cv == dkim.CV_Pass, (cv, comment)
    # the message itself arrived as it was sent
    assert f"Hello, this is {marker}.".encode() in msg
    assert b"Subject: forward " + marker.encode() in msg
    assert f"forward queued queue=" in src.log_text()


def test_forward_and_local_copy_and_disabled(make_server):
    dst = destination(make_server)
    src = source(make_server, dst, plain_zone())
    src.add_user(f"alice@{DOMAIN}")
    src.cli("alias", "add", ALIAS, "--to", f"bob@{REMOTE}")
    src.cli("alias", "add", ALIAS, f"alice@{DOMAIN}")
    marker = "BOTH-" + uuid.uuid4().hex[:8]
    send(src, ALIAS, marker)
    received(dst, marker)  # the remote copy
    from test_mailboxes import wait_delivered
    wait_delivered(src, f"alice@{DOMAIN}", 1)  # and the local one
    # forwarding off: an alias that only forwards is refused, not dropped
    src.cli("alias", "remove", ALIAS, f"alice@{DOMAIN}")
    src.cli("domain", "forwarding", DOMAIN, "off")
    with SMTPConn(src.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<x@origin.test>").code == 250
        r = c.cmd(f"RCPT TO:<{ALIAS}>")
        assert r.code == 550 and r.last.startswith("550 5.2.1"), r


def test_bounce_to_srs_address_goes_back_to_the_sender(make_server):
    """A bounce of a forwarded message reaches the original sender; forged
    SRS addresses are refused at RCPT."""
    dst = destination(make_server)
    src = source(make_server, dst, plain_zone())
    src.cli("alias", "add", ALIAS, "--to", f"bob@{REMOTE}")
    dst.add_user(f"carol@{REMOTE}")
    marker = "SRSBACK-" + uuid.uuid4().hex[:8]
    send(src, ALIAS, marker, sender=f"carol@{REMOTE}")
    received(dst, marker)
    qid = next(q for q in dst.queue_list() if marker.encode() in dst.queue_show(q)[1])
    srs_sender = re.search(r"(?m)^from: <(SRS0=[^>]+)>$", dst.queue_show(qid)[0]).group(1)
    assert srs_sender.endswith(f"={REMOTE}=carol@{DOMAIN}"), srs_sender

    bounce_marker = "BOUNCE-" + uuid.uuid4().hex[:8]
    bounce = (f"From: MAILER-DAEMON@{REMOTE}\r\nTo: <{srs_sender}>\r\n"
              f"Subject: Undelivered {bounce_marker}\r\n\r\n{bounce_marker}\r\n").encode()
    with SMTPConn(src.smtp_port) as c:
        c.ehlo()
        c.send_message(bounce, rcpts=(srs_sender,), sender="")
        # forged: a hash we did not make; and a plain unknown address
        assert c.cmd("MAIL FROM:<>").code == 250
        forged = re.sub(r"^SRS0=....", "SRS0=AAAA", srs_sender)
        r = c.cmd(f"RCPT TO:<{forged}>")
        assert r.code == 550 and r.last.startswith("550 5.7.1"), r
    # the bounce went back to carol at remote.test, from the null sender
    msg = received(dst, bounce_marker)
    qid = next(q for q in dst.queue_list() if bounce_marker.encode() in dst.queue_show(q)[1])
    envelope = dst.queue_show(qid)[0]
    assert re.search(r"(?m)^from: <>$", envelope), envelope
    assert re.search(rf"(?m)^rcpt: <carol@{REMOTE}>$", envelope), envelope
    assert bounce_marker.encode() in msg


def test_submitted_mail_leaves_dkim_signed(make_server):
    """A mailbox owner submits (587, STARTTLS, AUTH) to someone elsewhere:
    queued delivers it to the remote MX, signed with both of the domain's
    keys, which dkimpy verifies against the published records."""
    import smtplib
    from conftest import HELO, IO_TIMEOUT, no_verify_context
    dst = destination(make_server)
    src = source(make_server, dst, plain_zone())
    src.add_user(f"alice@{DOMAIN}", password="alice's password")
    marker = "SUBMIT-" + uuid.uuid4().hex[:8]
    body = (f"From: Alice <alice@{DOMAIN}>\r\nTo: <bob@{REMOTE}>\r\nSubject: {marker}\r\n"
            f"Message-ID: <{marker}@{DOMAIN}>\r\n\r\nHello Bob, {marker}.\r\n").encode()
    with smtplib.SMTP("127.0.0.1", src.submission_port, local_hostname=HELO,
                      timeout=IO_TIMEOUT) as s:
        s.starttls(context=no_verify_context())
        s.login(f"alice@{DOMAIN}", "alice's password")
        assert s.sendmail(f"alice@{DOMAIN}", [f"bob@{REMOTE}"], body) == {}
    msg = received(dst, marker)
    assert b"with ESMTPSA" in msg  # our own Received: an authenticated submission
    d = dkim.DKIM(msg)
    sigs = [line for line in msg.split(b"\r\n") if line.startswith(b"DKIM-Signature:")]
    assert len(sigs) == 2, msg[:2000]
    for i in range(2):
        assert d.verify(idx=i, dnsfunc=dkim_dns(src)), f"signature {i}: {d.logger}"
