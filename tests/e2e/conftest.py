"""End-to-end test harness for sealmail: real daemon, real clients, loopback only.

Fixtures
  shared_server  one `sealmail serve` for the whole session (default limits);
  server         that shared server, checked around each test (alive, no
                 sanitizer report in what it logged meanwhile);
  make_server    a factory for a private server with its own configuration,
                 stopped (SIGTERM, exit 0, clean log) when the test ends.

Every wait is bounded: sockets carry a timeout, every loop has a deadline.
Nothing asserts how long something took.

Run:  cd tests/e2e && SEALMAIL_BIN=/path/to/sealmail python3 -m pytest -q .
Data directories and logs live under /tmp/sealmail-e2e-*; they are removed
after a clean run and kept (path printed) when a test failed or when
SEALMAIL_E2E_KEEP=1 is set.
"""
import atexit
import fcntl
import os
import pwd
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import zlib
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BIN = os.environ.get("SEALMAIL_BIN") or str(HERE.parents[1] / "build-asan" / "sealmail")
HOSTNAME = "mx.example.test"
DOMAIN = "example.test"
CATCHALL = f"catchall@{DOMAIN}"
CATCHALL_PASSWORD = "catch all the mail"
HELO = "client.test"
SENDER = "sender@client.test"
IO_TIMEOUT = 30          # seconds a socket read may block (generous: ASan)
START_TIMEOUT = 60       # seconds for serve to answer its first 220
STOP_TIMEOUT = 30        # seconds for serve to exit after SIGTERM
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                     "UndefinedBehaviorSanitizer")
QUEUED_RE = re.compile(r"^250 2\.0\.0 Ok: queued as ([0-9a-f]{16})$")
IS_ROOT = os.geteuid() == 0
SERVICE_USER = "sealmail"
# spool segments (src/store/spoolseg.h)
REC_HDR_LEN, REC_SUM_LEN, REC_MAGIC = 24, 4, 0x53475232  # "SGR2", a CRC-32 sum


def seg_hdr_len(data):
    """Where a segment's records start: its header length (src/store/spoolseg.h)."""
    return 112 if data[:8] in (b"SEALSG\0\2", b"SEALSG\0\3") else 32


# --------------------------------------------------------------------------
# small helpers

def wait_until(predicate, timeout, interval=0.1, what="condition"):
    """Poll predicate() until it returns a true value; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_ports(n):
    """n distinct free loopback TCP ports below the kernel's ephemeral range,
    so that no client connection of the tests can be sitting on one."""
    lo, hi = 32768, 60999
    try:
        lo, hi = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        pass
    pool = list(range(10000, lo)) if lo > 11000 else list(range(hi + 1, 65535))
    ports = []
    for port in random.sample(pool, min(len(pool), 500)):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        ports.append(port)
        if len(ports) == n:
            return ports
    raise RuntimeError("no free ports")


def sanitizer_reports(text):
    return [m for m in SANITIZER_MARKERS if m in text]


def dot_stuff(body):
    """DATA encoding of a CRLF message: leading dots doubled, end marker added."""
    assert body.endswith(b"\r\n"), "test messages must end in CRLF"
    lines = body[:-2].split(b"\r\n")
    stuffed = [b"." + line if line.startswith(b".") else line for line in lines]
    return b"\r\n".join(stuffed) + b"\r\n.\r\n"


def split_field(message, prefix):
    """(first field, rest) when message starts with prefix (a field name
    and colon): the field with its folded lines, and the bytes after it;
    (None, message) otherwise."""
    if not message.startswith(prefix):
        return None, message
    lines = message.split(b"\r\n")
    i = 1
    while i < len(lines) and lines[i][:1] in (b"\t", b" "):
        i += 1
    field = b"\r\n".join(lines[:i]) + b"\r\n"
    return field, message[len(field):]


def split_auth_results(message):
    """(our Authentication-Results field or None, rest): the sender checks'
    results sealmail puts in front of a message on delivery."""
    return split_field(message, b"Authentication-Results: ")


def split_received(message):
    """(first header, rest): the Received header sealmail prepends, folded
    lines included, and the bytes that follow it (our Authentication-Results,
    which comes before it, is skipped)."""
    _, message = split_auth_results(message)
    assert message.startswith(b"Received: from "), message[:200]
    return split_field(message, b"Received: ")


def received_protocol(received):
    """The `with` keyword and the id of a Received header."""
    m = re.search(rb"\r\n\tby " + re.escape(HOSTNAME.encode()) +
                  rb" \(sealmail\) with (\S+) id ([0-9a-f]{16})", received)
    assert m, f"unexpected Received header: {received!r}"
    return m.group(1).decode(), m.group(2).decode()


def make_message(marker, subject="test", extra=b""):
    """A small RFC 5322 message carrying marker in its body."""
    return (b"From: <" + SENDER.encode() + b">\r\n"
            b"To: <rcpt@" + DOMAIN.encode() + b">\r\n"
            b"Subject: " + subject.encode() + b"\r\n"
            b"Message-ID: <" + marker.encode() + b"@client.test>\r\n"
            b"\r\n"
            b"Hello, this is " + marker.encode() + b".\r\n"
            b".a line that starts with a dot\r\n"
            b"..and one with two\r\n" + extra +
            b"Bye.\r\n")


def no_verify_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# --------------------------------------------------------------------------
# a raw SMTP client: exact bytes out, exact replies in

class Reply:
    def __init__(self, lines):
        self.lines = lines
        self.code = int(lines[-1][:3])
        self.last = lines[-1]

    def __repr__(self):
        return "Reply(%r)" % (self.lines,)

    @property
    def queue_id(self):
        m = QUEUED_RE.match(self.last)
        assert m, f"expected '250 2.0.0 Ok: queued as <16 hex>', got {self.lines}"
        return m.group(1)


class SMTPConn:
    """One client connection; every read is bounded by IO_TIMEOUT."""

    def __init__(self, port, *, source=None, tls_context=None, server_hostname=None,
                 timeout=IO_TIMEOUT, greet=True):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            if source:
                sock.bind((source, 0))
            sock.connect(("127.0.0.1", port))
            if tls_context is not None:
                sock = tls_context.wrap_socket(sock, server_hostname=server_hostname)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.buf = b""
        self.greeting = None
        if greet:
            self.greeting = self.reply()
            assert self.greeting.last == f"220 {HOSTNAME} ESMTP sealmail", self.greeting

    # -- bytes
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def readline(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise AssertionError("reply line longer than 1 MiB")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed by server (pending {self.buf!r})")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        lines = []
        for _ in range(200):
            line = self.readline().decode("utf-8", "replace")
            assert re.match(r"^\d{3}[ -]", line) or re.match(r"^\d{3}$", line), \
                f"malformed reply line {line!r} (after {lines})"
            lines.append(line)
            if len(line) < 4 or line[3] == " ":
                return Reply(lines)
        raise AssertionError("reply with more than 200 lines")

    def replies(self, n):
        return [self.reply() for _ in range(n)]

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def read_to_eof(self):
        """Everything the server still sends until it closes (bounded)."""
        data, self.buf = self.buf, b""
        for _ in range(10000):
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        else:
            raise AssertionError("server kept sending")
        return data

    # -- SMTP conveniences
    def ehlo(self, name=HELO):
        r = self.cmd(f"EHLO {name}")
        assert r.code == 250, r
        assert r.lines[0] == f"250-{HOSTNAME}", r
        return r

    def starttls(self, context, server_hostname=None):
        r = self.cmd("STARTTLS")
        assert r.code == 220 and r.last.startswith("220 2.0.0"), r
        assert self.buf == b""
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        return self.sock

    def noop_ok(self):
        r = self.cmd("NOOP")
        assert r.code == 250 and r.last.startswith("250 2.0.0"), r

    def envelope(self, rcpts, sender=SENDER, params=""):
        r = self.cmd(f"MAIL FROM:<{sender}>{params}")
        assert r.last.startswith("250 2.1.0"), r
        for rcpt in rcpts:
            r = self.cmd(f"RCPT TO:<{rcpt}>")
            assert r.last.startswith("250 2.1.5"), (rcpt, r)

    def data(self, body):
        """DATA with the given CRLF message; returns the final reply."""
        r = self.cmd("DATA")
        assert r.code == 354, r
        self.send(dot_stuff(body))
        return self.reply()

    def send_message(self, body, rcpts=(f"rcpt@{DOMAIN}",), sender=SENDER, params=""):
        """A whole transaction that must succeed; returns the queue id."""
        self.envelope(rcpts, sender, params)
        return self.data(body).queue_id

    def quit(self):
        try:
            r = self.cmd("QUIT")
            assert r.last.startswith("221"), r
            assert self.read_to_eof() == b""
        finally:
            self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------
# the CLI

class CLIResult:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.stdout_bytes = proc.stdout
        self.stderr_bytes = proc.stderr
        self.stdout = proc.stdout.decode("utf-8", "replace")
        self.stderr = proc.stderr.decode("utf-8", "replace")

    def __repr__(self):
        return (f"exit={self.returncode}\n--- stdout\n{self.stdout[-3000:]}"
                f"\n--- stderr\n{self.stderr[-3000:]}")


def run_cli(*args, config=None, ok=True, timeout=120, cwd=None, input=None):
    """Run `sealmail [--config FILE] ARGS`; by default it must exit 0.
    input (text) is fed to standard input (passwords with --password-stdin).
    A sanitizer report on stderr always fails the test."""
    argv = [BIN] + (["--config", str(config)] if config else []) + [str(a) for a in args]
    stdin = {"input": input.encode()} if input is not None else {"stdin": subprocess.DEVNULL}
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, cwd=cwd, **stdin)
    res = CLIResult(proc)
    found = sanitizer_reports(res.stderr)
    assert not found, f"sanitizer report from {argv}: {res}"
    if ok:
        assert res.returncode == 0, f"{argv} failed: {res}"
    return res


# --------------------------------------------------------------------------
# a server under test

_LIVE = set()   # every server still running, killed at exit if pytest dies
_FAILURES = []  # failed tests: their files are kept for a post-mortem
_KEPT = []      # work directories left in place


def _kill_leftovers():
    for srv in list(_LIVE):
        srv.kill9()


atexit.register(_kill_leftovers)


class Server:
    """One `sealmail serve` with its own ports, data directory and log."""

    def __init__(self, root, name, overrides=None):
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
        os.chmod(self.dir, 0o755)  # the service user must reach data_dir
        self.data = self.dir / "data"
        self.config = self.dir / "sealmail.ini"
        self.zone_path = self.dir / "zone.txt"
        self.log_path = self.dir / "serve.log"
        (self.smtp_port, self.smtps_port, self.submission_port, self.imap_port,
         self.imaps_port, self.pop3_port, self.pop3s_port, self.http_port,
         self.https_port) = free_ports(9)
        self.proc = None
        self.pgid = None
        self.finished = False
        self.write_config(overrides or {})
        self.set_zone([])

    # -- configuration
    def set_zone(self, records):
        """The DNS answers this server sees (zone-file lines, absolute
        names); read at start.  Every other name is NXDOMAIN: nothing is
        ever asked of the network."""
        self.zone_path.write_text("; test zone\n" + "".join(r + "\n" for r in records))
        os.chmod(self.zone_path, 0o644)

    def settings(self, overrides):
        cfg = {
            "server": {"hostname": HOSTNAME, "data_dir": str(self.data),
                       "user": SERVICE_USER, "smtpd_workers": "1", "shutdown_grace": "5"},
            "log": {"level": "info", "syslog": "no", "anonymise_ip": "yes"},
            # spool tests inspect what was accepted: delivery waits unless a test lets it go
            "spool": {"hold": "yes"},
            # the cheapest Argon2id the configuration allows: tests create many mailboxes
            "mailbox": {"argon2_ops": "2", "argon2_memory": "19M"},
            "smtp": {"listen": f"127.0.0.1:{self.smtp_port}",
                     "smtps_listen": f"127.0.0.1:{self.smtps_port}",
                     "submission_listen": f"127.0.0.1:{self.submission_port}",
                     "max_connections_per_client": "200"},
            # DNS from this server's test zone only (set_zone), never the network
            "dns": {"zone_file": str(self.zone_path), "trust_anchor": ""},
            "imap": {"listen": f"127.0.0.1:{self.imap_port}",
                     "imaps_listen": f"127.0.0.1:{self.imaps_port}",
                     "pop3_listen": f"127.0.0.1:{self.pop3_port}",
                     "pop3s_listen": f"127.0.0.1:{self.pop3s_port}"},
            "web": {"listen": f"127.0.0.1:{self.http_port}",
                    "https_listen": f"127.0.0.1:{self.https_port}"},
        }
        for section, values in overrides.items():
            cfg.setdefault(section, {}).update(values)
        return cfg

    def write_config(self, overrides):
        text = ""
        for section, values in self.settings(overrides).items():
            text += f"[{section}]\n"
            text += "".join(f"{k} = {v}\n" for k, v in values.items())
            text += "\n"
        self.config.write_text(text)
        os.chmod(self.config, 0o644)

    # -- CLI against this server's configuration
    def cli(self, *args, ok=True, timeout=120, input=None):
        return run_cli(*args, config=self.config, ok=ok, timeout=timeout, input=input)

    def add_user(self, address, password=CATCHALL_PASSWORD, quota=None):
        """Create a mailbox; returns its recovery key."""
        args = ["user", "add", address, "--password-stdin"]
        if quota is not None:
            args += ["--quota", quota]
        res = self.cli(*args, input=password + "\n")
        m = re.search(r"^  ([0-9A-Z]{4}(?:-[0-9A-Z]{4}){13})$", res.stdout, re.M)
        assert m, f"no recovery key printed: {res}"
        return m.group(1)

    def mailbox(self, op, address, *args, password=CATCHALL_PASSWORD, ok=True):
        return self.cli("mailbox", op, address, *args, "--password-stdin",
                        input=password + "\n", ok=ok)

    def queue_list(self):
        res = self.cli("queue", "list")
        ids = []
        for line in res.stdout.splitlines():
            if not line.strip():
                continue
            first = line.split()[0]
            assert re.fullmatch(r"[0-9a-f]{16}", first), \
                f"`queue list` line does not start with a queue id: {line!r}"
            ids.append(first)
        return ids

    def queue_show(self, queue_id, key=True):
        """(envelope text, message bytes or None)."""
        args = ["queue", "show", queue_id]
        if key:
            args += ["--key", str(self.data / "keys" / "spool.key")]
        res = self.cli(*args)
        out = res.stdout_bytes
        if not key:
            return out.decode("utf-8", "replace"), None
        assert b"\n\n" in out, f"no blank line between envelope and message: {out[:2000]!r}"
        envelope, message = out.split(b"\n\n", 1)
        return envelope.decode("utf-8", "replace"), message

    def stored_body(self, queue_id):
        """The message as stored, split into (Received header, the rest)."""
        _, message = self.queue_show(queue_id)
        return split_received(message)

    def spool_files(self):
        return [p for p in (self.data / "spool").rglob("*") if p.is_file()]

    def spool_record(self, queue_id):
        """Where the spool bytes of queue_id are: (path, start, end).  A spool
        file holds them whole; a segment record (src/store/spoolseg.h) holds
        them as its payload, between a 24-byte header and a CRC-32 sum."""
        incoming = self.data / "spool" / "incoming"
        path = incoming / queue_id
        if path.is_file():
            return path, 0, path.stat().st_size
        v = int(queue_id, 16)
        assert v >> 63, f"{queue_id}: no spool file, and not a segment id"
        path = incoming / f"seg-{(v >> 32) & 0x7fffffff:08x}"
        data = path.read_bytes()
        off = seg_hdr_len(data)
        while off + REC_HDR_LEN <= len(data):
            magic, length, _seg, ticket = struct.unpack(">IIII", data[off:off + 16])
            if magic != REC_MAGIC:
                break
            if ticket == v & 0xffffffff:
                return path, off + REC_HDR_LEN, off + REC_HDR_LEN + length
            off += REC_HDR_LEN + length + REC_SUM_LEN
        raise AssertionError(f"{queue_id}: no record in {path}")

    def spool_bytes(self, queue_id):
        path, start, end = self.spool_record(queue_id)
        with open(path, "rb") as f:
            f.seek(start)
            return f.read(end - start)

    def rewrite_spool_bytes(self, queue_id, data):
        """Replace the spool bytes of queue_id in place (same length); a
        segment record gets a matching checksum, so only the seal can tell."""
        path, start, end = self.spool_record(queue_id)
        assert len(data) == end - start
        with open(path, "r+b") as f:
            f.seek(start)
            f.write(data)
            if path.name.startswith("seg-"):
                f.seek(start - REC_HDR_LEN)
                head = f.read(REC_HDR_LEN)
                f.seek(end)
                f.write(struct.pack(">I", zlib.crc32(head + data)))

    def segment_files(self):
        return sorted((self.data / "spool" / "incoming").glob("seg-*"))

    def free_segments(self):
        """Segments no live writer holds (their flock is free)."""
        free = []
        for path in self.segment_files():
            if path.name.endswith(".done"):
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                free.append(path)
            except BlockingIOError:
                pass
            finally:
                os.close(fd)
        return free

    # -- process control
    def start(self, add_domain=True):
        assert self.proc is None or self.proc.poll() is not None
        self.finished = False
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [BIN, "--config", str(self.config), "serve"], stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, start_new_session=True)
        finally:
            log.close()
        self.pgid = self.proc.pid
        _LIVE.add(self)
        self.wait_greeting()
        if add_domain:
            self.cli("domain", "add", DOMAIN)
            # every address of DOMAIN exists: a catch-all into one mailbox
            self.add_user(CATCHALL)
            self.cli("alias", "add", f"@{DOMAIN}", CATCHALL)
        self.wait_domain()
        return self

    def wait_greeting(self):
        def greets():
            if self.proc.poll() is not None:
                pytest.fail(f"serve exited with {self.proc.returncode} during start-up:\n"
                            f"{self.log_tail()}")
            try:
                with SMTPConn(self.smtp_port, timeout=5, greet=False) as c:
                    line = c.readline()
                    if not line.startswith(b"220 "):
                        return False
                    c.send(b"QUIT\r\n")
                    return True
            except (OSError, EOFError):
                return False
        wait_until(greets, START_TIMEOUT, 0.1, "the first 220 greeting")

    def wait_domain(self):
        """Bounded wait until RCPT to the hosted domain is accepted."""
        def accepted():
            if self.proc.poll() is not None:
                pytest.fail(f"serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with SMTPConn(self.smtp_port, timeout=10) as c:
                    c.ehlo()
                    assert c.cmd(f"MAIL FROM:<{SENDER}>").code == 250
                    ok = c.cmd(f"RCPT TO:<probe@{DOMAIN}>").code == 250
                    c.quit()
                    return ok
            except (OSError, EOFError):
                return False
        wait_until(accepted, 30, 0.2, f"RCPT to {DOMAIN} to be accepted")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def children(self):
        """{pid: role} of the master's direct children."""
        out = {}
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*"):
            try:
                pids = (task / "children").read_text().split()
            except OSError:
                continue
            for pid in pids:
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                role = next((a.decode() for a in argv if a in (b"smtpd", b"queued")), "?")
                out[int(pid)] = role
        return out

    def children_of_role(self, role):
        return sorted(pid for pid, r in self.children().items() if r == role)

    def group_alive(self):
        try:
            os.killpg(self.pgid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM; returns the exit status (None if it had to be killed)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                return None
        # the children must be gone with the master
        deadline = time.monotonic() + 10
        while self.group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        leftover = self.group_alive()
        if leftover:
            self.kill9()
            pytest.fail("children survived their master's exit")
        _LIVE.discard(self)
        return self.proc.returncode

    def kill9(self):
        """SIGKILL the whole process group (master and children) at once."""
        if self.pgid is not None:
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 10
        while self.pgid is not None and self.group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        _LIVE.discard(self)

    # -- log
    def log_text(self):
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=60):
        return "\n".join(self.log_text().splitlines()[-n:])

    def check_log(self, since=0):
        text = self.log_text()[since:]
        found = sanitizer_reports(text)
        if found:
            at = min(text.find(m) for m in found if m in text)
            start = text.rfind("\n", 0, max(0, at - 1500)) + 1
            pytest.fail(f"sanitizer report in the server log {self.log_path} ({found}):\n"
                        f"{text[start:at + 6000]}", pytrace=False)

    def finish(self):
        """Teardown: stop, require exit 0 and a clean log."""
        if self.finished:
            return
        self.finished = True
        rc = self.stop()
        self.check_log()
        assert rc == 0, f"serve exited with {rc} after SIGTERM:\n{self.log_tail()}"

    def expect_clean_exit(self, timeout=STOP_TIMEOUT):
        """For a test that stopped the server itself: wait for the master,
        then require exit 0, no children left and a clean log (once: the
        teardown does not check again)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve still running {timeout}s after SIGTERM:\n{self.log_tail()}")
        self.finish()
        assert rc == 0


# --------------------------------------------------------------------------
# fixtures

@pytest.fixture(scope="session")
def workroot():
    assert os.access(BIN, os.X_OK), f"SEALMAIL_BIN={BIN} is not an executable"
    if IS_ROOT:
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            pytest.exit(f"user {SERVICE_USER} is missing: run `make service-user` as root")
    root = tempfile.mkdtemp(prefix="sealmail-e2e-", dir="/tmp")
    os.chmod(root, 0o755)
    yield Path(root)
    if os.environ.get("SEALMAIL_E2E_KEEP") or _FAILURES:
        _KEPT.append(root)
    else:
        shutil.rmtree(root, ignore_errors=True)


def _register(request, srv):
    servers = getattr(request.node, "_sealmail_servers", [])
    servers.append(srv)
    request.node._sealmail_servers = servers


def finish_shared(srv, request):
    """Teardown of a server shared by many tests.  When pytest is already
    stopping (-x), an exception here would be an INTERNALERROR: print instead."""
    try:
        srv.finish()
    except BaseException as e:
        if not (request.session.shouldfail or request.session.shouldstop):
            raise
        print(f"\nERROR at teardown of {srv.dir}: {e}")


@pytest.fixture(scope="session")
def shared_server(workroot, request):
    srv = Server(workroot, "shared")
    srv.start()
    yield srv
    finish_shared(srv, request)


@pytest.fixture
def server(shared_server, request):
    """The shared server, checked before and after the test."""
    assert shared_server.running(), f"shared server is down:\n{shared_server.log_tail()}"
    _register(request, shared_server)
    since = len(shared_server.log_text())
    yield shared_server
    shared_server.check_log(since)
    assert shared_server.running(), f"shared server died:\n{shared_server.log_tail()}"


@pytest.fixture
def make_server(workroot, request):
    """make_server(overrides={section: {key: value}}, start=True) -> Server."""
    made = []

    def factory(overrides=None, start=True, name=None):
        label = re.sub(r"[^\w.-]+", "_", name or request.node.name)[:40]
        srv = Server(workroot, label, overrides)
        made.append(srv)
        _register(request, srv)
        if start:
            srv.start()
        return srv

    yield factory
    errors = []
    for srv in made:
        try:
            srv.finish()
        except BaseException as e:  # report every server, not just the first
            errors.append(f"{srv.dir}: {e}")
    if errors:
        pytest.fail("\n".join(errors))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        _FAILURES.append(item.nodeid)
        for srv in getattr(item, "_sealmail_servers", []):
            rep.sections.append((f"sealmail log {srv.log_path}", srv.log_tail(80)))


def pytest_terminal_summary(terminalreporter):
    for root in _KEPT:
        terminalreporter.write_line(f"sealmail e2e data directories and logs kept in {root}")
