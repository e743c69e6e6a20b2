/* test-mailbox.c — the encrypted mailbox store: create, import, read,
 * search, verify; a wrong key; and import killed with SIGKILL again and
 * again, which must neither lose nor duplicate a message. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"
#include "crypto/seal.h"
#include "mime/mime.h"
#include "store/drop.h"
#include "store/mailbox.h"

#define MARKER "MAILBOX-TEST-MARKER"

static char root[64];
static uint8_t pk[32], sk[32], mk[32];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/test-mailbox.XXXXXX");
    if (mkdtemp(root) == NULL || seal_init() < 0 || mime_init() < 0)
        return -1;
    seal_keypair(pk, sk);
    seal_random(mk, sizeof mk);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void new_mailbox(char *dir, size_t len, const char *name, const uint8_t *key)
{
    const char *error = NULL;
    snprintf(dir, len, "%s/%s", root, name);
    if (mailbox_create(dir, key, &error) < 0)
        fail_msg("mailbox_create: %s", error);
}

static void deliver(const char *dir, unsigned i)
{
    char name[17], msg[1024];
    const char *error = NULL;
    uint64_t sealed;
    int n = snprintf(msg, sizeof msg,
                     "From: Sender %u <s%u@example.org>\r\nTo: <rcpt@example.net>\r\n"
                     "Subject: " MARKER " number %u\r\nMessage-ID: <%u@example.org>\r\n"
                     "Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n\r\n"
                     "Body of message %u with the word pelican%u in it.\r\n",
                     i, i, i, i, i, i);
    snprintf(name, sizeof name, "%016x", i + 1);
    int fd = memfd_create("msg", 0);
    assert_int_equal(write(fd, msg, (size_t)n), n);
    if (drop_deliver(dir, name, pk, 1700000000 + i, fd, &sealed, &error) != 1)
        fail_msg("deliver: %s", error);
    close(fd);
}

static struct mailbox *open_ok(const char *dir, const uint8_t *key)
{
    const char *error = NULL;
    struct mailbox *mb = mailbox_open(dir, key, pk, sk, &error);
    if (mb == NULL)
        fail_msg("mailbox_open: %s", error);
    return mb;
}

struct seen {
    unsigned n;
    uint32_t last_uid;
    char subjects[64][128];
};

static void collect(void *arg, const struct mailbox_message *m)
{
    struct seen *s = arg;
    assert_true(m->uid > s->last_uid);
    s->last_uid = m->uid;
    if (s->n < 64)
        snprintf(s->subjects[s->n], sizeof s->subjects[0], "%s", m->subject);
    s->n++;
}

static void count_uid(void *arg, uint32_t uid)
{
    (void)uid;
    (*(unsigned *)arg)++;
}

static void folder_names(void *arg, const struct mailbox_folder *f)
{
    strcat(arg, f->name);
    strcat(arg, f->special_use[0] ? f->special_use : "");
    strcat(arg, ";");
}

static void test_create_import_read(void **state)
{
    char dir[128], names[512] = "";
    const char *error = NULL;
    struct mailbox_import_stats st;
    struct mailbox_check c;
    (void)state;
    new_mailbox(dir, sizeof dir, "basic", mk);
    for (unsigned i = 0; i < 20; i++)
        deliver(dir, i);
    struct mailbox *mb = open_ok(dir, mk);
    assert_int_equal(mailbox_folders(mb, folder_names, names, &error), 6);
    assert_string_equal(names, "INBOX;Archive\\Archive;Drafts\\Drafts;Junk\\Junk;Sent\\Sent;"
                               "Trash\\Trash;");
    assert_int_equal(mailbox_import(mb, &st, &error), 0);
    assert_int_equal(st.imported, 20);
    assert_int_equal(mailbox_import(mb, &st, &error), 0);
    assert_int_equal(st.imported, 0);

    struct seen s = {0};
    assert_int_equal(mailbox_messages(mb, "INBOX", collect, &s, &error), 20);
    assert_string_equal(s.subjects[7], MARKER " number 7");
    unsigned hits = 0;
    assert_int_equal(mailbox_search_text(mb, "INBOX", "pelican7", count_uid, &hits, &error), 1);
    hits = 0;
    assert_int_equal(mailbox_search_text(mb, "INBOX", "sender", count_uid, &hits, &error), 20);
    assert_int_equal(mailbox_verify(mb, true, &c, &error), 0);
    assert_true(c.integrity_ok);
    assert_int_equal(c.messages, 20);
    assert_int_equal(c.bodies_checked, 20);
    assert_int_equal(c.bodies_bad, 0);
    mailbox_close(&mb);

    /* nothing of the messages in clear in any file of the mailbox */
    static const char *const files[] = {"store.db", "store.db-wal"};
    for (size_t i = 0; i < 2; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        off_t size = lseek(fd, 0, SEEK_END);
        char *data = malloc((size_t)size + 1);
        assert_int_equal(pread(fd, data, (size_t)size, 0), size);
        close(fd);
        assert_null(memmem(data, (size_t)size, MARKER, strlen(MARKER)));
        assert_null(memmem(data, (size_t)size, "pelican", 7));
        free(data);
    }
}

static void batch_ok(void *arg, size_t tag, const char *mailbox_dir, int result, uint64_t bytes,
                     const char *error)
{
    (void)arg, (void)tag, (void)mailbox_dir, (void)bytes, (void)error;
    assert_int_equal(result, 1);
}

/* A delivery flagged Junk (DMARC quarantine) lands in the \\Junk folder
 * with its Authentication-Results prefix; the others in INBOX. */
static void test_import_to_junk(void **state)
{
    char dir[128];
    const char *error = NULL;
    struct mailbox_import_stats st;
    (void)state;
    new_mailbox(dir, sizeof dir, "junk", mk);
    deliver(dir, 0);
    static const char msg[] = "From: <a@example.org>\r\nSubject: quarantined\r\n\r\nbody\r\n";
    static const char ar[] = "Authentication-Results: mx.test; dmarc=fail\r\n";
    int fd = memfd_create("msg", 0);
    assert_int_equal(write(fd, msg, sizeof msg - 1), (ssize_t)(sizeof msg - 1));
    struct drop_batch *b = drop_batch_new();
    struct drop_note note = {ar, sizeof ar - 1, DROP_F_JUNK};
    assert_int_equal(drop_batch_add_noted(b, dir, "00000000000000ff", pk, 1700000000, fd, &note,
                                          0, &error), 0);
    drop_batch_commit(b, batch_ok, NULL);
    drop_batch_free(&b);
    close(fd);
    struct mailbox *mb = open_ok(dir, mk);
    assert_int_equal(mailbox_import(mb, &st, &error), 0);
    assert_int_equal(st.imported, 2);
    struct seen in = {0}, junk = {0};
    assert_int_equal(mailbox_messages(mb, "INBOX", collect, &in, &error), 1);
    assert_int_equal(mailbox_messages(mb, "Junk", collect, &junk, &error), 1);
    assert_string_equal(junk.subjects[0], "quarantined");
    unsigned hits = 0;
    assert_int_equal(mailbox_search_text(mb, "Junk", "quarantined", count_uid, &hits, &error), 1);
    mailbox_close(&mb);
}

static void test_wrong_key_and_plain(void **state)
{
    char dir[128], plain[128];
    const char *error = NULL;
    uint8_t other[32];
    struct mailbox_import_stats st;
    (void)state;
    new_mailbox(dir, sizeof dir, "keyed", mk);
    seal_random(other, sizeof other);
    assert_null(mailbox_open(dir, other, pk, sk, &error));
    assert_null(mailbox_open(dir, NULL, pk, sk, &error));
    /* the same code over a plain SQLite file (the benchmark's baseline) */
    new_mailbox(plain, sizeof plain, "plain", NULL);
    deliver(plain, 1);
    struct mailbox *mb = open_ok(plain, NULL);
    assert_int_equal(mailbox_import(mb, &st, &error), 0);
    assert_int_equal(st.imported, 1);
    mailbox_close(&mb);
}

#ifndef KILL_ROUNDS
#define KILL_ROUNDS 150
#endif

static void count_one(void *arg, const char *name)
{
    (void)name;
    (*(unsigned *)arg)++;
}

static unsigned drop_count(const char *dir)
{
    unsigned n = 0;
    const char *error;
    drop_list(dir, count_one, &n, &error);
    return n;
}

static void import_child(const char *dir)
{
    const char *error;
    struct mailbox_import_stats st;
    struct mailbox *mb = mailbox_open(dir, mk, pk, sk, &error);
    if (mb != NULL)
        mailbox_import(mb, &st, &error);
    _exit(0);
}

static void test_kill_during_import(void **state)
{
    char dir[128];
    const char *error = NULL;
    struct mailbox_import_stats st;
    unsigned rounds = KILL_ROUNDS, delivered = 0, kills = 0, partial = 0, committed = 0;
    unsigned finished = 0;
    const char *env = getenv("MAILBOX_KILL_ROUNDS");
    (void)state;
    if (env != NULL)
        rounds = (unsigned)atoi(env);
    srand((unsigned)time(NULL));
    new_mailbox(dir, sizeof dir, "crash", mk);
    for (unsigned r = 0; r < rounds; r++) {
        for (unsigned k = 0; k < 3; k++)
            deliver(dir, delivered++);
        unsigned before = drop_count(dir);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            import_child(dir);
        struct timespec ts = {0, (long)(rand() % 30000) * 1000}; /* 0..30 ms */
        nanosleep(&ts, NULL);
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            finished++; /* it was done before the kill came */
            continue;
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        kills++;
        unsigned after = drop_count(dir);
        partial += after > 0 && after < before; /* between the commit and the last move */
        committed += after < before;
    }
    struct mailbox *mb = open_ok(dir, mk);
    assert_int_equal(mailbox_import(mb, &st, &error), 0);
    struct seen s = {0};
    assert_int_equal(mailbox_messages(mb, "INBOX", collect, &s, &error), (int)delivered);
    struct mailbox_check c;
    assert_int_equal(mailbox_verify(mb, true, &c, &error), 0);
    assert_true(c.integrity_ok);
    assert_int_equal(c.messages, delivered);
    assert_int_equal(c.pending, 0);
    assert_int_equal(c.bodies_bad, 0);
    mailbox_close(&mb);
    print_message("%u rounds: %u imports finished, %u killed (%u of them after the commit, %u"
                  " between the commit and the last move); %u messages, all present once\n",
                  rounds, finished, kills, committed, partial, delivered);
    /* the test must have interrupted imports, not only watched them finish
     * (a kill after the commit is rarer: a few per 150 rounds, printed) */
    assert_true(kills > rounds / 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_import_read),
        cmocka_unit_test(test_import_to_junk),
        cmocka_unit_test(test_wrong_key_and_plain),
        cmocka_unit_test(test_kill_during_import),
    };
    log_init("test-mailbox", false, LOG_LEVEL_ERROR);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
