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
