/* answer.c — building, copying and freeing DNS answers (answer.h).  The
 * wire-format decoder is in wire.c. */
#include "dns/answer.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

struct dns_answer *dns_answer_new(enum dns_status status)
{
    struct dns_answer *a = sm_malloc(sizeof *a);
    a->status = status;
    return a;
}

void dns_answer_add(struct dns_answer *a, const struct dns_rr *rr)
{
    if (a->n >= DNS_ANSWER_RR_MAX)
        return;
    a->rr = sm_realloc(a->rr, (a->n + 1) * sizeof *a->rr);
    struct dns_rr *dst = &a->rr[a->n++];
    *dst = *rr;
    dst->name = rr->name != NULL ? sm_strdup(rr->name) : NULL;
    dst->data = NULL;
    if (rr->data != NULL) {
        dst->data = sm_malloc(rr->len + 1); /* zeroed: the NUL after TXT text */
        memcpy(dst->data, rr->data, rr->len);
    }
}

struct dns_answer *dns_answer_dup(const struct dns_answer *a)
{
    struct dns_answer *c = dns_answer_new(a->status);
    c->secure = a->secure;
    c->bogus = a->bogus;
    c->ttl = a->ttl;
    for (size_t i = 0; i < a->n; i++)
        dns_answer_add(c, &a->rr[i]);
    return c;
}

void dns_answer_free(struct dns_answer *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->n; i++) {
        free(a->rr[i].name);
        free(a->rr[i].data);
    }
    free(a->rr);
    free(a);
}
