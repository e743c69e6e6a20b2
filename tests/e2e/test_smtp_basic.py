"""Plain SMTP sessions: what a sending MTA sees, and what lands in the spool."""
import smtplib
import threading
import uuid

from conftest import (CATCHALL, DOMAIN, HELO, HOSTNAME, IO_TIMEOUT, SENDER, SMTPConn, dot_stuff,
                      make_message, received_protocol, split_received, wait_until)

EHLO_KEYWORDS = {"PIPELINING", "SIZE 26214400", "ENHANCEDSTATUSCODES", "8BITMIME",
                 "SMTPUTF8", "CHUNKING"}


def marker():
    return "MARK-" + uuid.uuid4().hex


def keywords(reply):
    return {line[4:] for line in reply.lines[1:]}


def test_greeting_and_ehlo_keywords(server):
    with SMTPConn(server.smtp_port) as c:
        assert c.greeting.lines == [f"220 {HOSTNAME} ESMTP sealmail"]
        got = keywords(c.ehlo())
        assert EHLO_KEYWORDS | {"STARTTLS"} <= got, got
        c.quit()


def test_submission_port_requires_auth(server):
    with SMTPConn(server.submission_port) as c:
        assert "STARTTLS" in keywords(c.ehlo())
        r = c.cmd(f"MAIL FROM:<{SENDER}>")
        assert r.last.startswith("530 5.7.0 "), r
        r = c.cmd(f"RCPT TO:<rcpt@{DOMAIN}>")
        assert r.code == 503, r
        c.noop_ok()
        c.quit()


def test_plain_session_with_smtplib(server):
    mark = marker()
    body = make_message(mark)
    rcpt = f"alice@{DOMAIN}"
    with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname=HELO,
                      timeout=IO_TIMEOUT) as s:
        code, _ = s.ehlo()
        assert code == 250
        code, msg = s.mail(SENDER)
        assert code == 250 and msg.startswith(b"2.1.0"), msg
        code, msg = s.rcpt(rcpt)
        assert code == 250 and msg.startswith(b"2.1.5"), msg
        code, msg = s.data(body)
        assert code == 250, msg
        queue_id = msg.decode().split("queued as ", 1)[1]
        assert len(queue_id) == 16 and int(queue_id, 16) >= 0, msg
        assert msg == b"2.0.0 Ok: queued as " + queue_id.encode()

    # durable before the 250, under its id, and listed
    assert server.spool_record(queue_id)   # a file or a segment record
    assert queue_id in server.queue_list()
    # the envelope is readable without the key; the content is not
    envelope, _ = server.queue_show(queue_id, key=False)
    assert SENDER in envelope and rcpt in envelope, envelope
    assert mark not in envelope
    received, rest = server.stored_body(queue_id)
    assert received.startswith(
        f"Received: from {HELO} ([127.0.0.1])\r\n\tby {HOSTNAME} (sealmail) with ESMTP id "
        f"{queue_id}".encode()), received
    assert received_protocol(received) == ("ESMTP", queue_id)
    assert rest == body  # exact bytes, dots unstuffed


def test_helo_session_is_plain_smtp(server):
    body = make_message(marker())
    with SMTPConn(server.smtp_port) as c:
        r = c.cmd(f"HELO {HELO}")
        assert r.lines == [f"250 {HOSTNAME}"], r
        queue_id = c.send_message(body)
        c.quit()
    received, rest = server.stored_body(queue_id)
    assert received_protocol(received) == ("SMTP", queue_id)
    assert rest == body


def test_8bitmime_body_is_stored_byte_for_byte(server):
    body = ("Subject: caf\u00e9\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            "Gr\u00fc\u00dfe, \u65e5\u672c, \u00e9t\u00e9\r\n").encode() + bytes(range(0x80, 0x100)) + b"\r\n"
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        queue_id = c.send_message(body, params=" BODY=8BITMIME")
        c.quit()
    _, rest = server.stored_body(queue_id)
    assert rest == body


def test_pipelined_envelope_replies_come_in_order(server):
    body = make_message(marker())
    with SMTPConn(server.smtp_port) as c:
        c.send(f"EHLO {HELO}\r\n"
               f"MAIL FROM:<{SENDER}>\r\n"
               f"RCPT TO:<one@{DOMAIN}>\r\n"
               f"RCPT TO:<two@{DOMAIN}>\r\n"
               f"RCPT TO:<three@elsewhere.test>\r\n"
               f"DATA\r\n")
        ehlo = c.reply()
        assert ehlo.code == 250 and "PIPELINING" in keywords(ehlo), ehlo
        mail, one, two, three, data = c.replies(5)
        assert mail.last.startswith("250 2.1.0"), mail
        assert one.last.startswith("250 2.1.5"), one
        assert two.last.startswith("250 2.1.5"), two
        assert three.last.startswith("550 5.7.1 "), three
        assert data.code == 354, data
        c.send(dot_stuff(body))
        queue_id = c.reply().queue_id
        c.quit()
    envelope, _ = server.queue_show(queue_id, key=False)
    assert f"one@{DOMAIN}" in envelope and f"two@{DOMAIN}" in envelope, envelope
    assert "three@elsewhere.test" not in envelope
    _, rest = server.stored_body(queue_id)
    assert rest == body


def test_pipelined_transactions_back_to_back(server):
    """The next transaction pipelined behind the end of data is answered
    once the first message is durable."""
    first, second = make_message(marker()), make_message(marker())
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<a@{DOMAIN}>\r\nDATA\r\n")
        r = c.replies(3)
        assert [x.code for x in r] == [250, 250, 354], r
        c.send(dot_stuff(first) +
               f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<b@{DOMAIN}>\r\nDATA\r\n".encode())
        done, mail, rcpt, data = c.replies(4)
        id1 = done.queue_id
        assert [mail.code, rcpt.code, data.code] == [250, 250, 354], (mail, rcpt, data)
        c.send(dot_stuff(second) + b"NOOP\r\nQUIT\r\n")
        id2 = c.reply().queue_id
        assert c.reply().last.startswith("250 2.0.0"), "NOOP"
        assert c.reply().last.startswith("221"), "QUIT"
        assert c.read_to_eof() == b""
    assert id1 != id2
    assert split_received(server.queue_show(id1)[1])[1] == first
    assert split_received(server.queue_show(id2)[1])[1] == second


def test_bdat_chunks(server):
    chunks = [b"Subject: chunks\r",             # the CRLF is split across chunks
              b"\n\r\n..two dots stay two in BDAT\r\n",
              b".\r\n",                         # a lone dot is data in BDAT
              b"last line\r\n"]
    body = b"".join(chunks)
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        c.envelope([f"bdat@{DOMAIN}"])
        total = 0
        for i, chunk in enumerate(chunks[:-1]):
            c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
            total += len(chunk)
            r = c.reply()
            allowed = {f"250 2.0.0 Ok: {n} octets received" for n in (len(chunk), total)}
            if i == 0:
                assert r.lines == [f"250 2.0.0 Ok: {len(chunk)} octets received"], r
            else:
                assert r.last in allowed, r
        c.send(b"BDAT %d LAST\r\n" % len(chunks[-1]) + chunks[-1])
        queue_id = c.reply().queue_id
        c.noop_ok()
        c.quit()
    received, rest = server.stored_body(queue_id)
    assert rest == body
    assert received_protocol(received)[1] == queue_id


def test_bdat_pipelined_with_zero_length_last(server):
    body = make_message(marker())
    half = len(body) // 2
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<bdat@{DOMAIN}>\r\n".encode() +
               b"BDAT %d\r\n" % half + body[:half] +
               b"BDAT %d\r\n" % (len(body) - half) + body[half:] +
               b"BDAT 0 LAST\r\n")
        mail, rcpt, c1, c2, last = c.replies(5)
        assert mail.code == 250 and rcpt.code == 250, (mail, rcpt)
        assert c1.lines == [f"250 2.0.0 Ok: {half} octets received"], c1
        assert c2.code == 250 and c2.last.endswith(" octets received"), c2
        queue_id = last.queue_id
        c.quit()
    assert server.stored_body(queue_id)[1] == body


def test_bdat_without_mail_is_consumed_and_refused(server):
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        # the chunk is "NOOPNOOP"; then comes a real NOOP command.  Were the
        # chunk not consumed, "NOOPNOOPNOOP" would come back as a 500.
        c.send(b"BDAT 8\r\nNOOPNOOPNOOP\r\n")
        r = c.reply()
        assert r.code == 503 and r.last.startswith("503 5.5.1"), r
        r = c.reply()
        assert r.last.startswith("250 2.0.0") and "octets" not in r.last, r
        c.noop_ok()
        # the session is usable for a real transaction afterwards
        body = make_message(marker())
        queue_id = c.send_message(body)
        c.quit()
    assert server.stored_body(queue_id)[1] == body


def test_smtputf8_address_with_smtplib(server):
    rcpt = f"j\u00fcrgen@{DOMAIN}"
    sender = "\u4f60\u597d@client.test"
    body = ("From: <" + sender + ">\r\nTo: <" + rcpt + ">\r\nSubject: gr\u00fc\u00dfe\r\n\r\n"
            "\u00e7a marche\r\n").encode()
    with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname=HELO,
                      timeout=IO_TIMEOUT) as s:
        s.ehlo()
        assert s.has_extn("smtputf8")
        code, msg = s.mail(sender, ["SMTPUTF8", "BODY=8BITMIME"])
        assert code == 250, msg
        code, msg = s.rcpt(rcpt)
        assert code == 250, msg
        code, msg = s.data(body)
        assert code == 250, msg
        queue_id = msg.decode().split("queued as ")[1]
    envelope, _ = server.queue_show(queue_id, key=False)
    assert rcpt in envelope and sender in envelope, envelope
    received, rest = server.stored_body(queue_id)
    assert received_protocol(received) == ("UTF8SMTP", queue_id)
    assert rest == body


def test_sendmail_with_smtputf8_option(server):
    """The one-call smtplib form a script would use."""
    with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname=HELO,
                      timeout=IO_TIMEOUT) as s:
        refused = s.sendmail(SENDER, [f"\u00e9l\u00e8ve@{DOMAIN}"], make_message(marker()),
                             mail_options=["SMTPUTF8"])
        assert refused == {}


def test_non_ascii_address_without_smtputf8_is_refused(server):
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<j\u00fcrgen@client.test>")
        assert r.last.startswith("553 5.6.7"), r
        c.cmd(f"MAIL FROM:<{SENDER}>")
        r = c.cmd(f"RCPT TO:<j\u00fcrgen@{DOMAIN}>")
        assert r.last.startswith("553 5.6.7"), r
        c.noop_ok()
        c.quit()


def test_relay_is_refused(server):
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        assert c.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        for rcpt in ["victim@elsewhere.test", f"x@sub.{DOMAIN}", f"x@{DOMAIN}.evil.test",
                     "x@[127.0.0.1]", "x@[IPv6:::1]"]:
            r = c.cmd(f"RCPT TO:<{rcpt}>")
            assert r.last.startswith("550 5.7.1 "), (rcpt, r)
        # tricks that hide a foreign domain behind the hosted one
        for rcpt in [f'"x@{DOMAIN}"@evil.test', f"@{DOMAIN}:x@evil.test"]:
            r = c.cmd(f"RCPT TO:<{rcpt}>")
            assert r.code in (550, 501), (rcpt, r)
        # nothing was accepted, so there is nothing to send
        r = c.cmd("DATA")
        assert r.code in (503, 554), r
        c.noop_ok()
        c.quit()


def test_hosted_domain_and_postmaster_are_accepted(server):
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<>").code == 250   # the null sender (bounces)
        for rcpt in ["<postmaster>", "<Postmaster>", f"<postmaster@{DOMAIN}>",
                     f"<Someone@{DOMAIN.upper()}>"]:
            r = c.cmd(f"RCPT TO:{rcpt}")
            assert r.last.startswith("250 2.1.5"), (rcpt, r)
        body = make_message(marker())
        queue_id = c.data(body).queue_id
        c.quit()
    envelope, _ = server.queue_show(queue_id, key=False)
    assert "postmaster" in envelope.lower()


def test_vrfy_and_expn_do_not_disclose(server):
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        for cmd in (f"VRFY alice@{DOMAIN}", "VRFY root", "EXPN staff"):
            r = c.cmd(cmd)
            assert r.code == 252, (cmd, r)
        c.quit()


def test_command_order_is_enforced(server):
    with SMTPConn(server.smtp_port) as c:
        r = c.cmd(f"MAIL FROM:<{SENDER}>")
        assert r.code == 503, r
        c.ehlo()
        assert c.cmd(f"RCPT TO:<a@{DOMAIN}>").code == 503
        assert c.cmd("DATA").code == 503
        c.envelope([f"a@{DOMAIN}"])
        r = c.cmd(f"MAIL FROM:<{SENDER}>")
        assert r.code == 503, "nested MAIL"
        r = c.cmd("RSET")
        assert r.last.startswith("250 2.0.0"), r
        assert c.cmd("DATA").code == 503, "RSET forgets the transaction"
        c.noop_ok()
        c.quit()


def test_fifty_clients_at_once(server):
    n = 50
    barrier = threading.Barrier(n, timeout=120)
    results, errors = {}, []
    lock = threading.Lock()

    def client(i):
        try:
            with SMTPConn(server.smtp_port) as c:
                c.ehlo(f"client{i}.test")
                barrier.wait()          # all 50 sessions are open now
                body = make_message(f"client-{i}-{uuid.uuid4().hex}")
                queue_id = c.send_message(body, rcpts=[f"user{i}@{DOMAIN}"])
                c.quit()
            with lock:
                results[i] = (queue_id, body)
        except BaseException as e:  # noqa: BLE001 - reported below
            barrier.abort()
            with lock:
                errors.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not any(t.is_alive() for t in threads), "clients still running"
    assert not errors, errors
    ids = [results[i][0] for i in range(n)]
    assert len(set(ids)) == n, "queue ids are not distinct"
    listed = server.queue_list()
    assert len(listed) == len(set(listed)), "an id is listed twice"
    missing = set(ids) - set(listed)
    assert not missing, f"acknowledged but not listed: {missing}"
    for i in (0, n // 2, n - 1):
        queue_id, body = results[i]
        assert server.stored_body(queue_id)[1] == body


def test_deep_pipelining_while_not_reading(server):
    """20000 pipelined commands from a client that reads nothing until it
    has sent them all: every one is answered, in order, none is lost."""
    n = 20000
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        sent = []
        sender = threading.Thread(target=lambda: sent.append(c.sock.sendall(b"NOOP\r\n" * n)),
                                  daemon=True)
        sender.start()
        for i in range(n):
            r = c.reply()
            assert r.last.startswith("250 2.0.0"), (i, r)
        sender.join(60)
        assert sent == [None], "the client could not send its commands"
        c.noop_ok()
        c.quit()


def test_pipelining_while_both_buffers_are_full(server):
    """The client sends 60000 HELP and a NOOP, and reads nothing for a while,
    so the server's input and output both fill up: after the client starts
    reading, every command is still answered (the review found reading
    stopped for good once the output drained)."""
    import time
    n = 60000
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        sent = []
        sender = threading.Thread(
            target=lambda: sent.append(c.sock.sendall(b"HELP\r\n" * n + b"NOOP\r\n")),
            daemon=True)
        sender.start()
        time.sleep(3)                   # let both directions back up
        for i in range(n):
            r = c.reply()
            assert r.code == 214, (i, r)
        assert c.reply().last.startswith("250 2.0.0"), "the NOOP after the flood"
        sender.join(60)
        assert sent == [None]
        c.noop_ok()
        c.quit()


def test_invalid_utf8_address_is_refused(server):
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        assert c.cmd(f"MAIL FROM:<{SENDER}> SMTPUTF8").code == 250
        for raw in (b"\xff\xfe@" + DOMAIN.encode(), b"ok\xc3@" + DOMAIN.encode(),
                    b"a\xc0\xaf@" + DOMAIN.encode()):
            c.send(b"RCPT TO:<" + raw + b">\r\n")
            r = c.reply()
            assert r.code in (501, 553), (raw, r)
        c.noop_ok()
        c.quit()


def test_domains_added_and_removed_while_serving(make_server):
    server = make_server()
    extra = "second.test"

    def rcpt_reply(domain):
        with SMTPConn(server.smtp_port) as c:
            c.ehlo()
            assert c.cmd(f"MAIL FROM:<{SENDER}>").code == 250
            last = c.cmd(f"RCPT TO:<someone@{domain}>").last
            c.quit()
        return last

    def rcpt_code(domain):
        return int(rcpt_reply(domain)[:3])

    assert rcpt_reply(extra).startswith("550 5.7.1")     # not hosted: relaying denied
    server.cli("domain", "add", extra)
    # hosted at the very next RCPT (a miss makes smtpd look for directory changes),
    # but nobody is there yet
    assert rcpt_reply(extra).startswith("550 5.1.1")
    server.cli("alias", "add", f"@{extra}", CATCHALL)
    assert rcpt_code(extra) == 250
    server.cli("alias", "remove", f"@{extra}")
    server.cli("domain", "remove", extra)
    wait_until(lambda: rcpt_reply(extra).startswith("550 5.7.1"), 30, 0.2,
               f"{extra} to be refused again")
    assert rcpt_code(DOMAIN) == 250
