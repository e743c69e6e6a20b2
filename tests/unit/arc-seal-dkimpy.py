#!/usr/bin/python3
"""dkimpy as an independent ARC verifier for tests/unit/test-arc-seal.c.

  arc-seal-dkimpy.py [--ed25519] DNSLINES EXPECT:MSG...

DNSLINES holds the key records, one "name<TAB>txt" a line; each MSG (a
CRLF message that our sealer sealed) is checked with dkim.arc_verify(),
which must give EXPECT ("pass", "fail" or "none").  One line a message is
printed: the file, what dkimpy says, the instance count and its reason.
Exit 0 when every message gave what was expected.  Nothing here touches
the network: dnsfunc answers from DNSLINES only.

dkimpy (1.1.4) accepts only a=rsa-sha256 in ARC fields (its
ARC_HASH_ALGORITHMS): RFC 8617 names no other algorithm, though it takes
a= from DKIM.  With --ed25519 that table is widened to ed25519-sha256
(RFC 8463), dkimpy's DKIM code then checks the Ed25519 signatures, so that
our Ed25519 seals get an independent check too.  Without it, an Ed25519
seal must fail: receivers like dkimpy will not accept it.
"""
import hashlib
import sys

import dkim


def main(argv):
    if len(argv) > 1 and argv[1] == "--ed25519":
        dkim.ARC_HASH_ALGORITHMS[b"ed25519-sha256"] = hashlib.sha256
        argv = argv[:1] + argv[2:]
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    table = {}
    with open(argv[1], encoding="ascii") as f:
        for line in f.read().splitlines():
            name, txt = line.split("\t", 1)
            table[name.lower().rstrip(".") + "."] = txt.encode()

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return table.get(name.lower().rstrip(".") + ".")

    bad = 0
    for arg in argv[2:]:
        want, path = arg.split(":", 1)
        with open(path, "rb") as f:
            data = f.read()
        cv, results, reason = dkim.arc_verify(data, dnsfunc=dnsfunc)
        got = (cv or b"none").decode()
        print(f"{path}: dkimpy says {got} over {len(results)} set(s) ({reason})")
        if got != want:
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
