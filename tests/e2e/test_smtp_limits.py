"""Hard limits: message size, recipients, line length, errors, connections,
idle time.  Each refusal is exact, and the session (or the server) answers
normally afterwards (STYLE.md section 24)."""
import pytest

from conftest import DOMAIN, SENDER, SMTPConn, Server, finish_shared, make_message

MAX_SIZE = 16384
MAX_RCPTS = 3
MAX_ERRORS = 5
MAX_LINE = 512
MAX_DATA_LINE = 1000

LIMITS = {"smtp": {"max_message_size": "16k", "max_recipients": str(MAX_RCPTS),
                   "max_errors": str(MAX_ERRORS), "max_line": str(MAX_LINE),
                   "max_data_line": str(MAX_DATA_LINE)}}


@pytest.fixture(scope="module")
def limits_server(workroot, request):
    srv = Server(workroot, "limits", LIMITS)
    srv.start()
    yield srv
    finish_shared(srv, request)


@pytest.fixture
def srv(limits_server, request):
    assert limits_server.running(), limits_server.log_tail()
    request.node._sealmail_servers = [limits_server]
    since = len(limits_server.log_text())
    yield limits_server
    limits_server.check_log(since)
    assert limits_server.running(), limits_server.log_tail()


def filler(size):
    """Message bytes of exactly `size` octets, in 100-octet lines."""
    head = b"Subject: big\r\n\r\n"
    line = b"x" * 98 + b"\r\n"
    n, rest = divmod(size - len(head), len(line))
    tail = b"y" * (rest - 2) + b"\r\n" if rest >= 2 else b""
    body = head + line * n + tail
    assert len(body) in (size, size - 1)
    return body


def test_ehlo_announces_the_configured_size(srv):
    with SMTPConn(srv.smtp_port) as c:
        assert f"250-SIZE {MAX_SIZE}" in c.ehlo().lines
        c.quit()


def test_message_over_max_size_is_refused(srv):
    before = set(srv.queue_list())
    with SMTPConn(srv.smtp_port) as c:
        c.ehlo()
        c.envelope([f"big@{DOMAIN}"])
        r = c.data(filler(MAX_SIZE + 4000))
        assert r.last.startswith("552 5.3.4"), r
        c.noop_ok()
        # a message well under the limit still goes through on the same session
        small = filler(MAX_SIZE - 2000)
        queue_id = c.send_message(small)
        c.quit()
    assert set(srv.queue_list()) - before == {queue_id}
    assert srv.stored_body(queue_id)[1] == small


def test_mail_size_parameter_over_the_limit_is_refused(srv):
    with SMTPConn(srv.smtp_port) as c:
        c.ehlo()
        r = c.cmd(f"MAIL FROM:<{SENDER}> SIZE={MAX_SIZE * 100}")
        assert r.code == 552, r
        r = c.cmd(f"MAIL FROM:<{SENDER}> SIZE=99999999999999999999999")
        assert r.code in (552, 501, 555), r
        c.noop_ok()
        r = c.cmd(f"MAIL FROM:<{SENDER}> SIZE={MAX_SIZE // 2}")
        assert r.last.startswith("250 2.1.0"), r
        c.quit()


def test_bdat_over_max_size_is_refused_and_consumed(srv):
    chunk = filler(MAX_SIZE + 4000)
    with SMTPConn(srv.smtp_port) as c:
        c.ehlo()
        c.envelope([f"big@{DOMAIN}"])
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk + b"NOOP\r\n")
        r = c.reply()
        assert r.last.startswith("552 5.3.4"), r
        r = c.reply()
        assert r.last.startswith("250 2.0.0") and "queued" not in r.last, r
        c.quit()


def test_too_many_recipients(srv):
    rcpts = [f"r{i}@{DOMAIN}" for i in range(MAX_RCPTS + 2)]
    with SMTPConn(srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        for rcpt in rcpts[:MAX_RCPTS]:
            r = c.cmd(f"RCPT TO:<{rcpt}>")
            assert r.last.startswith("250 2.1.5"), r
        for rcpt in rcpts[MAX_RCPTS:]:
            r = c.cmd(f"RCPT TO:<{rcpt}>")
            assert r.last.startswith("452 4.5.3"), r
        body = make_message("rcpt-limit")
        queue_id = c.data(body).queue_id
        c.quit()
    envelope, _ = srv.queue_show(queue_id, key=False)
    for rcpt in rcpts[:MAX_RCPTS]:
        assert rcpt in envelope, envelope
    for rcpt in rcpts[MAX_RCPTS:]:
        assert rcpt not in envelope, envelope


def test_command_line_length_limit(srv):
    with SMTPConn(srv.smtp_port) as c:
        c.ehlo()
        fits = "NOOP " + "a" * (MAX_LINE - len("NOOP ") - 2)   # CRLF included: MAX_LINE
        assert len(fits) + 2 == MAX_LINE
        r = c.cmd(fits)
        assert r.code == 250, f"a {MAX_LINE}-octet line was refused: {r}"
        r = c.cmd(fits + "a")
        assert r.last.startswith("500 5.5.2"), r
        c.noop_ok()
        # a line far over the limit gets one reply, not one per chunk
        c.send(b"NOOP " + b"z" * 200000 + b"\r\n")
        r = c.reply()
        assert r.last.startswith("500 5.5.2"), r
        c.noop_ok()
        # and a whole transaction still works
        queue_id = c.send_message(make_message("after-long-lines"))
        c.quit()
    assert queue_id in srv.queue_list()


def test_data_line_length_limit(srv):
    before = set(srv.queue_list())
    with SMTPConn(srv.smtp_port) as c:
        c.ehlo()
        c.envelope([f"long@{DOMAIN}"])
        r = c.data(b"Subject: long line\r\n\r\n" + b"q" * (MAX_DATA_LINE * 3) + b"\r\n")
        assert r.code >= 500, f"an over-long message line was accepted: {r}"
        c.noop_ok()
        c.quit()
    assert set(srv.queue_list()) == before


def test_unknown_commands_until_max_errors(srv):
    with SMTPConn(srv.smtp_port) as c:
        c.ehlo()
        for i in range(MAX_ERRORS - 1):
            r = c.cmd("XYZZY")
            assert r.last.startswith("500 5.5.2"), (i, r)
            c.noop_ok()   # valid commands in between do not count
        r = c.cmd("XYZZY")
        assert r.last.startswith("500 5.5.2"), r
        r = c.reply()
        assert r.last.startswith("421 4.7.0"), r
        assert c.read_to_eof() == b""
    # the next session starts with a clean slate
    with SMTPConn(srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("XYZZY").last.startswith("500 5.5.2")
        c.noop_ok()
        c.quit()


def test_connection_limits(make_server):
    """Per client address and per server; a freed slot can be used again."""
    server = make_server({"smtp": {"max_connections_per_client": "3",
                                   "max_connections": "5"}})
    held = []
    try:
        for _ in range(3):
            held.append(SMTPConn(server.smtp_port, source="127.0.0.1"))
        c = SMTPConn(server.smtp_port, source="127.0.0.1", greet=False)
        r = c.reply()
        assert r.last.startswith("421 4.7.0"), r
        assert c.read_to_eof() == b""
        c.close()
        # other addresses are not affected by 127.0.0.1's limit...
        for _ in range(2):
            held.append(SMTPConn(server.smtp_port, source="127.0.0.2"))
        # ...until the server itself is full
        c = SMTPConn(server.smtp_port, source="127.0.0.3", greet=False)
        r = c.reply()
        assert r.last.startswith("421 4.7.0"), r
        c.close()
        # the held sessions are unharmed
        for h in held:
            h.noop_ok()
        held.pop(0).quit()
        c = SMTPConn(server.smtp_port, source="127.0.0.1")   # greeted with 220 again
        held.append(c)
        c.ehlo()
        c.noop_ok()
    finally:
        for h in held:
            h.close()


def test_stalled_clients_are_dropped_at_command_timeout(make_server):
    server = make_server({"smtp": {"command_timeout": "2", "data_timeout": "2"}})
    idle = SMTPConn(server.smtp_port)
    idle.ehlo()
    partial = SMTPConn(server.smtp_port)
    partial.ehlo()
    partial.send(f"MAIL FROM:<{SENDER}")        # half a command, then silence
    in_tx = SMTPConn(server.smtp_port)
    in_tx.ehlo()
    in_tx.envelope([f"x@{DOMAIN}"])
    in_data = SMTPConn(server.smtp_port)
    in_data.ehlo()
    in_data.envelope([f"y@{DOMAIN}"])
    assert in_data.cmd("DATA").code == 354
    in_data.send(b"Subject: stalled in the middle\r\n\r\nhalf a messa")
    for c in (idle, partial, in_tx, in_data):
        with c:
            r = c.reply()                       # bounded by the socket timeout
            assert r.last.startswith("421 4.4.2 "), r
            assert c.read_to_eof() == b""
    # nothing was queued, and the server is fine
    assert server.queue_list() == []
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        c.noop_ok()
        c.quit()


def test_garbage_commands_then_noop(srv):
    with SMTPConn(srv.smtp_port) as c:
        c.ehlo()
        for garbage in (b"\x00\xff\xfe\x01 junk", b" ", b"\x1b[2J\x07"):
            c.send(garbage + b"\r\n")
            r = c.reply()
            assert r.last.startswith("500 5.5.2"), (garbage, r)
        c.noop_ok()
        c.quit()


def test_unparsable_bdat_size_ends_the_session(srv):
    """Without a valid size the chunk cannot be skipped: refuse and close,
    never read the following bytes as commands."""
    with SMTPConn(srv.smtp_port) as c:
        c.ehlo()
        c.send(b"BDAT 99999999999999999999999\r\nNOOP\r\n")
        r = c.reply()
        assert r.code == 501, r
        rest = c.read_to_eof()
        assert b"250" not in rest, rest
        assert rest == b"" or rest.startswith(b"421 "), rest
    with SMTPConn(srv.smtp_port) as c:
        c.ehlo()
        c.noop_ok()
        c.quit()


def test_nine_hundred_sessions_open_in_data_at_once(make_server):
    """900 clients all mid-DATA at the same moment (default max_connections is
    1000), then all finish: every one gets its 250 and is in the queue."""
    import socket

    n = 900
    server = make_server({"smtp": {"max_connections_per_client": "1000"}})
    socks = []

    def read_reply(s):
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = s.recv(4096)
            assert chunk, f"connection closed after {data!r}"
            data += chunk
        return data

    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", server.smtp_port), timeout=60)
            assert read_reply(s).startswith(b"220")
            s.sendall(b"EHLO many.test\r\nMAIL FROM:<a@b.example>\r\n"
                      b"RCPT TO:<u@example.test>\r\nDATA\r\n")
            socks.append(s)
        for s in socks:
            got = b""
            while b"\r\n354 " not in got:
                chunk = s.recv(4096)
                assert chunk, got
                got += chunk
            s.sendall(b"Subject: hold\r\n\r\n" + b"x" * 1000 + b"\r\n")
        for s in socks:
            s.sendall(b".\r\nQUIT\r\n")
        accepted = sum(read_reply(s).startswith(b"250 2.0.0") for s in socks)
    finally:
        for s in socks:
            s.close()
    assert accepted == n
    assert len(server.queue_list()) == n
