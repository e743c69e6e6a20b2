/* test-dsn.c — delivery status notifications: status codes taken from
 * replies, the multipart/report shape (RFC 3464, RFC 6522), the original
 * header only (never the body), CRLF lines under 1000 bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/dsn.h"

static void test_status(void **state)
{
    (void)state;
    char s[16];
    dsn_status("550 5.1.1 no such user", "5.0.0", s);
    assert_string_equal(s, "5.1.1");
    dsn_status("452 4.2.2 mailbox full", "5.0.0", s);
    assert_string_equal(s, "4.2.2");
    dsn_status("550 no enhanced code", "5.0.0", s);
    assert_string_equal(s, "5.0.0");
    dsn_status("421", "5.0.0", s);
    assert_string_equal(s, "4.0.0");
    dsn_status("550 4.1.1 class mismatch", "5.0.0", s);
    assert_string_equal(s, "5.0.0");
    dsn_status("550 5.1234.1 too long", "5.0.0", s);
    assert_string_equal(s, "5.0.0");
    dsn_status("connection refused", "4.0.0", s);
    assert_string_equal(s, "4.0.0");
    dsn_status(NULL, "5.0.0", s);
    assert_string_equal(s, "5.0.0");
}

static void test_build(void **state)
{
    (void)state;
    static const char headers[] = "From: a@hosted.example\r\nSubject: hello\n"
                                  "To: x@remote.example\r\n\r\nSECRET BODY\r\n";
    struct dsn_rcpt r[2] = {{"x@remote.example", "550 5.1.1 <x@remote.example>: unknown", NULL},
                            {"y@remote.example", "expired after 9 attempts", "4.4.7"}};
    struct dsn_params p = {"mx.hosted.example", "a@hosted.example", "0123456789abcdef", false,
                           1700000000, 1700003600, r, 2, headers, sizeof headers - 1};
    size_t len;
    char *t = dsn_build(&p, &len);
    assert_int_equal(strlen(t), len);
    assert_non_null(strstr(t, "To: <a@hosted.example>\r\n"));
    assert_non_null(strstr(t, "Auto-Submitted: auto-replied\r\n"));
    assert_non_null(strstr(t, "multipart/report; report-type=delivery-status"));
    assert_non_null(strstr(t, "Reporting-MTA: dns; mx.hosted.example\r\n"));
    assert_non_null(strstr(t, "Final-Recipient: rfc822; x@remote.example\r\nAction: failed\r\n"
                              "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1"));
    assert_non_null(strstr(t, "Final-Recipient: rfc822; y@remote.example\r\nAction: failed\r\n"
                              "Status: 4.4.7\r\nLast-Attempt-Date:"));
    assert_non_null(strstr(t, "text/rfc822-headers\r\n\r\nFrom: a@hosted.example\r\n"
                              "Subject: hello\r\nTo: x@remote.example\r\n\r\n--"));
    assert_null(strstr(t, "SECRET BODY"));
    /* every line ends in CRLF and is short */
    for (char *line = t; *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_true(nl > line ? nl[-1] == '\r' : 0);
        assert_true(nl - line < 1000);
        line = nl + 1;
    }
    free(t);
    p.delayed = true;
    t = dsn_build(&p, &len);
    assert_non_null(strstr(t, "Action: delayed\r\n"));
    assert_non_null(strstr(t, "Subject: Delayed Mail"));
    free(t);
}

static void test_header_cut(void **state)
{
    (void)state;
    size_t n = 1400 * 100, len; /* twice DSN_HEADERS_MAX, in lines of 100 */
    char *h = malloc(n + 1);
    for (size_t i = 0; i < n; i += 100) {
        memset(h + i, 'a', 98);
        memcpy(h, "X-Long: ", 8);
        h[i + 98] = '\r', h[i + 99] = '\n';
    }
    h[n] = '\0';
    struct dsn_rcpt r = {"x@remote.example", "550 5.0.0 no", NULL};
    struct dsn_params p = {"mx.hosted.example", "a@hosted.example", "0123456789abcdef", false,
                           1, 2, &r, 1, h, n};
    char *t = dsn_build(&p, &len);
    assert_true(len < DSN_HEADERS_MAX + 4096);
    free(t);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_build),
        cmocka_unit_test(test_header_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
