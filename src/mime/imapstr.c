/* imapstr.c — IMAP strings for ENVELOPE and BODYSTRUCTURE (see mime.h).
 *
 * RFC 9051 §4.3: a quoted string may hold any 7-bit character except CR,
 * LF and NUL, with " and \ escaped; anything else needs a literal
 * {n}\r\n<bytes> (NUL is never passed in: header values have it replaced).
 * Like Dovecot, a string with more than four characters to escape is also
 * sent as a literal, which is then no longer than the quoted form, and
 * text for humans (subjects, display names) is normalised: white space
 * runs become one space, the ends are trimmed, and any such change (or a
 * " or \ in it) selects a literal of the normalised text. */
#include "mime/internal.h"

#include <string.h>

#include "core/mem.h"

#define QUOTED_ESCAPES_MAX 4

static void literal(struct sm_buf *b, const char *s, size_t len)
{
    sm_buf_printf(b, "{%zu}\r\n", len);
    sm_buf_append(b, s, len);
}

static void quoted(struct sm_buf *b, const char *s)
{
    sm_buf_append(b, "\"", 1);
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            sm_buf_append(b, "\\", 1);
        sm_buf_append(b, s, 1);
    }
    sm_buf_append(b, "\"", 1);
}

void imap_string(struct sm_buf *b, const char *s)
{
    unsigned escapes = 0;
    for (const char *c = s; *c != '\0'; c++) {
        unsigned char ch = (unsigned char)*c;
        if (ch == '\r' || ch == '\n' || ch >= 0x80 ||
            ((ch == '"' || ch == '\\') && ++escapes > QUOTED_ESCAPES_MAX)) {
            literal(b, s, strlen(s));
            return;
        }
    }
    quoted(b, s);
}

void imap_nstring(struct sm_buf *b, const char *s)
{
    if (s == NULL)
        sm_buf_puts(b, "NIL");
    else
        imap_string(b, s);
}

void imap_nstring_nolf(struct sm_buf *b, const char *s)
{
    if (s == NULL || strpbrk(s, "\r\n") == NULL) {
        imap_nstring(b, s);
        return;
    }
    /* drop the line breaks; keep words apart where a line did not start
     * with a blank */
    char *copy = sm_malloc(2 * strlen(s) + 1), *o = copy; /* @UNSAFE: at most 2 per byte */
    for (const char *c = s; *c != '\0'; c++) {
        if (*c != '\r' && *c != '\n')
            *o++ = *c;
        else if (c[1] != ' ' && c[1] != '\t' && c[1] != '\r' && c[1] != '\n' && c[1] != '\0')
            *o++ = ' ';
    }
    *o = '\0';
    imap_string(b, copy);
    sm_freep(&copy);
}

static bool lwsp(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* s with white space runs collapsed to one space and the ends trimmed;
 * *changed tells whether that (or a special or 8-bit byte) calls for a
 * literal. */
static char *humanise(const char *s, bool *changed)
{
    size_t len = strlen(s);
    char *out = sm_malloc(len + 1), *o = out;
    bool space = false;
    *changed = false;
    for (const char *c = s; *c != '\0'; c++) {
        if (lwsp(*c)) {
            if (*c != ' ' || space || o == out)
                *changed = true;
            space = true;
            continue;
        }
        if (*c == '"' || *c == '\\' || (unsigned char)*c >= 0x80)
            *changed = true;
        if (space && o != out)
            *o++ = ' ';
        space = false;
        *o++ = *c;
    }
    if (space && len > 0)
        *changed = true;
    *o = '\0';
    return out;
}

void imap_nstring_humans(struct sm_buf *b, const char *s)
{
    if (s == NULL) {
        sm_buf_puts(b, "NIL");
        return;
    }
    bool changed;
    char *h = humanise(s, &changed);
    if (!changed)
        quoted(b, h);
    else if (*h == '\0')
        sm_buf_puts(b, "\"\"");
    else
        literal(b, h, strlen(h));
    sm_freep(&h);
}

/* ---- syntax check of our own output (tests and fuzzer) ---- */

enum prev { P_START, P_OPEN, P_CLOSE, P_SPACE, P_ITEM };

/* Skip the quoted string at s[*i]; false if malformed. */
static bool check_quoted(const char *s, size_t len, size_t *i)
{
    for ((*i)++; *i < len; (*i)++) {
        unsigned char c = (unsigned char)s[*i];
        if (c == '"') {
            (*i)++;
            return true;
        }
        if (c == '\r' || c == '\n' || c == '\0' || c >= 0x80)
            return false;
        if (c == '\\' && (*i + 1 >= len || (s[*i + 1] != '"' && s[*i + 1] != '\\')))
            return false;
        if (c == '\\')
            (*i)++;
    }
    return false;
}

/* Skip the literal {n}\r\n<n bytes> at s[*i]; false if malformed. */
static bool check_literal(const char *s, size_t len, size_t *i)
{
    size_t n = 0, j = *i + 1;
    if (j >= len || s[j] < '0' || s[j] > '9')
        return false;
    for (; j < len && s[j] >= '0' && s[j] <= '9'; j++) {
        if (n > len)
            return false;
        n = n * 10 + (size_t)(s[j] - '0');
    }
    if (j + 3 > len || s[j] != '}' || s[j + 1] != '\r' || s[j + 2] != '\n' || n > len - j - 3)
        return false;
    if (memchr(s + j + 3, '\0', n) != NULL)
        return false;
    *i = j + 3 + n;
    return true;
}

/* Skip the atom at s[*i]: NIL or a number. */
static bool check_atom(const char *s, size_t len, size_t *i)
{
    size_t j = *i;
    while (j < len && ((s[j] >= 'A' && s[j] <= 'Z') || (s[j] >= '0' && s[j] <= '9')))
        j++;
    bool number = j > *i && strspn(s + *i, "0123456789") >= j - *i;
    bool nil = j - *i == 3 && memcmp(s + *i, "NIL", 3) == 0;
    *i = j;
    return number || nil;
}

bool imap_syntax_check(const char *s, size_t len, unsigned *top_items)
{
    enum prev prev = P_START;
    unsigned depth = 0;
    size_t i = 0;
    *top_items = 0;
    if (len == 0 || s[0] != '(')
        return false;
    while (i < len) {
        char c = s[i];
        if (c == ' ') {
            if (prev != P_ITEM && prev != P_CLOSE)
                return false;
            prev = P_SPACE;
            i++;
            continue;
        }
        if (c == ')') {
            if (prev == P_SPACE || depth == 0)
                return false;
            depth--;
            i++;
            prev = P_CLOSE;
            if (depth == 0)
                return i == len;
            continue;
        }
        if (c == '(' ? prev == P_ITEM : prev != P_OPEN && prev != P_SPACE)
            return false; /* items are separated by one space (lists may abut) */
        *top_items += depth == 1;
        if (c == '(') {
            depth++;
            i++;
            prev = P_OPEN;
            continue;
        }
        bool ok = c == '"'   ? check_quoted(s, len, &i)
                  : c == '{' ? check_literal(s, len, &i)
                             : check_atom(s, len, &i);
        if (!ok)
            return false;
        prev = P_ITEM;
    }
    return false;
}

/* --- reading an ENVELOPE back (SORT DISPLAYFROM/DISPLAYTO) ------------------------- */

/* The string item at s[*i] (quoted, literal or NIL) into *out (NULL for
 * NIL), *i past it; false if it is none. */
static bool read_nstring(const char *s, size_t len, size_t *i, char **out)
{
    size_t start = *i;
    *out = NULL;
    if (start < len && s[start] == '"') {
        if (!check_quoted(s, len, i))
            return false;
        char *v = sm_malloc(*i - start), *o = v;
        for (size_t j = start + 1; j + 1 < *i; j++) {
            if (s[j] == '\\')
                j++;
            *o++ = s[j];
        }
        *o = '\0';
        *out = v;
        return true;
    }
    if (start < len && s[start] == '{') {
        if (!check_literal(s, len, i))
            return false;
        const char *body = (const char *)memchr(s + start, '\n', *i - start) + 1;
        *out = sm_strndup(body, (size_t)(s + *i - body));
        return true;
    }
    return check_atom(s, len, i) && *i - start == 3;
}

/* Skip one item at s[*i] (string, atom or list), bounded by the depth. */
static bool skip_item(const char *s, size_t len, size_t *i, unsigned depth)
{
    if (*i >= len || depth > 8)
        return false;
    if (s[*i] == '"')
        return check_quoted(s, len, i);
    if (s[*i] == '{')
        return check_literal(s, len, i);
    if (s[*i] != '(')
        return check_atom(s, len, i);
    for ((*i)++; *i < len && s[*i] != ')';) {
        if (!skip_item(s, len, i, depth + 1))
            return false;
        if (*i < len && s[*i] == ' ')
            (*i)++;
    }
    if (*i >= len)
        return false;
    (*i)++;
    return true;
}

char *mime_envelope_display(const char *envelope, unsigned field)
{
    size_t len = strlen(envelope), i = 1;
    char *v[4] = {NULL, NULL, NULL, NULL};
    if (len == 0 || envelope[0] != '(')
        return sm_strdup("");
    for (unsigned f = 0; f < field; f++) /* date, subject, from, ... */
        if (!skip_item(envelope, len, &i, 0) || i >= len || envelope[i++] != ' ')
            return sm_strdup("");
    /* the first address: "((" name adl mailbox host ")" */
    bool ok = i + 1 < len && envelope[i] == '(' && envelope[i + 1] == '(';
    i += 2;
    for (unsigned k = 0; k < 4 && ok; k++) {
        ok = read_nstring(envelope, len, &i, &v[k]) &&
             (k == 3 || (i < len && envelope[i++] == ' '));
    }
    char *key = NULL;
    if (ok && v[0] != NULL) { /* RFC 5957 §3: the decoded name, when not empty */
        struct analysis a;
        analysis_begin(&a, NULL, 0);
        key = text_decode_header(&a, v[0]);
        analysis_end(&a);
        if (key[0] == '\0')
            sm_freep(&key);
    }
    if (key == NULL && ok && v[2] != NULL && v[3] != NULL) {
        key = sm_malloc(strlen(v[2]) + strlen(v[3]) + 2);
        sprintf(key, "%s@%s", v[2], v[3]);
    } else if (key == NULL && ok && v[2] != NULL)
        key = sm_strdup(v[2]);
    for (unsigned k = 0; k < 4; k++)
        sm_freep(&v[k]);
    return key != NULL ? key : sm_strdup("");
}
