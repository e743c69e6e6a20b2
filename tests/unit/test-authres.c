/* test-authres.c — Authentication-Results (RFC 8601): fields we write are
 * folded, clean and read back the same; fields others write, including the
 * examples of RFC 8601 Appendix B and RFC 8617, are read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/authres.h"

/* Every line (CRLF separated) of a built field is at most max columns (a
 * TAB counted as 8), the field ends with CRLF, no CR or LF stands alone, and
 * each continuation line starts with WSP. */
static void check_shape(const char *f, size_t max)
{
    size_t len = strlen(f);
    assert_true(len >= 2 && f[len - 2] == '\r' && f[len - 1] == '\n');
    size_t col = 0;
    for (size_t i = 0; i < len; i++) {
        if (f[i] == '\r') {
            assert_int_equal(f[i + 1], '\n');
            i++;
            if (i + 1 < len)
                assert_true(f[i + 1] == ' ' || f[i + 1] == '\t');
            col = 0;
            continue;
        }
        assert_true(f[i] != '\n');
        assert_true((unsigned char)f[i] >= 0x20 || f[i] == '\t');
        col += f[i] == '\t' ? 8 : 1;
        if (col > max)
            fail_msg("line longer than %zu columns in:\n%s", max, f);
    }
}

/* Parse a built field: the value after the field name. */
static struct authres *reparse(const char *f, bool arc)
{
    const char *colon = strchr(f, ':');
    assert_non_null(colon);
    const char *err = NULL;
    struct authres *a = authres_parse(colon + 1, strlen(colon + 1), arc, &err);
    if (a == NULL)
        fail_msg("cannot parse what we built (%s):\n%s", err, f);
    return a;
}

static void test_build_typical(void **state)
{
    (void)state;
    struct authres_result r[5] = {
        {.method = "spf", .result = "pass",
         .comment = "mx.example.org: domain of bounce@example.com designates 192.0.2.1 "
                    "as permitted sender"},
        {.method = "dkim", .result = "pass"},
        {.method = "dkim", .result = "fail", .reason = "signature did not verify"},
        {.method = "dmarc", .result = "pass"},
        {.method = "arc", .result = "none"},
    };
    authres_add_prop(&r[0], "smtp", "mailfrom", "bounce@example.com");
    authres_add_prop(&r[1], "header", "d", "example.com");
    authres_add_prop(&r[1], "header", "s", "sel2024");
    authres_add_prop(&r[1], "header", "b", "AbCdEf+1");
    authres_add_prop(&r[2], "header", "d", "example.net");
    authres_add_prop(&r[2], "header", "s", "s1");
    authres_add_prop(&r[2], "header", "b", "Zz/9==xy");
    authres_add_prop(&r[3], "header", "from", "example.com");
    authres_add_prop(&r[3], "policy", "dmarc", "none");
    struct sm_buf b;
    sm_buf_init(&b, 0);
    assert_int_equal(authres_build(&b, 0, "mx.example.org", r, 5), 0);
    const char *want =
        "Authentication-Results: mx.example.org;\r\n"
        "\tspf=pass (mx.example.org: domain of bounce@example.com designates\r\n"
        " 192.0.2.1 as permitted sender) smtp.mailfrom=bounce@example.com;\r\n"
        "\tdkim=pass header.d=example.com header.s=sel2024 header.b=AbCdEf+1;\r\n"
        "\tdkim=fail reason=\"signature did not verify\" header.d=example.net\r\n"
        " header.s=s1 header.b=\"Zz/9==xy\";\r\n"
        "\tdmarc=pass header.from=example.com policy.dmarc=none;\r\n"
        "\tarc=none\r\n";
    assert_string_equal(sm_buf_str(&b), want);
    check_shape(sm_buf_str(&b), AUTHRES_FOLD);

    struct authres *a = reparse(sm_buf_str(&b), false);
    assert_string_equal(a->authserv_id, "mx.example.org");
    assert_int_equal(a->n, 5);
    assert_string_equal(a->ri[0].method, "spf");
    assert_string_equal(authres_prop_get(&a->ri[0], "smtp", "mailfrom"), "bounce@example.com");
    assert_string_equal(authres_prop_get(&a->ri[1], "header", "b"), "AbCdEf+1");
    assert_string_equal(a->ri[2].reason, "signature did not verify");
    assert_string_equal(authres_prop_get(&a->ri[2], "header", "b"), "Zz/9==xy");
    assert_string_equal(authres_prop_get(&a->ri[3], "policy", "dmarc"), "none");
    assert_string_equal(a->ri[4].result, "none");
    assert_int_equal(a->ri[4].n_props, 0);
    authres_free(&a);
    assert_null(a);
    sm_buf_free(&b);
}

static void test_build_none_and_arc(void **state)
{
    (void)state;
    struct sm_buf b;
    sm_buf_init(&b, 0);
    assert_int_equal(authres_build(&b, 0, "mx.example.org", NULL, 0), 0);
    assert_string_equal(sm_buf_str(&b), "Authentication-Results: mx.example.org; none\r\n");
    struct authres *a = reparse(sm_buf_str(&b), false);
    assert_int_equal(a->n, 0);
    authres_free(&a);

    sm_buf_reset(&b);
    struct authres_result r = {.method = "spf", .result = "pass"};
    authres_add_prop(&r, "smtp", "mailfrom", "SRS0=ab=CD=example.com=x@fwd.example");
    assert_int_equal(authres_build(&b, 3, "mx.example.org", &r, 1), 0);
    assert_string_equal(sm_buf_str(&b),
                        "ARC-Authentication-Results: i=3; mx.example.org;\r\n"
                        "\tspf=pass smtp.mailfrom=SRS0=ab=CD=example.com=x@fwd.example\r\n");
    a = reparse(sm_buf_str(&b), true);
    assert_int_equal(a->arc_instance, 3);
    assert_string_equal(authres_prop_get(&a->ri[0], "smtp", "mailfrom"),
                        "SRS0=ab=CD=example.com=x@fwd.example");
    authres_free(&a);

    /* refused: bad names, instance, count */
    sm_buf_reset(&b);
    struct authres_result bad = {.method = "spf;x", .result = "pass"};
    assert_int_equal(authres_build(&b, 0, "id", &bad, 1), -1);
    bad = (struct authres_result){.method = "spf", .result = "pass\r\n"};
    assert_int_equal(authres_build(&b, 0, "id", &bad, 1), -1);
    bad = (struct authres_result){.method = "spf", .result = "pass"};
    authres_add_prop(&bad, "smtp", "mail from", "x");
    assert_int_equal(authres_build(&b, 0, "id", &bad, 1), -1);
    bad.props[0].property = "-mailfrom";
    assert_int_equal(authres_build(&b, 0, "id", &bad, 1), -1);
    assert_int_equal(authres_build(&b, 51, "id", NULL, 0), -1);
    assert_int_equal(authres_build(&b, 0, "\r\n", NULL, 0), -1);
    assert_int_equal(b.len, 0);
    for (int i = 0; i < AUTHRES_PROPS_MAX - 1; i++)
        assert_int_equal(authres_add_prop(&bad, "smtp", "x", "y"), 0);
    assert_int_equal(authres_add_prop(&bad, "smtp", "x", "y"), -1);
    /* out's own limit leaves it unchanged */
    struct sm_buf small;
    sm_buf_init(&small, 20);
    assert_int_equal(authres_build(&small, 0, "mx.example.org", NULL, 0), -1);
    assert_int_equal(small.len, 0);
    sm_buf_free(&small);
    sm_buf_free(&b);
}

/* What hostile text becomes: one property value, one comment, one reason. */
struct hostile_case {
    const char *label;
    const char *in;
    const char *value;   /* what the parser reads back */
};

static const struct hostile_case hostile_cases[] = {
    {"header injection", "evil.example\r\nX-Injected: yes", "evil.exampleX-Injected: yes"},
    {"bare LF and CR", "a\nb\rc", "abc"},
    {"semicolon ends a resinfo", "a; dkim=pass header.d=paypal.com",
     "a; dkim=pass header.d=paypal.com"},
    {"quotes and backslash", "say \"hi\\\" there", "say \"hi\\\" there"},
    {"comment opener", "(not a comment", "(not a comment"},
    {"control bytes and DEL", "a\x01\x7f\x1b" "b", "ab"},
    {"tabs and runs of spaces", "\t a \t\t b  ", "a b"},
    {"invalid UTF-8 dropped, valid kept", "\xff\xc3\xa9t\xc3\xa9\xed\xa0\x80!",
     "\xc3\xa9t\xc3\xa9!"},
    {"empty", "", ""},
    {"only junk", "\r\n\x01", ""},
    {"at sign forms", "@example.com", "@example.com"},
    {"address with a space", "a b@example.com", "a b@example.com"},
};

static void test_hostile_values(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof hostile_cases / sizeof hostile_cases[0]; i++) {
        const struct hostile_case *c = &hostile_cases[i];
        struct authres_result r = {.method = "dkim", .result = "fail", .reason = c->in,
                                   .comment = c->in};
        authres_add_prop(&r, "header", "d", c->in);
        authres_add_prop(&r, "header", "s", "sel");
        struct sm_buf b;
        sm_buf_init(&b, 0);
        if (authres_build(&b, 0, c->in[0] > ' ' ? c->in : "mx.example.org", &r, 1) != 0)
            fail_msg("%s: not built", c->label);
        check_shape(sm_buf_str(&b), 998);
        struct authres *a = reparse(sm_buf_str(&b), false);
        if (a->n != 1 || a->ri[0].n_props != 2 || strcmp(a->ri[0].reason, c->value) != 0 ||
            strcmp(authres_prop_get(&a->ri[0], "header", "d"), c->value) != 0 ||
            strcmp(authres_prop_get(&a->ri[0], "header", "s"), "sel") != 0)
            fail_msg("%s: read back wrong from\n%s", c->label, sm_buf_str(&b));
        authres_free(&a);
        sm_buf_free(&b);
    }
}

static void test_long_values(void **state)
{
    (void)state;
    char lng[600];
    memset(lng, 'x', sizeof lng - 1);
    lng[sizeof lng - 1] = '\0';
    for (size_t i = 40; i < sizeof lng - 1; i += 41)
        lng[i] = ' ';
    struct authres_result r[2] = {{.method = "dkim", .result = "pass", .comment = lng},
                                  {.method = "spf", .result = "pass"}};
    authres_add_prop(&r[0], "header", "d", lng);
    authres_add_prop(&r[1], "smtp", "mailfrom", "a@example.com");
    struct sm_buf b;
    sm_buf_init(&b, 0);
    assert_int_equal(authres_build(&b, 0, "mx.example.org", r, 2), 0);
    check_shape(sm_buf_str(&b), AUTHRES_FOLD); /* words of 40 fit */
    struct authres *a = reparse(sm_buf_str(&b), false);
    assert_int_equal(strlen(authres_prop_get(&a->ri[0], "header", "d")), AUTHRES_VALUE_MAX);
    authres_free(&a);
    /* an unbreakable value may pass 78 columns, never 998 */
    memset(lng, 'y', sizeof lng - 1);
    r[0].comment = NULL;
    sm_buf_reset(&b);
    assert_int_equal(authres_build(&b, 0, "mx.example.org", r, 2), 0);
    check_shape(sm_buf_str(&b), 998);
    /* so many results that the field limit is reached */
    static struct authres_result many[AUTHRES_RESINFO_MAX];
    for (size_t i = 0; i < AUTHRES_RESINFO_MAX; i++) {
        many[i] = (struct authres_result){.method = "dkim", .result = "pass"};
        authres_add_prop(&many[i], "header", "d", lng);
    }
    sm_buf_reset(&b);
    assert_int_equal(authres_build(&b, 0, "mx.example.org", many, AUTHRES_RESINFO_MAX), -1);
    assert_int_equal(b.len, 0);
    assert_int_equal(authres_build(&b, 0, "mx.example.org", many, 20), 0);
    assert_true(b.len <= AUTHRES_FIELD_MAX + AUTHRES_FIELD_MAX / 8);
    sm_buf_free(&b);
}

/* RFC 8601 Appendix B and RFC 8617 §A.2 (field values, as in the RFCs,
 * after the field name). */
static void test_rfc_examples(void **state)
{
    (void)state;
    const char *err = NULL;
    struct authres *a;
    static const char b2[] = " example.org 1; none";
    a = authres_parse(b2, strlen(b2), false, &err);
    assert_non_null(a);
    assert_string_equal(a->authserv_id, "example.org");
    assert_int_equal(a->version, 1);
    assert_int_equal(a->n, 0);
    authres_free(&a);

    static const char b3[] = " example.com;\r\n"
                             "                  spf=pass smtp.mailfrom=example.net";
    a = authres_parse(b3, strlen(b3), false, &err);
    assert_non_null(a);
    assert_int_equal(a->n, 1);
    assert_string_equal(a->ri[0].method, "spf");
    assert_string_equal(a->ri[0].result, "pass");
    assert_string_equal(authres_prop_get(&a->ri[0], "smtp", "mailfrom"), "example.net");
    authres_free(&a);

    static const char b4[] = " example.com;\r\n                  auth=pass (cram-md5) "
                             "smtp.auth=sender@example.net;\r\n                  spf=pass "
                             "smtp.mailfrom=example.net";
    a = authres_parse(b4, strlen(b4), false, &err);
    assert_non_null(a);
    assert_int_equal(a->n, 2);
    assert_string_equal(authres_prop_get(&a->ri[0], "smtp", "auth"), "sender@example.net");
    authres_free(&a);

    static const char b4b[] = " example.com; iprev=pass\r\n                  "
                              "policy.iprev=192.0.2.200";
    a = authres_parse(b4b, strlen(b4b), false, &err);
    assert_non_null(a);
    assert_string_equal(authres_prop_get(&a->ri[0], "policy", "iprev"), "192.0.2.200");
    authres_free(&a);

    static const char b5[] = " example.com;\r\n              sender-id=fail "
                             "header.from=example.com;\r\n              dkim=pass (good "
                             "signature) header.d=example.com";
    a = authres_parse(b5, strlen(b5), false, &err);
    assert_non_null(a);
    assert_int_equal(a->n, 2);
    assert_string_equal(a->ri[0].method, "sender-id");
    assert_string_equal(authres_prop_get(&a->ri[1], "header", "d"), "example.com");
    authres_free(&a);

    static const char b6[] = " example.com;\r\n              dkim=pass reason=\"good "
                             "signature\"\r\n                header.i=@mail-router.example.net;"
                             "\r\n              dkim=fail reason=\"bad signature\"\r\n"
                             "                header.i=@newyork.example.com";
    a = authres_parse(b6, strlen(b6), false, &err);
    assert_non_null(a);
    assert_int_equal(a->n, 2);
    assert_string_equal(a->ri[0].reason, "good signature");
    assert_string_equal(authres_prop_get(&a->ri[0], "header", "i"), "@mail-router.example.net");
    assert_string_equal(a->ri[1].result, "fail");
    assert_string_equal(a->ri[1].reason, "bad signature");
    authres_free(&a);

    static const char b7[] = " foo.example.net (foobar) 1 (baz);\r\n    dkim (Because I like "
                             "it) / 1 (One yay) = (wait for it) fail\r\n      policy (A dot "
                             "can go here) . (like that) expired\r\n      (this surprised me)"
                             " = (as I wasn't expecting it) 1362471462";
    a = authres_parse(b7, strlen(b7), false, &err);
    if (a == NULL)
        fail_msg("B.7: %s", err);
    assert_string_equal(a->authserv_id, "foo.example.net");
    assert_int_equal(a->version, 1);
    assert_int_equal(a->n, 1);
    assert_string_equal(a->ri[0].method, "dkim");
    assert_int_equal(a->ri[0].method_version, 1);
    assert_string_equal(a->ri[0].result, "fail");
    assert_string_equal(authres_prop_get(&a->ri[0], "policy", "expired"), "1362471462");
    authres_free(&a);

    static const char arc[] = " i=1; lists.example.org;\r\n      spf=pass "
                              "smtp.mfrom=jqd@d1.example;\r\n      dkim=pass (1024-bit key) "
                              "header.i=@d1.example;\r\n      dmarc=pass";
    a = authres_parse(arc, strlen(arc), true, &err);
    assert_non_null(a);
    assert_int_equal(a->arc_instance, 1);
    assert_string_equal(a->authserv_id, "lists.example.org");
    assert_int_equal(a->n, 3);
    assert_string_equal(a->ri[2].method, "dmarc");
    authres_free(&a);
    /* the same without "arc" is not an authserv-id followed by results */
    assert_null(authres_parse(arc, strlen(arc), false, &err));
}

static void test_real_world_forms(void **state)
{
    (void)state;
    const char *err = NULL;
    /* Gmail-like: quoted id, trailing ";", SRS local part, header.b prefix */
    static const char g[] = " \"mx.google.com\";\r\n       dkim=pass header.i=@example.com "
                            "header.s=20230601 header.b=Ab/cD+9z;\r\n       spf=pass "
                            "(google.com: domain of SRS0=x=y=example.com=u@srs.example "
                            "designates 192.0.2.1 as permitted sender) "
                            "smtp.mailfrom=\"SRS0=x=y=example.com=u@srs.example\";\r\n"
                            "       dmarc=pass (p=REJECT sp=REJECT dis=NONE) "
                            "header.from=example.com;";
    struct authres *a = authres_parse(g, strlen(g), false, &err);
    if (a == NULL)
        fail_msg("%s", err);
    assert_string_equal(a->authserv_id, "mx.google.com");
    assert_int_equal(a->n, 3);
    assert_string_equal(authres_prop_get(&a->ri[0], "header", "b"), "Ab/cD+9z");
    assert_string_equal(authres_prop_get(&a->ri[1], "smtp", "mailfrom"),
                        "SRS0=x=y=example.com=u@srs.example");
    authres_free(&a);
    /* quoted local part then @domain; method and result in capitals */
    static const char q[] = "example.org; SPF=Pass smtp.mailfrom=\"a b\"@example.com";
    a = authres_parse(q, strlen(q), false, &err);
    assert_non_null(a);
    assert_string_equal(a->ri[0].method, "spf");
    assert_string_equal(a->ri[0].result, "pass");
    assert_string_equal(authres_prop_get(&a->ri[0], "smtp", "mailfrom"), "a b@example.com");
    authres_free(&a);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "   ",
        "example.org",                         /* no results, no none */
        "; spf=pass",                          /* no authserv-id */
        "example.org; spf",                    /* no = result */
        "example.org; spf=",                   /* no result */
        "example.org; spf=pass smtp",          /* ptype without property */
        "example.org; spf=pass smtp.mailfrom", /* no = */
        "example.org; spf=pass smtp.mailfrom=",
        "example.org; spf=pass smtp.mailfrom=\"open",
        "example.org; spf=pass (unclosed",
        "example.org (((((((((deep))))))))); spf=pass",
        "example.org; spf=pass reason=",
        "example.org; spf/=pass",
        "example.org; spf/1234567890=pass",
        "example.org; =pass",
        "example.org;; spf=pass",
        "example.org; spf=pass ;; dkim=pass",
        "example.org; none; spf=pass",
        "exa\"mple.org; spf=pass",
        "example.org; spf=pass smtp.mailfrom=a\x01" "b",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *err = NULL;
        struct authres *a = authres_parse(bad[i], strlen(bad[i]), false, &err);
        if (a != NULL)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(err);
    }
    static const char *bad_arc[] = {
        "example.org; spf=pass",
        "i=0; example.org; spf=pass",
        "i=51; example.org; spf=pass",
        "i=1 example.org; spf=pass",
        "i=; example.org; spf=pass",
    };
    for (size_t i = 0; i < sizeof bad_arc / sizeof bad_arc[0]; i++) {
        const char *err = NULL;
        if (authres_parse(bad_arc[i], strlen(bad_arc[i]), true, &err) != NULL)
            fail_msg("accepted: %s", bad_arc[i]);
    }
}

static void test_limits(void **state)
{
    (void)state;
    static char f[AUTHRES_PARSE_MAX + 64];
    const char *err = NULL;
    strcpy(f, "example.org");
    for (int i = 0; i < AUTHRES_RESINFO_MAX; i++)
        strcat(f, "; spf=pass");
    struct authres *a = authres_parse(f, strlen(f), false, &err);
    assert_non_null(a);
    assert_int_equal(a->n, AUTHRES_RESINFO_MAX);
    authres_free(&a);
    strcat(f, "; spf=pass");
    assert_null(authres_parse(f, strlen(f), false, &err));
    assert_string_equal(err, "too many results");

    strcpy(f, "example.org; dkim=pass");
    for (int i = 0; i < AUTHRES_PROPS_MAX; i++)
        strcat(f, " header.d=x");
    a = authres_parse(f, strlen(f), false, &err);
    assert_non_null(a);
    authres_free(&a);
    strcat(f, " header.d=x");
    assert_null(authres_parse(f, strlen(f), false, &err));

    memset(f, ' ', AUTHRES_PARSE_MAX + 1);
    memcpy(f, "example.org; none", 17);
    assert_null(authres_parse(f, AUTHRES_PARSE_MAX + 1, false, &err));
    a = authres_parse(f, AUTHRES_PARSE_MAX, false, &err);
    assert_non_null(a);
    authres_free(&a);
}

static void test_authserv_id(void **state)
{
    (void)state;
    char id[64];
    static const char broken[] = " (c) \"Mx.Example.ORG\" ; spf=";
    assert_int_equal(authres_authserv_id(broken, strlen(broken), false, id, sizeof id), 14);
    assert_string_equal(id, "Mx.Example.ORG");
    assert_true(authres_claims(broken, strlen(broken), false, "mx.example.org"));
    assert_false(authres_claims(broken, strlen(broken), false, "mx.example.org.evil"));
    assert_int_equal(authres_authserv_id(broken, strlen(broken), false, id, 14), -1);
    static const char arc[] = "i=2; mx.example.org; none";
    assert_int_equal(authres_authserv_id(arc, strlen(arc), true, id, sizeof id), 14);
    assert_true(authres_claims(arc, strlen(arc), true, "MX.example.org"));
    assert_false(authres_claims(arc, strlen(arc), false, "mx.example.org"));
    assert_int_equal(authres_authserv_id("", 0, false, id, sizeof id), -1);
    assert_int_equal(authres_authserv_id(";x", 2, false, id, sizeof id), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_typical),
        cmocka_unit_test(test_build_none_and_arc),
        cmocka_unit_test(test_hostile_values),
        cmocka_unit_test(test_long_values),
        cmocka_unit_test(test_rfc_examples),
        cmocka_unit_test(test_real_world_forms),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_authserv_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
