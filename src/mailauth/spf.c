/* spf.c — RFC 7208 check_host() over a dnsview (spf.h).
 *
 * A record is read twice: once for syntax (§4.6: an error anywhere is a
 * permerror, whatever would have matched first), once to evaluate its
 * mechanisms in order.  Terms point into the TXT answer, which the view
 * keeps for the whole run, so nothing is copied or allocated.  Every
 * helper returns either a final SPF result, an internal code below, or
 * R_NEED when an answer is missing; R_NEED climbs straight up to
 * spf_check(), which reports MAILAUTH_NEED_DNS. */
#include "mailauth/spf.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/log.h"
#include "mailauth/spf-internal.h"

#define R_NEED (-1)         /* an answer is missing */
#define M_NOMATCH 100       /* a mechanism did not match */
#define M_MATCH 101         /* a mechanism matched */
#define R_FOUND 102         /* select_record() found the record */
#define DEPTH_MAX 24        /* include/redirect nesting; the 10 lookups bound it first */

enum mech { MECH_ALL, MECH_INCLUDE, MECH_A, MECH_MX, MECH_PTR, MECH_IP4, MECH_IP6, MECH_EXISTS };
enum term_kind { TERM_MECH, TERM_REDIRECT, TERM_EXP, TERM_UNKNOWN };

struct term {
    enum term_kind kind;
    enum mech mech;
    char qual;              /* '+', '-', '~' or '?' */
    const char *text;       /* the whole term, for reports */
    size_t len;
    const char *spec;       /* domain-spec, NULL when absent */
    size_t spec_len;
    unsigned cidr4, cidr6;  /* prefix lengths for a, mx, ip4, ip6 */
    uint8_t net[16];        /* ip4 (4 bytes) or ip6 network */
};

static const struct {
    const char *name;
    enum mech mech;
} mechs[] = {
    {"all", MECH_ALL}, {"include", MECH_INCLUDE}, {"a", MECH_A},     {"mx", MECH_MX},
    {"ptr", MECH_PTR}, {"ip4", MECH_IP4},         {"ip6", MECH_IP6}, {"exists", MECH_EXISTS},
};

const char *spf_result_name(enum spf_result r)
{
    static const char *const names[] = {"none", "neutral", "pass", "fail",
                                        "softfail", "temperror", "permerror"};
    return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "permerror";
}

/* Copy printable ASCII; anything else becomes '?'. */
static void copy_clean(char *dst, size_t size, const char *src, size_t n)
{
    if (n >= size)
        n = size - 1;
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] >= 0x20 && src[i] <= 0x7e ? src[i] : '?';
    dst[n] = '\0';
}

/* Record why the check ended (the first reason wins) and return result. */
static int why(struct spf_ctx *c, int result, const char *fmt, ...) SM_PRINTF(3, 4);
static int why(struct spf_ctx *c, int result, const char *fmt, ...)
{
    if (c->out->problem[0] == '\0') {
        char tmp[SPF_PROBLEM_MAX + 1];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(tmp, sizeof tmp, fmt, ap);
        va_end(ap);
        copy_clean(c->out->problem, sizeof c->out->problem, tmp, strlen(tmp));
    }
    return result;
}

const struct dns_answer *spf_lookup(struct spf_ctx *c, const char *name, uint16_t type)
{
    const struct dns_answer *a = dnsview_get(c->v, name, type);
    if (a == NULL)
        c->need = true;
    return a;
}

/* REFUSED, FORMERR, SERVFAIL, timeouts: "RCODE other than 0 or 3" (§4.4). */
static bool dns_error(const struct dns_answer *a)
{
    return a->status == DNS_TEMPFAIL || a->status == DNS_PERMFAIL;
}

static size_t count_type(const struct dns_answer *a, uint16_t type)
{
    size_t n = 0;
    for (size_t i = 0; i < a->n; i++)
        n += a->rr[i].type == type;
    return n;
}

static const char *type_name(uint16_t type)
{
    switch (type) {
    case DNS_T_A: return "A";
    case DNS_T_AAAA: return "AAAA";
    case DNS_T_MX: return "MX";
    case DNS_T_PTR: return "PTR";
    default: return "TXT";
    }
}

/* ---- addresses ---- */

static bool cidr_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a, b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return ((a[full] ^ b[full]) & mask) == 0;
}

static bool rr_matches(const struct spf_ctx *c, const struct dns_rr *rr, uint16_t type,
                       unsigned prefix)
{
    return rr->type == type && cidr_match(rr->addr, c->ip, prefix);
}

/* 1*DIGIT without leading zeros, at most max: the length of a CIDR suffix. */
static bool parse_prefix(const char *s, size_t n, unsigned max, unsigned *out)
{
    unsigned v = 0;
    if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

/* ip4-network = qnum "." qnum "." qnum "." qnum, each 0-255 without
 * leading zeros (§5.6). */
static bool parse_ip4(const char *s, size_t n, uint8_t out[4])
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        size_t start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        unsigned v;
        if (!parse_prefix(s + start, i - start, 255, &v))
            return false;
        out[part] = (uint8_t)v;
        if (part < 3 && (i >= n || s[i++] != '.'))
            return false;
    }
    return i == n;
}

static bool parse_ip6(const char *s, size_t n, uint8_t out[16])
{
    char tmp[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof tmp)
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return inet_pton(AF_INET6, tmp, out) == 1;
}

/* Take a trailing "/N" (ip6: "//N") off s[0..*n): false when it is there
 * but malformed or too large (a permerror), true otherwise. */
static bool take_cidr(const char *s, size_t *n, bool ip6, unsigned *out)
{
    size_t end = *n, j = end;
    while (j > 0 && s[j - 1] >= '0' && s[j - 1] <= '9')
        j--;
    if (j == end || j == 0 || s[j - 1] != '/')
        return true;
    bool dbl = j >= 2 && s[j - 2] == '/';
    if (dbl != ip6)
        return true;
    if (!parse_prefix(s + j, end - j, ip6 ? 128 : 32, out))
        return false;
    *n = j - (ip6 ? 2 : 1);
    return true;
}

/* ---- term syntax (§4.6.1, §5, §6) ---- */

static bool name_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_' || ch == '.';
}

static bool parse_modifier(const char *t, size_t n, size_t eq, struct term *out)
{
    out->spec = t + eq + 1;
    out->spec_len = n - eq - 1;
    if (eq == 8 && strncasecmp(t, "redirect", 8) == 0) {
        out->kind = TERM_REDIRECT;
        return spf_domain_spec_syntax(out->spec, out->spec_len);
    }
    if (eq == 3 && strncasecmp(t, "exp", 3) == 0) {
        out->kind = TERM_EXP;
        return spf_domain_spec_syntax(out->spec, out->spec_len);
    }
    out->kind = TERM_UNKNOWN; /* ignored, but its macro-string must be valid (§6) */
    return spf_macro_syntax(out->spec, out->spec_len, false);
}

/* [ ":" domain-spec ]; required says whether it must be there. */
static bool parse_spec(const char *rest, size_t n, bool required, struct term *out)
{
    if (n == 0)
        return !required;
    if (rest[0] != ':')
        return false;
    out->spec = rest + 1;
    out->spec_len = n - 1;
    return spf_domain_spec_syntax(out->spec, out->spec_len);
}

static bool parse_ipnet(const char *rest, size_t n, bool ip6, struct term *out)
{
    if (n < 2 || rest[0] != ':')
        return false;
    const char *slash = memchr(rest, '/', n);
    size_t addr_len = slash ? (size_t)(slash - rest) - 1 : n - 1;
    unsigned *prefix = ip6 ? &out->cidr6 : &out->cidr4;
    if (slash != NULL &&
        !parse_prefix(slash + 1, n - (size_t)(slash + 1 - rest), ip6 ? 128 : 32, prefix))
        return false;
    return ip6 ? parse_ip6(rest + 1, addr_len, out->net) : parse_ip4(rest + 1, addr_len, out->net);
}

static bool parse_mechanism(const char *t, size_t n, struct term *out)
{
    size_t i = 0;
    out->kind = TERM_MECH;
    out->qual = '+';
    if (n > 0 && strchr("+-~?", t[0]) != NULL)
        out->qual = t[i++];
    size_t j = i;
    while (j < n && t[j] != ':' && t[j] != '/')
        j++;
    size_t k = 0, count = sizeof mechs / sizeof mechs[0];
    while (k < count && !(strlen(mechs[k].name) == j - i && strncasecmp(t + i, mechs[k].name, j - i) == 0))
        k++;
    if (k == count)
        return false; /* unknown mechanism (§5) */
    out->mech = mechs[k].mech;
    const char *rest = t + j;
    size_t rest_len = n - j;
    switch (out->mech) {
    case MECH_ALL:
        return rest_len == 0;
    case MECH_INCLUDE:
    case MECH_EXISTS:
        return parse_spec(rest, rest_len, true, out);
    case MECH_PTR:
        return parse_spec(rest, rest_len, false, out);
    case MECH_A:
    case MECH_MX:
        if (!take_cidr(rest, &rest_len, true, &out->cidr6) ||
            !take_cidr(rest, &rest_len, false, &out->cidr4))
            return false;
        return parse_spec(rest, rest_len, false, out);
    case MECH_IP4:
        return parse_ipnet(rest, rest_len, false, out);
    case MECH_IP6:
        return parse_ipnet(rest, rest_len, true, out);
    }
    return false;
}

/* One term (no spaces in t[0..n)): true when it is well formed. */
static bool parse_term(const char *t, size_t n, struct term *out)
{
    memset(out, 0, sizeof *out);
    out->text = t;
    out->len = n;
    out->cidr4 = 32;
    out->cidr6 = 128;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] < 0x21 || (unsigned char)t[i] > 0x7e)
            return false; /* only SP separates terms; records are ASCII (§3.1, §4.6.1) */
    /* modifier = name "=" ..., name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) */
    size_t i = 0;
    if (n > 0 && ((t[0] | 0x20) >= 'a' && (t[0] | 0x20) <= 'z')) {
        while (i < n && name_char((unsigned char)t[i]))
            i++;
        if (i < n && t[i] == '=')
            return parse_modifier(t, n, i, out);
    }
    return parse_mechanism(t, n, out);
}

/* The next SP-separated term of rec after *pos: true and t/n set, or false at the end. */
static bool next_term(const char *rec, size_t len, size_t *pos, const char **t, size_t *n)
{
    size_t i = *pos;
    while (i < len && rec[i] == ' ')
        i++;
    if (i >= len) {
        *pos = i;
        return false;
    }
    size_t j = i;
    while (j < len && rec[j] != ' ')
        j++;
    *t = rec + i;
    *n = j - i;
    *pos = j;
    return true;
}

/* ---- record lookup and selection (§4.4, §4.5) ---- */

static bool is_spf1(const struct dns_rr *rr)
{
    return rr->type == DNS_T_TXT && rr->len >= 6 &&
           strncasecmp((const char *)rr->data, "v=spf1", 6) == 0 &&
           (rr->len == 6 || rr->data[6] == ' ');
}

static int select_record(struct spf_ctx *c, const char *domain, const char **rec, size_t *len)
{
    const struct dns_answer *a = spf_lookup(c, domain, DNS_T_TXT);
    if (a == NULL)
        return R_NEED;
    if (a->status == DNS_NXDOMAIN)
        return why(c, SPF_NONE, "%s does not exist", domain);
    if (dns_error(a))
        return why(c, SPF_TEMPERROR, "DNS error looking up TXT %s", domain);
    size_t n = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (!is_spf1(&a->rr[i]))
            continue;
        n++;
        *rec = (const char *)a->rr[i].data;
        *len = a->rr[i].len;
    }
    if (n == 0)
        return why(c, SPF_NONE, "no SPF record at %s", domain);
    if (n > 1)
        return why(c, SPF_PERMERROR, "%zu SPF records at %s", n, domain);
    if (*len > SPF_RECORD_MAX)
        return why(c, SPF_PERMERROR, "SPF record of %s longer than %d bytes", domain,
                   SPF_RECORD_MAX);
    return R_FOUND;
}

/* First pass: every term well formed, redirect and exp at most once. */
static int check_syntax(struct spf_ctx *c, const char *domain, const char *rec, size_t len,
                        struct term *redirect, struct term *exp)
{
    size_t pos = 6; /* past "v=spf1" */
    const char *t;
    size_t n;
    while (next_term(rec, len, &pos, &t, &n)) {
        struct term term;
        if (!parse_term(t, n, &term))
            return why(c, SPF_PERMERROR, "syntax error in the SPF record of %s at \"%.*s\"",
                       domain, (int)(n > 60 ? 60 : n), t);
        struct term *slot = term.kind == TERM_REDIRECT ? redirect
                          : term.kind == TERM_EXP      ? exp
                                                       : NULL;
        if (slot == NULL)
            continue;
        if (slot->text != NULL)
            return why(c, SPF_PERMERROR, "%s= twice in the SPF record of %s",
                       term.kind == TERM_REDIRECT ? "redirect" : "exp", domain);
        *slot = term;
    }
    return 0;
}

/* ---- mechanisms ---- */

static int count_lookup(struct spf_ctx *c)
{
    if (++c->lookups > SPF_LOOKUP_MAX)
        return why(c, SPF_PERMERROR, "more than %d DNS lookups", SPF_LOOKUP_MAX);
    return 0;
}

/* A lookup by a term found nothing (§4.6.4): 0, or permerror past the limit. */
static int note_void(struct spf_ctx *c)
{
    if (++c->voids > SPF_VOID_MAX)
        return why(c, SPF_PERMERROR, "more than %d void DNS lookups", SPF_VOID_MAX);
    return 0;
}

/* The <target-name>: the expanded domain-spec, or the current domain. */
static int target(struct spf_ctx *c, const struct term *t, const char *domain,
                  char name[SPF_NAME_BUF])
{
    if (t->spec == NULL) {
        snprintf(name, SPF_NAME_BUF, "%s", domain);
        return SPF_STEP_OK;
    }
    return spf_expand_domain(c, t->spec, t->spec_len, domain, name);
}

static uint16_t addr_type(const struct spf_ctx *c)
{
    return c->family == AF_INET ? DNS_T_A : DNS_T_AAAA;
}

/* The answer of a term's own lookup: R_NEED, an error result, M_NOMATCH
 * when it is void, or 0 with *ap set. */
static int term_lookup(struct spf_ctx *c, const char *name, uint16_t type,
                       const struct dns_answer **ap)
{
    const struct dns_answer *a = spf_lookup(c, name, type);
    if (a == NULL)
        return R_NEED;
    if (dns_error(a))
        return why(c, SPF_TEMPERROR, "DNS error looking up %s %s", type_name(type), name);
    if (a->status == DNS_NXDOMAIN || count_type(a, type) == 0) {
        int r = note_void(c);
        return r ? r : M_NOMATCH;
    }
    *ap = a;
    return 0;
}

static int mech_a(struct spf_ctx *c, const struct term *t, const char *name)
{
    const struct dns_answer *a;
    uint16_t type = addr_type(c);
    int r = term_lookup(c, name, type, &a);
    if (r != 0)
        return r;
    unsigned prefix = c->family == AF_INET ? t->cidr4 : t->cidr6;
    for (size_t i = 0; i < a->n; i++)
        if (rr_matches(c, &a->rr[i], type, prefix))
            return M_MATCH;
    return M_NOMATCH;
}

/* §5.4: the addresses of every MX name, in answer order.  Every address
 * question is asked in the same round; the first decisive answer in order
 * decides, so the result does not depend on what is already known. */
static int mech_mx(struct spf_ctx *c, const struct term *t, const char *name)
{
    const struct dns_answer *mx;
    int r = term_lookup(c, name, DNS_T_MX, &mx);
    if (r != 0)
        return r;
    if (count_type(mx, DNS_T_MX) > SPF_MX_MAX)
        return why(c, SPF_PERMERROR, "more than %d MX records at %s", SPF_MX_MAX, name);
    uint16_t type = addr_type(c);
    unsigned prefix = c->family == AF_INET ? t->cidr4 : t->cidr6;
    bool pending = false;
    for (size_t i = 0; i < mx->n; i++) {
        const struct dns_rr *rr = &mx->rr[i];
        if (rr->type != DNS_T_MX || rr->name == NULL || !spf_name_ok(rr->name))
            continue; /* a null MX (RFC 7505) or a name that cannot be asked */
        const struct dns_answer *a = spf_lookup(c, rr->name, type);
        if (a == NULL)
            pending = true;
        if (a == NULL || pending)
            continue;
        if (dns_error(a))
            return why(c, SPF_TEMPERROR, "DNS error looking up %s %s", type_name(type), rr->name);
        for (size_t k = 0; k < a->n; k++)
            if (rr_matches(c, &a->rr[k], type, prefix))
                return M_MATCH;
    }
    return pending ? R_NEED : M_NOMATCH;
}

static void reverse_name(const struct spf_ctx *c, char *buf, size_t size)
{
    if (c->family == AF_INET) {
        snprintf(buf, size, "%u.%u.%u.%u.in-addr.arpa", c->ip[3], c->ip[2], c->ip[1], c->ip[0]);
        return;
    }
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
    for (int i = 15; i >= 0 && k + 4 < size; i--) {
        buf[k++] = hex[c->ip[i] & 15];
        buf[k++] = '.';
        buf[k++] = hex[c->ip[i] >> 4];
        buf[k++] = '.';
    }
    snprintf(buf + k, size - k, "ip6.arpa");
}

static bool has_addr(const struct spf_ctx *c, const struct dns_answer *a, uint16_t type)
{
    for (size_t i = 0; i < a->n; i++)
        if (rr_matches(c, &a->rr[i], type, c->family == AF_INET ? 32 : 128))
            return true;
    return false;
}

int spf_validated_names(struct spf_ctx *c)
{
    if (c->ptr_done)
        return SPF_STEP_OK;
    char rev[80];
    reverse_name(c, rev, sizeof rev);
    const struct dns_answer *ptr = spf_lookup(c, rev, DNS_T_PTR);
    if (ptr == NULL)
        return SPF_STEP_NEED;
    c->n_valid = 0;
    c->ptr_void = ptr->status == DNS_NXDOMAIN ||
                  (!dns_error(ptr) && count_type(ptr, DNS_T_PTR) == 0);
    uint16_t type = addr_type(c);
    bool pending = false;
    size_t seen = 0;
    for (size_t i = 0; !dns_error(ptr) && i < ptr->n && seen < SPF_PTR_MAX; i++) {
        const struct dns_rr *rr = &ptr->rr[i];
        if (rr->type != DNS_T_PTR)
            continue;
        seen++; /* only the first 10 names count (§4.6.4) */
        if (rr->name == NULL || !spf_name_ok(rr->name))
            continue;
        const struct dns_answer *a = spf_lookup(c, rr->name, type);
        if (a == NULL) {
            pending = true;
            continue;
        }
        if (!dns_error(a) && has_addr(c, a, type)) /* a DNS error skips the name (§5.5) */
            snprintf(c->valid[c->n_valid++], SPF_NAME_BUF, "%s", rr->name);
    }
    if (pending) {
        c->n_valid = 0;
        return SPF_STEP_NEED;
    }
    c->ptr_done = true;
    return SPF_STEP_OK;
}

static int mech_ptr(struct spf_ctx *c, const char *name)
{
    if (spf_validated_names(c) == SPF_STEP_NEED)
        return R_NEED;
    if (c->ptr_void) {
        int r = note_void(c);
        if (r)
            return r;
    }
    size_t n = strlen(name);
    for (size_t i = 0; i < c->n_valid; i++) {
        const char *v = c->valid[i];
        size_t m = strlen(v);
        if (strcasecmp(v, name) == 0 ||
            (m > n && v[m - n - 1] == '.' && strcasecmp(v + m - n, name) == 0))
            return M_MATCH;
    }
    return M_NOMATCH;
}

static int mech_exists(struct spf_ctx *c, const char *name)
{
    const struct dns_answer *a;
    int r = term_lookup(c, name, DNS_T_A, &a); /* A even for IPv6 clients (§5.7) */
    return r != 0 ? r : M_MATCH;
}

static int check_host(struct spf_ctx *c, const char *domain, int depth, bool top);

static int mech_include(struct spf_ctx *c, const char *name, int depth)
{
    int r = check_host(c, name, depth + 1, false);
    switch (r) {
    case SPF_PASS:
        return M_MATCH;
    case SPF_FAIL:
    case SPF_SOFTFAIL:
    case SPF_NEUTRAL:
        return M_NOMATCH;
    case SPF_NONE:
        c->out->problem[0] = '\0';
        return why(c, SPF_PERMERROR, "include:%s has no SPF record", name);
    default:
        return r; /* temperror, permerror, R_NEED (§5.2 table) */
    }
}

static int eval_mech(struct spf_ctx *c, const struct term *t, const char *domain, int depth)
{
    if (t->mech == MECH_ALL)
        return M_MATCH;
    if (t->mech == MECH_IP4)
        return c->family == AF_INET && cidr_match(c->ip, t->net, t->cidr4) ? M_MATCH : M_NOMATCH;
    if (t->mech == MECH_IP6)
        return c->family == AF_INET6 && cidr_match(c->ip, t->net, t->cidr6) ? M_MATCH : M_NOMATCH;
    int r = count_lookup(c);
    if (r != 0)
        return r;
    char name[SPF_NAME_BUF];
    r = target(c, t, domain, name);
    if (r == SPF_STEP_NEED)
        return R_NEED;
    if (r == SPF_STEP_BAD) /* not a name DNS can ask: nothing there (§4.3, §4.8) */
        return t->mech == MECH_INCLUDE
                   ? why(c, SPF_PERMERROR, "include target \"%.*s\" is not a valid domain",
                         (int)t->spec_len, t->spec)
                   : M_NOMATCH;
    switch (t->mech) {
    case MECH_A:
        return mech_a(c, t, name);
    case MECH_MX:
        return mech_mx(c, t, name);
    case MECH_PTR:
        return mech_ptr(c, name);
    case MECH_EXISTS:
        return mech_exists(c, name);
    default:
        return mech_include(c, name, depth);
    }
}

/* ---- check_host() ---- */

static enum spf_result qualifier_result(char q)
{
    switch (q) {
    case '-': return SPF_FAIL;
    case '~': return SPF_SOFTFAIL;
    case '?': return SPF_NEUTRAL;
    default: return SPF_PASS;
    }
}

/* §6.2: the explanation of a fail; any problem just leaves it empty. */
static int explain(struct spf_ctx *c, const struct term *exp, const char *domain)
{
    char name[SPF_NAME_BUF];
    int r = spf_expand_domain(c, exp->spec, exp->spec_len, domain, name);
    if (r == SPF_STEP_NEED)
        return R_NEED;
    if (r != SPF_STEP_OK)
        return 0;
    const struct dns_answer *a = spf_lookup(c, name, DNS_T_TXT); /* not a counted lookup */
    if (a == NULL)
        return R_NEED;
    if (a->status != DNS_OK || count_type(a, DNS_T_TXT) != 1)
        return 0;
    const struct dns_rr *rr = a->rr;
    while (rr->type != DNS_T_TXT)
        rr++;
    const char *text = (const char *)rr->data;
    if (rr->len > SPF_RECORD_MAX || !spf_macro_syntax(text, rr->len, true))
        return 0;
    r = spf_expand_text(c, text, rr->len, domain, c->out->explanation,
                        sizeof c->out->explanation);
    if (r == SPF_STEP_NEED)
        return R_NEED;
    if (r != SPF_STEP_OK)
        c->out->explanation[0] = '\0';
    return 0;
}

static int redirect_to(struct spf_ctx *c, const struct term *t, const char *domain, int depth,
                       bool top)
{
    int r = count_lookup(c);
    if (r != 0)
        return r;
    char name[SPF_NAME_BUF];
    r = spf_expand_domain(c, t->spec, t->spec_len, domain, name);
    if (r == SPF_STEP_NEED)
        return R_NEED;
    if (r != SPF_STEP_OK)
        return why(c, SPF_PERMERROR, "redirect target \"%.*s\" is not a valid domain",
                   (int)t->spec_len, t->spec);
    r = check_host(c, name, depth + 1, top);
    if (r == SPF_NONE) { /* §6.1 */
        c->out->problem[0] = '\0';
        return why(c, SPF_PERMERROR, "redirect=%s has no SPF record", name);
    }
    return r;
}

static void note_term(struct spf_ctx *c, const struct term *t, bool top)
{
    if (top)
        copy_clean(c->out->mechanism, sizeof c->out->mechanism, t->text, t->len);
}

/* check_host() for domain (a valid name without a final dot).  top: this
 * record speaks for the checked domain (its exp= counts, its deciding term
 * is reported); includes are not top. */
static int check_host(struct spf_ctx *c, const char *domain, int depth, bool top)
{
    if (depth > DEPTH_MAX)
        return why(c, SPF_PERMERROR, "include/redirect nested too deep");
    const char *rec = NULL;
    size_t len = 0;
    int r = select_record(c, domain, &rec, &len);
    if (r != R_FOUND)
        return r;
    struct term redirect = {0}, exp = {0};
    r = check_syntax(c, domain, rec, len, &redirect, &exp);
    if (r != 0)
        return r;
    size_t pos = 6;
    const char *t;
    size_t n;
    while (next_term(rec, len, &pos, &t, &n)) {
        struct term term;
        parse_term(t, n, &term); /* well formed: check_syntax() said so */
        if (term.kind != TERM_MECH)
            continue;
        r = eval_mech(c, &term, domain, depth);
        if (r == M_NOMATCH)
            continue;
        if (r == R_NEED)
            return R_NEED;
        note_term(c, &term, top);
        if (r != M_MATCH)
            return r; /* temperror or permerror */
        r = qualifier_result(term.qual);
        if (r == SPF_FAIL && top && exp.text != NULL && explain(c, &exp, domain) == R_NEED)
            return R_NEED;
        return r;
    }
    if (redirect.text != NULL) /* only when no mechanism matched (§6.1) */
        return redirect_to(c, &redirect, domain, depth, top);
    return SPF_NEUTRAL; /* §4.7 */
}

/* ---- the request ---- */

/* §4.3: <domain> must be a multi-label name with labels of 1 to 63
 * letters, digits, hyphens (and underscores, seen in the wild). */
static bool initial_domain_ok(const char *d, size_t n)
{
    size_t label = 0, labels = 1, last = 0;
    if (n == 0 || n > DNS_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = d[i];
        if (ch == '.') {
            if (label == 0)
                return false;
            label = 0;
            labels++;
            last = i + 1;
            continue;
        }
        if (!name_char((unsigned char)ch) || ++label > 63)
            return false;
    }
    bool numeric = true; /* "1.2.3.4" is an address, not a domain */
    for (size_t i = last; i < n; i++)
        numeric = numeric && d[i] >= '0' && d[i] <= '9';
    return label > 0 && labels >= 2 && !numeric;
}

static void set_ip(struct spf_ctx *c, const struct spf_request *req)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    c->family = req->family == AF_INET ? AF_INET : AF_INET6;
    if (c->family == AF_INET6 && memcmp(req->ip, mapped, 12) == 0) {
        c->family = AF_INET; /* §5: an IPv4-mapped address is IPv4 */
        memcpy(c->ip, req->ip + 12, 4);
    } else {
        memcpy(c->ip, req->ip, c->family == AF_INET ? 4 : 16);
    }
}

/* Fill <sender> and find <domain>: true, or false (result none, §4.3)
 * when there is nothing to check. */
static bool set_identity(struct spf_ctx *c, const struct spf_request *req, char *domain)
{
    const char *helo = req->helo ? req->helo : "";
    const char *sender = req->sender ? req->sender : "";
    const char *receiver = req->receiver ? req->receiver : "";
    if (strlen(helo) > SPF_INPUT_MAX || strlen(sender) > SPF_INPUT_MAX ||
        strlen(receiver) > SPF_INPUT_MAX)
        return why(c, false, "identity too long");
    snprintf(c->helo, sizeof c->helo, "%s", helo);
    snprintf(c->receiver, sizeof c->receiver, "%s", receiver);
    const char *at = strrchr(sender, '@');
    if (req->identity == SPF_ID_HELO || sender[0] == '\0') {
        snprintf(c->sender, sizeof c->sender, "postmaster@%s", helo);
    } else if (at == NULL || at == sender) { /* no local-part: "postmaster" (§4.3) */
        snprintf(c->sender, sizeof c->sender, "postmaster@%s", at ? at + 1 : sender);
    } else {
        snprintf(c->sender, sizeof c->sender, "%s", sender);
    }
    at = strrchr(c->sender, '@');
    c->local_len = (size_t)(at - c->sender);
    c->domain_at = c->local_len + 1;
    const char *d = c->sender + c->domain_at;
    size_t n = strlen(d);
    if (n > 0 && d[n - 1] == '.')
        n--;
    if (!initial_domain_ok(d, n))
        return why(c, false, "\"%s\" is not a domain SPF can check", d);
    for (size_t i = 0; i < n; i++)
        domain[i] = (char)(d[i] >= 'A' && d[i] <= 'Z' ? d[i] - 'A' + 'a' : d[i]);
    domain[n] = '\0';
    return true;
}

int spf_check(struct dnsview *v, const struct spf_request *req, struct spf_outcome *out)
{
    struct spf_ctx c = {.v = v, .out = out, .now = req->now};
    char domain[SPF_NAME_BUF];
    memset(out, 0, sizeof *out);
    set_ip(&c, req);
    int r = SPF_NONE;
    if (set_identity(&c, req, domain)) {
        snprintf(out->domain, sizeof out->domain, "%s", domain);
        r = check_host(&c, domain, 0, true);
    }
    if (r == R_NEED || c.need) {
        memset(out, 0, sizeof *out);
        return MAILAUTH_NEED_DNS;
    }
    out->result = (enum spf_result)r;
    out->lookups = c.lookups;
    out->void_lookups = c.voids;
    return MAILAUTH_DONE;
}
