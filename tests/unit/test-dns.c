/* test-dns.c — the wire-format decoder on hand-built packets, and the
 * resolver on a real event loop: static test zones, a signed zone
 * (DNSSEC), timeouts against a silent local forwarder, cancel, free with
 * queries in flight.  Nothing leaves the machine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dns/answer.h"
#include "dns/resolver.h"
#include "dns/wire.h"

/* ---- a packet builder ------------------------------------------------ */

struct pb {
    uint8_t b[70000];
    size_t n;
    size_t rdlen_at;
};

static void pb_u8(struct pb *p, unsigned v)
{
    p->b[p->n++] = (uint8_t)v;
}

static void pb_u16(struct pb *p, unsigned v)
{
    pb_u8(p, v >> 8);
    pb_u8(p, v & 0xff);
}

static void pb_u32(struct pb *p, uint32_t v)
{
    pb_u16(p, v >> 16);
    pb_u16(p, v & 0xffff);
}

static void pb_bytes(struct pb *p, const void *d, size_t n)
{
    memcpy(p->b + p->n, d, n);
    p->n += n;
}

/* Labels of a dotted name, then a pointer to ptr (ptr 0: the root). */
static void pb_name_ptr(struct pb *p, const char *name, unsigned ptr)
{
    while (*name != '\0') {
        size_t l = strcspn(name, ".");
        pb_u8(p, (unsigned)l);
        pb_bytes(p, name, l);
        name += l;
        if (*name == '.')
            name++;
    }
    if (ptr != 0)
        pb_u16(p, 0xC000 | ptr);
    else
        pb_u8(p, 0);
}

static void pb_name(struct pb *p, const char *name)
{
    pb_name_ptr(p, name, 0);
}

static void pb_header(struct pb *p, unsigned rcode, unsigned qd, unsigned an)
{
    p->n = 0;
    pb_u16(p, 0x1234);
    pb_u16(p, 0x8180 | rcode);
    pb_u16(p, qd);
    pb_u16(p, an);
    pb_u16(p, 0);
    pb_u16(p, 0);
}

static void pb_question(struct pb *p, const char *name, unsigned type)
{
    pb_name(p, name);
    pb_u16(p, type);
    pb_u16(p, 1);
}

/* Owner already written; type, class IN, ttl, and room for rdlength. */
static void pb_rr(struct pb *p, unsigned type, uint32_t ttl)
{
    pb_u16(p, type);
    pb_u16(p, 1);
    pb_u32(p, ttl);
    p->rdlen_at = p->n;
    pb_u16(p, 0);
}

static void pb_rr_end(struct pb *p)
{
    size_t len = p->n - p->rdlen_at - 2;
    p->b[p->rdlen_at] = (uint8_t)(len >> 8);
    p->b[p->rdlen_at + 1] = (uint8_t)len;
}

static struct dns_answer *decode(const struct pb *p, const char *q, unsigned type)
{
    return dns_answer_from_wire(p->b, p->n, q, (uint16_t)type);
}

static void expect_status(const struct pb *p, const char *q, unsigned type, enum dns_status s)
{
    struct dns_answer *a = decode(p, q, type);
    assert_int_equal(a->status, s);
    if (s != DNS_OK)
        assert_int_equal(a->n, 0);
    dns_answer_free(a);
}

/* ---- wire decoder ---------------------------------------------------- */

static void test_wire_a_aaaa(void **state)
{
    (void)state;
    struct pb p;
    pb_header(&p, 0, 1, 2);
    pb_question(&p, "Example.ORG", DNS_T_A);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, DNS_T_A, 300);
    pb_bytes(&p, "\xc0\x00\x02\x01", 4);
    pb_rr_end(&p);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, DNS_T_A, 100);
    pb_bytes(&p, "\xc0\x00\x02\x02", 4);
    pb_rr_end(&p);
    struct dns_answer *a = decode(&p, "example.org.", DNS_T_A);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->n, 2);
    assert_int_equal(a->ttl, 100);
    assert_memory_equal(a->rr[0].addr, "\xc0\x00\x02\x01", 4);
    assert_memory_equal(a->rr[1].addr, "\xc0\x00\x02\x02", 4);
    assert_int_equal(a->rr[1].type, DNS_T_A);
    dns_answer_free(a);
    /* asked for another type than the question holds */
    expect_status(&p, "example.org", DNS_T_AAAA, DNS_PERMFAIL);
    /* another name than the question */
    expect_status(&p, "example.com", DNS_T_A, DNS_PERMFAIL);

    pb_header(&p, 0, 1, 1);
    pb_question(&p, "v6.example.org", DNS_T_AAAA);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, DNS_T_AAAA, 60);
    pb_bytes(&p, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
    pb_rr_end(&p);
    a = decode(&p, "v6.example.org", DNS_T_AAAA);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->n, 1);
    assert_memory_equal(a->rr[0].addr, "\x20\x01\x0d\xb8", 4);
    assert_int_equal(a->rr[0].addr[15], 1);
    dns_answer_free(a);

    /* an A record of 5 bytes is malformed */
    pb_header(&p, 0, 1, 1);
    pb_question(&p, "example.org", DNS_T_A);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, DNS_T_A, 60);
    pb_bytes(&p, "\1\2\3\4\5", 5);
    pb_rr_end(&p);
    expect_status(&p, "example.org", DNS_T_A, DNS_PERMFAIL);
}

static void test_wire_mx_compression(void **state)
{
    (void)state;
    struct pb p;
    pb_header(&p, 0, 1, 3);
    pb_question(&p, "example.org", DNS_T_MX);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, DNS_T_MX, 3600);
    pb_u16(&p, 20);
    size_t mx2 = p.n;
    pb_name_ptr(&p, "MX2", 12); /* mx2 + pointer to the question name */
    pb_rr_end(&p);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, DNS_T_MX, 600);
    pb_u16(&p, 10);
    pb_name_ptr(&p, "backup", (unsigned)mx2); /* backup + pointer to "mx2.example.org" */
    pb_rr_end(&p);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, DNS_T_MX, 600);
    pb_u16(&p, 0);
    pb_u8(&p, 0); /* null MX (RFC 7505): "." */
    pb_rr_end(&p);
    struct dns_answer *a = decode(&p, "EXAMPLE.org", DNS_T_MX);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->n, 3);
    assert_int_equal(a->ttl, 600);
    assert_int_equal(a->rr[0].pref, 20);
    assert_string_equal(a->rr[0].name, "mx2.example.org");
    assert_int_equal(a->rr[1].pref, 10);
    assert_string_equal(a->rr[1].name, "backup.mx2.example.org");
    assert_string_equal(a->rr[2].name, "");
    dns_answer_free(a);
}

static void test_wire_txt_ptr_tlsa(void **state)
{
    (void)state;
    struct pb p;
    pb_header(&p, 0, 1, 2);
    pb_question(&p, "_dmarc.example.org", DNS_T_TXT);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, DNS_T_TXT, 300);
    pb_u8(&p, 8);
    pb_bytes(&p, "v=DMARC1", 8);
    pb_u8(&p, 0); /* an empty string between */
    pb_u8(&p, 8);
    pb_bytes(&p, "; p=none", 8);
    pb_rr_end(&p);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, DNS_T_TXT, 0x80000000u); /* top bit set: TTL 0 (RFC 2181) */
    pb_u8(&p, 1);
    pb_bytes(&p, "\0", 1); /* a NUL inside is kept, len says so */
    pb_rr_end(&p);
    struct dns_answer *a = decode(&p, "_dmarc.example.org", DNS_T_TXT);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->n, 2);
    assert_int_equal(a->rr[0].len, 16);
    assert_string_equal((char *)a->rr[0].data, "v=DMARC1; p=none");
    assert_int_equal(a->rr[1].len, 1);
    assert_int_equal(a->ttl, 0);
    dns_answer_free(a);

    /* a string running past its rdata */
    pb_header(&p, 0, 1, 1);
    pb_question(&p, "example.org", DNS_T_TXT);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, DNS_T_TXT, 300);
    pb_u8(&p, 5);
    pb_bytes(&p, "abc", 3);
    pb_rr_end(&p);
    pb_bytes(&p, "de", 2); /* bytes exist in the packet, but not in the rdata */
    expect_status(&p, "example.org", DNS_T_TXT, DNS_PERMFAIL);

    pb_header(&p, 0, 1, 1);
    pb_question(&p, "1.2.0.192.in-addr.arpa", DNS_T_PTR);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, DNS_T_PTR, 300);
    pb_name(&p, "Host.Example.NET");
    pb_rr_end(&p);
    a = decode(&p, "1.2.0.192.in-addr.arpa", DNS_T_PTR);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->n, 1);
    assert_string_equal(a->rr[0].name, "host.example.net");
    dns_answer_free(a);

    /* PTR target with odd bytes: escaped; a name shorter than its rdata */
    pb_header(&p, 0, 1, 1);
    pb_question(&p, "x.example", DNS_T_PTR);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, DNS_T_PTR, 300);
    pb_bytes(&p, "\3a.\\\0", 5);
    pb_rr_end(&p);
    a = decode(&p, "x.example", DNS_T_PTR);
    assert_int_equal(a->n, 1);
    assert_string_equal(a->rr[0].name, "a\\046\\092");
    dns_answer_free(a);
    p.b[p.rdlen_at + 1]++; /* one byte more rdata than the name */
    pb_u8(&p, 0);
    expect_status(&p, "x.example", DNS_T_PTR, DNS_PERMFAIL);

    pb_header(&p, 0, 1, 1);
    pb_question(&p, "_25._tcp.mx.example.org", DNS_T_TLSA);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, DNS_T_TLSA, 300);
    pb_bytes(&p, "\3\1\1", 3);
    uint8_t hash[32];
    for (int i = 0; i < 32; i++)
        hash[i] = (uint8_t)i;
    pb_bytes(&p, hash, 32);
    pb_rr_end(&p);
    a = decode(&p, "_25._tcp.mx.example.org", DNS_T_TLSA);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->n, 1);
    assert_int_equal(a->rr[0].tlsa_usage, 3);
    assert_int_equal(a->rr[0].tlsa_selector, 1);
    assert_int_equal(a->rr[0].tlsa_mtype, 1);
    assert_int_equal(a->rr[0].len, 32);
    assert_memory_equal(a->rr[0].data, hash, 32);
    dns_answer_free(a);
}

static void test_wire_cname_chain(void **state)
{
    (void)state;
    struct pb p;
    pb_header(&p, 0, 1, 5);
    pb_question(&p, "www.example.org", DNS_T_A);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, 5, 30);
    size_t t1 = p.n;
    pb_name(&p, "a.example.net");
    pb_rr_end(&p);
    /* answer order need not follow the chain: b first, then a -> b */
    size_t b_owner = p.n;
    pb_name(&p, "B.example.net");
    pb_rr(&p, DNS_T_A, 50);
    pb_bytes(&p, "\x0a\0\0\x01", 4);
    pb_rr_end(&p);
    pb_u16(&p, 0xC000 | (unsigned)t1);
    pb_rr(&p, 5, 40);
    pb_u16(&p, 0xC000 | (unsigned)b_owner);
    pb_rr_end(&p);
    /* an A at the question name is not at the end of the chain: dropped */
    pb_u16(&p, 0xC00C);
    pb_rr(&p, DNS_T_A, 1);
    pb_bytes(&p, "\x0a\0\0\x09", 4);
    pb_rr_end(&p);
    /* an A in class CH at the final name: dropped */
    pb_u16(&p, 0xC000 | (unsigned)b_owner);
    pb_u16(&p, DNS_T_A);
    pb_u16(&p, 3);
    pb_u32(&p, 1);
    pb_u16(&p, 4);
    pb_bytes(&p, "\x0a\0\0\x08", 4);
    struct dns_answer *a = decode(&p, "www.example.org", DNS_T_A);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->n, 1);
    assert_memory_equal(a->rr[0].addr, "\x0a\0\0\x01", 4);
    assert_int_equal(a->ttl, 50);
    dns_answer_free(a);

    /* a CNAME loop: x -> y -> x */
    pb_header(&p, 0, 1, 2);
    pb_question(&p, "x.example", DNS_T_A);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, 5, 30);
    size_t y = p.n;
    pb_name(&p, "y.example");
    pb_rr_end(&p);
    pb_u16(&p, 0xC000 | (unsigned)y);
    pb_rr(&p, 5, 30);
    pb_u16(&p, 0xC00C);
    pb_rr_end(&p);
    expect_status(&p, "x.example", DNS_T_A, DNS_PERMFAIL);

    /* a CNAME to a name without records: NODATA */
    pb_header(&p, 0, 1, 1);
    pb_question(&p, "x.example", DNS_T_A);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, 5, 30);
    pb_name(&p, "y.example");
    pb_rr_end(&p);
    a = decode(&p, "x.example", DNS_T_A);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->n, 0);
    assert_int_equal(a->ttl, 0);
    dns_answer_free(a);

    /* a chain of DNS_WIRE_CNAME_MAX links is fine, one more is not */
    for (unsigned links = DNS_WIRE_CNAME_MAX; links <= DNS_WIRE_CNAME_MAX + 1; links++) {
        pb_header(&p, 0, 1, links + 1);
        pb_question(&p, "c0.example", DNS_T_A);
        char owner[32], target[32];
        for (unsigned i = 0; i < links; i++) {
            snprintf(owner, sizeof owner, "c%u.example", i);
            snprintf(target, sizeof target, "c%u.example", i + 1);
            pb_name(&p, owner);
            pb_rr(&p, 5, 30);
            pb_name(&p, target);
            pb_rr_end(&p);
        }
        pb_name(&p, target);
        pb_rr(&p, DNS_T_A, 30);
        pb_bytes(&p, "\1\2\3\4", 4);
        pb_rr_end(&p);
        a = decode(&p, "c0.example", DNS_T_A);
        assert_int_equal(a->status, links == DNS_WIRE_CNAME_MAX ? DNS_OK : DNS_PERMFAIL);
        assert_int_equal(a->n, links == DNS_WIRE_CNAME_MAX ? 1 : 0);
        dns_answer_free(a);
    }
}

static void test_wire_rcodes(void **state)
{
    (void)state;
    struct pb p;
    pb_header(&p, 3, 1, 0);
    pb_question(&p, "nx.example.org", DNS_T_A);
    expect_status(&p, "nx.example.org", DNS_T_A, DNS_NXDOMAIN);
    pb_header(&p, 2, 1, 0);
    pb_question(&p, "sf.example.org", DNS_T_A);
    expect_status(&p, "sf.example.org", DNS_T_A, DNS_TEMPFAIL);
    pb_header(&p, 5, 1, 0); /* REFUSED */
    pb_question(&p, "r.example.org", DNS_T_A);
    expect_status(&p, "r.example.org", DNS_T_A, DNS_PERMFAIL);
    pb_header(&p, 1, 1, 0); /* FORMERR */
    expect_status(&p, "r.example.org", DNS_T_A, DNS_PERMFAIL);
    pb_header(&p, 0, 1, 0); /* NODATA */
    pb_question(&p, "nodata.example.org", DNS_T_TXT);
    struct dns_answer *a = decode(&p, "nodata.example.org", DNS_T_TXT);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->n, 0);
    dns_answer_free(a);
    /* no question, two questions, unsupported type, bad names */
    pb_header(&p, 0, 0, 0);
    expect_status(&p, "nodata.example.org", DNS_T_TXT, DNS_PERMFAIL);
    pb_header(&p, 0, 2, 0);
    pb_question(&p, "a.example", DNS_T_A);
    pb_question(&p, "a.example", DNS_T_A);
    expect_status(&p, "a.example", DNS_T_A, DNS_PERMFAIL);
    pb_header(&p, 0, 1, 0);
    pb_question(&p, "a.example", 255);
    expect_status(&p, "a.example", 255, DNS_PERMFAIL);
    expect_status(&p, "", DNS_T_A, DNS_PERMFAIL);
    a = dns_answer_from_wire(NULL, 0, "a.example", DNS_T_A);
    assert_int_equal(a->status, DNS_PERMFAIL);
    dns_answer_free(a);
    a = dns_answer_from_wire(p.b, p.n, NULL, DNS_T_A);
    assert_int_equal(a->status, DNS_PERMFAIL);
    dns_answer_free(a);
}

static void test_wire_truncation(void **state)
{
    (void)state;
    struct pb p;
    pb_header(&p, 0, 1, 2);
    pb_question(&p, "example.org", DNS_T_MX);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, DNS_T_MX, 60);
    pb_u16(&p, 10);
    pb_name_ptr(&p, "mx", 12);
    pb_rr_end(&p);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, DNS_T_TXT, 60);
    pb_u8(&p, 3);
    pb_bytes(&p, "abc", 3);
    pb_rr_end(&p);
    struct dns_answer *a = decode(&p, "example.org", DNS_T_MX);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->n, 1);
    dns_answer_free(a);
    /* every shorter prefix is malformed, and read within its bounds
     * (ASan checks: each prefix is copied to a buffer of exactly its size) */
    for (size_t len = 0; len < p.n; len++) {
        uint8_t *copy = malloc(len > 0 ? len : 1);
        memcpy(copy, p.b, len);
        a = dns_answer_from_wire(copy, len, "example.org", DNS_T_MX);
        assert_int_equal(a->status, DNS_PERMFAIL);
        dns_answer_free(a);
        free(copy);
    }
    /* an answer count the packet cannot hold */
    p.b[7] = 200;
    expect_status(&p, "example.org", DNS_T_MX, DNS_PERMFAIL);
}

static void test_wire_bad_pointers(void **state)
{
    (void)state;
    struct pb p;
    /* a pointer to itself */
    pb_header(&p, 0, 1, 1);
    pb_question(&p, "example.org", DNS_T_A);
    size_t at = p.n;
    pb_u16(&p, 0xC000 | (unsigned)at);
    pb_rr(&p, DNS_T_A, 60);
    pb_bytes(&p, "\1\2\3\4", 4);
    pb_rr_end(&p);
    expect_status(&p, "example.org", DNS_T_A, DNS_PERMFAIL);
    /* a forward pointer */
    p.b[at + 1] = (uint8_t)(at + 2);
    expect_status(&p, "example.org", DNS_T_A, DNS_PERMFAIL);
    /* into the header */
    p.b[at + 1] = 4;
    expect_status(&p, "example.org", DNS_T_A, DNS_PERMFAIL);
    /* past the end */
    p.b[at] = 0xFF;
    p.b[at + 1] = 0xFF;
    expect_status(&p, "example.org", DNS_T_A, DNS_PERMFAIL);

    /* a pointer back to the start of its own name: it points backwards,
     * but into the segment being read, so it would loop */
    pb_header(&p, 0, 1, 1);
    pb_question(&p, "example.org", DNS_T_MX);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, DNS_T_MX, 60);
    pb_u16(&p, 10);
    size_t self = p.n;
    pb_u8(&p, 1);
    pb_u8(&p, 'a');
    pb_u16(&p, 0xC000 | (unsigned)self);
    pb_rr_end(&p);
    expect_status(&p, "example.org", DNS_T_MX, DNS_PERMFAIL);

    /* two names that point at each other (one pointer must go forward) */
    pb_header(&p, 0, 1, 2);
    pb_question(&p, "example.org", DNS_T_MX);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, DNS_T_MX, 60);
    pb_u16(&p, 10);
    size_t n1 = p.n;
    pb_u8(&p, 1);
    pb_u8(&p, 'a');
    size_t ptr1 = p.n;
    pb_u16(&p, 0); /* patched below */
    pb_rr_end(&p);
    pb_u16(&p, 0xC00C);
    pb_rr(&p, DNS_T_MX, 60);
    pb_u16(&p, 20);
    size_t n2 = p.n;
    pb_u8(&p, 1);
    pb_u8(&p, 'b');
    pb_u16(&p, 0xC000 | (unsigned)n1);
    pb_rr_end(&p);
    p.b[ptr1] = (uint8_t)(0xC0 | n2 >> 8);
    p.b[ptr1 + 1] = (uint8_t)n2;
    expect_status(&p, "example.org", DNS_T_MX, DNS_PERMFAIL);

    /* label types 0x40 and 0x80 */
    pb_header(&p, 0, 1, 0);
    pb_u8(&p, 0x41);
    pb_bytes(&p, "a", 1);
    pb_u8(&p, 0);
    pb_u16(&p, DNS_T_A);
    pb_u16(&p, 1);
    expect_status(&p, "a", DNS_T_A, DNS_PERMFAIL);

    /* an owner name of more than 255 bytes built from labels */
    pb_header(&p, 0, 1, 1);
    pb_question(&p, "example.org", DNS_T_A);
    for (int i = 0; i < 5; i++) {
        pb_u8(&p, 63);
        for (int j = 0; j < 63; j++)
            pb_u8(&p, 'x');
    }
    pb_u8(&p, 0);
    pb_rr(&p, DNS_T_A, 60);
    pb_bytes(&p, "\1\2\3\4", 4);
    pb_rr_end(&p);
    expect_status(&p, "example.org", DNS_T_A, DNS_PERMFAIL);
}

static void test_name_flatten(void **state)
{
    (void)state;
    uint8_t f[DNS_WIRE_NAME_MAX];
    assert_int_equal(dns_name_flatten("", f), 0);
    assert_int_equal(dns_name_flatten(".", f), 0);
    assert_int_equal(dns_name_flatten("a..b", f), 0);
    assert_int_equal(dns_name_flatten(".a", f), 0);
    assert_int_equal(dns_name_flatten("a.b..", f), 0);
    assert_int_equal(dns_name_flatten("Ab.C.", f), 6);
    assert_memory_equal(f, "\2ab\1c\0", 6);
    assert_int_equal(dns_name_flatten("a\\.b", f), 5);
    assert_memory_equal(f, "\3a.b\0", 5);
    assert_int_equal(dns_name_flatten("a\\065\\.", f), 5);
    assert_memory_equal(f, "\3aa.\0", 5); /* \065 lowercased, escaped final dot kept */
    assert_int_equal(dns_name_flatten("a\\256", f), 0);
    assert_int_equal(dns_name_flatten("a b.example", f), 0);
    assert_int_equal(dns_name_flatten("a\nb.example", f), 0);
    assert_int_equal(dns_name_flatten("\xc3\xa9t\xc3\xa9.example", f), 0);
    assert_int_equal(dns_name_flatten("a\\032b.example", f), 13); /* escaped: fine */
    assert_int_equal(dns_name_flatten("a\\", f), 0);
    char label[80];
    memset(label, 'x', 63);
    label[63] = '\0';
    assert_int_equal(dns_name_flatten(label, f), 65);
    memset(label, 'x', 64);
    label[64] = '\0';
    assert_int_equal(dns_name_flatten(label, f), 0);
    /* 253 characters fit (with or without the final dot), 254 do not */
    char name[260];
    memset(name, 'a', sizeof name);
    for (int i = 1; i < 253; i += 2)
        name[i] = '.';
    name[253] = '\0';
    assert_int_equal(dns_name_flatten(name, f), 255);
    name[253] = '.';
    name[254] = '\0';
    assert_int_equal(dns_name_flatten(name, f), 255);
    name[253] = 'a';
    assert_int_equal(dns_name_flatten(name, f), 0);
}

/* ---- the resolver ---------------------------------------------------- */

struct fixture {
    char dir[64];
    char zone[128];      /* plain test data */
    char signed_zone[128];
    char bogus_zone[128]; /* signed, then one record changed */
    char anchor[256];
    bool have_signed;
    struct event_base *base;
};

static struct fixture fx;

#define HASH64 "0102030405060708091011121314151617181920212223242526272829303132"

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Sign a small zone with ldns (ECDSA P-256 KSK only); false if ldnsutils
 * is missing. */
static bool sign_zone(void)
{
    char path[160], cmd[1024];
    snprintf(path, sizeof path, "%s/dane.zone", fx.dir);
    write_file(path, "dane.test. 3600 IN SOA ns.dane.test. admin.dane.test. 1 3600 600 86400 300\n"
                     "dane.test. 3600 IN NS ns.dane.test.\n"
                     "ns.dane.test. 3600 IN A 192.0.2.53\n"
                     "mx.dane.test. 3600 IN A 192.0.2.25\n"
                     "_25._tcp.mx.dane.test. 3600 IN TLSA 3 1 1 " HASH64 "\n"
                     "other.dane.test. 3600 IN CNAME elsewhere.example.\n");
    snprintf(cmd, sizeof cmd,
             "cd %s && k=$(ldns-keygen -a ECDSAP256SHA256 -k dane.test) && "
             "ldns-signzone -f dane.zone.signed dane.zone \"$k\" && "
             "cp \"$k.ds\" anchor.ds && "
             "sed 's/192\\.0\\.2\\.25/192.0.2.26/' dane.zone.signed > bogus.zone.signed",
             fx.dir);
    if (system(cmd) != 0)
        return false;
    snprintf(fx.signed_zone, sizeof fx.signed_zone, "%s/dane.zone.signed", fx.dir);
    snprintf(fx.bogus_zone, sizeof fx.bogus_zone, "%s/bogus.zone.signed", fx.dir);
    snprintf(fx.anchor, sizeof fx.anchor, "%s/anchor.ds", fx.dir);
    return true;
}

static int setup(void **state)
{
    (void)state;
    snprintf(fx.dir, sizeof fx.dir, "/tmp/sealmail-test-dns-XXXXXX");
    if (mkdtemp(fx.dir) == NULL)
        return -1;
    snprintf(fx.zone, sizeof fx.zone, "%s/test.zone", fx.dir);
    char txt[1200], part1[256], part2[201];
    memset(part1, 'x', 255);
    part1[255] = '\0';
    memset(part2, 'y', 200);
    part2[200] = '\0';
    snprintf(txt, sizeof txt,
             "; sealmail test zone\n"
             "\n"
             "example.test. 300 IN TXT \"%s\" \"%s\"  ; a 455-byte TXT in two strings\n"
             "example.test. MX 10 mx1.example.test.\n"
             "example.test. 3600 IN MX 20 mx2.example.test.\n"
             "\tmx1.example.test. 300 IN A 192.0.2.1\n"
             "mx1.example.test. 300 IN AAAA 2001:db8::1\n"
             "sel._domainkey.example.test. TXT \"v=DKIM1; k=ed25519; p=abc\"\n"
             "www.example.test. CNAME mx1.example.test.\n"
             "_25._tcp.mx.dane.test. 3600 IN TLSA 3 1 1 " HASH64 "\n",
             part1, part2);
    write_file(fx.zone, txt);
    fx.have_signed = sign_zone();
    fx.base = event_base_new();
    return fx.base == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", fx.dir);
    if (system(cmd) != 0)
        return -1;
    event_base_free(fx.base);
    return 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

struct waiter {
    struct dns_answer *a;
    int calls;
};

static void on_answer(void *arg, struct dns_answer *a)
{
    struct waiter *w = arg;
    w->calls++;
    dns_answer_free(w->a);
    w->a = a;
}

/* Run the loop until every waiter has an answer (or 10 s). */
static void wait_all(struct waiter *w, size_t n)
{
    double end = now_ms() + 10000;
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += w[i].calls > 0;
        if (done == n)
            return;
        assert_true(now_ms() < end);
        event_base_loop(fx.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(200);
    }
}

/* Run the loop for ms milliseconds. */
static void run_for(unsigned ms)
{
    double end = now_ms() + ms;
    while (now_ms() < end) {
        event_base_loop(fx.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(500);
    }
}

static struct dns_answer *ask(struct dns_resolver *r, const char *name, uint16_t type)
{
    struct waiter w = {0};
    dns_resolve(r, name, type, on_answer, &w);
    assert_int_equal(w.calls, 0); /* never from inside dns_resolve() */
    wait_all(&w, 1);
    run_for(5);
    assert_int_equal(w.calls, 1);
    return w.a;
}

static struct dns_resolver *zone_resolver(void)
{
    struct dns_resolver_options o = {.zone_file = fx.zone};
    const char *err = NULL;
    struct dns_resolver *r = dns_resolver_new(fx.base, &o, &err);
    if (r == NULL)
        fail_msg("%s", err);
    return r;
}

static void test_resolver_zone(void **state)
{
    (void)state;
    struct dns_resolver *r = zone_resolver();
    struct dns_answer *a = ask(r, "Example.Test.", DNS_T_TXT);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->n, 1);
    assert_int_equal(a->rr[0].len, 455);
    assert_int_equal(a->rr[0].data[0], 'x');
    assert_int_equal(a->rr[0].data[254], 'x');
    assert_int_equal(a->rr[0].data[255], 'y');
    assert_int_equal(a->rr[0].data[454], 'y');
    assert_int_equal(a->ttl, 300);
    assert_false(a->secure);
    dns_answer_free(a);

    a = ask(r, "sel._domainkey.example.test", DNS_T_TXT);
    assert_int_equal(a->n, 1);
    assert_string_equal((char *)a->rr[0].data, "v=DKIM1; k=ed25519; p=abc");
    dns_answer_free(a);

    a = ask(r, "example.test", DNS_T_MX);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->n, 2);
    unsigned p0 = a->rr[0].pref, p1 = a->rr[1].pref;
    assert_int_equal(p0 + p1, 30);
    assert_string_equal(a->rr[p0 == 10 ? 0 : 1].name, "mx1.example.test");
    assert_string_equal(a->rr[p0 == 10 ? 1 : 0].name, "mx2.example.test");
    dns_answer_free(a);

    a = ask(r, "mx1.example.test", DNS_T_A);
    assert_int_equal(a->n, 1);
    assert_memory_equal(a->rr[0].addr, "\xc0\x00\x02\x01", 4);
    dns_answer_free(a);
    a = ask(r, "mx1.example.test", DNS_T_AAAA);
    assert_int_equal(a->n, 1);
    assert_memory_equal(a->rr[0].addr, "\x20\x01\x0d\xb8", 4);
    dns_answer_free(a);
    /* a CNAME in local data: unbound answers with the CNAME alone (it
     * does not chase local data), so the final name has no A: NODATA */
    a = ask(r, "www.example.test", DNS_T_A);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->n, 0);
    dns_answer_free(a);
    a = ask(r, "mx1.example.test", DNS_T_TXT); /* NODATA */
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->n, 0);
    dns_answer_free(a);
    a = ask(r, "missing.example.test", DNS_T_A);
    assert_int_equal(a->status, DNS_NXDOMAIN);
    dns_answer_free(a);

    /* names outside the test data never leave the machine */
    double t0 = now_ms();
    a = ask(r, "gmail.com", DNS_T_MX);
    assert_int_equal(a->status, DNS_NXDOMAIN);
    dns_answer_free(a);
    a = ask(r, "_25._tcp.mx.dane.test", DNS_T_TLSA); /* plain data: never secure */
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->n, 1);
    assert_false(a->secure);
    assert_int_equal(a->rr[0].len, 32);
    dns_answer_free(a);
    assert_true(now_ms() - t0 < 1000);

    /* names and types that cannot be asked */
    a = ask(r, "", DNS_T_A);
    assert_int_equal(a->status, DNS_PERMFAIL);
    dns_answer_free(a);
    a = ask(r, "example.test", 255);
    assert_int_equal(a->status, DNS_PERMFAIL);
    dns_answer_free(a);
    assert_int_equal(dns_resolver_pending(r), 0);
    dns_resolver_free(&r);
    assert_null(r);
    dns_resolver_free(&r);
}

static void test_resolver_cancel_and_free(void **state)
{
    (void)state;
    struct dns_resolver *r = zone_resolver();
    struct waiter w[4] = {0};
    struct dns_query *q0 = dns_resolve(r, "example.test", DNS_T_MX, on_answer, &w[0]);
    dns_resolve(r, "example.test", DNS_T_TXT, on_answer, &w[1]);
    struct dns_query *q2 = dns_resolve(r, "nope.example.test", DNS_T_A, on_answer, &w[2]);
    assert_int_equal(dns_resolver_pending(r), 3);
    dns_query_cancel(&q0);
    assert_null(q0);
    dns_query_cancel(&q0);
    dns_query_cancel(NULL);
    wait_all(&w[1], 2);
    run_for(20);
    assert_int_equal(w[0].calls, 0);
    assert_int_equal(w[1].calls, 1);
    assert_int_equal(w[2].calls, 1);
    (void)q2;
    dns_answer_free(w[1].a);
    dns_answer_free(w[2].a);

    /* freed with answers not yet delivered: no callback, no leak */
    dns_resolve(r, "example.test", DNS_T_MX, on_answer, &w[3]);
    dns_resolve(r, "gmail.com", DNS_T_MX, on_answer, &w[3]);
    dns_resolver_free(&r);
    run_for(20);
    assert_int_equal(w[3].calls, 0);
}

/* The callback may free the resolver (say, at shutdown). */
struct free_in_cb {
    struct dns_resolver *r;
    int calls;
};

static void free_resolver_cb(void *arg, struct dns_answer *a)
{
    struct free_in_cb *f = arg;
    f->calls++;
    dns_answer_free(a);
    dns_resolver_free(&f->r);
}

static void test_resolver_free_in_callback(void **state)
{
    (void)state;
    struct free_in_cb f = {zone_resolver(), 0};
    dns_resolve(f.r, "example.test", DNS_T_MX, free_resolver_cb, &f);
    dns_resolve(f.r, "example.test", DNS_T_A, free_resolver_cb, &f);
    run_for(50);
    assert_int_equal(f.calls, 1);
    assert_null(f.r);
}

/* A UDP socket on 127.0.0.1 that never answers: a forwarder that hangs. */
static int silent_forwarder(char *spec, size_t len)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    socklen_t sl = sizeof sin;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    snprintf(spec, len, "127.0.0.1@%u", ntohs(sin.sin_port));
    return fd;
}

static void test_resolver_timeout_cap_inflight_free(void **state)
{
    (void)state;
    char spec[64];
    int fd = silent_forwarder(spec, sizeof spec);
    struct dns_resolver_options o = {
        .forwarders = spec, .trust_anchor_file = "", .timeout_ms = 300, .max_inflight = 2};
    const char *err = NULL;
    struct dns_resolver *r = dns_resolver_new(fx.base, &o, &err);
    if (r == NULL)
        fail_msg("%s", err);
    struct waiter w[4] = {0};
    double t0 = now_ms();
    dns_resolve(r, "example.org", DNS_T_A, on_answer, &w[0]);
    struct dns_query *q1 = dns_resolve(r, "example.net", DNS_T_MX, on_answer, &w[1]);
    dns_resolve(r, "example.com", DNS_T_A, on_answer, &w[2]); /* over the cap */
    assert_int_equal(w[2].calls, 0);
    wait_all(&w[2], 1);
    assert_int_equal(w[2].a->status, DNS_TEMPFAIL);
    assert_true(now_ms() - t0 < 290); /* before any timeout */
    assert_int_equal(w[0].calls, 0);
    dns_query_cancel(&q1); /* cancelled while unbound works on it */
    wait_all(&w[0], 1);
    double took = now_ms() - t0;
    assert_int_equal(w[0].a->status, DNS_TEMPFAIL);
    assert_true(took >= 290 && took < 2000);
    run_for(400);
    assert_int_equal(w[1].calls, 0);
    assert_int_equal(w[0].calls, 1);

    /* freed with queries in flight inside unbound */
    dns_resolve(r, "a.example.org", DNS_T_TXT, on_answer, &w[3]);
    dns_resolve(r, "b.example.org", DNS_T_TXT, on_answer, &w[3]);
    run_for(20);
    dns_resolver_free(&r);
    run_for(400);
    assert_int_equal(w[3].calls, 0);
    dns_answer_free(w[0].a);
    dns_answer_free(w[2].a);
    close(fd);
}

/* A forwarder on 127.0.0.1 that answers from a script: the path of
 * replies that really come from the network, through unbound's iterator. */
struct responder {
    int fd;
    struct event *ev;
    unsigned queries;
};

static void respond(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct responder *rs = arg;
    uint8_t q[512];
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(fd, q, sizeof q, 0, (struct sockaddr *)&from, &fl);
    if (n < 17)
        return;
    rs->queries++;
    /* the question: uncompressed labels from offset 12, then type, class */
    char name[256];
    size_t i = 12, o = 0;
    while (i < (size_t)n && q[i] != 0 && i + 1 + q[i] < (size_t)n && o + q[i] + 2 < sizeof name) {
        if (o > 0)
            name[o++] = '.';
        for (size_t j = 0; j < q[i]; j++)
            name[o++] = (char)(q[i + 1 + j] | 0x20);
        i += 1 + q[i];
    }
    name[o] = '\0';
    unsigned qtype = (unsigned)(q[i + 1] << 8 | q[i + 2]);
    static struct pb p;
    unsigned rcode = strcmp(name, "nx.example.org") == 0   ? 3
                     : strcmp(name, "sf.example.org") == 0 ? 2
                                                           : 0;
    /* unbound keeps only the first CNAME of a reply and asks for its
     * target itself, so each link is its own answer */
    const char *cname = strcmp(name, "chain.example.org") == 0 ? "a.example.net"
                        : strcmp(name, "a.example.net") == 0   ? "b.example.net"
                                                               : NULL;
    bool a = strcmp(name, "b.example.net") == 0 && qtype == DNS_T_A;
    bool mx = strcmp(name, "example.org") == 0 && qtype == DNS_T_MX;
    pb_header(&p, rcode, 1, cname != NULL || a || mx ? 1 : 0);
    p.b[0] = q[0];
    p.b[1] = q[1];
    pb_bytes(&p, q + 12, i + 5 - 12); /* the question as asked */
    pb_u16(&p, 0xC00C);
    if (cname != NULL) {
        pb_rr(&p, 5, 60);
        pb_name(&p, cname);
        pb_rr_end(&p);
    } else if (a) {
        pb_rr(&p, DNS_T_A, 30);
        pb_bytes(&p, "\x0a\0\0\x01", 4);
        pb_rr_end(&p);
    } else if (mx) {
        pb_rr(&p, DNS_T_MX, 60);
        pb_u16(&p, 5);
        pb_name_ptr(&p, "mx", 12);
        pb_rr_end(&p);
    } else {
        p.n -= 2;
    }
    (void)sendto(fd, p.b, p.n, 0, (struct sockaddr *)&from, fl);
}

static void test_resolver_forwarder_replies(void **state)
{
    (void)state;
    char spec[64];
    struct responder rs = {.fd = silent_forwarder(spec, sizeof spec)};
    rs.ev = event_new(fx.base, rs.fd, EV_READ | EV_PERSIST, respond, &rs);
    event_add(rs.ev, NULL);
    struct dns_resolver_options o = {.forwarders = spec, .trust_anchor_file = ""};
    const char *err = NULL;
    struct dns_resolver *r = dns_resolver_new(fx.base, &o, &err);
    if (r == NULL)
        fail_msg("%s", err);
    struct dns_answer *a = ask(r, "chain.example.org", DNS_T_A);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->n, 1);
    assert_memory_equal(a->rr[0].addr, "\x0a\0\0\x01", 4);
    assert_false(a->secure);
    dns_answer_free(a);
    a = ask(r, "example.org", DNS_T_MX);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->n, 1);
    assert_int_equal(a->rr[0].pref, 5);
    assert_string_equal(a->rr[0].name, "mx.example.org");
    dns_answer_free(a);
    unsigned before = rs.queries;
    a = ask(r, "EXAMPLE.org.", DNS_T_MX); /* from unbound's cache */
    assert_int_equal(a->n, 1);
    dns_answer_free(a);
    assert_int_equal(rs.queries, before);
    a = ask(r, "nx.example.org", DNS_T_A);
    assert_int_equal(a->status, DNS_NXDOMAIN);
    dns_answer_free(a);
    a = ask(r, "sf.example.org", DNS_T_A);
    assert_int_equal(a->status, DNS_TEMPFAIL);
    dns_answer_free(a);
    a = ask(r, "nothing.example.org", DNS_T_TXT);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->n, 0);
    dns_answer_free(a);
    dns_resolver_free(&r);
    event_free(rs.ev);
    close(rs.fd);
}

static void test_resolver_bad_options(void **state)
{
    (void)state;
    const char *err = NULL;
    /* the production defaults (root hints, root.key if installed) load;
     * nothing is sent until a query is made */
    struct dns_resolver *r = dns_resolver_new(fx.base, NULL, &err);
    if (r == NULL)
        fail_msg("%s", err);
    dns_resolver_free(&r);
    struct dns_resolver_options o = {.forwarders = "not-an-address"};
    assert_null(dns_resolver_new(fx.base, &o, &err));
    assert_non_null(strstr(err, "forwarder"));
    struct dns_resolver_options o2 = {.zone_file = "/nonexistent/zone"};
    assert_null(dns_resolver_new(fx.base, &o2, &err));
    assert_non_null(strstr(err, "/nonexistent/zone"));
    struct dns_resolver_options o3 = {.trust_anchor_file = "/nonexistent/anchor"};
    assert_null(dns_resolver_new(fx.base, &o3, &err));
    assert_non_null(strstr(err, "trust anchor"));
    char bad[160];
    snprintf(bad, sizeof bad, "%s/bad.zone", fx.dir);
    write_file(bad, "ok.example.test. A 192.0.2.1\nbroken.example.test. A not-an-address\n");
    struct dns_resolver_options o4 = {.zone_file = bad};
    assert_null(dns_resolver_new(fx.base, &o4, &err));
    assert_non_null(strstr(err, ":2:"));
    write_file(bad, "$ORIGIN example.test.\n");
    assert_null(dns_resolver_new(fx.base, &o4, &err));
    assert_non_null(strstr(err, "$"));
    struct dns_resolver_options o5 = {.signed_zone_file = fx.zone};
    assert_null(dns_resolver_new(fx.base, &o5, &err));
    assert_non_null(strstr(err, "trust_anchor_file"));
}

static void test_resolver_dnssec(void **state)
{
    (void)state;
    if (!fx.have_signed)
        fail_msg("ldns-keygen/ldns-signzone failed (is ldnsutils installed?)");
    struct dns_resolver_options o = {.signed_zone_file = fx.signed_zone,
                                     .trust_anchor_file = fx.anchor};
    const char *err = NULL;
    struct dns_resolver *r = dns_resolver_new(fx.base, &o, &err);
    if (r == NULL)
        fail_msg("%s", err);
    struct dns_answer *a = ask(r, "_25._tcp.mx.dane.test", DNS_T_TLSA);
    assert_int_equal(a->status, DNS_OK);
    assert_true(a->secure);
    assert_false(a->bogus);
    assert_int_equal(a->n, 1);
    assert_int_equal(a->rr[0].tlsa_usage, 3);
    assert_int_equal(a->rr[0].tlsa_selector, 1);
    assert_int_equal(a->rr[0].tlsa_mtype, 1);
    assert_int_equal(a->rr[0].len, 32);
    assert_int_equal(a->rr[0].data[0], 0x01);
    assert_int_equal(a->rr[0].data[31], 0x32);
    dns_answer_free(a);
    a = ask(r, "mx.dane.test", DNS_T_A);
    assert_int_equal(a->status, DNS_OK);
    assert_true(a->secure);
    assert_int_equal(a->n, 1);
    dns_answer_free(a);
    a = ask(r, "nx.dane.test", DNS_T_A); /* proven by NSEC */
    assert_int_equal(a->status, DNS_NXDOMAIN);
    assert_true(a->secure);
    dns_answer_free(a);
    a = ask(r, "mx.dane.test", DNS_T_TLSA); /* NODATA, proven */
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(a->n, 0);
    assert_true(a->secure);
    dns_answer_free(a);
    /* outside the signed zone: static NXDOMAIN, at once, never secure */
    double t0 = now_ms();
    a = ask(r, "example.com", DNS_T_A);
    assert_int_equal(a->status, DNS_NXDOMAIN);
    assert_false(a->secure);
    dns_answer_free(a);
    /* a CNAME out of the zone: unbound's own follow-up may not leave the
     * machine either */
    a = ask(r, "other.dane.test", DNS_T_A);
    assert_int_not_equal(a->status, DNS_OK);
    dns_answer_free(a);
    assert_true(now_ms() - t0 < 2000);
    dns_resolver_free(&r);

    /* the same zone with a record changed after signing: bogus */
    o.signed_zone_file = fx.bogus_zone;
    r = dns_resolver_new(fx.base, &o, &err);
    if (r == NULL)
        fail_msg("%s", err);
    a = ask(r, "mx.dane.test", DNS_T_A);
    assert_int_equal(a->status, DNS_TEMPFAIL);
    assert_true(a->bogus);
    assert_false(a->secure);
    assert_int_equal(a->n, 0);
    dns_answer_free(a);
    a = ask(r, "_25._tcp.mx.dane.test", DNS_T_TLSA); /* untouched record still secure */
    assert_true(a->secure);
    dns_answer_free(a);
    dns_resolver_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_a_aaaa),
        cmocka_unit_test(test_wire_mx_compression),
        cmocka_unit_test(test_wire_txt_ptr_tlsa),
        cmocka_unit_test(test_wire_cname_chain),
        cmocka_unit_test(test_wire_rcodes),
        cmocka_unit_test(test_wire_truncation),
        cmocka_unit_test(test_wire_bad_pointers),
        cmocka_unit_test(test_name_flatten),
        cmocka_unit_test(test_resolver_zone),
        cmocka_unit_test(test_resolver_cancel_and_free),
        cmocka_unit_test(test_resolver_free_in_callback),
        cmocka_unit_test(test_resolver_timeout_cap_inflight_free),
        cmocka_unit_test(test_resolver_forwarder_replies),
        cmocka_unit_test(test_resolver_bad_options),
        cmocka_unit_test(test_resolver_dnssec),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
