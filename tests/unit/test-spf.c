/* test-spf.c — SPF (RFC 7208) over a dnsview: the openspf conformance
 * suite, the restart protocol, the processing limits and macro expansion.
 *
 * The suites (the YAML files in tests/unit/data/spf) are turned into text tables by
 * tests/unit/spf-suite.py at build time (see src/mailauth/meson.build);
 * the zone of each scenario answers the questions spf_check() leaves
 * pending, exactly as the daemon's driver would with libunbound:
 *  - a name that is not in the zone is NXDOMAIN, a name without a record
 *    of the asked type is NODATA;
 *  - TIMEOUT answers DNS_TEMPFAIL when no record of the asked type came
 *    before it in the scenario, as the suite's own driver (testspf.py) does;
 *  - CNAMEs are followed (a loop, or more than 8 steps, is DNS_TEMPFAIL, as
 *    a resolver answers SERVFAIL);
 *  - names are compared without case and without a final dot; PTR and MX
 *    targets are handed over in lowercase, as the resolver does.
 * An expected explanation is compared without case: the suite writes the
 * ip6.arpa nibbles of %{i} in uppercase (case v-macro-ip6) where RFC 7208
 * §7.4's example has lowercase; DNS names are case-insensitive either way.
 * "DEFAULT" means no exp= explanation (an empty one here). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "mailauth/spf.h"

#ifndef SPF_SUITES
#error "SPF_SUITES must name the directory of the converted suites (see src/mailauth/meson.build)"
#endif

/* ---- a zone that answers dnsview questions ---- */

enum ztype { Z_A, Z_AAAA, Z_MX, Z_PTR, Z_CNAME, Z_TXT, Z_TIMEOUT };

struct zrec {
    char *name;
    enum ztype type;
    uint8_t *data; /* TXT bytes, or the host name of MX/PTR/CNAME (NUL-terminated) */
    size_t len;
    uint16_t pref;
    uint8_t addr[16];
};

struct zone {
    struct zrec *r;
    size_t n, cap;
};

static char *lower_name(const char *s, size_t n)
{
    if (n > 0 && s[n - 1] == '.')
        n--;
    char *p = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
    p[n] = '\0';
    return p;
}

static struct zrec *zone_add(struct zone *z, const char *name, size_t name_len, enum ztype type)
{
    if (z->n == z->cap) {
        z->cap = z->cap ? z->cap * 2 : 32;
        z->r = realloc(z->r, z->cap * sizeof *z->r);
    }
    struct zrec *r = &z->r[z->n++];
    memset(r, 0, sizeof *r);
    r->name = lower_name(name, name_len);
    r->type = type;
    return r;
}

static void set_bytes(struct zrec *r, const void *data, size_t len)
{
    r->data = malloc(len + 1);
    memcpy(r->data, data, len);
    r->data[len] = '\0';
    r->len = len;
}

static void zone_txt(struct zone *z, const char *name, const char *text)
{
    set_bytes(zone_add(z, name, strlen(name), Z_TXT), text, strlen(text));
}

static void zone_addr(struct zone *z, const char *name, const char *ip)
{
    bool v6 = strchr(ip, ':') != NULL;
    struct zrec *r = zone_add(z, name, strlen(name), v6 ? Z_AAAA : Z_A);
    assert_int_equal(inet_pton(v6 ? AF_INET6 : AF_INET, ip, r->addr), 1);
}

static void zone_host(struct zone *z, const char *name, enum ztype type, const char *host,
                      uint16_t pref)
{
    struct zrec *r = zone_add(z, name, strlen(name), type);
    char *h = lower_name(host, strlen(host));
    set_bytes(r, h, strlen(h));
    free(h);
    r->pref = pref;
}

static void zone_free(struct zone *z)
{
    for (size_t i = 0; i < z->n; i++) {
        free(z->r[i].name);
        free(z->r[i].data);
    }
    free(z->r);
    memset(z, 0, sizeof *z);
}

static uint16_t dns_type_of(enum ztype t)
{
    static const uint16_t map[] = {DNS_T_A, DNS_T_AAAA, DNS_T_MX, DNS_T_PTR, 5, DNS_T_TXT, 0};
    return map[t];
}

static struct dns_answer *resolve(const struct zone *z, const char *qname, uint16_t qtype)
{
    char *name = lower_name(qname, strlen(qname));
    for (int hop = 0; hop <= 8; hop++) {
        bool exists = false;
        const char *cname = NULL;
        for (size_t i = 0; i < z->n; i++) {
            if (strcmp(z->r[i].name, name) != 0)
                continue;
            exists = true;
            if (z->r[i].type == Z_CNAME)
                cname = (const char *)z->r[i].data;
        }
        if (!exists) {
            free(name);
            return dns_answer_new(DNS_NXDOMAIN);
        }
        if (cname != NULL) {
            char *next = lower_name(cname, strlen(cname));
            free(name);
            name = next;
            continue;
        }
        struct dns_answer *a = dns_answer_new(DNS_OK);
        for (size_t i = 0; i < z->n; i++) {
            const struct zrec *r = &z->r[i];
            if (strcmp(r->name, name) != 0)
                continue;
            if (r->type == Z_TIMEOUT) {
                if (a->n == 0) {
                    dns_answer_free(a);
                    a = dns_answer_new(DNS_TEMPFAIL);
                }
                break;
            }
            if (dns_type_of(r->type) != qtype)
                continue;
            struct dns_rr rr = {.type = qtype, .pref = r->pref};
            memcpy(rr.addr, r->addr, sizeof rr.addr);
            if (r->type == Z_TXT) {
                rr.data = r->data;
                rr.len = r->len;
            } else if (r->type == Z_MX || r->type == Z_PTR) {
                rr.name = (char *)r->data;
            }
            dns_answer_add(a, &rr);
        }
        free(name);
        return a;
    }
    free(name);
    return dns_answer_new(DNS_TEMPFAIL); /* CNAME loop */
}

/* Answer every pending question from z. */
static void answer_pending(struct dnsview *v, const struct zone *z)
{
    size_t n = dnsview_pending(v);
    char (*names)[DNS_NAME_MAX + 1] = calloc(n ? n : 1, sizeof *names);
    uint16_t *types = calloc(n ? n : 1, sizeof *types);
    for (size_t i = 0; i < n; i++) {
        const char *name;
        dnsview_pending_at(v, i, &name, &types[i]);
        snprintf(names[i], sizeof names[i], "%s", name);
    }
    for (size_t i = 0; i < n; i++)
        dnsview_put(v, names[i], types[i], resolve(z, names[i], types[i]));
    free(names);
    free(types);
}

/* spf_check() to the end; returns the number of DNS rounds. */
static int run(const struct zone *z, const struct spf_request *req, struct spf_outcome *out)
{
    struct dnsview *v = dnsview_new();
    int rounds = 0;
    while (spf_check(v, req, out) == MAILAUTH_NEED_DNS) {
        assert_true(dnsview_pending(v) > 0);
        assert_true(++rounds < 200);
        answer_pending(v, z);
    }
    dnsview_free(&v);
    return rounds;
}

static void set_ip(struct spf_request *req, const char *ip)
{
    memset(req->ip, 0, sizeof req->ip);
    if (inet_pton(AF_INET, ip, req->ip) == 1) {
        req->family = AF_INET;
    } else {
        req->family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, req->ip), 1);
    }
}

/* ---- the conformance suites ---- */

static size_t unesc(const char *field, char *out, size_t size)
{
    size_t n = 0;
    assert_true(field[0] == '=');
    for (const char *p = field + 1; *p && n + 1 < size; p++) {
        if (*p == '%' && p[1] && p[2]) {
            char hex[3] = {p[1], p[2], 0};
            out[n++] = (char)strtol(hex, NULL, 16);
            p += 2;
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    return n;
}

struct suite_case {
    char name[128];
    char helo[300], host[64], mailfrom[300], receiver[300];
    char results[8][16];
    int n_results;
    char explanation[600];
    bool has_explanation;
};

static bool check_case(const struct zone *z, const struct suite_case *t, bool verbose)
{
    struct spf_request req = {.helo = t->helo, .sender = t->mailfrom, .now = 1400000000};
    if (t->receiver[0])
        req.receiver = t->receiver;
    set_ip(&req, t->host);
    struct spf_outcome out;
    run(z, &req, &out);
    bool ok = false;
    for (int i = 0; i < t->n_results; i++)
        ok = ok || strcmp(t->results[i], spf_result_name(out.result)) == 0;
    if (ok && t->has_explanation) {
        const char *want = strcmp(t->explanation, "DEFAULT") == 0 ? "" : t->explanation;
        ok = strcasecmp(want, out.explanation) == 0;
    }
    if (!ok && verbose)
        printf("  FAIL %s: got %s (%s) exp \"%s\" [%s], want %s%s%s\n", t->name,
               spf_result_name(out.result), out.mechanism, out.explanation, out.problem,
               t->results[0], t->n_results > 1 ? " or ..." : "",
               t->has_explanation ? " with explanation" : "");
    return ok;
}

static void parse_zone_line(struct zone *z, char *line)
{
    char *save = NULL;
    char *name_f = strtok_r(line + 2, " ", &save);
    char *type = strtok_r(NULL, " ", &save);
    char *v1 = strtok_r(NULL, " ", &save);
    char *v2 = strtok_r(NULL, " ", &save);
    char name[600], val[4096];
    size_t name_len = unesc(name_f, name, sizeof name);
    if (strcmp(type, "TIMEOUT") == 0) {
        zone_add(z, name, name_len, Z_TIMEOUT);
    } else if (strcmp(type, "TXT") == 0) {
        size_t n = unesc(v1, val, sizeof val);
        set_bytes(zone_add(z, name, name_len, Z_TXT), val, n);
    } else if (strcmp(type, "A") == 0 || strcmp(type, "AAAA") == 0) {
        unesc(v1, val, sizeof val);
        zone_addr(z, name, val);
    } else if (strcmp(type, "MX") == 0) {
        char pref[16];
        unesc(v1, pref, sizeof pref);
        unesc(v2, val, sizeof val);
        zone_host(z, name, Z_MX, val, (uint16_t)atoi(pref));
    } else {
        unesc(v1, val, sizeof val);
        zone_host(z, name, strcmp(type, "PTR") == 0 ? Z_PTR : Z_CNAME, val, 0);
    }
}

/* Run a converted suite: returns the number of passing cases, *total the count. */
static int run_suite(const char *path, int *total, bool verbose)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    struct zone z = {0};
    struct suite_case t;
    char *line = NULL;
    size_t cap = 0;
    int pass = 0;
    *total = 0;
    while (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = '\0';
        char *arg = line + 2;
        switch (line[0]) {
        case 'S':
            zone_free(&z);
            break;
        case 'Z':
            parse_zone_line(&z, line);
            break;
        case 'T':
            memset(&t, 0, sizeof t);
            unesc(arg, t.name, sizeof t.name);
            break;
        case 'H':
            unesc(arg, t.helo, sizeof t.helo);
            break;
        case 'I':
            unesc(arg, t.host, sizeof t.host);
            break;
        case 'M':
            unesc(arg, t.mailfrom, sizeof t.mailfrom);
            break;
        case 'X':
            unesc(arg, t.receiver, sizeof t.receiver);
            break;
        case 'E':
            unesc(arg, t.explanation, sizeof t.explanation);
            t.has_explanation = true;
            break;
        case 'R': {
            char *save = NULL;
            for (char *r = strtok_r(arg, " ", &save); r && t.n_results < 8;
                 r = strtok_r(NULL, " ", &save))
                unesc(r, t.results[t.n_results++], sizeof t.results[0]);
            break;
        }
        case '.':
            ++*total;
            pass += check_case(&z, &t, verbose);
            break;
        default:
            fail_msg("bad line in %s: %s", path, line);
        }
    }
    free(line);
    zone_free(&z);
    fclose(f);
    return pass;
}

static void test_rfc7208_suite(void **state)
{
    (void)state;
    int total;
    int pass = run_suite(SPF_SUITES "/spf-rfc7208.txt", &total, true);
    printf("RFC 7208 suite: %d of %d cases pass\n", pass, total);
    assert_int_equal(total, 203);
    assert_int_equal(pass, total);
}

/* RFC 4408's suite, for information only: RFC 7208 changed several
 * answers (type SPF records, the MX limit, void lookups, ...). */
static void test_rfc4408_suite_informational(void **state)
{
    (void)state;
    int total;
    int pass = run_suite(SPF_SUITES "/spf-rfc4408.txt", &total, getenv("SPF_VERBOSE") != NULL);
    printf("RFC 4408 suite (information only): %d of %d cases pass\n", pass, total);
    assert_int_equal(total, 191);
}

/* ---- the restart protocol ---- */

static struct spf_request request(const char *ip, const char *sender)
{
    struct spf_request req = {.helo = "mail.sender.test", .sender = sender,
                              .receiver = "mx.receiver.test", .now = 1700000000};
    set_ip(&req, ip);
    return req;
}

static void test_restart(void **state)
{
    (void)state;
    struct zone z = {0};
    zone_txt(&z, "example.test", "v=spf1 include:inc.example.test -all");
    zone_txt(&z, "inc.example.test", "v=spf1 ip4:192.0.2.0/24 -all");
    struct spf_request req = request("192.0.2.7", "user@Example.TEST");
    struct spf_outcome out;
    struct dnsview *v = dnsview_new();
    const char *name;
    uint16_t type;

    assert_int_equal(spf_check(v, &req, &out), MAILAUTH_NEED_DNS);
    assert_int_equal(dnsview_pending(v), 1);
    dnsview_pending_at(v, 0, &name, &type);
    assert_string_equal(name, "example.test");
    assert_int_equal(type, DNS_T_TXT);
    /* asking again without answers changes nothing */
    assert_int_equal(spf_check(v, &req, &out), MAILAUTH_NEED_DNS);
    assert_int_equal(dnsview_pending(v), 1);
    answer_pending(v, &z);

    assert_int_equal(spf_check(v, &req, &out), MAILAUTH_NEED_DNS);
    dnsview_pending_at(v, 0, &name, &type);
    assert_string_equal(name, "inc.example.test");
    answer_pending(v, &z);

    assert_int_equal(spf_check(v, &req, &out), MAILAUTH_DONE);
    assert_int_equal(out.result, SPF_PASS);
    assert_string_equal(out.domain, "example.test");
    assert_string_equal(out.mechanism, "include:inc.example.test");
    assert_int_equal(out.lookups, 1);
    /* and again: the same answer, nothing new asked */
    assert_int_equal(spf_check(v, &req, &out), MAILAUTH_DONE);
    assert_int_equal(out.result, SPF_PASS);
    assert_int_equal(dnsview_pending(v), 0);
    assert_int_equal(dnsview_count(v), 2);
    dnsview_free(&v);
    zone_free(&z);
}

/* All the addresses of an MX set are asked in one round. */
static void test_mx_addresses_in_one_round(void **state)
{
    (void)state;
    struct zone z = {0};
    zone_txt(&z, "example.test", "v=spf1 mx -all");
    for (int i = 0; i < 5; i++) {
        char host[32];
        snprintf(host, sizeof host, "mx%d.example.test", i);
        zone_host(&z, "example.test", Z_MX, host, (uint16_t)i);
        zone_addr(&z, host, i == 4 ? "192.0.2.44" : "198.51.100.1");
    }
    struct spf_request req = request("192.0.2.44", "a@example.test");
    struct spf_outcome out;
    assert_int_equal(run(&z, &req, &out), 3); /* TXT, MX, the five A questions */
    assert_int_equal(out.result, SPF_PASS);
    assert_string_equal(out.mechanism, "mx");

    /* a DNS error on the first MX name decides before the later names */
    zone_free(&z);
    zone_txt(&z, "example.test", "v=spf1 mx -all");
    zone_host(&z, "example.test", Z_MX, "bad.example.test", 0);
    zone_host(&z, "example.test", Z_MX, "good.example.test", 1);
    zone_add(&z, "bad.example.test", 16, Z_TIMEOUT);
    zone_addr(&z, "good.example.test", "192.0.2.44");
    run(&z, &req, &out);
    assert_int_equal(out.result, SPF_TEMPERROR);
    zone_free(&z);
}

/* ---- limits ---- */

static enum spf_result check_record(const char *record, const char *ip, struct spf_outcome *out)
{
    struct zone z = {0};
    zone_txt(&z, "example.test", record);
    zone_addr(&z, "host.example.test", "192.0.2.1");
    struct spf_request req = request(ip, "user@example.test");
    run(&z, &req, out);
    zone_free(&z);
    return out->result;
}

static void test_lookup_limit(void **state)
{
    (void)state;
    struct spf_outcome out;
    char rec[512] = "v=spf1";
    for (int i = 0; i < 10; i++)
        strcat(rec, " a:host.example.test");
    strcat(rec, " ip4:192.0.2.9 -all");
    assert_int_equal(check_record(rec, "192.0.2.9", &out), SPF_PASS);
    assert_int_equal(out.lookups, 10);
    strcpy(rec, "v=spf1");
    for (int i = 0; i < 11; i++)
        strcat(rec, " a:host.example.test");
    strcat(rec, " ip4:192.0.2.9 -all");
    assert_int_equal(check_record(rec, "192.0.2.9", &out), SPF_PERMERROR);
    assert_non_null(strstr(out.problem, "more than 10 DNS lookups"));
    /* terms after a match are not counted */
    strcat(rec, "");
    assert_int_equal(check_record("v=spf1 ip4:192.0.2.9 a a a a a a a a a a a a -all",
                                  "192.0.2.9", &out), SPF_PASS);
    /* a redirect loop ends at the limit */
    assert_int_equal(check_record("v=spf1 redirect=example.test", "192.0.2.9", &out),
                     SPF_PERMERROR);
}

static void test_void_limit(void **state)
{
    (void)state;
    struct spf_outcome out;
    assert_int_equal(check_record("v=spf1 a:no1.example.test mx:no2.example.test ?all",
                                  "192.0.2.9", &out), SPF_NEUTRAL);
    assert_int_equal(out.void_lookups, 2);
    assert_int_equal(check_record("v=spf1 a:no1.example.test a:no2.example.test "
                                  "exists:no3.example.test ?all", "192.0.2.9", &out),
                     SPF_PERMERROR);
    assert_non_null(strstr(out.problem, "void"));
    /* NODATA is void too: host.example.test has no AAAA */
    assert_int_equal(check_record("v=spf1 a:host.example.test a:host.example.test "
                                  "a:host.example.test ?all", "2001:db8::1", &out),
                     SPF_PERMERROR);
}

static void test_mx_and_ptr_limits(void **state)
{
    (void)state;
    struct zone z = {0};
    struct spf_outcome out;
    zone_txt(&z, "example.test", "v=spf1 mx -all");
    for (int i = 0; i < 11; i++) {
        char host[32];
        snprintf(host, sizeof host, "mx%d.example.test", i);
        zone_host(&z, "example.test", Z_MX, host, (uint16_t)i);
    }
    struct spf_request req = request("192.0.2.1", "a@example.test");
    run(&z, &req, &out);
    assert_int_equal(out.result, SPF_PERMERROR);
    zone_free(&z);

    /* PTR: the 11th name is never validated */
    zone_txt(&z, "example.test", "v=spf1 ptr -all");
    for (int i = 0; i < 11; i++) {
        char host[32];
        snprintf(host, sizeof host, "h%d.%s", i, i == 10 ? "example.test" : "other.test");
        zone_host(&z, "1.2.0.192.in-addr.arpa", Z_PTR, host, 0);
        zone_addr(&z, host, "192.0.2.1");
    }
    run(&z, &req, &out);
    assert_int_equal(out.result, SPF_FAIL);
    zone_free(&z);
    zone_txt(&z, "example.test", "v=spf1 ptr -all");
    zone_host(&z, "1.2.0.192.in-addr.arpa", Z_PTR, "h.other.test", 0);
    zone_host(&z, "1.2.0.192.in-addr.arpa", Z_PTR, "h.Example.test", 0);
    zone_addr(&z, "h.other.test", "192.0.2.1");
    zone_addr(&z, "h.example.test", "192.0.2.1");
    run(&z, &req, &out);
    assert_int_equal(out.result, SPF_PASS);
    zone_free(&z);
}

static void test_record_limits(void **state)
{
    (void)state;
    struct spf_outcome out;
    char *rec = malloc(SPF_RECORD_MAX + 64);
    strcpy(rec, "v=spf1");
    while (strlen(rec) < SPF_RECORD_MAX - 16)
        strcat(rec, " ip4:192.0.2.1");
    strcat(rec, " -all");
    assert_int_equal(check_record(rec, "192.0.2.1", &out), SPF_PASS);
    while (strlen(rec) <= SPF_RECORD_MAX)
        strcat(rec, " ?all");
    assert_int_equal(check_record(rec, "192.0.2.1", &out), SPF_PERMERROR);
    free(rec);

    /* two SPF records; other TXT records do not matter */
    struct zone z = {0};
    zone_txt(&z, "example.test", "v=spf1 -all");
    zone_txt(&z, "example.test", "google-site-verification=x");
    struct spf_request req = request("192.0.2.1", "a@example.test");
    run(&z, &req, &out);
    assert_int_equal(out.result, SPF_FAIL);
    zone_txt(&z, "example.test", "v=spf1 +all");
    run(&z, &req, &out);
    assert_int_equal(out.result, SPF_PERMERROR);
    zone_free(&z);

    /* identities that cannot be checked */
    char longname[SPF_INPUT_MAX + 10];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    req.sender = longname;
    run(&z, &req, &out);
    assert_int_equal(out.result, SPF_NONE);
    const char *bad[] = {"a@b", "a@[192.0.2.1]", "a@192.0.2.1", "a@x..test", "a@-", "a@ex ample.test"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        req.sender = bad[i];
        assert_int_equal(run(&z, &req, &out), 0);
        assert_int_equal(out.result, SPF_NONE);
    }
}

static void test_syntax(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "v=spf1 a:example.test/33",     "v=spf1 a//129",         "v=spf1 a/08",
        "v=spf1 ip4:192.0.2.1/",        "v=spf1 ip4:192.0.2.01", "v=spf1 ip4:256.0.0.1",
        "v=spf1 ip6:2001:db8::/129",    "v=spf1 ip6:2001:db8::g", "v=spf1 include",
        "v=spf1 exists",                "v=spf1 ptr:",           "v=spf1 mx:",
        "v=spf1 exp=a.test exp=b.test", "v=spf1 -all\t",         "v=spf1 a:%{x}.test",
        "v=spf1 a:%{d0}.test",          "v=spf1 a:%{c}.test",    "v=spf1 a:%{d",
        "v=spf1 a:x.%",                 "v=spf1 a:example.123",  "v=spf1 a:example.test-",
        "v=spf1 foo=%{t}",              "v=spf1 +-all",          "v=spf1 include:%{d}x",
        "v=spf1 all:x",                 "v=spf1 9a=b",           "v=spf1 redirect=",
        "v=spf1 a:%{d}.", /* domain-end is a macro or "." toplabel, not a lone dot */
    };
    struct spf_outcome out;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum spf_result r = check_record(bad[i], "192.0.2.1", &out);
        if (r != SPF_PERMERROR)
            fail_msg("%s: %s, not permerror", bad[i], spf_result_name(r));
        assert_string_equal(out.mechanism, "");
    }
    static const char *const good[] = {
        "v=spf1 a:example.test/32//128 ?all", "v=spf1 A:%{d}/0 ?all",
        "v=spf1 ?MX//64 ?all",                "v=spf1 ip6:::ffff:192.0.2.1/128 ?all",
        "v=spf1 exists:%{ir}.%{v}.%{l1r-+,/_=}._spf.%{d2} ?all",
        "v=spf1 foo.bar-_=%%%_%-x ?all",      "V=SPF1 ?ALL",
        "v=spf1 ?all exp=%{d}",               "v=spf1   ?all   ",
        "v=spf1 a:x.example.xn--p1ai ?all",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        enum spf_result r = check_record(good[i], "192.0.2.1", &out);
        if (r != SPF_NEUTRAL)
            fail_msg("%s: %s, not neutral (%s)", good[i], spf_result_name(r), out.problem);
    }
}

/* ---- macros ---- */

/* The explanation a fail gives when the exp= TXT record is text. */
static void explain(const char *sender, const char *ip, const char *text, char *out, size_t size)
{
    struct zone z = {0};
    zone_txt(&z, "email.example.com", "v=spf1 -all exp=why.example.com");
    zone_txt(&z, "why.example.com", text);
    struct spf_request req = request(ip, sender);
    struct spf_outcome o;
    run(&z, &req, &o);
    assert_int_equal(o.result, SPF_FAIL);
    assert_string_equal(o.mechanism, "-all");
    snprintf(out, size, "%s", o.explanation);
    zone_free(&z);
}

static void test_macro_examples(void **state)
{
    (void)state;
    /* RFC 7208 §7.4 */
    static const struct {
        const char *macro, *want;
    } ex[] = {
        {"%{s}", "strong-bad@email.example.com"},
        {"%{o}", "email.example.com"},
        {"%{d}", "email.example.com"},
        {"%{d4}", "email.example.com"},
        {"%{d3}", "email.example.com"},
        {"%{d2}", "example.com"},
        {"%{d1}", "com"},
        {"%{dr}", "com.example.email"},
        {"%{d2r}", "example.email"},
        {"%{l}", "strong-bad"},
        {"%{l-}", "strong.bad"},
        {"%{lr}", "strong-bad"},
        {"%{lr-}", "bad.strong"},
        {"%{l1r-}", "strong"},
        {"%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"},
        {"%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"},
        {"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
        {"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"},
        {"%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"},
        {"%{c} %{r} %{t} %{p} %{h}", "192.0.2.3 mx.receiver.test 1700000000 unknown mail.sender.test"},
        {"%%|%_|%-|%{S}", "%| |%20|strong-bad%40email.example.com"},
        {"%{L}", "strong-bad"},
        {"%{d1000}|%{d999r}|%{d99999999999}", "email.example.com|com.example.email|email.example.com"},
    };
    char got[SPF_EXPLANATION_MAX + 1];
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
        explain("strong-bad@email.example.com", "192.0.2.3", ex[i].macro, got, sizeof got);
        if (strcmp(got, ex[i].want) != 0)
            fail_msg("%s: \"%s\", want \"%s\"", ex[i].macro, got, ex[i].want);
    }
    explain("strong-bad@email.example.com", "2001:db8::cb01", "%{ir}.%{v}._spf.%{d2} %{c}", got,
            sizeof got);
    assert_string_equal(got, "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
                             ".ip6._spf.example.com 2001:db8::cb01");
    /* the sender's bytes are outside input: only printable ASCII comes out */
    explain("j\xc3\xb6rg\x01@email.example.com", "192.0.2.3", "%{l} %{L}", got, sizeof got);
    assert_string_equal(got, "j??rg? j%C3%B6rg%01");
    /* an explanation is cut, never overflows */
    char text[600] = "";
    for (int i = 0; i < 20; i++)
        strcat(text, "%{s}");
    explain("strong-bad@email.example.com", "192.0.2.3", text, got, sizeof got);
    assert_int_equal(strlen(got), SPF_EXPLANATION_MAX);
    /* a syntax error in the text: no explanation */
    explain("a@email.example.com", "192.0.2.3", "bad %{z}", got, sizeof got);
    assert_string_equal(got, "");
}

/* The name an exists: term asks for, after expansion. */
static void asked_name(const char *spec, const char *sender, char *out, size_t size)
{
    struct zone z = {0};
    char rec[1024];
    snprintf(rec, sizeof rec, "v=spf1 exists:%s -all", spec);
    zone_txt(&z, "email.example.com", rec);
    struct spf_request req = request("192.0.2.3", sender);
    struct spf_outcome o;
    struct dnsview *v = dnsview_new();
    assert_int_equal(spf_check(v, &req, &o), MAILAUTH_NEED_DNS);
    answer_pending(v, &z);
    out[0] = '\0';
    if (spf_check(v, &req, &o) == MAILAUTH_NEED_DNS) {
        const char *name;
        uint16_t type;
        dnsview_pending_at(v, 0, &name, &type);
        assert_int_equal(type, DNS_T_A);
        snprintf(out, size, "%s", name);
    }
    dnsview_free(&v);
    zone_free(&z);
}

static void test_macro_domains(void **state)
{
    (void)state;
    char got[600];
    /* §7.3: names over 253 characters lose labels on the left */
    char local[64 * 4 + 4] = "";
    for (int i = 0; i < 4; i++)
        strcat(local, i ? ".aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                        : "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    char sender[400];
    snprintf(sender, sizeof sender, "%s@email.example.com", local);
    asked_name("%{l}.%{l}.%{d}", sender, got, sizeof got);
    assert_true(strlen(got) <= 253);
    assert_true(strlen(got) > 253 - 64);
    assert_non_null(strstr(got, ".email.example.com"));
    assert_true(got[0] == 'a' || got[0] == 'b');
    /* 7.7 KB of expansion: the window keeps the right end */
    char spec[900] = "";
    for (int i = 0; i < 30; i++)
        strcat(spec, "%{l}.");
    strcat(spec, "x.%{d}");
    asked_name(spec, sender, got, sizeof got);
    assert_true(strlen(got) <= 253);
    assert_non_null(strstr(got, ".x.email.example.com"));
    /* past SPF_EXPAND_MAX characters nothing is asked */
    for (int i = 0; i < 10; i++)
        strcat(spec, ".%{l}");
    asked_name(spec, sender, got, sizeof got);
    assert_string_equal(got, "");
    /* a final dot is dropped; a label over 63 characters asks nothing */
    asked_name("%{d}.test.", "a@email.example.com", got, sizeof got);
    assert_string_equal(got, "email.example.com.test");
    asked_name("%{l}.example.com", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb@email.example.com",
               got, sizeof got);
    assert_string_equal(got, "");
    asked_name("%{l}.example.com", "a\\b@email.example.com", got, sizeof got);
    assert_string_equal(got, "");
    /* no local part: postmaster */
    asked_name("%{l}.%{o}", "@email.example.com", got, sizeof got);
    assert_string_equal(got, "postmaster.email.example.com");
}

static void test_helo_identity_and_mapped(void **state)
{
    (void)state;
    struct zone z = {0};
    zone_txt(&z, "mail.sender.test", "v=spf1 a -all exp=e.sender.test");
    zone_addr(&z, "mail.sender.test", "192.0.2.5");
    zone_txt(&z, "e.sender.test", "%{s} %{d}");
    zone_txt(&z, "sender.test", "v=spf1 +all");
    struct spf_request req = request("::ffff:192.0.2.5", "x@sender.test");
    req.identity = SPF_ID_HELO;
    struct spf_outcome out;
    run(&z, &req, &out);
    assert_int_equal(out.result, SPF_PASS); /* IPv4-mapped is IPv4 */
    assert_string_equal(out.domain, "mail.sender.test");
    set_ip(&req, "192.0.2.6");
    run(&z, &req, &out);
    assert_int_equal(out.result, SPF_FAIL);
    assert_string_equal(out.explanation, "postmaster@mail.sender.test mail.sender.test");
    req.identity = SPF_ID_MAILFROM;
    run(&z, &req, &out);
    assert_int_equal(out.result, SPF_PASS);
    assert_string_equal(out.mechanism, "+all");
    req.sender = "";
    run(&z, &req, &out);
    assert_int_equal(out.result, SPF_FAIL);
    req.helo = NULL;
    run(&z, &req, &out);
    assert_int_equal(out.result, SPF_NONE);
    zone_free(&z);
    assert_string_equal(spf_result_name(SPF_SOFTFAIL), "softfail");
    assert_string_equal(spf_result_name((enum spf_result)42), "permerror");
}

/* 10 mx terms of 10 names each fit in one view (1 + 10 * 11 answers);
 * past DNSVIEW_MAX questions (a view shared with other checks), answers
 * are TEMPFAIL and SPF says temperror instead of asking more. */
static void test_view_bound(void **state)
{
    (void)state;
    struct zone z = {0};
    char rec[512] = "v=spf1";
    for (int i = 0; i < 10; i++) {
        char host[32];
        snprintf(host, sizeof host, " mx:m%d.example.test", i);
        strcat(rec, host);
        for (int k = 0; k < 10; k++) {
            char mx[32];
            snprintf(mx, sizeof mx, "h%d-%d.example.test", i, k);
            zone_host(&z, host + 4, Z_MX, mx, 0);
            zone_addr(&z, mx, "198.51.100.1");
        }
    }
    strcat(rec, " -all");
    zone_txt(&z, "example.test", rec);
    struct spf_request req = request("192.0.2.1", "a@example.test");
    struct spf_outcome out;
    run(&z, &req, &out);
    assert_int_equal(out.result, SPF_FAIL);
    assert_int_equal(out.lookups, 10);

    struct dnsview *v = dnsview_new();
    for (int i = 0; i < DNSVIEW_MAX - 50; i++) {
        char name[32];
        snprintf(name, sizeof name, "other%d.test", i);
        dnsview_put(v, name, DNS_T_TXT, dns_answer_new(DNS_NXDOMAIN));
    }
    int rounds = 0;
    while (spf_check(v, &req, &out) == MAILAUTH_NEED_DNS) {
        assert_true(++rounds < 50);
        answer_pending(v, &z);
    }
    assert_int_equal(out.result, SPF_TEMPERROR);
    dnsview_free(&v);
    zone_free(&z);
}

/* Targets that are not names; %{p} preferring the checked domain. */
static void test_targets_and_p(void **state)
{
    (void)state;
    static const char long_local[] =
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb@example.test";
    struct zone z = {0};
    struct spf_outcome out;
    zone_txt(&z, "example.test", "v=spf1 include:%{l}.example.test -all");
    struct spf_request req = request("192.0.2.3", long_local);
    run(&z, &req, &out);
    assert_int_equal(out.result, SPF_PERMERROR);
    assert_non_null(strstr(out.problem, "not a valid domain"));
    zone_free(&z);
    zone_txt(&z, "example.test", "v=spf1 redirect=%{l}.example.test");
    run(&z, &req, &out);
    assert_int_equal(out.result, SPF_PERMERROR);
    zone_free(&z);

    /* %{p}: the checked domain itself wins over a sub-domain and others */
    zone_txt(&z, "email.example.com", "v=spf1 -all exp=why.example.com");
    zone_txt(&z, "why.example.com", "%{p}");
    zone_host(&z, "3.2.0.192.in-addr.arpa", Z_PTR, "other.test", 0);
    zone_host(&z, "3.2.0.192.in-addr.arpa", Z_PTR, "mx.email.example.com", 0);
    zone_host(&z, "3.2.0.192.in-addr.arpa", Z_PTR, "email.example.com", 0);
    zone_host(&z, "3.2.0.192.in-addr.arpa", Z_PTR, "bad..name", 0);
    zone_addr(&z, "other.test", "192.0.2.3");
    zone_addr(&z, "mx.email.example.com", "192.0.2.3");
    zone_addr(&z, "email.example.com", "192.0.2.3");
    req = request("192.0.2.3", "a@email.example.com");
    run(&z, &req, &out);
    assert_string_equal(out.explanation, "email.example.com");
    zone_free(&z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7208_suite),
        cmocka_unit_test(test_rfc4408_suite_informational),
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_mx_addresses_in_one_round),
        cmocka_unit_test(test_lookup_limit),
        cmocka_unit_test(test_void_limit),
        cmocka_unit_test(test_mx_and_ptr_limits),
        cmocka_unit_test(test_record_limits),
        cmocka_unit_test(test_syntax),
        cmocka_unit_test(test_macro_examples),
        cmocka_unit_test(test_macro_domains),
        cmocka_unit_test(test_helo_identity_and_mapped),
        cmocka_unit_test(test_view_bound),
        cmocka_unit_test(test_targets_and_p),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
