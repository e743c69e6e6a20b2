/* text.c — decoded text for full-text search, and one-line header text.
 *
 * search_text holds the text/plain and text/html parts that are not
 * attachments (Content-Disposition: attachment), in document order and
 * including those of attached messages, after transfer decoding
 * (base64, quoted-printable, uuencode: GMime's basic filter) and charset
 * conversion to UTF-8 (GMime's charset filter).  HTML loses its tags,
 * comments, <script> and <style> contents, and gets the common entities
 * decoded.  The work is bounded twice: at most MIME_SEARCH_TEXT_MAX bytes
 * of output, and at most eight times that of input read, so a huge part
 * of markup cannot keep a worker busy.  Unknown charsets, and bytes that
 * are not valid UTF-8 after conversion, are read as Latin-1 (the usual
 * undeclared charset of old mail), so the result is always valid UTF-8. */
#include "mime/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"

#define CHUNK 16384
#define INPUT_MAX (8 * (size_t)MIME_SEARCH_TEXT_MAX)

char *text_utf8_sanitise(const char *s, size_t len)
{
    struct sm_buf b;
    sm_buf_init(&b, 0);
    const char *p = s, *end = s + len;
    while (p < end) {
        const gchar *valid_end;
        g_utf8_validate(p, end - p, &valid_end);
        for (; p < valid_end; p++) { /* valid UTF-8: only fix controls */
            unsigned char c = (unsigned char)*p;
            if (c >= 0x20 || c == '\n' || c == '\t')
                sm_buf_append(&b, p, 1);
            else if (c != '\r')
                sm_buf_append(&b, " ", 1);
        }
        if (p < end) { /* one invalid byte (or NUL): Latin-1 */
            unsigned char c = (unsigned char)*p++;
            if (c >= 0x80) {
                char two[2] = {(char)(0xc0 | (c >> 6)), (char)(0x80 | (c & 0x3f))};
                sm_buf_append(&b, two, 2);
            }
        }
    }
    char *out = sm_strdup(sm_buf_str(&b));
    sm_buf_free(&b);
    return out;
}

char *text_decode_header(struct analysis *a, const char *raw)
{
    /* unfold: drop the line breaks, keep the blanks that follow them */
    char *unfolded = sm_strdup(raw), *o = unfolded;
    for (const char *c = raw; *c != '\0'; c++)
        if (*c != '\r' && *c != '\n')
            *o++ = *c;
    *o = '\0';
    char *guarded = charset_guard(unfolded);
    char *decoded = g_mime_utils_header_decode_text(a->opts, guarded);
    sm_freep(&guarded);
    char *clean = text_utf8_sanitise(decoded, strlen(decoded));
    g_free(decoded);
    sm_freep(&unfolded);
    for (char *c = clean; *c != '\0'; c++)
        if (*c == '\n' || *c == '\t')
            *c = ' ';
    return clean;
}

/* Append at most what fits under b->max, cut back to a UTF-8 character
 * boundary; false when something did not fit. */
static bool append_bounded(struct sm_buf *b, const char *s, size_t len)
{
    if (sm_buf_append(b, s, len) == 0)
        return true;
    size_t room = b->max > b->len ? b->max - b->len : 0;
    while (room > 0 && ((unsigned char)s[room] & 0xc0) == 0x80)
        room--;
    sm_buf_append(b, s, room);
    return false;
}

/* ---- HTML to text, streaming ---- */

enum html_state { H_TEXT, H_TAG, H_COMMENT, H_ENTITY };

struct html {
    struct sm_buf *out;
    bool full; /* out is full */
    enum html_state state;
    char name[16]; /* tag name or entity being read */
    size_t name_len;
    bool name_done;   /* the tag name ended (a blank was seen) */
    bool skip;        /* inside <script> or <style> */
    char skip_end[8]; /* "script" or "style" */
    unsigned dashes;  /* consecutive '-' in a comment */
    bool space;       /* the last output was white space */
};

static void html_put(struct html *h, const char *s, size_t len)
{
    if (h->skip || len == 0 || h->full)
        return;
    bool sp = len == 1 && (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r');
    if (sp && h->space)
        return;
    h->space = sp;
    h->full = !append_bounded(h->out, sp ? " " : s, sp ? 1 : len);
}

/* The named entities of HTML 4 Latin-1 that mail commonly uses, and a
 * few typographic ones; others are dropped. */
static const struct {
    const char *name;
    unsigned cp;
} entities[] = {
    {"amp", '&'},      {"lt", '<'},        {"gt", '>'},       {"quot", '"'},     {"apos", '\''},
    {"nbsp", ' '},     {"copy", 0xa9},     {"reg", 0xae},     {"deg", 0xb0},     {"laquo", 0xab},
    {"raquo", 0xbb},   {"szlig", 0xdf},    {"agrave", 0xe0},  {"aacute", 0xe1},  {"acirc", 0xe2},
    {"auml", 0xe4},    {"aring", 0xe5},    {"ccedil", 0xe7},  {"egrave", 0xe8},  {"eacute", 0xe9},
    {"ecirc", 0xea},   {"euml", 0xeb},     {"iacute", 0xed},  {"ntilde", 0xf1},  {"oacute", 0xf3},
    {"ocirc", 0xf4},   {"ouml", 0xf6},     {"oslash", 0xf8},  {"uacute", 0xfa},  {"uuml", 0xfc},
    {"Auml", 0xc4},    {"Eacute", 0xc9},   {"Ouml", 0xd6},    {"Uuml", 0xdc},    {"ndash", 0x2013},
    {"mdash", 0x2014}, {"lsquo", 0x2018},  {"rsquo", 0x2019}, {"ldquo", 0x201c}, {"rdquo", 0x201d},
    {"bull", 0x2022},  {"hellip", 0x2026}, {"euro", 0x20ac},  {"trade", 0x2122},
};

static void html_codepoint(struct html *h, unsigned long cp)
{
    if (cp > 0 && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff)) {
        char utf8[8];
        int n = g_unichar_to_utf8((gunichar)cp, utf8);
        html_put(h, utf8, (size_t)n);
    }
}

static void html_entity(struct html *h)
{
    h->name[h->name_len] = '\0';
    if (h->name[0] == '#') {
        bool hex = h->name[1] == 'x' || h->name[1] == 'X';
        html_codepoint(h, strtoul(h->name + (hex ? 2 : 1), NULL, hex ? 16 : 10));
        return;
    }
    for (size_t i = 0; i < sizeof entities / sizeof entities[0]; i++)
        if (strcmp(h->name, entities[i].name) == 0) {
            html_codepoint(h, entities[i].cp);
            return;
        }
}

/* Tags that separate words; inline ones (b, i, span, a, font ...) do not. */
static bool html_block_tag(const char *name)
{
    static const char *const blocks[] = {
        "br", "p",  "div", "li",         "tr",  "td", "th", "table", "h1", "h2",    "h3",  "h4",
        "h5", "h6", "hr",  "blockquote", "pre", "ul", "ol", "dd",    "dt", "title", "img", "body"};
    if (*name == '/')
        name++;
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
        if (strcasecmp(name, blocks[i]) == 0)
            return true;
    return false;
}

static void html_tag_end(struct html *h)
{
    h->name[h->name_len] = '\0';
    if (h->skip) {
        if (h->name[0] == '/' && strcasecmp(h->name + 1, h->skip_end) == 0)
            h->skip = false;
    } else if (strcasecmp(h->name, "script") == 0 || strcasecmp(h->name, "style") == 0) {
        h->skip = true;
        snprintf(h->skip_end, sizeof h->skip_end, "%s",
                 strcasecmp(h->name, "script") == 0 ? "script" : "style");
    }
    if (html_block_tag(h->name))
        html_put(h, " ", 1);
}

static void html_feed(struct html *h, const char *s, size_t len);

static void html_byte(struct html *h, char c)
{
    switch (h->state) {
    case H_TEXT:
        if (c == '<' || (c == '&' && !h->skip)) {
            h->state = c == '<' ? H_TAG : H_ENTITY;
            h->name_len = 0;
            h->name_done = false;
        } else {
            html_put(h, &c, 1);
        }
        break;
    case H_TAG:
        if (c == '>') {
            h->state = H_TEXT;
            html_tag_end(h);
        } else if (c == '<') { /* "a < b" was no tag: start again */
            h->name_len = 0;
            h->name_done = false;
        } else if (h->name_len == 3 && memcmp(h->name, "!--", 3) == 0) {
            h->state = H_COMMENT;
            h->dashes = c == '-';
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            h->name_done = true;
        } else if (!h->name_done && h->name_len < sizeof h->name - 1) {
            h->name[h->name_len++] = c;
        }
        break;
    case H_COMMENT:
        if (c == '>' && h->dashes >= 2)
            h->state = H_TEXT;
        h->dashes = c == '-' ? h->dashes + 1 : 0;
        break;
    case H_ENTITY:
        if (c == ';') {
            h->state = H_TEXT;
            html_entity(h);
        } else if (h->name_len < sizeof h->name - 1 &&
                   (g_ascii_isalnum(c) || (c == '#' && h->name_len == 0))) {
            h->name[h->name_len++] = c;
        } else { /* not an entity: give back what was read */
            h->state = H_TEXT;
            html_put(h, "&", 1);
            html_feed(h, h->name, h->name_len);
            html_byte(h, c);
        }
        break;
    }
}

static void html_feed(struct html *h, const char *s, size_t len)
{
    for (size_t i = 0; i < len && !h->full; i++)
        html_byte(h, s[i]);
}

/* ---- decoding one part ---- */

struct decoder {
    GMimeFilter *transfer, *charset; /* either may be NULL */
    bool html;
    struct html h;
    bool full; /* the output is full (plain text) */
};

static GMimeContentEncoding transfer_encoding(const char *enc)
{
    return enc != NULL ? g_mime_content_encoding_from_string(enc) : GMIME_CONTENT_ENCODING_DEFAULT;
}

static void decoder_init(struct decoder *d, const struct mnode *n, enum decode_mode mode,
                         struct sm_buf *out)
{
    memset(d, 0, sizeof *d);
    d->h.out = out;
    GMimeContentEncoding enc = transfer_encoding(n->encoding);
    if (enc == GMIME_CONTENT_ENCODING_BASE64 || enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
        enc == GMIME_CONTENT_ENCODING_UUENCODE)
        d->transfer = g_mime_filter_basic_new(enc, FALSE);
    if (mode != DECODE_BYTES && n->charset != NULL && strcasecmp(n->charset, "utf-8") != 0 &&
        strcasecmp(n->charset, "us-ascii") != 0 && charset_ok(n->charset, strlen(n->charset)))
        d->charset = g_mime_filter_charset_new(n->charset, "UTF-8");
    d->html = mode == DECODE_SEARCH && strcasecmp(n->subtype, "html") == 0;
}

static void decoder_free(struct decoder *d)
{
    if (d->transfer != NULL)
        g_object_unref(d->transfer);
    if (d->charset != NULL)
        g_object_unref(d->charset);
}

/* Run in[0..len) through the filters (complete: flush them) into out. */
static void decoder_run(struct decoder *d, char *in, size_t len, bool complete, struct sm_buf *out)
{
    char *buf = in;
    size_t n = len, pre = 0;
    GMimeFilter *chain[2] = {d->transfer, d->charset};
    for (int i = 0; i < 2; i++) {
        if (chain[i] == NULL)
            continue;
        char *o;
        size_t olen, opre;
        if (complete)
            g_mime_filter_complete(chain[i], buf, n, pre, &o, &olen, &opre);
        else
            g_mime_filter_filter(chain[i], buf, n, pre, &o, &olen, &opre);
        buf = o;
        n = olen;
        pre = opre;
    }
    if (d->html)
        html_feed(&d->h, buf, n);
    else if (!d->full)
        d->full = !append_bounded(out, buf, n);
}

bool decode_part(struct analysis *a, const struct mnode *n, enum decode_mode mode,
                 struct sm_buf *out, size_t *input)
{
    struct decoder d;
    decoder_init(&d, n, mode, out);
    char *chunk = sm_malloc(CHUNK);
    size_t pos = n->body_start;
    while (pos<n->body_end && * input> 0 && !d.full && !d.h.full) {
        size_t len = n->body_end - pos;
        if (len > CHUNK)
            len = CHUNK;
        if (len > *input)
            len = *input;
        memcpy(chunk, a->m.p + pos, len); /* filters want writable input */
        decoder_run(&d, chunk, len, false, out);
        pos += len;
        *input -= len;
    }
    decoder_run(&d, chunk, 0, true, out);
    bool complete = pos >= n->body_end && !d.full && !d.h.full;
    sm_freep(&chunk);
    decoder_free(&d);
    return complete;
}

static bool searchable(const struct mnode *n)
{
    return n->kind == MK_LEAF && n->text && !n->attachment &&
           (strcasecmp(n->subtype, "plain") == 0 || strcasecmp(n->subtype, "html") == 0);
}

static void collect(struct analysis *a, const struct mnode *n, struct sm_buf *text, size_t *input,
                    bool *full)
{
    for (; n != NULL && !*full; n = n->next) {
        if (n->kind != MK_LEAF) {
            collect(a, n->child, text, input, full);
            continue;
        }
        if (!searchable(n) || n->body_end <= n->body_start)
            continue;
        struct sm_buf part;
        sm_buf_init(&part, text->max - text->len + 1);
        bool cut = !decode_part(a, n, DECODE_SEARCH, &part, input);
        char *clean = text_utf8_sanitise(part.data != NULL ? part.data : "", part.len);
        if (text->len > 0 && !append_bounded(text, "\n", 1))
            *full = true;
        if (!*full && !append_bounded(text, clean, strlen(clean)))
            *full = true;
        *full |= cut || *input == 0;
        sm_freep(&clean);
        sm_buf_free(&part);
    }
}

static const char *const search_header_names[] = {"From", "Sender", "Reply-To", "To",
                                                  "Cc",   "Bcc",    "Subject"};
#define N_SEARCH_HEADER_NAMES (sizeof search_header_names / sizeof search_header_names[0])
/* The top-level fields collect_mime_headers() writes in its own form. */
static const char *const mime_header_names[] = {"Content-Type", "Content-Disposition",
                                                "Content-Description"};

static bool field_is(const struct analysis *a, const struct hfield *f, const char *name)
{
    return f->name_len == strlen(name) &&
           strncasecmp((const char *)a->m.p + f->name, name, f->name_len) == 0;
}

static bool field_in(const struct analysis *a, const struct hfield *f,
                     const char *const names[], size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (field_is(a, f, names[i]))
            return true;
    return false;
}

/* One "Name: decoded value" line for field f, the name as written. */
static void put_field(struct analysis *a, const struct hfield *f, struct sm_buf *b, bool *full)
{
    bool cut = false;
    char *raw = hdr_value(&a->m, f, &cut), *text = text_decode_header(a, raw);
    *full = !append_bounded(b, (const char *)a->m.p + f->name, f->name_len) ||
            !append_bounded(b, ": ", 2) || !append_bounded(b, text, strlen(text)) ||
            !append_bounded(b, "\n", 1);
    sm_freep(&raw);
    sm_freep(&text);
}

/* The top-level header fields, decoded: first the fields SEARCH keeps
 * (FROM, TO, ... match on these lines), then every other field but the
 * MIME ones, so that TEXT finds a word in any of them (RFC 9051 §6.4.4:
 * "the header ... or body of the message"), and a long header cut at
 * MIME_SEARCH_HEADERS_MAX loses the least useful fields. */
static void collect_headers(struct analysis *a, const struct mnode *root, struct sm_buf *b,
                            bool *full)
{
    struct hfield f;
    size_t pos = root->hdr_start;
    while (!*full && hdr_next(&a->m, &pos, root->hdr_end, &f))
        if (field_in(a, &f, search_header_names, N_SEARCH_HEADER_NAMES))
            put_field(a, &f, b, full);
    pos = root->hdr_start;
    while (!*full && hdr_next(&a->m, &pos, root->hdr_end, &f))
        if (!field_in(a, &f, search_header_names, N_SEARCH_HEADER_NAMES) &&
            !field_in(a, &f, mime_header_names, 3))
            put_field(a, &f, b, full);
}

/* Append "value" to line, line breaks and controls made blanks. */
static void line_add(struct sm_buf *line, const char *value)
{
    char *clean = text_utf8_sanitise(value, strlen(value));
    for (char *c = clean; *c != '\0'; c++)
        if (*c == '\n' || *c == '\t')
            *c = ' ';
    sm_buf_append(line, clean, strlen(clean));
    sm_freep(&clean);
}

static void line_params(struct sm_buf *line, const struct mparam *p, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        sm_buf_append(line, "; ", 2);
        line_add(line, p[i].name);
        sm_buf_append(line, "=", 1);
        line_add(line, p[i].value);
    }
}

static void put_line(struct sm_buf *b, struct sm_buf *line, bool *full)
{
    if (!*full && line->len > 0)
        *full = !append_bounded(b, line->data, line->len) || !append_bounded(b, "\n", 1);
    sm_buf_free(line);
}

/* The MIME header fields of every part (RFC 9051 §6.4.4: TEXT looks at
 * them too), as "Name: value" lines with the parameter values decoded
 * (RFC 2231 continuations and charsets, RFC 2047 words), so that TEXT
 * finds an attachment by its file name. */
static void collect_mime_headers(struct analysis *a, const struct mnode *n, struct sm_buf *b,
                                 bool *full)
{
    for (; n != NULL && !*full; n = n->next) {
        struct sm_buf line;
        struct hfield f;
        sm_buf_init(&line, 0);
        /* a default type is no header to find */
        if (hdr_find(&a->m, n->hdr_start, n->hdr_end, "Content-Type", false, &f)) {
            sm_buf_printf(&line, "Content-Type: ");
            line_add(&line, n->type);
            sm_buf_append(&line, "/", 1);
            line_add(&line, n->subtype);
            line_params(&line, n->params, n->n_params);
        }
        put_line(b, &line, full);
        sm_buf_init(&line, 0);
        if (n->disposition != NULL) {
            sm_buf_printf(&line, "Content-Disposition: ");
            line_add(&line, n->disposition);
            line_params(&line, n->disp_params, n->n_disp_params);
        }
        put_line(b, &line, full);
        sm_buf_init(&line, 0);
        if (n->description != NULL) {
            char *text = text_decode_header(a, n->description);
            sm_buf_printf(&line, "Content-Description: ");
            line_add(&line, text);
            sm_freep(&text);
        }
        put_line(b, &line, full);
        collect_mime_headers(a, n->child, b, full);
    }
}

void text_extract(struct analysis *a, const struct mnode *root, struct mime_summary *out)
{
    struct sm_buf b;
    bool full = false;
    size_t input = INPUT_MAX;
    sm_buf_init(&b, MIME_SEARCH_HEADERS_MAX);
    collect_headers(a, root, &b, &full);
    collect_mime_headers(a, root, &b, &full);
    out->search_headers = sm_strdup(sm_buf_str(&b));
    sm_buf_free(&b);
    out->search_truncated = full;

    full = false;
    sm_buf_init(&b, MIME_SEARCH_TEXT_MAX);
    collect(a, root, &b, &input, &full);
    out->search_text = sm_strdup(sm_buf_str(&b));
    sm_buf_free(&b);
    out->search_truncated |= full;
}

char *mime_casemap(const char *s)
{
    char *valid = text_utf8_sanitise(s, strlen(s));
    struct sm_buf b;
    sm_buf_init(&b, 0);
    for (char *p = valid; *p != '\0'; p = g_utf8_next_char(p)) {
        char out[6];
        gint n = g_unichar_to_utf8(g_unichar_totitle(g_utf8_get_char(p)), out);
        sm_buf_append(&b, out, (size_t)n);
    }
    gchar *nfd = g_utf8_normalize(sm_buf_str(&b), -1, G_NORMALIZE_NFD);
    char *key = sm_strdup(nfd != NULL ? nfd : sm_buf_str(&b));
    g_free(nfd);
    sm_buf_free(&b);
    sm_freep(&valid);
    return key;
}
