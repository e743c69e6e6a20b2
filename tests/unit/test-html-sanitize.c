/* test-html-sanitize.c — the HTML mail sanitiser and text-to-HTML.
 *
 * The oracle (check_output) never looks for substrings in markup: it parses
 * the OUTPUT with gumbo, walks the tree and checks every element and
 * attribute (allow-listed element in the HTML namespace, no on*, every URL
 * attribute with an allowed scheme, no remote src/background when images are
 * blocked, no url()/expression in style), then checks that sanitising the
 * output again gives the same bytes.  It runs on every HTML5 Security
 * Cheatsheet vector (wrapped in three ways), on hand-written cases, and on
 * pathological inputs (100k nesting, 2 MiB). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <gumbo.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "html/sanitize.h"

/* ---- the oracle ---------------------------------------------------------- */

static const char *const allowed_elements[] = {
    "html", "head", "body", "a", "abbr", "acronym", "address", "article", "aside", "b", "bdi",
    "bdo", "big", "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup",
    "dd", "del", "dfn", "dir", "div", "dl", "dt", "em", "figcaption", "figure", "font", "footer",
    "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "i", "img", "ins", "kbd", "li",
    "main", "mark", "menu", "nav", "ol", "p", "pre", "q", "rb", "rp", "rt", "rtc", "ruby", "s",
    "samp", "section", "small", "span", "strike", "strong", "sub", "sup", "table", "tbody", "td",
    "tfoot", "th", "thead", "time", "tr", "tt", "u", "ul", "var", "wbr",
};

static bool element_allowed(const GumboElement *e)
{
    if (e->tag_namespace != GUMBO_NAMESPACE_HTML || e->tag == GUMBO_TAG_UNKNOWN)
        return false;
    const char *name = gumbo_normalized_tagname(e->tag);
    for (size_t i = 0; i < sizeof allowed_elements / sizeof *allowed_elements; i++)
        if (strcmp(name, allowed_elements[i]) == 0)
            return true;
    return false;
}

/* The URL with what browsers ignore taken out, lowercased. */
static void squeeze(const char *v, char *out, size_t size)
{
    size_t o = 0;
    for (; *v && o + 1 < size; v++)
        if ((unsigned char)*v > 0x20)
            out[o++] = (char)tolower((unsigned char)*v);
    out[o] = '\0';
}

static bool prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* src="/m/42/cid/..." when the test set a cid_url_prefix */
static const char *cid_prefix;

static const char *check_attribute(const GumboElement *e, const GumboAttribute *a, bool blocked)
{
    char v[256];
    squeeze(a->value, v, sizeof v);
    if (strncasecmp(a->name, "on", 2) == 0)
        return "event handler attribute";
    static const char *const never[] = {"action", "formaction", "srcset", "poster", "data",
                                        "codebase", "dynsrc", "lowsrc", "ping", "http-equiv",
                                        "xmlns", "xlink:href", "class", "srcdoc", "content"};
    for (size_t i = 0; i < sizeof never / sizeof *never; i++)
        if (strcasecmp(a->name, never[i]) == 0)
            return "forbidden attribute";
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
        return "attribute not allowed";
    if (strcmp(a->name, "target") == 0 && strcmp(a->value, "_blank") != 0)
        return "target";
    if (strcmp(a->name, "rel") == 0 && strcmp(a->value, "noopener noreferrer") != 0)
        return "rel";
    if (strcmp(a->name, "href") == 0 &&
        !(prefix(v, "http:") || prefix(v, "https:") || prefix(v, "mailto:") || v[0] == '#'))
        return "href scheme";
    if (strcmp(a->name, "src") == 0) {
        if (e->tag != GUMBO_TAG_IMG)
            return "src outside img";
        if (prefix(v, "data:")) {
            if (!prefix(v, "data:image/png;base64,") && !prefix(v, "data:image/gif;base64,") &&
                !prefix(v, "data:image/jpeg;base64,") && !prefix(v, "data:image/webp;base64,"))
                return "data: URL that is not an image";
        } else if (cid_prefix != NULL && prefix(v, cid_prefix)) {
            /* an attachment of the same message */
        } else if (blocked || !(prefix(v, "http:") || prefix(v, "https:"))) {
            return "src that loads";
        }
    }
    if (strcmp(a->name, "background") == 0 && (blocked || !(prefix(v, "http:") || prefix(v, "https:"))))
        return "background that loads";
    if (strcmp(a->name, "style") == 0) {
        char s[4096];
        squeeze(a->value, s, sizeof s);
        if (strstr(s, "url(") || strstr(s, "expression(") || strchr(s, '\\') || strstr(s, "@import") ||
            strstr(s, "behavior:") || strstr(s, "binding:") || strstr(s, "/*") || strstr(s, "position:"))
            return "style that could load or run";
    }
    return NULL;
}

/* NULL if html is safe; otherwise what is wrong. */
static const char *check_tree(const char *html, size_t len, bool blocked)
{
    GumboOutput *out = gumbo_parse_with_options(&kGumboDefaultOptions, html, len);
    const GumboNode **stack = malloc(sizeof *stack * 1024);
    size_t depth = 0, cap = 1024;
    const char *err = NULL;
    stack[depth++] = out->root;
    while (depth > 0 && err == NULL) {
        const GumboNode *n = stack[--depth];
        if (n->type == GUMBO_NODE_TEMPLATE || n->type == GUMBO_NODE_CDATA)
            err = "template or CDATA";
        if (n->type != GUMBO_NODE_ELEMENT)
            continue;
        const GumboElement *e = &n->v.element;
        if (!element_allowed(e)) {
            err = "element not allowed";
            break;
        }
        for (unsigned i = 0; i < e->attributes.length && err == NULL; i++)
            err = check_attribute(e, e->attributes.data[i], blocked);
        for (unsigned i = 0; i < e->children.length; i++) {
            if (depth == cap)
                stack = realloc(stack, sizeof *stack * (cap *= 2));
            stack[depth++] = e->children.data[i];
        }
    }
    free(stack);
    gumbo_destroy_output(&kGumboDefaultOptions, out);
    return err;
}

/* Sanitise, check the tree, check the fixed point; returns the output
 * (caller frees) for further checks. */
static char *sanitize_checked(const char *label, const char *in, size_t len,
                              const struct sm_html_options *opts, struct sm_html_stats *stats)
{
    struct sm_buf out, again;
    enum sm_html_status st = sm_html_sanitize(in, len, opts, &out, stats);
    if (st != SM_HTML_OK)
        fail_msg("%s: %s", label, sm_html_strerror(st));
    bool blocked = opts == NULL || !opts->allow_remote_images;
    cid_prefix = opts != NULL ? opts->cid_url_prefix : NULL;
    const char *err = check_tree(out.data, out.len, blocked);
    if (err != NULL)
        fail_msg("%s: %s in output:\n%s", label, err, out.data);
    if (out.len > SM_HTML_MAX_INPUT) { /* links grow; the sanitiser checked it itself */
        char *r = strdup(out.data);
        sm_buf_free(&out);
        return r;
    }
    st = sm_html_sanitize(out.data, out.len, opts, &again, NULL);
    assert_int_equal(st, SM_HTML_OK);
    if (again.len != out.len || memcmp(again.data, out.data, out.len) != 0)
        fail_msg("%s: not a fixed point:\n%s\n---\n%s", label, out.data, again.data);
    sm_buf_free(&again);
    char *r = strdup(out.data);
    sm_buf_free(&out);
    return r;
}

/* ---- the HTML5 Security Cheatsheet vectors --------------------------------- */

static void test_h5sc_vectors(void **state)
{
    (void)state;
    const char *path = getenv("H5SC_VECTORS") ? getenv("H5SC_VECTORS") : H5SC_VECTORS;
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (root == NULL)
        fail_msg("cannot read %s (%s)", path, jerr.text);
    json_t *vectors = json_object_get(root, "vectors");
    assert_true(json_is_array(vectors));
    assert_true(json_array_size(vectors) >= 100);
    size_t i, checked = 0;
    json_t *v;
    json_array_foreach(vectors, i, v) {
        const char *payload = json_string_value(json_object_get(v, "payload"));
        json_t *id = json_object_get(v, "id");
        assert_non_null(payload);
        char label[64];
        const char *wrappers[][2] = {
            {"", ""},
            {"<!DOCTYPE html><html><head><base href=\"http://evil/\"><meta charset=\"utf-7\">"
             "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\"></head><body>",
             "</body></html>"},
            {"<table><tr><td><p><b>", ""},
        };
        for (size_t w = 0; w < 3; w++) {
            size_t n = strlen(wrappers[w][0]) + strlen(payload) + strlen(wrappers[w][1]) + 1;
            char *doc = malloc(n);
            snprintf(doc, n, "%s%s%s", wrappers[w][0], payload, wrappers[w][1]);
            snprintf(label, sizeof label, "h5sc %lld/%zu", (long long)json_integer_value(id), w);
            free(sanitize_checked(label, doc, strlen(doc), NULL, NULL));
            struct sm_html_options allow = {.allow_remote_images = true};
            free(sanitize_checked(label, doc, strlen(doc), &allow, NULL));
            free(doc);
            checked++;
        }
    }
    print_message("h5sc: %zu vectors x 3 wrappers x 2 modes checked\n", checked / 3);
    json_decref(root);
}

/* ---- hand cases ------------------------------------------------------------ */

struct output_case {
    const char *label;
    const char *in;
    const char *must;      /* substring the output must contain (NULL: none) */
    const char *must_not;  /* substring it must not contain (NULL: none) */
};

static const struct output_case output_cases[] = {
    {"text kept", "<p>Hello <b>world</b> &amp; caf\xc3\xa9 &lt;3</p>",
     "<p>Hello <b>world</b> &amp; caf\xc3\xa9 &lt;3</p>", NULL},
    {"document shape", "x", "<!DOCTYPE html><html><head></head><body>x</body></html>", NULL},
    {"http link", "<a href='https://example.com/a?b=1&c=2'>go</a>",
     "<a href=\"https://example.com/a?b=1&amp;c=2\" target=\"_blank\" rel=\"noopener noreferrer\">go</a>",
     NULL},
    {"mailto link", "<a href='mailto:a@example.com'>m</a>",
     "<a href=\"mailto:a@example.com\" target=\"_blank\" rel=\"noopener noreferrer\">m</a>", NULL},
    {"fragment link stays in the document", "<a href='#sec-1'>s</a><a name=sec-1>x</a>",
     "<a href=\"#sec-1\">s</a><a name=\"sec-1\">x</a>", NULL},
    {"javascript link", "<a href=' jav&#x09;ascript:alert(1)'>x</a>", "<a>x</a>", NULL},
    {"javascript with entities and controls", "<a href='&#1;java\nscript&colon;alert(1)'>x</a>",
     "<a>x</a>", NULL},
    {"vbscript", "<a href='VBScript:msgbox(1)'>x</a>", "<a>x</a>", NULL},
    {"data text link", "<a href='data:text/html,<script>alert(1)</script>'>x</a>", "<a>x</a>", NULL},
    {"relative link dropped", "<a href='/api/delete'>x</a><a href='//evil.com/'>y</a>",
     "<a>x</a><a>y</a>", NULL},
    {"own target replaced", "<a href='http://e.com' target=_self rel=opener>x</a>",
     "<a href=\"http://e.com\" target=\"_blank\" rel=\"noopener noreferrer\">x</a>", "_self"},
    {"event handlers", "<p onclick='x()' ONMOUSEOVER=y>t</p><img src=x onerror=alert(1)>",
     "<p>t</p>", "on"},
    {"script text dropped", "<p>a<script>alert('gone')</script>b</p>", "<p>ab</p>", "gone"},
    {"style block dropped", "<style>p{color:red}</style><p>a</p>", "<p>a</p>", "color"},
    {"style attribute filtered",
     "<p style='COLOR: Red; position:fixed; background:url(http://t/x); font-family: \"Segoe UI\", Arial;"
     " width:expression(alert(1)); margin: 0  auto !important'>x</p>",
     "<p style=\"color:Red;font-family:&quot;Segoe UI&quot;, Arial;margin:0 auto !important\">x</p>",
     NULL},
    {"css escapes", "<p style='color:\\72 ed; background-color:rgb(1,2,3)'>x</p>",
     "<p style=\"background-color:rgb(1,2,3)\">x</p>", NULL},
    {"remote image blocked", "<img src='http://t.example/p.gif' alt='pixel' width=1>",
     "<img data-sm-src=\"http://t.example/p.gif\" alt=\"pixel\" width=\"1\">", " src="},
    {"srcset dropped", "<img src='https://a/x.png' srcset='https://a/x2.png 2x'>",
     "<img data-sm-src=\"https://a/x.png\">", "srcset"},
    {"cid image", "<img src='cid:part1.ABC@example.com'>",
     "<img data-sm-cid=\"part1.ABC@example.com\">", NULL},
    {"data image kept", "<img src='data:image/png;base64,iVBORw0KGgo='>",
     "<img src=\"data:image/png;base64,iVBORw0KGgo=\">", NULL},
    {"svg data image dropped", "<img src='data:image/svg+xml;base64,PHN2Zz4='>", "<img>", "data:"},
    {"background attribute", "<table background='https://a/bg.png'><tr><td>x</td></tr></table>",
     "<table data-sm-background=\"https://a/bg.png\"><tbody><tr><td>x</td></tr></tbody></table>", NULL},
    {"nested tables",
     "<table border=1><tr><td><table cellpadding=2><tr><td bgcolor=#eee>in</td></tr></table></td></tr></table>",
     "<table border=\"1\"><tbody><tr><td><table cellpadding=\"2\"><tbody><tr><td bgcolor=\"#eee\">in</td>"
     "</tr></tbody></table></td></tr></tbody></table>", NULL},
    {"lists and headings", "<h1 align=center>T</h1><ol start=3><li>a<li>b</ol>",
     "<h1 align=\"center\">T</h1><ol start=\"3\"><li>a</li><li>b</li></ol>", NULL},
    {"old mail", "<center><font face='Arial' color=red size=+1>hi</font></center>",
     "<center><font face=\"Arial\" color=\"red\" size=\"+1\">hi</font></center>", NULL},
    {"office tags", "<p class=MsoNormal>x<o:p>&nbsp;</o:p></p>", "<p>x<span>\xc2\xa0</span></p>", "class"},
    {"forms gone, text kept", "<form action='http://e/'><label>Name</label><input name=a><button>Go</button></form>",
     "<span>Name</span>", "input"},
    {"iframe object embed", "<iframe src='http://e/'></iframe><object data='x.swf'>fb</object><embed src=x>",
     "<body></body>", NULL},
    {"svg and math", "<svg><a xlink:href='javascript:alert(1)'><text>t</text></a></svg><math><mi>x</mi></math>",
     "<body></body>", NULL},
    {"base and meta", "<base href='http://evil/'><meta http-equiv=refresh content='0;url=http://e'>x",
     "<body>x</body>", NULL},
    {"comments dropped", "a<!-- secret -->b<!--[if mso]><p>x</p><![endif]-->", "<body>ab</body>", "secret"},
    {"pre keeps its newline", "<pre>\n\nline2</pre>", "<pre>\n\nline2</pre>", NULL},
    {"xmp becomes pre", "<xmp><b>raw</b></xmp>", "<pre>\n&lt;b&gt;raw&lt;/b&gt;</pre>", NULL},
    {"body attributes", "<body bgcolor=#000 text=#fff background='http://a/b.png' onload=x()>t</body>",
     "<body bgcolor=\"#000\" text=\"#fff\" data-sm-background=\"http://a/b.png\">t</body>", NULL},
    {"invalid utf-8", "a\xff\xc0\x80z\xed\xa0\x80", "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz", NULL},
    {"nul", "a\0b", "a\xef\xbf\xbd" "b", NULL},
    {"attribute escapes", "<img alt='\"><script>alert(1)</script>'>",
     "<img alt=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\">", NULL},
    {"ids", "<div id='x y'>a</div><div id=ok_1>b</div>", "<div>a</div><div id=\"ok_1\">b</div>", NULL},
};

static void test_output_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof output_cases / sizeof *output_cases; i++) {
        const struct output_case *c = &output_cases[i];
        size_t len = strcmp(c->label, "nul") == 0 ? 3 : strlen(c->in);
        char *out = sanitize_checked(c->label, c->in, len, NULL, NULL);
        const char *body = strstr(out, "<body");
        if (c->must != NULL && strstr(out, c->must) == NULL)
            fail_msg("%s: expected %s in\n%s", c->label, c->must, out);
        if (c->must_not != NULL && strstr(body, c->must_not) != NULL)
            fail_msg("%s: unexpected %s in\n%s", c->label, c->must_not, out);
        free(out);
    }
}

static void test_remote_images(void **state)
{
    (void)state;
    const char *in = "<body background='https://a/bg.png'><img src='http://a/1.png'>"
                     "<img src=' https://a/2.png '><img src='cid:x@y'><img src='data:image/gif;base64,R0lG'>"
                     "<img src='javascript:alert(1)'><p style='background:url(https://a/c.png)'>x</p>"
                     "<a href='https://a/'>l</a>";
    struct sm_html_stats st;
    char *out = sanitize_checked("blocked", in, strlen(in), NULL, &st);
    assert_int_equal(st.remote_images, 3);
    assert_int_equal(st.remote_css, 1);
    assert_int_equal(st.cid_images, 1);
    assert_int_equal(st.data_images, 1);
    assert_int_equal(st.links, 1);
    assert_non_null(strstr(out, "<img data-sm-src=\"https://a/2.png\">"));
    free(out);

    struct sm_html_options allow = {.allow_remote_images = true};
    out = sanitize_checked("allowed", in, strlen(in), &allow, &st);
    assert_int_equal(st.remote_images, 3);
    assert_non_null(strstr(out, "<body background=\"https://a/bg.png\">"));
    assert_non_null(strstr(out, "<img src=\"http://a/1.png\">"));
    assert_non_null(strstr(out, "<img src=\"https://a/2.png\">"));
    assert_non_null(strstr(out, "<img>")); /* the javascript: one, still dropped */
    assert_null(strstr(out, "url("));
    free(out);

    /* our own output, sanitised with images allowed, loads them */
    struct sm_buf blocked;
    assert_int_equal(sm_html_sanitize(in, strlen(in), NULL, &blocked, NULL), SM_HTML_OK);
    out = sanitize_checked("re-allowed", blocked.data, blocked.len, &allow, &st);
    assert_int_equal(st.remote_images, 3);
    assert_non_null(strstr(out, "<img src=\"http://a/1.png\">"));
    sm_buf_free(&blocked);
    free(out);

    struct sm_html_options cid = {.cid_url_prefix = "/m/42/cid/"};
    const char *cids = "<img src='cid:a b/../c@d'><img src='cid:p1@x'>";
    out = sanitize_checked("cid prefix", cids, strlen(cids), &cid, &st);
    assert_null(strstr(out, "a b")); /* a space is not a Content-ID */
    assert_non_null(strstr(out, "<img data-sm-cid=\"p1@x\" src=\"/m/42/cid/p1%40x\">"));
    free(out);
}

/* ---- limits ---------------------------------------------------------------- */

/* CPU seconds: the machine running the tests may be loaded. */
static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static char *repeat(const char *head, size_t n1, const char *mid, const char *tail, size_t n2, size_t *len_r)
{
    size_t lh = strlen(head), lm = strlen(mid), lt = strlen(tail);
    size_t len = lh * n1 + lm + lt * n2;
    char *s = malloc(len + 1), *p = s;
    for (size_t i = 0; i < n1; i++, p += lh)
        memcpy(p, head, lh);
    memcpy(p, mid, lm);
    p += lm;
    for (size_t i = 0; i < n2; i++, p += lt)
        memcpy(p, tail, lt);
    *p = '\0';
    *len_r = len;
    return s;
}

/* Pathological inputs end in bounded time: either cleaned or refused as
 * too complex, never a crash. */
static void test_deep_nesting(void **state)
{
    (void)state;
    static const struct {
        const char *label, *head, *mid, *tail;
        size_t n1, n2;
    } cases[] = {
        {"100k nested div", "<div>", "x", "", 100000, 0},
        {"100k nested span", "<span>", "x", "", 100000, 0},
        {"100k nested b", "<b>", "x", "", 100000, 0},
        {"100k nested table cells", "<table><tr><td>", "x", "", 100000 / 3, 0},
        {"20k div, b, 1.8 MB text", "<div>", "<b>", "xxxxxxxxxx", 20000, 180000},
        {"spans and </p>", "<span>", "", "</p>", 150000, 150000},
        {"spans and </x>", "<span>", "", "</x>", 150000, 150000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len;
        char *in = repeat(cases[i].head, cases[i].n1, cases[i].mid, cases[i].tail, cases[i].n2, &len);
        struct timespec t0;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
        struct sm_buf out;
        struct sm_html_stats st;
        /* a 1 s budget: the test is that it holds (gumbo is only checked
         * between allocations) */
        struct sm_html_options budget = {.cpu_ms = 1000};
        enum sm_html_status s = sm_html_sanitize(in, len, &budget, &out, &st);
        double t = seconds_since(&t0);
        print_message("%s: %s in %.2f s CPU, %zu bytes out, %u flattened\n", cases[i].label,
                      sm_html_strerror(s), t, out.len, st.flattened);
        assert_true(s == SM_HTML_OK || s == SM_HTML_TOO_COMPLEX);
        /* plus the input cleaning and the writing, and the overshoot */
        assert_true(t < 2.0);
        if (s == SM_HTML_OK)
            assert_null(check_tree(out.data, out.len, true));
        sm_buf_free(&out);
        free(in);
    }
}

/* A budget small enough to trip is reported, not crashed on. */
static void test_budgets(void **state)
{
    (void)state;
    size_t len;
    char *in = repeat("<div>", 100000, "", "", 0, &len);
    struct sm_html_options tight = {.max_memory = 1 << 20};
    struct sm_buf out;
    assert_int_equal(sm_html_sanitize(in, len, &tight, &out, NULL), SM_HTML_TOO_COMPLEX);
    assert_int_equal(out.len, 0);
    sm_buf_free(&out);
    struct sm_html_options quick = {.cpu_ms = 1};
    assert_int_equal(sm_html_sanitize(in, len, &quick, &out, NULL), SM_HTML_TOO_COMPLEX);
    sm_buf_free(&out);
    free(in);
}

static void test_size_limit(void **state)
{
    (void)state;
    /* a 2 MiB newsletter-like document passes; one byte more is refused */
    const char *row = "<tr><td style='padding:4px;color:#333'><a href='https://shop.example/item?id=1'>"
                      "Item</a> <img src='https://cdn.example/i.png' width=80> some text &amp; more</td></tr>";
    size_t n = (SM_HTML_MAX_INPUT - 100) / strlen(row), len;
    char *body = repeat(row, n, "", "", 0, &len);
    char *in = malloc(SM_HTML_MAX_INPUT + 2);
    int l = snprintf(in, SM_HTML_MAX_INPUT + 2, "<table>%s</table>", body);
    memset(in + l, ' ', SM_HTML_MAX_INPUT - (size_t)l);
    struct timespec t0;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    struct sm_html_stats st;
    char *out = sanitize_checked("2 MiB", in, SM_HTML_MAX_INPUT, NULL, &st);
    print_message("2 MiB: %.2f s CPU (twice, with the check), %zu bytes out, %u remote images\n",
                  seconds_since(&t0), strlen(out), st.remote_images);
    assert_int_equal(st.remote_images, n);
    assert_int_equal(st.links, n);
    free(out);
    struct sm_buf o;
    assert_int_equal(sm_html_sanitize(in, SM_HTML_MAX_INPUT + 1, NULL, &o, NULL), SM_HTML_TOO_LARGE);
    sm_buf_free(&o);
    struct sm_html_options small = {.max_input = 1000};
    assert_int_equal(sm_html_sanitize(in, 1001, &small, &o, NULL), SM_HTML_TOO_LARGE);
    sm_buf_free(&o);
    free(in);
    free(body);
}

/* ---- text to HTML ---------------------------------------------------------- */

static const struct {
    const char *label, *in, *out;
} text_cases[] = {
    {"escaped", "a <b> & \"c\"", "a &lt;b&gt; &amp; \"c\""},
    {"lines", "one\r\ntwo\rthree\n\nfour", "one\ntwo\nthree\n\nfour"},
    {"link", "see https://example.com/a?b=1&c=2.",
     "see <a href=\"https://example.com/a?b=1&amp;c=2\" target=\"_blank\" rel=\"noopener noreferrer\">"
     "https://example.com/a?b=1&amp;c=2</a>."},
    {"parens", "(http://e.com/wiki/X_(y)) and (http://e.com/z)",
     "(<a href=\"http://e.com/wiki/X_(y)\" target=\"_blank\" rel=\"noopener noreferrer\">"
     "http://e.com/wiki/X_(y)</a>) and (<a href=\"http://e.com/z\" target=\"_blank\" "
     "rel=\"noopener noreferrer\">http://e.com/z</a>)"},
    {"no javascript", "javascript:alert(1) xhttp://no ftp://no http:// ", 
     "javascript:alert(1) xhttp://no ftp://no http:// "},
    {"quote ends a link", "<http://e.com/\"onmouseover=x>",
     "&lt;<a href=\"http://e.com/\" target=\"_blank\" rel=\"noopener noreferrer\">http://e.com/</a>"
     "\"onmouseover=x&gt;"},
    {"controls", "a\x01\x7f\xff" "b\tc", "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "b\tc"},
    {"leading newline", "\nx", "\nx"},
};

static void test_text(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof text_cases / sizeof *text_cases; i++) {
        struct sm_buf out;
        assert_int_equal(sm_html_from_text(text_cases[i].in, strlen(text_cases[i].in), &out), SM_HTML_OK);
        const char *pre = "<pre style=\"white-space:pre-wrap;overflow-wrap:break-word\">\n";
        const char *start = strstr(out.data, pre);
        assert_non_null(start);
        start += strlen(pre);
        const char *end = strstr(out.data, "</pre></body></html>");
        assert_non_null(end);
        if ((size_t)(end - start) != strlen(text_cases[i].out) ||
            memcmp(start, text_cases[i].out, (size_t)(end - start)) != 0)
            fail_msg("%s: got\n%s", text_cases[i].label, out.data);
        /* the same document comes out of the sanitiser */
        free(sanitize_checked(text_cases[i].label, out.data, out.len, NULL, NULL));
        struct sm_buf again;
        assert_int_equal(sm_html_sanitize(out.data, out.len, NULL, &again, NULL), SM_HTML_OK);
        assert_string_equal(again.data, out.data);
        sm_buf_free(&again);
        sm_buf_free(&out);
    }
    struct sm_buf out;
    char *big = malloc(SM_HTML_MAX_INPUT + 1);
    memset(big, 'x', SM_HTML_MAX_INPUT + 1);
    assert_int_equal(sm_html_from_text(big, SM_HTML_MAX_INPUT + 1, &out), SM_HTML_TOO_LARGE);
    sm_buf_free(&out);
    for (size_t i = 0; i + 20 < SM_HTML_MAX_INPUT; i += 40)
        memcpy(big + i, " http://e.com/x<&> ", 19);
    assert_int_equal(sm_html_from_text(big, SM_HTML_MAX_INPUT, &out), SM_HTML_OK);
    assert_null(check_tree(out.data, out.len, true));
    sm_buf_free(&out);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_cases),
        cmocka_unit_test(test_remote_images),
        cmocka_unit_test(test_h5sc_vectors),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_budgets),
        cmocka_unit_test(test_deep_nesting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
