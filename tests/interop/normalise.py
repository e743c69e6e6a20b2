"""normalise.py — what imap-vs-dovecot.py takes away from both servers' answers
before comparing them, because the two may legitimately differ there:

- the human-readable text after OK / NO / BAD / BYE / PREAUTH (the status and
  the response code in [...] stay), after '+' and after POP3's +OK / -ERR
  (except where it is data: STAT, LIST n, UIDL n);
- capability lists (compared separately, as sets), ID and POP3 IMPLEMENTATION;
- UIDVALIDITY values (also in APPENDUID, COPYUID, STATUS) and the UIDVALIDITY
  half of a POP3 UIDL; MODSEQ and HIGHESTMODSEQ values (the numbers are each
  server's own); INTERNALDATE values of messages appended without a date (the
  time of the run); QUOTA root names;
- the \Recent flag and "* n RECENT" responses (unless the session asks to
  keep them): RFC 9051 deprecates \Recent and sealmail never sets it, a
  difference shown once (session "load") instead of in every FETCH;
- order where it means nothing: untagged responses between two continuation
  requests or the tagged end, FETCH data items, flags in a list, LIST mailbox
  attributes, STATUS items, ENABLED and CAPA lines;
- a mailbox name sent as an atom or as a quoted string (LIST, LSUB, STATUS,
  QUOTAROOT): always shown quoted.

Everything else — literals versus quoted strings, NIL versus "", numbers,
upper/lower case, the presence of a line — is kept, because a client sees it.
"""
import re
import time


def quote(s):
    """An IMAP quoted string for a str or bytes."""
    if isinstance(s, str):
        s = s.encode()
    return b'"' + s.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


# --------------------------------------------------------------------------
# a small tokenizer for response data

class Atom(bytes):
    pass


class Quoted(bytes):
    pass


class Literal(bytes):
    binary = False


def _atom_end(buf, i):
    """End of an atom starting at i; [ ... ] and < ... > (FETCH item names
    such as BODY[HEADER.FIELDS (FROM)]<0>) belong to the atom."""
    n = len(buf)
    while i < n:
        c = buf[i:i + 1]
        if c == b"[":
            j = buf.find(b"]", i)
            i = n if j < 0 else j + 1
            continue
        if c in (b" ", b"(", b")", b"\r", b"\n") or c == b"":
            break
        i += 1
    return i


def tokens(buf, i=0):
    """Parse a sequence of values from buf[i:]; returns (list, index).
    Stops at an unmatched ')' or at the end."""
    out = []
    n = len(buf)
    while i < n:
        c = buf[i:i + 1]
        if c == b" ":
            i += 1
        elif c == b"(":
            sub, i = tokens(buf, i + 1)
            out.append(sub)
            if i < n and buf[i:i + 1] == b")":
                i += 1
        elif c == b")":
            return out, i
        elif c == b'"':
            j, val = i + 1, b""
            while j < n and buf[j:j + 1] != b'"':
                if buf[j:j + 1] == b"\\" and j + 1 < n:
                    j += 1
                val += buf[j:j + 1]
                j += 1
            out.append(Quoted(val))
            i = j + 1
        elif c in (b"{", b"~") and re.match(rb"~?\{\d+\+?\}\r\n", buf[i:]):
            m = re.match(rb"(~?)\{(\d+)\+?\}\r\n", buf[i:])
            start = i + m.end()
            lit = Literal(buf[start:start + int(m.group(2))])
            lit.binary = bool(m.group(1))
            out.append(lit)
            i = start + int(m.group(2))
        else:
            j = _atom_end(buf, i)
            if j == i:
                j = i + 1
            out.append(Atom(buf[i:j]))
            i = j
    return out, i


def esc(b):
    text = b.decode("utf-8", "backslashreplace")
    return (text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
            .replace("\0", "\\x00"))


def show(v):
    """Canonical text of a parsed value (kinds kept apart)."""
    if isinstance(v, list):
        return "(" + " ".join(show(x) for x in v) + ")"
    if isinstance(v, Quoted):
        return '"' + esc(bytes(v)).replace('"', '\\"') + '"'
    if isinstance(v, Literal):
        return ("~" if v.binary else "") + "{%d}" % len(v) + esc(bytes(v))
    return esc(bytes(v))


def mailbox(v):
    """A mailbox name: atom, quoted or literal shown alike."""
    if isinstance(v, (Atom, Quoted, Literal)) and not isinstance(v, list):
        return '"' + esc(bytes(v)).replace('"', '\\"') + '"'
    return show(v)


def sorted_list(v):
    if isinstance(v, list):
        return "(" + " ".join(sorted((show(x) for x in v), key=str.lower)) + ")"
    return show(v)


def expand_set(text):
    """A sequence set ("1:3,7") as a list of numbers in the order given, or
    None if it is not one (or too large to expand)."""
    out = []
    for part in text.split(","):
        m = re.fullmatch(r"(\d+)(?::(\d+))?", part)
        if not m:
            return None
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) else a
        step = 1 if b >= a else -1
        if abs(b - a) > 100000:
            return None
        out.extend(range(a, b + step, step))
    return out


def compress_set(nums):
    """Numbers as a sequence set, ranges for ascending runs: [1,2,3,7] -> 1:3,7."""
    parts, i = [], 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        parts.append(str(nums[i]) if i == j else f"{nums[i]}:{nums[j]}")
        i = j + 1
    return ",".join(parts)


def canon_set(text):
    """A sequence set written the same way whatever its compaction
    (1,2,3 and 1:3 are the same set)."""
    nums = expand_set(text)
    return text if nums is None else compress_set(nums)


CAP_RE = re.compile(rb"^(?:\* (?:OK|PREAUTH) \[CAPABILITY ([^\]]*)\]|\* CAPABILITY (.*)|"
                    rb"[^ ]+ OK \[CAPABILITY ([^\]]*)\])", re.I)


def capabilities(line):
    """The set of capability names in a CAPABILITY response or response code."""
    m = CAP_RE.match(line)
    if not m:
        return None
    text = next(g for g in m.groups() if g is not None)
    return set(text.decode("utf-8", "replace").split())


STATUS_RE = re.compile(rb"^(\S+) (OK|NO|BAD|BYE|PREAUTH)(?: (.*))?$", re.S | re.I)
MONTHS = {m: i for i, m in enumerate(
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


class Normaliser:
    def __init__(self):
        self.now = time.time()
        self.keep_recent = False    # set per session by the caller

    # -- response codes
    def code(self, code):
        m = re.match(rb"([A-Za-z0-9.=-]+)(?: (.*))?$", code, re.S)
        if not m:
            return esc(code)
        name, arg = m.group(1).upper(), m.group(2)
        if name == b"CAPABILITY":
            return "CAPABILITY <caps>"
        if name == b"UIDVALIDITY":
            return "UIDVALIDITY <uidvalidity>"
        if name == b"HIGHESTMODSEQ":
            return "HIGHESTMODSEQ <modseq>"
        if name in (b"APPENDUID", b"COPYUID") and arg:
            sets = arg.decode("utf-8", "replace").split(" ")[1:]
            return name.decode() + " <uidvalidity> " + " ".join(canon_set(x) for x in sets)
        if name == b"PERMANENTFLAGS" and arg:
            toks, _ = tokens(arg)
            return "PERMANENTFLAGS " + " ".join(sorted_list(t) for t in toks)
        return esc(code)

    # -- one line
    def line(self, raw, proto, step):
        if raw.startswith(b"<"):
            return esc(raw)
        if proto == "pop3":
            return self.pop3(raw, step)
        if raw.startswith(b"+"):
            return "+ <text>" if len(raw) > 1 else "+"
        m = STATUS_RE.match(raw)
        if m and not (raw.startswith(b"* ") and re.match(rb"\* \d", raw)):
            tag, status, rest = m.group(1), m.group(2).upper(), m.group(3) or b""
            out = esc(tag) + " " + status.decode()
            if rest.startswith(b"["):
                end = rest.find(b"]")
                if end > 0:
                    out += " [" + self.code(rest[1:end]) + "]"
                else:
                    out += " [" + esc(rest) + "  <- unterminated response code]"
            return out
        if not raw.startswith(b"* "):
            return esc(raw)
        if not self.keep_recent and re.fullmatch(rb"\* \d+ RECENT", raw):
            return None
        return self.untagged(raw)

    def untagged(self, raw):
        body = raw[2:]
        word = body.split(b" ", 1)[0].upper()
        rest = body[len(word) + 1:]
        if word == b"CAPABILITY":
            return "* CAPABILITY <caps>"
        if word == b"ID":
            return "* ID <id>"
        if word in (b"FLAGS",):
            toks, _ = tokens(rest)
            return "* FLAGS " + " ".join(sorted_list(t) for t in toks)
        if word in (b"LIST", b"LSUB"):
            toks, _ = tokens(rest)
            if len(toks) >= 3:
                parts = [sorted_list(toks[0]), show(toks[1]), mailbox(toks[2])]
                parts += [show(t) for t in toks[3:]]
                return "* " + word.decode() + " " + " ".join(parts)
        if word == b"STATUS":
            toks, _ = tokens(rest)
            if len(toks) >= 2 and isinstance(toks[-1], list):
                items = toks[-1]
                pairs = []
                for k in range(0, len(items) - 1, 2):
                    name = bytes(items[k]).upper()
                    val = show(items[k + 1])
                    if name == b"UIDVALIDITY":
                        val = "<uidvalidity>"
                    elif name == b"HIGHESTMODSEQ":
                        val = "<modseq>"
                    pairs.append(name.decode() + " " + val)
                return ("* STATUS " + mailbox(toks[0]) + " (" +
                        " ".join(sorted(pairs)) + ")")
        if word == b"ENABLED":
            return "* ENABLED " + " ".join(sorted(rest.decode("utf-8", "replace").upper()
                                                  .split()))
        if word == b"QUOTAROOT":
            toks, _ = tokens(rest)
            if toks:
                return "* QUOTAROOT " + " ".join([mailbox(toks[0])] +
                                                 ["<root>"] * (len(toks) - 1))
        if word == b"QUOTA":
            toks, _ = tokens(rest)
            if len(toks) == 2:
                return "* QUOTA <root> " + show(toks[1])
        if word == b"SEARCH":
            return "* SEARCH" + esc(re.sub(rb"\(MODSEQ \d+\)", b"(MODSEQ <modseq>)",
                                           b" " + rest if rest else b""))
        if word == b"ESEARCH":
            return "* ESEARCH " + self.esearch(rest)
        if word == b"VANISHED":
            m = re.match(rb"(\(EARLIER\) )?(\S+)$", rest)
            if m:
                return ("* VANISHED " + esc(m.group(1) or b"") +
                        canon_set(m.group(2).decode("utf-8", "replace")))
        m = re.match(rb"(\d+) FETCH (.*)$", body, re.S)
        if m:
            return "* " + m.group(1).decode() + " FETCH " + self.fetch(m.group(2))
        return "* " + esc(body)

    def esearch(self, rest):
        """(TAG "x") [UID] and return data pairs in a fixed order, sets canonical."""
        text = rest.decode("utf-8", "replace")
        head = ""
        m = re.match(r'(\(TAG "[^"]*"\)\s*)', text)
        if m:
            head, text = m.group(1).strip(), text[m.end():]
        words = text.split()
        uid = ""
        if words and words[0].upper() == "UID":
            uid, words = "UID", words[1:]
        pairs = []
        for k in range(0, len(words) - 1, 2):
            name, val = words[k].upper(), words[k + 1]
            if name == "MODSEQ":
                val = "<modseq>"
            elif name == "ALL":
                val = canon_set(val)
            pairs.append(name + " " + val)
        if len(words) % 2:
            pairs.append(words[-1])
        return " ".join(x for x in [head, uid] + sorted(pairs) if x)

    def fetch(self, data):
        toks, end = tokens(data)
        if len(toks) != 1 or not isinstance(toks[0], list) or end != len(data):
            return esc(data) + "  <- not a parenthesised list"
        items = toks[0]
        pairs = []
        for k in range(0, len(items), 2):
            name = bytes(items[k])
            val = items[k + 1] if k + 1 < len(items) else Atom(b"<missing value>")
            uname = name.upper()
            if uname == b"MODSEQ":
                shown = "(<modseq>)"
            elif uname == b"FLAGS":
                if not self.keep_recent and isinstance(val, list):
                    val = [f for f in val if bytes(f).lower() != b"\\recent"]
                shown = sorted_list(val)
            elif uname == b"INTERNALDATE" and self.recent(bytes(val)):
                shown = "<time of the run>"
            else:
                shown = show(val)
            pairs.append((uname.decode("utf-8", "replace"), esc(name) + " " + shown))
        pairs.sort()
        return "(" + " ".join(p for _, p in pairs) + ")"

    def recent(self, date):
        m = re.match(rb" ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)",
                     date)
        if not m:
            return False
        import calendar
        try:
            t = calendar.timegm((int(m.group(3)), MONTHS.get(m.group(2).decode().title(), 1),
                                 int(m.group(1)), int(m.group(4)), int(m.group(5)),
                                 int(m.group(6))))
        except (ValueError, OverflowError):
            return False
        off = (int(m.group(8)) * 60 + int(m.group(9))) * 60
        t -= off if m.group(7) == b"+" else -off
        return abs(t - self.now) < 2 * 86400

    # -- POP3
    def pop3(self, raw, step):
        if raw.startswith(b"+OK"):
            if step is not None and getattr(step, "keep_text", False):
                return esc(self.uidl(raw))
            return "+OK"
        if raw.startswith(b"-ERR"):
            m = re.match(rb"-ERR (\[[^\]]*\])", raw)
            return "-ERR" + (" " + esc(m.group(1)) if m else "")
        if raw.upper().startswith(b"IMPLEMENTATION"):
            return "IMPLEMENTATION <text>"
        return esc(self.uidl(raw))

    @staticmethod
    def uidl(raw):
        return re.sub(rb"^((?:\+OK )?\d+ [0-9A-Fa-f]{8})[0-9A-Fa-f]{8}$", rb"\1<uidvalidity>",
                      raw)

    # -- a whole answer
    def response(self, lines, step):
        """Sort the untagged lines within each stretch between continuation
        requests; for POP3 CAPA, sort the capability lines."""
        if step is not None and getattr(step, "proto", "imap") == "pop3":
            if getattr(step, "sort_lines", False) and len(lines) > 2 and lines[-1] == ".":
                return [lines[0]] + sorted(lines[1:-1]) + [lines[-1]]
            return lines
        out, run = [], []
        for ln in lines:
            if ln.startswith("* "):
                run.append(ln)
            else:
                out += self.untagged_run(run)
                run = []
                out.append(ln)
        return out + self.untagged_run(run)

    @staticmethod
    def untagged_run(run):
        """Untagged lines between two non-untagged ones, order taken away:
        EXPUNGEs become the same messages expunged highest first (the order
        of EXPUNGE responses changes their numbers, not what they remove),
        VANISHED responses (not EARLIER) become one, the rest is sorted."""
        removed, vanished, rest = [], [], []
        for ln in run:
            m = re.fullmatch(r"\* (\d+) EXPUNGE", ln)
            if m:
                # the n-th message still present, counting the original numbers
                n, orig = int(m.group(1)), 0
                for orig in range(1, n + len(removed) + 1):
                    if orig not in removed:
                        n -= 1
                        if n == 0:
                            break
                removed.append(orig)
                continue
            m = re.fullmatch(r"\* VANISHED ([0-9:,]+)", ln)
            if m and expand_set(m.group(1)) is not None:
                vanished += expand_set(m.group(1))
                continue
            rest.append(ln)
        rest += [f"* {n} EXPUNGE" for n in sorted(removed, reverse=True)]
        if vanished:
            rest.append("* VANISHED " + compress_set(sorted(set(vanished))))
        return sorted(rest)
