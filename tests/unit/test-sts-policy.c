/* test-sts-policy.c — MTA-STS texts (src/smtp/sts-policy.h): the TXT
 * record and the policy file of RFC 8461, with the RFC's own examples,
 * the strictness it asks for (version first, digits, known modes, one id),
 * the leniency it asks for (unknown fields ignored, LF or CRLF) and the
 * limits (sizes, counts, label lengths). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/sts-policy.h"

static bool txt(const char *s, char *id)
{
    return sts_txt_parse(s, strlen(s), id);
}

static void test_txt_records(void **state)
{
    (void)state;
    char id[STS_ID_MAX + 1];
    assert_true(txt("v=STSv1; id=20160831085700Z;", id)); /* RFC 8461 §3.1 */
    assert_string_equal(id, "20160831085700Z");
    assert_true(txt("v=STSv1;id=abc", id));
    assert_string_equal(id, "abc");
    assert_true(txt("v=STSv1 ;  id=x1 ; ext.x-y_z=1:2<3>4 ;", id));
    assert_string_equal(id, "x1");
    assert_true(txt("v=STSv1; id=12345678901234567890123456789012", id)); /* 32 chars */
    const char *bad[] = {
        "",
        "v=STSv1",                                    /* no field */
        "v=STSv1;",                                   /* no field */
        "id=1; v=STSv1",                              /* version not first */
        "v=STSv2; id=1",
        "v=STSv1; id=123456789012345678901234567890123", /* 33 chars */
        "v=STSv1; id=a-b",                            /* id: letters and digits */
        "v=STSv1; id=",
        "v=STSv1; id=1; id=2",                        /* two ids */
        "v=STSv1; ext=1",                             /* no id */
        "v=STSv1; id=1; =x",
        "v=STSv1; id=1; _x=1",                        /* a name starts alphanumeric */
        "v=STSv1; id=1; x=a=b",
        "v=STSv1; id=1 x",
        "v=STSv1; id=1;; ",
        "v=STSv1x; id=1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(txt(bad[i], id));
    assert_true(sts_txt_is_sts("v=STSv1", 7));
    assert_true(sts_txt_is_sts("v=STSv1; junk", 13));
    assert_false(sts_txt_is_sts("v=spf1 -all", 11));
    assert_false(sts_txt_is_sts("v=STSv10;", 9));
}

static bool policy(const char *s, struct sts_policy *p)
{
    const char *why;
    bool ok = sts_policy_parse(s, strlen(s), p, &why);
    assert_true(ok == (why == NULL));
    return ok;
}

static void test_policy_files(void **state)
{
    (void)state;
    struct sts_policy p;
    /* RFC 8461 §3.2's example */
    assert_true(policy("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
                       "mx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
                       &p));
    assert_int_equal(p.mode, STS_MODE_ENFORCE);
    assert_int_equal(p.max_age, 604800);
    assert_int_equal(p.n_mx, 3);
    assert_string_equal(p.mx[1], "*.example.net");
    assert_true(sts_policy_allows_mx(&p, "mail.example.com"));
    assert_true(sts_policy_allows_mx(&p, "MX1.example.NET."));
    assert_false(sts_policy_allows_mx(&p, "a.b.example.net"));
    assert_false(sts_policy_allows_mx(&p, "example.net"));
    assert_false(sts_policy_allows_mx(&p, "evil.example.com"));
    /* LF, no final newline, blank lines, spaces, an unknown field, upper case mx */
    assert_true(policy("  version:STSv1\n\nmode:   testing  \nmx: MX.Example.ORG\n"
                       "future_field: anything at all\nmax_age: 86400", &p));
    assert_int_equal(p.mode, STS_MODE_TESTING);
    assert_string_equal(p.mx[0], "mx.example.org");
    /* field names are case-sensitive (%s in the ABNF): "Mode" is an unknown field */
    assert_true(policy("version: STSv1\nmode: none\nMode: enforce\nmax_age: 1\n", &p));
    assert_int_equal(p.mode, STS_MODE_NONE);
    /* mode none needs no mx */
    assert_true(policy("version: STSv1\nmode: none\nmax_age: 1\n", &p));
    assert_int_equal(p.mode, STS_MODE_NONE);
    /* max_age above a year is capped */
    assert_true(policy("version: STSv1\nmode: none\nmax_age: 9999999999\n", &p));
    assert_int_equal(p.max_age, STS_MAX_AGE_MAX);
}

static void test_policy_rejects(void **state)
{
    (void)state;
    struct sts_policy p;
    const char *bad[] = {
        "",
        "mode: enforce\nmx: a.example\nmax_age: 1\n",                       /* no version */
        "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmax_age: 1\n",                      /* no mx */
        "version: STSv1\nmode: enforcing\nmx: a.example\nmax_age: 1\n",
        "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmx: a.example\n",                   /* no max_age */
        "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",
        "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n", /* 11 digits */
        "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\nmax_age: 2\n",
        "version: STSv1\nmode: enforce\nmode: none\nmx: a.example\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmx: a.example.\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmx: *.\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmx: a_b.example\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmx:\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\nno colon here\n",
        "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n-x: 1\n", /* bad field name */
        "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\nx: \x01\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (policy(bad[i], &p))
            fail_msg("accepted #%zu: %s", i, bad[i]);
    }
    /* an embedded NUL */
    const char nul[] = "version: STSv1\nmode: none\nmax_age: 1\n\0\n";
    const char *why;
    assert_false(sts_policy_parse(nul, sizeof nul - 1, &p, &why));
}

static void test_policy_limits(void **state)
{
    (void)state;
    struct sts_policy p;
    static char buf[STS_POLICY_MAX + 2048];
    /* STS_MX_MAX patterns fit, one more does not */
    size_t n = (size_t)sprintf(buf, "version: STSv1\nmode: enforce\nmax_age: 60\n");
    for (int i = 0; i < STS_MX_MAX; i++)
        n += (size_t)sprintf(buf + n, "mx: mx%d.example\n", i);
    assert_true(policy(buf, &p));
    assert_int_equal(p.n_mx, STS_MX_MAX);
    sprintf(buf + n, "mx: one-more.example\n");
    assert_false(policy(buf, &p));
    /* a 63-character label fits, 64 do not; a line over STS_LINE_MAX does not */
    char label[70];
    memset(label, 'a', 64);
    label[64] = '\0';
    sprintf(buf, "version: STSv1\nmode: enforce\nmax_age: 60\nmx: %s.example\n", label + 1);
    assert_true(policy(buf, &p));
    sprintf(buf, "version: STSv1\nmode: enforce\nmax_age: 60\nmx: %s.example\n", label);
    assert_false(policy(buf, &p));
    n = (size_t)sprintf(buf, "version: STSv1\nmode: none\nmax_age: 60\nx: ");
    memset(buf + n, 'x', STS_LINE_MAX);
    buf[n + STS_LINE_MAX] = '\0';
    assert_false(policy(buf, &p));
    /* a file over STS_POLICY_MAX is refused whatever it holds */
    n = (size_t)sprintf(buf, "version: STSv1\nmode: none\nmax_age: 60\n");
    memset(buf + n, '\n', STS_POLICY_MAX);
    buf[n + STS_POLICY_MAX] = '\0';
    assert_false(policy(buf, &p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_txt_records),
        cmocka_unit_test(test_policy_files),
        cmocka_unit_test(test_policy_rejects),
        cmocka_unit_test(test_policy_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
