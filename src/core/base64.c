/* base64.c — base64 decoding and encoding (base64.h). */
#include "core/base64.h"

#include <stdbool.h>

#include "core/buf.h"

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

static bool is_fws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

long base64_decode(const char *s, size_t len, uint8_t *out, size_t cap, int flags)
{
    uint32_t acc = 0;
    size_t n = 0, chars = 0, pad = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if ((flags & BASE64_SKIP_FWS) && is_fws(c))
            continue;
        if (c == '=') {
            pad++;
            chars++;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pad > 0) /* not base64, or data after padding */
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        if (++chars % 4 == 0) {
            if (n + 3 > cap)
                return -1;
            out[n++] = (uint8_t)(acc >> 16);
            out[n++] = (uint8_t)(acc >> 8);
            out[n++] = (uint8_t)acc;
            acc = 0;
        }
    }
    if (chars % 4 != 0 || pad > 2)
        return -1;
    if (pad > 0) {
        /* the last quantum had 4 - pad data characters */
        size_t keep = 3 - pad;
        acc <<= 6 * pad;
        if (n + keep > cap)
            return -1;
        out[n++] = (uint8_t)(acc >> 16);
        if (keep == 2)
            out[n++] = (uint8_t)(acc >> 8);
    }
    return (long)n;
}

void base64_encode(const uint8_t *p, size_t n, struct sm_buf *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        char q[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63],
                     i + 1 < n ? tab[(v >> 6) & 63] : '=', i + 2 < n ? tab[v & 63] : '='};
        sm_buf_append(out, q, 4);
    }
}
