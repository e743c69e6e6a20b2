/* psl.c — the Public Suffix List as a hash set (psl.h).
 *
 * Every rule is stored once, in A-label ASCII form, as a key with flags:
 * NORMAL for "co.uk", WILDCARD on "kawasaki.jp" for "*.kawasaki.jp",
 * EXCEPTION on "city.kobe.jp" for "!city.kobe.jp".  A lookup walks the
 * suffixes of the name from the longest to the shortest, so it costs one
 * hash probe per label, whatever the size of the list.  The table is open
 * addressing with linear probing; its keys come from the trusted list, so
 * hostile names can only cause lookups, never insertions. */
#include "mailauth/psl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"
#include "dns/answer.h"

#define LABEL_MAX 63
#define LABELS_MAX 128 /* 253 characters hold at most 127 labels */

enum { RULE_NORMAL = 1, RULE_WILDCARD = 2, RULE_EXCEPTION = 4 };

struct psl_entry {
    uint32_t off;   /* into keys */
    uint16_t len;   /* 0: empty slot */
    uint8_t flags;
};

struct psl {
    char *keys;
    size_t keys_len, keys_cap;
    struct psl_entry *tab;
    size_t cap;     /* a power of two */
    size_t n_keys;
    size_t n_rules;
};

/* A domain name split into labels, kept both as given and in ASCII. */
struct dname {
    char ascii[DNS_NAME_MAX + 1];
    size_t len;                 /* of ascii */
    size_t n;                   /* labels */
    size_t aoff[LABELS_MAX];    /* label i starts at ascii + aoff[i] */
    size_t ooff[LABELS_MAX];    /* and at the input + ooff[i] */
    size_t olen;                /* input length without a final dot */
};

/* ---- Punycode (RFC 3492 §6.3), encoding only ---- */

enum { PC_BASE = 36, PC_TMIN = 1, PC_TMAX = 26, PC_SKEW = 38, PC_DAMP = 700 };

static char pc_digit(uint32_t d)
{
    return (char)(d < 26 ? 'a' + d : '0' + (d - 26));
}

static uint32_t pc_adapt(uint32_t delta, uint32_t numpoints, bool first)
{
    delta = first ? delta / PC_DAMP : delta / 2;
    delta += delta / numpoints;
    uint32_t k = 0;
    while (delta > ((PC_BASE - PC_TMIN) * PC_TMAX) / 2) {
        delta /= PC_BASE - PC_TMIN;
        k += PC_BASE;
    }
    return k + (PC_BASE - PC_TMIN + 1) * delta / (delta + PC_SKEW);
}

/* Encode one delta as a variable-length integer; false when out is full. */
static bool pc_put_delta(uint32_t q, uint32_t bias, char *out, size_t cap, size_t *o)
{
    for (uint32_t k = PC_BASE;; k += PC_BASE) {
        uint32_t t = k <= bias ? PC_TMIN : k >= bias + PC_TMAX ? PC_TMAX : k - bias;
        if (q < t)
            break;
        if (*o >= cap)
            return false;
        out[(*o)++] = pc_digit(t + (q - t) % (PC_BASE - t));
        q = (q - t) / (PC_BASE - t);
    }
    if (*o >= cap)
        return false;
    out[(*o)++] = pc_digit(q);
    return true;
}

/* Punycode of cp[0..n) into out (no NUL); the length, or -1. */
static int punycode_encode(const uint32_t *cp, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (cp[i] >= 0x80)
            continue;
        if (o >= cap)
            return -1;
        out[o++] = (char)cp[i];
    }
    uint32_t b = (uint32_t)o, h = b, next = 0x80, delta = 0, bias = 72;
    if (b > 0) {
        if (o >= cap)
            return -1;
        out[o++] = '-';
    }
    while (h < n) {
        uint32_t m = UINT32_MAX;
        for (size_t i = 0; i < n; i++)
            if (cp[i] >= next && cp[i] < m)
                m = cp[i];
        if (m - next > (UINT32_MAX - delta) / (h + 1))
            return -1;
        delta += (m - next) * (h + 1);
        next = m;
        for (size_t i = 0; i < n; i++) {
            if (cp[i] < next && ++delta == 0)
                return -1;
            if (cp[i] != next)
                continue;
            if (!pc_put_delta(delta, bias, out, cap, &o))
                return -1;
            bias = pc_adapt(delta, h + 1, h == b);
            delta = 0;
            h++;
        }
        delta++;
        next++;
    }
    return (int)o;
}

/* ---- UTF-8 ---- */

/* Decode one UTF-8 sequence at s[*i..len) (strict: no overlong forms, no
 * surrogates, nothing past U+10FFFF).  Returns the code point, or -1. */
static int32_t utf8_next(const unsigned char *s, size_t len, size_t *i)
{
    unsigned char c = s[*i];
    size_t need;
    uint32_t cp;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c < 0x80) {
        (*i)++;
        return c;
    } else if (c >= 0xc2 && c <= 0xdf) {
        need = 1, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2, cp = c & 0x0f;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3, cp = c & 0x07;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        return -1;
    }
    if (len - *i <= need)
        return -1;
    for (size_t k = 1; k <= need; k++) {
        unsigned char d = s[*i + k];
        if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xbf))
            return -1;
        cp = cp << 6 | (d & 0x3f);
    }
    *i += need + 1;
    return (int32_t)cp;
}

/* ---- names ---- */

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Append label s[0..len) to out in ASCII form; false when invalid. */
static bool put_label(const char *s, size_t len, char *out, size_t cap, size_t *o)
{
    bool ascii = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f)
            return false;
        if (c >= 0x80)
            ascii = false;
    }
    if (ascii) {
        if (len > LABEL_MAX || cap - *o < len)
            return false;
        for (size_t i = 0; i < len; i++)
            out[(*o)++] = lower(s[i]);
        return true;
    }
    uint32_t cp[LABEL_MAX];
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int32_t c = utf8_next((const unsigned char *)s, len, &i);
        if (c < 0 || n == LABEL_MAX)
            return false; /* more than 63 code points cannot fit in 63 bytes */
        cp[n++] = c < 0x80 ? (uint32_t)lower((char)c) : (uint32_t)c;
    }
    char enc[LABEL_MAX];
    int el = punycode_encode(cp, n, enc, LABEL_MAX - 4);
    if (el < 0 || cap - *o < 4 + (size_t)el)
        return false;
    memcpy(out + *o, "xn--", 4);
    memcpy(out + *o + 4, enc, (size_t)el);
    *o += 4 + (size_t)el;
    return true;
}

/* Split s[0..len) into labels and build its ASCII form; -1 when invalid. */
static int dname_parse(const char *s, size_t len, struct dname *d)
{
    if (len > 0 && s[len - 1] == '.')
        len--;
    if (len == 0)
        return -1;
    d->n = 0;
    d->len = 0;
    d->olen = len;
    for (size_t b = 0; b <= len;) {
        size_t e = b;
        while (e < len && s[e] != '.')
            e++;
        if (e == b || d->n == LABELS_MAX || d->len >= DNS_NAME_MAX)
            return -1;
        if (d->n > 0)
            d->ascii[d->len++] = '.';
        d->aoff[d->n] = d->len;
        d->ooff[d->n] = b;
        d->n++;
        if (!put_label(s + b, e - b, d->ascii, DNS_NAME_MAX, &d->len))
            return -1;
        b = e + 1;
    }
    d->ascii[d->len] = '\0';
    return 0;
}

/* ---- the hash set ---- */

static uint64_t hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static struct psl_entry *slot(const struct psl *p, const char *key, size_t len)
{
    size_t i = hash(key, len) & (p->cap - 1);
    for (;;) {
        struct psl_entry *e = &p->tab[i];
        if (e->len == 0 || (e->len == len && memcmp(p->keys + e->off, key, len) == 0))
            return e;
        i = (i + 1) & (p->cap - 1);
    }
}

static unsigned flags_of(const struct psl *p, const char *key, size_t len)
{
    const struct psl_entry *e = slot(p, key, len);
    return e->len != 0 ? e->flags : 0;
}

static void grow(struct psl *p)
{
    struct psl_entry *old = p->tab;
    size_t old_cap = p->cap;
    p->cap = old_cap ? old_cap * 2 : 1024;
    p->tab = sm_calloc(p->cap, sizeof *p->tab);
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].len != 0)
            *slot(p, p->keys + old[i].off, old[i].len) = old[i];
    free(old);
}

static void insert(struct psl *p, const char *key, size_t len, unsigned flag)
{
    if ((p->n_keys + 1) * 2 > p->cap)
        grow(p);
    struct psl_entry *e = slot(p, key, len);
    if (e->len == 0) {
        if (p->keys_len + len > p->keys_cap) {
            p->keys_cap = (p->keys_cap + len) * 2;
            p->keys = sm_realloc(p->keys, p->keys_cap);
        }
        memcpy(p->keys + p->keys_len, key, len);
        e->off = (uint32_t)p->keys_len;
        e->len = (uint16_t)len;
        p->keys_len += len;
        p->n_keys++;
    }
    if (!(e->flags & flag))
        p->n_rules++;
    e->flags |= (uint8_t)flag;
}

/* One line of the list: the rule is the text up to the first whitespace. */
static void add_line(struct psl *p, const char *s, size_t len)
{
    size_t e = 0;
    while (e < len && s[e] != ' ' && s[e] != '\t' && s[e] != '\r')
        e++;
    if (e == 0 || (e >= 2 && s[0] == '/' && s[1] == '/'))
        return;
    unsigned flag = RULE_NORMAL;
    size_t b = 0;
    if (s[0] == '!') {
        flag = RULE_EXCEPTION, b = 1;
    } else if (e >= 2 && s[0] == '*' && s[1] == '.') {
        flag = RULE_WILDCARD, b = 2;
    }
    if (memchr(s + b, '*', e - b) != NULL)
        return; /* "*" alone is the implicit default; inner wildcards are not PSL syntax */
    struct dname d;
    if (e - b > DNS_NAME_MAX * 4 || dname_parse(s + b, e - b, &d) < 0 || s[e - 1] == '.')
        return;
    insert(p, d.ascii, d.len, flag);
}

struct psl *psl_parse(const char *text, size_t len, const char **error_r)
{
    if (len > PSL_FILE_MAX) {
        *error_r = "public suffix list too large";
        return NULL;
    }
    struct psl *p = sm_malloc(sizeof *p);
    grow(p);
    for (size_t b = 0; b < len;) {
        const char *nl = memchr(text + b, '\n', len - b);
        size_t e = nl != NULL ? (size_t)(nl - text) : len;
        if (e - b <= PSL_LINE_MAX)
            add_line(p, text + b, e - b);
        b = e + 1;
    }
    if (p->n_rules == 0) {
        psl_free(&p);
        *error_r = "public suffix list holds no rule";
        return NULL;
    }
    return p;
}

struct psl *psl_load(const char *path, const char **error_r)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *error_r = "cannot open the public suffix list";
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)PSL_FILE_MAX) {
        close(fd);
        *error_r = "public suffix list is not a regular file of at most 16 MiB";
        return NULL;
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *text = sm_malloc(size + 1);
    while (got < size) {
        ssize_t r = read(fd, text + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    struct psl *p = NULL;
    if (got != size)
        *error_r = "cannot read the public suffix list";
    else
        p = psl_parse(text, size, error_r);
    free(text);
    return p;
}

void psl_free(struct psl **pp)
{
    struct psl *p = *pp;
    if (p == NULL)
        return;
    free(p->keys);
    free(p->tab);
    free(p);
    *pp = NULL;
}

size_t psl_rule_count(const struct psl *psl)
{
    return psl->n_rules;
}

/* ---- lookups ---- */

/* Index of the first label of the public suffix of d (publicsuffix.org
 * algorithm: an exception rule prevails, else the longest matching rule,
 * else "*"); may be d->n - 1 for the default rule. */
static size_t suffix_start(const struct psl *p, const struct dname *d)
{
    size_t best = d->n - 1; /* the default rule "*" */
    bool found = false;
    for (size_t i = 0; i < d->n; i++) {
        const char *key = d->ascii + d->aoff[i];
        unsigned f = flags_of(p, key, d->len - d->aoff[i]);
        if (f & RULE_EXCEPTION)
            return i + 1; /* the exception minus its leftmost label */
        if (found)
            continue;
        if (f & RULE_NORMAL) {
            best = i, found = true;
        } else if (i + 1 < d->n) {
            const char *parent = d->ascii + d->aoff[i + 1];
            if (flags_of(p, parent, d->len - d->aoff[i + 1]) & RULE_WILDCARD)
                best = i, found = true;
        }
    }
    return best;
}

int psl_org_domain(const struct psl *psl, const char *domain, char *out, size_t cap)
{
    struct dname d;
    if (domain == NULL || dname_parse(domain, strlen(domain), &d) < 0)
        return PSL_INVALID;
    size_t s = suffix_start(psl, &d);
    if (s == 0)
        return PSL_NONE;
    size_t b = d.ooff[s - 1], len = d.olen - b;
    if (len >= cap || len > (size_t)INT32_MAX)
        return PSL_INVALID;
    for (size_t i = 0; i < len; i++)
        out[i] = lower(domain[b + i]);
    out[len] = '\0';
    return (int)len;
}

int psl_domain_to_ascii(const char *domain, char *out, size_t cap)
{
    struct dname d;
    if (domain == NULL || dname_parse(domain, strlen(domain), &d) < 0 || d.len >= cap)
        return PSL_INVALID;
    memcpy(out, d.ascii, d.len + 1);
    return (int)d.len;
}
