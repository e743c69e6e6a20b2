/* dkimkeys.h — the DKIM signing keys of hosted domains, kept in the
 * directory (DESIGN.md §3, §4), and the TXT records that publish them.
 *
 * What: each hosted domain signs with a pair of keys, one RSA-2048
 * (rsa-sha256, RFC 6376) and one Ed25519 (ed25519-sha256, RFC 8463), each
 * under its own selector.  A key is
 *
 *   active   queued signs with it; its record is published;
 *   pending  the next pair: its record is to be published now, and it
 *            starts signing when activated (a verifier must find a
 *            signature's key in DNS from the first signed message on, so
 *            the record goes out before the key signs);
 *   retired  no longer signs, but its record stays published so that mail
 *            signed before the rotation still verifies while it is in
 *            transit or re-checked; the operator removes it later.
 *
 * A rotation is two steps (add a pending pair; a day later activate it,
 * which retires the active pair) or, when a key is compromised, one
 * (replace: the new pair signs at once).  Every step is one transaction.
 *
 * Why wrapped: the private key is never stored usable.  It is sealed to
 * the server's spool public key (keys/spool.pub, crypto/seal.h): the CLI
 * and smtpd, which hold only that public half, can create keys but never
 * read them back; only queued, which holds the spool secret key, opens
 * them to sign.  A wrap is bound to its domain, selector and algorithm
 * (authenticated data), so rows cannot be swapped, and the opened key
 * must match the published public key, so what queued signs with is what
 * verifiers find in DNS.
 *
 * Wrap format (a BLOB, every byte authenticated):
 *
 *   offset  size   field
 *        0     1   version (1)
 *        1     1   algorithm (enum dkimkey_alg)
 *        2    80   a fresh file key sealed to the spool public key
 *                  (crypto_box_seal, SEAL_SEALED_KEY_BYTES)
 *       82    24   crypto_secretstream header
 *      106  n+17   one final chunk: the private key as PKCS#8 DER
 *
 * The chunk's associated data is "sealmail-dkim-key" NUL, the first two
 * bytes, domain NUL selector.
 *
 * Limits: selectors of at most DKIMKEY_SELECTOR_MAX characters (DNS
 * labels of letters, digits and hyphens, dot-separated, stored
 * lowercase); RSA keys of 2048 to 4096 bits; wraps read back of at most
 * DKIMKEY_WRAP_MAX bytes; at most one key of each algorithm added at once.
 * The private key lives in secret memory while it is serialised or
 * parsed, then in OpenSSL's memory inside the EVP_PKEY (EVP_PKEY_free
 * clears it). */
#ifndef SM_DKIMKEYS_H
#define SM_DKIMKEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "store/directory.h"

#define DKIMKEY_SELECTOR_MAX 63
#define DKIMKEY_PUBLIC_MAX 1024  /* the p= value (base64); RSA-4096 needs 736 */
#define DKIMKEY_RECORD_MAX (DKIMKEY_PUBLIC_MAX + 32)
#define DKIMKEY_WRAP_MAX 8192
#define DKIMKEY_SPOOL_PK_BYTES 32 /* X25519, = SPOOL_PK_BYTES */
#define DKIMKEY_SPOOL_SK_BYTES 32
#define DKIMKEY_RSA_BITS 2048     /* what dkimkey_generate() makes */

/* The numbers are stored in wraps: never change them. */
enum dkimkey_alg {
    DKIMKEY_RSA_SHA256 = 1,
    DKIMKEY_ED25519_SHA256 = 2,
};

enum dkimkey_state {
    DKIMKEY_ACTIVE = 1,
    DKIMKEY_RETIRED = 2,
    DKIMKEY_PENDING = 3,
};

/* A key as the directory holds it: public half and metadata, no secret. */
struct dkimkey {
    int64_t id;
    char domain[DIRECTORY_DOMAIN_MAX + 1];
    char selector[DKIMKEY_SELECTOR_MAX + 1];
    enum dkimkey_alg alg;
    enum dkimkey_state state;
    char public_key[DKIMKEY_PUBLIC_MAX + 1]; /* the record's p= value (base64) */
    int64_t created;
    int64_t retired; /* when it stopped signing; 0 unless retired */
};

/* "rsa-sha256" / "ed25519-sha256" (the a= tag); "?" for anything else. */
const char *dkimkey_alg_name(enum dkimkey_alg alg);
/* "active" / "pending" / "retired". */
const char *dkimkey_state_name(enum dkimkey_state state);

/* The TXT record of k, "v=DKIM1; k=rsa; p=..." or "v=DKIM1; k=ed25519;
 * p=...", into out.  Returns its length, or -1 if outlen is too small
 * (DKIMKEY_RECORD_MAX + 1 always suffices). */
int dkimkey_record(const struct dkimkey *k, char *out, size_t outlen);

/* Check a selector and write its stored form (lowercase) into out.
 * Returns 0, or -1 with *error_r (static text). */
int dkimkey_selector_normalise(const char *selector, char out[DKIMKEY_SELECTOR_MAX + 1],
                               const char **error_r);

/* A new private key: RSA of DKIMKEY_RSA_BITS bits, or Ed25519.  NULL with
 * *error_r when OpenSSL fails.  Free with EVP_PKEY_free(). */
EVP_PKEY *dkimkey_generate(enum dkimkey_alg alg, const char **error_r);

/* The algorithm key signs with, and the p= value that publishes its
 * public half (RSA: SubjectPublicKeyInfo DER; Ed25519: the raw 32 bytes,
 * RFC 8463 §4.2; both base64).  Returns 0, or -1 with *error_r for a key
 * of another type or an RSA key outside 2048..4096 bits. */
int dkimkey_public(EVP_PKEY *key, enum dkimkey_alg *alg_r, char out[DKIMKEY_PUBLIC_MAX + 1],
                   const char **error_r);

/* --- in the directory ------------------------------------------------------- */

/* Normalise domain into out and check that it is hosted.  Returns 0, or
 * -1 with directory_error() ("domain x is not hosted ..."). */
int directory_dkim_domain(struct directory *dir, const char *domain,
                          char out[DIRECTORY_DOMAIN_MAX + 1]);

struct dkimkey_new {
    const char *selector;
    EVP_PKEY *key; /* private; RSA 2048..4096 bits or Ed25519; not owned */
};

enum dkimkey_mode {
    DKIMKEY_FIRST,   /* no active or pending key yet: the keys become active */
    DKIMKEY_NEXT,    /* active keys and no pending ones: the keys become pending */
    DKIMKEY_REPLACE, /* active keys and no pending ones: those are retired and
                      * the keys become active at once */
};

/* Store n keys (at most one per algorithm) for a hosted domain, each
 * private key sealed to spool_pk, in the state mode says, in one
 * transaction (which also retires the active keys for DKIMKEY_REPLACE).
 * Selectors must be new for the domain (retired ones count).  Returns 0,
 * or -1 with directory_error() (not hosted, mode not matching the
 * domain's keys, selector taken, ...); then nothing changed. */
int directory_dkim_add(struct directory *dir, const char *domain, const struct dkimkey_new *keys,
                       size_t n, enum dkimkey_mode mode,
                       const uint8_t spool_pk[DKIMKEY_SPOOL_PK_BYTES]);

/* The pending keys of domain become active and its active keys retired,
 * in one transaction.  Returns how many keys were activated, or -1 with
 * directory_error() (none pending, ...). */
int directory_dkim_activate(struct directory *dir, const char *domain);

/* Call fn for each key of domain (the active ones only when active_only:
 * those queued signs with): active, then pending, then retired keys,
 * each group newest first, the RSA key of a pair before its Ed25519 key.
 * Returns the count, or -1 with directory_error().  A domain that is not
 * hosted has no keys (0). */
int directory_dkim_list(struct directory *dir, const char *domain, bool active_only,
                        void (*fn)(void *arg, const struct dkimkey *k), void *arg);

/* The key of domain with selector.  Returns 1 (and *k), 0 none, -1 error. */
int directory_dkim_get(struct directory *dir, const char *domain, const char *selector,
                       struct dkimkey *k);

/* Remove a retired or pending key (its record must then leave DNS too).
 * An active key is refused: rotate first.  Returns 0, or -1 with
 * directory_error(). */
int directory_dkim_remove(struct directory *dir, const char *domain, const char *selector);

/* Open the private key of k (as listed) with the spool secret key (32
 * bytes, normally in secret memory: daemon/keys.h keys_read_secret()).
 * The wrap must open for k's domain, selector and algorithm, and the key
 * must match k's published public key.  Returns a key for
 * dkim_sign_params.key (mailauth/dkim.h; free with EVP_PKEY_free), or
 * NULL with directory_error() (no such key, wrong spool key, damaged
 * wrap, mismatch). */
EVP_PKEY *directory_dkim_private(struct directory *dir, const struct dkimkey *k,
                                 const uint8_t spool_sk[DKIMKEY_SPOOL_SK_BYTES]);

#endif
