/* authres.h — Authentication-Results header fields (RFC 8601), written and
 * read, and their ARC-Authentication-Results form (RFC 8617 §4.1.1).
 *
 * Writing: smtpd records what SPF, DKIM, DMARC and ARC found in one field
 * headed by its authserv-id (the host name the operator configured).  The
 * builder takes results as plain strings, so it does not depend on the
 * check modules.  Every text is treated as hostile, because much of it
 * comes from the message or the envelope (domains, selectors, addresses,
 * reasons): a property value or the authserv-id is written bare when it is
 * a token (or [local-part] "@" domain), else as a quoted-string with "\"
 * and "\\" escaped; CR, LF, other control bytes and invalid UTF-8 are
 * dropped; comments and reasons lose parentheses and backslashes as well;
 * method, result, ptype and property names must be keywords or the whole
 * field is refused.  Each value is cut to AUTHRES_VALUE_MAX bytes, and the
 * field to AUTHRES_FIELD_MAX.  Lines are folded (CRLF + TAB) between
 * elements so that none passes 78 columns, unless one element alone is
 * longer (a long domain); no line reaches 998.
 *
 * Reading: border MTAs must remove fields that claim their own
 * authserv-id (RFC 8601 §5), and ARC verifiers read the results.
 * authres_parse() returns the authserv-id and every resinfo (method,
 * result, reason, properties), skipping CFWS and comments; it is bounded
 * (AUTHRES_PARSE_MAX bytes, AUTHRES_RESINFO_MAX results,
 * AUTHRES_PROPS_MAX properties each, comments nested AUTHRES_COMMENT_DEPTH
 * deep).  It accepts a final ";" and "smtp.mailfrom=a=b@c" local parts that
 * are not tokens, as real fields have them; everything else that RFC 8601
 * §2.2 does not allow is an error.  authres_authserv_id() reads only the
 * authserv-id, so a field whose results are broken can still be recognised
 * as claiming ours. */
#ifndef SM_MAILAUTH_AUTHRES_H
#define SM_MAILAUTH_AUTHRES_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

#define AUTHRES_VALUE_MAX 255
#define AUTHRES_COMMENT_MAX 255
#define AUTHRES_FIELD_MAX 8192
#define AUTHRES_PROPS_MAX 16
#define AUTHRES_RESINFO_MAX 64
#define AUTHRES_PARSE_MAX 65536
#define AUTHRES_COMMENT_DEPTH 8
#define AUTHRES_FOLD 78

/* ---- writing ---- */

struct authres_prop {
    const char *ptype;     /* "smtp", "header", "body", "policy" */
    const char *property;  /* "mailfrom", "d", "from", … */
    const char *value;     /* any text: quoted and cleaned as needed */
};

struct authres_result {
    const char *method;    /* "spf", "dkim", "dmarc", "arc", … */
    const char *result;    /* "pass", "fail", … */
    const char *reason;    /* optional reason="…" */
    const char *comment;   /* optional comment after the result: "(…)" */
    size_t n_props;
    struct authres_prop props[AUTHRES_PROPS_MAX];
};

/* Append to out the whole header field "Authentication-Results: " (or
 * "ARC-Authentication-Results: i=N; " when arc_instance is 1..50) with the
 * authserv-id and results r[0..n), folded, with a final CRLF; n == 0
 * writes "; none".  Returns 0, or -1 (out unchanged) when a name is not a
 * keyword, arc_instance is over 50, n is over AUTHRES_RESINFO_MAX, or the
 * field would pass AUTHRES_FIELD_MAX or out's own limit. */
int authres_build(struct sm_buf *out, unsigned arc_instance, const char *authserv_id,
                  const struct authres_result *r, size_t n);

/* Set a property in r (up to AUTHRES_PROPS_MAX; the strings are not
 * copied and must live until authres_build()).  Returns 0 or -1 when full. */
int authres_add_prop(struct authres_result *r, const char *ptype, const char *property,
                     const char *value);

/* ---- reading ---- */

struct authres_pprop {
    const char *ptype;     /* lowercase */
    const char *property;  /* lowercase */
    const char *value;     /* unquoted, escapes removed, as written otherwise */
};

struct authres_resinfo {
    const char *method;    /* lowercase */
    unsigned method_version; /* 0 when absent */
    const char *result;    /* lowercase */
    const char *reason;    /* NULL when absent */
    size_t n_props;
    struct authres_pprop props[AUTHRES_PROPS_MAX];
};

struct authres {
    unsigned arc_instance;  /* i= of an ARC-Authentication-Results field, else 0 */
    const char *authserv_id;/* unquoted */
    unsigned version;       /* authres-version, 0 when absent */
    size_t n;               /* results; 0 also for "none" */
    struct authres_resinfo ri[AUTHRES_RESINFO_MAX];
    char *text;             /* every string above points into this */
};

/* Parse a field value s[0..len) (what follows "Authentication-Results:",
 * folding CRLFs allowed; arc: an ARC-Authentication-Results value, which
 * starts with "i=N;").  Returns the result (free with authres_free()), or
 * NULL with a static message in *error_r. */
struct authres *authres_parse(const char *s, size_t len, bool arc, const char **error_r);
/* Free; sets *a to NULL and accepts NULL. */
void authres_free(struct authres **a);

/* Only the authserv-id (unquoted) of the field value s[0..len), into out
 * (NUL-terminated).  Returns its length, or -1 when it cannot be read or
 * does not fit cap.  A field whose id cannot be read is best removed too:
 * a laxer reader further on might see our id in it. */
long authres_authserv_id(const char *s, size_t len, bool arc, char *out, size_t cap);

/* Whether the field value claims authserv_id (compared without case, as
 * host names are). */
bool authres_claims(const char *s, size_t len, bool arc, const char *authserv_id);

/* The value of ptype.property in ri, or NULL. */
const char *authres_prop_get(const struct authres_resinfo *ri, const char *ptype,
                             const char *property);

#endif
