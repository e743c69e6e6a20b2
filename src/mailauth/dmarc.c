/* dmarc.c — DMARC records, author domains, discovery and alignment
 * (dmarc.h, RFC 7489).
 *
 * Three parts: the record parser (over taglist.h, with DMARC's "invalid
 * values fall back to defaults" rule), a small RFC 5322 address lexer and
 * parser for the From field that only keeps the domains, and the check
 * itself, which evaluates each author domain and keeps the worst outcome. */
#include "mailauth/dmarc.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mailauth/taglist.h"

/* ---- records ---- */

static bool is_wsp(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool dmarc_is_record(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && is_wsp(s[i]))
        i++;
    if (i == len || (s[i] != 'v' && s[i] != 'V')) /* "v" is an ABNF literal: any case */
        return false;
    i++;
    while (i < len && is_wsp(s[i]))
        i++;
    if (i == len || s[i++] != '=')
        return false;
    while (i < len && is_wsp(s[i]))
        i++;
    if (len - i < 6 || memcmp(s + i, "DMARC1", 6) != 0)
        return false;
    i += 6;
    return i == len || s[i] == ';' || is_wsp(s[i]);
}

/* Tag names are ABNF literals, so without case; a name given twice in
 * different case makes the record ambiguous (*dup). */
static const struct tag *tag_get(const struct taglist *l, const char *name, bool *dup)
{
    const struct tag *found = NULL;
    for (size_t i = 0; i < l->n; i++) {
        if (strcasecmp(l->t[i].name, name) != 0)
            continue;
        if (found != NULL)
            *dup = true;
        found = &l->t[i];
    }
    return found;
}

static bool value_is(const struct tag *t, const char *word)
{
    return t->len == strlen(word) && strncasecmp(t->value, word, t->len) == 0;
}

static bool parse_policy(const struct tag *t, enum dmarc_policy *p)
{
    if (value_is(t, "none"))
        *p = DMARC_POLICY_NONE;
    else if (value_is(t, "quarantine"))
        *p = DMARC_POLICY_QUARANTINE;
    else if (value_is(t, "reject"))
        *p = DMARC_POLICY_REJECT;
    else
        return false;
    return true;
}

static void parse_align(const struct tag *t, enum dmarc_align *a)
{
    if (t == NULL)
        return;
    if (value_is(t, "s"))
        *a = DMARC_ALIGN_STRICT;
    else if (value_is(t, "r"))
        *a = DMARC_ALIGN_RELAXED;
}

/* An unsigned decimal of at most max_digits digits, at most max. */
static bool parse_uint(const struct tag *t, size_t max_digits, uint64_t max, uint64_t *out)
{
    if (t->len == 0 || t->len > max_digits)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < t->len; i++) {
        if (!is_digit(t->value[i]))
            return false;
        v = v * 10 + (uint64_t)(t->value[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

/* fo= is a colon-separated list of 0, 1, d, s (WSP allowed around ":"). */
static void parse_fo(const struct tag *t, unsigned *fo)
{
    if (t == NULL)
        return;
    unsigned bits = 0;
    for (size_t b = 0; b <= t->len;) {
        size_t e = b;
        while (e < t->len && t->value[e] != ':')
            e++;
        size_t vb = b, ve = e;
        while (vb < ve && is_wsp(t->value[vb]))
            vb++;
        while (ve > vb && is_wsp(t->value[ve - 1]))
            ve--;
        if (ve - vb != 1)
            return;
        switch (t->value[vb]) {
        case '0': bits |= DMARC_FO_0; break;
        case '1': bits |= DMARC_FO_1; break;
        case 'd': case 'D': bits |= DMARC_FO_D; break;
        case 's': case 'S': bits |= DMARC_FO_S; break;
        default: return;
        }
        b = e + 1;
    }
    *fo = bits;
}

/* One dmarc-uri: URI (RFC 3986: scheme ":" something without WSP) with an
 * optional "!" size limit ("!10m"). */
static bool valid_uri(const char *s, size_t len)
{
    const char *bang = memchr(s, '!', len);
    if (bang != NULL) {
        size_t i = (size_t)(bang - s) + 1;
        size_t digits = 0;
        while (i < len && is_digit(s[i]))
            i++, digits++;
        if (i < len && s[i] != '\0' && strchr("kmgtKMGT", s[i]) != NULL)
            i++;
        if (digits == 0 || i != len)
            return false;
        len = (size_t)(bang - s);
    }
    if (len == 0 || !is_alpha(s[0]))
        return false;
    size_t i = 1;
    while (i < len &&
           (is_alpha(s[i]) || is_digit(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.'))
        i++;
    if (i == len || s[i] != ':' || i + 1 == len)
        return false;
    for (i++; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

/* Keep the URI list t (trimmed, cut at a comma when longer than the
 * buffer); true when at least one URI in it is valid. */
static bool store_uris(const struct tag *t, char *dst)
{
    dst[0] = '\0';
    if (t == NULL)
        return false;
    bool any = false;
    size_t kept = 0;
    for (size_t b = 0; b <= t->len;) {
        size_t e = b;
        while (e < t->len && t->value[e] != ',')
            e++;
        size_t vb = b, ve = e;
        while (vb < ve && is_wsp(t->value[vb]))
            vb++;
        while (ve > vb && is_wsp(t->value[ve - 1]))
            ve--;
        if (valid_uri(t->value + vb, ve - vb))
            any = true;
        if (ve > vb && kept + (kept > 0) + (ve - vb) <= DMARC_URIS_MAX) {
            if (kept > 0)
                dst[kept++] = ',';
            memcpy(dst + kept, t->value + vb, ve - vb);
            kept += ve - vb;
            dst[kept] = '\0';
        }
        b = e + 1;
    }
    return any;
}

enum dmarc_record_status dmarc_record_parse(const char *s, size_t len, struct dmarc_record *out)
{
    if (!dmarc_is_record(s, len))
        return DMARC_RECORD_NOT_DMARC;
    struct taglist l;
    if (len > DMARC_RECORD_MAX || taglist_parse(s, len, &l) < 0)
        return DMARC_RECORD_INVALID;
    bool dup = false;
    const struct tag *p = tag_get(&l, "p", &dup), *sp = tag_get(&l, "sp", &dup);
    const struct tag *pct = tag_get(&l, "pct", &dup), *ri = tag_get(&l, "ri", &dup);
    const struct tag *adkim = tag_get(&l, "adkim", &dup), *aspf = tag_get(&l, "aspf", &dup);
    const struct tag *fo = tag_get(&l, "fo", &dup);
    const struct tag *rua = tag_get(&l, "rua", &dup), *ruf = tag_get(&l, "ruf", &dup);
    tag_get(&l, "v", &dup);
    if (dup)
        return DMARC_RECORD_INVALID;

    struct dmarc_record r = {.pct = 100, .fo = DMARC_FO_0, .ri = 86400};
    bool rua_ok = store_uris(rua, r.rua);
    store_uris(ruf, r.ruf);
    bool p_ok = p != NULL && parse_policy(p, &r.p);
    r.sp = r.p;
    bool sp_ok = sp == NULL || parse_policy(sp, &r.sp);
    if (!p_ok || !sp_ok) {
        if (!rua_ok)
            return DMARC_RECORD_INVALID;
        r.p = r.sp = DMARC_POLICY_NONE;
        r.p_assumed = true;
    }
    uint64_t n;
    if (pct != NULL && parse_uint(pct, 3, 100, &n))
        r.pct = (unsigned)n;
    if (ri != NULL && parse_uint(ri, 10, UINT32_MAX, &n))
        r.ri = (uint32_t)n;
    parse_align(adkim, &r.adkim);
    parse_align(aspf, &r.aspf);
    parse_fo(fo, &r.fo);
    *out = r;
    return DMARC_RECORD_OK;
}

/* ---- From: lexer ---- */

enum tok_type { T_END, T_ATOM, T_QUOTED, T_LITERAL, T_SPECIAL, T_ERROR };

struct tok {
    enum tok_type type;
    const char *s; /* where the token starts (T_ATOM: its text) */
    size_t len;    /* its length (T_QUOTED: quotes included) */
    char c;        /* T_SPECIAL */
};

struct lexer {
    const char *s;
    size_t len, i;
    struct tok peeked;
    bool have_peek;
};

static bool is_atext(unsigned char c)
{
    return is_alpha((char)c) || is_digit((char)c) || c >= 0x80 ||
           (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL);
}

/* Skip whitespace and (nested) comments; false on a broken comment. */
static bool skip_cfws(struct lexer *lx)
{
    int depth = 0;
    while (lx->i < lx->len) {
        char c = lx->s[lx->i];
        if (depth == 0 && !is_wsp(c) && c != '(')
            return true;
        lx->i++;
        if (c == '(') {
            if (++depth > DMARC_COMMENT_DEPTH)
                return false;
        } else if (c == ')' && depth > 0) {
            depth--;
        } else if (c == '\\' && depth > 0) {
            if (lx->i == lx->len)
                return false;
            lx->i++;
        }
    }
    return depth == 0;
}

/* A quoted string or a domain literal up to its closing byte. */
static struct tok lex_delimited(struct lexer *lx, char close, enum tok_type type)
{
    struct tok t = {.type = T_ERROR};
    for (lx->i++; lx->i < lx->len; lx->i++) {
        char c = lx->s[lx->i];
        if (c == '\\') {
            if (++lx->i == lx->len)
                return t;
        } else if (c == close) {
            lx->i++;
            t.type = type;
            return t;
        } else if (close == ']' && c == '[') {
            return t;
        }
    }
    return t;
}

static struct tok lex(struct lexer *lx)
{
    if (lx->have_peek) {
        lx->have_peek = false;
        return lx->peeked;
    }
    struct tok t = {.type = T_ERROR};
    if (!skip_cfws(lx))
        return t;
    if (lx->i == lx->len) {
        t.type = T_END;
        return t;
    }
    unsigned char c = (unsigned char)lx->s[lx->i];
    const char *start = lx->s + lx->i;
    if (c == '"') {
        t = lex_delimited(lx, '"', T_QUOTED);
        t.s = start;
        t.len = (size_t)(lx->s + lx->i - start);
        return t;
    }
    if (c == '[')
        return lex_delimited(lx, ']', T_LITERAL);
    if (strchr("<>:;@,", c) != NULL) {
        lx->i++;
        t.type = T_SPECIAL;
        t.c = (char)c;
        return t;
    }
    if (!is_atext(c))
        return t; /* ")", "\\", "]" or a control byte */
    t.type = T_ATOM;
    t.s = lx->s + lx->i;
    while (lx->i < lx->len && is_atext((unsigned char)lx->s[lx->i]))
        lx->i++;
    t.len = (size_t)(lx->s + lx->i - t.s);
    return t;
}

static struct tok peek(struct lexer *lx)
{
    if (!lx->have_peek) {
        lx->peeked = lex(lx);
        lx->have_peek = true;
    }
    return lx->peeked;
}

static bool is_special(struct tok t, char c)
{
    return t.type == T_SPECIAL && t.c == c;
}

/* ---- From: parser ---- */

struct from_parse {
    struct dmarc_from *out;
    size_t addrs;
    bool bad;
    dmarc_mailbox_fn *mailbox; /* optional: told of each mailbox */
    void *arg;
    size_t last_domain;        /* index in out->domain of the last one added */
};

/* The local part spans the words first..last as written. */
static void tell_mailbox(struct from_parse *fp, struct tok first, struct tok last)
{
    if (fp->mailbox != NULL && fp->out->n > 0)
        fp->mailbox(fp->arg, first.s, (size_t)(last.s + last.len - first.s),
                    fp->out->domain[fp->last_domain]);
}

/* A domain name in an address: LDH labels (and "_"), or U-labels. */
static bool add_domain(struct from_parse *fp, struct tok t)
{
    if (t.type != T_ATOM || t.len > DNS_NAME_MAX * 4)
        return false;
    char raw[DNS_NAME_MAX * 4 + 1], ascii[DNS_NAME_MAX + 1];
    memcpy(raw, t.s, t.len);
    raw[t.len] = '\0';
    if (psl_domain_to_ascii(raw, ascii, sizeof ascii) < 0)
        return false;
    for (const char *c = ascii; *c; c++)
        if (!is_alpha(*c) && !is_digit(*c) && *c != '-' && *c != '_' && *c != '.')
            return false;
    if (++fp->addrs > DMARC_FROM_ADDRS_MAX)
        return false;
    struct dmarc_from *o = fp->out;
    for (size_t i = 0; i < o->n; i++) {
        if (strcmp(o->domain[i], ascii) == 0) {
            fp->last_domain = i;
            return true;
        }
    }
    if (o->n == DMARC_FROM_DOMAINS_MAX)
        return false;
    fp->last_domain = o->n;
    memcpy(o->domain[o->n++], ascii, strlen(ascii) + 1);
    return true;
}

/* "<" [obs-route ":"] local "@" domain ">" (the "<" already read). */
static bool parse_angle(struct lexer *lx, struct from_parse *fp)
{
    struct tok t = peek(lx);
    if (is_special(t, '@') || is_special(t, ',')) { /* obs-route: skip to ":" */
        do {
            t = lex(lx);
        } while (t.type != T_END && t.type != T_ERROR && !is_special(t, ':') &&
                 !is_special(t, '>'));
        if (!is_special(t, ':'))
            return false;
    }
    size_t words = 0;
    struct tok first = {0}, last = {0};
    for (t = peek(lx); t.type == T_ATOM || t.type == T_QUOTED; t = peek(lx)) {
        last = lex(lx);
        if (words++ == 0)
            first = last;
    }
    if (words == 0 || !is_special(lex(lx), '@') || !add_domain(fp, lex(lx)))
        return false;
    if (!is_special(lex(lx), '>'))
        return false;
    tell_mailbox(fp, first, last);
    return true;
}

/* mailbox: name-addr or addr-spec; in_group forbids a nested group. */
static bool parse_mailbox(struct lexer *lx, struct from_parse *fp, bool in_group, bool *group);

static bool parse_group(struct lexer *lx, struct from_parse *fp)
{
    size_t before = fp->addrs;
    struct tok t = peek(lx);
    while (!is_special(t, ';')) {
        bool group;
        if (!parse_mailbox(lx, fp, true, &group))
            return false;
        t = peek(lx);
        if (is_special(t, ','))
            lex(lx);
        else if (!is_special(t, ';'))
            return false;
        t = peek(lx);
    }
    lex(lx);
    return fp->addrs > before; /* a group without mailboxes names no author */
}

static bool parse_mailbox(struct lexer *lx, struct from_parse *fp, bool in_group, bool *group)
{
    *group = false;
    size_t words = 0;
    struct tok t, first = {0}, last = {0};
    for (t = peek(lx); t.type == T_ATOM || t.type == T_QUOTED; t = peek(lx)) {
        last = lex(lx);
        if (words++ == 0)
            first = last;
    }
    lex(lx);
    if (is_special(t, '<'))
        return parse_angle(lx, fp);
    if (is_special(t, '@')) {
        if (words == 0 || !add_domain(fp, lex(lx)))
            return false;
        tell_mailbox(fp, first, last);
        return true;
    }
    if (is_special(t, ':') && words > 0 && !in_group) {
        *group = true;
        return parse_group(lx, fp);
    }
    return false;
}

/* One From field value: mailbox-list, or a group (RFC 6854). */
static bool parse_field(const char *s, struct from_parse *fp)
{
    size_t len = strnlen(s, DMARC_FROM_MAX + 1);
    if (len > DMARC_FROM_MAX)
        return false;
    struct lexer lx = {.s = s, .len = len};
    for (;;) {
        bool group;
        if (!parse_mailbox(&lx, fp, false, &group))
            return false;
        struct tok t = lex(&lx);
        if (t.type == T_END)
            return true;
        if (!is_special(t, ','))
            return false;
    }
}

enum dmarc_from_status dmarc_from_parse(const char *const *fields, size_t n,
                                        struct dmarc_from *out)
{
    return dmarc_from_mailboxes(fields, n, out, NULL, NULL);
}

enum dmarc_from_status dmarc_from_mailboxes(const char *const *fields, size_t n,
                                            struct dmarc_from *out, dmarc_mailbox_fn *fn,
                                            void *arg)
{
    out->n = 0;
    if (n == 0)
        return out->status = DMARC_FROM_ABSENT;
    struct from_parse fp = {.out = out, .mailbox = fn, .arg = arg};
    bool ok = n <= DMARC_FROM_FIELDS_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = fields[i] != NULL && parse_field(fields[i], &fp);
    if (!ok) {
        out->n = 0;
        return out->status = DMARC_FROM_INVALID;
    }
    if (n > 1)
        return out->status = DMARC_FROM_MULTI_FIELD;
    return out->status = out->n > 1 ? DMARC_FROM_MULTI_DOMAIN : DMARC_FROM_OK;
}

/* ---- alignment ---- */

/* The organisational domain of an ASCII name, or the name itself when it
 * is a public suffix; false when it is not a name. */
static bool org_of(const struct psl *psl, const char *ascii, char *out, size_t cap)
{
    int n = psl_org_domain(psl, ascii, out, cap);
    if (n == PSL_NONE && strlen(ascii) < cap) {
        memcpy(out, ascii, strlen(ascii) + 1);
        return true;
    }
    return n > 0;
}

bool dmarc_aligned(const struct psl *psl, const char *author, const char *domain,
                   enum dmarc_align mode)
{
    char a[DNS_NAME_MAX + 1], d[DNS_NAME_MAX + 1];
    if (author == NULL || domain == NULL || psl_domain_to_ascii(author, a, sizeof a) < 0 ||
        psl_domain_to_ascii(domain, d, sizeof d) < 0)
        return false;
    if (strcmp(a, d) == 0)
        return true;
    if (mode == DMARC_ALIGN_STRICT)
        return false;
    char oa[DNS_NAME_MAX + 1], od[DNS_NAME_MAX + 1];
    return org_of(psl, a, oa, sizeof oa) && org_of(psl, d, od, sizeof od) && strcmp(oa, od) == 0;
}

/* ---- discovery ---- */

enum lookup { L_NEED_DNS, L_TEMPFAIL, L_NONE, L_MULTIPLE, L_ONE };

/* The DMARC TXT records at _dmarc.<domain>; on L_ONE, *rec and *rec_len
 * point at the record's text (owned by the view). */
static enum lookup lookup(struct dnsview *v, const char *domain, const char **rec,
                          size_t *rec_len)
{
    char name[DNS_NAME_MAX + 16];
    size_t dl = strlen(domain);
    if (dl > DNS_NAME_MAX)
        return L_NONE;
    memcpy(name, "_dmarc.", 7);
    memcpy(name + 7, domain, dl + 1);
    const struct dns_answer *a = dnsview_get(v, name, DNS_T_TXT);
    if (a == NULL)
        return L_NEED_DNS;
    if (a->status == DNS_TEMPFAIL)
        return L_TEMPFAIL;
    if (a->status != DNS_OK)
        return L_NONE; /* NXDOMAIN, or a name that cannot be asked */
    size_t found = 0;
    for (size_t i = 0; i < a->n; i++) {
        const struct dns_rr *rr = &a->rr[i];
        if (rr->type != DNS_T_TXT || rr->data == NULL)
            continue;
        if (!dmarc_is_record((const char *)rr->data, rr->len))
            continue;
        *rec = (const char *)rr->data;
        *rec_len = rr->len;
        found++;
    }
    return found == 0 ? L_NONE : found == 1 ? L_ONE : L_MULTIPLE;
}

static enum dmarc_policy weaker(enum dmarc_policy p)
{
    return p == DMARC_POLICY_REJECT ? DMARC_POLICY_QUARANTINE : DMARC_POLICY_NONE;
}

/* Alignment, result and disposition once the record is known. */
static void evaluate(const struct psl *psl, const struct dmarc_input *in, struct dmarc_outcome *o)
{
    const struct dmarc_record *r = &o->record;
    o->spf_aligned = in->spf_pass && in->spf_domain != NULL &&
                     dmarc_aligned(psl, o->from_domain, in->spf_domain, r->aspf);
    for (size_t i = 0; i < in->n_dkim && !o->dkim_aligned; i++) {
        const char *d = in->dkim_domains[i];
        if (d == NULL || !dmarc_aligned(psl, o->from_domain, d, r->adkim))
            continue;
        o->dkim_aligned = true;
        if (psl_domain_to_ascii(d, o->dkim_domain, sizeof o->dkim_domain) < 0)
            o->dkim_domain[0] = '\0';
    }
    o->policy = o->subdomain ? r->sp : r->p;
    if (o->spf_aligned || o->dkim_aligned) {
        o->result = DMARC_RESULT_PASS;
        return;
    }
    o->result = DMARC_RESULT_FAIL;
    o->disposition = o->policy;
    if (in->pct_draw >= r->pct && o->policy != DMARC_POLICY_NONE) {
        o->sampled_out = true;
        o->disposition = weaker(o->policy);
    }
}

/* DMARC for one author domain (ASCII); o->from_domain is set. */
static int check_domain(struct dnsview *v, const struct psl *psl, const struct dmarc_input *in,
                        struct dmarc_outcome *o)
{
    const char *rec = NULL;
    size_t rec_len = 0;
    const char *where = o->from_domain;
    enum lookup l = lookup(v, where, &rec, &rec_len);
    char org[DNS_NAME_MAX + 1];
    if (l == L_NONE && psl_org_domain(psl, o->from_domain, org, sizeof org) > 0 &&
        strcmp(org, o->from_domain) != 0) {
        where = org;
        o->subdomain = true;
        l = lookup(v, where, &rec, &rec_len);
    }
    switch (l) {
    case L_NEED_DNS:
        return MAILAUTH_NEED_DNS;
    case L_TEMPFAIL:
        o->subdomain = false;
        o->result = DMARC_RESULT_TEMPERROR;
        return MAILAUTH_DONE;
    case L_NONE:
    case L_MULTIPLE:
        o->subdomain = false;
        o->result = DMARC_RESULT_NONE;
        return MAILAUTH_DONE;
    case L_ONE:
        break;
    }
    memcpy(o->policy_domain, where, strlen(where) + 1);
    if (dmarc_record_parse(rec, rec_len, &o->record) != DMARC_RECORD_OK) {
        o->result = DMARC_RESULT_PERMERROR;
        return MAILAUTH_DONE;
    }
    o->have_record = true;
    evaluate(psl, in, o);
    return MAILAUTH_DONE;
}

/* How bad an outcome is, to keep the worst of several author domains. */
static int severity(const struct dmarc_outcome *o)
{
    switch (o->result) {
    case DMARC_RESULT_FAIL:
        return 4 + (int)o->disposition;
    case DMARC_RESULT_TEMPERROR:
        return 3;
    case DMARC_RESULT_PERMERROR:
        return 2;
    case DMARC_RESULT_NONE:
        return 1;
    case DMARC_RESULT_PASS:
        break;
    }
    return 0;
}

int dmarc_check(struct dnsview *v, const struct psl *psl, const struct dmarc_input *in,
                struct dmarc_outcome *out)
{
    struct dmarc_from from;
    memset(out, 0, sizeof *out);
    out->from_status = dmarc_from_parse(in->from, in->n_from, &from);
    out->result = DMARC_RESULT_NONE;
    bool need = false;
    struct dmarc_outcome cur;
    for (size_t i = 0; i < from.n; i++) {
        memset(&cur, 0, sizeof cur);
        cur.from_status = from.status;
        memcpy(cur.from_domain, from.domain[i], strlen(from.domain[i]) + 1);
        if (check_domain(v, psl, in, &cur) == MAILAUTH_NEED_DNS) {
            need = true; /* go on: every domain's first question is asked at once */
            continue;
        }
        if (i == 0 || severity(&cur) > severity(out))
            *out = cur;
    }
    return need ? MAILAUTH_NEED_DNS : MAILAUTH_DONE;
}

void dmarc_authres(const struct dmarc_outcome *o, struct authres_result *r, char *buf,
                   size_t cap)
{
    *r = (struct authres_result){.method = "dmarc", .result = dmarc_result_name(o->result)};
    if (o->have_record && cap > 0) {
        snprintf(buf, cap, "p=%s sp=%s dis=%s", dmarc_policy_name(o->record.p),
                 dmarc_policy_name(o->record.sp), dmarc_policy_name(o->disposition));
        r->comment = buf;
    }
    if (o->from_domain[0] != '\0')
        authres_add_prop(r, "header", "from", o->from_domain);
    if (o->result == DMARC_RESULT_FAIL)
        authres_add_prop(r, "policy", "dmarc", dmarc_policy_name(o->disposition));
}

const char *dmarc_result_name(enum dmarc_result r)
{
    switch (r) {
    case DMARC_RESULT_PASS: return "pass";
    case DMARC_RESULT_FAIL: return "fail";
    case DMARC_RESULT_TEMPERROR: return "temperror";
    case DMARC_RESULT_PERMERROR: return "permerror";
    case DMARC_RESULT_NONE: break;
    }
    return "none";
}

const char *dmarc_policy_name(enum dmarc_policy p)
{
    switch (p) {
    case DMARC_POLICY_QUARANTINE: return "quarantine";
    case DMARC_POLICY_REJECT: return "reject";
    case DMARC_POLICY_NONE: break;
    }
    return "none";
}
