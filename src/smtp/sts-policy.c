/* sts-policy.c — MTA-STS TXT record and policy file parsers (see sts-policy.h) */
#include "smtp/sts-policy.h"

#include <ctype.h>
#include <string.h>

#include "smtp/client.h"

static bool is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* --- the TXT record (§3.1) --------------------------------------------------- */

#define STS_VERSION "v=STSv1"

bool sts_txt_is_sts(const char *txt, size_t len)
{
    size_t n = sizeof STS_VERSION - 1;
    return len >= n && memcmp(txt, STS_VERSION, n) == 0 &&
           (len == n || txt[n] == ';' || is_wsp(txt[n]));
}

/* sts-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
static bool ext_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 32 || !is_alnum(s[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
            return false;
    return true;
}

/* sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E): no space, ";" or "=" */
static bool txt_value_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == ';' || c == '=')
            return false;
    }
    return true;
}

/* One "name=value" field at s[0..n): false when malformed; an id is
 * copied into id and counted. */
static bool txt_field(const char *s, size_t n, char *id, unsigned *ids)
{
    const char *eq = memchr(s, '=', n);
    if (eq == NULL)
        return false;
    size_t nl = (size_t)(eq - s), vl = n - nl - 1;
    const char *v = eq + 1;
    if (!ext_name_ok(s, nl) || !txt_value_ok(v, vl))
        return false;
    if (nl != 2 || memcmp(s, "id", 2) != 0)
        return true;
    if (vl > STS_ID_MAX)
        return false;
    for (size_t i = 0; i < vl; i++)
        if (!is_alnum(v[i]))
            return false;
    memcpy(id, v, vl);
    id[vl] = '\0';
    (*ids)++;
    return true;
}

bool sts_txt_parse(const char *txt, size_t len, char *id)
{
    if (!sts_txt_is_sts(txt, len))
        return false;
    size_t i = sizeof STS_VERSION - 1;
    unsigned ids = 0, fields = 0;
    for (;;) {
        while (i < len && is_wsp(txt[i]))
            i++;
        if (i == len)
            break;
        if (txt[i++] != ';')
            return false;
        while (i < len && is_wsp(txt[i]))
            i++;
        if (i == len)
            break; /* a final delimiter */
        size_t start = i;
        while (i < len && txt[i] != ';' && !is_wsp(txt[i]))
            i++;
        if (!txt_field(txt + start, i - start, id, &ids))
            return false;
        fields++;
    }
    return fields > 0 && ids == 1;
}

/* --- the policy file (§3.2) ----------------------------------------------------- */

enum { SEEN_VERSION = 1, SEEN_MODE = 2, SEEN_MAX_AGE = 4 };

/* "mx" value: an optional "*." and a domain name of LDH labels. */
static bool mx_value(const char *v, size_t n, struct sts_policy *p)
{
    if (n == 0 || n > STS_NAME_MAX || p->n_mx == STS_MX_MAX)
        return false;
    size_t i = n >= 2 && v[0] == '*' && v[1] == '.' ? 2 : 0, label = 0;
    if (i == n)
        return false;
    for (; i < n; i++) {
        if (v[i] == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (is_alnum(v[i]) || v[i] == '-') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    if (label == 0)
        return false; /* a trailing dot or an empty label */
    char *out = p->mx[p->n_mx++];
    for (size_t k = 0; k < n; k++)
        out[k] = (char)tolower((unsigned char)v[k]);
    out[n] = '\0';
    return true;
}

static bool max_age_value(const char *v, size_t n, struct sts_policy *p)
{
    if (n == 0 || n > 10)
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    p->max_age = x > STS_MAX_AGE_MAX ? STS_MAX_AGE_MAX : (uint32_t)x;
    return true;
}

static bool mode_value(const char *v, size_t n, struct sts_policy *p)
{
    static const struct { const char *name; enum sts_mode mode; } modes[] = {
        {"none", STS_MODE_NONE}, {"testing", STS_MODE_TESTING}, {"enforce", STS_MODE_ENFORCE}};
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++)
        if (strlen(modes[i].name) == n && memcmp(modes[i].name, v, n) == 0) {
            p->mode = modes[i].mode;
            return true;
        }
    return false;
}

static bool is_key(const char *k, size_t n, const char *name)
{
    return strlen(name) == n && memcmp(k, name, n) == 0;
}

/* A once-only field seen for the first time? */
static bool first(unsigned *seen, unsigned bit)
{
    if (*seen & bit)
        return false;
    *seen |= bit;
    return true;
}

/* One non-blank line "key:" *WSP value, trailing WSP already removed. */
static bool policy_line(const char *s, size_t n, struct sts_policy *p, unsigned *seen)
{
    const char *colon = memchr(s, ':', n);
    if (colon == NULL)
        return false;
    size_t kl = (size_t)(colon - s), i = kl + 1;
    while (i < n && is_wsp(s[i]))
        i++;
    const char *v = s + i;
    size_t vl = n - i;
    if (is_key(s, kl, "version"))
        return first(seen, SEEN_VERSION) && vl == 5 && memcmp(v, "STSv1", 5) == 0;
    if (is_key(s, kl, "mode"))
        return first(seen, SEEN_MODE) && mode_value(v, vl, p);
    if (is_key(s, kl, "max_age"))
        return first(seen, SEEN_MAX_AGE) && max_age_value(v, vl, p);
    if (is_key(s, kl, "mx"))
        return mx_value(v, vl, p);
    return ext_name_ok(s, kl); /* an extension: ignored (§3.2) */
}

/* Printable ASCII and WSP only (sts-policy-vchar, sts-policy-ext-value). */
static bool line_chars_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 || c > 0x7e) && c != '\t')
            return false;
    }
    return true;
}

bool sts_policy_parse(const char *text, size_t len, struct sts_policy *p, const char **why)
{
    memset(p, 0, sizeof *p);
    *why = NULL;
    if (len > STS_POLICY_MAX) {
        *why = "the policy is too large";
        return false;
    }
    unsigned seen = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len, next = nl ? end + 1 : len;
        size_t start = i;
        if (end > start && text[end - 1] == '\r')
            end--;
        i = next;
        while (start < end && is_wsp(text[start]))
            start++;
        while (end > start && is_wsp(text[end - 1]))
            end--;
        if (end - start > STS_LINE_MAX || !line_chars_ok(text + start, end - start)) {
            *why = "a line is too long or holds control characters";
            return false;
        }
        if (end > start && !policy_line(text + start, end - start, p, &seen)) {
            *why = "a malformed, repeated or unknown-valued field";
            return false;
        }
    }
    if (seen != (SEEN_VERSION | SEEN_MODE | SEEN_MAX_AGE))
        *why = "version, mode or max_age is missing";
    else if (p->mode != STS_MODE_NONE && p->n_mx == 0)
        *why = "no mx pattern";
    return *why == NULL;
}

bool sts_policy_allows_mx(const struct sts_policy *p, const char *host)
{
    for (size_t i = 0; i < p->n_mx; i++)
        if (smtp_sts_mx_match(p->mx[i], host))
            return true;
    return false;
}

const char *sts_mode_name(enum sts_mode m)
{
    switch (m) {
    case STS_MODE_NONE: return "none";
    case STS_MODE_TESTING: return "testing";
    case STS_MODE_ENFORCE: return "enforce";
    }
    return "?";
}
