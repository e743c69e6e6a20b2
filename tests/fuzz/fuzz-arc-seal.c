/* fuzz-arc-seal.c — the ARC sealer on arbitrary header fields and body.
 *
 * The sealer reads outside input in two places: the ARC fields already in
 * the message (instances, the newest seal's cv=, the sets it hashes) and,
 * when no results are given, the Authentication-Results fields that claim
 * our authserv-id (where their results begin).
 *
 * Input: one option byte, then parts separated by NUL bytes: up to 64
 * header fields (each "Name: value" with its folding; a CRLF is added),
 * and last the body.  The option byte picks the chain status the caller
 * claims (none, pass, fail), whether the results are given or taken from
 * the message, and the body chunk size.  A fixed Ed25519 key signs.
 * Findings, beside crashes, leaks, UB and timeouts: a status out of range,
 * an error without a message, fields that do not end in CRLF, a line over
 * 998 characters, a signature line over ARC_SEAL_FOLD, a seal or AMS that
 * our own parser refuses or whose i= is not the instance reported. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "mailauth/arc-seal.h"
#include "mailauth/dkim-core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz-arc-seal: %s\n", what);
    abort();
}

static EVP_PKEY *key(void)
{
    static EVP_PKEY *k;
    static const uint8_t seed[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                     17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30,
                                     31, 32};
    if (k == NULL)
        k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof seed);
    if (k == NULL)
        fail("no key");
    return k;
}

static const uint8_t *part(const uint8_t **p, const uint8_t *end, size_t *len)
{
    const uint8_t *s = *p;
    const uint8_t *z = memchr(s, '\0', (size_t)(end - s));
    *len = z ? (size_t)(z - s) : (size_t)(end - s);
    *p = z ? z + 1 : end;
    return s;
}

/* Lines end in CRLF; none passes max characters. */
static void check_lines(const char *f, size_t max)
{
    size_t n = strlen(f);
    if (n < 2 || f[n - 2] != '\r' || f[n - 1] != '\n')
        fail("a field without its final CRLF");
    for (const char *l = f; *l;) {
        const char *e = strstr(l, "\r\n");
        if ((size_t)(e - l) > max)
            fail("a line too long");
        l = e + 2;
    }
}

static void check_sig(enum dkim_kind kind, const char *f, unsigned instance)
{
    check_lines(f, ARC_SEAL_FOLD);
    struct dkim_sig sig;
    enum dkim_result r;
    char why[DKIM_REASON_MAX];
    if (dkim_sig_parse(kind, f, strlen(f), &sig, &r, why, sizeof why) < 0)
        fail("our own parser refuses what we wrote");
    if (sig.instance != instance)
        fail("i= is not the instance reported");
    dkim_sig_free(&sig);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    uint8_t opt = data[0];
    const uint8_t *p = data + 1, *end = data + size;
    const uint8_t *parts[65];
    size_t lens[65], n = 0;
    while (p < end && n < 65) {
        parts[n] = part(&p, end, &lens[n]);
        n++;
    }
    static const char *const h[] = {"from", "to", "subject", "date"};
    static const enum arc_cv chain[] = {ARC_NONE, ARC_PASS, ARC_FAIL, ARC_PASS};
    struct arc_seal_params params = {
        .key = key(), .domain = "sealmail.example", .selector = "s1", .headers = h,
        .n_headers = 4, .time = 1700000000, .authserv_id = "mx.sealmail.example",
        .results = (opt & 4) ? "spf=pass smtp.mailfrom=a@b.example" : NULL,
        .chain = chain[opt & 3],
    };
    const char *err = NULL;
    struct arc_sealer *s = arc_sealer_new(&params, &err);
    if (s == NULL)
        fail("fixed parameters refused");
    /* the fields, each given its CRLF, side by side in one buffer */
    char *hdr = malloc(size + 2 * n + 1);
    for (size_t i = 0, at = 0; i + 1 < n; at += lens[i++] + 2) {
        memcpy(hdr + at, parts[i], lens[i]);
        memcpy(hdr + at + lens[i], "\r\n", 2);
        arc_sealer_header(s, hdr + at, lens[i] + 2);
    }
    free(hdr);
    arc_sealer_headers_done(s);
    size_t chunk = (size_t)(opt >> 3) + 1;
    if (n > 0)
        for (size_t k = 0; k < lens[n - 1]; k += chunk)
            arc_sealer_body(s, parts[n - 1] + k, chunk < lens[n - 1] - k ? chunk : lens[n - 1] - k);
    struct arc_seal_fields out;
    enum arc_seal_status st = arc_sealer_finish(s, &out, &err);
    if (st == ARC_SEAL_ERROR && (err == NULL || *err == '\0'))
        fail("an error without a message");
    if (st != ARC_SEAL_OK && st != ARC_SEAL_ERROR && st != ARC_SEAL_SKIPPED)
        fail("status out of range");
    if (st == ARC_SEAL_OK) {
        if (out.instance < 1 || out.instance > 50)
            fail("instance out of range");
        check_sig(SIG_AS, out.seal, out.instance);
        check_sig(SIG_AMS, out.ams, out.instance);
        check_lines(out.aar, 998);
        arc_seal_fields_free(&out);
    }
    arc_sealer_free(&s);
    return 0;
}
