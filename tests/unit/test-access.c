/* test-access.c — the pieces of access/ that need no daemon: the SASL PLAIN
 * decoder and the failed-login guard (client.c and unlock.c are exercised
 * end to end by tests/e2e/test_imap_pop3.py). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "access/authguard.h"
#include "access/sasl.h"
#include "crypto/seal.h"

static void test_sasl_plain(void **state)
{
    (void)state;
    struct sasl_plain sp;
    const char *error;
    /* "\0alice@example.test\0pw" */
    assert_int_equal(sasl_plain_decode("AGFsaWNlQGV4YW1wbGUudGVzdABwdw==", &sp, &error), 0);
    assert_string_equal(sp.authcid, "alice@example.test");
    assert_int_equal(sp.passwd_len, 2);
    assert_memory_equal(sp.passwd, "pw", 2);
    sasl_plain_free(&sp);
    /* authzid equal to authcid is fine: "a\0a\0p" */
    assert_int_equal(sasl_plain_decode("YQBhAHA=", &sp, &error), 0);
    sasl_plain_free(&sp);
    /* acting for someone else: "b\0a\0p" */
    assert_int_equal(sasl_plain_decode("YgBhAHA=", &sp, &error), -1);
    assert_non_null(strstr(error, "another user"));
    /* not base64, bad padding, missing NULs, empty password */
    assert_int_equal(sasl_plain_decode("!!!!", &sp, &error), -1);
    assert_int_equal(sasl_plain_decode("YQBhAHA", &sp, &error), -1);
    assert_int_equal(sasl_plain_decode("YWJj", &sp, &error), -1);   /* "abc" */
    assert_int_equal(sasl_plain_decode("AGEA", &sp, &error), -1);   /* "\0a\0" */
    assert_int_equal(sasl_plain_decode("", &sp, &error), -1);
    /* longer than SASL_PLAIN_MAX once decoded */
    char big[2 * SASL_PLAIN_MAX];
    memset(big, 'Q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(sasl_plain_decode(big, &sp, &error), -1);
}

static struct sockaddr_in v4(const char *dotted_last)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(0xc0000200u | (unsigned)(dotted_last[0] - '0')); /* 192.0.2.x */
    return a;
}

static void test_authguard_slows_and_blocks(void **state)
{
    (void)state;
    struct authguard *g = authguard_new();
    struct sockaddr_in a = v4("1"), b = v4("2");
    struct sockaddr_in6 far = {.sin6_family = AF_INET6};
    far.sin6_addr.s6_addr[0] = 0x20;
    int64_t now = 1000000;
    for (int i = 0; i < AUTHGUARD_FREE_FAILURES; i++) {
        assert_int_equal(authguard_check(g, (struct sockaddr *)&a, "alice", now), 0);
        authguard_failed(g, (struct sockaddr *)&a, "alice", now);
    }
    int64_t d1 = authguard_check(g, (struct sockaddr *)&a, "alice", now);
    assert_int_equal(d1, AUTHGUARD_DELAY_BASE_MS);
    authguard_failed(g, (struct sockaddr *)&a, "alice", now);
    assert_int_equal(authguard_check(g, (struct sockaddr *)&a, "alice", now), 2 * d1);
    /* the same /24 shares the count; the account too, from anywhere */
    assert_int_equal(authguard_check(g, (struct sockaddr *)&b, "bob", now), 2 * d1);
    assert_int_equal(authguard_check(g, (struct sockaddr *)&far, "alice", now), 2 * d1);
    assert_int_equal(authguard_check(g, (struct sockaddr *)&far, "bob", now), 0);
    /* success clears the account, not the network */
    authguard_succeeded(g, (struct sockaddr *)&a, "alice");
    assert_int_equal(authguard_check(g, (struct sockaddr *)&far, "alice", now), 0);
    assert_int_equal(authguard_check(g, (struct sockaddr *)&a, "carol", now), 2 * d1);
    /* many failures: capped delay, then the network is blocked; accounts never are */
    for (int i = 0; i < AUTHGUARD_BLOCK_FAILURES; i++)
        authguard_failed(g, (struct sockaddr *)&a, "alice", now);
    assert_int_equal(authguard_check(g, (struct sockaddr *)&a, "carol", now), -1);
    assert_int_equal(authguard_check(g, (struct sockaddr *)&far, "alice", now),
                     AUTHGUARD_DELAY_MAX_MS);
    /* everything fades after the window */
    int64_t later = now + (AUTHGUARD_WINDOW_S + 1) * 1000ll;
    assert_int_equal(authguard_check(g, (struct sockaddr *)&a, "alice", later), 0);
    authguard_free(&g);
}

static void test_authguard_table_is_bounded(void **state)
{
    (void)state;
    struct authguard *g = authguard_new();
    struct sockaddr_in a = v4("1");
    char name[32];
    /* far more distinct accounts than entries: the table recycles */
    for (int i = 0; i < 3 * AUTHGUARD_ENTRIES; i++) {
        snprintf(name, sizeof name, "user%d", i);
        authguard_failed(g, (struct sockaddr *)&a, name, 1000 + i);
    }
    assert_int_equal(authguard_check(g, (struct sockaddr *)&a, "someone", 1000 + 3 * AUTHGUARD_ENTRIES),
                     -1); /* the network entry, most recently used, survived */
    authguard_free(&g);
}

int main(void)
{
    seal_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sasl_plain),
        cmocka_unit_test(test_authguard_slows_and_blocks),
        cmocka_unit_test(test_authguard_table_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
