/* test-directory.c — hosted domains in the directory database.
 *
 * Each test opens a fresh data directory.  Names are checked against a
 * table (valid ones with the form they are stored in); the version test
 * uses two handles on one file, as smtpd and the CLI would. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/log.h"
#include "store/directory.h"
#include "store/forwards.h"

static char root[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/test-directory.XXXXXX");
    return mkdtemp(root) == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh data directory and its directory, created. */
static struct directory *fresh(char *data_dir, size_t len)
{
    static int n;
    const char *error = NULL;
    snprintf(data_dir, len, "%s/d%d", root, n++);
    assert_int_equal(mkdir(data_dir, 0700), 0);
    struct directory *dir = directory_open(data_dir, true, &error);
    if (dir == NULL)
        fail_msg("directory_open: %s", error);
    return dir;
}

/* list collects "a;b;c;" */
struct names {
    char text[2048];
};

static void collect(void *arg, const char *domain)
{
    struct names *n = arg;
    size_t used = strlen(n->text);
    snprintf(n->text + used, sizeof n->text - used, "%s;", domain);
}

static const char *list(struct directory *dir)
{
    static struct names n;
    n.text[0] = '\0';
    assert_true(directory_domain_list(dir, collect, &n) >= 0);
    return n.text;
}

static void test_add_list_remove(void **state)
{
    char data_dir[128];
    (void)state;
    struct directory *dir = fresh(data_dir, sizeof data_dir);

    assert_string_equal(list(dir), "");
    assert_int_equal(directory_domain_add(dir, "example.org"), 0);
    assert_int_equal(directory_domain_add(dir, "b.example"), 0);
    assert_int_equal(directory_domain_add(dir, "a.example"), 0);
    assert_string_equal(list(dir), "a.example;b.example;example.org;"); /* name order */
    assert_int_equal(directory_domain_list(dir, collect, &(struct names){{0}}), 3);

    assert_int_equal(directory_domain_remove(dir, "b.example"), 0);
    assert_string_equal(list(dir), "a.example;example.org;");
    assert_int_equal(directory_domain_remove(dir, "b.example"), -1); /* not present */
    assert_non_null(strstr(directory_error(dir), "b.example"));
    assert_int_equal(directory_domain_remove(dir, "not valid!"), -1);
    directory_close(&dir);
    assert_null(dir);
    directory_close(&dir); /* accepts NULL */

    /* persistent, and reopening without create works */
    const char *error = NULL;
    dir = directory_open(data_dir, false, &error);
    assert_non_null(dir);
    assert_string_equal(list(dir), "a.example;example.org;");
    directory_close(&dir);
}

static void test_duplicates_refused(void **state)
{
    static const char *const again[] = {"dup.example", "DUP.example", "dup.example."};
    char data_dir[128];
    (void)state;
    struct directory *dir = fresh(data_dir, sizeof data_dir);
    assert_int_equal(directory_domain_add(dir, "dup.example"), 0);
    for (size_t i = 0; i < sizeof again / sizeof again[0]; i++) {
        print_message("case: %s\n", again[i]);
        assert_int_equal(directory_domain_add(dir, again[i]), -1);
        assert_non_null(strstr(directory_error(dir), "already exists"));
    }
    assert_string_equal(list(dir), "dup.example;");
    directory_close(&dir);
}

static const struct name_case {
    const char *label;
    const char *name;
    const char *stored; /* NULL: refused */
} name_cases[] = {
    {"simple", "example.org", "example.org"},
    {"case folded", "Mail.EXAMPLE.Net", "mail.example.net"},
    {"trailing dot dropped", "dot.example.", "dot.example"},
    {"single label", "localhost", "localhost"},
    {"digits and hyphens", "a-1.b2.example", "a-1.b2.example"},
    {"idn a-label", "xn--bcher-kva.example", "xn--bcher-kva.example"},
    {"63-char label",
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example",
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example"},
    {"253 characters", "LONG", "long"}, /* built in test_names */
    {"empty", "", NULL},
    {"only a dot", ".", NULL},
    {"two trailing dots", "a.example..", NULL},
    {"leading dot", ".example.org", NULL},
    {"empty label", "a..example", NULL},
    {"space", "bad name.example", NULL},
    {"leading hyphen", "-x.example", NULL},
    {"trailing hyphen", "x-.example", NULL},
    {"underscore", "a_b.example", NULL},
    {"slash", "a/b.example", NULL},
    {"at sign", "user@example.org", NULL},
    {"64-char label",
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example", NULL},
    {"254 characters", "TOOLONG", NULL}, /* built in test_names */
    {"utf-8 U-label", "b\xc3\xbc" "cher.example", NULL},
    {"numeric top-level label", "192.0.2.1", NULL},
    {"bracketed address", "[192.0.2.1]", NULL},
    {"control character", "a\x01.example", NULL},
    {"newline", "a.example\n", NULL},
};

/* A name of exactly len characters: labels of 63 joined by dots. */
static void long_name(char *out, size_t len)
{
    for (size_t i = 0; i < len; i++)
        out[i] = (i % 64 == 63) ? '.' : 'a';
    if (out[len - 1] == '.')
        out[len - 1] = 'b';
    out[len] = '\0';
}

static void test_names(void **state)
{
    char data_dir[128], name[300], expect[310];
    (void)state;
    struct directory *dir = fresh(data_dir, sizeof data_dir);
    for (size_t i = 0; i < sizeof name_cases / sizeof name_cases[0]; i++) {
        const struct name_case *c = &name_cases[i];
        const char *n = c->name;
        print_message("case: %s\n", c->label);
        if (strcmp(n, "LONG") == 0 || strcmp(n, "TOOLONG") == 0) {
            long_name(name, strcmp(n, "LONG") == 0 ? 253 : 254);
            n = name;
        }
        int r = directory_domain_add(dir, n);
        if (c->stored == NULL) {
            assert_int_equal(r, -1);
            assert_non_null(strstr(directory_error(dir), "invalid domain name"));
            /* nothing unprintable is echoed back */
            for (const char *p = directory_error(dir); *p; p++)
                assert_true(*p >= 0x20 && *p < 0x7f);
            continue;
        }
        if (r != 0)
            fail_msg("%s refused: %s", c->label, directory_error(dir));
        snprintf(expect, sizeof expect, "%s;", n == name ? name : c->stored);
        assert_string_equal(list(dir), expect);
        assert_int_equal(directory_domain_remove(dir, n), 0);
    }
    assert_string_equal(list(dir), "");
    directory_close(&dir);
}

static void test_version_changes(void **state)
{
    char data_dir[128];
    const char *error = NULL;
    (void)state;
    struct directory *a = fresh(data_dir, sizeof data_dir);
    struct directory *b = directory_open(data_dir, false, &error);
    assert_non_null(b);

    int64_t va = directory_version(a), vb = directory_version(b);
    assert_true(va >= 0 && vb >= 0);
    assert_int_equal(directory_version(a), va); /* stable while nothing changes */
    assert_int_equal(directory_version(b), vb);

    assert_int_equal(directory_domain_add(a, "one.example"), 0);
    int64_t vb2 = directory_version(b);
    assert_int_not_equal(vb2, vb);            /* another connection changed it */
    int64_t va2 = directory_version(a);
    assert_int_not_equal(va2, va);            /* and our own change counts too */

    assert_int_equal(directory_domain_remove(b, "one.example"), 0);
    assert_int_not_equal(directory_version(a), va2);
    assert_int_not_equal(directory_version(b), vb2);

    /* a failed change is no change, for either handle */
    int64_t before_a = directory_version(a), before_b = directory_version(b);
    assert_int_equal(directory_domain_remove(a, "absent.example"), -1);
    assert_int_equal(directory_domain_add(a, "one.example."), 0);
    assert_int_equal(directory_domain_add(a, "ONE.example"), -1);
    assert_int_not_equal(directory_version(a), before_a);
    before_a = directory_version(a);
    assert_int_not_equal(directory_version(b), before_b);
    before_b = directory_version(b);
    assert_int_equal(directory_domain_remove(a, "absent.example"), -1);
    assert_int_equal(directory_domain_add(a, "one.example"), -1);
    assert_int_equal(directory_version(a), before_a);
    assert_int_equal(directory_version(b), before_b);
    directory_close(&a);
    directory_close(&b);
}

static void test_open_errors(void **state)
{
    char data_dir[160], path[200];
    const char *error = NULL;
    (void)state;

    snprintf(data_dir, sizeof data_dir, "%s/missing", root);
    assert_null(directory_open(data_dir, false, &error)); /* no database: no create */
    assert_non_null(strstr(error, "sealmail init"));
    assert_null(directory_open(data_dir, true, &error));  /* no data_dir */
    assert_non_null(error);

    /* a database from a newer sealmail is refused */
    struct directory *dir = fresh(data_dir, sizeof data_dir);
    directory_close(&dir);
    snprintf(path, sizeof path, "%s/directory.db", data_dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO schema_version VALUES (999, 0)", NULL, NULL,
                                  NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_null(directory_open(data_dir, false, &error));
    assert_non_null(strstr(error, "newer"));
    assert_null(directory_open(data_dir, true, &error));

    /* not a database at all */
    snprintf(data_dir, sizeof data_dir, "%s/garbage", root);
    assert_int_equal(mkdir(data_dir, 0700), 0);
    snprintf(path, sizeof path, "%s/directory.db", data_dir);
    FILE *f = fopen(path, "w");
    fputs("this is not an SQLite database, just text long enough to matter\n", f);
    fclose(f);
    assert_null(directory_open(data_dir, false, &error));
    assert_non_null(error);
}

/* Opening with create again is idempotent: migrations are applied once. */
static void test_reopen_create(void **state)
{
    char data_dir[128];
    const char *error = NULL;
    (void)state;
    struct directory *dir = fresh(data_dir, sizeof data_dir);
    assert_int_equal(directory_domain_add(dir, "keep.example"), 0);
    struct directory *again = directory_open(data_dir, true, &error);
    assert_non_null(again);
    assert_string_equal(list(again), "keep.example;");
    directory_close(&again);
    directory_close(&dir);
}

/* --- mailboxes and aliases --------------------------------------------------- */

static void add_user(struct directory *dir, const char *address, uint64_t quota)
{
    struct directory_user u = {.quota_bytes = quota};
    struct directory_wrap w = {.kind = DIRECTORY_WRAP_PASSWORD, .len = 3, .bytes = {1, 2, 3}};
    uint8_t swrap[4] = {9, 9, 9, 9};
    static unsigned n;
    snprintf(u.address, sizeof u.address, "%s", address);
    snprintf(u.mailbox, sizeof u.mailbox, "%016x", ++n);
    if (directory_user_add(dir, &u, swrap, sizeof swrap, &w, 1) < 0)
        fail_msg("user_add %s: %s", address, directory_error(dir));
}

/* Resolve and return "mailbox-address;..." of the targets. */
static const char *resolve(struct directory *dir, const char *address)
{
    static char out[1024];
    struct directory_user t[DIRECTORY_TARGETS_MAX];
    int n = directory_resolve(dir, address, t, DIRECTORY_TARGETS_MAX);
    assert_true(n >= 0);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        strcat(out, t[i].address);
        strcat(out, ";");
    }
    return out;
}

/* Forwards join aliases at their level of resolution, with their policy. */
static void test_forwards_and_policy(void **state)
{
    char data_dir[128];
    struct directory_user t[8];
    struct directory_route r;
    (void)state;
    struct directory *dir = fresh(data_dir, sizeof data_dir);
    assert_int_equal(directory_domain_add(dir, "a.example"), 0);
    add_user(dir, "alice@a.example", 0);
    assert_int_equal(directory_alias_add(dir, "@a.example", "alice@a.example"), 0);

    assert_int_equal(directory_forward_add(dir, "Me@A.example", "You+X@Elsewhere.EXAMPLE"), 0);
    assert_int_equal(directory_forward_add(dir, "me@a.example", "you+x@elsewhere.example"), -1);
    assert_int_equal(directory_forward_add(dir, "alice@a.example", "x@y.example"), -1); /* a mailbox */
    assert_int_equal(directory_forward_add(dir, "me@a.example", "bob@a.example"), -1); /* hosted */
    assert_non_null(strstr(directory_error(dir), "alias add"));
    assert_int_equal(directory_forward_add(dir, "me@a.example", "not an address"), -1);
    assert_int_equal(directory_forward_add(dir, "me@c.example", "x@y.example"), -1); /* not hosted */

    /* forward-only, +tag kept in the route's source lookup */
    assert_int_equal(directory_resolve_route(dir, "me+news@a.example", t, 8, &r), 0);
    assert_string_equal(r.source, "me@a.example");
    assert_int_equal(r.n_forwards, 1);
    assert_string_equal(r.forwards[0], "you+x@elsewhere.example");
    assert_false(r.disabled);
    /* the catch-all does not catch what the forward takes */
    assert_int_equal(directory_resolve(dir, "me@a.example", t, 8), 0);
    assert_int_equal(directory_resolve_route(dir, "other@a.example", t, 8, &r), 1);
    assert_string_equal(r.source, "@a.example");
    assert_int_equal(r.n_forwards, 0);
    /* a mix of local and remote targets */
    assert_int_equal(directory_alias_add(dir, "me@a.example", "alice@a.example"), 0);
    assert_int_equal(directory_resolve_route(dir, "me@a.example", t, 8, &r), 1);
    assert_int_equal(r.n_forwards, 1);

    /* policy */
    assert_int_equal(directory_alias_set_disabled(dir, "me@a.example", true), 0);
    assert_int_equal(directory_resolve_route(dir, "me@a.example", t, 8, &r), 1);
    assert_true(r.disabled);
    assert_int_equal(directory_alias_set_disabled(dir, "me@a.example", false), 0);
    assert_int_equal(directory_alias_set_allow(dir, "me@a.example", "Boss@Corp.example, friends.example"), 0);
    assert_int_equal(directory_resolve_route(dir, "me@a.example", t, 8, &r), 1);
    assert_false(r.disabled);
    assert_string_equal(r.allow, "boss@corp.example friends.example");
    assert_true(directory_route_allows(r.allow, "boss@corp.example"));
    assert_true(directory_route_allows(r.allow, "BOSS@corp.example"));
    assert_true(directory_route_allows(r.allow, "anna@friends.example"));
    assert_false(directory_route_allows(r.allow, "anna@sub.friends.example"));
    assert_false(directory_route_allows(r.allow, "x@corp.example"));
    assert_false(directory_route_allows(r.allow, ""));
    assert_true(directory_route_allows("", ""));
    assert_int_equal(directory_alias_set_allow(dir, "me@a.example", "bad..x"), -1);
    assert_int_equal(directory_alias_set_disabled(dir, "nobody@a.example", true), -1);

    /* forwarding switched off: kept, not used */
    assert_int_equal(directory_domain_set_forwarding(dir, "a.example", false), 0);
    assert_int_equal(directory_resolve_route(dir, "me@a.example", t, 8, &r), 1);
    assert_int_equal(r.n_forwards, 0);
    assert_true(r.forwarding_off);
    assert_int_equal(directory_domain_set_forwarding(dir, "a.example", true), 0);
    assert_int_equal(directory_resolve_route(dir, "me@a.example", t, 8, &r), 1);
    assert_int_equal(r.n_forwards, 1);

    /* bounded */
    char target[64];
    for (int i = 1; i < DIRECTORY_FORWARDS_MAX; i++) {
        snprintf(target, sizeof target, "t%d@elsewhere.example", i);
        assert_int_equal(directory_forward_add(dir, "me@a.example", target), 0);
    }
    assert_int_equal(directory_forward_add(dir, "me@a.example", "one.more@elsewhere.example"), -1);
    assert_int_equal(directory_forward_remove(dir, "me@a.example", NULL), 0);
    assert_int_equal(directory_resolve_route(dir, "me@a.example", t, 8, &r), 1);
    assert_int_equal(r.n_forwards, 0);
    assert_int_equal(directory_domain_remove(dir, "a.example"), -1);
    directory_close(&dir);
}

static void test_users_and_resolution(void **state)
{
    char data_dir[128];
    struct directory_user u;
    (void)state;
    struct directory *dir = fresh(data_dir, sizeof data_dir);
    assert_int_equal(directory_domain_add(dir, "a.example"), 0);
    assert_int_equal(directory_domain_add(dir, "b.example"), 0);
    add_user(dir, "Alice@A.example", 0);
    add_user(dir, "bob@a.example", 1000);
    add_user(dir, "postmaster@b.example", 0);

    /* stored folded; duplicates and unhosted domains refused */
    assert_int_equal(directory_user_get(dir, "ALICE@a.EXAMPLE", &u), 1);
    assert_string_equal(u.address, "alice@a.example");
    struct directory_user dup = {0};
    snprintf(dup.address, sizeof dup.address, "alice@a.example");
    snprintf(dup.mailbox, sizeof dup.mailbox, "ffffffffffffffff");
    assert_int_equal(directory_user_add(dir, &dup, (const uint8_t *)"x", 1, NULL, 0), -1);
    snprintf(dup.address, sizeof dup.address, "carol@c.example");
    assert_int_equal(directory_user_add(dir, &dup, (const uint8_t *)"x", 1, NULL, 0), -1);
    assert_non_null(strstr(directory_error(dir), "not hosted"));

    /* exact, case, +tag, unknown */
    assert_string_equal(resolve(dir, "alice@a.example"), "alice@a.example;");
    assert_string_equal(resolve(dir, "ALICE@A.EXAMPLE"), "alice@a.example;");
    assert_string_equal(resolve(dir, "alice+news@a.example"), "alice@a.example;");
    assert_string_equal(resolve(dir, "nobody@a.example"), "");
    assert_string_equal(resolve(dir, "not an address"), "");
    assert_string_equal(resolve(dir, "@a.example"), "");

    /* aliases: to several mailboxes; cannot shadow a mailbox; targets must exist */
    assert_int_equal(directory_alias_add(dir, "team@a.example", "alice@a.example"), 0);
    assert_int_equal(directory_alias_add(dir, "team@a.example", "bob@a.example"), 0);
    assert_string_equal(resolve(dir, "team+x@a.example"), "alice@a.example;bob@a.example;");
    assert_int_equal(directory_alias_add(dir, "alice@a.example", "bob@a.example"), -1);
    assert_int_equal(directory_alias_add(dir, "x@a.example", "ghost@a.example"), -1);
    assert_int_equal(directory_alias_add(dir, "team@a.example", "alice@a.example"), -1);

    /* the catch-all takes only what nothing else takes */
    assert_int_equal(directory_alias_add(dir, "@a.example", "bob@a.example"), 0);
    assert_string_equal(resolve(dir, "nobody@a.example"), "bob@a.example;");
    assert_string_equal(resolve(dir, "alice@a.example"), "alice@a.example;");
    assert_string_equal(resolve(dir, "nobody@b.example"), "");

    /* bare postmaster: the first hosted domain (by name) where postmaster@
     * resolves, a catch-all included */
    assert_string_equal(resolve(dir, "PostMaster"), "bob@a.example;");
    assert_int_equal(directory_alias_remove(dir, "@a.example", NULL), 0);
    assert_string_equal(resolve(dir, "postmaster"), "postmaster@b.example;");
    assert_int_equal(directory_alias_add(dir, "@a.example", "bob@a.example"), 0);
    /* a local part no mailbox can have still reaches the catch-all */
    assert_string_equal(resolve(dir, "\xc3\xa9l\xc3\xa8ve@a.example"), "bob@a.example;");
    assert_string_equal(resolve(dir, "\xc3\xa9l\xc3\xa8ve@b.example"), "");

    /* a domain with mailboxes cannot be removed */
    assert_int_equal(directory_domain_remove(dir, "a.example"), -1);
    assert_non_null(strstr(directory_error(dir), "still has"));
    directory_close(&dir);
}

static void count_wrap(void *arg, const struct directory_wrap *w)
{
    (void)w;
    (*(int *)arg)++;
}

static void test_user_remove_and_usage(void **state)
{
    char data_dir[128];
    struct directory_user u;
    int wraps = 0;
    (void)state;
    struct directory *dir = fresh(data_dir, sizeof data_dir);
    assert_int_equal(directory_domain_add(dir, "a.example"), 0);
    add_user(dir, "alice@a.example", 100);
    assert_int_equal(directory_user_get(dir, "alice@a.example", &u), 1);
    assert_int_equal(directory_user_wraps(dir, u.id, 0, count_wrap, &wraps), 1);
    assert_int_equal(directory_user_usage(dir, u.mailbox, 70, false), 0);
    assert_int_equal(directory_user_usage(dir, u.mailbox, 50, false), 0);
    assert_int_equal(directory_user_get(dir, "alice@a.example", &u), 1);
    assert_int_equal(u.used_bytes, 120);
    assert_int_equal(directory_user_usage(dir, u.mailbox, -500, false), 0);
    assert_int_equal(directory_user_get(dir, "alice@a.example", &u), 1);
    assert_int_equal(u.used_bytes, 0);

    assert_int_equal(directory_alias_add(dir, "@a.example", "alice@a.example"), 0);
    struct directory_user removed;
    assert_int_equal(directory_user_remove(dir, "alice@a.example", &removed), 0);
    assert_string_equal(removed.mailbox, u.mailbox);
    assert_int_equal(directory_user_get(dir, "alice@a.example", &u), 0);
    assert_string_equal(resolve(dir, "x@a.example"), ""); /* the alias went with it */
    wraps = 0;
    assert_int_equal(directory_user_wraps(dir, removed.id, 0, count_wrap, &wraps), 0);
    assert_int_equal(directory_user_remove(dir, "alice@a.example", &removed), -1);
    assert_int_equal(directory_domain_remove(dir, "a.example"), 0);
    directory_close(&dir);
}

static void test_address_rules(void **state)
{
    static const struct {
        const char *in, *out; /* out NULL: refused */
    } cases[] = {
        {"Me@Example.COM", "me@example.com"}, {"a.b-c_d@x.example", "a.b-c_d@x.example"},
        {"a+b@x.example", NULL},              {".a@x.example", NULL},
        {"a.@x.example", NULL},               {"a..b@x.example", NULL},
        {"@x.example", NULL},                 {"a@", NULL},
        {"a b@x.example", NULL},              {"noat", NULL},
        {"\xc3\xa9@x.example", NULL},
    };
    char out[DIRECTORY_ADDRESS_MAX + 1];
    const char *why;
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int r = directory_address_normalise(cases[i].in, out, &why);
        if (cases[i].out == NULL) {
            assert_int_equal(r, -1);
        } else {
            assert_int_equal(r, 0);
            assert_string_equal(out, cases[i].out);
        }
    }
    char longlocal[80];
    memset(longlocal, 'a', 65);
    snprintf(longlocal + 65, sizeof longlocal - 65, "@x.example");
    assert_int_equal(directory_address_normalise(longlocal, out, &why), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_list_remove),
        cmocka_unit_test(test_duplicates_refused),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_version_changes),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_reopen_create),
        cmocka_unit_test(test_users_and_resolution),
        cmocka_unit_test(test_forwards_and_policy),
        cmocka_unit_test(test_user_remove_and_usage),
        cmocka_unit_test(test_address_rules),
    };
    log_init("test-directory", false, LOG_LEVEL_ERROR);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
