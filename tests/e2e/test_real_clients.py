"""Mail clients people use, against sealmail: isync (mbsync) over IMAPS and
fetchmail over POP3S.  They run with configurations of their own, trust
the server's self-signed certificate explicitly, and talk to loopback only."""
import os
import shutil
import subprocess

import pytest

from conftest import DOMAIN, HOSTNAME, SMTPConn, make_message, wait_until

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


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="isync is not installed")
def test_mbsync_mirrors_the_mailbox_both_ways(live, tmp_path):
    live.add_user(ALICE, PASSWORD)
    deliver(live, ["mbsync-one", "mbsync-two", "mbsync-three"])
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
                             timeout=120)
        assert res.returncode == 0, f"mbsync failed:\n{res.stdout}\n{res.stderr}"

    mbsync()
    inbox = maildir_messages(local / "INBOX")
    assert len(inbox) == 3
    assert sorted(b"mbsync-one" in m or b"mbsync-two" in m or b"mbsync-three" in m
                  for m in inbox.values()) == [True] * 3
    for folder in ("Sent", "Drafts", "Trash", "Junk", "Archive"):
        assert (local / folder).is_dir(), f"{folder} was not mirrored"

    # locally: flag one message, delete another, file a new one into a new folder
    names = sorted((local / "INBOX" / "cur").iterdir()) + sorted((local / "INBOX" / "new").iterdir())
    flagged, deleted = names[0], names[1]
    base = flagged.name.split(":2,")[0]
    flagged.rename(local / "INBOX" / "cur" / f"{base}:2,FS")
    deleted.unlink()
    (local / "Notes" / "cur").mkdir(parents=True)
    (local / "Notes" / "new").mkdir()
    (local / "Notes" / "tmp").mkdir()
    (local / "Notes" / "new" / "1.local").write_bytes(
        b"From: alice@example.test\r\nSubject: a local note\r\n\r\nwritten offline\r\n")
    mbsync()

    import imaplib
    from conftest import no_verify_context
    m = imaplib.IMAP4_SSL("127.0.0.1", live.imaps_port, ssl_context=no_verify_context())
    m.login(ALICE, PASSWORD)
    assert m.select("INBOX")[1] == [b"2"]
    assert m.search(None, "FLAGGED")[1][0].split() != []
    assert m.select("Notes")[1] == [b"1"]
    assert b"written offline" in m.fetch("1", "(BODY[])")[1][0][1]
    m.logout()


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
