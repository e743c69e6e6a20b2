/* authres.c — Authentication-Results fields, written and read (authres.h,
 * RFC 8601 §2.2, RFC 8617 §4.1.1).
 *
 * Writing happens in two passes: the field is first laid out on one line
 * in which every space is a place where it may be folded and "\n" marks a
 * place where it must be (before each resinfo); the second pass wraps
 * words to AUTHRES_FOLD columns by putting a CRLF before a space.  Folding
 * only ever inserts CRLF before existing whitespace, so it is correct
 * inside quoted strings and comments too, and unfolding gives back the
 * one-line form.  All text that is not ours has been cleaned before it is
 * laid out, so it holds no CR, LF or other control byte.
 *
 * Reading is a recursive-descent parser over the value with a cursor; the
 * strings it returns are copied (unquoted, lowercased where the RFC says
 * case does not matter) into one buffer owned by the result. */
#include "mailauth/authres.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"

#define NAME_MAX_LEN 64 /* keywords we write */

/* ---- writing ---- */

static bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Keyword (RFC 5321 Let-dig [Ldh-str]). */
static bool is_keyword(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > NAME_MAX_LEN || !is_alnum((unsigned char)s[0]) ||
        !is_alnum((unsigned char)s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum((unsigned char)s[i]) && s[i] != '-')
            return false;
    return true;
}

/* Length of the valid UTF-8 sequence at s (up to n bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        need = 1;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        need = 2;
        lo = s[0] == 0xe0 ? 0xa0 : 0x80;
        hi = s[0] == 0xed ? 0x9f : 0xbf;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        need = 3;
        lo = s[0] == 0xf0 ? 0x90 : 0x80;
        hi = s[0] == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (n <= need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k <= need; k++)
        if (s[k] < 0x80 || s[k] > 0xbf)
            return 0;
    return need + 1;
}

/* Copy s into dst (cap bytes with the NUL), keeping printable ASCII and
 * valid UTF-8 only, without the bytes in drop, cut at a character
 * boundary; runs of whitespace become one space, none at either end. */
static size_t clean(const char *s, const char *drop, char *dst, size_t cap)
{
    size_t o = 0, n = s != NULL ? strlen(s) : 0;
    bool space = false;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : utf8_len((const unsigned char *)s + i, n - i);
        if (len == 0 || (c < 0x80 && (c < 0x20 || c == 0x7f) && c != '\t') ||
            (c < 0x80 && strchr(drop, c) != NULL && c != '\0')) {
            i += len ? len : 1;
            continue;
        }
        if (c == ' ' || c == '\t') {
            space = o > 0;
            i++;
            continue;
        }
        if (o + (space ? 1 : 0) + len >= cap)
            break;
        if (space)
            dst[o++] = ' ';
        space = false;
        memcpy(dst + o, s + i, len);
        o += len;
        i += len;
    }
    dst[o] = '\0';
    return o;
}

/* RFC 2045 token character. */
static bool is_token_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

static bool is_atext(unsigned char c)
{
    return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL);
}

/* A value that may stay bare: a token, or (for property values, addr)
 * [dot-atom local-part] "@" domain. */
static bool is_bare(const char *v, bool addr)
{
    const char *at = strchr(v, '@');
    if (at == NULL || !addr) {
        for (const char *p = v; *p; p++)
            if (!is_token_char((unsigned char)*p))
                return false;
        return *v != '\0';
    }
    for (const char *p = v; p < at; p++)
        if (!is_atext((unsigned char)*p))
            return false;
    const char *d = at + 1;
    if (*d == '\0' || *d == '.')
        return false;
    for (; *d; d++)
        if (!is_alnum((unsigned char)*d) && *d != '-' && *d != '.' && *d != '_')
            return false;
    return true;
}

/* Lay out a value: bare when it can be, else a quoted-string. */
static int put_value(struct sm_buf *b, const char *raw, bool addr)
{
    char v[AUTHRES_VALUE_MAX + 1];
    clean(raw, "", v, sizeof v);
    if (is_bare(v, addr))
        return sm_buf_puts(b, v);
    if (sm_buf_puts(b, "\"") < 0)
        return -1;
    for (const char *p = v; *p; p++) {
        if ((*p == '"' || *p == '\\') && sm_buf_puts(b, "\\") < 0)
            return -1;
        if (sm_buf_append(b, p, 1) < 0)
            return -1;
    }
    return sm_buf_puts(b, "\"");
}

static int put_resinfo(struct sm_buf *b, const struct authres_result *r)
{
    if (sm_buf_printf(b, ";\n%s=%s", r->method, r->result) < 0)
        return -1;
    char c[AUTHRES_COMMENT_MAX + 1];
    if (clean(r->comment, "()\\", c, sizeof c) > 0 && sm_buf_printf(b, " (%s)", c) < 0)
        return -1;
    if (r->reason != NULL && (sm_buf_puts(b, " reason=") < 0 || put_value(b, r->reason, false) < 0))
        return -1;
    for (size_t i = 0; i < r->n_props; i++) {
        const struct authres_prop *p = &r->props[i];
        if (sm_buf_printf(b, " %s.%s=", p->ptype, p->property) < 0 ||
            put_value(b, p->value, true) < 0)
            return -1;
    }
    return 0;
}

static bool names_ok(const struct authres_result *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!is_keyword(r[i].method) || !is_keyword(r[i].result) ||
            r[i].n_props > AUTHRES_PROPS_MAX)
            return false;
        for (size_t k = 0; k < r[i].n_props; k++)
            if (!is_keyword(r[i].props[k].ptype) || !is_keyword(r[i].props[k].property))
                return false;
    }
    return true;
}

/* Wrap the one-line layout into out (see the top of this file). */
static int fold(const char *line, struct sm_buf *out)
{
    size_t col = 0;
    for (const char *p = line; *p;) {
        char sep = 0;
        if (*p == ' ' || *p == '\n')
            sep = *p++;
        size_t w = strcspn(p, " \n");
        if (sep == '\n') {
            if (sm_buf_puts(out, "\r\n\t") < 0)
                return -1;
            col = 8;
        } else if (sep == ' ' && col + 1 + w > AUTHRES_FOLD && col > 8) {
            if (sm_buf_puts(out, "\r\n ") < 0)
                return -1;
            col = 1;
        } else if (sep == ' ') {
            if (sm_buf_puts(out, " ") < 0)
                return -1;
            col++;
        }
        if (sm_buf_append(out, p, w) < 0)
            return -1;
        col += w;
        p += w;
    }
    return sm_buf_puts(out, "\r\n");
}

int authres_build(struct sm_buf *out, unsigned arc_instance, const char *authserv_id,
                  const struct authres_result *r, size_t n)
{
    if (arc_instance > 50 || n > AUTHRES_RESINFO_MAX || !names_ok(r, n))
        return -1;
    struct sm_buf line, folded;
    sm_buf_init(&line, AUTHRES_FIELD_MAX);
    sm_buf_init(&folded, AUTHRES_FIELD_MAX);
    int rc = arc_instance > 0
                 ? sm_buf_printf(&line, "ARC-Authentication-Results: i=%u; ", arc_instance)
                 : sm_buf_puts(&line, "Authentication-Results: ");
    char id[AUTHRES_VALUE_MAX + 1];
    if (clean(authserv_id, "", id, sizeof id) == 0)
        rc = -1;
    if (rc == 0)
        rc = put_value(&line, id, false);
    if (rc == 0 && n == 0)
        rc = sm_buf_puts(&line, "; none");
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = put_resinfo(&line, &r[i]);
    if (rc == 0)
        rc = fold(sm_buf_str(&line), &folded);
    if (rc == 0)
        rc = sm_buf_append(out, folded.data, folded.len);
    sm_buf_free(&line);
    sm_buf_free(&folded);
    return rc;
}

int authres_add_prop(struct authres_result *r, const char *ptype, const char *property,
                     const char *value)
{
    if (r->n_props >= AUTHRES_PROPS_MAX)
        return -1;
    r->props[r->n_props++] = (struct authres_prop){ptype, property, value};
    return 0;
}

/* ---- reading ---- */

struct parser {
    const char *s;
    size_t len, i;
    char *text;      /* decoded strings go here */
    size_t tlen;
    const char *error;
};

static bool at_end(const struct parser *p)
{
    return p->i >= p->len;
}

static char cur(const struct parser *p)
{
    return p->i < p->len ? p->s[p->i] : '\0';
}

static bool fail(struct parser *p, const char *error)
{
    if (p->error == NULL)
        p->error = error;
    return false;
}

/* [CFWS]: whitespace (folding CRLFs included) and nested comments. */
static bool skip_cfws(struct parser *p)
{
    int depth = 0;
    while (p->i < p->len) {
        char c = p->s[p->i];
        if (depth == 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '(')
            return true;
        p->i++;
        if (c == '(') {
            if (++depth > AUTHRES_COMMENT_DEPTH)
                return fail(p, "comments nested too deep");
        } else if (c == ')' && depth > 0) {
            depth--;
        } else if (c == '\\' && depth > 0) {
            if (p->i == p->len)
                return fail(p, "unterminated comment");
            p->i++;
        }
    }
    return depth == 0 || fail(p, "unterminated comment");
}

/* Start a string in the text buffer. */
static char *str_begin(struct parser *p)
{
    return p->text + p->tlen;
}

static void str_put(struct parser *p, char c)
{
    p->text[p->tlen++] = c;
}

static const char *str_end(struct parser *p, char *start)
{
    p->text[p->tlen++] = '\0';
    return start;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* A Keyword (letters, digits, "-"; "_" tolerated), lowercased. */
static const char *keyword(struct parser *p, const char *what)
{
    char *start = str_begin(p);
    size_t b = p->i;
    while (p->i < p->len && (is_alnum((unsigned char)p->s[p->i]) || p->s[p->i] == '-' ||
                             p->s[p->i] == '_'))
        str_put(p, lower(p->s[p->i++]));
    if (p->i == b) {
        fail(p, what);
        return NULL;
    }
    return str_end(p, start);
}

/* The text of a quoted-string (cursor on the opening quote), unescaped and
 * unfolded, appended to the current string. */
static bool quoted(struct parser *p)
{
    for (p->i++; p->i < p->len; p->i++) {
        char c = p->s[p->i];
        if (c == '"') {
            p->i++;
            return true;
        }
        if (c == '\\') {
            if (++p->i == p->len)
                break;
            c = p->s[p->i];
        } else if (c == '\r' || c == '\n') {
            continue; /* folding: the WSP after it stays */
        }
        str_put(p, c);
    }
    return fail(p, "unterminated quoted-string");
}

/* value: token or quoted-string. */
static const char *value(struct parser *p, const char *what)
{
    char *start = str_begin(p);
    if (cur(p) == '"') {
        if (!quoted(p))
            return NULL;
        return str_end(p, start);
    }
    size_t b = p->i;
    while (p->i < p->len && (is_token_char((unsigned char)p->s[p->i]) ||
                             (unsigned char)p->s[p->i] >= 0x80))
        str_put(p, p->s[p->i++]);
    if (p->i == b) {
        fail(p, what);
        return NULL;
    }
    return str_end(p, start);
}

/* A byte that may appear in a bare pvalue: RFC 8601 allows a token or
 * [local-part] "@" domain; local parts such as SRS addresses hold "=", "/"
 * and "?", so anything but CFWS, ";", quotes and backslashes is taken. */
static bool is_pvalue_char(unsigned char c)
{
    return c >= 0x80 || (c > 0x20 && c < 0x7f && strchr(";()\"\\", c) == NULL);
}

/* pvalue = [CFWS] ( value / [ [ local-part ] "@" ] domain-name ) [CFWS] */
static const char *pvalue(struct parser *p)
{
    if (!skip_cfws(p))
        return NULL;
    char *start = str_begin(p);
    size_t b = p->i;
    if (cur(p) == '"' && !quoted(p))
        return NULL;
    bool was_quoted = p->i != b;
    if (!was_quoted || cur(p) == '@') {
        size_t vb = p->i;
        while (p->i < p->len && is_pvalue_char((unsigned char)p->s[p->i]))
            str_put(p, p->s[p->i++]);
        if (!was_quoted && p->i == vb) {
            fail(p, "property without a value");
            return NULL;
        }
    }
    if (!skip_cfws(p))
        return NULL;
    return str_end(p, start);
}

static bool digits(struct parser *p, unsigned max, unsigned *out)
{
    size_t b = p->i;
    unsigned long v = 0;
    while (p->i < p->len && p->s[p->i] >= '0' && p->s[p->i] <= '9' && p->i - b < 9)
        v = v * 10 + (unsigned long)(p->s[p->i++] - '0');
    if (p->i == b || v > max || (cur(p) >= '0' && cur(p) <= '9'))
        return fail(p, "bad number");
    *out = (unsigned)v;
    return true;
}

static bool expect(struct parser *p, char c, const char *error)
{
    if (!skip_cfws(p))
        return false;
    if (cur(p) != c)
        return fail(p, error);
    p->i++;
    return skip_cfws(p);
}

/* propspec = ptype [CFWS] "." [CFWS] property [CFWS] "=" pvalue, the
 * ptype already read. */
static bool propspec(struct parser *p, struct authres_resinfo *ri, const char *ptype)
{
    if (ri->n_props == AUTHRES_PROPS_MAX)
        return fail(p, "too many properties");
    struct authres_pprop *pp = &ri->props[ri->n_props];
    pp->ptype = ptype;
    if (!expect(p, '.', "expected ptype.property"))
        return false;
    if ((pp->property = keyword(p, "expected a property")) == NULL)
        return false;
    if (!expect(p, '=', "expected = after the property"))
        return false;
    if ((pp->value = pvalue(p)) == NULL)
        return false;
    ri->n_props++;
    return true;
}

/* resinfo after its ";" and CFWS: methodspec [reasonspec] *propspec. */
static bool resinfo(struct parser *p, struct authres_resinfo *ri, const char *method)
{
    ri->method = method;
    if (!skip_cfws(p))
        return false;
    if (cur(p) == '/') {
        p->i++;
        if (!skip_cfws(p) || !digits(p, 99999999, &ri->method_version) || !skip_cfws(p))
            return false;
    }
    if (!expect(p, '=', "expected method=result"))
        return false;
    if ((ri->result = keyword(p, "expected a result")) == NULL || !skip_cfws(p))
        return false;
    while (!at_end(p) && cur(p) != ';') {
        const char *word = keyword(p, "expected a property or reason");
        if (word == NULL || !skip_cfws(p))
            return false;
        if (strcmp(word, "reason") == 0 && cur(p) == '=' && ri->reason == NULL &&
            ri->n_props == 0) {
            p->i++;
            if (!skip_cfws(p) || (ri->reason = value(p, "expected a reason")) == NULL ||
                !skip_cfws(p))
                return false;
            continue;
        }
        if (!propspec(p, ri, word))
            return false;
    }
    return true;
}

/* [CFWS] ["i=" N ";"] [CFWS] authserv-id [CFWS] */
static bool header_start(struct parser *p, bool arc, unsigned *instance, const char **id)
{
    if (!skip_cfws(p))
        return false;
    if (arc) {
        if (lower(cur(p)) != 'i')
            return fail(p, "expected i= first");
        p->i++;
        if (!expect(p, '=', "expected i=") || !digits(p, 50, instance) || *instance == 0 ||
            !expect(p, ';', "expected ; after i="))
            return false;
    }
    if ((*id = value(p, "expected an authserv-id")) == NULL)
        return false;
    return skip_cfws(p);
}

static bool payload(struct parser *p, bool arc, struct authres *a)
{
    if (!header_start(p, arc, &a->arc_instance, &a->authserv_id))
        return false;
    if (cur(p) >= '0' && cur(p) <= '9' && (!digits(p, 99999999, &a->version) || !skip_cfws(p)))
        return false;
    if (at_end(p))
        return fail(p, "no results and no \"none\"");
    while (!at_end(p)) {
        if (!expect(p, ';', "expected ;"))
            return false;
        if (at_end(p))
            break; /* a final ";", common in the field */
        const char *method = keyword(p, "expected a method");
        if (method == NULL || !skip_cfws(p))
            return false;
        if (strcmp(method, "none") == 0 && a->n == 0 && at_end(p))
            return true;
        if (a->n == AUTHRES_RESINFO_MAX)
            return fail(p, "too many results");
        if (!resinfo(p, &a->ri[a->n], method))
            return false;
        a->n++;
    }
    return true;
}

struct authres *authres_parse(const char *s, size_t len, bool arc, const char **error_r)
{
    if (len > AUTHRES_PARSE_MAX) {
        *error_r = "field too long";
        return NULL;
    }
    struct authres *a = sm_malloc(sizeof *a);
    /* every decoded string is no longer than its text, plus one NUL */
    a->text = sm_malloc(2 * len + 2);
    struct parser p = {.s = s, .len = len, .text = a->text};
    if (!payload(&p, arc, a)) {
        *error_r = p.error != NULL ? p.error : "malformed field";
        authres_free(&a);
        return NULL;
    }
    return a;
}

void authres_free(struct authres **ap)
{
    struct authres *a = *ap;
    if (a == NULL)
        return;
    free(a->text);
    free(a);
    *ap = NULL;
}

long authres_authserv_id(const char *s, size_t len, bool arc, char *out, size_t cap)
{
    if (len > AUTHRES_PARSE_MAX)
        return -1;
    unsigned instance = 0;
    const char *id = NULL;
    char *text = sm_malloc(2 * len + 2);
    struct parser p = {.s = s, .len = len, .text = text};
    long n = -1;
    if (header_start(&p, arc, &instance, &id) && strlen(id) < cap) {
        n = (long)strlen(id);
        memcpy(out, id, (size_t)n + 1);
    }
    free(text);
    return n;
}

bool authres_claims(const char *s, size_t len, bool arc, const char *authserv_id)
{
    char id[AUTHRES_VALUE_MAX + 1];
    return authres_authserv_id(s, len, arc, id, sizeof id) >= 0 &&
           strcasecmp(id, authserv_id) == 0;
}

const char *authres_prop_get(const struct authres_resinfo *ri, const char *ptype,
                             const char *property)
{
    for (size_t i = 0; i < ri->n_props; i++)
        if (strcasecmp(ri->props[i].ptype, ptype) == 0 &&
            strcasecmp(ri->props[i].property, property) == 0)
            return ri->props[i].value;
    return NULL;
}
