/* arc.h — ARC chain validation (RFC 8617 §5.2).
 *
 * An ARC chain is a series of sets, instance 1 (the first handler) to N
 * (the last), each of three header fields: ARC-Authentication-Results
 * (what that handler saw), ARC-Message-Signature (a DKIM-like signature
 * of the message as it left it) and ARC-Seal (a signature over all the
 * ARC fields up to its own set, with the chain status cv= it found).
 *
 * The verifier is fed exactly like the DKIM verifier (dkim.h), from the
 * same stream: header fields one by one, then the body in chunks.  It
 * reuses DKIM's canonicalisation, signature parsing, key records and
 * checks (dkim-core.h); AMS body hashes are computed on the fly and
 * shared by every AMS with the same c= and l=.  All hashes are taken
 * when the header ends, so the header is not held during the body.
 * arc_verifier_result() then needs the key records through a dnsview and
 * returns MAILAUTH_NEED_DNS until it has them.
 *
 * Validation (RFC 8617 §5.2): no ARC field: none.  More than 50 sets, a
 * newest seal with cv=fail, a missing or duplicate field in a set, a gap
 * in the instances, cv= not "none" at instance 1 or not "pass" above it,
 * any malformed ARC field, the newest AMS not verifying, or any seal not
 * verifying: fail.  Otherwise pass.  The older AMSes are checked too, to
 * give oldest_pass: 0 when every AMS verifies, else the lowest instance
 * from which all newer AMSes verify (one above the newest failing one).
 * The seal's d= of every set is reported so that the caller can decide
 * whether it trusts the sealers (RFC 8617 §7.2): a pass says only that
 * the chain is intact, not that any sealer is honest.
 *
 * A temporary key-lookup failure makes the chain fail with temperror set
 * (the caller may defer the message rather than act on the failure). */
#ifndef SM_MAILAUTH_ARC_H
#define SM_MAILAUTH_ARC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailauth/dkim.h"
#include "mailauth/dnsview.h"

#define ARC_MAX_SETS 50

enum arc_cv {
    ARC_NONE,
    ARC_PASS,
    ARC_FAIL,
};

/* "none", "pass", "fail" (RFC 8601 / RFC 8617 §2.3 result names). */
const char *arc_cv_name(enum arc_cv cv);

struct arc_set_info {
    char seal_d[DNS_NAME_MAX + 1];   /* d= of the ARC-Seal */
    char seal_s[DNS_NAME_MAX + 1];
    char ams_d[DNS_NAME_MAX + 1];    /* d= of the ARC-Message-Signature */
    enum dkim_result ams;            /* DKIM_PASS / DKIM_FAIL / ... once checked */
    enum dkim_result seal;
};

struct arc_result {
    enum arc_cv cv;
    unsigned sets;           /* N, the highest instance (0: no ARC field) */
    unsigned oldest_pass;    /* see above; meaningful when cv is pass */
    bool temperror;          /* a key lookup failed temporarily */
    char reason[DKIM_REASON_MAX];
    /* set[i - 1] is instance i, for i up to sets; NULL while sets is 0.
     * Allocated only for a message with ARC fields: zeroing room for
     * ARC_MAX_SETS sets (38 KiB) cost more than the rest of an SMTP
     * transaction's parsing. */
    struct arc_set_info *set;
};

struct arc_verifier;

/* Only the header limits of limits are used; NULL: the defaults. */
struct arc_verifier *arc_verifier_new(const struct dkim_limits *limits);
void arc_verifier_header(struct arc_verifier *v, const char *field, size_t len);
void arc_verifier_headers_done(struct arc_verifier *v);
void arc_verifier_body(struct arc_verifier *v, const void *p, size_t n);
void arc_verifier_body_done(struct arc_verifier *v);
/* MAILAUTH_DONE, or MAILAUTH_NEED_DNS with key questions pending in view. */
int arc_verifier_result(struct arc_verifier *v, struct dnsview *view, int64_t now);
const struct arc_result *arc_verifier_get(const struct arc_verifier *v);
void arc_verifier_free(struct arc_verifier **v);

#endif
