/* spf-macro.c — SPF macros (RFC 7208 §7): syntax and expansion.
 *
 *   macro-string = *( macro-expand / macro-literal )
 *   macro-expand = ( "%{" macro-letter transformers *delimiter "}" )
 *                  / "%%" / "%_" / "%-"
 *
 * One tokenizer serves the syntax checks and the expansion, so what is
 * accepted is exactly what can be expanded.  Expansion is bounded: a value
 * is at most SPF_INPUT_MAX-ish bytes, split into at most that many parts;
 * a domain name is built in a fixed window that keeps only its right end
 * (§7.3 cuts names from the left, so nothing else can matter); an
 * explanation stops growing at its buffer's size. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "mailauth/spf-internal.h"

#define VALUE_MAX (SPF_INPUT_MAX + 32) /* longest macro value (sender + "postmaster") */
#define NAME_WINDOW 1024               /* bytes of a domain expansion kept at once */
#define NAME_KEEP 512                  /* of which kept when the window is full */

struct mtok {
    bool macro;             /* "%{...}"; otherwise literal text */
    bool expand;            /* came from a macro-expand ("%{", "%%", "%_", "%-") */
    const char *lit;        /* literal text (not NUL-terminated) */
    size_t lit_len;
    char letter;            /* lowercase macro letter */
    bool upper;             /* URL-escape the value (§7.3) */
    unsigned keep;          /* rightmost parts to keep, 0: all */
    bool reverse;
    const char *delims;     /* delimiter characters; none means "." */
    size_t n_delims;
};

static bool is_alpha(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool is_digit(unsigned char ch)
{
    return ch >= '0' && ch <= '9';
}

static char lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

static bool letter_ok(char l, bool exp_text)
{
    if (l != '\0' && strchr("slodiphv", l) != NULL)
        return true;
    return exp_text && l != '\0' && strchr("crt", l) != NULL;
}

/* The "%{...}" body at s[i] (just past "%{"); *pos past the "}". */
static int read_macro(const char *s, size_t len, size_t i, bool exp_text, struct mtok *t,
                      size_t *pos)
{
    if (i >= len || !is_alpha((unsigned char)s[i]))
        return -1;
    t->macro = true;
    t->letter = lower(s[i]);
    t->upper = s[i] != t->letter;
    if (!letter_ok(t->letter, exp_text))
        return -1;
    i++;
    bool digits = false;
    while (i < len && is_digit((unsigned char)s[i])) {
        digits = true;
        t->keep = t->keep * 10 + (unsigned)(s[i] - '0');
        if (t->keep > 1000) /* more parts than any value has: the same as 1000 */
            t->keep = 1000;
        i++;
    }
    if (digits && t->keep == 0) /* "If a DIGIT is specified, the value MUST be nonzero" */
        return -1;
    if (i < len && (s[i] == 'r' || s[i] == 'R')) {
        t->reverse = true;
        i++;
    }
    t->delims = s + i;
    while (i < len && s[i] != '\0' && strchr(".-+,/_=", s[i]) != NULL)
        i++;
    t->n_delims = (size_t)(s + i - t->delims);
    if (i >= len || s[i] != '}')
        return -1;
    *pos = i + 1;
    return 1;
}

/* The token at s[*pos]: 1 (read, *pos advanced), 0 (end), -1 (syntax error). */
static int next_token(const char *s, size_t len, size_t *pos, bool exp_text, struct mtok *t)
{
    size_t i = *pos;
    memset(t, 0, sizeof *t);
    if (i >= len)
        return 0;
    if (s[i] != '%') {
        size_t j = i;
        for (; j < len && s[j] != '%'; j++) {
            unsigned char ch = (unsigned char)s[j];
            if ((ch < 0x21 || ch > 0x7e) && !(exp_text && ch == ' '))
                return -1;
        }
        t->lit = s + i;
        t->lit_len = j - i;
        *pos = j;
        return 1;
    }
    if (i + 1 >= len)
        return -1;
    t->expand = true;
    switch (s[i + 1]) {
    case '%':
        t->lit = "%", t->lit_len = 1;
        break;
    case '_':
        t->lit = " ", t->lit_len = 1;
        break;
    case '-':
        t->lit = "%20", t->lit_len = 3;
        break;
    case '{':
        return read_macro(s, len, i + 2, exp_text, t, pos);
    default:
        return -1;
    }
    *pos = i + 2;
    return 1;
}

bool spf_macro_syntax(const char *s, size_t len, bool exp_text)
{
    size_t pos = 0;
    struct mtok t;
    int r;
    while ((r = next_token(s, len, &pos, exp_text, &t)) == 1)
        ;
    return r == 0;
}

/* toplabel = ( *alphanum ALPHA *alphanum ) /
 *            ( 1*alphanum "-" *( alphanum / "-" ) alphanum ) */
static bool toplabel_ok(const char *l, size_t n)
{
    bool alpha = false, dash = false;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)l[i];
        if (is_alpha(ch))
            alpha = true;
        else if (ch == '-')
            dash = true;
        else if (!is_digit(ch))
            return false;
    }
    if (!dash)
        return alpha;
    return l[0] != '-' && l[n - 1] != '-';
}

bool spf_domain_spec_syntax(const char *s, size_t len)
{
    size_t pos = 0, tail = 0;
    struct mtok t;
    int r;
    if (len == 0)
        return false;
    while ((r = next_token(s, len, &pos, false, &t)) == 1)
        if (t.expand)
            tail = pos;
    if (r < 0)
        return false;
    if (tail == len) /* domain-end = macro-expand */
        return true;
    /* domain-end = "." toplabel [ "." ], inside the literal tail */
    size_t end = len;
    if (s[end - 1] == '.')
        end--;
    size_t dot = end;
    while (dot > tail && s[dot - 1] != '.')
        dot--;
    if (dot == tail) /* no "." in the literal tail */
        return false;
    return toplabel_ok(s + dot, end - dot);
}

bool spf_name_ok(const char *name)
{
    size_t n = strlen(name), label = 0;
    if (n == 0 || n > DNS_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        if (ch < 0x20 || ch > 0x7e || ch == '\\' || ++label > 63)
            return false;
    }
    return label > 0;
}

/* Where expanded text goes: a domain window or a bounded text. */
struct sink {
    char *buf;
    size_t size, len;
    size_t total;           /* characters produced, kept or not */
    bool domain;
};

static void put(struct sink *o, char ch)
{
    o->total++;
    if (o->len + 1 >= o->size) {
        if (!o->domain)
            return; /* explanation: cut */
        /* only the right end of a name survives §7.3's cut */
        memmove(o->buf, o->buf + o->len - NAME_KEEP, NAME_KEEP);
        o->len = NAME_KEEP;
    }
    if (!o->domain && (ch < 0x20 || ch > 0x7e))
        ch = '?';
    o->buf[o->len++] = ch;
}

static void put_escaped(struct sink *o, char ch, bool escape)
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned char u = (unsigned char)ch;
    /* unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~" (RFC 3986) */
    if (!escape || is_alpha(u) || is_digit(u) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
        put(o, ch);
        return;
    }
    put(o, '%');
    put(o, hex[u >> 4]);
    put(o, hex[u & 15]);
}

static bool is_subdomain(const char *name, const char *of)
{
    size_t n = strlen(name), m = strlen(of);
    return n > m && name[n - m - 1] == '.' && strcasecmp(name + n - m, of) == 0;
}

/* %{p}: the validated name equal to <domain>, else one under it, else any. */
static int value_p(struct spf_ctx *c, const char *domain, char *buf, size_t size)
{
    if (spf_validated_names(c) == SPF_STEP_NEED)
        return SPF_STEP_NEED;
    const char *v = NULL;
    for (size_t i = 0; i < c->n_valid && v == NULL; i++)
        if (strcasecmp(c->valid[i], domain) == 0)
            v = c->valid[i];
    for (size_t i = 0; i < c->n_valid && v == NULL; i++)
        if (is_subdomain(c->valid[i], domain))
            v = c->valid[i];
    if (v == NULL)
        v = c->n_valid > 0 ? c->valid[0] : "unknown";
    snprintf(buf, size, "%s", v);
    return SPF_STEP_OK;
}

static void value_ip(const struct spf_ctx *c, bool dotted, char *buf, size_t size)
{
    if (c->family == AF_INET) {
        snprintf(buf, size, "%u.%u.%u.%u", c->ip[0], c->ip[1], c->ip[2], c->ip[3]);
        return;
    }
    if (!dotted) { /* %{c}: the usual text form */
        inet_ntop(AF_INET6, c->ip, buf, (socklen_t)size);
        return;
    }
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
    for (int i = 0; i < 16 && k + 4 < size; i++) {
        buf[k++] = hex[c->ip[i] >> 4];
        buf[k++] = '.';
        buf[k++] = hex[c->ip[i] & 15];
        buf[k++] = '.';
    }
    buf[k > 0 ? k - 1 : 0] = '\0';
}

/* The value of macro letter l (§7.3) into buf. */
static int macro_value(struct spf_ctx *c, char l, const char *domain, char *buf, size_t size)
{
    switch (l) {
    case 's':
        snprintf(buf, size, "%s", c->sender);
        break;
    case 'l':
        snprintf(buf, size, "%.*s", (int)c->local_len, c->sender);
        break;
    case 'o':
        snprintf(buf, size, "%s", c->sender + c->domain_at);
        break;
    case 'd':
        snprintf(buf, size, "%s", domain);
        break;
    case 'i':
    case 'c':
        value_ip(c, l == 'i', buf, size);
        break;
    case 'p':
        return value_p(c, domain, buf, size);
    case 'v':
        snprintf(buf, size, "%s", c->family == AF_INET ? "in-addr" : "ip6");
        break;
    case 'h':
        snprintf(buf, size, "%s", c->helo);
        break;
    case 'r':
        snprintf(buf, size, "%s", c->receiver[0] ? c->receiver : "unknown");
        break;
    case 't':
        snprintf(buf, size, "%" PRId64, c->now);
        break;
    default:
        return SPF_STEP_BAD; /* the tokenizer lets no other letter through */
    }
    return SPF_STEP_OK;
}

/* Split value on the delimiters, reverse, keep the rightmost parts, join
 * with ".", escape if asked (§7.3). */
static void transform(const char *value, const struct mtok *t, struct sink *o)
{
    uint16_t start[VALUE_MAX + 1], plen[VALUE_MAX + 1];
    size_t n = 0, len = strlen(value), from = 0;
    const char *delims = t->n_delims ? t->delims : ".";
    size_t n_delims = t->n_delims ? t->n_delims : 1;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && memchr(delims, value[i], n_delims) == NULL)
            continue;
        start[n] = (uint16_t)from;
        plen[n] = (uint16_t)(i - from);
        n++;
        from = i + 1;
    }
    size_t skip = t->keep != 0 && t->keep < n ? n - t->keep : 0;
    for (size_t k = skip; k < n; k++) {
        size_t idx = t->reverse ? n - 1 - k : k;
        if (k > skip)
            put(o, '.');
        for (size_t j = 0; j < plen[idx]; j++)
            put_escaped(o, value[start[idx] + j], t->upper);
    }
}

static int expand(struct spf_ctx *c, const char *s, size_t len, const char *domain, bool exp_text,
                  struct sink *o)
{
    size_t pos = 0;
    struct mtok t;
    int r;
    while ((r = next_token(s, len, &pos, exp_text, &t)) == 1) {
        if (!t.macro) {
            for (size_t i = 0; i < t.lit_len; i++)
                put(o, t.lit[i]);
            continue;
        }
        char value[VALUE_MAX + 1];
        int step = macro_value(c, t.letter, domain, value, sizeof value);
        if (step != SPF_STEP_OK)
            return step;
        transform(value, &t, o);
        if (o->domain && o->total > SPF_EXPAND_MAX)
            return SPF_STEP_BAD; /* hostile: no real name is built from this much */
        if (!o->domain && o->len + 1 >= o->size)
            return SPF_STEP_OK; /* the explanation is full */
    }
    return r == 0 ? SPF_STEP_OK : SPF_STEP_BAD;
}

int spf_expand_domain(struct spf_ctx *c, const char *s, size_t len, const char *domain,
                      char name[SPF_NAME_BUF])
{
    char buf[NAME_WINDOW];
    struct sink o = {.buf = buf, .size = sizeof buf, .domain = true};
    int r = expand(c, s, len, domain, false, &o);
    if (r != SPF_STEP_OK)
        return r;
    size_t n = o.len, from = 0;
    if (n > 0 && buf[n - 1] == '.') /* a final dot is ignored for domains */
        n--;
    if (n > DNS_NAME_MAX) {
        /* remove labels from the left until at most 253 characters are left */
        from = n - DNS_NAME_MAX;
        while (from < n && buf[from - 1] != '.')
            from++;
        if (from == n)
            return SPF_STEP_BAD;
    }
    memcpy(name, buf + from, n - from);
    name[n - from] = '\0';
    return spf_name_ok(name) ? SPF_STEP_OK : SPF_STEP_BAD;
}

int spf_expand_text(struct spf_ctx *c, const char *s, size_t len, const char *domain, char *out,
                    size_t size)
{
    struct sink o = {.buf = out, .size = size};
    if (size == 0)
        return SPF_STEP_BAD;
    int r = expand(c, s, len, domain, true, &o);
    out[o.len] = '\0';
    return r;
}
