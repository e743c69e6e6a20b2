/* keywrap.h — the mailbox key hierarchy: one mailbox key (MK), stored
 * only wrapped (DESIGN.md §4 "Keys and encryption").
 *
 * Each mailbox has a 256-bit mailbox key MK that encrypts its store.  MK
 * is never stored in the clear: it is kept as several independent
 * "wraps", each an XChaCha20-Poly1305 encryption of MK under a key
 * derived from one secret the user holds:
 *
 *   KEYWRAP_PASSWORD      the login password, through Argon2id
 *   KEYWRAP_APP_PASSWORD  an app password, same construction
 *   KEYWRAP_RECOVERY      a one-time 256-bit recovery key shown as text,
 *                         through keyed BLAKE2b (256 bits of entropy need
 *                         no slow hash)
 *   KEYWRAP_TOKEN         a disposable inbox's 256-bit token, keyed BLAKE2b
 *   KEYWRAP_SECRET        not a wrap of MK: the mailbox's X25519 secret key
 *                         wrapped by (a key derived from) MK
 *
 * Opening a wrap IS the password check: there is no separate password
 * hash.  A wrong password costs the full Argon2id run, like a right one
 * (the AEAD check after it is constant-time), and keywrap_dummy_work()
 * spends the same time for an unknown user.  A password change unwraps MK
 * and wraps it again under a new salt; MK itself never changes, so the
 * store is never re-encrypted.
 *
 * A wrap is a self-describing byte string, stored as a BLOB:
 *
 *   offset size  field
 *        0    1  version (1)
 *        1    1  kind (enum keywrap_kind)
 *        2    4  Argon2id ops, big-endian (0 for the fast kinds)
 *        6    4  Argon2id memory in KiB, big-endian (0 for the fast kinds)
 *       10   16  salt (random per wrap)
 *       26   24  XChaCha20 nonce (random per wrap)
 *       50   48  ciphertext of the 32-byte key + 16-byte Poly1305 tag
 *   total 98 = KEYWRAP_WRAP_BYTES
 *
 * The associated data is the 50-byte header followed by the caller's
 * context string (the mailbox id), so a wrap cannot be moved to another
 * mailbox, turned into another kind, or have its Argon2id cost lowered:
 * any change to any byte makes it fail to open.
 *
 * Argon2id cost, measured on the 2-core shared development VM (AMD EPYC,
 * libsodium 1.0.18, optimized build) with `KEYWRAP_MEASURE=1
 * tests/unit/test-keywrap`: one lane, median of 5 runs (the mean of two
 * such runs while the VM was quiet; concurrent builds inflate them up to
 * 2x); "x2" is two logins at once, one per core.
 *
 *   ops  memory    alone     x2
 *     1    8 MiB     6 ms    10 ms   tests only
 *     2   19 MiB    25 ms    37 ms   the floor (OWASP)
 *     2   32 MiB    47 ms    66 ms
 *     2   64 MiB   103 ms   128 ms
 *     3   64 MiB   120 ms   149 ms   <- the default
 *     2  128 MiB   213 ms   264 ms
 *     3  128 MiB   261 ms   305 ms
 *     4  256 MiB   646 ms   745 ms
 *     3  256 MiB   560 ms   645 ms   libsodium's MODERATE
 *
 * The default (3 passes, 64 MiB) is RFC 9106 §4's second recommended
 * option (the one "if much less memory is available"; libsodium runs one
 * lane, not four).  The trade-off: each guess at a stolen wrap costs an
 * attacker 64 MiB for ~0.12 s, while the server pays the same for every
 * IMAP/POP3/SMTP-AUTH login — about 13 logins per second on 2 cores and
 * 64 MiB per login in flight (bounded by the worker pool, e.g. 8 workers
 * = 512 MiB).  128 MiB doubles both sides (~0.26 s, ~7 logins/s);
 * MODERATE (256 MiB, ~0.6 s) is too slow for clients that reconnect
 * often.
 *
 * Secrets (MK, derived keys, recovery keys, the X25519 secret key) live
 * only in seal_secret_alloc() memory and are wiped on seal_secret_free().
 * Nothing here logs.  Call seal_init() once before any function here.
 * All functions are thread-safe. */
#ifndef SM_KEYWRAP_H
#define SM_KEYWRAP_H

#include <stddef.h>
#include <stdint.h>

#define KEYWRAP_MK_BYTES 32     /* the mailbox key */
#define KEYWRAP_KEY_BYTES 32    /* a recovery key or an inbox token */
#define KEYWRAP_SK_BYTES 32     /* an X25519 secret key (SEAL_SK_BYTES) */
#define KEYWRAP_WRAP_BYTES 98   /* an encoded version-1 wrap, every kind */
#define KEYWRAP_WRAP_MAX 128    /* room for any wrap; size BLOB buffers with it */
#define KEYWRAP_CONTEXT_MAX 255 /* bytes of a context string, NUL excluded */
/* "XXXX-XXXX-...": 56 Crockford base32 symbols (32 key bytes + 3 checksum
 * bytes) in 14 groups of 4, 13 dashes, NUL. */
#define KEYWRAP_RECOVERY_TEXT_MAX 70

/* Argon2id defaults for password and app-password wraps (configuration
 * defaults; see the measurements above and docs/configuration.md). */
#define KEYWRAP_DEFAULT_OPS 3
#define KEYWRAP_DEFAULT_MEM_KIB (64u * 1024u)
/* The configuration must not go below these: OWASP's Password Storage
 * Cheat Sheet's smallest Argon2id setting (m = 19 MiB, t = 2, p = 1);
 * RFC 9106 §4 recommends more (64 MiB, t = 3) where memory allows. */
#define KEYWRAP_MIN_OPS 2
#define KEYWRAP_MIN_MEM_KIB (19u * 1024u)
/* Nor above these; a wrap claiming more is refused as damaged before any
 * work is done, so a corrupted BLOB cannot stall or exhaust the server. */
#define KEYWRAP_MAX_OPS 32
#define KEYWRAP_MAX_MEM_KIB (1024u * 1024u)

enum keywrap_kind {
    KEYWRAP_PASSWORD = 1,
    KEYWRAP_APP_PASSWORD = 2,
    KEYWRAP_RECOVERY = 3,
    KEYWRAP_TOKEN = 4,
    KEYWRAP_SECRET = 5,
};

/* Results of the unwrap functions.  Every failure is negative, so callers
 * that do not care which one may test `< 0`. */
enum keywrap_result {
    KEYWRAP_OK = 0,
    /* The secret does not open this wrap: wrong password, wrong recovery
     * key, wrong token — or a wrap altered in its salt, nonce, ciphertext
     * or parameters, which cannot be told apart.  For IMAP: AUTHENTICATIONFAILED. */
    KEYWRAP_WRONG = -1,
    /* The recovery text is not a recovery key at all (bad character,
     * wrong length, checksum mismatch: most likely a typo). */
    KEYWRAP_NOT_A_KEY = -2,
    /* The attempt could not be made: a wrap of the wrong size, version or
     * kind, parameters out of bounds, a bad context, or out of memory in
     * Argon2id.  A server error, never a wrong password. */
    KEYWRAP_FAILED = -3,
};

/* Argon2id cost: passes over memory, and memory in KiB.  One lane. */
struct keywrap_params {
    unsigned ops;
    unsigned mem_kib;
};

/* Check params as configuration values: KEYWRAP_MIN_OPS..KEYWRAP_MAX_OPS
 * and KEYWRAP_MIN_MEM_KIB..KEYWRAP_MAX_MEM_KIB.  Returns 0, or -1 with
 * *error_r (static text).  The wrap functions themselves accept any cost
 * libsodium and the MAX bounds allow (tests use tiny ones); the
 * configuration layer must call this. */
int keywrap_params_check(const struct keywrap_params *p, const char **error_r);

/* A new random mailbox key of KEYWRAP_MK_BYTES in secret memory.  Never
 * fails (aborts on OOM).  Free with seal_secret_free(). */
uint8_t *keywrap_mk_new(void);

#define KEYWRAP_PASSWORD_MAX 4096 /* bytes of a password or app password */

/* Wrap mk under password (pwlen bytes, 1..KEYWRAP_PASSWORD_MAX, any bytes; no copy is
 * made, so the caller's buffer should be seal_secret_alloc() memory) with
 * Argon2id cost p and a fresh random salt.  kind is KEYWRAP_PASSWORD or
 * KEYWRAP_APP_PASSWORD.  context (1..KEYWRAP_CONTEXT_MAX bytes, NUL-
 * terminated, typically the mailbox id) is bound to the wrap.  out must
 * hold KEYWRAP_WRAP_MAX bytes; *outlen receives the length written.  Takes
 * as long as one login.  Returns 0, or -1 with *error_r (bad argument, or
 * out of memory in Argon2id).  A password change is
 * keywrap_unwrap_password() with the old one, then this with the new
 * one: MK stays the same. */
int keywrap_wrap_password(const uint8_t mk[KEYWRAP_MK_BYTES], const char *password, size_t pwlen,
                          enum keywrap_kind kind, const struct keywrap_params *p,
                          const char *context, uint8_t *out, size_t *outlen, const char **error_r);

/* Open a password or app-password wrap: run Argon2id with the cost stored
 * in the wrap and check the tag.  On KEYWRAP_OK, *mk_r is MK in secret
 * memory (free with seal_secret_free()).  Otherwise *mk_r is NULL and the
 * result is KEYWRAP_WRONG ("wrong password"; also a tampered wrap) or
 * KEYWRAP_FAILED (damaged wrap, out of memory, ...), with *error_r.
 * An empty or over-long password is KEYWRAP_WRONG at once (no such
 * password can have been wrapped, and its length is the client's).  For
 * the user who has no wrap at all, call keywrap_dummy_work(). */
int keywrap_unwrap_password(const uint8_t *wrap, size_t wraplen, const char *password, size_t pwlen,
                            const char *context, uint8_t **mk_r, const char **error_r);

/* Spend the time of one keywrap_unwrap_password() with cost p, for a user
 * who does not exist, so that a login attempt does not reveal whether the
 * account exists.  The result is thrown away. */
void keywrap_dummy_work(const struct keywrap_params *p);

/* Read the kind and Argon2id cost a wrap claims, WITHOUT authenticating
 * them (e.g. to re-wrap at the next login when the configured cost has
 * risen; a lie here only makes the later unwrap fail).  Returns 0, or -1
 * with *error_r if the wrap is not well-formed.  Fast kinds report 0/0. */
int keywrap_wrap_info(const uint8_t *wrap, size_t wraplen, enum keywrap_kind *kind_r,
                      struct keywrap_params *params_r, const char **error_r);

/* Create a recovery key for mk: a fresh random 256-bit key, written once
 * to text as "XXXX-XXXX-..." (Crockford base32 with a checksum, NUL-
 * terminated; the caller shows it to the user and wipes it — it is a
 * secret, keep it in seal_secret_alloc() memory), and a wrap of mk under
 * it bound to context, into wrap (KEYWRAP_WRAP_MAX bytes, *wraplen set).
 * Returns 0, or -1 with *error_r (bad context). */
int keywrap_recovery_new(const uint8_t mk[KEYWRAP_MK_BYTES], const char *context,
                         char text[KEYWRAP_RECOVERY_TEXT_MAX], uint8_t *wrap, size_t *wraplen,
                         const char **error_r);

/* Open a recovery wrap with the text the user typed.  Case, dashes and
 * spaces do not matter, and O/o read as 0, I/i/L/l as 1.  Returns
 * KEYWRAP_OK with *mk_r (secret memory, free with seal_secret_free()),
 * KEYWRAP_NOT_A_KEY ("not a recovery key": a typo the checksum caught),
 * KEYWRAP_WRONG ("wrong recovery key": a valid key, but not this
 * mailbox's), or KEYWRAP_FAILED (damaged wrap); *error_r set on failure. */
int keywrap_unwrap_recovery(const uint8_t *wrap, size_t wraplen, const char *text,
                            const char *context, uint8_t **mk_r, const char **error_r);

/* Wrap mk under a 256-bit token (a disposable inbox's; generate it with
 * seal_random() into secret memory), bound to context.  out must hold
 * KEYWRAP_WRAP_MAX bytes.  Fast: one keyed BLAKE2b.  Returns 0, or -1 with
 * *error_r (bad context). */
int keywrap_wrap_token(const uint8_t mk[KEYWRAP_MK_BYTES], const uint8_t token[KEYWRAP_KEY_BYTES],
                       const char *context, uint8_t *out, size_t *outlen, const char **error_r);

/* Open a token wrap.  Returns KEYWRAP_OK with *mk_r (secret memory),
 * KEYWRAP_WRONG ("wrong token") or KEYWRAP_FAILED, *error_r set on
 * failure. */
int keywrap_unwrap_token(const uint8_t *wrap, size_t wraplen,
                         const uint8_t token[KEYWRAP_KEY_BYTES], const char *context,
                         uint8_t **mk_r, const char **error_r);

/* Wrap the mailbox's X25519 secret key sk (from seal_keypair()) under a
 * key derived from mk, bound to context.  out must hold KEYWRAP_WRAP_MAX
 * bytes.  Returns 0, or -1 with *error_r (bad context). */
int keywrap_wrap_secret(const uint8_t mk[KEYWRAP_MK_BYTES], const uint8_t sk[KEYWRAP_SK_BYTES],
                        const char *context, uint8_t *out, size_t *outlen, const char **error_r);

/* Open the secret-key wrap with mk.  Returns KEYWRAP_OK with *sk_r (secret
 * memory, KEYWRAP_SK_BYTES, free with seal_secret_free()), KEYWRAP_WRONG
 * (not this mailbox's key, or tampered) or KEYWRAP_FAILED; *error_r set on
 * failure. */
int keywrap_unwrap_secret(const uint8_t mk[KEYWRAP_MK_BYTES], const uint8_t *wrap, size_t wraplen,
                          const char *context, uint8_t **sk_r, const char **error_r);

#endif
