"""Mail clients people use, against sealmail: isync (mbsync) over IMAPS and
fetchmail over POP3S.  They run with configurations of their own, trust
the server's self-signed certificate explicitly, and talk to loopback only."""
import imaplib
import os
import re
import shutil
import subprocess

import pytest

from conftest import (DOMAIN, HOSTNAME, SMTPConn, make_message, no_verify_context,
                      wait_until)

PASSWORD = "correct horse battery staple"
ALICE = f"alice@{DOMAIN}"


@pytest.fixture
def live(make_server):
    return make_server({"spool": {"hold": "no"}})


def deliver(server, markers):
    for marker in markers:
        with SMTPConn(server.smtp_port) as c:
            c.ehlo()
            c.send_message(make_message(marker, subject=marker), rcpts=(ALICE,))
            c.quit()
    wait_until(lambda: not server.queue_list(), 30, 0.1, "queued to deliver everything")


def maildir_messages(path):
    out = {}
    for sub in ("new", "cur"):
        d = path / sub
        for name in (os.listdir(d) if d.is_dir() else []):
            out[name] = (d / name).read_bytes()
    return out


MBSYNC_MESSAGES = 1000


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="isync is not installed")
def test_mbsync_mirrors_a_mailbox_of_1000_both_ways(live, tmp_path):
    live.add_user(ALICE, PASSWORD)
    # 1,000 messages, 100 per SMTP session
    for first in range(0, MBSYNC_MESSAGES, 100):
        with SMTPConn(live.smtp_port) as c:
            c.ehlo()
            for i in range(first, first + 100):
                c.send_message(make_message(f"mbsync-{i:04d}", subject=f"mbsync {i:04d}"),
                               rcpts=(ALICE,))
            c.quit()
    wait_until(lambda: not live.queue_list(), 120, 0.2, "queued to deliver everything")
    local = tmp_path / "Mail"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(f"""IMAPAccount sealmail
Host 127.0.0.1
Port {live.imaps_port}
User {ALICE}
Pass "{PASSWORD}"
SSLType IMAPS
CertificateFile {live.data}/keys/tls/cert.pem

IMAPStore remote
Account sealmail

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel mail
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""")
    os.chmod(rc, 0o600)

    def mbsync():
        res = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True,
                             timeout=300)
        assert res.returncode == 0, f"mbsync failed:\n{res.stdout}\n{res.stderr}"

    mbsync()
    inbox = maildir_messages(local / "INBOX")
    assert len(inbox) == MBSYNC_MESSAGES
    markers = {re.search(rb"mbsync-(\d{4})", m).group(1) for m in inbox.values()}
    assert len(markers) == MBSYNC_MESSAGES
    for folder in ("Sent", "Drafts", "Trash", "Junk", "Archive"):
        assert (local / folder).is_dir(), f"{folder} was not mirrored"

    # offline: flag 100 messages, delete 50, write 20 notes into a new folder
    files = sorted(p for sub in ("cur", "new") for p in (local / "INBOX" / sub).iterdir())
    for p in files[:100]:
        base = p.name.split(":2,")[0]
        flags = p.name.split(":2,")[1] if ":2," in p.name else ""
        p.rename(local / "INBOX" / "cur" / f"{base}:2,{''.join(sorted(set(flags + 'F')))}")
    for p in files[100:150]:
        p.unlink()
    for sub in ("cur", "new", "tmp"):
        (local / "Notes" / sub).mkdir(parents=True)
    for i in range(20):
        (local / "Notes" / "new" / f"{i}.local").write_bytes(
            b"From: alice@example.test\r\nSubject: note %d\r\n\r\nwritten offline\r\n" % i)
    mbsync()

    m = imaplib.IMAP4_SSL("127.0.0.1", live.imaps_port, ssl_context=no_verify_context())
    m.login(ALICE, PASSWORD)
    assert m.select("INBOX")[1] == [str(MBSYNC_MESSAGES - 50).encode()]
    assert len(m.search(None, "FLAGGED")[1][0].split()) == 100
    assert m.select("Notes")[1] == [b"20"]
    assert b"written offline" in m.fetch("1", "(BODY[])")[1][0][1]
    m.logout()
    mbsync()  # a third run finds nothing to do and changes nothing
    assert len(maildir_messages(local / "INBOX")) == MBSYNC_MESSAGES - 50


@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail is not installed")
def test_fetchmail_downloads_and_deletes_over_pop3s(live, tmp_path):
    live.add_user(ALICE, PASSWORD)
    deliver(live, ["fetch-one", "fetch-two"])
    out = tmp_path / "out"
    out.mkdir()
    rc = tmp_path / "fetchmailrc"
    rc.write_text(f"""set no syslog
poll 127.0.0.1 service {live.pop3s_port} protocol pop3 auth password:
  user "{ALICE}" password "{PASSWORD}"
  ssl sslcertck sslcertfile "{live.data}/keys/tls/cert.pem" sslcommonname "{HOSTNAME}"
  fetchall nokeep
  mda "/bin/sh -c 'cat > {out}/msg.$$$$'"
""")
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    res = subprocess.run(["fetchmail", "-f", str(rc), "--nodetach", "--sslcertck",
                          "--sslcertfile", f"{live.data}/keys/tls/cert.pem", "-v"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, f"fetchmail failed:\n{res.stdout}\n{res.stderr}"
    got = [p.read_bytes() for p in out.iterdir()]
    assert len(got) == 2
    assert any(b"fetch-one" in g for g in got) and any(b"fetch-two" in g for g in got)

    # nokeep: the messages are gone from the server; a second run gets nothing
    res = subprocess.run(["fetchmail", "-f", str(rc), "--nodetach", "--sslcertck",
                          "--sslcertfile", f"{live.data}/keys/tls/cert.pem"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 1, res  # 1: no mail
    assert len(list(out.iterdir())) == 2
