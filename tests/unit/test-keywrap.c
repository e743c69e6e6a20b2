/* test-keywrap.c — the mailbox key hierarchy: round trips for every kind,
 * wrong secrets, recovery-text typos, wraps moved between mailboxes,
 * tampering with every byte, lowered Argon2id costs, password changes and
 * the configuration floor.
 *
 * Argon2id runs with a tiny cost (1 pass, 8 MiB) so that the tamper loop
 * stays fast; the configuration floor is tested through
 * keywrap_params_check().  No test measures time.  Running the binary
 * with KEYWRAP_MEASURE=1 instead prints the Argon2id timing table behind
 * the defaults in keywrap.h (use the optimized build). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "crypto/keywrap.h"
#include "crypto/seal.h"

static const struct keywrap_params tiny = {1, 8 * 1024};
static const char ctx[] = "mailbox-0001";
static const char other_ctx[] = "mailbox-0002";
static const char pw[] = "correct horse battery staple";

/* The kinds a tamper or context test runs over, each made fresh. */
enum fixture_kind { FX_PASSWORD, FX_APP_PASSWORD, FX_RECOVERY, FX_TOKEN, FX_SECRET, FX_COUNT };
static const char *const fixture_names[FX_COUNT] = {"password", "app password", "recovery", "token",
                                                    "secret"};

struct fixture {
    uint8_t *mk;
    uint8_t *secret; /* token, or X25519 secret key */
    char *text;      /* recovery text */
    uint8_t wrap[KEYWRAP_WRAP_MAX];
    size_t wraplen;
};

static void fixture_make(struct fixture *f, enum fixture_kind k)
{
    const char *error = NULL;
    uint8_t pk[SEAL_PK_BYTES];
    int r = -1;

    memset(f, 0, sizeof *f);
    f->mk = keywrap_mk_new();
    f->secret = seal_secret_alloc(32);
    f->text = seal_secret_alloc(KEYWRAP_RECOVERY_TEXT_MAX);
    switch (k) {
    case FX_PASSWORD:
    case FX_APP_PASSWORD:
        r = keywrap_wrap_password(f->mk, pw, strlen(pw),
                                  k == FX_PASSWORD ? KEYWRAP_PASSWORD : KEYWRAP_APP_PASSWORD, &tiny,
                                  ctx, f->wrap, &f->wraplen, &error);
        break;
    case FX_RECOVERY:
        r = keywrap_recovery_new(f->mk, ctx, f->text, f->wrap, &f->wraplen, &error);
        break;
    case FX_TOKEN:
        seal_random(f->secret, 32);
        r = keywrap_wrap_token(f->mk, f->secret, ctx, f->wrap, &f->wraplen, &error);
        break;
    case FX_SECRET:
        seal_keypair(pk, f->secret);
        r = keywrap_wrap_secret(f->mk, f->secret, ctx, f->wrap, &f->wraplen, &error);
        break;
    case FX_COUNT:
        break;
    }
    assert_int_equal(r, 0);
    assert_int_equal(f->wraplen, KEYWRAP_WRAP_BYTES);
}

static void fixture_free(struct fixture *f)
{
    seal_secret_free(&f->mk);
    seal_secret_free(&f->secret);
    seal_secret_free(&f->text);
}

/* Open f's wrap (or the given bytes) as its kind; returns the result and
 * checks that the key came out right exactly on success. */
static int fixture_open(const struct fixture *f, enum fixture_kind k, const uint8_t *wrap,
                        size_t wraplen, const char *context)
{
    const char *error = NULL;
    static uint8_t sentinel;
    uint8_t *key = &sentinel; /* must come back NULL on failure */
    int r = KEYWRAP_FAILED;

    switch (k) {
    case FX_PASSWORD:
    case FX_APP_PASSWORD:
        r = keywrap_unwrap_password(wrap, wraplen, pw, strlen(pw), context, &key, &error);
        break;
    case FX_RECOVERY:
        r = keywrap_unwrap_recovery(wrap, wraplen, f->text, context, &key, &error);
        break;
    case FX_TOKEN:
        r = keywrap_unwrap_token(wrap, wraplen, f->secret, context, &key, &error);
        break;
    case FX_SECRET:
        r = keywrap_unwrap_secret(f->mk, wrap, wraplen, context, &key, &error);
        break;
    case FX_COUNT:
        break;
    }
    if (r == KEYWRAP_OK) {
        assert_memory_equal(key, k == FX_SECRET ? f->secret : f->mk, 32);
        seal_secret_free(&key);
    } else {
        assert_null(key);
        assert_non_null(error);
    }
    return r;
}

/* ---- round trips ------------------------------------------------------ */

static void test_round_trip_every_kind(void **state)
{
    (void)state;
    for (int k = 0; k < FX_COUNT; k++) {
        struct fixture f;
        print_message("kind %s\n", fixture_names[k]);
        fixture_make(&f, (enum fixture_kind)k);
        assert_int_equal(fixture_open(&f, (enum fixture_kind)k, f.wrap, f.wraplen, ctx),
                         KEYWRAP_OK);
        fixture_free(&f);
    }
}

static void test_secret_key_pair(void **state)
{
    (void)state;
    uint8_t pk[SEAL_PK_BYTES], pk2[SEAL_PK_BYTES], wrap[KEYWRAP_WRAP_MAX];
    uint8_t *sk = seal_secret_alloc(SEAL_SK_BYTES), *sk2 = NULL;
    uint8_t *mk = keywrap_mk_new(), *other = keywrap_mk_new();
    const char *error = NULL;
    size_t len = 0;

    seal_keypair(pk, sk);
    assert_int_equal(keywrap_wrap_secret(mk, sk, ctx, wrap, &len, &error), 0);
    assert_int_equal(keywrap_unwrap_secret(mk, wrap, len, ctx, &sk2, &error), KEYWRAP_OK);
    assert_int_equal(seal_public_from_secret(pk2, sk2), 0);
    assert_memory_equal(pk, pk2, sizeof pk);
    seal_secret_free(&sk2);

    assert_int_equal(keywrap_unwrap_secret(other, wrap, len, ctx, &sk2, &error), KEYWRAP_WRONG);
    assert_null(sk2);
    seal_secret_free(&sk);
    seal_secret_free(&mk);
    seal_secret_free(&other);
}

/* ---- wrong secrets ---------------------------------------------------- */

static void test_wrong_password(void **state)
{
    (void)state;
    static const struct {
        const char *label, *password;
    } cases[] = {
        {"different", "correct horse battery stapl3"},
        {"prefix", "correct horse battery"},
        {"longer", "correct horse battery staple "},
        {"empty", ""},
    };
    struct fixture f;
    fixture_make(&f, FX_PASSWORD);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *error = NULL;
        uint8_t *mk = NULL;
        print_message("case %s\n", cases[i].label);
        assert_int_equal(keywrap_unwrap_password(f.wrap, f.wraplen, cases[i].password,
                                                 strlen(cases[i].password), ctx, &mk, &error),
                         KEYWRAP_WRONG);
        assert_null(mk);
        assert_string_equal(error, "wrong password");
    }
    fixture_free(&f);
}

static void test_wrong_token(void **state)
{
    (void)state;
    struct fixture f;
    uint8_t *token = seal_secret_alloc(KEYWRAP_KEY_BYTES), *mk = NULL;
    const char *error = NULL;

    fixture_make(&f, FX_TOKEN);
    memcpy(token, f.secret, KEYWRAP_KEY_BYTES);
    token[31] ^= 1;
    assert_int_equal(keywrap_unwrap_token(f.wrap, f.wraplen, token, ctx, &mk, &error),
                     KEYWRAP_WRONG);
    assert_string_equal(error, "wrong token");
    assert_null(mk);
    seal_secret_free(&token);
    fixture_free(&f);
}

/* ---- recovery text ---------------------------------------------------- */

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static void test_recovery_text_shape(void **state)
{
    (void)state;
    struct fixture f;
    fixture_make(&f, FX_RECOVERY);
    assert_int_equal(strlen(f.text), KEYWRAP_RECOVERY_TEXT_MAX - 1);
    for (size_t i = 0; f.text[i] != '\0'; i++) {
        if (i % 5 == 4)
            assert_int_equal(f.text[i], '-');
        else
            assert_non_null(strchr(crockford, f.text[i]));
    }
    fixture_free(&f);
}

/* Lower case, spaces or no separators, O for 0 and I/L for 1 all read as
 * the same key. */
static void test_recovery_text_lenient(void **state)
{
    (void)state;
    struct fixture f;
    char *typed = seal_secret_alloc(2 * KEYWRAP_RECOVERY_TEXT_MAX);
    fixture_make(&f, FX_RECOVERY);

    for (int variant = 0; variant < 3; variant++) {
        const char *error = NULL;
        uint8_t *mk = NULL;
        size_t n = 0;
        for (const char *p = f.text; *p != '\0'; p++) {
            char c = *p;
            if (c == '-') {
                if (variant == 1)
                    typed[n++] = ' ';
                if (variant == 2)
                    typed[n++] = ' ', typed[n++] = ' ';
                continue;
            }
            if (c == '0')
                c = variant == 0 ? 'o' : 'O';
            else if (c == '1')
                c = variant == 1 ? 'l' : 'I';
            else if (variant != 2 && c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            typed[n++] = c;
        }
        typed[n] = '\0';
        print_message("variant %d\n", variant);
        assert_int_equal(keywrap_unwrap_recovery(f.wrap, f.wraplen, typed, ctx, &mk, &error),
                         KEYWRAP_OK);
        assert_memory_equal(mk, f.mk, KEYWRAP_MK_BYTES);
        seal_secret_free(&mk);
    }
    seal_secret_free(&typed);
    fixture_free(&f);
}

/* A one-symbol typo anywhere is "not a recovery key"; so are wrong
 * lengths and foreign characters. */
static void test_recovery_typos(void **state)
{
    (void)state;
    struct fixture f;
    char *typed = seal_secret_alloc(KEYWRAP_RECOVERY_TEXT_MAX + 8);
    const char *error = NULL;
    uint8_t *mk = NULL;
    fixture_make(&f, FX_RECOVERY);

    for (size_t i = 0; f.text[i] != '\0'; i++) {
        if (f.text[i] == '-')
            continue;
        strcpy(typed, f.text); /* sizes: both KEYWRAP_RECOVERY_TEXT_MAX */
        typed[i] = crockford[(strchr(crockford, typed[i]) - crockford + 1) % 32];
        assert_int_equal(keywrap_unwrap_recovery(f.wrap, f.wraplen, typed, ctx, &mk, &error),
                         KEYWRAP_NOT_A_KEY);
        assert_string_equal(error, "not a recovery key (check for typos)");
        assert_null(mk);
    }

    static const struct {
        const char *label;
        size_t cut;  /* keep this many characters (0: all) */
        char append; /* then add this one (0: none) */
        int replace; /* put 'U' at index 0 */
    } cases[] = {
        {"one symbol missing", KEYWRAP_RECOVERY_TEXT_MAX - 2, 0, 0},
        {"one symbol extra", 0, 'A', 0},
        {"letter U", 0, 0, 1},
        {"empty", 1, 0, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        print_message("case %s\n", cases[c].label);
        strcpy(typed, f.text);
        if (cases[c].cut > 0)
            typed[cases[c].cut - 1] = '\0';
        if (cases[c].append != 0) {
            size_t n = strlen(typed);
            typed[n] = cases[c].append;
            typed[n + 1] = '\0';
        }
        if (cases[c].replace)
            typed[0] = 'U';
        assert_int_equal(keywrap_unwrap_recovery(f.wrap, f.wraplen, typed, ctx, &mk, &error),
                         KEYWRAP_NOT_A_KEY);
        assert_null(mk);
    }
    seal_secret_free(&typed);
    fixture_free(&f);
}

/* A well-formed recovery key of another mailbox is "wrong", not a typo. */
static void test_recovery_wrong_key(void **state)
{
    (void)state;
    struct fixture a, b;
    const char *error = NULL;
    uint8_t *mk = NULL;

    fixture_make(&a, FX_RECOVERY);
    fixture_make(&b, FX_RECOVERY);
    assert_int_equal(keywrap_unwrap_recovery(a.wrap, a.wraplen, b.text, ctx, &mk, &error),
                     KEYWRAP_WRONG);
    assert_string_equal(error, "wrong recovery key");
    assert_null(mk);
    fixture_free(&a);
    fixture_free(&b);
}

/* ---- binding ---------------------------------------------------------- */

static void test_moved_to_other_context(void **state)
{
    (void)state;
    char long_ctx[KEYWRAP_CONTEXT_MAX + 2];
    memset(long_ctx, 'x', sizeof long_ctx - 1);
    long_ctx[sizeof long_ctx - 1] = '\0';

    for (int k = 0; k < FX_COUNT; k++) {
        struct fixture f;
        print_message("kind %s\n", fixture_names[k]);
        fixture_make(&f, (enum fixture_kind)k);
        assert_int_equal(fixture_open(&f, (enum fixture_kind)k, f.wrap, f.wraplen, other_ctx),
                         KEYWRAP_WRONG);
        assert_int_equal(fixture_open(&f, (enum fixture_kind)k, f.wrap, f.wraplen, ""),
                         KEYWRAP_FAILED);
        assert_int_equal(fixture_open(&f, (enum fixture_kind)k, f.wrap, f.wraplen, long_ctx),
                         KEYWRAP_FAILED);
        fixture_free(&f);
    }
}

/* Flipping any bit of any byte, or cutting/extending the wrap, fails. */
static void test_tamper_every_byte(void **state)
{
    (void)state;
    for (int k = 0; k < FX_COUNT; k++) {
        struct fixture f;
        uint8_t copy[KEYWRAP_WRAP_MAX + 1];
        print_message("kind %s\n", fixture_names[k]);
        fixture_make(&f, (enum fixture_kind)k);
        for (size_t i = 0; i < f.wraplen; i++) {
            for (uint8_t bit = 1; bit != 0; bit = (uint8_t)(bit << 4)) { /* 0x01, 0x10 */
                memcpy(copy, f.wrap, f.wraplen);
                copy[i] ^= bit;
                assert_true(fixture_open(&f, (enum fixture_kind)k, copy, f.wraplen, ctx) < 0);
            }
        }
        memcpy(copy, f.wrap, f.wraplen);
        copy[f.wraplen] = 0;
        assert_int_equal(fixture_open(&f, (enum fixture_kind)k, copy, f.wraplen - 1, ctx),
                         KEYWRAP_FAILED);
        assert_int_equal(fixture_open(&f, (enum fixture_kind)k, copy, f.wraplen + 1, ctx),
                         KEYWRAP_FAILED);
        assert_int_equal(fixture_open(&f, (enum fixture_kind)k, NULL, 0, ctx), KEYWRAP_FAILED);
        fixture_free(&f);
    }
}

/* Offsets of the cost fields (see the format in keywrap.h). */
#define OFF_KIND 1
#define OFF_OPS 2
#define OFF_MEM 6

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* An attacker with write access to the database cannot weaken a wrap:
 * lowered costs fail to open (authenticated), absurd ones are refused
 * before any work, and a kind swap fails too. */
static void test_lowered_params(void **state)
{
    (void)state;
    static const struct keywrap_params wrapped = {2, 16 * 1024};
    static const struct {
        const char *label;
        size_t off;
        uint32_t value;
        int expect;
    } cases[] = {
        {"ops 2 -> 1", OFF_OPS, 1, KEYWRAP_WRONG},
        {"mem 16 -> 8 MiB", OFF_MEM, 8 * 1024, KEYWRAP_WRONG},
        {"ops 0", OFF_OPS, 0, KEYWRAP_FAILED},
        {"mem 4 KiB", OFF_MEM, 4, KEYWRAP_FAILED},
        {"ops huge", OFF_OPS, 0xffffffffu, KEYWRAP_FAILED},
        {"mem over max", OFF_MEM, KEYWRAP_MAX_MEM_KIB + 1, KEYWRAP_FAILED},
    };
    uint8_t *mk = keywrap_mk_new(), *out = NULL;
    uint8_t wrap[KEYWRAP_WRAP_MAX], copy[KEYWRAP_WRAP_MAX];
    const char *error = NULL;
    size_t len = 0;

    assert_int_equal(keywrap_wrap_password(mk, pw, strlen(pw), KEYWRAP_PASSWORD, &wrapped, ctx,
                                           wrap, &len, &error),
                     0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        print_message("case %s\n", cases[i].label);
        memcpy(copy, wrap, len);
        put_be32(copy + cases[i].off, cases[i].value);
        assert_int_equal(keywrap_unwrap_password(copy, len, pw, strlen(pw), ctx, &out, &error),
                         cases[i].expect);
        assert_null(out);
    }
    memcpy(copy, wrap, len);
    copy[OFF_KIND] = KEYWRAP_APP_PASSWORD;
    assert_int_equal(keywrap_unwrap_password(copy, len, pw, strlen(pw), ctx, &out, &error),
                     KEYWRAP_WRONG);
    copy[OFF_KIND] = KEYWRAP_RECOVERY;
    assert_int_equal(keywrap_unwrap_password(copy, len, pw, strlen(pw), ctx, &out, &error),
                     KEYWRAP_FAILED);

    /* the untouched wrap still opens, and says what it is */
    enum keywrap_kind kind;
    struct keywrap_params params;
    assert_int_equal(keywrap_wrap_info(wrap, len, &kind, &params, &error), 0);
    assert_int_equal(kind, KEYWRAP_PASSWORD);
    assert_int_equal(params.ops, wrapped.ops);
    assert_int_equal(params.mem_kib, wrapped.mem_kib);
    assert_int_equal(keywrap_unwrap_password(wrap, len, pw, strlen(pw), ctx, &out, &error),
                     KEYWRAP_OK);
    assert_memory_equal(out, mk, KEYWRAP_MK_BYTES);
    seal_secret_free(&out);
    seal_secret_free(&mk);
}

/* ---- password change -------------------------------------------------- */

static void test_password_change_keeps_mk(void **state)
{
    (void)state;
    static const char new_pw[] = "Tr0ub4dor&3";
    struct fixture f;
    uint8_t wrap2[KEYWRAP_WRAP_MAX];
    uint8_t *mk = NULL;
    const char *error = NULL;
    size_t len2 = 0;

    fixture_make(&f, FX_PASSWORD);
    assert_int_equal(keywrap_unwrap_password(f.wrap, f.wraplen, pw, strlen(pw), ctx, &mk, &error),
                     KEYWRAP_OK);
    assert_int_equal(keywrap_wrap_password(mk, new_pw, strlen(new_pw), KEYWRAP_PASSWORD, &tiny, ctx,
                                           wrap2, &len2, &error),
                     0);
    seal_secret_free(&mk);
    assert_memory_not_equal(wrap2 + 10, f.wrap + 10, 16); /* a new salt */

    assert_int_equal(keywrap_unwrap_password(wrap2, len2, pw, strlen(pw), ctx, &mk, &error),
                     KEYWRAP_WRONG);
    assert_int_equal(keywrap_unwrap_password(wrap2, len2, new_pw, strlen(new_pw), ctx, &mk, &error),
                     KEYWRAP_OK);
    assert_memory_equal(mk, f.mk, KEYWRAP_MK_BYTES);
    seal_secret_free(&mk);
    fixture_free(&f);
}

/* ---- parameters ------------------------------------------------------- */

static void test_params_check(void **state)
{
    (void)state;
    static const struct {
        const char *label;
        struct keywrap_params p;
        int expect;
    } cases[] = {
        {"defaults", {KEYWRAP_DEFAULT_OPS, KEYWRAP_DEFAULT_MEM_KIB}, 0},
        {"floor", {KEYWRAP_MIN_OPS, KEYWRAP_MIN_MEM_KIB}, 0},
        {"ceiling", {KEYWRAP_MAX_OPS, KEYWRAP_MAX_MEM_KIB}, 0},
        {"test cost", {1, 8 * 1024}, -1},
        {"one pass", {1, 64 * 1024}, -1},
        {"just under 19 MiB", {2, KEYWRAP_MIN_MEM_KIB - 1}, -1},
        {"zero", {0, 0}, -1},
        {"too many passes", {KEYWRAP_MAX_OPS + 1, 64 * 1024}, -1},
        {"too much memory", {3, KEYWRAP_MAX_MEM_KIB + 1}, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *error = NULL;
        print_message("case %s\n", cases[i].label);
        assert_int_equal(keywrap_params_check(&cases[i].p, &error), cases[i].expect);
        if (cases[i].expect < 0)
            assert_non_null(error);
    }
    assert_true(KEYWRAP_MIN_OPS >= 2 && KEYWRAP_MIN_MEM_KIB >= 19 * 1024);
}

/* The wrap function refuses what it cannot compute or store. */
static void test_wrap_password_refuses(void **state)
{
    (void)state;
    static const struct {
        const char *label;
        enum keywrap_kind kind;
        struct keywrap_params p;
        size_t pwlen;
    } cases[] = {
        {"ops 0", KEYWRAP_PASSWORD, {0, 8 * 1024}, sizeof pw - 1},
        {"mem 4 KiB", KEYWRAP_PASSWORD, {1, 4}, sizeof pw - 1},
        {"mem over max", KEYWRAP_PASSWORD, {1, KEYWRAP_MAX_MEM_KIB + 1}, sizeof pw - 1},
        {"kind recovery", KEYWRAP_RECOVERY, {1, 8 * 1024}, sizeof pw - 1},
        {"empty password", KEYWRAP_PASSWORD, {1, 8 * 1024}, 0},
    };
    uint8_t *mk = keywrap_mk_new();
    uint8_t wrap[KEYWRAP_WRAP_MAX];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *error = NULL;
        size_t len = 0;
        print_message("case %s\n", cases[i].label);
        assert_int_equal(keywrap_wrap_password(mk, pw, cases[i].pwlen, cases[i].kind, &cases[i].p,
                                               ctx, wrap, &len, &error),
                         -1);
        assert_non_null(error);
    }
    seal_secret_free(&mk);
}

/* Argon2id running out of memory is a server error, not a wrong password.
 * A child caps its address space just above what it uses now. */
static void test_out_of_memory(void **state)
{
    (void)state;
    static const struct keywrap_params big = {1, 512 * 1024};
    struct fixture f;
    fixture_make(&f, FX_PASSWORD);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        unsigned long pages = 0;
        FILE *fp = fopen("/proc/self/statm", "r");
        if (fp == NULL || fscanf(fp, "%lu", &pages) != 1)
            _exit(10);
        fclose(fp);
        rlim_t cap = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + 256u * 1024 * 1024;
        struct rlimit rl = {cap, cap};
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(11);

        const char *error = NULL;
        uint8_t wrap[KEYWRAP_WRAP_MAX], *mk = NULL;
        size_t len = 0;
        if (keywrap_wrap_password(f.mk, pw, strlen(pw), KEYWRAP_PASSWORD, &big, ctx, wrap, &len,
                                  &error) != -1 ||
            strstr(error, "out of memory") == NULL)
            _exit(12);
        /* the wrap's header now claims 512 MiB: refused for memory before
         * the (failing) tag is even looked at */
        memcpy(wrap, f.wrap, f.wraplen);
        put_be32(wrap + OFF_MEM, big.mem_kib);
        if (keywrap_unwrap_password(wrap, f.wraplen, pw, strlen(pw), ctx, &mk, &error) !=
                KEYWRAP_FAILED ||
            strstr(error, "out of memory") == NULL || mk != NULL)
            _exit(13);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    fixture_free(&f);
}

static void test_dummy_work(void **state)
{
    (void)state;
    static const struct keywrap_params bad = {0, 0};
    keywrap_dummy_work(&tiny);
    keywrap_dummy_work(&bad); /* returns, does nothing */
}

/* ---- KEYWRAP_MEASURE=1: the timing table ------------------------------ */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *dummy_thread(void *arg)
{
    keywrap_dummy_work(arg);
    return NULL;
}

#define MEASURE_RUNS 5

/* Median wall time of one login alone, and of two logins at once (as many
 * as this machine has cores), in ms. */
static void measure_one(const struct keywrap_params *p, double *alone, double *pair)
{
    double t[MEASURE_RUNS], u[MEASURE_RUNS];
    struct keywrap_params other = *p; /* for the second thread */
    keywrap_dummy_work(p);            /* warm up: first touch of the pages */
    for (int i = 0; i < MEASURE_RUNS; i++) {
        double t0 = now_ms();
        keywrap_dummy_work(p);
        t[i] = now_ms() - t0;

        pthread_t th;
        t0 = now_ms();
        if (pthread_create(&th, NULL, dummy_thread, &other) != 0)
            abort();
        keywrap_dummy_work(p);
        pthread_join(th, NULL);
        u[i] = now_ms() - t0;
    }
    qsort(t, MEASURE_RUNS, sizeof t[0], cmp_double);
    qsort(u, MEASURE_RUNS, sizeof u[0], cmp_double);
    *alone = t[MEASURE_RUNS / 2];
    *pair = u[MEASURE_RUNS / 2];
}

static int measure(void)
{
    static const struct {
        const char *label;
        struct keywrap_params p;
    } rows[] = {
        {"", {1, 8 * 1024}},
        {"floor (OWASP)", {2, 19 * 1024}},
        {"", {2, 32 * 1024}},
        {"", {2, 64 * 1024}},
        {"RFC 9106 second option", {3, 64 * 1024}},
        {"", {2, 128 * 1024}},
        {"", {3, 128 * 1024}},
        {"", {4, 256 * 1024}},
        {"MODERATE", {3, 256 * 1024}},
    };
    printf("Argon2id, 1 lane, median of %d runs; 'x2' = two logins at once\n", MEASURE_RUNS);
    printf("%4s %9s %10s %10s  %s\n", "ops", "memory", "alone", "x2", "");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        double alone, pair;
        measure_one(&rows[i].p, &alone, &pair);
        printf("%4u %5u MiB %7.0f ms %7.0f ms  %s%s\n", rows[i].p.ops, rows[i].p.mem_kib / 1024,
               alone, pair, rows[i].label,
               rows[i].p.ops == KEYWRAP_DEFAULT_OPS && rows[i].p.mem_kib == KEYWRAP_DEFAULT_MEM_KIB
                   ? " <- default"
                   : "");
        fflush(stdout);
    }
    return 0;
}

int main(void)
{
    if (seal_init() < 0)
        return 1;
    if (getenv("KEYWRAP_MEASURE") != NULL)
        return measure();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_kind),
        cmocka_unit_test(test_secret_key_pair),
        cmocka_unit_test(test_wrong_password),
        cmocka_unit_test(test_wrong_token),
        cmocka_unit_test(test_recovery_text_shape),
        cmocka_unit_test(test_recovery_text_lenient),
        cmocka_unit_test(test_recovery_typos),
        cmocka_unit_test(test_recovery_wrong_key),
        cmocka_unit_test(test_moved_to_other_context),
        cmocka_unit_test(test_tamper_every_byte),
        cmocka_unit_test(test_lowered_params),
        cmocka_unit_test(test_password_change_keeps_mk),
        cmocka_unit_test(test_params_check),
        cmocka_unit_test(test_wrap_password_refuses),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_dummy_work),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
