/* text.c — text/plain mail as a document (sm_html_from_text()).
 *
 * Every character is escaped; the text sits in one <pre> with
 * white-space:pre-wrap so that line breaks stay and long lines wrap.  URLs
 * starting with http:// or https:// after a non-word character become links;
 * trailing punctuation (".", ",", ")" without its "(", quotes, ...) is left
 * out of the link, as a reader expects.  Invalid UTF-8, NUL, controls but
 * tab and LF, and non-characters become U+FFFD, CR LF and lone CR become LF, which
 * is what the HTML parser would make of them: the result is a fixed point
 * of sm_html_sanitize(). */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "html/internal.h"

#define MAX_LINK 2048

/* Well-formed UTF-8 with LF line ends and no control but tab and LF. */
static void clean_text(const char *in, size_t len, struct sm_buf *out)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t i = 0;
    while (i < len) {
        size_t n;
        int32_t cp = html_utf8_decode(s + i, len - i, &n);
        if (cp == '\r') {
            sm_buf_append(out, "\n", 1);
            if (i + 1 < len && s[i + 1] == '\n')
                n = 2;
        } else if (cp < 0 || html_forbidden_cp(cp)) {
            sm_buf_append(out, "\xef\xbf\xbd", 3);
        } else {
            sm_buf_append(out, s + i, n);
        }
        i += n;
    }
}

static bool url_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("-._~:/?#[]@!$&'()*+,;=%", c) != NULL);
}

/* Length of the URL at s[i] (0 if none starts there). */
static size_t url_at(const char *s, size_t n, size_t i)
{
    size_t prefix;
    if (n - i >= 8 && strncasecmp(s + i, "https://", 8) == 0)
        prefix = 8;
    else if (n - i >= 7 && strncasecmp(s + i, "http://", 7) == 0)
        prefix = 7;
    else
        return 0;
    if (i > 0 && ((unsigned char)s[i - 1] >= 0x80 || url_char((unsigned char)s[i - 1])) &&
        strchr("([<\"'", s[i - 1]) == NULL)
        return 0; /* inside a word ("xhttp://") */
    size_t e = i + prefix;
    while (e < n && url_char((unsigned char)s[e]))
        e++;
    /* trailing punctuation, and a ')' that closes nothing in the URL */
    for (;;) {
        if (e > i + prefix && strchr(".,;:!?'*", s[e - 1]) != NULL) {
            e--;
            continue;
        }
        if (e > i + prefix && s[e - 1] == ')') {
            int open = 0;
            for (size_t k = i; k < e; k++)
                open += s[k] == '(' ? 1 : s[k] == ')' ? -1 : 0;
            if (open < 0) {
                e--;
                continue;
            }
        }
        break;
    }
    if (e == i + prefix || e - i > MAX_LINK)
        return 0;
    return e - i;
}

enum sm_html_status sm_html_from_text(const char *text, size_t len, struct sm_buf *out)
{
    sm_buf_init(out, SM_HTML_MAX_OUTPUT);
    if (len > SM_HTML_MAX_INPUT)
        return SM_HTML_TOO_LARGE;
    struct sm_buf clean;
    sm_buf_init(&clean, 0);
    clean_text(text, len, &clean);
    const char *s = sm_buf_str(&clean);
    size_t n = clean.len, run = 0;
    int rc = sm_buf_puts(out, "<!DOCTYPE html><html><head></head><body>"
                              "<pre style=\"white-space:pre-wrap;overflow-wrap:break-word\">\n");
    for (size_t i = 0; i < n && rc == 0;) {
        size_t l = (s[i] == 'h' || s[i] == 'H') ? url_at(s, n, i) : 0;
        if (l == 0) {
            i++;
            continue;
        }
        rc |= html_escape_text(out, s + run, i - run);
        rc |= sm_buf_puts(out, "<a href=\"");
        rc |= html_escape_attr(out, s + i, l);
        rc |= sm_buf_puts(out, "\" target=\"_blank\" rel=\"noopener noreferrer\">");
        rc |= html_escape_text(out, s + i, l);
        rc |= sm_buf_puts(out, "</a>");
        i += l;
        run = i;
    }
    if (rc == 0)
        rc |= html_escape_text(out, s + run, n - run);
    rc |= sm_buf_puts(out, "</pre></body></html>");
    sm_buf_free(&clean);
    if (rc != 0) {
        sm_buf_free(out);
        sm_buf_init(out, SM_HTML_MAX_OUTPUT);
        return SM_HTML_OUTPUT_TOO_LARGE;
    }
    return SM_HTML_OK;
}
