"""benchlib - what the benchmarks in bench/ share.

Helpers to run commands and wait for SMTP banners with bounded loops, to
count files, to describe the disk and measure its fdatasync rate with the
shared ../shared/peers/fsync_rate.c, and to start and stop a sealmail
daemon from a config written into a temp dir.  Every loop here is bounded
in count and in time.  A script sets PROG (its name, for error messages)
before calling die().
"""

import os
import re
import signal
import socket
import subprocess
import tempfile
import time

PROG = "bench"


def log(msg):
    print(msg, flush=True)


def die(msg, code=1):
    log(f"{PROG}: {msg}")
    raise SystemExit(code)


def free_port(first, taken):
    """First port >= first (at most 100 tried) that 127.0.0.1 can bind; added to taken."""
    for p in range(first, first + 100):
        if p in taken:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            taken.add(p)
            return p
        except OSError:
            continue
        finally:
            s.close()
    die(f"no free port near {first}")


def port_in_use(port):
    """True when something accepts connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def answers_220(port, timeout=1.0, bye=b"QUIT\r\n"):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            data = s.recv(512)
            ok = data.startswith(b"220")
            try:
                s.sendall(bye)
                s.recv(512)
            except OSError:
                pass
            return ok
    except OSError:
        return False


def wait_220(port, seconds, alive=lambda: True):
    end = time.monotonic() + seconds
    while time.monotonic() < end:          # bounded by time
        if answers_220(port):
            return True
        if not alive():
            return False
        time.sleep(0.2)
    return False


def run(cmd, timeout=60, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        die(f"command failed (rc={r.returncode}): {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r


def count_files(d, match=None):
    """Regular files directly in d (whose names match the regex, if given)."""
    try:
        with os.scandir(d) as it:
            return sum(1 for e in it if e.is_file(follow_symlinks=False)
                       and (match is None or match.fullmatch(e.name)))
    except FileNotFoundError:
        return 0


def count_spool(d):
    """Messages in sealmail's spool/incoming d: files named by a queue id (16
    hex digits), plus the complete records of segments (seg-XXXXXXXX, see
    src/store/spoolseg.h; a torn tail ends a scan) not listed in their .done."""
    import hashlib
    import struct
    import zlib

    def sum_ok(magic, rec, tail):
        # "SGR2" records (version 3) end in a CRC-32, "SGR1" ones in a BLAKE2b-256
        if magic == 0x53475232:
            return tail[:4] == struct.pack(">I", zlib.crc32(rec))
        return hashlib.blake2b(rec, digest_size=32).digest() == tail
    n = count_files(d, re.compile(r"[0-9a-f]{16}"))
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return n
    for name in names:
        if not re.fullmatch(r"seg-[0-9a-f]{8}", name):
            continue
        try:
            with open(os.path.join(d, name), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        # versions 2 and 3 carry the sealed key-chain seed: 112 bytes
        start = {b"SEALSG\0\1": 32, b"SEALSG\0\2": 112, b"SEALSG\0\3": 112}.get(data[:8])
        if start is None or len(data) < start:
            continue
        seg, nonce = struct.unpack(">I", data[8:12])[0], data[16:24]
        done = set()
        try:
            with open(os.path.join(d, name + ".done"), "rb") as f:
                marks = f.read()
            for i in range(0, len(marks) - 15, 16):
                s_, t_ = struct.unpack(">II", marks[i:i + 8])
                if s_ == seg and marks[i + 8:i + 16] == nonce:
                    done.add(t_)
        except FileNotFoundError:
            pass
        off, tickets = start, set()
        while off + 24 <= len(data):
            magic, length, s_, t_ = struct.unpack(">IIII", data[off:off + 16])
            end = off + 24 + length
            sum_len = {0x53475232: 4, 0x53475231: 32}.get(magic)
            if (sum_len is None or s_ != seg or data[off + 16:off + 24] != nonce
                    or end + sum_len > len(data)
                    or not sum_ok(magic, data[off:end], data[end:end + sum_len])):
                break
            tickets.add(t_)
            off = end + sum_len
        n += len(tickets - done)
    return n


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return f"({e})"


def fs_of(path):
    """(device, file system type) of the mount holding path."""
    best = ("?", "?")
    real = os.path.realpath(path)
    with open("/proc/mounts") as f:
        mounts = [line.split() for line in f]
    blen = -1
    for m in mounts:
        mp = m[1]
        if (real == mp or real.startswith(mp.rstrip("/") + "/")) and len(mp) > blen:
            best, blen = (m[0], m[2]), len(mp)
    return best


def make_tmp(prefix):
    """A new temp dir under /tmp that service users may traverse: (path, "fstype on dev")."""
    tmp = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(tmp, 0o755)                   # sealmail, postfix and dovecot users traverse it
    dev, fstype = fs_of(tmp)
    if fstype in ("tmpfs", "ramfs"):
        log(f"WARNING: {tmp} is on {fstype}: fsync is free, figures mean little")
    return tmp, f"{fstype} on {dev}"


def loadavg():
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except (OSError, ValueError, IndexError):
        return -1.0


def fmt_rate(x):
    return "-" if x is None else f"{x:.0f}"


def fsync_rate(tmp, peers, secs=5):
    """The disk's serial 4 KiB write + fdatasync rate in tmp: (ops/s, p50 us, p99 us)."""
    exe = os.path.join(tmp, "fsync_rate")
    if not os.path.exists(exe):
        run(["gcc", "-O2", "-o", exe, os.path.join(peers, "fsync_rate.c")])
    d = os.path.join(tmp, "fsync")
    os.makedirs(d, exist_ok=True)
    r = run([exe, d, str(secs), "fdatasync", "1000000"], timeout=secs + 30)
    m = re.search(r"ops_per_s=(\d+).*p50_us=(\d+) p99_us=(\d+)", r.stdout)
    if not m:
        die("cannot parse fsync_rate output: " + r.stdout)
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


class Sealmail:
    """`sealmail serve` on 127.0.0.1 with its data and logs under base/."""

    def __init__(self, binary, base, port, port_s, port_sub, imap_ports, extra_conf=""):
        """imap_ports: free ports for IMAP, IMAPS, POP3, POP3S (imapd runs, idle)."""
        os.makedirs(base)
        os.chmod(base, 0o755)              # the sealmail user traverses it
        self.port = port
        self.data = os.path.join(base, "var")
        self.conf = os.path.join(base, "sealmail.conf")
        self.log = os.path.join(base, "sealmail.log")
        self.spool = os.path.join(self.data, "spool", "incoming")
        self.cmd = [binary, "--config", self.conf]
        self.proc = None
        zone = os.path.join(base, "zone.txt")
        with open(zone, "w") as f:
            f.write("; empty: every name is NXDOMAIN, nothing leaves the machine\n")
        os.chmod(zone, 0o644)
        with open(self.conf, "w") as f:
            f.write(f"""[server]
data_dir = {self.data}
user = sealmail
hostname = bench.local
[log]
level = warn
[smtp]
listen = 127.0.0.1:{port}
smtps_listen = 127.0.0.1:{port_s}
submission_listen = 127.0.0.1:{port_sub}
max_connections_per_client = 1000
[imap]
listen = 127.0.0.1:{imap_ports[0]}
imaps_listen = 127.0.0.1:{imap_ports[1]}
pop3_listen = 127.0.0.1:{imap_ports[2]}
pop3s_listen = 127.0.0.1:{imap_ports[3]}
[dns]
zone_file = {zone}
trust_anchor =
{extra_conf}""")

    def start(self):
        self.proc = subprocess.Popen(self.cmd + ["serve"], stdin=subprocess.DEVNULL,
                                     stdout=open(self.log + ".out", "w"),
                                     stderr=open(self.log, "w"))
        if not wait_220(self.port, 30, alive=self.alive):
            die(f"sealmail does not answer 220 on 127.0.0.1:{self.port} "
                f"(exit status {self.proc.poll()})")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cli(self, args, stdin=None):
        """Run a sealmail subcommand against this daemon's config; dies on failure."""
        r = subprocess.run(self.cmd + args, input=stdin, capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            die(f"'sealmail {' '.join(args)}' failed (rc={r.returncode}):\n"
                f"{r.stdout}{r.stderr}")
        return r.stdout

    def version(self):
        return run(self.cmd + ["version"], check=False).stdout.strip() or "?"

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log("sealmail did not stop within 20 s of SIGTERM; sending SIGKILL")
                self.proc.kill()
                self.proc.wait(timeout=10)


# ------------------------------------------------------------------ processes
def children_map():
    """{parent pid: [child pids]} of every process now."""
    kids = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
            ppid = int(st.rsplit(")", 1)[1].split()[1])
            kids.setdefault(ppid, []).append(int(p))
        except (OSError, IndexError, ValueError):
            pass
    return kids


def tree(root):
    """root and all its descendants (bounded)."""
    kids = children_map()
    out, todo = [], [root]
    while todo and len(out) < 100000:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def sealmail_role_pid(master, role):
    """The child of sealmail's master whose argv has `_role ROLE`, or None."""
    for p in children_map().get(master, []):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            if b"_role" in args and args[args.index(b"_role") + 1] == role.encode():
                return p
        except (OSError, IndexError):
            pass
    return None


def cpu_of(pids, reaped_by=None):
    """User + system CPU seconds of pids; with reaped_by, also what that
    process's reaped children used (cutime + cstime)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for p in pids:
        if p is None:
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()
            total += int(st[11]) + int(st[12])
            if p == reaped_by:
                total += int(st[13]) + int(st[14])
        except (OSError, IndexError, ValueError):
            pass
    return total / tick
