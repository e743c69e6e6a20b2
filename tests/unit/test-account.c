/* test-account.c — accounts (store/account.h): unlocking by password, app
 * password and recovery key, and the rule that a login costs exactly one
 * Argon2id run whatever the account holds, so that a wrong password takes
 * as long to fail as a right one takes to succeed and an unknown address
 * looks like a known one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "crypto/seal.h"
#include "mime/mime.h"
#include "store/account.h"
#include "store/directory.h"

#define ADDRESS "owner@example.test"
#define PASSWORD "correct horse"

struct fixture {
    char dir[64];
    struct directory *d;
    struct keywrap_params params;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    const char *error;
    char recovery[KEYWRAP_RECOVERY_TEXT_MAX];
    snprintf(f->dir, sizeof f->dir, "/tmp/test-account-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char sub[128];
    snprintf(sub, sizeof sub, "%s/mailboxes", f->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    f->d = directory_open(f->dir, true, &error);
    assert_non_null(f->d);
    assert_int_equal(directory_domain_add(f->d, "example.test"), 0);
    f->params = (struct keywrap_params){KEYWRAP_MIN_OPS, KEYWRAP_MIN_MEM_KIB};
    assert_int_equal(account_create(f->d, f->dir, ADDRESS, PASSWORD, strlen(PASSWORD),
                                    &f->params, 0, recovery, &error), 0);
    seal_wipe(recovery, sizeof recovery);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    directory_close(&f->d);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Unlock and report the result and the Argon2id runs it took. */
static int unlock(struct fixture *f, const char *address, const char *password,
                  unsigned *runs_r)
{
    struct account acct;
    const char *error;
    unsigned before = account_password_checks();
    int r = account_unlock(f->d, address, password, strlen(password), &f->params, &acct,
                           &error);
    *runs_r = account_password_checks() - before;
    account_free(&acct);
    return r;
}

static void test_one_run_per_login(void **state)
{
    struct fixture *f = *state;
    struct account acct;
    const char *error;
    unsigned runs;
    char app[ACCOUNT_APP_PASSWORDS_MAX][ACCOUNT_APP_PASSWORD_LEN + 1];

    assert_int_equal(unlock(f, ADDRESS, PASSWORD, &runs), KEYWRAP_OK);
    assert_int_equal(runs, 1);
    assert_int_equal(unlock(f, ADDRESS, "wrong", &runs), KEYWRAP_WRONG);
    assert_int_equal(runs, 1);

    /* the most app passwords an account may hold */
    assert_int_equal(account_unlock(f->d, ADDRESS, PASSWORD, strlen(PASSWORD), &f->params,
                                    &acct, &error), KEYWRAP_OK);
    for (int i = 0; i < ACCOUNT_APP_PASSWORDS_MAX; i++) {
        char label[16];
        snprintf(label, sizeof label, "device%d", i);
        assert_int_equal(account_app_password_add(f->d, &acct, label, &f->params, app[i],
                                                  &error), 0);
    }
    account_free(&acct);

    for (int i = 0; i < ACCOUNT_APP_PASSWORDS_MAX; i++) {
        assert_int_equal(unlock(f, ADDRESS, app[i], &runs), KEYWRAP_OK);
        assert_int_equal(runs, 1);
    }
    assert_int_equal(unlock(f, ADDRESS, PASSWORD, &runs), KEYWRAP_OK);
    assert_int_equal(runs, 1);
    /* wrong passwords, one of them shaped like an app password */
    assert_int_equal(unlock(f, ADDRESS, "wrong", &runs), KEYWRAP_WRONG);
    assert_int_equal(runs, 1);
    assert_int_equal(unlock(f, ADDRESS, "abcdefghijkmnopqrstuvwxy", &runs), KEYWRAP_WRONG);
    assert_int_equal(runs, 1);
    /* another account's app password is just a wrong password here */
    assert_int_equal(unlock(f, "nobody@example.test", app[0], &runs), KEYWRAP_WRONG);
    assert_int_equal(runs, 1);
}

static void test_app_password_replaced_by_label(void **state)
{
    struct fixture *f = *state;
    struct account acct;
    const char *error;
    unsigned runs;
    char first[ACCOUNT_APP_PASSWORD_LEN + 1], second[ACCOUNT_APP_PASSWORD_LEN + 1];
    assert_int_equal(account_unlock(f->d, ADDRESS, PASSWORD, strlen(PASSWORD), &f->params,
                                    &acct, &error), KEYWRAP_OK);
    assert_int_equal(account_app_password_add(f->d, &acct, "phone", &f->params, first, &error),
                     0);
    assert_int_equal(account_app_password_add(f->d, &acct, "phone", &f->params, second,
                                              &error), 0);
    account_free(&acct);
    assert_int_equal(unlock(f, ADDRESS, first, &runs), KEYWRAP_WRONG);
    assert_int_equal(runs, 1);
    assert_int_equal(unlock(f, ADDRESS, second, &runs), KEYWRAP_OK);
}

/* An app password stored before selectors existed (directory schema 2)
 * costs a run more until its first use gives it a selector. */
static void test_legacy_app_password_upgraded(void **state)
{
    struct fixture *f = *state;
    struct account acct;
    const char *error;
    unsigned runs;
    struct directory_wrap w = {.kind = DIRECTORY_WRAP_APP_PASSWORD};
    assert_int_equal(account_unlock(f->d, ADDRESS, PASSWORD, strlen(PASSWORD), &f->params,
                                    &acct, &error), KEYWRAP_OK);
    snprintf(w.label, sizeof w.label, "old-phone");
    assert_int_equal(keywrap_wrap_password(acct.mk, "an old app password", 19,
                                           KEYWRAP_APP_PASSWORD, &f->params, acct.user.mailbox,
                                           w.bytes, &w.len, &error), 0);
    assert_int_equal(directory_user_set_wrap(f->d, acct.user.id, &w), 0); /* no selector */
    account_free(&acct);

    assert_int_equal(unlock(f, ADDRESS, "wrong", &runs), KEYWRAP_WRONG);
    assert_int_equal(runs, 2); /* the password wrap, then the legacy one */
    assert_int_equal(unlock(f, ADDRESS, "an old app password", &runs), KEYWRAP_OK);
    assert_int_equal(runs, 2);
    assert_int_equal(unlock(f, ADDRESS, "an old app password", &runs), KEYWRAP_OK);
    assert_int_equal(runs, 1); /* it has a selector now */
    assert_int_equal(unlock(f, ADDRESS, "wrong", &runs), KEYWRAP_WRONG);
    assert_int_equal(runs, 1);
}

int main(void)
{
    seal_init();
    mime_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_run_per_login, setup, teardown),
        cmocka_unit_test_setup_teardown(test_app_password_replaced_by_label, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_app_password_upgraded, setup, teardown),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    mime_shutdown();
    return r;
}
