/* arc-chain.c — ARC set bookkeeping shared by arc.c and arc-seal.c
 * (arc-chain.h). */
#include "mailauth/arc-chain.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"

const char *const arc_kind_name[ARC_KINDS] = {"ARC-Authentication-Results",
                                              "ARC-Message-Signature", "ARC-Seal"};

void arc_chain_note(struct arc_chain *c, const struct hdrlist *hl)
{
    const struct hdr *h = &hl->h[hl->n - 1];
    for (int k = ARC_K_AAR; k <= ARC_K_AS; k++) {
        if (!hdr_is(h, arc_kind_name[k], strlen(arc_kind_name[k])))
            continue;
        if (c->nfield[k] == ARC_MAX_SETS) /* a 51st field of a kind */
            c->too_many = true;
        else
            c->field[k][c->nfield[k]++] = hl->n - 1;
    }
}

size_t arc_chain_fields(const struct arc_chain *c)
{
    return c->nfield[ARC_K_AAR] + c->nfield[ARC_K_AMS] + c->nfield[ARC_K_AS];
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

/* Parse the AMS or AS h: NULL with why when it is malformed. */
static struct arc_sig *parse_sig(int k, const struct hdr *h, char *why, size_t wl)
{
    struct arc_sig *s = sm_malloc(sizeof *s);
    enum dkim_result r;
    char reason[DKIM_REASON_MAX];
    if (dkim_sig_parse(k == ARC_K_AMS ? SIG_AMS : SIG_AS, h->text, h->len, &s->sig, &r, reason,
                       sizeof reason) < 0) {
        dkim_sig_free(&s->sig);
        sm_freep(&s);
        snprintf(why, wl, "malformed %s: %s", arc_kind_name[k], reason);
        return NULL;
    }
    return s;
}

/* The instance of field j of kind k, or -1 with why. */
static int place(struct arc_chain *c, const struct hdrlist *hl, int k, size_t j, char *why,
                 size_t wl)
{
    const struct hdr *h = &hl->h[c->field[k][j]];
    unsigned inst;
    if (k == ARC_K_AAR) {
        if (aar_instance(h, &inst) < 0) {
            snprintf(why, wl, "ARC-Authentication-Results without a valid i= tag first");
            return -1;
        }
        return (int)inst;
    }
    struct arc_sig *s = parse_sig(k, h, why, wl);
    if (s == NULL)
        return -1;
    inst = s->sig.instance;
    struct arc_sig **slot = k == ARC_K_AMS ? &c->ams[inst - 1] : &c->as[inst - 1];
    if (*slot == NULL) {
        *slot = s;
    } else {
        dkim_sig_free(&s->sig);
        sm_freep(&s);
    }
    return (int)inst;
}

int arc_chain_collect(struct arc_chain *c, const struct hdrlist *hl, char *why, size_t wl)
{
    bool have[ARC_KINDS][ARC_MAX_SETS] = {{false}};
    for (int k = ARC_K_AAR; k <= ARC_K_AS; k++) {
        for (size_t j = 0; j < c->nfield[k]; j++) {
            int inst = place(c, hl, k, j, why, wl);
            if (inst < 0)
                return -1;
            if (have[k][inst - 1]) {
                snprintf(why, wl, "two %s fields with i=%d", arc_kind_name[k], inst);
                return -1;
            }
            have[k][inst - 1] = true;
            c->set[k][inst - 1] = c->field[k][j];
            if ((unsigned)inst > c->n)
                c->n = (unsigned)inst;
        }
    }
    for (unsigned i = 0; i < c->n; i++)
        for (int k = ARC_K_AAR; k <= ARC_K_AS; k++)
            if (!have[k][i]) {
                snprintf(why, wl, "ARC set %u has no %s", i + 1, arc_kind_name[k]);
                return -1;
            }
    return 0;
}

unsigned arc_chain_highest(const struct arc_chain *c, const struct hdrlist *hl,
                           bool *newest_fail)
{
    unsigned hi = 0, hi_as = 0;
    bool fail = false;
    char why[DKIM_REASON_MAX];
    for (int k = ARC_K_AAR; k <= ARC_K_AS; k++) {
        for (size_t j = 0; j < c->nfield[k]; j++) {
            const struct hdr *h = &hl->h[c->field[k][j]];
            unsigned inst = 0;
            if (k == ARC_K_AAR) {
                if (aar_instance(h, &inst) < 0)
                    inst = 0;
            } else {
                struct arc_sig *s = parse_sig(k, h, why, sizeof why);
                if (s == NULL)
                    continue;
                inst = s->sig.instance;
                if (k == ARC_K_AS && inst > hi_as) {
                    hi_as = inst;
                    fail = false;
                }
                if (k == ARC_K_AS && inst == hi_as && s->sig.cv == CV_FAIL)
                    fail = true;
                dkim_sig_free(&s->sig);
                sm_freep(&s);
            }
            if (inst > hi)
                hi = inst;
        }
    }
    *newest_fail = fail;
    return hi;
}

void arc_hash_fields(EVP_MD_CTX *md, const char *const f[ARC_KINDS],
                     const size_t len[ARC_KINDS], bool seal_last, struct sm_buf *scratch)
{
    for (int k = ARC_K_AAR; k <= ARC_K_AS; k++) {
        bool last = seal_last && k == ARC_K_AS;
        dkim_hash_field(md, CANON_RELAXED, f[k], len[k], last, last, scratch);
    }
}

void arc_chain_hash_set(EVP_MD_CTX *md, const struct arc_chain *c, const struct hdrlist *hl,
                        unsigned i, bool seal_last, struct sm_buf *scratch)
{
    const char *f[ARC_KINDS];
    size_t len[ARC_KINDS];
    for (int k = ARC_K_AAR; k <= ARC_K_AS; k++) {
        const struct hdr *h = &hl->h[c->set[k][i - 1]];
        f[k] = h->text;
        len[k] = h->len;
    }
    arc_hash_fields(md, f, len, seal_last, scratch);
}

void arc_chain_free(struct arc_chain *c)
{
    for (unsigned i = 0; i < ARC_MAX_SETS; i++) {
        if (c->ams[i] != NULL)
            dkim_sig_free(&c->ams[i]->sig);
        if (c->as[i] != NULL)
            dkim_sig_free(&c->as[i]->sig);
        sm_freep(&c->ams[i]);
        sm_freep(&c->as[i]);
    }
}
