/* sasl.h — the SASL PLAIN mechanism (RFC 4616) for IMAP, POP3 and, later,
 * SMTP AUTH: "authzid NUL authcid NUL passwd", base64-encoded. */
#ifndef SM_SASL_H
#define SM_SASL_H

#include <stddef.h>

#define SASL_PLAIN_MAX 1024 /* decoded bytes of one response */

struct sasl_plain {
    char *buf;          /* secret memory holding the decoded response */
    const char *authcid; /* the account (points into buf) */
    const char *passwd;  /* the password (points into buf) */
    size_t passwd_len;
};

/* Decode and split the base64 text b64 (strict: padding required, no
 * white space).  An authzid is accepted only when empty or equal to
 * authcid (nobody may act for someone else here).  Returns 0, or -1 with
 * a reason for the client in *error_r; free with sasl_plain_free(). */
int sasl_plain_decode(const char *b64, struct sasl_plain *out, const char **error_r);
/* Wipe and free; accepts a zeroed struct. */
void sasl_plain_free(struct sasl_plain *p);

#endif
