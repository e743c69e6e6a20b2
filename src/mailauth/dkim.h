/* dkim.h — DKIM signature verification and signing (RFC 6376, RFC 8301,
 * RFC 8463).
 *
 * Verification is streaming, like smtpd itself: the verifier is fed the
 * header fields one at a time (raw, with their folding and CRLF), told
 * the header ended, fed the body in chunks of any size, and told the
 * body ended.  Each signature's body hash is computed on the fly (simple
 * or relaxed canonicalisation, l= honoured) with bounded state; the
 * header fields are kept only until the header ends.  Then
 * dkim_verifier_result() checks the signatures against a dnsview
 * (dnsview.h): while key records are missing it returns
 * MAILAUTH_NEED_DNS, and the caller resolves the pending questions and
 * calls it again.  It is a pure function of the fed message, the view and
 * `now`.
 *
 * Results use the RFC 8601 names.  The mapping:
 *   pass       the signature verified with a valid key;
 *   fail       body hash mismatch, or the signature does not verify;
 *   permerror  the signature or key record is malformed or unusable
 *              (RFC 6376 §6.1.1/§6.1.2 PERMFAIL: syntax, missing tags,
 *              h= without From, i= outside d=, unknown algorithm,
 *              expired, t= in the future, no key, revoked key, key type
 *              or hash or service not matching);
 *   temperror  the key lookup failed temporarily (try again later);
 *   policy     the signature may well be valid but we do not accept it:
 *              rsa-sha1 (RFC 8301 §3.1: "MUST NOT be used for signing
 *              or verifying" — refused without computing SHA-1), an RSA
 *              key under 1024 bits (RFC 8301 §3.2) or over 8192, a
 *              message over the verifier's header limits.
 * "none" is the caller's verdict when dkim_verifier_count() is 0.
 *
 * Limits: at most max_signatures DKIM-Signature fields are evaluated (the
 * topmost ones; the rest are counted in dkim_verifier_skipped()), at most
 * max_header_fields fields and max_header_bytes bytes of header are kept
 * (past that every signature gets "policy"), h= names at most
 * DKIM_H_MAX, signatures at most 8192-bit RSA.
 *
 * Signing (relaxed/relaxed, rsa-sha256 or ed25519-sha256) streams the
 * message the same way and produces the DKIM-Signature field, folded to
 * lines under 78 columns, for the caller to prepend. */
#ifndef SM_MAILAUTH_DKIM_H
#define SM_MAILAUTH_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "mailauth/dnsview.h"

#define DKIM_H_MAX 128        /* names in h= */
#define DKIM_HEADER_B_LEN 12  /* characters of b= kept for header.b (RFC 6008) */
#define DKIM_REASON_MAX 160

enum dkim_result {
    DKIM_NONE,
    DKIM_PASS,
    DKIM_FAIL,
    DKIM_NEUTRAL,
    DKIM_POLICY,
    DKIM_TEMPERROR,
    DKIM_PERMERROR,
};

/* "none", "pass", "fail", "neutral", "policy", "temperror", "permerror". */
const char *dkim_result_name(enum dkim_result r);

/* Zero fields take the defaults given. */
struct dkim_limits {
    size_t max_signatures;     /* DKIM-Signature fields evaluated: 8 */
    size_t max_header_fields;  /* header fields kept: 1000 */
    size_t max_header_bytes;   /* header bytes kept: 1 MiB */
    int64_t future_tolerance;  /* seconds t= may lie ahead of now: 900 */
};

struct dkim_sig_result {
    enum dkim_result result;
    char d[DNS_NAME_MAX + 1];    /* "" when the signature could not be parsed that far */
    char s[DNS_NAME_MAX + 1];
    char a[24];
    char i[DNS_NAME_MAX + 66];   /* the signing identity (i=, or "@d") */
    char header_b[DKIM_HEADER_B_LEN + 1];
    char reason[DKIM_REASON_MAX];
    unsigned key_bits;           /* RSA modulus bits (256 for Ed25519), 0 if no key */
    bool testing;                /* key record t=y: the domain is testing DKIM */
    bool unsigned_body;          /* l= leaves body content unsigned: treat a pass cautiously */
    uint64_t body_length;        /* canonical body length */
};

struct dkim_verifier;

/* limits may be NULL (defaults). */
struct dkim_verifier *dkim_verifier_new(const struct dkim_limits *limits);
/* One complete header field, as received: name, colon, value with its
 * folding, and the final CRLF. */
void dkim_verifier_header(struct dkim_verifier *v, const char *field, size_t len);
void dkim_verifier_headers_done(struct dkim_verifier *v);
/* Body bytes (CRLF line ends, SMTP dot-stuffing already removed). */
void dkim_verifier_body(struct dkim_verifier *v, const void *p, size_t n);
void dkim_verifier_body_done(struct dkim_verifier *v);
/* Check the signatures: MAILAUTH_DONE, or MAILAUTH_NEED_DNS with the key
 * questions pending in view.  Ends the header and body if not done yet. */
int dkim_verifier_result(struct dkim_verifier *v, struct dnsview *view, int64_t now);
/* Signatures evaluated, in header order (topmost first). */
size_t dkim_verifier_count(const struct dkim_verifier *v);
const struct dkim_sig_result *dkim_verifier_get(const struct dkim_verifier *v, size_t i);
/* DKIM-Signature fields past max_signatures, not evaluated. */
size_t dkim_verifier_skipped(const struct dkim_verifier *v);
void dkim_verifier_free(struct dkim_verifier **v);

/* Signing. */
struct dkim_sign_params {
    EVP_PKEY *key;                 /* RSA of 1024 bits or more, or Ed25519 (not owned) */
    const char *domain;            /* d= */
    const char *selector;          /* s= */
    const char *const *headers;    /* h=, in order; must include "from" */
    size_t n_headers;
    const char *identity;          /* i=, or NULL */
    int64_t time;                  /* t=, or -1 for none */
    int64_t expire;                /* x=, or -1 for none */
};

struct dkim_signer;

/* NULL with *error_r set when the parameters are unusable. */
struct dkim_signer *dkim_signer_new(const struct dkim_sign_params *p, const char **error_r);
void dkim_signer_header(struct dkim_signer *s, const char *field, size_t len);
void dkim_signer_headers_done(struct dkim_signer *s);
void dkim_signer_body(struct dkim_signer *s, const void *p, size_t n);
/* The "DKIM-Signature: ...\r\n" field (free it), or NULL with *error_r set
 * (no From field in the message, header limits, signing failed). */
char *dkim_signer_finish(struct dkim_signer *s, const char **error_r);
void dkim_signer_free(struct dkim_signer **s);

#endif
