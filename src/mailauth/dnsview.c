/* dnsview.c — the DNS answers one message's checks have seen (dnsview.h).
 * A small array searched linearly: a message needs a few dozen answers at
 * most, and DNSVIEW_MAX bounds it. */
#include "mailauth/dnsview.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"

struct dnsview_entry {
    char *name;                 /* lowercase, no final dot */
    uint16_t type;
    struct dns_answer *answer;  /* NULL while pending */
};

struct dnsview {
    struct dnsview_entry *e;
    size_t n, cap;
    size_t n_answers;
    struct dns_answer *refused; /* handed out for unaskable names */
    struct dns_answer *overflow;/* handed out past DNSVIEW_MAX */
};

struct dnsview *dnsview_new(void)
{
    struct dnsview *v = sm_malloc(sizeof *v);
    v->refused = dns_answer_new(DNS_PERMFAIL);
    v->overflow = dns_answer_new(DNS_TEMPFAIL);
    return v;
}

void dnsview_free(struct dnsview **vp)
{
    struct dnsview *v = *vp;
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->n; i++) {
        free(v->e[i].name);
        dns_answer_free(v->e[i].answer);
    }
    free(v->e);
    dns_answer_free(v->refused);
    dns_answer_free(v->overflow);
    free(v);
    *vp = NULL;
}

/* name without a final dot, or NULL when it cannot be asked. */
static size_t name_len(const char *name)
{
    size_t n = strlen(name);
    if (n > 0 && name[n - 1] == '.')
        n--;
    return n == 0 || n > DNS_NAME_MAX ? 0 : n;
}

static struct dnsview_entry *find(struct dnsview *v, const char *name, size_t len, uint16_t type)
{
    for (size_t i = 0; i < v->n; i++) {
        struct dnsview_entry *e = &v->e[i];
        if (e->type == type && strlen(e->name) == len && strncasecmp(e->name, name, len) == 0)
            return e;
    }
    return NULL;
}

static struct dnsview_entry *add(struct dnsview *v, const char *name, size_t len, uint16_t type)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 16;
        v->e = sm_realloc(v->e, v->cap * sizeof *v->e);
    }
    struct dnsview_entry *e = &v->e[v->n++];
    e->name = sm_strndup(name, len);
    for (char *p = e->name; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    e->type = type;
    e->answer = NULL;
    return e;
}

const struct dns_answer *dnsview_get(struct dnsview *v, const char *name, uint16_t type)
{
    size_t len = name_len(name);
    if (len == 0)
        return v->refused;
    struct dnsview_entry *e = find(v, name, len, type);
    if (e != NULL)
        return e->answer;
    if (v->n >= DNSVIEW_MAX)
        return v->overflow;
    add(v, name, len, type);
    return NULL;
}

size_t dnsview_pending(const struct dnsview *v)
{
    return v->n - v->n_answers;
}

void dnsview_pending_at(const struct dnsview *v, size_t i, const char **name, uint16_t *type)
{
    for (size_t k = 0; k < v->n; k++) {
        if (v->e[k].answer != NULL)
            continue;
        if (i-- == 0) {
            *name = v->e[k].name;
            *type = v->e[k].type;
            return;
        }
    }
    abort(); /* i out of range: a caller bug */
}

void dnsview_put(struct dnsview *v, const char *name, uint16_t type, struct dns_answer *a)
{
    size_t len = name_len(name);
    if (len == 0) {
        dns_answer_free(a);
        return;
    }
    struct dnsview_entry *e = find(v, name, len, type);
    if (e == NULL) {
        if (v->n >= DNSVIEW_MAX) {
            dns_answer_free(a);
            return;
        }
        e = add(v, name, len, type);
    }
    if (e->answer == NULL)
        v->n_answers++;
    dns_answer_free(e->answer);
    e->answer = a;
}

size_t dnsview_count(const struct dnsview *v)
{
    return v->n_answers;
}
