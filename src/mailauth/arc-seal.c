/* arc-seal.c — ARC sealing (arc-seal.h, RFC 8617 §5.1) on the DKIM core
 * and the chain bookkeeping of the verifier (arc-chain.h). */
#include "mailauth/arc-seal.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/mem.h"
#include "mailauth/arc-chain.h"
#include "mailauth/authres.h"
#include "mailauth/dkim-core.h"

#define MAX_HEADER_FIELDS 1000
#define MAX_HEADER_BYTES (1024 * 1024)

/* In a field being laid out: a place where the folder may break the line
 * by inserting CRLF and a space (inside b= and h=, where white space is
 * allowed but none is written).  A plain space is a break point too. */
#define SOFT '\001'

enum stream_state {
    ST_HEADERS,
    ST_BODY,
    ST_DONE,
};

struct arc_sealer {
    EVP_PKEY *key;
    enum dkim_alg alg;
    size_t b64len;             /* base64 characters of a signature */
    char d[DNS_NAME_MAX + 1];
    char s[DNS_NAME_MAX + 1];
    int64_t time;
    char *authserv_id;
    char *results;             /* normalised, or NULL: from the message */
    enum arc_cv chain;
    char *hlist;               /* the h= value, lowercase, laid out */
    struct hdrlist hl;
    struct arc_chain c;
    struct canon_body body;
    enum stream_state state;
};

/* ------------------------------------------------------------ parameters */

static bool field_name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (n[i] <= ' ' || n[i] > '~' || n[i] == ':')
            return false;
    return true;
}

/* RFC 8617 §4.1.2: the AMS signs no ARC field and no Authentication-Results
 * (downstream ADMDs delete those, RFC 8601 §5). */
static bool field_name_forbidden(const char *n)
{
    return strcasecmp(n, "authentication-results") == 0 ||
           strcasecmp(n, arc_kind_name[ARC_K_AAR]) == 0 ||
           strcasecmp(n, arc_kind_name[ARC_K_AMS]) == 0 ||
           strcasecmp(n, arc_kind_name[ARC_K_AS]) == 0;
}

static const char *check_key(EVP_PKEY *key, enum dkim_alg *alg)
{
    if (key == NULL)
        return "no signing key";
    if (EVP_PKEY_is_a(key, "ED25519")) {
        *alg = ALG_ED25519_SHA256;
        return NULL;
    }
    if (!EVP_PKEY_is_a(key, "RSA"))
        return "signing key is neither RSA nor Ed25519";
    *alg = ALG_RSA_SHA256;
    int bits = EVP_PKEY_get_bits(key);
    return bits >= DKIM_RSA_MIN_BITS && bits <= DKIM_RSA_MAX_BITS
               ? NULL
               : "RSA key must have 1024 to 8192 bits (RFC 8301)";
}

static const char *check_names(const struct arc_seal_params *p)
{
    if (p->headers == NULL || p->n_headers == 0 || p->n_headers > DKIM_H_MAX)
        return "h= must name 1 to 128 fields";
    bool from = false;
    for (size_t i = 0; i < p->n_headers; i++) {
        const char *n = p->headers[i];
        if (n == NULL || !field_name_ok(n))
            return "h= names an invalid field";
        if (field_name_forbidden(n))
            return "h= must not name ARC fields or Authentication-Results (RFC 8617 4.1.2)";
        from = from || strcasecmp(n, "from") == 0;
    }
    return from ? NULL : "h= must include From (RFC 6376 section 5.4)";
}

static bool is_domain(const char *s)
{
    return s != NULL && dkim_valid_domain(s, strlen(s));
}

static const char *check_params(const struct arc_seal_params *p, enum dkim_alg *alg)
{
    const char *err = check_key(p->key, alg);
    if (err != NULL)
        return err;
    if (!is_domain(p->domain))
        return "d= is not a domain name";
    if (!is_domain(p->selector))
        return "s= is not a selector";
    if (strlen(p->selector) + strlen(p->domain) + 12 > DNS_NAME_MAX)
        return "selector and domain are too long";
    if (!is_domain(p->authserv_id))
        return "the authserv-id is not a domain name";
    if (p->time < 0)
        return "t= must be given";
    if (p->chain != ARC_NONE && p->chain != ARC_PASS && p->chain != ARC_FAIL)
        return "the chain status is not none, pass or fail";
    return check_names(p);
}

/* -------------------------------------------------------------- results */

static bool is_wsp(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Append the results text[0..len) to out, "; "-separated from what is
 * there: folding and runs of white space made one space, a final ";"
 * dropped, "none" (no result) left out.  -1 on a control byte. */
static int add_results(struct sm_buf *out, const char *text, size_t len)
{
    while (len > 0 && (is_wsp(text[len - 1]) || text[len - 1] == ';'))
        len--;
    while (len > 0 && is_wsp(*text)) {
        text++;
        len--;
    }
    if (len == 0 || (len == 4 && strncasecmp(text, "none", 4) == 0))
        return 0;
    if (out->len > 0 && sm_buf_puts(out, "; ") < 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (is_wsp((char)c)) {
            if (!is_wsp(text[i - 1]) && sm_buf_append(out, " ", 1) < 0)
                return -1;
        } else if (c < ' ' || c == 0x7f || sm_buf_append(out, &text[i], 1) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Past the ";" that ends the authserv-id (and version) of an
 * Authentication-Results value already accepted by authres_parse(): the
 * first ";" outside quoted strings and comments. */
static const char *after_authserv_id(const char *p, const char *end)
{
    int depth = 0;
    bool quoted = false;
    for (; p < end; p++) {
        if (*p == '\\' && (quoted || depth > 0) && p + 1 < end)
            p++;
        else if (quoted)
            quoted = *p != '"';
        else if (*p == '"' && depth == 0)
            quoted = true;
        else if (*p == '(')
            depth++;
        else if (*p == ')' && depth > 0)
            depth--;
        else if (*p == ';' && depth == 0)
            return p + 1;
    }
    return NULL;
}

static bool parses(const char *value, size_t len)
{
    const char *err;
    struct authres *ar = authres_parse(value, len, false, &err);
    bool ok = ar != NULL;
    authres_free(&ar);
    return ok;
}

/* The results of every Authentication-Results field that claims our
 * authserv-id, merged in header order (RFC 8617 §4.1.1). */
static const char *results_from_message(const struct arc_sealer *s, struct sm_buf *out)
{
    bool claimed = false;
    for (size_t i = 0; i < s->hl.n; i++) {
        const struct hdr *h = &s->hl.h[i];
        if (!hdr_is(h, "authentication-results", 22))
            continue;
        const char *v = memchr(h->text, ':', h->len);
        const char *end = h->text + h->len;
        if (v == NULL || !authres_claims(v + 1, (size_t)(end - v - 1), false, s->authserv_id))
            continue;
        const char *r = after_authserv_id(v + 1, end);
        if (r == NULL || !parses(v + 1, (size_t)(end - v - 1)))
            continue; /* broken: nothing we can vouch for */
        claimed = true;
        if (add_results(out, r, (size_t)(end - r)) < 0)
            return "our Authentication-Results pass the AAR limit or hold control bytes";
    }
    return claimed ? NULL : "no Authentication-Results field claims the authserv-id";
}

/* The AAR results, checked: as given, or from the message. */
static const char *final_results(const struct arc_sealer *s, struct sm_buf *out)
{
    if (s->results != NULL)
        sm_buf_puts(out, s->results);
    else {
        const char *err = results_from_message(s, out);
        if (err != NULL)
            return err;
    }
    if (out->len == 0)
        sm_buf_puts(out, "none");
    struct sm_buf whole;
    sm_buf_init(&whole, 0);
    sm_buf_printf(&whole, "%s; %s", s->authserv_id, out->data);
    bool ok = parses(whole.data, whole.len);
    sm_buf_free(&whole);
    return ok ? NULL : "the results do not parse as Authentication-Results (RFC 8601)";
}

/* ------------------------------------------------------------- layout */

/* Fold the laid-out field t (spaces and SOFT mark the break points) into
 * out: a break goes in when the next piece would pass ARC_SEAL_FOLD. */
static void fold(const char *t, size_t n, struct sm_buf *out)
{
    size_t col = 0, i = 0;
    while (i < n) {
        char sep = (t[i] == ' ' || t[i] == SOFT) ? t[i++] : '\0';
        size_t e = i;
        while (e < n && t[e] != ' ' && t[e] != SOFT)
            e++;
        size_t width = e - i + (sep == ' ' ? 1 : 0);
        if (sep != '\0' && col + width > ARC_SEAL_FOLD && col > 1) {
            sm_buf_append(out, "\r\n ", 3);
            col = 1;
        } else if (sep == ' ') {
            sm_buf_append(out, " ", 1);
            col++;
        }
        sm_buf_append(out, t + i, e - i);
        col += e - i;
        i = e;
    }
    sm_buf_append(out, "\r\n", 2);
}

/* Characters that may each stand on a new line (base64 ignores FWS). */
static void put_breakable(struct sm_buf *u, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char two[2] = {SOFT, p[i]};
        sm_buf_append(u, two, 2);
    }
}

static const char *alg_name(const struct arc_sealer *s)
{
    return s->alg == ALG_RSA_SHA256 ? "rsa-sha256" : "ed25519-sha256";
}

/* The ARC-Message-Signature (bh64 given) or ARC-Seal (bh64 NULL), with
 * b64 as its b= value, laid out and folded into out. */
static void build(const struct arc_sealer *s, unsigned inst, const char *bh64, const char *b64,
                  struct sm_buf *out)
{
    struct sm_buf u;
    sm_buf_init(&u, 0);
    sm_buf_printf(&u, "%s: a=%s; b=", arc_kind_name[bh64 ? ARC_K_AMS : ARC_K_AS], alg_name(s));
    put_breakable(&u, b64, s->b64len);
    if (bh64 != NULL) {
        sm_buf_printf(&u, "; bh=%s; c=relaxed/relaxed; d=%s; h=%s;", bh64, s->d, s->hlist);
    } else {
        sm_buf_printf(&u, "; cv=%s; d=%s;", arc_cv_name(s->chain), s->d);
    }
    sm_buf_printf(&u, " i=%u; s=%s; t=%lld", inst, s->s, (long long)s->time);
    fold(u.data, u.len, out);
    sm_buf_free(&u);
}

/* "from:" SOFT "to:" SOFT "subject": h= names lowercased, joined. */
static char *h_list(const char *const *names, size_t n)
{
    struct sm_buf b;
    sm_buf_init(&b, 0);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            sm_buf_printf(&b, ":%c", SOFT);
        size_t at = b.len;
        sm_buf_puts(&b, names[i]);
        for (char *c = b.data + at; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
    }
    return b.data;
}

/* ------------------------------------------------------------- streaming */

struct arc_sealer *arc_sealer_new(const struct arc_seal_params *p, const char **error_r)
{
    enum dkim_alg alg;
    const char *err = check_params(p, &alg);
    struct sm_buf res;
    sm_buf_init(&res, ARC_SEAL_RESULTS_MAX);
    if (err == NULL && p->results != NULL && add_results(&res, p->results, strlen(p->results)) < 0)
        err = "the results hold control characters or pass the AAR limit";
    if (err != NULL) {
        sm_buf_free(&res);
        *error_r = err;
        return NULL;
    }
    struct arc_sealer *s = sm_malloc(sizeof *s);
    EVP_PKEY_up_ref(p->key);
    s->key = p->key;
    s->alg = alg;
    s->b64len = ((size_t)EVP_PKEY_get_size(p->key) + 2) / 3 * 4;
    snprintf(s->d, sizeof s->d, "%s", p->domain);
    snprintf(s->s, sizeof s->s, "%s", p->selector);
    s->time = p->time;
    s->authserv_id = sm_strdup(p->authserv_id);
    s->results = p->results != NULL ? sm_strdup(sm_buf_str(&res)) : NULL;
    sm_buf_free(&res);
    s->chain = p->chain;
    s->hlist = h_list(p->headers, p->n_headers);
    hdrlist_init(&s->hl, MAX_HEADER_FIELDS, MAX_HEADER_BYTES);
    canon_body_init(&s->body, CANON_RELAXED, EVP_sha256(), CANON_NO_LIMIT);
    return s;
}

void arc_sealer_header(struct arc_sealer *s, const char *field, size_t len)
{
    if (s->state == ST_HEADERS && hdrlist_add(&s->hl, field, len))
        arc_chain_note(&s->c, &s->hl);
}

void arc_sealer_headers_done(struct arc_sealer *s)
{
    if (s->state == ST_HEADERS)
        s->state = ST_BODY;
}

void arc_sealer_body(struct arc_sealer *s, const void *p, size_t n)
{
    arc_sealer_headers_done(s);
    if (s->state == ST_BODY)
        canon_body_update(&s->body, p, n);
}

/* ---------------------------------------------------------------- sealing */

/* The instance of the new set (§5.1 step 2), checked against the status
 * the caller gave; 0 with *skip when the chain already ended in cv=fail. */
static unsigned next_instance(struct arc_sealer *s, bool *skip, const char **error_r)
{
    char why[DKIM_REASON_MAX];
    bool newest_fail = false;
    *skip = false;
    if (s->c.too_many) {
        *error_r = "more than 50 ARC fields of one kind: no set may be added (RFC 8617 4.2.1)";
        return 0;
    }
    unsigned hi = arc_chain_highest(&s->c, &s->hl, &newest_fail);
    if (newest_fail) {
        *skip = true;
        return 0;
    }
    bool any = arc_chain_fields(&s->c) > 0;
    if (s->chain == ARC_NONE && any)
        *error_r = "the chain status is none, but the message carries ARC fields";
    else if (s->chain == ARC_FAIL && !any)
        *error_r = "the chain status is fail, but the message carries no ARC field";
    else if (s->chain == ARC_PASS && (!any || arc_chain_collect(&s->c, &s->hl, why, sizeof why) < 0))
        *error_r = "the chain status is pass, but the message's ARC sets are broken";
    else if (hi >= ARC_MAX_SETS)
        *error_r = "the chain has 50 ARC sets: RFC 8617 4.2.1 allows no i=51";
    else
        return hi + 1;
    return 0;
}

/* b= for the header hash hh, in base64 of exactly s->b64len characters. */
static const char *sign(const struct arc_sealer *s, const uint8_t hh[32], struct sm_buf *b64)
{
    uint8_t sig[DKIM_SIG_MAX];
    long n = dkim_sign_digest(s->key, hh, sig, sizeof sig);
    if (n <= 0)
        return "signing failed";
    base64_encode(sig, (size_t)n, b64);
    return b64->len == s->b64len ? NULL : "the signature has an unexpected length";
}

/* The seal's header hash (§5.1.1): sets 1..inst-1 of a passing chain (of
 * none when it failed, §5.1.2), then ours with the seal's b= blanked. */
static void seal_hash(const struct arc_sealer *s, unsigned inst, const char *const f[ARC_KINDS],
                      uint8_t hh[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        sm_panic("arc-seal: cannot start a digest");
    struct sm_buf scratch;
    sm_buf_init(&scratch, 0);
    if (s->chain == ARC_PASS)
        for (unsigned i = 1; i < inst; i++)
            arc_chain_hash_set(md, &s->c, &s->hl, i, false, &scratch);
    size_t len[ARC_KINDS] = {strlen(f[0]), strlen(f[1]), strlen(f[2])};
    arc_hash_fields(md, f, len, true, &scratch);
    unsigned dl = 0;
    if (EVP_DigestFinal_ex(md, hh, &dl) != 1 || dl != 32)
        sm_panic("arc-seal: digest final failed");
    EVP_MD_CTX_free(md);
    sm_buf_free(&scratch);
}

static bool has_from(const struct hdrlist *hl)
{
    for (size_t i = 0; i < hl->n; i++)
        if (hdr_is(&hl->h[i], "from", 4))
            return true;
    return false;
}

static const char *make_aar(const struct arc_sealer *s, unsigned inst, struct sm_buf *out)
{
    struct sm_buf res, u;
    sm_buf_init(&res, ARC_SEAL_RESULTS_MAX);
    const char *err = final_results(s, &res);
    if (err == NULL) {
        sm_buf_init(&u, 0);
        sm_buf_printf(&u, "%s: i=%u; %s; %s", arc_kind_name[ARC_K_AAR], inst, s->authserv_id,
                      res.data);
        fold(u.data, u.len, out);
        sm_buf_free(&u);
    }
    sm_buf_free(&res);
    return err;
}

/* The AMS's header hash, like a DKIM signature's (§4.1.2).  The draft is
 * read back with the verifier's own parser, so that the h= list and
 * canonicalisation hashed are the ones a verifier will see. */
static const char *ams_hash(const struct arc_sealer *s, const char *draft, size_t len,
                            uint8_t hh[32])
{
    struct dkim_sig sig;
    enum dkim_result r;
    char why[DKIM_REASON_MAX];
    int rc = dkim_sig_parse(SIG_AMS, draft, len, &sig, &r, why, sizeof why);
    if (rc == 0)
        dkim_header_hash(&sig, &s->hl, SIZE_MAX, draft, len, hh);
    dkim_sig_free(&sig);
    return rc == 0 ? NULL : "our ARC-Message-Signature does not parse";
}

/* AMS (bh64 given) or AS: laid out with a placeholder b= of the final
 * length, hashed, signed, and laid out again with the signature. */
static const char *make_sig(const struct arc_sealer *s, unsigned inst, const char *bh64,
                            const char *aar, const char *ams, struct sm_buf *out)
{
    struct sm_buf draft, b64;
    sm_buf_init(&draft, 0);
    sm_buf_init(&b64, 0);
    /* the placeholder: a signature of zeros, exactly as long as the real one */
    uint8_t *zeros = sm_malloc((size_t)EVP_PKEY_get_size(s->key));
    base64_encode(zeros, (size_t)EVP_PKEY_get_size(s->key), &b64);
    sm_freep(&zeros);
    build(s, inst, bh64, b64.data, &draft);
    sm_buf_reset(&b64);
    uint8_t hh[32];
    const char *err = NULL;
    if (bh64 != NULL)
        err = ams_hash(s, draft.data, draft.len, hh);
    else
        seal_hash(s, inst, (const char *const[ARC_KINDS]){aar, ams, draft.data}, hh);
    if (err == NULL)
        err = sign(s, hh, &b64);
    if (err == NULL)
        build(s, inst, bh64, b64.data, out);
    sm_buf_free(&draft);
    sm_buf_free(&b64);
    return err;
}

static const char *make_set(struct arc_sealer *s, unsigned inst, struct arc_seal_fields *out)
{
    uint8_t bh[EVP_MAX_MD_SIZE];
    unsigned bhlen = 0;
    canon_body_final(&s->body, bh, &bhlen);
    struct sm_buf bh64, aar, ams, seal;
    sm_buf_init(&bh64, 0);
    sm_buf_init(&aar, 0);
    sm_buf_init(&ams, 0);
    sm_buf_init(&seal, 0);
    base64_encode(bh, bhlen, &bh64);
    const char *err = make_aar(s, inst, &aar);
    if (err == NULL)
        err = make_sig(s, inst, bh64.data, NULL, NULL, &ams);
    if (err == NULL)
        err = make_sig(s, inst, NULL, aar.data, ams.data, &seal);
    sm_buf_free(&bh64);
    if (err != NULL) {
        sm_buf_free(&aar);
        sm_buf_free(&ams);
        sm_buf_free(&seal);
        return err;
    }
    out->aar = aar.data;
    out->ams = ams.data;
    out->seal = seal.data;
    out->instance = inst;
    return NULL;
}

enum arc_seal_status arc_sealer_finish(struct arc_sealer *s, struct arc_seal_fields *out,
                                       const char **error_r)
{
    memset(out, 0, sizeof *out);
    arc_sealer_headers_done(s);
    if (s->state == ST_DONE) {
        *error_r = "the ARC set was already made";
        return ARC_SEAL_ERROR;
    }
    s->state = ST_DONE;
    if (s->hl.overflow) {
        *error_r = "header section over the sealer's limits";
        return ARC_SEAL_ERROR;
    }
    if (!has_from(&s->hl)) {
        *error_r = "the message has no From field (RFC 6376 section 5.4)";
        return ARC_SEAL_ERROR;
    }
    bool skip;
    const char *err = NULL;
    unsigned inst = next_instance(s, &skip, &err);
    if (skip)
        return ARC_SEAL_SKIPPED;
    if (inst == 0 || (err = make_set(s, inst, out)) != NULL) {
        *error_r = err;
        return ARC_SEAL_ERROR;
    }
    return ARC_SEAL_OK;
}

void arc_seal_fields_free(struct arc_seal_fields *out)
{
    sm_freep(&out->seal);
    sm_freep(&out->ams);
    sm_freep(&out->aar);
}

void arc_sealer_free(struct arc_sealer **sp)
{
    struct arc_sealer *s = *sp;
    if (s == NULL)
        return;
    EVP_PKEY_free(s->key);
    sm_freep(&s->authserv_id);
    sm_freep(&s->results);
    sm_freep(&s->hlist);
    hdrlist_free(&s->hl);
    arc_chain_free(&s->c);
    canon_body_free(&s->body);
    sm_freep(sp);
}
