/* seal.h — the few libsodium operations sealmail's stored files need.
 *
 * A sealed file (spool entry, later a mailbox drop) is written to an
 * X25519 public key: a fresh random file key is sealed with
 * crypto_box_seal (anonymous sender, so the writer cannot open it again),
 * and the content is streamed with crypto_secretstream_xchacha20poly1305
 * under that key.  This header hides libsodium from the rest of the tree:
 * only crypto/ and store/ include <sodium.h>.
 *
 * Secret material (file keys, stream states, secret keys) lives only in
 * sodium_malloc memory, which seal_secret_alloc() hands out, and is wiped
 * before it is released. */
#ifndef SM_SEAL_H
#define SM_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEAL_PK_BYTES 32            /* X25519 public key */
#define SEAL_SK_BYTES 32            /* X25519 secret key */
#define SEAL_SEALED_KEY_BYTES 80    /* crypto_box_SEALBYTES (48) + a 32-byte file key */
#define SEAL_STREAM_HEADER_BYTES 24 /* crypto_secretstream_xchacha20poly1305_HEADERBYTES */
#define SEAL_STREAM_ABYTES 17       /* per-chunk overhead (tag byte + MAC) */
#define SEAL_HASH_BYTES 32          /* BLAKE2b-256 */
#define SEAL_FILE_KEY_BYTES 32      /* a file's own stream key */

struct seal_stream;

/* Initialise libsodium (idempotent, thread-safe).  Returns 0, or -1 if the
 * library cannot be used (no entropy source). */
int seal_init(void);

/* Fill buf with n unpredictable bytes. */
void seal_random(void *buf, size_t n);

/* Generate an X25519 key pair; sk should point into seal_secret_alloc()
 * memory. */
void seal_keypair(uint8_t pk[SEAL_PK_BYTES], uint8_t sk[SEAL_SK_BYTES]);

/* Compute the public key matching sk.  Returns 0, or -1 if sk is unusable. */
int seal_public_from_secret(uint8_t pk[SEAL_PK_BYTES], const uint8_t sk[SEAL_SK_BYTES]);

/* BLAKE2b-256 of len bytes at in. */
void seal_hash(uint8_t out[SEAL_HASH_BYTES], const void *in, size_t len);

/* Keyed BLAKE2b-256 (a MAC) of the two parts a and b joined with a NUL
 * byte between them, so ("ab", "c") and ("a", "bc") differ. */
void seal_keyed_hash2(uint8_t out[SEAL_HASH_BYTES], const uint8_t key[SEAL_HASH_BYTES],
                      const void *a, size_t alen, const void *b, size_t blen);

/* Lowercase hex of n bytes into out (2n + 1 bytes, NUL-terminated), in
 * constant time (for secrets such as inbox tokens). */
void seal_hex_encode(char *out, const uint8_t *in, size_t n);
/* Decode exactly 2n hex digits (either case) of hex[0..len) into out[n],
 * in constant time.  Returns 0, or -1 when len != 2n or a character is
 * not a hex digit (out is then wiped). */
int seal_hex_decode(uint8_t *out, size_t n, const char *hex, size_t len);

/* Constant-time comparison of two n-byte secrets; true when equal. */
bool seal_equal(const void *a, const void *b, size_t n);

/* Guarded, locked, never-failing allocation for secrets (aborts on OOM),
 * n > 0.  Free with seal_secret_free(), which wipes it. */
void *seal_secret_alloc(size_t n);
/* Wipe and release memory from seal_secret_alloc(); sets *pp to NULL and
 * accepts NULL and *pp == NULL.  pp is a pointer to the pointer. */
void seal_secret_free(void *pp);
/* Overwrite n bytes at p with zeros in a way the compiler keeps. */
void seal_wipe(void *p, size_t n);

/* Start sealing a new file to pk: a fresh file key is generated, sealed to
 * pk into sealed_key, and a push stream is initialised, its header written
 * to header.  The file key itself is wiped at once; only the stream state
 * (in secret memory) remains.  Returns NULL with *error_r (static text) on
 * failure.  Free with seal_stream_free(). */
struct seal_stream *seal_stream_push_new(const uint8_t pk[SEAL_PK_BYTES],
                                         uint8_t sealed_key[SEAL_SEALED_KEY_BYTES],
                                         uint8_t header[SEAL_STREAM_HEADER_BYTES],
                                         const char **error_r);
/* seal_stream_push_new() that also copies the fresh file key to key_r
 * (SEAL_FILE_KEY_BYTES, when not NULL): for a writer that may read the
 * file back and records the key where only the reader finds it (the
 * mailbox store's encrypted rows).  The caller wipes its copy. */
struct seal_stream *seal_stream_push_new_key(const uint8_t pk[SEAL_PK_BYTES],
                                             uint8_t sealed_key[SEAL_SEALED_KEY_BYTES],
                                             uint8_t header[SEAL_STREAM_HEADER_BYTES],
                                             uint8_t *key_r, const char **error_r);
/* A push stream keyed by key (SEAL_FILE_KEY_BYTES, derived by the caller,
 * who wipes it): no sealed key, no X25519.  NULL with *error_r. */
struct seal_stream *seal_stream_push_with_key(const uint8_t key[SEAL_FILE_KEY_BYTES],
                                              uint8_t header[SEAL_STREAM_HEADER_BYTES],
                                              const char **error_r);
/* Seal a 32-byte key to pk (crypto_box_seal) into sealed; 0 or -1. */
int seal_key_seal(uint8_t sealed[SEAL_SEALED_KEY_BYTES], const uint8_t key[SEAL_FILE_KEY_BYTES],
                  const uint8_t pk[SEAL_PK_BYTES]);
/* Open what seal_key_seal() made; 0, or -1 (key wiped) on a wrong key pair
 * or damage. */
int seal_key_open(uint8_t key[SEAL_FILE_KEY_BYTES], const uint8_t sealed[SEAL_SEALED_KEY_BYTES],
                  const uint8_t pk[SEAL_PK_BYTES], const uint8_t sk[SEAL_SK_BYTES]);
/* Encrypt len bytes of in into out (len + SEAL_STREAM_ABYTES bytes), with
 * ad (adlen bytes, may be 0) authenticated; final marks the last chunk.
 * Returns 0, or -1 (the stream is then unusable). */
int seal_stream_push(struct seal_stream *st, const void *in, size_t len, const void *ad,
                     size_t adlen, bool final, uint8_t *out);

/* Open a sealed file: unseal the file key with (pk, sk), initialise a pull
 * stream from header.  Returns NULL with *error_r on a wrong key or a
 * damaged sealed key/header. */
struct seal_stream *seal_stream_pull_new(const uint8_t sealed_key[SEAL_SEALED_KEY_BYTES],
                                         const uint8_t header[SEAL_STREAM_HEADER_BYTES],
                                         const uint8_t pk[SEAL_PK_BYTES],
                                         const uint8_t sk[SEAL_SK_BYTES], const char **error_r);
/* seal_stream_pull_new() that also copies the opened file key to key_r
 * (SEAL_FILE_KEY_BYTES, when not NULL; the caller wipes it). */
struct seal_stream *seal_stream_pull_new_key(const uint8_t sealed_key[SEAL_SEALED_KEY_BYTES],
                                             const uint8_t header[SEAL_STREAM_HEADER_BYTES],
                                             const uint8_t pk[SEAL_PK_BYTES],
                                             const uint8_t sk[SEAL_SK_BYTES], uint8_t *key_r,
                                             const char **error_r);
/* A pull stream from a file key known already (recorded when the file was
 * written or first opened): no X25519.  A wrong key is noticed by the
 * first chunk's MAC, not here.  NULL with *error_r on a bad header. */
struct seal_stream *seal_stream_pull_with_key(const uint8_t key[SEAL_FILE_KEY_BYTES],
                                              const uint8_t header[SEAL_STREAM_HEADER_BYTES],
                                              const char **error_r);
/* Authenticate and decrypt one chunk of len bytes (len >= SEAL_STREAM_ABYTES)
 * into out (len - SEAL_STREAM_ABYTES bytes), with ad.  Sets *final_r when
 * the chunk was the last one.  Returns 0, or -1 when the chunk is not
 * authentic (nothing in out may then be used). */
int seal_stream_pull(struct seal_stream *st, const uint8_t *in, size_t len, const void *ad,
                     size_t adlen, uint8_t *out, bool *final_r);

/* Wipe and free a stream; sets *st to NULL, accepts NULL. */
void seal_stream_free(struct seal_stream **st);

#endif
