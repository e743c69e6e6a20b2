/* reply.c — bounded SMTP reply parser (see reply.h). */
#include "smtp/reply.h"

#include <string.h>

void smtp_reply_init(struct smtp_reply_parser *p)
{
    p->open = false;
    p->r.code = 0;
    p->r.enhanced[0] = '\0';
    p->r.text[0] = '\0';
    p->r.text_len = 0;
    p->r.n_lines = 0;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* 1..3 digits at s[*pos]; advances *pos. */
static bool digits(const char *s, size_t len, size_t *pos)
{
    size_t start = *pos;
    while (*pos < len && *pos - start < 4 && is_digit(s[*pos]))
        (*pos)++;
    return *pos > start && *pos - start <= 3;
}

size_t smtp_reply_enhanced(const char *s, size_t len, char *out)
{
    size_t pos;
    out[0] = '\0';
    if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    pos = 2;
    if (!digits(s, len, &pos) || pos >= len || s[pos] != '.')
        return 0;
    pos++;
    if (!digits(s, len, &pos) || (pos < len && s[pos] != ' '))
        return 0;
    memcpy(out, s, pos); /* at most 1+1+3+1+3 = 9 bytes */
    out[pos] = '\0';
    return pos;
}

/* The code of a reply line, or -1 when the line does not start with one:
 * "NNN" followed by ' ', '-' or the end; first digit 2..5, second 0..5. */
static int line_code(const char *line, size_t len)
{
    if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
        !is_digit(line[2]))
        return -1;
    if (len > 3 && line[3] != ' ' && line[3] != '-')
        return -1;
    return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

/* Append one line of text, whole or not at all, printable ASCII only. */
static void keep_text(struct smtp_reply *r, const char *s, size_t len)
{
    size_t sep = r->n_lines > 1 ? 1 : 0;
    if (r->text_len + sep + len >= sizeof r->text)
        return;
    if (sep)
        r->text[r->text_len++] = '\n';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        r->text[r->text_len++] = c == '\t' ? ' ' : (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    r->text[r->text_len] = '\0';
}

enum smtp_reply_result smtp_reply_feed(struct smtp_reply_parser *p, const char *line, size_t len,
                                       const char **error_r)
{
    struct smtp_reply *r = &p->r;
    int code = line_code(line, len);
    if (code < 0) {
        *error_r = "malformed reply line (no valid reply code)";
        return SMTP_REPLY_ERROR;
    }
    if (p->open && code != r->code) {
        *error_r = "malformed reply (code changes inside a multi-line reply)";
        return SMTP_REPLY_ERROR;
    }
    if (r->n_lines >= SMTP_REPLY_LINES_MAX) {
        *error_r = "malformed reply (too many lines)";
        return SMTP_REPLY_ERROR;
    }
    bool last = len == 3 || line[3] == ' ';
    const char *text = len > 4 ? line + 4 : "";
    size_t tlen = len > 4 ? len - 4 : 0;
    char enh[SMTP_ENHANCED_MAX];
    size_t n = smtp_reply_enhanced(text, tlen, enh);
    if (n > 0 && enh[0] == line[0] && (r->n_lines == 0 || strcmp(enh, r->enhanced) == 0)) {
        if (r->n_lines == 0)
            memcpy(r->enhanced, enh, sizeof enh);
        text += n;
        tlen -= n;
        if (tlen > 0) { /* the space after the code */
            text++;
            tlen--;
        }
    }
    r->code = code;
    r->n_lines++;
    keep_text(r, text, tlen);
    p->open = !last;
    return last ? SMTP_REPLY_DONE : SMTP_REPLY_MORE;
}

bool smtp_reply_line(const struct smtp_reply *r, size_t i, char *out, size_t outlen)
{
    const char *s = r->text, *end = r->text + r->text_len;
    if (outlen == 0)
        return false;
    for (; i > 0; i--) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        if (nl == NULL)
            return false;
        s = nl + 1;
    }
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}
