"""The disposable-inbox page in a real browser (issue #7): Debian's headless
Chromium driven by playwright-core (tests/e2e/browser/inbox.mjs, installed by
`make browser-deps`).  Mail goes in with swaks, the page must show it by
itself, hostile HTML must stay inert inside the sandboxed frame, the inbox
must survive a reload and travel with its link, deleting it must end it for
SMTP too, everything must work from the keyboard, and a screenshot shows
the page to people.

The browser never reaches beyond 127.0.0.1: every other request is aborted
and counted by the driver, and the tests assert the count.

A missing Chromium, Node.js or node_modules FAILS these tests (with the
command that fixes it): a test that cannot fail tests nothing.

Screenshots go to the test's work directory; with SEALMAIL_UPDATE_SCREENSHOTS=1
the one of an open message also replaces docs/screenshots/disposable-inbox.png.
"""
import http.client
import json
import os
import queue
import re
import shutil
import ssl
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import wait_until

HERE = Path(__file__).resolve().parent
DRIVER_DIR = HERE / "browser"
DRIVER = DRIVER_DIR / "inbox.mjs"
REPO = HERE.parents[1]
SCREENSHOT = REPO / "docs" / "screenshots" / "disposable-inbox.png"
CHROMIUM = os.environ.get("SEALMAIL_CHROMIUM", "/usr/bin/chromium")
DOMAIN = "tmp.example.test"
CALL_TIMEOUT = 60        # seconds for one driver command (each is bounded inside too)
START_TIMEOUT = 90       # seconds for Node.js and Chromium to start
COUNTDOWN_RE = re.compile(r"^(\d+ h )?\d+ min \d\d s$")


# ---- the driver -----------------------------------------------------------------------

def node_binary():
    return shutil.which("node") or shutil.which("nodejs") or "/usr/bin/node"


def missing_tools():
    """Why the browser tests cannot run, or None."""
    node = node_binary()
    if not os.access(node, os.X_OK):
        return "Node.js is not installed: apt-get install nodejs (or run `make deps-test`)"
    if not os.access(CHROMIUM, os.X_OK):
        return (f"Chromium is not installed at {CHROMIUM}: apt-get install chromium "
                "(or run `make deps-test`; SEALMAIL_CHROMIUM names another binary)")
    if not (DRIVER_DIR / "node_modules" / "playwright-core" / "package.json").exists():
        return ("playwright-core is not installed: run `make browser-deps` "
                "(npm ci --prefix tests/e2e/browser)")
    return None


class DriverError(AssertionError):
    pass


class Browser:
    """inbox.mjs as a child process: one JSON command a line in, one reply out."""

    def __init__(self, log_path):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen([node_binary(), str(DRIVER)], cwd=DRIVER_DIR,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, env=dict(os.environ, NO_COLOR="1", FORCE_COLOR="0"))
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.next_id = 0
        first = self._line(START_TIMEOUT, "the driver to start Chromium")
        if not first.get("ready"):
            self.close()
            pytest.fail(f"the browser driver could not start: {first.get('error')}\n"
                        f"{self.log_tail()}", pytrace=False)
        self.version = first["browser"]

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.put(raw)
        self.lines.put(None)

    def _line(self, timeout, what):
        try:
            raw = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise DriverError(f"timed out after {timeout}s waiting for {what}\n{self.log_tail()}")
        if raw is None:
            raise DriverError(f"the driver exited ({self.proc.poll()}) while waiting for "
                              f"{what}\n{self.log_tail()}")
        return json.loads(raw)

    def call(self, cmd, timeout=CALL_TIMEOUT, **args):
        self.next_id += 1
        msg = dict(args, id=self.next_id, cmd=cmd)
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        self.proc.stdin.flush()
        reply = self._line(timeout, f"the reply to {cmd}")
        assert reply.get("id") == self.next_id, reply
        if not reply["ok"]:
            raise DriverError(f"{cmd} {args}: {reply['error']}")
        return reply["result"]

    def log_tail(self, n=40):
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


class Tab:
    """One browser context (its own storage, like a fresh browser) with one page."""

    expect_blocked = False  # set by a test that made the browser try a remote host

    def __init__(self, browser, name):
        self.b, self.name = browser, name
        browser.call("context", ctx=name)

    def __getattr__(self, cmd):
        return lambda **args: self.b.call(cmd, ctx=self.name, **args)


# ---- fixtures -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(workroot, request):
    from conftest import Server, finish_shared
    srv = Server(workroot, "browser", {
        "spool": {"hold": "no"},
        "disposable": {"domains": DOMAIN, "ttl": "900", "max_ttl": "3600",
                       "create_per_hour": "1000", "sweep_interval": "1"},
    })
    srv.start()
    yield srv
    finish_shared(srv, request)


@pytest.fixture(scope="module")
def browser(workroot):
    why = missing_tools()
    if why:
        pytest.fail(why, pytrace=False)
    b = Browser(workroot / "browser-driver.log")
    yield b
    b.close()


@pytest.fixture
def tabs(browser, site, request):
    """tabs("name") opens a fresh context on the site; each is checked and
    closed when the test ends: nothing left 127.0.0.1, no page error."""
    assert site.running(), site.log_tail()
    since = len(site.log_text())
    made = []
    base = f"https://127.0.0.1:{site.https_port}/"

    def factory(name, url=base):
        tab = Tab(browser, f"{request.node.name}-{name}")
        made.append(tab)
        if url:
            assert tab.goto(url=url)["status"] == 200
        return tab

    factory.base = base
    yield factory
    for tab in made:
        stats = tab.stats()
        tab.close()
        assert stats["blocked"] == [] or tab.expect_blocked, stats["blocked"]
        assert stats["pageErrors"] == [], stats["pageErrors"]
    site.check_log(since)


def swaks(srv, to, *args):
    return subprocess.run(["swaks", "--server", f"127.0.0.1:{srv.smtp_port}", "--to", to,
                           "--from", "sender@example.org", "--helo", "client.example.org",
                           *args], capture_output=True, text=True, timeout=60)


def send(srv, to, subject, *args):
    p = swaks(srv, to, "--header", f"Subject: {subject}", *args)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def send_html(srv, to, subject, html, tmp_path):
    body = tmp_path / f"{abs(hash(subject))}.html"
    body.write_text(html)
    return send(srv, to, subject, "--add-header", "MIME-Version: 1.0",
                "--add-header", "Content-Type: text/html; charset=utf-8", "--body", f"@{body}")


def api_messages(srv, token):
    """The inbox's messages as the API lists them."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = http.client.HTTPSConnection("127.0.0.1", srv.https_port, context=ctx, timeout=30)
    try:
        c.request("GET", "/api/v1/inbox/messages", headers={"Authorization": f"Bearer {token}"})
        r = c.getresponse()
        body = r.read()
        assert r.status == 200, (r.status, body)
        return json.loads(body)["messages"]
    finally:
        c.close()


def errors(stats):
    """Console errors, less the failed loads of the requests the driver blocked."""
    return [c for c in stats["console"] if c["type"] == "error" and not (
        c["text"].startswith("Failed to load resource: net::ERR_BLOCKED_BY_CLIENT")
        and c["where"] in stats["blocked"])]


def list_requests(stats):
    return [r for r in stats["requests"] if r == "GET /api/v1/inbox/messages"]


# ---- a: address, countdown, live list, the message in the frame ------------------------

def test_new_address_and_mail_arrives_live(tabs, site):
    tab = tabs("a")
    st = tab.inbox()
    local, domain = st["address"].split("@")
    assert domain == DOMAIN and re.fullmatch(r"[a-z][a-z2-9]{11}", local), st
    assert COUNTDOWN_RE.match(st["countdown"]), st["countdown"]
    minutes = int(st["countdown"].split(" min")[0])
    assert 13 <= minutes <= 15, st["countdown"]          # ttl 900 s
    assert st["inboxVisible"] and not st["expiredVisible"] and st["emptyVisible"], st
    assert st["entries"] == [] and not st["readerVisible"]
    assert re.fullmatch(r"[0-9a-f]{64}", st["token"])
    assert st["keep"] == f"{tabs.base}#t={st['token']}"

    # the countdown runs (it ticks once a second, not in step with the clock)
    deadline = time.monotonic() + 5
    while tab.state()["countdown"] == st["countdown"]:
        assert time.monotonic() < deadline, "the countdown stands still"
        time.sleep(0.2)

    subject = "Hello from swaks"
    lists = len(list_requests(tab.stats()))
    tab.watch(subject=subject)
    t0 = time.time()
    send(site, st["address"], subject, "--body", "Plain words for the browser test.\n")
    t1 = time.time()
    seen = tab.appeared(subject=subject)
    print(f"\nswaks start -> entry in the page {seen['at'] / 1000 - t0:.3f} s; "
          f"swaks exit -> entry {seen['at'] / 1000 - t1:.3f} s (swaks took {t1 - t0:.3f} s)")

    # it came through the live stream: the page did not ask for the list again
    stats = tab.stats()
    assert len(list_requests(stats)) == lists, stats["requests"]
    assert stats["requests"].count("GET /api/v1/inbox/events") == 1, stats["requests"]
    st = tab.state()
    assert st["entries"] == [{"subject": subject, "unseen": True}] and not st["emptyVisible"]

    f = tab.open(subject=subject, expect="Plain words for the browser test.")
    assert f["url"] == "about:srcdoc"
    assert f["sandbox"].split() == ["allow-popups", "allow-popups-to-escape-sandbox"]
    assert "allow-scripts" not in f["sandbox"] and "allow-same-origin" not in f["sandbox"]
    assert any("default-src 'none'" in c and "img-src data:;" in c for c in f["csp"]), f["csp"]
    assert tab.state()["entries"] == [{"subject": subject, "unseen": False}]
    stats = tab.stats()
    assert stats["dialogs"] == [] and errors(stats) == [], stats


def test_mail_before_the_stream_opens_is_listed(tabs, site):
    """The stream tells only what arrives after it opened: a message that came
    between the first list and the stream must still be shown."""
    tab = tabs("gap", url=None)
    tab.hold_stream()
    assert tab.goto(url=tabs.base)["status"] == 200
    st = tab.inbox()
    tab.wait_held(n=1)           # the page has its list and waits for its stream
    send(site, st["address"], "in the gap")
    wait_until(lambda: api_messages(site, st["token"]), 20, what="the message delivered")
    assert tab.state()["entries"] == []
    tab.watch(subject="in the gap")
    assert tab.release_stream() == 1
    tab.appeared(subject="in the gap")
    # and the stream is live from there on
    tab.watch(subject="after the gap")
    send(site, st["address"], "after the gap")
    tab.appeared(subject="after the gap")
    assert [e["subject"] for e in tab.state()["entries"]] == ["after the gap", "in the gap"]


# ---- b: hostile HTML stays inert ---------------------------------------------------------

REMOTE_IMGS = ("https://tracker.example/pixel.gif", "http://tracker.example/plain.png")
REMOTE_IMAGES = REMOTE_IMGS + ("https://evil.example/table.png",)  # <table background>
HOSTILE = """<html><head><base href="https://evil.example/">
<meta http-equiv="refresh" content="0;url=https://evil.example/refresh">
<link rel="stylesheet" href="https://evil.example/style.css">
<style>@import url(https://evil.example/import.css); body { background: url(https://evil.example/css.png) }</style>
<script>alert("head script")</script></head>
<body onload="alert('body onload')">
<p style="color: red; background-image: url(https://evil.example/bg.png); width: expression(alert('expression'))">Hostile hello</p>
<img src="https://tracker.example/pixel.gif" onerror="alert('img onerror')" alt="pixel">
<img src="http://tracker.example/plain.png" onload="alert('img onload')">
<img src="x" onerror="alert('broken img onerror')">
<a id="js" href="javascript:alert('javascript link')">click me</a>
<a href="  JaVaScRiPt:alert('spaced javascript link')">spaced</a>
<a href="jav&#x09;ascript:alert('tab javascript link')">tabbed</a>
<a href="data:text/html,<script>alert('data link')</script>">data link</a>
<a href="https://example.org/ok">fine link</a>
<form action="https://evil.example/steal"><input name="password" autofocus onfocus="alert('onfocus')"><button>go</button></form>
<svg onload="alert('svg onload')"><script>alert('svg script')</script><image href="https://evil.example/svg.png"/><a xlink:href="javascript:alert('svg link')"><text>svg link</text></a></svg>
<math><maction actiontype="statusline" xlink:href="javascript:alert('math')">math</maction></math>
<iframe src="https://evil.example/frame"></iframe>
<iframe srcdoc="<script>alert('srcdoc')</script>"></iframe>
<object data="https://evil.example/object.swf"></object><embed src="https://evil.example/embed.swf">
<video poster="https://evil.example/poster.png" src="https://evil.example/video.mp4"></video>
<details open ontoggle="alert('ontoggle')"><summary>details</summary></details>
<table background="https://evil.example/table.png"><tr><td>cell</td></tr></table>
<div onmouseover="alert('mouseover')">Hover here</div>
<noscript><p title="</noscript><img src=x onerror=alert('mxss')>">mxss</p></noscript>
</body></html>"""


def test_hostile_html_stays_inert(tabs, site, tmp_path):
    tab = tabs("b")
    address = tab.inbox()["address"]
    subject = "Hostile"
    tab.watch(subject=subject)
    send_html(site, address, subject, HOSTILE, tmp_path)
    tab.appeared(subject=subject)

    f = tab.open(subject=subject, expect="Hostile hello")
    tab.settle(ms=1500)  # a meta refresh, an onerror, a timer would all have fired by now
    stats = tab.stats()
    assert stats["dialogs"] == [], stats["dialogs"]
    assert errors(stats) == [], errors(stats)
    assert stats["pageErrors"] == []
    assert stats["blocked"] == [], stats["blocked"]      # nothing tried to leave 127.0.0.1
    f2 = tab.frame()
    assert f2["url"] == "about:srcdoc" and "Hostile hello" in f2["text"]  # no refresh happened
    assert tab.state()["url"] == tabs.base                                # nor in the page

    for what in ("script", "form", "input", "iframe", "frame", "object", "embed", "svg", "math",
                 "base", "link", "[onload]", "[onerror]", "[onclick]",
                 "[onmouseover]", "[onfocus]", "[ontoggle]"):
        assert f["counts"][what] == 0, (what, f["html"])
    # the frame's own policy is the only meta, the first thing in the document;
    # no style sheet, only inline style
    assert f["counts"]["meta"] == 1 and len(f["csp"]) == 1, f["html"]
    assert f["html"].startswith('<html><head><meta http-equiv="Content-Security-Policy"')
    assert f["counts"]["style"] == 0, f["html"]
    # remote addresses survive only in the sanitiser's inert data-sm-* attributes
    low = re.sub(r' data-sm-[a-z]+="[^"]*"', "", f["html"]).lower()
    for bad in ("javascript:", "expression(", "url(", "evil.example", "tracker.example", "alert("):
        assert bad not in low, (bad, f["html"])
    # links: only the harmless one keeps an href, opening outside the page
    hrefs = [l for l in f["links"] if l["href"] or l["xlink"]]
    assert hrefs == [{"tag": "a", "text": "fine link", "href": "https://example.org/ok",
                      "xlink": None, "target": "_blank", "rel": "noopener noreferrer"}], f["links"]
    # the javascript: link's text may stay, but there is nothing to follow
    clicked = tab.click_in_frame(selector="text=click me")
    assert not clicked["pageChanged"] and clicked["frameUrl"] == "about:srcdoc", clicked
    assert clicked["popups"] == [] and tab.stats()["dialogs"] == []

    # remote images wait for the reader
    remote = [i for i in f["images"] if i["dataSrc"]]
    assert sorted(i["dataSrc"] for i in remote) == sorted(REMOTE_IMGS), f["images"]
    assert all(not i["src"] or i["src"].startswith("data:") for i in f["images"]), f["images"]
    button = tab.button()
    assert button == {"visible": True, "text": f"Load remote images ({len(REMOTE_IMAGES)})"}

    tab.expect_blocked = True
    tab.click(selector="#remote")
    tab.reader(subject=subject, expect="Hostile hello")
    stats = tab.wait_blocked(n=len(REMOTE_IMAGES))
    # the browser tried exactly the remote images (the route handler stopped
    # them); an http: image on an https: page is upgraded to https: (mixed content)
    assert sorted(set(stats["blocked"])) == \
        sorted(u.replace("http://", "https://") for u in REMOTE_IMAGES), stats["blocked"]
    assert not tab.button()["visible"]
    f = tab.frame()
    assert sorted(i["src"] for i in f["images"] if i["src"] and "tracker" in i["src"]) == \
        sorted(REMOTE_IMGS)
    assert any("img-src data: https: http:" in c for c in f["csp"]), f["csp"]
    tab.settle(ms=500)
    stats = tab.stats()
    assert stats["dialogs"] == [] and errors(stats) == [], stats  # the failed images ran nothing

    # control: the detector does see a script that reaches the frame
    tab.control_script()
    stats = tab.stats()
    blocked = [c for c in errors(stats) if "Blocked script execution" in c["text"]]
    assert blocked and stats["dialogs"] == [], stats["console"]


# ---- c: the inbox stays, travels with its link, and can be ended -------------------------

def test_reload_keep_link_and_delete(tabs, site):
    first = tabs("first")
    st = first.inbox()
    address, token = st["address"], st["token"]

    first.reload()
    again = first.inbox()
    assert (again["address"], again["token"]) == (address, token)

    # the link opens the same inbox in a browser that never saw it
    other = tabs("other", url=None)
    assert other.goto(url=st["keep"])["status"] == 200
    there = other.inbox()
    assert there["address"] == address and there["token"] == token
    assert "#t=" not in there["url"]  # the key leaves the address bar

    # mail reaches both
    for tab in (first, other):
        tab.watch(subject="for both")
    send(site, address, "for both")
    for tab in (first, other):
        tab.appeared(subject="for both")

    other.accept_dialogs(n=1)
    other.click(selector="#delete")
    other.wait_visible(selector="#expired")
    stats = other.stats()
    assert [(d["type"], d["accepted"]) for d in stats["dialogs"]] == [("confirm", True)], stats
    assert "Delete this inbox" in stats["dialogs"][0]["message"]
    gone = other.state()
    assert not gone["inboxVisible"] and gone["token"] is None and gone["entries"] == []
    assert not gone["readerVisible"]
    assert other.focused()["id"] == "renew"   # the focus is not lost with the button
    # the other tab learns it from the live stream, without a reload
    first.wait_visible(selector="#expired")
    assert first.state()["token"] is None

    p = swaks(site, address)
    assert p.returncode != 0 and "550" in p.stdout, p.stdout

    # and a new one can be had
    other.click(selector="#renew")
    other.wait_visible(selector="#inbox")
    fresh = other.inbox()
    assert fresh["address"] != address and fresh["token"] != token and fresh["inboxVisible"]


# ---- d: everything by keyboard ---------------------------------------------------------

def test_keyboard_only(tabs, site):
    tab = tabs("d")
    address = tab.inbox()["address"]
    for subject in ("first by keyboard", "second by keyboard"):
        tab.watch(subject=subject)
        send(site, address, subject, "--body", f"Body of the {subject} message.\n")
        tab.appeared(subject=subject)

    trail = [t for t in tab.tab_trail(n=12) if t]
    ids = [t["id"] for t in trail]
    for control in ("copy", "extend", "delete", "keep"):
        assert control in ids, trail
    subjects = [t["subject"] for t in trail if t["subject"]]
    assert subjects[:2] == ["second by keyboard", "first by keyboard"], trail
    assert ids.index("copy") < ids.index("extend") < ids.index("delete") < ids.index("keep")
    for t in trail:  # every stop shows where the focus is
        assert not t["outline"].startswith("none"), t

    # open the older message with Tab and Enter
    tab.tab_trail(n=0)
    tab.tab_to(subject="first by keyboard", max=20)
    tab.press(key="Enter")
    tab.reader(subject="first by keyboard", expect="Body of the first by keyboard message.")

    # the reader's buttons are reachable and work with Enter too
    tab.tab_to(selector="#raw", max=20)
    reached = tab.tab_to(selector="#remove", max=5)
    assert reached["presses"] == 1, reached
    tab.press(key="Enter")
    tab.wait_hidden(selector="#reader")
    assert [e["subject"] for e in tab.state()["entries"]] == ["second by keyboard"]
    # the focus stays in the list, on the entry that took the deleted one's place
    assert tab.focused()["subject"] == "second by keyboard"
    tab.press(key="Enter")
    tab.reader(subject="second by keyboard", expect="Body of the second by keyboard message.")

    tab.tab_trail(n=0)
    tab.tab_to(selector="#extend", max=10)
    tab.press(key="Enter")
    st = tab.state()
    for _ in range(50):
        if st["status"]:
            break
        time.sleep(0.1)
        st = tab.state()
    assert st["status"] == "Extended.", st
    assert int(st["countdown"].split(" min")[0].split(" h ")[-1]) >= 25 or " h " in st["countdown"]


# ---- e: a picture of the page ------------------------------------------------------------

SHOWCASE = """<html><body style="font-family: sans-serif">
<h2 style="color: #1d4ed8">Your sign-up code</h2>
<p>Hello, thanks for trying the service. Your one-time code is:</p>
<p style="font-size: 28px; letter-spacing: 6px"><b>493 817</b></p>
<p>It is valid for ten minutes. If you did not ask for it, ignore this message.</p>
<p><a href="https://example.org/help">Help centre</a></p>
<img src="https://tracker.example/open.gif" width="1" height="1" alt="">
</body></html>"""


def png_size(path):
    head = Path(path).read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


def test_screenshot_of_an_open_message(tabs, site, tmp_path, workroot):
    tab = tabs("e")
    address = tab.inbox()["address"]
    subject = "Your sign-up code"
    tab.watch(subject=subject)
    send_html(site, address, subject, SHOWCASE, tmp_path)
    tab.appeared(subject=subject)
    tab.open(subject=subject, expect="493 817")
    path = workroot / "disposable-inbox.png"
    tab.screenshot(path=str(path))
    assert png_size(path) == (1200, 800)
    size = path.stat().st_size
    print(f"\nscreenshot {path}: {size} bytes")
    assert size < 200 * 1024, size
    if os.environ.get("SEALMAIL_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOT)
