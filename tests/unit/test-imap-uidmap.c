/* test-imap-uidmap.c — the view's sequence number <-> UID map (imap/uidmap.h):
 * runs splitting and merging, lookups both ways, the boundaries (UID 1,
 * 4294967295, empty), the switch between runs and array, and a randomized
 * comparison against a plain ascending array. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "imap/uidmap.h"

/* The reference: a plain ascending array, as the view used to be. */
struct ref {
    uint32_t *v;
    size_t n;
};

static size_t ref_seq(const struct ref *r, uint32_t uid)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i] == uid)
            return i + 1;
    return 0;
}

static size_t ref_runs(const struct ref *r)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++)
        k += i == 0 || r->v[i] != r->v[i - 1] + 1;
    return k;
}

/* Everything the map answers equals what the array answers. */
static void check_same(const struct uidmap *m, const struct ref *r)
{
    assert_int_equal(uidmap_count(m), r->n);
    assert_int_equal(m->n_runs, ref_runs(r));
    assert_int_equal(uidmap_max(m), r->n > 0 ? r->v[r->n - 1] : 0);
    assert_int_equal(uidmap_uid(m, 0), 0);
    assert_int_equal(uidmap_uid(m, r->n + 1), 0);
    struct uidmap_iter it;
    uint32_t uid = uidmap_iter_start(&it, m, 1);
    for (size_t i = 0; i < r->n; i++) {
        assert_int_equal(uidmap_uid(m, i + 1), r->v[i]);
        assert_int_equal(uidmap_seq(m, r->v[i]), i + 1);
        assert_int_equal(uid, r->v[i]);
        uid = uidmap_iter_next(&it);
        /* the UID just below and above, when not held, are absent */
        if (r->v[i] > 1 && (i == 0 || r->v[i - 1] != r->v[i] - 1)) {
            assert_int_equal(uidmap_seq(m, r->v[i] - 1), 0);
            assert_int_equal(uidmap_seq_at_least(m, r->v[i] - 1), i + 1);
        }
        if (r->v[i] < UINT32_MAX && (i + 1 == r->n || r->v[i + 1] != r->v[i] + 1)) {
            assert_int_equal(uidmap_seq(m, r->v[i] + 1), 0);
            assert_int_equal(uidmap_seq_at_least(m, r->v[i] + 1), i + 2);
        }
        assert_int_equal(uidmap_seq_at_least(m, r->v[i]), i + 1);
    }
    assert_int_equal(uid, 0);
    assert_int_equal(uidmap_seq(m, 0), 0);
    assert_int_equal(uidmap_seq_at_least(m, 0), 1);
}

static void test_empty(void **state)
{
    (void)state;
    struct uidmap m = {0};
    struct ref r = {0};
    check_same(&m, &r);
    assert_int_equal(uidmap_seq(&m, 1), 0);
    assert_int_equal(uidmap_seq(&m, UINT32_MAX), 0);
    assert_int_equal(uidmap_seq_at_least(&m, UINT32_MAX), 1);
    assert_int_equal(uidmap_remove(&m, 5), 0);
    struct uidmap_iter it;
    assert_int_equal(uidmap_iter_start(&it, &m, 1), 0);
    assert_int_equal(uidmap_iter_next(&it), 0);
    assert_false(uidmap_append(&m, 0)); /* no UID 0 */
    uidmap_from_array(&m, NULL, 0);
    check_same(&m, &r);
    uidmap_trim(&m);
    uidmap_clear(&m);
    uidmap_clear(&m);
}

static void test_contiguous_is_one_run(void **state)
{
    (void)state;
    struct uidmap m = {0};
    uint32_t *v = calloc(10000, sizeof *v);
    for (uint32_t i = 0; i < 10000; i++)
        v[i] = i + 1;
    uidmap_from_array(&m, v, 10000);
    assert_true(uidmap_is_runs(&m));
    assert_int_equal(m.n_runs, 1);
    assert_true(uidmap_bytes(&m) <= 2 * sizeof(struct uidmap_run)); /* one run and a spare */
    struct ref r = {v, 10000};
    check_same(&m, &r);
    /* appending the next UIDs extends the run, a gap starts a new one */
    assert_true(uidmap_append(&m, 10001));
    assert_int_equal(m.n_runs, 1);
    assert_false(uidmap_append(&m, 10001)); /* not above the max */
    assert_false(uidmap_append(&m, 5));
    assert_true(uidmap_append(&m, 10005));
    assert_int_equal(m.n_runs, 2);
    assert_int_equal(uidmap_seq(&m, 10005), 10002);
    assert_int_equal(uidmap_seq(&m, 10003), 0);
    assert_int_equal(uidmap_seq_at_least(&m, 10003), 10002);
    assert_int_equal(uidmap_seq_at_least(&m, 10006), 10003);
    uidmap_clear(&m);
    free(v);
}

static void test_split_and_shrink(void **state)
{
    (void)state;
    struct uidmap m = {0};
    for (uint32_t u = 1; u <= 10; u++)
        assert_true(uidmap_append(&m, u));
    assert_true(uidmap_append(&m, 20));
    assert_int_equal(m.n_runs, 2);
    /* the middle: 1..4 6..10 20 */
    assert_int_equal(uidmap_remove(&m, 5), 5);
    assert_int_equal(m.n_runs, 3);
    assert_int_equal(uidmap_uid(&m, 5), 6);
    assert_int_equal(uidmap_seq(&m, 20), 10);
    /* the first of a run: 2..4 6..10 20 */
    assert_int_equal(uidmap_remove(&m, 1), 1);
    assert_int_equal(uidmap_uid(&m, 1), 2);
    assert_int_equal(uidmap_seq(&m, 6), 4);
    /* the last of a run: 2..4 6..9 20 */
    assert_int_equal(uidmap_remove(&m, 10), 8);
    assert_int_equal(uidmap_seq(&m, 20), 8);
    assert_int_equal(m.n_runs, 3);
    /* a run of one: 2..4 6..9 */
    assert_int_equal(uidmap_remove(&m, 20), 8);
    assert_int_equal(m.n_runs, 2);
    assert_int_equal(uidmap_max(&m), 9);
    assert_int_equal(uidmap_remove(&m, 20), 0); /* gone already */
    assert_int_equal(uidmap_remove(&m, 5), 0);
    /* a new one after a removal at the end: a new run, no merge over the gap */
    assert_true(uidmap_append(&m, 11));
    assert_int_equal(m.n_runs, 3);
    uint32_t want[] = {2, 3, 4, 6, 7, 8, 9, 11};
    struct ref r = {want, 8};
    check_same(&m, &r);
    /* everything out: empty again */
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(uidmap_remove(&m, want[i]), 1);
    struct ref none = {0};
    check_same(&m, &none);
    assert_true(uidmap_append(&m, 1));
    assert_int_equal(uidmap_seq(&m, 1), 1);
    uidmap_clear(&m);
}

static void test_boundaries(void **state)
{
    (void)state;
    struct uidmap m = {0};
    uint32_t v[] = {1, 2, UINT32_MAX - 2, UINT32_MAX - 1, UINT32_MAX};
    for (size_t i = 0; i < 5; i++)
        assert_true(uidmap_append(&m, v[i]));
    assert_false(uidmap_append(&m, UINT32_MAX)); /* nothing above the top */
    struct ref r = {v, 5};
    check_same(&m, &r);
    assert_int_equal(m.n_runs, 2);
    assert_int_equal(uidmap_seq(&m, UINT32_MAX), 5);
    assert_int_equal(uidmap_seq(&m, UINT32_MAX - 3), 0);
    assert_int_equal(uidmap_seq_at_least(&m, 3), 3);
    /* split the top run in its middle, then take its top */
    assert_int_equal(uidmap_remove(&m, UINT32_MAX - 1), 4);
    assert_int_equal(uidmap_seq(&m, UINT32_MAX), 4);
    assert_int_equal(uidmap_remove(&m, UINT32_MAX), 4);
    assert_int_equal(uidmap_max(&m), UINT32_MAX - 2);
    assert_int_equal(uidmap_remove(&m, 1), 1);
    assert_int_equal(uidmap_uid(&m, 1), 2);
    uint32_t w[] = {2, UINT32_MAX - 2};
    struct ref r2 = {w, 2};
    check_same(&m, &r2);
    /* a single UID 4294967295 */
    uint32_t top = UINT32_MAX;
    uidmap_from_array(&m, &top, 1);
    struct ref r3 = {&top, 1};
    check_same(&m, &r3);
    uidmap_clear(&m);
}

static void test_from_array_skips_bad(void **state)
{
    (void)state;
    struct uidmap m = {0};
    uint32_t in[] = {0, 3, 4, 4, 2, 5, 9, 8, 10};
    uint32_t want[] = {3, 4, 5, 9, 10};
    uidmap_from_array(&m, in, sizeof in / sizeof *in);
    struct ref r = {want, 5};
    check_same(&m, &r);
    uidmap_clear(&m);
}

/* Holes everywhere: the map takes the array form, then the runs form
 * again when the holes go (only new contiguous mail arrives). */
static void test_forms(void **state)
{
    (void)state;
    struct uidmap m = {0};
    uint32_t *v = calloc(20000, sizeof *v);
    size_t n = 0;
    for (uint32_t u = 1; u <= 4000; u += 2)
        v[n++] = u;
    uidmap_from_array(&m, v, n);
    assert_false(uidmap_is_runs(&m));
    assert_true(uidmap_bytes(&m) <= (n + 1) * sizeof(uint32_t));
    struct ref r = {v, n};
    check_same(&m, &r);
    for (uint32_t u = 5000; u < 15000; u++) {
        assert_true(uidmap_append(&m, u));
        v[n++] = u;
    }
    assert_true(uidmap_is_runs(&m));
    r.n = n;
    check_same(&m, &r);
    /* every 10th of a contiguous folder expunged: runs of 9 stay runs */
    uidmap_clear(&m);
    n = 0;
    for (uint32_t u = 1; u <= 10000; u++)
        assert_true(uidmap_append(&m, u));
    for (uint32_t u = 10; u <= 10000; u += 10)
        assert_true(uidmap_remove(&m, u) > 0);
    for (uint32_t u = 1; u <= 10000; u++)
        if (u % 10 != 0)
            v[n++] = u;
    r.n = n;
    check_same(&m, &r);
    assert_true(uidmap_is_runs(&m));
    assert_int_equal(m.n_runs, 1000);
    uidmap_trim(&m);
    assert_int_equal(uidmap_bytes(&m), 1001 * sizeof(struct uidmap_run));
    /* every other one: the array form, never much more than the array */
    for (uint32_t u = 1; u <= 10000; u += 2)
        if (u % 10 != 0)
            assert_true(uidmap_remove(&m, u) > 0);
    assert_false(uidmap_is_runs(&m));
    uidmap_trim(&m);
    assert_true(uidmap_bytes(&m) <= (uidmap_count(&m) + 1) * sizeof(uint32_t));
    uidmap_clear(&m);
    free(v);
}

/* xorshift: reproducible without touching rand()'s state */
static uint32_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (uint32_t)(*s >> 16);
}

static void ref_remove(struct ref *r, size_t seq)
{
    memmove(&r->v[seq - 1], &r->v[seq], (r->n - seq) * sizeof *r->v);
    r->n--;
}

/* Random appends (contiguous or with gaps, near UINT32_MAX too) and
 * removals (random, or in runs), each checked against the array. */
static void test_random_against_array(void **state)
{
    (void)state;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 60; round++) {
        struct uidmap m = {0};
        struct ref r = {calloc(4000, sizeof(uint32_t)), 0};
        uint32_t next = round % 3 == 0 ? UINT32_MAX - 3000 : 1 + rnd(&seed) % 100;
        unsigned gap_pct = rnd(&seed) % 60; /* how holey the appends are */
        for (int op = 0; op < 3000; op++) {
            uint32_t x = rnd(&seed) % 100;
            if (x < 55 && r.n < 4000 && next != 0) {
                uint32_t uid = next + (rnd(&seed) % 100 < gap_pct ? rnd(&seed) % 5 : 0);
                if (uid < next) /* wrapped past the top */
                    continue;
                assert_true(uidmap_append(&m, uid));
                r.v[r.n++] = uid;
                next = uid == UINT32_MAX ? 0 : uid + 1;
            } else if (x < 90 && r.n > 0) {
                size_t seq = 1 + rnd(&seed) % r.n;
                assert_int_equal(uidmap_remove(&m, r.v[seq - 1]), seq);
                ref_remove(&r, seq);
            } else if (r.n > 0) {
                /* a UID that may or may not be there */
                uint32_t uid = r.v[rnd(&seed) % r.n] + (uint32_t)(rnd(&seed) % 3) - 1;
                size_t seq = ref_seq(&r, uid);
                assert_int_equal(uidmap_remove(&m, uid), seq);
                if (seq > 0)
                    ref_remove(&r, seq);
            }
            if (op % 97 == 0 || op == 2999)
                check_same(&m, &r);
            if (op % 500 == 0)
                uidmap_trim(&m);
        }
        /* rebuilt from the array: the same answers */
        struct uidmap m2 = {0};
        uidmap_from_array(&m2, r.v, r.n);
        check_same(&m2, &r);
        uidmap_move(&m, &m2);
        check_same(&m, &r);
        assert_int_equal(uidmap_count(&m2), 0);
        /* whatever the holes, never much more than the array's bytes */
        uidmap_trim(&m);
        assert_true(uidmap_bytes(&m) <= (r.n + 1) * 4 + (r.n + 1) * 4 / 8 + 64);
        uidmap_clear(&m);
        free(r.v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_contiguous_is_one_run),
        cmocka_unit_test(test_split_and_shrink),
        cmocka_unit_test(test_boundaries),
        cmocka_unit_test(test_from_array_skips_bad),
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_random_against_array),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
