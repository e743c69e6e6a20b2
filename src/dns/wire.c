/* wire.c — decoding a DNS reply in wire format (RFC 1035 §4) into a
 * struct dns_answer (answer.h).
 *
 * The packet comes from libunbound, which got it from the network: it is
 * treated as hostile.  Every read is checked against the packet end;
 * compression pointers must point strictly before the segment that holds
 * them (so a chain of them always moves backwards and cannot loop) and at
 * most DNS_WIRE_PTR_HOPS are followed per name; a name is at most 255
 * bytes in wire form; at most DNS_WIRE_AN_MAX answer records and
 * DNS_WIRE_CNAME_MAX CNAME links are looked at.  Anything malformed makes
 * the whole answer DNS_PERMFAIL: a reply that is partly wrong is not
 * partly trusted.
 *
 * Only the header, the question and the answer section are read; the
 * authority and additional sections are ignored (sealmail asks unbound,
 * which has already used them). */
#include "dns/wire.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

#define HDR_LEN 12
#define CLASS_IN 1
#define TYPE_CNAME 5
#define RCODE_SERVFAIL 2
#define RCODE_NXDOMAIN 3

struct pkt {
    const uint8_t *p;
    size_t len;
};

/* One answer-section record, located but not decoded. */
struct rrref {
    size_t owner;    /* offset of its flat owner name in the names arena */
    size_t owner_len;
    uint16_t type, class;
    uint32_t ttl;
    size_t rdoff, rdlen;
};

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint8_t lower(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

enum dns_status dns_status_from_rcode(unsigned rcode)
{
    switch (rcode) {
    case 0:
        return DNS_OK;
    case RCODE_NXDOMAIN:
        return DNS_NXDOMAIN;
    case RCODE_SERVFAIL:
        return DNS_TEMPFAIL;
    default:
        return DNS_PERMFAIL;
    }
}

bool dns_type_supported(uint16_t type)
{
    switch (type) {
    case DNS_T_A: case DNS_T_PTR: case DNS_T_MX: case DNS_T_TXT: case DNS_T_AAAA:
    case DNS_T_TLSA:
        return true;
    default:
        return false;
    }
}

/* One character of a presentation-form label, escapes decoded.  Returns
 * the number of input characters used, 0 on a bad escape. */
static size_t unescape(const char *s, uint8_t *c)
{
    if (s[0] != '\\') {
        *c = (uint8_t)s[0];
        return 1;
    }
    if (s[1] >= '0' && s[1] <= '9') {
        if (!(s[2] >= '0' && s[2] <= '9' && s[3] >= '0' && s[3] <= '9'))
            return 0;
        int v = (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
        if (v > 255)
            return 0;
        *c = (uint8_t)v;
        return 4;
    }
    if (s[1] == '\0')
        return 0;
    *c = (uint8_t)s[1];
    return 2;
}

size_t dns_name_flatten(const char *name, uint8_t out[DNS_WIRE_NAME_MAX])
{
    size_t slen = strlen(name), bs = 0;
    while (bs + 1 < slen && name[slen - 2 - bs] == '\\')
        bs++;
    if (slen > 0 && name[slen - 1] == '.' && bs % 2 == 0)
        slen--; /* the final dot is optional; an escaped dot ("\\.") is not final */
    if (slen == 0 || slen > DNS_NAME_MAX)
        return 0;
    size_t n = 0, label = 0; /* label: offset of the current length byte */
    out[n++] = 0;
    for (size_t i = 0; i < slen;) {
        if (name[i] == '.') {
            if (out[label] == 0)
                return 0; /* empty label */
            if (n + 1 >= DNS_WIRE_NAME_MAX)
                return 0;
            label = n;
            out[n++] = 0;
            i++;
            continue;
        }
        uint8_t c;
        size_t used = unescape(name + i, &c);
        if (used == 0 || i + used > slen || (uint8_t)name[i] <= 0x20 || (uint8_t)name[i] >= 0x7f)
            return 0; /* raw spaces, controls and non-ASCII: only as \DDD */
        if (out[label] == 63 || n + 1 >= DNS_WIRE_NAME_MAX)
            return 0;
        out[n++] = lower(c);
        out[label]++;
        i += used;
    }
    if (out[label] == 0)
        return 0;
    out[n++] = 0; /* the root label */
    return n;
}

/* Read the (maybe compressed) name at *off into a flat name; *off moves
 * past the name as stored there.  Returns the flat length, 0 if malformed. */
static size_t read_name(const struct pkt *pk, size_t *off, uint8_t out[DNS_WIRE_NAME_MAX])
{
    size_t pos = *off, floor = *off, after = 0, n = 0;
    unsigned hops = 0;
    for (;;) {
        if (pos >= pk->len)
            return 0;
        uint8_t c = pk->p[pos];
        if ((c & 0xC0) == 0xC0) {
            if (pos + 1 >= pk->len)
                return 0;
            size_t target = (size_t)(c & 0x3F) << 8 | pk->p[pos + 1];
            if (after == 0)
                after = pos + 2;
            /* strictly before the segment we are in: pointers only go back */
            if (target < HDR_LEN || target >= floor || ++hops > DNS_WIRE_PTR_HOPS)
                return 0;
            pos = floor = target;
            continue;
        }
        if (c & 0xC0)
            return 0; /* 0x40 and 0x80 label types are obsolete or unknown */
        if (pos + 1 + c > pk->len || n + 1 + c >= DNS_WIRE_NAME_MAX + (c == 0))
            return 0;
        out[n++] = c;
        if (c == 0)
            break;
        for (size_t i = 0; i < c; i++)
            out[n++] = lower(pk->p[pos + 1 + i]);
        pos += 1 + (size_t)c;
    }
    *off = after != 0 ? after : pos + 1;
    return n;
}

/* Presentation form of a flat name: lowercase, no final dot, "" for the
 * root; bytes other than printable ASCII, '.' and '\\' as \DDD.  Returns
 * -1 if that is longer than DNS_NAME_MAX. */
static int present_name(const uint8_t *flat, char out[DNS_NAME_MAX + 1])
{
    size_t o = 0;
    for (size_t i = 0; flat[i] != 0; i += 1 + (size_t)flat[i]) {
        if (i > 0) {
            if (o + 1 > DNS_NAME_MAX)
                return -1;
            out[o++] = '.';
        }
        for (size_t j = 1; j <= flat[i]; j++) {
            uint8_t c = flat[i + j];
            bool plain = c > 0x20 && c < 0x7f && c != '.' && c != '\\';
            if (o + (plain ? 1 : 4) > DNS_NAME_MAX)
                return -1;
            if (plain) {
                out[o++] = (char)c;
            } else {
                out[o++] = '\\';
                out[o++] = (char)('0' + c / 100);
                out[o++] = (char)('0' + c / 10 % 10);
                out[o++] = (char)('0' + c % 10);
            }
        }
    }
    out[o] = '\0';
    return 0;
}

/* A name that must fill the rest of the rdata exactly (MX, PTR, CNAME). */
static size_t rdata_name(const struct pkt *pk, size_t off, size_t end,
                         uint8_t out[DNS_WIRE_NAME_MAX])
{
    size_t n = read_name(pk, &off, out);
    return n != 0 && off == end ? n : 0;
}

static int decode_txt(const struct pkt *pk, const struct rrref *r, struct dns_rr *rr)
{
    uint8_t *text = sm_malloc(r->rdlen + 1);
    size_t n = 0, end = r->rdoff + r->rdlen;
    for (size_t p = r->rdoff; p < end;) {
        size_t l = pk->p[p];
        if (p + 1 + l > end) {
            free(text);
            return -1;
        }
        memcpy(text + n, pk->p + p + 1, l);
        n += l;
        p += 1 + l;
    }
    rr->data = text; /* n <= rdlen <= DNS_TXT_MAX */
    rr->len = n;
    return 0;
}

/* Decode one kept record and add it to a. */
static int decode_rr(const struct pkt *pk, const struct rrref *r, struct dns_answer *a)
{
    struct dns_rr rr = {.type = r->type};
    const uint8_t *rd = pk->p + r->rdoff;
    size_t end = r->rdoff + r->rdlen;
    uint8_t flat[DNS_WIRE_NAME_MAX];
    char name[DNS_NAME_MAX + 1];
    switch (r->type) {
    case DNS_T_A:
    case DNS_T_AAAA:
        if (r->rdlen != (r->type == DNS_T_A ? 4u : 16u))
            return -1;
        memcpy(rr.addr, rd, r->rdlen);
        break;
    case DNS_T_MX:
    case DNS_T_PTR: {
        size_t start = r->rdoff + (r->type == DNS_T_MX ? 2 : 0);
        if (start >= end || rdata_name(pk, start, end, flat) == 0 || present_name(flat, name) < 0)
            return -1;
        if (r->type == DNS_T_MX)
            rr.pref = get16(rd);
        rr.name = name;
        break;
    }
    case DNS_T_TXT:
        if (decode_txt(pk, r, &rr) < 0)
            return -1;
        dns_answer_add(a, &rr);
        free(rr.data);
        return 0;
    case DNS_T_TLSA:
        if (r->rdlen < 3)
            return -1;
        rr.tlsa_usage = rd[0];
        rr.tlsa_selector = rd[1];
        rr.tlsa_mtype = rd[2];
        rr.data = (uint8_t *)(uintptr_t)(rd + 3); /* copied by dns_answer_add */
        rr.len = r->rdlen - 3;
        break;
    default:
        return -1;
    }
    dns_answer_add(a, &rr);
    return 0;
}

/* Locate the answer-section records from *off on; their flat owner names
 * go into *names.  Returns 0, or -1 if malformed. */
static int index_answers(const struct pkt *pk, size_t off, struct rrref *refs, size_t an,
                         uint8_t *names)
{
    size_t used = 0;
    for (size_t i = 0; i < an; i++) {
        struct rrref *r = &refs[i];
        size_t n = read_name(pk, &off, names + used);
        if (n == 0 || off + 10 > pk->len)
            return -1;
        r->owner = used;
        r->owner_len = n;
        used += n;
        r->type = get16(pk->p + off);
        r->class = get16(pk->p + off + 2);
        r->ttl = get32(pk->p + off + 4);
        if (r->ttl > INT32_MAX)
            r->ttl = 0; /* RFC 2181 §8: a TTL with the top bit set means zero */
        r->rdlen = get16(pk->p + off + 8);
        r->rdoff = off + 10;
        if (r->rdoff + r->rdlen > pk->len)
            return -1;
        off = r->rdoff + r->rdlen;
    }
    return 0;
}

static bool owner_is(const struct rrref *r, const uint8_t *names, const uint8_t *flat, size_t n)
{
    return r->class == CLASS_IN && r->owner_len == n && memcmp(names + r->owner, flat, n) == 0;
}

/* Follow CNAMEs from the question name (cur, *curlen) within the answer
 * section; cur becomes the final name.  Returns 0, or -1 on a malformed
 * CNAME or a chain longer than DNS_WIRE_CNAME_MAX (a loop, say). */
static int follow_cnames(const struct pkt *pk, const struct rrref *refs, size_t an,
                         const uint8_t *names, uint8_t cur[DNS_WIRE_NAME_MAX], size_t *curlen)
{
    for (unsigned hops = 0;; hops++) {
        const struct rrref *c = NULL;
        for (size_t i = 0; i < an && c == NULL; i++)
            if (refs[i].type == TYPE_CNAME && owner_is(&refs[i], names, cur, *curlen))
                c = &refs[i];
        if (c == NULL)
            return 0;
        if (hops == DNS_WIRE_CNAME_MAX)
            return -1;
        *curlen = rdata_name(pk, c->rdoff, c->rdoff + c->rdlen, cur);
        if (*curlen == 0)
            return -1;
    }
}

/* The answer section of a NOERROR reply whose question has been checked. */
static struct dns_answer *decode_answers(const struct pkt *pk, size_t off, size_t an,
                                         uint8_t cur[DNS_WIRE_NAME_MAX], size_t curlen,
                                         uint16_t qtype)
{
    /* every record takes at least 11 bytes: a count the packet cannot
     * hold is malformed, and is refused before anything is allocated */
    if (an > DNS_WIRE_AN_MAX || an * 11 > pk->len - off)
        return dns_answer_new(DNS_PERMFAIL);
    struct rrref *refs = sm_calloc(an + 1, sizeof *refs);
    uint8_t *names = sm_malloc(an * DNS_WIRE_NAME_MAX + 1);
    struct dns_answer *a = dns_answer_new(DNS_OK);
    bool bad = index_answers(pk, off, refs, an, names) < 0 ||
               follow_cnames(pk, refs, an, names, cur, &curlen) < 0;
    for (size_t i = 0; i < an && !bad; i++) {
        if (refs[i].type != qtype || !owner_is(&refs[i], names, cur, curlen))
            continue;
        bad = decode_rr(pk, &refs[i], a) < 0;
        if (!bad && (a->n == 1 || refs[i].ttl < a->ttl))
            a->ttl = refs[i].ttl;
    }
    free(refs);
    free(names);
    if (bad) {
        dns_answer_free(a);
        return dns_answer_new(DNS_PERMFAIL);
    }
    return a;
}

struct dns_answer *dns_answer_from_wire(const uint8_t *pkt, size_t len, const char *qname,
                                        uint16_t qtype)
{
    uint8_t want[DNS_WIRE_NAME_MAX], got[DNS_WIRE_NAME_MAX];
    size_t wantlen = qname != NULL ? dns_name_flatten(qname, want) : 0;
    if (wantlen == 0 || !dns_type_supported(qtype) || pkt == NULL || len < HDR_LEN ||
        len > DNS_WIRE_PKT_MAX)
        return dns_answer_new(DNS_PERMFAIL);
    struct pkt pk = {pkt, len};
    unsigned rcode = pkt[3] & 0x0F;
    if (rcode != 0)
        return dns_answer_new(dns_status_from_rcode(rcode));
    /* the question must be the one we asked */
    size_t off = HDR_LEN;
    if (get16(pkt + 4) != 1)
        return dns_answer_new(DNS_PERMFAIL);
    size_t gotlen = read_name(&pk, &off, got);
    if (gotlen != wantlen || memcmp(got, want, wantlen) != 0 || off + 4 > len ||
        get16(pkt + off) != qtype || get16(pkt + off + 2) != CLASS_IN)
        return dns_answer_new(DNS_PERMFAIL);
    return decode_answers(&pk, off + 4, get16(pkt + 6), want, wantlen, qtype);
}
