/* test-srs.c — the Sender Rewriting Scheme (src/mailauth/srs.h): round
 * trips, SRS1 chains, case folding, forged and stale addresses, secret
 * rotation, malformed input, length limits, and the secret file.
 *
 * The fixed vectors were made by python3-srs (pysrs 1.0.4, the Guarded
 * strategy, as libsrs2) with the same secrets and clock; srs-interop.py
 * checks many more against it at test time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mailauth/srs.h"

#define NOW ((time_t)1700000000) /* day 19675, "G3" */
#define DAY ((time_t)86400)
#define SECRET_A "c2VjcmV0LXNlY3JldC1zZWNyZXQ="         /* "secret-secret-secret" */
#define SECRET_B "b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA==" /* "other-secret-other-secret" */

static struct srs *make(const char *first, const char *second)
{
    const char *err = NULL;
    struct srs *srs = srs_new(NULL, &err);
    assert_non_null(srs);
    assert_int_equal(srs_add_secret(srs, first, strlen(first), &err), 0);
    if (second != NULL)
        assert_int_equal(srs_add_secret(srs, second, strlen(second), &err), 0);
    return srs;
}

static enum srs_result fwd(const struct srs *srs, const char *sender, const char *domain,
                           char *out)
{
    return srs_forward(srs, sender, domain, NOW, out);
}

static enum srs_result rev(const struct srs *srs, const char *addr, time_t now, char *out)
{
    return srs_reverse(srs, addr, now, out);
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s + 32);
}

static void upper(char *s)
{
    for (; *s; s++)
        if (*s >= 'a' && *s <= 'z')
            *s = (char)(*s - 32);
}

static void test_pysrs_vectors(void **state)
{
    (void)state;
    struct srs *a = make(SECRET_A, NULL), *b = make(SECRET_B, NULL);
    char out[SRS_ADDRESS_MAX + 1], back[SRS_ADDRESS_MAX + 1];
    assert_int_equal(fwd(a, "user@orig.example", "fwd.example", out), SRS_OK);
    assert_string_equal(out, "SRS0=hkTd=G3=orig.example=user@fwd.example");
    assert_int_equal(fwd(b, out, "second.example", back), SRS_OK);
    assert_string_equal(back, "SRS1=PMb1=fwd.example==hkTd=G3=orig.example=user@second.example");
    assert_int_equal(fwd(a, back, "third.example", out), SRS_OK);
    assert_string_equal(out, "SRS1=tUUc=fwd.example==hkTd=G3=orig.example=user@third.example");
    srs_free(&a);
    srs_free(&b);
    assert_null(a);
    srs_free(&a); /* NULL is fine */
}

static void test_round_trip(void **state)
{
    (void)state;
    static const struct {
        const char *label, *sender;
    } cases[] = {
        {"plain", "user@orig.example"},
        {"atext", "a.b+c!#$%&'*/=?^_`{|}~-x@sub.orig.example"},
        {"equals", "a=b==c@orig.example"},
        {"utf8", "j\xc3\xb6rg@b\xc3\xbc\x63her.example"},
        {"digits", "1@1.2.3.example"},
        {"caps", "User.Name@Orig.EXAMPLE"},
    };
    struct srs *srs = make(SECRET_A, NULL);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[SRS_ADDRESS_MAX + 1], back[SRS_ADDRESS_MAX + 1];
        print_message("case %s\n", cases[i].label);
        assert_int_equal(fwd(srs, cases[i].sender, "fwd.example", out), SRS_OK);
        assert_true(strncmp(out, "SRS0=", 5) == 0);
        assert_true(srs_is_srs(out, strcspn(out, "@")));
        assert_int_equal(rev(srs, out, NOW, back), SRS_OK);
        assert_string_equal(back, cases[i].sender);
    }
    srs_free(&srs);
}

static void test_unchanged(void **state)
{
    (void)state;
    struct srs *srs = make(SECRET_A, NULL);
    char out[SRS_ADDRESS_MAX + 1];
    strcpy(out, "junk");
    assert_int_equal(fwd(srs, "", "fwd.example", out), SRS_UNCHANGED);
    assert_string_equal(out, "");
    assert_int_equal(fwd(srs, "<>", "fwd.example", out), SRS_UNCHANGED);
    assert_string_equal(out, "");
    /* a sender at F: our own user, or an SRS address we made */
    assert_int_equal(fwd(srs, "me@FWD.example", "fwd.example", out), SRS_UNCHANGED);
    assert_string_equal(out, "me@FWD.example");
    char once[SRS_ADDRESS_MAX + 1];
    assert_int_equal(fwd(srs, "user@orig.example", "fwd.example", once), SRS_OK);
    assert_int_equal(fwd(srs, once, "fwd.example", out), SRS_UNCHANGED);
    assert_string_equal(out, once);
    srs_free(&srs);
}

/* Three forwarders A -> B -> C and the bounce back: C's SRS1 names A (not
 * B), so C reverses straight to A's SRS0, which A reverses to the
 * original. */
static void test_srs1_chain(void **state)
{
    (void)state;
    struct srs *a = make(SECRET_A, NULL), *b = make(SECRET_B, NULL);
    struct srs *c = make("Y2NjY2NjY2NjY2NjY2NjY2NjY2NjYw==", NULL);
    char s0[SRS_ADDRESS_MAX + 1], s1[SRS_ADDRESS_MAX + 1], s1c[SRS_ADDRESS_MAX + 1];
    char back[SRS_ADDRESS_MAX + 1], orig[SRS_ADDRESS_MAX + 1];
    assert_int_equal(fwd(a, "u@o.example", "a.example", s0), SRS_OK);
    assert_int_equal(fwd(b, s0, "b.example", s1), SRS_OK);
    assert_true(strncmp(s1, "SRS1=", 5) == 0);
    assert_non_null(strstr(s1, "=a.example==")); /* names A, keeps its SRS0 */
    assert_int_equal(fwd(c, s1, "c.example", s1c), SRS_OK);
    assert_non_null(strstr(s1c, "=a.example=="));
    assert_int_equal(strlen(s1c), strlen(s1)); /* no growth along the chain */

    assert_int_equal(rev(c, s1c, NOW, back), SRS_OK);
    assert_int_equal(rev(a, back, NOW, orig), SRS_OK);
    assert_string_equal(orig, "u@o.example");
    assert_int_equal(rev(b, s1, NOW + 400 * DAY, back), SRS_OK); /* SRS1 has no day */
    assert_int_equal(rev(a, back, NOW, orig), SRS_OK);
    assert_string_equal(orig, "u@o.example");
    /* one forwarder's SRS1 is not another's */
    assert_int_equal(rev(b, s1c, NOW, back), SRS_FORGED);
    assert_string_equal(back, "");
    /* a separator other than '=' after the tag is kept through the chain */
    char plus[SRS_ADDRESS_MAX + 1];
    snprintf(plus, sizeof plus, "SRS0+%s", s0 + 5);
    assert_int_equal(rev(a, plus, NOW, orig), SRS_OK);
    assert_int_equal(fwd(b, plus, "b.example", s1), SRS_OK);
    assert_non_null(strstr(s1, "=a.example=+"));
    assert_int_equal(rev(b, s1, NOW, back), SRS_OK);
    assert_string_equal(back, plus);
    srs_free(&a);
    srs_free(&b);
    srs_free(&c);
}

static void test_case_folding(void **state)
{
    (void)state;
    struct srs *a = make(SECRET_A, NULL), *b = make(SECRET_B, NULL);
    char out[SRS_ADDRESS_MAX + 1], back[SRS_ADDRESS_MAX + 1], s1[SRS_ADDRESS_MAX + 1];
    assert_int_equal(fwd(a, "User@Orig.Example", "fwd.example", out), SRS_OK);
    char folded[SRS_ADDRESS_MAX + 1];
    strcpy(folded, out);
    lower(folded);
    assert_int_equal(rev(a, folded, NOW, back), SRS_OK);
    assert_string_equal(back, "user@orig.example");
    upper(folded);
    assert_int_equal(rev(a, folded, NOW, back), SRS_OK);
    assert_string_equal(back, "USER@ORIG.EXAMPLE");
    /* SRS1, folded */
    assert_int_equal(fwd(b, out, "b.example", s1), SRS_OK);
    lower(s1);
    assert_int_equal(rev(b, s1, NOW, back), SRS_OK);
    assert_true(strncmp(back, "SRS0", 4) == 0);
    lower(back);
    assert_int_equal(rev(a, back, NOW, out), SRS_OK);
    assert_string_equal(out, "user@orig.example");
    srs_free(&a);
    srs_free(&b);
}

static void test_tampered(void **state)
{
    (void)state;
    struct srs *srs = make(SECRET_A, NULL);
    char back[SRS_ADDRESS_MAX + 1];
    static const char *const forged[] = {
        "SRS0=hkTe=G3=orig.example=user@fwd.example",  /* one hash character */
        "SRS0=hkTd=G4=orig.example=user@fwd.example",  /* the day */
        "SRS0=hkTd=G3=orig.example=usef@fwd.example",  /* the user */
        "SRS0=hkTd=G3=evil.example=user@fwd.example",  /* the host */
        "SRS0=hkT=G3=orig.example=user@fwd.example",   /* too short a hash */
        "SRS0=hkTdA=G3=orig.example=user@fwd.example", /* a wrong longer hash */
        "SRS0=hkTd=G3=orig.example=user=x@fwd.example",
        "SRS1=PMb1=fwd.example==hkTd=G3=orig.example=user@fwd.example", /* B's, not ours */
    };
    for (size_t i = 0; i < sizeof forged / sizeof *forged; i++) {
        print_message("forged %s\n", forged[i]);
        strcpy(back, "junk");
        assert_int_equal(rev(srs, forged[i], NOW, back), SRS_FORGED);
        assert_string_equal(back, "");
    }
    assert_int_equal(rev(srs, "SRS0=hkTd=G3=orig.example=user@fwd.example", NOW, back), SRS_OK);
    /* the domain part of the bounce address is not looked at */
    assert_int_equal(rev(srs, "SRS0=hkTd=G3=orig.example=user@elsewhere", NOW, back), SRS_OK);
    assert_int_equal(rev(srs, "SRS0=hkTd=G3=orig.example=user", NOW, back), SRS_OK);
    assert_string_equal(back, "user@orig.example");
    srs_free(&srs);
}

static void test_hash_length(void **state)
{
    (void)state;
    const char *err = NULL;
    struct srs_options o;
    srs_options_default(&o);
    assert_int_equal(o.hash_len, 4);
    assert_int_equal(o.max_age_days, 21);
    o.hash_len = 10;
    struct srs *long_ = srs_new(&o, &err);
    assert_int_equal(srs_add_secret(long_, SECRET_A, strlen(SECRET_A), &err), 0);
    struct srs *short_ = make(SECRET_A, NULL);
    char out[SRS_ADDRESS_MAX + 1], back[SRS_ADDRESS_MAX + 1];
    assert_int_equal(srs_forward(long_, "user@orig.example", "fwd.example", NOW, out), SRS_OK);
    assert_string_equal(out, "SRS0=hkTdP3LPHG=G3=orig.example=user@fwd.example");
    /* a longer hash is checked in full by a 4-character rewriter */
    assert_int_equal(rev(short_, out, NOW, back), SRS_OK);
    out[13] = out[13] == 'A' ? 'B' : 'A';
    assert_int_equal(rev(short_, out, NOW, back), SRS_FORGED);
    /* a 10-character rewriter refuses 4 */
    assert_int_equal(rev(long_, "SRS0=hkTd=G3=orig.example=user@x", NOW, back), SRS_FORGED);
    srs_free(&long_);
    srs_free(&short_);
    o.hash_len = 3;
    assert_null(srs_new(&o, &err));
    o.hash_len = SRS_HASH_LEN_MAX + 1;
    assert_null(srs_new(&o, &err));
    o.hash_len = 4;
    o.max_age_days = 0;
    assert_null(srs_new(&o, &err));
    o.max_age_days = SRS_MAX_AGE_MAX + 1;
    assert_null(srs_new(&o, &err));
    assert_non_null(err);
}

static void test_time(void **state)
{
    (void)state;
    struct srs *srs = make(SECRET_A, NULL);
    char out[SRS_ADDRESS_MAX + 1], back[SRS_ADDRESS_MAX + 1];
    assert_int_equal(fwd(srs, "user@orig.example", "fwd.example", out), SRS_OK);
    static const struct {
        const char *label;
        time_t now;
        enum srs_result want;
    } cases[] = {
        {"same day", NOW, SRS_OK},
        {"21 days on", NOW + 21 * DAY, SRS_OK},
        {"22 days on", NOW + 22 * DAY, SRS_EXPIRED},
        {"a year on", NOW + 365 * DAY, SRS_EXPIRED},
        {"one day early (clock skew)", NOW - DAY, SRS_OK},
        {"two days early", NOW - 2 * DAY, SRS_EXPIRED},
        {"a full cycle on", NOW + 1024 * DAY, SRS_OK}, /* the cycle wraps, as in libsrs2 */
        {"a cycle and 22 days on", NOW + 1046 * DAY, SRS_EXPIRED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        print_message("case %s\n", cases[i].label);
        assert_int_equal(rev(srs, out, cases[i].now, back), cases[i].want);
    }
    /* a forged address is forged, whatever its age */
    assert_int_equal(rev(srs, "SRS0=AAAA=AA=orig.example=user@x", NOW, back), SRS_FORGED);
    /* a configured maximum */
    const char *err = NULL;
    struct srs_options o = {.max_age_days = 3, .hash_len = 4};
    struct srs *short_ = srs_new(&o, &err);
    assert_int_equal(srs_add_secret(short_, SECRET_A, strlen(SECRET_A), &err), 0);
    assert_int_equal(rev(short_, out, NOW + 3 * DAY, back), SRS_OK);
    assert_int_equal(rev(short_, out, NOW + 4 * DAY, back), SRS_EXPIRED);
    /* days across the epoch's first slots */
    assert_int_equal(srs_forward(short_, "u@o.example", "f.example", 0, out), SRS_OK);
    assert_non_null(strstr(out, "=AA=o.example="));
    assert_int_equal(rev(short_, out, 3 * DAY, back), SRS_OK);
    assert_int_equal(srs_forward(short_, "u@o.example", "f.example", 1023 * DAY, out), SRS_OK);
    assert_non_null(strstr(out, "=77=o.example="));
    assert_int_equal(rev(short_, out, 1024 * DAY + 2 * DAY, back), SRS_OK); /* wraps to day 2 */
    srs_free(&short_);
    srs_free(&srs);
}

static void test_rotation(void **state)
{
    (void)state;
    struct srs *old = make(SECRET_A, NULL), *both = make(SECRET_B, SECRET_A);
    struct srs *new_only = make(SECRET_B, NULL);
    char by_old[SRS_ADDRESS_MAX + 1], by_both[SRS_ADDRESS_MAX + 1], back[SRS_ADDRESS_MAX + 1];
    assert_int_equal(fwd(old, "user@orig.example", "fwd.example", by_old), SRS_OK);
    assert_int_equal(fwd(both, "user@orig.example", "fwd.example", by_both), SRS_OK);
    assert_string_not_equal(by_old, by_both); /* the first secret signs */
    assert_int_equal(rev(both, by_old, NOW, back), SRS_OK);
    assert_int_equal(rev(both, by_both, NOW, back), SRS_OK);
    assert_int_equal(rev(new_only, by_both, NOW, back), SRS_OK);
    assert_int_equal(rev(new_only, by_old, NOW, back), SRS_FORGED);
    assert_int_equal(rev(old, by_both, NOW, back), SRS_FORGED);
    srs_free(&old);
    srs_free(&both);
    srs_free(&new_only);
}

static void test_malformed(void **state)
{
    (void)state;
    struct srs *srs = make(SECRET_A, NULL);
    char out[SRS_ADDRESS_MAX + 1];
    static const struct {
        const char *label, *in;
        enum srs_result want;
    } reverse_cases[] = {
        {"plain user", "user@fwd.example", SRS_NOT_SRS},
        {"no separator", "SRS0hkTd=G3=o.example=u@x", SRS_NOT_SRS},
        {"SRS2", "SRS2=hkTd=G3=o.example=u@x", SRS_NOT_SRS},
        {"short", "SRS0@x", SRS_NOT_SRS},
        {"empty", "", SRS_NOT_SRS},
        {"postmaster", "postmaster", SRS_NOT_SRS},
        {"tag only", "SRS0=@x", SRS_MALFORMED},
        {"three fields", "SRS0=hkTd=G3=o.example@x", SRS_MALFORMED},
        {"empty hash", "SRS0==G3=o.example=u@x", SRS_MALFORMED},
        {"day of 1 char", "SRS0=hkTd=G=o.example=u@x", SRS_MALFORMED},
        {"day of 3 chars", "SRS0=hkTd=G33=o.example=u@x", SRS_MALFORMED},
        {"day not base32", "SRS0=hkTd=G1=o.example=u@x", SRS_MALFORMED},
        {"empty host", "SRS0=hkTd=G3==u@x", SRS_MALFORMED},
        {"bad host", "SRS0=hkTd=G3=o_x.example=u@x", SRS_MALFORMED},
        {"host label dash", "SRS0=hkTd=G3=o-.example=u@x", SRS_MALFORMED},
        {"empty user", "SRS0=hkTd=G3=o.example=@x", SRS_MALFORMED},
        {"user dot first", "SRS0=hkTd=G3=o.example=.u@x", SRS_MALFORMED},
        {"double dot", "SRS0=hkTd=G3=o.example=u..v@x", SRS_MALFORMED},
        {"space", "SRS0=hkTd=G3=o.example=u v@x", SRS_MALFORMED},
        {"quoted", "\"SRS0=hkTd=G3=o.example=u\"@x", SRS_NOT_SRS},
        {"control", "SRS0=hkTd=G3=o.example=u\x01@x", SRS_MALFORMED},
        {"srs1 no rest", "SRS1=abcd=a.example@x", SRS_MALFORMED},
        {"srs1 rest no sep", "SRS1=abcd=a.example=x@x", SRS_MALFORMED},
        {"srs1 only sep", "SRS1=abcd=a.example==@x", SRS_MALFORMED},
        {"srs1 empty host", "SRS1=abcd===x@x", SRS_MALFORMED},
        {"srs1 empty hash", "SRS1==a.example==x@x", SRS_MALFORMED},
    };
    for (size_t i = 0; i < sizeof reverse_cases / sizeof *reverse_cases; i++) {
        print_message("reverse %s\n", reverse_cases[i].label);
        strcpy(out, "junk");
        assert_int_equal(srs_reverse(srs, reverse_cases[i].in, NOW, out), reverse_cases[i].want);
        assert_string_equal(out, "");
    }
    static const struct {
        const char *label, *sender, *domain;
        enum srs_result want;
    } forward_cases[] = {
        {"no @", "user", "f.example", SRS_MALFORMED},
        {"empty local", "@o.example", "f.example", SRS_MALFORMED},
        {"empty domain", "u@", "f.example", SRS_MALFORMED},
        {"quoted", "\"a b\"@o.example", "f.example", SRS_MALFORMED},
        {"literal", "u@[192.0.2.1]", "f.example", SRS_MALFORMED},
        {"dot last", "u.@o.example", "f.example", SRS_MALFORMED},
        {"domain dot last", "u@o.example.", "f.example", SRS_MALFORMED},
        {"bad forwarder", "u@o.example", "f..example", SRS_MALFORMED},
        {"empty forwarder", "u@o.example", "", SRS_MALFORMED},
        {"newline", "u\n@o.example", "f.example", SRS_MALFORMED},
    };
    for (size_t i = 0; i < sizeof forward_cases / sizeof *forward_cases; i++) {
        print_message("forward %s\n", forward_cases[i].label);
        strcpy(out, "junk");
        assert_int_equal(fwd(srs, forward_cases[i].sender, forward_cases[i].domain, out),
                         forward_cases[i].want);
        assert_string_equal(out, "");
    }
    /* looks like SRS but is not: wrapped as a plain sender, and back */
    char back[SRS_ADDRESS_MAX + 1];
    assert_int_equal(fwd(srs, "SRS0=x@o.example", "f.example", out), SRS_OK);
    assert_string_equal(out + strlen(out) - strlen("=o.example=SRS0=x@f.example"),
                        "=o.example=SRS0=x@f.example");
    assert_int_equal(rev(srs, out, NOW, back), SRS_OK);
    assert_string_equal(back, "SRS0=x@o.example");
    assert_int_equal(fwd(srs, "srs1=x=y@o.example", "f.example", out), SRS_OK);
    assert_true(strncmp(out, "SRS0=", 5) == 0);
    assert_string_equal(srs_result_name(SRS_FORGED), "forged");
    assert_string_equal(srs_result_name(SRS_TOO_LONG), "too-long");
    assert_string_equal(srs_result_name((enum srs_result)99), "unknown");
    srs_free(&srs);
}

static void fill(char *p, char c, size_t n)
{
    memset(p, c, n);
    p[n] = '\0';
}

static void test_lengths(void **state)
{
    (void)state;
    struct srs *srs = make(SECRET_A, NULL);
    char out[SRS_ADDRESS_MAX + 1], back[SRS_ADDRESS_MAX + 1], in[2048], dom[300];
    /* "SRS0=HHHH=TT=" + host + "=" + user is 14 + host + user: 50 fit */
    fill(in, 'u', 40);
    strcat(in, "@o.example"); /* 9 + 40 = 49 */
    assert_int_equal(fwd(srs, in, "f.example", out), SRS_OK);
    assert_int_equal(strcspn(out, "@"), 63);
    assert_int_equal(rev(srs, out, NOW, back), SRS_OK);
    assert_string_equal(back, in);
    fill(in, 'u', 41);
    strcat(in, "@o.example");
    assert_int_equal(fwd(srs, in, "f.example", out), SRS_OK); /* exactly 64 */
    assert_int_equal(strcspn(out, "@"), 64);
    assert_int_equal(rev(srs, out, NOW, back), SRS_OK);
    fill(in, 'u', 42);
    strcat(in, "@o.example");
    assert_int_equal(fwd(srs, in, "f.example", out), SRS_TOO_LONG);
    assert_string_equal(out, "");
    /* inputs: local part 64, domain 253, address 254 */
    fill(in, 'u', 65);
    strcat(in, "@o.example");
    assert_int_equal(fwd(srs, in, "f.example", out), SRS_TOO_LONG);
    /* a 253-octet domain, labels of 63 */
    snprintf(dom, sizeof dom, "%.63s.%.63s.%.63s.%.61s", in, in, in, in);
    assert_int_equal(strlen(dom), 253);
    snprintf(in, sizeof in, "u@%s", dom);
    assert_int_equal(fwd(srs, in, "f.example", out), SRS_TOO_LONG); /* fine, but too long */
    assert_int_equal(fwd(srs, "u@o.example", dom, out), SRS_TOO_LONG); /* 19 + 1 + 253 */
    fill(dom, 'a', 63);
    strcat(dom, ".example");
    assert_int_equal(fwd(srs, "u@o.example", dom, out), SRS_OK); /* long F, fits */
    assert_int_equal(rev(srs, out, NOW, back), SRS_OK);
    fill(in, 'd', 254);
    snprintf(dom, sizeof dom, "%.63s.%.63s.%.63s.%.62s", in, in, in, in);
    snprintf(in, sizeof in, "u@%s", dom); /* a 254-octet domain */
    assert_int_equal(fwd(srs, in, "f.example", out), SRS_TOO_LONG);
    fill(dom, 'a', 64); /* a 64-octet label */
    snprintf(in, sizeof in, "u@%s.example", dom);
    assert_int_equal(fwd(srs, in, "f.example", out), SRS_MALFORMED);
    fill(in, 'a', 2000);
    assert_int_equal(fwd(srs, in, "f.example", out), SRS_TOO_LONG);
    assert_int_equal(rev(srs, in, NOW, out), SRS_NOT_SRS);
    memcpy(in, "SRS0=", 5);
    assert_int_equal(rev(srs, in, NOW, out), SRS_TOO_LONG);
    in[70] = '@';
    in[71] = '\0';
    assert_int_equal(rev(srs, in, NOW, out), SRS_TOO_LONG); /* local part of 70 */
    /* an SRS1 made of a long SRS0 does not fit */
    fill(in, 'u', 41);
    strcat(in, "@o.example");
    assert_int_equal(fwd(srs, in, "f.example", out), SRS_OK);
    struct srs *b = make(SECRET_B, NULL);
    assert_int_equal(fwd(b, out, "b.example", back), SRS_TOO_LONG);
    srs_free(&b);
    srs_free(&srs);
}

static void test_secrets(void **state)
{
    (void)state;
    const char *err = NULL;
    struct srs *srs = srs_new(NULL, &err);
    static const char *const bad[] = {
        "",                          /* empty */
        "c2VjcmV0",                  /* base64 of 6 bytes: too short */
        "not base64 at all!!",       /* not base64 */
        "c2VjcmV0LXNlY3JldC1zZWNyZXQ", /* missing padding */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err = NULL;
        assert_int_equal(srs_add_secret(srs, bad[i], strlen(bad[i]), &err), -1);
        assert_non_null(err);
    }
    char huge[200];
    fill(huge, 'A', 132);
    assert_int_equal(srs_add_secret(srs, huge, strlen(huge), &err), -1);
    /* a postsrsd secret (base64 of 18 bytes) and a 128-character one */
    assert_int_equal(srs_add_secret(srs, "q83vASNFZ4mrze8BI0VniavN", 24, &err), 0);
    fill(huge, 'A', 128);
    assert_int_equal(srs_add_secret(srs, huge, 128, &err), 0);
    for (int i = 2; i < SRS_SECRETS_MAX; i++)
        assert_int_equal(srs_add_secret(srs, SECRET_A, strlen(SECRET_A), &err), 0);
    assert_int_equal(srs_add_secret(srs, SECRET_A, strlen(SECRET_A), &err), -1);
    srs_free(&srs);

    /* the text of a file */
    srs = srs_new(NULL, &err);
    static const char text[] = "# sealmail SRS secrets\n\n  " SECRET_B "  # new\r\n"
                               "\t" SECRET_A "\n# old ones above\n";
    assert_int_equal(srs_add_secrets_text(srs, text, strlen(text), &err), 2);
    char out[SRS_ADDRESS_MAX + 1], back[SRS_ADDRESS_MAX + 1];
    assert_int_equal(fwd(srs, "user@orig.example", "fwd.example", out), SRS_OK);
    assert_string_not_equal(out, "SRS0=hkTd=G3=orig.example=user@fwd.example"); /* B signs */
    assert_int_equal(rev(srs, "SRS0=hkTd=G3=orig.example=user@fwd.example", NOW, back), SRS_OK);
    srs_free(&srs);
    srs = srs_new(NULL, &err);
    assert_int_equal(srs_add_secrets_text(srs, "# nothing\n\n", 11, &err), -1);
    assert_int_equal(srs_add_secrets_text(srs, SECRET_A "\nshort\n", strlen(SECRET_A) + 7, &err),
                     -1);
    srs_free(&srs);
}

static char tmpdir[] = "/tmp/test-srs-XXXXXX";

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static size_t count_secrets(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[256];
    size_t n = 0;
    while (fgets(line, sizeof line, f) != NULL)
        n += line[0] != '#' && line[0] != '\n';
    fclose(f);
    return n;
}

static void test_secret_files(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(tmpdir));
    char path[256], other[256];
    snprintf(path, sizeof path, "%s/srs.secret", tmpdir);
    snprintf(other, sizeof other, "%s/open.secret", tmpdir);
    const char *err = NULL;

    assert_null(srs_load(path, NULL, &err)); /* missing */
    assert_int_equal(errno, ENOENT);
    assert_int_equal(srs_secrets_generate(path, false, &err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(count_secrets(path), 1);
    struct srs *one = srs_load(path, NULL, &err);
    assert_non_null(one);
    /* never overwritten without rotate */
    assert_int_equal(srs_secrets_generate(path, false, &err), -1);
    assert_int_equal(errno, EEXIST);

    char by_one[SRS_ADDRESS_MAX + 1], out[SRS_ADDRESS_MAX + 1];
    assert_int_equal(srs_forward(one, "u@o.example", "f.example", NOW, by_one), SRS_OK);
    assert_int_equal(srs_secrets_generate(path, true, &err), 0);
    assert_int_equal(count_secrets(path), 2);
    struct srs *two = srs_load(path, NULL, &err);
    assert_non_null(two);
    assert_int_equal(srs_reverse(two, by_one, NOW, out), SRS_OK); /* old one still verifies */
    assert_int_equal(srs_forward(two, "u@o.example", "f.example", NOW, out), SRS_OK);
    assert_string_not_equal(out, by_one); /* the new one signs */
    for (int i = 0; i < SRS_SECRETS_MAX + 2; i++)
        assert_int_equal(srs_secrets_generate(path, true, &err), 0);
    assert_int_equal(count_secrets(path), SRS_SECRETS_MAX);
    struct srs *many = srs_load(path, NULL, &err);
    assert_non_null(many);
    assert_int_equal(srs_reverse(many, by_one, NOW, out), SRS_FORGED); /* dropped */
    srs_free(&many);
    srs_free(&one);
    srs_free(&two);

    /* rotate creates a missing file */
    assert_int_equal(srs_secrets_generate(other, true, &err), 0);
    assert_int_equal(count_secrets(other), 1);
    assert_int_equal(unlink(other), 0);

    /* refused: open to others, empty, not a file, too big, a bad line */
    write_file(other, SECRET_A "\n", 0644);
    assert_null(srs_load(other, NULL, &err));
    assert_int_equal(errno, EPERM);
    assert_int_equal(srs_secrets_generate(other, true, &err), -1); /* cannot read to rotate */
    write_file(other, "# none\n", 0600);
    assert_null(srs_load(other, NULL, &err));
    write_file(other, SECRET_A "\nshort\n", 0600);
    assert_null(srs_load(other, NULL, &err));
    assert_null(srs_load(tmpdir, NULL, &err));
    char big[SRS_SECRET_FILE_MAX + 64];
    fill(big, '#', sizeof big - 1);
    write_file(other, big, 0600);
    assert_null(srs_load(other, NULL, &err));
    write_file(other, SECRET_A "\n", 0600);
    struct srs_options o = {.max_age_days = 400, .hash_len = 4};
    assert_null(srs_load(other, &o, &err)); /* options checked */
    struct srs *ok = srs_load(other, NULL, &err);
    assert_non_null(ok);
    assert_int_equal(srs_forward(ok, "user@orig.example", "fwd.example", NOW, out), SRS_OK);
    assert_string_equal(out, "SRS0=hkTd=G3=orig.example=user@fwd.example");
    srs_free(&ok);
    /* a path in a missing directory */
    char nodir[300];
    snprintf(nodir, sizeof nodir, "%s/missing/srs.secret", tmpdir);
    assert_int_equal(srs_secrets_generate(nodir, false, &err), -1);

    unlink(other);
    unlink(path);
    assert_int_equal(rmdir(tmpdir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pysrs_vectors), cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_unchanged),     cmocka_unit_test(test_srs1_chain),
        cmocka_unit_test(test_case_folding),  cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_hash_length),   cmocka_unit_test(test_time),
        cmocka_unit_test(test_rotation),      cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_lengths),       cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_secret_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
