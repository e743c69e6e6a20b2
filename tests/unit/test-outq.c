/* test-outq.c — the outbound queue: round trips of the state file, the
 * sealed message bound to its envelope, idempotent creation, crash points
 * simulated by failing fsync and rename, locks, the retry schedule. */
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
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "crypto/seal.h"
#include "store/outq.h"

static char root[] = "/tmp/test-outq-XXXXXX";
static uint8_t pk[SEAL_PK_BYTES], sk[SEAL_SK_BYTES];
static int dir_seq;

static const char *const ADDRS[] = {"a@remote.example", "b@remote.example", "c@other.example"};
#define ID1 "0123456789abcdef"
#define MUT(s) ((char *)(uintptr_t)(s)) /* test data the entry points at, never written */

static void new_dir(char *out, size_t len)
{
    snprintf(out, len, "%s/q%d", root, dir_seq++);
}

static void make_entry(struct outq_entry *e, const char *id)
{
    static struct outq_rcpt rcpts[3];
    memset(e, 0, sizeof *e);
    snprintf(e->id, sizeof e->id, "%s", id);
    e->mail_from = MUT("sender@hosted.example");
    e->flags = OUTQ_F_8BIT;
    e->created = 1700000000;
    for (size_t i = 0; i < 3; i++)
        rcpts[i] = (struct outq_rcpt){MUT(ADDRS[i]), OUTQ_PENDING, 0, MUT("")};
    e->rcpts = rcpts;
    e->n_rcpts = 3;
}

static int body_fd(const char *text)
{
    int fd = memfd_create("body", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(sm_write_full(fd, text, strlen(text)), 0);
    return fd;
}

static char *read_back(int fd, size_t *len)
{
    static char buf[65536];
    assert_true(lseek(fd, 0, SEEK_SET) == 0);
    ssize_t n = sm_read_full(fd, buf, sizeof buf - 1);
    assert_true(n >= 0);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static int count_cb_n;
static void count_cb(void *arg, const char *id)
{
    (void)arg, (void)id;
    count_cb_n++;
}

static int count(const char *dir)
{
    const char *error;
    count_cb_n = 0;
    int n = outq_list(dir, count_cb, NULL, &error);
    assert_int_equal(n, count_cb_n);
    return count_cb_n;
}

static void test_format_parse(void **state)
{
    (void)state;
    struct outq_entry e, back;
    const char *error;
    size_t len;
    make_entry(&e, ID1);
    e.attempts = 3;
    e.next_attempt = 1700000900;
    e.last_attempt = 1700000300;
    e.failed_notified = true;
    struct outq_rcpt r1 = {MUT(ADDRS[1]), OUTQ_DELIVERED, 1700000300,
                           MUT("250 2.0.0 ok\x01 \xff")};
    e.rcpts[1] = r1;
    char *text = outq_format(&e, &len);
    assert_int_equal(outq_parse(text, len, &back, &error), 0);
    assert_string_equal(back.id, ID1);
    assert_string_equal(back.mail_from, "sender@hosted.example");
    assert_int_equal(back.flags, OUTQ_F_8BIT);
    assert_int_equal(back.attempts, 3);
    assert_int_equal(back.next_attempt, 1700000900);
    assert_true(back.failed_notified);
    assert_false(back.delay_notified);
    assert_int_equal(back.n_rcpts, 3);
    assert_int_equal(back.rcpts[1].state, OUTQ_DELIVERED);
    assert_string_equal(back.rcpts[1].reply, "250 2.0.0 ok? ?"); /* made printable */
    assert_int_equal(outq_count(&back, OUTQ_PENDING), 2);
    /* every proper prefix is refused, and so are changed bytes */
    for (size_t cut = 0; cut < len; cut++) {
        struct outq_entry x;
        assert_int_equal(outq_parse(text, cut, &x, &error), -1);
    }
    /* single changes that must be refused */
    static const char *const swaps[][2] = {
        {"attempts 3\n", "attempts x3\n"}, {"attempts 3\n", "attempts -3\n"},
        {"next 1700000900\n", "next 99999999999999999999\n"}, {"rcpt 1 ", "rcpt 7 "},
        {"notified 0 1\n", "notified 2 1\n"}, {"sealmail-outq 1", "sealmail-outq 2"},
        {"id " ID1, "id ../../../etc"}, {"end\n", "end\nmore\n"},
        {"a@remote.example", "a b@remote.example"}, {"flags 2\n", "flags 2 \n"},
    };
    for (size_t i = 0; i < sizeof swaps / sizeof swaps[0]; i++) {
        char *p = strstr(text, swaps[i][0]);
        assert_non_null(p);
        char *copy = malloc(len + 64);
        size_t pre = (size_t)(p - text);
        memcpy(copy, text, pre);
        strcpy(copy + pre, swaps[i][1]);
        strcat(copy + pre, p + strlen(swaps[i][0]));
        struct outq_entry x;
        assert_int_equal(outq_parse(copy, strlen(copy), &x, &error), -1);
        free(copy);
    }
    free(text);
    outq_entry_free(&back);
}

static void test_create_read(void **state)
{
    (void)state;
    char dir[256];
    const char *error;
    struct outq_entry e, got;
    size_t len;
    new_dir(dir, sizeof dir);
    assert_int_equal(outq_recover(dir, &error), 0);
    make_entry(&e, ID1);
    int body = body_fd("Subject: hi\r\n\r\nbody\r\n");
    assert_int_equal(outq_create(dir, &e, pk, "X-Pre: 1\r\n", 10, body, &error), 1);
    /* a second routing of the same spool entry finds it */
    assert_int_equal(outq_create(dir, &e, pk, NULL, 0, body, &error), 0);
    assert_int_equal(count(dir), 1);
    assert_int_equal(outq_load(dir, ID1, &got, &error), 0);
    assert_int_equal(got.n_rcpts, 3);
    int out = memfd_create("out", MFD_CLOEXEC);
    assert_int_equal(outq_read_message(dir, &got, pk, sk, out, &error), 0);
    char *text = read_back(out, &len);
    assert_string_equal(text, "X-Pre: 1\r\nSubject: hi\r\n\r\nbody\r\n");
    /* state changes persist; the message still opens */
    outq_set_rcpt(&got, 0, OUTQ_DELIVERED, 1700000100, "250 ok");
    got.attempts = 1;
    assert_int_equal(outq_save(dir, &got, &error), 0);
    struct outq_entry again;
    assert_int_equal(outq_load(dir, ID1, &again, &error), 0);
    assert_int_equal(again.rcpts[0].state, OUTQ_DELIVERED);
    assert_string_equal(again.rcpts[0].reply, "250 ok");
    assert_int_equal(ftruncate(out, 0), 0);
    assert_int_equal(outq_read_message(dir, &again, pk, sk, out, &error), 0);
    /* a state file that smuggles in another recipient does not open */
    free(again.rcpts[2].addr);
    again.rcpts[2].addr = strdup("evil@attacker.example");
    assert_int_equal(outq_save(dir, &again, &error), 0);
    assert_int_equal(outq_read_message(dir, &again, pk, sk, out, &error), -1);
    assert_string_equal(error, "queue state does not match the sealed envelope");
    /* the wrong key does not open */
    uint8_t opk[SEAL_PK_BYTES], osk[SEAL_SK_BYTES];
    seal_keypair(opk, osk);
    assert_int_equal(outq_read_message(dir, &got, opk, osk, out, &error), -1);
    /* removal */
    assert_int_equal(outq_remove(dir, ID1, &error), 0);
    assert_int_equal(count(dir), 0);
    outq_entry_free(&again);
    assert_int_equal(outq_load(dir, ID1, &again, &error), -1);
    assert_string_equal(error, "no such entry");
    outq_entry_free(&got);
    outq_entry_free(&again);
    close(out);
    close(body);
}

/* --- crash points ---------------------------------------------------------- */

static int fail_after; /* the Nth call fails (1-based), 0: never */
static int calls;

static int failing_fsync(int fd)
{
    if (fail_after != 0 && ++calls == fail_after) {
        errno = EIO;
        return -1;
    }
    return fdatasync(fd);
}

static int failing_rename(const char *from, const char *to)
{
    if (fail_after != 0 && ++calls == fail_after) {
        errno = EIO;
        return -1;
    }
    return rename(from, to);
}

/* Every fsync and every rename of outq_create() failing in turn: either
 * the entry exists whole (and opens) or it does not exist at all; after
 * outq_recover() nothing else is left in the directory. */
static void test_create_crash_points(void **state)
{
    (void)state;
    static const struct outq_io fsync_io = {failing_fsync, NULL}, rename_io = {NULL,
                                                                               failing_rename};
    const struct outq_io *ios[] = {&fsync_io, &rename_io};
    for (size_t k = 0; k < 2; k++) {
        for (int n = 1; n <= 4; n++) {
            char dir[256];
            const char *error;
            struct outq_entry e, got;
            new_dir(dir, sizeof dir);
            assert_int_equal(outq_recover(dir, &error), 0);
            make_entry(&e, ID1);
            int body = body_fd("Subject: x\r\n\r\ny\r\n");
            outq_test_io = ios[k];
            fail_after = n;
            calls = 0;
            int r = outq_create(dir, &e, pk, NULL, 0, body, &error);
            outq_test_io = NULL;
            assert_int_equal(outq_recover(dir, &error), 0);
            if (r == 1) {
                assert_int_equal(count(dir), 1);
            } else {
                assert_int_equal(r, -1);
                /* the dir sync failed after both renames: the entry may
                 * exist (it is whole); the caller retries and finds it */
                if (count(dir) == 1) {
                    assert_int_equal(outq_load(dir, ID1, &got, &error), 0);
                    int out = memfd_create("out", MFD_CLOEXEC);
                    assert_int_equal(outq_read_message(dir, &got, pk, sk, out, &error), 0);
                    close(out);
                    outq_entry_free(&got);
                    assert_int_equal(outq_create(dir, &e, pk, NULL, 0, body, &error), 0);
                } else {
                    /* nothing left behind but the directory itself */
                    char cmd[512];
                    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s)\"", dir);
                    assert_int_equal(system(cmd), 0);
                    assert_int_equal(outq_create(dir, &e, pk, NULL, 0, body, &error), 1);
                }
            }
            close(body);
        }
    }
}

/* A failed state update leaves the previous state, whole. */
static void test_save_crash_points(void **state)
{
    (void)state;
    static const struct outq_io fsync_io = {failing_fsync, NULL}, rename_io = {NULL,
                                                                               failing_rename};
    char dir[256];
    const char *error;
    struct outq_entry e, got;
    new_dir(dir, sizeof dir);
    assert_int_equal(outq_recover(dir, &error), 0);
    make_entry(&e, ID1);
    int body = body_fd("Subject: x\r\n\r\ny\r\n");
    assert_int_equal(outq_create(dir, &e, pk, NULL, 0, body, &error), 1);
    assert_int_equal(outq_load(dir, ID1, &got, &error), 0);
    outq_set_rcpt(&got, 1, OUTQ_DELIVERED, 1700000100, "250 ok");

    outq_test_io = &fsync_io;
    fail_after = 1, calls = 0; /* the file's fdatasync */
    assert_int_equal(outq_save(dir, &got, &error), -1);
    outq_test_io = &rename_io;
    fail_after = 1, calls = 0;
    assert_int_equal(outq_save(dir, &got, &error), -1);
    outq_test_io = NULL;
    struct outq_entry back;
    assert_int_equal(outq_load(dir, ID1, &back, &error), 0);
    assert_int_equal(back.rcpts[1].state, OUTQ_PENDING); /* the old state */
    outq_entry_free(&back);
    assert_int_equal(outq_recover(dir, &error), 0);
    assert_int_equal(outq_save(dir, &got, &error), 0);
    assert_int_equal(outq_load(dir, ID1, &back, &error), 0);
    assert_int_equal(back.rcpts[1].state, OUTQ_DELIVERED);
    outq_entry_free(&back);
    outq_entry_free(&got);
    close(body);
}

/* A crash between the two unlinks of a removal, or before the state was
 * renamed at creation, leaves an ID.msg alone: recover removes it. */
static void test_recover_orphans(void **state)
{
    (void)state;
    char dir[256], path[512];
    const char *error;
    struct outq_entry e;
    new_dir(dir, sizeof dir);
    assert_int_equal(outq_recover(dir, &error), 0);
    make_entry(&e, ID1);
    int body = body_fd("Subject: x\r\n\r\ny\r\n");
    assert_int_equal(outq_create(dir, &e, pk, NULL, 0, body, &error), 1);
    snprintf(path, sizeof path, "%s/%s.st", dir, ID1);
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof path, "%s/.tmp-%s.st", dir, "fedcba9876543210");
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    close(fd);
    assert_int_equal(count(dir), 0);
    assert_int_equal(outq_recover(dir, &error), 0);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s)\"", dir);
    assert_int_equal(system(cmd), 0);
    close(body);
}

static void test_lock(void **state)
{
    (void)state;
    char dir[256];
    const char *error;
    struct outq_entry e;
    new_dir(dir, sizeof dir);
    assert_int_equal(outq_recover(dir, &error), 0);
    make_entry(&e, ID1);
    int body = body_fd("Subject: x\r\n\r\ny\r\n");
    assert_int_equal(outq_create(dir, &e, pk, NULL, 0, body, &error), 1);
    int l1 = outq_lock(dir, ID1, false, &error);
    assert_true(l1 >= 0);
    assert_int_equal(outq_lock(dir, ID1, false, &error), -1);
    assert_string_equal(error, "busy");
    outq_unlock(l1);
    int l2 = outq_lock(dir, ID1, false, &error);
    assert_true(l2 >= 0);
    outq_unlock(l2);
    assert_int_equal(outq_lock(dir, "ffffffffffffffff", false, &error), -1);
    assert_string_equal(error, "no such entry");
    assert_int_equal(outq_lock(dir, "../../etc/passwd", false, &error), -1);
    close(body);
}

static void test_invalid_envelopes(void **state)
{
    (void)state;
    char dir[256];
    const char *error;
    struct outq_entry e;
    new_dir(dir, sizeof dir);
    assert_int_equal(outq_recover(dir, &error), 0);
    int body = body_fd("x\r\n");
    make_entry(&e, "not-an-id");
    assert_int_equal(outq_create(dir, &e, pk, NULL, 0, body, &error), -1);
    make_entry(&e, ID1);
    e.rcpts[1].addr = MUT("has space@x.example");
    assert_int_equal(outq_create(dir, &e, pk, NULL, 0, body, &error), -1);
    make_entry(&e, ID1);
    e.mail_from = MUT("a\nb");
    assert_int_equal(outq_create(dir, &e, pk, NULL, 0, body, &error), -1);
    make_entry(&e, ID1);
    e.n_rcpts = 0;
    assert_int_equal(outq_create(dir, &e, pk, NULL, 0, body, &error), -1);
    assert_int_equal(count(dir), 0);
    close(body);
}

static void test_schedule(void **state)
{
    (void)state;
    struct outq_schedule s;
    const char *error;
    assert_int_equal(outq_schedule_parse("5m 15m 30m 1h 2h 4h", &s, &error), 0);
    assert_int_equal(s.n, 6);
    assert_int_equal(outq_next_delay(&s, 1), 300);
    assert_int_equal(outq_next_delay(&s, 2), 900);
    assert_int_equal(outq_next_delay(&s, 6), 4 * 3600);
    assert_int_equal(outq_next_delay(&s, 60), 4 * 3600); /* the last one repeats */
    assert_int_equal(outq_schedule_parse("1s,2", &s, &error), 0);
    assert_int_equal(outq_next_delay(&s, 2), 2);
    assert_int_equal(outq_schedule_parse("", &s, &error), -1);
    assert_int_equal(outq_schedule_parse("5x", &s, &error), -1);
    assert_int_equal(outq_schedule_parse("0s", &s, &error), -1);
    assert_int_equal(outq_schedule_parse("8d", &s, &error), -1);
    assert_int_equal(outq_schedule_parse("-5m", &s, &error), -1);
}

static int setup(void **state)
{
    (void)state;
    if (mkdtemp(root) == NULL || seal_init() < 0)
        return -1;
    seal_keypair(pk, sk);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_parse),
        cmocka_unit_test(test_create_read),
        cmocka_unit_test(test_create_crash_points),
        cmocka_unit_test(test_save_crash_points),
        cmocka_unit_test(test_recover_orphans),
        cmocka_unit_test(test_lock),
        cmocka_unit_test(test_invalid_envelopes),
        cmocka_unit_test(test_schedule),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
