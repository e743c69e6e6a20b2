/* taglist.c — tag=value lists (taglist.h, RFC 6376 §3.2). */
#include "mailauth/taglist.h"

#include <string.h>

static bool is_wsp(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Trim whitespace around s[*b..*e). */
static void trim(const char *s, size_t *b, size_t *e)
{
    while (*b < *e && is_wsp(s[*b]))
        (*b)++;
    while (*e > *b && is_wsp(s[*e - 1]))
        (*e)--;
}

static int parse_spec(const char *s, size_t b, size_t e, struct taglist *out)
{
    size_t eq = b;
    while (eq < e && s[eq] != '=')
        eq++;
    if (eq == e)
        return -1;
    size_t nb = b, ne = eq;
    trim(s, &nb, &ne);
    if (ne == nb || ne - nb > TAGLIST_NAME_MAX || !is_alpha(s[nb]))
        return -1;
    for (size_t i = nb; i < ne; i++)
        if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '_')
            return -1;
    size_t vb = eq + 1, ve = e;
    trim(s, &vb, &ve);
    for (size_t i = vb; i < ve; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(c >= 0x21 && c <= 0x7e) && !is_wsp((char)c))
            return -1;
    }
    if (out->n == TAGLIST_MAX)
        return -1;
    struct tag *t = &out->t[out->n];
    memcpy(t->name, s + nb, ne - nb);
    t->name[ne - nb] = '\0';
    if (taglist_get(out, t->name) != NULL)
        return -1; /* duplicate */
    t->value = s + vb;
    t->len = ve - vb;
    out->n++;
    return 0;
}

int taglist_parse(const char *s, size_t len, struct taglist *out)
{
    out->n = 0;
    size_t b = 0;
    while (b <= len) {
        size_t e = b;
        while (e < len && s[e] != ';')
            e++;
        size_t tb = b, te = e;
        trim(s, &tb, &te);
        if (tb == te) {
            /* only a final ";" (or an empty list) may leave an empty spec */
            if (e < len)
                return -1;
        } else if (parse_spec(s, tb, te, out) < 0) {
            return -1;
        }
        b = e + 1;
    }
    return 0;
}

const struct tag *taglist_get(const struct taglist *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->t[i].name, name) == 0)
            return &l->t[i];
    return NULL;
}

long taglist_compact(const char *value, size_t len, char *dst, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (is_wsp(value[i]))
            continue;
        if (n + 1 >= cap)
            return -1;
        dst[n++] = value[i];
    }
    if (cap == 0)
        return -1;
    dst[n] = '\0';
    return (long)n;
}
