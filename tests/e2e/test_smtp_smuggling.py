"""SMTP smuggling (bare CR / bare LF end-of-data tricks): refused, and the
session still answers afterwards (STYLE.md section 24)."""
import pytest

from conftest import DOMAIN, SMTPConn, make_message

SMUGGLED = (b"MAIL FROM:<smuggler@evil.test>\r\n"
            b"RCPT TO:<victim@" + DOMAIN.encode() + b">\r\n"
            b"DATA\r\n"
            b"From: <ceo@" + DOMAIN.encode() + b">\r\n"
            b"Subject: SMUGGLED\r\n\r\n"
            b"SMUGGLED-BODY\r\n")

# what a sender hoping for a lax end-of-data parser puts after its first message
FAKE_ENDS = {
    "lf-dot-crlf": b"\n.\r\n",
    "cr-dot-crlf": b"\r.\r\n",
    "crlf-dot-lf": b"\r\n.\n",
    "lf-dot-lf": b"\n.\n",
    "crlf-dot-cr": b"\r\n.\r",
    "cr-dot-cr": b"\r.\r",
    "lf-dot-cr-lf": b"\n.\r\r\n",
}

BARE = "554 5.6.0 "


def ids(server):
    return set(server.queue_list())


def open_data(server):
    c = SMTPConn(server.smtp_port)
    c.ehlo()
    c.envelope([f"rcpt@{DOMAIN}"])
    r = c.cmd("DATA")
    assert r.code == 354, r
    return c


def still_works(server, c):
    """NOOP, then a clean message on the same session."""
    c.noop_ok()
    body = make_message("after-the-attack")
    queue_id = c.send_message(body)
    c.quit()
    assert server.stored_body(queue_id)[1] == body
    return queue_id


@pytest.mark.parametrize("fake_end", list(FAKE_ENDS.values()), ids=list(FAKE_ENDS))
def test_smuggled_second_message_is_never_executed(server, fake_end):
    before = ids(server)
    with open_data(server) as c:
        c.send(b"Subject: innocent\r\n\r\nhello" + fake_end + SMUGGLED + b".\r\nNOOP\r\n")
        r = c.reply()
        assert r.last.startswith(BARE), f"expected one 554 5.6.0 for the whole text: {r}"
        r = c.reply()   # the NOOP, and nothing in between
        assert r.last.startswith("250 2.0.0") and "queued" not in r.last, \
            f"the smuggled commands were answered: {r}"
        after = still_works(server, c)
    new = ids(server) - before
    assert new == {after}, f"messages queued besides the clean one: {new - {after}}"
    for queue_id in new:
        envelope, _ = server.queue_show(queue_id, key=False)
        assert "smuggler@evil.test" not in envelope


@pytest.mark.parametrize("body", [
    b"Subject: bare lf\r\n\r\nline one\nline two\r\n",
    b"Subject: bare lf in header\nX-Evil: 1\r\n\r\nbody\r\n",
    b"Subject: bare cr\r\n\r\nline one\rline two\r\n",
    b"Subject: trailing cr\r\n\r\nline one\r\r\n",
], ids=["lf-body", "lf-header", "cr-body", "cr-before-crlf"])
def test_bare_cr_or_lf_in_data_is_refused(server, body):
    before = ids(server)
    with open_data(server) as c:
        c.send(body + b".\r\n")
        r = c.reply()
        assert r.last.startswith(BARE), r
        after = still_works(server, c)
    assert ids(server) - before == {after}


@pytest.mark.parametrize("chunk", [
    b"Subject: x\r\n\r\nbare\nlf\r\n",
    b"Subject: x\r\n\r\nbare\rcr\r\n",
    b"Subject: x\r\n\r\nends in a bare cr\r",
], ids=["lf", "cr", "final-cr"])
def test_bare_cr_or_lf_in_bdat_is_refused(server, chunk):
    before = ids(server)
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        c.envelope([f"rcpt@{DOMAIN}"])
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        r = c.reply()
        assert r.last.startswith(BARE), r
        after = still_works(server, c)
    assert ids(server) - before == {after}


def test_dot_line_inside_bdat_is_just_data(server):
    """In BDAT a "CRLF . CRLF" and what follows are counted bytes, never commands."""
    chunk = b"Subject: inert\r\n\r\nfirst\r\n.\r\n" + SMUGGLED
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        c.envelope([f"rcpt@{DOMAIN}"])
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk + b"NOOP\r\n")
        queue_id = c.reply().queue_id
        r = c.reply()
        assert r.last.startswith("250 2.0.0") and "queued" not in r.last, r
        c.quit()
    envelope, _ = server.queue_show(queue_id, key=False)
    assert "smuggler" not in envelope
    assert server.stored_body(queue_id)[1] == chunk
