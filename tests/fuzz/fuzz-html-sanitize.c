/* fuzz-html-sanitize.c — the HTML mail sanitiser and text-to-HTML.
 *
 * The first byte picks the mode (bit 0: allow remote images; bit 1: plain
 * text to HTML; bit 2: a cid_url_prefix), the rest is the part.  Whatever
 * comes out must hold the contract of sanitize.h, checked on the tree that
 * gumbo builds from the OUTPUT: only allow-listed HTML elements, no on*
 * attribute, URL attributes with allowed schemes only, no remote src or
 * background when images are blocked, no url(), escape or comment in a
 * style; and sanitising the output again gives the same bytes.  A breach
 * abort()s. */
#include <ctype.h>
#include <gumbo.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "html/sanitize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CID_PREFIX "/m/1/cid/"

static const char *const allowed[] = {
    "html", "head", "body", "a", "abbr", "acronym", "address", "article", "aside", "b", "bdi",
    "bdo", "big", "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup",
    "dd", "del", "dfn", "dir", "div", "dl", "dt", "em", "figcaption", "figure", "font", "footer",
    "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "i", "img", "ins", "kbd", "li",
    "main", "mark", "menu", "nav", "ol", "p", "pre", "q", "rb", "rp", "rt", "rtc", "ruby", "s",
    "samp", "section", "small", "span", "strike", "strong", "sub", "sup", "table", "tbody", "td",
    "tfoot", "th", "thead", "time", "tr", "tt", "u", "ul", "var", "wbr",
};

static void breach(const char *what, const char *html)
{
    fprintf(stderr, "BREACH: %s\n%s\n", what, html);
    abort();
}

static void squeeze(const char *v, char *out, size_t size)
{
    size_t o = 0;
    for (; *v && o + 1 < size; v++)
        if ((unsigned char)*v > 0x20)
            out[o++] = (char)tolower((unsigned char)*v);
    out[o] = '\0';
}

static int starts(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static void check_attribute(const GumboElement *e, const GumboAttribute *a, int blocked, const char *html)
{
    char v[512];
    squeeze(a->value, v, sizeof v);
    if (strncasecmp(a->name, "on", 2) == 0)
        breach("event handler", html);
    /* only these attributes, and the URL ones (href, src, background)
     * with an allowed scheme at the start, checked below */
    static const char *const known[] = {
    "dir", "lang", "title", "id", "style", "align", "valign", "width", "height", "border",
    "cellpadding", "cellspacing", "summary", "frame", "rules", "bgcolor", "background",
    "data-sm-background", "colspan", "rowspan", "nowrap", "abbr", "scope", "href", "name", "src",
    "data-sm-src", "data-sm-cid", "alt", "hspace", "vspace", "color", "face", "size", "type",
    "start", "value", "reversed", "span", "noshade", "clear", "text", "link", "vlink", "alink",
    "target", "rel",
    };
    int known_name = 0;
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        known_name |= strcmp(a->name, known[i]) == 0;
    if (!known_name)
        breach("attribute not allowed", html);
    if (strcmp(a->name, "target") == 0 && strcmp(a->value, "_blank") != 0)
        breach("target", html);
    if (strcmp(a->name, "rel") == 0 && strcmp(a->value, "noopener noreferrer") != 0)
        breach("rel", html);
    if (strcmp(a->name, "href") == 0 &&
        !(starts(v, "http:") || starts(v, "https:") || starts(v, "mailto:") || v[0] == '#'))
        breach("href scheme", html);
    if (strcmp(a->name, "src") == 0) {
        int data_img = starts(v, "data:image/png;base64,") || starts(v, "data:image/gif;base64,") ||
                       starts(v, "data:image/jpeg;base64,") || starts(v, "data:image/webp;base64,");
        int remote = starts(v, "http:") || starts(v, "https:");
        if (e->tag != GUMBO_TAG_IMG || !(data_img || starts(v, CID_PREFIX) || (remote && !blocked)))
            breach("src", html);
    }
    if (strcmp(a->name, "background") == 0 && (blocked || !(starts(v, "http:") || starts(v, "https:"))))
        breach("background", html);
    static const char *const never[] = {"action", "formaction", "srcset", "poster", "data", "class",
                                        "http-equiv", "xlink:href", "srcdoc", "content", "ping"};
    for (size_t i = 0; i < sizeof never / sizeof *never; i++)
        if (strcasecmp(a->name, never[i]) == 0)
            breach("forbidden attribute", html);
    if (strcmp(a->name, "style") == 0) {
        char s[8192];
        squeeze(a->value, s, sizeof s);
        if (strstr(s, "url(") || strstr(s, "expression(") || strchr(s, '\\') || strchr(s, '@') ||
            strstr(s, "/*") || strstr(s, "behavior:") || strstr(s, "binding:") || strstr(s, "position:"))
            breach("style", html);
    }
}

static void check_tree(const char *html, size_t len, int blocked)
{
    GumboOutput *out = gumbo_parse_with_options(&kGumboDefaultOptions, html, len);
    size_t depth = 0, cap = 256;
    const GumboNode **stack = malloc(cap * sizeof *stack);
    stack[depth++] = out->root;
    while (depth > 0) {
        const GumboNode *n = stack[--depth];
        if (n->type == GUMBO_NODE_TEMPLATE || n->type == GUMBO_NODE_CDATA)
            breach("template or CDATA", html);
        if (n->type != GUMBO_NODE_ELEMENT)
            continue;
        const GumboElement *e = &n->v.element;
        int ok = e->tag_namespace == GUMBO_NAMESPACE_HTML && e->tag != GUMBO_TAG_UNKNOWN;
        for (size_t i = 0; ok && i < sizeof allowed / sizeof *allowed; i++)
            if (strcmp(gumbo_normalized_tagname(e->tag), allowed[i]) == 0)
                ok = 2;
        if (ok != 2)
            breach("element", html);
        for (unsigned i = 0; i < e->attributes.length; i++)
            check_attribute(e, e->attributes.data[i], blocked, html);
        for (unsigned i = 0; i < e->children.length; i++) {
            if (depth == cap)
                stack = realloc(stack, (cap *= 2) * sizeof *stack);
            stack[depth++] = e->children.data[i];
        }
    }
    free(stack);
    gumbo_destroy_output(&kGumboDefaultOptions, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct sm_html_options opts = {
        .allow_remote_images = data[0] & 1,
        .cid_url_prefix = data[0] & 4 ? CID_PREFIX : NULL,
    };
    const char *in = (const char *)data + 1;
    struct sm_buf out, again;
    enum sm_html_status st = data[0] & 2 ? sm_html_from_text(in, size - 1, &out)
                                         : sm_html_sanitize(in, size - 1, &opts, &out, NULL);
    if (st != SM_HTML_OK) {
        if (st != SM_HTML_TOO_COMPLEX && st != SM_HTML_TOO_LARGE && st != SM_HTML_OUTPUT_TOO_LARGE)
            breach(sm_html_strerror(st), in); /* UNSTABLE would be a bug to look at */
        if (out.len != 0)
            abort();
        sm_buf_free(&out);
        return 0;
    }
    check_tree(out.data, out.len, !opts.allow_remote_images);
    st = sm_html_sanitize(out.data, out.len, &opts, &again, NULL);
    if (st == SM_HTML_OK && (again.len != out.len || memcmp(again.data, out.data, out.len) != 0)) {
        fprintf(stderr, "NOT A FIXED POINT:\n%s\n---\n%s\n", out.data, again.data);
        abort();
    }
    sm_buf_free(&again);
    sm_buf_free(&out);
    return 0;
}
