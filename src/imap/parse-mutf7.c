/* parse-mutf7.c — UTF-8 checks and modified UTF-7 mailbox names
 * (RFC 3501 §5.1.3; see parse.h).
 *
 * IMAP4rev1 clients name mailboxes in modified UTF-7; IMAP4rev2 and
 * UTF8=ACCEPT clients in UTF-8.  The store keeps UTF-8, so the session
 * converts at the edge.  Decoding is strict because two spellings of one
 * name ("&AGE-" for "a", adjacent shifts, stray bits) would let a client
 * create mailboxes that look identical but are not, or slip past a name
 * check done on the other form. */
#include "imap/parse-internal.h"

#include "core/buf.h"

/* The next code point of a UTF-8 string; -1 on a malformed sequence. */
static int utf8_next(const unsigned char **pp, const unsigned char *end, uint32_t *cp_r)
{
    const unsigned char *p = *pp;
    uint32_t c = *p, min;
    size_t n;
    if (c < 0x80) {
        *cp_r = c;
        *pp = p + 1;
        return 0;
    }
    if ((c & 0xe0) == 0xc0)
        n = 1, min = 0x80, c &= 0x1f;
    else if ((c & 0xf0) == 0xe0)
        n = 2, min = 0x800, c &= 0x0f;
    else if ((c & 0xf8) == 0xf0)
        n = 3, min = 0x10000, c &= 0x07;
    else
        return -1;
    if ((size_t)(end - p) <= n)
        return -1;
    for (size_t i = 1; i <= n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return -1;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return -1;
    *cp_r = c;
    *pp = p + n + 1;
    return 0;
}

static bool is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp < 0xa0);
}

bool imap_utf8_check(const char *s, size_t len, bool allow_controls)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    uint32_t cp;
    while (p < end) {
        if (utf8_next(&p, end, &cp) < 0 || (!allow_controls && is_control(cp)))
            return false;
    }
    return true;
}

bool imap_utf8_valid(const char *s, size_t len)
{
    return imap_utf8_check(s, len, false);
}

/* ---- modified BASE64 ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    return ch == '+' ? 62 : ch == ',' ? 63 : -1;
}

static int put_utf8(struct sm_buf *out, uint32_t cp)
{
    unsigned char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp, n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xc0 | cp >> 6), n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xe0 | cp >> 12), n = 3;
    } else {
        b[0] = (unsigned char)(0xf0 | cp >> 18), n = 4;
    }
    for (size_t i = 1; i < n; i++)
        b[i] = (unsigned char)(0x80 | ((cp >> (6 * (n - 1 - i))) & 0x3f));
    return sm_buf_append(out, b, n);
}

/* Decode the base64 run s[0..len) (between '&' and '-') as UTF-16. */
static int decode_shift(const char *s, size_t len, struct sm_buf *out)
{
    uint32_t bits = 0, high = 0;
    unsigned nbits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        bits = (bits << 6 | (uint32_t)v) & 0x3fffff;
        nbits += 6;
        if (nbits < 16)
            continue;
        nbits -= 16;
        uint32_t unit = (bits >> nbits) & 0xffff;
        if (high != 0) {
            if (unit < 0xdc00 || unit > 0xdfff)
                return -1; /* a high surrogate not followed by a low one */
            if (put_utf8(out, 0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00)) < 0)
                return -1;
            high = 0;
        } else if (unit >= 0xd800 && unit <= 0xdbff) {
            high = unit;
        } else if (unit < 0x80 || (unit >= 0xdc00 && unit <= 0xdfff) || is_control(unit)) {
            return -1; /* ASCII must be direct; a lone low surrogate */
        } else if (put_utf8(out, unit) < 0) {
            return -1;
        }
    }
    /* at most 5 padding bits, all zero; nothing half-decoded */
    if (high != 0 || nbits >= 6 || (bits & ((1u << nbits) - 1)) != 0)
        return -1;
    return 0;
}

int imap_mutf7_decode(const char *in, size_t len, struct sm_buf *out)
{
    bool after_shift = false;
    for (size_t i = 0; i < len;) {
        unsigned char ch = (unsigned char)in[i];
        if (ch < 0x20 || ch > 0x7e)
            return -1;
        if (ch != '&') {
            if (sm_buf_append(out, &ch, 1) < 0)
                return -1;
            i++;
            after_shift = false;
            continue;
        }
        size_t start = ++i;
        while (i < len && in[i] != '-')
            i++;
        if (i == len)
            return -1; /* unterminated shift */
        if (i == start) {
            if (sm_buf_append(out, "&", 1) < 0)
                return -1;
            after_shift = false;
        } else if (after_shift || decode_shift(in + start, i - start, out) < 0) {
            return -1; /* two shifts in a row would be one */
        } else {
            after_shift = true;
        }
        i++; /* the '-' */
    }
    return 0;
}

/* ---- encoding ---- */

struct b64_state {
    uint32_t bits;
    unsigned nbits;
    bool open;
};

static int b64_put_unit(struct b64_state *st, uint32_t unit, struct sm_buf *out)
{
    st->bits = (st->bits << 16 | unit) & 0x3fffff;
    st->nbits += 16;
    while (st->nbits >= 6) {
        st->nbits -= 6;
        if (sm_buf_append(out, &b64[(st->bits >> st->nbits) & 0x3f], 1) < 0)
            return -1;
    }
    return 0;
}

static int b64_close(struct b64_state *st, struct sm_buf *out)
{
    if (!st->open)
        return 0;
    if (st->nbits > 0 && sm_buf_append(out, &b64[(st->bits << (6 - st->nbits)) & 0x3f], 1) < 0)
        return -1;
    *st = (struct b64_state){0};
    return sm_buf_append(out, "-", 1);
}

int imap_mutf7_encode(const char *in, size_t len, struct sm_buf *out)
{
    const unsigned char *p = (const unsigned char *)in, *end = p + len;
    struct b64_state st = {0};
    while (p < end) {
        uint32_t cp;
        if (utf8_next(&p, end, &cp) < 0 || is_control(cp))
            return -1;
        if (cp < 0x80) {
            char ch = (char)cp;
            if (b64_close(&st, out) < 0 || sm_buf_append(out, &ch, 1) < 0 ||
                (ch == '&' && sm_buf_append(out, "-", 1) < 0))
                return -1;
            continue;
        }
        if (!st.open && sm_buf_append(out, "&", 1) < 0)
            return -1;
        st.open = true;
        if (cp < 0x10000) {
            if (b64_put_unit(&st, cp, out) < 0)
                return -1;
        } else if (b64_put_unit(&st, 0xd800 + ((cp - 0x10000) >> 10), out) < 0 ||
                   b64_put_unit(&st, 0xdc00 + ((cp - 0x10000) & 0x3ff), out) < 0) {
            return -1;
        }
    }
    return b64_close(&st, out);
}
