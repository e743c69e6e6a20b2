/* dkim-core.c — header lists, body digests, signature fields, key records
 * and the EVP calls shared by DKIM and ARC (dkim-core.h). */
#include "mailauth/dkim-core.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "core/base64.h"
#include "core/log.h"
#include "core/mem.h"
#include "mailauth/taglist.h"

static bool is_fws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool eq_nocase(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (lower(a[i]) != lower(b[i]))
            return false;
    return true;
}

static bool tag_is(const struct tag *t, const char *s)
{
    return t != NULL && t->len == strlen(s) && memcmp(t->value, s, t->len) == 0;
}

/* ---------------------------------------------------------- header fields */

void hdrlist_init(struct hdrlist *l, size_t max_n, size_t max_bytes)
{
    memset(l, 0, sizeof *l);
    l->max_n = max_n;
    l->max_bytes = max_bytes;
}

bool hdrlist_add(struct hdrlist *l, const char *field, size_t len)
{
    if (l->n >= l->max_n || len > l->max_bytes - l->bytes) {
        l->overflow = true;
        return false;
    }
    const char *colon = memchr(field, ':', len);
    size_t nl = colon ? (size_t)(colon - field) : 0;
    while (nl > 0 && (field[nl - 1] == ' ' || field[nl - 1] == '\t'))
        nl--;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        l->h = sm_realloc(l->h, l->cap * sizeof *l->h);
    }
    bool crlf = len >= 2 && field[len - 2] == '\r' && field[len - 1] == '\n';
    struct hdr *h = &l->h[l->n++];
    h->text = sm_malloc(len + 3);
    memcpy(h->text, field, len);
    if (!crlf) /* keep the invariant: every kept field ends with CRLF */
        memcpy(h->text + len, "\r\n", 2);
    h->len = crlf ? len : len + 2;
    h->namelen = nl;
    l->bytes += len;
    return true;
}

bool hdr_is(const struct hdr *f, const char *name, size_t nlen)
{
    return f->namelen > 0 && eq_nocase(f->text, f->namelen, name, nlen);
}

void hdrlist_free(struct hdrlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        sm_freep(&l->h[i].text);
    sm_freep(&l->h);
    l->n = l->cap = l->bytes = 0;
}

/* ----------------------------------------------------------- body digests */

size_t bodyhash_add(struct bodyhash *b, enum canon_alg alg, uint64_t limit)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->e[i]->alg == alg && b->e[i]->limit == limit)
            return i;
    b->e = sm_realloc(b->e, (b->n + 1) * sizeof *b->e);
    struct bodyhash_entry *e = sm_malloc(sizeof *e);
    e->alg = alg;
    e->limit = limit;
    canon_body_init(&e->cb, alg, EVP_sha256(), limit);
    b->e[b->n] = e;
    return b->n++;
}

void bodyhash_update(struct bodyhash *b, const void *p, size_t n)
{
    if (b->done)
        return;
    for (size_t i = 0; i < b->n; i++)
        canon_body_update(&b->e[i]->cb, p, n);
}

void bodyhash_final(struct bodyhash *b)
{
    if (b->done)
        return;
    for (size_t i = 0; i < b->n; i++) {
        canon_body_final(&b->e[i]->cb, b->e[i]->digest, &b->e[i]->dlen);
        canon_body_free(&b->e[i]->cb);
    }
    b->done = true;
}

const struct bodyhash_entry *bodyhash_get(const struct bodyhash *b, size_t i)
{
    return i < b->n ? b->e[i] : NULL;
}

void bodyhash_free(struct bodyhash *b)
{
    for (size_t i = 0; i < b->n; i++) {
        canon_body_free(&b->e[i]->cb);
        sm_freep(&b->e[i]);
    }
    sm_freep(&b->e);
    b->n = 0;
}

/* ------------------------------------------------------------- signatures */

bool dkim_valid_domain(const char *s, size_t len)
{
    if (len == 0 || len > DNS_NAME_MAX)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && c != '-' && c != '_')
            return false;
        if (c == '-' && label == 0)
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0 && s[len - 1] != '-';
}

static void copy_str(char *dst, size_t cap, const char *s, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, s, len);
    dst[len] = '\0';
}

/* Digits only, at most max_digits of them; the value saturates. */
static bool parse_uint(const struct tag *t, size_t max_digits, uint64_t *v)
{
    if (t->len == 0 || t->len > max_digits)
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < t->len; i++) {
        char c = t->value[i];
        if (c < '0' || c > '9')
            return false;
        unsigned d = (unsigned)(c - '0');
        x = x > (UINT64_MAX - d) / 10 ? UINT64_MAX : x * 10 + d;
    }
    *v = x;
    return true;
}

/* Does the colon-separated list (FWS allowed around items) contain item? */
static bool list_has(const struct tag *t, const char *item)
{
    size_t b = 0, il = strlen(item);
    while (b <= t->len) {
        size_t e = b;
        while (e < t->len && t->value[e] != ':')
            e++;
        size_t x = b, y = e;
        while (x < y && is_fws(t->value[x]))
            x++;
        while (y > x && is_fws(t->value[y - 1]))
            y--;
        if (eq_nocase(t->value + x, y - x, item, il))
            return true;
        b = e + 1;
    }
    return false;
}

static int parse_h(const struct tag *t, struct dkim_sig *sig)
{
    sig->hbuf = sm_malloc(t->len + 1);
    char *o = sig->hbuf;
    size_t b = 0;
    if (t->len == 0)
        return 0; /* empty: no names (only an AMS may do that) */
    while (b <= t->len) {
        size_t e = b;
        while (e < t->len && t->value[e] != ':')
            e++;
        size_t x = b, y = e;
        while (x < y && is_fws(t->value[x]))
            x++;
        while (y > x && is_fws(t->value[y - 1]))
            y--;
        if (x == y || sig->nh == DKIM_H_MAX)
            return -1;
        sig->h[sig->nh++] = o;
        for (size_t i = x; i < y; i++) {
            unsigned char c = (unsigned char)t->value[i];
            if (c < 33 || c > 126) /* field-name: printable, no ":" (split) */
                return -1;
            *o++ = lower((char)c);
        }
        *o++ = '\0';
        b = e + 1;
    }
    return 0;
}

static bool h_has(const struct dkim_sig *sig, const char *name)
{
    for (size_t i = 0; i < sig->nh; i++)
        if (strcmp(sig->h[i], name) == 0)
            return true;
    return false;
}

#define FAIL(r, ...)                                  \
    do {                                              \
        *res = (r);                                   \
        snprintf(reason, rlen, __VA_ARGS__);          \
        return -1;                                    \
    } while (0)

static const char *kind_name(enum dkim_kind k)
{
    return k == SIG_DKIM ? "DKIM-Signature" : k == SIG_AMS ? "ARC-Message-Signature" : "ARC-Seal";
}

/* The report fields first, so that even a broken signature can be named. */
static void fill_names(const struct taglist *l, struct dkim_sig *sig)
{
    const struct tag *t;
    if ((t = taglist_get(l, "d")) != NULL && dkim_valid_domain(t->value, t->len))
        copy_str(sig->d, sizeof sig->d, t->value, t->len);
    if ((t = taglist_get(l, "s")) != NULL && dkim_valid_domain(t->value, t->len))
        copy_str(sig->s, sizeof sig->s, t->value, t->len);
    if ((t = taglist_get(l, "a")) != NULL && t->len < sizeof sig->a) {
        bool ok = true;
        for (size_t i = 0; i < t->len; i++) {
            char c = lower(t->value[i]);
            ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
        }
        if (ok)
            copy_str(sig->a, sizeof sig->a, t->value, t->len);
    }
    if ((t = taglist_get(l, "b")) != NULL) {
        size_t n = 0;
        for (size_t i = 0; i < t->len && n < DKIM_HEADER_B_LEN; i++)
            if (!is_fws(t->value[i]))
                sig->header_b[n++] = t->value[i];
        sig->header_b[n] = '\0';
    }
}

static int parse_alg(const struct tag *t, struct dkim_sig *sig, enum dkim_result *res,
                     char *reason, size_t rlen)
{
    if (t == NULL)
        FAIL(DKIM_PERMERROR, "no a= tag");
    if (eq_nocase(t->value, t->len, "rsa-sha256", 10))
        sig->alg = ALG_RSA_SHA256;
    else if (eq_nocase(t->value, t->len, "ed25519-sha256", 14))
        sig->alg = ALG_ED25519_SHA256;
    else if (eq_nocase(t->value, t->len, "rsa-sha1", 8) && sig->kind == SIG_DKIM)
        FAIL(DKIM_POLICY, "rsa-sha1 is not accepted (RFC 8301 section 3.1), signature not checked");
    else
        FAIL(DKIM_PERMERROR, "unknown algorithm a=%.*s", (int)(t->len > 30 ? 30 : t->len),
             t->value);
    return 0;
}

static int parse_canon(const struct tag *t, struct dkim_sig *sig, enum dkim_result *res,
                       char *reason, size_t rlen)
{
    sig->hc = sig->bc = CANON_SIMPLE;
    if (t == NULL)
        return 0;
    const char *slash = memchr(t->value, '/', t->len);
    size_t hl = slash ? (size_t)(slash - t->value) : t->len;
    const char *bv = slash ? slash + 1 : NULL;
    size_t bl = slash ? t->len - hl - 1 : 0;
    enum canon_alg *dst[2] = {&sig->hc, &sig->bc};
    const char *v[2] = {t->value, bv};
    size_t vl[2] = {hl, bl};
    for (int k = 0; k < 2; k++) {
        if (v[k] == NULL)
            break;
        if (eq_nocase(v[k], vl[k], "simple", 6))
            *dst[k] = CANON_SIMPLE;
        else if (eq_nocase(v[k], vl[k], "relaxed", 7))
            *dst[k] = CANON_RELAXED;
        else
            FAIL(DKIM_PERMERROR, "unknown canonicalisation in c=");
    }
    return 0;
}

static int parse_b64_tag(const struct tag *t, const char *name, uint8_t *out, size_t cap,
                         size_t *len, enum dkim_result *res, char *reason, size_t rlen)
{
    if (t == NULL)
        FAIL(DKIM_PERMERROR, "no %s= tag", name);
    long n = base64_decode(t->value, t->len, out, cap, BASE64_SKIP_FWS);
    if (n <= 0)
        FAIL(DKIM_PERMERROR, "%s= is empty or not base64", name);
    *len = (size_t)n;
    return 0;
}

/* i= of a DKIM-Signature: [local-part] "@" domain, in d= or below it. */
static int parse_identity(const struct tag *t, struct dkim_sig *sig, enum dkim_result *res,
                          char *reason, size_t rlen)
{
    if (t == NULL) {
        snprintf(sig->i, sizeof sig->i, "@%s", sig->d);
        return 0;
    }
    const char *at = NULL;
    for (size_t k = 0; k < t->len; k++) {
        if (is_fws(t->value[k]))
            FAIL(DKIM_PERMERROR, "whitespace in i=");
        if (t->value[k] == '@')
            at = t->value + k;
    }
    if (at == NULL || t->len >= sizeof sig->i)
        FAIL(DKIM_PERMERROR, "i= is not an identity");
    const char *dom = at + 1;
    size_t dl = t->len - (size_t)(dom - t->value), sl = strlen(sig->d);
    if (!dkim_valid_domain(dom, dl))
        FAIL(DKIM_PERMERROR, "i= domain is not a domain name");
    bool same = eq_nocase(dom, dl, sig->d, sl);
    bool sub = dl > sl && dom[dl - sl - 1] == '.' && eq_nocase(dom + dl - sl, sl, sig->d, sl);
    if (!same && !sub)
        FAIL(DKIM_PERMERROR, "i= domain is not d= or a subdomain of it");
    copy_str(sig->i, sizeof sig->i, t->value, t->len);
    return 0;
}

static int parse_times(const struct taglist *l, struct dkim_sig *sig, enum dkim_result *res,
                       char *reason, size_t rlen)
{
    const struct tag *t;
    uint64_t v;
    if ((t = taglist_get(l, "t")) != NULL) {
        if (!parse_uint(t, 18, &v))
            FAIL(DKIM_PERMERROR, "t= is not a timestamp");
        sig->has_t = true;
        sig->t = (int64_t)v;
    }
    if (sig->kind != SIG_AS && (t = taglist_get(l, "x")) != NULL) {
        if (!parse_uint(t, 18, &v))
            FAIL(DKIM_PERMERROR, "x= is not a timestamp");
        sig->has_x = true;
        sig->x = (int64_t)v;
        if (sig->has_t && sig->x <= sig->t)
            FAIL(DKIM_PERMERROR, "x= is not after t=");
    }
    return 0;
}

/* The tags DKIM-Signature and ARC-Message-Signature have in common. */
static int parse_message_sig(const struct taglist *l, struct dkim_sig *sig,
                             enum dkim_result *res, char *reason, size_t rlen)
{
    const struct tag *t;
    if (parse_canon(taglist_get(l, "c"), sig, res, reason, rlen) < 0)
        return -1;
    if (parse_b64_tag(taglist_get(l, "bh"), "bh", sig->bh, sizeof sig->bh, &sig->bhlen, res,
                      reason, rlen) < 0)
        return -1;
    if (sig->bhlen != 32)
        FAIL(DKIM_PERMERROR, "bh= is not a SHA-256 digest");
    if ((t = taglist_get(l, "h")) == NULL)
        FAIL(DKIM_PERMERROR, "no h= tag");
    if (parse_h(t, sig) < 0)
        FAIL(DKIM_PERMERROR, "h= is malformed or names more than %d fields", DKIM_H_MAX);
    if ((t = taglist_get(l, "l")) != NULL) {
        if (!parse_uint(t, 76, &sig->l))
            FAIL(DKIM_PERMERROR, "l= is not a length");
        sig->has_l = true;
    }
    if ((t = taglist_get(l, "q")) != NULL && !list_has(t, "dns/txt"))
        FAIL(DKIM_PERMERROR, "q= has no dns/txt method");
    return 0;
}

static int parse_instance(const struct tag *t, struct dkim_sig *sig, enum dkim_result *res,
                          char *reason, size_t rlen)
{
    uint64_t v;
    if (t == NULL)
        FAIL(DKIM_PERMERROR, "no i= tag");
    if (!parse_uint(t, 3, &v) || v < 1 || v > 50)
        FAIL(DKIM_PERMERROR, "i= is not an instance from 1 to 50");
    sig->instance = (unsigned)v;
    return 0;
}

static int parse_cv(const struct tag *t, struct dkim_sig *sig, enum dkim_result *res,
                    char *reason, size_t rlen)
{
    if (tag_is(t, "none"))
        sig->cv = CV_NONE;
    else if (tag_is(t, "pass"))
        sig->cv = CV_PASS;
    else if (tag_is(t, "fail"))
        sig->cv = CV_FAIL;
    else
        FAIL(DKIM_PERMERROR, "cv= is missing or not none/pass/fail");
    return 0;
}

int dkim_sig_parse(enum dkim_kind kind, const char *field, size_t len, struct dkim_sig *sig,
                   enum dkim_result *res, char *reason, size_t rlen)
{
    memset(sig, 0, sizeof *sig);
    sig->kind = kind;
    const char *colon = memchr(field, ':', len);
    if (colon == NULL)
        FAIL(DKIM_PERMERROR, "not a header field");
    const char *val = colon + 1;
    size_t vlen = len - (size_t)(val - field);
    if (vlen >= 2 && val[vlen - 2] == '\r' && val[vlen - 1] == '\n')
        vlen -= 2;
    struct taglist l;
    if (taglist_parse(val, vlen, &l) < 0)
        FAIL(DKIM_PERMERROR, "%s is not a valid tag list", kind_name(kind));
    fill_names(&l, sig);
    const struct tag *t;
    if (kind == SIG_DKIM && !tag_is(taglist_get(&l, "v"), "1"))
        FAIL(DKIM_PERMERROR, "v= is missing or not 1");
    if (parse_alg(taglist_get(&l, "a"), sig, res, reason, rlen) < 0)
        return -1;
    if ((t = taglist_get(&l, "d")) == NULL || !dkim_valid_domain(t->value, t->len))
        FAIL(DKIM_PERMERROR, "d= is missing or not a domain name");
    if ((t = taglist_get(&l, "s")) == NULL || !dkim_valid_domain(t->value, t->len))
        FAIL(DKIM_PERMERROR, "s= is missing or not a selector");
    if (strlen(sig->s) + strlen("._domainkey.") + strlen(sig->d) > DNS_NAME_MAX)
        FAIL(DKIM_PERMERROR, "s= and d= make a key name that is too long");
    if (parse_b64_tag(taglist_get(&l, "b"), "b", sig->b, sizeof sig->b, &sig->blen, res, reason,
                      rlen) < 0)
        return -1;
    if (parse_times(&l, sig, res, reason, rlen) < 0)
        return -1;
    switch (kind) {
    case SIG_DKIM:
        if (parse_message_sig(&l, sig, res, reason, rlen) < 0)
            return -1;
        if (!h_has(sig, "from"))
            FAIL(DKIM_PERMERROR, "h= does not include From (RFC 6376 section 5.4)");
        return parse_identity(taglist_get(&l, "i"), sig, res, reason, rlen);
    case SIG_AMS:
        if (parse_instance(taglist_get(&l, "i"), sig, res, reason, rlen) < 0 ||
            parse_message_sig(&l, sig, res, reason, rlen) < 0)
            return -1;
        if (h_has(sig, "arc-seal"))
            FAIL(DKIM_PERMERROR, "h= includes ARC-Seal (RFC 8617 section 4.1.2)");
        return 0;
    case SIG_AS:
        if (parse_instance(taglist_get(&l, "i"), sig, res, reason, rlen) < 0 ||
            parse_cv(taglist_get(&l, "cv"), sig, res, reason, rlen) < 0)
            return -1;
        if (taglist_get(&l, "h") != NULL)
            FAIL(DKIM_PERMERROR, "ARC-Seal has an h= tag (RFC 8617 section 4.1.3)");
        sig->hc = CANON_RELAXED;
        return 0;
    }
    return 0;
}

int dkim_sig_check_time(const struct dkim_sig *sig, int64_t now, int64_t future_tolerance,
                        char *reason, size_t rlen)
{
    if (sig->has_x && sig->x < now) {
        snprintf(reason, rlen, "signature expired (x=)");
        return -1;
    }
    if (sig->has_t && now >= 0 && sig->t > now && sig->t - now > future_tolerance) {
        snprintf(reason, rlen, "signature timestamp t= lies in the future");
        return -1;
    }
    return 0;
}

void dkim_sig_free(struct dkim_sig *sig)
{
    sm_freep(&sig->hbuf);
    sig->nh = 0;
}

/* ---------------------------------------------------------- header hashes */

/* The field with the value of its b= tag (and the whitespace around it)
 * removed, into out; false if there is no b= to remove. */
static bool blank_b(const char *f, size_t len, struct sm_buf *out)
{
    const char *colon = memchr(f, ':', len);
    if (colon == NULL)
        return false;
    size_t vb = (size_t)(colon + 1 - f), ve = len;
    if (ve - vb >= 2 && f[ve - 2] == '\r' && f[ve - 1] == '\n')
        ve -= 2;
    struct taglist l;
    if (taglist_parse(f + vb, ve - vb, &l) < 0)
        return false;
    const struct tag *t = taglist_get(&l, "b");
    if (t == NULL)
        return false;
    size_t start = (size_t)(t->value - f);
    while (start > vb && f[start - 1] != '=')
        start--;
    size_t end = (size_t)(t->value - f) + t->len;
    while (end < ve && f[end] != ';')
        end++;
    sm_buf_append(out, f, start);
    sm_buf_append(out, f + end, len - end);
    return true;
}

void dkim_hash_field(EVP_MD_CTX *md, enum canon_alg alg, const char *field, size_t len,
                     bool blanked, bool last, struct sm_buf *scratch)
{
    struct sm_buf tmp;
    sm_buf_init(&tmp, 0);
    if (blanked && blank_b(field, len, &tmp)) {
        field = tmp.data;
        len = tmp.len;
    }
    sm_buf_reset(scratch);
    canon_header(alg, field, len, !last, scratch);
    if (EVP_DigestUpdate(md, scratch->data, scratch->len) != 1)
        sm_panic("dkim: digest update failed");
    sm_buf_free(&tmp);
}

void dkim_header_hash(const struct dkim_sig *sig, const struct hdrlist *hl, size_t self,
                      const char *field, size_t len, uint8_t digest[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        sm_panic("dkim: cannot start a digest");
    struct sm_buf scratch;
    sm_buf_init(&scratch, 0);
    for (size_t j = 0; j < sig->nh; j++) {
        const char *name = sig->h[j];
        size_t nl = strlen(name), skip = 0;
        for (size_t k = 0; k < j; k++)
            if (strcmp(sig->h[k], name) == 0)
                skip++;
        /* The j-th mention of a name takes the skip-th instance from the
         * bottom; with none left, it stands for nothing (RFC 6376 §5.4.2). */
        for (size_t idx = hl->n; idx-- > 0;) {
            if (idx == self || !hdr_is(&hl->h[idx], name, nl))
                continue;
            if (skip-- == 0) {
                dkim_hash_field(md, sig->hc, hl->h[idx].text, hl->h[idx].len, false, false,
                                &scratch);
                break;
            }
        }
    }
    dkim_hash_field(md, sig->hc, field, len, true, true, &scratch);
    unsigned dl = 0;
    if (EVP_DigestFinal_ex(md, digest, &dl) != 1 || dl != 32)
        sm_panic("dkim: digest final failed");
    EVP_MD_CTX_free(md);
    sm_buf_free(&scratch);
}

/* ------------------------------------------------------------------- keys */

static EVP_PKEY *rsa_from_der(const uint8_t *der, size_t n)
{
    const unsigned char *p = der;
    EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)n);
    if (k == NULL || p != der + n) {
        /* some publishers put a bare RSAPublicKey (PKCS#1) in p= */
        EVP_PKEY_free(k);
        p = der;
        k = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)n);
        if (k != NULL && p != der + n) {
            EVP_PKEY_free(k);
            k = NULL;
        }
    }
    ERR_clear_error();
    if (k != NULL && !EVP_PKEY_is_a(k, "RSA")) {
        EVP_PKEY_free(k);
        k = NULL;
    }
    return k;
}

#undef FAIL
#define FAIL(r, ...)                                  \
    do {                                              \
        snprintf(reason, rlen, __VA_ARGS__);          \
        return (r);                                   \
    } while (0)

enum dkim_result dkim_key_parse(const char *rec, size_t len, const struct dkim_sig *sig,
                                struct dkim_key *key, char *reason, size_t rlen)
{
    memset(key, 0, sizeof *key);
    struct taglist l;
    if (taglist_parse(rec, len, &l) < 0)
        FAIL(DKIM_PERMERROR, "key record is not a valid tag list");
    const struct tag *t = taglist_get(&l, "v");
    if (t != NULL && (t != &l.t[0] || !tag_is(t, "DKIM1")))
        FAIL(DKIM_PERMERROR, "key record v= is not DKIM1 or not first");
    if ((t = taglist_get(&l, "h")) != NULL && !list_has(t, "sha256"))
        FAIL(DKIM_PERMERROR, "key record h= does not allow sha256");
    bool ed = false;
    if ((t = taglist_get(&l, "k")) != NULL) {
        if (eq_nocase(t->value, t->len, "ed25519", 7))
            ed = true;
        else if (!eq_nocase(t->value, t->len, "rsa", 3))
            FAIL(DKIM_PERMERROR, "key record k= is an unknown key type");
    }
    if (ed != (sig->alg == ALG_ED25519_SHA256))
        FAIL(DKIM_PERMERROR, "key type k= does not match a=");
    if ((t = taglist_get(&l, "s")) != NULL && !list_has(t, "*") && !list_has(t, "email"))
        FAIL(DKIM_PERMERROR, "key record s= excludes email");
    if ((t = taglist_get(&l, "t")) != NULL) {
        key->testing = list_has(t, "y");
        key->strict = list_has(t, "s");
    }
    if ((t = taglist_get(&l, "p")) == NULL)
        FAIL(DKIM_PERMERROR, "key record has no p=");
    uint8_t der[DKIM_TAG_B64_MAX];
    bool empty = true;
    for (size_t i = 0; i < t->len; i++)
        empty = empty && is_fws(t->value[i]);
    if (empty)
        FAIL(DKIM_PERMERROR, "key revoked (empty p=)");
    long n = base64_decode(t->value, t->len, der, sizeof der, BASE64_SKIP_FWS);
    if (n <= 0)
        FAIL(DKIM_PERMERROR, "key record p= is not base64");
    if (ed) {
        if (n != 32)
            FAIL(DKIM_PERMERROR, "Ed25519 key is not 32 bytes (RFC 8463)");
        key->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der, 32);
        key->bits = 256;
    } else {
        key->pkey = rsa_from_der(der, (size_t)n);
        if (key->pkey != NULL)
            key->bits = (unsigned)EVP_PKEY_get_bits(key->pkey);
    }
    ERR_clear_error();
    if (key->pkey == NULL)
        FAIL(DKIM_PERMERROR, "key record p= is not a usable public key");
    if (!ed && (key->bits < DKIM_RSA_MIN_BITS || key->bits > DKIM_RSA_MAX_BITS)) {
        unsigned bits = key->bits;
        dkim_key_free(key);
        key->bits = bits;
        FAIL(DKIM_POLICY, "RSA key of %u bits not accepted (RFC 8301 section 3.2: 1024 at least)",
             bits);
    }
    if (key->strict && sig->kind == SIG_DKIM) {
        const char *at = strrchr(sig->i, '@');
        if (at == NULL || strcasecmp(at + 1, sig->d) != 0) {
            dkim_key_free(key);
            FAIL(DKIM_PERMERROR, "key record t=s forbids an i= in a subdomain of d=");
        }
    }
    return DKIM_PASS;
}

enum dkim_result dkim_key_get(struct dnsview *view, const struct dkim_sig *sig,
                              struct dkim_key *key, char *reason, size_t rlen)
{
    memset(key, 0, sizeof *key);
    char name[DNS_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s._domainkey.%s", sig->s, sig->d);
    const struct dns_answer *a = dnsview_get(view, name, DNS_T_TXT);
    if (a == NULL)
        return DKIM_NONE;
    switch (a->status) {
    case DNS_OK:
        break;
    case DNS_NXDOMAIN:
        FAIL(DKIM_PERMERROR, "no key record (NXDOMAIN)");
    case DNS_TEMPFAIL:
        FAIL(DKIM_TEMPERROR, "key lookup failed temporarily");
    case DNS_PERMFAIL:
    default:
        FAIL(DKIM_PERMERROR, "key lookup failed");
    }
    enum dkim_result first = DKIM_PERMERROR;
    char first_reason[DKIM_REASON_MAX] = "no key record";
    bool have = false;
    for (size_t i = 0; i < a->n; i++) {
        const struct dns_rr *rr = &a->rr[i];
        if (rr->type != DNS_T_TXT || rr->data == NULL)
            continue;
        char why[DKIM_REASON_MAX];
        enum dkim_result r = dkim_key_parse((const char *)rr->data, rr->len, sig, key, why,
                                            sizeof why);
        if (r == DKIM_PASS)
            return r;
        if (!have) {
            have = true;
            first = r;
            snprintf(first_reason, sizeof first_reason, "%s", why);
        }
    }
    snprintf(reason, rlen, "%s", first_reason);
    return first;
}

void dkim_key_free(struct dkim_key *key)
{
    EVP_PKEY_free(key->pkey);
    key->pkey = NULL;
}

/* ----------------------------------------------------------------- crypto */

bool dkim_verify_digest(const struct dkim_sig *sig, const struct dkim_key *key,
                        const uint8_t digest[32])
{
    bool ok = false;
    if (sig->alg == ALG_ED25519_SHA256) {
        EVP_MD_CTX *mctx = EVP_MD_CTX_new();
        ok = mctx != NULL && EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, key->pkey) == 1 &&
             EVP_DigestVerify(mctx, sig->b, sig->blen, digest, 32) == 1;
        EVP_MD_CTX_free(mctx);
    } else {
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key->pkey, NULL);
        ok = ctx != NULL && EVP_PKEY_verify_init(ctx) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
             EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
             EVP_PKEY_verify(ctx, sig->b, sig->blen, digest, 32) == 1;
        EVP_PKEY_CTX_free(ctx);
    }
    ERR_clear_error();
    return ok;
}

long dkim_sign_digest(EVP_PKEY *key, const uint8_t digest[32], uint8_t *out, size_t cap)
{
    size_t n = cap;
    bool ok = false;
    if (EVP_PKEY_is_a(key, "ED25519")) {
        EVP_MD_CTX *mctx = EVP_MD_CTX_new();
        ok = mctx != NULL && EVP_DigestSignInit(mctx, NULL, NULL, NULL, key) == 1 &&
             EVP_DigestSign(mctx, out, &n, digest, 32) == 1;
        EVP_MD_CTX_free(mctx);
    } else if (EVP_PKEY_is_a(key, "RSA")) {
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
        ok = ctx != NULL && EVP_PKEY_sign_init(ctx) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
             EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
             EVP_PKEY_sign(ctx, out, &n, digest, 32) == 1;
        EVP_PKEY_CTX_free(ctx);
    }
    ERR_clear_error();
    return ok ? (long)n : -1;
}
