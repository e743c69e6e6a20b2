#!/usr/bin/env python3
"""dovecot-expect.py — regenerate the golden ENVELOPE/BODYSTRUCTURE/BODY files
from Dovecot, the reference IMAP server (see README.md in this directory).

For each NAME.eml given (default: all here) the message is put alone into a
fresh Maildir under a temporary directory, Dovecot's imap binary is run on
stdin/stdout in PREAUTH mode (no daemon, no listener, no network) as user
nobody, and "FETCH 1 (ENVELOPE BODYSTRUCTURE BODY)" is answered.  Each value
is written byte for byte (literals included, no trailing newline) to
NAME.envelope, NAME.bodystructure and NAME.body.

Fields listed in intentional.txt ("NAME field ..." lines) are where sealmail
deliberately differs: Dovecot's value goes to NAME.dovecot.FIELD instead and
the hand-checked NAME.FIELD is left alone.

Needs root and Debian's dovecot-imapd (tested with 2.3.19.1).
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
IMAP = "/usr/lib/dovecot/imap"
FIELDS = ("envelope", "bodystructure", "body")
CONF = """protocols = imap
ssl = no
log_path = {d}/dovecot.log
mail_location = maildir:~/Maildir
base_dir = {d}/run
state_dir = {d}/state
"""


def fetch(path):
    """Dovecot's answer for the message file at path: {field: bytes}."""
    d = tempfile.mkdtemp(prefix="dovecot-expect-")
    try:
        for sub in ("home/Maildir/cur", "home/Maildir/new", "home/Maildir/tmp", "run", "state"):
            os.makedirs(os.path.join(d, sub))
        with open(os.path.join(d, "dovecot.conf"), "w") as f:
            f.write(CONF.format(d=d))
        shutil.copyfile(path, os.path.join(d, "home/Maildir/cur/1.msg:2,"))
        subprocess.run(["chown", "-R", "nobody", d], check=True)
        os.chmod(d, 0o755)
        cmd = b"a select INBOX\r\nb fetch 1 (ENVELOPE BODYSTRUCTURE BODY)\r\nc logout\r\n"
        out = subprocess.run(["runuser", "-u", "nobody", "--", "env", "USER=tester",
                              "HOME=" + d + "/home", IMAP, "-c", d + "/dovecot.conf"],
                             input=cmd, capture_output=True, check=True).stdout
        return parse(out)
    finally:
        shutil.rmtree(d)


def value_end(buf, i):
    """Index just past the IMAP value (atom, string, literal or list) at buf[i]."""
    depth = 0
    while True:
        c = buf[i:i + 1]
        if c == b" ":
            i += 1
            continue
        if c == b'"':
            i += 1
            while buf[i:i + 1] != b'"':
                i += 2 if buf[i:i + 1] == b"\\" else 1
            i += 1
        elif c == b"{":
            j = buf.index(b"}", i)
            i = j + 3 + int(buf[i + 1:j])
        elif c == b"(":
            depth += 1
            i += 1
            continue
        elif c == b")":
            depth -= 1
            i += 1
        else:
            while buf[i:i + 1] not in (b" ", b")", b"(", b"", b"\r"):
                i += 1
        if depth == 0:
            return i


def parse(out):
    i = out.index(b"* 1 FETCH (") + len(b"* 1 FETCH (")
    res = {}
    for _ in FIELDS:
        sp = out.index(b" ", i)
        name = out[i:sp].decode().lower()
        end = value_end(out, sp + 1)
        res[name] = out[sp + 1:end]
        i = end + 1
    return res


def intentional():
    keep = {}
    with open(os.path.join(HERE, "intentional.txt")) as f:
        for line in f:
            words = line.split("#")[0].split()
            if words:
                keep[words[0]] = set(words[1:])
    return keep


def main(paths):
    keep = intentional()
    for path in paths or sorted(glob.glob(os.path.join(HERE, "*.eml"))):
        name = os.path.basename(path)[:-len(".eml")]
        res = fetch(path)
        for field in FIELDS:
            target = name + (".dovecot." if field in keep.get(name, ()) else ".") + field
            with open(os.path.join(HERE, target), "wb") as f:
                f.write(res[field])
        print(name, "kept: " + " ".join(sorted(keep[name])) if name in keep else "")


if __name__ == "__main__":
    main(sys.argv[1:])
