"""Sender authentication end to end: SPF, DKIM and DMARC on incoming mail.

Real signatures (dkimpy, OpenDKIM's tools), real swaks sessions, and DNS
answers served by libunbound from each server's test zone, so nothing is
asked of the network.  What the checks decided is read back where a user
would see it: the Authentication-Results field at the top of the stored
message, the Junk folder over IMAP, or the refusal in the SMTP session."""
import base64
import imaplib
import re
import socket
import subprocess
import uuid

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from conftest import (CATCHALL, CATCHALL_PASSWORD, DOMAIN, HOSTNAME, IO_TIMEOUT, Server,
                      split_auth_results, wait_until)

CLIENT_IP = "127.0.0.1"


def txt(value):
    """A TXT record's text as zone-file strings of at most 255 bytes."""
    parts = [value[i:i + 255] for i in range(0, len(value), 255)]
    return " ".join(f'"{p}"' for p in parts)


class Keys:
    """An RSA-2048 and an Ed25519 key pair, and their DKIM key records."""

    def __init__(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ed = ed25519.Ed25519PrivateKey.generate()

    def rsa_pem(self):
        return self.rsa.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption())

    def ed_raw(self):
        raw = self.ed.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
        return base64.b64encode(raw)

    def rsa_record(self):
        der = self.rsa.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
        return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()

    def ed_record(self):
        raw = self.ed.public_key().public_bytes(serialization.Encoding.Raw,
                                                serialization.PublicFormat.Raw)
        return "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode()


@pytest.fixture(scope="module")
def keys():
    return Keys()


def zone(keys):
    return [
        # good.test: SPF allows us, DKIM keys published, DMARC p=reject
        f'good.test. 300 IN TXT "v=spf1 ip4:{CLIENT_IP} -all"',
        f"rsa._domainkey.good.test. 300 IN TXT {txt(keys.rsa_record())}",
        f"ed._domainkey.good.test. 300 IN TXT {txt(keys.ed_record())}",
        '_dmarc.good.test. 300 IN TXT "v=DMARC1; p=reject; adkim=s"',
        # quar.test: publishes p=quarantine and no SPF that allows us
        'quar.test. 300 IN TXT "v=spf1 -all"',
        '_dmarc.quar.test. 300 IN TXT "v=DMARC1; p=quarantine"',
        # soft.test: SPF softfail, no DMARC
        'soft.test. 300 IN TXT "v=spf1 ~all"',
        # helo name with its own SPF
        f'client.good.test. 300 IN TXT "v=spf1 ip4:{CLIENT_IP} -all"',
        # the organisational-domain fallback: sub.good.test has no record
        f'sub.good.test. 300 IN TXT "v=spf1 ip4:{CLIENT_IP} -all"',
        # two forwarders that ARC-seal what they pass on; only fwd.test is trusted
        f'fwd.test. 300 IN TXT "v=spf1 ip4:{CLIENT_IP} -all"',
        f"arc._domainkey.fwd.test. 300 IN TXT {txt(keys.rsa_record())}",
        f'other-fwd.test. 300 IN TXT "v=spf1 ip4:{CLIENT_IP} -all"',
        f"arc._domainkey.other-fwd.test. 300 IN TXT {txt(keys.rsa_record())}",
    ]


@pytest.fixture(scope="module")
def auth_server(workroot, keys):
    srv = Server(workroot, "mailauth", {"auth": {"trusted_arc_sealers": "fwd.test"}})
    srv.set_zone(zone(keys))
    srv.start()
    yield srv
    srv.finish()


def message(sender, subject, body="Hello.\r\n", extra=""):
    mark = uuid.uuid4().hex
    return (f"From: <{sender}>\r\nTo: <rcpt@{DOMAIN}>\r\nSubject: {subject} {mark}\r\n"
            f"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{mark}@x>\r\n{extra}"
            f"\r\n{body}").encode()


def sign_rsa(keys, msg, domain="good.test"):
    sig = dkim.sign(msg, b"rsa", domain.encode(), keys.rsa_pem(),
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return sig.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n") + msg


def sign_ed(keys, msg):
    sig = dkim.sign(msg, b"ed", b"good.test", keys.ed_raw(), signature_algorithm=b"ed25519-sha256",
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return sig.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n") + msg


def swaks(server, tmp_path, data, sender, helo="client.good.test"):
    """Send data with swaks; (exit status, transcript, queue id or None)."""
    path = tmp_path / f"{uuid.uuid4().hex}.eml"
    path.write_bytes(data)
    argv = ["swaks", "--server", f"127.0.0.1:{server.smtp_port}", "--to", f"rcpt@{DOMAIN}",
            "--from", sender, "--helo", helo, "--timeout", str(IO_TIMEOUT), "--data", f"@{path}"]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=120)
    out = proc.stdout.decode("utf-8", "replace")
    m = re.search(r"250 2\.0\.0 Ok: queued as ([0-9a-f]{16})", out)
    return proc.returncode, out, m.group(1) if m else None


def results(server, queue_id):
    """(envelope text, our Authentication-Results unfolded, the stored rest)."""
    envelope, stored = server.queue_show(queue_id)
    ar, rest = split_auth_results(stored)
    assert ar is not None, f"no Authentication-Results in front: {stored[:300]!r}"
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", ar).decode()
    assert unfolded.startswith(f"Authentication-Results: {HOSTNAME};"), unfolded
    return envelope, unfolded, rest


def accepted(server, tmp_path, data, sender, **kw):
    rc, out, queue_id = swaks(server, tmp_path, data, sender, **kw)
    assert rc == 0 and queue_id, out
    return results(server, queue_id)


def test_rsa_signed_mail_passes_spf_dkim_and_dmarc(auth_server, keys, tmp_path):
    msg = sign_rsa(keys, message("alice@good.test", "rsa"))
    _, ar, rest = accepted(auth_server, tmp_path, msg, "alice@good.test")
    assert re.search(r"spf=pass \([^)]*\) smtp\.mailfrom=alice@good\.test;", ar), ar
    assert re.search(r"spf=pass \([^)]*\) smtp\.helo=client\.good\.test;", ar), ar
    assert re.search(r"dkim=pass .*header\.d=good\.test header\.s=rsa header\.a=rsa-sha256", ar), ar
    assert "dmarc=pass" in ar and "header.from=good.test" in ar, ar
    assert b"DKIM-Signature:" in rest  # the signature itself is kept


def test_ed25519_signature_verifies(auth_server, keys, tmp_path):
    msg = sign_ed(keys, message("bob@good.test", "ed25519"))
    _, ar, _ = accepted(auth_server, tmp_path, msg, "bob@good.test")
    assert re.search(r"dkim=pass .*header\.s=ed header\.a=ed25519-sha256", ar), ar
    assert "dmarc=pass" in ar, ar


def test_opendkim_rsa_sha1_signature_is_not_a_pass(auth_server, keys, tmp_path):
    """opendkim-testmsg signs with rsa-sha1, which RFC 8301 §3.1 forbids
    verifiers to accept: the signature is recorded as "policy", and DMARC
    still passes through aligned SPF."""
    key = tmp_path / "rsa.private"
    key.write_bytes(keys.rsa_pem())
    unsigned = message("carol@good.test", "opendkim")
    proc = subprocess.run(["opendkim-testmsg", "-C", "-d", "good.test", "-s", "rsa",
                           "-k", str(key), "-t", str(tmp_path)],
                          input=unsigned, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60)
    assert proc.returncode == 0 and b"DKIM-Signature" in proc.stdout, proc.stderr
    signed = proc.stdout.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    _, ar, _ = accepted(auth_server, tmp_path, signed, "carol@good.test")
    assert re.search(r"dkim=policy reason=\"rsa-sha1 .*header\.a=rsa-sha1", ar), ar
    assert "dmarc=pass" in ar, ar


def test_tampered_body_fails_dkim(auth_server, keys, tmp_path):
    msg = sign_rsa(keys, message("dave@good.test", "tampered"))
    msg = msg.replace(b"Hello.", b"Hellx.")
    # SPF still passes for good.test, so DMARC passes through SPF alignment
    _, ar, _ = accepted(auth_server, tmp_path, msg, "dave@good.test")
    assert "dkim=fail" in ar, ar
    assert "dmarc=pass" in ar, ar


def test_forged_author_is_refused_under_p_reject(auth_server, tmp_path):
    msg = message("ceo@good.test", "forged")
    rc, out, queue_id = swaks(auth_server, tmp_path, msg, "attacker@soft.test",
                              helo="evil.example")
    assert queue_id is None, out
    assert re.search(r"550 5\.7\.1 .*DMARC", out), out


def test_quarantine_policy_marks_the_message_for_junk(auth_server, tmp_path):
    msg = message("news@quar.test", "quarantined")
    envelope, ar, _ = accepted(auth_server, tmp_path, msg, "news@quar.test")
    assert "spf=fail" in ar and "dmarc=fail" in ar and "p=quarantine" in ar, ar
    assert "Deliver-To-Folder: Junk" in envelope, envelope


def test_softfail_and_no_dmarc_record(auth_server, tmp_path):
    msg = message("someone@soft.test", "softfail")
    envelope, ar, _ = accepted(auth_server, tmp_path, msg, "someone@soft.test",
                               helo="unknown.example")
    assert "spf=softfail" in ar and "dmarc=none" in ar and "dkim=none" in ar, ar
    assert "Junk" not in envelope


def test_forged_results_claiming_our_id_are_removed(auth_server, keys, tmp_path):
    forged = (f"Authentication-Results: {HOSTNAME}; dkim=pass header.d=bank.test\r\n"
              f"Authentication-Results: other.example; spf=pass\r\n")
    msg = message("eve@soft.test", "forged-ar", extra=forged)
    _, ar, rest = accepted(auth_server, tmp_path, msg, "eve@soft.test")
    assert b"bank.test" not in rest, rest[:500]
    assert b"Authentication-Results: other.example; spf=pass" in rest
    assert "bank.test" not in ar


def test_null_sender_checks_helo(auth_server, tmp_path):
    msg = message("mailer-daemon@good.test", "bounce")
    # an SPF pass of the HELO name (client.good.test) aligns with good.test
    _, ar, _ = accepted(auth_server, tmp_path, msg, "<>")
    assert "spf=pass" in ar and "smtp.helo=client.good.test" in ar, ar
    assert "dmarc=pass" in ar, ar


def test_subdomain_uses_the_organisational_policy(auth_server, tmp_path):
    msg = message("x@sub.good.test", "subdomain")
    # SPF passes for sub.good.test; relaxed SPF alignment with good.test's policy
    _, ar, _ = accepted(auth_server, tmp_path, msg, "x@sub.good.test")
    assert "dmarc=pass" in ar and "header.from=sub.good.test" in ar, ar


def test_quarantined_mail_lands_in_junk_over_imap(make_server, tmp_path):
    srv = make_server({"spool": {"hold": "no"}, "imap": {"plaintext_loopback": "yes"}},
                      start=False)
    srv.set_zone(['quar.test. 300 IN TXT "v=spf1 -all"',
                  '_dmarc.quar.test. 300 IN TXT "v=DMARC1; p=quarantine"'])
    srv.start()  # with the catch-all mailbox
    good = message("friend@other.test", "inbox")
    bad = message("news@quar.test", "junk")
    for data, sender in ((good, "friend@other.test"), (bad, "news@quar.test")):
        rc, out, queue_id = swaks(srv, tmp_path, data, sender)
        assert rc == 0 and queue_id, out

    def folder(name):
        imap = imaplib.IMAP4("127.0.0.1", srv.imap_port)
        try:
            imap.login(CATCHALL, CATCHALL_PASSWORD)
            imap.select(name, readonly=True)
            _, data = imap.search(None, "ALL")
            msgs = []
            for num in data[0].split():
                _, parts = imap.fetch(num, "(BODY.PEEK[HEADER])")
                msgs.append(parts[0][1])
            return msgs
        finally:
            imap.logout()

    wait_until(lambda: len(folder("INBOX")) + len(folder("Junk")) == 2, 60, 0.5,
               "both messages delivered")
    junk, inbox = folder("Junk"), folder("INBOX")
    assert len(junk) == 1 and b"Subject: junk" in junk[0], junk
    assert junk[0].startswith(f"Authentication-Results: {HOSTNAME};".encode()), junk[0][:200]
    assert b"dmarc=fail" in junk[0]
    assert len(inbox) == 1 and b"Subject: inbox" in inbox[0], inbox


def forwarded(keys, sealer):
    """A message signed by good.test, then changed and ARC-sealed by a
    mailing list at sealer (which adds a footer: the DKIM body hash breaks)."""
    original = sign_rsa(keys, message("alice@good.test", f"via {sealer}"))
    seen = (f"Authentication-Results: {sealer}; dkim=pass header.d=good.test;"
            f" spf=pass smtp.mailfrom=alice@good.test; dmarc=pass header.from=good.test\r\n")
    changed = seen.encode() + original + b"-- \r\nThe list footer\r\n"
    headers = dkim.arc_sign(changed, b"arc", sealer.encode(), keys.rsa_pem(), sealer.encode(),
                            include_headers=[b"from", b"to", b"subject", b"date"])
    return b"".join(h.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for h in headers) + changed


def test_forwarded_mail_from_a_trusted_arc_sealer_keeps_its_dmarc_pass(auth_server, keys,
                                                                       tmp_path):
    msg = forwarded(keys, "fwd.test")
    envelope, ar, _ = accepted(auth_server, tmp_path, msg, "list-bounces@fwd.test",
                               helo="mx.fwd.test")
    assert "dkim=fail" in ar and "dmarc=fail" in ar, ar  # broken by the footer
    assert re.search(r"arc=pass \(i=1 sealed by fwd\.test, trusted", ar), ar
    assert "Junk" not in envelope


def test_forwarded_mail_from_an_untrusted_arc_sealer_gets_the_policy(auth_server, keys,
                                                                      tmp_path):
    msg = forwarded(keys, "other-fwd.test")
    rc, out, queue_id = swaks(auth_server, tmp_path, msg, "list-bounces@other-fwd.test",
                              helo="mx.other-fwd.test")
    assert queue_id is None and re.search(r"550 5\.7\.1 .*DMARC", out), out


def test_broken_arc_chain_fails(auth_server, keys, tmp_path):
    msg = forwarded(keys, "fwd.test").replace(b"The list footer", b"The list fo0ter")
    rc, out, queue_id = swaks(auth_server, tmp_path, msg, "list-bounces@fwd.test",
                              helo="mx.fwd.test")
    # the seal no longer covers the body: arc=fail, and nothing is trusted
    assert queue_id is None and re.search(r"550 5\.7\.1 .*DMARC", out), out


def test_dns_that_never_answers_gives_temperror_and_the_mail_is_kept(make_server, tmp_path):
    """A resolver that never answers (a silent UDP socket on loopback as the
    only forwarder): every check ends as temperror when [auth] timeout
    strikes, and a temporary error never costs the sender the message."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        port = silent.getsockname()[1]
        srv = make_server({"dns": {"zone_file": "", "forwarders": f"127.0.0.1@{port}",
                                   "timeout": "1"},
                           "auth": {"timeout": "3"}})
        # not under .test, which unbound answers locally (RFC 6761): these
        # questions go to the silent forwarder, and only there
        _, ar, _ = accepted(srv, tmp_path, message("x@sender.org", "no-dns"), "x@sender.org",
                            helo="client.sender.org")
        assert "spf=temperror" in ar and "dmarc=temperror" in ar, ar
        assert "smtp auth spf=temperror" in srv.log_text()
    finally:
        silent.close()
