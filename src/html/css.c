/* css.c — the style="" filter.
 *
 * We do not parse CSS; we accept a declaration only when it is so plain
 * that no CSS parser can read it two ways.  The property must be on the
 * allow-list below (what mail needs to look like itself: colours, fonts,
 * text, box model, borders, tables, lists).  Left out on purpose: position,
 * top/left/..., z-index (overlays over the page), content, cursor,
 * behavior, -moz-binding, filter, background-image, list-style-image,
 * border-image, mask, animation, transition, custom properties, anything
 * vendor-specific.  The value may hold letters, digits, non-ASCII, space,
 * and # % . , - + /; quotes only in font-family and font, around letters,
 * digits, non-ASCII, space, '-' and '_' (font names); parentheses only right after rgb,
 * rgba, hsl, hsla or calc.  So no backslash escape, no comment (no '*'),
 * no ':' (no "javascript:"), no '@', no '{', no url(), expression(),
 * image-set(), attr(), var().  Declarations are split on ';' outside
 * quotes and parentheses, and written back normalised ("prop:value",
 * lowercase property, one space between tokens), which makes the filter
 * idempotent. */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "html/internal.h"

#define MAX_VALUE 512
#define MAX_NAME 32

static const char *const properties[] = {
    "background", "background-color", "border", "border-bottom", "border-bottom-color",
    "border-bottom-left-radius", "border-bottom-right-radius", "border-bottom-style",
    "border-bottom-width", "border-collapse", "border-color", "border-left", "border-left-color",
    "border-left-style", "border-left-width", "border-radius", "border-right",
    "border-right-color", "border-right-style", "border-right-width", "border-spacing",
    "border-style", "border-top", "border-top-color", "border-top-left-radius",
    "border-top-right-radius", "border-top-style", "border-top-width", "border-width",
    "box-sizing", "caption-side", "clear", "color", "direction", "display", "empty-cells",
    "float", "font", "font-family", "font-size", "font-stretch", "font-style", "font-variant",
    "font-weight", "height", "letter-spacing", "line-height", "list-style",
    "list-style-position", "list-style-type", "margin", "margin-bottom", "margin-left",
    "margin-right", "margin-top", "max-height", "max-width", "min-height", "min-width",
    "opacity", "overflow", "overflow-wrap", "overflow-x", "overflow-y", "padding",
    "padding-bottom", "padding-left", "padding-right", "padding-top", "table-layout",
    "text-align", "text-decoration", "text-decoration-color", "text-decoration-line",
    "text-decoration-style", "text-indent", "text-overflow", "text-transform",
    "vertical-align", "visibility", "white-space", "width", "word-break", "word-spacing",
    "word-wrap",
};

static const char *const functions[] = {"rgb", "rgba", "hsl", "hsla", "calc"};

static bool in_list(const char *s, size_t n, const char *const *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (strlen(list[i]) == n && strncasecmp(s, list[i], n) == 0)
            return true;
    return false;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static bool is_ident(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || (unsigned char)c >= 0x80;
}

/* The function name that ends just before '(' at v[at], if it is allowed. */
static bool allowed_function(const char *v, size_t at)
{
    size_t start = at;
    while (start > 0 && is_ident(v[start - 1]))
        start--;
    return at > start && in_list(v + start, at - start, functions, sizeof functions / sizeof *functions);
}

/* Check a value (without !important) and write it normalised to norm. */
static bool check_value(const char *v, size_t n, bool quotes_ok, char *norm, size_t *norm_len)
{
    size_t o = 0;
    int depth = 0;
    char quote = 0;
    bool space = false;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if ((unsigned char)c < 0x20 && !is_space(c))
            return false;
        if (quote != 0) {
            /* a font name: letters, digits, space, '-', '_' */
            if (c == quote)
                quote = 0;
            else if (!is_ident(c) && c != ' ' && c != '_')
                return false;
        } else if (is_space(c)) {
            space = o > 0;
            continue;
        } else if (c == '"' || c == '\'') {
            if (!quotes_ok)
                return false;
            quote = c;
        } else if (c == '(') {
            if (!allowed_function(v, i) || ++depth > 2)
                return false;
        } else if (c == ')') {
            if (--depth < 0)
                return false;
        } else if (!is_ident(c) && strchr("#%.,+/", c) == NULL) {
            return false;
        }
        if (space && o + 1 < MAX_VALUE)
            norm[o++] = ' ';
        space = false;
        if (o + 1 >= MAX_VALUE)
            return false;
        norm[o++] = c;
    }
    *norm_len = o;
    return quote == 0 && depth == 0 && o > 0;
}

/* One declaration "name: value [!important]"; append it if it passes. */
static int filter_declaration(const char *d, size_t n, struct sm_buf *out, unsigned *urls)
{
    const char *colon = memchr(d, ':', n);
    if (colon == NULL)
        return 0;
    size_t a = 0, b = (size_t)(colon - d);
    while (a < b && is_space(d[a]))
        a++;
    while (b > a && is_space(d[b - 1]))
        b--;
    char name[MAX_NAME];
    if (b - a == 0 || b - a >= MAX_NAME)
        return 0;
    for (size_t i = a; i < b; i++) {
        char c = d[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || c == '-'))
            return 0;
        name[i - a] = c;
    }
    name[b - a] = '\0';
    const char *v = colon + 1;
    size_t vn = n - (size_t)(v - d);
    for (size_t i = 0; i + 4 <= vn; i++)
        if (strncasecmp(v + i, "url(", 4) == 0) {
            (*urls)++;
            return 0;
        }
    if (!in_list(name, b - a, properties, sizeof properties / sizeof *properties))
        return 0;
    bool important = false;
    const char *bang = memchr(v, '!', vn);
    if (bang != NULL) {
        size_t r = (size_t)(bang - v) + 1, e = vn;
        while (e > r && is_space(v[e - 1]))
            e--;
        if (e - r != 9 || strncasecmp(v + r, "important", 9) != 0)
            return 0;
        important = true;
        vn = (size_t)(bang - v);
    }
    if (vn > MAX_VALUE)
        return 0;
    char norm[MAX_VALUE];
    size_t norm_len;
    bool quotes_ok = strcmp(name, "font-family") == 0 || strcmp(name, "font") == 0;
    if (!check_value(v, vn, quotes_ok, norm, &norm_len))
        return 0;
    if (out->len > 0 && sm_buf_puts(out, ";") < 0)
        return -1;
    if (sm_buf_printf(out, "%s:%.*s%s", name, (int)norm_len, norm, important ? " !important" : "") < 0)
        return -1;
    return 0;
}

int html_css_filter(const char *style, struct sm_buf *out, unsigned *url_count_r)
{
    *url_count_r = 0;
    size_t start = 0, i = 0;
    int depth = 0;
    char quote = 0;
    for (;; i++) {
        char c = style[i];
        if (c == '\0' || (c == ';' && quote == 0 && depth == 0)) {
            if (filter_declaration(style + start, i - start, out, url_count_r) < 0)
                return -1;
            if (c == '\0')
                return 0;
            start = i + 1;
        } else if (quote != 0) {
            if (c == quote)
                quote = 0;
        } else if (c == '"' || c == '\'') {
            quote = c;
        } else if (c == '(') {
            depth++;
        } else if (c == ')' && depth > 0) {
            depth--;
        }
    }
}
