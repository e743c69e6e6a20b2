/* test-smtp-parse.c — command-line parsers: paths, parameters, EHLO, BDAT. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "smtp/parse.h"

static const struct path_case {
    const char *label;
    const char *args;
    const char *prefix;
    int ok;
    const char *address_or_reply; /* address when ok, reply prefix otherwise */
    const char *domain;
    size_t n_params;
} path_cases[] = {
    {"simple", "FROM:<a@b.example>", "FROM:", 1, "a@b.example", "b.example", 0},
    {"space after colon", "FROM: <a@b.example>", "FROM:", 1, "a@b.example", "b.example", 0},
    {"lowercase prefix", "from:<a@B.Example>", "FROM:", 1, "a@B.Example", "b.example", 0},
    {"null sender", "FROM:<>", "FROM:", 1, "", "", 0},
    {"null rcpt", "TO:<>", "TO:", 0, "501 5.1.3", NULL, 0},
    {"params", "FROM:<a@b.c> SIZE=100 BODY=8BITMIME SMTPUTF8", "FROM:", 1, "a@b.c", "b.c", 3},
    {"postmaster", "TO:<Postmaster>", "TO:", 1, "postmaster", "", 0},
    {"no domain", "TO:<bob>", "TO:", 0, "501 5.1.3", NULL, 0},
    {"no brackets", "FROM:a@b.c", "FROM:", 0, "501 5.1.7", NULL, 0},
    {"unclosed", "FROM:<a@b.c", "FROM:", 0, "501 5.1.7", NULL, 0},
    {"junk after", "FROM:<a@b.c>x", "FROM:", 0, "501 5.5.4", NULL, 0},
    {"source route", "TO:<@relay.example,@r2.example:u@d.example>", "TO:", 1, "u@d.example",
     "d.example", 0},
    {"quoted local", "TO:<\"john doe\"@d.example>", "TO:", 1, "\"john doe\"@d.example",
     "d.example", 0},
    {"quoted with >", "TO:<\"a>b\"@d.example>", "TO:", 1, "\"a>b\"@d.example", "d.example", 0},
    {"double dot", "TO:<a..b@d.example>", "TO:", 0, "501 5.1.3", NULL, 0},
    {"leading dot", "TO:<.a@d.example>", "TO:", 0, "501 5.1.3", NULL, 0},
    {"bad domain", "TO:<a@-d.example>", "TO:", 0, "501 5.1.3", NULL, 0},
    {"empty label", "TO:<a@d..example>", "TO:", 0, "501 5.1.3", NULL, 0},
    {"address literal", "TO:<a@[192.0.2.1]>", "TO:", 1, "a@[192.0.2.1]", "[192.0.2.1]", 0},
    {"utf8 local", "TO:<j\xc3\xb6rg@d.example>", "TO:", 1, "j\xc3\xb6rg@d.example", "d.example",
     0},
    {"invalid utf8", "TO:<j\xc3@d.example>", "TO:", 0, "501 5.1.3", NULL, 0},
    {"control char", "TO:<a\x01@d.example>", "TO:", 0, "501 5.1.3", NULL, 0},
    {"local too long",
     "TO:<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@d.example>", "TO:", 0,
     "501 5.1.3", NULL, 0},
    {"empty param value", "FROM:<a@b.c> SIZE=", "FROM:", 0, "501 5.5.4", NULL, 0},
    {"too many params", "FROM:<a@b.c> A B C D E F G H I", "FROM:", 0, "501 5.5.4", NULL, 0},
    {"wrong verb arg", "TO:<a@b.c>", "FROM:", 0, "501 5.5.4", NULL, 0},
};

static void test_paths(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof path_cases / sizeof path_cases[0]; i++) {
        const struct path_case *c = &path_cases[i];
        char args[512];
        struct smtp_path path;
        struct smtp_parse_error err = {NULL};
        snprintf(args, sizeof args, "%s", c->args);
        int r = smtp_parse_path(args, c->prefix, strcmp(c->prefix, "FROM:") == 0, &path, &err);
        if ((r == 0) != c->ok)
            fail_msg("case '%s': r=%d reply=%s", c->label, r, err.reply ? err.reply : "-");
        if (c->ok) {
            if (strcmp(path.address, c->address_or_reply) != 0 ||
                strcmp(path.domain, c->domain) != 0 || path.n_params != c->n_params)
                fail_msg("case '%s': got '%s' '%s' %zu", c->label, path.address, path.domain,
                         path.n_params);
        } else if (strncmp(err.reply, c->address_or_reply, strlen(c->address_or_reply)) != 0) {
            fail_msg("case '%s': reply '%s'", c->label, err.reply);
        }
    }
}

static void test_verbs_and_helo(void **state)
{
    (void)state;
    const char *args;
    assert_int_equal(smtp_parse_verb("ehlo x.example", &args), SMTP_VERB_EHLO);
    assert_string_equal(args, "x.example");
    assert_int_equal(smtp_parse_verb("STARTTLS", &args), SMTP_VERB_STARTTLS);
    assert_string_equal(args, "");
    assert_int_equal(smtp_parse_verb("MAILX FROM:<>", &args), SMTP_VERB_UNKNOWN);
    assert_int_equal(smtp_parse_verb("", &args), SMTP_VERB_UNKNOWN);
    struct smtp_parse_error err;
    assert_int_equal(smtp_parse_helo("mail.example.org", &err), 0);
    assert_int_equal(smtp_parse_helo("[192.0.2.1]", &err), 0);
    assert_int_equal(smtp_parse_helo("[IPv6:2001:db8::1]", &err), 0);
    assert_int_equal(smtp_parse_helo("", &err), -1);
    assert_int_equal(smtp_parse_helo("bad_host!", &err), -1);
}

static void test_bdat_and_size(void **state)
{
    (void)state;
    uint64_t size;
    bool last;
    struct smtp_parse_error err;
    assert_int_equal(smtp_parse_bdat("100", &size, &last, &err), 0);
    assert_true(size == 100 && !last);
    assert_int_equal(smtp_parse_bdat("0 LAST", &size, &last, &err), 0);
    assert_true(size == 0 && last);
    assert_int_equal(smtp_parse_bdat("12 last", &size, &last, &err), 0);
    assert_int_equal(smtp_parse_bdat("", &size, &last, &err), -1);
    assert_int_equal(smtp_parse_bdat("-1", &size, &last, &err), -1);
    assert_int_equal(smtp_parse_bdat("10 FIRST", &size, &last, &err), -1);
    assert_int_equal(smtp_parse_bdat("99999999999999999999999", &size, &last, &err), -1);
    assert_int_equal(smtp_parse_size("18446744073709551615", &size), -1); /* 20 digits */
    assert_int_equal(smtp_parse_size("1234567890123456789", &size), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_verbs_and_helo),
        cmocka_unit_test(test_bdat_and_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
