/* arc-seal.h — ARC sealing (RFC 8617 §5.1): the ARC set a forwarder adds.
 *
 * When sealmail forwards a message it records what it found in a new ARC
 * set of instance i = N + 1 (N: the highest instance already present):
 *
 *   ARC-Authentication-Results  i=; our authserv-id; our results
 *   ARC-Message-Signature       a DKIM-like signature of the message as
 *                               it leaves us (i= instead of v=; §4.1.2)
 *   ARC-Seal                    a signature over the ARC sets in instance
 *                               order, with cv= the status of the chain
 *                               as it arrived (§4.1.3, §5.1.1)
 *
 * The sealer is fed like the DKIM signer (dkim.h): header fields one at a
 * time as received, then the body in chunks of any size.  The body hash
 * is streamed (relaxed, SHA-256); header fields are kept until finish,
 * bounded like the verifier's (1000 fields, 1 MiB).
 *
 * The caller gives the validation status of the incoming chain, from
 * arc_verifier_get()->cv run over the same message (a temperror should
 * rather defer the message than seal it as fail):
 *   ARC_NONE  no ARC field: we write i=1, cv=none;
 *   ARC_PASS  we write cv=pass, and the seal covers every set, 1 to i;
 *   ARC_FAIL  we write cv=fail, and the seal covers our own set only, "as
 *             if this newest ARC Set was the only set present" (§5.1.2).
 * If the newest ARC-Seal already says cv=fail the chain is over (§5.1
 * step 1): no set is added (ARC_SEAL_SKIPPED).  Past i=50 nothing may be
 * added either (§4.2.1), which is an error, like a status that does not
 * match the fields (none with ARC fields, pass with a broken chain).
 *
 * The AAR results are either given (the text after "authserv-id;" in our
 * Authentication-Results, e.g. "spf=pass smtp.mailfrom=a@b.example;
 * dkim=pass header.d=b.example") or, when results is NULL, taken from the
 * message's Authentication-Results fields that claim authserv_id, merged
 * in header order (RFC 8617 §4.1.1; what dkimpy does too).  Either way
 * they must parse as RFC 8601 results (authres_parse()); folding and runs
 * of white space become one space.
 *
 * Output: three complete fields with their final CRLF, folded at spaces
 * (and inside b= and h=) so that no line passes ARC_SEAL_FOLD characters,
 * unless a single result in the AAR is longer.  Tags are written in the
 * order of the ValiMail suite's canonical form (sorted by name: a b bh c d
 * h i s t for the AMS, a b cv d i s t for the AS), so the suite's expected
 * fields are reproduced byte for byte up to folding.  The layout is fixed
 * before signing (b= is laid out at its final length), so what is signed
 * is exactly what is written.  Prepend them as returned: ARC-Seal on top,
 * then ARC-Message-Signature, then ARC-Authentication-Results. */
#ifndef SM_MAILAUTH_ARC_SEAL_H
#define SM_MAILAUTH_ARC_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "mailauth/arc.h"

#define ARC_SEAL_FOLD 78          /* characters per line, CRLF excluded */
#define ARC_SEAL_RESULTS_MAX 8192 /* bytes of AAR results */

enum arc_seal_status {
    ARC_SEAL_OK,       /* fields made */
    ARC_SEAL_SKIPPED,  /* the newest seal says cv=fail: forward without a set */
    ARC_SEAL_ERROR,    /* *error_r says why */
};

struct arc_seal_params {
    EVP_PKEY *key;                 /* RSA of 1024 to 8192 bits, or Ed25519 (not owned) */
    const char *domain;            /* d= of the AMS and the seal */
    const char *selector;          /* s= */
    const char *const *headers;    /* AMS h=, in order: must include "from", and
                                    * no ARC field nor Authentication-Results (§4.1.2) */
    size_t n_headers;
    int64_t time;                  /* t= of both signatures (>= 0) */
    const char *authserv_id;       /* a domain name */
    const char *results;           /* AAR results, or NULL (see above) */
    enum arc_cv chain;             /* the incoming chain's status */
};

struct arc_seal_fields {
    char *seal;  /* "ARC-Seal: ...\r\n" */
    char *ams;   /* "ARC-Message-Signature: ...\r\n" */
    char *aar;   /* "ARC-Authentication-Results: ...\r\n" */
    unsigned instance;
};

struct arc_sealer;

/* NULL with *error_r set when the parameters are unusable (the strings
 * are copied; the key is referenced). */
struct arc_sealer *arc_sealer_new(const struct arc_seal_params *p, const char **error_r);
/* One complete header field, as received, with its final CRLF. */
void arc_sealer_header(struct arc_sealer *s, const char *field, size_t len);
void arc_sealer_headers_done(struct arc_sealer *s);
/* Body bytes (CRLF line ends, dot-stuffing removed), any split. */
void arc_sealer_body(struct arc_sealer *s, const void *p, size_t n);
/* Make the set: ARC_SEAL_OK with out filled (release it with
 * arc_seal_fields_free()), ARC_SEAL_SKIPPED, or ARC_SEAL_ERROR with
 * *error_r (a static message).  Once only. */
enum arc_seal_status arc_sealer_finish(struct arc_sealer *s, struct arc_seal_fields *out,
                                       const char **error_r);
void arc_seal_fields_free(struct arc_seal_fields *out);
void arc_sealer_free(struct arc_sealer **s);

#endif
