/* raw.c — lines, header fields, boundary lines and line counts of the raw
 * message bytes (see internal.h).
 *
 * Header fields follow RFC 5322 §2.2 leniently: a field is "name:" at the
 * start of a line plus the following lines that start with a blank; a
 * line whose name is empty or contains blanks, controls or 8-bit bytes is
 * ignored with its continuations (GMime and Dovecot do the same).
 *
 * Boundary lines follow RFC 2046 §5.1.1 and Dovecot: a line that starts
 * with "--" and then a boundary of an open multipart; only the prefix has
 * to match ("boundary comparisons must compare the boundary value with the
 * beginning of each candidate line").  When several open boundaries match,
 * the longest wins, and among equals the innermost; "--boundary--" is the
 * close delimiter.
 *
 * Line counts and IMAP sizes come from a checkpoint index built in one
 * pass (LF and bare-LF counts every 4 KiB), so any range costs at most
 * 4 KiB of scanning however deeply parts are nested. */
#include "mime/internal.h"

#include <string.h>
#include <strings.h>

#include "core/mem.h"

#define CP_SHIFT 12 /* checkpoint every 4 KiB */

static bool is_blank(unsigned char c)
{
    return c == ' ' || c == '\t';
}

size_t line_next(const struct msg *m, size_t pos)
{
    if (pos >= m->len)
        return m->len;
    const unsigned char *q = memchr(m->p + pos, '\n', m->len - pos);
    return q != NULL ? (size_t)(q - m->p) + 1 : m->len;
}

bool line_blank(const struct msg *m, size_t pos)
{
    if (pos >= m->len)
        return false;
    if (m->p[pos] == '\n')
        return true;
    return m->p[pos] == '\r' && pos + 1 < m->len && m->p[pos + 1] == '\n';
}

/* Count LFs and bare LFs (not preceded by CR) in [start, end). */
static void count_lf(const struct msg *m, size_t start, size_t end, uint64_t *lf, uint64_t *bare)
{
    size_t pos = start;
    while (pos < end) {
        const unsigned char *q = memchr(m->p + pos, '\n', end - pos);
        if (q == NULL)
            break;
        size_t at = (size_t)(q - m->p);
        (*lf)++;
        if (at == 0 || m->p[at - 1] != '\r')
            (*bare)++;
        pos = at + 1;
    }
}

void msg_index(struct msg *m)
{
    m->n_cp = (m->len >> CP_SHIFT) + 1;
    m->cp_lf = sm_calloc(m->n_cp, sizeof *m->cp_lf);
    m->cp_bare = sm_calloc(m->n_cp, sizeof *m->cp_bare);
    uint64_t lf = 0, bare = 0;
    for (size_t i = 1; i < m->n_cp; i++) {
        count_lf(m, (i - 1) << CP_SHIFT, i << CP_SHIFT, &lf, &bare);
        m->cp_lf[i] = lf;
        m->cp_bare[i] = bare;
    }
}

void msg_free(struct msg *m)
{
    sm_freep(&m->cp_lf);
    sm_freep(&m->cp_bare);
    m->n_cp = 0;
}

static void prefix(const struct msg *m, size_t pos, uint64_t *lf, uint64_t *bare)
{
    size_t i = pos >> CP_SHIFT;
    *lf = m->cp_lf[i];
    *bare = m->cp_bare[i];
    count_lf(m, i << CP_SHIFT, pos, lf, bare);
}

uint64_t msg_lines(const struct msg *m, size_t start, size_t end)
{
    uint64_t lf0, bare0, lf1, bare1;
    if (end <= start)
        return 0;
    prefix(m, start, &lf0, &bare0);
    prefix(m, end, &lf1, &bare1);
    return lf1 - lf0;
}

uint64_t msg_vsize(const struct msg *m, size_t start, size_t end)
{
    uint64_t lf0, bare0, lf1, bare1;
    if (end <= start)
        return 0;
    prefix(m, start, &lf0, &bare0);
    prefix(m, end, &lf1, &bare1);
    return (uint64_t)(end - start) + (bare1 - bare0);
}

/* The field name of the line [start, eol): length of the name, or 0 if
 * the line is not a valid field; *colon_r is the position of ':'. */
static size_t field_name(const struct msg *m, size_t start, size_t eol, size_t *colon_r)
{
    const unsigned char *colon = memchr(m->p + start, ':', eol - start);
    if (colon == NULL)
        return 0;
    size_t c = (size_t)(colon - m->p), n = c - start;
    while (n > 0 && is_blank(m->p[start + n - 1]))
        n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = m->p[start + i];
        if (ch <= ' ' || ch >= 0x7f)
            return 0;
    }
    *colon_r = c;
    return n;
}

bool hdr_next(const struct msg *m, size_t *pos, size_t end, struct hfield *f)
{
    while (*pos < end) {
        size_t start = *pos, eol = line_next(m, start);
        if (eol > end)
            eol = end;
        /* the field runs on over continuation lines */
        size_t fend = eol;
        while (fend < end && is_blank(m->p[fend])) {
            fend = line_next(m, fend);
            if (fend > end)
                fend = end;
        }
        *pos = fend;
        size_t colon;
        if (is_blank(m->p[start]) || (f->name_len = field_name(m, start, eol, &colon)) == 0)
            continue;
        f->name = start;
        f->value_end = fend;
        if (f->value_end > start && m->p[f->value_end - 1] == '\n')
            f->value_end--;
        if (f->value_end > start && m->p[f->value_end - 1] == '\r')
            f->value_end--; /* CRLF, or a CR alone at the end of the file */
        f->value = colon + 1;
        while (f->value < f->value_end && is_blank(m->p[f->value]))
            f->value++;
        if (f->value > f->value_end)
            f->value = f->value_end;
        return true;
    }
    return false;
}

bool hdr_find(const struct msg *m, size_t start, size_t end, const char *name, bool last,
              struct hfield *f)
{
    size_t len = strlen(name), pos = start;
    bool found = false;
    struct hfield cur;
    while (hdr_next(m, &pos, end, &cur)) {
        if (cur.name_len != len || strncasecmp((const char *)m->p + cur.name, name, len) != 0)
            continue;
        *f = cur;
        found = true;
        if (!last)
            break;
    }
    return found;
}

char *hdr_value(const struct msg *m, const struct hfield *f, bool *truncated)
{
    size_t n = f->value_end - f->value;
    if (n > MIME_HEADER_MAX) {
        n = MIME_HEADER_MAX;
        *truncated = true;
    }
    const unsigned char *v = m->p + f->value;
    size_t nuls = 0;
    for (size_t i = 0; i < n; i++)
        nuls += v[i] == '\0';
    char *out = sm_malloc(n + 2 * nuls + 1), *o = out; /* @UNSAFE: NUL -> 3 bytes */
    for (size_t i = 0; i < n; i++) {
        if (v[i] != '\0') {
            *o++ = (char)v[i];
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
        }
    }
    *o = '\0';
    return out;
}

char *hdr_value_raw(const struct msg *m, const struct hfield *f, size_t *len_r, bool *truncated)
{
    size_t n = f->value_end - f->value;
    if (n > MIME_HEADER_MAX) {
        n = MIME_HEADER_MAX;
        *truncated = true;
    }
    char *out = sm_malloc(n + 1);
    memcpy(out, m->p + f->value, n);
    *len_r = n;
    return out;
}

int bstack_match(const struct bstack *st, const struct msg *m, size_t pos, bool *final)
{
    if (st->off || st->n == 0 || pos + 2 > m->len || m->p[pos] != '-' || m->p[pos + 1] != '-')
        return -1;
    const unsigned char *data = m->p + pos + 2;
    const unsigned char *lf = memchr(data, '\n', m->len - pos - 2);
    size_t dlen = lf != NULL ? (size_t)(lf - data) : m->len - pos - 2;
    if (lf != NULL && dlen > 0 && data[dlen - 1] == '\r')
        dlen--;
    bool dashes = dlen > 2 && data[dlen - 1] == '-' && data[dlen - 2] == '-';
    int best = -1;
    for (int i = (int)st->n - 1; i >= 0; i--) {
        size_t len = st->len[i];
        if (len > dlen || memcmp(st->s[i], data, len) != 0)
            continue;
        if (best < 0 || st->len[best] < len)
            best = i;
        if (len == dlen || (len + 2 == dlen && dashes))
            break; /* exactly this boundary: there is no better one */
    }
    if (best >= 0) {
        size_t len = st->len[best];
        *final = dlen >= len + 2 && data[len] == '-' && data[len + 1] == '-';
    }
    return best;
}

size_t bstack_scan(const struct bstack *st, const struct msg *m, size_t pos)
{
    bool final;
    if (st->off || st->n == 0)
        return m->len;
    while (pos < m->len) {
        if (m->p[pos] == '-' && bstack_match(st, m, pos, &final) >= 0)
            return pos;
        pos = line_next(m, pos);
    }
    return m->len;
}
