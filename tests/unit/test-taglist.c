/* test-taglist.c — tag=value lists (RFC 6376 §3.2) and the per-message
 * DNS view the mail-authentication checks run over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "mailauth/dnsview.h"
#include "mailauth/taglist.h"

static int parse(const char *s, struct taglist *l)
{
    return taglist_parse(s, strlen(s), l);
}

static void test_tags_and_whitespace(void **state)
{
    (void)state;
    struct taglist l;
    assert_int_equal(parse(" v = 1 ;a=rsa-sha256;\r\n\tb= ab cd\r\n ef ;", &l), 0);
    assert_int_equal(l.n, 3);
    const struct tag *t = taglist_get(&l, "b");
    assert_non_null(t);
    assert_int_equal(t->len, strlen("ab cd\r\n ef"));
    char c[16];
    assert_int_equal(taglist_compact(t->value, t->len, c, sizeof c), 6);
    assert_string_equal(c, "abcdef");
    assert_int_equal(taglist_compact(t->value, t->len, c, 6), -1);
    t = taglist_get(&l, "v");
    assert_int_equal(t->len, 1);
    assert_null(taglist_get(&l, "V")); /* names are case-sensitive */
    assert_int_equal(parse("", &l), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(parse("k=", &l), 0); /* empty values are allowed */
    assert_int_equal(taglist_get(&l, "k")->len, 0);
}

static void test_invalid_lists(void **state)
{
    (void)state;
    struct taglist l;
    assert_int_equal(parse("a=1;a=2", &l), -1);   /* duplicate */
    assert_int_equal(parse("a=1;;b=2", &l), -1);  /* empty spec */
    assert_int_equal(parse("1a=1", &l), -1);      /* bad name */
    assert_int_equal(parse("a b=1", &l), -1);
    assert_int_equal(parse("novalue", &l), -1);
    assert_int_equal(parse("a=\x01", &l), -1);    /* control character */
    char many[TAGLIST_MAX * 8 + 16] = "";
    for (int i = 0; i <= TAGLIST_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "t%d=1;", i);
    assert_int_equal(parse(many, &l), -1);
}

static void test_dnsview_pending_and_answers(void **state)
{
    (void)state;
    struct dnsview *v = dnsview_new();
    assert_null(dnsview_get(v, "Example.TEST.", DNS_T_TXT));
    assert_null(dnsview_get(v, "example.test", DNS_T_TXT)); /* same question */
    assert_null(dnsview_get(v, "example.test", DNS_T_MX));
    assert_int_equal(dnsview_pending(v), 2);
    const char *name;
    uint16_t type;
    dnsview_pending_at(v, 1, &name, &type);
    assert_string_equal(name, "example.test");
    assert_int_equal(type, DNS_T_MX);
    struct dns_answer *a = dns_answer_new(DNS_OK);
    struct dns_rr rr = {.type = DNS_T_TXT, .data = (uint8_t *)"v=spf1 -all", .len = 11};
    dns_answer_add(a, &rr);
    dnsview_put(v, "EXAMPLE.test", DNS_T_TXT, a);
    assert_int_equal(dnsview_pending(v), 1);
    const struct dns_answer *got = dnsview_get(v, "example.test.", DNS_T_TXT);
    assert_non_null(got);
    assert_string_equal((const char *)got->rr[0].data, "v=spf1 -all");
    assert_int_equal(dnsview_get(v, "", DNS_T_A)->status, DNS_PERMFAIL);
    char lng[DNS_NAME_MAX + 3];
    memset(lng, 'a', sizeof lng - 1);
    lng[sizeof lng - 1] = '\0';
    assert_int_equal(dnsview_get(v, lng, DNS_T_A)->status, DNS_PERMFAIL);
    for (int i = 0; i < DNSVIEW_MAX + 5; i++) {
        char n[32];
        snprintf(n, sizeof n, "h%d.test", i);
        dnsview_get(v, n, DNS_T_A);
    }
    assert_int_equal(dnsview_get(v, "late.test", DNS_T_A)->status, DNS_TEMPFAIL);
    assert_int_equal(dnsview_count(v), 1);
    dnsview_free(&v);
    assert_null(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tags_and_whitespace),
        cmocka_unit_test(test_invalid_lists),
        cmocka_unit_test(test_dnsview_pending_and_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
