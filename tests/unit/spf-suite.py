#!/usr/bin/python3
"""spf-suite.py — turn the openspf YAML test suites into a plain text table
that tests/unit/test-spf.c reads (so the C test needs no YAML parser).

    spf-suite.py SUITE.yml... OUTDIR     writes OUTDIR/spf-NAME.txt per suite
                                          (NAME: rfc7208 or rfc4408)

Zone data follows the suite's own driver (pyspf's testspf.py): a record of
type SPF stands for a TXT record when its name has no TXT entry at all
("auto-magic duplication", see the suite's header); SPF type 99 itself is
never served (RFC 7208 §3.1 dropped it); "TXT: NONE" marks a name that has
TXT entries but no record; TIMEOUT keeps its place among the records, since
the C driver times out a question only when no record of the asked type
came before it, as testspf.py does.

Output, one item per line, fields separated by one space, every value
written as "=" followed by its bytes with %XX for '%', space and bytes
outside 0x21-0x7e:
    S =description                  a scenario starts
    Z =name TYPE [=value...]        TYPE: A AAAA MX(=pref =host) PTR CNAME TXT TIMEOUT
    T =testname                     a test case of the scenario starts
    H =helo / I =host / M =mailfrom / X =receiver
    R =result [=result...]          acceptable results
    E =explanation                  expected exp= text ("DEFAULT": none)
    .                               the test case ends
"""
import os
import sys

import yaml


def esc(value):
    if isinstance(value, str):
        value = value.encode('utf-8')
    out = ['=']
    for b in value:
        out.append(chr(b) if 0x21 <= b <= 0x7e and b != 0x25 else '%%%02X' % b)
    return ''.join(out)


def txt_bytes(value):
    """A TXT value: one string, or a list of strings joined without separator."""
    if isinstance(value, (list, tuple)):
        return b''.join(str(s).encode('utf-8') for s in value)
    return str(value).encode('utf-8')


def zone_lines(zonedata):
    for name, records in zonedata.items():
        has_txt = any(isinstance(r, dict) and 'TXT' in r for r in records)
        generated = []
        for r in records:
            if r == 'TIMEOUT':
                yield 'Z %s TIMEOUT' % esc(name)
                continue
            (rtype, value), = r.items()
            if rtype == 'SPF':
                if not has_txt:
                    generated.append(value)
            elif rtype == 'TXT':
                if value != 'NONE':
                    yield 'Z %s TXT %s' % (esc(name), esc(txt_bytes(value)))
            elif rtype == 'MX':
                yield 'Z %s MX %s %s' % (esc(name), esc(str(value[0])), esc(str(value[1])))
            elif rtype in ('A', 'AAAA', 'PTR', 'CNAME'):
                yield 'Z %s %s %s' % (esc(name), rtype, esc(str(value)))
            else:
                raise SystemExit('unknown record type %r at %s' % (rtype, name))
        for value in generated:  # testspf.py appends them after the others
            yield 'Z %s TXT %s' % (esc(name), esc(txt_bytes(value)))


def case_lines(name, t):
    yield 'T %s' % esc(name)
    yield 'H %s' % esc(str(t.get('helo', '')))
    yield 'I %s' % esc(str(t['host']))
    yield 'M %s' % esc(str(t.get('mailfrom', '')))
    if 'receiver' in t:
        yield 'X %s' % esc(str(t['receiver']))
    results = t['result'] if isinstance(t['result'], list) else [t['result']]
    yield 'R ' + ' '.join(esc(str(r)) for r in results)
    if 'explanation' in t:
        yield 'E %s' % esc(str(t['explanation']))
    yield '.'


def convert(path, out):
    with open(path, 'rb') as f:
        for scenario in yaml.safe_load_all(f):
            if not scenario:
                continue
            out.write('S %s\n' % esc(scenario.get('description', '')))
            for line in zone_lines(scenario.get('zonedata') or {}):
                out.write(line + '\n')
            for name, t in scenario['tests'].items():
                for line in case_lines(name, t):
                    out.write(line + '\n')


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    outdir = sys.argv[-1]
    for path in sys.argv[1:-1]:
        name = os.path.basename(path).split('-')[0]
        with open(os.path.join(outdir, 'spf-%s.txt' % name), 'w') as out:
            convert(path, out)


if __name__ == '__main__':
    main()
