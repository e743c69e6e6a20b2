"""sessions.py — the messages and the scripted sessions imap-vs-dovecot.py plays
against both servers, in order (later sessions see what earlier ones changed).

A script is a text block, one command a line; the first word is the tag (IMAP)
or the step's name (POP3, not sent).  In a line:
  ${NAME}    a value of this server: USER, PASSWORD, PLAIN (SASL PLAIN of the
             user, base64), BADPLAIN (wrong password), or one captured from an
             earlier answer: UIDVALIDITY, HIGHESTMODSEQ, UIDNEXT, MODSEQ_<seq>
  «text»     a synchronising literal {n} (the client waits for '+'); «+text» a
             LITERAL+ one {n+}; «~text» a literal8 ~{n}.  text takes Python
             escapes (\\r\\n, \\x00); «@name» is the message called name.
  ¶          the client sends CRLF, waits for a continuation request ('+'),
             then sends the rest (AUTHENTICATE, IDLE ... DONE).
Every line is sent with CRLF at its end.  Raw(...) steps send exact bytes.
"""
import base64
import codecs
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
MIME = HERE.parents[0] / "unit" / "data" / "mime"
IO = 10.0


def crlf(text):
    """A message written here with \\n line ends, sent with CRLF."""
    return text.replace("\n", "\r\n").encode("utf-8")


PLAIN = crlf("""\
Date: Mon, 3 Feb 2025 10:00:00 +0000
From: Alice Example <alice@example.com>
To: Bob <bob@example.net>
Subject: plain message
Message-ID: <plain@example.com>

Hello Bob,

this is a plain text message with a few words: apple banana cherry.
-- 
Alice
""")

ALTERNATIVE = crlf("""\
From: "Carol" <carol@example.org>
To: Alice <alice@example.com>
Cc: dave@example.net
Subject: alternative parts
Date: Thu, 6 Feb 2025 12:00:00 -0500
Message-ID: <alt@example.org>
In-Reply-To: <plain@example.com>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="alt-1"

--alt-1
Content-Type: text/plain; charset=utf-8

Plain version: meeting at noon.
--alt-1
Content-Type: text/html; charset=utf-8

<html><body><p>HTML version: meeting at <b>noon</b>.</p></body></html>
--alt-1--
""")

_B64 = base64.b64encode(bytes(range(256)) * 2).decode()
ATTACHMENT = crlf("""\
From: Dave <dave@example.net>
To: alice@example.com
Subject: report attached
Date: Sat, 8 Feb 2025 23:30:00 +0000
Message-ID: <attach@example.net>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

This is a multi-part message in MIME format.
--b1
Content-Type: text/plain; charset=us-ascii

The report is attached.
--b1
Content-Type: application/octet-stream; name="report.bin"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="report.bin"

""" + "\n".join(_B64[i:i + 76] for i in range(0, len(_B64), 76)) + """
--b1
Content-Type: text/plain; name="old.txt"
Content-Transfer-Encoding: x-uuencode

begin 644 old.txt
9;VQD('1E>'0@9FEL92P@=75E;F-O9&5D"@``
`
end
--b1--
""")

QP = crlf("""\
From: Erin <erin@example.org>
To: alice@example.com
Subject: quoted-printable =?utf-8?q?gr=C3=BC=C3=9Fe?=
Date: Sun, 9 Feb 2025 00:15:00 +0100
Message-ID: <qp@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Gr=C3=BC=C3=9Fe aus K=C3=B6ln. This line is long enough to need a soft line=
 break in the middle.
Equals sign: =3D, trailing space=20
Tab=09here.
""")

REPLY = crlf("""\
From: zed@example.com
To: Alice <alice@example.com>, bob@example.net
Cc: Carol <carol@example.org>
Bcc: secret@example.org
Subject: Re: [list] Fwd: plain message
Date: Sun, 2 Feb 2025 09:00:00 +0000
Message-ID: <reply@example.com>
References: <plain@example.com>
X-Priority: 1

> Hello Bob,
Thanks for the fruit list.
""")

LARGE = crlf("""\
From: Bob <bob@example.net>
To: alice@example.com
Subject: large message
Date: Mon, 10 Feb 2025 08:00:00 +0000
Message-ID: <large@example.net>

""" + "".join(f"line {i:04d} lorem ipsum dolor sit amet, consectetur adipiscing elit\n"
              for i in range(400)))

IDLE_MSG = crlf("""\
From: Idle <idle@example.com>
To: alice@example.com
Subject: arrived during IDLE
Date: Tue, 11 Feb 2025 11:11:11 +0000
Message-ID: <idle@example.com>

new mail
""")

UTF8_MSG = crlf("""\
From: Jörg Åberg <jörg@example.org>
To: alice@example.com
Subject: Grüße in UTF-8 headers
Date: Wed, 12 Feb 2025 12:12:12 +0000
Message-ID: <utf8@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Käse
""")


def eml(name):
    return (MIME / (name + ".eml")).read_bytes()


MESSAGES = {
    "plain": PLAIN,
    "alternative": ALTERNATIVE,
    "rfc822-nested": eml("rfc822-nested"),
    "attachment": ATTACHMENT,
    "qp": QP,
    "8bit-headers": eml("8bit-headers"),
    "bare-lf": eml("bare-lf"),
    "html-text": eml("html-text"),
    "reply": REPLY,
    "large": LARGE,
    "encoded-words": eml("encoded-words"),
    "addresses": eml("addresses"),
    "idle": IDLE_MSG,
    "utf8": UTF8_MSG,
    "nul": PLAIN.replace(b"apple", b"ap\x00le"),
}

# INBOX as loaded: (message, flags, INTERNALDATE); sequence number = position + 1
INBOX = [
    ("plain", "", "10-Feb-2025 10:00:00 +0000"),
    ("alternative", "\\Seen", "11-Feb-2025 10:00:00 +0000"),
    ("rfc822-nested", "\\Flagged", "12-Feb-2025 01:30:00 +0200"),
    ("attachment", "\\Seen \\Answered", "12-Feb-2025 12:00:00 +0000"),
    ("qp", "$Label1", "13-Feb-2025 09:00:00 -0500"),
    ("8bit-headers", "", "14-Feb-2025 10:00:00 +0000"),
    ("bare-lf", "\\Draft", "15-Feb-2025 10:00:00 +0000"),
    ("html-text", "\\Seen $Forwarded", "16-Feb-2025 10:00:00 +0000"),
    ("reply", "\\Seen", "17-Feb-2025 23:59:59 +0000"),
    ("large", "", "18-Feb-2025 00:00:00 +0000"),
    ("encoded-words", "\\Seen \\Flagged", "19-Feb-2025 10:00:00 +0100"),
    ("addresses", "", " 1-Mar-2025 10:00:00 +0000"),
]


# --------------------------------------------------------------------------
# steps

class Step:
    proto = "imap"

    def __init__(self, tag, data, label=None, between=None, action=None, wait_for=None,
                 wait_time=0.0, timeout=IO, raw=False):
        self.tag = tag              # bytes; None: no tagged answer awaited (quiet read)
        self.template = data        # bytes with ${...}, «...», ¶
        self.label = label or (tag.decode() if tag else "?")
        self.between = between      # callable(ctx) after each continuation request
        self.action = action        # callable(ctx) before the command is sent
        self.wait_for = wait_for    # after between(): read until this regex (bytes)
        self.wait_time = wait_time
        self.timeout = timeout
        self.raw = raw
        self.shown = data
        self.parts = None if raw else (lambda d: split_parts(d))
        self.data = data

    def __repr__(self):
        return f"Step({self.label})"


class POP3Step(Step):
    proto = "pop3"

    def __init__(self, label, data, multi=False, keep_text=False, sort_lines=False):
        super().__init__(None, data, label=label)
        self.multi = multi
        self.keep_text = keep_text
        self.sort_lines = sort_lines
        self.data = lambda ctx, d=data: expand(ctx.fill(d), ctx) + b"\r\n"


class Pseudo(Step):
    def __init__(self, label, proto="imap"):
        super().__init__(None, None, label=label)
        self.proto = proto


GREETING = Pseudo("greeting")
LOGIN = Pseudo("login")
POP_GREETING = Pseudo("greeting", "pop3")

LIT_RE = re.compile("«([+~]?)(.*?)»".encode(), re.S)


def expand(data, ctx=None):
    """«...» to IMAP literals."""
    def lit(m):
        kind, body = m.group(1), m.group(2)
        if body.startswith(b"@"):
            content = MESSAGES[body[1:].decode()]
        else:
            content = codecs.escape_decode(body)[0]
        n = str(len(content)).encode()
        if kind == b"+":
            return b"{" + n + b"+}\r\n" + content
        if kind == b"~":
            return b"~{" + n + b"}\r\n" + content
        return b"{" + n + b"}\r\n" + content
    return LIT_RE.sub(lit, data)


def split_parts(data):
    """Parts to send, the client waiting for '+' between them: at each ¶ and
    after each synchronising literal's announcement."""
    out = []
    for seg in data.split("¶".encode()):
        seg = expand(seg) + b"\r\n"
        start = 0
        for m in re.finditer(rb"~?\{\d+\}\r\n", seg):
            out.append(seg[start:m.end()])
            start = m.end()
        out.append(seg[start:])
    return [p for p in out if p]


def script(block, **kw):
    """Steps of a text block: one command a line, the tag first."""
    steps = []
    for line in block.strip("\n").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        tag = line.split(" ", 1)[0].encode()
        steps.append(Step(tag, line.encode("utf-8"), **kw))
    return steps


def pop3_script(block):
    steps = []
    for line in block.strip("\n").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        label, rest = line.split(" ", 1)
        opts = set()
        while rest.startswith("["):
            o, rest = rest[1:].split("] ", 1)
            opts.add(o)
        steps.append(POP3Step(label, rest.encode("utf-8"), multi="multi" in opts,
                              keep_text="text" in opts, sort_lines="sort" in opts))
    return steps


def Raw(label, data, tag=None, timeout=3.0):
    """Exact bytes; with tag=None, whatever comes within timeout."""
    s = Step(tag, data, label=label, timeout=timeout, raw=True)
    s.parts = lambda d: [d]
    s.shown = data
    return s


def H(*commands):
    """An action: these commands on the session's second connection (the
    helper, logged in on first use); their answers are not compared."""
    def act(ctx):
        h = ctx.get_helper()
        for i, c in enumerate(commands):
            tag = b"h%d" % (i + 1)
            h.command(tag, split_parts(tag + b" " + ctx.fill(c.encode("utf-8"))))
    return act


class Session:
    def __init__(self, name, title, steps, proto="imap", login=True, keep_recent=False):
        self.name, self.title, self.proto, self.login = name, title, proto, login
        self.keep_recent = keep_recent      # show \Recent and RECENT as they come
        self.steps = []
        for s in steps:
            if isinstance(s, str):
                s = script(s) if proto == "imap" else pop3_script(s)
            elif isinstance(s, Step):
                s = [s]
            for st in s:
                if proto == "pop3" and not isinstance(st, POP3Step):
                    raise ValueError(f"{name}: {st} is not a POP3 step")
                self.steps.append(st)
        labels = [s.label for s in self.steps]
        dup = {x for x in labels if labels.count(x) > 1}
        if dup:
            raise ValueError(f"session {name}: labels used twice: {sorted(dup)}")


def load_script():
    lines = []
    for i, (name, flags, date) in enumerate(INBOX, 1):
        lines.append(f'n{i:02d} APPEND INBOX ({flags}) "{date}" «@{name}»')
    return "\n".join(lines)


# --------------------------------------------------------------------------
# the sessions

SESSIONS = [
    Session("load", "the same 12 messages APPENDed to both INBOXes (\\Recent shown)", [
        load_script(), """
n13 SELECT INBOX
n14 FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE)
n15 LOGOUT
"""], keep_recent=True),

    Session("preauth", "not authenticated state, LOGIN and AUTHENTICATE", login=False,
            steps=["""
a01 CAPABILITY
a02 NOOP
a04 LOGIN ${USER} "wrong password"
a05 LOGIN nobody@example.test "x"
a08 ID ("name" "interop" "version" "1")
a09 ID NIL
a12 AUTHENTICATE PLAIN ${PLAIN}
a13 CAPABILITY
a14 LOGIN ${USER} "${PASSWORD}"
a15 AUTHENTICATE PLAIN ${PLAIN}
a16 NOOP
a17 LOGOUT
a18 NOOP
"""]),

    # Dovecot's login process hangs up after 3 bad commands: at most 2 a session
    Session("preauth-bad1", "commands not valid before login", login=False, steps=["""
a03 SELECT INBOX
a06 LOGIN ${USER}
a19 LOGIN ${USER} "${PASSWORD}"
"""]),

    Session("preauth-bad2", "commands not valid before login", login=False, steps=["""
a07 AUTHENTICATE FOO
a10 ENABLE CONDSTORE
a20 LOGIN ${USER} "${PASSWORD}"
"""]),

    Session("preauth-bad3", "commands not valid before login", login=False, steps=["""
a11 STATUS INBOX (MESSAGES)
a21 LOGIN «${USER}» "${PASSWORD}" extra
a22 LOGIN ${USER} "${PASSWORD}"
"""]),

    Session("login-literal", "LOGIN with literals", login=False, steps=["""
b01 LOGIN «${USER}» «${PASSWORD}»
b02 LOGOUT
"""]),

    Session("login-literal-plus", "LOGIN with LITERAL+ literals", login=False, steps=["""
b01 LOGIN «+${USER}» «+${PASSWORD}»
b02 LOGOUT
"""]),

    Session("auth-continuation", "AUTHENTICATE without an initial response", login=False,
            steps=["""
c01 AUTHENTICATE PLAIN¶*
c02 AUTHENTICATE PLAIN¶!!!not base64
c03 AUTHENTICATE PLAIN¶${BADPLAIN}
c04 AUTHENTICATE PLAIN =
c05 AUTHENTICATE plain¶${PLAIN}
c06 LOGOUT
"""]),

    Session("enable", "ENABLE", ["""
e01 CAPABILITY
e02 ENABLE CONDSTORE
e03 ENABLE CONDSTORE
e04 ENABLE QRESYNC
e05 ENABLE FOO
e06 ENABLE
e07 ENABLE condstore qresync
e08 SELECT INBOX
e09 ENABLE CONDSTORE
e10 LOGOUT
"""]),

    Session("enable-utf8", "ENABLE UTF8=ACCEPT and IMAP4rev2 (RFC 6855, RFC 9051)", ["""
e11 ENABLE UTF8=ACCEPT
e12 ENABLE IMAP4rev2
e13 LIST "" %
e14 EXAMINE INBOX
e15 FETCH 6 (ENVELOPE)
e16 SEARCH SEEN
e17 CREATE "Ünïcode"
e18 LIST "" "Ü*"
e19 DELETE "Ünïcode"
e20 LOGOUT
"""]),

    Session("list", "NAMESPACE, LIST (LIST-EXTENDED, LIST-STATUS), LSUB", ["""
l00 CREATE Work/Sub
l01 CREATE Work/Sub2
l02 SUBSCRIBE Work/Sub
l03 CREATE Gone
l04 SUBSCRIBE Gone
l05 DELETE Gone
l06 NAMESPACE
l07 LIST "" ""
l08 LIST "" *
l09 LIST "" %
l10 LIST "" INBOX
l11 LIST "" inbox
l12 LIST "" In*
l13 LIST "" "*u*"
l14 LIST "" Nonexistent
l15 LIST "" Work/%
l16 LIST Work %
l17 LIST "" "Work/"
l18 LIST (SPECIAL-USE) "" *
l19 LIST (SUBSCRIBED) "" *
l20 LIST "" * RETURN (CHILDREN)
l21 LIST "" * RETURN (SUBSCRIBED SPECIAL-USE)
l22 LIST "" % RETURN (STATUS (MESSAGES UNSEEN UIDNEXT))
l23 LIST "" * RETURN (STATUS (MESSAGES SIZE HIGHESTMODSEQ))
l24 LIST "" (INBOX Sent Trash)
l25 LIST (SUBSCRIBED RECURSIVEMATCH) "" %
l26 LIST (SUBSCRIBED) "" % RETURN (CHILDREN)
l27 LIST (RECURSIVEMATCH) "" *
l28 LIST (FOO) "" *
l29 LIST "" * RETURN (FOO)
l30 LIST () "" %
l31 LIST "" % RETURN ()
l32 LIST ""
l33 LSUB "" *
l34 LSUB "" %
l35 LSUB "" Gone
l36 LIST (SUBSCRIBED) "" Gone
l37 UNSUBSCRIBE Gone
l38 UNSUBSCRIBE NeverSubscribed
l39 SUBSCRIBE Ghost
l40 LSUB "" Ghost
l41 UNSUBSCRIBE Ghost
l42 LIST "" "%/%"
l43 LIST "" "/"
l44 LIST "" * RETURN (SPECIAL-USE STATUS (MESSAGES))
l45 DELETE Work/Sub2
"""]),

    Session("status", "STATUS with every item", ["""
s01 STATUS INBOX (MESSAGES)
s02 STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)
s03 STATUS INBOX (SIZE)
s04 STATUS INBOX (HIGHESTMODSEQ)
s05 STATUS INBOX (DELETED)
s06 STATUS INBOX (APPENDLIMIT)
s07 STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE HIGHESTMODSEQ)
s08 STATUS Nonexistent (MESSAGES)
s09 STATUS INBOX ()
s10 STATUS INBOX (FOO)
s11 STATUS INBOX MESSAGES
s12 STATUS inbox (MESSAGES)
s13 STATUS Sent (MESSAGES UNSEEN UIDNEXT)
s14 STATUS Work (MESSAGES)
s15 SELECT INBOX
s16 STATUS INBOX (MESSAGES UNSEEN)
s17 STATUS INBOX (DELETED-STORAGE)
s18 STATUS
"""]),

    Session("select", "SELECT, EXAMINE, CONDSTORE and QRESYNC selection", ["""
x01 SELECT INBOX
x02 EXAMINE INBOX
x03 SELECT INBOX (CONDSTORE)
x04 CHECK
x05 NOOP
x06 SELECT Nonexistent
x07 FETCH 1 FLAGS
x08 SELECT Sent
x09 SELECT inbox
x10 UNSELECT
x11 UNSELECT
x12 CLOSE
x13 ENABLE QRESYNC
x14 SELECT INBOX
x15 SELECT INBOX (QRESYNC (${UIDVALIDITY} 1))
x16 SELECT INBOX (QRESYNC (${UIDVALIDITY} ${HIGHESTMODSEQ}))
x17 SELECT INBOX (QRESYNC (${UIDVALIDITY} ${HIGHESTMODSEQ} 1:20))
x18 SELECT INBOX (QRESYNC (1 1))
x19 EXAMINE INBOX (QRESYNC (${UIDVALIDITY} 1 1:5 (1:3 1:3)))
x20 SELECT INBOX (FOO)
x21 SELECT INBOX (QRESYNC)
x22 SELECT Work
x23 SELECT Work/Sub
x24 SELECT ""
x25 CLOSE
"""]),

    Session("fetch", "FETCH of every item kind (EXAMINE: nothing becomes \\Seen)", ["""
f01 EXAMINE INBOX
f02 FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE UID)
f03 FETCH 1:* ENVELOPE
f04 FETCH 1:* BODYSTRUCTURE
f05 FETCH 1:* BODY
f06 FETCH 1 ALL
f07 FETCH 1 FAST
f08 FETCH 1 FULL
f09 FETCH 1:* BODY.PEEK[]
f10 FETCH 1:* BODY.PEEK[HEADER]
f11 FETCH 1:* BODY.PEEK[TEXT]
f12 FETCH 1:* BODY.PEEK[1]
f13 FETCH 1:* BODY.PEEK[1.MIME]
f14 FETCH 1:* BODY.PEEK[2]
f15 FETCH 3 (BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[2.MIME] BODY.PEEK[2.1] BODY.PEEK[2.2] BODY.PEEK[2.1.MIME])
f16 FETCH 3 (BODY.PEEK[3] BODY.PEEK[3.HEADER] BODY.PEEK[3.TEXT] BODY.PEEK[4] BODY.PEEK[4.TEXT] BODY.PEEK[4.1])
f17 FETCH 8 (BODY.PEEK[1.1] BODY.PEEK[1.2] BODY.PEEK[1.2.MIME] BODY.PEEK[2] BODY.PEEK[1] BODY.PEEK[1.MIME])
f18 FETCH 1:* BODY.PEEK[HEADER.FIELDS (From Subject)]
f19 FETCH 1:* BODY.PEEK[HEADER.FIELDS.NOT (From Subject Received)]
f20 FETCH 3 (BODY.PEEK[2.HEADER.FIELDS (Subject)] BODY.PEEK[2.HEADER.FIELDS.NOT (Subject)])
f21 FETCH 1 BODY.PEEK[]<0.20>
f22 FETCH 1 BODY.PEEK[TEXT]<5.10>
f23 FETCH 1 BODY.PEEK[]<0.0>
f24 FETCH 1 BODY.PEEK[]<100000.10>
f25 FETCH 1 BODY.PEEK[1]
f26 FETCH 1 BODY.PEEK[2]
f27 FETCH 1 BODY.PEEK[1.1]
f28 FETCH 2 BODY.PEEK[3]
f29 FETCH 1 BODY.PEEK[0]
f30 FETCH 1 BODY.PEEK[1.0]
f31 FETCH 1 BODY.PEEK[MIME]
f32 FETCH 4 (BINARY.PEEK[1] BINARY.PEEK[2] BINARY.SIZE[2])
f33 FETCH 4 BINARY.PEEK[3]
f34 FETCH 4 BINARY.SIZE[3]
f35 FETCH 5 (BINARY.PEEK[1] BINARY.SIZE[1] BINARY.PEEK[])
f36 FETCH 8 (BINARY.PEEK[1.2] BINARY.SIZE[1.2] BINARY.PEEK[1.1] BINARY.SIZE[1.1])
f37 FETCH 4 BINARY.PEEK[2]<0.16>
f38 FETCH 2 (BINARY.PEEK[] BINARY.SIZE[])
f39 FETCH 3 (BINARY.PEEK[2] BINARY.SIZE[2])
f40 FETCH 1 BINARY.PEEK[1.MIME]
f41 FETCH 1 BINARY.PEEK[HEADER]
f42 FETCH 1:* RFC822.SIZE
f43 FETCH 1 RFC822.HEADER
f44 FETCH 7 (RFC822.HEADER BODY.PEEK[TEXT] RFC822.SIZE BINARY.SIZE[1])
f45 FETCH 7 (BODY.PEEK[] BODY.PEEK[1] BODY.PEEK[2.MIME])
f46 FETCH 1 RFC822.TEXT
f47 FETCH 1 RFC822
f48 FETCH 1 BODY[]
f49 FETCH 1 FLAGS
f50 FETCH 1:* MODSEQ
f51 FETCH 1:* (FLAGS) (CHANGEDSINCE 1)
f52 UID FETCH 1:* FLAGS
f53 UID FETCH 5:3 (FLAGS)
f54 FETCH 3:1 FLAGS
f55 FETCH 1,1,2 FLAGS
f56 FETCH * (UID)
f57 FETCH 13 FLAGS
f58 UID FETCH 100 FLAGS
f59 UID FETCH 100:* FLAGS
f60 FETCH 0 FLAGS
f61 FETCH 1 (FOO)
f62 FETCH 1 BODY[HEADER.FIELDS ()]
f63 FETCH 1 BODY.PEEK[]<4294967296.1>
f64 FETCH 1  FLAGS
f65 FETCH 1 flags body.peek[header.fields (subject)] rfc822.size
f66 FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.10>)
f67 FETCH 10 BODY.PEEK[TEXT]<1000.200>
f68 FETCH 11:12 (ENVELOPE BODY.PEEK[HEADER.FIELDS (To Cc)])
f69 FETCH 1 BINARY.SIZE[]
f70 FETCH 1 RFC822.PEEK
f71 FETCH 1 (FLAGS UID
f72 FETCH 1 ()
f73 FETCH 6 (BODY.PEEK[HEADER.FIELDS (Subject From)] BINARY.PEEK[1])
f74 FETCH 1 BODY.PEEK[HEADER.FIELDS (X-Nonexistent)]
f75 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)
"""]),

    Session("fetch-seen", "FETCH that sets \\Seen (SELECT)", ["""
g01 SELECT INBOX
g02 FETCH 1 BODY[TEXT]
g03 FETCH 1 FLAGS
g04 STORE 1 -FLAGS.SILENT (\\Seen)
g05 FETCH 6 RFC822.TEXT
g06 FETCH 10 RFC822.HEADER
g07 FETCH 10 (FLAGS BODY[HEADER])
g08 FETCH 12 BINARY[1]
g09 FETCH 1 BODY[]<0.5>
g10 STORE 1,6,10,12 -FLAGS.SILENT (\\Seen)
g11 FETCH 1:* FLAGS
"""]),

    Session("store", "STORE variants, keywords, UNCHANGEDSINCE", ["""
t01 SELECT INBOX (CONDSTORE)
t02 STORE 1 +FLAGS (\\Flagged)
t03 STORE 1 +FLAGS.SILENT (\\Seen)
t04 FETCH 1 FLAGS
t05 STORE 1 -FLAGS (\\Flagged \\Seen)
t06 STORE 1 FLAGS (\\Answered $Label2 custom)
t07 STORE 1 FLAGS ()
t08 STORE 1 +FLAGS \\Draft
t09 STORE 1 +FLAGS (\\Recent)
t10 STORE 1 +FLAGS (\\Bogus)
t11 STORE 1 (UNCHANGEDSINCE 1) +FLAGS (\\Flagged)
t12 STORE 1 (UNCHANGEDSINCE 0) +FLAGS (\\Flagged)
t13 STORE 1:2 (UNCHANGEDSINCE 9223372036854775807) +FLAGS (\\Flagged)
t14 FETCH 1:2 (FLAGS MODSEQ)
t15 STORE 3 +FLAGS.SILENT ($X)
t16 UID STORE 1:3 (UNCHANGEDSINCE ${MODSEQ_2}) -FLAGS (\\Flagged)
t17 UID STORE 1:* +FLAGS.SILENT ($Keyword1)
t18 FETCH 1:3 (FLAGS)
t19 STORE 1 +FLAGS (a%b)
t20 STORE 1 +FLAGS (\\Seen) (UNCHANGEDSINCE 5)
t21 STORE 13 +FLAGS (\\Seen)
t22 UID STORE 99 +FLAGS (\\Seen)
t23 STORE 1 FOOFLAGS (\\Seen)
t24 STORE 1 +FLAGS.SILENT (\\Seen \\seen $label2 $LABEL2)
t25 FETCH 1 FLAGS
t26 STORE 1:* -FLAGS.SILENT ($Keyword1 $X $Label2 custom)
t27 STORE 1 FLAGS.SILENT ()
t28 STORE 2 FLAGS.SILENT (\\Seen)
t29 STORE 3 FLAGS.SILENT (\\Flagged)
t30 STORE 1 +FLAGS (\\Deleted)
t31 STORE 1 -FLAGS (\\Deleted)
t37 STORE 2 (UNCHANGEDSINCE 9223372036854775807) +FLAGS.SILENT (\\Answered)
t38 STORE 2 -FLAGS.SILENT (\\Answered)
t32 STORE 1 +FLAGS ()
t33 STORE 1 +FLAGS.SILENT
t34 FETCH 1:* FLAGS
t35 UNSELECT
t36 SELECT INBOX
"""]),

    Session("search", "SEARCH: flags, dates, sizes, headers, text, OR/NOT, sets, ESEARCH, SAVE", ["""
q01 EXAMINE INBOX
q02 SEARCH ALL
q03 SEARCH SEEN
q04 SEARCH UNSEEN
q05 SEARCH FLAGGED
q06 SEARCH ANSWERED
q07 SEARCH UNANSWERED
q08 SEARCH DELETED
q09 SEARCH DRAFT
q10 SEARCH KEYWORD $Label1
q11 SEARCH UNKEYWORD $Label1
q12 SEARCH KEYWORD $Forwarded
q13 SEARCH NEW
q14 SEARCH OLD
q15 SEARCH RECENT
q16 SEARCH BEFORE 12-Feb-2025
q17 SEARCH ON 12-Feb-2025
q18 SEARCH SINCE 17-Feb-2025
q19 SEARCH SENTBEFORE 5-Feb-2025
q20 SEARCH SENTON 4-Feb-2025
q21 SEARCH SENTSINCE 8-Feb-2025
q22 SEARCH LARGER 1000
q23 SEARCH SMALLER 300
q24 SEARCH FROM alice
q25 SEARCH FROM "example.org"
q26 SEARCH TO bob
q27 SEARCH CC carol
q28 SEARCH BCC secret
q29 SEARCH SUBJECT message
q30 SEARCH SUBJECT "plain mess"
q31 SEARCH SUBJECT CAF
q32 SEARCH CHARSET UTF-8 SUBJECT «Café»
q33 SEARCH CHARSET UTF-8 SUBJECT «Grüße»
q34 SEARCH HEADER Message-ID "<html@"
q35 SEARCH HEADER X-Priority ""
q36 SEARCH HEADER X-Missing ""
q37 SEARCH BODY banana
q38 SEARCH BODY ban
q39 SEARCH BODY "meeting at noon"
q40 SEARCH TEXT Alice
q41 SEARCH TEXT "report.bin"
q42 SEARCH BODY hidden
q43 SEARCH CHARSET UTF-8 BODY «Köln»
q44 SEARCH BODY lorem
q45 SEARCH OR FROM alice FROM bob
q46 SEARCH NOT SEEN
q47 SEARCH OR (SEEN FLAGGED) DRAFT
q48 SEARCH (SEEN) (FROM carol)
q49 SEARCH UID 2:4
q50 SEARCH 2:4
q51 SEARCH 2,4,6:*
q52 SEARCH UID 10:*
q53 SEARCH *:11
q54 SEARCH NOT 1:5
q55 UID SEARCH SEEN
q56 SEARCH RETURN (MIN MAX COUNT) ALL
q57 SEARCH RETURN () SEEN
q58 SEARCH RETURN (ALL) UNSEEN
q59 SEARCH RETURN (MIN MAX) KEYWORD nosuchkeyword
q60 UID SEARCH RETURN (COUNT ALL) FLAGGED
q61 SEARCH RETURN (SAVE) FLAGGED
q62 FETCH $ (UID FLAGS)
q63 SEARCH $
q64 SEARCH RETURN (SAVE MIN) SEEN
q65 UID SEARCH UID $
q66 SEARCH MODSEQ 1
q67 SEARCH CHARSET FOO ALL
q68 SEARCH FOO
q69 SEARCH (SEEN
q70 SEARCH BEFORE 32-Jan-2025
q71 SEARCH LARGER x
q72 SEARCH 1:x
q73 SEARCH HEADER
q74 SEARCH CHARSET UTF-8
q75 SEARCH SMALLER 4294967296
q76 SEARCH ON 1-Mar-2025
q77 SEARCH SEEN SEEN NOT NOT SEEN
q78 SEARCH OR OR SEEN FLAGGED DRAFT
q79 search seen
q80 SEARCH TEXT ""
q81 SEARCH SUBJECT ""
q82 SEARCH CHARSET UTF-8 FROM «André»
q83 SEARCH CHARSET ISO-8859-1 SUBJECT «Caf\\xe9»
q84 SEARCH SENTBEFORE 1-Jan-2000
q85 SEARCH SENTSINCE 1-Mar-2025
q86 SEARCH UNDRAFT UNFLAGGED UNDELETED
q87 SEARCH RETURN (COUNT) 1:*
q88 SEARCH RETURN (ALL) 1:*
q89 SEARCH CHARSET UTF-8 SUBJECT «\\xff\\xfe»
q90 SEARCH TO "undisclosed"
q91 SEARCH HEADER SUBJECT "bare LF"
q92 SEARCH BODY "line two"
q93 SEARCH TEXT "BANANA"
q94 SEARCH BODY "0399 lorem"
q95 SEARCH UNKEYWORD \\Seen
q96 SEARCH HEADER Content-Type "multipart/alternative"
q97 SEARCH TEXT "notes.txt"
"""]),

    Session("sort", "SORT (RFC 5256)", ["""
o01 EXAMINE INBOX
o02 SORT (ARRIVAL) UTF-8 ALL
o03 SORT (REVERSE ARRIVAL) UTF-8 ALL
o04 SORT (DATE) UTF-8 ALL
o05 SORT (REVERSE DATE) US-ASCII ALL
o06 SORT (SUBJECT) UTF-8 ALL
o07 SORT (FROM) UTF-8 ALL
o08 SORT (TO) UTF-8 ALL
o09 SORT (CC) UTF-8 ALL
o10 SORT (SIZE) UTF-8 ALL
o11 SORT (REVERSE SIZE) UTF-8 SEEN
o12 SORT (SUBJECT DATE) UTF-8 ALL
o13 UID SORT (DATE) UTF-8 UNSEEN
o14 SORT (DISPLAYFROM) UTF-8 ALL
o15 SORT (FOO) UTF-8 ALL
o16 SORT (DATE) FOO ALL
o17 SORT () UTF-8 ALL
o18 SORT DATE UTF-8 ALL
o19 SORT (DATE) UTF-8
o20 SORT (REVERSE) UTF-8 ALL
o21 SORT (SUBJECT) UTF-8 SUBJECT plain
o22 SORT (REVERSE SUBJECT REVERSE DATE) UTF-8 ALL
o23 SORT RETURN (MIN) (DATE) UTF-8 ALL
o24 sort (from) utf-8 all
"""]),

    Session("folders", "CREATE, RENAME, DELETE, SUBSCRIBE", ["""
m01 CREATE Proj
m02 CREATE Proj/Sub/Deep
m03 CREATE Proj/
m04 CREATE INBOX
m05 CREATE inbox
m06 CREATE Proj
m07 CREATE "Caf&AOk-"
m08 CREATE "Bad&mUTF7"
m09 CREATE "Plain&Name"
m10 CREATE "Café"
m11 CREATE Special (USE (\\Flagged))
m12 CREATE Special2 (USE (\\Bogus))
m13 LIST "" *
m14 RENAME Proj Play
m15 LIST "" Play*
m16 LIST "" Proj*
m17 RENAME Nope Other
m18 RENAME Play INBOX
m19 RENAME Play Sent
m20 RENAME Play Play/Child
m21 RENAME Play/Sub Top/Level/Sub
m22 LIST "" *
m23 CREATE Parent/Child
m24 DELETE Parent
m25 LIST "" Parent*
m58 LIST "" %
m26 DELETE Parent
m27 DELETE Parent/Child
m28 DELETE Parent
m29 DELETE INBOX
m30 DELETE Nonexistent
m31 DELETE Top/Level/Sub/Deep
m32 DELETE Top/Level/Sub
m33 LIST "" Top*
m34 CREATE ""
m35 CREATE "a//b"
m36 CREATE "/lead"
m37 RENAME "Caf&AOk-" "Caf&AOk-2"
m38 LIST "" Caf*
m39 DELETE "Caf&AOk-2"
m40 DELETE Special
m41 RENAME Play Play
m42 RENAME Sent "Sent Items"
m43 LIST (SPECIAL-USE) "" *
m44 RENAME "Sent Items" Sent
m47 CREATE Trash/Sub
m48 DELETE Trash/Sub
m49 LSUB "" *
m50 CREATE Subs
m51 SUBSCRIBE Subs
m52 RENAME Subs Subs2
m53 LSUB "" Subs*
m54 LIST (SUBSCRIBED) "" Subs*
m55 DELETE Subs2
m56 UNSUBSCRIBE Subs
# last: Dovecot hangs up on a session whose selected mailbox was deleted
m45 SELECT Play
m46 DELETE Play
m57 NOOP
"""]),

    Session("copy-move", "COPY, MOVE, EXPUNGE, UID EXPUNGE, CLOSE, UNSELECT", ["""
k01 CREATE Scratch
k02 CREATE Dest
k03 SELECT INBOX
k04 COPY 1:6 Scratch
k05 UID COPY 7:12 Scratch
k06 COPY 1 Nonexistent
k07 COPY 13 Scratch
k08 UID COPY 100 Scratch
k09 COPY 2,1 Dest
k10 SELECT Scratch
k11 FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE)
k12 STORE 2 +FLAGS.SILENT (\\Deleted)
k13 EXPUNGE
k14 STORE 1,3 +FLAGS.SILENT (\\Deleted)
k15 UID EXPUNGE 4
k16 FETCH 1:* (UID FLAGS)
k17 MOVE 1 Dest
k18 UID MOVE 5:6 Dest
k19 MOVE 1 Nonexistent
k20 UID MOVE 999 Dest
k21 MOVE 1 Scratch
k22 STORE 1 +FLAGS.SILENT (\\Deleted)
k23 CLOSE
k24 EXAMINE Scratch
k25 EXPUNGE
k26 STORE 1 +FLAGS (\\Seen)
k27 COPY 1 Dest
k29 UID EXPUNGE 1:*
k30 UNSELECT
k31 ENABLE QRESYNC
k32 SELECT Scratch
k33 STORE 1 +FLAGS.SILENT (\\Deleted)
k34 EXPUNGE
k35 MOVE 1 Dest
k36 UID STORE 1:* +FLAGS.SILENT (\\Deleted)
k37 UID EXPUNGE 1:*
k45 SELECT Scratch (QRESYNC (${UIDVALIDITY} 1))
k46 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)
k47 FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)
k38 STATUS Dest (MESSAGES UIDNEXT UNSEEN)
k39 SELECT Dest
k40 FETCH 1:* (UID FLAGS)
k41 EXPUNGE
k42 UID EXPUNGE
k43 MOVE 1:* Dest
k44 UNSELECT
# MOVE out of a mailbox opened read-only, in folders of its own (the
# servers answer differently, and nothing later depends on these)
k50 CREATE RO
k51 CREATE RO2
k52 SELECT INBOX
k53 COPY 1 RO
k54 EXAMINE RO
k28 MOVE 1 RO2
k55 STATUS RO (MESSAGES)
"""]),

    Session("append", "APPEND variants", ["""
p01 APPEND Dest «@plain»
p02 APPEND Dest (\\Seen $Kw) "01-Jan-2024 10:00:00 +0000" «@plain»
p03 APPEND Dest (\\Recent) «@plain»
# dates Dovecot takes and sealmail refuses: into a folder of their own, so
# that Dest's UIDs stay the same on both
p27 CREATE AppendBad
p04 APPEND AppendBad "32-Jan-2024 10:00:00 +0000" «@plain»
p05 APPEND AppendBad "1-Jan-2024 10:00:00 +0000" «@plain»
p06 APPEND Dest "01-Jan-2024 10:00:00" «@plain»
p07 APPEND Nonexistent «@plain»
p08 APPEND Dest «»
p09 APPEND Dest «+@plain»
p10 APPEND Dest (\\Seen) «@plain» (\\Flagged) «@alternative»
p11 APPEND Dest «~@nul»
p12 APPEND Dest «@nul»
p13 SELECT Dest
p14 APPEND Dest «@plain»
p15 FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE)
p16 APPEND Dest (\\Seen) «@bare-lf»
p18 APPEND Dest () «@plain»
p19 APPEND "Dest" (\\Seen \\Seen) «@plain»
p20 APPEND Dest (\\Seen)
p21 APPEND Dest «abcde»
p22 APPEND Dest " 2-Jan-2024 23:59:59 -1200" «@plain»
p23 APPEND Dest «@plain» extra
p24 FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE)
p25 APPEND Dest «@utf8»
p26 APPEND Dest (\\Seen \\Bogus) «@plain»
"""]),

    # on its own: Dovecot neither asks for the literal nor answers (for 30 s)
    Session("append-order", "APPEND with the date before the flags", ["""
p17 APPEND Dest "01-Jan-2024 10:00:00 +0000" (\\Seen) «@plain»
p28 NOOP
"""]),

    Session("idle", "IDLE and changes made by another session", [
        Step(b"i01", b"i01 SELECT INBOX"),
        Step(b"i02", "i02 IDLE¶DONE".encode(), between=H("APPEND INBOX «@idle»"),
             wait_for=rb"EXISTS", wait_time=5.0),
        Step(b"i03", b"i03 NOOP"),
        Step(b"i04", "i04 IDLE¶DONE".encode()),
        Step(b"i05", "i05 IDLE¶done".encode()),
        Step(b"i06", "i06 IDLE¶NOTDONE".encode()),
        Step(b"i07", b"i07 NOOP",
             action=H("SELECT INBOX", "STORE 13 +FLAGS (\\Flagged)")),
        Step(b"i08", b"i08 FETCH 1 (UID)",
             action=H("STORE 13 +FLAGS.SILENT (\\Deleted)", "EXPUNGE")),
        Step(b"i09", b"i09 STORE 1 +FLAGS (\\Seen)"),
        Step(b"i10", b"i10 NOOP"),
        Step(b"i11", b"i11 UID FETCH 1:* (FLAGS)",
             action=H("APPEND INBOX «@idle»", "STORE 1 -FLAGS.SILENT (\\Seen)")),
        Step(b"i12", "i12 IDLE¶DONE".encode(), between=H("STORE 13 +FLAGS (\\Answered)"),
             wait_for=rb"FETCH", wait_time=5.0),
        Step(b"i13", "i13 IDLE¶DONE".encode(),
             between=H("STORE 13 +FLAGS.SILENT (\\Deleted)", "EXPUNGE"),
             wait_for=rb"EXPUNGE", wait_time=5.0),
        Step(b"i14", b"i14 NOOP"),
        Step(b"i15", b"i15 STATUS INBOX (MESSAGES RECENT UIDNEXT)"),
    ]),

    Session("quota", "QUOTA (RFC 9208)", ["""
u01 GETQUOTAROOT INBOX
u02 GETQUOTAROOT Nonexistent
u03 GETQUOTA ""
u04 GETQUOTA "User quota"
u05 SETQUOTA "" (STORAGE 10)
u06 GETQUOTAROOT
"""]),

    Session("errors", "bad syntax and unknown commands", ["""
z01 FOO
z02
z03 NOOP extra
z04 noop
z05 SELECT
z06 SELECT "INBOX
z07 SELECT «INBOX»
z08 SELECT «»
z09 SELECT «+INBOX»
z10 FETCH 1:x FLAGS
z11 UID
z12 UID FOO 1
z13 LOGIN x y
z14 CREATE ""
z15 LIST
z16 STORE 1 FLAGS
z17  NOOP
z18 NOOP 
z19 FETCH 1,,2 FLAGS
z20 NOOP
"""]),

    Session("errors-raw", "malformed lines sent as raw bytes", [
        Raw("y01", b"\r\n"),
        Raw("y02", b"* NOOP\r\n"),
        Raw("y03", b"y03+ NOOP\r\n"),
        Raw("y04", b"y04 NOOP\n", tag=b"y04"),
        Raw("y05", b"y05 SELECT INBOX\x00\r\n", tag=b"y05"),
        Raw("y06", b"y06 EXAMINE Inb\xc3\xb6x\r\n", tag=b"y06"),
        Raw("y07", b"y07 FETCH 1 BODY[]<0.10\r\n", tag=b"y07"),
        Raw("y08", b"y08 NOOP\r\ny09 NOOP\r\n", tag=b"y09"),
        Raw("y10", b"y10 EXAMINE INBOX\r\n", tag=b"y10"),
        Raw("y11", b"y11 FETCH 1 (FLAGS)\r\n", tag=b"y11"),
        Raw("y12", b"y12 FETCH 1 BODY.PEEK[HEADER.FIELDS (From\r\n", tag=b"y12"),
        Raw("y13", b"y13 LIST \"\" \"\\x\"\r\n", tag=b"y13"),
        Raw("y14", b"y14 LIST \"\" \"\\\"\"\r\n", tag=b"y14"),
        Raw("y15", b"Y15 noop\r\n", tag=b"Y15"),
    ]),

    Session("literal-huge", "a synchronising literal larger than any limit", [
        Raw("w01", b"w01 SELECT {999999999}\r\n", tag=b"w01", timeout=5),
    ]),

    Session("literal-plus-big", "a LITERAL+ literal over 4096 octets (RFC 7888 LITERAL-)", [
        Raw("w02", b"w02 SELECT {5000+}\r\n" + b"x" * 5000 + b"\r\n", tag=b"w02",
            timeout=5),
        Raw("w03", b"w03 NOOP\r\n", tag=b"w03", timeout=5),
    ]),

    Session("literal-refused", "continuing after a refused synchronising literal", [
        Raw("w04", b"w04 APPEND Dest {99999999999}\r\n", tag=b"w04", timeout=5),
        Raw("w05", b"w05 NOOP\r\n", tag=b"w05", timeout=5),
    ]),

    Session("long-line", "a command line of 100,000 octets", [
        Raw("w06", b"w06 NOOP " + b"a" * 100000 + b"\r\n", tag=b"w06", timeout=5),
        Raw("w07", b"w07 NOOP\r\n", tag=b"w07", timeout=5),
    ]),

    Session("pop3", "POP3 (RFC 1939, 2449, 5034)", proto="pop3", login=False, steps=["""
p01 [multi] [sort] CAPA
p02 USER nobody@example.test
p03 PASS wrong
p04 STAT
p05 USER ${USER}
p06 PASS ${PASSWORD}
p07 [text] STAT
p08 [multi] LIST
p09 [text] LIST 1
p10 LIST 99
p11 LIST 0
p12 LIST x
p13 [multi] UIDL
p14 [text] UIDL 2
p15 [multi] RETR 1
p16 [multi] RETR 7
p17 [multi] TOP 1 0
p18 [multi] TOP 3 5
p19 TOP 1
p20 TOP 1 -1
p21 RETR 99
p22 DELE 1
p23 DELE 1
p24 RETR 1
p25 LIST 1
p26 [text] STAT
p27 [multi] LIST
p28 RSET
p29 [text] STAT
p30 NOOP
p31 FOO
p32 [multi] retr 2
p33 [multi] [sort] CAPA
p34 USER x
p35 LAST
p36 UIDL 99
p37 [multi] TOP 10 2
p38 [text] LIST 7
p39 DELE 0
p40 QUIT
"""]),

    Session("pop3-sasl", "POP3 AUTH (RFC 5034)", proto="pop3", login=False, steps=["""
r01 [multi] AUTH
r02 AUTH FOO
r03 AUTH PLAIN ${BADPLAIN}
r04 AUTH PLAIN
r05 *
r06 AUTH PLAIN
r07 ${PLAIN}
r08 [text] STAT
r09 APOP ${USER} 0123456789abcdef0123456789abcdef
r10 QUIT
"""]),

    Session("pop3-dele", "POP3 DELE and QUIT remove a message", proto="pop3", login=False,
            steps=["""
d01 USER ${USER}
d02 PASS ${PASSWORD}
d03 DELE 12
d04 QUIT
"""]),

    Session("pop3-after", "POP3 after the deletion; UIDLs stay", proto="pop3", login=False,
            steps=["""
d05 USER ${USER}
d06 PASS ${PASSWORD}
d07 [text] STAT
d08 [multi] UIDL
d09 QUIT
"""]),

    Session("after-pop3", "IMAP sees what POP3 did", ["""
r01 EXAMINE INBOX
r02 FETCH 1:* (UID FLAGS)
"""]),

    Session("inbox-rename", "RENAME INBOX (moves its messages; children stay)", ["""
r03 CREATE INBOX/Child
r04 LIST "" INBOX*
r05 RENAME INBOX "Old Inbox"
r06 LIST "" *
r07 STATUS INBOX (MESSAGES UIDNEXT)
r08 STATUS "Old Inbox" (MESSAGES UIDNEXT)
r09 SELECT INBOX
r10 RENAME INBOX "Old Inbox"
r11 RENAME "Old Inbox" INBOX
r12 RENAME INBOX/Child Kid
r13 LIST "" INBOX*
"""]),
]
