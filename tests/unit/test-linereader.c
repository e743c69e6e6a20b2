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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_flood_without_newline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
