/* canon.c — DKIM header and body canonicalisation (canon.h, RFC 6376 §3.4). */
#include "mailauth/canon.h"

#include <string.h>

#include "core/log.h"

static bool is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

static void put(struct sm_buf *out, const char *p, size_t n)
{
    if (sm_buf_append(out, p, n) < 0)
        sm_panic("canon: output buffer has a maximum");
}

/* The field without its final CRLF, if it has one. */
static size_t strip_crlf(const char *field, size_t len)
{
    if (len >= 2 && field[len - 2] == '\r' && field[len - 1] == '\n')
        return len - 2;
    return len;
}

static void relaxed_header(const char *f, size_t len, struct sm_buf *out)
{
    const char *colon = memchr(f, ':', len);
    size_t nlen = colon ? (size_t)(colon - f) : len;
    size_t ne = nlen;
    while (ne > 0 && (is_wsp(f[ne - 1]) || f[ne - 1] == '\r' || f[ne - 1] == '\n'))
        ne--;
    for (size_t i = 0; i < ne; i++) {
        char c = f[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        put(out, &c, 1);
    }
    put(out, ":", 1);
    if (colon == NULL)
        return;
    bool started = false, space = false;
    for (size_t i = nlen + 1; i < len; i++) {
        char c = f[i];
        if (c == '\r' && i + 1 < len && f[i + 1] == '\n') {
            i++; /* unfold: the CRLF goes, the WSP after it is folded below */
            continue;
        }
        if (is_wsp(c)) {
            space = true;
            continue;
        }
        if (space && started)
            put(out, " ", 1);
        space = false;
        started = true;
        put(out, &c, 1);
    }
}

void canon_header(enum canon_alg alg, const char *field, size_t len, bool crlf,
                  struct sm_buf *out)
{
    len = strip_crlf(field, len);
    if (alg == CANON_SIMPLE)
        put(out, field, len);
    else
        relaxed_header(field, len, out);
    if (crlf)
        put(out, "\r\n", 2);
}

void canon_body_init(struct canon_body *cb, enum canon_alg alg, const EVP_MD *md,
                     uint64_t limit)
{
    memset(cb, 0, sizeof *cb);
    cb->alg = alg;
    cb->limit = limit;
    cb->md = EVP_MD_CTX_new();
    if (cb->md == NULL || EVP_DigestInit_ex(cb->md, md, NULL) != 1)
        sm_panic("canon: cannot start a digest");
}

static void flush(struct canon_body *cb)
{
    if (cb->n > 0 && EVP_DigestUpdate(cb->md, cb->out, cb->n) != 1)
        sm_panic("canon: digest update failed");
    cb->n = 0;
}

/* One canonical byte: hashed while under l=, counted always. */
static void emit(struct canon_body *cb, unsigned char c)
{
    if (cb->length < cb->limit) {
        if (cb->n == sizeof cb->out)
            flush(cb);
        cb->out[cb->n++] = c;
    }
    cb->length++;
}

/* Content follows: the held-back line ends (and whitespace) were not trailing. */
static void release(struct canon_body *cb)
{
    for (; cb->pending_crlf > 0; cb->pending_crlf--) {
        emit(cb, '\r');
        emit(cb, '\n');
    }
    if (cb->wsp)
        emit(cb, ' ');
    cb->wsp = false;
}

static void content(struct canon_body *cb, unsigned char c)
{
    release(cb);
    emit(cb, c);
    cb->content = true;
}

static void body_byte(struct canon_body *cb, unsigned char c)
{
    if (cb->cr) {
        cb->cr = false;
        if (c == '\n') {
            cb->wsp = false; /* relaxed: whitespace at the end of a line goes */
            cb->pending_crlf++;
            return;
        }
        content(cb, '\r'); /* a bare CR is content */
    }
    if (c == '\r') {
        cb->cr = true;
    } else if (cb->alg == CANON_RELAXED && (c == ' ' || c == '\t')) {
        cb->wsp = true;
    } else {
        content(cb, c);
    }
}

void canon_body_update(struct canon_body *cb, const void *p, size_t n)
{
    const unsigned char *s = p;
    if (cb->done)
        return;
    for (size_t i = 0; i < n; i++)
        body_byte(cb, s[i]);
}

void canon_body_final(struct canon_body *cb, unsigned char *digest, unsigned *dlen)
{
    if (!cb->done) {
        if (cb->cr) {
            cb->cr = false;
            content(cb, '\r');
        }
        cb->wsp = false;
        /* Trailing empty lines are dropped; a non-empty body ends with
         * exactly one CRLF; an empty simple body is one CRLF, an empty
         * relaxed body is empty (RFC 6376 §3.4.3, §3.4.4). */
        if (cb->content || cb->alg == CANON_SIMPLE) {
            emit(cb, '\r');
            emit(cb, '\n');
        }
        cb->pending_crlf = 0;
        cb->done = true;
    }
    flush(cb);
    if (EVP_DigestFinal_ex(cb->md, digest, dlen) != 1)
        sm_panic("canon: digest final failed");
}

void canon_body_free(struct canon_body *cb)
{
    EVP_MD_CTX_free(cb->md);
    cb->md = NULL;
}
