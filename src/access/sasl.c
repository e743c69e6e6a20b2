/* sasl.c — SASL PLAIN (see sasl.h). */
#include "access/sasl.h"

#include <stdint.h>
#include <string.h>

#include "crypto/seal.h"

static int b64_value(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

/* Strict base64 into out (capacity max); returns the length or -1. */
static long b64_decode(const char *in, uint8_t *out, size_t max)
{
    size_t len = strlen(in), n = 0;
    if (len % 4 != 0)
        return -1;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char ch = in[i + k];
            if (ch == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad > 0 || (v[k] = b64_value(ch)) < 0)
                return -1;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        uint8_t bytes[3] = {(uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w};
        for (int k = 0; k < 3 - pad; k++) {
            if (n == max)
                return -1;
            out[n++] = bytes[k];
        }
    }
    return (long)n;
}

int sasl_plain_decode(const char *b64, struct sasl_plain *out, const char **error_r)
{
    memset(out, 0, sizeof *out);
    out->buf = seal_secret_alloc(SASL_PLAIN_MAX + 1);
    long n = b64_decode(b64, (uint8_t *)out->buf, SASL_PLAIN_MAX);
    if (n < 0) {
        *error_r = "Invalid base64 data";
        goto fail;
    }
    out->buf[n] = '\0';
    const char *authzid = out->buf;
    const char *nul1 = memchr(out->buf, '\0', (size_t)n);
    const char *nul2 = nul1 ? memchr(nul1 + 1, '\0', (size_t)(out->buf + n - nul1 - 1)) : NULL;
    if (nul1 == NULL || nul2 == NULL) {
        *error_r = "Invalid PLAIN response: expected authzid NUL authcid NUL passwd";
        goto fail;
    }
    out->authcid = nul1 + 1;
    out->passwd = nul2 + 1;
    out->passwd_len = (size_t)(out->buf + n - out->passwd);
    if (out->authcid[0] == '\0' || out->passwd_len == 0 ||
        memchr(out->passwd, '\0', out->passwd_len) != NULL) {
        *error_r = "Invalid PLAIN response: empty account or password";
        goto fail;
    }
    if (authzid[0] != '\0' && strcmp(authzid, out->authcid) != 0) {
        *error_r = "Acting as another user is not allowed";
        goto fail;
    }
    return 0;
fail:
    sasl_plain_free(out);
    return -1;
}

void sasl_plain_free(struct sasl_plain *p)
{
    seal_secret_free(&p->buf);
    memset(p, 0, sizeof *p);
}
