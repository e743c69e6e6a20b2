/* fuzz-arc.c — the ARC verifier on arbitrary header fields and body.
 *
 * Input: one option byte, then parts separated by NUL bytes: the key
 * record served for every key question, up to 64 header fields (each
 * "Name: value" with its folding; a CRLF is added), and last the body.
 * The option byte picks the body chunk size and how the DNS answers
 * (record, NXDOMAIN, TEMPFAIL).  Findings, beside crashes, leaks, UB and
 * timeouts: a cv out of range, a pass with no set or over 50 sets, an
 * oldest-pass outside 0..N, "none" with sets, an unterminated reason or
 * seal domain, or MAILAUTH_NEED_DNS once every question was answered. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/arc.h"
#include "mailauth/dnsview.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz-arc: %s\n", what);
    abort();
}

static const uint8_t *part(const uint8_t **p, const uint8_t *end, size_t *len)
{
    const uint8_t *s = *p;
    const uint8_t *z = memchr(s, '\0', (size_t)(end - s));
    *len = z ? (size_t)(z - s) : (size_t)(end - s);
    *p = z ? z + 1 : end;
    return s;
}

static void answer(struct dnsview *view, const uint8_t *rec, size_t len, int mode)
{
    while (dnsview_pending(view) > 0) {
        const char *q;
        uint16_t type;
        dnsview_pending_at(view, 0, &q, &type);
        struct dns_answer *a;
        if (mode == 1) {
            a = dns_answer_new(DNS_NXDOMAIN);
        } else if (mode == 2) {
            a = dns_answer_new(DNS_TEMPFAIL);
        } else {
            a = dns_answer_new(DNS_OK);
            uint8_t *copy = malloc(len + 1);
            memcpy(copy, rec, len);
            struct dns_rr rr = {.type = DNS_T_TXT, .data = copy, .len = len};
            dns_answer_add(a, &rr);
            free(copy);
        }
        char *name = strdup(q);
        dnsview_put(view, name, type, a);
        free(name);
    }
}

static void check(const struct arc_result *r)
{
    if (r->cv != ARC_NONE && r->cv != ARC_PASS && r->cv != ARC_FAIL)
        fail("cv out of range");
    if (r->cv == ARC_PASS && (r->sets == 0 || r->sets > ARC_MAX_SETS))
        fail("pass without a valid number of sets");
    if (r->cv == ARC_PASS && r->oldest_pass > r->sets)
        fail("oldest-pass past N");
    if (r->cv == ARC_NONE && r->sets != 0)
        fail("none with sets");
    if (strnlen(r->reason, sizeof r->reason) == sizeof r->reason)
        fail("unterminated reason");
    if (r->sets > ARC_MAX_SETS)
        fail("more sets than the verifier keeps");
    if (r->sets > 0 && r->set == NULL)
        fail("sets without their results");
    for (unsigned i = 0; i < r->sets; i++)
        if (strnlen(r->set[i].seal_d, sizeof r->set[i].seal_d) == sizeof r->set[i].seal_d)
            fail("unterminated seal domain");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 32768)
        return 0;
    uint8_t opt = data[0];
    const uint8_t *p = data + 1, *end = data + size;
    size_t kl;
    const uint8_t *key = part(&p, end, &kl);
    const uint8_t *parts[65];
    size_t lens[65], n = 0;
    while (p < end && n < 65) {
        parts[n] = part(&p, end, &lens[n]);
        n++;
    }
    struct arc_verifier *v = arc_verifier_new(NULL);
    for (size_t i = 0; i + 1 < n; i++) {
        char *f = malloc(lens[i] + 2);
        memcpy(f, parts[i], lens[i]);
        memcpy(f + lens[i], "\r\n", 2);
        arc_verifier_header(v, f, lens[i] + 2);
        free(f);
    }
    arc_verifier_headers_done(v);
    size_t chunk = (size_t)(opt & 0x0f) + 1;
    if (n > 0) {
        const uint8_t *body = parts[n - 1];
        size_t bl = lens[n - 1];
        for (size_t k = 0; k < bl; k += chunk)
            arc_verifier_body(v, body + k, chunk < bl - k ? chunk : bl - k);
    }
    arc_verifier_body_done(v);
    struct dnsview *view = dnsview_new();
    int rounds = 0;
    while (arc_verifier_result(v, view, 1700000000) == MAILAUTH_NEED_DNS) {
        if (++rounds > 1)
            fail("NEED_DNS with every question answered");
        answer(view, key, kl, (opt >> 4) % 3);
    }
    check(arc_verifier_get(v));
    dnsview_free(&view);
    arc_verifier_free(&v);
    return 0;
}
