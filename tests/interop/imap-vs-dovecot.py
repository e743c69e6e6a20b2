#!/usr/bin/python3
"""imap-vs-dovecot.py — run the same IMAP and POP3 sessions against sealmail and
against a private Dovecot, and show, command by command, where they answer
differently.

    sudo /usr/bin/python3 tests/interop/imap-vs-dovecot.py [options]

Both servers are started here, on free loopback ports, with everything under a
temporary directory (removed at the end unless --keep).  Dovecot gets its own
configuration file (base_dir, state_dir, log, Maildir all in that directory); the
system's /etc/dovecot and any Dovecot already running are left alone.  The same
messages are APPENDed to both, then every scripted session (sessions.py beside
this file) is played against sealmail and then against Dovecot, byte for byte
the same commands.  Answers are normalised (normalise.py) where the servers may
legitimately differ, and every command whose normalised answers differ is shown
side by side with the verdict recorded for it in verdicts.txt.

See README.md in this directory.  Needs root (Dovecot's master, sealmail's
service user), Debian's dovecot-imapd and dovecot-pop3d, and a built sealmail.
"""
import argparse
import base64
import difflib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.dont_write_bytecode = True   # keep the source tree clean
sys.path.insert(0, str(HERE))

import normalise  # noqa: E402
import sessions   # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from conftest import free_ports  # noqa: E402  the e2e tests' choice of free loopback ports

USER = "interop@example.test"
PASSWORD = "interop password 1"
DOMAIN = "example.test"
IO_TIMEOUT = 10.0       # seconds one command may take to be answered
START_TIMEOUT = 60.0


# --------------------------------------------------------------------------
# ports and processes

def wait_port(port, proc, what, timeout=START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(5)
                if s.recv(512):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not greet on 127.0.0.1:{port} within {timeout}s")


class Server:
    """Common part: a process group we started and stop ourselves."""
    name = "?"

    def __init__(self, workdir):
        self.dir = workdir
        self.proc = None
        self.imap_port = self.pop3_port = None

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        # children of this group only (started with start_new_session)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


DOVECOT_CONF = """\
# private Dovecot for tests/interop/imap-vs-dovecot.py: nothing outside {d}
protocols = imap pop3
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
instance_name = dovecot-interop-{port}
log_path = {d}/dovecot.log
# TLS only so that STARTTLS / STLS are announced as sealmail announces them;
# the sessions themselves stay in clear (plaintext allowed, as in sealmail's
# plaintext_loopback)
ssl = yes
ssl_cert = <{d}/tls.pem
ssl_key = <{d}/tls.key
ssl_dh = </usr/share/dovecot/dh.pem
disable_plaintext_auth = no
auth_mechanisms = plain
auth_failure_delay = 0
login_greeting = interop Dovecot ready.
mail_location = maildir:{d}/mail/%u
mail_max_userip_connections = 100
pop3_uidl_format = %08Xu%08Xv
mail_plugins = $mail_plugins quota
plugin {{
  quota = count:User quota
  quota_rule = *:storage=100M
  quota_vsizes = yes
}}
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
  # sealmail creates these six, all subscribed, the five with their special use
  mailbox INBOX {{
    auto = subscribe
  }}
{mailboxes}}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""


# sealmail's standard folders other than INBOX, each with its special use
SPECIAL_USE = ("Drafts", "Sent", "Trash", "Junk", "Archive")
MAILBOXES = "".join(f"  mailbox {n} {{\n    special_use = \\{n}\n    auto = subscribe\n  }}\n"
                    for n in SPECIAL_USE)


class Dovecot(Server):
    name = "dovecot"

    def start(self):
        d = self.dir
        self.imap_port, self.pop3_port = free_ports(2)
        for sub in ("run", "state", "mail", "home"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o755)
        conf = d / "dovecot.conf"
        conf.write_text(DOVECOT_CONF.format(d=d, imap=self.imap_port, pop3=self.pop3_port,
                                            port=self.imap_port, mailboxes=MAILBOXES))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=dovecot.interop.test", "-keyout", str(d / "tls.key"),
                        "-out", str(d / "tls.pem")], check=True, capture_output=True)
        (d / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        os.chmod(d / "passwd", 0o644)
        subprocess.run(["chown", "-R", "nobody:nogroup", str(d / "mail"), str(d / "home")],
                       check=True)
        self.version = subprocess.run(["dovecot", "--version"], capture_output=True,
                                      text=True).stdout.strip()
        log = open(d / "dovecot.stdout", "ab")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        wait_port(self.imap_port, self.proc, "dovecot")
        wait_port(self.pop3_port, self.proc, "dovecot (pop3)")

    def log_tail(self):
        try:
            return "\n".join((self.dir / "dovecot.log").read_text().splitlines()[-30:])
        except OSError:
            return ""


class Sealmail(Server):
    name = "sealmail"

    def __init__(self, workdir, binary):
        super().__init__(workdir)
        self.bin = binary

    def cli(self, *args, input=None):
        r = subprocess.run([self.bin, "--config", str(self.config)] + list(args),
                           input=(input or "").encode(), capture_output=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"sealmail {' '.join(args)} failed ({r.returncode}):\n"
                               f"{r.stdout.decode()}{r.stderr.decode()}")
        return r.stdout.decode()

    def start(self):
        d = self.dir
        os.chmod(d, 0o755)
        smtp, self.imap_port, self.pop3_port = free_ports(3)
        self.config = d / "sealmail.conf"
        self.config.write_text(textwrap.dedent(f"""\
            [server]
            hostname = mx.interop.test
            data_dir = {d}/data
            user = sealmail
            smtpd_workers = 1
            shutdown_grace = 2

            [log]
            level = info
            syslog = no

            [spool]
            hold = no

            [mailbox]
            argon2_ops = 2
            argon2_memory = 19M

            [smtp]
            listen = 127.0.0.1:{smtp}
            smtps_listen =
            submission_listen =

            [imap]
            listen = 127.0.0.1:{self.imap_port}
            imaps_listen =
            pop3_listen = 127.0.0.1:{self.pop3_port}
            pop3s_listen =
            plaintext_loopback = yes
            """))
        os.chmod(self.config, 0o644)
        log = open(d / "serve.log", "ab")
        self.proc = subprocess.Popen([self.bin, "--config", str(self.config), "serve"],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        wait_port(self.imap_port, self.proc, "sealmail")
        self.cli("domain", "add", DOMAIN)
        self.cli("user", "add", USER, "--quota", "100M", "--password-stdin",
                 input=PASSWORD + "\n")
        # the imapd learns about the new account on its own schedule: bounded wait
        deadline = time.monotonic() + 30
        while True:
            c = IMAPConn(self.imap_port)
            c.read_greeting()
            lines, _ = c.command(b"w1", [b"w1 LOGIN " + normalise.quote(USER) + b" " +
                                         normalise.quote(PASSWORD) + b"\r\n"])
            c.close()
            if lines and lines[-1].startswith(b"w1 OK"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"sealmail never accepted the new account: {lines}")
            time.sleep(0.5)

    def log_tail(self):
        try:
            return "\n".join((self.dir / "serve.log").read_text().splitlines()[-30:])
        except OSError:
            return ""


# --------------------------------------------------------------------------
# raw clients

LITERAL_END = re.compile(rb"~?\{(\d+)\+?\}$")


class Closed(Exception):
    pass


class IMAPConn:
    """Exact bytes out; whole response lines (literals included) in."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        self.buf = b""
        self.closed = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:
            self.closed = True
            raise Closed(str(e))

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError
        except OSError as e:
            self.closed = True
            raise Closed(str(e))
        if not chunk:
            self.closed = True
            raise Closed("closed by server")
        self.buf += chunk

    def line(self, deadline):
        """One logical response line: a text line, and after each {n} the n
        octets of the literal and the rest of the line.  Without the CRLF."""
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                if len(self.buf) > 1 << 24:
                    raise Closed("response line over 16 MiB")
                self._fill(deadline)
            piece, self.buf = self.buf.split(b"\r\n", 1)
            out += piece
            m = LITERAL_END.search(piece)
            if not m:
                return out
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill(deadline)
            out += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]

    def read_greeting(self):
        return self.line(time.monotonic() + IO_TIMEOUT)

    def command(self, tag, parts, timeout=IO_TIMEOUT, between=None, wait_for=None,
                wait_time=0.0):
        """Send parts one by one; before each further part a continuation
        ('+') must come.  Returns (lines, how): how is 'tagged', 'timeout',
        'closed', 'continuation' (a '+' after the last part) or 'quiet' (no tag
        given: everything that came within timeout)."""
        lines = []
        deadline = time.monotonic() + timeout
        try:
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                self.send(part)
                while True:
                    try:
                        line = self.line(deadline)
                    except TimeoutError:
                        if tag is None:
                            return lines, "quiet"
                        lines.append(b"<no answer within %ds>" % timeout)
                        return lines, "timeout"
                    lines.append(line)
                    if tag is not None and line.startswith(tag + b" "):
                        if not last:
                            lines.append(b"<the rest of the command was not sent>")
                        return lines, "tagged"
                    if line.startswith(b"+"):
                        if last:
                            return lines, "continuation"
                        if between:
                            between()
                        if wait_for is not None:
                            wdl = time.monotonic() + wait_time
                            while True:
                                try:
                                    ln = self.line(wdl)
                                except TimeoutError:
                                    break
                                lines.append(ln)
                                if re.search(wait_for, ln):
                                    # whatever else comes within a moment
                                    wdl = min(wdl, time.monotonic() + 0.5)
                        break
        except Closed:
            lines.append(b"<connection closed>")
            return lines, "closed"
        return lines, "done"


class POP3Conn(IMAPConn):
    def pop(self, data, multi, timeout=IO_TIMEOUT):
        """Send one command line; read its answer (a multi-line one to '.')."""
        deadline = time.monotonic() + timeout
        lines = []
        try:
            if data is not None:
                self.send(data)
            first = self.pop_line(deadline)
            lines.append(first)
            if multi and first.startswith(b"+OK"):
                while True:
                    ln = self.pop_line(deadline)
                    lines.append(ln)
                    if ln == b".":
                        break
        except TimeoutError:
            lines.append(b"<no answer within %ds>" % timeout)
        except Closed:
            lines.append(b"<connection closed>")
        return lines

    def pop_line(self, deadline):
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line


# --------------------------------------------------------------------------
# playing the scripts

class Context:
    """What a script needs about the server it is played against."""

    def __init__(self, server):
        self.server = server
        # fixed values, and values captured from answers (UIDVALIDITY, HIGHESTMODSEQ, ...)
        self.vars = {"USER": USER, "PASSWORD": PASSWORD,
                     "PLAIN": base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode(),
                     "BADPLAIN": base64.b64encode(f"\0{USER}\0wrong".encode()).decode()}
        self.run_start = time.time()

    def capture(self, line):
        for key in (b"UIDVALIDITY", b"HIGHESTMODSEQ", b"UIDNEXT"):
            m = re.search(rb"\[" + key + rb" (\d+)\]", line)
            if m:
                self.vars[key.decode()] = m.group(1).decode()
        m = re.match(rb"\* (\d+) FETCH \(.*MODSEQ \((\d+)\)", line)
        if m:
            self.vars["MODSEQ_" + m.group(1).decode()] = m.group(2).decode()

    def fill(self, data):
        def sub(m):
            return self.vars.get(m.group(1).decode(), "0").encode()
        return re.sub(rb"\$\{([A-Z0-9_]+)\}", sub, data)

    def login_line(self, tag=b"L"):
        return (tag + b" LOGIN " + normalise.quote(USER) + b" " +
                normalise.quote(PASSWORD) + b"\r\n")

    def helper(self):
        """A second logged-in IMAP connection (for IDLE and concurrency)."""
        c = IMAPConn(self.server.imap_port)
        c.read_greeting()
        lines, how = c.command(b"h0", [self.login_line(b"h0")])
        if how != "tagged" or not lines[-1].startswith(b"h0 OK"):
            raise RuntimeError(f"{self.server.name}: helper login failed: {lines}")
        return c


def play_session(sess, server):
    """Run one scripted session; returns [(step, [lines])]."""
    ctx = Context(server)
    out = []
    if sess.proto == "pop3":
        conn = POP3Conn(server.pop3_port)
        greeting = conn.pop(None, False)
        out.append((sessions.POP_GREETING, greeting))
        for step in sess.steps:
            if conn.closed:
                out.append((step, [b"<not run: connection closed>"]))
                continue
            data = step.data(ctx) if callable(step.data) else step.data
            lines = conn.pop(data, step.multi, timeout=step.timeout)
            out.append((step, lines))
        conn.close()
        return out

    conn = IMAPConn(server.imap_port)
    try:
        greeting = [conn.read_greeting()]
    except (TimeoutError, Closed) as e:
        greeting = [b"<no greeting: %s>" % str(e).encode()]
    out.append((sessions.GREETING, greeting))
    if sess.login:
        lines, _ = conn.command(b"L", [ctx.login_line()])
        out.append((sessions.LOGIN, lines))
    helper = [None]

    def get_helper():
        if helper[0] is None:
            helper[0] = ctx.helper()
        return helper[0]
    ctx.get_helper = get_helper

    for step in sess.steps:
        if step.action is not None:     # something done on another connection first
            step.action(ctx)
        if conn.closed:
            out.append((step, [b"<not run: connection closed>"]))
            continue
        data = ctx.fill(step.data(ctx) if callable(step.data) else step.data)
        parts = step.parts(data) if step.parts else [data]
        between = (lambda s=step: s.between(ctx)) if step.between else None
        lines, how = conn.command(step.tag, parts, timeout=step.timeout, between=between,
                                  wait_for=step.wait_for, wait_time=step.wait_time)
        for ln in lines:
            ctx.capture(ln)
        out.append((step, lines))
        if how == "continuation":
            # the server waits for a literal we do not send: this connection is spent
            conn.close()
            lines.append(b"<client closed the connection>")
    conn.close()
    if helper[0] is not None:
        helper[0].close()
    return out


# --------------------------------------------------------------------------
# showing the differences

def render(line):
    """Bytes of a response line as one printable line: CR, LF, controls and
    bytes that are not UTF-8 escaped."""
    text = line.decode("utf-8", "backslashreplace")
    return (text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
            .replace("\0", "\\x00"))


def wrap(text, width):
    if len(text) <= width:
        return [text]
    return [text[i:i + width] for i in range(0, len(text), width)]


def side_by_side(a, b, width):
    """Lines of a two-column view of a and b, '|' where equal, '*' where not."""
    rows = []
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        la, lb = a[i1:i2], b[j1:j2]
        for k in range(max(len(la), len(lb))):
            x = la[k] if k < len(la) else ""
            y = lb[k] if k < len(lb) else ""
            mark = "|" if op == "equal" else "!"
            wx, wy = wrap(x, width), wrap(y, width)
            for r in range(max(len(wx), len(wy))):
                cx = wx[r] if r < len(wx) else ""
                cy = wy[r] if r < len(wy) else ""
                rows.append(f"{cx:<{width}} {mark if r == 0 else ' '} {cy}")
    return rows


def load_verdicts(path):
    """({session/tag: (verdict, [cause ids])}, {cause id: (verdict, title)})."""
    verdicts, causes = {}, {}
    if not path.exists():
        return verdicts, causes
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if line.startswith("@"):
            cid, verdict, title = line[1:].split(None, 2)
            causes[cid] = (verdict, title)
            continue
        key, verdict, *ids = line.split()
        verdicts[key] = (verdict, ",".join(ids).split(",") if ids else [])
    return verdicts, causes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sealmail", default=str(ROOT / "build" / "sealmail"),
                    help="the sealmail binary (default: build/sealmail)")
    ap.add_argument("--only", action="append", default=[],
                    help="run only the sessions whose name contains this (repeatable; "
                         "'load' always runs)")
    ap.add_argument("--all", action="store_true", help="also show commands answered alike")
    ap.add_argument("--raw", action="store_true",
                    help="show the answers as received, not normalised")
    ap.add_argument("--width", type=int, default=78, help="width of one column")
    ap.add_argument("--json", help="write every command and both answers (raw and "
                                   "normalised) to this file")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory (configurations, logs, mail)")
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 if a difference is not in verdicts.txt or a listed one is gone")
    ap.add_argument("--verdicts", default=str(HERE / "verdicts.txt"),
                    help="known differences and their verdicts (default: verdicts.txt)")
    args = ap.parse_args()

    if os.geteuid() != 0:
        sys.exit("run as root: Dovecot's master and sealmail's service user need it")
    if not os.access(args.sealmail, os.X_OK):
        sys.exit(f"{args.sealmail}: not an executable (build sealmail first)")
    if not shutil.which("dovecot") or not os.path.exists("/usr/lib/dovecot/pop3"):
        sys.exit("needs Debian's dovecot-imapd and dovecot-pop3d")

    verdicts = load_verdicts(Path(args.verdicts))
    tmp = Path(tempfile.mkdtemp(prefix="interop-", dir="/tmp"))
    os.chmod(tmp, 0o755)
    (tmp / "sealmail").mkdir()
    (tmp / "dovecot").mkdir()
    servers = [Sealmail(tmp / "sealmail", os.path.abspath(args.sealmail)),
               Dovecot(tmp / "dovecot")]
    results = []
    try:
        for s in servers:
            s.start()
        print(f"sealmail: {args.sealmail}, IMAP 127.0.0.1:{servers[0].imap_port}, "
              f"POP3 :{servers[0].pop3_port}")
        print(f"dovecot {servers[1].version}: IMAP 127.0.0.1:{servers[1].imap_port}, "
              f"POP3 :{servers[1].pop3_port}, config {servers[1].dir}/dovecot.conf")
        chosen = [s for s in sessions.SESSIONS
                  if s.name == "load" or not args.only or
                  any(o in s.name for o in args.only)]
        for sess in chosen:
            per_server = [play_session(sess, s) for s in servers]
            results.append((sess, per_server))
    finally:
        for s in servers:
            s.stop()

    problems = report(results, verdicts, args)
    if args.keep:
        print(f"\nkept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.strict and problems:
        sys.exit(1)


def report(results, verdicts_causes, args):
    verdicts, causes = verdicts_causes
    norm = normalise.Normaliser()
    counts = {"same": 0, "different": 0}
    by_verdict, by_cause = {}, {}
    unknown, dump, caps, seen_keys = [], [], {}, set()
    for sess, (sm, dc) in results:
        print(f"\n=== session {sess.name}: {sess.title}")
        for (step, a_raw), (_, b_raw) in zip(sm, dc):
            key = f"{sess.name}/{step.tag.decode() if step.tag else step.label}"
            seen_keys.add(key)
            norm.keep_recent = getattr(sess, "keep_recent", False)
            a = [y for y in (norm.line(x, sess.proto, step) for x in a_raw) if y is not None]
            b = [y for y in (norm.line(x, sess.proto, step) for x in b_raw) if y is not None]
            a, b = norm.response(a, step), norm.response(b, step)
            for name, raw in (("sealmail", a_raw), ("dovecot", b_raw)):
                for ln in raw:
                    c = normalise.capabilities(ln)
                    if c is not None:
                        caps.setdefault(name, {})[key] = c
            same = a == b
            counts["same" if same else "different"] += 1
            shown = render_cmd(step)
            verdict, ids = verdicts.get(key, ("UNJUDGED", []))
            dump.append({"key": key, "command": shown, "same": same,
                         "verdict": None if same else verdict, "causes": [] if same else ids,
                         "sealmail": [render(x) for x in a_raw],
                         "dovecot": [render(x) for x in b_raw],
                         "sealmail_norm": a, "dovecot_norm": b})
            if not same:
                by_verdict[verdict] = by_verdict.get(verdict, 0) + 1
                for i in ids:
                    by_cause[i] = by_cause.get(i, 0) + 1
                if verdict == "UNJUDGED":
                    unknown.append(key)
            if same and not args.all:
                continue
            print(f"\n--- {key}  " + ("same" if same else f"DIFFERENT [{verdict}]"))
            if not same:
                for i in ids:
                    print(f"    {i}: {causes.get(i, ('?', 'not in verdicts.txt'))[1]}")
            print(f"C: {shown}")
            left = [render(x) for x in a_raw] if args.raw else a
            right = [render(x) for x in b_raw] if args.raw else b
            print(f"{'sealmail':<{args.width}}   dovecot")
            for row in side_by_side(left, right, args.width):
                print(row)
    differing = {d["key"] for d in dump if not d["same"]}
    stale = [k for k in verdicts if k in seen_keys and k not in differing]

    print("\n=== capabilities (normalised away above; where the lists differ)")
    seen = {}
    for when in sorted({k for v in caps.values() for k in v}):
        s = caps.get("sealmail", {}).get(when)
        d = caps.get("dovecot", {}).get(when)
        if s is None or d is None:
            continue
        diff = (" ".join(sorted(s - d)) or "-", " ".join(sorted(d - s)) or "-")
        seen.setdefault(diff, []).append(when)
    for (only_s, only_d), whens in seen.items():
        print(f"{' '.join(whens[:4])}{' ...' if len(whens) > 4 else ''} ({len(whens)} answers):\n"
              f"  only sealmail: {only_s}\n  only dovecot:  {only_d}")

    print(f"\n=== {counts['same'] + counts['different']} commands: {counts['same']} answered "
          f"alike, {counts['different']} differently")
    for v in sorted(by_verdict):
        print(f"  {v}: {by_verdict[v]}")
    print("by cause (commands whose difference it explains, in part or whole):")
    for cid in sorted(by_cause, key=lambda c: (c[0], int(c[1:]) if c[1:].isdigit() else 0)):
        v, title = causes.get(cid, ("?", "not in verdicts.txt"))
        print(f"  {cid:<4} {by_cause[cid]:>3}  {v:<15} {title}")
    if unknown:
        print("not in verdicts.txt (UNJUDGED): " + " ".join(unknown))
    if stale:
        print("in verdicts.txt but now answered alike (fixed? delete the line): " + " ".join(stale))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dump, f, indent=1, ensure_ascii=False)
    return len(unknown) + len(stale)


def render_cmd(step):
    if step.label and step.data is None:
        return f"({step.label})"
    data = step.shown if step.shown else step.data
    if callable(data):
        return f"({step.label})"
    return render(data.rstrip(b"\r\n"))


if __name__ == "__main__":
    main()
