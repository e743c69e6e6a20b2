/* arc.c — ARC chain validation (arc.h, RFC 8617 §5.2) on the DKIM core. */
#include "mailauth/arc.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
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

enum kind {
    K_AAR,
    K_AMS,
    K_AS,
};

static const char *const kind_name[] = {"ARC-Authentication-Results", "ARC-Message-Signature",
                                        "ARC-Seal"};

struct arc_sig {
    struct dkim_sig sig;
    uint8_t hh[32];   /* header hash */
    size_t body;      /* AMS: index in the body digests */
};

enum stream_state {
    ST_HEADERS,
    ST_BODY,
    ST_DONE,
};

struct arc_verifier {
    enum stream_state state;
    int64_t future_tolerance;
    struct hdrlist hl;
    size_t field[3][ARC_MAX_SETS];   /* header indices of the ARC fields, by kind */
    size_t nfield[3];
    bool too_many;
    unsigned n;                    /* N */
    size_t set[3][ARC_MAX_SETS];   /* header index of each field of instance i + 1 */
    struct arc_sig *ams[ARC_MAX_SETS], *as[ARC_MAX_SETS];
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
    if (v->state != ST_HEADERS || !hdrlist_add(&v->hl, field, len))
        return;
    const struct hdr *h = &v->hl.h[v->hl.n - 1];
    for (int k = K_AAR; k <= K_AS; k++) {
        if (!hdr_is(h, kind_name[k], strlen(kind_name[k])))
            continue;
        if (v->nfield[k] == ARC_MAX_SETS) /* a 51st field of a kind */
            v->too_many = true;
        else
            v->field[k][v->nfield[k]++] = v->hl.n - 1;
    }
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

/* "i=" instance ";" at the start of an ARC-Authentication-Results value. */
static int aar_instance(const struct hdr *h, unsigned *inst)
{
    const char *p = h->text + h->namelen, *end = h->text + h->len;
    while (p < end && *p != ':')
        p++;
    p++;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    if (end - p < 4 || p[0] != 'i' || p[1] != '=')
        return -1;
    p += 2;
    unsigned x = 0, digits = 0;
    for (; p < end && *p >= '0' && *p <= '9' && digits < 3; p++, digits++)
        x = x * 10 + (unsigned)(*p - '0');
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (digits == 0 || p == end || *p != ';' || x < 1 || x > ARC_MAX_SETS)
        return -1;
    *inst = x;
    return 0;
}

/* Place every field at its instance; false (and decided) on a broken structure. */
static bool collect(struct arc_verifier *v)
{
    bool have[3][ARC_MAX_SETS] = {{false}};
    for (int k = K_AAR; k <= K_AS; k++) {
        for (size_t j = 0; j < v->nfield[k]; j++) {
            const struct hdr *h = &v->hl.h[v->field[k][j]];
            unsigned inst;
            if (k == K_AAR) {
                if (aar_instance(h, &inst) < 0) {
                    fail(v, "ARC-Authentication-Results without a valid i= tag first");
                    return false;
                }
            } else {
                struct arc_sig *s = sm_malloc(sizeof *s);
                enum dkim_result r;
                char why[DKIM_REASON_MAX];
                if (dkim_sig_parse(k == K_AMS ? SIG_AMS : SIG_AS, h->text, h->len, &s->sig, &r,
                                   why, sizeof why) < 0) {
                    dkim_sig_free(&s->sig);
                    sm_freep(&s);
                    fail(v, "malformed %s: %s", kind_name[k], why);
                    return false;
                }
                inst = s->sig.instance;
                if (!have[k][inst - 1])
                    (k == K_AMS ? v->ams : v->as)[inst - 1] = s;
                else {
                    dkim_sig_free(&s->sig);
                    sm_freep(&s);
                }
            }
            if (have[k][inst - 1]) {
                fail(v, "two %s fields with i=%u", kind_name[k], inst);
                return false;
            }
            have[k][inst - 1] = true;
            v->set[k][inst - 1] = v->field[k][j];
            if (inst > v->n)
                v->n = inst;
        }
    }
    for (unsigned i = 0; i < v->n; i++)
        for (int k = K_AAR; k <= K_AS; k++)
            if (!have[k][i]) {
                fail(v, "ARC set %u has no %s", i + 1, kind_name[k]);
                return false;
            }
    return true;
}

/* Header hashes: each AMS like a DKIM signature; each seal over the ARC
 * sets 1..i in order (AAR, AMS, AS), relaxed, its own b= blanked
 * (RFC 8617 §5.1.1).  The sets below i are hashed once, into a prefix
 * digest that every seal copies. */
static void hash_sets(struct arc_verifier *v)
{
    struct sm_buf scratch;
    sm_buf_init(&scratch, 0);
    EVP_MD_CTX *prefix = EVP_MD_CTX_new(), *md = EVP_MD_CTX_new();
    if (prefix == NULL || md == NULL || EVP_DigestInit_ex(prefix, EVP_sha256(), NULL) != 1)
        sm_panic("arc: cannot start a digest");
    for (unsigned i = 0; i < v->n; i++) {
        struct arc_sig *ams = v->ams[i];
        const struct hdr *h = &v->hl.h[v->set[K_AMS][i]];
        dkim_header_hash(&ams->sig, &v->hl, v->set[K_AMS][i], h->text, h->len, ams->hh);
        ams->body = bodyhash_add(&v->bh, ams->sig.bc,
                                 ams->sig.has_l ? ams->sig.l : CANON_NO_LIMIT);
        if (EVP_MD_CTX_copy_ex(md, prefix) != 1)
            sm_panic("arc: digest copy failed");
        for (int k = K_AAR; k <= K_AS; k++) {
            const struct hdr *f = &v->hl.h[v->set[k][i]];
            dkim_hash_field(md, CANON_RELAXED, f->text, f->len, k == K_AS, k == K_AS, &scratch);
            dkim_hash_field(prefix, CANON_RELAXED, f->text, f->len, false, false, &scratch);
        }
        unsigned dl = 0;
        if (EVP_DigestFinal_ex(md, v->as[i]->hh, &dl) != 1 || dl != 32)
            sm_panic("arc: digest final failed");
    }
    EVP_MD_CTX_free(prefix);
    EVP_MD_CTX_free(md);
    sm_buf_free(&scratch);
}

static void report_names(struct arc_verifier *v)
{
    for (unsigned i = 0; i < v->n; i++) {
        struct arc_set_info *s = &v->res.set[i];
        snprintf(s->seal_d, sizeof s->seal_d, "%s", v->as[i]->sig.d);
        snprintf(s->seal_s, sizeof s->seal_s, "%s", v->as[i]->sig.s);
        snprintf(s->ams_d, sizeof s->ams_d, "%s", v->ams[i]->sig.d);
    }
}

void arc_verifier_headers_done(struct arc_verifier *v)
{
    if (v->state != ST_HEADERS)
        return;
    v->state = ST_BODY;
    if (v->nfield[K_AAR] + v->nfield[K_AMS] + v->nfield[K_AS] == 0) {
        v->res.cv = ARC_NONE;
        snprintf(v->res.reason, sizeof v->res.reason, "no ARC fields");
        v->decided = true;
    } else if (v->too_many) {
        fail(v, "more than %d ARC sets", ARC_MAX_SETS);
    } else if (v->hl.overflow) {
        fail(v, "header section over the verifier's limits");
    } else if (collect(v)) {
        v->res.sets = v->n;
        hash_sets(v);
        report_names(v);
    }
    if (v->res.sets == 0)
        v->res.sets = v->n;
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
    unsigned n = v->n;
    struct arc_result *res = &v->res;
    /* RFC 8617 §5.2 step 2, then the cv= rules of step 3 */
    if (v->as[n - 1]->sig.cv == CV_FAIL) {
        fail(v, "the newest ARC-Seal (i=%u) says cv=fail", n);
        return MAILAUTH_DONE;
    }
    for (unsigned i = 0; i < n; i++) {
        enum arc_cv_value want = i == 0 ? CV_NONE : CV_PASS;
        if (v->as[i]->sig.cv != want) {
            fail(v, "ARC-Seal i=%u must have cv=%s", i + 1, i == 0 ? "none" : "pass");
            return MAILAUTH_DONE;
        }
    }
    char ams_why[ARC_MAX_SETS][DKIM_REASON_MAX], as_why[ARC_MAX_SETS][DKIM_REASON_MAX];
    bool pending = false, temp = false;
    for (unsigned i = 0; i < n; i++) {
        struct arc_set_info *si = &res->set[i];
        si->ams = check_one(v, v->ams[i], bodyhash_get(&v->bh, v->ams[i]->body), view, now,
                            ams_why[i], sizeof ams_why[i]);
        si->seal = check_one(v, v->as[i], NULL, view, now, as_why[i], sizeof as_why[i]);
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
    for (unsigned i = 0; i < ARC_MAX_SETS; i++) {
        if (v->ams[i] != NULL)
            dkim_sig_free(&v->ams[i]->sig);
        if (v->as[i] != NULL)
            dkim_sig_free(&v->as[i]->sig);
        sm_freep(&v->ams[i]);
        sm_freep(&v->as[i]);
    }
    hdrlist_free(&v->hl);
    bodyhash_free(&v->bh);
    sm_freep(vp);
}
