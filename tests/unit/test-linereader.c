/* test-linereader.c — the bounded line reader, fed whole and byte by byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

#include "net/linereader.h"

static const struct case_ {
    const char *label;
    const char *input;
    size_t input_len;   /* 0: strlen(input) */
    size_t max;
    const char *expect; /* results: L=line T=toolong F=bare LF C=bare CR, '|' between */
} cases[] = {
    {"two lines", "EHLO a\r\nNOOP\r\n", 0, 64, "L:EHLO a|L:NOOP"},
    {"empty line", "\r\n", 0, 64, "L:"},
    {"bare LF", "one\ntwo\r\n", 0, 64, "F:one|L:two"},
    {"bare CR", "o\rne\r\n", 0, 64, "C:o\rne"},
    {"exactly max", "abcdef\r\n", 0, 8, "L:abcdef"},
    {"one over max", "abcdefg\r\nok\r\n", 0, 8, "T|L:ok"},
    {"long then short", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\nhi\r\n", 0, 10,
     "T|L:hi"},
    {"incomplete", "partial", 0, 64, ""},
    {"NUL kept", "a\0b\r\n", 5, 64, "L:a"},
};

/* Feed input in pieces of `step` bytes and describe what came out. */
static void run_case(const struct case_ *c, size_t step, char *out, size_t outlen)
{
    struct linereader lr;
    struct evbuffer *in = evbuffer_new();
    char line[256];
    size_t len, fed = 0, n = 0;
    size_t total = c->input_len ? c->input_len : strlen(c->input);
    linereader_init(&lr, c->max);
    out[0] = '\0';
    while (fed < total) {
        size_t chunk = total - fed < step ? total - fed : step;
        evbuffer_add(in, c->input + fed, chunk);
        fed += chunk;
        enum lr_result r;
        while ((r = linereader_next(&lr, in, line, &len)) != LR_MORE) {
            static const char tags[] = "?LTFC";
            n += (size_t)snprintf(out + n, outlen - n, "%s%c", n ? "|" : "", tags[r]);
            if (r != LR_TOOLONG)
                n += (size_t)snprintf(out + n, outlen - n, ":%s", line);
        }
    }
    evbuffer_free(in);
}

static void test_cases(void **state)
{
    (void)state;
    char got[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        static const size_t steps[] = {1000, 1, 3}; /* whole, byte by byte, odd pieces */
        for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
            run_case(&cases[i], steps[k], got, sizeof got);
            if (strcmp(got, cases[i].expect) != 0)
                fail_msg("case '%s' step %zu: got '%s', want '%s'", cases[i].label, steps[k],
                         got, cases[i].expect);
        }
    }
}

/* A peer sending megabytes without a newline costs bounded work per call. */
static void test_flood_without_newline(void **state)
{
    (void)state;
    struct linereader lr;
    struct evbuffer *in = evbuffer_new();
    char line[64], junk[4096];
    size_t len;
    memset(junk, 'x', sizeof junk);
    linereader_init(&lr, 64);
    for (int i = 0; i < 256; i++)
        evbuffer_add(in, junk, sizeof junk);
    assert_int_equal(linereader_next(&lr, in, line, &len), LR_TOOLONG);
    assert_int_equal(evbuffer_get_length(in), 0); /* discarded, not buffered */
    evbuffer_add(in, "tail\r\nNOOP\r\n", 12);
    assert_int_equal(linereader_next(&lr, in, line, &len), LR_LINE);
    assert_string_equal(line, "NOOP");
    evbuffer_free(in);
}

/* What linereader_next() makes of in, from the reader's state lr: each
 * result with its line and bare_before, and the input left after it. */
static void describe_rest(struct linereader *lr, struct evbuffer *in, char *out, size_t outlen)
{
    char line[64];
    size_t len, n = 0;
    enum lr_result r;
    out[0] = '\0';
    while ((r = linereader_next(lr, in, line, &len)) != LR_MORE)
        n += (size_t)snprintf(out + n, outlen - n, "%d%d:%.*s:%zu|", (int)r, lr->bare_before,
                              r == LR_TOOLONG ? 0 : (int)len, line, evbuffer_get_length(in));
}

/* The bytes of the leading lines linereader_next() returns as LR_LINE,
 * with no bare line end before them and not starting with '.'. */
static size_t reference_prefix(const char *p, size_t n, size_t max)
{
    struct linereader lr;
    struct evbuffer *in = evbuffer_new();
    char line[64];
    size_t len, used = 0;
    linereader_init(&lr, max);
    evbuffer_add(in, p, n);
    while (linereader_next(&lr, in, line, &len) == LR_LINE && !lr.bare_before && line[0] != '.')
        used = n - evbuffer_get_length(in);
    evbuffer_free(in);
    return used;
}

/* linereader_clean_prefix() against linereader_next() on every short
 * input over an alphabet of the bytes that matter: the same prefix, and
 * the reader goes on from it exactly as if it had read those lines. */
static void test_clean_prefix_matches_next(void **state)
{
    (void)state;
    static const char alphabet[] = "a.\r\n";
    static const size_t maxes[] = {3, 4, 6};
    char input[8], want[512], got[512];
    for (size_t n = 0; n <= 7; n++) {
        size_t combos = 1;
        for (size_t i = 0; i < n; i++)
            combos *= 4;
        for (size_t code = 0; code < combos; code++) {
            for (size_t i = 0, c = code; i < n; i++, c /= 4)
                input[i] = alphabet[c % 4];
            input[n] = '\0';
            for (size_t m = 0; m < sizeof maxes / sizeof maxes[0]; m++) {
                struct linereader a, b;
                struct evbuffer *ina = evbuffer_new(), *inb = evbuffer_new();
                linereader_init(&a, maxes[m]);
                linereader_init(&b, maxes[m]);
                size_t used = linereader_clean_prefix(&b, input, n, '.');
                assert_int_equal(used, reference_prefix(input, n, maxes[m]));
                evbuffer_add(ina, input, n);
                evbuffer_add(inb, input + used, n - used);
                describe_rest(&a, ina, want, sizeof want);
                describe_rest(&b, inb, got, sizeof got);
                /* b's results are a's without the lines b took as a prefix */
                const char *tail = want;
                for (size_t k = 0; k < used; k += strcspn(input + k, "\n") + 1)
                    tail = strchr(tail, '|') + 1;
                if (strcmp(got, tail) != 0)
                    fail_msg("input %zu/%zu max %zu: after prefix %zu got '%s', want '%s'", n,
                             code, maxes[m], used, got, tail);
                evbuffer_free(ina);
                evbuffer_free(inb);
            }
        }
    }
}

/* After a bare LF or while an overlong line is discarded, nothing is clean:
 * the next line's bare_before, or the discarding, must be seen. */
static void test_clean_prefix_after_bare_or_overlong(void **state)
{
    (void)state;
    struct linereader lr;
    struct evbuffer *in = evbuffer_new();
    char line[16];
    size_t len;
    linereader_init(&lr, 8);
    evbuffer_add(in, "bare\n", 5);
    assert_int_equal(linereader_next(&lr, in, line, &len), LR_BARE_LF);
    assert_int_equal(linereader_clean_prefix(&lr, ".\r\nok\r\n", 7, 'x'), 0);
    assert_int_equal(linereader_clean_prefix(&lr, "ok\r\n", 4, 'x'), 0);
    evbuffer_add(in, "ok\r\n", 4);
    assert_int_equal(linereader_next(&lr, in, line, &len), LR_LINE);
    assert_true(lr.bare_before);
    assert_int_equal(linereader_clean_prefix(&lr, "ok\r\nno\r", 8, 'x'), 4);
    evbuffer_add(in, "much too long", 13);
    assert_int_equal(linereader_next(&lr, in, line, &len), LR_TOOLONG);
    assert_int_equal(linereader_clean_prefix(&lr, "ok\r\n", 4, 'x'), 0);
    evbuffer_free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_flood_without_newline),
        cmocka_unit_test(test_clean_prefix_matches_next),
        cmocka_unit_test(test_clean_prefix_after_bare_or_overlong),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
