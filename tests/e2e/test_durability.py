"""The spool: a 250 means durable, and what is durable is sealed.

The crash test kills master and children together (SIGKILL to the process
group) right after the last acknowledgement, restarts, and requires every
acknowledged message back exactly once, byte for byte."""
import os
import signal
import stat
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from conftest import (CATCHALL, DOMAIN, SMTPConn, make_message, received_protocol,
                      split_received, wait_until)

N_MESSAGES = 200
N_CLIENTS = 4


def durable_body(run, j):
    lines = 300 if j % 50 == 0 else (j % 7) * 10     # a few large, most small
    extra = (b"z" * 998 + b"\r\n") * lines
    return make_message(f"DURABLE-CANARY-{run}-{j}", subject=f"durability {j}", extra=extra)


def assert_no_plaintext(server, needles):
    files = server.spool_files()
    assert files, "no spool files at all"
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"plaintext {needle!r} found in {path}"


def test_acknowledged_messages_survive_kill_9(make_server):
    server = make_server()
    run = uuid.uuid4().hex
    acked = {}                 # queue id -> bytes sent
    lock = threading.Lock()
    errors, conns = [], []

    def client(k):
        try:
            c = SMTPConn(server.smtp_port)
            with lock:
                conns.append(c)      # left open: the kill hits live sessions
            c.ehlo(f"durable{k}.test")
            for j in range(k, N_MESSAGES, N_CLIENTS):
                body = durable_body(run, j)
                queue_id = c.send_message(body, rcpts=[f"d{j}@{DOMAIN}"])
                with lock:
                    assert queue_id not in acked, f"queue id {queue_id} given twice"
                    acked[queue_id] = body
        except BaseException as e:  # noqa: BLE001 - reported below
            with lock:
                errors.append(f"client {k}: {e!r}")

    # one more client is in the middle of its message when the kill comes
    unfinished = SMTPConn(server.smtp_port)
    conns.append(unfinished)
    unfinished.ehlo()
    unfinished.envelope([f"unfinished@{DOMAIN}"])
    assert unfinished.cmd("DATA").code == 354
    unfinished.send(b"Subject: never acknowledged\r\n\r\nUNFINISHED-" + run.encode() + b"\r\n")

    threads = [threading.Thread(target=client, args=(k,), daemon=True)
               for k in range(N_CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    alive = any(t.is_alive() for t in threads)
    server.kill9()             # master and children, at once, right after the last 250
    for c in conns:
        c.close()
    assert not alive, "clients still running"
    assert not errors, errors
    assert len(acked) == N_MESSAGES

    # offline, before any restart: everything acknowledged is there, once
    listed = server.queue_list()
    assert len(listed) == len(set(listed)), "an id is listed twice"
    assert set(listed) == set(acked), (
        f"lost: {sorted(set(acked) - set(listed))[:10]}, "
        f"unexpected: {sorted(set(listed) - set(acked))[:10]}")
    assert_no_plaintext(server, [b"DURABLE-CANARY", run.encode(), b"UNFINISHED-"])

    # restart on the same data: nothing lost, nothing duplicated, all readable
    server.start(add_domain=False)
    listed = server.queue_list()
    assert sorted(listed) == sorted(acked)

    def check(queue_id):
        received, rest = server.stored_body(queue_id)
        assert received_protocol(received) == ("ESMTP", queue_id)
        assert rest == acked[queue_id], f"{queue_id}: stored bytes differ from those sent"

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(check, sorted(acked)))

    # and the restarted server takes new mail
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        new_id = c.send_message(make_message("after-restart"))
        c.quit()
    assert new_id not in acked
    assert sorted(server.queue_list()) == sorted(list(acked) + [new_id])


def test_spool_files_contain_no_plaintext(server):
    mark = "PLAINTEXT-CANARY-" + uuid.uuid4().hex
    body = make_message(mark, subject=f"Secret subject {mark}",
                        extra=b"card number 4111 1111 1111 1111\r\n")
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        queue_id = c.send_message(body)
        c.quit()
    path, _, _ = server.spool_record(queue_id)   # its file or its segment
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, "spool file readable by others"
    for other in server.spool_files():
        assert stat.S_IMODE(other.stat().st_mode) & 0o077 == 0, f"{other} readable by others"
    assert_no_plaintext(server, [mark.encode(), b"4111 1111 1111 1111"])
    assert server.stored_body(queue_id)[1] == body


def test_message_being_received_is_not_on_disk_in_clear(server):
    mark = "INFLIGHT-CANARY-" + uuid.uuid4().hex
    line = (mark + " ").encode() * 20 + b"\r\n"
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        c.envelope([f"inflight@{DOMAIN}"])
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: " + mark.encode() + b"\r\n\r\n" + line * 400)   # ~300 KB, no end yet
        time.sleep(1)   # let the server take the bytes in (no reply can tell us)
        for path in server.spool_files():
            assert mark.encode() not in path.read_bytes(), f"plaintext in {path}"
        c.send(b".\r\n")
        queue_id = c.reply().queue_id
    assert_no_plaintext(server, [mark.encode()])
    assert server.stored_body(queue_id)[1].count(mark.encode()) == 20 * 400 + 1


def test_queue_show_with_a_wrong_key_reveals_nothing(server, make_server):
    mark = "WRONGKEY-" + uuid.uuid4().hex
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        queue_id = c.send_message(make_message(mark))
        c.quit()
    other = make_server(start=False)
    other.cli("init")
    wrong_key = other.data / "keys" / "spool.key"
    res = server.cli("queue", "show", queue_id, "--key", wrong_key, ok=False)
    assert res.returncode != 0, res
    assert res.stderr, res
    assert mark not in res.stdout and mark not in res.stderr


def test_tampered_spool_file_is_detected(server):
    mark = "TAMPER-" + uuid.uuid4().hex
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        queue_id = c.send_message(make_message(mark, extra=b"0123456789" * 300 + b"\r\n"))
        c.quit()
    # the spool bytes, in a file or a segment record (whose checksum the
    # rewrite fixes: only the seal may notice)
    original = server.spool_bytes(queue_id)
    key = server.data / "keys" / "spool.key"
    try:
        for where in (len(original) - 1, len(original) // 2, len(original) // 3, 40):
            tampered = bytearray(original)
            tampered[where] ^= 0x01
            server.rewrite_spool_bytes(queue_id, bytes(tampered))
            res = server.cli("queue", "show", queue_id, "--key", key, ok=False)
            assert res.returncode != 0, f"flipped byte {where} of {len(original)} unnoticed"
            assert mark not in res.stdout, f"content printed despite byte {where} flipped"
    finally:
        server.rewrite_spool_bytes(queue_id, original)
    assert split_received(server.queue_show(queue_id)[1])[1].count(mark.encode()) == 2


def test_smtpd_killed_under_load_loses_and_duplicates_nothing(make_server):
    """kill -9 of smtpd in the middle of a load (most messages are records of
    its spool segment, whose tail the kill may tear; one is big enough for a
    file of its own).  The master starts a new smtpd, which writes a segment
    of its own; queued delivers every acknowledged message exactly once, and
    once all is delivered no finished segment is left behind."""
    server = make_server({"spool": {"hold": "no"}})
    run = uuid.uuid4().hex[:12]
    acked, attempted = {}, set()       # subject -> queue id; subjects tried
    lock = threading.Lock()
    errors = []
    per_client, n_clients = 40, 4
    deadline = time.monotonic() + 180

    def client(k):
        j = 0
        while j < per_client and time.monotonic() < deadline:
            try:
                with SMTPConn(server.smtp_port, timeout=20) as c:
                    c.ehlo(f"killer{k}.test")
                    while j < per_client:
                        subject = f"KILL-{run}-{k}-{j:03d}"
                        extra = (b"b" * 998 + b"\r\n") * 300 if (k, j) == (0, 3) else b""
                        with lock:
                            attempted.add(subject)
                        j += 1         # a message cut by the kill is not retried
                        queue_id = c.send_message(make_message(subject, subject=subject,
                                                               extra=extra),
                                                  rcpts=[f"k{k}@{DOMAIN}"])
                        with lock:
                            assert queue_id not in acked.values(), f"{queue_id} given twice"
                            acked[subject] = queue_id
            except (OSError, AssertionError, EOFError, ValueError):
                time.sleep(0.2)        # the kill cut the session: a new one
            except BaseException as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(f"client {k}: {e!r}")
                return

    (smtpd,) = wait_until(lambda: server.children_of_role("smtpd"), 30, what="smtpd")
    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(n_clients)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked) >= per_client * n_clients // 3, 120, what="a third acknowledged")
    os.kill(smtpd, signal.SIGKILL)
    wait_until(lambda: [p for p in server.children_of_role("smtpd") if p != smtpd], 30,
               what="a new smtpd")
    for t in threads:
        t.join(200)
    assert not any(t.is_alive() for t in threads), "clients still running"
    assert not errors, errors
    assert len(acked) > per_client * n_clients // 2, f"only {len(acked)} acknowledged"
    assert any(v >= "8" for v in acked.values()), "no message went to a segment"

    wait_until(lambda: server.queue_list() == [], 120, interval=0.5, what="the spool emptied")
    res = server.mailbox("list", CATCHALL)
    subjects = [line.split("\t")[4] for line in res.stdout.splitlines() if line.strip()]
    ours = [s for s in subjects if s.startswith(f"KILL-{run}-")]
    assert len(ours) == len(set(ours)), "a message was delivered twice"
    missing = set(acked) - set(ours)
    assert not missing, f"acknowledged but not delivered: {sorted(missing)[:10]}"
    assert set(ours) <= attempted
    # every segment a dead or finished writer left is deleted (by the
    # removals, or at the latest by queued's periodic sweep)
    wait_until(lambda: server.free_segments() == [], 45, interval=0.5,
               what=f"finished segments deleted: {server.segment_files()}")
