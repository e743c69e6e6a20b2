"""TLS: STARTTLS on the SMTP port, implicit TLS on the SMTPS port, and the
attacks on the switch-over (pipelined plaintext after STARTTLS)."""
import re
import signal
import smtplib
import ssl
import subprocess
import uuid
import warnings

import pytest

from conftest import (DOMAIN, HELO, HOSTNAME, IO_TIMEOUT, SENDER, SMTPConn, make_message,
                      no_verify_context, received_protocol, wait_until)


def cert_path(server):
    return server.data / "keys" / "tls" / "cert.pem"


def trusting_context(server, check_hostname=False):
    """Verifies the chain against the server's own self-signed certificate."""
    ctx = ssl.create_default_context(cafile=str(cert_path(server)))
    ctx.check_hostname = check_hostname
    return ctx


def keywords(reply):
    return {line[4:] for line in reply.lines[1:]}


def marker():
    return "TLSMARK-" + uuid.uuid4().hex


def test_starttls_with_smtplib(server):
    body = make_message(marker())
    with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname=HELO,
                      timeout=IO_TIMEOUT) as s:
        s.ehlo()
        assert s.has_extn("starttls")
        code, msg = s.starttls(context=trusting_context(server))
        assert code == 220, msg
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
        code, _ = s.ehlo()
        assert code == 250
        assert not s.has_extn("starttls"), "STARTTLS offered again inside TLS"
        code, msg = s.mail(SENDER)
        assert code == 250, msg
        code, msg = s.rcpt(f"tls@{DOMAIN}")
        assert code == 250, msg
        code, msg = s.data(body)
        assert code == 250, msg
        queue_id = msg.decode().split("queued as ")[1]
    received, rest = server.stored_body(queue_id)
    assert received_protocol(received) == ("ESMTPS", queue_id)
    assert rest == body


def test_certificate_is_for_the_configured_hostname(server):
    ctx = trusting_context(server, check_hostname=True)
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        tls = c.starttls(ctx, server_hostname=HOSTNAME)   # verifies name and chain
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        cert = tls.getpeercert()
        assert ("DNS", HOSTNAME) in cert.get("subjectAltName", ()), cert
        c.ehlo()
        c.noop_ok()


def test_starttls_resets_the_session(server):
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        assert c.cmd(f"MAIL FROM:<{SENDER}>").code == 250   # forgotten by STARTTLS
        c.starttls(no_verify_context())
        r = c.cmd(f"MAIL FROM:<{SENDER}>")
        assert r.code == 503, f"MAIL accepted before the post-TLS EHLO: {r}"
        ehlo = c.ehlo()
        assert "STARTTLS" not in keywords(ehlo), ehlo
        r = c.cmd(f"RCPT TO:<x@{DOMAIN}>")
        assert r.code == 503, f"the pre-TLS MAIL survived STARTTLS: {r}"
        r = c.cmd("STARTTLS")
        assert r.code in (503, 502, 554) and r.code >= 500, r
        c.noop_ok()
        body = make_message(marker())
        queue_id = c.send_message(body)
        c.noop_ok()
    assert received_protocol(server.stored_body(queue_id)[0])[0] == "ESMTPS"


def test_quit_inside_tls_gets_its_221(server):
    """The last reply before the close is flushed through TLS too."""
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        c.starttls(no_verify_context())
        c.ehlo()
        c.quit()       # 221, then a clean end of the connection
    with SMTPConn(server.smtps_port, tls_context=no_verify_context()) as c:
        c.ehlo()
        c.quit()


def test_implicit_tls_with_smtp_ssl(server):
    body = make_message(marker())
    with smtplib.SMTP_SSL("127.0.0.1", server.smtps_port, local_hostname=HELO,
                          timeout=IO_TIMEOUT, context=trusting_context(server)) as s:
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
        code, _ = s.ehlo()
        assert code == 250
        assert not s.has_extn("starttls")
        for ext in ("pipelining", "size", "chunking", "smtputf8", "8bitmime"):
            assert s.has_extn(ext), ext
        s.mail(SENDER)
        code, msg = s.rcpt(f"tls@{DOMAIN}")
        assert code == 250, msg
        code, msg = s.data(body)
        assert code == 250, msg
        queue_id = msg.decode().split("queued as ")[1]
    received, rest = server.stored_body(queue_id)
    assert received_protocol(received) == ("ESMTPS", queue_id)
    assert rest == body


def test_implicit_tls_greeting_and_no_starttls(server):
    with SMTPConn(server.smtps_port, tls_context=no_verify_context()) as c:
        # SMTPConn checked the exact 220 greeting inside TLS
        assert "STARTTLS" not in keywords(c.ehlo())
        r = c.cmd("STARTTLS")
        assert r.code >= 500, r
        c.noop_ok()
        c.quit()


def _client_context(version):
    ctx = no_verify_context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.set_ciphers("ALL:@SECLEVEL=0")   # let the client offer old protocols
        ctx.minimum_version = version
        ctx.maximum_version = version
    return ctx


def _handshake(server, where, ctx):
    if where == "smtps":
        c = SMTPConn(server.smtps_port, tls_context=ctx)
    else:
        c = SMTPConn(server.smtp_port)
        c.ehlo()
        c.starttls(ctx)
        c.ehlo()
    with c:
        version = c.sock.version()
        c.noop_ok()
    return version


@pytest.mark.parametrize("where", ["smtps", "starttls"])
def test_tls_1_2_and_1_3_work(server, where):
    assert _handshake(server, where, _client_context(ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"
    assert _handshake(server, where, _client_context(ssl.TLSVersion.TLSv1_3)) == "TLSv1.3"


@pytest.mark.parametrize("where", ["smtps", "starttls"])
def test_tls_1_1_client_is_refused(server, where):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = _client_context(ssl.TLSVersion.TLSv1_1)
    with SMTPConn(server.smtps_port if where == "smtps" else server.smtp_port,
                  greet=False) as c:
        if where == "starttls":
            assert c.reply().code == 220
            c.ehlo()
            assert c.cmd("STARTTLS").code == 220
        with pytest.raises(ssl.SSLError) as e:
            ctx.wrap_socket(c.sock)     # the handshake itself must fail
    # the client did offer TLS 1.1 (it was not refused locally) and the server
    # said no with a protocol_version alert (also after STARTTLS: the alert
    # must be flushed before the connection closes)
    assert e.value.reason in ("TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL"), e.value
    # and the server is fine afterwards
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        c.noop_ok()
        c.quit()


@pytest.mark.parametrize("injected", [
    "MAIL FROM:<evil@evil.test>\r\n",
    "RSET\r\n",
    "NOOP\r\n",
    f"EHLO evil.test\r\nMAIL FROM:<evil@evil.test>\r\nRCPT TO:<victim@{DOMAIN}>\r\n",
])
def test_starttls_with_pipelined_plaintext_is_refused(server, injected):
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        c.send("STARTTLS\r\n" + injected)   # one write, one packet
        r = c.reply()
        assert r.last.startswith("554 5.5.1 "), r
        rest = c.read_to_eof()
        assert rest == b"", f"the injected text was answered: {rest!r}"


def make_cert(directory, name):
    """A self-signed certificate for name: directory/NAME.pem and NAME.key."""
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
         "-keyout", str(directory / f"{name}.key"), "-out", str(directory / f"{name}.pem")],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert proc.returncode == 0, proc.stdout
    return directory / f"{name}.pem"


def served_for(server, sni, cafile):
    """True if a STARTTLS handshake naming sni verifies against cafile,
    False if the certificate does not verify."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        try:
            c.starttls(ctx, server_hostname=sni)
        except ssl.SSLCertVerificationError:
            return False
        c.ehlo()
        c.noop_ok()
    return True


def served_after_reload(server, sni, cafile):
    """served_for, where a session caught by the reload (421 from the old
    smtpd, or a dropped connection) only means: not yet."""
    try:
        return served_for(server, sni, cafile)
    except (AssertionError, EOFError, OSError) as e:
        if "421" in str(e) or not isinstance(e, AssertionError):
            return False
        raise


def test_sni_picks_the_certificate_and_sighup_reloads_them(make_server):
    server = make_server(start=False)
    server.cli("init")
    sni_dir = server.data / "keys" / "tls" / "sni"
    other = make_cert(sni_dir, "other.test")
    server.start()
    default = cert_path(server)
    assert served_for(server, "other.test", other)
    assert served_for(server, HOSTNAME, default)
    # an unknown name gets the default certificate, on both ports
    assert not served_for(server, "unknown.test", other)
    ctx = trusting_context(server)
    with SMTPConn(server.smtps_port, tls_context=ctx, server_hostname="unknown.test") as c:
        c.ehlo()
    # certificates added later are picked up by SIGHUP
    third = make_cert(sni_dir, "third.test")
    server.signal(signal.SIGHUP)
    wait_until(lambda: served_after_reload(server, "third.test", third), 30, 0.2,
               "the new SNI certificate after SIGHUP")
    wait_until(lambda: served_after_reload(server, "other.test", other), 30, 0.2,
               "the old SNI certificate after SIGHUP")


@pytest.mark.parametrize("mode,proto", [
    ("plain", "ESMTP"),
    ("pipeline", "ESMTP"),
    ("starttls", "ESMTPS"),
    ("tls-on-connect", "ESMTPS"),
])
def test_swaks_delivers(server, mode, proto):
    mark = marker()
    port = server.smtps_port if mode == "tls-on-connect" else server.smtp_port
    argv = ["swaks", "--server", f"127.0.0.1:{port}", "--to", f"x@{DOMAIN}",
            "--from", SENDER, "--helo", HELO, "--timeout", str(IO_TIMEOUT),
            "--header", f"Subject: {mark}", "--body", f"body {mark}"]
    argv += {"plain": [], "pipeline": ["--pipeline"], "starttls": ["--tls"],
             "tls-on-connect": ["--tls-on-connect"]}[mode]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=120)
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, out
    m = re.search(r"250 2\.0\.0 Ok: queued as ([0-9a-f]{16})", out)
    assert m, out
    queue_id = m.group(1)
    assert queue_id in server.queue_list()
    received, rest = server.stored_body(queue_id)
    assert received_protocol(received) == (proto, queue_id)
    assert f"Subject: {mark}\r\n".encode() in rest
    assert f"body {mark}".encode() in rest
