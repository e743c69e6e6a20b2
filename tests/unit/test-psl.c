/* test-psl.c — the Public Suffix List and organisational domains.
 *
 * The first table is the PSL project's own test file (tests/test_psl.txt
 * of github.com/publicsuffix/list, public domain: "Any copyright is
 * dedicated to the Public Domain", CC0), run against the list Debian ships
 * (package publicsuffix; SEALMAIL_PSL overrides the path).  The others use
 * small lists in memory, so they do not depend on the list's version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/psl.h"

struct psl_case {
    const char *domain;
    const char *org; /* NULL: a public suffix, or invalid */
};

/* checkPublicSuffix(domain, expected) of test_psl.txt, in its order. */
static const struct psl_case psl_project_cases[] = {
    /* null input. */
    {NULL, NULL},
    /* Mixed case. */
    {"COM", NULL},
    {"example.COM", "example.com"},
    {"WwW.example.COM", "example.com"},
    /* Leading dot. */
    {".com", NULL},
    {".example", NULL},
    {".example.com", NULL},
    {".example.example", NULL},
    /* Unlisted TLD. */
    {"example", NULL},
    {"example.example", "example.example"},
    {"b.example.example", "example.example"},
    {"a.b.example.example", "example.example"},
    /* Listed, but non-Internet, TLD. */
    /* TLD with only 1 rule. */
    {"biz", NULL},
    {"domain.biz", "domain.biz"},
    {"b.domain.biz", "domain.biz"},
    {"a.b.domain.biz", "domain.biz"},
    /* TLD with some 2-level rules. */
    {"com", NULL},
    {"example.com", "example.com"},
    {"b.example.com", "example.com"},
    {"a.b.example.com", "example.com"},
    {"uk.com", NULL},
    {"example.uk.com", "example.uk.com"},
    {"b.example.uk.com", "example.uk.com"},
    {"a.b.example.uk.com", "example.uk.com"},
    {"test.ac", "test.ac"},
    /* TLD with only 1 (wildcard) rule. */
    {"mm", NULL},
    {"c.mm", NULL},
    {"b.c.mm", "b.c.mm"},
    {"a.b.c.mm", "b.c.mm"},
    /* More complex TLD. */
    {"jp", NULL},
    {"test.jp", "test.jp"},
    {"www.test.jp", "test.jp"},
    {"ac.jp", NULL},
    {"test.ac.jp", "test.ac.jp"},
    {"www.test.ac.jp", "test.ac.jp"},
    {"kyoto.jp", NULL},
    {"test.kyoto.jp", "test.kyoto.jp"},
    {"ide.kyoto.jp", NULL},
    {"b.ide.kyoto.jp", "b.ide.kyoto.jp"},
    {"a.b.ide.kyoto.jp", "b.ide.kyoto.jp"},
    {"c.kobe.jp", NULL},
    {"b.c.kobe.jp", "b.c.kobe.jp"},
    {"a.b.c.kobe.jp", "b.c.kobe.jp"},
    {"city.kobe.jp", "city.kobe.jp"},
    {"www.city.kobe.jp", "city.kobe.jp"},
    /* TLD with a wildcard rule and exceptions. */
    {"ck", NULL},
    {"test.ck", NULL},
    {"b.test.ck", "b.test.ck"},
    {"a.b.test.ck", "b.test.ck"},
    {"www.ck", "www.ck"},
    {"www.www.ck", "www.ck"},
    /* US K12. */
    {"us", NULL},
    {"test.us", "test.us"},
    {"www.test.us", "test.us"},
    {"ak.us", NULL},
    {"test.ak.us", "test.ak.us"},
    {"www.test.ak.us", "test.ak.us"},
    {"k12.ak.us", NULL},
    {"test.k12.ak.us", "test.k12.ak.us"},
    {"www.test.k12.ak.us", "test.k12.ak.us"},
    /* IDN labels. */
    {"食狮.com.cn", "食狮.com.cn"},
    {"食狮.公司.cn", "食狮.公司.cn"},
    {"www.食狮.公司.cn", "食狮.公司.cn"},
    {"shishi.公司.cn", "shishi.公司.cn"},
    {"公司.cn", NULL},
    {"食狮.中国", "食狮.中国"},
    {"www.食狮.中国", "食狮.中国"},
    {"shishi.中国", "shishi.中国"},
    {"中国", NULL},
    /* Same as above, but punycoded. */
    {"xn--85x722f.com.cn", "xn--85x722f.com.cn"},
    {"xn--85x722f.xn--55qx5d.cn", "xn--85x722f.xn--55qx5d.cn"},
    {"www.xn--85x722f.xn--55qx5d.cn", "xn--85x722f.xn--55qx5d.cn"},
    {"shishi.xn--55qx5d.cn", "shishi.xn--55qx5d.cn"},
    {"xn--55qx5d.cn", NULL},
    {"xn--85x722f.xn--fiqs8s", "xn--85x722f.xn--fiqs8s"},
    {"www.xn--85x722f.xn--fiqs8s", "xn--85x722f.xn--fiqs8s"},
    {"shishi.xn--fiqs8s", "shishi.xn--fiqs8s"},
    {"xn--fiqs8s", NULL},
};

static void check(const struct psl *p, const char *domain, const char *want)
{
    char out[512];
    int n = psl_org_domain(p, domain, out, sizeof out);
    if (want == NULL) {
        if (n >= 0)
            fail_msg("%s: expected no organisational domain, got %s", domain, out);
        return;
    }
    if (n < 0)
        fail_msg("%s: expected %s, got %d", domain, want, n);
    if (strcmp(out, want) != 0 || (size_t)n != strlen(want))
        fail_msg("%s: expected %s, got %s", domain, want, out);
}

static void test_project_cases(void **state)
{
    (void)state;
    const char *path = getenv("SEALMAIL_PSL");
    const char *err = NULL;
    struct psl *p = psl_load(path != NULL ? path : PSL_DEFAULT_PATH, &err);
    if (p == NULL)
        fail_msg("cannot load the list (install package publicsuffix): %s", err);
    assert_true(psl_rule_count(p) > 5000);
    size_t n = sizeof psl_project_cases / sizeof psl_project_cases[0];
    assert_int_equal(n, 78);
    for (size_t i = 0; i < n; i++)
        check(p, psl_project_cases[i].domain, psl_project_cases[i].org);
    /* what DMARC relies on besides those */
    check(p, "mail.example.co.uk.", "example.co.uk"); /* a final dot is allowed */
    check(p, "example.com..", NULL);
    check(p, "a..example.com", NULL);
    check(p, "exa mple.com", NULL);
    psl_free(&p);
    assert_null(p);
    psl_free(&p);
}

static struct psl *small_list(void)
{
    static const char text[] =
        "// a comment line\n"
        "\n"
        "com\n"
        "co.uk   trailing text is ignored\r\n"
        "uk\n"
        "*.kobe.jp\n"
        "!city.kobe.jp\n"
        "jp\n"
        "*.ck\n"
        "!www.ck\n"
        "\xe5\x85\xac\xe5\x8f\xb8.cn\n"   /* 公司.cn */
        "cn\n"
        "B\xc3\xbc" "cher.Example\n"      /* Bücher.Example: ASCII case folded */
        "a.*.bad\n"                       /* not PSL syntax: skipped */
        "bad\xff.utf8\n"                  /* invalid UTF-8: skipped */
        "*\n";                            /* the default rule, implicit anyway */
    const char *err = NULL;
    struct psl *p = psl_parse(text, sizeof text - 1, &err);
    assert_non_null(p);
    return p;
}

static void test_rules(void **state)
{
    (void)state;
    struct psl *p = small_list();
    assert_int_equal(psl_rule_count(p), 11);
    check(p, "a.b.example.com", "example.com");
    check(p, "x.co.uk", "x.co.uk");
    check(p, "co.uk", NULL);
    check(p, "foo.uk", "foo.uk");
    check(p, "kobe.jp", "kobe.jp");     /* "*.kobe.jp" does not cover kobe.jp */
    check(p, "c.kobe.jp", NULL);        /* wildcard */
    check(p, "b.c.kobe.jp", "b.c.kobe.jp");
    check(p, "city.kobe.jp", "city.kobe.jp"); /* exception */
    check(p, "www.city.kobe.jp", "city.kobe.jp");
    check(p, "ck", NULL);               /* only the wildcard: default rule */
    check(p, "www.ck", "www.ck");
    check(p, "a.www.ck", "www.ck");
    check(p, "unlisted", NULL);         /* default rule "*" */
    check(p, "x.unlisted", "x.unlisted");
    check(p, "y.x.unlisted", "x.unlisted");
    check(p, "a.bad", "a.bad");         /* the skipped rule did nothing */
    /* IDN: U-labels, A-labels and mixed, answered in the caller's forms */
    check(p, "\xe9\xa3\x9f.\xe5\x85\xac\xe5\x8f\xb8.cn",
          "\xe9\xa3\x9f.\xe5\x85\xac\xe5\x8f\xb8.cn");
    check(p, "www.xn--85x722f.XN--55QX5D.cn", "xn--85x722f.xn--55qx5d.cn");
    check(p, "xn--55qx5d.cn", NULL);
    check(p, "w.x.xn--bcher-kva.example", "x.xn--bcher-kva.example");
    check(p, "x.b\xc3\xbc" "cher.example", "x.b\xc3\xbc" "cher.example");
    check(p, "x.B\xc3\xbc" "cher.EXAMPLE", "x.b\xc3\xbc" "cher.example");
    check(p, "x.xn--zz-invalid-punycode.cn", "xn--zz-invalid-punycode.cn");
    psl_free(&p);
}

static void test_bounds(void **state)
{
    (void)state;
    struct psl *p = small_list();
    char out[300];
    /* 63-byte labels are fine, 64 are not; 253 characters are fine */
    char name[400];
    memset(name, 'a', 63);
    strcpy(name + 63, ".com");
    assert_int_equal(psl_org_domain(p, name, out, sizeof out), 67);
    memset(name, 'a', 64);
    strcpy(name + 64, ".com");
    assert_int_equal(psl_org_domain(p, name, out, sizeof out), PSL_INVALID);
    strcpy(name, "bb");
    for (int i = 0; i < 123; i++)
        strcat(name, ".a");
    strcat(name, ".com"); /* 252 characters */
    assert_int_equal(strlen(name), 252);
    assert_int_equal(psl_org_domain(p, name, out, sizeof out), 5);
    strcat(name, "x"); /* 253 */
    assert_int_equal(psl_org_domain(p, name, out, sizeof out), 6);
    strcat(name, "x"); /* 254 */
    assert_int_equal(psl_org_domain(p, name, out, sizeof out), PSL_INVALID);
    /* out too small */
    assert_int_equal(psl_org_domain(p, "www.example.com", out, 11), PSL_INVALID);
    assert_int_equal(psl_org_domain(p, "www.example.com", out, 12), 11);
    /* bytes that are no part of a name */
    assert_int_equal(psl_org_domain(p, "a\x01.com", out, sizeof out), PSL_INVALID);
    assert_int_equal(psl_org_domain(p, "a\x7f.com", out, sizeof out), PSL_INVALID);
    assert_int_equal(psl_org_domain(p, "\xc3.com", out, sizeof out), PSL_INVALID);
    assert_int_equal(psl_org_domain(p, "\xed\xa0\x80.com", out, sizeof out), PSL_INVALID);
    assert_int_equal(psl_org_domain(p, "\xc0\xaf.com", out, sizeof out), PSL_INVALID);
    assert_int_equal(psl_org_domain(p, "", out, sizeof out), PSL_INVALID);
    assert_int_equal(psl_org_domain(p, ".", out, sizeof out), PSL_INVALID);
    psl_free(&p);
}

static void test_to_ascii(void **state)
{
    (void)state;
    static const struct { const char *in, *out; } cases[] = {
        {"Example.COM.", "example.com"},
        {"b\xc3\xbc" "cher.example", "xn--bcher-kva.example"},
        {"M\xc3\xbc" "nchen.de", "xn--mnchen-3ya.de"},
        {"\xe9\xa3\x9f\xe7\x8b\xae.\xe4\xb8\xad\xe5\x9b\xbd", "xn--85x722f.xn--fiqs8s"},
        /* RFC 3492 §7.1 (A) Arabic (Egyptian) */
        {"\xd9\x84\xd9\x8a\xd9\x87\xd9\x85\xd8\xa7\xd8\xa8\xd8\xaa\xd9\x83\xd9\x84\xd9\x85\xd9\x88"
         "\xd8\xb4\xd8\xb9\xd8\xb1\xd8\xa8\xd9\x8a\xd8\x9f",
         "xn--egbpdaj6bu4bxfgehfvwxn"},
        {"\xf0\x9f\x92\xa9.la", "xn--ls8h.la"},
    };
    char out[300];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = psl_domain_to_ascii(cases[i].in, out, sizeof out);
        assert_int_equal(n, (int)strlen(cases[i].out));
        assert_string_equal(out, cases[i].out);
    }
    assert_int_equal(psl_domain_to_ascii("a..b", out, sizeof out), PSL_INVALID);
    assert_int_equal(psl_domain_to_ascii("example.com", out, 11), PSL_INVALID);
    assert_int_equal(psl_domain_to_ascii("example.com", out, 12), 11);
    /* a U-label whose A-label would pass 63 bytes */
    char lng[200] = "";
    for (int i = 0; i < 60; i++)
        strcat(lng, "\xc3\xbc");
    strcat(lng, ".de");
    assert_int_equal(psl_domain_to_ascii(lng, out, sizeof out), PSL_INVALID);
}

static void test_load_errors(void **state)
{
    (void)state;
    const char *err = NULL;
    assert_null(psl_load("/nonexistent/psl.dat", &err));
    assert_non_null(err);
    err = NULL;
    assert_null(psl_load("/", &err));
    assert_non_null(err);
    err = NULL;
    static const char empty[] = "// only comments\n\n!\n*.\n";
    assert_null(psl_parse(empty, sizeof empty - 1, &err));
    assert_non_null(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_project_cases),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_to_ascii),
        cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
