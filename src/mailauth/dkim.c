/* dkim.c — streaming DKIM verification and signing (dkim.h). */
#include "mailauth/dkim.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"
#include "core/log.h"
#include "core/mem.h"
#include "mailauth/dkim-core.h"

#define DEFAULT_MAX_SIGNATURES 8
#define DEFAULT_MAX_HEADER_FIELDS 1000
#define DEFAULT_MAX_HEADER_BYTES (1024 * 1024)
#define DEFAULT_FUTURE_TOLERANCE 900

const char *dkim_result_name(enum dkim_result r)
{
    switch (r) {
    case DKIM_NONE: return "none";
    case DKIM_PASS: return "pass";
    case DKIM_FAIL: return "fail";
    case DKIM_NEUTRAL: return "neutral";
    case DKIM_POLICY: return "policy";
    case DKIM_TEMPERROR: return "temperror";
    case DKIM_PERMERROR: return "permerror";
    }
    return "permerror";
}

enum stream_state {
    ST_HEADERS,
    ST_BODY,
    ST_DONE,
};

struct vsig {
    struct dkim_sig sig;
    size_t field;       /* index in the header list */
    uint8_t hh[32];     /* header hash */
    size_t body;        /* index in the body digests */
    bool final;         /* decided before any key was needed */
    struct dkim_sig_result r;
};

struct dkim_verifier {
    struct dkim_limits lim;
    enum stream_state state;
    struct hdrlist hl;
    struct vsig *sigs;  /* grown as signatures come: most mail has one or two, */
    size_t nsigs, cap;  /* and zeroing room for the limit cost more than parsing */
    size_t skipped;
    struct bodyhash bh;
};

static void limits_fill(struct dkim_limits *dst, const struct dkim_limits *src)
{
    if (src != NULL)
        *dst = *src;
    else
        memset(dst, 0, sizeof *dst);
    if (dst->max_signatures == 0)
        dst->max_signatures = DEFAULT_MAX_SIGNATURES;
    if (dst->max_header_fields == 0)
        dst->max_header_fields = DEFAULT_MAX_HEADER_FIELDS;
    if (dst->max_header_bytes == 0)
        dst->max_header_bytes = DEFAULT_MAX_HEADER_BYTES;
    if (dst->future_tolerance == 0)
        dst->future_tolerance = DEFAULT_FUTURE_TOLERANCE;
}

struct dkim_verifier *dkim_verifier_new(const struct dkim_limits *limits)
{
    struct dkim_verifier *v = sm_malloc(sizeof *v);
    limits_fill(&v->lim, limits);
    hdrlist_init(&v->hl, v->lim.max_header_fields, v->lim.max_header_bytes);
    return v;
}

void dkim_verifier_header(struct dkim_verifier *v, const char *field, size_t len)
{
    static const char name[] = "dkim-signature";
    if (v->state != ST_HEADERS)
        return;
    bool added = hdrlist_add(&v->hl, field, len);
    bool is_sig;
    if (added) {
        is_sig = hdr_is(&v->hl.h[v->hl.n - 1], name, sizeof name - 1);
    } else {
        is_sig = len > sizeof name - 1 && strncasecmp(field, name, sizeof name - 1) == 0 &&
                 (field[sizeof name - 1] == ':' || field[sizeof name - 1] == ' ' ||
                  field[sizeof name - 1] == '\t');
    }
    if (!is_sig)
        return;
    if (!added || v->nsigs == v->lim.max_signatures) {
        v->skipped++;
        return;
    }
    if (v->nsigs == v->cap) {
        size_t cap = v->cap == 0 ? 2 : v->cap * 2;
        if (cap > v->lim.max_signatures)
            cap = v->lim.max_signatures;
        v->sigs = sm_realloc(v->sigs, cap * sizeof *v->sigs);
        memset(v->sigs + v->cap, 0, (cap - v->cap) * sizeof *v->sigs);
        v->cap = cap;
    }
    v->sigs[v->nsigs++].field = v->hl.n - 1;
}

static void result_names(struct vsig *s)
{
    struct dkim_sig_result *r = &s->r;
    snprintf(r->d, sizeof r->d, "%s", s->sig.d);
    snprintf(r->s, sizeof r->s, "%s", s->sig.s);
    snprintf(r->a, sizeof r->a, "%s", s->sig.a);
    snprintf(r->i, sizeof r->i, "%s", s->sig.i[0] ? s->sig.i : "");
    if (r->i[0] == '\0' && s->sig.d[0] != '\0')
        snprintf(r->i, sizeof r->i, "@%s", s->sig.d);
    snprintf(r->header_b, sizeof r->header_b, "%s", s->sig.header_b);
}

static void prepare_sig(struct dkim_verifier *v, struct vsig *s)
{
    const struct hdr *f = &v->hl.h[s->field];
    enum dkim_result res = DKIM_PERMERROR;
    int rc = dkim_sig_parse(SIG_DKIM, f->text, f->len, &s->sig, &res, s->r.reason,
                            sizeof s->r.reason);
    result_names(s);
    if (rc < 0) {
        s->final = true;
        s->r.result = res;
        return;
    }
    if (v->hl.overflow) {
        s->final = true;
        s->r.result = DKIM_POLICY;
        snprintf(s->r.reason, sizeof s->r.reason,
                 "header section over the verifier's limits: not checked");
        return;
    }
    dkim_header_hash(&s->sig, &v->hl, s->field, f->text, f->len, s->hh);
    s->body = bodyhash_add(&v->bh, s->sig.bc, s->sig.has_l ? s->sig.l : CANON_NO_LIMIT);
}

void dkim_verifier_headers_done(struct dkim_verifier *v)
{
    if (v->state != ST_HEADERS)
        return;
    for (size_t i = 0; i < v->nsigs; i++)
        prepare_sig(v, &v->sigs[i]);
    hdrlist_free(&v->hl); /* the hashes are taken: no need to hold the header */
    v->state = ST_BODY;
}

void dkim_verifier_body(struct dkim_verifier *v, const void *p, size_t n)
{
    if (v->state == ST_HEADERS)
        dkim_verifier_headers_done(v);
    if (v->state == ST_BODY)
        bodyhash_update(&v->bh, p, n);
}

void dkim_verifier_body_done(struct dkim_verifier *v)
{
    if (v->state == ST_HEADERS)
        dkim_verifier_headers_done(v);
    if (v->state == ST_BODY)
        bodyhash_final(&v->bh);
    v->state = ST_DONE;
}

/* Check one signature whose key is wanted; false while the key is pending. */
static bool check_sig(struct dkim_verifier *v, struct vsig *s, struct dnsview *view, int64_t now)
{
    struct dkim_sig_result *r = &s->r;
    r->key_bits = 0;
    r->testing = false;
    if (dkim_sig_check_time(&s->sig, now, v->lim.future_tolerance, r->reason,
                            sizeof r->reason) < 0) {
        r->result = DKIM_PERMERROR;
        return true;
    }
    struct dkim_key key;
    enum dkim_result kr = dkim_key_get(view, &s->sig, &key, r->reason, sizeof r->reason);
    if (kr == DKIM_NONE) {
        r->result = DKIM_TEMPERROR;
        snprintf(r->reason, sizeof r->reason, "key lookup pending");
        return false;
    }
    r->key_bits = key.bits;
    if (kr != DKIM_PASS) {
        r->result = kr;
        return true;
    }
    r->testing = key.testing;
    const struct bodyhash_entry *e = bodyhash_get(&v->bh, s->body);
    r->body_length = e->cb.length;
    r->unsigned_body = s->sig.has_l && e->cb.length > s->sig.l;
    if (e->dlen != s->sig.bhlen || memcmp(e->digest, s->sig.bh, e->dlen) != 0) {
        r->result = DKIM_FAIL;
        snprintf(r->reason, sizeof r->reason, "body hash mismatch (bh=)");
    } else if (!dkim_verify_digest(&s->sig, &key, s->hh)) {
        r->result = DKIM_FAIL;
        snprintf(r->reason, sizeof r->reason, "signature did not verify");
    } else {
        r->result = DKIM_PASS;
        snprintf(r->reason, sizeof r->reason, "%s",
                 r->unsigned_body ? "signature verified; l= leaves body content unsigned"
                                  : "signature verified");
    }
    dkim_key_free(&key);
    return true;
}

int dkim_verifier_result(struct dkim_verifier *v, struct dnsview *view, int64_t now)
{
    if (v->state != ST_DONE)
        dkim_verifier_body_done(v);
    bool pending = false;
    for (size_t i = 0; i < v->nsigs; i++) {
        struct vsig *s = &v->sigs[i];
        if (!s->final && !check_sig(v, s, view, now))
            pending = true;
    }
    return pending ? MAILAUTH_NEED_DNS : MAILAUTH_DONE;
}

size_t dkim_verifier_count(const struct dkim_verifier *v)
{
    return v->nsigs;
}

const struct dkim_sig_result *dkim_verifier_get(const struct dkim_verifier *v, size_t i)
{
    return i < v->nsigs ? &v->sigs[i].r : NULL;
}

size_t dkim_verifier_skipped(const struct dkim_verifier *v)
{
    return v->skipped;
}

void dkim_verifier_free(struct dkim_verifier **vp)
{
    struct dkim_verifier *v = *vp;
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->nsigs; i++)
        dkim_sig_free(&v->sigs[i].sig);
    sm_freep(&v->sigs);
    hdrlist_free(&v->hl);
    bodyhash_free(&v->bh);
    sm_freep(vp);
}

/* ---------------------------------------------------------------- signing */

#define FOLD_COL 76

struct dkim_signer {
    EVP_PKEY *key;
    enum dkim_alg alg;
    char d[DNS_NAME_MAX + 1];
    char s[DNS_NAME_MAX + 1];
    char *identity;
    int64_t time, expire;
    struct dkim_sig sig;    /* h= and canonicalisation, for the header hash */
    struct hdrlist hl;
    struct canon_body body;
    enum stream_state state;
};

static bool valid_field_name(const char *n)
{
    if (*n == '\0')
        return false;
    for (; *n; n++)
        if ((unsigned char)*n < 33 || (unsigned char)*n > 126 || *n == ':')
            return false;
    return true;
}

static const char *signer_check(const struct dkim_sign_params *p, enum dkim_alg *alg)
{
    if (p->key == NULL)
        return "no signing key";
    if (EVP_PKEY_is_a(p->key, "ED25519")) {
        *alg = ALG_ED25519_SHA256;
    } else if (EVP_PKEY_is_a(p->key, "RSA")) {
        *alg = ALG_RSA_SHA256;
        int bits = EVP_PKEY_get_bits(p->key);
        if (bits < DKIM_RSA_MIN_BITS || bits > DKIM_RSA_MAX_BITS)
            return "RSA key must have 1024 to 8192 bits (RFC 8301)";
    } else {
        return "signing key is neither RSA nor Ed25519";
    }
    if (p->domain == NULL || !dkim_valid_domain(p->domain, strlen(p->domain)))
        return "d= is not a domain name";
    if (p->selector == NULL || !dkim_valid_domain(p->selector, strlen(p->selector)))
        return "s= is not a selector";
    if (strlen(p->selector) + strlen(p->domain) + 12 > DNS_NAME_MAX)
        return "selector and domain are too long";
    if (p->n_headers == 0 || p->n_headers > DKIM_H_MAX)
        return "h= must name 1 to 128 fields";
    bool from = false;
    for (size_t i = 0; i < p->n_headers; i++) {
        if (p->headers[i] == NULL || !valid_field_name(p->headers[i]))
            return "h= names an invalid field";
        from = from || strcasecmp(p->headers[i], "from") == 0;
    }
    if (!from)
        return "h= must include From (RFC 6376 section 5.4)";
    if (p->identity != NULL) {
        const char *at = strrchr(p->identity, '@');
        size_t dl = strlen(p->domain), il;
        if (at == NULL || strlen(p->identity) > DNS_NAME_MAX + 64)
            return "i= is not an identity";
        for (const char *c = p->identity; *c; c++)
            if ((unsigned char)*c <= 32 || (unsigned char)*c > 126 || *c == ';')
                return "i= is not an identity";
        il = strlen(at + 1);
        if (strcasecmp(at + 1, p->domain) != 0 &&
            !(il > dl && at[il - dl] == '.' && strcasecmp(at + 1 + il - dl, p->domain) == 0))
            return "i= must be in d= or a subdomain of it";
    }
    return NULL;
}

struct dkim_signer *dkim_signer_new(const struct dkim_sign_params *p, const char **error_r)
{
    enum dkim_alg alg;
    const char *err = signer_check(p, &alg);
    if (err != NULL) {
        *error_r = err;
        return NULL;
    }
    struct dkim_signer *s = sm_malloc(sizeof *s);
    EVP_PKEY_up_ref(p->key);
    s->key = p->key;
    s->alg = alg;
    snprintf(s->d, sizeof s->d, "%s", p->domain);
    snprintf(s->s, sizeof s->s, "%s", p->selector);
    s->identity = p->identity ? sm_strdup(p->identity) : NULL;
    s->time = p->time;
    s->expire = p->expire;
    s->sig.kind = SIG_DKIM;
    s->sig.alg = alg;
    s->sig.hc = s->sig.bc = CANON_RELAXED;
    size_t total = 0;
    for (size_t i = 0; i < p->n_headers; i++)
        total += strlen(p->headers[i]) + 1;
    s->sig.hbuf = sm_malloc(total);
    char *o = s->sig.hbuf;
    for (size_t i = 0; i < p->n_headers; i++) {
        s->sig.h[s->sig.nh++] = o;
        for (const char *c = p->headers[i]; *c; c++)
            *o++ = (*c >= 'A' && *c <= 'Z') ? (char)(*c - 'A' + 'a') : *c;
        *o++ = '\0';
    }
    hdrlist_init(&s->hl, DEFAULT_MAX_HEADER_FIELDS, DEFAULT_MAX_HEADER_BYTES);
    canon_body_init(&s->body, CANON_RELAXED, EVP_sha256(), CANON_NO_LIMIT);
    return s;
}

void dkim_signer_header(struct dkim_signer *s, const char *field, size_t len)
{
    if (s->state == ST_HEADERS)
        hdrlist_add(&s->hl, field, len);
}

void dkim_signer_headers_done(struct dkim_signer *s)
{
    if (s->state == ST_HEADERS)
        s->state = ST_BODY;
}

void dkim_signer_body(struct dkim_signer *s, const void *p, size_t n)
{
    dkim_signer_headers_done(s);
    canon_body_update(&s->body, p, n);
}

/* Header folding: pieces are appended whole, a new line begun (CRLF and
 * one space) when the next piece would pass FOLD_COL. */
struct folder {
    struct sm_buf *out;
    size_t col;
};

static void fold_piece(struct folder *f, const char *p, size_t n, bool space)
{
    if (f->col + (space ? 1 : 0) + n > FOLD_COL && f->col > 1) {
        sm_buf_append(f->out, "\r\n ", 3);
        f->col = 1;
    } else if (space) {
        sm_buf_append(f->out, " ", 1);
        f->col++;
    }
    sm_buf_append(f->out, p, n);
    f->col += n;
}

static void fold_tag(struct folder *f, const char *fmt, const char *v)
{
    char tmp[DNS_NAME_MAX + 80];
    int n = snprintf(tmp, sizeof tmp, fmt, v);
    fold_piece(f, tmp, (size_t)n, true);
}

/* base64 may be broken anywhere by folding whitespace. */
static void fold_b64_more(struct folder *f, const char *b64, size_t n)
{
    while (n > 0) {
        if (f->col >= FOLD_COL) {
            sm_buf_append(f->out, "\r\n ", 3);
            f->col = 1;
        }
        size_t room = FOLD_COL - f->col;
        size_t k = n < room ? n : room;
        sm_buf_append(f->out, b64, k);
        f->col += k;
        b64 += k;
        n -= k;
    }
}

static void build_field(struct dkim_signer *s, const uint8_t *bh, struct sm_buf *out)
{
    struct folder f = {out, 0};
    char num[32];
    sm_buf_puts(out, "DKIM-Signature:");
    f.col = out->len;
    fold_tag(&f, "v=%s;", "1");
    fold_tag(&f, "a=%s;", s->alg == ALG_RSA_SHA256 ? "rsa-sha256" : "ed25519-sha256");
    fold_tag(&f, "c=%s;", "relaxed/relaxed");
    fold_tag(&f, "d=%s;", s->d);
    if (s->identity != NULL)
        fold_tag(&f, "i=%s;", s->identity);
    fold_tag(&f, "s=%s;", s->s);
    if (s->time >= 0) {
        snprintf(num, sizeof num, "%lld", (long long)s->time);
        fold_tag(&f, "t=%s;", num);
    }
    if (s->expire >= 0) {
        snprintf(num, sizeof num, "%lld", (long long)s->expire);
        fold_tag(&f, "x=%s;", num);
    }
    for (size_t i = 0; i < s->sig.nh; i++) {
        char piece[160];
        int n = snprintf(piece, sizeof piece, "%s%s%s", i == 0 ? "h=" : "", s->sig.h[i],
                         i + 1 == s->sig.nh ? ";" : ":");
        fold_piece(&f, piece, (size_t)n, i == 0);
    }
    struct sm_buf b64;
    sm_buf_init(&b64, 0);
    sm_buf_puts(&b64, "bh=");
    base64_encode(bh, 32, &b64);
    sm_buf_puts(&b64, ";");
    fold_piece(&f, b64.data, b64.len, true); /* 48 characters: one piece */
    sm_buf_free(&b64);
    fold_piece(&f, "b=", 2, true);
}

char *dkim_signer_finish(struct dkim_signer *s, const char **error_r)
{
    dkim_signer_headers_done(s);
    if (s->state == ST_DONE) {
        *error_r = "the signature was already made";
        return NULL;
    }
    s->state = ST_DONE;
    if (s->hl.overflow) {
        *error_r = "header section over the signer's limits";
        return NULL;
    }
    bool from = false;
    for (size_t i = 0; i < s->hl.n && !from; i++)
        from = hdr_is(&s->hl.h[i], "from", 4);
    if (!from) {
        *error_r = "the message has no From field (RFC 6376 section 5.4)";
        return NULL;
    }
    uint8_t bh[EVP_MAX_MD_SIZE];
    unsigned bhlen = 0;
    canon_body_final(&s->body, bh, &bhlen);
    struct sm_buf out;
    sm_buf_init(&out, 0);
    build_field(s, bh, &out);
    uint8_t hh[32];
    dkim_header_hash(&s->sig, &s->hl, SIZE_MAX, out.data, out.len, hh);
    uint8_t sig[DKIM_SIG_MAX];
    long n = dkim_sign_digest(s->key, hh, sig, sizeof sig);
    if (n <= 0) {
        sm_buf_free(&out);
        *error_r = "signing failed";
        return NULL;
    }
    struct sm_buf b64;
    sm_buf_init(&b64, 0);
    base64_encode(sig, (size_t)n, &b64);
    /* "b=" ends the field already: the signature follows it */
    const char *nl = strrchr(out.data, '\n');
    struct folder f = {&out, nl ? out.len - (size_t)(nl + 1 - out.data) : out.len};
    fold_b64_more(&f, b64.data, b64.len);
    sm_buf_free(&b64);
    sm_buf_puts(&out, "\r\n");
    return out.data;
}

void dkim_signer_free(struct dkim_signer **sp)
{
    struct dkim_signer *s = *sp;
    if (s == NULL)
        return;
    EVP_PKEY_free(s->key);
    sm_freep(&s->identity);
    dkim_sig_free(&s->sig);
    hdrlist_free(&s->hl);
    canon_body_free(&s->body);
    sm_freep(sp);
}
