#!/usr/bin/env python3
"""dovecot-expect.py — regenerate the golden FETCH BODY[section]/BINARY files
from Dovecot, the reference IMAP server (see README.md in this directory).

For each message (NAME.eml here and in ../mime/, or the paths given) the
message is put alone into a fresh Maildir under a temporary directory and
Dovecot's imap binary is run on stdin/stdout in PREAUTH mode as user nobody
(no daemon, no listener, nothing on the network).  BODYSTRUCTURE gives the
part numbers; then one FETCH per item asks for BODY[], HEADER, TEXT,
HEADER.FIELDS (From Subject), HEADER.FIELDS.NOT (Received), every part N,
N.MIME, N.HEADER/N.TEXT/N.HEADER.FIELDS..., BINARY[N] and BINARY.SIZE[N],
sections that do not exist and a few partials.  Each answer is written to
NAME.fetch as one record:

    ITEM {n}\\n<n bytes as Dovecot sent them>\\n      a literal or ~{n} literal8
    ITEM = n\\n                                      BINARY.SIZE
    ITEM NO [CODE]\\n   ITEM BAD\\n   ITEM BYE\\n      errors

Items listed in intentional.txt ("NAME ITEM" lines) are where sealmail
deliberately differs: Dovecot's record goes to NAME.dovecot.fetch for
reference and NAME.fetch gets sealmail's answer, which comes from
`test-mime-section --dump` (pass its path with --sealmail) and must be
checked by hand against the RFCs (README.md says how each was checked).

Needs root and Debian's dovecot-imapd (tested with 2.3.19.1).
Usage: python3 dovecot-expect.py --sealmail BUILD/tests/unit/test-mime-section [NAME.eml ...]
"""
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MIME = os.path.join(HERE, "..", "mime")
# the private Dovecot instance is configured as for the mime goldens
_spec = importlib.util.spec_from_file_location("mime_expect", os.path.join(MIME, "dovecot-expect.py"))
_mime = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mime)
IMAP, CONF = _mime.IMAP, _mime.CONF
FIELDS = "HEADER.FIELDS (From Subject)"
FIELDS_NOT = "HEADER.FIELDS.NOT (Received)"


class Session:
    """Dovecot's imap process over one Maildir holding the message."""

    def __init__(self, path):
        self.d = tempfile.mkdtemp(prefix="dovecot-section-")
        for sub in ("home/Maildir/cur", "home/Maildir/new", "home/Maildir/tmp", "run", "state"):
            os.makedirs(os.path.join(self.d, sub))
        with open(os.path.join(self.d, "dovecot.conf"), "w") as f:
            f.write(CONF.format(d=self.d))
        shutil.copyfile(path, os.path.join(self.d, "home/Maildir/cur/1.msg:2,S"))
        subprocess.run(["chown", "-R", "nobody", self.d], check=True)
        os.chmod(self.d, 0o755)

    def run(self, commands):
        """Answers to each command, run one after the other in one imap
        process: (untagged bytes, tagged line), or None for the command at
        which the process said BYE and the ones after it."""
        proc = subprocess.Popen(["runuser", "-u", "nobody", "--", "env", "USER=tester",
                                 "HOME=" + self.d + "/home", IMAP, "-c",
                                 self.d + "/dovecot.conf"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        answers = []
        try:
            ask(proc, b"s", b"SELECT INBOX")
            for i, c in enumerate(commands):
                reply = ask(proc, b"c%d" % i, c.encode())
                if reply is None:
                    break
                answers.append(reply)
        finally:
            proc.stdin.close()
            proc.stdout.close()
            proc.wait()
        return answers + [None] * (len(commands) - len(answers))

    def close(self):
        shutil.rmtree(self.d)


def ask(proc, tag, command):
    """Send one command; read up to its tagged reply, literals included."""
    proc.stdin.write(tag + b" " + command + b"\r\n")
    proc.stdin.flush()
    untagged = b""
    while True:
        line = proc.stdout.readline()
        if line == b"":
            return None
        m = re.search(rb"\{(\d+)\}\r\n$", line)
        while m:  # a literal: its bytes, then the rest of the line
            line += proc.stdout.read(int(m.group(1)))
            more = proc.stdout.readline()
            line += more
            m = re.search(rb"\{(\d+)\}\r\n$", more)
        if line.startswith(b"* BYE"):
            return None
        if line.startswith(tag + b" "):
            return untagged, line.rstrip(b"\r\n")
        untagged += line


def read_value(buf, i):
    """The IMAP value at buf[i]: (kind, bytes, end) with kind literal, number or nil."""
    c = buf[i:i + 1]
    if c in (b"{", b"~"):
        j = buf.index(b"}", i)
        n = int(buf[i + (2 if c == b"~" else 1):j])
        return "literal", buf[j + 3:j + 3 + n], j + 3 + n
    if c == b'"':
        j = i + 1
        val = b""
        while buf[j:j + 1] != b'"':
            if buf[j:j + 1] == b"\\":
                j += 1
            val += buf[j:j + 1]
            j += 1
        return "literal", val, j + 1
    m = re.compile(rb"[^ )\r]+").match(buf, i)
    if m.group(0).upper() == b"NIL":
        return "nil", b"", m.end()
    return "number", m.group(0), m.end()


def record(item, reply):
    """The golden record for one item from Dovecot's reply."""
    if reply is None:
        return b"%s BYE\n" % item.encode()
    untagged, tagged = reply
    status = tagged.split(b" ")[1]
    if status == b"BAD":
        return b"%s BAD\n" % item.encode()
    if status == b"NO":
        code = re.search(rb"\[[^\]]*\]", tagged)
        return b"%s NO %s\n" % (item.encode(), code.group(0) if code else b"")
    name = item.split("<")[0].upper().encode()
    k = 0
    while True:
        k = untagged.index(b"* 1 FETCH (", k) + len(b"* 1 FETCH (")
        if untagged[k:k + len(name)].upper() == name:
            break
    v = k + len(name)
    if untagged[v:v + 1] == b"<":
        v = untagged.index(b">", v) + 1
    kind, val, _ = read_value(untagged, v + 1)
    if kind == "number":
        return b"%s = %s\n" % (item.encode(), val)
    return b"%s {%d}\n%s\n" % (item.encode(), len(val), val)


# ---- BODYSTRUCTURE -> parts ----

def parse_list(buf, i):
    """Parse the parenthesised list at buf[i] into nested Python lists."""
    assert buf[i:i + 1] == b"("
    i += 1
    items = []
    while True:
        while buf[i:i + 1] == b" ":
            i += 1
        c = buf[i:i + 1]
        if c == b")":
            return items, i + 1
        if c == b"(":
            sub, i = parse_list(buf, i)
            items.append(sub)
        else:
            kind, val, i = read_value(buf, i)
            items.append(None if kind == "nil" else val)


def walk(body, prefix, out, top):
    """Append (section, kind) for the parts of BODYSTRUCTURE body."""
    if isinstance(body[0], list):  # multipart
        n = 0
        for sub in body:
            if not isinstance(sub, list):
                break
            n += 1
            walk_part(sub, prefix + str(n), out)
    else:
        walk_part(body, prefix + "1", out)


def walk_part(body, section, out):
    if isinstance(body[0], list):
        out.append((section, "multipart"))
        walk(body, section + ".", out, False)
    elif body[0].lower() == b"message" and body[1].lower() == b"rfc822" and len(body) > 8 \
            and isinstance(body[8], list):
        out.append((section, "message"))
        walk(body[8], section + ".", out, False)
    else:
        out.append((section, "leaf"))


def parts_of(sess):
    reply = sess.run(["FETCH 1 (BODYSTRUCTURE)"])[0]
    buf = reply[0]
    i = buf.index(b"BODYSTRUCTURE ") + len(b"BODYSTRUCTURE ")
    body, _ = parse_list(buf, i)
    parts = []
    walk(body, "", parts, True)
    return parts


def sample(parts):
    """All parts, or for deep or large messages the first five, every
    twentieth and the last five (the goldens stay small)."""
    if len(parts) <= 40:
        return parts
    return [p for i, p in enumerate(parts) if i < 5 or i % 20 == 0 or i >= len(parts) - 5]


def items_for(parts):
    """The FETCH items asked for a message with these parts."""
    items = ["BODY[]", "BODY[HEADER]", "BODY[TEXT]", "BODY[%s]" % FIELDS,
             "BODY[%s]" % FIELDS_NOT, "BODY[HEADER.FIELDS (X-Nothing)]",
             "BODY[]<0.10>", "BODY[]<7.30>", "BODY[TEXT]<3.7>", "BODY[HEADER]<1000000.5>",
             "BINARY[]", "BINARY.SIZE[]", "BODY[99]", "BODY[99.MIME]", "BINARY[99]",
             "BODY[MIME]"]
    for section, kind in sample(parts):
        items += ["BODY[%s]" % section, "BODY[%s.MIME]" % section,
                  "BODY[%s]<1.4>" % section, "BODY[%s.99]" % section]
        if kind == "message":
            items += ["BODY[%s.HEADER]" % section, "BODY[%s.TEXT]" % section,
                      "BODY[%s.%s]" % (section, FIELDS), "BODY[%s.%s]" % (section, FIELDS_NOT),
                      "BODY[%s.TEXT]<2.5>" % section]
        else:
            items += ["BODY[%s.HEADER]" % section, "BODY[%s.TEXT]" % section]
        items += ["BINARY[%s]" % section, "BINARY.SIZE[%s]" % section,
                  "BINARY[%s]<2.5>" % section]
    return items


def fetch_all(path):
    """{item: record} for the message at path."""
    sess = Session(path)
    try:
        items = items_for(parts_of(sess))
        recs = {}
        todo = list(items)
        while todo:
            cmds = ["FETCH 1 (%s)" % peek(it) for it in todo]
            replies = sess.run(cmds)
            done = 0
            for it, rep in zip(todo, replies):
                if rep is None:
                    break
                recs[it] = record(it, rep)
                done += 1
            if done < len(todo):  # the process said BYE at todo[done]
                recs[todo[done]] = record(todo[done], None)
                done += 1
            todo = todo[done:]
        return items, recs
    finally:
        sess.close()


def peek(item):
    return item.replace("BODY[", "BODY.PEEK[", 1) if item.startswith("BODY[") else \
        item.replace("BINARY[", "BINARY.PEEK[", 1)


def intentional():
    keep = {}
    with open(os.path.join(HERE, "intentional.txt")) as f:
        for line in f:
            line = line.split("#")[0].strip()
            if line:
                name, item = line.split(None, 1)
                keep.setdefault(name, set()).add(item)
    return keep


def sealmail_records(tool, path, items):
    """sealmail's records for items, from test-mime-section --dump."""
    out = subprocess.run([tool, "--dump", path] + items, capture_output=True, check=True).stdout
    recs, i = {}, 0
    for it in items:
        j = out.index(b"\n", i)
        line = out[i:j]
        assert line.startswith(it.encode() + b" "), (it, line)
        m = re.match(rb".* \{(\d+)\}$", line)
        end = j + 1 + (int(m.group(1)) + 1 if m else 0)
        recs[it] = out[i:end]
        i = end
    return recs


def main(argv):
    tool = None
    if argv[:1] == ["--sealmail"]:
        tool, argv = argv[1], argv[2:]
    keep = intentional()
    paths = argv or sorted(glob.glob(os.path.join(HERE, "*.eml")) +
                           glob.glob(os.path.join(MIME, "*.eml")))
    for path in paths:
        name = os.path.basename(path)[:-len(".eml")]
        items, recs = fetch_all(path)
        mine = set(keep.get(name, ()))
        unknown = mine - set(items)
        if unknown:
            items += sorted(unknown)  # sealmail-only items (parts Dovecot does not see)
        if mine:
            if tool is None:
                sys.exit("intentional items in %s need --sealmail" % name)
            own = sealmail_records(tool, path, sorted(mine))
            with open(os.path.join(HERE, name + ".dovecot.fetch"), "wb") as f:
                for it in items:
                    if it in mine and it in recs:
                        f.write(recs[it])
            for it in mine:
                recs[it] = own[it]
        with open(os.path.join(HERE, name + ".fetch"), "wb") as f:
            for it in items:
                f.write(recs[it])
        print(name, len(items), "items", "(%d sealmail's own)" % len(mine) if mine else "")


if __name__ == "__main__":
    main(sys.argv[1:])
