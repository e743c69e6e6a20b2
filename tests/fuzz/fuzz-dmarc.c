/* fuzz-dmarc.c — the DMARC record parser, the From author-domain parser,
 * the Public Suffix List lookups and dmarc_check() on hostile input.
 *
 * Byte 0 picks the target (and, for dmarc_check, the pct draw); the rest
 * is split at '\n' into chunks:
 *   0  dmarc_record_parse() on the whole rest;
 *   1  dmarc_from_parse() with each chunk (at most 5) as one From value,
 *      CR bytes kept so that folding is exercised;
 *   2  dmarc_check(): chunk 0 is the From value, chunk 1 the SPF domain,
 *      chunk 2 a DKIM d=; every question is answered from the chunk a hash
 *      of the name picks among chunks 3.. : its first byte chooses
 *      NXDOMAIN, a DNS error, NODATA or TXT records ('|' separates them);
 *   3  psl_org_domain() and psl_domain_to_ascii() on the rest;
 *   4  psl_parse() of the rest as a list, then a lookup of chunk 0.
 * The contracts are checked: bounded, lowercase, NUL-terminated results;
 * an organisational domain is a suffix of the name, on a label boundary;
 * a disposition only on fail; the driver ends within a few rounds.
 *
 * The list is Debian's (PSL_DEFAULT_PATH, or $SEALMAIL_PSL), loaded once. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/dmarc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHUNKS_MAX 16

static const struct psl *the_psl(void)
{
    static struct psl *psl;
    if (psl == NULL) {
        const char *path = getenv("SEALMAIL_PSL");
        const char *err = NULL;
        psl = psl_load(path != NULL ? path : PSL_DEFAULT_PATH, &err);
        if (psl == NULL) {
            fprintf(stderr, "fuzz-dmarc: %s\n", err);
            abort();
        }
    }
    return psl;
}

struct chunks {
    char *s[CHUNKS_MAX];
    size_t len[CHUNKS_MAX];
    size_t n;
};

/* Split text (NUL-terminated copy) at '\n' into NUL-terminated chunks. */
static void split(char *text, size_t len, struct chunks *c)
{
    c->n = 0;
    size_t b = 0;
    for (size_t i = 0; i <= len && c->n < CHUNKS_MAX; i++) {
        if (i < len && text[i] != '\n')
            continue;
        text[i] = '\0';
        c->s[c->n] = text + b;
        c->len[c->n++] = i - b;
        b = i + 1;
    }
}

static void check_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > DNS_NAME_MAX)
        abort();
    for (; *s; s++)
        if ((*s >= 'A' && *s <= 'Z') || (unsigned char)*s >= 0x80 || (unsigned char)*s <= 0x20)
            abort();
}

static void fuzz_record(const char *s, size_t len)
{
    struct dmarc_record r;
    if (dmarc_record_parse(s, len, &r) != DMARC_RECORD_OK)
        return;
    if (r.pct > 100 || strlen(r.rua) > DMARC_URIS_MAX || strlen(r.ruf) > DMARC_URIS_MAX ||
        r.p > DMARC_POLICY_REJECT || r.sp > DMARC_POLICY_REJECT || !dmarc_is_record(s, len))
        abort();
}

static void fuzz_from(const struct chunks *c)
{
    const char *fields[5];
    size_t n = c->n < 5 ? c->n : 5;
    for (size_t i = 0; i < n; i++)
        fields[i] = c->s[i];
    struct dmarc_from f;
    enum dmarc_from_status st = dmarc_from_parse(fields, n, &f);
    if (st != f.status || f.n > DMARC_FROM_DOMAINS_MAX)
        abort();
    if ((st == DMARC_FROM_ABSENT || st == DMARC_FROM_INVALID) != (f.n == 0))
        abort();
    if ((st == DMARC_FROM_MULTI_DOMAIN) != (n == 1 && f.n > 1))
        abort();
    for (size_t i = 0; i < f.n; i++) {
        check_name(f.domain[i]);
        for (size_t k = 0; k < i; k++)
            if (strcmp(f.domain[i], f.domain[k]) == 0)
                abort();
    }
}

static uint32_t hash(const char *name)
{
    uint32_t h = 2166136261u;
    for (const char *p = name; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

static struct dns_answer *answer_for(const struct chunks *c, const char *name)
{
    if (c->n <= 3)
        return dns_answer_new(DNS_NXDOMAIN);
    size_t k = 3 + hash(name) % (c->n - 3);
    const char *p = c->s[k];
    size_t n = c->len[k];
    if (n == 0)
        return dns_answer_new(DNS_NXDOMAIN);
    switch ((unsigned char)p[0] % 5) {
    case 0: return dns_answer_new(DNS_NXDOMAIN);
    case 1: return dns_answer_new(DNS_TEMPFAIL);
    case 2: return dns_answer_new(DNS_PERMFAIL);
    default: break;
    }
    struct dns_answer *a = dns_answer_new(DNS_OK);
    if ((unsigned char)p[0] % 5 == 3)
        return a; /* NODATA */
    size_t start = 1;
    for (size_t i = 1; i <= n && a->n < 8; i++) {
        if (i < n && p[i] != '|')
            continue;
        struct dns_rr rr = {.type = DNS_T_TXT, .data = (uint8_t *)(uintptr_t)(p + start),
                            .len = i - start};
        dns_answer_add(a, &rr);
        start = i + 1;
    }
    return a;
}

static void fuzz_check(const struct chunks *c, unsigned draw)
{
    const char *from[1] = {c->s[0]};
    const char *dkim[1] = {c->n > 2 ? c->s[2] : ""};
    struct dmarc_input in = {.from = from, .n_from = 1,
                             .spf_domain = c->n > 1 ? c->s[1] : NULL, .spf_pass = draw & 1,
                             .dkim_domains = dkim, .n_dkim = 1, .pct_draw = draw % 100};
    struct dnsview *v = dnsview_new();
    struct dmarc_outcome o;
    int rounds = 0;
    while (dmarc_check(v, the_psl(), &in, &o) == MAILAUTH_NEED_DNS) {
        if (++rounds > 3 || dnsview_pending(v) == 0)
            abort(); /* one From domain: its own record, then its org domain's */
        while (dnsview_pending(v) > 0) {
            const char *name;
            uint16_t type;
            dnsview_pending_at(v, 0, &name, &type);
            char copy[DNS_NAME_MAX + 1];
            snprintf(copy, sizeof copy, "%s", name);
            dnsview_put(v, copy, type, answer_for(c, copy));
        }
    }
    dnsview_free(&v);
    if (o.result != DMARC_RESULT_FAIL && o.disposition != DMARC_POLICY_NONE)
        abort();
    if (o.result == DMARC_RESULT_PASS && !o.spf_aligned && !o.dkim_aligned)
        abort();
    if ((o.result == DMARC_RESULT_PASS || o.result == DMARC_RESULT_FAIL) != o.have_record)
        abort();
    if (o.disposition > o.policy)
        abort();
    if (o.from_domain[0] != '\0')
        check_name(o.from_domain);
    if (o.policy_domain[0] != '\0')
        check_name(o.policy_domain);
}

static void fuzz_psl(const struct psl *psl, const char *name)
{
    char org[DNS_NAME_MAX * 4 + 1], ascii[DNS_NAME_MAX + 1];
    int n = psl_org_domain(psl, name, org, sizeof org);
    if (n >= 0) {
        size_t len = strlen(name);
        if (len > 0 && name[len - 1] == '.')
            len--;
        if ((size_t)n != strlen(org) || (size_t)n > len || n == 0)
            abort();
        if ((size_t)n < len && name[len - (size_t)n - 1] != '.')
            abort(); /* a suffix on a label boundary */
        for (int i = 0; i < n; i++) {
            char c = name[len - (size_t)n + (size_t)i];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c + 32);
            if (c != org[i])
                abort();
        }
    } else if (n != PSL_NONE && n != PSL_INVALID) {
        abort();
    }
    n = psl_domain_to_ascii(name, ascii, sizeof ascii);
    if (n >= 0)
        check_name(ascii);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    struct chunks c;
    switch (data[0] % 5) {
    case 0:
        fuzz_record(text, size - 1);
        break;
    case 1:
        split(text, size - 1, &c);
        fuzz_from(&c);
        break;
    case 2:
        split(text, size - 1, &c);
        fuzz_check(&c, data[0] / 5);
        break;
    case 3:
        fuzz_psl(the_psl(), text);
        break;
    default: {
        const char *err = NULL;
        char *nl = strchr(text, '\n');
        const char *name = text;
        if (nl != NULL) {
            *nl = '\0';
            struct psl *p = psl_parse(nl + 1, size - 1 - (size_t)(nl + 1 - text), &err);
            if (p != NULL)
                fuzz_psl(p, name);
            else if (err == NULL)
                abort();
            psl_free(&p);
        }
    }
    }
    free(text);
    return 0;
}
