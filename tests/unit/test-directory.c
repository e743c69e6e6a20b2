/* test-directory.c — hosted domains in the directory database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/directory.h"

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sealmail-test-dir-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd);
}

static void collect(void *arg, const char *domain)
{
    char *out = arg;
    strcat(out, domain);
    strcat(out, ";");
}

static const struct name_case {
    const char *label;
    const char *name;
    int ok;
    const char *stored;
} name_cases[] = {
    {"simple", "example.org", 1, "example.org"},
    {"case folded", "Mail.EXAMPLE.net", 1, "mail.example.net"},
    {"trailing dot", "dot.example.", 1, "dot.example"},
    {"idn a-label", "xn--bcher-kva.example", 1, "xn--bcher-kva.example"},
    {"empty", "", 0, NULL},
    {"space", "bad name.example", 0, NULL},
    {"leading hyphen", "-x.example", 0, NULL},
    {"trailing hyphen", "x-.example", 0, NULL},
    {"empty label", "a..example", 0, NULL},
    {"underscore", "a_b.example", 0, NULL},
    {"label too long", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example", 0, NULL},
    {"utf8", "b\xc3\xbc" "cher.example", 0, NULL},
};

static void test_names(void **state)
{
    (void)state;
    const char *error;
    struct directory *dir = directory_open(tmpdir, true, &error);
    assert_non_null(dir);
    for (size_t i = 0; i < sizeof name_cases / sizeof name_cases[0]; i++) {
        const struct name_case *c = &name_cases[i];
        int r = directory_domain_add(dir, c->name);
        if ((r == 0) != c->ok)
            fail_msg("case '%s': r=%d (%s)", c->label, r, directory_error(dir));
        if (c->ok) {
            char all[4096] = "", want[300];
            directory_domain_list(dir, collect, all);
            snprintf(want, sizeof want, "%s;", c->stored);
            if (strstr(all, want) == NULL)
                fail_msg("case '%s': list '%s'", c->label, all);
            assert_int_equal(directory_domain_remove(dir, c->name), 0);
        }
    }
    directory_close(&dir);
    assert_null(dir);
}

static void test_add_list_remove(void **state)
{
    (void)state;
    const char *error;
    struct directory *dir = directory_open(tmpdir, true, &error);
    char all[256] = "";
    assert_int_equal(directory_domain_add(dir, "b.example"), 0);
    assert_int_equal(directory_domain_add(dir, "a.example"), 0);
    assert_int_equal(directory_domain_add(dir, "A.example"), -1); /* duplicate after folding */
    assert_non_null(strstr(directory_error(dir), "already exists"));
    assert_int_equal(directory_domain_list(dir, collect, all), 2);
    assert_string_equal(all, "a.example;b.example;");
    assert_int_equal(directory_domain_remove(dir, "a.example"), 0);
    assert_int_equal(directory_domain_remove(dir, "a.example"), -1);
    assert_non_null(strstr(directory_error(dir), "does not exist"));
    directory_close(&dir);
}

static void test_version_sees_other_connections(void **state)
{
    (void)state;
    const char *error;
    struct directory *reader = directory_open(tmpdir, true, &error);
    struct directory *writer = directory_open(tmpdir, false, &error);
    assert_non_null(reader);
    assert_non_null(writer);
    int64_t v1 = directory_version(reader);
    assert_int_equal(directory_version(reader), v1); /* stable without changes */
    assert_int_equal(directory_domain_add(writer, "seen.example"), 0);
    assert_true(directory_version(reader) != v1);
    directory_close(&reader);
    directory_close(&writer);
}

static void test_open_missing_without_create(void **state)
{
    (void)state;
    const char *error = NULL;
    assert_null(directory_open("/nonexistent/sealmail", false, &error));
    assert_non_null(strstr(error, "directory.db"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_add_list_remove),
        cmocka_unit_test(test_version_sees_other_connections),
        cmocka_unit_test(test_open_missing_without_create),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
