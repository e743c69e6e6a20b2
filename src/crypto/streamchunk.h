/* streamchunk.h — one chunk of libsodium's
 * crypto_secretstream_xchacha20poly1305, byte for byte, with the bulk
 * work done by OpenSSL.
 *
 * Why: a spool record or a sealed file is one or more chunks of up to
 * 64 KiB.  libsodium encrypts such a chunk at about 1 GB/s here (61 µs
 * for 64 KiB, a sixth of smtpd's loop thread per message); OpenSSL's
 * ChaCha20 and Poly1305, with their AVX-512 code, take about 22 µs.
 *
 * What is ours: only the composition, which is libsodium's push and pull
 * as published (secretstream_xchacha20poly1305.c), with two calls
 * swapped: the keystream over the message (block counter 2 onwards) comes
 * from OpenSSL's "ChaCha20" cipher, and the one-time MAC from OpenSSL's
 * "POLY1305".  Everything small stays libsodium's: the Poly1305 key
 * (block 0), the tag block (block 1), the nonce update and the rekey.
 * tests/unit/test-streamchunk.c checks, for every length class, that the
 * output and the next state equal libsodium's, and that pull refuses
 * what libsodium's pull refuses.
 *
 * Secrets: OpenSSL holds the chunk key only during a call, in contexts
 * made for the call and cleansed when freed. */
#ifndef SM_STREAMCHUNK_H
#define SM_STREAMCHUNK_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

/* Encrypt mlen bytes of m with tag into out (mlen + ABYTES bytes; out
 * may not overlap m), authenticating ad, and move state on, exactly as
 * crypto_secretstream_xchacha20poly1305_push().  Returns 0, or -1 (out
 * of memory in OpenSSL) with state unchanged. */
int stream_chunk_push(crypto_secretstream_xchacha20poly1305_state *state, uint8_t *out,
                      const uint8_t *m, size_t mlen, const uint8_t *ad, size_t adlen, uint8_t tag);

/* Authenticate and decrypt the chunk in (inlen bytes, at least ABYTES)
 * into m (inlen - ABYTES bytes; may not overlap in), its tag into *tag_r,
 * and move state on, exactly as crypto_secretstream_xchacha20poly1305_pull().
 * Returns 0, or -1 (forged, damaged, out of order, short, or out of
 * memory) with state unchanged and nothing written to m. */
int stream_chunk_pull(crypto_secretstream_xchacha20poly1305_state *state, uint8_t *m,
                      uint8_t *tag_r, const uint8_t *in, size_t inlen, const uint8_t *ad,
                      size_t adlen);

#endif
