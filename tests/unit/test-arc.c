/* test-arc.c — ARC chain validation (RFC 8617) against the ValiMail suite.
 *
 * tests/unit/data/arc/arc-draft-validation-tests.yml (ValiMail's
 * arc_test_suite, the suite dkimpy, OpenARC and mailauth run) is flattened
 * at run time by tests/unit/data/dkim/helper.py (python3-yaml) into cases:
 * a message, its key records and the expected cv.  Every case is checked
 * with the message fed whole and in 1-byte chunks.  Cases where we
 * deliberately disagree with the suite are listed in `disagree` with the
 * RFC text that justifies us; any other difference fails the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/mem.h"
#include "mailauth/arc.h"
#include "mailauth/dnsview.h"

#ifndef ARC_TEST_DATA
#error "ARC_TEST_DATA must name tests/unit/data/arc (see src/mailauth/meson.build)"
#endif
#ifndef DKIM_TEST_DATA
#error "DKIM_TEST_DATA must name tests/unit/data/dkim (see src/mailauth/meson.build)"
#endif
#define PY "/usr/bin/python3 " DKIM_TEST_DATA "/helper.py"
#define NOW 1700000000

/* Cases where the suite's expectation is not ours, and why. */
static const struct {
    const char *name;
    const char *why;
} disagree[] = {
    /* The AMS has no c= tag; the suite (made with dkimpy, which fills in
     * relaxed/relaxed for a missing c= in ARC) expects its relaxed header
     * hash to verify.  RFC 8617 section 4.1.2: the AMS "has the same
     * syntax and semantics as the DKIM-Signature field", with three listed
     * differences, none about c=; RFC 6376 section 3.5, c=: "Default is
     * "simple/simple"".  So the simple header hash is checked, and fails. */
    {"ams_fields_c_na", "no c= means simple/simple (RFC 8617 4.1.2 -> RFC 6376 3.5)"},
    /* h=from:to::date, an empty field name.  RFC 6376 section 3.5:
     * sig-h-tag = %x68 [FWS] "=" [FWS] hdr-name *( [FWS] ":" [FWS]
     * hdr-name ), hdr-name = field-name = 1*ftext (RFC 5322): an empty
     * name is a syntax error, and a malformed AMS breaks the chain (RFC
     * 8617 section 5.2 step 3 asks for well-formed sets; section 4.1.2
     * makes the AMS syntax DKIM's). */
    {"ams_fields_h_mis_hdr", "an empty name in h= is a syntax error (RFC 6376 3.5 ABNF)"},
    {NULL, NULL},
};

static const char *disagreement(const char *name)
{
    for (size_t i = 0; disagree[i].name != NULL; i++)
        if (strcmp(disagree[i].name, name) == 0)
            return disagree[i].why;
    return NULL;
}

static char *run(const char *cmd, size_t *len)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    struct sm_buf b;
    sm_buf_init(&b, 0);
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, p)) > 0)
        sm_buf_append(&b, tmp, n);
    if (pclose(p) != 0) {
        sm_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.data;
}

static bool have_yaml(void)
{
    return system("/usr/bin/python3 -c 'import yaml' >/dev/null 2>&1") == 0;
}

/* Feed a CRLF message: fields one by one, then the body in chunks. */
static void feed(struct arc_verifier *v, const char *m, size_t n, size_t chunk)
{
    size_t i = 0;
    while (i < n) {
        if (m[i] == '\r' && i + 1 < n && m[i + 1] == '\n') {
            i += 2;
            break;
        }
        size_t e = i;
        for (;;) {
            const char *nl = memchr(m + e, '\n', n - e);
            e = nl ? (size_t)(nl - m) + 1 : n;
            if (e >= n || (m[e] != ' ' && m[e] != '\t'))
                break;
        }
        arc_verifier_header(v, m + i, e - i);
        i = e;
    }
    arc_verifier_headers_done(v);
    for (size_t k = i; k < n; k += chunk)
        arc_verifier_body(v, m + k, chunk < n - k ? chunk : n - k);
    arc_verifier_body_done(v);
}

struct dns_entry {
    char *name, *txt;
};

static void answer(struct dnsview *view, const struct dns_entry *dns, size_t nd)
{
    while (dnsview_pending(view) > 0) {
        const char *q;
        uint16_t type;
        dnsview_pending_at(view, 0, &q, &type);
        char *name = sm_strdup(q);
        struct dns_answer *a = NULL;
        for (size_t i = 0; i < nd; i++) {
            if (strcasecmp(dns[i].name, name) != 0 || type != DNS_T_TXT)
                continue;
            if (a == NULL)
                a = dns_answer_new(DNS_OK);
            struct dns_rr rr = {.type = DNS_T_TXT, .data = (uint8_t *)dns[i].txt,
                                .len = strlen(dns[i].txt)};
            dns_answer_add(a, &rr);
        }
        dnsview_put(view, name, type, a ? a : dns_answer_new(DNS_NXDOMAIN));
        free(name);
    }
}

static enum arc_cv validate(const char *m, size_t n, const struct dns_entry *dns, size_t nd,
                            size_t chunk, char *reason, size_t rlen, unsigned *oldest)
{
    struct arc_verifier *v = arc_verifier_new(NULL);
    feed(v, m, n, chunk);
    struct dnsview *view = dnsview_new();
    int rounds = 0;
    while (arc_verifier_result(v, view, NOW) == MAILAUTH_NEED_DNS) {
        assert_true(++rounds < 3);
        answer(view, dns, nd);
    }
    const struct arc_result *r = arc_verifier_get(v);
    enum arc_cv cv = r->cv;
    snprintf(reason, rlen, "%s", r->reason);
    if (oldest != NULL)
        *oldest = r->oldest_pass;
    dnsview_free(&view);
    arc_verifier_free(&v);
    return cv;
}

static void test_validation_suite(void **state)
{
    (void)state;
    if (!have_yaml())
        skip();
    size_t len;
    char *all = run(PY " arc-cases " ARC_TEST_DATA "/arc-draft-validation-tests.yml", &len);
    assert_non_null(all);
    char *p = all, *end = all + len;
    unsigned total = 0, agree = 0, known = 0;
    struct sm_buf report;
    sm_buf_init(&report, 0);
    while (p < end) {
        char name[128], want[16];
        assert_int_equal(sscanf(p, "CASE %127s %15s\n", name, want), 2);
        p = strchr(p, '\n') + 1;
        struct dns_entry dns[16];
        size_t nd = 0;
        while (strncmp(p, "DNS ", 4) == 0) {
            char *nl = strchr(p, '\n'), *tab = memchr(p, '\t', (size_t)(nl - p));
            assert_true(nd < 16 && tab != NULL);
            dns[nd].name = sm_strndup(p + 4, (size_t)(tab - p - 4));
            dns[nd].txt = sm_strndup(tab + 1, (size_t)(nl - tab - 1));
            nd++;
            p = nl + 1;
        }
        size_t mlen;
        assert_int_equal(sscanf(p, "MSG %zu\n", &mlen), 1);
        p = strchr(p, '\n') + 1;
        char *m = p;
        p += mlen + 1;
        char why[DKIM_REASON_MAX], why1[DKIM_REASON_MAX];
        unsigned oldest = 99;
        enum arc_cv got = validate(m, mlen, dns, nd, mlen + 1, why, sizeof why, &oldest);
        /* oldest-pass (RFC 8617 5.2 step 5): the AMS of set 1 no longer
         * verifies in this one, so the oldest passing set is 2 */
        if (strcmp(name, "cv_pass_i2_1_ams1_invalid") == 0)
            assert_int_equal(oldest, 2);
        if (strcmp(name, "cv_pass_i5_1") == 0)
            assert_int_equal(oldest, 0);
        enum arc_cv got1 = validate(m, mlen, dns, nd, 1, why1, sizeof why1, NULL);
        assert_int_equal(got, got1); /* streaming changes nothing */
        total++;
        const char *dis = disagreement(name);
        if (strcmp(arc_cv_name(got), want) == 0 && dis == NULL) {
            agree++;
        } else if (dis != NULL && strcmp(arc_cv_name(got), want) != 0) {
            known++;
            sm_buf_printf(&report, "  %s: suite %s, we say %s (%s) -- %s\n", name, want,
                          arc_cv_name(got), why, dis);
        } else {
            sm_buf_printf(&report, "  UNEXPECTED %s: suite %s, we say %s (%s)\n", name, want,
                          arc_cv_name(got), why);
        }
        for (size_t i = 0; i < nd; i++) {
            free(dns[i].name);
            free(dns[i].txt);
        }
    }
    printf("ARC validation suite: %u cases, %u as the suite says, %u known disagreements\n%s",
           total, agree, known, report.data ? report.data : "");
    assert_int_equal(total, 171);
    assert_int_equal(agree + known, total);
    sm_buf_free(&report);
    free(all);
}

/* The first case of the suite named name: message and key records. */
struct one_case {
    char *all;
    char *m;
    size_t mlen;
    struct dns_entry dns[16];
    size_t nd;
};

static void load_case(const char *name, struct one_case *c)
{
    size_t len;
    c->all = run(PY " arc-cases " ARC_TEST_DATA "/arc-draft-validation-tests.yml", &len);
    assert_non_null(c->all);
    char key[160];
    snprintf(key, sizeof key, "CASE %s ", name);
    char *p = strstr(c->all, key);
    assert_non_null(p);
    p = strchr(p, '\n') + 1;
    c->nd = 0;
    while (strncmp(p, "DNS ", 4) == 0) {
        char *nl = strchr(p, '\n'), *tab = memchr(p, '\t', (size_t)(nl - p));
        c->dns[c->nd].name = sm_strndup(p + 4, (size_t)(tab - p - 4));
        c->dns[c->nd].txt = sm_strndup(tab + 1, (size_t)(nl - tab - 1));
        c->nd++;
        p = nl + 1;
    }
    assert_int_equal(sscanf(p, "MSG %zu\n", &c->mlen), 1);
    c->m = strchr(p, '\n') + 1;
}

static void free_case(struct one_case *c)
{
    for (size_t i = 0; i < c->nd; i++) {
        free(c->dns[i].name);
        free(c->dns[i].txt);
    }
    free(c->all);
}

static void test_result_details(void **state)
{
    (void)state;
    if (!have_yaml())
        skip();
    struct one_case c;
    load_case("cv_pass_i3_1", &c);
    struct arc_verifier *v = arc_verifier_new(NULL);
    feed(v, c.m, c.mlen, 5);
    struct dnsview *view = dnsview_new();
    /* every key question at once: AMS and seals share the selector here */
    assert_int_equal(arc_verifier_result(v, view, NOW), MAILAUTH_NEED_DNS);
    assert_int_equal(dnsview_pending(view), 1);
    const char *q;
    uint16_t t;
    dnsview_pending_at(view, 0, &q, &t);
    assert_string_equal(q, "dummy._domainkey.example.org");
    /* a temporary failure: fail, flagged */
    dnsview_put(view, q, t, dns_answer_new(DNS_TEMPFAIL));
    assert_int_equal(arc_verifier_result(v, view, NOW), MAILAUTH_DONE);
    assert_int_equal(arc_verifier_get(v)->cv, ARC_FAIL);
    assert_true(arc_verifier_get(v)->temperror);
    /* the retry, with the key */
    struct dns_answer *a = dns_answer_new(DNS_OK);
    struct dns_rr rr = {.type = DNS_T_TXT, .data = (uint8_t *)c.dns[0].txt,
                        .len = strlen(c.dns[0].txt)};
    dns_answer_add(a, &rr);
    dnsview_put(view, "dummy._domainkey.example.org", DNS_T_TXT, a);
    assert_int_equal(arc_verifier_result(v, view, NOW), MAILAUTH_DONE);
    const struct arc_result *r = arc_verifier_get(v);
    assert_int_equal(r->cv, ARC_PASS);
    assert_false(r->temperror);
    assert_int_equal(r->sets, 3);
    assert_int_equal(r->oldest_pass, 0);
    for (unsigned i = 0; i < 3; i++) {
        assert_string_equal(r->set[i].seal_d, "example.org");
        assert_string_equal(r->set[i].seal_s, "dummy");
        assert_int_equal(r->set[i].seal, DKIM_PASS);
        assert_int_equal(r->set[i].ams, DKIM_PASS);
    }
    assert_string_equal(arc_cv_name(r->cv), "pass");
    dnsview_free(&view);
    arc_verifier_free(&v);

    /* a tampered body: the newest AMS fails, so the chain does */
    char *body = strstr(c.m, "Hey gang");
    body[0] = 'h';
    char why[DKIM_REASON_MAX];
    assert_int_equal(validate(c.m, c.mlen, c.dns, c.nd, 1, why, sizeof why, NULL), ARC_FAIL);
    assert_non_null(strstr(why, "body hash"));
    free_case(&c);

    /* no ARC field at all */
    v = arc_verifier_new(NULL);
    arc_verifier_header(v, "From: a@example.com\r\n", 21);
    arc_verifier_body_done(v);
    view = dnsview_new();
    assert_int_equal(arc_verifier_result(v, view, NOW), MAILAUTH_DONE);
    assert_int_equal(arc_verifier_get(v)->cv, ARC_NONE);
    assert_int_equal(arc_verifier_get(v)->sets, 0);
    assert_int_equal(dnsview_pending(view), 0);
    dnsview_free(&view);
    arc_verifier_free(&v);
    arc_verifier_free(&v);
}

static void test_limits(void **state)
{
    (void)state;
    /* 51 sets: fail before anything is parsed further */
    struct arc_verifier *v = arc_verifier_new(NULL);
    for (int i = 1; i <= 51; i++) {
        char f[128];
        int n = snprintf(f, sizeof f, "ARC-Authentication-Results: i=%d; example.org; none\r\n", i);
        arc_verifier_header(v, f, (size_t)n);
    }
    struct dnsview *view = dnsview_new();
    assert_int_equal(arc_verifier_result(v, view, NOW), MAILAUTH_DONE);
    assert_int_equal(arc_verifier_get(v)->cv, ARC_FAIL);
    assert_non_null(strstr(arc_verifier_get(v)->reason, "more than 50"));
    arc_verifier_free(&v);
    /* an instance over 50, a gap */
    static const char *const bad[] = {
        "ARC-Authentication-Results: i=51; example.org; none\r\n",
        "ARC-Authentication-Results: i=2; example.org; none\r\n",
        "ARC-Authentication-Results: example.org; i=1; none\r\n",
    };
    for (size_t i = 0; i < 3; i++) {
        v = arc_verifier_new(NULL);
        arc_verifier_header(v, bad[i], strlen(bad[i]));
        assert_int_equal(arc_verifier_result(v, view, NOW), MAILAUTH_DONE);
        assert_int_equal(arc_verifier_get(v)->cv, ARC_FAIL);
        arc_verifier_free(&v);
    }
    /* header over the limits */
    struct dkim_limits lim = {.max_header_fields = 2};
    v = arc_verifier_new(&lim);
    for (int i = 0; i < 3; i++)
        arc_verifier_header(v, bad[1], strlen(bad[1]));
    assert_int_equal(arc_verifier_result(v, view, NOW), MAILAUTH_DONE);
    assert_int_equal(arc_verifier_get(v)->cv, ARC_FAIL);
    arc_verifier_free(&v);
    assert_int_equal(dnsview_pending(view), 0);
    dnsview_free(&view);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation_suite),
        cmocka_unit_test(test_result_details),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
