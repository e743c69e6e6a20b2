#!/usr/bin/python3
"""Independent DKIM/ARC implementations for test-dkim.c and test-arc.c.

Run with Debian's /usr/bin/python3 (python3-dkim, python3-yaml,
python3-cryptography) and opendkim (opendkim-tools, opendkim).  Nothing here
touches the network: DNS answers come from files given on the command line.

  helper.py dns FILE.json                 key records as "name<TAB>txt" lines
                                          (rfc8463/dns.json or dkimpy/dns-fixtures.json)
  helper.py sign-dkimpy MSG KEY D S C ALG [LEN]
                                          MSG signed by dkimpy (C = relaxed/simple...,
                                          ALG = rsa-sha256 | ed25519-sha256, LEN = 1 for l=)
  helper.py sign-opendkim MSG KEY D S C ALG
                                          MSG signed by the OpenDKIM filter in test mode
  helper.py sign-opendkim-testmsg MSG KEY D S
                                          MSG signed by opendkim-testmsg (it always
                                          uses rsa-sha1: our verifier must refuse it)
  helper.py verify-dkimpy MSG DNSLINES    exit 0 when dkimpy verifies the first (newest)
                                          signature of MSG, with the key records of DNSLINES
  helper.py batch OUTDIR                  run the commands read from stdin (one per line,
                                          "sign-dkimpy MSG KEY ...") in one process; the
                                          output of line i goes to OUTDIR/i (empty: failed)
  helper.py arc-cases YML                 the ARC validation suite flattened for C:
                                          CASE name cv / DNS name<TAB>txt / MSG n + n bytes
  helper.py arc-sign-cases YML            the ARC signing suite, flattened likewise

Every message written is CRLF; KEY is an RSA PEM file or an Ed25519 base64 seed.
"""
import base64
import json
import os
import re
import subprocess
import sys
import tempfile


def crlf(data):
    return re.sub(rb"\r?\n", b"\r\n", data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


OUT = None  # a file the batch command collects output in


def out(data):
    if OUT is not None:
        OUT.write(data)
        return
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def load_key(path):
    data = read(path).strip()
    return data, b"BEGIN" not in data


def cmd_dns(path):
    j = json.loads(read(path))
    if "records" in j:
        for name, txt in j["records"].items():
            print(f"{name}\t{txt}")
        return 0
    for name, types in j.items():
        for rr in types.get("TXT", []):
            print(f"{name}\t{''.join(rr)}")
    return 0


def cmd_sign_dkimpy(msg, key, d, s, c, alg, length="0"):
    import dkim
    data, ed = load_key(key)
    hc, bc = c.split("/")
    sig = dkim.sign(crlf(read(msg)), s.encode(), d.encode(), data,
                    canonicalize=(hc.encode(), bc.encode()),
                    signature_algorithm=alg.encode(), length=length == "1",
                    linesep=b"\r\n")
    out(sig + crlf(read(msg)))
    return 0


def ed25519_pem(seed_b64):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    k = Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed_b64))
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


def cmd_sign_opendkim(msg, key, d, s, c, alg):
    data, ed = load_key(key)
    with tempfile.TemporaryDirectory() as tmp:
        kp = os.path.join(tmp, "key.pem")
        with open(kp, "wb") as f:
            f.write(ed25519_pem(data) if ed else data + b"\n")
        os.chmod(kp, 0o600)
        conf = os.path.join(tmp, "opendkim.conf")
        with open(conf, "w") as f:
            # d= need not be the From domain: sign everything with one key
            f.write(f"Mode s\nKeyTable {tmp}/keys\nSigningTable refile:{tmp}/signers\n"
                    f"Canonicalization {c}\nSignatureAlgorithm {alg}\n"
                    "Syslog no\nRequireSafeKeys false\n")
        with open(os.path.join(tmp, "keys"), "w") as f:
            f.write(f"k1 {d}:{s}:{kp}\n")
        with open(os.path.join(tmp, "signers"), "w") as f:
            f.write("* k1\n")
        mp = os.path.join(tmp, "msg")
        with open(mp, "wb") as f:
            f.write(crlf(read(msg)).replace(b"\r\n", b"\n"))
        r = subprocess.run(["/usr/sbin/opendkim", "-x", conf, "-b", "s", "-t", mp],
                           capture_output=True, timeout=60)
    # test mode prints "opendkim: FILE:" and then the field it would add
    i = r.stdout.find(b"\nDKIM-Signature: ")
    if i < 0:
        sys.stderr.write("opendkim gave no signature: %r %r\n" % (r.stdout, r.stderr))
        return 1
    field = r.stdout[i + 1:].rstrip(b"\r\n") + b"\n"
    out(crlf(field) + crlf(read(msg)))
    return 0


def cmd_sign_opendkim_testmsg(msg, key, d, s):
    r = subprocess.run(["/usr/sbin/opendkim-testmsg", "-C", "-d", d, "-s", s, "-k", key],
                       input=crlf(read(msg)).replace(b"\r\n", b"\n"), capture_output=True,
                       timeout=60)
    if r.returncode != 0 or not r.stdout.startswith(b"DKIM-Signature"):
        sys.stderr.write("opendkim-testmsg failed: %r\n" % r.stderr)
        return 1
    out(crlf(r.stdout))
    return 0


def cmd_verify_dkimpy(msg, dnslines):
    import dkim
    table = {}
    for line in read(dnslines).decode().splitlines():
        if "\t" in line:
            name, txt = line.split("\t", 1)
            table[name.lower().rstrip(".") + "."] = txt.encode()

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return table.get(name.lower().rstrip(".") + ".")

    data = crlf(read(msg))
    d = dkim.DKIM(data)
    n = len([h for h in d.headers if h[0].lower() == b"dkim-signature"])
    if n == 0:
        print("no signature")
        return 1
    res = d.verify(idx=0, dnsfunc=dnsfunc)
    print(f"signature 0 of {n}: {'pass' if res else 'fail'}")
    return 0 if res else 1


def flatten(docs, sign):
    res = []
    for doc in docs:
        dns = doc.get("txt-records") or {}
        for name, t in doc["tests"].items():
            if sign:
                head = (f"CASE {name}\nDOMAIN {doc['domain']}\nSEL {doc['sel']}\n"
                        f"T {t['t']}\nSRVID {t['srv-id']}\nH {t['sig-headers']}\n")
                for k in ("AAR", "AMS", "AS"):
                    head += f"{k} {' '.join(str(t[k]).split())}\n"
                key = doc["privatekey"].encode()
                res.append(head.encode() + b"KEY %d\n" % len(key) + key)
            else:
                cv = t.get("cv") or "fail"  # an empty cv: in the suite means a broken chain
                res.append(f"CASE {name} {cv.lower()}\n".encode())
            for n, txt in dns.items():
                res.append(f"DNS {n}\t{txt}\n".encode())
            m = crlf((t.get("message") or "").encode())
            res.append(b"MSG %d\n" % len(m) + m + b"\n")
    return b"".join(res)


def cmd_arc_cases(path, sign=False):
    import yaml
    with open(path) as f:
        out(flatten(list(yaml.safe_load_all(f)), sign))
    return 0


def cmd_batch(outdir):
    global OUT
    for i, line in enumerate(sys.stdin.read().splitlines()):
        with open(os.path.join(outdir, str(i)), "wb") as f:
            OUT = f
            try:
                rc = main(["helper.py"] + line.split())
            except Exception as e:  # a failed signing is an empty file
                sys.stderr.write(f"{line}: {e}\n")
                rc = 1
            OUT = None
        if rc != 0:
            open(os.path.join(outdir, str(i)), "wb").close()
    return 0


def main(argv):
    cmds = {
        "batch": cmd_batch,
        "dns": cmd_dns,
        "sign-dkimpy": cmd_sign_dkimpy,
        "sign-opendkim": cmd_sign_opendkim,
        "sign-opendkim-testmsg": cmd_sign_opendkim_testmsg,
        "verify-dkimpy": cmd_verify_dkimpy,
        "arc-cases": cmd_arc_cases,
        "arc-sign-cases": lambda p: cmd_arc_cases(p, True),
    }
    if len(argv) < 2 or argv[1] not in cmds:
        sys.stderr.write(__doc__)
        return 2
    return cmds[argv[1]](*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
