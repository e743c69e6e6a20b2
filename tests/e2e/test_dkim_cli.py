"""`sealmail dkim` and `sealmail dns records`: DKIM keys and what a domain publishes.

What a user sees, checked with independent implementations:
- the output of `dkim show` and `dns records` loads as zone text in dnspython
  (so every TXT character-string is at most 255 bytes);
- dkimpy parses every DKIM key record it finds there;
- the private key stored in the directory, opened the way queued opens it
  (the wrap format of src/store/dkimkeys.h, with PyNaCl and the spool secret
  key), signs a message in dkimpy that dkimpy verifies against the printed
  records: the published key is the stored key;
- pyspf evaluates the printed SPF record (over the printed zone, no network);
- the DMARC, MTA-STS (record and policy file) and TLS-RPT records follow
  RFC 7489, RFC 8461 and RFC 8460.
"""
import re
import sqlite3
import time

import dkim
import dns.name
import dns.rdatatype
import dns.zone
import nacl.bindings as sodium
import pytest
import spf
from cryptography.hazmat.primitives import serialization

from conftest import DOMAIN, HOSTNAME

SELECTOR_RE = r"s\d{6}[re]\d*"
MESSAGE = (b"From: Alice <alice@" + DOMAIN.encode() + b">\r\n"
           b"To: bob@example.org\r\n"
           b"Subject: signed with the key sealmail stored\r\n"
           b"Message-ID: <dkim-cli-1@" + DOMAIN.encode() + b">\r\n"
           b"\r\n"
           b"Hello Bob.\r\n")


@pytest.fixture
def host(make_server):
    """An initialised data directory with DOMAIN hosted, no server running."""
    srv = make_server(start=False)
    srv.cli("init")
    srv.cli("domain", "add", DOMAIN)
    return srv


def zone_of(text):
    """The zone-file text as dnspython reads it (absolute names)."""
    return dns.zone.from_text(text, origin=DOMAIN + ".", relativize=False, check_origin=False)


def txt_records(zone):
    """{owner (no final dot): [joined TXT value, ...]}."""
    out = {}
    for name, node in zone.nodes.items():
        rds = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.TXT)
        if rds is None:
            continue
        for rd in rds:
            assert all(len(s) <= 255 for s in rd.strings)
            out.setdefault(name.to_text(omit_final_dot=True), []).append(
                b"".join(rd.strings).decode())
    return out


def dkim_keys(zone):
    """{selector: record} of the zone's DKIM key records."""
    suffix = "._domainkey." + DOMAIN
    return {name[:-len(suffix)]: values[0] for name, values in txt_records(zone).items()
            if name.endswith(suffix)}


def dnsfunc_of(zone):
    """A dkimpy DNS function answering TXT questions from zone."""
    records = txt_records(zone)

    def lookup(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        values = records.get(name.rstrip(".").lower())
        return values[0].encode() if values else None
    return lookup


def show_states(host):
    """{selector: state} from the comments of `dkim show`."""
    out = host.cli("dkim", "show", DOMAIN).stdout
    zone_of(out)  # the whole output is zone text
    return dict(re.findall(r"^; ([a-z0-9.-]+)  \S+  (active|pending|retired) ", out, re.M))


# --------------------------------------------------------------------------
# help and errors

@pytest.mark.parametrize("argv", [["dkim"], ["dkim", "generate"], ["dkim", "rotate"],
                                  ["dkim", "show"], ["dkim", "remove"], ["dns"],
                                  ["dns", "records"], ["dns", "mta-sts-policy"]],
                         ids=lambda a: " ".join(a))
def test_help(make_server, argv):
    srv = make_server(start=False)
    res = srv.cli(*argv, "--help")
    assert "usage: sealmail" in res.stdout and res.stderr == "", res
    assert not srv.data.exists()


def test_errors_are_clear(host):
    res = host.cli("dkim", "generate", "other.test", ok=False)
    assert res.returncode == 1 and "other.test is not hosted" in res.stderr, res
    res = host.cli("dkim", "generate", "bad..name", ok=False)
    assert res.returncode == 1 and "invalid domain name" in res.stderr, res
    res = host.cli("dkim", "generate", DOMAIN, "--selector", "no_underscore", ok=False)
    assert res.returncode == 1 and "invalid selector" in res.stderr, res
    res = host.cli("dkim", "rotate", DOMAIN, ok=False)
    assert res.returncode == 1 and "no active DKIM keys" in res.stderr, res
    res = host.cli("dkim", "frobnicate", DOMAIN, ok=False)
    assert res.returncode == 2 and "usage" in res.stderr, res
    res = host.cli("dns", "records", "other.test", ok=False)
    assert res.returncode == 1 and "other.test is not hosted" in res.stderr, res
    res = host.cli("dns", "records", DOMAIN, "--mta-sts-mode", "strict", ok=False)
    assert res.returncode == 2 and "testing or enforce" in res.stderr, res
    res = host.cli("dns", "records", DOMAIN, "--rua", "reports", ok=False)
    assert res.returncode == 1 and "--rua" in res.stderr, res
    # nothing was created by the failures
    assert show_states(host) == {}


# --------------------------------------------------------------------------
# the key life cycle

def test_generate_rotate_remove(host):
    month = time.strftime("%Y%m", time.gmtime())
    out = host.cli("dkim", "generate", DOMAIN).stdout
    keys = dkim_keys(zone_of(out))
    assert set(keys) == {f"s{month}r", f"s{month}e"}, out
    assert keys[f"s{month}r"].startswith("v=DKIM1; k=rsa; p=MIIB")
    assert keys[f"s{month}e"].startswith("v=DKIM1; k=ed25519; p=")
    res = host.cli("dkim", "generate", DOMAIN, ok=False)
    assert res.returncode == 1 and "already has DKIM keys" in res.stderr, res

    # step 1: a pending pair, published but not signing
    out = host.cli("dkim", "rotate", DOMAIN).stdout
    assert "pending" in out and f"sealmail dkim rotate {DOMAIN}" in out, out
    assert show_states(host) == {f"s{month}r": "active", f"s{month}e": "active",
                                 f"s{month}r2": "pending", f"s{month}e2": "pending"}
    res = host.cli("dkim", "rotate", DOMAIN, "--now", ok=False)
    assert res.returncode == 1 and "pending pair" in res.stderr, res
    # step 2: it signs, the old pair is retired but still listed with its record
    host.cli("dkim", "rotate", DOMAIN)
    assert show_states(host) == {f"s{month}r2": "active", f"s{month}e2": "active",
                                 f"s{month}r": "retired", f"s{month}e": "retired"}
    assert len(dkim_keys(zone_of(host.cli("dkim", "show", DOMAIN).stdout))) == 4

    # a leaked key: replaced in one step, with our own selector base
    host.cli("dkim", "rotate", DOMAIN, "--now", "--selector", "Emergency1")
    states = show_states(host)
    assert states[f"s{month}r2"] == "retired"
    out = host.cli("dkim", "show", DOMAIN).stdout
    assert "emergency1r  rsa-sha256  active" in out and "emergency1e  ed25519-sha256  active" in out

    res = host.cli("dkim", "remove", DOMAIN, "emergency1r", ok=False)
    assert res.returncode == 1 and "is active" in res.stderr, res
    res = host.cli("dkim", "remove", DOMAIN, "nosuch", ok=False)
    assert res.returncode == 1 and "no DKIM key nosuch" in res.stderr, res
    out = host.cli("dkim", "remove", DOMAIN, f"s{month}r").stdout
    assert f"s{month}r._domainkey.{DOMAIN}." in out
    assert f"s{month}r" not in show_states(host)
    assert len(show_states(host)) == 5


# --------------------------------------------------------------------------
# the stored key is the published key

def open_wrap(host, selector):
    """The PKCS#8 DER private key of selector, opened from directory.db with
    the spool secret key, as dkimkeys.h describes the wrap."""
    db = sqlite3.connect(f"file:{host.data / 'directory.db'}?mode=ro", uri=True)
    try:
        wrap, algorithm, domain = db.execute(
            "SELECT private_wrap, algorithm, domain FROM dkim_keys WHERE selector = ?",
            (selector,)).fetchone()
    finally:
        db.close()
    assert wrap[0] == 1 and wrap[1] == (1 if algorithm == "rsa-sha256" else 2)
    pk = (host.data / "keys" / "spool.pub").read_bytes()
    sk = (host.data / "keys" / "spool.key").read_bytes()
    file_key = sodium.crypto_box_seal_open(wrap[2:82], pk, sk)
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, wrap[82:106], file_key)
    ad = b"sealmail-dkim-key\0" + wrap[:2] + domain.encode() + b"\0" + selector.encode()
    der, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(state, wrap[106:], ad)
    assert tag == sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
    # bound to the row: another selector as associated data does not open it
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, wrap[82:106], file_key)
    with pytest.raises(Exception):
        sodium.crypto_secretstream_xchacha20poly1305_pull(state, wrap[106:], ad + b"x")
    return serialization.load_der_private_key(bytes(der), password=None)


def dkimpy_key(private):
    """The private key in the form dkimpy signs with."""
    if hasattr(private, "private_numbers"):  # RSA: PKCS#1 PEM
        return private.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.TraditionalOpenSSL,
                                     serialization.NoEncryption())
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    import base64
    return base64.b64encode(raw)


def test_published_records_verify_signatures_by_the_stored_keys(host):
    host.cli("dkim", "generate", DOMAIN)
    host.cli("dkim", "rotate", DOMAIN)  # a pending pair too: every published key is checked
    zone = zone_of(host.cli("dns", "records", DOMAIN).stdout)
    keys = dkim_keys(zone)
    assert len(keys) == 4
    lookup = dnsfunc_of(zone)
    for selector, record in keys.items():
        # dkimpy's own parsing of the record
        pk, bits, ktag, _ = dkim.load_pk_from_dns(f"{selector}._domainkey.{DOMAIN}.".encode(),
                                                  dnsfunc=lookup)
        rsa = "r" in selector[7:]  # s + YYYYMM, then r or e (and a counter)
        assert ktag == (b"rsa" if rsa else b"ed25519"), record
        assert bits == (2048 if rsa else 256)
        # a signature by the stored private key verifies against the record
        alg = b"rsa-sha256" if rsa else b"ed25519-sha256"
        sig = dkim.sign(MESSAGE, selector.encode(), DOMAIN.encode(),
                        dkimpy_key(open_wrap(host, selector)), signature_algorithm=alg,
                        include_headers=[b"from", b"to", b"subject", b"message-id"])
        assert dkim.verify(sig + MESSAGE, dnsfunc=lookup), (selector, record)
        # and not against the record of the other key of its algorithm
        other = [s for s in keys if s != selector and ("r" in s[7:]) == rsa]
        assert len(other) == 1
        assert not dkim.verify(sig + MESSAGE, dnsfunc=lambda name, timeout=5:
                               keys[other[0]].encode())


# --------------------------------------------------------------------------
# `dns records`

def tags(value):
    """A DMARC/TLS-RPT/MTA-STS style tag list: [(tag, value)] in order."""
    return [tuple(p.strip() for p in part.split("=", 1))
            for part in value.split(";") if part.strip()]


def mta_sts_policy(text):
    """RFC 8461 section 3.2: `key: value` lines; returns (fields, mx list)."""
    fields, mx = {}, []
    for line in text.splitlines():
        m = re.fullmatch(r"([a-z_]+): ?([\x21-\x7e]+)", line)
        assert m, f"bad policy line {line!r}"
        if m.group(1) == "mx":
            mx.append(m.group(2))
        else:
            assert m.group(1) not in fields
            fields[m.group(1)] = m.group(2)
    return fields, mx


def test_dns_records(host, monkeypatch):
    host.cli("dkim", "generate", DOMAIN)
    out = host.cli("dns", "records", DOMAIN).stdout
    zone = zone_of(out)
    txt = txt_records(zone)

    # MX: this server
    mx = zone.find_rdataset(DOMAIN + ".", dns.rdatatype.MX)
    assert [(r.preference, r.exchange.to_text()) for r in mx] == [(10, HOSTNAME + ".")]

    # SPF: exactly one record at the apex, and pyspf agrees with what it says
    spf_records = [v for v in txt[DOMAIN] if v.startswith("v=spf1")]
    assert spf_records == ["v=spf1 mx -all"]
    answers = {(DOMAIN, "TXT"): [[v.encode()] for v in txt[DOMAIN]],
               (DOMAIN, "MX"): [(10, dns.name.from_text(HOSTNAME))],
               (HOSTNAME, "A"): ["192.0.2.25"]}

    def lookup(name, qtype, *args, **kwargs):
        name = str(name).rstrip(".").lower()
        return [((name, qtype), data) for data in answers.get((name, qtype), [])]
    monkeypatch.setattr(spf, "DNSLookup", lookup)
    assert spf.check2(i="192.0.2.25", s=f"alice@{DOMAIN}", h=HOSTNAME)[0] == "pass"
    assert spf.check2(i="198.51.100.7", s=f"alice@{DOMAIN}", h="elsewhere.test")[0] == "fail"

    # DKIM: both keys, the RSA one split into several strings
    keys = dkim_keys(zone)
    assert len(keys) == 2 and all(re.fullmatch(SELECTOR_RE, s) for s in keys)
    rsa_owner = [n for n in zone.nodes if n.to_text().startswith(
        [s for s in keys if s.endswith("r")][0] + ".")][0]
    rsa_rd = list(zone.find_rdataset(rsa_owner, dns.rdatatype.TXT))[0]
    assert len(rsa_rd.strings) == 2
    assert keys == dkim_keys(zone_of(host.cli("dkim", "show", DOMAIN).stdout))

    # DMARC (RFC 7489 section 6.3): v first, a policy, reports to the domain's postmaster
    dmarc = tags(txt[f"_dmarc.{DOMAIN}"][0])
    assert dmarc[0] == ("v", "DMARC1")
    d = dict(dmarc)
    assert d["p"] in ("quarantine", "reject")
    assert d["rua"] == f"mailto:postmaster@{DOMAIN}"
    assert "ruf" not in d
    assert "p=quarantine" in out and "p=reject" in out  # the comment explains the choice

    # MTA-STS (RFC 8461 section 3.1): v=STSv1 and an id of 1..32 letters and digits
    sts = tags(txt[f"_mta-sts.{DOMAIN}"][0])
    assert sts[0] == ("v", "STSv1")
    assert re.fullmatch(r"[A-Za-z0-9]{1,32}", dict(sts)["id"])
    assert f"https://mta-sts.{DOMAIN}/.well-known/mta-sts.txt" in out
    cname = zone.find_rdataset(f"mta-sts.{DOMAIN}.", dns.rdatatype.CNAME)
    assert [r.target.to_text() for r in cname] == [HOSTNAME + "."]
    policy = host.cli("dns", "mta-sts-policy", DOMAIN).stdout
    fields, mx_names = mta_sts_policy(policy)
    assert fields["version"] == "STSv1" and fields["mode"] == "testing"
    assert mx_names == [HOSTNAME]
    assert 0 < int(fields["max_age"]) <= 31557600
    # the policy shown in the records' comments is the same file
    assert [f";   {line}" for line in policy.splitlines()] == \
        [line for line in out.splitlines() if line.startswith(";   ")]

    # TLS-RPT (RFC 8460 section 3)
    rpt = tags(txt[f"_smtp._tls.{DOMAIN}"][0])
    assert rpt == [("v", "TLSRPTv1"), ("rua", f"mailto:postmaster@{DOMAIN}")]

    # nothing else is published
    owners = {n.to_text(omit_final_dot=True) for n in zone.nodes}
    assert owners == {DOMAIN, f"_dmarc.{DOMAIN}", f"_mta-sts.{DOMAIN}", f"mta-sts.{DOMAIN}",
                      f"_smtp._tls.{DOMAIN}"} | {f"{s}._domainkey.{DOMAIN}" for s in keys}


def test_dns_records_options(host):
    base = host.cli("dns", "records", DOMAIN)
    assert "no DKIM keys" in base.stderr, base
    assert "sealmail dkim generate" in base.stdout
    again = host.cli("dns", "records", DOMAIN).stdout
    sts_id = dict(tags(txt_records(zone_of(again))[f"_mta-sts.{DOMAIN}"][0]))["id"]
    assert again == base.stdout  # stable: the id changes only with the policy

    out = host.cli("dns", "records", DOMAIN, "--mta-sts-mode", "enforce",
                   "--rua", "Reports+dmarc@Example.ORG").stdout
    txt = txt_records(zone_of(out))
    enforce_id = dict(tags(txt[f"_mta-sts.{DOMAIN}"][0]))["id"]
    assert enforce_id != sts_id
    policy = host.cli("dns", "mta-sts-policy", DOMAIN, "--mta-sts-mode", "enforce").stdout
    assert mta_sts_policy(policy)[0]["mode"] == "enforce"
    assert dict(tags(txt[f"_dmarc.{DOMAIN}"][0]))["rua"] == "mailto:Reports+dmarc@example.org"
    assert dict(tags(txt[f"_smtp._tls.{DOMAIN}"][0]))["rua"] == "mailto:Reports+dmarc@example.org"
    # reports to another domain need its consent (RFC 7489 section 7.1): said in a comment
    assert f"{DOMAIN}._report._dmarc.example.org." in out
