"""Authenticated submission (issue #5): mailbox owners send over 587
(STARTTLS, then AUTH) and 465 (implicit TLS) with their password or an app
password; they may send only as their own addresses; a wrong password is
refused and slowed; nothing is relayed without AUTH."""
import base64
import smtplib
import subprocess

import pytest

from conftest import (DOMAIN, HELO, IO_TIMEOUT, SMTPConn, make_message, no_verify_context,
                      received_protocol)

ALICE = f"alice@{DOMAIN}"
ALICE_PW = "alice's long password"
BOB = f"bob@{DOMAIN}"


@pytest.fixture(scope="module")
def sub(workroot, request):
    from conftest import Server, finish_shared
    srv = Server(workroot, "submission")
    srv.start()
    srv.add_user(ALICE, password=ALICE_PW)
    srv.add_user(BOB, password="bob's password")
    srv.cli("alias", "add", f"sales@{DOMAIN}", ALICE)
    yield srv
    finish_shared(srv, request)


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def tls_session(srv, port=None):
    c = SMTPConn(port or srv.submission_port)
    c.ehlo()
    c.starttls(no_verify_context())
    return c


def keywords(reply):
    return [line[4:].split()[0].upper() for line in reply.lines[1:]]


def test_auth_needs_tls_and_is_then_offered(sub):
    with SMTPConn(sub.submission_port) as c:
        r = c.ehlo()
        assert "AUTH" not in keywords(r) and "STARTTLS" in keywords(r)
        assert c.cmd(f"AUTH PLAIN {plain(ALICE, ALICE_PW)}").code == 538
        r = c.cmd("MAIL FROM:<alice@example.test>")
        assert r.code == 530 and "STARTTLS" in r.last[4:], r
    c = tls_session(sub)
    r = c.ehlo()
    assert "AUTH" in keywords(r)
    assert any(line.endswith("AUTH PLAIN LOGIN") for line in r.lines), r
    r = c.cmd("MAIL FROM:<alice@example.test>")
    assert r.code == 530 and r.last[4:].startswith("5.7.0"), r
    c.close()


def test_port_25_offers_no_auth(sub):
    with SMTPConn(sub.smtp_port) as c:
        c.ehlo()
        c.starttls(no_verify_context())
        assert "AUTH" not in keywords(c.ehlo())
        assert c.cmd(f"AUTH PLAIN {plain(ALICE, ALICE_PW)}").code == 502


def test_submit_with_plain_and_deliver_locally(sub):
    c = tls_session(sub)
    c.ehlo()
    r = c.cmd(f"AUTH PLAIN {plain(ALICE, ALICE_PW)}")
    assert (r.code, r.last[4:]) == (235, "2.7.0 Authentication successful"), r
    assert c.cmd(f"AUTH PLAIN {plain(ALICE, ALICE_PW)}").code == 503  # once is enough
    body = make_message("submitted-1").replace(b"From: <sender@client.test>",
                                               b"From: Alice <alice@example.test>", 1)
    queue_id = c.send_message(body, rcpts=(BOB,), sender=ALICE)
    c.quit()
    received, rest = sub.stored_body(queue_id)
    assert received_protocol(received) == ("ESMTPSA", queue_id)
    assert b"submitted-1" in rest


def test_smtplib_login_mechanism_and_relay_after_auth(sub):
    with smtplib.SMTP("127.0.0.1", sub.submission_port, local_hostname=HELO,
                      timeout=IO_TIMEOUT) as s:
        s.starttls(context=no_verify_context())
        s.ehlo()
        s.user, s.password = ALICE, ALICE_PW
        code, _ = s.auth("LOGIN", s.auth_login)
        assert code == 235
        msg = (b"From: alice@example.test\r\nTo: someone@elsewhere.example\r\n"
               b"Subject: out\r\n\r\nto the world\r\n")
        # authenticated: other domains are accepted (queued sends them on)
        refused = s.sendmail("alice+news@example.test", ["someone@elsewhere.example", BOB], msg)
        assert refused == {}


def test_wrong_password_and_unknown_user(sub):
    c = tls_session(sub)
    c.ehlo()
    r = c.cmd(f"AUTH PLAIN {plain(ALICE, 'not it')}")
    assert (r.code, r.last[4:]) == (535, "5.7.8 Authentication credentials invalid"), r
    r = c.cmd(f"AUTH PLAIN {plain('nobody@example.test', 'x')}")
    assert r.code == 535, r
    # acting for someone else (authzid) is refused without a check
    z = base64.b64encode(f"{BOB}\0{ALICE}\0{ALICE_PW}".encode()).decode()
    assert c.cmd(f"AUTH PLAIN {z}").code == 535
    assert c.cmd("AUTH CRAM-MD5").code == 504
    assert c.cmd("AUTH PLAIN not-base64!").code == 501
    # the exchange can be cancelled
    assert c.cmd("AUTH LOGIN").code == 334
    assert c.cmd("*").code == 501
    assert c.cmd("MAIL FROM:<alice@example.test>").code == 530
    c.close()
    assert "smtp auth-failed" in sub.log_text()
    assert ALICE_PW not in sub.log_text() and "not it" not in sub.log_text()


@pytest.mark.parametrize("sender,code", [
    ("alice@example.test", 250),
    ("ALICE+tag@example.test", 250),
    ("sales@example.test", 250),       # an alias that delivers to alice
    ("bob@example.test", 553),         # someone else's mailbox
    ("alice@elsewhere.example", 553),
    ("", 553),                         # no bounces from users
])
def test_envelope_sender_must_be_own(sub, sender, code):
    c = tls_session(sub)
    c.ehlo()
    assert c.cmd(f"AUTH PLAIN {plain(ALICE, ALICE_PW)}").code == 235
    r = c.cmd(f"MAIL FROM:<{sender}>")
    assert r.code == code, r
    if code == 553:
        assert r.last[4:].startswith("5.7.1"), r
    c.close()


@pytest.mark.parametrize("from_header,code", [
    (b"Alice <alice@example.test>", 250),
    (b"sales@example.test", 250),
    (b"Bob <bob@example.test>", 550),
    (b"alice@example.test, bob@example.test", 550),
    (b"undisclosed:;", 550),
    (None, 550),
])
def test_from_header_must_be_own(sub, from_header, code):
    c = tls_session(sub)
    c.ehlo()
    assert c.cmd(f"AUTH PLAIN {plain(ALICE, ALICE_PW)}").code == 235
    head = (b"From: " + from_header + b"\r\n") if from_header is not None else b""
    msg = head + b"To: bob@example.test\r\nSubject: from check\r\n\r\nhello\r\n"
    c.envelope([BOB], sender=ALICE)
    r = c.data(msg)
    assert r.code == code, r
    if code == 550:
        assert r.last[4:].startswith(("5.7.1", "5.6.0")), r
    c.close()


def test_app_password_submits(sub):
    res = sub.cli("user", "app-password", ALICE, "phone", "--password-stdin",
                  input=ALICE_PW + "\n")
    app = [w for w in res.stdout.split() if len(w) == 24][0]
    with smtplib.SMTP_SSL("127.0.0.1", sub.smtps_port, local_hostname=HELO,
                          timeout=IO_TIMEOUT, context=no_verify_context()) as s:
        s.ehlo()
        assert "PLAIN" in s.esmtp_features.get("auth", "")
        s.login(ALICE, app)
        assert s.sendmail(ALICE, [BOB], b"From: alice@example.test\r\n\r\nvia 465\r\n") == {}


def test_smtps_without_auth_still_takes_inbound_mail(sub):
    with smtplib.SMTP_SSL("127.0.0.1", sub.smtps_port, local_hostname=HELO,
                          timeout=IO_TIMEOUT, context=no_verify_context()) as s:
        assert s.sendmail("x@client.test", [BOB], b"Subject: in\r\n\r\nhi\r\n") == {}
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            s.sendmail("x@client.test", ["someone@elsewhere.example"], b"Subject: no\r\n\r\n")


def test_swaks_submission(sub):
    p = subprocess.run(["swaks", "--server", f"127.0.0.1:{sub.submission_port}", "--tls",
                        "--auth", "PLAIN", "--auth-user", ALICE, "--auth-password", ALICE_PW,
                        "--from", ALICE, "--to", BOB, "--header", "From: alice@example.test"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "235 2.7.0" in p.stdout and "250 2.0.0 Ok: queued as" in p.stdout
