/* seal.c — sealed boxes around file keys, and secretstream chunks (see seal.h).
 *
 * Design: a thin layer over libsodium, nothing cryptographic of our own.
 * The file key is 32 random bytes sealed with crypto_box_seal to the
 * recipient's X25519 public key; the content is a
 * crypto_secretstream_xchacha20poly1305 stream under that key, whose
 * per-chunk tags make reordering, dropping and truncation detectable.
 * Its chunks go through streamchunk.h: the same bytes as libsodium's
 * push and pull, with OpenSSL's faster ChaCha20 and Poly1305 doing the
 * bulk of the work.
 * Stream states hold key material, so they live in sodium_malloc memory
 * and are wiped on free (then kept in a small cache for the next message);
 * the file key is wiped as soon as the stream is initialised. */
#include "crypto/seal.h"

#include <pthread.h>
#include <sodium.h>
#include <string.h>

#include "core/log.h"
#include "crypto/streamchunk.h"

_Static_assert(SEAL_PK_BYTES == crypto_box_PUBLICKEYBYTES, "public key size");
_Static_assert(SEAL_FILE_KEY_BYTES == crypto_secretstream_xchacha20poly1305_KEYBYTES,
               "file key size");
_Static_assert(SEAL_SK_BYTES == crypto_box_SECRETKEYBYTES, "secret key size");
_Static_assert(SEAL_SEALED_KEY_BYTES
                   == crypto_box_SEALBYTES + crypto_secretstream_xchacha20poly1305_KEYBYTES,
               "sealed key size");
_Static_assert(SEAL_STREAM_HEADER_BYTES == crypto_secretstream_xchacha20poly1305_HEADERBYTES,
               "stream header size");
_Static_assert(SEAL_STREAM_ABYTES == crypto_secretstream_xchacha20poly1305_ABYTES,
               "stream overhead");
_Static_assert(SEAL_HASH_BYTES >= crypto_generichash_BYTES_MIN
                   && SEAL_HASH_BYTES <= crypto_generichash_BYTES_MAX,
               "hash size");

#define FILE_KEY_BYTES crypto_secretstream_xchacha20poly1305_KEYBYTES

struct seal_stream {
    struct seal_stream *next; /* in the cache of free streams */
    crypto_secretstream_xchacha20poly1305_state state;
    uint8_t key[FILE_KEY_BYTES]; /* only between keygen and stream init */
};

/* Freed streams are wiped and kept for reuse: sodium_malloc costs an
 * mmap, four mprotects, an mlock and their undoing (with TLB shootdowns in
 * a threaded process), too much for every message of a busy spool. */
#define STREAM_CACHE_MAX 256
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct seal_stream *cache;
static unsigned cache_len;

static struct seal_stream *stream_alloc(void)
{
    pthread_mutex_lock(&cache_mu);
    struct seal_stream *st = cache;
    if (st != NULL) {
        cache = st->next;
        cache_len--;
    }
    pthread_mutex_unlock(&cache_mu);
    if (st == NULL)
        st = seal_secret_alloc(sizeof *st);
    st->next = NULL;
    return st;
}

int seal_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

void seal_random(void *buf, size_t n)
{
    randombytes_buf(buf, n);
}

void seal_keypair(uint8_t pk[SEAL_PK_BYTES], uint8_t sk[SEAL_SK_BYTES])
{
    crypto_box_keypair(pk, sk);
}

int seal_public_from_secret(uint8_t pk[SEAL_PK_BYTES], const uint8_t sk[SEAL_SK_BYTES])
{
    return crypto_scalarmult_base(pk, sk) == 0 ? 0 : -1;
}

void seal_hash(uint8_t out[SEAL_HASH_BYTES], const void *in, size_t len)
{
    crypto_generichash(out, SEAL_HASH_BYTES, in, len, NULL, 0);
}

void seal_hex_encode(char *out, const uint8_t *in, size_t n)
{
    sodium_bin2hex(out, 2 * n + 1, in, n);
}

int seal_hex_decode(uint8_t *out, size_t n, const char *hex, size_t len)
{
    size_t got = 0;
    if (len != 2 * n || sodium_hex2bin(out, n, hex, len, NULL, &got, NULL) != 0 || got != n) {
        sodium_memzero(out, n);
        return -1;
    }
    return 0;
}

void seal_keyed_hash2(uint8_t out[SEAL_HASH_BYTES], const uint8_t key[SEAL_HASH_BYTES],
                      const void *a, size_t alen, const void *b, size_t blen)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, SEAL_HASH_BYTES, SEAL_HASH_BYTES);
    crypto_generichash_update(&st, a, alen);
    crypto_generichash_update(&st, (const unsigned char *)"", 1);
    crypto_generichash_update(&st, b, blen);
    crypto_generichash_final(&st, out, SEAL_HASH_BYTES);
    sodium_memzero(&st, sizeof st);
}

bool seal_equal(const void *a, const void *b, size_t n)
{
    return sodium_memcmp(a, b, n) == 0;
}

void *seal_secret_alloc(size_t n)
{
    void *p = sodium_malloc(n);
    if (p == NULL)
        sm_panic("out of secure memory allocating %zu bytes", n);
    sodium_memzero(p, n);
    return p;
}

void seal_secret_free(void *pp)
{
    void **p = pp;
    if (p == NULL)
        return;
    sodium_free(*p); /* wipes the whole allocation before unmapping it */
    *p = NULL;
}

void seal_wipe(void *p, size_t n)
{
    sodium_memzero(p, n);
}

struct seal_stream *seal_stream_push_new(const uint8_t pk[SEAL_PK_BYTES],
                                         uint8_t sealed_key[SEAL_SEALED_KEY_BYTES],
                                         uint8_t header[SEAL_STREAM_HEADER_BYTES],
                                         const char **error_r)
{
    return seal_stream_push_new_key(pk, sealed_key, header, NULL, error_r);
}

struct seal_stream *seal_stream_push_new_key(const uint8_t pk[SEAL_PK_BYTES],
                                             uint8_t sealed_key[SEAL_SEALED_KEY_BYTES],
                                             uint8_t header[SEAL_STREAM_HEADER_BYTES],
                                             uint8_t *key_r, const char **error_r)
{
    struct seal_stream *st = stream_alloc();

    crypto_secretstream_xchacha20poly1305_keygen(st->key);
    if (crypto_box_seal(sealed_key, st->key, FILE_KEY_BYTES, pk) != 0) {
        *error_r = "cannot seal the file key (bad public key)";
        seal_stream_free(&st);
        return NULL;
    }
    if (crypto_secretstream_xchacha20poly1305_init_push(&st->state, header, st->key) != 0) {
        *error_r = "cannot start the encrypted stream";
        seal_stream_free(&st);
        return NULL;
    }
    if (key_r != NULL)
        memcpy(key_r, st->key, FILE_KEY_BYTES);
    sodium_memzero(st->key, sizeof st->key);
    return st;
}

struct seal_stream *seal_stream_push_with_key(const uint8_t key[SEAL_FILE_KEY_BYTES],
                                              uint8_t header[SEAL_STREAM_HEADER_BYTES],
                                              const char **error_r)
{
    struct seal_stream *st = stream_alloc();
    if (crypto_secretstream_xchacha20poly1305_init_push(&st->state, header, key) != 0) {
        *error_r = "cannot start the encrypted stream";
        seal_stream_free(&st);
    }
    return st;
}

int seal_key_seal(uint8_t sealed[SEAL_SEALED_KEY_BYTES], const uint8_t key[SEAL_FILE_KEY_BYTES],
                  const uint8_t pk[SEAL_PK_BYTES])
{
    return crypto_box_seal(sealed, key, FILE_KEY_BYTES, pk) == 0 ? 0 : -1;
}

int seal_key_open(uint8_t key[SEAL_FILE_KEY_BYTES], const uint8_t sealed[SEAL_SEALED_KEY_BYTES],
                  const uint8_t pk[SEAL_PK_BYTES], const uint8_t sk[SEAL_SK_BYTES])
{
    if (crypto_box_seal_open(key, sealed, SEAL_SEALED_KEY_BYTES, pk, sk) == 0)
        return 0;
    sodium_memzero(key, FILE_KEY_BYTES);
    return -1;
}

int seal_stream_push(struct seal_stream *st, const void *in, size_t len, const void *ad,
                     size_t adlen, bool final, uint8_t *out)
{
    uint8_t tag = final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
                        : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
    return stream_chunk_push(&st->state, out, in, len, ad, adlen, tag);
}

struct seal_stream *seal_stream_pull_new(const uint8_t sealed_key[SEAL_SEALED_KEY_BYTES],
                                         const uint8_t header[SEAL_STREAM_HEADER_BYTES],
                                         const uint8_t pk[SEAL_PK_BYTES],
                                         const uint8_t sk[SEAL_SK_BYTES], const char **error_r)
{
    return seal_stream_pull_new_key(sealed_key, header, pk, sk, NULL, error_r);
}

/* The pull state from the key in st->key, which is wiped. */
static struct seal_stream *pull_init(struct seal_stream *st,
                                     const uint8_t header[SEAL_STREAM_HEADER_BYTES],
                                     const char **error_r)
{
    int r = crypto_secretstream_xchacha20poly1305_init_pull(&st->state, header, st->key);
    sodium_memzero(st->key, sizeof st->key);
    if (r != 0) {
        *error_r = "damaged stream header";
        seal_stream_free(&st);
    }
    return st;
}

struct seal_stream *seal_stream_pull_new_key(const uint8_t sealed_key[SEAL_SEALED_KEY_BYTES],
                                             const uint8_t header[SEAL_STREAM_HEADER_BYTES],
                                             const uint8_t pk[SEAL_PK_BYTES],
                                             const uint8_t sk[SEAL_SK_BYTES], uint8_t *key_r,
                                             const char **error_r)
{
    struct seal_stream *st = stream_alloc();

    if (crypto_box_seal_open(st->key, sealed_key, SEAL_SEALED_KEY_BYTES, pk, sk) != 0) {
        *error_r = "cannot open the sealed file key (wrong key or damaged file)";
        seal_stream_free(&st);
        return NULL;
    }
    if (key_r != NULL)
        memcpy(key_r, st->key, FILE_KEY_BYTES);
    return pull_init(st, header, error_r);
}

struct seal_stream *seal_stream_pull_with_key(const uint8_t key[SEAL_FILE_KEY_BYTES],
                                              const uint8_t header[SEAL_STREAM_HEADER_BYTES],
                                              const char **error_r)
{
    struct seal_stream *st = stream_alloc();
    memcpy(st->key, key, FILE_KEY_BYTES);
    return pull_init(st, header, error_r);
}

int seal_stream_pull(struct seal_stream *st, const uint8_t *in, size_t len, const void *ad,
                     size_t adlen, uint8_t *out, bool *final_r)
{
    uint8_t tag = 0;

    if (len < SEAL_STREAM_ABYTES)
        return -1;
    if (stream_chunk_pull(&st->state, out, &tag, in, len, ad, adlen) != 0)
        return -1;
    if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
        && tag != crypto_secretstream_xchacha20poly1305_TAG_FINAL)
        return -1; /* we never write PUSH or REKEY tags */
    *final_r = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
    return 0;
}

void seal_stream_free(struct seal_stream **stp)
{
    struct seal_stream *st = *stp;
    if (st == NULL)
        return;
    *stp = NULL;
    sodium_memzero(st, sizeof *st);
    pthread_mutex_lock(&cache_mu);
    if (cache_len < STREAM_CACHE_MAX) {
        st->next = cache;
        cache = st;
        cache_len++;
        st = NULL;
    }
    pthread_mutex_unlock(&cache_mu);
    seal_secret_free(&st);
}
