/* test-dkim.c — DKIM canonicalisation, verification and signing.
 *
 * Conformance data (tests/unit/data/dkim, origins and licences in its
 * README.md): the
 * RFC 8463 example with both signatures, dkimpy's pre-signed messages and
 * key records, body-hash vectors.  At run time, messages are also signed
 * by two independent implementations, dkimpy and the OpenDKIM filter
 * (helper.py), and must verify here; our signatures must verify in
 * dkimpy.  Those parts are skipped when /usr/bin/python3 with python3-dkim
 * or opendkim is missing.  Messages are fed in 1-byte chunks as well as
 * whole to prove that the verifier streams. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/mem.h"
#include "mailauth/canon.h"
#include "mailauth/dkim-core.h"
#include "mailauth/dkim.h"
#include "mailauth/dnsview.h"

#ifndef DKIM_TEST_DATA
#error "DKIM_TEST_DATA must name tests/unit/data/dkim (see src/mailauth/meson.build)"
#endif
#define DATA DKIM_TEST_DATA
#define PY "/usr/bin/python3 " DATA "/helper.py"
/* the clock of the whole run: dkimpy and OpenDKIM sign with the real time */
static int64_t NOW;

/* ------------------------------------------------------------------ helpers */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    struct sm_buf b;
    sm_buf_init(&b, 0);
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        sm_buf_append(&b, tmp, n);
    fclose(f);
    *len = b.len;
    if (b.data == NULL)
        sm_buf_puts(&b, "");
    return b.data;
}

/* Output of a shell command, or NULL when it exits non-zero. */
static char *run(const char *cmd, size_t *len)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    struct sm_buf b;
    sm_buf_init(&b, 0);
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, p)) > 0)
        sm_buf_append(&b, tmp, n);
    int st = pclose(p);
    if (st != 0 || b.data == NULL) {
        sm_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.data;
}

static bool have_cmd(const char *check)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s >/dev/null 2>&1", check);
    return system(cmd) == 0;
}

static bool have_dkimpy(void)
{
    static int have = -1;
    if (have < 0)
        have = have_cmd("/usr/bin/python3 -c 'import dkim, nacl, cryptography'");
    return have;
}

static bool have_opendkim(void)
{
    return have_dkimpy() && access("/usr/sbin/opendkim", X_OK) == 0;
}

/* LF or CRLF text to CRLF. */
static char *crlf(const char *s, size_t n, size_t *len)
{
    struct sm_buf b;
    sm_buf_init(&b, 0);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
            continue;
        if (s[i] == '\n')
            sm_buf_append(&b, "\r", 1);
        sm_buf_append(&b, s + i, 1);
    }
    *len = b.len;
    return b.data;
}

static char *load_msg(const char *rel, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", DATA, rel);
    size_t n;
    char *raw = slurp(path, &n);
    char *m = crlf(raw, n, len);
    free(raw);
    return m;
}

/* The header fields of a CRLF message one by one, then the body. */
struct feeder {
    void (*header)(void *, const char *, size_t);
    void (*headers_done)(void *);
    void (*body)(void *, const void *, size_t);
    void *obj;
};

static void feed(const struct feeder *f, const char *m, size_t n, size_t chunk)
{
    size_t i = 0;
    while (i < n) {
        if (m[i] == '\r' && i + 1 < n && m[i + 1] == '\n') {
            i += 2; /* the empty line: the body follows */
            break;
        }
        size_t e = i;
        for (;;) {
            const char *nl = memchr(m + e, '\n', n - e);
            e = nl ? (size_t)(nl - m) + 1 : n;
            if (e >= n || (m[e] != ' ' && m[e] != '\t'))
                break;
        }
        f->header(f->obj, m + i, e - i);
        i = e;
    }
    f->headers_done(f->obj);
    for (size_t k = i; k < n; k += chunk)
        f->body(f->obj, m + k, chunk < n - k ? chunk : n - k);
}

static void v_header(void *o, const char *p, size_t n)
{
    dkim_verifier_header(o, p, n);
}
static void v_done(void *o)
{
    dkim_verifier_headers_done(o);
}
static void v_body(void *o, const void *p, size_t n)
{
    dkim_verifier_body(o, p, n);
}

/* A fake DNS: "name<TAB>txt" lines; names not in it are NXDOMAIN. */
static void answer_pending(struct dnsview *view, const char *table)
{
    while (dnsview_pending(view) > 0) {
        const char *qname;
        uint16_t qtype;
        dnsview_pending_at(view, 0, &qname, &qtype);
        char *name = sm_strdup(qname);
        struct dns_answer *a = NULL;
        for (const char *l = table; l != NULL && *l;) {
            const char *tab = strchr(l, '\t'), *end = strchr(l, '\n');
            if (end == NULL)
                end = l + strlen(l);
            if (tab != NULL && tab < end && (size_t)(tab - l) == strlen(name) &&
                strncasecmp(l, name, (size_t)(tab - l)) == 0 && qtype == DNS_T_TXT) {
                if (a == NULL)
                    a = dns_answer_new(DNS_OK);
                char *txt = sm_strndup(tab + 1, (size_t)(end - tab - 1));
                struct dns_rr rr = {.type = DNS_T_TXT, .data = (uint8_t *)txt,
                                    .len = strlen(txt)};
                dns_answer_add(a, &rr);
                free(txt);
            }
            l = *end ? end + 1 : end;
        }
        dnsview_put(view, name, qtype, a ? a : dns_answer_new(DNS_NXDOMAIN));
        free(name);
    }
}

static struct dkim_verifier *verify_msg(const char *m, size_t n, const char *dns, size_t chunk,
                                        const struct dkim_limits *lim)
{
    struct dkim_verifier *v = dkim_verifier_new(lim);
    struct feeder f = {v_header, v_done, v_body, v};
    feed(&f, m, n, chunk);
    dkim_verifier_body_done(v);
    struct dnsview *view = dnsview_new();
    int rounds = 0;
    while (dkim_verifier_result(v, view, NOW) == MAILAUTH_NEED_DNS) {
        assert_true(++rounds < 3);
        answer_pending(view, dns);
    }
    dnsview_free(&view);
    return v;
}

static char *dns_table(const char *json)
{
    char cmd[512];
    size_t n;
    snprintf(cmd, sizeof cmd, PY " dns %s/%s", DATA, json);
    char *t = run(cmd, &n);
    assert_non_null(t);
    return t;
}

/* The first nsig signatures of m (those added last: a message may carry
 * older ones) must have result want, whole and in 1- and 7-byte chunks. */
static void expect_all(const char *m, size_t n, const char *dns, enum dkim_result want,
                       size_t nsig)
{
    size_t chunks[] = {1, 7, n + 1};
    for (size_t c = 0; c < 3; c++) {
        struct dkim_verifier *v = verify_msg(m, n, dns, chunks[c], NULL);
        if (dkim_verifier_count(v) < nsig)
            fail_msg("%zu signatures in [%.*s]", dkim_verifier_count(v), (int)n, m);
        for (size_t i = 0; i < nsig; i++) {
            const struct dkim_sig_result *r = dkim_verifier_get(v, i);
            if (r->result != want)
                fail_msg("signature %zu (d=%s s=%s a=%s): %s (%s), wanted %s", i, r->d, r->s,
                         r->a, dkim_result_name(r->result), r->reason, dkim_result_name(want));
        }
        dkim_verifier_free(&v);
    }
}

static const struct dkim_sig_result *only_result(struct dkim_verifier *v)
{
    assert_int_equal(dkim_verifier_count(v), 1);
    return dkim_verifier_get(v, 0);
}

/* ------------------------------------------------------- canonicalisation */

static void body_hash(enum canon_alg alg, const EVP_MD *md, const char *body, size_t n,
                      uint64_t limit, size_t chunk, char *b64, size_t cap, uint64_t *length)
{
    struct canon_body cb;
    canon_body_init(&cb, alg, md, limit);
    for (size_t k = 0; k < n; k += chunk)
        canon_body_update(&cb, body + k, chunk < n - k ? chunk : n - k);
    uint8_t d[EVP_MAX_MD_SIZE];
    unsigned dl;
    canon_body_final(&cb, d, &dl);
    canon_body_free(&cb);
    *length = cb.length;
    struct sm_buf b;
    sm_buf_init(&b, 0);
    base64_encode(d, dl, &b);
    snprintf(b64, cap, "%s", b.data);
    sm_buf_free(&b);
}

static void test_bodyhash_vectors(void **state)
{
    (void)state;
    /* bodyhash-vectors.json (the two whose body is in a file not shipped
     * with the suite are left out) */
    static const struct {
        enum canon_alg alg;
        bool sha1;
        const char *body;
        uint64_t l;
        const char *bh;
    } v[] = {
        {CANON_RELAXED, false, "\r\n\r\n\r\n\r\n\r\n", CANON_NO_LIMIT,
         "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},
        {CANON_RELAXED, true, "\r\n\r\n\r\n\r\n\r\n", CANON_NO_LIMIT, "2jmj7l5rSw0yVb/vlWAYkK/YBwk="},
        {CANON_SIMPLE, false, "\r\n\r\n\r\n\r\n\r\n", CANON_NO_LIMIT,
         "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY="},
        {CANON_SIMPLE, true, "\r\n\r\n\r\n\r\n\r\n", CANON_NO_LIMIT, "uoq1oCgLlTqpdDX/iUbLy7J1Wic="},
        {CANON_RELAXED, false, "tere tere\r\n \r\nvana kere\r\n\r\n", 20,
         "RzjCRSQ7oLyYPj0LF/Mi40PvYYf2dtQxQrSgh6WeSUQ="},
        {CANON_SIMPLE, false, "tere tere\r\n \r\nvana kere\r\n\r\n", 20,
         "J8tF8/M8X2PLBc/YVY64O+9jaSUEi9VMWKtt85CIHSc="},
        {CANON_RELAXED, false, "tere tere\r\n", 0, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        for (size_t chunk = 1; chunk <= 64; chunk *= 4) {
            char got[64];
            uint64_t len;
            body_hash(v[i].alg, v[i].sha1 ? EVP_sha1() : EVP_sha256(), v[i].body,
                      strlen(v[i].body), v[i].l, chunk, got, sizeof got, &len);
            if (strcmp(got, v[i].bh) != 0)
                fail_msg("vector %zu chunk %zu: %s, wanted %s", i, chunk, got, v[i].bh);
        }
    }
}

static char *canon_str(enum canon_alg alg, const char *field)
{
    struct sm_buf b;
    sm_buf_init(&b, 0);
    canon_header(alg, field, strlen(field), true, &b);
    return b.data;
}

static void expect_body(enum canon_alg alg, const char *in, const char *want)
{
    uint8_t d[EVP_MAX_MD_SIZE];
    unsigned dl;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    EVP_DigestUpdate(md, want, strlen(want));
    EVP_DigestFinal_ex(md, d, &dl);
    EVP_MD_CTX_free(md);
    struct sm_buf s;
    sm_buf_init(&s, 0);
    base64_encode(d, dl, &s);
    for (size_t chunk = 1; chunk <= 3; chunk++) {
        char got[64];
        uint64_t len;
        body_hash(alg, EVP_sha256(), in, strlen(in), CANON_NO_LIMIT, chunk, got, sizeof got,
                  &len);
        if (strcmp(got, s.data) != 0 || len != strlen(want))
            fail_msg("%s body of [%s] is not [%s]", alg == CANON_SIMPLE ? "simple" : "relaxed",
                     in, want);
    }
    sm_buf_free(&s);
}

static void test_canonicalisation(void **state)
{
    (void)state;
    /* RFC 6376 §3.4.5 */
    char *h = canon_str(CANON_RELAXED, "A: X\r\n");
    assert_string_equal(h, "a:X\r\n");
    free(h);
    h = canon_str(CANON_RELAXED, "B : Y\t\r\n\tZ  \r\n");
    assert_string_equal(h, "b:Y Z\r\n");
    free(h);
    h = canon_str(CANON_SIMPLE, "B : Y\t\r\n\tZ  \r\n");
    assert_string_equal(h, "B : Y\t\r\n\tZ  \r\n");
    free(h);
    h = canon_str(CANON_RELAXED, "Subject:\r\n");
    assert_string_equal(h, "subject:\r\n");
    free(h);
    expect_body(CANON_RELAXED, " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n");
    expect_body(CANON_SIMPLE, " C \r\nD \t E\r\n\r\n\r\n", " C \r\nD \t E\r\n");
    /* no final CRLF: one is added; a bare CR or LF is content */
    expect_body(CANON_SIMPLE, "abc", "abc\r\n");
    expect_body(CANON_RELAXED, "abc  ", "abc\r\n");
    expect_body(CANON_SIMPLE, "a\rb\nc\r", "a\rb\nc\r\r\n");
    expect_body(CANON_RELAXED, "a \r\r\n", "a \r\r\n");
    /* empty bodies, and bodies of empty lines */
    expect_body(CANON_SIMPLE, "", "\r\n");
    expect_body(CANON_RELAXED, "", "");
    expect_body(CANON_RELAXED, " \r\n\t\r\n", "");
    expect_body(CANON_SIMPLE, " \r\n\r\n", " \r\n");
    /* empty lines in the middle stay */
    expect_body(CANON_RELAXED, "a\r\n\r\n  \r\nb\r\n\r\n", "a\r\n\r\n\r\nb\r\n");
}

static void test_long_trailing_blank_lines(void **state)
{
    (void)state;
    /* a million empty lines are counted, not kept; then content follows */
    struct canon_body cb;
    canon_body_init(&cb, CANON_RELAXED, EVP_sha256(), CANON_NO_LIMIT);
    canon_body_update(&cb, "x\r\n", 3);
    for (int i = 0; i < 1000000; i++)
        canon_body_update(&cb, " \r\n", 3);
    assert_int_equal(cb.pending_crlf, 1000001);
    canon_body_update(&cb, "y", 1);
    uint8_t d[EVP_MAX_MD_SIZE];
    unsigned dl;
    canon_body_final(&cb, d, &dl);
    assert_int_equal(cb.length, 3 + 2000000 + 3);
    canon_body_free(&cb);
}

static void test_base64(void **state)
{
    (void)state;
    uint8_t out[16];
    assert_int_equal(base64_decode("aGVsbG8=", 8, out, sizeof out, BASE64_SKIP_FWS), 5);
    assert_memory_equal(out, "hello", 5);
    assert_int_equal(base64_decode(" aGVs\r\n bG8h ", 13, out, sizeof out, BASE64_SKIP_FWS), 6);
    assert_int_equal(base64_decode("aGVsbG8", 7, out, sizeof out, BASE64_SKIP_FWS), -1);   /* no padding */
    assert_int_equal(base64_decode("aG=sbG8=", 8, out, sizeof out, BASE64_SKIP_FWS), -1);  /* data after = */
    assert_int_equal(base64_decode("aGVs*G8=", 8, out, sizeof out, BASE64_SKIP_FWS), -1);
    assert_int_equal(base64_decode("aGVsbG8haGVsbG8h", 16, out, 6, BASE64_SKIP_FWS), -1); /* too long */
    /* the strict form (SASL) takes no whitespace, padding only at the end */
    assert_int_equal(base64_decode("aGVs bG8h", 9, out, sizeof out, BASE64_STRICT), -1);
    assert_int_equal(base64_decode("aGVsbG8h", 8, out, sizeof out, BASE64_STRICT), 6);
    assert_int_equal(base64_decode("aGVsbG8h====", 12, out, sizeof out, BASE64_STRICT), -1);
    assert_int_equal(base64_decode("YQ==YQ==", 8, out, sizeof out, BASE64_STRICT), -1);
    assert_int_equal(base64_decode("", 0, out, sizeof out, BASE64_SKIP_FWS), 0);
}

/* ------------------------------------------------------- published examples */

static void test_rfc8463_example(void **state)
{
    (void)state;
    if (!have_dkimpy())
        skip();
    size_t n;
    char *m = load_msg("rfc8463/signed.eml", &n);
    char *dns = dns_table("rfc8463/dns.json");
    expect_all(m, n, dns, DKIM_PASS, 2);
    struct dkim_verifier *v = verify_msg(m, n, dns, 1, NULL);
    const struct dkim_sig_result *r = dkim_verifier_get(v, 0);
    assert_string_equal(r->a, "ed25519-sha256");
    assert_string_equal(r->d, "football.example.com");
    assert_string_equal(r->s, "brisbane");
    assert_string_equal(r->i, "@football.example.com");
    assert_string_equal(r->header_b, "/gCrinpcQOoI");
    assert_int_equal(r->key_bits, 256);
    assert_false(r->unsigned_body);
    r = dkim_verifier_get(v, 1);
    assert_string_equal(r->a, "rsa-sha256");
    assert_int_equal(r->key_bits, 1024);
    dkim_verifier_free(&v);

    /* tampering: a header, the body */
    char *t = strstr(m, "Is dinner ready?");
    t[3] = 'D';
    expect_all(m, n, dns, DKIM_FAIL, 2);
    t[3] = 'd';
    t = strstr(m, "We lost the game.");
    t[3] = 'w';
    v = verify_msg(m, n, dns, 1, NULL);
    assert_int_equal(dkim_verifier_get(v, 0)->result, DKIM_FAIL);
    assert_string_equal(dkim_verifier_get(v, 0)->reason, "body hash mismatch (bh=)");
    dkim_verifier_free(&v);
    free(m);
    free(dns);
}

/* The RFC 8463 signatures are deterministic: our header hash and our
 * signing primitive must give their b= values exactly. */
static void test_rfc8463_signatures_exact(void **state)
{
    (void)state;
    size_t n, kn;
    char *m = load_msg("rfc8463/signed.eml", &n);
    char path[512];
    snprintf(path, sizeof path, "%s/rfc8463/private-ec.key", DATA);
    char *seed64 = slurp(path, &kn);
    uint8_t seed[64];
    assert_int_equal(base64_decode(seed64, kn, seed, sizeof seed, BASE64_SKIP_FWS), 32);
    EVP_PKEY *ed = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    snprintf(path, sizeof path, "%s/rfc8463/private-rsa.key", DATA);
    FILE *f = fopen(path, "r");
    EVP_PKEY *rsa = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(ed);
    assert_non_null(rsa);

    struct hdrlist hl;
    hdrlist_init(&hl, 100, 100000);
    /* the header fields only */
    for (size_t i = 0; i < n;) {
        if (m[i] == '\r')
            break;
        size_t e = i;
        for (;;) {
            const char *nl = memchr(m + e, '\n', n - e);
            e = (size_t)(nl - m) + 1;
            if (m[e] != ' ' && m[e] != '\t')
                break;
        }
        hdrlist_add(&hl, m + i, e - i);
        i = e;
    }
    assert_int_equal(hl.n, 7);
    EVP_PKEY *keys[2] = {ed, rsa};
    for (size_t k = 0; k < 2; k++) {
        struct dkim_sig sig;
        enum dkim_result res;
        char why[DKIM_REASON_MAX];
        assert_int_equal(dkim_sig_parse(SIG_DKIM, hl.h[k].text, hl.h[k].len, &sig, &res, why,
                                        sizeof why), 0);
        uint8_t hh[32], out[DKIM_SIG_MAX];
        dkim_header_hash(&sig, &hl, k, hl.h[k].text, hl.h[k].len, hh);
        long sl = dkim_sign_digest(keys[k], hh, out, sizeof out);
        assert_int_equal(sl, (long)sig.blen);
        assert_memory_equal(out, sig.b, sig.blen);
        dkim_sig_free(&sig);
    }
    hdrlist_free(&hl);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(rsa);
    free(seed64);
    free(m);
}

static void test_dkimpy_presigned(void **state)
{
    (void)state;
    if (!have_dkimpy())
        skip();
    char *dns = dns_table("dkimpy/dns-fixtures.json");
    size_t n;
    char *m = load_msg("dkimpy/rfc6376.signed.msg", &n);
    expect_all(m, n, dns, DKIM_PASS, 2);
    free(m);
    m = load_msg("dkimpy/rfc6376.signed.rsa.msg", &n);
    expect_all(m, n, dns, DKIM_PASS, 1);
    /* the malformed-key variant of test._domainkey.football.example.com */
    const char *bad = "test._domainkey.football.example.com\tk=rsa; p=MFwwDQYJKoZIhvNAQEBBQAD"
                      "SwAwSAJBANmBe10IgY+u7h3enWTukkqtUD5PR52Tb/mPfjC0QJTocVBq6Za/PlzfV+Py92Va"
                      "Cak19F4WrbVTK5Gg5tW220MCAwEAAQ==\n";
    struct dkim_verifier *v = verify_msg(m, n, bad, 1, NULL);
    assert_int_equal(only_result(v)->result, DKIM_PERMERROR);
    dkim_verifier_free(&v);
    free(m);
    free(dns);
}

/* ------------------------------------------- signed by other implementations */

static char *sign_external(const char *how, const char *msg, const char *key, const char *d,
                           const char *s, const char *c, const char *alg, size_t *n)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, PY " %s %s/%s %s/%s %s %s %s %s", how, DATA, msg, DATA, key, d, s,
             c, alg);
    size_t raw_n;
    char *raw = run(cmd, &raw_n);
    if (raw == NULL)
        fail_msg("%s failed", cmd);
    char *m = crlf(raw, raw_n, n);
    free(raw);
    return m;
}

static const char *const messages[] = {
    "dkimpy/test.message", "dkimpy/test2.message", "dkimpy/test_extra.message",
    "dkimpy/rfc6376.msg", "dkimpy/rfc6376.w1258.msg", "dkimpy/ed25519test.msg",
};
static const char *const canons[] = {"simple/simple", "simple/relaxed", "relaxed/simple",
                                     "relaxed/relaxed"};

/* Sign many messages with one start of the helper (python starts slowly):
 * lines of "how MSG KEY D S C ALG [LEN]" with MSG and KEY relative to the
 * data directory.  Returns the signed messages (CRLF), NULL where the
 * signer failed. */
struct batch {
    size_t n;
    char *m[64];
    size_t len[64];
};

static void sign_batch(const char *spec, struct batch *out)
{
    char dir[] = "/tmp/test-dkim-batch-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cd %s && " PY " batch %s", DATA, dir);
    FILE *p = popen(cmd, "w");
    assert_non_null(p);
    fputs(spec, p);
    assert_int_equal(pclose(p), 0);
    memset(out, 0, sizeof *out);
    for (const char *l = spec; *l; l = strchr(l, '\n') + 1) {
        assert_true(out->n < 64);
        char path[600];
        snprintf(path, sizeof path, "%s/%zu", dir, out->n);
        size_t raw_n;
        char *raw = slurp(path, &raw_n);
        unlink(path);
        out->m[out->n] = raw_n ? crlf(raw, raw_n, &out->len[out->n]) : NULL;
        free(raw);
        out->n++;
    }
    rmdir(dir);
}

static void batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->m[i]);
}

static void test_signed_by_dkimpy(void **state)
{
    (void)state;
    if (!have_dkimpy())
        skip();
    char *dns = dns_table("dkimpy/dns-fixtures.json");
    struct sm_buf spec;
    sm_buf_init(&spec, 0);
    for (size_t i = 0; i < sizeof messages / sizeof messages[0]; i++) {
        for (size_t c = 0; c < 4; c++) {
            sm_buf_printf(&spec, "sign-dkimpy %s dkimpy/test.private example.com test %s "
                          "rsa-sha256\n", messages[i], canons[c]);
            sm_buf_printf(&spec, "sign-dkimpy %s dkimpy/ed25519test.key example.net test %s "
                          "ed25519-sha256\n", messages[i], canons[c]);
        }
    }
    struct batch b;
    sign_batch(spec.data, &b);
    assert_int_equal(b.n, 48);
    for (size_t i = 0; i < b.n; i++) {
        assert_non_null(b.m[i]);
        expect_all(b.m[i], b.len[i], dns, DKIM_PASS, 1);
    }
    batch_free(&b);
    sm_buf_free(&spec);
    free(dns);
}

static void test_signed_by_dkimpy_with_l(void **state)
{
    (void)state;
    if (!have_dkimpy())
        skip();
    char *dns = dns_table("dkimpy/dns-fixtures.json");
    struct sm_buf spec;
    sm_buf_init(&spec, 0);
    for (size_t c = 0; c < 4; c++)
        sm_buf_printf(&spec, "sign-dkimpy dkimpy/test.message dkimpy/test.private example.com "
                      "test %s rsa-sha256 1\n", canons[c]);
    struct batch bt;
    sign_batch(spec.data, &bt);
    for (size_t c = 0; c < bt.n; c++) {
        const char *m = bt.m[c];
        size_t n = bt.len[c];
        assert_non_null(m);
        assert_non_null(strstr(m, "l="));
        struct dkim_verifier *v = verify_msg(m, n, dns, 1, NULL);
        assert_int_equal(only_result(v)->result, DKIM_PASS);
        assert_false(only_result(v)->unsigned_body);
        dkim_verifier_free(&v);
        /* content appended past l=: still a pass, but flagged */
        struct sm_buf b;
        sm_buf_init(&b, 0);
        sm_buf_append(&b, m, n);
        sm_buf_puts(&b, "Unsigned: click here\r\n");
        v = verify_msg(b.data, b.len, dns, 1, NULL);
        assert_int_equal(only_result(v)->result, DKIM_PASS);
        assert_true(only_result(v)->unsigned_body);
        assert_non_null(strstr(only_result(v)->reason, "unsigned"));
        dkim_verifier_free(&v);
        sm_buf_free(&b);
    }
    batch_free(&bt);
    sm_buf_free(&spec);
    free(dns);
}

static void test_signed_by_opendkim(void **state)
{
    (void)state;
    if (!have_opendkim())
        skip();
    char *dns = dns_table("dkimpy/dns-fixtures.json");
    struct sm_buf spec;
    sm_buf_init(&spec, 0);
    for (size_t i = 0; i < sizeof messages / sizeof messages[0]; i++) {
        for (size_t c = 0; c < 4; c++)
            sm_buf_printf(&spec, "sign-opendkim %s dkimpy/test.private example.com test %s "
                          "rsa-sha256\n", messages[i], canons[c]);
        sm_buf_printf(&spec, "sign-opendkim %s dkimpy/ed25519test.key example.net test "
                      "relaxed/relaxed ed25519-sha256\n", messages[i]);
    }
    /* opendkim-testmsg signs with rsa-sha1: refused, as policy */
    sm_buf_puts(&spec, "sign-opendkim-testmsg dkimpy/test.message dkimpy/test.private "
                       "example.com test\n");
    struct batch b;
    sign_batch(spec.data, &b);
    assert_int_equal(b.n, 31);
    for (size_t i = 0; i + 1 < b.n; i++) {
        assert_non_null(b.m[i]);
        expect_all(b.m[i], b.len[i], dns, DKIM_PASS, 1);
    }
    const char *m = b.m[30];
    assert_non_null(m);
    assert_non_null(strstr(m, "a=rsa-sha1"));
    struct dkim_verifier *v = verify_msg(m, b.len[30], dns, 1, NULL);
    assert_int_equal(only_result(v)->result, DKIM_POLICY);
    assert_non_null(strstr(only_result(v)->reason, "rsa-sha1"));
    assert_string_equal(only_result(v)->a, "rsa-sha1");
    dkim_verifier_free(&v);
    batch_free(&b);
    sm_buf_free(&spec);
    free(dns);
}

static void test_tampered(void **state)
{
    (void)state;
    if (!have_dkimpy())
        skip();
    char *dns = dns_table("dkimpy/dns-fixtures.json");
    size_t n;
    char *m = sign_external("sign-dkimpy", "dkimpy/test.message", "dkimpy/test.private",
                            "example.com", "test", "relaxed/relaxed", "rsa-sha256", &n);
    /* relaxed: case of the name and whitespace may change */
    struct sm_buf b;
    sm_buf_init(&b, 0);
    char *subj = strstr(m, "\r\nSubject: Testing");
    sm_buf_append(&b, m, (size_t)(subj - m));
    sm_buf_puts(&b, "\r\nSUBJECT :  Testing \r\n ");
    sm_buf_append(&b, subj + 18, n - (size_t)(subj + 18 - m));
    struct dkim_verifier *v = verify_msg(b.data, b.len, dns, 1, NULL);
    assert_int_equal(only_result(v)->result, DKIM_PASS);
    dkim_verifier_free(&v);
    sm_buf_free(&b);
    /* a changed header */
    subj[11] = 't';
    v = verify_msg(m, n, dns, 1, NULL);
    assert_int_equal(only_result(v)->result, DKIM_FAIL);
    assert_string_equal(only_result(v)->reason, "signature did not verify");
    dkim_verifier_free(&v);
    subj[11] = 'T';
    /* a second From above the signed one: dkimpy over-signs From */
    sm_buf_init(&b, 0);
    sm_buf_puts(&b, "From: evil@example.org\r\n");
    sm_buf_append(&b, m, n);
    v = verify_msg(b.data, b.len, dns, 1, NULL);
    assert_int_equal(only_result(v)->result, DKIM_FAIL);
    dkim_verifier_free(&v);
    sm_buf_free(&b);
    /* the body */
    char *body = strstr(m, "This is a test");
    body[0] = 't';
    v = verify_msg(m, n, dns, 1, NULL);
    assert_int_equal(only_result(v)->result, DKIM_FAIL);
    assert_string_equal(only_result(v)->reason, "body hash mismatch (bh=)");
    dkim_verifier_free(&v);
    body[0] = 'T';
    /* whitespace at line ends: relaxed body ignores it */
    sm_buf_init(&b, 0);
    sm_buf_append(&b, m, (size_t)(strstr(m, "message.") + 8 - m));
    sm_buf_puts(&b, "  \t\r\n\r\n\r\n");
    v = verify_msg(b.data, b.len, dns, 1, NULL);
    assert_int_equal(only_result(v)->result, DKIM_PASS);
    dkim_verifier_free(&v);
    sm_buf_free(&b);
    free(m);
    free(dns);
}

/* ---------------------------------------------------------------- signing */

static EVP_PKEY *load_rsa(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", DATA, rel);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(k);
    return k;
}

static EVP_PKEY *load_ed25519(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", DATA, rel);
    size_t n;
    char *s = slurp(path, &n);
    uint8_t seed[64];
    assert_int_equal(base64_decode(s, n, seed, sizeof seed, BASE64_SKIP_FWS), 32);
    free(s);
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    assert_non_null(k);
    return k;
}

static void s_header(void *o, const char *p, size_t n)
{
    dkim_signer_header(o, p, n);
}
static void s_done(void *o)
{
    dkim_signer_headers_done(o);
}
static void s_body(void *o, const void *p, size_t n)
{
    dkim_signer_body(o, p, n);
}

static char *sign_ours(const struct dkim_sign_params *p, const char *m, size_t n, size_t chunk,
                       const char **err)
{
    struct dkim_signer *s = dkim_signer_new(p, err);
    if (s == NULL)
        return NULL;
    struct feeder f = {s_header, s_done, s_body, s};
    feed(&f, m, n, chunk);
    char *field = dkim_signer_finish(s, err);
    dkim_signer_free(&s);
    return field;
}

static char *prepend(const char *field, const char *m, size_t n, size_t *len)
{
    struct sm_buf b;
    sm_buf_init(&b, 0);
    sm_buf_puts(&b, field);
    sm_buf_append(&b, m, n);
    *len = b.len;
    return b.data;
}

static bool dkimpy_verifies(const char *m, size_t n, const char *dns)
{
    char mp[] = "/tmp/test-dkim-msg-XXXXXX", dp[] = "/tmp/test-dkim-dns-XXXXXX";
    int fm = mkstemp(mp), fdn = mkstemp(dp);
    assert_true(fm >= 0 && fdn >= 0);
    assert_int_equal(write(fm, m, n), (ssize_t)n);
    assert_int_equal(write(fdn, dns, strlen(dns)), (ssize_t)strlen(dns));
    close(fm);
    close(fdn);
    char cmd[512];
    snprintf(cmd, sizeof cmd, PY " verify-dkimpy %s %s >/dev/null 2>&1", mp, dp);
    int rc = system(cmd);
    unlink(mp);
    unlink(dp);
    return rc == 0;
}

static void test_sign_round_trip(void **state)
{
    (void)state;
    const char *hdrs[] = {"from", "to", "subject", "date", "message-id", "from", "subject", "date"};
    EVP_PKEY *keys[2] = {load_rsa("rfc8463/private-rsa.key"),
                         load_ed25519("rfc8463/private-ec.key")};
    const char *sels[2] = {"test", "brisbane"};
    char *dns = have_dkimpy() ? dns_table("rfc8463/dns.json") : NULL;
    size_t n;
    char *m = load_msg("dkimpy/rfc6376.msg", &n);
    for (size_t k = 0; k < 2; k++) {
        struct dkim_sign_params p = {.key = keys[k], .domain = "football.example.com",
                                     .selector = sels[k], .headers = hdrs, .n_headers = 8,
                                     .identity = "@football.example.com", .time = 1528637909,
                                     .expire = -1};
        const char *err = NULL;
        char *f1 = sign_ours(&p, m, n, 1, &err);
        char *f2 = sign_ours(&p, m, n, n, &err);
        assert_non_null(f1);
        assert_string_equal(f1, f2); /* deterministic, and chunking does not matter */
        /* the body hash of RFC 8463 A.3 */
        if (strstr(f1, "bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;") == NULL)
            fail_msg("%s", f1);
        /* folded under 78 columns, CRLF throughout */
        for (const char *l = f1; *l;) {
            const char *e = strstr(l, "\r\n");
            assert_non_null(e);
            assert_true(e - l < 78);
            l = e + 2;
        }
        size_t sn;
        char *signed_m = prepend(f1, m, n, &sn);
        if (dns != NULL) {
            expect_all(signed_m, sn, dns, DKIM_PASS, 1);
            assert_true(dkimpy_verifies(signed_m, sn, dns));
            /* tampered: both verifiers refuse */
            char *t = strstr(signed_m, "hungry");
            t[0] = 'H';
            expect_all(signed_m, sn, dns, DKIM_FAIL, 1);
            assert_false(dkimpy_verifies(signed_m, sn, dns));
        }
        free(signed_m);
        free(f1);
        free(f2);
    }
    free(m);

    /* refusals */
    const char *err = NULL;
    const char *nofrom[] = {"to", "subject"};
    struct dkim_sign_params p = {.key = keys[0], .domain = "example.com", .selector = "s",
                                 .headers = nofrom, .n_headers = 2, .time = -1, .expire = -1};
    assert_null(dkim_signer_new(&p, &err));
    assert_non_null(strstr(err, "From"));
    p.headers = hdrs;
    p.n_headers = 8;
    p.domain = "exa(mple.com";
    assert_null(dkim_signer_new(&p, &err));
    p.domain = "example.com";
    p.identity = "user@example.org";
    assert_null(dkim_signer_new(&p, &err));
    p.identity = "user@sub.example.com";
    m = load_msg("dkimpy/test_nofrom.message", &n);
    assert_null(sign_ours(&p, m, n, 5, &err));
    assert_non_null(strstr(err, "no From"));
    free(m);
    EVP_PKEY *small = EVP_RSA_gen(512);
    p.key = small;
    assert_null(dkim_signer_new(&p, &err));
    EVP_PKEY_free(small);
    EVP_PKEY_free(keys[0]);
    EVP_PKEY_free(keys[1]);
    free(dns);
}

/* Our signer with a 2048-bit key, every dkimpy message, checked by dkimpy
 * and by us. */
static void test_sign_many(void **state)
{
    (void)state;
    if (!have_dkimpy())
        skip();
    EVP_PKEY *key = load_rsa("dkimpy/2048_testkey.key");
    char *dns = dns_table("dkimpy/dns-fixtures.json");
    /* the 2048-bit key's public half is test3 */
    const char *hdrs[] = {"from", "to", "subject", "date", "message-id", "from"};
    for (size_t i = 0; i < sizeof messages / sizeof messages[0]; i++) {
        size_t n, sn;
        char *m = load_msg(messages[i], &n);
        struct dkim_sign_params p = {.key = key, .domain = "example.com", .selector = "test3",
                                     .headers = hdrs, .n_headers = 6, .time = NOW - 10,
                                     .expire = NOW + 3600};
        const char *err = NULL;
        char *f = sign_ours(&p, m, n, 3, &err);
        assert_non_null(f);
        char *sm = prepend(f, m, n, &sn);
        expect_all(sm, sn, dns, DKIM_PASS, 1);
        if (!dkimpy_verifies(sm, sn, dns)) {
            FILE *o = fopen("/tmp/test-dkim-failed.eml", "wb");
            fwrite(sm, 1, sn, o);
            fclose(o);
            fail_msg("dkimpy does not verify our signature of %s", messages[i]);
        }
        free(sm);
        free(f);
        free(m);
    }
    free(dns);
    EVP_PKEY_free(key);
}

/* --------------------------------------------------- rules and key records */

/* A message signed by us (d=example.com s=sel, Ed25519) with the given
 * extra tags spliced into the field, checked against key record rec. */
static EVP_PKEY *ed_key;
static const char *ed_pub = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="; /* of private-ec.key */

static const char base_msg[] = "From: a@example.com\r\nTo: b@example.org\r\nSubject: x\r\n\r\nbody\r\n";

static const struct dkim_sig_result *check_field(const char *field, const char *rec,
                                                 struct dkim_verifier **vp, int64_t now)
{
    struct sm_buf m, dns;
    sm_buf_init(&m, 0);
    sm_buf_init(&dns, 0);
    sm_buf_puts(&m, field);
    sm_buf_puts(&m, base_msg);
    if (rec != NULL)
        sm_buf_printf(&dns, "sel._domainkey.example.com\t%s\n", rec);
    struct dkim_verifier *v = dkim_verifier_new(NULL);
    struct feeder f = {v_header, v_done, v_body, v};
    feed(&f, m.data, m.len, 1);
    struct dnsview *view = dnsview_new();
    while (dkim_verifier_result(v, view, now) == MAILAUTH_NEED_DNS)
        answer_pending(view, dns.data ? dns.data : "");
    dnsview_free(&view);
    sm_buf_free(&m);
    sm_buf_free(&dns);
    *vp = v;
    return only_result(v);
}

static char *our_field(int64_t t, int64_t x, const char *identity)
{
    const char *hdrs[] = {"from", "to", "subject"};
    struct dkim_sign_params p = {.key = ed_key, .domain = "example.com", .selector = "sel",
                                 .headers = hdrs, .n_headers = 3, .identity = identity,
                                 .time = t, .expire = x};
    const char *err;
    char *f = sign_ours(&p, base_msg, strlen(base_msg), 4, &err);
    assert_non_null(f);
    return f;
}

static void expect_field(const char *field, const char *rec, int64_t now, enum dkim_result want,
                         const char *reason_part)
{
    struct dkim_verifier *v;
    const struct dkim_sig_result *r = check_field(field, rec, &v, now);
    if (r->result != want || (reason_part && strstr(r->reason, reason_part) == NULL))
        fail_msg("[%s] with [%s]: %s (%s), wanted %s (%s)", field, rec ? rec : "no record",
                 dkim_result_name(r->result), r->reason, dkim_result_name(want),
                 reason_part ? reason_part : "");
    dkim_verifier_free(&v);
}

static void test_key_records(void **state)
{
    (void)state;
    ed_key = load_ed25519("rfc8463/private-ec.key");
    char *f = our_field(-1, -1, NULL);
    char rec[256];
    snprintf(rec, sizeof rec, "v=DKIM1; k=ed25519; p=%s", ed_pub);
    expect_field(f, rec, NOW, DKIM_PASS, "verified");
    snprintf(rec, sizeof rec, "k=ed25519; p=%s", ed_pub); /* v= is optional */
    expect_field(f, rec, NOW, DKIM_PASS, NULL);
    snprintf(rec, sizeof rec, "k=ed25519; v=DKIM1; p=%s", ed_pub); /* v= not first */
    expect_field(f, rec, NOW, DKIM_PERMERROR, "v=");
    snprintf(rec, sizeof rec, "v=DKIM2; k=ed25519; p=%s", ed_pub);
    expect_field(f, rec, NOW, DKIM_PERMERROR, "DKIM1");
    snprintf(rec, sizeof rec, "v=DKIM1; p=%s", ed_pub); /* k= defaults to rsa */
    expect_field(f, rec, NOW, DKIM_PERMERROR, "k=");
    snprintf(rec, sizeof rec, "v=DKIM1; k=ed448; p=%s", ed_pub);
    expect_field(f, rec, NOW, DKIM_PERMERROR, "unknown key type");
    snprintf(rec, sizeof rec, "v=DKIM1; k=ed25519; h=sha1; p=%s", ed_pub);
    expect_field(f, rec, NOW, DKIM_PERMERROR, "h=");
    snprintf(rec, sizeof rec, "v=DKIM1; k=ed25519; h=sha1:sha256; p=%s", ed_pub);
    expect_field(f, rec, NOW, DKIM_PASS, NULL);
    snprintf(rec, sizeof rec, "v=DKIM1; k=ed25519; s=tlsrpt; p=%s", ed_pub);
    expect_field(f, rec, NOW, DKIM_PERMERROR, "s=");
    snprintf(rec, sizeof rec, "v=DKIM1; k=ed25519; s=email:tlsrpt; t=y; p=%s", ed_pub);
    {
        struct dkim_verifier *v;
        const struct dkim_sig_result *r = check_field(f, rec, &v, NOW);
        assert_int_equal(r->result, DKIM_PASS);
        assert_true(r->testing);
        dkim_verifier_free(&v);
    }
    expect_field(f, "v=DKIM1; k=ed25519; p=", NOW, DKIM_PERMERROR, "revoked");
    expect_field(f, "v=DKIM1; k=ed25519; p=AAAA", NOW, DKIM_PERMERROR, "32 bytes");
    expect_field(f, "v=DKIM1; k=ed25519; p=!!", NOW, DKIM_PERMERROR, "base64");
    expect_field(f, "v=DKIM1; k=ed25519; p=a;;", NOW, DKIM_PERMERROR, "tag list");
    expect_field(f, NULL, NOW, DKIM_PERMERROR, "NXDOMAIN");
    /* another key: the signature does not verify */
    expect_field(f, "v=DKIM1; k=ed25519; p=yi50DjK5O9pqbFpNHklsv9lqaS0ArSYu02qp1S0DW1Y=", NOW,
                 DKIM_FAIL, "did not verify");
    /* RSA key for an Ed25519 signature */
    expect_field(f,
                 "v=DKIM1; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a"
                 "5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6l"
                 "HvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB",
                 NOW, DKIM_PERMERROR, "k=");
    free(f);

    /* t=s: i= must be exactly d= */
    f = our_field(-1, -1, "user@mail.example.com");
    snprintf(rec, sizeof rec, "v=DKIM1; k=ed25519; p=%s", ed_pub);
    expect_field(f, rec, NOW, DKIM_PASS, NULL);
    snprintf(rec, sizeof rec, "v=DKIM1; k=ed25519; t=y:s; p=%s", ed_pub);
    expect_field(f, rec, NOW, DKIM_PERMERROR, "t=s");
    free(f);

    /* expiry and the future */
    snprintf(rec, sizeof rec, "v=DKIM1; k=ed25519; p=%s", ed_pub);
    f = our_field(NOW - 100, NOW + 100, NULL);
    expect_field(f, rec, NOW, DKIM_PASS, NULL);
    expect_field(f, rec, NOW + 101, DKIM_PERMERROR, "expired");
    expect_field(f, rec, NOW - 100 - 900, DKIM_PASS, NULL); /* within the tolerance */
    expect_field(f, rec, NOW - 100 - 901, DKIM_PERMERROR, "future");
    free(f);
    EVP_PKEY_free(ed_key);
}

static void test_dns_states(void **state)
{
    (void)state;
    ed_key = load_ed25519("rfc8463/private-ec.key");
    char *f = our_field(-1, -1, NULL);
    struct sm_buf m;
    sm_buf_init(&m, 0);
    sm_buf_puts(&m, f);
    sm_buf_puts(&m, f); /* twice: one question */
    sm_buf_puts(&m, base_msg);
    struct dkim_verifier *v = dkim_verifier_new(NULL);
    struct feeder fd = {v_header, v_done, v_body, v};
    feed(&fd, m.data, m.len, 2);
    struct dnsview *view = dnsview_new();
    assert_int_equal(dkim_verifier_result(v, view, NOW), MAILAUTH_NEED_DNS);
    assert_int_equal(dnsview_pending(view), 1);
    const char *q;
    uint16_t t;
    dnsview_pending_at(view, 0, &q, &t);
    assert_string_equal(q, "sel._domainkey.example.com");
    assert_int_equal(t, DNS_T_TXT);
    dnsview_put(view, "sel._domainkey.example.com", DNS_T_TXT, dns_answer_new(DNS_TEMPFAIL));
    assert_int_equal(dkim_verifier_result(v, view, NOW), MAILAUTH_DONE);
    assert_int_equal(dkim_verifier_get(v, 0)->result, DKIM_TEMPERROR);
    assert_int_equal(dkim_verifier_get(v, 1)->result, DKIM_TEMPERROR);
    /* the answer changes (a retry): the same verifier checks again */
    struct dns_answer *a = dns_answer_new(DNS_OK);
    char rec[128];
    snprintf(rec, sizeof rec, "v=DKIM1; k=ed25519; p=%s", ed_pub);
    char garbage[] = "garbage";
    struct dns_rr rr = {.type = DNS_T_TXT, .data = (uint8_t *)garbage, .len = 7};
    dns_answer_add(a, &rr); /* a record that is not a key is skipped */
    rr.data = (uint8_t *)rec;
    rr.len = strlen(rec);
    dns_answer_add(a, &rr);
    dnsview_put(view, "sel._domainkey.example.com", DNS_T_TXT, a);
    assert_int_equal(dkim_verifier_result(v, view, NOW), MAILAUTH_DONE);
    assert_int_equal(dkim_verifier_get(v, 0)->result, DKIM_PASS);
    assert_int_equal(dkim_verifier_get(v, 1)->result, DKIM_PASS);
    dnsview_put(view, "sel._domainkey.example.com", DNS_T_TXT, dns_answer_new(DNS_OK));
    assert_int_equal(dkim_verifier_result(v, view, NOW), MAILAUTH_DONE);
    assert_int_equal(dkim_verifier_get(v, 0)->result, DKIM_PERMERROR);
    dnsview_put(view, "sel._domainkey.example.com", DNS_T_TXT, dns_answer_new(DNS_PERMFAIL));
    assert_int_equal(dkim_verifier_result(v, view, NOW), MAILAUTH_DONE);
    assert_int_equal(dkim_verifier_get(v, 0)->result, DKIM_PERMERROR);
    dnsview_free(&view);
    dkim_verifier_free(&v);
    sm_buf_free(&m);
    free(f);
    EVP_PKEY_free(ed_key);
}

/* Hand-written signature fields: everything here is decided before any
 * key is fetched or anything is hashed. */
static void test_signature_syntax(void **state)
{
    (void)state;
#define B "b=dGVzdA==; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    static const struct {
        const char *field;
        enum dkim_result want;
        const char *reason;
    } cases[] = {
        {"DKIM-Signature: a=rsa-sha256; d=example.com; s=sel; h=from; " B "\r\n",
         DKIM_PERMERROR, "v="},
        {"DKIM-Signature: v=2; a=rsa-sha256; d=example.com; s=sel; h=from; " B "\r\n",
         DKIM_PERMERROR, "v="},
        {"DKIM-Signature: v=1; a=rsa-sha1; d=example.com; s=sel; h=from; " B "\r\n", DKIM_POLICY,
         "rsa-sha1"},
        {"DKIM-Signature: v=1; a=rsa-sha512; d=example.com; s=sel; h=from; " B "\r\n",
         DKIM_PERMERROR, "unknown algorithm"},
        {"DKIM-Signature: v=1; d=example.com; s=sel; h=from; " B "\r\n", DKIM_PERMERROR, "a="},
        {"DKIM-Signature: v=1; a=rsa-sha256; s=sel; h=from; " B "\r\n", DKIM_PERMERROR, "d="},
        {"DKIM-Signature: v=1; a=rsa-sha256; d=exa(mple.com; s=sel; h=from; " B "\r\n",
         DKIM_PERMERROR, "d="},
        {"DKIM-Signature: v=1; a=rsa-sha256; d=example..com; s=sel; h=from; " B "\r\n",
         DKIM_PERMERROR, "d="},
        {"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; h=from; " B "\r\n", DKIM_PERMERROR,
         "s="},
        {"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; " B "\r\n", DKIM_PERMERROR,
         "h="},
        {"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=to:subject; " B "\r\n",
         DKIM_PERMERROR, "From"},
        {"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from::to; " B "\r\n",
         DKIM_PERMERROR, "h="},
        {"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from; b=; bh=47DEQpj8HBSa+/"
         "TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\r\n",
         DKIM_PERMERROR, "b="},
        {"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from; b=dGVzdA==\r\n",
         DKIM_PERMERROR, "bh="},
        {"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from; b=dGVzdA==; bh=AAAA\r\n",
         DKIM_PERMERROR, "SHA-256"},
        {"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from; b=dGVzd; " B "\r\n",
         DKIM_PERMERROR, "tag list"}, /* duplicate b= */
        {"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from; c=relaxed/fancy; " B
         "\r\n",
         DKIM_PERMERROR, "c="},
        {"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from; l=12a; " B "\r\n",
         DKIM_PERMERROR, "l="},
        {"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from; q=dns/xml; " B "\r\n",
         DKIM_PERMERROR, "q="},
        {"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from; t=soon; " B "\r\n",
         DKIM_PERMERROR, "t="},
        {"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from; t=20; x=10; " B "\r\n",
         DKIM_PERMERROR, "x="},
        {"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from; i=@example.org; " B
         "\r\n",
         DKIM_PERMERROR, "i="},
        {"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from; i=@badexample.com; " B
         "\r\n",
         DKIM_PERMERROR, "i="},
        {"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from; i=nobody; " B "\r\n",
         DKIM_PERMERROR, "i="},
        {"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from; ; " B "\r\n",
         DKIM_PERMERROR, "tag list"},
        {"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from; B=x; " B "\r\n",
         DKIM_NONE, NULL}, /* an unknown tag (names are case-sensitive) is ignored */
        {"DKIM-Signature:\r\n", DKIM_PERMERROR, "v="},
        {"DKIM-Signature: \x01\r\n", DKIM_PERMERROR, "tag list"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct dkim_verifier *v;
        /* no key record: a signature that got that far says NXDOMAIN */
        const struct dkim_sig_result *r = check_field(cases[i].field, NULL, &v, NOW);
        enum dkim_result want = cases[i].want == DKIM_NONE ? DKIM_PERMERROR : cases[i].want;
        const char *why = cases[i].reason ? cases[i].reason : "NXDOMAIN";
        if (r->result != want || strstr(r->reason, why) == NULL)
            fail_msg("case %zu [%s]: %s (%s), wanted %s (%s)", i, cases[i].field, dkim_result_name(r->result),
                     r->reason, dkim_result_name(want), why);
        dkim_verifier_free(&v);
    }
#undef B
}

static void test_small_rsa_key(void **state)
{
    (void)state;
    /* example._domainkey.canonical.com in the dkimpy fixtures is 512 bits */
    const char *field = "DKIM-Signature: v=1; a=rsa-sha256; d=canonical.com; s=example; h=from;"
                        " b=dGVzdA==; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\r\n";
    const char *dns = "example._domainkey.canonical.com\tk=rsa; s=email;p=MFwwDQYJKoZIhvcNAQEBBQ"
                      "ADSwAwSAJBANmBe10IgY+u7h3enWTukkqtUD5PR52Tb/mPfjC0QJTocVBq6Za/PlzfV+Py92Va"
                      "Cak19F4WrbVTK5Gg5tW220MCAwEAAQ==\n";
    struct sm_buf m;
    sm_buf_init(&m, 0);
    sm_buf_puts(&m, field);
    sm_buf_puts(&m, base_msg);
    struct dkim_verifier *v = verify_msg(m.data, m.len, dns, 3, NULL);
    assert_int_equal(only_result(v)->result, DKIM_POLICY);
    assert_int_equal(only_result(v)->key_bits, 512);
    assert_non_null(strstr(only_result(v)->reason, "512"));
    dkim_verifier_free(&v);
    sm_buf_free(&m);
}

static void test_limits(void **state)
{
    (void)state;
    ed_key = load_ed25519("rfc8463/private-ec.key");
    char *f = our_field(-1, -1, NULL);
    char rec[128];
    snprintf(rec, sizeof rec, "sel._domainkey.example.com\tv=DKIM1; k=ed25519; p=%s\n", ed_pub);
    struct sm_buf m;
    sm_buf_init(&m, 0);
    for (int i = 0; i < 5; i++)
        sm_buf_puts(&m, f);
    sm_buf_puts(&m, base_msg);
    struct dkim_limits lim = {.max_signatures = 3};
    struct dkim_verifier *v = verify_msg(m.data, m.len, rec, 1, &lim);
    assert_int_equal(dkim_verifier_count(v), 3);
    assert_int_equal(dkim_verifier_skipped(v), 2);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(dkim_verifier_get(v, i)->result, DKIM_PASS);
    dkim_verifier_free(&v);

    /* over the header limits: not checked, as policy */
    struct dkim_limits small = {.max_header_fields = 3};
    v = verify_msg(m.data, m.len, rec, 1, &small);
    assert_int_equal(dkim_verifier_count(v), 3);
    assert_int_equal(dkim_verifier_skipped(v), 2);
    assert_int_equal(dkim_verifier_get(v, 0)->result, DKIM_POLICY);
    dkim_verifier_free(&v);
    struct dkim_limits bytes = {.max_header_bytes = 100};
    v = verify_msg(m.data, m.len, rec, 1, &bytes);
    assert_int_equal(dkim_verifier_count(v), 0);
    assert_int_equal(dkim_verifier_skipped(v), 5);
    dkim_verifier_free(&v);
    sm_buf_free(&m);

    /* h= with more than DKIM_H_MAX names */
    sm_buf_init(&m, 0);
    sm_buf_puts(&m, "DKIM-Signature: v=1; a=ed25519-sha256; d=example.com; s=sel; h=from");
    for (int i = 0; i < DKIM_H_MAX; i++)
        sm_buf_puts(&m, ":to");
    sm_buf_puts(&m, "; b=dGVzdA==; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\r\n");
    expect_field(m.data, NULL, NOW, DKIM_PERMERROR, "h=");
    sm_buf_free(&m);

    /* an over-long header field and a huge body stream through */
    v = dkim_verifier_new(NULL);
    dkim_verifier_header(v, f, strlen(f));
    char *big = sm_malloc(2 * 1024 * 1024);
    memset(big, 'x', 2 * 1024 * 1024);
    memcpy(big, "X-Big: ", 7);
    memcpy(big + 2 * 1024 * 1024 - 2, "\r\n", 2);
    dkim_verifier_header(v, big, 2 * 1024 * 1024);
    dkim_verifier_header(v, "From: a@example.com\r\n", 21);
    dkim_verifier_headers_done(v);
    for (int i = 0; i < 8; i++)
        dkim_verifier_body(v, big, 2 * 1024 * 1024);
    struct dnsview *view = dnsview_new();
    while (dkim_verifier_result(v, view, NOW) == MAILAUTH_NEED_DNS)
        answer_pending(view, rec);
    assert_int_equal(only_result(v)->result, DKIM_POLICY);
    dnsview_free(&view);
    dkim_verifier_free(&v);
    free(big);
    free(f);
    EVP_PKEY_free(ed_key);
}

static void test_no_signature(void **state)
{
    (void)state;
    struct dkim_verifier *v = dkim_verifier_new(NULL);
    dkim_verifier_header(v, "From: a@example.com\r\n", 21);
    dkim_verifier_body(v, "hi\r\n", 4); /* ends the header by itself */
    struct dnsview *view = dnsview_new();
    assert_int_equal(dkim_verifier_result(v, view, NOW), MAILAUTH_DONE);
    assert_int_equal(dkim_verifier_count(v), 0);
    assert_null(dkim_verifier_get(v, 0));
    assert_int_equal(dnsview_pending(view), 0);
    dnsview_free(&view);
    dkim_verifier_free(&v);
    dkim_verifier_free(&v); /* NULL is fine */
    assert_string_equal(dkim_result_name(DKIM_PERMERROR), "permerror");
    assert_string_equal(dkim_result_name(DKIM_NONE), "none");
}

int main(void)
{
    NOW = (int64_t)time(NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bodyhash_vectors),
        cmocka_unit_test(test_canonicalisation),
        cmocka_unit_test(test_long_trailing_blank_lines),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_rfc8463_example),
        cmocka_unit_test(test_rfc8463_signatures_exact),
        cmocka_unit_test(test_dkimpy_presigned),
        cmocka_unit_test(test_signed_by_dkimpy),
        cmocka_unit_test(test_signed_by_dkimpy_with_l),
        cmocka_unit_test(test_signed_by_opendkim),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_sign_round_trip),
        cmocka_unit_test(test_sign_many),
        cmocka_unit_test(test_key_records),
        cmocka_unit_test(test_dns_states),
        cmocka_unit_test(test_signature_syntax),
        cmocka_unit_test(test_small_rsa_key),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_no_signature),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
