"""MTA-STS (RFC 8461): queued fetches a domain's policy over HTTPS, caches
it and enforces it.

The destination is a second sealmail as remote.test's MX (mx.remote.test on
127.0.0.2, as in test_outbound.py).  A test CA made here signs the
certificates: one for mx.remote.test (the destination's SMTP certificate
when a test wants it valid) and one for mta-sts.remote.test, which a local
HTTPS server (Python's http.server with ssl) uses to serve the policy at
/.well-known/mta-sts.txt.  The sender trusts only that CA ([queue]
ca_file), finds the policy server through its test zone
(mta-sts.remote.test A 127.0.0.1) and connects to it on the port the test
chose ([queue] mta_sts_port).  Nothing leaves the machine.

Checked from the outside: with "enforce" and a valid certificate the mail
arrives over verified TLS, and the second message uses the cached policy
(no second fetch); with "enforce" and the destination's own self-signed
certificate nothing is delivered, the attempts repeat, and when the message
expires the sender gets a DSN; the same certificate under "testing" is
delivered (so the refusal above is the policy's doing); an MX host the
policy does not list is skipped; a cached policy survives a restart and
still applies when the TXT record and the policy server are gone.
"""
import datetime
import http.server
import os
import tempfile
import re
import ssl
import threading
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import CATCHALL, CATCHALL_PASSWORD, wait_until
from test_outbound import (DST_ADDR, DST_HOST, REMOTE, destination, inject, message,
                           outbound_lines, received, start_destination)

STS_HOST = f"mta-sts.{REMOTE}"


# --------------------------------------------------------------------------
# a test CA and its certificates

def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_pair(directory, stem, cert, key):
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    for p in (cert_path, key_path):
        os.chmod(p, 0o644)  # the service user reads them; a throw-away test key
    return cert_path, key_path


class Authority:
    def __init__(self, directory):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(_name("sealmail test CA"))
                     .issuer_name(_name("sealmail test CA")).public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                                  False, False), True)
                     .sign(self.key, hashes.SHA256()))
        self.path, _ = _write_pair(self.dir, "ca", self.cert, self.key)

    def issue(self, host):
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(_name(host)).issuer_name(self.cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), False)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                               False)
                .sign(self.key, hashes.SHA256()))
        return _write_pair(self.dir, host, cert, key)


class PolicyServer:
    """HTTPS on 127.0.0.1 serving one policy file; counts the fetches."""

    def __init__(self, ca, policy):
        self.policy = policy
        self.fetches = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != "/.well-known/mta-sts.txt":
                    self.send_error(404)
                    return
                server.fetches += 1
                body = server.policy.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        cert, key = ca.issue(STS_HOST)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def policy_text(mode, mx=DST_HOST, max_age=86400):
    return f"version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: {max_age}\r\n"


def sts_zone(sts_id="1", mx_host=DST_HOST):
    zone = [f"{REMOTE}. 300 IN MX 10 {mx_host}.", f"{mx_host}. 300 IN A {DST_ADDR}",
            f"{STS_HOST}. 300 IN A 127.0.0.1"]
    if sts_id is not None:
        zone.append(f'_mta-sts.{REMOTE}. 300 IN TXT "v=STSv1; id={sts_id};"')
    return zone


@pytest.fixture
def ca(workroot):
    # under the e2e root, which the service user can reach
    return Authority(Path(tempfile.mkdtemp(prefix="ca-", dir=workroot)))


@pytest.fixture
def policy_server(ca):
    servers = []

    def make(policy):
        s = PolicyServer(ca, policy)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.close()


def dst_with_cert(make_server, ca, valid):
    """The destination; valid: a CA-signed certificate for mx.remote.test,
    else its own self-signed one (made by `sealmail init`)."""
    dst = destination(make_server, start=False)
    if valid:
        cert, key = ca.issue(DST_HOST)
        dst.write_config({"smtp": {"listen": f"{DST_ADDR}:{dst.smtp_port} "
                                             f"127.0.0.1:{dst.smtp_port}"},
                          "tls": {"cert": str(cert), "key": str(key)}})
    start_destination(dst)
    return dst


def sts_source(make_server, dst, ca, server, zone, max_age="5d"):
    src = make_server(start=False, name="src")
    src.write_config({"spool": {"hold": "no"},
                      "queue": {"remote_port": str(dst.smtp_port), "retry_schedule": "1s",
                                "scan_interval": "1s", "delay_notice": "0", "max_age": max_age,
                                "ca_file": str(ca.path),
                                "mta_sts_port": str(server.port if server else 1)},
                      "dns": {"zone_file": str(src.zone_path), "trust_anchor": ""}})
    src.set_zone(zone)
    src.start()
    return src


def send_and_see_it_arrive(src, dst, prefix):
    """Queue a message at src; returns its queue id once dst holds it and
    src is done with it."""
    marker = prefix + uuid.uuid4().hex[:8]
    qid = inject(src, [f"bob@{REMOTE}"], message(marker))
    received(dst, marker)
    wait_until(lambda: f"outbound done queue={qid}" in src.log_text(), 30, 0.2, "done")
    return qid


def arrived(dst, marker):
    return any(marker.encode() in dst.queue_show(q)[1] for q in dst.queue_list())


def session_lines(src, qid):
    return [line for line in src.log_text().splitlines()
            if f"outbound session queue={qid} " in line]


# --------------------------------------------------------------------------

def test_enforce_delivers_over_verified_tls_and_caches(make_server, ca, policy_server):
    server = policy_server(policy_text("enforce"))
    dst = dst_with_cert(make_server, ca, valid=True)
    src = sts_source(make_server, dst, ca, server, sts_zone())

    qid = send_and_see_it_arrive(src, dst, "STS-")
    log = src.log_text()
    assert f"outbound mta-sts-fetched domain={REMOTE} id=1 mode=enforce" in log
    assert re.search(rf"outbound session queue={qid} .*result=delivered .*sts=enforce "
                     r"policy=mta-sts verified=yes", log), session_lines(src, qid)
    assert server.fetches == 1

    # the same id in the TXT record: the cached policy, no second fetch
    qid2 = send_and_see_it_arrive(src, dst, "STS-")
    assert f"outbound mta-sts queue={qid2} domain={REMOTE} mode=enforce source=cache" \
        in src.log_text()
    assert server.fetches == 1
    # the cache is a file in the data directory, readable by nobody else
    cached = src.data / "mta-sts" / REMOTE
    assert cached.exists() and (cached.stat().st_mode & 0o077) == 0
    assert "mode: enforce" in cached.read_text()


def test_enforce_refuses_a_wrong_certificate_then_bounces(make_server, ca, policy_server):
    server = policy_server(policy_text("enforce"))
    dst = dst_with_cert(make_server, ca, valid=False)  # self-signed: not from the CA
    src = sts_source(make_server, dst, ca, server, sts_zone(), max_age="60s")
    marker = "STSBAD-" + uuid.uuid4().hex[:8]
    qid = inject(src, [f"bob@{REMOTE}"], message(marker))

    wait_until(lambda: re.search(rf"outbound retry queue={qid} pending=1 attempts=([3-9]|\d\d)",
                                 src.log_text()), 60, 0.3, "repeated attempts")
    sessions = session_lines(src, qid)
    assert sessions and all("result=deferred" in s and "policy=mta-sts" in s and
                            "verified=no" in s for s in sessions), sessions
    assert not arrived(dst, marker)
    # never a fall-back to clear text under enforce
    assert f"tls-fallback queue={qid}" not in src.log_text()

    # max_age (60 s) passes: the message fails, and its sender is told
    def bounced():
        rows = src.mailbox("list", CATCHALL, password=CATCHALL_PASSWORD).stdout.splitlines()
        return [r for r in rows if "Undelivered Mail Returned to Sender" in r]
    wait_until(bounced, 120, 1, "the DSN in the sender's mailbox")
    uid = bounced()[0].split("\t")[0]
    dsn = src.mailbox("show", CATCHALL, uid, password=CATCHALL_PASSWORD).stdout
    assert f"Final-Recipient: rfc822; bob@{REMOTE}" in dsn and "Action: failed" in dsn
    assert "certificate" in dsn.lower(), dsn
    assert not arrived(dst, marker)
    wait_until(lambda: outbound_lines(src) == [], 30, 0.3, "the queue to empty")


def test_testing_mode_delivers_despite_a_wrong_certificate(make_server, ca, policy_server):
    server = policy_server(policy_text("testing"))
    dst = dst_with_cert(make_server, ca, valid=False)
    src = sts_source(make_server, dst, ca, server, sts_zone())
    qid = send_and_see_it_arrive(src, dst, "STSTEST-")
    assert re.search(rf"outbound session queue={qid} .*result=delivered .*sts=testing "
                     r"policy=opportunistic", src.log_text()), session_lines(src, qid)
    assert server.fetches == 1


def test_mx_host_not_in_the_policy_is_skipped(make_server, ca, policy_server):
    server = policy_server(policy_text("enforce", mx=f"other.{REMOTE}"))
    dst = dst_with_cert(make_server, ca, valid=True)
    src = sts_source(make_server, dst, ca, server, sts_zone())
    marker = "STSMX-" + uuid.uuid4().hex[:8]
    qid = inject(src, [f"bob@{REMOTE}"], message(marker))
    wait_until(lambda: f"outbound retry queue={qid}" in src.log_text(), 60, 0.2, "a deferral")
    log = src.log_text()
    assert re.search(rf"outbound host-skipped queue={qid} mx={DST_HOST} reason=\"4\.7\.5 MX "
                     rf"host {DST_HOST} is not in the domain's MTA-STS policy", log), log[-3000:]
    assert session_lines(src, qid) == []  # no connection at all
    assert not arrived(dst, marker)


def test_cached_policy_outlives_the_txt_record_and_the_server(make_server, ca, policy_server):
    server = policy_server(policy_text("enforce"))
    dst = dst_with_cert(make_server, ca, valid=True)
    src = sts_source(make_server, dst, ca, server, sts_zone())
    qid = send_and_see_it_arrive(src, dst, "STSC1-")

    # an attacker strips the TXT record and blocks the policy server, and
    # points the MX elsewhere; queued restarts in between
    server.close()
    src.stop()
    src.set_zone(sts_zone(sts_id=None, mx_host=f"evil.{REMOTE}"))
    src.start(add_domain=False)
    marker = "STSC2-" + uuid.uuid4().hex[:8]
    qid = inject(src, [f"bob@{REMOTE}"], message(marker))
    wait_until(lambda: f"outbound retry queue={qid}" in src.log_text(), 60, 0.2, "a deferral")
    log = src.log_text()
    assert f"outbound mta-sts queue={qid} domain={REMOTE} mode=enforce source=cache" in log
    assert f"MX host evil.{REMOTE} is not in the domain's MTA-STS policy" in log
    assert not arrived(dst, marker)


def test_a_new_policy_id_is_fetched_and_a_failed_fetch_keeps_the_cache(make_server, ca,
                                                                      policy_server):
    server = policy_server(policy_text("enforce"))
    dst = dst_with_cert(make_server, ca, valid=True)
    src = sts_source(make_server, dst, ca, server, sts_zone(sts_id="1"))
    qid = send_and_see_it_arrive(src, dst, "STSN1-")

    # a new id, but the server now answers garbage: the cached policy stays
    server.policy = "this is not a policy"
    src.stop()
    src.set_zone(sts_zone(sts_id="2"))
    src.start(add_domain=False)
    qid = send_and_see_it_arrive(src, dst, "STSN2-")
    log = src.log_text()
    assert re.search(rf"outbound mta-sts-fetch-failed domain={REMOTE} id=2 .*using=cached policy",
                     log), log[-3000:]
    assert f"outbound mta-sts queue={qid} domain={REMOTE} mode=enforce " \
           f"source=cache after a failed fetch" in log
    assert server.fetches == 2

    # the server publishes the new policy ("none"): fetched, and it applies
    server.policy = "version: STSv1\nmode: none\nmax_age: 600\n"
    qid = send_and_see_it_arrive(src, dst, "STSN3-")
    log = src.log_text()
    assert f"outbound mta-sts-fetched domain={REMOTE} id=2 mode=none" in log
    assert re.search(rf"outbound session queue={qid} .*sts=- policy=opportunistic", log)
    assert "id=2" in (src.data / "mta-sts" / REMOTE).read_text().splitlines()[0]
