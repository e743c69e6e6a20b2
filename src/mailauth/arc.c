/* arc.c — ARC chain validation (arc.h, RFC 8617 §5.2) on the DKIM core. */
#include "mailauth/arc.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "mailauth/arc-chain.h"
#include "mailauth/dkim-core.h"

#define DEFAULT_MAX_HEADER_FIELDS 1000
#define DEFAULT_MAX_HEADER_BYTES (1024 * 1024)

const char *arc_cv_name(enum arc_cv cv)
{
    switch (cv) {
    case ARC_NONE: return "none";
    case ARC_PASS: return "pass";
    case ARC_FAIL: return "fail";
    }
    return "fail";
}

enum stream_state {
    ST_HEADERS,
    ST_BODY,
    ST_DONE,
};

struct arc_verifier {
    enum stream_state state;
    int64_t future_tolerance;
    struct hdrlist hl;
    struct arc_chain c;
    bool decided;                  /* none, or a failure found in the header alone */
    struct bodyhash bh;
    struct arc_result res;
};

struct arc_verifier *arc_verifier_new(const struct dkim_limits *limits)
{
    struct arc_verifier *v = sm_malloc(sizeof *v);
    size_t nf = limits && limits->max_header_fields ? limits->max_header_fields
                                                    : DEFAULT_MAX_HEADER_FIELDS;
    size_t nb = limits && limits->max_header_bytes ? limits->max_header_bytes
                                                   : DEFAULT_MAX_HEADER_BYTES;
    v->future_tolerance = limits && limits->future_tolerance ? limits->future_tolerance : 900;
    hdrlist_init(&v->hl, nf, nb);
    return v;
}

void arc_verifier_header(struct arc_verifier *v, const char *field, size_t len)
{
    if (v->state == ST_HEADERS && hdrlist_add(&v->hl, field, len))
        arc_chain_note(&v->c, &v->hl);
}

static void fail(struct arc_verifier *v, const char *fmt, ...) SM_PRINTF(2, 3);

static void fail(struct arc_verifier *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->res.reason, sizeof v->res.reason, fmt, ap);
    va_end(ap);
    v->res.cv = ARC_FAIL;
    v->decided = true;
}

/* Header hashes: each AMS like a DKIM signature; each seal over the ARC
 * sets 1..i in order (AAR, AMS, AS), relaxed, its own b= blanked
 * (RFC 8617 §5.1.1).  The sets below i are hashed once, into a prefix
 * digest that every seal copies. */
static void hash_sets(struct arc_verifier *v)
{
    struct arc_chain *c = &v->c;
    struct sm_buf scratch;
    sm_buf_init(&scratch, 0);
    EVP_MD_CTX *prefix = EVP_MD_CTX_new(), *md = EVP_MD_CTX_new();
    if (prefix == NULL || md == NULL || EVP_DigestInit_ex(prefix, EVP_sha256(), NULL) != 1)
        sm_panic("arc: cannot start a digest");
    for (unsigned i = 0; i < c->n; i++) {
        struct arc_sig *ams = c->ams[i];
        const struct hdr *h = &v->hl.h[c->set[ARC_K_AMS][i]];
        dkim_header_hash(&ams->sig, &v->hl, c->set[ARC_K_AMS][i], h->text, h->len, ams->hh);
        ams->body = bodyhash_add(&v->bh, ams->sig.bc,
                                 ams->sig.has_l ? ams->sig.l : CANON_NO_LIMIT);
        if (EVP_MD_CTX_copy_ex(md, prefix) != 1)
            sm_panic("arc: digest copy failed");
        arc_chain_hash_set(md, c, &v->hl, i + 1, true, &scratch);
        arc_chain_hash_set(prefix, c, &v->hl, i + 1, false, &scratch);
        unsigned dl = 0;
        if (EVP_DigestFinal_ex(md, c->as[i]->hh, &dl) != 1 || dl != 32)
            sm_panic("arc: digest final failed");
    }
    EVP_MD_CTX_free(prefix);
    EVP_MD_CTX_free(md);
    sm_buf_free(&scratch);
}

static void report_names(struct arc_verifier *v)
{
    for (unsigned i = 0; i < v->c.n; i++) {
        struct arc_set_info *s = &v->res.set[i];
        snprintf(s->seal_d, sizeof s->seal_d, "%s", v->c.as[i]->sig.d);
        snprintf(s->seal_s, sizeof s->seal_s, "%s", v->c.as[i]->sig.s);
        snprintf(s->ams_d, sizeof s->ams_d, "%s", v->c.ams[i]->sig.d);
    }
}

void arc_verifier_headers_done(struct arc_verifier *v)
{
    if (v->state != ST_HEADERS)
        return;
    v->state = ST_BODY;
    char why[DKIM_REASON_MAX];
    if (arc_chain_fields(&v->c) == 0) {
        v->res.cv = ARC_NONE;
        snprintf(v->res.reason, sizeof v->res.reason, "no ARC fields");
        v->decided = true;
        hdrlist_free(&v->hl);
        return;
    }
    v->res.set = sm_calloc(ARC_MAX_SETS, sizeof *v->res.set);
    if (v->c.too_many) {
        fail(v, "more than %d ARC sets", ARC_MAX_SETS);
    } else if (v->hl.overflow) {
        fail(v, "header section over the verifier's limits");
    } else if (arc_chain_collect(&v->c, &v->hl, why, sizeof why) < 0) {
        fail(v, "%s", why);
    } else {
        v->res.sets = v->c.n;
        hash_sets(v);
        report_names(v);
    }
    if (v->res.sets == 0)
        v->res.sets = v->c.n;
    hdrlist_free(&v->hl);
}

void arc_verifier_body(struct arc_verifier *v, const void *p, size_t n)
{
    if (v->state == ST_HEADERS)
        arc_verifier_headers_done(v);
    if (v->state == ST_BODY)
        bodyhash_update(&v->bh, p, n);
}

void arc_verifier_body_done(struct arc_verifier *v)
{
    if (v->state == ST_HEADERS)
        arc_verifier_headers_done(v);
    if (v->state == ST_BODY)
        bodyhash_final(&v->bh);
    v->state = ST_DONE;
}

/* One AMS (body digest given) or seal (none): DKIM_PASS, DKIM_NONE while
 * its key is pending, or the failure with why. */
static enum dkim_result check_one(struct arc_verifier *v, const struct arc_sig *s,
                                  const struct bodyhash_entry *body, struct dnsview *view,
                                  int64_t now, char *why, size_t wl)
{
    if (dkim_sig_check_time(&s->sig, now, v->future_tolerance, why, wl) < 0)
        return DKIM_PERMERROR;
    struct dkim_key key;
    enum dkim_result r = dkim_key_get(view, &s->sig, &key, why, wl);
    if (r != DKIM_PASS)
        return r;
    if (body != NULL && (body->dlen != s->sig.bhlen ||
                         memcmp(body->digest, s->sig.bh, body->dlen) != 0)) {
        snprintf(why, wl, "body hash mismatch (bh=)");
        r = DKIM_FAIL;
    } else if (!dkim_verify_digest(&s->sig, &key, s->hh)) {
        snprintf(why, wl, "signature did not verify");
        r = DKIM_FAIL;
    }
    dkim_key_free(&key);
    return r;
}

static int decide(struct arc_verifier *v, struct dnsview *view, int64_t now)
{
    unsigned n = v->c.n;
    struct arc_result *res = &v->res;
    /* RFC 8617 §5.2 step 2, then the cv= rules of step 3 */
    if (v->c.as[n - 1]->sig.cv == CV_FAIL) {
        fail(v, "the newest ARC-Seal (i=%u) says cv=fail", n);
        return MAILAUTH_DONE;
    }
    for (unsigned i = 0; i < n; i++) {
        enum arc_cv_value want = i == 0 ? CV_NONE : CV_PASS;
        if (v->c.as[i]->sig.cv != want) {
            fail(v, "ARC-Seal i=%u must have cv=%s", i + 1, i == 0 ? "none" : "pass");
            return MAILAUTH_DONE;
        }
    }
    char ams_why[ARC_MAX_SETS][DKIM_REASON_MAX], as_why[ARC_MAX_SETS][DKIM_REASON_MAX];
    bool pending = false, temp = false;
    for (unsigned i = 0; i < n; i++) {
        struct arc_set_info *si = &res->set[i];
        si->ams = check_one(v, v->c.ams[i], bodyhash_get(&v->bh, v->c.ams[i]->body), view, now,
                            ams_why[i], sizeof ams_why[i]);
        si->seal = check_one(v, v->c.as[i], NULL, view, now, as_why[i], sizeof as_why[i]);
        pending = pending || si->ams == DKIM_NONE || si->seal == DKIM_NONE;
        temp = temp || si->seal == DKIM_TEMPERROR || (i + 1 == n && si->ams == DKIM_TEMPERROR);
    }
    /* step 4: the newest AMS; step 6: every seal, newest first */
    enum dkim_result newest = res->set[n - 1].ams;
    if (newest != DKIM_PASS && newest != DKIM_NONE && newest != DKIM_TEMPERROR) {
        fail(v, "ARC-Message-Signature i=%u: %s", n, ams_why[n - 1]);
        v->decided = false; /* a later view may say otherwise */
        return MAILAUTH_DONE;
    }
    for (unsigned i = n; i-- > 0;) {
        enum dkim_result r = res->set[i].seal;
        if (r != DKIM_PASS && r != DKIM_NONE && r != DKIM_TEMPERROR) {
            fail(v, "ARC-Seal i=%u: %s", i + 1, as_why[i]);
            v->decided = false;
            return MAILAUTH_DONE;
        }
    }
    if (pending)
        return MAILAUTH_NEED_DNS;
    if (temp) {
        res->cv = ARC_FAIL;
        res->temperror = true;
        snprintf(res->reason, sizeof res->reason, "key lookup failed temporarily");
        return MAILAUTH_DONE;
    }
    /* step 5: oldest-pass */
    res->oldest_pass = 0;
    for (unsigned i = n - 1; i-- > 0;) {
        if (res->set[i].ams != DKIM_PASS) {
            res->oldest_pass = i + 2;
            break;
        }
    }
    res->cv = ARC_PASS;
    snprintf(res->reason, sizeof res->reason, "%u ARC set%s verified", n, n == 1 ? "" : "s");
    return MAILAUTH_DONE;
}

int arc_verifier_result(struct arc_verifier *v, struct dnsview *view, int64_t now)
{
    if (v->state != ST_DONE)
        arc_verifier_body_done(v);
    if (v->decided)
        return MAILAUTH_DONE;
    v->res.temperror = false;
    v->res.oldest_pass = 0;
    return decide(v, view, now);
}

const struct arc_result *arc_verifier_get(const struct arc_verifier *v)
{
    return &v->res;
}

void arc_verifier_free(struct arc_verifier **vp)
{
    struct arc_verifier *v = *vp;
    if (v == NULL)
        return;
    arc_chain_free(&v->c);
    hdrlist_free(&v->hl);
    bodyhash_free(&v->bh);
    free(v->res.set);
    sm_freep(vp);
}
