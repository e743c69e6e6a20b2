/* test-buf.c — bounded buffers: growth, limits, printf, NUL termination. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/buf.h"

static void test_append_and_limit(void **state)
{
    (void)state;
    struct sm_buf b;
    sm_buf_init(&b, 10);
    assert_string_equal(sm_buf_str(&b), "");
    assert_int_equal(sm_buf_puts(&b, "hello"), 0);
    assert_int_equal(sm_buf_append(&b, "world", 5), 0);
    assert_int_equal(b.len, 10);
    assert_int_equal(sm_buf_append(&b, "!", 1), -1); /* over max: refused, unchanged */
    assert_string_equal(sm_buf_str(&b), "helloworld");
    sm_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(sm_buf_printf(&b, "%d-%s", 42, "x"), 0);
    assert_string_equal(sm_buf_str(&b), "42-x");
    assert_int_equal(sm_buf_printf(&b, "%s", "0123456789"), -1);
    assert_string_equal(sm_buf_str(&b), "42-x");
    sm_buf_free(&b);
}

static void test_binary_and_growth(void **state)
{
    (void)state;
    struct sm_buf b;
    sm_buf_init(&b, 0);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(sm_buf_append(&b, "\0ab", 3), 0);
    assert_int_equal(b.len, 30000);
    assert_int_equal(b.data[30000], '\0');
    assert_memory_equal(b.data + 29997, "\0ab", 3);
    sm_buf_wipe_free(&b);
    assert_null(b.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_limit),
        cmocka_unit_test(test_binary_and_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
