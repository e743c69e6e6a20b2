/* parse.c — SMTP command-line parsers (see parse.h).
 *
 * The grammar follows RFC 5321 §4.1.2 with RFC 6531's UTF-8 extensions,
 * leniently where real clients deviate harmlessly (a space after "FROM:",
 * any case), strictly where a deviation could be abused (lengths, control
 * characters, unbalanced brackets, quoted strings).  Replies are static so
 * a parse failure allocates nothing. */
#include "smtp/parse.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    enum smtp_verb verb;
} verbs[] = {
    {"HELO", SMTP_VERB_HELO}, {"EHLO", SMTP_VERB_EHLO}, {"MAIL", SMTP_VERB_MAIL},
    {"RCPT", SMTP_VERB_RCPT}, {"DATA", SMTP_VERB_DATA}, {"BDAT", SMTP_VERB_BDAT},
    {"RSET", SMTP_VERB_RSET}, {"NOOP", SMTP_VERB_NOOP}, {"QUIT", SMTP_VERB_QUIT},
    {"HELP", SMTP_VERB_HELP}, {"VRFY", SMTP_VERB_VRFY}, {"EXPN", SMTP_VERB_EXPN},
    {"STARTTLS", SMTP_VERB_STARTTLS}, {"AUTH", SMTP_VERB_AUTH},
};

enum smtp_verb smtp_parse_verb(const char *line, const char **args_r)
{
    size_t n = strcspn(line, " ");
    *args_r = line[n] == ' ' ? line + n + 1 : line + n;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (strlen(verbs[i].name) == n && strncasecmp(line, verbs[i].name, n) == 0)
            return verbs[i].verb;
    return SMTP_VERB_UNKNOWN;
}

static int fail(struct smtp_parse_error *err, const char *reply)
{
    err->reply = reply;
    return -1;
}

bool smtp_valid_utf8(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p;
        size_t n;
        unsigned min;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return false;
            p++;
            continue;
        }
        if ((c & 0xe0) == 0xc0)
            n = 1, min = 0x80, c &= 0x1f;
        else if ((c & 0xf0) == 0xe0)
            n = 2, min = 0x800, c &= 0x0f;
        else if ((c & 0xf8) == 0xf0)
            n = 3, min = 0x10000, c &= 0x07;
        else
            return false;
        if ((size_t)(end - p) <= n)
            return false;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (p[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff) || (c >= 0x80 && c < 0xa0))
            return false;
        p += n + 1;
    }
    return true;
}

/* sub-domain = Let-dig [Ldh-str], or a U-label when utf8 is allowed. */
static bool valid_domain(const char *d, size_t len, bool *utf8)
{
    if (len == 0 || len > SMTP_DOMAIN_MAX)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c == '.') {
            if (label == 0 || d[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (c >= 0x80) {
            *utf8 = true;
        } else if (!isalnum(c) && !(c == '-' && label > 0)) {
            return false;
        }
        if (++label > 63)
            return false;
    }
    return label > 0 && d[len - 1] != '-' && (!*utf8 || smtp_valid_utf8(d, len));
}

static bool valid_address_literal(const char *d, size_t len)
{
    if (len < 3 || d[0] != '[' || d[len - 1] != ']')
        return false;
    for (size_t i = 1; i < len - 1; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c <= ' ' || c >= 0x7f || c == '[' || c == ']' || c == '\\')
            return false;
    }
    return true;
}

/* Dot-string or quoted-string local part, RFC 5321 §4.1.2 + RFC 6531. */
static bool valid_local(const char *l, size_t len, bool *utf8)
{
    if (len == 0 || len > SMTP_LOCAL_MAX)
        return false;
    if (l[0] == '"') {
        if (len < 2 || l[len - 1] != '"')
            return false;
        for (size_t i = 1; i < len - 1; i++) {
            unsigned char c = (unsigned char)l[i];
            if (c == '\\') {
                if (++i >= len - 1 || l[i] < ' ' || l[i] == 0x7f)
                    return false;
            } else if (c == '"' || c < ' ' || c == 0x7f) {
                return false;
            } else if (c >= 0x80) {
                *utf8 = true;
            }
        }
    } else {
        static const char atext[] = "!#$%&'*+-/=?^_`{|}~";
        if (l[0] == '.' || l[len - 1] == '.')
            return false;
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)l[i];
            if (c == '.' && l[i + 1] == '.')
                return false;
            if (c >= 0x80)
                *utf8 = true;
            else if (!isalnum(c) && c != '.' && strchr(atext, c) == NULL)
                return false;
        }
    }
    return !*utf8 || smtp_valid_utf8(l, len);
}

/* Strip an RFC 5321 source route "@a,@b:" from the front of a path. */
static const char *skip_source_route(const char *p, const char *end)
{
    if (*p != '@')
        return p;
    const char *colon = memchr(p, ':', (size_t)(end - p));
    return colon ? colon + 1 : NULL;
}

/* Find the '@' separating local part and domain, outside quotes. */
static const char *find_at(const char *p, const char *end)
{
    const char *at = NULL;
    bool quoted = false;
    for (; p < end; p++) {
        if (quoted && *p == '\\' && p + 1 < end)
            p++;
        else if (*p == '"')
            quoted = !quoted;
        else if (*p == '@' && !quoted)
            at = p;
    }
    return at;
}

static int parse_mailbox(const char *p, const char *end, struct smtp_path *path,
                         struct smtp_parse_error *err)
{
    size_t len = (size_t)(end - p);
    if (len > SMTP_PATH_MAX)
        return fail(err, "501 5.1.3 Address too long");
    const char *at = find_at(p, end);
    if (at == NULL) {
        if (len == 10 && strncasecmp(p, "postmaster", 10) == 0) {
            strcpy(path->address, "postmaster"); /* @UNSAFE: fits, checked above */
            return 0;
        }
        return fail(err, "501 5.1.3 Address must have a domain");
    }
    size_t llen = (size_t)(at - p), dlen = (size_t)(end - at - 1);
    if (!valid_local(p, llen, &path->utf8))
        return fail(err, "501 5.1.3 Bad local part in address");
    if (!valid_address_literal(at + 1, dlen) && !valid_domain(at + 1, dlen, &path->utf8))
        return fail(err, "501 5.1.3 Bad domain in address");
    memcpy(path->address, p, len);
    path->address[len] = '\0';
    for (size_t i = 0; i < dlen; i++)
        path->domain[i] = (char)tolower((unsigned char)at[1 + i]);
    path->domain[dlen] = '\0';
    return 0;
}

static int parse_params(char *p, struct smtp_path *path, struct smtp_parse_error *err)
{
    while (*p == ' ')
        p++;
    while (*p != '\0') {
        if (path->n_params == SMTP_PARAMS_MAX)
            return fail(err, "501 5.5.4 Too many parameters");
        char *key = p;
        p += strcspn(p, " ");
        if (*p == ' ')
            *p++ = '\0';
        while (*p == ' ')
            p++;
        char *eq = strchr(key, '=');
        if (eq != NULL)
            *eq++ = '\0';
        if (*key == '\0' || (eq != NULL && *eq == '\0'))
            return fail(err, "501 5.5.4 Malformed parameter");
        for (char *k = key; *k; k++)
            if (!isalnum((unsigned char)*k) && *k != '-')
                return fail(err, "501 5.5.4 Malformed parameter name");
        path->param_key[path->n_params] = key;
        path->param_value[path->n_params++] = eq;
    }
    return 0;
}

int smtp_parse_path(char *args, const char *prefix, bool allow_null, struct smtp_path *path,
                    struct smtp_parse_error *err)
{
    size_t plen = strlen(prefix);
    memset(path, 0, sizeof *path);
    if (strncasecmp(args, prefix, plen) != 0)
        return fail(err, plen == 5 ? "501 5.5.4 Syntax: MAIL FROM:<address>"
                                   : "501 5.5.4 Syntax: RCPT TO:<address>");
    char *p = args + plen;
    if (*p == ' ')
        p++;
    if (*p != '<')
        return fail(err, "501 5.1.7 Address must be enclosed in <>");
    char *close = NULL;
    bool quoted = false;
    for (char *q = p + 1; *q; q++) {
        if (quoted && *q == '\\' && q[1] != '\0')
            q++;
        else if (*q == '"')
            quoted = !quoted;
        else if (*q == '>' && !quoted) {
            close = q;
            break;
        }
    }
    if (close == NULL)
        return fail(err, "501 5.1.7 Missing > after address");
    if (close == p + 1) {
        if (!allow_null)
            return fail(err, "501 5.1.3 Null address not allowed here");
    } else {
        const char *start = skip_source_route(p + 1, close);
        if (start == NULL || start >= close)
            return fail(err, "501 5.1.3 Bad source route");
        if (parse_mailbox(start, close, path, err) < 0)
            return -1;
    }
    if (close[1] != '\0' && close[1] != ' ')
        return fail(err, "501 5.5.4 Junk after address");
    return parse_params(close + 1, path, err);
}

int smtp_parse_helo(const char *args, struct smtp_parse_error *err)
{
    size_t len = strcspn(args, " ");
    bool utf8 = false;
    if (len == 0)
        return fail(err, "501 5.5.4 Syntax: EHLO hostname");
    if (!valid_address_literal(args, len) && !valid_domain(args, len, &utf8))
        return fail(err, "501 5.5.4 Invalid domain name in EHLO/HELO");
    return 0;
}

int smtp_parse_size(const char *text, uint64_t *size_r)
{
    uint64_t v = 0;
    if (*text == '\0' || strlen(text) > 19)
        return -1;
    for (const char *p = text; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *size_r = v;
    return 0;
}

int smtp_parse_bdat(const char *args, uint64_t *size_r, bool *last_r,
                    struct smtp_parse_error *err)
{
    char num[24];
    size_t n = strcspn(args, " ");
    if (n == 0 || n >= sizeof num)
        return fail(err, "501 5.5.4 Syntax: BDAT size [LAST]");
    memcpy(num, args, n);
    num[n] = '\0';
    if (smtp_parse_size(num, size_r) < 0)
        return fail(err, "501 5.5.4 Syntax: BDAT size [LAST]");
    const char *rest = args + n;
    while (*rest == ' ')
        rest++;
    *last_r = strcasecmp(rest, "LAST") == 0;
    if (*rest != '\0' && !*last_r)
        return fail(err, "501 5.5.4 Syntax: BDAT size [LAST]");
    return 0;
}
