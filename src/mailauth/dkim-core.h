/* dkim-core.h — the machinery DKIM (dkim.c) and ARC (arc.c) share; not a
 * public interface.
 *
 *  - hdrlist: the header fields of one message, bounded in count and
 *    bytes, searched bottom-up by name (RFC 6376 §5.4.2);
 *  - bodyhash: a pool of streaming body digests, one per distinct
 *    (canonicalisation, l=) pair, so that eight signatures or fifty ARC
 *    sets with the same c= cost one pass over the body;
 *  - dkim_sig: a parsed DKIM-Signature, ARC-Message-Signature or
 *    ARC-Seal, with the strict checks of RFC 6376 §3.5 / RFC 8617 §4.1;
 *  - header hashing with b= blanked, key records (RFC 6376 §3.6.1) read
 *    from a dnsview, and signature checks through OpenSSL EVP. */
#ifndef SM_MAILAUTH_DKIM_CORE_H
#define SM_MAILAUTH_DKIM_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "core/buf.h"
#include "mailauth/canon.h"
#include "mailauth/dkim.h"
#include "mailauth/dnsview.h"

#define DKIM_SIG_MAX 1024      /* signature bytes: 8192-bit RSA */
#define DKIM_RSA_MIN_BITS 1024 /* RFC 8301 §3.2 */
#define DKIM_RSA_MAX_BITS 8192
#define DKIM_TAG_B64_MAX 4096  /* base64 characters of b=, bh= or p= */

/* --- header fields --- */

struct hdr {
    char *text;     /* the raw field, CRLF-terminated */
    size_t len;
    size_t namelen; /* the name, without whitespace before the colon */
};

struct hdrlist {
    struct hdr *h;
    size_t n, cap;
    size_t bytes;
    size_t max_n, max_bytes;
    bool overflow;  /* fields were dropped: signatures over them cannot be checked */
};

void hdrlist_init(struct hdrlist *l, size_t max_n, size_t max_bytes);
/* Keep a copy of one field; false (and overflow set) past the limits. */
bool hdrlist_add(struct hdrlist *l, const char *field, size_t len);
/* Does field f have this name (ASCII case-insensitive)? */
bool hdr_is(const struct hdr *f, const char *name, size_t nlen);
void hdrlist_free(struct hdrlist *l);

/* --- streaming body digests --- */

struct bodyhash_entry {
    enum canon_alg alg;
    uint64_t limit;
    struct canon_body cb;
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned dlen;
};

struct bodyhash {
    struct bodyhash_entry **e;
    size_t n;
    bool done;
};

/* Index of the digest for (alg, limit), created if new (SHA-256). */
size_t bodyhash_add(struct bodyhash *b, enum canon_alg alg, uint64_t limit);
void bodyhash_update(struct bodyhash *b, const void *p, size_t n);
void bodyhash_final(struct bodyhash *b);
const struct bodyhash_entry *bodyhash_get(const struct bodyhash *b, size_t i);
void bodyhash_free(struct bodyhash *b);

/* --- signatures --- */

enum dkim_kind {
    SIG_DKIM,  /* DKIM-Signature (RFC 6376) */
    SIG_AMS,   /* ARC-Message-Signature: no v=, i= is the instance */
    SIG_AS,    /* ARC-Seal: no h=, bh=, c=, l=; cv= */
};

enum dkim_alg {
    ALG_RSA_SHA256,
    ALG_ED25519_SHA256,
};

enum arc_cv_value {
    CV_NONE,
    CV_PASS,
    CV_FAIL,
};

struct dkim_sig {
    enum dkim_kind kind;
    enum dkim_alg alg;
    enum canon_alg hc, bc;
    char a[24];
    char d[DNS_NAME_MAX + 1];
    char s[DNS_NAME_MAX + 1];
    char i[DNS_NAME_MAX + 66];      /* DKIM: the identity ("@d" by default) */
    unsigned instance;              /* ARC: i= */
    enum arc_cv_value cv;           /* AS */
    uint8_t b[DKIM_SIG_MAX];
    size_t blen;
    char header_b[DKIM_HEADER_B_LEN + 1];
    uint8_t bh[EVP_MAX_MD_SIZE];
    size_t bhlen;
    bool has_l, has_t, has_x;
    uint64_t l;
    int64_t t, x;
    size_t nh;                      /* names in h= */
    char *h[DKIM_H_MAX];            /* lowercase, into hbuf */
    char *hbuf;
};

/* Parse a field (raw, name included) of the given kind.  On error returns
 * -1 with *res (DKIM_PERMERROR or DKIM_POLICY) and reason set; the
 * fields parsed so far (d=, s=, a=, i=) stay filled for the report. */
int dkim_sig_parse(enum dkim_kind kind, const char *field, size_t len, struct dkim_sig *sig,
                   enum dkim_result *res, char *reason, size_t rlen);
/* t= and x= against now: 0, or -1 with reason (PERMFAIL). */
int dkim_sig_check_time(const struct dkim_sig *sig, int64_t now, int64_t future_tolerance,
                        char *reason, size_t rlen);
void dkim_sig_free(struct dkim_sig *sig);

/* Feed the canonical form of field into md: with blank_b the value of
 * its b= tag is removed (RFC 6376 §3.7), with last no final CRLF. */
void dkim_hash_field(EVP_MD_CTX *md, enum canon_alg alg, const char *field, size_t len,
                     bool blank_b, bool last, struct sm_buf *scratch);
/* The SHA-256 header hash of a DKIM-Signature or AMS: the fields of hl
 * named in h= chosen bottom-up (the signature's own field, index self,
 * excluded; SIZE_MAX when it is not in hl), then the signature field
 * itself (field, len) with b= blanked. */
void dkim_header_hash(const struct dkim_sig *sig, const struct hdrlist *hl, size_t self,
                      const char *field, size_t len, uint8_t digest[32]);

/* --- keys --- */

struct dkim_key {
    EVP_PKEY *pkey;
    unsigned bits;
    bool testing;   /* t=y */
    bool strict;    /* t=s: i= must be in d= exactly */
};

/* Fetch and check the key for sig from view.  Returns DKIM_PASS with key
 * filled (free with dkim_key_free), DKIM_NONE when the answer is pending,
 * or the error result with reason. */
enum dkim_result dkim_key_get(struct dnsview *view, const struct dkim_sig *sig,
                              struct dkim_key *key, char *reason, size_t rlen);
/* Parse one key record (exposed for tests and fuzzing). */
enum dkim_result dkim_key_parse(const char *rec, size_t len, const struct dkim_sig *sig,
                                struct dkim_key *key, char *reason, size_t rlen);
void dkim_key_free(struct dkim_key *key);

/* Verify sig->b over the header hash with key: true when it verifies. */
bool dkim_verify_digest(const struct dkim_sig *sig, const struct dkim_key *key,
                        const uint8_t digest[32]);
/* Sign a header hash (RSA PKCS#1 v1.5 over SHA-256, or Ed25519 over the
 * hash, RFC 8463).  Returns the signature length, or -1. */
long dkim_sign_digest(EVP_PKEY *key, const uint8_t digest[32], uint8_t *out, size_t cap);

/* Is s[0..len) a syntactically valid domain name (LDH labels, "_" allowed,
 * no empty label, at most DNS_NAME_MAX)? */
bool dkim_valid_domain(const char *s, size_t len);

#endif
