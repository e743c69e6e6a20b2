/* test-dmarc.c — DMARC (RFC 7489) over a hand-filled DNS view.
 *
 * Each check case names a small zone; run() plays the driver: it calls
 * dmarc_check(), answers every pending question from the zone (NXDOMAIN
 * when the zone has no entry) and calls again, as smtpd does with real
 * DNS.  The Public Suffix List is Debian's (SEALMAIL_PSL overrides). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/dmarc.h"

static struct psl *psl;

struct zone_entry {
    const char *name;          /* NULL ends a zone */
    enum dns_status status;
    const char *txt[4];
};

struct check_case {
    const char *label;
    const struct zone_entry *zone;
    const char *from[3];
    const char *spf_domain;
    bool spf_pass;
    const char *dkim[3];
    unsigned draw;
    enum dmarc_result result;
    enum dmarc_policy policy;
    enum dmarc_policy disposition;
    const char *from_domain;
    const char *policy_domain;
    bool subdomain;
    bool sampled_out;
    int rounds;                /* calls that returned NEED_DNS */
};

static const struct zone_entry *find(const struct zone_entry *z, const char *name)
{
    for (; z != NULL && z->name != NULL; z++)
        if (strcmp(z->name, name) == 0)
            return z;
    return NULL;
}

static struct dns_answer *answer(const struct zone_entry *e)
{
    if (e == NULL)
        return dns_answer_new(DNS_NXDOMAIN);
    struct dns_answer *a = dns_answer_new(e->status);
    for (size_t i = 0; i < 4 && e->txt[i] != NULL; i++) {
        struct dns_rr rr = {.type = DNS_T_TXT, .data = (uint8_t *)(uintptr_t)e->txt[i],
                            .len = strlen(e->txt[i])};
        dns_answer_add(a, &rr);
    }
    return a;
}

/* Run to the end; returns the number of NEED_DNS rounds. */
static int run(const struct zone_entry *zone, const struct dmarc_input *in,
               struct dmarc_outcome *out)
{
    struct dnsview *v = dnsview_new();
    int rounds = 0;
    while (dmarc_check(v, psl, in, out) == MAILAUTH_NEED_DNS) {
        assert_true(++rounds < 10);
        size_t n = dnsview_pending(v);
        assert_true(n > 0);
        while (dnsview_pending(v) > 0) {
            const char *name;
            uint16_t type;
            dnsview_pending_at(v, 0, &name, &type);
            assert_int_equal(type, DNS_T_TXT);
            char copy[300];
            snprintf(copy, sizeof copy, "%s", name);
            dnsview_put(v, copy, type, answer(find(zone, copy)));
        }
    }
    dnsview_free(&v);
    return rounds;
}

static const struct zone_entry z_reject[] = {
    {"_dmarc.example.com", DNS_OK, {"v=DMARC1; p=reject; rua=mailto:d@example.com"}},
    {0},
};
static const struct zone_entry z_strict[] = {
    {"_dmarc.example.com", DNS_OK, {"v=DMARC1; p=reject; aspf=s; adkim=s"}},
    {0},
};
static const struct zone_entry z_sp[] = {
    {"_dmarc.example.com", DNS_OK, {"v=spf1 -all", "v=DMARC1; p=reject; sp=quarantine"}},
    {0},
};
static const struct zone_entry z_pct[] = {
    {"_dmarc.example.com", DNS_OK, {"v=DMARC1; p=reject; pct=50"}},
    {0},
};
static const struct zone_entry z_pct_q[] = {
    {"_dmarc.example.com", DNS_OK, {"v=DMARC1; p=quarantine; pct=0"}},
    {0},
};
static const struct zone_entry z_own[] = {
    {"_dmarc.mail.example.com", DNS_OK, {"v=DMARC1; p=none"}},
    {"_dmarc.example.com", DNS_OK, {"v=DMARC1; p=reject"}},
    {0},
};
static const struct zone_entry z_multi[] = {
    {"_dmarc.mail.example.com", DNS_OK, {"v=DMARC1; p=none", "v=DMARC1; p=reject"}},
    {"_dmarc.example.com", DNS_OK, {"v=DMARC1; p=reject"}},
    {0},
};
static const struct zone_entry z_other_txt[] = {
    {"_dmarc.mail.example.com", DNS_OK, {"v=DMARC10; p=none", "hello", "v=DMARC1p=none"}},
    {"_dmarc.example.com", DNS_OK, {"v=DMARC1; p=quarantine"}},
    {0},
};
static const struct zone_entry z_temp[] = {
    {"_dmarc.example.com", DNS_TEMPFAIL, {0}},
    {0},
};
static const struct zone_entry z_temp_org[] = {
    {"_dmarc.mail.example.com", DNS_OK, {0}},
    {"_dmarc.example.com", DNS_TEMPFAIL, {0}},
    {0},
};
static const struct zone_entry z_permfail[] = {
    {"_dmarc.mail.example.com", DNS_PERMFAIL, {0}},
    {"_dmarc.example.com", DNS_OK, {"v=DMARC1; p=reject"}},
    {0},
};
static const struct zone_entry z_bad_p[] = {
    {"_dmarc.example.com", DNS_OK, {"v=DMARC1; p=block"}},
    {0},
};
static const struct zone_entry z_bad_p_rua[] = {
    {"_dmarc.example.com", DNS_OK, {"v=DMARC1; p=block; rua=mailto:agg@example.com"}},
    {0},
};
static const struct zone_entry z_bad_sp_rua[] = {
    {"_dmarc.example.com", DNS_OK, {"v=DMARC1; p=reject; sp=x; rua=mailto:agg@example.com"}},
    {0},
};
static const struct zone_entry z_dup[] = {
    {"_dmarc.example.com", DNS_OK, {"v=DMARC1; p=reject; p=none"}},
    {0},
};
static const struct zone_entry z_two[] = {
    {"_dmarc.example.com", DNS_OK, {"v=DMARC1; p=none"}},
    {"_dmarc.example.org", DNS_OK, {"v=DMARC1; p=reject"}},
    {"_dmarc.example.net", DNS_OK, {"v=DMARC1; p=quarantine"}},
    {0},
};
static const struct zone_entry z_idn[] = {
    {"_dmarc.xn--bcher-kva.example", DNS_OK, {"v=DMARC1; p=reject"}},
    {0},
};
static const struct zone_entry z_psuffix[] = {
    {"_dmarc.co.uk", DNS_OK, {"v=DMARC1; p=reject"}},
    {0},
};

static const struct check_case check_cases[] = {
    {"pass via SPF, relaxed (bounce subdomain)", z_reject, {"Alice <alice@example.com>"},
     "bounces.example.com", true, {0}, 0, DMARC_RESULT_PASS, DMARC_POLICY_REJECT,
     DMARC_POLICY_NONE, "example.com", "example.com", false, false, 1},
    {"SPF aligned but not pass", z_reject, {"alice@example.com"}, "example.com", false, {0}, 0,
     DMARC_RESULT_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT, "example.com", "example.com",
     false, false, 1},
    {"pass via DKIM (second signature)", z_reject, {"alice@example.com"}, "evil.test", true,
     {"other.test", "EXAMPLE.COM."}, 0, DMARC_RESULT_PASS, DMARC_POLICY_REJECT,
     DMARC_POLICY_NONE, "example.com", "example.com", false, false, 1},
    {"DKIM relaxed from a subdomain", z_reject, {"alice@example.com"}, NULL, false,
     {"mail.example.com"}, 0, DMARC_RESULT_PASS, DMARC_POLICY_REJECT, DMARC_POLICY_NONE,
     "example.com", "example.com", false, false, 1},
    {"unaligned everything fails", z_reject, {"alice@example.com"}, "example.net", true,
     {"example.net"}, 0, DMARC_RESULT_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT,
     "example.com", "example.com", false, false, 1},
    {"aspf=s: subdomain SPF does not align", z_strict, {"alice@example.com"},
     "bounces.example.com", true, {0}, 0, DMARC_RESULT_FAIL, DMARC_POLICY_REJECT,
     DMARC_POLICY_REJECT, "example.com", "example.com", false, false, 1},
    {"aspf=s: exact SPF domain aligns", z_strict, {"alice@example.com"}, "Example.com", true,
     {0}, 0, DMARC_RESULT_PASS, DMARC_POLICY_REJECT, DMARC_POLICY_NONE, "example.com",
     "example.com", false, false, 1},
    {"adkim=s: subdomain d= does not align", z_strict, {"alice@example.com"}, NULL, false,
     {"mail.example.com"}, 0, DMARC_RESULT_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT,
     "example.com", "example.com", false, false, 1},
    {"sp= for a subdomain, via the org domain", z_sp, {"x@mail.example.com"}, NULL, false,
     {0}, 0, DMARC_RESULT_FAIL, DMARC_POLICY_QUARANTINE, DMARC_POLICY_QUARANTINE,
     "mail.example.com", "example.com", true, false, 2},
    {"p= for the org domain itself", z_sp, {"x@example.com"}, NULL, false, {0}, 0,
     DMARC_RESULT_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT, "example.com", "example.com",
     false, false, 1},
    {"subdomain relaxed-aligned with org d=", z_sp, {"x@a.b.example.com"}, NULL, false,
     {"example.com"}, 0, DMARC_RESULT_PASS, DMARC_POLICY_QUARANTINE, DMARC_POLICY_NONE,
     "a.b.example.com", "example.com", true, false, 2},
    {"pct=50, draw 49: applied", z_pct, {"x@example.com"}, NULL, false, {0}, 49,
     DMARC_RESULT_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT, "example.com", "example.com",
     false, false, 1},
    {"pct=50, draw 50: one step weaker", z_pct, {"x@example.com"}, NULL, false, {0}, 50,
     DMARC_RESULT_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_QUARANTINE, "example.com",
     "example.com", false, true, 1},
    {"pct=0 quarantine: none", z_pct_q, {"x@example.com"}, NULL, false, {0}, 0,
     DMARC_RESULT_FAIL, DMARC_POLICY_QUARANTINE, DMARC_POLICY_NONE, "example.com",
     "example.com", false, true, 1},
    {"own record wins over the org domain", z_own, {"x@mail.example.com"}, NULL, false, {0}, 0,
     DMARC_RESULT_FAIL, DMARC_POLICY_NONE, DMARC_POLICY_NONE, "mail.example.com",
     "mail.example.com", false, false, 1},
    {"fallback to the org domain", z_reject, {"x@deep.mail.example.com"}, NULL, false, {0}, 0,
     DMARC_RESULT_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT, "deep.mail.example.com",
     "example.com", true, false, 2},
    {"no record anywhere", NULL, {"x@mail.example.com"}, "mail.example.com", true, {0}, 0,
     DMARC_RESULT_NONE, DMARC_POLICY_NONE, DMARC_POLICY_NONE, "mail.example.com", "", false,
     false, 2},
    {"several records: none, no fallback", z_multi, {"x@mail.example.com"}, NULL, false, {0},
     0, DMARC_RESULT_NONE, DMARC_POLICY_NONE, DMARC_POLICY_NONE, "mail.example.com", "", false,
     false, 1},
    {"non-DMARC TXT ignored, then org", z_other_txt, {"x@mail.example.com"}, NULL, false, {0},
     0, DMARC_RESULT_FAIL, DMARC_POLICY_QUARANTINE, DMARC_POLICY_QUARANTINE,
     "mail.example.com", "example.com", true, false, 2},
    {"temperror at the From domain", z_temp, {"x@example.com"}, NULL, false, {0}, 0,
     DMARC_RESULT_TEMPERROR, DMARC_POLICY_NONE, DMARC_POLICY_NONE, "example.com", "", false,
     false, 1},
    {"temperror at the org domain", z_temp_org, {"x@mail.example.com"}, NULL, false, {0}, 0,
     DMARC_RESULT_TEMPERROR, DMARC_POLICY_NONE, DMARC_POLICY_NONE, "mail.example.com", "",
     false, false, 2},
    {"PERMFAIL counts as no record", z_permfail, {"x@mail.example.com"}, NULL, false, {0}, 0,
     DMARC_RESULT_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT, "mail.example.com",
     "example.com", true, false, 2},
    {"invalid p=, no rua: permerror", z_bad_p, {"x@example.com"}, NULL, false, {0}, 0,
     DMARC_RESULT_PERMERROR, DMARC_POLICY_NONE, DMARC_POLICY_NONE, "example.com",
     "example.com", false, false, 1},
    {"invalid p= with rua: p=none", z_bad_p_rua, {"x@example.com"}, NULL, false, {0}, 0,
     DMARC_RESULT_FAIL, DMARC_POLICY_NONE, DMARC_POLICY_NONE, "example.com", "example.com",
     false, false, 1},
    {"invalid sp= with rua: p=none", z_bad_sp_rua, {"x@example.com"}, NULL, false, {0}, 0,
     DMARC_RESULT_FAIL, DMARC_POLICY_NONE, DMARC_POLICY_NONE, "example.com", "example.com",
     false, false, 1},
    {"duplicate tag: permerror", z_dup, {"x@example.com"}, NULL, false, {0}, 0,
     DMARC_RESULT_PERMERROR, DMARC_POLICY_NONE, DMARC_POLICY_NONE, "example.com",
     "example.com", false, false, 1},
    {"two From domains: the strictest failure", z_two,
     {"a@example.com, b@example.org, c@example.net"}, NULL, false, {"example.com"}, 0,
     DMARC_RESULT_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT, "example.org",
     "example.org", false, false, 1},
    {"two From fields, both pass", z_two, {"a@example.com", "b@example.com"}, "example.com",
     true, {0}, 0, DMARC_RESULT_PASS, DMARC_POLICY_NONE, DMARC_POLICY_NONE, "example.com",
     "example.com", false, false, 1},
    {"no From field", z_reject, {0}, "example.com", true, {0}, 0, DMARC_RESULT_NONE,
     DMARC_POLICY_NONE, DMARC_POLICY_NONE, "", "", false, false, 0},
    {"U-label From domain asks with A-labels", z_idn, {"x@B\xc3\xbc" "cher.example"},
     "xn--bcher-kva.example", true, {0}, 0, DMARC_RESULT_PASS, DMARC_POLICY_REJECT,
     DMARC_POLICY_NONE, "xn--bcher-kva.example", "xn--bcher-kva.example", false, false, 1},
    {"From a public suffix: no org lookup, d= of a sibling unaligned", z_psuffix,
     {"x@co.uk"}, NULL, false, {"other.co.uk"}, 0, DMARC_RESULT_FAIL, DMARC_POLICY_REJECT,
     DMARC_POLICY_REJECT, "co.uk", "co.uk", false, false, 1},
};

static void test_checks(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof check_cases / sizeof check_cases[0]; i++) {
        const struct check_case *c = &check_cases[i];
        struct dmarc_input in = {.from = c->from, .spf_domain = c->spf_domain,
                                 .spf_pass = c->spf_pass, .dkim_domains = c->dkim,
                                 .pct_draw = c->draw};
        while (in.n_from < 3 && c->from[in.n_from] != NULL)
            in.n_from++;
        while (in.n_dkim < 3 && c->dkim[in.n_dkim] != NULL)
            in.n_dkim++;
        struct dmarc_outcome o;
        int rounds = run(c->zone, &in, &o);
        if (o.result != c->result || o.policy != c->policy || o.disposition != c->disposition ||
            strcmp(o.from_domain, c->from_domain) != 0 ||
            strcmp(o.policy_domain, c->policy_domain) != 0 || o.subdomain != c->subdomain ||
            o.sampled_out != c->sampled_out || rounds != c->rounds)
            fail_msg("%s: result %s policy %s disposition %s from %s at %s sub %d sampled %d "
                     "rounds %d",
                     c->label, dmarc_result_name(o.result), dmarc_policy_name(o.policy),
                     dmarc_policy_name(o.disposition), o.from_domain, o.policy_domain,
                     o.subdomain, o.sampled_out, rounds);
    }
}

static void test_outcome_details(void **state)
{
    (void)state;
    const char *from[] = {"<alice@example.com>"};
    const char *dkim[] = {"example.net", "Mail.Example.COM"};
    struct dmarc_input in = {.from = from, .n_from = 1, .spf_domain = "example.com",
                             .spf_pass = true, .dkim_domains = dkim, .n_dkim = 2};
    struct dmarc_outcome o;
    run(z_reject, &in, &o);
    assert_int_equal(o.result, DMARC_RESULT_PASS);
    assert_true(o.spf_aligned);
    assert_true(o.dkim_aligned);
    assert_string_equal(o.dkim_domain, "mail.example.com");
    assert_true(o.have_record);
    assert_string_equal(o.record.rua, "mailto:d@example.com");
    assert_int_equal(o.from_status, DMARC_FROM_OK);

    /* as Authentication-Results: pass, then a failing subdomain under sp= */
    struct authres_result ar;
    char buf[64];
    struct sm_buf b;
    sm_buf_init(&b, 0);
    dmarc_authres(&o, &ar, buf, sizeof buf);
    assert_int_equal(authres_build(&b, 0, "mx.example.org", &ar, 1), 0);
    assert_string_equal(sm_buf_str(&b), "Authentication-Results: mx.example.org;\r\n"
                                        "\tdmarc=pass (p=reject sp=reject dis=none)"
                                        " header.from=example.com\r\n");
    const char *from_sub[] = {"x@mail.example.com"};
    struct dmarc_input fail_in = {.from = from_sub, .n_from = 1, .pct_draw = 99};
    run(z_sp, &fail_in, &o);
    dmarc_authres(&o, &ar, buf, sizeof buf);
    sm_buf_reset(&b);
    assert_int_equal(authres_build(&b, 0, "mx.example.org", &ar, 1), 0);
    assert_string_equal(sm_buf_str(&b), "Authentication-Results: mx.example.org;\r\n"
                                        "\tdmarc=fail (p=reject sp=quarantine dis=quarantine)"
                                        "\r\n header.from=mail.example.com"
                                        " policy.dmarc=quarantine\r\n");
    const char *none_from[] = {"garbage"};
    struct dmarc_input none_in = {.from = none_from, .n_from = 1};
    run(NULL, &none_in, &o);
    assert_int_equal(o.from_status, DMARC_FROM_INVALID);
    dmarc_authres(&o, &ar, buf, sizeof buf);
    assert_int_equal(ar.n_props, 0);
    assert_null(ar.comment);
    sm_buf_free(&b);

    /* the first call asks one question and says so */
    struct dnsview *v = dnsview_new();
    assert_int_equal(dmarc_check(v, psl, &in, &o), MAILAUTH_NEED_DNS);
    assert_int_equal(dnsview_pending(v), 1);
    const char *name;
    uint16_t type;
    dnsview_pending_at(v, 0, &name, &type);
    assert_string_equal(name, "_dmarc.example.com");
    dnsview_free(&v);

    /* several author domains: all first questions at once */
    const char *from2[] = {"a@one.example, b@two.example"};
    in.from = from2;
    v = dnsview_new();
    assert_int_equal(dmarc_check(v, psl, &in, &o), MAILAUTH_NEED_DNS);
    assert_int_equal(dnsview_pending(v), 2);
    dnsview_free(&v);
}

struct record_case {
    const char *label;
    const char *txt;
    enum dmarc_record_status status;
    enum dmarc_policy p, sp;
    unsigned pct;
    enum dmarc_align adkim, aspf;
    unsigned fo;
    uint32_t ri;
    const char *rua;
};

#define R DMARC_ALIGN_RELAXED
#define S DMARC_ALIGN_STRICT
#define NONE DMARC_POLICY_NONE
#define QUAR DMARC_POLICY_QUARANTINE
#define REJ DMARC_POLICY_REJECT
#define OK DMARC_RECORD_OK
#define NOT DMARC_RECORD_NOT_DMARC
#define INV DMARC_RECORD_INVALID

static const struct record_case record_cases[] = {
    {"minimal", "v=DMARC1; p=none", OK, NONE, NONE, 100, R, R, DMARC_FO_0, 86400, ""},
    {"everything", " v = DMARC1 ;p=Quarantine; sp=REJECT; pct=25; adkim=s; aspf=S; "
     "fo=1:d : s; ri=3600; rua=mailto:a@x.example!10m, mailto:b@y.example; "
     "ruf=mailto:f@x.example; rf=afrf; future=1;", OK, QUAR, REJ, 25, S, S,
     DMARC_FO_1 | DMARC_FO_D | DMARC_FO_S, 3600, "mailto:a@x.example!10m,mailto:b@y.example"},
    {"tag names without case", "v=DMARC1; P=reject; SP=none", OK, REJ, NONE, 100, R, R,
     DMARC_FO_0, 86400, ""},
    {"bad optional values fall back", "v=DMARC1; p=reject; pct=101; adkim=x; aspf=; fo=2; "
     "ri=-1", OK, REJ, REJ, 100, R, R, DMARC_FO_0, 86400, ""},
    {"pct=0", "v=DMARC1; p=reject; pct=0", OK, REJ, REJ, 0, R, R, DMARC_FO_0, 86400, ""},
    {"pct with 4 digits", "v=DMARC1; p=reject; pct=0050", OK, REJ, REJ, 100, R, R, DMARC_FO_0,
     86400, ""},
    {"no p, valid rua", "v=DMARC1; rua=mailto:a@example.com", OK, NONE, NONE, 100, R, R,
     DMARC_FO_0, 86400, "mailto:a@example.com"},
    {"no p, invalid rua", "v=DMARC1; rua=a@example.com", INV, 0, 0, 0, R, R, 0, 0, NULL},
    {"rua size without digits", "v=DMARC1; sp=x; rua=mailto:a@example.com!m", INV, 0, 0, 0, R,
     R, 0, 0, NULL},
    {"no p", "v=DMARC1", INV, 0, 0, 0, R, R, 0, 0, NULL},
    {"empty p", "v=DMARC1; p=", INV, 0, 0, 0, R, R, 0, 0, NULL},
    {"v not first", "p=none; v=DMARC1", NOT, 0, 0, 0, R, R, 0, 0, NULL},
    {"tag v in uppercase", "V=DMARC1; p=none", OK, NONE, NONE, 100, R, R, DMARC_FO_0, 86400,
     ""},
    {"version in lowercase", "v=dmarc1; p=none", NOT, 0, 0, 0, R, R, 0, 0, NULL},
    {"other version", "v=DMARC2; p=none", NOT, 0, 0, 0, R, R, 0, 0, NULL},
    {"version prefix", "v=DMARC1x; p=none", NOT, 0, 0, 0, R, R, 0, 0, NULL},
    {"SPF record", "v=spf1 -all", NOT, 0, 0, 0, R, R, 0, 0, NULL},
    {"empty", "", NOT, 0, 0, 0, R, R, 0, 0, NULL},
    {"duplicate tag", "v=DMARC1; p=none; p=none", INV, 0, 0, 0, R, R, 0, 0, NULL},
    {"duplicate tag in other case", "v=DMARC1; p=none; P=reject", INV, 0, 0, 0, R, R, 0, 0,
     NULL},
    {"control byte", "v=DMARC1; p=none; x=\x01", INV, 0, 0, 0, R, R, 0, 0, NULL},
    {"empty spec", "v=DMARC1;; p=none", INV, 0, 0, 0, R, R, 0, 0, NULL},
};

static void test_records(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof record_cases / sizeof record_cases[0]; i++) {
        const struct record_case *c = &record_cases[i];
        struct dmarc_record r;
        memset(&r, 0xa5, sizeof r);
        enum dmarc_record_status st = dmarc_record_parse(c->txt, strlen(c->txt), &r);
        if (st != c->status)
            fail_msg("%s: status %d, expected %d", c->label, st, c->status);
        if (st != DMARC_RECORD_OK)
            continue;
        if (r.p != c->p || r.sp != c->sp || r.pct != c->pct || r.adkim != c->adkim ||
            r.aspf != c->aspf || r.fo != c->fo || r.ri != c->ri || strcmp(r.rua, c->rua) != 0)
            fail_msg("%s: p %d sp %d pct %u adkim %d aspf %d fo %u ri %u rua %s", c->label, r.p,
                     r.sp, r.pct, r.adkim, r.aspf, r.fo, r.ri, r.rua);
    }
}

static void test_record_bounds(void **state)
{
    (void)state;
    static char big[DMARC_RECORD_MAX + 64];
    struct dmarc_record r;
    /* exactly the limit is fine, one byte more is not */
    strcpy(big, "v=DMARC1; p=reject; x=");
    size_t n = strlen(big);
    memset(big + n, 'a', DMARC_RECORD_MAX - n);
    big[DMARC_RECORD_MAX] = '\0';
    assert_int_equal(dmarc_record_parse(big, DMARC_RECORD_MAX, &r), DMARC_RECORD_OK);
    big[DMARC_RECORD_MAX] = 'a';
    assert_int_equal(dmarc_record_parse(big, DMARC_RECORD_MAX + 1, &r), DMARC_RECORD_INVALID);
    /* a rua list longer than the buffer is cut at a URI boundary */
    strcpy(big, "v=DMARC1; p=none; rua=");
    for (int i = 0; i < 100; i++)
        strcat(big, "mailto:reports@example.com,");
    assert_int_equal(dmarc_record_parse(big, strlen(big), &r), DMARC_RECORD_OK);
    assert_true(strlen(r.rua) <= DMARC_URIS_MAX);
    assert_int_equal(strlen(r.rua) % 27, 26);
    assert_true(dmarc_is_record("\tv =\tDMARC1", 11));
    assert_false(dmarc_is_record("v=DMARC", 7));
}

struct from_case {
    const char *label;
    const char *fields[3];
    enum dmarc_from_status status;
    const char *domains[3];
};

static const struct from_case from_cases[] = {
    {"addr-spec", {"alice@Example.COM"}, DMARC_FROM_OK, {"example.com"}},
    {"name-addr", {"Alice Example <alice@example.com>"}, DMARC_FROM_OK, {"example.com"}},
    {"folded with comments", {" \"Alice (not a comment) <x@evil.test>\"\r\n\t(comment (nested)"
     ") <alice(c)@(c)example.com(c)> (trailing)"}, DMARC_FROM_OK, {"example.com"}},
    {"quoted local part with @", {"\"a@evil.test\"@example.com"}, DMARC_FROM_OK,
     {"example.com"}},
    {"display name with dots", {"John Q. Public <jqp@example.com>"}, DMARC_FROM_OK,
     {"example.com"}},
    {"obs-route", {"<@relay.test,@other.test:alice@example.com>"}, DMARC_FROM_OK,
     {"example.com"}},
    {"two mailboxes, one domain", {"a@example.com, B <b@EXAMPLE.com>"}, DMARC_FROM_OK,
     {"example.com"}},
    {"two domains", {"a@example.com, b@example.org"}, DMARC_FROM_MULTI_DOMAIN,
     {"example.com", "example.org"}},
    {"group (RFC 6854)", {"Team: a@example.com, b@example.org;"}, DMARC_FROM_MULTI_DOMAIN,
     {"example.com", "example.org"}},
    {"two fields", {"a@example.com", "b@example.net"}, DMARC_FROM_MULTI_FIELD,
     {"example.com", "example.net"}},
    {"two fields, same domain", {"a@example.com", "b@example.com"}, DMARC_FROM_MULTI_FIELD,
     {"example.com"}},
    {"U-label domain", {"<\xc3\xa9l\xc3\xa8ve@\xc3\xa9" "cole.example>"}, DMARC_FROM_OK,
     {"xn--cole-9oa.example"}},
    {"final dot", {"a@example.com."}, DMARC_FROM_OK, {"example.com"}},
    {"no field", {0}, DMARC_FROM_ABSENT, {0}},
    {"empty", {""}, DMARC_FROM_INVALID, {0}},
    {"display name only", {"Alice"}, DMARC_FROM_INVALID, {0}},
    {"empty angle", {"<>"}, DMARC_FROM_INVALID, {0}},
    {"no local part", {"@example.com"}, DMARC_FROM_INVALID, {0}},
    {"domain literal", {"a@[192.0.2.1]"}, DMARC_FROM_INVALID, {0}},
    {"empty group", {"undisclosed-recipients:;"}, DMARC_FROM_INVALID, {0}},
    {"nested group", {"a: b: c@example.com;;"}, DMARC_FROM_INVALID, {0}},
    {"junk after the address", {"<a@example.com> b@paypal.example"}, DMARC_FROM_INVALID, {0}},
    {"unterminated quote", {"\"a <a@example.com>"}, DMARC_FROM_INVALID, {0}},
    {"unterminated comment", {"a@example.com (x"}, DMARC_FROM_INVALID, {0}},
    {"comments too deep", {"((((((((((x))))))))) a@example.com"}, DMARC_FROM_INVALID, {0}},
    {"unclosed angle", {"<a@example.com"}, DMARC_FROM_INVALID, {0}},
    {"bad domain byte", {"a@exa!mple.com"}, DMARC_FROM_INVALID, {0}},
    {"empty label", {"a@example..com"}, DMARC_FROM_INVALID, {0}},
    {"invalid UTF-8 domain", {"a@\xff.example"}, DMARC_FROM_INVALID, {0}},
    {"one bad field spoils all", {"a@example.com", "garbage"}, DMARC_FROM_INVALID, {0}},
    {"trailing comma", {"a@example.com,"}, DMARC_FROM_INVALID, {0}},
    {"control byte", {"a@exam\x01ple.com"}, DMARC_FROM_INVALID, {0}},
};

static void test_from(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof from_cases / sizeof from_cases[0]; i++) {
        const struct from_case *c = &from_cases[i];
        size_t n = 0;
        while (n < 3 && c->fields[n] != NULL)
            n++;
        struct dmarc_from f;
        enum dmarc_from_status st = dmarc_from_parse(c->fields, n, &f);
        if (st != c->status || f.status != st)
            fail_msg("%s: status %d, expected %d", c->label, st, c->status);
        size_t want = 0;
        while (want < 3 && c->domains[want] != NULL)
            want++;
        if (f.n != want)
            fail_msg("%s: %zu domains, expected %zu", c->label, f.n, want);
        for (size_t k = 0; k < want; k++)
            if (strcmp(f.domain[k], c->domains[k]) != 0)
                fail_msg("%s: domain %zu is %s", c->label, k, f.domain[k]);
    }
}

struct seen {
    char text[8][80];
    size_t n;
};

static void note_mailbox(void *arg, const char *local, size_t len, const char *domain)
{
    struct seen *s = arg;
    if (s->n < 8)
        snprintf(s->text[s->n++], sizeof s->text[0], "%.*s@%s", (int)len, local, domain);
}

/* Submission checks every author, so the parser also names each mailbox. */
static void test_from_mailboxes(void **state)
{
    (void)state;
    struct dmarc_from out;
    struct seen s = {0};
    const char *fields[] = {"Alice (boss) <alice@Example.TEST>, bob.b@b.example,\r\n"
                            " team: \"q u\"@Q.example, x@y.example;"};
    assert_int_equal(dmarc_from_mailboxes(fields, 1, &out, note_mailbox, &s),
                     DMARC_FROM_MULTI_DOMAIN);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.text[0], "alice@example.test");
    assert_string_equal(s.text[1], "bob.b@b.example");
    assert_string_equal(s.text[2], "\"q u\"@q.example");
    assert_string_equal(s.text[3], "x@y.example");
    const char *bad[] = {"nobody"};
    s.n = 0;
    assert_int_equal(dmarc_from_mailboxes(bad, 1, &out, note_mailbox, &s), DMARC_FROM_INVALID);
    assert_int_equal(s.n, 0);
}

static void test_from_bounds(void **state)
{
    (void)state;
    struct dmarc_from f;
    static char big[DMARC_FROM_MAX + 64];
    const char *fields[] = {big};
    /* many mailboxes in few domains are fine up to the limit */
    big[0] = '\0';
    for (int i = 0; i < DMARC_FROM_ADDRS_MAX; i++)
        strcat(big, i ? ", a@example.com" : "a@example.com");
    assert_int_equal(dmarc_from_parse(fields, 1, &f), DMARC_FROM_OK);
    strcat(big, ", a@example.com");
    assert_int_equal(dmarc_from_parse(fields, 1, &f), DMARC_FROM_INVALID);
    /* distinct domains */
    big[0] = '\0';
    for (int i = 0; i < DMARC_FROM_DOMAINS_MAX; i++)
        snprintf(big + strlen(big), 64, "%sa@d%d.example", i ? "," : "", i);
    assert_int_equal(dmarc_from_parse(fields, 1, &f), DMARC_FROM_MULTI_DOMAIN);
    assert_int_equal(f.n, DMARC_FROM_DOMAINS_MAX);
    strcat(big, ",a@one-more.example");
    assert_int_equal(dmarc_from_parse(fields, 1, &f), DMARC_FROM_INVALID);
    assert_int_equal(f.n, 0);
    /* the length limit */
    memset(big, ' ', DMARC_FROM_MAX - 13);
    strcpy(big + DMARC_FROM_MAX - 13, "a@example.com");
    assert_int_equal(dmarc_from_parse(fields, 1, &f), DMARC_FROM_OK);
    memset(big, ' ', DMARC_FROM_MAX - 12);
    strcpy(big + DMARC_FROM_MAX - 12, "a@example.com");
    assert_int_equal(dmarc_from_parse(fields, 1, &f), DMARC_FROM_INVALID);
    /* too many fields */
    const char *many[DMARC_FROM_FIELDS_MAX + 1];
    for (size_t i = 0; i <= DMARC_FROM_FIELDS_MAX; i++)
        many[i] = "a@example.com";
    assert_int_equal(dmarc_from_parse(many, DMARC_FROM_FIELDS_MAX, &f), DMARC_FROM_MULTI_FIELD);
    assert_int_equal(dmarc_from_parse(many, DMARC_FROM_FIELDS_MAX + 1, &f), DMARC_FROM_INVALID);
}

static void test_alignment(void **state)
{
    (void)state;
    assert_true(dmarc_aligned(psl, "example.com", "EXAMPLE.com.", DMARC_ALIGN_STRICT));
    assert_false(dmarc_aligned(psl, "example.com", "a.example.com", DMARC_ALIGN_STRICT));
    assert_true(dmarc_aligned(psl, "example.com", "a.example.com", DMARC_ALIGN_RELAXED));
    assert_true(dmarc_aligned(psl, "b.example.co.uk", "a.example.co.uk", DMARC_ALIGN_RELAXED));
    assert_false(dmarc_aligned(psl, "example.co.uk", "other.co.uk", DMARC_ALIGN_RELAXED));
    assert_false(dmarc_aligned(psl, "example.co.uk", "co.uk", DMARC_ALIGN_RELAXED));
    assert_false(dmarc_aligned(psl, "co.uk", "example.co.uk", DMARC_ALIGN_RELAXED));
    assert_true(dmarc_aligned(psl, "co.uk", "co.uk", DMARC_ALIGN_RELAXED));
    assert_true(dmarc_aligned(psl, "x.b\xc3\xbc" "cher.example", "xn--bcher-kva.example",
                              DMARC_ALIGN_RELAXED) ==
                dmarc_aligned(psl, "x.xn--bcher-kva.example", "xn--bcher-kva.example",
                              DMARC_ALIGN_RELAXED));
    assert_false(dmarc_aligned(psl, "example.com", "", DMARC_ALIGN_RELAXED));
    assert_false(dmarc_aligned(psl, "example.com", NULL, DMARC_ALIGN_RELAXED));
    assert_string_equal(dmarc_result_name(DMARC_RESULT_PERMERROR), "permerror");
    assert_string_equal(dmarc_policy_name(DMARC_POLICY_QUARANTINE), "quarantine");
}

static int setup(void **state)
{
    (void)state;
    const char *path = getenv("SEALMAIL_PSL");
    const char *err = NULL;
    psl = psl_load(path != NULL ? path : PSL_DEFAULT_PATH, &err);
    if (psl == NULL)
        fprintf(stderr, "cannot load the public suffix list: %s\n", err);
    return psl == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    psl_free(&psl);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_outcome_details),
        cmocka_unit_test(test_records),
        cmocka_unit_test(test_record_bounds),
        cmocka_unit_test(test_from),
        cmocka_unit_test(test_from_mailboxes),
        cmocka_unit_test(test_from_bounds),
        cmocka_unit_test(test_alignment),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
