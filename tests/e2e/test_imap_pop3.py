"""IMAP and POP3 end to end, with Python's imaplib and poplib as the clients.

Mail goes in through SMTP, queued seals it into the mailbox's drop/, and
the owner's login (IMAP or POP3) unlocks the store, imports the drop and
serves it.  TLS is real (STARTTLS, implicit TLS on 993/995-style ports);
passwords in clear are refused unless a test's server allows loopback."""
import base64
import imaplib
import poplib
import re
import socket
import ssl
import time

import pytest

from conftest import (DOMAIN, SMTPConn, make_message, no_verify_context, split_auth_results,
                      wait_until)

PASSWORD = "correct horse battery staple"
ALICE = f"alice@{DOMAIN}"


@pytest.fixture
def live(make_server):
    """A delivering server that accepts passwords in clear from loopback."""
    return make_server({"spool": {"hold": "no"}, "imap": {"plaintext_loopback": "yes"}})


def deliver(server, address, markers, extra=b""):
    """Send one message per marker to address and wait until queued has
    sealed them all into the mailbox's drop/ (or a session imported them)."""
    for marker in markers:
        with SMTPConn(server.smtp_port) as c:
            c.ehlo()
            c.send_message(make_message(marker, subject=marker, extra=extra), rcpts=(address,))
            c.quit()

    def delivered():
        return not server.queue_list()
    wait_until(delivered, 30, 0.1, "queued to deliver everything")


def imap(server, tls=True):
    if tls:
        return imaplib.IMAP4_SSL("127.0.0.1", server.imaps_port, ssl_context=no_verify_context())
    return imaplib.IMAP4("127.0.0.1", server.imap_port)


class RawIMAP:
    """A bare IMAP client for what imaplib will not send (IDLE, ENABLE
    while selected, pipelining, broken input)."""

    def __init__(self, port, tls_context=None):
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.sock = tls_context.wrap_socket(sock) if tls_context else sock
        self.buf = b""
        self.n = 0
        self.greeting = self.line()

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed; pending {self.buf!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        m = re.search(rb"\{(\d+)\}$", line)
        if m:  # a literal: its bytes, then the rest of the line
            size = int(m.group(1))
            while len(self.buf) < size:
                self.buf += self.sock.recv(65536)
            line += b"\r\n" + self.buf[:size]
            self.buf = self.buf[size:]
            line += self.line()
        return line

    def send(self, data):
        self.sock.sendall(data)

    def cmd(self, text):
        """Send a command, return (untagged lines, tagged line)."""
        self.n += 1
        tag = f"r{self.n}"
        self.send(f"{tag} {text}\r\n".encode())
        return self.until(tag)

    def until(self, tag):
        untagged = []
        while True:
            line = self.line()
            if line.startswith(tag.encode() + b" "):
                return untagged, line
            untagged.append(line)

    def close(self):
        self.sock.close()


# ---- POP3 ---------------------------------------------------------------------------


def test_pop3_maildrop_retr_dele_and_uidl(live):
    live.add_user(ALICE, PASSWORD)
    deliver(live, ALICE, ["pop-one", "pop-two", "pop-three"],
            extra=b".a line that starts with a dot\r\n")

    p = poplib.POP3_SSL("127.0.0.1", live.pop3s_port, context=no_verify_context())
    assert p.user(ALICE).startswith(b"+OK")
    assert p.pass_(PASSWORD).startswith(b"+OK Logged in, 3 messages")
    count, size = p.stat()
    assert count == 3 and size > 0
    sizes = [int(x.split()[1]) for x in p.list()[1]]
    assert sum(sizes) == size
    uidls = [x.split()[1] for x in p.uidl()[1]]
    assert len(set(uidls)) == 3 and all(re.fullmatch(rb"[0-9a-f]{16}", u) for u in uidls)
    resp, lines, octets = p.retr(2)
    text = b"\r\n".join(lines)
    assert b"pop-two" in text
    assert b"\r\n.a line that starts with a dot" in text  # dot-stuffing undone by poplib
    assert octets >= sizes[1]
    top = p.top(1, 0)[1]
    assert b"Subject: pop-one" in top and b"pop-one marker" not in b"\n".join(top[-1:])
    p.dele(1)
    with pytest.raises(poplib.error_proto, match="No such message"):
        p.retr(1)
    p.rset()
    p.retr(1)
    p.dele(1)
    assert p.quit().startswith(b"+OK")

    p = poplib.POP3_SSL("127.0.0.1", live.pop3s_port, context=no_verify_context())
    p.user(ALICE)
    p.pass_(PASSWORD)
    assert p.stat()[0] == 2
    assert [x.split()[1] for x in p.uidl()[1]] == uidls[1:]  # stable across sessions
    p.quit()


def test_pop3_refuses_passwords_in_clear_and_wrong_ones(make_server):
    server = make_server({"spool": {"hold": "no"}})
    server.add_user(ALICE, PASSWORD)
    p = poplib.POP3("127.0.0.1", server.pop3_port)
    caps = p.capa()
    assert "STLS" in caps and "USER" not in caps and "SASL" not in caps
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Plaintext"):
        p.user(ALICE)
    p.stls(context=no_verify_context())
    assert "USER" in p.capa()
    p.user(ALICE)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Authentication failed"):
        p.pass_("wrong")
    p.user(ALICE)
    assert p.pass_(PASSWORD).startswith(b"+OK")
    p.quit()


# ---- IMAP: login -------------------------------------------------------------------


def test_imap_login_needs_tls_and_the_right_password(make_server):
    server = make_server()
    server.add_user(ALICE, PASSWORD)
    m = imap(server, tls=False)
    assert "LOGINDISABLED" in m.capabilities and "STARTTLS" in m.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
        m.login(ALICE, PASSWORD)
    m.starttls(no_verify_context())
    assert "AUTH=PLAIN" in m.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login(ALICE, "not the password")
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login(f"nobody@{DOMAIN}", PASSWORD)
    typ, data = m.login(ALICE, PASSWORD)
    assert typ == "OK" and b"CAPABILITY" in data[0] and b"UIDPLUS" in data[0]
    m.logout()

    # implicit TLS and AUTHENTICATE PLAIN with an initial response (SASL-IR)
    raw = RawIMAP(server.imaps_port, no_verify_context())
    import base64
    ir = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
    _, tagged = raw.cmd(f"AUTHENTICATE PLAIN {ir}")
    assert b"OK" in tagged, tagged
    raw.close()


def test_starttls_discards_pipelined_commands(make_server):
    server = make_server()
    raw = RawIMAP(server.imap_port)
    raw.send(b"a STARTTLS\r\nb LOGIN injected command\r\n")
    _, tagged = raw.until("a")
    assert tagged.startswith(b"a OK")
    tls = no_verify_context().wrap_socket(raw.sock)
    raw.sock, raw.buf = tls, b""
    _, tagged = raw.cmd("NOOP")
    assert tagged.startswith(b"r1 OK")  # "b LOGIN" was never answered
    raw.close()


# ---- IMAP: messages ----------------------------------------------------------------


def test_imap_fetch_search_store_expunge(live):
    live.add_user(ALICE, PASSWORD)
    deliver(live, ALICE, ["imap-alpha", "imap-bravo", "imap-charlie"])
    m = imap(live)
    m.login(ALICE, PASSWORD)
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"3"]

    typ, data = m.fetch("1:*", "(UID FLAGS RFC822.SIZE ENVELOPE)")
    # \Recent: this is the first session to see them (RFC 3501 §2.3.2)
    assert len(data) == 3 and b"imap-alpha" in data[0] and b"FLAGS (\\Recent)" in data[0]
    typ, data = m.fetch("2", "(BODY.PEEK[])")
    body = data[0][1]
    assert b"imap-bravo" in body and split_auth_results(body)[1].startswith(b"Received: ")
    size = int(re.search(rb"RFC822.SIZE (\d+)", m.fetch("2", "(RFC822.SIZE)")[1][0]).group(1))
    assert size == len(body)
    assert m.fetch("2", "(FLAGS)")[1] == [b"2 (FLAGS (\\Recent))"]  # PEEK left \Seen alone
    m.fetch("2", "(BODY[TEXT])")
    assert b"\\Seen" in m.fetch("2", "(FLAGS)")[1][0]
    partial = m.fetch("2", "(BODY.PEEK[]<0.10>)")[1][0]
    assert partial[1] == body[:10]

    assert m.search(None, "TEXT", "imap-charlie") == ("OK", [b"3"])
    assert m.search(None, "SUBJECT", "imap-alpha") == ("OK", [b"1"])
    assert m.search(None, "SEEN") == ("OK", [b"2"])
    assert m.uid("SEARCH", "ALL")[1][0].split() != []

    typ, data = m.store("1", "+FLAGS", r"(\Flagged $Important)")
    assert typ == "OK" and b"$Important" in data[0]
    assert m.search(None, "KEYWORD", "$Important") == ("OK", [b"1"])
    m.store("1:2", "+FLAGS", r"\Deleted")
    typ, data = m.expunge()
    assert data == [b"1", b"1"]  # two EXPUNGE responses, renumbered
    typ, data = m.fetch("1", "(ENVELOPE)")
    assert b"imap-charlie" in data[0]
    m.logout()


def test_imap_a_damaged_message_fails_a_sliced_fetch(live):
    """A FETCH is served in slices of about 1 MiB of output; a message that
    cannot be read in the first slice must still make the command's tagged
    reply NO [PARSE], and the other messages are served."""
    live.add_user(ALICE, PASSWORD)
    m = imap(live)
    m.login(ALICE, PASSWORD)
    sizes = [600_000, 700_000, 800_000, 100_000]  # the slice ends after the third
    for i, size in enumerate(sizes):
        line = ("wxyz"[i] * 76 + "\r\n").encode()
        m.append("INBOX", None, None,
                 f"From: <{ALICE}>\r\nSubject: big {i}\r\n\r\n".encode() + line * (size // 78))
    m.logout()
    res = live.cli("user", "list")
    mailbox = re.search(rf"^{re.escape(ALICE)} .*mailbox=([0-9a-f]{{16}})", res.stdout, re.M).group(1)
    files = sorted((live.data / "mailboxes" / mailbox / "msg").iterdir(),
                   key=lambda p: p.stat().st_size)
    assert len(files) == 4
    first = files[1]  # 600 kB: the first message, in the first slice
    damaged = bytearray(first.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    first.write_bytes(damaged)

    m = imap(live)
    m.login(ALICE, PASSWORD)
    m.select("INBOX")
    typ, data = m.fetch("1:*", "(BODY.PEEK[])")
    assert typ == "NO" and b"[PARSE]" in data[0], (typ, data[:1])
    # the others came whole, in the same command (imaplib keeps them aside on NO)
    served = [d[1] for d in m.untagged_responses.pop("FETCH", []) if isinstance(d, tuple)]
    assert [b.count(b"\r\n") for b in served] == [3 + n // 78 for n in sizes[1:]]
    m.logout()


def test_imap_header_items_come_from_the_store(live):
    """Header items (BODY[HEADER], HEADER.FIELDS and .NOT, RFC822.HEADER) are
    served from the header block the store keeps (format 9), byte for byte
    what the file gives, without opening the file: a message whose file is
    gone still answers them (as Dovecot's cache does) while BODY[] fails.
    A header longer than the store keeps (64 KiB) is served from the file."""
    live.add_user(ALICE, PASSWORD)
    m = imap(live)
    m.login(ALICE, PASSWORD)
    msgs = [
        f"From: <{ALICE}>\r\nSubject: first\r\nX-Folded: a\r\n b\r\n\r\nbody one\r\n".encode(),
        f"Subject: second\r\nFrom: <{ALICE}>\r\nTo: x@example.org\r\n\r\n".encode(),
        b"Subject: long\r\n" + b"".join(b"X-Filler-%05d: %s\r\n" % (i, b"f" * 60)
                                        for i in range(1200)) + b"\r\nbody three\r\n",
    ]
    for msg in msgs:
        assert m.append("INBOX", None, None, msg)[0] == "OK"
    m.select("INBOX")
    items = ["BODY.PEEK[HEADER]", "BODY.PEEK[HEADER.FIELDS (Subject X-Folded)]",
             "BODY.PEEK[HEADER.FIELDS.NOT (Subject)]", "RFC822.HEADER"]

    def fetch(seqs, item):
        typ, data = m.fetch(seqs, f"({item})")
        return typ, [d[1] for d in data if isinstance(d, tuple)]

    stored = {item: fetch("1:*", item) for item in items}
    for item in items:  # with an item that needs the file, all come from the file
        typ, data = fetch("1:*", f"{item} BODY.PEEK[TEXT]")
        assert typ == "OK" and stored[item] == ("OK", data[0::2]), item
    assert stored["BODY.PEEK[HEADER]"][1] == [msg[:msg.index(b"\r\n\r\n") + 4] for msg in msgs]
    assert stored["RFC822.HEADER"] == stored["BODY.PEEK[HEADER]"]
    m.logout()

    res = live.cli("user", "list")
    mailbox = re.search(rf"^{re.escape(ALICE)} .*mailbox=([0-9a-f]{{16}})", res.stdout, re.M).group(1)
    files = sorted((live.data / "mailboxes" / mailbox / "msg").iterdir(),
                   key=lambda p: p.stat().st_size)
    assert len(files) == 3
    for f in files:
        f.unlink()
    m = imap(live)
    m.login(ALICE, PASSWORD)
    m.select("INBOX")
    for item in items:
        assert fetch("1:2", item) == ("OK", stored[item][1][:2]), item
    assert fetch("3", "BODY.PEEK[HEADER]")[0] == "NO"  # past the bound: the file it needs is gone
    assert fetch("1", "BODY.PEEK[]")[0] == "NO"
    assert fetch("1", "BODY.PEEK[HEADER] BODY.PEEK[TEXT]")[0] == "NO"
    m.logout()


def test_imap_folders_copy_move_append(live):
    live.add_user(ALICE, PASSWORD)
    deliver(live, ALICE, ["fold-one", "fold-two"])
    m = imap(live)
    m.login(ALICE, PASSWORD)
    names = [l for l in m.list()[1]]
    assert any(b"\\Sent" in l and b'"Sent"' in l for l in names)
    assert m.create("Projects/2026")[0] == "OK"
    assert m.create("Projects/2026")[0] == "NO"
    assert b"HasChildren" in m.list('""', "Projects")[1][0]
    assert m.create("Entw&APw-rfe")[0] == "OK"  # modified UTF-7 for "Entwürfe"
    assert any(b"Entw&APw-rfe" in l for l in m.list()[1])

    m.select("INBOX")
    typ, data = m.copy("1", "Projects/2026")
    assert typ == "OK" and b"COPYUID" in data[0]
    typ, data = m._simple_command("MOVE", "2", "Projects/2026")
    assert typ == "OK"
    assert m.select("INBOX")[1] == [b"1"]
    status = m.status("Projects/2026", "(MESSAGES UIDNEXT UIDVALIDITY SIZE)")[1][0]
    assert b"MESSAGES 2" in status and b"UIDNEXT 3" in status

    msg = b"From: me@example.org\r\nSubject: appended here\r\n\r\nappended body\r\n"
    typ, data = m.append("Drafts", r"(\Draft)", None, msg)
    assert typ == "OK" and b"APPENDUID" in data[0]
    m.select("Drafts")
    assert m.fetch("1", "(FLAGS BODY[])")[1][0][1] == msg

    assert m.rename("Projects", "Archive2")[0] == "OK"
    assert m.select("Archive2/2026")[1] == [b"2"]
    assert m.delete("INBOX")[0] == "NO"
    m.select("INBOX")
    assert m.delete("Archive2/2026")[0] == "OK"
    assert m.select("Archive2/2026")[0] == "NO"
    m.logout()


def test_imap_idle_sees_new_mail_and_other_sessions(live):
    live.add_user(ALICE, PASSWORD)
    deliver(live, ALICE, ["idle-zero"])
    a = RawIMAP(live.imap_port)
    a.cmd(f'LOGIN {ALICE} "{PASSWORD}"')
    untagged, tagged = a.cmd("SELECT INBOX")
    assert b"* 1 EXISTS" in untagged
    a.n += 1
    a.send(f"r{a.n} IDLE\r\n".encode())
    assert a.line().startswith(b"+ ")

    deliver(live, ALICE, ["idle-one"])
    assert a.line() == b"* 2 EXISTS"
    assert a.line() == b"* 2 RECENT"  # an IMAP4rev1 session: both are new to it

    b = imap(live, tls=False)
    b.login(ALICE, PASSWORD)
    b.select("INBOX")
    b.store("1", "+FLAGS", r"\Flagged")
    assert a.line() == b"* 1 FETCH (FLAGS (\\Flagged \\Recent))"
    b.logout()

    a.send(b"DONE\r\n")
    assert a.line() == f"r{a.n} OK IDLE terminated".encode()
    a.close()


def test_imap_condstore_qresync(live):
    live.add_user(ALICE, PASSWORD)
    deliver(live, ALICE, ["qr-one", "qr-two", "qr-three"])
    a = RawIMAP(live.imap_port)
    a.cmd(f'LOGIN {ALICE} "{PASSWORD}"')
    untagged, _ = a.cmd("ENABLE QRESYNC")
    assert b"* ENABLED QRESYNC" in untagged
    untagged, _ = a.cmd("SELECT INBOX")
    validity = int(re.search(rb"UIDVALIDITY (\d+)", b"\n".join(untagged)).group(1))
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"\n".join(untagged)).group(1))
    a.cmd("UID STORE 1 +FLAGS (\\Seen)")
    a.cmd("UID STORE 2 +FLAGS (\\Deleted)")
    untagged, _ = a.cmd("EXPUNGE")
    assert untagged == [b"* VANISHED 2"]
    a.cmd("LOGOUT")
    a.close()

    b = RawIMAP(live.imap_port)
    b.cmd(f'LOGIN {ALICE} "{PASSWORD}"')
    b.cmd("ENABLE QRESYNC")
    untagged, tagged = b.cmd(f"SELECT INBOX (QRESYNC ({validity} {modseq} 1:3))")
    assert tagged.startswith(b"r3 OK")
    assert b"* VANISHED (EARLIER) 2" in untagged
    assert any(l.startswith(b"* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ") for l in untagged)
    # known UIDs 2:3: UID 1's flag change is not reported (RFC 7162 §3.2.5.1)
    untagged, _ = b.cmd(f"EXAMINE INBOX (QRESYNC ({validity} {modseq} 2:3))")
    assert b"* VANISHED (EARLIER) 2" in untagged
    assert not any(b"FETCH (UID 1 " in l for l in untagged), untagged
    b.cmd("SELECT INBOX")
    untagged, tagged = b.cmd(f"UID STORE 3 (UNCHANGEDSINCE {modseq - 1}) +FLAGS (\\Flagged)")
    assert b"[MODIFIED 3]" in tagged
    b.close()


def test_imap_and_pop3_agree_on_uids(live):
    live.add_user(ALICE, PASSWORD)
    deliver(live, ALICE, ["same-one", "same-two"])
    m = imap(live)
    m.login(ALICE, PASSWORD)
    m.select("INBOX")
    validity = int(m.response("UIDVALIDITY")[1][0])
    uids = [int(x) for x in m.uid("SEARCH", "ALL")[1][0].split()]
    p = poplib.POP3("127.0.0.1", live.pop3_port)
    p.user(ALICE)
    p.pass_(PASSWORD)
    assert [x.split()[1].decode() for x in p.uidl()[1]] == \
        [f"{u:08x}{validity:08x}" for u in uids]
    p.quit()
    m.logout()


def test_imap_bad_input_gets_bad_not_a_crash(live):
    raw = RawIMAP(live.imap_port)
    _, tagged = raw.cmd("FROBNICATE")
    assert b"BAD" in tagged
    _, tagged = raw.cmd("SELECT INBOX")
    assert b"BAD" in tagged  # not logged in
    raw.send(b"x LOGIN {99999999}\r\n")  # more than max_command: refused, no "+"
    line = raw.line()
    assert line.startswith(b"x ") and (b"BAD" in line or b"TOOBIG" in line), line
    raw.close()

    raw = RawIMAP(live.imap_port)
    raw.send(b"y NOOP " + b"A" * 100000 + b"\r\n")
    line = raw.line()
    assert b"BAD" in line
    _, tagged = raw.cmd("NOOP")
    assert tagged.startswith(b"r1 OK")
    for _ in range(30):
        try:
            raw.send(b"z BOGUS\r\n")
        except OSError:
            break
    lines = []
    try:
        while True:
            lines.append(raw.line())
    except (EOFError, OSError):
        pass
    assert any(l.startswith(b"* BYE") for l in lines)
    raw.close()


def test_reconnects_share_the_open_store_until_the_password_changes(live):
    """A second login with the same password attaches to the open store
    without Argon2id; a password change voids that at once."""
    live.add_user(ALICE, PASSWORD)
    holder = imap(live)
    holder.login(ALICE, PASSWORD)
    for _ in range(3):
        m = imap(live)
        m.login(ALICE, PASSWORD)
        m.logout()
    log = live.log_text()
    assert log.count("unlock=argon2id") == 1 and log.count("unlock=shared") == 3, log[-3000:]

    live.cli("user", "passwd", ALICE, "--password-stdin", input=f"{PASSWORD}\nnew secret\n")
    m = imap(live)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login(ALICE, PASSWORD)
    m = imap(live)
    m.login(ALICE, "new secret")
    m.logout()
    holder.logout()


def test_imap_compress_deflate(live):
    """COMPRESS=DEFLATE (RFC 4978): after the tagged OK both directions are
    raw deflate; a command and a big FETCH work through it."""
    import zlib
    live.add_user(ALICE, PASSWORD)
    deliver(live, ALICE, ["zip-one"], extra=(b"x" * 998 + b"\r\n") * 200)
    raw = RawIMAP(live.imap_port)
    raw.cmd(f'LOGIN {ALICE} "{PASSWORD}"')
    untagged, _ = raw.cmd("CAPABILITY")
    assert b"COMPRESS=DEFLATE" in untagged[0]
    _, tagged = raw.cmd("COMPRESS DEFLATE")
    assert tagged == b"r3 OK DEFLATE active"
    comp, decomp = zlib.compressobj(wbits=-15), zlib.decompressobj(wbits=-15)
    plain = b""

    def send(text):
        raw.sock.sendall(comp.compress(text) + comp.flush(zlib.Z_SYNC_FLUSH))

    def until(tag):
        nonlocal plain
        while not re.search(rb"(^|\r\n)" + tag + rb" ", plain):
            chunk = raw.sock.recv(65536)
            assert chunk, "connection closed"
            plain += decomp.decompress(chunk)
        out, plain = plain, b""
        return out

    send(b"z1 SELECT INBOX\r\n")
    assert b"* 1 EXISTS" in until(b"z1")
    send(b"z2 FETCH 1 (BODY.PEEK[])\r\n")
    reply = until(b"z2")
    assert b"zip-one" in reply and reply.count(b"x") >= 998 * 200 and b"z2 OK" in reply
    send(b"z3 COMPRESS DEFLATE\r\n")
    assert b"z3 NO [COMPRESSIONACTIVE]" in until(b"z3")
    # a 20 MB line in about 20 KB: refused as too long, memory stays bounded
    send(b"z4 NOOP " + b"A" * 20_000_000 + b"\r\nz5 NOOP\r\n")
    reply = until(b"z5")
    assert b"BAD" in reply and b"z5 OK" in reply
    raw.sock.sendall(b"this is not deflate data \xff\xff\xff\xff")
    tail = b""
    try:
        while True:
            chunk = raw.sock.recv(65536)
            if not chunk:
                break
            tail += decomp.decompress(chunk)
    except OSError:
        pass
    assert b"* BYE" in tail
    raw.close()


def test_imap_answers_as_the_rfcs_say(live):
    """Differences docs/imap-dovecot.md found where sealmail was wrong."""
    live.add_user(ALICE, PASSWORD)
    with SMTPConn(live.smtp_port) as c:
        c.ehlo()
        c.send_message(b"From: Alice Example <a@example.org>\r\nTo: bob@example.org\r\n"
                       b"Subject: one\r\nX-Priority: 1\r\nMessage-ID: <abc@host>\r\n\r\nbody\r\n",
                       rcpts=(ALICE,))
        c.send_message(b"From: bob@example.org\r\nTo: Alice Example <a@example.org>\r\n"
                       b"Subject: two\r\nMessage-ID: <def@host>\r\n\r\nbody\r\n", rcpts=(ALICE,))
        c.quit()
    wait_until(lambda: not live.queue_list(), 30, 0.1, "delivery")
    raw = RawIMAP(live.imap_port)
    import base64
    _, tagged = raw.cmd("AUTHENTICATE PLAIN " + "!!!not base64")
    assert b" BAD " in tagged  # RFC 9051 §6.2.2
    raw.cmd(f'LOGIN {ALICE} "{PASSWORD}"')
    untagged, _ = raw.cmd("EXAMINE INBOX")
    assert b"* OK [PERMANENTFLAGS ()] Read-only mailbox" in untagged
    untagged, _ = raw.cmd("SELECT INBOX")
    assert b"* OK [UNSEEN 1] First unseen" in untagged  # RFC 3501 §6.3.1
    assert raw.cmd("SEARCH FROM alice")[0] == [b"* SEARCH 1"]     # the From field only
    assert raw.cmd("SEARCH TO alice")[0] == [b"* SEARCH 2"]
    assert raw.cmd('SEARCH HEADER X-Priority ""')[0] == [b"* SEARCH 1"]   # presence
    assert raw.cmd('SEARCH HEADER Message-ID "def@"')[0] == [b"* SEARCH 2"]  # substring
    _, tagged = raw.cmd("FETCH 3 (FLAGS)")
    assert b" BAD " in tagged  # RFC 9051 §9: above EXISTS
    untagged, _ = raw.cmd("FETCH 1 (MODSEQ)")  # enables CONDSTORE: RFC 7162 §3.1
    assert untagged[0].startswith(b"* OK [HIGHESTMODSEQ ") and b"MODSEQ (" in untagged[1]
    raw.cmd("SEARCH RETURN (SAVE MIN) ALL")
    assert raw.cmd("SEARCH $")[0] == [b"* SEARCH 1"]  # RFC 5182 §2.4
    _, tagged = raw.cmd('CREATE "a//b"')
    assert b"NO [CANNOT]" in tagged
    raw.cmd("ENABLE QRESYNC")
    raw.cmd("STORE 1 +FLAGS (\\Deleted)")
    untagged, tagged = raw.cmd("EXPUNGE")
    assert untagged == [b"* VANISHED 1"] and b"OK [HIGHESTMODSEQ " in tagged  # RFC 7162 §3.2.7
    # S9: a subscription belongs to a name, not to a folder (RFC 9051 §6.3.5-8)
    for c in ("CREATE Gone", "SUBSCRIBE Gone", "DELETE Gone", "CREATE Subs", "SUBSCRIBE Subs",
              "RENAME Subs Subs2"):
        assert b" OK " in raw.cmd(c)[1]
    assert raw.cmd('LSUB "" Gone')[0] == [b'* LSUB () "/" "Gone"']
    assert raw.cmd('LIST (SUBSCRIBED) "" Gone')[0] == [
        b'* LIST (\\NonExistent \\Subscribed) "/" "Gone"']
    assert raw.cmd('LIST (SUBSCRIBED) "" Gone RETURN (CHILDREN)')[0] == [
        b'* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" "Gone"']
    assert raw.cmd('LSUB "" Subs*')[0] == [b'* LSUB () "/" "Subs"']
    for c in ("UNSUBSCRIBE Gone", "UNSUBSCRIBE NeverSubscribed"):
        assert b" OK " in raw.cmd(c)[1]
    # S10: a level above a subscribed name that "%" does not reach (RFC 3501 §6.3.9, RFC 5258)
    for c in ("CREATE Work/Sub", "SUBSCRIBE Work/Sub", "CREATE Parent/Child", "DELETE Parent"):
        assert b" OK " in raw.cmd(c)[1]
    assert b'* LSUB (\\Noselect) "/" "Work"' in raw.cmd('LSUB "" %')[0]
    assert b'* LIST (\\HasChildren) "/" "Work" ("CHILDINFO" ("SUBSCRIBED"))' in raw.cmd(
        'LIST (SUBSCRIBED RECURSIVEMATCH) "" %')[0]
    # S11: a level with folders below but no folder of its own (RFC 9051 §6.3.9)
    assert b'* LIST (\\Noselect \\HasChildren) "/" "Parent"' in raw.cmd('LIST "" %')[0]
    assert b'* LIST (\\NonExistent \\HasChildren) "/" "Parent"' in raw.cmd(
        'LIST () "" %')[0]
    # S3: TEXT looks at the MIME header fields of parts, parameters decoded (RFC 9051 §6.4.4)
    att = (b"From: d@example.org\r\nSubject: attached\r\nX-Ticket: zebra-4711\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nsee the file\r\n"
           b"--b\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Disposition: attachment; filename*0=quarterly-; filename*1=numbers.ods\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n")
    raw.send(b"a0 APPEND INBOX {%d+}\r\n" % len(att) + att + b"\r\n")
    assert raw.until("a0")[1].startswith(b"a0 OK")
    assert raw.cmd('SEARCH TEXT "quarterly-numbers.ods"')[0] == [b"* SEARCH 2"]
    # and every other top-level header field (the header "or body of the message")
    assert raw.cmd('SEARCH TEXT "zebra-4711"')[0] == [b"* SEARCH 2"]
    # S4: a message stored with bare LF is served with CRLF, and every size counts that
    lf = b"From: c@example.org\nSubject: bare LF\n\nline one\nline two\n"
    raw.send(b"a1 APPEND INBOX {%d+}\r\n" % len(lf) + lf + b"\r\n")
    assert raw.until("a1")[1].startswith(b"a1 OK")
    untagged, _ = raw.cmd("FETCH * (RFC822.SIZE BODY.PEEK[])")
    m = re.search(rb"RFC822\.SIZE (\d+) BODY\[\] \{(\d+)\}", untagged[-1])
    assert m and int(m.group(1)) == int(m.group(2)) == len(lf) + lf.count(b"\n")  # §2.3.4
    sizes = [int(x) for x in re.findall(rb"RFC822\.SIZE (\d+)", b"".join(
        raw.cmd("FETCH 1:* RFC822.SIZE")[0]))]
    untagged, _ = raw.cmd("STATUS INBOX (SIZE)")
    assert untagged == [b"* STATUS \"INBOX\" (SIZE %d)" % sum(sizes)]  # RFC 8438 §3
    raw.close()
    p = poplib.POP3_SSL("127.0.0.1", live.pop3s_port, context=no_verify_context())
    p.user(ALICE)
    p.pass_(PASSWORD)
    assert [int(x.split()[1]) for x in p.list()[1]] == sizes  # RFC 1939 §11
    assert p.retr(len(sizes))[0] == b"+OK %d octets" % sizes[-1]
    p.quit()
    # S16, S17: SORT collates with i;unicode-casemap (RFC 5256 §7, RFC 5051); DISPLAYFROM
    # sorts by display name (RFC 5957), and SORT=DISPLAY says so
    raw = RawIMAP(live.imap_port)
    raw.cmd(f'LOGIN {ALICE} "{PASSWORD}"')
    assert b" SORT=DISPLAY " in b"".join(raw.cmd("CAPABILITY")[0]) + b" "
    raw.cmd("CREATE Sorting")
    for sender, subject in ((b'"Smith, John \\"JJ\\"" <john@example.com>', b"bare LF"),
                            (b"=?utf-8?q?J=C3=B6rg_=C3=85berg?= <jorg@example.org>",
                             b"=?utf-8?q?=C3=84rve?="),
                            (b"Newsletter <zz-news@example.com>", b"alternative"),
                            (b"<aaa@example.com>", b"Zeta")):
        msg = b"From: " + sender + b"\r\nSubject: " + subject + b"\r\n\r\nbody\r\n"
        raw.send(b"a2 APPEND Sorting {%d+}\r\n" % len(msg) + msg + b"\r\n")
        assert raw.until("a2")[1].startswith(b"a2 OK")
    assert raw.cmd("STATUS Sorting (RECENT)")[0] == [b'* STATUS "Sorting" (RECENT 4)']
    untagged, _ = raw.cmd("SELECT Sorting")
    assert raw.cmd("SORT (SUBJECT) UTF-8 ALL")[0] == [b"* SORT 3 2 1 4"]  # Ä is A + U+0308
    assert raw.cmd("SORT (FROM) UTF-8 ALL")[0] == [b"* SORT 4 1 2 3"]
    assert raw.cmd("SORT (DISPLAYFROM) UTF-8 ALL")[0] == [b"* SORT 4 2 3 1"]
    # SORT (SUBJECT) compares base subjects (RFC 5256 §2.1): a blob inside "Re [x]:", the
    # "(fwd)" trailer and the "[fwd: ...]" wrapper are all removed
    raw.cmd("CREATE BaseSubject")
    for subject in (b"[fwd: Re: [list] beta (fwd)]", b"Re [x]: alpha", b"gamma"):
        msg = b"From: <a@example.com>\r\nSubject: " + subject + b"\r\n\r\nbody\r\n"
        raw.send(b"a3 APPEND BaseSubject {%d+}\r\n" % len(msg) + msg + b"\r\n")
        assert raw.until("a3")[1].startswith(b"a3 OK")
    other = RawIMAP(live.imap_port)
    other.cmd(f'LOGIN {ALICE} "{PASSWORD}"')
    other.cmd("EXAMINE BaseSubject")
    assert other.cmd("SORT (SUBJECT) UTF-8 ALL")[0] == [b"* SORT 2 1 3"]
    other.close()
    # S20: a message is \Recent to the first session that sees it (RFC 3501 §2.3.2)
    assert b"* 4 RECENT" in untagged
    assert raw.cmd("FETCH 1 (FLAGS)")[0] == [b"* 1 FETCH (FLAGS (\\Recent))"]
    assert raw.cmd("SEARCH RECENT")[0] == [b"* SEARCH 1 2 3 4"]
    other = RawIMAP(live.imap_port)
    other.cmd(f'LOGIN {ALICE} "{PASSWORD}"')
    assert b"* 0 RECENT" in other.cmd("SELECT Sorting")[0]
    assert other.cmd("SEARCH RECENT")[0] == [b"* SEARCH"]
    other.close()
    raw.close()


def test_pop3_bad_input_gets_err_not_a_crash(live):
    """Unknown commands, commands in the wrong state, bad message numbers,
    an overlong line, a NUL and bad SASL data get -ERR; too many errors
    end the session; the server stays up for the next client."""
    live.add_user(ALICE, PASSWORD)
    deliver(live, ALICE, ["pop-bad"])
    sock = socket.create_connection(("127.0.0.1", live.pop3_port), timeout=20)
    f = sock.makefile("rb")
    assert f.readline().startswith(b"+OK")

    def cmd(line):
        sock.sendall(line + b"\r\n")
        return f.readline()

    assert cmd(b"STAT").startswith(b"-ERR")            # not before login
    assert cmd(b"FROBNICATE").startswith(b"-ERR")
    assert cmd(b"PASS nothing-first").startswith(b"-ERR USER first")
    assert cmd(b"AUTH PLAIN !!!notbase64").startswith(b"-ERR")
    assert cmd(b"AUTH PLAIN " + base64.b64encode(b"bob\0" + ALICE.encode() + b"\0x")) \
        .startswith(b"-ERR")                           # acting for someone else
    assert cmd(b"USER " + b"a" * 300).startswith(b"-ERR")
    assert cmd(b"NOOP " + b"x" * 10000).startswith(b"-ERR Line too long")
    assert cmd(b"US\0ER x").startswith(b"-ERR")
    assert cmd(b"USER " + ALICE.encode()).startswith(b"+OK")
    assert cmd(b"PASS " + PASSWORD.encode()).startswith(b"+OK Logged in, 1 message")
    for bad in (b"RETR 0", b"RETR 2", b"RETR x", b"RETR -1", b"TOP 1", b"DELE 99",
                b"LIST 18446744073709551617"):
        assert cmd(bad).startswith(b"-ERR"), bad
    assert cmd(b"RETR 1").startswith(b"+OK")
    while f.readline() != b".\r\n":
        pass
    # [imap] max_errors is 20 and 4 were spent above (STAT, FROBNICATE, the long
    # line, the NUL): the 16th unknown command is the last one answered
    for i in range(16):
        assert cmd(b"BOGUS") == b"-ERR Unknown command\r\n", i
    assert f.readline() == b"-ERR Too many errors, closing\r\n"
    assert f.readline() == b""  # and closed
    sock.close()

    p = poplib.POP3("127.0.0.1", live.pop3_port)  # the server is fine
    p.user(ALICE)
    assert p.pass_(PASSWORD).startswith(b"+OK")
    p.quit()


def test_imap_hostile_input_costs_little(live):
    """Review findings: no APPEND file before login, no half-done FETCH on a
    bad section, an overlong IDLE line does not eat the next command."""
    live.add_user(ALICE, PASSWORD)
    deliver(live, ALICE, ["hostile-one"])
    raw = RawIMAP(live.imap_port)
    raw.send(b"a APPEND INBOX {100000}\r\n")  # before login: no "+", no file
    line = raw.line()
    assert line.startswith(b"a ") and b"TOOBIG" in line, line
    raw.cmd(f'LOGIN {ALICE} "{PASSWORD}"')
    raw.cmd("SELECT INBOX")
    names = " ".join(f"X-F{i}" for i in range(120))  # more than section.c serves
    _, tagged = raw.cmd(f"FETCH 1 (BODY[HEADER.FIELDS ({names})])")
    assert b" BAD " in tagged
    untagged, _ = raw.cmd("FETCH 1 (FLAGS)")
    assert untagged == [b"* 1 FETCH (FLAGS (\\Recent))"]  # \Seen was not set
    raw.n += 1
    raw.send(f"r{raw.n} IDLE\r\n".encode())
    assert raw.line().startswith(b"+ ")
    raw.send(b"x" * 100000 + b"\r\n")
    assert b"BAD" in raw.line()
    _, tagged = raw.cmd("NOOP")
    assert b"OK" in tagged
    raw.close()


def test_imap_expunges_in_a_run_seen_by_another_session(live):
    """The view keeps its UIDs as runs (src/imap/uidmap.h): expunges by another
    session split the one run of 1..12; the first session keeps its sequence
    numbers until it is told (not during FETCH), then gets the EXPUNGEs with
    the right numbers, and its later numbering, new mail, SEARCH, its own
    EXPUNGE and MOVE agree with the UIDs; a QRESYNC session gets VANISHED."""
    live.add_user(ALICE, PASSWORD)
    b = imap(live, tls=False)
    b.login(ALICE, PASSWORD)
    for i in range(12):
        assert b.append("INBOX", None, None, make_message(f"run-{i + 1}"))[0] == "OK"
    a = RawIMAP(live.imap_port)
    a.cmd(f'LOGIN {ALICE} "{PASSWORD}"')
    untagged, _ = a.cmd("SELECT INBOX")
    assert b"* 12 EXISTS" in untagged and b"* 12 RECENT" in untagged
    q = RawIMAP(live.imap_port)
    q.cmd(f'LOGIN {ALICE} "{PASSWORD}"')
    q.cmd("ENABLE QRESYNC")
    q.cmd("EXAMINE INBOX")

    def uid_map(untagged):
        return [(int(re.match(rb"\* (\d+) FETCH", l).group(1)),
                 int(re.search(rb"[( ]UID (\d+)", l).group(1)))
                for l in untagged if b" FETCH " in l]

    # another session expunges UIDs 5, 6 (the middle of the run) and 9
    b.select("INBOX")
    b.uid("STORE", "5,6,9", "+FLAGS.SILENT", r"(\Deleted)")
    assert b.expunge()[0] == "OK"
    # FETCH may not report expunges (RFC 9051 §7.5.1): the numbering stays
    untagged, tagged = a.cmd("FETCH 1:* (UID)")
    assert tagged.startswith(b"r3 OK"), tagged
    assert not any(b"EXPUNGE" in l for l in untagged), untagged
    assert uid_map(untagged) == [(s, s) for s in range(1, 13) if s not in (5, 6, 9)]
    untagged, _ = a.cmd("NOOP")
    assert [l for l in untagged if b"EXPUNGE" in l] == \
        [b"* 5 EXPUNGE", b"* 5 EXPUNGE", b"* 7 EXPUNGE"], untagged
    untagged, _ = a.cmd("FETCH 1:* (UID)")
    kept = [1, 2, 3, 4, 7, 8, 10, 11, 12]
    assert uid_map(untagged) == list(enumerate(kept, 1))
    untagged, _ = a.cmd("SEARCH 5:7")
    assert untagged == [b"* SEARCH 5 6 7"]
    untagged, _ = a.cmd("UID SEARCH UID 4:10")
    assert untagged == [b"* SEARCH 4 7 8 10"]
    untagged, _ = a.cmd("UID FETCH 6:9 (UID)")
    assert uid_map(untagged) == [(5, 7), (6, 8)]
    untagged, _ = q.cmd("NOOP")
    text = b"\n".join(untagged)
    assert b"* VANISHED 5:6" in text and b"* VANISHED 9" in text, untagged
    b.logout()

    # new mail after the holes (from a session with nothing selected, which
    # claims no \Recent): a new run, numbered on from the last
    c = imap(live, tls=False)
    c.login(ALICE, PASSWORD)
    for i in range(2):
        assert c.append("INBOX", None, None, make_message(f"run-new-{i + 1}"))[0] == "OK"
    c.logout()
    untagged, _ = a.cmd("NOOP")
    assert b"* 11 EXISTS" in untagged, untagged
    assert b"* 11 RECENT" in untagged, untagged  # 9 kept + 2 new, all recent to it
    untagged, _ = a.cmd("FETCH 9:* (UID FLAGS)")
    assert uid_map(untagged) == [(9, 12), (10, 13), (11, 14)], untagged
    assert all(b"\\Recent" in l for l in untagged), untagged

    # its own EXPUNGE of the first message and MOVE of one in the middle
    a.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    untagged, _ = a.cmd("EXPUNGE")
    assert untagged == [b"* 1 EXPUNGE"], untagged
    a.cmd("CREATE Elsewhere")
    untagged, tagged = a.cmd("MOVE 5 Elsewhere")  # UID 8
    assert b" OK " in tagged, tagged
    assert b"* 5 EXPUNGE" in untagged, untagged
    untagged, _ = a.cmd("FETCH 1:* (UID)")
    assert [u for _, u in uid_map(untagged)] == [2, 3, 4, 7, 10, 11, 12, 13, 14]
    assert [s for s, _ in uid_map(untagged)] == list(range(1, 10))
    untagged, _ = q.cmd("NOOP")
    text = b"\n".join(untagged)
    assert b"* VANISHED 1" in text and b"* VANISHED 8" in text, untagged
    untagged, _ = q.cmd("FETCH 1:* (UID)")
    assert [u for _, u in uid_map(untagged)] == [2, 3, 4, 7, 10, 11, 12, 13, 14]
    a.cmd("LOGOUT")
    a.close()
    q.close()
