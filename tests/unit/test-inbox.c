/* test-inbox.c — disposable inboxes (store/inbox.h): a token opens its
 * inbox and nothing else, mail delivered to the public key is read with
 * it, expiry and removal shred the keys and files, and an address once
 * used is never handed out again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <ftw.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "crypto/seal.h"
#include "mime/mime.h"
#include "store/directory.h"
#include "store/drop.h"
#include "store/inbox.h"
#include "store/mailbox.h"

#define ADDRESS "Visitor7@Tmp.Example.Test"
#define FOLDED "visitor7@tmp.example.test"

struct fixture {
    char dir[64];
    struct directory *d;
    char token[INBOX_TOKEN_TEXT_LEN + 1];
    struct directory_inbox in;
    int64_t now;
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
    char sub[128];
    snprintf(f->dir, sizeof f->dir, "/tmp/test-inbox-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(sub, sizeof sub, "%s/inboxes", f->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    f->d = directory_open(f->dir, true, &error);
    assert_non_null(f->d);
    f->now = (int64_t)time(NULL);
    assert_int_equal(inbox_create(f->d, f->dir, ADDRESS, f->now + 3600, 1 << 20, f->token,
                                  &f->in, &error),
                     INBOX_OK);
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

static int open_with(struct fixture *f, const char *token, int64_t now, struct inbox_open *o)
{
    const char *error = NULL;
    int r = inbox_open(f->d, f->dir, token, strlen(token), now, o, &error);
    if (r == INBOX_ERROR)
        fprintf(stderr, "inbox_open: %s\n", error);
    return r;
}

static void committed(void *arg, size_t tag, const char *mailbox_dir, int result,
                      uint64_t bytes, const char *error)
{
    (void)arg, (void)tag, (void)mailbox_dir, (void)bytes, (void)error;
    assert_int_equal(result, 1);
}

/* Seal a message to the inbox's public key, as queued does. */
static void deliver(struct fixture *f, const char *name, const char *text, unsigned flags)
{
    char idir[4096];
    const char *error;
    int fd = memfd_create("msg", 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(inbox_dir(idir, sizeof idir, f->dir, f->in.mailbox), 0);
    struct drop_batch *b = drop_batch_new();
    struct drop_note note = {NULL, 0, flags};
    assert_int_equal(drop_batch_add_noted(b, idir, name, f->in.public_key, f->now, fd, &note, 0,
                                          &error),
                     0);
    drop_batch_commit(b, committed, NULL);
    drop_batch_free(&b);
    close(fd);
}

struct listing {
    unsigned n;
    char subjects[4][64];
    char keywords[4][64];
};

static void list_one(void *arg, const struct mailbox_message *m)
{
    struct listing *l = arg;
    if (l->n < 4) {
        snprintf(l->subjects[l->n], sizeof l->subjects[0], "%s", m->subject);
        snprintf(l->keywords[l->n], sizeof l->keywords[0], "%s", m->keywords);
    }
    l->n++;
}

static void test_create_normalises_and_hides_the_token(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(f->in.address, FOLDED);
    assert_int_equal(strlen(f->token), INBOX_TOKEN_TEXT_LEN);
    assert_int_equal(f->in.expires, f->now + 3600);
    /* the directory holds neither the token nor anything equal to it */
    char path[128];
    snprintf(path, sizeof path, "%s/directory.db", f->dir);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    static char db[1 << 20];
    size_t n = fread(db, 1, sizeof db, fp);
    fclose(fp);
    assert_null(memmem(db, n, f->token, INBOX_TOKEN_TEXT_LEN));
    assert_int_equal(directory_inbox_count(f->d, f->now), 1);
}

static void test_token_opens_mail(void **state)
{
    struct fixture *f = *state;
    struct inbox_open o;
    const char *error;
    deliver(f, "00000000000000000000000000000001", "Subject: hello\r\n\r\nbody\r\n", 0);
    deliver(f, "00000000000000000000000000000002", "Subject: spam\r\n\r\nbody\r\n", DROP_F_JUNK);
    assert_int_equal(open_with(f, f->token, f->now, &o), INBOX_OK);
    assert_string_equal(o.row.address, FOLDED);
    struct listing l = {0};
    assert_int_equal(mailbox_messages(o.mb, "INBOX", list_one, &l, &error), 2);
    assert_string_equal(l.subjects[0], "hello");
    assert_string_equal(l.keywords[0], "");
    /* what the DMARC verdict filed as junk is in the one list, marked */
    assert_string_equal(l.subjects[1], "spam");
    assert_string_equal(l.keywords[1], "$Junk");
    inbox_close(&o);
    /* the upper-case form of the same token works; anything else does not */
    char upper[INBOX_TOKEN_TEXT_LEN + 1];
    for (size_t i = 0; i <= INBOX_TOKEN_TEXT_LEN; i++)
        upper[i] = (char)(f->token[i] >= 'a' && f->token[i] <= 'f' ? f->token[i] - 32 : f->token[i]);
    assert_int_equal(open_with(f, upper, f->now, &o), INBOX_OK);
    inbox_close(&o);
}

static void test_wrong_tokens_open_nothing(void **state)
{
    struct fixture *f = *state;
    struct inbox_open o;
    char other[INBOX_TOKEN_TEXT_LEN + 1];
    memcpy(other, f->token, sizeof other);
    other[10] = other[10] == '0' ? '1' : '0';
    assert_int_equal(open_with(f, other, f->now, &o), INBOX_UNKNOWN);
    assert_int_equal(open_with(f, "", f->now, &o), INBOX_UNKNOWN);
    assert_int_equal(open_with(f, "not hex at all", f->now, &o), INBOX_UNKNOWN);
    other[INBOX_TOKEN_TEXT_LEN - 1] = '\0';
    assert_int_equal(open_with(f, other, f->now, &o), INBOX_UNKNOWN);
    other[10] = 'g';
    assert_int_equal(open_with(f, other, f->now, &o), INBOX_UNKNOWN);
}

static void test_resolution_follows_expiry(void **state)
{
    struct fixture *f = *state;
    struct directory_user t[DIRECTORY_TARGETS_MAX];
    assert_int_equal(directory_resolve(f->d, FOLDED, t, DIRECTORY_TARGETS_MAX), 1);
    assert_true(t[0].disposable);
    assert_string_equal(t[0].mailbox, f->in.mailbox);
    assert_memory_equal(t[0].public_key, f->in.public_key, sizeof t[0].public_key);
    /* a +tag reaches it too; another local part does not */
    assert_int_equal(directory_resolve(f->d, "visitor7+x@tmp.example.test", t, 4), 1);
    assert_int_equal(directory_resolve(f->d, "visitor8@tmp.example.test", t, 4), 0);
    /* usage is counted on the inbox row */
    assert_int_equal(directory_user_usage(f->d, f->in.mailbox, 500, false), 0);
    assert_int_equal(directory_resolve(f->d, FOLDED, t, 4), 1);
    assert_int_equal(t[0].used_bytes, 500);
    /* expired: refused at once, before the sweeper came */
    assert_int_equal(directory_inbox_set_expiry(f->d, f->in.id, f->now - 1), 0);
    assert_int_equal(directory_resolve(f->d, FOLDED, t, 4), 0);
    struct inbox_open o;
    assert_int_equal(open_with(f, f->token, f->now, &o), INBOX_UNKNOWN);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void test_sweep_shreds_and_tombstones(void **state)
{
    struct fixture *f = *state;
    const char *error;
    char token2[INBOX_TOKEN_TEXT_LEN + 1], idir[4096];
    struct directory_inbox other;
    assert_int_equal(inbox_create(f->d, f->dir, "other@tmp.example.test", f->now + 7200, 0,
                                  token2, &other, &error),
                     INBOX_OK);
    deliver(f, "00000000000000000000000000000003", "Subject: x\r\n\r\ny\r\n", 0);
    /* nothing is due yet */
    assert_int_equal(inbox_sweep(f->d, f->dir, f->now, 16, NULL, NULL, &error), 0);
    /* an hour later the first is due, the other not */
    assert_int_equal(inbox_sweep(f->d, f->dir, f->now + 3600, 16, NULL, NULL, &error), 1);
    assert_int_equal(inbox_dir(idir, sizeof idir, f->dir, f->in.mailbox), 0);
    assert_false(exists(idir));
    struct inbox_open o;
    assert_int_equal(open_with(f, f->token, f->now, &o), INBOX_UNKNOWN);
    assert_int_equal(open_with(f, token2, f->now, &o), INBOX_OK);
    inbox_close(&o);
    /* the address is never handed out again, in any spelling */
    char token3[INBOX_TOKEN_TEXT_LEN + 1];
    struct directory_inbox again;
    assert_int_equal(inbox_create(f->d, f->dir, ADDRESS, f->now + 60, 0, token3, &again, &error),
                     INBOX_TAKEN);
    assert_int_equal(inbox_create(f->d, f->dir, FOLDED, f->now + 60, 0, token3, &again, &error),
                     INBOX_TAKEN);
    /* nor is a live one */
    assert_int_equal(inbox_create(f->d, f->dir, "OTHER@tmp.example.test", f->now + 60, 0, token3,
                                  &again, &error),
                     INBOX_TAKEN);
    assert_int_equal(inbox_create(f->d, f->dir, "bad..dots@tmp.example.test", f->now + 60, 0,
                                  token3, &again, &error),
                     INBOX_INVALID);
    /* the failed attempts left no directory behind */
    snprintf(idir, sizeof idir, "%s/inboxes", f->dir);
    unsigned entries = 0;
    DIR *d = opendir(idir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        entries += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(entries, 1);
    assert_int_equal(directory_inbox_count(f->d, f->now), 1);
}

static void test_random_local_parts(void **state)
{
    (void)state;
    char a[INBOX_LOCAL_RANDOM_LEN + 1], b[INBOX_LOCAL_RANDOM_LEN + 1];
    inbox_random_local(a);
    inbox_random_local(b);
    assert_int_equal(strlen(a), INBOX_LOCAL_RANDOM_LEN);
    assert_string_not_equal(a, b);
    assert_true(a[0] >= 'a' && a[0] <= 'z');
    for (size_t i = 0; i < INBOX_LOCAL_RANDOM_LEN; i++)
        assert_non_null(strchr("abcdefghijkmnpqrstuvwxyz23456789", a[i]));
}

int main(void)
{
    seal_init();
    mime_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_normalises_and_hides_the_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_opens_mail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_tokens_open_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolution_follows_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_shreds_and_tombstones, setup, teardown),
        cmocka_unit_test(test_random_local_parts),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    mime_shutdown();
    return r;
}
