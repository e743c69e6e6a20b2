/* section.c — FETCH BODY[section] and BINARY[part] from a stored message
 * (see section.h).
 *
 * Design: the part offsets stored at delivery say where every numbered
 * part lies; what they do not say is read from the few header bytes a
 * request needs.  A part is a container when the next entry in document
 * order is numbered below it ("2" then "2.1"), since tree.c numbers the
 * contents of exactly the multiparts and messages it opened; a container
 * is a message/rfc822 unless its first Content-Type names a multipart.  The
 * header of an encapsulated message ends at its first empty line, as in
 * tree.c.  So a request costs one pass over the bytes it serves, and the
 * structure walk and GMime are not needed again.
 *
 * Every output goes through one sink that converts to IMAP form on the
 * fly: it counts octets of the whole section, keeps only those inside the
 * partial window, replaces NUL by 0x80 for BODY and stops early once the
 * window is full (BODY only: BINARY decodes to the end to see errors).  The sizes are the same counts without a window, so
 * BINARY.SIZE never stores anything.
 *
 * BINARY of a container copies the bytes between its leaves as they are
 * (in CRLF form) and replaces each leaf by its decoded body, its header
 * rewritten to "Content-Transfer-Encoding: binary" when something was
 * decoded; the leaves are a run of the flat part list, so nothing recurses.
 * The decoders follow Dovecot 2.3's rules for what is invalid: base64 skips
 * only CR, LF, space and tab and allows nothing but white space after its
 * padding; quoted-printable allows soft breaks with trailing blanks,
 * lowercase hex, and no lone CR or broken "=" escape. */
#include "mime/section.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "core/mem.h"
#include "mime/internal.h"

/* ---- the output sink ---- */

struct sink {
    struct sm_buf *out; /* NULL: only count */
    uint64_t pos;       /* octets of the whole section so far */
    uint64_t from, to;  /* the partial window [from, to) */
    bool body;          /* BODY: NUL goes out as 0x80 */
    bool to_end;        /* produce to the end even past the window (BINARY:
                         * data that does not decode fails the partial too) */
    bool has_nul;       /* a NUL went out (BINARY) */
    bool full;          /* out->max was reached */
    bool done;          /* the window is complete: stop producing */
};

static void sink_init(struct sink *s, struct sm_buf *out, const struct section_partial *partial,
                      bool body)
{
    memset(s, 0, sizeof *s);
    s->out = out;
    s->body = body;
    s->to = UINT64_MAX;
    if (partial != NULL) {
        s->from = partial->origin;
        s->to = partial->count > UINT64_MAX - partial->origin ? UINT64_MAX
                                                              : partial->origin + partial->count;
    }
}

/* Append p[0..n) to the buffer, NUL as 0x80 for BODY. */
static void sink_store(struct sink *s, const unsigned char *p, size_t n)
{
    const unsigned char *nul = memchr(p, '\0', n);
    if (nul != NULL && !s->body)
        s->has_nul = true;
    while (nul != NULL && s->body && !s->full) {
        size_t k = (size_t)(nul - p);
        if (sm_buf_append(s->out, p, k) < 0 || sm_buf_append(s->out, "\x80", 1) < 0)
            s->full = true;
        p += k + 1;
        n -= k + 1;
        nul = memchr(p, '\0', n);
    }
    if (!s->full && sm_buf_append(s->out, p, n) < 0)
        s->full = true;
}

/* The section continues with p[0..n). */
static void emit(struct sink *s, const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t start = s->pos;
    s->pos += n;
    if (s->out == NULL || s->done || s->full)
        return;
    if (s->pos > s->from && start < s->to) {
        uint64_t a = start < s->from ? s->from - start : 0;
        uint64_t b = s->pos > s->to ? s->to - start : n;
        sink_store(s, p + a, (size_t)(b - a));
    }
    if (s->pos >= s->to || s->full)
        s->done = true;
}

/* Whether the producer may stop: the window is complete or failed. */
static bool sink_stop(const struct sink *s)
{
    return (s->done && !s->to_end) || s->full;
}

/* Emit m[start, end) with every LF that is not preceded by CR (in the
 * message, as msg_vsize() counts it) sent as CRLF. */
static void emit_crlf(struct sink *s, const struct msg *m, size_t start, size_t end)
{
    size_t seg = start;
    while (seg < end && !sink_stop(s)) {
        const unsigned char *lf = memchr(m->p + seg, '\n', end - seg);
        size_t at = lf != NULL ? (size_t)(lf - m->p) : end;
        if (lf == NULL || (at > 0 && m->p[at - 1] == '\r')) {
            emit(s, m->p + seg, (lf != NULL ? at + 1 : end) - seg);
        } else {
            emit(s, m->p + seg, at - seg);
            emit(s, "\r\n", 2);
        }
        seg = lf != NULL ? at + 1 : end;
    }
}

/* ---- the parts ---- */

/* One part's offsets, clamped to the message so that stale or damaged
 * offsets can only select wrong bytes, never bytes outside it. */
struct span {
    size_t hs, bs, be; /* header start, body start, body end */
};

/* Length of the line break that ends [start, end): 2, 1 or 0. */
static size_t final_break(const struct msg *m, size_t start, size_t end)
{
    if (end <= start || m->p[end - 1] != '\n')
        return 0;
    return end - 1 > start && m->p[end - 2] == '\r' ? 2 : 1;
}

/* Part i's span.  A part whose body is empty and ends where a boundary
 * line starts (not at the line break before it: then the body was one
 * empty line) gives the line break before that line to the boundary
 * (RFC 2046 §5.1.1), also when it ends the header or its empty line:
 * the header then ends one line break earlier, as Dovecot serves it. */
static struct span part_span(const struct section_msg *sm, const struct msg *m, unsigned i)
{
    const struct mime_part_offsets *p = &sm->parts[i];
    struct span r;
    r.be = p->body_end < m->len ? (size_t)p->body_end : m->len;
    r.bs = p->body_start < r.be ? (size_t)p->body_start : r.be;
    r.hs = p->header_start < r.bs ? (size_t)p->header_start : r.bs;
    if (r.bs == r.be && r.be < m->len && m->p[r.be] == '-')
        r.bs = r.be = r.bs - final_break(m, r.hs, r.bs);
    return r;
}

/* Whether section s is below section parent ("2.1" below "2"). */
static bool below(const char *s, const char *parent)
{
    size_t n = strlen(parent);
    return strncmp(s, parent, n) == 0 && s[n] == '.';
}

/* Index of the part numbered num[0..n), or -1. */
static int find_part(const struct section_msg *sm, const unsigned *num, unsigned n)
{
    char want[SECTION_PART_MAX * 11 + 1]; /* @UNSAFE: ten digits and a dot per number */
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) {
        int k = snprintf(want + len, sizeof want - len, i > 0 ? ".%u" : "%u", num[i]);
        if (k < 0 || (size_t)k >= sizeof want - len)
            return -1;
        len += (size_t)k;
    }
    for (unsigned i = 0; i < sm->n_parts; i++)
        if (sm->parts[i].section != NULL && strcmp(sm->parts[i].section, want) == 0)
            return (int)i;
    return -1;
}

/* Whether part i contains numbered parts (a multipart or message). */
static bool is_container(const struct section_msg *sm, unsigned i)
{
    return i + 1 < sm->n_parts && sm->parts[i].section != NULL &&
           sm->parts[i + 1].section != NULL &&
           below(sm->parts[i + 1].section, sm->parts[i].section);
}

/* The end of part i's subtree in the list: one past its last descendant. */
static unsigned subtree_end(const struct section_msg *sm, unsigned i)
{
    unsigned j = i + 1;
    while (j < sm->n_parts && sm->parts[j].section != NULL &&
           below(sm->parts[j].section, sm->parts[i].section))
        j++;
    return j;
}

static bool is_blank(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* Skip white space, line breaks and nested comments in [s, e). */
static const unsigned char *skip_cfws(const unsigned char *s, const unsigned char *e)
{
    unsigned depth = 0;
    for (; s < e; s++) {
        if (depth > 0 && *s == '\\' && s + 1 < e)
            s++;
        else if (*s == '(')
            depth++;
        else if (*s == ')' && depth > 0)
            depth--;
        else if (depth == 0 && !is_blank(*s) && *s != '\r' && *s != '\n')
            break;
    }
    return s;
}

static bool token_char(unsigned char c)
{
    return c > ' ' && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* The first token of the first field called name in [hs, he): sets
 * *tok and *len (0 when the field is absent or starts with no token) and
 * *follow to what comes after it and CFWS ('\0' at the end of the value).
 * Returns whether the field exists. */
static bool field_token(const struct msg *m, size_t hs, size_t he, const char *name,
                        const unsigned char **tok, size_t *len, int *follow)
{
    struct hfield f;
    *len = 0;
    *follow = '\0';
    if (!hdr_find(m, hs, he, name, false, &f))
        return false;
    const unsigned char *e = m->p + f.value_end;
    const unsigned char *s = skip_cfws(m->p + f.value, e), *t = s;
    while (t < e && token_char(*t))
        t++;
    *tok = s;
    *len = (size_t)(t - s);
    t = skip_cfws(t, e);
    *follow = t < e ? *t : '\0';
    return true;
}

/* Whether the container part i is a multipart (else it is a message). */
static bool is_multipart(const struct msg *m, struct span sp)
{
    const unsigned char *tok;
    size_t len;
    int follow;
    field_token(m, sp.hs, sp.bs, "Content-Type", &tok, &len, &follow);
    return len == 9 && strncasecmp((const char *)tok, "multipart", 9) == 0;
}

/* Whether part i is a message/rfc822 that tree.c opened. */
static bool is_message(const struct section_msg *sm, const struct msg *m, unsigned i)
{
    return is_container(sm, i) && !is_multipart(m, part_span(sm, m, i));
}

/* The header block at start, within [start, end): *hdr_end is where its
 * empty line starts (or end), *body where the text starts. */
static void header_block(const struct msg *m, size_t start, size_t end, size_t *hdr_end,
                         size_t *body)
{
    size_t pos = start;
    while (pos < end) {
        if (line_blank(m, pos)) {
            size_t next = line_next(m, pos);
            *hdr_end = pos;
            *body = next < end ? next : end;
            return;
        }
        pos = line_next(m, pos);
    }
    *hdr_end = *body = end;
}

/* ---- header fields ---- */

struct names {
    const char *const *v;
    unsigned n;
    size_t *len;
};

static bool name_listed(const struct names *l, const unsigned char *name, size_t len)
{
    for (unsigned i = 0; i < l->n; i++)
        if (l->len[i] == len && strncasecmp(l->v[i], (const char *)name, len) == 0)
            return true;
    return false;
}

/* The field name of the line [pos, eol): bytes before ':' without the
 * blanks before it; none (len 0) without ':' or when over the bound. */
static size_t line_name(const struct msg *m, size_t pos, size_t eol)
{
    const unsigned char *colon = memchr(m->p + pos, ':', eol - pos);
    if (colon == NULL)
        return 0;
    size_t n = (size_t)(colon - (m->p + pos));
    while (n > 0 && is_blank(m->p[pos + n - 1]))
        n--;
    return n <= SECTION_FIELD_NAME_MAX ? n : 0;
}

/* Emit the lines of the header block [hs, he) whose field is (exclude:
 * is not) listed, continuation lines with their field, each ending in
 * CRLF (a last line without LF gets none).  Lines that are no field have
 * no name: only HEADER.FIELDS.NOT keeps them (Dovecot's header parser). */
static void emit_fields(struct sink *s, const struct msg *m, size_t hs, size_t he,
                        const struct names *l, bool exclude)
{
    bool matched = false, continued = false;
    size_t pos = hs;
    while (pos < he && !sink_stop(s)) {
        const unsigned char *lf = memchr(m->p + pos, '\n', he - pos);
        size_t eol = lf != NULL ? (size_t)(lf - m->p) : he, text_end = eol;
        if (lf != NULL && eol > pos && m->p[eol - 1] == '\r')
            text_end--;
        if (!continued) {
            size_t n = line_name(m, pos, eol);
            matched = n > 0 && name_listed(l, m->p + pos, n);
        }
        if (matched != exclude) {
            emit(s, m->p + pos, text_end - pos);
            if (lf != NULL)
                emit(s, "\r\n", 2);
        }
        continued = lf != NULL && eol + 1 < he && is_blank(m->p[eol + 1]);
        pos = lf != NULL ? eol + 1 : he;
    }
}

/* ---- BODY ---- */

static enum section_status bad(const char **error_r, const char *why)
{
    *error_r = why;
    return SECTION_BAD;
}

static enum section_status check_spec(const struct section_spec *spec, bool binary,
                                      const char **error_r)
{
    if (spec->n_part > SECTION_PART_MAX)
        return bad(error_r, "section: part number too deep");
    if (spec->n_part > 0 && spec->part == NULL)
        return bad(error_r, "section: part numbers missing");
    for (unsigned i = 0; i < spec->n_part; i++)
        if (spec->part[i] == 0)
            return bad(error_r, "section: part number 0");
    if (binary && spec->kind != SECTION_NONE)
        return bad(error_r, "section: BINARY takes only a part number");
    switch (spec->kind) {
    case SECTION_NONE:
    case SECTION_HEADER:
    case SECTION_TEXT:
        return SECTION_OK;
    case SECTION_MIME:
        return spec->n_part > 0 ? SECTION_OK : bad(error_r, "section: MIME needs a part number");
    case SECTION_HEADER_FIELDS:
    case SECTION_HEADER_FIELDS_NOT:
        if (spec->n_fields == 0 || spec->fields == NULL)
            return bad(error_r, "section: empty header field list");
        if (spec->n_fields > SECTION_FIELDS_MAX)
            return bad(error_r, "section: too many header field names");
        for (unsigned i = 0; i < spec->n_fields; i++) {
            size_t n = spec->fields[i] != NULL ? strlen(spec->fields[i]) : 0;
            if (n == 0 || n > SECTION_FIELD_NAME_MAX)
                return bad(error_r, "section: empty or overlong header field name");
        }
        return SECTION_OK;
    }
    return bad(error_r, "section: unknown section kind");
}

/* Where a BODY section lies: raw bytes [start, end), or for the field
 * kinds the header lines [start, end), then an empty line if eoh. */
struct target {
    size_t start, end;
    bool fields, exclude, eoh;
};

/* The HEADER/TEXT/FIELDS kinds of the message in [start, end).  When
 * its text is empty and a boundary line starts at end, the last line
 * break of the header belongs to that boundary (see part_span()). */
static void message_target(const struct msg *m, const struct section_spec *spec, size_t start,
                           size_t end, struct target *t)
{
    size_t hdr_end, body, text;
    t->start = start;
    t->end = end;
    if (spec->kind == SECTION_NONE) /* the whole message: no header boundary needed */
        return;
    header_block(m, start, end, &hdr_end, &text);
    t->eoh = text > hdr_end;
    body = text;
    if (body == end && end < m->len && m->p[end] == '-') {
        body -= final_break(m, start, body);
        hdr_end = hdr_end < body ? hdr_end : body;
    }
    if (spec->kind == SECTION_HEADER) {
        t->end = body;
    } else if (spec->kind == SECTION_TEXT) {
        t->start = text;
    } else if (spec->kind != SECTION_NONE) {
        t->end = hdr_end;
        t->fields = true;
        t->exclude = spec->kind == SECTION_HEADER_FIELDS_NOT;
    }
}

/* Resolve spec; false when the section does not exist (empty string). */
static bool body_target(const struct section_msg *sm, const struct msg *m,
                        const struct section_spec *spec, struct target *t)
{
    memset(t, 0, sizeof *t);
    if (spec->n_part == 0) {
        message_target(m, spec, 0, m->len, t);
        return true;
    }
    int i = find_part(sm, spec->part, spec->n_part);
    if (i < 0)
        return false;
    struct span sp = part_span(sm, m, (unsigned)i);
    if (spec->kind == SECTION_NONE || spec->kind == SECTION_MIME) {
        t->start = spec->kind == SECTION_MIME ? sp.hs : sp.bs;
        t->end = spec->kind == SECTION_MIME ? sp.bs : sp.be;
        return true;
    }
    if (!is_message(sm, m, (unsigned)i))
        return false;
    message_target(m, spec, sp.bs, sp.be, t);
    return true;
}

static void msg_of(const struct section_msg *sm, struct msg *m)
{
    memset(m, 0, sizeof *m);
    m->p = sm->data;
    m->len = sm->data != NULL ? sm->len : 0;
}

/* Produce BODY[spec] into s. */
static enum section_status body_run(const struct section_msg *sm, const struct section_spec *spec,
                                    struct sink *s, const char **error_r)
{
    enum section_status st = check_spec(spec, false, error_r);
    if (st != SECTION_OK)
        return st;
    struct msg m;
    struct target t;
    msg_of(sm, &m);
    if (!body_target(sm, &m, spec, &t))
        return SECTION_OK;
    if (!t.fields) {
        emit_crlf(s, &m, t.start, t.end);
        return SECTION_OK;
    }
    size_t lens[SECTION_FIELDS_MAX];
    struct names l = {spec->fields, spec->n_fields, lens};
    for (unsigned i = 0; i < l.n; i++)
        lens[i] = strlen(l.v[i]);
    emit_fields(s, &m, t.start, t.end, &l, t.exclude);
    if (t.eoh) /* RFC 9051: the blank line is included unless there is none */
        emit(s, "\r\n", 2);
    return SECTION_OK;
}

/* Finish a producing call: results, or undo what went into out. */
static enum section_status finish(enum section_status st, const struct sink *s, size_t before,
                                  struct section_result *res, const char **error_r)
{
    if (st == SECTION_OK && s->full) {
        *error_r = "section: the section is larger than the output limit";
        st = SECTION_TOO_BIG;
    }
    if (st != SECTION_OK) {
        s->out->len = before;
        if (s->out->data != NULL)
            s->out->data[before] = '\0';
        return st;
    }
    if (res != NULL) {
        res->size = s->out->len - before;
        res->has_nul = s->has_nul;
    }
    return SECTION_OK;
}

size_t section_header_length(const unsigned char *data, size_t len)
{
    struct msg m;
    size_t hdr_end, body;
    memset(&m, 0, sizeof m);
    m.p = data;
    m.len = data != NULL ? len : 0;
    header_block(&m, 0, m.len, &hdr_end, &body);
    /* line_blank() saw the empty line's LF, so body is just past it */
    return hdr_end < m.len ? body : 0;
}

bool section_header_complete(const unsigned char *data, size_t len)
{
    return section_header_length(data, len) > 0; /* a complete header ends past its LF */
}

bool section_header_only(const struct section_spec *spec)
{
    return spec->n_part == 0 &&
           (spec->kind == SECTION_HEADER || spec->kind == SECTION_HEADER_FIELDS ||
            spec->kind == SECTION_HEADER_FIELDS_NOT);
}

enum section_status section_body(const struct section_msg *m, const struct section_spec *spec,
                                 const struct section_partial *partial, struct sm_buf *out,
                                 struct section_result *res, const char **error_r)
{
    struct sink s;
    size_t before = out->len;
    sink_init(&s, out, partial, true);
    return finish(body_run(m, spec, &s, error_r), &s, before, res, error_r);
}

enum section_status section_body_size(const struct section_msg *m, const struct section_spec *spec,
                                      uint64_t *size_r, const char **error_r)
{
    struct sink s;
    sink_init(&s, NULL, NULL, true);
    enum section_status st = body_run(m, spec, &s, error_r);
    *size_r = st == SECTION_OK ? s.pos : 0;
    return st;
}

/* ---- decoders ---- */

/* Output of a decoder, gathered in small blocks. */
struct dec_out {
    struct sink *s;
    unsigned char b[4096];
    size_t n;
};

static void dec_put(struct dec_out *d, unsigned char c)
{
    d->b[d->n++] = c;
    if (d->n == sizeof d->b) {
        emit(d->s, d->b, d->n);
        d->n = 0;
    }
}

static void dec_flush(struct dec_out *d)
{
    emit(d->s, d->b, d->n);
    d->n = 0;
}

/* The base64 alphabet as a table: value + 1, 0 for other bytes. */
static void b64_table(unsigned char map[256])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    memset(map, 0, 256);
    for (unsigned i = 0; i < 64; i++)
        map[(unsigned char)alphabet[i]] = (unsigned char)(i + 1);
}

static bool b64_space(unsigned char c)
{
    return c == '\r' || c == '\n' || c == ' ' || c == '\t';
}

/* Decode base64 p[0..n): white space anywhere, "=" or "==" only to end
 * the last quantum, then only white space; a partial quantum is invalid. */
static bool decode_base64(struct sink *s, const unsigned char *p, size_t n)
{
    struct dec_out d = {.s = s, .n = 0};
    unsigned char map[256];
    unsigned q = 0, acc = 0; /* characters in the quantum, their bits */
    size_t i = 0;
    b64_table(map);
    for (; i < n; i++) {
        unsigned v = map[p[i]];
        if (v == 0 && b64_space(p[i]))
            continue;
        if (v == 0)
            break;
        acc = (acc << 6) | (v - 1);
        if (++q < 4)
            continue;
        d.b[d.n++] = (unsigned char)(acc >> 16);
        d.b[d.n++] = (unsigned char)(acc >> 8);
        d.b[d.n++] = (unsigned char)acc;
        q = acc = 0;
        if (d.n + 3 > sizeof d.b) { /* @UNSAFE: room for one more quantum */
            dec_flush(&d);
            if (sink_stop(s))
                return true;
        }
    }
    dec_flush(&d);
    if (sink_stop(s))
        return true;
    if (i == n)
        return q == 0;
    /* padding: "xx==" or "xxx=", white space allowed in and after it */
    if (p[i] != '=' || q < 2)
        return false;
    unsigned pads = 4 - q;
    for (; i < n && pads > 0; i++) {
        if (p[i] == '=')
            pads--;
        else if (!b64_space(p[i]))
            return false;
    }
    if (pads > 0)
        return false;
    for (; i < n; i++)
        if (!b64_space(p[i]))
            return false;
    d.b[0] = (unsigned char)(acc >> (q == 2 ? 4 : 10));
    d.b[1] = (unsigned char)(acc >> 2);
    emit(s, d.b, q - 1);
    return true;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

#define QP_BLANKS_MAX 76 /* a blank run longer than a line must be trailing */

/* One line of quoted-printable text [p, e) without its line break;
 * *soft is set when it ends in a soft break ("=" and blanks).  Trailing
 * blanks are dropped. */
static bool qp_line(struct dec_out *d, const unsigned char *p, const unsigned char *e, bool *soft)
{
    const unsigned char *end = e;
    while (end > p && is_blank(end[-1]))
        end--;
    *soft = false;
    for (const unsigned char *c = p; c < end; c++) {
        if (*c == '\r')
            return false; /* CR not followed by LF */
        if (*c == '=') {
            if (c + 1 == end) {
                *soft = true;
                return true;
            }
            int hi = hex_value(c[1]), lo = c + 2 < end ? hex_value(c[2]) : -1;
            if (hi < 0 || lo < 0)
                return false;
            dec_put(d, (unsigned char)(hi << 4 | lo));
            c += 2;
            continue;
        }
        if (is_blank(*c)) {
            const unsigned char *w = c;
            while (w < end && is_blank(*w))
                w++;
            if (w - c > QP_BLANKS_MAX)
                return false;
            for (; c + 1 < w; c++)
                dec_put(d, *c);
        }
        dec_put(d, *c);
    }
    return true;
}

/* Decode quoted-printable p[0..n): hard line breaks become CRLF. */
static bool decode_qp(struct sink *s, const unsigned char *p, size_t n)
{
    struct dec_out d = {.s = s, .n = 0};
    size_t pos = 0;
    bool ok = true;
    while (pos < n && ok && !sink_stop(s)) {
        const unsigned char *lf = memchr(p + pos, '\n', n - pos);
        const unsigned char *e = lf != NULL ? lf : p + n;
        if (lf != NULL && e > p + pos && e[-1] == '\r')
            e--;
        bool soft;
        ok = qp_line(&d, p + pos, e, &soft);
        if (ok && lf != NULL && !soft) {
            dec_put(&d, '\r');
            dec_put(&d, '\n');
        }
        if (ok && lf == NULL && soft)
            ok = false; /* "=" at the very end: nothing follows */
        pos = lf != NULL ? (size_t)(lf - p) + 1 : n;
    }
    dec_flush(&d);
    return ok || sink_stop(s);
}

/* ---- BINARY ---- */

enum cte { CTE_IDENTITY, CTE_BASE64, CTE_QP, CTE_UNKNOWN };

/* Whether part j is the top entity of a message: the whole message, or
 * what a message/rfc822 part encapsulates.  That is always a first child
 * ("2.1"), listed right after its parent, and starts where the parent's
 * body does. */
static bool message_level(const struct section_msg *sm, unsigned j)
{
    if (sm->parts[j].header_start == 0)
        return true;
    const char *sec = sm->parts[j].section;
    size_t n = sec != NULL ? strlen(sec) : 0;
    if (j == 0 || n < 3 || strcmp(sec + n - 2, ".1") != 0)
        return false;
    const char *ps = sm->parts[j - 1].section;
    return ps != NULL && strlen(ps) == n - 2 && strncmp(ps, sec, n - 2) == 0 &&
           sm->parts[j - 1].body_start == sm->parts[j].header_start;
}

/* The Content-Transfer-Encoding of the header [hs, he): the first field,
 * as for BODYSTRUCTURE (tree.c), ignored in the top-level header of a
 * message (msg_level) without MIME-Version and Content-Type (RFC 2045
 * §4).  Its value must be one token, which ";" and anything may follow; a
 * value that is not is an unknown encoding, like a token not known
 * (Dovecot's rule: nothing is served as decoded that may not be). */
static enum cte header_cte(const struct msg *m, size_t hs, size_t he, bool msg_level)
{
    const unsigned char *tok;
    size_t len;
    int follow;
    if (msg_level && !field_token(m, hs, he, "Content-Type", &tok, &len, &follow) &&
        !field_token(m, hs, he, "MIME-Version", &tok, &len, &follow))
        return CTE_IDENTITY;
    if (!field_token(m, hs, he, "Content-Transfer-Encoding", &tok, &len, &follow))
        return CTE_IDENTITY;
    if (len == 0 || (follow != '\0' && follow != ';'))
        return CTE_UNKNOWN;
    static const struct {
        const char *name;
        enum cte cte;
    } known[] = {{"7bit", CTE_IDENTITY}, {"8bit", CTE_IDENTITY}, {"binary", CTE_IDENTITY},
                 {"base64", CTE_BASE64}, {"quoted-printable", CTE_QP}};
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        if (strlen(known[k].name) == len && strncasecmp(known[k].name, (const char *)tok, len) == 0)
            return known[k].cte;
    return CTE_UNKNOWN;
}

static enum cte leaf_cte(const struct section_msg *sm, const struct msg *m, unsigned j,
                         struct span sp)
{
    return header_cte(m, sp.hs, sp.bs, message_level(sm, j));
}

static enum section_status decode_body(struct sink *s, const struct msg *m, enum cte cte,
                                       struct span sp, const char **error_r)
{
    bool ok = true;
    if (cte == CTE_IDENTITY)
        emit_crlf(s, m, sp.bs, sp.be);
    else if (cte == CTE_BASE64)
        ok = decode_base64(s, m->p + sp.bs, sp.be - sp.bs);
    else
        ok = decode_qp(s, m->p + sp.bs, sp.be - sp.bs);
    if (ok)
        return SECTION_OK;
    *error_r = cte == CTE_BASE64 ? "section: invalid base64 data in MIME part"
                                 : "section: invalid quoted-printable data in MIME part";
    return SECTION_CORRUPT;
}

/* The header of a decoded leaf: its fields but Content-Transfer-Encoding,
 * then "Content-Transfer-Encoding: binary" and the empty line, if any. */
static void emit_binary_header(struct sink *s, const struct msg *m, struct span sp)
{
    static const char *const cte_name[] = {"Content-Transfer-Encoding"};
    size_t len = strlen(cte_name[0]);
    struct names l = {cte_name, 1, &len};
    size_t hdr_end, body;
    header_block(m, sp.hs, sp.bs, &hdr_end, &body);
    emit_fields(s, m, sp.hs, hdr_end, &l, true);
    if (final_break(m, sp.hs, hdr_end) > 0 || hdr_end == sp.hs)
        emit(s, "Content-Transfer-Encoding: binary\r\n", 35);
    emit_crlf(s, m, hdr_end, body);
}

static enum section_status unknown_cte(const char **error_r)
{
    *error_r = "section: unknown Content-Transfer-Encoding";
    return SECTION_UNKNOWN_CTE;
}

/* Whether the encodings of part j and, for a message/rfc822 holding a
 * multipart, of that multipart's header (not in the list) are known.  A
 * container's encoding is not removed (RFC 2045 §6.4 allows only the
 * identities), but an unknown one fails BINARY as in Dovecot. */
static bool cte_known(const struct section_msg *sm, const struct msg *m, unsigned j)
{
    struct span sp = part_span(sm, m, j);
    if (header_cte(m, sp.hs, sp.bs, message_level(sm, j)) == CTE_UNKNOWN)
        return false;
    if (!is_container(sm, j) || sm->parts[j + 1].header_start == sm->parts[j].body_start ||
        is_multipart(m, sp))
        return true;
    size_t hdr_end, body;
    header_block(m, sp.bs, sp.be, &hdr_end, &body);
    return header_cte(m, sp.bs, hdr_end, true) != CTE_UNKNOWN;
}

/* BINARY of the bytes [start, end) holding the parts [first, last) of the
 * list: raw between leaves, each leaf with its header and decoded body.
 * Every encoding is checked first, so an unknown one anywhere is
 * reported before data that does not decode (Dovecot's order). */
static enum section_status binary_run(const struct section_msg *sm, const struct msg *m,
                                      size_t start, size_t end, unsigned first, unsigned last,
                                      struct sink *s, const char **error_r)
{
    for (unsigned j = first; j < last; j++)
        if (!cte_known(sm, m, j))
            return unknown_cte(error_r);
    size_t cur = start;
    for (unsigned j = first; j < last && !sink_stop(s); j++) {
        if (is_container(sm, j))
            continue; /* its bytes are copied around its leaves */
        struct span sp = part_span(sm, m, j);
        if (sp.hs < cur || sp.be > end)
            continue; /* inconsistent offsets: keep the bytes as they are */
        enum cte cte = leaf_cte(sm, m, j, sp);
        emit_crlf(s, m, cur, sp.hs);
        if (cte == CTE_IDENTITY)
            emit_crlf(s, m, sp.hs, sp.bs);
        else
            emit_binary_header(s, m, sp);
        enum section_status st = decode_body(s, m, cte, sp, error_r);
        if (st != SECTION_OK)
            return st;
        cur = sp.be;
    }
    emit_crlf(s, m, cur, end);
    return SECTION_OK;
}

static enum section_status binary_produce(const struct section_msg *sm,
                                          const struct section_spec *spec, struct sink *s,
                                          const char **error_r)
{
    enum section_status st = check_spec(spec, true, error_r);
    if (st != SECTION_OK)
        return st;
    struct msg m;
    msg_of(sm, &m);
    if (spec->n_part == 0) {
        size_t hdr_end, body; /* the top multipart's header is not in the list */
        header_block(&m, 0, m.len, &hdr_end, &body);
        if ((sm->n_parts == 0 || sm->parts[0].header_start != 0) &&
            header_cte(&m, 0, hdr_end, true) == CTE_UNKNOWN)
            return unknown_cte(error_r);
        return binary_run(sm, &m, 0, m.len, 0, sm->n_parts, s, error_r);
    }
    int i = find_part(sm, spec->part, spec->n_part);
    if (i < 0)
        return SECTION_OK;
    unsigned last = subtree_end(sm, (unsigned)i);
    struct span sp = part_span(sm, &m, (unsigned)i);
    if (!cte_known(sm, &m, (unsigned)i))
        return unknown_cte(error_r);
    if (last == (unsigned)i + 1) /* a leaf: its body alone */
        return decode_body(s, &m, leaf_cte(sm, &m, (unsigned)i, sp), sp, error_r);
    return binary_run(sm, &m, sp.bs, sp.be, (unsigned)i + 1, last, s, error_r);
}

enum section_status section_binary(const struct section_msg *m, const struct section_spec *spec,
                                   const struct section_partial *partial, struct sm_buf *out,
                                   struct section_result *res, const char **error_r)
{
    struct sink s;
    size_t before = out->len;
    sink_init(&s, out, partial, false);
    s.to_end = true;
    return finish(binary_produce(m, spec, &s, error_r), &s, before, res, error_r);
}

enum section_status section_binary_size(const struct section_msg *m,
                                        const struct section_spec *spec, uint64_t *size_r,
                                        const char **error_r)
{
    struct sink s;
    sink_init(&s, NULL, NULL, false);
    enum section_status st = binary_produce(m, spec, &s, error_r);
    *size_r = st == SECTION_OK ? s.pos : 0;
    return st;
}

/* ---- files ---- */

int section_file_open(int fd, struct section_file *f, const char **error_r)
{
    struct stat st;
    memset(f, 0, sizeof *f);
    if (mime_analyse_fd(fd, &f->summary, error_r) < 0)
        return -1;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
        (uint64_t)st.st_size > SIZE_MAX) {
        *error_r = "section: cannot stat the message file";
        section_file_close(f);
        return -1;
    }
    size_t len = (size_t)st.st_size;
    if (len > 0) {
        void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            *error_r = errno == ENOMEM ? "section: out of address space mapping the message"
                                       : "section: cannot map the message file";
            section_file_close(f);
            return -1;
        }
        f->map = map;
        f->map_len = len;
    }
    f->msg.data = f->map;
    f->msg.len = f->map_len;
    f->msg.parts = f->summary.parts;
    f->msg.n_parts = f->summary.n_sections;
    return 0;
}

void section_file_close(struct section_file *f)
{
    if (f->map != NULL)
        munmap(f->map, f->map_len);
    mime_summary_free(&f->summary);
    memset(f, 0, sizeof *f);
}

const char *section_status_name(enum section_status st)
{
    static const char *const names[] = {"ok", "bad", "too-big", "unknown-cte", "corrupt"};
    return (unsigned)st < sizeof names / sizeof names[0] ? names[st] : "?";
}
