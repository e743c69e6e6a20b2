"""Encrypted mailboxes end to end: accounts, recipients, delivery, import.

A message goes in through SMTP like any sender's, queued seals it into the
mailbox's drop/, and the owner's password (through `sealmail mailbox`)
imports it into the encrypted store.  What is on disk must never show a
message in clear, and nothing the server keeps may open a removed mailbox."""
import re
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import (BIN, CATCHALL, CATCHALL_PASSWORD, DOMAIN, SMTPConn, make_message,
                      run_cli, split_auth_results, wait_until)

PASSWORD = "correct horse battery staple"


@pytest.fixture
def live(make_server):
    """A server that delivers (spool hold off)."""
    return make_server({"spool": {"hold": "no"}})


def mailbox_dir(server, address):
    res = server.cli("user", "list")
    for line in res.stdout.splitlines():
        if line.split()[0] == address:
            mailbox = re.search(r"mailbox=([0-9a-f]{16})", line).group(1)
            return server.data / "mailboxes" / mailbox
    raise AssertionError(f"{address} not in `user list`: {res.stdout}")


def drop_files(server, address):
    return [p for p in (mailbox_dir(server, address) / "drop").iterdir()
            if not p.name.startswith(".")]


def send(server, rcpts, marker, subject=None, extra=b""):
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        queue_id = c.send_message(make_message(marker, subject=subject or marker, extra=extra),
                                  rcpts=rcpts)
        c.quit()
    return queue_id


def wait_delivered(server, address, count):
    def enough():
        return len(drop_files(server, address)) >= count
    wait_until(enough, 30, 0.1, f"{count} drop file(s) for {address}")


def listed(server, address, password=PASSWORD):
    """[(uid, subject)] from `mailbox list` (which imports first)."""
    res = server.mailbox("list", address, password=password)
    rows = []
    for line in res.stdout.splitlines():
        uid, _when, _size, _sender, subject = line.split("\t")
        rows.append((int(uid), subject))
    return rows


def test_account_lifecycle_and_wrong_secrets(make_server):
    server = make_server()
    address = f"alice@{DOMAIN}"
    recovery = server.add_user(address, PASSWORD)

    assert server.mailbox("verify", address, password=PASSWORD).stdout.startswith("integrity: ok")
    wrong = server.mailbox("verify", address, password="not it", ok=False)
    assert wrong.returncode == 1 and "wrong password" in wrong.stderr
    ghost = server.mailbox("verify", f"ghost@{DOMAIN}", ok=False, password=PASSWORD)
    assert ghost.returncode == 1 and "wrong password" in ghost.stderr  # no enumeration

    # passwd: old, then new; the old one stops working, the store is the same
    server.cli("user", "passwd", address, "--password-stdin",
               input=f"{PASSWORD}\nnew secret\n")
    assert server.mailbox("verify", address, password=PASSWORD, ok=False).returncode == 1
    server.mailbox("verify", address, password="new secret")

    # recovery: a typo is "not a recovery key", another key is "wrong"
    typo = recovery[:-1] + ("0" if recovery[-1] != "0" else "1")
    res = server.cli("user", "recover", address, "--password-stdin",
                     input=f"{typo}\nthird\n", ok=False)
    assert res.returncode == 1 and "not a recovery key" in res.stderr
    other = server.add_user(f"bob@{DOMAIN}", PASSWORD)
    res = server.cli("user", "recover", address, "--password-stdin",
                     input=f"{other}\nthird\n", ok=False)
    assert res.returncode == 1 and "wrong recovery key" in res.stderr
    res = server.cli("user", "recover", address, "--password-stdin",
                     input=f"{recovery.lower()}\nthird\n")
    fresh = re.search(r"^  (\S+)$", res.stdout, re.M).group(1)
    assert fresh != recovery
    server.mailbox("verify", address, password="third")
    # the used recovery key is replaced
    res = server.cli("user", "recover", address, "--password-stdin",
                     input=f"{recovery}\nfourth\n", ok=False)
    assert res.returncode == 1

    # an app password opens the mailbox too
    res = server.cli("user", "app-password", address, "phone", "--password-stdin",
                     input="third\n")
    app = re.search(r"^  (\S+)$", res.stdout, re.M).group(1)
    server.mailbox("verify", address, password=app)
    # at most 8 (each costs an Argon2id run when a login misses); removing one works at once
    for i in range(7):
        server.cli("user", "app-password", address, f"dev{i}", "--password-stdin",
                   input="third\n")
    res = server.cli("user", "app-password", address, "one-too-many", "--password-stdin",
                     input="third\n", ok=False)
    assert res.returncode == 1 and "too many app passwords" in res.stderr
    server.cli("user", "app-password-remove", address, "phone")
    assert server.mailbox("verify", address, password=app, ok=False).returncode == 1

    listing = server.cli("user", "list").stdout
    assert address in listing and f"bob@{DOMAIN}" in listing
    assert "third" not in listing and app not in listing


def test_rcpt_accepts_only_existing_recipients(make_server):
    server = make_server(name="rcpt")
    server.cli("alias", "remove", f"@{DOMAIN}")           # no catch-all here
    server.add_user(f"alice@{DOMAIN}", PASSWORD)
    server.cli("alias", "add", f"sales@{DOMAIN}", f"alice@{DOMAIN}")
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<s@sender.test>").code == 250
        for rcpt in [f"alice@{DOMAIN}", f"ALICE@{DOMAIN}", f"alice+tag@{DOMAIN}",
                     f"sales@{DOMAIN}", f"catchall@{DOMAIN}"]:
            assert c.cmd(f"RCPT TO:<{rcpt}>").code == 250, rcpt
        unknown = [c.cmd(f"RCPT TO:<{r}>") for r in
                   (f"nobody@{DOMAIN}", f"nobody+tag@{DOMAIN}", f"bob@{DOMAIN}")]
        assert {r.last for r in unknown} == {"550 5.1.1 No such user here"}
        relay = c.cmd("RCPT TO:<alice@elsewhere.test>")
        assert relay.code == 550 and "5.7.1" in relay.last
        c.quit()


def test_quota_refuses_at_rcpt(live):
    address = f"small@{DOMAIN}"
    live.add_user(address, PASSWORD, quota="10k")
    send(live, [address], "QUOTA-1", extra=b"q" * 12000 + b"\r\n")
    wait_delivered(live, address, 1)

    # usage is counted at delivery, just after the drop file is durable:
    # RCPT then hears the mailbox is full (polled: the file appears first)
    def rcpt_reply():
        with SMTPConn(live.smtp_port) as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<s@sender.test>").code == 250
            r = c.cmd(f"RCPT TO:<{address}>")
            c.quit()
            return r
    r = wait_until(lambda: (r := rcpt_reply()).code != 250 and r, 30, 0.2, "a full mailbox")
    assert r.last.startswith("452 4.2.2"), r
    live.cli("user", "quota", address, "1M")
    with SMTPConn(live.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<s@sender.test>").code == 250
        assert c.cmd(f"RCPT TO:<{address}>").code == 250
        c.quit()


def test_delivery_alias_catchall_and_import(live):
    alice, bob = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
    live.add_user(alice, PASSWORD)
    live.add_user(bob, PASSWORD)
    live.cli("alias", "add", f"team@{DOMAIN}", alice)
    live.cli("alias", "add", f"team@{DOMAIN}", bob)
    run = uuid.uuid4().hex[:8]

    send(live, [alice], f"DIRECT-{run}")
    send(live, [f"alice+lists@{DOMAIN}"], f"TAGGED-{run}")
    send(live, [f"team@{DOMAIN}", alice], f"TEAM-{run}")          # alice gets one copy
    send(live, [f"whoever@{DOMAIN}"], f"CATCHALL-{run}")
    wait_delivered(live, alice, 3)
    wait_delivered(live, bob, 1)
    wait_delivered(live, CATCHALL, 1)
    wait_until(lambda: live.queue_list() == [], 30, 0.1, "the spool to empty")

    # the drop is sealed: nothing readable in it
    for path in drop_files(live, alice):
        assert run.encode() not in path.read_bytes()

    subjects = [s for _, s in listed(live, alice)]
    assert subjects == [f"DIRECT-{run}", f"TAGGED-{run}", f"TEAM-{run}"]
    assert drop_files(live, alice) == []                   # imported, moved to msg/
    assert [s for _, s in listed(live, bob)] == [f"TEAM-{run}"]
    assert [s for _, s in listed(live, CATCHALL, CATCHALL_PASSWORD)] == [f"CATCHALL-{run}"]

    # the stored message is the one that was sent, byte for byte after our
    # Authentication-Results and Received
    shown = live.mailbox("show", alice, "1", password=PASSWORD).stdout_bytes
    assert f"DIRECT-{run}".encode() in shown
    results, rest = split_auth_results(shown)
    assert results.startswith(b"Authentication-Results: mx.example.test;")
    assert rest.startswith(b"Received: ")
    # search uses the full-text index
    hits = live.mailbox("search", alice, f'"TEAM-{run}"', password=PASSWORD).stdout.split()
    assert hits == ["3"]
    verify = live.mailbox("verify", alice, "--deep", password=PASSWORD).stdout
    assert "integrity: ok" in verify and "messages: 3" in verify
    assert "bodies checked: 3, damaged: 0" in verify


def test_delivery_while_mailbox_is_open(live):
    """The owner's store stays open in another process while mail arrives
    and while a second process imports it."""
    address = f"busy@{DOMAIN}"
    live.add_user(address, PASSWORD)
    big = (b"y" * 900 + b"\r\n") * 1200                   # more than a pipe holds
    send(live, [address], "BEFORE", extra=big)
    wait_delivered(live, address, 1)
    listed(live, address)
    # `mailbox show` blocks writing to a pipe nobody reads: its store stays open
    holder = subprocess.Popen(
        [BIN, "--config", str(live.config), "mailbox", "show", address, "1",
         "--password-stdin"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    try:
        holder.stdin.write((PASSWORD + "\n").encode())
        holder.stdin.flush()
        head = holder.stdout.read1(4096)               # it has started writing
        for i in range(3):
            send(live, [address], f"DURING-{i}")
        wait_delivered(live, address, 3)
        assert holder.poll() is None, "the holder did not stay open"
        assert [s for _, s in listed(live, address)] == ["BEFORE", "DURING-0", "DURING-1",
                                                         "DURING-2"]
    finally:
        out, err = holder.communicate(timeout=60)
    assert holder.returncode == 0, err
    out = head + out
    assert b"BEFORE" in out and big in out


def test_tampered_drop_file_is_refused_not_imported(live):
    address = f"tamper@{DOMAIN}"
    live.add_user(address, PASSWORD)
    send(live, [address], "GOOD")
    send(live, [address], "BAD")
    wait_delivered(live, address, 2)
    victim = sorted(drop_files(live, address))[-1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x40
    victim.write_bytes(bytes(data))
    assert [s for _, s in listed(live, address)] == ["GOOD"]
    assert drop_files(live, address) == [victim]           # left for the operator
    verify = live.mailbox("verify", address, password=PASSWORD).stdout
    assert "pending: 1" in verify


def test_tampered_store_fails_clearly(live):
    address = f"flip@{DOMAIN}"
    live.add_user(address, PASSWORD)
    send(live, [address], "FLIP")
    wait_delivered(live, address, 1)
    listed(live, address)
    store = mailbox_dir(live, address) / "store.db"
    data = bytearray(store.read_bytes())
    data[len(data) - 100] ^= 0x01                          # inside the last page
    store.write_bytes(bytes(data))
    res = live.mailbox("verify", address, ok=False, password=PASSWORD)
    assert res.returncode == 1
    assert "integrity: ok" not in res.stdout
    assert "FLIP" not in res.stdout + res.stderr


def test_removed_mailbox_copy_cannot_be_opened(live, tmp_path):
    """Crypto-shredding: a copy taken before removal stays sealed afterwards."""
    address = f"gone@{DOMAIN}"
    live.add_user(address, PASSWORD)
    send(live, [address], "SHRED-ME")
    wait_delivered(live, address, 1)
    listed(live, address)
    send(live, [address], "SHRED-DROP")
    wait_delivered(live, address, 1)
    mdir = mailbox_dir(live, address)
    copy = tmp_path / "copy"
    shutil.copytree(mdir, copy)
    live.cli("user", "remove", address)
    assert not mdir.exists()
    # put the files back where they were: the server still cannot open them
    shutil.copytree(copy, mdir)
    subprocess.run(["chown", "-R", "sealmail:", str(mdir)], check=False)
    res = live.mailbox("verify", address, ok=False, password=PASSWORD)
    assert res.returncode == 1 and "wrong password" in res.stderr
    res = live.add_user(address, PASSWORD)                # same address, new keys
    assert "SHRED" not in " ".join(s for _, s in listed(live, address))
    for path in copy.rglob("*"):
        if path.is_file():
            assert b"SHRED" not in path.read_bytes(), path
    directory = (live.data / "directory.db").read_bytes()
    assert b"SHRED" not in directory


def test_nothing_in_clear_on_disk(live):
    address = f"clear@{DOMAIN}"
    live.add_user(address, PASSWORD)
    marker = f"PLAINTEXT-MARKER-{uuid.uuid4().hex}"
    for i in range(30):
        send(live, [address], f"{marker}-{i}", subject=f"Subject-{marker}-{i}")
    wait_delivered(live, address, 30)
    assert len(listed(live, address)) == 30
    send(live, [address], f"{marker}-late")
    wait_delivered(live, address, 1)
    for path in live.data.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert marker.encode() not in data, f"{marker} in clear in {path}"
            assert b"SQLite format 3" not in data or path.name.startswith("directory.db"), path


def test_kill_9_during_import_loses_and_duplicates_nothing(live):
    """Kill the importing process at random moments; every message ends up
    in the store exactly once."""
    address = f"crash@{DOMAIN}"
    live.add_user(address, PASSWORD)
    n = 60
    with SMTPConn(live.smtp_port) as c:
        c.ehlo()
        for i in range(n):
            c.send_message(make_message(f"CRASH-{i:03d}", subject=f"CRASH-{i:03d}",
                                        extra=b"c" * (i * 97 % 5000) + b"\r\n"),
                           rcpts=[address])
        c.quit()
    wait_delivered(live, address, n)
    argv = [BIN, "--config", str(live.config), "mailbox", "verify", address,
            "--password-stdin"]
    killed = 0
    for attempt in range(12):
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        p.stdin.write((PASSWORD + "\n").encode())
        p.stdin.flush()
        time.sleep(0.05 + 0.04 * attempt)            # Argon2id first, then the import
        if p.poll() is None:
            p.kill()
            killed += 1
        p.wait(timeout=60)
        if not drop_files(live, address):
            break
    assert killed > 0, "no import was interrupted: the test proved nothing"
    subjects = [s for _, s in listed(live, address)]
    assert sorted(subjects) == [f"CRASH-{i:03d}" for i in range(n)], subjects
    assert drop_files(live, address) == []
    verify = live.mailbox("verify", address, "--deep", password=PASSWORD).stdout
    assert f"messages: {n}" in verify and "damaged: 0" in verify


def test_alias_policy_disabled_and_allow_list(make_server):
    """An alias can be disabled (a clear 5xx at RCPT, never a silent drop)
    and can take mail only from chosen senders and domains."""
    srv = make_server()
    srv.add_user(f"owner@{DOMAIN}", PASSWORD)
    srv.cli("alias", "add", f"news@{DOMAIN}", f"owner@{DOMAIN}")
    srv.cli("alias", "disable", f"news@{DOMAIN}")
    with SMTPConn(srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.test>").code == 250
        r = c.cmd(f"RCPT TO:<news+x@{DOMAIN}>")
        assert (r.code, r.last[4:9]) == (550, "5.2.1"), r
        assert c.cmd(f"RCPT TO:<owner@{DOMAIN}>").code == 250  # the mailbox itself is not
    srv.cli("alias", "enable", f"news@{DOMAIN}")
    srv.cli("alias", "allow", f"news@{DOMAIN}", "boss@corp.test", "friends.test")
    for sender, code in (("boss@corp.test", 250), ("BOSS@Corp.test", 250),
                         ("anna@friends.test", 250), ("x@corp.test", 550), ("", 550)):
        with SMTPConn(srv.smtp_port) as c:
            c.ehlo()
            assert c.cmd(f"MAIL FROM:<{sender}>").code == 250
            r = c.cmd(f"RCPT TO:<news@{DOMAIN}>")
            assert r.code == code, (sender, r)
            if code == 550:
                assert r.last.startswith("550 5.7.1"), r
    listed = srv.cli("alias", "list").stdout
    assert f"news@{DOMAIN} allows boss@corp.test friends.test" in listed
