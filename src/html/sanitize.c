/* sanitize.c — allow-list over the gumbo tree, our own serialiser, and the
 * fixed-point loop (see sanitize.h for the policy and its reasons).
 *
 * One pass: parse under budget (parse.c), walk html > body iteratively with
 * an explicit stack (depth costs heap, never C stack), decide per element
 * (keep / rename to a neutral element / drop with content), per attribute
 * (allow-list and value kind), and write the result.  Only our serialiser
 * writes markup, so what we did not emit cannot be in the output.
 *
 * The fixed point: a tree that gumbo built can become, once elements are
 * dropped or renamed, a tree that does not survive serialising and parsing
 * again (for example p > object > div: without the object, the div closes the
 * p).  Rather than prove every case away, sm_html_sanitize() sanitises its
 * own output again until two passes agree, which is what a browser will then
 * build too.  Each pass runs the full sanitiser, so no intermediate result is
 * ever trusted. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "html/internal.h"

enum action { A_DROP = 0, A_KEEP, A_SPAN, A_DIV, A_PRE };

/* attribute groups */
enum {
    G_CORE = 1 << 0,  /* every emitted element */
    G_ALIGN = 1 << 1,
    G_SIZE = 1 << 2,
    G_TABLE = 1 << 3,
    G_CELL = 1 << 4,
    G_LINK = 1 << 5,
    G_IMG = 1 << 6,
    G_FONT = 1 << 7,
    G_LIST = 1 << 8,
    G_COL = 1 << 9,
    G_BODY = 1 << 10,
    G_HR = 1 << 11,
    G_QUOTE = 1 << 12,
    G_BR = 1 << 13,
    G_BG = 1 << 14,   /* bgcolor, background */
};

struct element_rule {
    unsigned char action;
    unsigned short groups;
};

#define KEEP(g) {A_KEEP, (g)}
static const struct element_rule elements[GUMBO_TAG_LAST + 1] = {
    [GUMBO_TAG_A] = KEEP(G_LINK),
    [GUMBO_TAG_ABBR] = KEEP(0), [GUMBO_TAG_ACRONYM] = KEEP(0), [GUMBO_TAG_ADDRESS] = KEEP(0),
    [GUMBO_TAG_ARTICLE] = KEEP(0), [GUMBO_TAG_ASIDE] = KEEP(0), [GUMBO_TAG_B] = KEEP(0),
    [GUMBO_TAG_BDI] = KEEP(0), [GUMBO_TAG_BDO] = KEEP(0), [GUMBO_TAG_BIG] = KEEP(0),
    [GUMBO_TAG_BLOCKQUOTE] = KEEP(G_QUOTE), [GUMBO_TAG_BR] = KEEP(G_BR),
    [GUMBO_TAG_CAPTION] = KEEP(G_ALIGN), [GUMBO_TAG_CENTER] = KEEP(0), [GUMBO_TAG_CITE] = KEEP(0),
    [GUMBO_TAG_CODE] = KEEP(0), [GUMBO_TAG_COL] = KEEP(G_COL | G_ALIGN | G_SIZE),
    [GUMBO_TAG_COLGROUP] = KEEP(G_COL | G_ALIGN | G_SIZE), [GUMBO_TAG_DD] = KEEP(0),
    [GUMBO_TAG_DEL] = KEEP(0), [GUMBO_TAG_DFN] = KEEP(0), [GUMBO_TAG_DIR] = KEEP(G_LIST),
    [GUMBO_TAG_DIV] = KEEP(G_ALIGN), [GUMBO_TAG_DL] = KEEP(0), [GUMBO_TAG_DT] = KEEP(0),
    [GUMBO_TAG_EM] = KEEP(0), [GUMBO_TAG_FIGCAPTION] = KEEP(0), [GUMBO_TAG_FIGURE] = KEEP(0),
    [GUMBO_TAG_FONT] = KEEP(G_FONT), [GUMBO_TAG_FOOTER] = KEEP(0),
    [GUMBO_TAG_H1] = KEEP(G_ALIGN), [GUMBO_TAG_H2] = KEEP(G_ALIGN), [GUMBO_TAG_H3] = KEEP(G_ALIGN),
    [GUMBO_TAG_H4] = KEEP(G_ALIGN), [GUMBO_TAG_H5] = KEEP(G_ALIGN), [GUMBO_TAG_H6] = KEEP(G_ALIGN),
    [GUMBO_TAG_HEADER] = KEEP(0), [GUMBO_TAG_HGROUP] = KEEP(0),
    [GUMBO_TAG_HR] = KEEP(G_HR | G_ALIGN | G_SIZE), [GUMBO_TAG_I] = KEEP(0),
    [GUMBO_TAG_IMG] = KEEP(G_IMG | G_ALIGN | G_SIZE), [GUMBO_TAG_INS] = KEEP(0),
    [GUMBO_TAG_KBD] = KEEP(0), [GUMBO_TAG_LI] = KEEP(G_LIST), [GUMBO_TAG_MAIN] = KEEP(0),
    [GUMBO_TAG_MARK] = KEEP(0), [GUMBO_TAG_MENU] = KEEP(G_LIST), [GUMBO_TAG_NAV] = KEEP(0),
    [GUMBO_TAG_OL] = KEEP(G_LIST), [GUMBO_TAG_P] = KEEP(G_ALIGN), [GUMBO_TAG_PRE] = KEEP(0),
    [GUMBO_TAG_Q] = KEEP(0), [GUMBO_TAG_RB] = KEEP(0), [GUMBO_TAG_RP] = KEEP(0),
    [GUMBO_TAG_RT] = KEEP(0), [GUMBO_TAG_RTC] = KEEP(0), [GUMBO_TAG_RUBY] = KEEP(0),
    [GUMBO_TAG_S] = KEEP(0), [GUMBO_TAG_SAMP] = KEEP(0), [GUMBO_TAG_SECTION] = KEEP(0),
    [GUMBO_TAG_SMALL] = KEEP(0), [GUMBO_TAG_SPAN] = KEEP(0), [GUMBO_TAG_STRIKE] = KEEP(0),
    [GUMBO_TAG_STRONG] = KEEP(0), [GUMBO_TAG_SUB] = KEEP(0), [GUMBO_TAG_SUP] = KEEP(0),
    [GUMBO_TAG_TABLE] = KEEP(G_TABLE | G_ALIGN | G_SIZE | G_BG),
    [GUMBO_TAG_TBODY] = KEEP(G_ALIGN | G_BG), [GUMBO_TAG_THEAD] = KEEP(G_ALIGN | G_BG),
    [GUMBO_TAG_TFOOT] = KEEP(G_ALIGN | G_BG), [GUMBO_TAG_TR] = KEEP(G_ALIGN | G_SIZE | G_BG),
    [GUMBO_TAG_TD] = KEEP(G_CELL | G_ALIGN | G_SIZE | G_BG),
    [GUMBO_TAG_TH] = KEEP(G_CELL | G_ALIGN | G_SIZE | G_BG),
    [GUMBO_TAG_TIME] = KEEP(0), [GUMBO_TAG_TT] = KEEP(0), [GUMBO_TAG_U] = KEEP(0),
    [GUMBO_TAG_UL] = KEEP(G_LIST), [GUMBO_TAG_VAR] = KEEP(0), [GUMBO_TAG_WBR] = KEEP(0),
    /* wrappers whose content is mail text: a neutral element instead */
    [GUMBO_TAG_UNKNOWN] = {A_SPAN, 0}, [GUMBO_TAG_DATA] = {A_SPAN, 0},
    [GUMBO_TAG_LABEL] = {A_SPAN, 0}, [GUMBO_TAG_LEGEND] = {A_SPAN, 0},
    [GUMBO_TAG_NOBR] = {A_SPAN, 0}, [GUMBO_TAG_BLINK] = {A_SPAN, 0},
    [GUMBO_TAG_MARQUEE] = {A_SPAN, 0}, [GUMBO_TAG_MULTICOL] = {A_SPAN, 0},
    [GUMBO_TAG_BUTTON] = {A_SPAN, 0}, [GUMBO_TAG_OUTPUT] = {A_SPAN, 0},
    [GUMBO_TAG_METER] = {A_SPAN, 0}, [GUMBO_TAG_PROGRESS] = {A_SPAN, 0},
    [GUMBO_TAG_SUMMARY] = {A_SPAN, 0},
    [GUMBO_TAG_FORM] = {A_DIV, 0}, [GUMBO_TAG_FIELDSET] = {A_DIV, 0},
    [GUMBO_TAG_DETAILS] = {A_DIV, 0},
    [GUMBO_TAG_XMP] = {A_PRE, 0}, [GUMBO_TAG_LISTING] = {A_PRE, 0},
    [GUMBO_TAG_PLAINTEXT] = {A_PRE, 0},
    /* everything else, from script to svg, is A_DROP (zero) */
};

enum kind {
    K_TEXT, K_ID, K_LANG, K_COLOR, K_LENGTH, K_KEYWORD, K_FACE, K_BOOL, K_STYLE,
    K_HREF, K_IMG_SRC, K_SM_SRC, K_SM_CID, K_SRCSET, K_BACKGROUND,
};

struct attribute_rule {
    const char *name;
    unsigned short groups;
    unsigned char kind;
};

static const struct attribute_rule attributes[] = {
    {"dir", G_CORE, K_KEYWORD}, {"lang", G_CORE, K_LANG}, {"title", G_CORE, K_TEXT},
    {"id", G_CORE, K_ID}, {"style", G_CORE, K_STYLE},
    {"align", G_ALIGN, K_KEYWORD}, {"valign", G_ALIGN, K_KEYWORD},
    {"width", G_SIZE | G_HR, K_LENGTH}, {"height", G_SIZE, K_LENGTH},
    {"border", G_TABLE | G_IMG, K_LENGTH}, {"cellpadding", G_TABLE, K_LENGTH},
    {"cellspacing", G_TABLE, K_LENGTH}, {"summary", G_TABLE, K_TEXT},
    {"frame", G_TABLE, K_KEYWORD}, {"rules", G_TABLE, K_KEYWORD},
    {"bgcolor", G_BG | G_BODY, K_COLOR}, {"background", G_BG | G_BODY, K_BACKGROUND},
    {"data-sm-background", G_BG | G_BODY, K_BACKGROUND},
    {"colspan", G_CELL, K_LENGTH}, {"rowspan", G_CELL, K_LENGTH}, {"nowrap", G_CELL, K_BOOL},
    {"abbr", G_CELL, K_TEXT}, {"scope", G_CELL, K_KEYWORD},
    {"href", G_LINK, K_HREF}, {"name", G_LINK, K_ID},
    {"src", G_IMG, K_IMG_SRC}, {"data-sm-src", G_IMG, K_SM_SRC},
    {"data-sm-cid", G_IMG, K_SM_CID}, {"srcset", G_IMG, K_SRCSET}, {"alt", G_IMG, K_TEXT},
    {"hspace", G_IMG, K_LENGTH}, {"vspace", G_IMG, K_LENGTH},
    {"color", G_FONT | G_HR, K_COLOR}, {"face", G_FONT, K_FACE}, {"size", G_FONT | G_HR, K_LENGTH},
    {"type", G_LIST | G_QUOTE, K_KEYWORD}, {"start", G_LIST, K_LENGTH},
    {"value", G_LIST, K_LENGTH}, {"reversed", G_LIST, K_BOOL},
    {"span", G_COL, K_LENGTH}, {"noshade", G_HR, K_BOOL}, {"clear", G_BR, K_KEYWORD},
    {"text", G_BODY, K_COLOR}, {"link", G_BODY, K_COLOR}, {"vlink", G_BODY, K_COLOR},
    {"alink", G_BODY, K_COLOR},
};

#define MAX_TEXT_ATTR 1024
#define MAX_URL_ATTR 4096
#define MAX_IMG_URL SM_HTML_MAX_INPUT

/* the state of one pass */
struct writer {
    struct sm_buf *out;
    const struct sm_html_options *opts;
    struct sm_html_stats stats;
    struct sm_buf scratch;   /* a cleaned URL or a filtered style */
    bool full;               /* out reached its maximum */
    /* per element, while its attributes are written */
    bool has_image, has_background, external_link;
};

/* ---- writing ---------------------------------------------------------- */

static void put(struct writer *w, const char *s, size_t n)
{
    if (!w->full && sm_buf_append(w->out, s, n) < 0)
        w->full = true;
}

static void puts_(struct writer *w, const char *s)
{
    put(w, s, strlen(s));
}

static int escape(struct sm_buf *out, const char *s, size_t n, bool attr)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep;
        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = attr ? "&quot;" : NULL; break;
        default: rep = NULL;
        }
        if (rep == NULL)
            continue;
        if (sm_buf_append(out, s + run, i - run) < 0 || sm_buf_puts(out, rep) < 0)
            return -1;
        run = i + 1;
    }
    return sm_buf_append(out, s + run, n - run);
}

int html_escape_text(struct sm_buf *out, const char *s, size_t n)
{
    return escape(out, s, n, false);
}

int html_escape_attr(struct sm_buf *out, const char *s, size_t n)
{
    return escape(out, s, n, true);
}

static void put_attr(struct writer *w, const char *name, const char *value, size_t n)
{
    puts_(w, " ");
    puts_(w, name);
    puts_(w, "=\"");
    if (!w->full && html_escape_attr(w->out, value, n) < 0)
        w->full = true;
    puts_(w, "\"");
}

/* ---- values ------------------------------------------------------------ */

static bool all_in(const char *v, const char *set, bool letters, bool digits, bool high, size_t max)
{
    size_t n = strlen(v);
    if (n == 0 || n > max)
        return false;
    for (const char *p = v; *p; p++) {
        unsigned char c = (unsigned char)*p;
        bool ok = (letters && ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')) ||
                  (digits && c >= '0' && c <= '9') || (high && c >= 0x80) ||
                  (c != 0 && strchr(set, c) != NULL);
        if (!ok)
            return false;
    }
    return true;
}

static bool plain_value_ok(enum kind kind, const char *v)
{
    switch (kind) {
    case K_TEXT: return strlen(v) <= MAX_TEXT_ATTR;
    case K_ID: return all_in(v, "_.:-", true, true, false, 64);
    case K_LANG: return all_in(v, "-", true, true, false, 35);
    case K_COLOR: return all_in(v, "#", true, true, false, 32);
    case K_LENGTH: return all_in(v, ".%*+-", true, true, false, 16);
    case K_KEYWORD: return all_in(v, "-_", true, false, false, 16);
    case K_FACE: return all_in(v, " ,'\"_-", true, true, true, 128);
    default: return false;
    }
}

/* The URL as a browser reads it: C0 controls and spaces trimmed at both
 * ends, tab, CR and LF removed everywhere.  Left in w->scratch. */
static const char *clean_url(struct writer *w, const char *v, size_t max)
{
    size_t n = strlen(v);
    while (n > 0 && (unsigned char)v[0] <= 0x20)
        v++, n--;
    while (n > 0 && (unsigned char)v[n - 1] <= 0x20)
        n--;
    sm_buf_reset(&w->scratch);
    if (n > max)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (v[i] != '\t' && v[i] != '\n' && v[i] != '\r')
            sm_buf_append(&w->scratch, v + i, 1);
    return sm_buf_str(&w->scratch);
}

/* Length of the scheme of url ("https" -> 5), 0 if it has none. */
static size_t scheme_len(const char *url)
{
    size_t i = 0;
    if (!((url[0] | 0x20) >= 'a' && (url[0] | 0x20) <= 'z'))
        return 0;
    while (url[i] != '\0' && url[i] != ':') {
        char c = url[i];
        if (!(((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
              c == '-' || c == '.'))
            return 0;
        i++;
    }
    return url[i] == ':' ? i : 0;
}

static bool has_scheme(const char *url, const char *scheme)
{
    size_t n = strlen(scheme);
    return scheme_len(url) == n && strncasecmp(url, scheme, n) == 0;
}

static bool is_remote(const char *url)
{
    return (has_scheme(url, "http") || has_scheme(url, "https")) && url[strcspn(url, ":") + 1] != '\0';
}

/* data:image/(png|gif|jpeg|webp);base64,<base64> */
static bool is_data_image(const char *url)
{
    static const char *const types[] = {"png", "gif", "jpeg", "webp"};
    if (strncasecmp(url, "data:image/", 11) != 0)
        return false;
    const char *p = url + 11;
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        size_t l = strlen(types[i]);
        if (strncasecmp(p, types[i], l) == 0 && strncasecmp(p + l, ";base64,", 8) == 0) {
            const char *b = p + l + 8;
            return *b != '\0' && strspn(b, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                            "0123456789+/=") == strlen(b);
        }
    }
    return false;
}

/* Content-ID as found in cid: URLs: printable ASCII, no quote or markup. */
static bool cid_ok(const char *cid)
{
    size_t n = strlen(cid);
    if (n == 0 || n > 256)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)cid[i] <= 0x20 || (unsigned char)cid[i] >= 0x7f ||
            strchr("\"'<>\\`", cid[i]) != NULL)
            return false;
    return true;
}

/* ---- attributes ---------------------------------------------------------- */

static void put_cid(struct writer *w, const char *cid)
{
    static const char hex[] = "0123456789ABCDEF";
    w->has_image = true;
    w->stats.cid_images++;
    char *copy = sm_strdup(cid);
    put_attr(w, "data-sm-cid", copy, strlen(copy));
    if (w->opts->cid_url_prefix != NULL) {
        struct sm_buf url;
        sm_buf_init(&url, 0);
        sm_buf_puts(&url, w->opts->cid_url_prefix);
        for (const char *p = copy; *p; p++) {
            unsigned char c = (unsigned char)*p;
            if (strchr("-._~", c) != NULL || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))
                sm_buf_append(&url, p, 1);
            else
                sm_buf_printf(&url, "%%%c%c", hex[c >> 4], hex[c & 15]);
        }
        put_attr(w, "src", url.data, url.len);
        sm_buf_free(&url);
    }
    free(copy);
}

/* img src, data-sm-src, data-sm-cid: at most one image source per img. */
static bool image_attr(struct writer *w, enum kind kind, const char *value)
{
    if (w->has_image)
        return false;
    const char *url = clean_url(w, value, MAX_IMG_URL);
    if (url == NULL)
        return false;
    if (kind == K_SM_CID) {
        if (!cid_ok(url))
            return false;
        put_cid(w, url);
        return true;
    }
    if (kind == K_IMG_SRC && has_scheme(url, "cid")) {
        if (!cid_ok(url + 4))
            return false;
        put_cid(w, url + 4);
        return true;
    }
    if (kind == K_IMG_SRC && is_data_image(url)) {
        w->stats.data_images++;
    } else if (is_remote(url)) {
        w->stats.remote_images++;
        if (!w->opts->allow_remote_images) {
            put_attr(w, "data-sm-src", url, strlen(url));
            w->has_image = true;
            return true;
        }
    } else {
        return false;
    }
    put_attr(w, "src", url, strlen(url));
    w->has_image = true;
    return true;
}

static bool background_attr(struct writer *w, const char *value)
{
    const char *url = clean_url(w, value, MAX_URL_ATTR);
    if (w->has_background || url == NULL || !is_remote(url))
        return false;
    w->stats.remote_images++;
    w->has_background = true;
    put_attr(w, w->opts->allow_remote_images ? "background" : "data-sm-background", url, strlen(url));
    return true;
}

static bool href_attr(struct writer *w, const char *value)
{
    const char *url = clean_url(w, value, MAX_URL_ATTR);
    if (url == NULL)
        return false;
    if (url[0] == '#') {
        if (url[1] != '\0' && !plain_value_ok(K_ID, url + 1))
            return false;
    } else if (is_remote(url) || (has_scheme(url, "mailto") && url[7] != '\0')) {
        w->external_link = true;
        w->stats.links++;
    } else {
        return false;
    }
    put_attr(w, "href", url, strlen(url));
    return true;
}

static bool style_attr(struct writer *w, const char *value)
{
    unsigned urls;
    sm_buf_reset(&w->scratch);
    if (strlen(value) > SM_HTML_MAX_INPUT || html_css_filter(value, &w->scratch, &urls) < 0)
        return false;
    w->stats.remote_css += urls;
    if (w->scratch.len == 0)
        return false;
    put_attr(w, "style", w->scratch.data, w->scratch.len);
    return true;
}

/* Write one attribute if allowed; return whether it was. */
static bool put_attribute(struct writer *w, unsigned groups, const GumboAttribute *a)
{
    if (a->attr_namespace != GUMBO_ATTR_NAMESPACE_NONE)
        return false;
    const struct attribute_rule *rule = NULL;
    for (size_t i = 0; i < sizeof attributes / sizeof *attributes; i++)
        if (strcmp(attributes[i].name, a->name) == 0 && (attributes[i].groups & groups) != 0)
            rule = &attributes[i];
    if (rule == NULL)
        return false;
    switch (rule->kind) {
    case K_BOOL:
        put_attr(w, a->name, "", 0);
        return true;
    case K_STYLE: return style_attr(w, a->value);
    case K_HREF: return href_attr(w, a->value);
    case K_IMG_SRC:
    case K_SM_SRC:
    case K_SM_CID: return image_attr(w, rule->kind, a->value);
    case K_BACKGROUND: return background_attr(w, a->value);
    case K_SRCSET:
        if (strcasestr(a->value, "http") != NULL)
            w->stats.remote_images++;
        return false;
    default:
        if (!plain_value_ok(rule->kind, a->value))
            return false;
        put_attr(w, a->name, a->value, strlen(a->value));
        return true;
    }
}

static void put_attributes(struct writer *w, unsigned groups, const GumboVector *attrs)
{
    w->has_image = w->has_background = w->external_link = false;
    for (unsigned i = 0; i < attrs->length; i++)
        if (!put_attribute(w, groups | G_CORE, attrs->data[i]))
            w->stats.dropped_attributes++;
    if (w->external_link)
        puts_(w, " target=\"_blank\" rel=\"noopener noreferrer\"");
}

/* ---- the walk ------------------------------------------------------------ */

struct frame {
    const GumboNode *node;
    unsigned next;
    const char *close;  /* end tag to write, NULL if none */
};

static bool is_void(GumboTag tag)
{
    return tag == GUMBO_TAG_BR || tag == GUMBO_TAG_HR || tag == GUMBO_TAG_IMG ||
           tag == GUMBO_TAG_WBR || tag == GUMBO_TAG_COL;
}

/* Write an element's start tag; return the name for its end tag, or NULL
 * when it has no content to walk (void elements). */
static const char *start_element(struct writer *w, const GumboElement *e, struct element_rule rule)
{
    const char *name = rule.action == A_SPAN ? "span"
                       : rule.action == A_DIV ? "div"
                       : rule.action == A_PRE ? "pre"
                                              : gumbo_normalized_tagname(e->tag);
    puts_(w, "<");
    puts_(w, name);
    put_attributes(w, rule.action == A_KEEP ? rule.groups : 0, &e->attributes);
    puts_(w, ">");
    if (strcmp(name, "pre") == 0)
        puts_(w, "\n"); /* the parser drops one newline right after <pre> */
    return is_void(e->tag) ? NULL : name;
}

struct walk {
    struct frame *stack;
    size_t depth, cap, kept;
};

static void push(struct walk *k, const GumboNode *node, const char *close)
{
    if (k->depth == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 64;
        k->stack = sm_realloc(k->stack, k->cap * sizeof *k->stack);
    }
    k->stack[k->depth++] = (struct frame){node, 0, close};
    if (close != NULL)
        k->kept++;
}

static void visit_element(struct writer *w, struct walk *k, const GumboNode *node)
{
    const GumboElement *e = &node->v.element;
    struct element_rule rule = elements[e->tag];
    if (e->tag_namespace != GUMBO_NAMESPACE_HTML || rule.action == A_DROP) {
        w->stats.dropped_elements++;
        return;
    }
    if (rule.action != A_KEEP && rule.action != A_PRE && e->children.length == 0)
        return; /* an empty wrapper says nothing, and could misplace itself in a table */
    if (k->kept >= SM_HTML_MAX_DEPTH) {
        w->stats.flattened++;
        if (!is_void(e->tag))
            push(k, node, NULL);
        return;
    }
    const char *close = start_element(w, e, rule);
    if (close != NULL)
        push(k, node, close);
}

static void visit(struct writer *w, struct walk *k, const GumboNode *node)
{
    switch (node->type) {
    case GUMBO_NODE_TEXT:
    case GUMBO_NODE_WHITESPACE:
        if (!w->full && html_escape_text(w->out, node->v.text.text, strlen(node->v.text.text)) < 0)
            w->full = true;
        break;
    case GUMBO_NODE_ELEMENT:
        visit_element(w, k, node);
        break;
    case GUMBO_NODE_TEMPLATE:
        w->stats.dropped_elements++;
        break;
    default: /* comments, CDATA (only in svg/math, which are dropped) */
        break;
    }
}

/* Walk the children of body, iteratively. */
static void walk_body(struct writer *w, const GumboNode *body)
{
    struct walk k = {0};
    push(&k, body, NULL);
    while (k.depth > 0 && !w->full) {
        struct frame *f = &k.stack[k.depth - 1];
        const GumboVector *children = &f->node->v.element.children;
        if (f->next < children->length) {
            visit(w, &k, children->data[f->next++]);
            continue;
        }
        if (f->close != NULL) {
            puts_(w, "</");
            puts_(w, f->close);
            puts_(w, ">");
            k.kept--;
        }
        k.depth--;
    }
    free(k.stack);
}

static const GumboNode *child_element(const GumboNode *parent, GumboTag tag)
{
    const GumboVector *c = &parent->v.element.children;
    for (unsigned i = 0; i < c->length; i++) {
        const GumboNode *n = c->data[i];
        if (n->type == GUMBO_NODE_ELEMENT && n->v.element.tag == tag)
            return n;
    }
    return NULL;
}

static void write_document(struct writer *w, const GumboOutput *doc)
{
    const GumboNode *html = doc->root;
    const GumboNode *body = child_element(html, GUMBO_TAG_BODY);
    puts_(w, "<!DOCTYPE html><html");
    for (unsigned i = 0; i < html->v.element.attributes.length; i++) {
        const GumboAttribute *a = html->v.element.attributes.data[i];
        if ((strcmp(a->name, "lang") == 0 && plain_value_ok(K_LANG, a->value)) ||
            (strcmp(a->name, "dir") == 0 && plain_value_ok(K_KEYWORD, a->value)))
            put_attr(w, a->name, a->value, strlen(a->value));
    }
    puts_(w, "><head></head><body");
    if (body != NULL)
        put_attributes(w, G_BODY, &body->v.element.attributes);
    puts_(w, ">");
    if (body != NULL)
        walk_body(w, body);
    puts_(w, "</body></html>");
}

/* ---- passes -------------------------------------------------------------- */

static enum sm_html_status one_pass(const char *html, size_t len, const struct sm_html_options *opts,
                                    const struct html_budget *budget, struct sm_buf *out,
                                    struct sm_html_stats *stats)
{
    struct html_parse *p;
    enum sm_html_status st = html_parse(html, len, budget, &p);
    sm_buf_init(out, SM_HTML_MAX_OUTPUT);
    if (st != SM_HTML_OK)
        return st;
    struct writer w = {.out = out, .opts = opts};
    sm_buf_init(&w.scratch, 0);
    write_document(&w, html_parse_output(p));
    sm_buf_free(&w.scratch);
    html_parse_free(&p);
    if (stats != NULL)
        *stats = w.stats;
    return w.full ? SM_HTML_OUTPUT_TOO_LARGE : SM_HTML_OK;
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_SLOWDOWN 4
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZER_SLOWDOWN 4
#endif
#endif
#ifndef SANITIZER_SLOWDOWN
#define SANITIZER_SLOWDOWN 1
#endif

static int64_t cpu_budget_ms(const struct sm_html_options *opts, size_t len)
{
    if (opts->cpu_ms != 0)
        return opts->cpu_ms;
    return (int64_t)SANITIZER_SLOWDOWN *
           (SM_HTML_PARSE_CPU_MS_BASE + SM_HTML_PARSE_CPU_MS_PER_KIB * (int64_t)(len / 1024));
}

enum sm_html_status sm_html_sanitize(const char *html, size_t len,
                                     const struct sm_html_options *opts,
                                     struct sm_buf *out, struct sm_html_stats *stats)
{
    static const struct sm_html_options defaults = {0};
    struct sm_html_stats first = {0};
    if (opts == NULL)
        opts = &defaults;
    size_t max_input = opts->max_input != 0 && opts->max_input < SM_HTML_MAX_INPUT
                           ? opts->max_input : SM_HTML_MAX_INPUT;
    sm_buf_init(out, SM_HTML_MAX_OUTPUT);
    if (stats != NULL)
        *stats = first;
    if (len > max_input)
        return SM_HTML_TOO_LARGE;
    struct html_budget budget = {
        .deadline_ns = html_cpu_now_ns() + cpu_budget_ms(opts, len) * 1000000,
        .max_memory = opts->max_memory ? opts->max_memory : SM_HTML_PARSE_MEMORY,
    };
    struct sm_buf cur, next;
    enum sm_html_status st = one_pass(html, len, opts, &budget, &cur, &first);
    for (int pass = 2; st == SM_HTML_OK; pass++) {
        st = one_pass(cur.data, cur.len, opts, &budget, &next, NULL);
        if (st != SM_HTML_OK) {
            sm_buf_free(&next);
            break;
        }
        bool same = next.len == cur.len && memcmp(next.data, cur.data, cur.len) == 0;
        sm_buf_free(&cur);
        cur = next;
        if (same)
            break;
        if (pass == SM_HTML_MAX_PASSES)
            st = SM_HTML_UNSTABLE;
    }
    if (st != SM_HTML_OK) {
        sm_buf_free(&cur);
        return st;
    }
    sm_buf_free(out);
    *out = cur;
    if (stats != NULL)
        *stats = first;
    return SM_HTML_OK;
}

const char *sm_html_strerror(enum sm_html_status status)
{
    switch (status) {
    case SM_HTML_OK: return "ok";
    case SM_HTML_TOO_LARGE: return "HTML part too large";
    case SM_HTML_TOO_COMPLEX: return "HTML too complex to parse within limits";
    case SM_HTML_OUTPUT_TOO_LARGE: return "cleaned HTML too large";
    case SM_HTML_UNSTABLE: return "HTML does not reach a stable form";
    }
    return "unknown status";
}
