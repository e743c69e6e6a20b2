/* fuzz-dkim.c — the DKIM verifier on an arbitrary signature, key record
 * and body.
 *
 * Input: one option byte, then three parts separated by NUL bytes: the
 * value of a DKIM-Signature field (its folding as given), the key record
 * served for every key question, and the body.  The option byte picks the
 * chunk size the body is fed in, whether a second copy of the signature
 * is added, and how the DNS answers (record, NXDOMAIN, TEMPFAIL).  Beside
 * crashes, leaks, UB and timeouts, a finding is any result outside the
 * contract of dkim.h: a result that is not one of the RFC 8601 names, a
 * pass without a key or with an RSA key under 1024 bits, a header.b longer
 * than its bound, an unterminated report string, or MAILAUTH_NEED_DNS
 * after every question was answered. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/dkim.h"
#include "mailauth/dnsview.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz-dkim: %s\n", what);
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

static void check(const struct dkim_sig_result *r)
{
    if (r->result < DKIM_PASS || r->result > DKIM_PERMERROR)
        fail("result out of range");
    if (strnlen(r->reason, sizeof r->reason) == sizeof r->reason ||
        strnlen(r->d, sizeof r->d) == sizeof r->d || strnlen(r->s, sizeof r->s) == sizeof r->s ||
        strnlen(r->a, sizeof r->a) == sizeof r->a || strnlen(r->i, sizeof r->i) == sizeof r->i ||
        strlen(r->header_b) > DKIM_HEADER_B_LEN)
        fail("unterminated report string");
    if (r->result == DKIM_PASS && (r->key_bits == 0 || (r->key_bits != 256 && r->key_bits < 1024)))
        fail("pass without an acceptable key");
    if (r->result == DKIM_PASS && strcmp(r->a, "rsa-sha1") == 0)
        fail("rsa-sha1 passed");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 16384)
        return 0;
    uint8_t opt = data[0];
    const uint8_t *p = data + 1, *end = data + size;
    size_t sl, kl, bl;
    const uint8_t *sig = part(&p, end, &sl);
    const uint8_t *key = part(&p, end, &kl);
    const uint8_t *body = part(&p, end, &bl);

    char *field = malloc(sl + 32);
    memcpy(field, "DKIM-Signature: ", 16);
    memcpy(field + 16, sig, sl);
    memcpy(field + 16 + sl, "\r\n", 2);
    size_t fl = sl + 18;

    struct dkim_limits lim = {.max_signatures = 2};
    struct dkim_verifier *v = dkim_verifier_new(&lim);
    dkim_verifier_header(v, field, fl);
    if (opt & 0x10)
        dkim_verifier_header(v, field, fl);
    dkim_verifier_header(v, "From: Joe <joe@example.com>\r\n", 29);
    dkim_verifier_header(v, "To: b@example.org\r\n", 19);
    dkim_verifier_header(v, "Subject:  fuzz \r\n\tfolded\r\n", 26);
    dkim_verifier_headers_done(v);
    size_t chunk = (size_t)(opt & 0x0f) + 1;
    for (size_t k = 0; k < bl; k += chunk)
        dkim_verifier_body(v, body + k, chunk < bl - k ? chunk : bl - k);
    dkim_verifier_body_done(v);

    struct dnsview *view = dnsview_new();
    int rounds = 0;
    while (dkim_verifier_result(v, view, 1700000000) == MAILAUTH_NEED_DNS) {
        if (++rounds > 1)
            fail("NEED_DNS with every question answered");
        answer(view, key, kl, (opt >> 5) % 3);
    }
    if (dkim_verifier_count(v) > 2)
        fail("more signatures than the limit");
    for (size_t i = 0; i < dkim_verifier_count(v); i++)
        check(dkim_verifier_get(v, i));
    dnsview_free(&view);
    dkim_verifier_free(&v);
    free(field);
    return 0;
}
