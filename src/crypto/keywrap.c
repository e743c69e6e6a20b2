/* keywrap.c — wrapping the mailbox key under passwords, recovery keys and
 * tokens (see keywrap.h for the format and the measurements).
 *
 * Design: every wrap is the same 98-byte record, whatever the secret; only
 * the key-encryption key (KEK) is derived differently:
 *   - passwords and app passwords: Argon2id (crypto_pwhash, one lane) with
 *     the cost and a random salt stored in the wrap.  Passwords are low in
 *     entropy, so the slow hash is the whole defence against an offline
 *     guess from a stolen database.
 *   - recovery keys and tokens: keyed BLAKE2b with the wrap's salt and a
 *     per-kind personalisation.  They are 256 random bits: a slow hash
 *     would add nothing but login latency.
 *   - the X25519 secret key: keyed BLAKE2b of MK, never MK itself, so the
 *     store's page key and this wrap key stay separate.
 * The KEK encrypts the 32-byte payload with XChaCha20-Poly1305 under a
 * random nonce (192 bits: random nonces are safe).  The header (version,
 * kind, cost, salt, nonce) and the caller's context are the associated
 * data, so no field can be edited and no wrap moved between mailboxes
 * without the tag failing.  The header's cost is used before it is
 * authenticated, so it is bounded first (KEYWRAP_MAX_*).
 *
 * Every KEK and every opened payload lives in seal_secret_alloc() memory
 * and is freed (wiped) on every path.  Nothing here logs. */
#include "crypto/keywrap.h"

#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
#include <string.h>

#include "core/bytes.h"
#include "crypto/seal.h"

#define WRAP_VERSION 1
#define SALT_BYTES 16
#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define KEK_BYTES crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define PAYLOAD_BYTES 32

/* Offsets in a wrap. */
#define OFF_VERSION 0
#define OFF_KIND 1
#define OFF_OPS 2
#define OFF_MEM 6
#define OFF_SALT 10
#define OFF_NONCE (OFF_SALT + SALT_BYTES)
#define HDR_BYTES (OFF_NONCE + NONCE_BYTES)
#define AD_MAX (HDR_BYTES + KEYWRAP_CONTEXT_MAX)

#define PASSWORD_MAX KEYWRAP_PASSWORD_MAX

/* BLAKE2b personalisations: exactly 16 bytes, one per use. */
#define PERSONAL_RECOVERY "sealmail:recover"
#define PERSONAL_TOKEN "sealmail:token01"
#define PERSONAL_SECRET "sealmail:skwrap1"
#define PERSONAL_CHECKSUM "sealmail:rcvcsum"

/* Recovery text: 32 key bytes + 3 checksum bytes = 280 bits = 56 symbols. */
#define RECOVERY_CHECK_BYTES 3
#define RECOVERY_RAW_BYTES (KEYWRAP_KEY_BYTES + RECOVERY_CHECK_BYTES)
#define RECOVERY_SYMBOLS (RECOVERY_RAW_BYTES * 8 / 5)
#define RECOVERY_GROUP 4

_Static_assert(HDR_BYTES == 50, "header size");
_Static_assert(KEYWRAP_WRAP_BYTES == HDR_BYTES + PAYLOAD_BYTES + TAG_BYTES, "wrap size");
_Static_assert(KEYWRAP_WRAP_BYTES <= KEYWRAP_WRAP_MAX, "wrap max");
_Static_assert(SALT_BYTES == crypto_pwhash_argon2id_SALTBYTES, "Argon2id salt");
_Static_assert(SALT_BYTES == crypto_generichash_blake2b_SALTBYTES, "BLAKE2b salt");
_Static_assert(sizeof PERSONAL_RECOVERY - 1 == crypto_generichash_blake2b_PERSONALBYTES &&
                   sizeof PERSONAL_TOKEN - 1 == crypto_generichash_blake2b_PERSONALBYTES &&
                   sizeof PERSONAL_SECRET - 1 == crypto_generichash_blake2b_PERSONALBYTES &&
                   sizeof PERSONAL_CHECKSUM - 1 == crypto_generichash_blake2b_PERSONALBYTES,
               "BLAKE2b personalisation");
_Static_assert(KEK_BYTES == 32 && KEYWRAP_MK_BYTES == PAYLOAD_BYTES &&
                   KEYWRAP_SK_BYTES == PAYLOAD_BYTES && KEYWRAP_KEY_BYTES == 32,
               "key sizes");
_Static_assert(RECOVERY_RAW_BYTES * 8 % 5 == 0, "recovery text has no padding");
_Static_assert(RECOVERY_SYMBOLS % RECOVERY_GROUP == 0 &&
                   KEYWRAP_RECOVERY_TEXT_MAX ==
                       RECOVERY_SYMBOLS + RECOVERY_SYMBOLS / RECOVERY_GROUP,
               "recovery text size: symbols, dashes between groups, NUL");
_Static_assert(KEYWRAP_MAX_MEM_KIB <= SIZE_MAX / 1024, "memory limit fits size_t");

/* A parsed (not yet authenticated) wrap header. */
struct wrap_hdr {
    enum keywrap_kind kind;
    struct keywrap_params params;
    const uint8_t *salt;
};

/* ---- small helpers -------------------------------------------------- */

static bool is_password_kind(enum keywrap_kind kind)
{
    return kind == KEYWRAP_PASSWORD || kind == KEYWRAP_APP_PASSWORD;
}

/* Bounds a cost must satisfy to be computed at all (tests use tiny ones;
 * the configuration floor is keywrap_params_check()). */
static bool params_usable(const struct keywrap_params *p)
{
    return p->ops >= crypto_pwhash_argon2id_OPSLIMIT_MIN && p->ops <= KEYWRAP_MAX_OPS &&
           p->mem_kib >= crypto_pwhash_argon2id_MEMLIMIT_MIN / 1024 &&
           p->mem_kib <= KEYWRAP_MAX_MEM_KIB;
}

static int context_check(const char *context, size_t *len_r, const char **error_r)
{
    size_t len = context == NULL ? 0 : strnlen(context, KEYWRAP_CONTEXT_MAX + 1);
    if (len == 0 || len > KEYWRAP_CONTEXT_MAX) {
        *error_r = "invalid key wrap context";
        return -1;
    }
    *len_r = len;
    return 0;
}

/* The associated data: the wrap's header, then the context. */
static size_t build_ad(uint8_t ad[AD_MAX], const uint8_t *wrap, const char *context, size_t ctxlen)
{
    memcpy(ad, wrap, HDR_BYTES);
    memcpy(ad + HDR_BYTES, context, ctxlen);
    return HDR_BYTES + ctxlen;
}

/* ---- key derivation ------------------------------------------------- */

/* Argon2id(password, salt) into kek.  Returns 0, or -1 with *error_r: the
 * failure is the server's (memory), never the password's. */
static int derive_password(uint8_t kek[KEK_BYTES], const char *password, size_t pwlen,
                           const uint8_t salt[SALT_BYTES], const struct keywrap_params *p,
                           const char **error_r)
{
    errno = 0;
    if (crypto_pwhash(kek, KEK_BYTES, password, pwlen, salt, p->ops, (size_t)p->mem_kib * 1024,
                      crypto_pwhash_ALG_ARGON2ID13) != 0) {
        *error_r = errno == ENOMEM ? "out of memory deriving the key (Argon2id)"
                                   : "cannot derive the key (Argon2id)";
        return -1;
    }
    return 0;
}

/* Keyed BLAKE2b of a 256-bit secret with the wrap's salt. */
static void derive_fast(uint8_t kek[KEK_BYTES], const uint8_t key[32],
                        const uint8_t salt[SALT_BYTES], const char *personal)
{
    crypto_generichash_blake2b_salt_personal(kek, KEK_BYTES, NULL, 0, key, 32, salt,
                                             (const unsigned char *)personal);
}

/* ---- the record ----------------------------------------------------- */

/* Write a header of the given kind and cost with a fresh salt and nonce. */
static void hdr_write(uint8_t *out, enum keywrap_kind kind, const struct keywrap_params *p)
{
    out[OFF_VERSION] = WRAP_VERSION;
    out[OFF_KIND] = (uint8_t)kind;
    sm_put_be32(out + OFF_OPS, p == NULL ? 0 : p->ops);
    sm_put_be32(out + OFF_MEM, p == NULL ? 0 : p->mem_kib);
    seal_random(out + OFF_SALT, SALT_BYTES);
    seal_random(out + OFF_NONCE, NONCE_BYTES);
}

/* Check a wrap's shape and read its header.  The cost of a password wrap
 * must be computable; a fast kind must carry none. */
static int hdr_parse(const uint8_t *wrap, size_t wraplen, struct wrap_hdr *h, const char **error_r)
{
    if (wrap == NULL || wraplen != KEYWRAP_WRAP_BYTES || wrap[OFF_VERSION] != WRAP_VERSION) {
        *error_r = "damaged key wrap (size or version)";
        return -1;
    }
    if (wrap[OFF_KIND] < KEYWRAP_PASSWORD || wrap[OFF_KIND] > KEYWRAP_SECRET) {
        *error_r = "damaged key wrap (unknown kind)";
        return -1;
    }
    h->kind = (enum keywrap_kind)wrap[OFF_KIND];
    h->params.ops = sm_get_be32(wrap + OFF_OPS);
    h->params.mem_kib = sm_get_be32(wrap + OFF_MEM);
    h->salt = wrap + OFF_SALT;
    bool ok = is_password_kind(h->kind) ? params_usable(&h->params)
                                        : h->params.ops == 0 && h->params.mem_kib == 0;
    if (!ok) {
        *error_r = "damaged key wrap (parameters out of bounds)";
        return -1;
    }
    return 0;
}

/* Encrypt the payload under kek into out, whose header is already written;
 * frees kek. */
static void seal_payload(uint8_t *out, size_t *outlen, uint8_t **kek, const uint8_t *payload,
                         const char *context, size_t ctxlen)
{
    uint8_t ad[AD_MAX];
    size_t adlen = build_ad(ad, out, context, ctxlen);

    crypto_aead_xchacha20poly1305_ietf_encrypt(out + HDR_BYTES, NULL, payload, PAYLOAD_BYTES, ad,
                                               adlen, NULL, out + OFF_NONCE, *kek);
    seal_secret_free(kek);
    *outlen = KEYWRAP_WRAP_BYTES;
}

/* Authenticate and decrypt the payload with kek (freed here).  On success
 * *payload_r is secret memory. */
static int open_payload(const uint8_t *wrap, uint8_t **kek, const char *context, size_t ctxlen,
                        uint8_t **payload_r, const char *wrong, const char **error_r)
{
    uint8_t ad[AD_MAX];
    size_t adlen = build_ad(ad, wrap, context, ctxlen);
    uint8_t *payload = seal_secret_alloc(PAYLOAD_BYTES);

    int r = crypto_aead_xchacha20poly1305_ietf_decrypt(payload, NULL, NULL, wrap + HDR_BYTES,
                                                       PAYLOAD_BYTES + TAG_BYTES, ad, adlen,
                                                       wrap + OFF_NONCE, *kek);
    seal_secret_free(kek);
    if (r != 0) {
        seal_secret_free(&payload);
        *error_r = wrong;
        return KEYWRAP_WRONG;
    }
    *payload_r = payload;
    return KEYWRAP_OK;
}

/* Parse a wrap expected to be of one of two kinds, and check the context. */
static int unwrap_begin(const uint8_t *wrap, size_t wraplen, enum keywrap_kind k1,
                        enum keywrap_kind k2, const char *context, size_t *ctxlen_r,
                        struct wrap_hdr *h, const char **error_r)
{
    if (context_check(context, ctxlen_r, error_r) < 0 || hdr_parse(wrap, wraplen, h, error_r) < 0)
        return -1;
    if (h->kind != k1 && h->kind != k2) {
        *error_r = "key wrap of another kind";
        return -1;
    }
    return 0;
}

/* ---- public API ----------------------------------------------------- */

int keywrap_params_check(const struct keywrap_params *p, const char **error_r)
{
    if (p->ops < KEYWRAP_MIN_OPS || p->ops > KEYWRAP_MAX_OPS) {
        *error_r = "Argon2id ops out of bounds (2..32)";
        return -1;
    }
    if (p->mem_kib < KEYWRAP_MIN_MEM_KIB || p->mem_kib > KEYWRAP_MAX_MEM_KIB) {
        *error_r = "Argon2id memory out of bounds (19 MiB..1 GiB)";
        return -1;
    }
    return 0;
}

uint8_t *keywrap_mk_new(void)
{
    uint8_t *mk = seal_secret_alloc(KEYWRAP_MK_BYTES);
    seal_random(mk, KEYWRAP_MK_BYTES);
    return mk;
}

int keywrap_wrap_password(const uint8_t mk[KEYWRAP_MK_BYTES], const char *password, size_t pwlen,
                          enum keywrap_kind kind, const struct keywrap_params *p,
                          const char *context, uint8_t *out, size_t *outlen, const char **error_r)
{
    size_t ctxlen;

    if (context_check(context, &ctxlen, error_r) < 0)
        return -1;
    if (!is_password_kind(kind) || !params_usable(p)) {
        *error_r = "invalid password wrap kind or parameters";
        return -1;
    }
    if (pwlen == 0 || pwlen > PASSWORD_MAX) {
        *error_r = "password is empty or too long";
        return -1;
    }
    hdr_write(out, kind, p);
    uint8_t *kek = seal_secret_alloc(KEK_BYTES);
    if (derive_password(kek, password, pwlen, out + OFF_SALT, p, error_r) < 0) {
        seal_secret_free(&kek);
        return -1;
    }
    seal_payload(out, outlen, &kek, mk, context, ctxlen);
    return 0;
}

int keywrap_unwrap_password(const uint8_t *wrap, size_t wraplen, const char *password, size_t pwlen,
                            const char *context, uint8_t **mk_r, const char **error_r)
{
    struct wrap_hdr h;
    size_t ctxlen;

    *mk_r = NULL;
    if (unwrap_begin(wrap, wraplen, KEYWRAP_PASSWORD, KEYWRAP_APP_PASSWORD, context, &ctxlen, &h,
                     error_r) < 0)
        return KEYWRAP_FAILED;
    if (pwlen == 0 || pwlen > PASSWORD_MAX) {
        /* no such password was ever wrapped; the length is the client's,
         * so answering at once reveals nothing about the account */
        *error_r = "wrong password";
        return KEYWRAP_WRONG;
    }
    uint8_t *kek = seal_secret_alloc(KEK_BYTES);
    if (derive_password(kek, password, pwlen, h.salt, &h.params, error_r) < 0) {
        seal_secret_free(&kek);
        return KEYWRAP_FAILED;
    }
    return open_payload(wrap, &kek, context, ctxlen, mk_r, "wrong password", error_r);
}

void keywrap_dummy_work(const struct keywrap_params *p)
{
    static const char dummy[] = "sealmail: no such user";
    uint8_t salt[SALT_BYTES];
    const char *error;

    if (!params_usable(p))
        return;
    seal_random(salt, sizeof salt);
    uint8_t *kek = seal_secret_alloc(KEK_BYTES);
    (void)derive_password(kek, dummy, sizeof dummy - 1, salt, p, &error);
    seal_secret_free(&kek);
}

int keywrap_wrap_info(const uint8_t *wrap, size_t wraplen, enum keywrap_kind *kind_r,
                      struct keywrap_params *params_r, const char **error_r)
{
    struct wrap_hdr h;

    if (hdr_parse(wrap, wraplen, &h, error_r) < 0)
        return -1;
    *kind_r = h.kind;
    *params_r = h.params;
    return 0;
}

/* ---- fast kinds ----------------------------------------------------- */

/* Wrap a 32-byte payload under a KEK derived from a 256-bit key. */
static int wrap_fast(enum keywrap_kind kind, const char *personal, const uint8_t key[32],
                     const uint8_t payload[PAYLOAD_BYTES], const char *context, uint8_t *out,
                     size_t *outlen, const char **error_r)
{
    size_t ctxlen;

    if (context_check(context, &ctxlen, error_r) < 0)
        return -1;
    hdr_write(out, kind, NULL);
    uint8_t *kek = seal_secret_alloc(KEK_BYTES);
    derive_fast(kek, key, out + OFF_SALT, personal);
    seal_payload(out, outlen, &kek, payload, context, ctxlen);
    return 0;
}

/* Open a fast-kind wrap; returns an enum keywrap_result. */
static int unwrap_fast(enum keywrap_kind kind, const char *personal, const uint8_t key[32],
                       const uint8_t *wrap, size_t wraplen, const char *context,
                       uint8_t **payload_r, const char *wrong, const char **error_r)
{
    struct wrap_hdr h;
    size_t ctxlen;

    *payload_r = NULL;
    if (unwrap_begin(wrap, wraplen, kind, kind, context, &ctxlen, &h, error_r) < 0)
        return KEYWRAP_FAILED;
    uint8_t *kek = seal_secret_alloc(KEK_BYTES);
    derive_fast(kek, key, h.salt, personal);
    return open_payload(wrap, &kek, context, ctxlen, payload_r, wrong, error_r);
}

int keywrap_wrap_token(const uint8_t mk[KEYWRAP_MK_BYTES], const uint8_t token[KEYWRAP_KEY_BYTES],
                       const char *context, uint8_t *out, size_t *outlen, const char **error_r)
{
    return wrap_fast(KEYWRAP_TOKEN, PERSONAL_TOKEN, token, mk, context, out, outlen, error_r);
}

int keywrap_unwrap_token(const uint8_t *wrap, size_t wraplen,
                         const uint8_t token[KEYWRAP_KEY_BYTES], const char *context,
                         uint8_t **mk_r, const char **error_r)
{
    return unwrap_fast(KEYWRAP_TOKEN, PERSONAL_TOKEN, token, wrap, wraplen, context, mk_r,
                       "wrong token", error_r);
}

int keywrap_wrap_secret(const uint8_t mk[KEYWRAP_MK_BYTES], const uint8_t sk[KEYWRAP_SK_BYTES],
                        const char *context, uint8_t *out, size_t *outlen, const char **error_r)
{
    return wrap_fast(KEYWRAP_SECRET, PERSONAL_SECRET, mk, sk, context, out, outlen, error_r);
}

int keywrap_unwrap_secret(const uint8_t mk[KEYWRAP_MK_BYTES], const uint8_t *wrap, size_t wraplen,
                          const char *context, uint8_t **sk_r, const char **error_r)
{
    return unwrap_fast(KEYWRAP_SECRET, PERSONAL_SECRET, mk, wrap, wraplen, context, sk_r,
                       "wrong mailbox key for this secret key", error_r);
}

/* ---- recovery keys -------------------------------------------------- */

/* Crockford base32: no I, L, O, U; on input I/L read as 1 and O as 0. */
static const char b32_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* Symbol value + 1 for every accepted input character (so 0 means "not a
 * symbol"), SEP for a separator.  A table, not branches on each (secret)
 * character. */
#define SEP 0xff
#define SYM(up, lo, v) [up] = (v) + 1, [lo] = (v) + 1
static const uint8_t b32_table[256] = {
    ['0'] = 1,         ['1'] = 2,         ['2'] = 3,         ['3'] = 4,         ['4'] = 5,
    ['5'] = 6,         ['6'] = 7,         ['7'] = 8,         ['8'] = 9,         ['9'] = 10,
    SYM('A', 'a', 10), SYM('B', 'b', 11), SYM('C', 'c', 12), SYM('D', 'd', 13), SYM('E', 'e', 14),
    SYM('F', 'f', 15), SYM('G', 'g', 16), SYM('H', 'h', 17), SYM('J', 'j', 18), SYM('K', 'k', 19),
    SYM('M', 'm', 20), SYM('N', 'n', 21), SYM('P', 'p', 22), SYM('Q', 'q', 23), SYM('R', 'r', 24),
    SYM('S', 's', 25), SYM('T', 't', 26), SYM('V', 'v', 27), SYM('W', 'w', 28), SYM('X', 'x', 29),
    SYM('Y', 'y', 30), SYM('Z', 'z', 31), SYM('O', 'o', 0),  SYM('I', 'i', 1),  SYM('L', 'l', 1),
    ['-'] = SEP,       [' '] = SEP,
};
#undef SYM

/* The checksum of a recovery key: the first bytes of a personalised hash. */
static void recovery_checksum(uint8_t check[RECOVERY_CHECK_BYTES], const uint8_t key[32])
{
    uint8_t h[crypto_generichash_blake2b_BYTES_MIN];
    static const uint8_t zero_salt[SALT_BYTES];

    crypto_generichash_blake2b_salt_personal(h, sizeof h, key, 32, NULL, 0, zero_salt,
                                             (const unsigned char *)PERSONAL_CHECKSUM);
    memcpy(check, h, RECOVERY_CHECK_BYTES);
    seal_wipe(h, sizeof h);
}

/* raw (key + checksum) -> "XXXX-XXXX-...", NUL-terminated. */
static void recovery_encode(const uint8_t raw[RECOVERY_RAW_BYTES],
                            char text[KEYWRAP_RECOVERY_TEXT_MAX])
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0, pos = 0;

    for (size_t i = 0; i < RECOVERY_RAW_BYTES; i++) {
        acc = (acc << 8 | raw[i]) & 0xfffu; /* at most 12 pending bits */
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            if (n > 0 && n % RECOVERY_GROUP == 0)
                text[pos++] = '-';
            text[pos++] = b32_alphabet[(acc >> bits) & 31];
            n++;
        }
    }
    text[pos] = '\0';
    seal_wipe(&acc, sizeof acc);
}

/* The user's text -> raw; -1 unless exactly 56 symbols (separators
 * ignored) with a matching checksum. */
static int recovery_decode(const char *text, uint8_t raw[RECOVERY_RAW_BYTES])
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0, out = 0;

    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        uint8_t v = b32_table[*p];
        if (v == SEP)
            continue;
        if (v == 0 || n == RECOVERY_SYMBOLS)
            return -1;
        acc = (acc << 5 | (uint32_t)(v - 1)) & 0xfffu; /* at most 12 pending bits */
        bits += 5;
        n++;
        if (bits >= 8) {
            bits -= 8;
            raw[out++] = (uint8_t)(acc >> bits);
        }
    }
    seal_wipe(&acc, sizeof acc);
    if (n != RECOVERY_SYMBOLS)
        return -1;
    uint8_t check[RECOVERY_CHECK_BYTES];
    recovery_checksum(check, raw);
    return seal_equal(check, raw + KEYWRAP_KEY_BYTES, RECOVERY_CHECK_BYTES) ? 0 : -1;
}

int keywrap_recovery_new(const uint8_t mk[KEYWRAP_MK_BYTES], const char *context,
                         char text[KEYWRAP_RECOVERY_TEXT_MAX], uint8_t *wrap, size_t *wraplen,
                         const char **error_r)
{
    uint8_t *raw = seal_secret_alloc(RECOVERY_RAW_BYTES);

    seal_random(raw, KEYWRAP_KEY_BYTES);
    recovery_checksum(raw + KEYWRAP_KEY_BYTES, raw);
    int r =
        wrap_fast(KEYWRAP_RECOVERY, PERSONAL_RECOVERY, raw, mk, context, wrap, wraplen, error_r);
    if (r == 0)
        recovery_encode(raw, text);
    seal_secret_free(&raw);
    return r;
}

int keywrap_unwrap_recovery(const uint8_t *wrap, size_t wraplen, const char *text,
                            const char *context, uint8_t **mk_r, const char **error_r)
{
    *mk_r = NULL;
    uint8_t *raw = seal_secret_alloc(RECOVERY_RAW_BYTES);
    if (text == NULL || recovery_decode(text, raw) < 0) {
        seal_secret_free(&raw);
        *error_r = "not a recovery key (check for typos)";
        return KEYWRAP_NOT_A_KEY;
    }
    int r = unwrap_fast(KEYWRAP_RECOVERY, PERSONAL_RECOVERY, raw, wrap, wraplen, context, mk_r,
                        "wrong recovery key", error_r);
    seal_secret_free(&raw);
    return r;
}
