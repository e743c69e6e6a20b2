/* sasl.c — SASL PLAIN (see sasl.h). */
#include "access/sasl.h"

#include <stdint.h>
#include <string.h>

#include "core/base64.h"
#include "crypto/seal.h"

int sasl_plain_decode(const char *b64, struct sasl_plain *out, const char **error_r)
{
    memset(out, 0, sizeof *out);
    out->buf = seal_secret_alloc(SASL_PLAIN_MAX + 1);
    long n = base64_decode(b64, strlen(b64), (uint8_t *)out->buf, SASL_PLAIN_MAX, BASE64_STRICT);
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
