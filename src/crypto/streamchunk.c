/* streamchunk.c — secretstream chunks with OpenSSL's bulk ChaCha20 and
 * Poly1305 (see streamchunk.h for why, and what is ours). */
#include "crypto/streamchunk.h"

#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#define COUNTER_BYTES 4 /* state->nonce: a 32-bit block-key counter, then... */
#define INONCE_BYTES 8  /* ...the 64-bit inner nonce */
#define BLOCK_BYTES 64
#define MAC_BYTES 16
#define POLY_KEY_BYTES 32
#define MESSAGE_COUNTER 2 /* the message's keystream starts at ChaCha20 block 2 */

_Static_assert(COUNTER_BYTES + INONCE_BYTES ==
                   sizeof(((crypto_secretstream_xchacha20poly1305_state *)0)->nonce),
               "secretstream nonce layout");
_Static_assert(crypto_secretstream_xchacha20poly1305_ABYTES == 1 + MAC_BYTES, "chunk overhead");

static const uint8_t zeros[16];

/* OpenSSL's algorithms, fetched once: an implicit fetch on every init
 * would take a lock and search the providers. */
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *chacha20;
static EVP_MAC *poly1305;

static void fetch_algorithms(void)
{
    chacha20 = EVP_CIPHER_fetch(NULL, "ChaCha20", NULL);
    poly1305 = EVP_MAC_fetch(NULL, "POLY1305", NULL);
}

static bool have_algorithms(void)
{
    pthread_once(&fetch_once, fetch_algorithms);
    return chacha20 != NULL && poly1305 != NULL;
}

/* out = in XOR the ChaCha20 keystream of state's key and nonce from
 * block MESSAGE_COUNTER on.  OpenSSL's 16-byte IV is the 32-bit block
 * counter, little-endian, then the 96-bit nonce. */
static int message_xor(const crypto_secretstream_xchacha20poly1305_state *state, uint8_t *out,
                       const uint8_t *in, size_t len)
{
    uint8_t iv[16] = {MESSAGE_COUNTER, 0, 0, 0};
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int ok = ctx != NULL;

    memcpy(iv + 4, state->nonce, sizeof state->nonce);
    ok = ok && EVP_EncryptInit_ex2(ctx, chacha20, state->k, iv, NULL) == 1;
    while (ok && len > 0) {
        int piece = len > INT_MAX / 2 ? INT_MAX / 2 : (int)len, outl = 0;
        ok = EVP_EncryptUpdate(ctx, out, &outl, in, piece) == 1 && outl == piece;
        out += piece;
        in += piece;
        len -= (size_t)piece;
    }
    EVP_CIPHER_CTX_free(ctx); /* cleanses the key schedule */
    return ok ? 0 : -1;
}

/* Little-endian 64-bit length, as Poly1305's AEAD trailer wants it. */
static void le64(uint8_t out[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(v >> (8 * i));
}

/* The chunk's MAC over ad, the encrypted tag block and the ciphertext c,
 * in libsodium's order and padding (its second pad is (mlen & 15) bytes,
 * not the RFC 8439 pad: we reproduce it, as its readers expect). */
static int chunk_mac(const crypto_secretstream_xchacha20poly1305_state *state, const uint8_t *ad,
                     size_t adlen, const uint8_t block[BLOCK_BYTES], const uint8_t *c, size_t mlen,
                     uint8_t mac[MAC_BYTES])
{
    uint8_t key[BLOCK_BYTES], lens[16];
    size_t maclen = 0;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(poly1305);
    int ok = ctx != NULL;

    crypto_stream_chacha20_ietf(key, sizeof key, state->nonce, state->k); /* block 0 */
    ok = ok && EVP_MAC_init(ctx, key, POLY_KEY_BYTES, NULL) == 1;
    sodium_memzero(key, sizeof key);
    le64(lens, adlen);
    le64(lens + 8, (uint64_t)BLOCK_BYTES + mlen);
    ok = ok && EVP_MAC_update(ctx, ad, adlen) == 1 &&
         EVP_MAC_update(ctx, zeros, (0x10 - adlen) & 0xf) == 1 &&
         EVP_MAC_update(ctx, block, BLOCK_BYTES) == 1 && EVP_MAC_update(ctx, c, mlen) == 1 &&
         EVP_MAC_update(ctx, zeros, (0x10 - BLOCK_BYTES + mlen) & 0xf) == 1 &&
         EVP_MAC_update(ctx, lens, sizeof lens) == 1 &&
         EVP_MAC_final(ctx, mac, &maclen, MAC_BYTES) == 1 && maclen == MAC_BYTES;
    EVP_MAC_CTX_free(ctx); /* cleanses the one-time key */
    return ok ? 0 : -1;
}

/* The tag block: block 1 of the keystream XOR (tag, 63 zero bytes). */
static void tag_block(const crypto_secretstream_xchacha20poly1305_state *state, uint8_t tag,
                      uint8_t block[BLOCK_BYTES])
{
    memset(block, 0, BLOCK_BYTES);
    block[0] = tag;
    crypto_stream_chacha20_ietf_xor_ic(block, block, BLOCK_BYTES, state->nonce, 1U, state->k);
}

/* After a chunk: fold its MAC into the inner nonce, count it, and rekey
 * when asked or when the counter wraps, as libsodium does. */
static void advance(crypto_secretstream_xchacha20poly1305_state *state,
                    const uint8_t mac[MAC_BYTES], uint8_t tag)
{
    for (size_t i = 0; i < INONCE_BYTES; i++)
        state->nonce[COUNTER_BYTES + i] ^= mac[i];
    sodium_increment(state->nonce, COUNTER_BYTES);
    if ((tag & crypto_secretstream_xchacha20poly1305_TAG_REKEY) != 0 ||
        sodium_is_zero(state->nonce, COUNTER_BYTES))
        crypto_secretstream_xchacha20poly1305_rekey(state);
}

int stream_chunk_push(crypto_secretstream_xchacha20poly1305_state *state, uint8_t *out,
                      const uint8_t *m, size_t mlen, const uint8_t *ad, size_t adlen, uint8_t tag)
{
    uint8_t block[BLOCK_BYTES];
    uint8_t *c = out + 1, *mac = c + mlen;

    if (!have_algorithms())
        return crypto_secretstream_xchacha20poly1305_push(state, out, NULL, m, mlen, ad, adlen,
                                                          tag);
    tag_block(state, tag, block);
    if (message_xor(state, c, m, mlen) < 0 ||
        chunk_mac(state, ad, adlen, block, c, mlen, mac) < 0) {
        sodium_memzero(out, mlen + crypto_secretstream_xchacha20poly1305_ABYTES);
        sodium_memzero(block, sizeof block);
        return -1;
    }
    out[0] = block[0];
    sodium_memzero(block, sizeof block);
    advance(state, mac, tag);
    return 0;
}

int stream_chunk_pull(crypto_secretstream_xchacha20poly1305_state *state, uint8_t *m,
                      uint8_t *tag_r, const uint8_t *in, size_t inlen, const uint8_t *ad,
                      size_t adlen)
{
    uint8_t block[BLOCK_BYTES], mac[MAC_BYTES];

    if (inlen < crypto_secretstream_xchacha20poly1305_ABYTES)
        return -1;
    if (!have_algorithms()) {
        unsigned long long ignored;
        return crypto_secretstream_xchacha20poly1305_pull(state, m, &ignored, tag_r, in, inlen, ad,
                                                          adlen);
    }
    size_t mlen = inlen - crypto_secretstream_xchacha20poly1305_ABYTES;
    const uint8_t *c = in + 1;

    /* the tag block as written: keystream XOR (tag, zeros) with tag unknown,
     * so decrypt the tag byte and put the ciphertext byte back for the MAC */
    tag_block(state, 0, block);
    uint8_t tag = block[0] ^ in[0];
    block[0] = in[0];
    int ok = chunk_mac(state, ad, adlen, block, c, mlen, mac) == 0 &&
             sodium_memcmp(mac, c + mlen, MAC_BYTES) == 0;
    sodium_memzero(block, sizeof block);
    if (ok && message_xor(state, m, c, mlen) < 0) {
        sodium_memzero(m, mlen); /* no half-decrypted chunk */
        ok = 0;
    }
    if (ok) {
        advance(state, mac, tag);
        *tag_r = tag;
    }
    sodium_memzero(mac, sizeof mac);
    return ok ? 0 : -1;
}
