/* test-streamchunk.c — stream_chunk_push/pull against libsodium's own
 * crypto_secretstream_xchacha20poly1305_push/pull: the same ciphertext,
 * the same next state, for every length class of message and associated
 * data, every tag, across chunks, over the counter's wrap; and the same
 * refusals (every byte of a chunk and of its ad flipped, short chunks,
 * chunks out of order), with the state and the output left alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/seal.h"
#include "crypto/streamchunk.h"

typedef crypto_secretstream_xchacha20poly1305_state sstate;
#define ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define TAG_MESSAGE crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
#define TAG_FINAL crypto_secretstream_xchacha20poly1305_TAG_FINAL

/* Around every SIMD block size either side, a spool chunk, and more. */
static const size_t msg_lens[] = {0,    1,    15,   16,    17,    31,    32,    47,    48,  63,
                                  64,   65,   127,  128,   129,   255,   256,   511,   512, 1000,
                                  4095, 4096, 4097, 16384, 65535, 65536, 65537, 200003};
static const size_t ad_lens[] = {0, 1, 15, 16, 17, 32, 40, 48, 100};
static const uint8_t tags[] = {TAG_MESSAGE, crypto_secretstream_xchacha20poly1305_TAG_PUSH,
                               crypto_secretstream_xchacha20poly1305_TAG_REKEY, TAG_FINAL};

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_MSG 200003

static uint8_t *bytes(size_t n)
{
    uint8_t *p = malloc(n > 0 ? n : 1);
    randombytes_buf(p, n);
    return p;
}

/* A push state from a random key: both implementations start from it. */
static void new_state(sstate *st)
{
    uint8_t key[crypto_secretstream_xchacha20poly1305_KEYBYTES];
    uint8_t header[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
    crypto_secretstream_xchacha20poly1305_keygen(key);
    crypto_secretstream_xchacha20poly1305_init_push(st, header, key);
}

/* One push by each from equal states: equal output, equal next states. */
static void push_both(sstate *ours, sstate *theirs, const uint8_t *m, size_t mlen,
                      const uint8_t *ad, size_t adlen, uint8_t tag)
{
    uint8_t *a = malloc(mlen + ABYTES), *b = malloc(mlen + ABYTES);
    assert_int_equal(stream_chunk_push(ours, a, m, mlen, ad, adlen, tag), 0);
    assert_int_equal(
        crypto_secretstream_xchacha20poly1305_push(theirs, b, NULL, m, mlen, ad, adlen, tag), 0);
    assert_memory_equal(a, b, mlen + ABYTES);
    assert_memory_equal(ours, theirs, sizeof *ours);
    free(a);
    free(b);
}

static void test_push_matches_libsodium(void **unused)
{
    (void)unused;
    uint8_t *m = bytes(MAX_MSG), *ad = bytes(100);
    for (size_t i = 0; i < N_ELEM(msg_lens); i++)
        for (size_t j = 0; j < N_ELEM(ad_lens); j++)
            for (size_t t = 0; t < N_ELEM(tags); t++) {
                sstate ours, theirs;
                new_state(&ours);
                theirs = ours;
                push_both(&ours, &theirs, m, msg_lens[i], ad, ad_lens[j], tags[t]);
            }
    free(m);
    free(ad);
}

/* A whole stream: each chunk's nonce depends on the MACs before it. */
static void test_stream_of_chunks(void **unused)
{
    (void)unused;
    uint8_t *m = bytes(MAX_MSG), *ad = bytes(100);
    sstate ours, theirs;
    new_state(&ours);
    theirs = ours;
    for (size_t i = 0; i < 200; i++) {
        size_t mlen = msg_lens[i % N_ELEM(msg_lens)], adlen = ad_lens[i % N_ELEM(ad_lens)];
        push_both(&ours, &theirs, m + i, mlen > MAX_MSG - i ? MAX_MSG - i : mlen, ad, adlen,
                  i % 7 == 6 ? crypto_secretstream_xchacha20poly1305_TAG_REKEY : TAG_MESSAGE);
    }
    free(m);
    free(ad);
}

/* The 32-bit chunk counter wraps to zero: libsodium rekeys there. */
static void test_counter_wrap(void **unused)
{
    (void)unused;
    uint8_t *m = bytes(1000), ad[16] = {0};
    sstate ours, theirs;
    new_state(&ours);
    memset(ours.nonce, 0xff, 4);
    ours.nonce[0] = 0xfe;
    theirs = ours;
    for (int i = 0; i < 3; i++) /* ...fe, ...ff, wrap and rekey */
        push_both(&ours, &theirs, m, 1000, ad, sizeof ad, TAG_MESSAGE);
    free(m);
}

/* A chunk that libsodium pushed, pulled by ours: the plaintext, the tag,
 * and the state libsodium's pull would reach. */
static void test_pull_matches_libsodium(void **unused)
{
    (void)unused;
    uint8_t *m = bytes(MAX_MSG), *ad = bytes(100), *c = malloc(MAX_MSG + ABYTES),
            *out = malloc(MAX_MSG), *ref = malloc(MAX_MSG);
    for (size_t i = 0; i < N_ELEM(msg_lens); i++)
        for (size_t j = 0; j < N_ELEM(ad_lens); j += 2) {
            size_t mlen = msg_lens[i], adlen = ad_lens[j];
            uint8_t tag = tags[(i + j) % N_ELEM(tags)], got = 0, ref_tag = 0;
            sstate push, ours, theirs;
            new_state(&push);
            ours = theirs = push;
            crypto_secretstream_xchacha20poly1305_push(&push, c, NULL, m, mlen, ad, adlen, tag);
            assert_int_equal(stream_chunk_pull(&ours, out, &got, c, mlen + ABYTES, ad, adlen), 0);
            assert_int_equal(crypto_secretstream_xchacha20poly1305_pull(
                                 &theirs, ref, NULL, &ref_tag, c, mlen + ABYTES, ad, adlen),
                             0);
            assert_int_equal(got, tag);
            assert_memory_equal(out, m, mlen);
            assert_memory_equal(&ours, &theirs, sizeof ours);
            assert_memory_equal(&ours, &push, sizeof ours);
        }
    free(m);
    free(ad);
    free(c);
    free(out);
    free(ref);
}

/* Pull of chunk (c, clen) with ad must fail and touch neither the state
 * nor the output. */
static void assert_refused(const sstate *st, const uint8_t *c, size_t clen, const uint8_t *ad,
                           size_t adlen)
{
    sstate ours = *st, theirs = *st;
    uint8_t out[256], tag = 0;
    memset(out, 0xa5, sizeof out);
    assert_int_equal(stream_chunk_pull(&ours, out, &tag, c, clen, ad, adlen), -1);
    assert_memory_equal(&ours, st, sizeof ours);
    for (size_t i = 0; i < sizeof out; i++)
        assert_int_equal(out[i], 0xa5);
    if (clen >= ABYTES) /* libsodium's pull agrees */
        assert_int_equal(crypto_secretstream_xchacha20poly1305_pull(&theirs, out, NULL, &tag, c,
                                                                    clen, ad, adlen),
                         -1);
}

static void test_pull_refuses_every_flipped_byte(void **unused)
{
    (void)unused;
    uint8_t m[200], ad[40], c[200 + ABYTES];
    randombytes_buf(m, sizeof m);
    randombytes_buf(ad, sizeof ad);
    sstate push, start;
    new_state(&push);
    start = push;
    assert_int_equal(stream_chunk_push(&push, c, m, sizeof m, ad, sizeof ad, TAG_FINAL), 0);
    for (size_t i = 0; i < sizeof c; i++) {
        c[i] ^= 0x01;
        assert_refused(&start, c, sizeof c, ad, sizeof ad);
        c[i] ^= 0x01;
    }
    for (size_t i = 0; i < sizeof ad; i++) {
        ad[i] ^= 0x80;
        assert_refused(&start, c, sizeof c, ad, sizeof ad);
        ad[i] ^= 0x80;
    }
    assert_refused(&start, c, sizeof c - 1, ad, sizeof ad); /* cut */
    assert_refused(&start, c, sizeof c, ad, sizeof ad - 1); /* other ad */
    for (size_t len = 0; len < ABYTES; len++)
        assert_refused(&start, c, len, ad, sizeof ad); /* too short for a chunk */
    uint8_t out[200], tag = 0;                         /* and intact, it opens */
    assert_int_equal(stream_chunk_pull(&start, out, &tag, c, sizeof c, ad, sizeof ad), 0);
    assert_int_equal(tag, TAG_FINAL);
    assert_memory_equal(out, m, sizeof m);
}

/* Two chunks pulled in the wrong order, or one twice: refused. */
static void test_pull_refuses_reordering(void **unused)
{
    (void)unused;
    uint8_t m[64] = {1}, c1[64 + ABYTES], c2[64 + ABYTES], out[64], tag;
    sstate push, start, st;
    new_state(&push);
    start = push;
    assert_int_equal(stream_chunk_push(&push, c1, m, sizeof m, NULL, 0, TAG_MESSAGE), 0);
    assert_int_equal(stream_chunk_push(&push, c2, m, sizeof m, NULL, 0, TAG_FINAL), 0);
    assert_refused(&start, c2, sizeof c2, NULL, 0);
    st = start;
    assert_int_equal(stream_chunk_pull(&st, out, &tag, c1, sizeof c1, NULL, 0), 0);
    assert_refused(&st, c1, sizeof c1, NULL, 0);
    assert_int_equal(stream_chunk_pull(&st, out, &tag, c2, sizeof c2, NULL, 0), 0);
    assert_int_equal(tag, TAG_FINAL);
}

int main(void)
{
    if (seal_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_matches_libsodium),
        cmocka_unit_test(test_stream_of_chunks),
        cmocka_unit_test(test_counter_wrap),
        cmocka_unit_test(test_pull_matches_libsodium),
        cmocka_unit_test(test_pull_refuses_every_flipped_byte),
        cmocka_unit_test(test_pull_refuses_reordering),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
