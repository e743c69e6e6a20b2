/* test-spool.c — the sealed spool: round trips, tampering, truncation,
 * crash leftovers and the group commit.
 *
 * Every commit goes through a real event_base: the test writes, commits,
 * then runs the loop until the callbacks arrive.  Tampering and
 * truncation work on copies of a committed file placed under a second
 * spool directory with the same queue id, so every case starts from a
 * known-good file.  A body is read into a memfd so the test can check
 * that nothing was written when reading failed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <zlib.h>

#include "core/buf.h"
#include "core/bytes.h"
#include "core/log.h"
#include "core/mem.h"
#include "crypto/seal.h"
#include "store/spool.h"
#include "store/spoolchain.h"
#include "store/spoolseg.h"

#define MARKER "PLAINTEXT-MARKER-7f3a"

static char root[64];
static uint8_t pk[SPOOL_PK_BYTES];
static uint8_t *sk;
static struct event_base *base;

static char *rcpts[] = {"bob@example.net", "carol@example.net"};
static const struct spool_envelope test_env = {
    .helo = "mx.example.org",
    .client = "192.0.2.1",
    .mail_from = "alice@example.org",
    .body_type = "8BITMIME",
    .smtputf8 = true,
    .rcpts = rcpts,
    .n_rcpts = 2,
    .received = 1700000000,
};

/* ---- fixture ---------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/test-spool.XXXXXX");
    if (mkdtemp(root) == NULL || seal_init() < 0)
        return -1;
    sk = seal_secret_alloc(SPOOL_SK_BYTES);
    seal_keypair(pk, sk);
    base = event_base_new();
    return base == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    event_base_free(base);
    seal_secret_free(&sk);
    return nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh spool directory path under root. */
static void new_dir(char *out, size_t len, const char *name)
{
    static int n;
    int r = snprintf(out, len, "%s/%s-%d", root, name, n++);
    assert_true(r > 0 && (size_t)r < len);
}

/* Deterministic message bytes; MARKER every 1000 bytes. */
static uint8_t *make_message(size_t len)
{
    uint8_t *m = sm_malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        m[i] = (uint8_t)(i * 131 + (i >> 9) * 7 + 1);
    for (size_t i = 0; i + sizeof MARKER - 1 <= len; i += 1000)
        memcpy(m + i, MARKER, sizeof MARKER - 1);
    return m;
}

/* ---- committing through the loop -------------------------------------- */

struct result {
    int calls;
    int failed; /* calls with ok false */
    bool ok;    /* the last call's */
    char id[SPOOL_ID_LEN + 1];
};

static void on_commit(void *arg, bool ok, const char *queue_id)
{
    struct result *r = arg;
    r->calls++;
    r->failed += !ok;
    r->ok = ok;
    snprintf(r->id, sizeof r->id, "%s", queue_id);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
}

/* Run the loop until *count reaches target (fails after 30 s). */
static void wait_count(const int *count, int target)
{
    struct timeval tick = {0, 100000};
    struct event *t = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    event_add(t, &tick);
    for (int rounds = 0; *count < target; rounds++) {
        if (rounds > 300)
            fail_msg("commit callbacks did not arrive (%d of %d)", *count, target);
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(t);
}

/* The file format tests want every message in a file of its own; the
 * segment tests set this to the default inline limit. */
static size_t test_inline_max = 0;
static size_t test_inline_budget = SIZE_MAX; /* the default (64 MiB) */

static struct spool *open_spool(const char *dir, unsigned batch)
{
    const char *error = NULL;
    struct spool *sp = spool_open(dir, pk, base, batch, &error);
    if (sp == NULL)
        fail_msg("spool_open: %s", error);
    spool_set_inline_limits(sp, test_inline_max, test_inline_budget);
    return sp;
}

/* Write msg in pieces of `piece` bytes and commit it; returns the id in id. */
/* The delivery note commit_message() adds when not NULL. */
static const char *note_prefix;
static const uint32_t note_flags = SPOOL_F_JUNK;

static void commit_message(const char *dir, const uint8_t *msg, size_t len, size_t piece,
                           char id[SPOOL_ID_LEN + 1])
{
    const char *error = NULL;
    struct result r = {0};
    struct spool *sp = open_spool(dir, 16);
    struct spool_writer *w = spool_writer_new(sp, &test_env, &error);
    if (w == NULL)
        fail_msg("spool_writer_new: %s", error);
    for (size_t off = 0; off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        assert_int_equal(spool_writer_write(w, msg + off, n, &error), 0);
    }
    assert_int_equal(spool_writer_size(w), len);
    if (note_prefix != NULL) {
        assert_int_equal(
            spool_writer_set_note(w, note_flags, note_prefix, strlen(note_prefix), &error), 0);
        assert_int_equal(spool_writer_set_note(w, 0, "", 0, &error), -1); /* only once */
    }
    snprintf(id, SPOOL_ID_LEN + 1, "%s", spool_writer_id(w));
    spool_writer_commit(w, on_commit, &r);
    wait_count(&r.calls, 1);
    assert_true(r.ok);
    assert_string_equal(r.id, id);
    spool_close(&sp);
    assert_null(sp);
}

/* Read the body of id into a fresh buffer; returns spool_read_body's result.
 * *out_len is how many bytes reached the output fd (success or not). */
static int read_body(const char *dir, const char *id, const uint8_t *key_pk,
                     const uint8_t *key_sk, uint8_t **out, size_t *out_len)
{
    const char *error = NULL;
    int fd = memfd_create("body", MFD_CLOEXEC);
    assert_true(fd >= 0);
    int ret = spool_read_body(dir, id, key_pk, key_sk, fd, &error);
    if (ret < 0)
        assert_non_null(error);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    *out_len = (size_t)st.st_size;
    *out = sm_malloc(*out_len + 1);
    assert_int_equal(pread(fd, *out, *out_len, 0), (ssize_t)*out_len);
    close(fd);
    return ret;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    *len = (size_t)st.st_size;
    uint8_t *p = sm_malloc(*len + 1);
    assert_int_equal(read(fd, p, *len), (ssize_t)*len);
    close(fd);
    return p;
}

static void write_file(const char *path, const uint8_t *p, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, len), (ssize_t)len);
    close(fd);
}

static void message_path(char *out, size_t len, const char *dir, const char *id)
{
    int r = snprintf(out, len, "%s/incoming/%s", dir, id);
    assert_true(r > 0 && (size_t)r < len);
}

/* A spool dir for damaged copies: dir/incoming/<id> gets the bytes given. */
static void put_copy(const char *dir, const char *id, const uint8_t *p, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/incoming", dir);
    mkdir(path, 0700);
    message_path(path, sizeof path, dir, id);
    write_file(path, p, len);
}

static void assert_envelope_equal(const struct spool_envelope *a, const struct spool_envelope *b)
{
    assert_string_equal(a->helo, b->helo);
    assert_string_equal(a->client, b->client);
    assert_string_equal(a->mail_from, b->mail_from);
    assert_string_equal(a->body_type, b->body_type);
    assert_int_equal(a->smtputf8, b->smtputf8);
    assert_int_equal(a->received, b->received);
    assert_int_equal(a->n_rcpts, b->n_rcpts);
    for (size_t i = 0; i < a->n_rcpts; i++)
        assert_string_equal(a->rcpts[i], b->rcpts[i]);
}

/* ---- round trips -------------------------------------------------------- */

struct list_acc {
    int n;
    char ids[64][SPOOL_ID_LEN + 1];
};

static void list_fn(void *arg, const char *id)
{
    struct list_acc *acc = arg;
    if (acc->n < 64)
        snprintf(acc->ids[acc->n], sizeof acc->ids[0], "%s", id);
    acc->n++;
}

static void test_round_trip(void **state)
{
    static const struct {
        const char *label;
        size_t len, piece;
    } cases[] = {
        {"empty message", 0, 1},
        {"small, odd pieces", 1000, 7},
        {"one byte at a time", 5000, 1},
        {"exactly one chunk", 65536, 4096},
        {"one chunk and a byte", 65537, 999},
        {"multi-chunk, odd pieces", 200 * 1024 + 123, 8191},
        {"multi-chunk, one write", 300 * 1024, 300 * 1024},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[128], id[SPOOL_ID_LEN + 1];
        const char *error = NULL;
        struct spool_envelope env;
        struct list_acc acc = {0};
        size_t out_len;
        uint8_t *out, *msg = make_message(cases[i].len);

        print_message("case: %s\n", cases[i].label);
        new_dir(dir, sizeof dir, "rt");
        /* every other case carries a delivery note, which readers strip */
        note_prefix = i % 2 ? "Authentication-Results: mx.test; spf=pass\r\n" : NULL;
        size_t note_len = 8 + (note_prefix != NULL ? strlen(note_prefix) : 0);
        commit_message(dir, msg, cases[i].len, cases[i].piece, id);
        assert_int_equal(spool_list(dir, list_fn, &acc, &error), 1);
        assert_string_equal(acc.ids[0], id);
        assert_int_equal(spool_read_envelope(dir, id, &env, &error), 0);
        assert_envelope_equal(&env, &test_env);
        assert_int_equal(env.size, cases[i].len + note_len); /* the clear size counts the note */
        spool_envelope_free(&env);
        assert_int_equal(read_body(dir, id, pk, sk, &out, &out_len), 0);
        assert_int_equal(out_len, cases[i].len);
        assert_memory_equal(out, msg, cases[i].len);
        /* envelope and body from one authenticated read */
        int mfd = memfd_create("rt", MFD_CLOEXEC);
        assert_true(mfd >= 0);
        assert_int_equal(spool_read_message(dir, id, pk, sk, mfd, &env, &error), 0);
        assert_envelope_equal(&env, &test_env);
        assert_int_equal(env.size, cases[i].len);
        assert_int_equal(lseek(mfd, 0, SEEK_END), (off_t)cases[i].len);
        if (note_prefix != NULL) {
            assert_int_equal(env.flags, note_flags);
            assert_int_equal(env.prefix_len, strlen(note_prefix));
            assert_string_equal(env.prefix, note_prefix);
        } else {
            assert_int_equal(env.flags, 0);
            assert_int_equal(env.prefix_len, 0);
        }
        spool_envelope_free(&env);
        close(mfd);
        free(out);
        free(msg);
    }
    note_prefix = NULL;
}

/* Reading with any other key pair fails: for a message in a file of its
 * own and for a segment record (whose segment's opened seed this process
 * keeps once a read succeeded: it must serve only the key pair that
 * opened it). */
static void test_wrong_key(void **state)
{
    char dir[128], id[SPOOL_ID_LEN + 1];
    uint8_t other_pk[SPOOL_PK_BYTES], *other_sk = seal_secret_alloc(SPOOL_SK_BYTES);
    uint8_t *msg = make_message(3000), *out;
    size_t out_len;
    const size_t places[] = {0, SIZE_MAX}; /* a file, a record */
    (void)state;

    seal_keypair(other_pk, other_sk);
    for (size_t k = 0; k < 2; k++) {
        test_inline_max = places[k];
        new_dir(dir, sizeof dir, k == 0 ? "wk" : "wkseg");
        commit_message(dir, msg, 3000, 3000, id);
        assert_int_equal(id[0] >= '8', k == 1); /* a record id only for a record */
        assert_int_equal(read_body(dir, id, pk, sk, &out, &out_len), 0);
        assert_int_equal(out_len, 3000);
        free(out);
        const uint8_t *wrong[][2] = {
            {other_pk, other_sk}, {pk, other_sk}, {other_pk, sk} /* the seal binds both */};
        for (size_t i = 0; i < 3; i++) {
            assert_int_equal(read_body(dir, id, wrong[i][0], wrong[i][1], &out, &out_len), -1);
            assert_int_equal(out_len, 0);
            free(out);
        }
        assert_int_equal(read_body(dir, id, pk, sk, &out, &out_len), 0);
        assert_memory_equal(out, msg, 3000);
        free(out);
    }
    test_inline_max = 0;
    seal_secret_free(&other_sk);
    free(msg);
}

static void test_no_plaintext(void **state)
{
    char dir[128], id[SPOOL_ID_LEN + 1], path[256];
    uint8_t *msg = make_message(150000);
    size_t len;
    (void)state;

    new_dir(dir, sizeof dir, "np");
    commit_message(dir, msg, 150000, 4096, id);
    message_path(path, sizeof path, dir, id);
    uint8_t *file = read_file(path, &len);
    assert_null(memmem(file, len, MARKER, sizeof MARKER - 1));
    assert_null(memmem(file, len, msg + 1, 64)); /* nor any other run of the body */
    free(file);
    free(msg);
}

/* ---- tampering and truncation ----------------------------------------- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A committed multi-chunk message (70000 bytes: 65536 + 4464) and its file. */
struct sample {
    char dir[128], id[SPOOL_ID_LEN + 1];
    uint8_t *msg, *file;
    size_t msg_len, file_len, env_len;
};

static void sample_make(struct sample *s, size_t msg_len)
{
    char path[256];
    new_dir(s->dir, sizeof s->dir, "sample");
    s->msg_len = msg_len;
    s->msg = make_message(msg_len);
    commit_message(s->dir, s->msg, msg_len, 5000, s->id);
    message_path(path, sizeof path, s->dir, s->id);
    s->file = read_file(path, &s->file_len);
    s->env_len = be32(s->file + 16);
}

static void sample_free(struct sample *s)
{
    free(s->msg);
    free(s->file);
}

/* Reading a damaged copy must fail; returns how many bytes it wrote. */
static size_t read_damaged(const struct sample *s, const uint8_t *p, size_t len)
{
    char dir[128];
    uint8_t *out;
    size_t out_len;
    struct spool_envelope env;
    const char *error;

    new_dir(dir, sizeof dir, "bad");
    put_copy(dir, s->id, p, len);
    if (read_body(dir, s->id, pk, sk, &out, &out_len) == 0)
        fail_msg("damaged file of %zu bytes was read successfully", len);
    assert_true(out_len < s->msg_len || s->msg_len == 0);
    free(out);
    /* the envelope reader may or may not accept it, but must not crash */
    if (spool_read_envelope(dir, s->id, &env, &error) == 0)
        spool_envelope_free(&env);
    /* the authenticated reader refuses it and hands out no envelope */
    int mfd = memfd_create("damaged", MFD_CLOEXEC);
    assert_true(mfd >= 0);
    assert_int_equal(spool_read_message(dir, s->id, pk, sk, mfd, &env, &error), -1);
    assert_null(env.mail_from);
    assert_null(env.rcpts);
    assert_int_equal(env.n_rcpts, 0);
    close(mfd);
    return out_len;
}

static void test_tamper_classes(void **state)
{
    struct sample s;
    (void)state;
    sample_make(&s, 70000);
    size_t e = s.env_len, c1 = 128 + e, c2 = c1 + 65536 + 17;
    const struct {
        const char *label;
        size_t off;
        bool nothing_written; /* damage before the first chunk's end */
    } cases[] = {
        {"magic", 0, true},
        {"version byte", 7, true},
        {"size field", 8, true},
        {"size field, low byte", 15, true},
        {"envelope length", 19, true},
        {"envelope, helo", 24, true},
        {"envelope, last byte", 20 + e - 1, true},
        {"sealed key, first byte", 20 + e, true},
        {"sealed key, last byte", 99 + e, true},
        {"stream header", 100 + e, true},
        {"stream header, last byte", 123 + e, true},
        {"first chunk length", c1 - 4, true},
        {"first chunk tag byte", c1, true},
        {"first chunk ciphertext", c1 + 1000, true},
        {"first chunk MAC", c2 - 1, true},
        {"final chunk length", c2, false},
        {"final chunk tag byte", c2 + 4, false},
        {"final chunk ciphertext", c2 + 100, false},
        {"final chunk MAC", s.file_len - 1, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        print_message("case: %s\n", cases[i].label);
        assert_true(cases[i].off < s.file_len);
        for (unsigned bit = 0; bit < 8; bit += 7) {
            s.file[cases[i].off] ^= (uint8_t)(1u << bit);
            size_t written = read_damaged(&s, s.file, s.file_len);
            s.file[cases[i].off] ^= (uint8_t)(1u << bit);
            if (cases[i].nothing_written)
                assert_int_equal(written, 0);
        }
    }
    sample_free(&s);
}

/* Bytes after the FINAL chunk are refused too. */
static void test_tamper_append(void **state)
{
    struct sample s;
    (void)state;
    sample_make(&s, 70000);
    size_t last = 128 + s.env_len + 65536 + 17; /* start of the final chunk */
    uint8_t *p = sm_malloc(s.file_len * 2);
    memcpy(p, s.file, s.file_len);
    read_damaged(&s, p, s.file_len + 1);                        /* one zero byte */
    memcpy(p + s.file_len, s.file + last, s.file_len - last); /* the final chunk again */
    read_damaged(&s, p, s.file_len + (s.file_len - last));
    free(p);
    sample_free(&s);
}

/* Every single byte of a small file is covered. */
static void test_tamper_every_byte(void **state)
{
    struct sample s;
    (void)state;
    sample_make(&s, 300);
    for (size_t off = 0; off < s.file_len; off++) {
        s.file[off] ^= 0x01;
        assert_int_equal(read_damaged(&s, s.file, s.file_len), 0);
        s.file[off] ^= 0x01;
    }
    sample_free(&s);
}

static void test_truncation(void **state)
{
    struct sample big, small;
    (void)state;
    sample_make(&big, 70000);
    sample_make(&small, 300);
    for (size_t len = 0; len < small.file_len; len++)
        assert_int_equal(read_damaged(&small, small.file, len), 0);
    size_t c2 = 128 + big.env_len + 65536 + 17;
    const size_t cuts[] = {c2, c2 + 3, c2 + 4, c2 + 5, big.file_len - 17, big.file_len - 16,
                           big.file_len - 1};
    /* the length check refuses every cut before any plaintext is written */
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        assert_int_equal(read_damaged(&big, big.file, cuts[i]), 0);
    for (size_t len = 0; len < big.file_len; len += 97)
        assert_int_equal(read_damaged(&big, big.file, len), 0);
    sample_free(&big);
    sample_free(&small);
}

/* ---- crash leftovers, the group commit, failures ------------------------ */

static void test_leftover_tmp(void **state)
{
    char dir[128], path[256], held[256];
    (void)state;
    new_dir(dir, sizeof dir, "lo");
    struct spool *sp = open_spool(dir, 4); /* creates dir/incoming */
    spool_close(&sp);

    snprintf(path, sizeof path, "%s/incoming/.tmp-0123456789abcdef", dir);
    write_file(path, (const uint8_t *)"junk", 4);
    struct timespec past[2] = {{time(NULL) - 60, 0}, {time(NULL) - 60, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, past, 0), 0); /* a leftover of a past crash */
    /* just created by a live process that has not locked it yet: must survive */
    char young[256];
    snprintf(young, sizeof young, "%s/incoming/.tmp-00112233445566ff", dir);
    write_file(young, (const uint8_t *)"new", 3);
    /* a file another live process is still writing: locked, must survive */
    snprintf(held, sizeof held, "%s/incoming/.tmp-fedcba9876543210", dir);
    write_file(held, (const uint8_t *)"busy", 4);
    int fd = open(held, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);

    sp = open_spool(dir, 4);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(access(held, F_OK), 0);
    assert_int_equal(access(young, F_OK), 0);
    spool_close(&sp);
    close(fd);
}

static void test_batch(void **state)
{
    static const struct {
        const char *label;
        int writers;
        unsigned batch;
        size_t size;
    } cases[] = {
        {"50 writers, one batch of up to 256", 50, 256, 4096},
        {"50 writers, batches of 7", 50, 7, 4096},
        {"20 multi-chunk writers", 20, 64, 70000},
        {"a single writer", 1, 1, 10},
    };
    (void)state;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char dir[128];
        const char *error = NULL;
        int n = cases[c].writers, ok = 0;
        struct result *r = sm_calloc((size_t)n, sizeof *r);
        struct spool_writer **w = sm_calloc((size_t)n, sizeof *w);
        struct list_acc acc = {0};
        uint8_t *msg = make_message(cases[c].size);

        print_message("case: %s\n", cases[c].label);
        new_dir(dir, sizeof dir, "batch");
        struct spool *sp = open_spool(dir, cases[c].batch);
        for (int i = 0; i < n; i++) { /* all open at once, interleaved writes */
            w[i] = spool_writer_new(sp, &test_env, &error);
            assert_non_null(w[i]);
        }
        for (size_t off = 0; off < cases[c].size; off += 1000)
            for (int i = 0; i < n; i++) {
                size_t k = cases[c].size - off < 1000 ? cases[c].size - off : 1000;
                assert_int_equal(spool_writer_write(w[i], msg + off, k, &error), 0);
            }
        for (int i = 0; i < n; i++)
            spool_writer_commit(w[i], on_commit, &r[i]);
        int calls = 0;
        while (calls < n) {
            event_base_loop(base, EVLOOP_ONCE);
            calls = 0;
            for (int i = 0; i < n; i++)
                calls += r[i].calls;
        }
        for (int i = 0; i < n; i++) {
            assert_int_equal(r[i].calls, 1);
            ok += r[i].ok;
        }
        assert_int_equal(ok, n);
        assert_int_equal(spool_list(dir, list_fn, &acc, &error), n);
        for (int i = 1; i < n && i < 64; i++) /* distinct ids, in commit order */
            assert_true(strcmp(acc.ids[i - 1], acc.ids[i]) < 0);
        spool_close(&sp);
        free(msg);
        free(w);
        free(r);
    }
}

/* spool_close finishes pending commits and runs their callbacks. */
static void test_close_drains(void **state)
{
    char dir[128];
    const char *error = NULL;
    struct result r[10] = {{0}};
    (void)state;
    new_dir(dir, sizeof dir, "drain");
    struct spool *sp = open_spool(dir, 3);
    for (int i = 0; i < 10; i++) {
        struct spool_writer *w = spool_writer_new(sp, &test_env, &error);
        assert_non_null(w);
        assert_int_equal(spool_writer_write(w, "hello\r\n", 7, &error), 0);
        spool_writer_commit(w, on_commit, &r[i]);
    }
    spool_close(&sp);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_true(r[i].ok);
    }
    struct list_acc acc = {0};
    assert_int_equal(spool_list(dir, list_fn, &acc, &error), 10);
}

/* A commit that cannot complete reports ok=false and leaves no file. */
static void test_commit_failure(void **state)
{
    char dir[128], path[256];
    const char *error = NULL;
    struct result r1 = {0}, r2 = {0};
    struct list_acc acc = {0};
    (void)state;
    new_dir(dir, sizeof dir, "fail");
    struct spool *sp = open_spool(dir, 8);

    /* the temporary file vanished: the rename fails */
    struct spool_writer *w1 = spool_writer_new(sp, &test_env, &error);
    snprintf(path, sizeof path, "%s/incoming/.tmp-%s", dir, spool_writer_id(w1));
    assert_int_equal(unlink(path), 0);
    spool_writer_commit(w1, on_commit, &r1);
    /* the id is taken (another process): never replaced */
    struct spool_writer *w2 = spool_writer_new(sp, &test_env, &error);
    message_path(path, sizeof path, dir, spool_writer_id(w2));
    write_file(path, (const uint8_t *)"other", 5);
    spool_writer_commit(w2, on_commit, &r2);
    wait_count(&r1.calls, 1);
    wait_count(&r2.calls, 1);
    assert_false(r1.ok);
    assert_false(r2.ok);
    spool_close(&sp);

    size_t len;
    uint8_t *p = read_file(path, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(p, "other", 5);
    free(p);
    assert_int_equal(spool_list(dir, list_fn, &acc, &error), 1); /* only "other" */
}

/* ---- fault injection ----------------------------------------------------- */

/* This program's fdatasync() and fsync() replace the C library's for the
 * spool linked into it: when a countdown is armed, the call that brings
 * it to zero fails with EIO, exactly once, whichever thread makes it. */
static atomic_int fail_fdatasync_at, fail_fsync_at;
/* Or: the next fdatasync of the file with this name fails (set before
 * arming fail_fdatasync_of). */
static char fail_fdatasync_name[64];
static atomic_bool fail_fdatasync_of;
static atomic_int fdatasync_calls; /* all of them, failed or not */

static bool should_fail(atomic_int *countdown)
{
    return atomic_load(countdown) > 0 && atomic_fetch_sub(countdown, 1) == 1;
}

/* Whether fd is open on a file named fail_fdatasync_name, when armed. */
static bool is_named_target(int fd)
{
    char link[64], path[4096];
    if (!atomic_load(&fail_fdatasync_of))
        return false;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return false;
    path[n] = '\0';
    const char *file = strrchr(path, '/');
    return file != NULL && strcmp(file + 1, fail_fdatasync_name) == 0 &&
           atomic_exchange(&fail_fdatasync_of, false);
}

int fdatasync(int fd)
{
    atomic_fetch_add(&fdatasync_calls, 1);
    if (should_fail(&fail_fdatasync_at) || is_named_target(fd)) {
        errno = EIO;
        return -1;
    }
    return (int)syscall(SYS_fdatasync, fd);
}

int fsync(int fd)
{
    if (should_fail(&fail_fsync_at)) {
        errno = EIO;
        return -1;
    }
    return (int)syscall(SYS_fsync, fd);
}

/* And flock(): when its countdown is armed, the blocking LOCK_EX of a
 * directory that brings it to zero fails with ENOLCK (the kernel out of
 * lock records), exactly once. */
static atomic_int fail_dir_flock_at;

int flock(int fd, int op)
{
    struct stat st;
    if ((op & LOCK_EX) && !(op & LOCK_NB) && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) &&
        should_fail(&fail_dir_flock_at)) {
        errno = ENOLCK;
        return -1;
    }
    return (int)syscall(SYS_flock, fd, op);
}

static int count_tmp_files(const char *dir)
{
    char path[256];
    int n = 0;
    snprintf(path, sizeof path, "%s/incoming", dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        n += strncmp(de->d_name, ".tmp-", 5) == 0;
    closedir(d);
    return n;
}

/* A failed sync fails exactly the messages it covers: each callback's ok
 * says whether the message is in the spool, readable, or gone entirely. */
static void test_sync_failures(void **state)
{
    static const struct {
        const char *label;
        atomic_int *countdown;
        int nth, writers, expect_failed; /* -1: at least one */
        bool syncs_nothing; /* no fdatasync at all while committing */
    } cases[] = {
        {"the first fdatasync fails", &fail_fdatasync_at, 1, 1, 1, false},
        {"one fdatasync of 20 fails", &fail_fdatasync_at, 7, 20, 1, false},
        {"the directory fsync fails", &fail_fsync_at, 1, 1, 1, false},
        {"a directory fsync under 20 writers fails", &fail_fsync_at, 1, 20, -1, false},
        /* unlocked, a file's first sync (which syncs the directory) could
         * overlap a sibling's directory sync: none may happen */
        {"the directory lock fails", &fail_dir_flock_at, 1, 1, 1, true},
        {"the directory lock under 20 writers fails", &fail_dir_flock_at, 1, 20, -1, false},
    };
    (void)state;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char dir[128], path[256];
        const char *error = NULL;
        struct result r[20] = {{0}};
        struct spool_writer *w[20];
        int calls = 0, failed = 0, n = cases[c].writers;

        print_message("case: %s\n", cases[c].label);
        new_dir(dir, sizeof dir, "sync");
        struct spool *sp = open_spool(dir, 64);
        for (int i = 0; i < n; i++) {
            w[i] = spool_writer_new(sp, &test_env, &error);
            assert_non_null(w[i]);
            assert_int_equal(spool_writer_write(w[i], "message\r\n", 9, &error), 0);
        }
        atomic_store(cases[c].countdown, cases[c].nth);
        int syncs_before = atomic_load(&fdatasync_calls);
        for (int i = 0; i < n; i++)
            spool_writer_commit(w[i], on_commit, &r[i]);
        while (calls < n) {
            event_base_loop(base, EVLOOP_ONCE);
            calls = 0;
            for (int i = 0; i < n; i++)
                calls += r[i].calls;
        }
        atomic_store(cases[c].countdown, 0);
        if (cases[c].syncs_nothing)
            assert_int_equal(atomic_load(&fdatasync_calls), syncs_before);
        spool_close(&sp);
        for (int i = 0; i < n; i++) {
            message_path(path, sizeof path, dir, r[i].id);
            assert_int_equal(access(path, F_OK) == 0, r[i].ok);
            failed += !r[i].ok;
        }
        if (cases[c].expect_failed >= 0)
            assert_int_equal(failed, cases[c].expect_failed);
        else
            assert_true(failed >= 1);
        assert_int_equal(count_tmp_files(dir), 0);
    }
}

/* A write that fails (file size limit) fails the message cleanly. */
static void test_write_failure(void **state)
{
    char dir[128];
    const char *error = NULL;
    struct result r = {0};
    struct rlimit old, small = {100 * 1024, 0};
    uint8_t *msg = make_message(300 * 1024);
    (void)state;

    new_dir(dir, sizeof dir, "efbig");
    struct spool *sp = open_spool(dir, 8);
    struct spool_writer *w = spool_writer_new(sp, &test_env, &error);
    assert_non_null(w);
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small.rlim_max = old.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    int ret = 0;
    for (size_t off = 0; off < 300 * 1024 && ret == 0; off += 1024)
        ret = spool_writer_write(w, msg + off, 1024, &error);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(ret, -1);
    assert_non_null(error);
    assert_int_equal(spool_writer_write(w, "x", 1, &error), -1); /* stays failed */
    spool_writer_commit(w, on_commit, &r);
    wait_count(&r.calls, 1);
    assert_false(r.ok);
    spool_close(&sp);
    struct list_acc acc = {0};
    assert_int_equal(spool_list(dir, list_fn, &acc, &error), 0);
    assert_int_equal(count_tmp_files(dir), 0);
    free(msg);
}

static void test_abort(void **state)
{
    char dir[128], path[256];
    const char *error = NULL;
    (void)state;
    new_dir(dir, sizeof dir, "abort");
    struct spool *sp = open_spool(dir, 8);
    struct spool_writer *w = spool_writer_new(sp, &test_env, &error);
    assert_int_equal(spool_writer_write(w, "data", 4, &error), 0);
    snprintf(path, sizeof path, "%s/incoming/.tmp-%s", dir, spool_writer_id(w));
    assert_int_equal(access(path, F_OK), 0);
    spool_writer_abort(&w);
    assert_null(w);
    spool_writer_abort(&w); /* accepts NULL */
    assert_int_equal(access(path, F_OK), -1);
    spool_close(&sp);
    spool_close(&sp); /* accepts NULL */
}

/* ---- hostile files and bad arguments ------------------------------------- */

static void b_u32(struct sm_buf *b, uint32_t v)
{
    uint8_t p[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    sm_buf_append(b, p, 4);
}

static void b_str(struct sm_buf *b, const char *s, size_t len)
{
    b_u32(b, (uint32_t)len);
    sm_buf_append(b, s, len);
}

enum hostile {
    H_GOOD, H_BAD_MAGIC, H_SHORT_MAGIC, H_HUGE_ENV_LEN, H_ENV_LEN_PAST_EOF, H_HUGE_STR,
    H_STR_PAST_ENV, H_NUL_IN_STR, H_ZERO_RCPTS, H_HUGE_RCPTS, H_RCPTS_PAST_ENV, H_BAD_FLAGS,
    H_TRAILING_BYTE, H_NO_KEYS,
};

/* A spool file with a crafted envelope (the key material is zeros). */
static void build_hostile(enum hostile h, struct sm_buf *f)
{
    struct sm_buf e;
    sm_buf_init(&e, 0);
    b_str(&e, "helo", h == H_NUL_IN_STR ? 5 : 4);
    b_str(&e, "192.0.2.1", 9);
    b_str(&e, "a@b", 3);
    b_str(&e, "7BIT", 4);
    sm_buf_append(&e, h == H_BAD_FLAGS ? "\x02" : "\x00", 1);
    sm_buf_append(&e, "\0\0\0\0\x65\x53\xf1\x00", 8);
    b_u32(&e, h == H_ZERO_RCPTS ? 0 : h == H_HUGE_RCPTS ? 0xffffffffu
                                  : h == H_RCPTS_PAST_ENV ? 3 : 1);
    if (h == H_HUGE_STR)
        b_u32(&e, 0xfffffff0u);
    else if (h == H_STR_PAST_ENV) { /* the length claims more than is there */
        b_u32(&e, 200);
        sm_buf_append(&e, "x@y", 3);
    }
    else if (h != H_ZERO_RCPTS)
        b_str(&e, "c@d", 3);
    if (h == H_TRAILING_BYTE)
        sm_buf_append(&e, "!", 1);

    sm_buf_init(f, 0);
    sm_buf_append(f, h == H_BAD_MAGIC ? "SEALSP\0\3" : "SEALSP\0\2", h == H_SHORT_MAGIC ? 5 : 8);
    if (h != H_SHORT_MAGIC) {
        sm_buf_append(f, "\0\0\0\0\0\0\0\0", 8);
        b_u32(f, h == H_HUGE_ENV_LEN ? 0xffffffffu
                 : h == H_ENV_LEN_PAST_EOF ? (uint32_t)e.len + 5000 : (uint32_t)e.len);
        sm_buf_append(f, e.data, e.len);
        static const uint8_t zeros[104];
        if (h != H_NO_KEYS)
            sm_buf_append(f, zeros, sizeof zeros);
    }
    sm_buf_free(&e);
}

static void test_hostile_envelopes(void **state)
{
    static const struct {
        const char *label;
        enum hostile h;
        int expect;
    } cases[] = {
        {"well-formed (the builder is right)", H_GOOD, 0},
        {"bad magic/version", H_BAD_MAGIC, -1},
        {"file shorter than the magic", H_SHORT_MAGIC, -1},
        {"envelope length 4 GiB", H_HUGE_ENV_LEN, -1},
        {"envelope length past end of file", H_ENV_LEN_PAST_EOF, -1},
        {"string length 4 GiB", H_HUGE_STR, -1},
        {"string past the envelope", H_STR_PAST_ENV, -1},
        {"NUL inside a string", H_NUL_IN_STR, -1},
        {"no recipients", H_ZERO_RCPTS, -1},
        {"4 billion recipients", H_HUGE_RCPTS, -1},
        {"more recipients than bytes", H_RCPTS_PAST_ENV, -1},
        {"unknown flags", H_BAD_FLAGS, -1},
        {"a byte after the last field", H_TRAILING_BYTE, -1},
        {"key material missing", H_NO_KEYS, -1},
    };
    static const char id[] = "00000000000000aa";
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[128];
        struct sm_buf f;
        struct spool_envelope env;
        const char *error = NULL;
        uint8_t *out;
        size_t out_len;

        print_message("case: %s\n", cases[i].label);
        new_dir(dir, sizeof dir, "hostile");
        build_hostile(cases[i].h, &f);
        put_copy(dir, id, (const uint8_t *)f.data, f.len);
        int r = spool_read_envelope(dir, id, &env, &error);
        assert_int_equal(r, cases[i].expect);
        if (r == 0) {
            assert_string_equal(env.helo, "helo");
            assert_int_equal(env.n_rcpts, 1);
            assert_string_equal(env.rcpts[0], "c@d");
            spool_envelope_free(&env);
        } else {
            assert_non_null(error);
        }
        assert_int_equal(read_body(dir, id, pk, sk, &out, &out_len), -1);
        assert_int_equal(out_len, 0);
        free(out);
        sm_buf_free(&f);
    }
}

/* Anyone with the public key can make a file the key opens (sealed boxes
 * do not say who sealed); the reader must still insist on the layout:
 * full MESSAGE chunks, then exactly one FINAL chunk bound to the size. */
struct forged_chunk {
    size_t len;
    bool final, bind_size;
};

static void forge(const struct forged_chunk *chunks, size_t n, uint64_t size, struct sm_buf *f)
{
    uint8_t h[SEAL_HASH_BYTES], ad[SEAL_HASH_BYTES + 8], *plain = make_message(65536);
    uint8_t *cipher = sm_malloc(65536 + SEAL_STREAM_ABYTES);
    const char *error;

    build_hostile(H_GOOD, f); /* a valid header with zeroed key material */
    uint8_t *keys = (uint8_t *)f->data + f->len - 104;
    struct seal_stream *st = seal_stream_push_new(pk, keys, keys + SEAL_SEALED_KEY_BYTES, &error);
    assert_non_null(st);
    seal_hash(h, f->data, f->len); /* the size field is still zero */
    memcpy(ad, h, sizeof h);
    for (int i = 0; i < 8; i++)
        ad[SEAL_HASH_BYTES + i] = f->data[8 + i] = (char)(size >> (56 - 8 * i));
    for (size_t i = 0; i < n; i++) {
        size_t adlen = chunks[i].bind_size ? sizeof ad : sizeof h;
        if (i == n - 1 && chunks[i].len >= 8)
            memset(plain + chunks[i].len - 8, 0, 8); /* an empty delivery note ends the content */
        assert_int_equal(seal_stream_push(st, plain, chunks[i].len, ad, adlen, chunks[i].final,
                                          cipher),
                         0);
        b_u32(f, (uint32_t)(chunks[i].len + SEAL_STREAM_ABYTES));
        sm_buf_append(f, cipher, chunks[i].len + SEAL_STREAM_ABYTES);
    }
    seal_stream_free(&st);
    free(cipher);
    free(plain);
}

static void test_forged_layouts(void **state)
{
    static const struct {
        const char *label;
        struct forged_chunk chunks[2];
        size_t n;
        uint64_t size;
        int expect;
    } cases[] = {
        {"well-formed (the forger is right)", {{65536, false, false}, {100, true, true}}, 2,
         65636, 0},
        {"last chunk not FINAL", {{65536, false, false}, {100, false, true}}, 2, 65636, -1},
        {"FINAL chunk in the middle", {{65536, true, false}, {100, true, true}}, 2, 65636, -1},
        {"short chunk before the last", {{1000, false, false}, {100, true, true}}, 2, 1100, -1},
        {"empty FINAL after a full chunk", {{65536, false, false}, {0, true, true}}, 2, 65536,
         -1},
        {"size field lies, bound as it lies", {{100, true, true}}, 1, 200, -1},
        {"FINAL not bound to the size", {{100, true, false}}, 1, 100, -1},
    };
    static const char id[] = "00000000000000bb";
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[128];
        struct sm_buf f;
        uint8_t *out, *msg = make_message(65536);
        size_t out_len;

        print_message("case: %s\n", cases[i].label);
        new_dir(dir, sizeof dir, "forged");
        forge(cases[i].chunks, cases[i].n, cases[i].size, &f);
        put_copy(dir, id, (const uint8_t *)f.data, f.len);
        assert_int_equal(read_body(dir, id, pk, sk, &out, &out_len), cases[i].expect);
        if (cases[i].expect == 0) {
            assert_int_equal(out_len, cases[i].size - 8);
            assert_memory_equal(out, msg, 65536);
            assert_memory_equal(out + 65536, msg, 92);
        }
        free(out);
        free(msg);
        sm_buf_free(&f);
    }
}

static void test_writer_bounds(void **state)
{
    char dir[128], long_helo[5000];
    const char *error = NULL;
    struct spool_envelope env = test_env;
    (void)state;
    new_dir(dir, sizeof dir, "bounds");
    struct spool *sp = open_spool(dir, 8);

    env.n_rcpts = 0;
    assert_null(spool_writer_new(sp, &env, &error));
    assert_non_null(error);
    env = test_env;
    memset(long_helo, 'h', sizeof long_helo - 1);
    long_helo[sizeof long_helo - 1] = '\0';
    env.helo = long_helo;
    error = NULL;
    assert_null(spool_writer_new(sp, &env, &error));
    assert_non_null(error);
    spool_close(&sp);

    struct list_acc acc = {0};
    assert_int_equal(spool_list(dir, list_fn, &acc, &error), 0); /* nothing left behind */
    char path[256];
    snprintf(path, sizeof path, "%s/incoming", dir);
    DIR *d = opendir(path);
    int entries = 0;
    while (readdir(d) != NULL)
        entries++;
    closedir(d);
    assert_int_equal(entries, 2); /* "." and ".." only */
}

static void test_bad_ids_and_remove(void **state)
{
    static const char *const bad_ids[] = {
        "", "0123", "0123456789ABCDEF", "0123456789abcdeg", "0123456789abcdef0",
        "../../../etc/pas", ".tmp-0123456789a", "0123456789abcde/",
    };
    char dir[128], id[SPOOL_ID_LEN + 1];
    const char *error;
    struct spool_envelope env;
    uint8_t *msg = make_message(100);
    (void)state;
    new_dir(dir, sizeof dir, "ids");
    commit_message(dir, msg, 100, 100, id);
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        error = NULL;
        assert_false(spool_id_valid(bad_ids[i]));
        assert_int_equal(spool_read_envelope(dir, bad_ids[i], &env, &error), -1);
        assert_non_null(error);
        assert_int_equal(spool_remove(dir, bad_ids[i], &error), -1);
    }
    /* paths that do name the real message are refused too */
    char sneaky[64], *upper = sm_strdup(id);
    snprintf(sneaky, sizeof sneaky, "../incoming/%s", id);
    for (char *p = upper; *p; p++)
        *p = (char)(*p >= 'a' && *p <= 'f' ? *p - 'a' + 'A' : *p);
    const char *const near[] = {sneaky, upper};
    /* an id of digits only has no upper case (a segment record's id ends
     * in eight of them, so this happens a few times in a hundred) */
    size_t n_near = strcmp(upper, id) != 0 ? 2 : 1;
    for (size_t i = 0; i < n_near; i++) {
        uint8_t *out;
        size_t out_len;
        assert_int_equal(spool_read_envelope(dir, near[i], &env, &error), -1);
        assert_int_equal(read_body(dir, near[i], pk, sk, &out, &out_len), -1);
        assert_int_equal(out_len, 0);
        free(out);
        assert_int_equal(spool_remove(dir, near[i], &error), -1);
    }
    free(upper);
    assert_true(spool_id_valid(id));
    assert_int_equal(spool_read_envelope(dir, "ffffffffffffffff", &env, &error), -1);
    assert_int_equal(spool_remove(dir, id, &error), 0);
    assert_int_equal(spool_remove(dir, id, &error), -1);
    struct list_acc acc = {0};
    assert_int_equal(spool_list(dir, list_fn, &acc, &error), 0);
    free(msg);
}

/* Several entries leave with one directory sync; a missing one is not an
 * error, an invalid one refuses the whole call. */
static void test_remove_many(void **state)
{
    char dir[128], ids[3][SPOOL_ID_LEN + 1];
    const char *error = NULL;
    uint8_t *msg = make_message(100);
    (void)state;
    new_dir(dir, sizeof dir, "many");
    for (size_t i = 0; i < 3; i++)
        commit_message(dir, msg, 100, 100, ids[i]);
    const char *const bad[] = {ids[2], "../incoming/xyz"};
    assert_int_equal(spool_remove_many(dir, bad, 2, &error), -1);
    const char *const some[] = {ids[0], "ffffffffffffffff", ids[1]};
    assert_int_equal(spool_remove_many(dir, some, 3, &error), 0);
    struct list_acc acc = {0};
    assert_int_equal(spool_list(dir, list_fn, &acc, &error), 1);
    assert_string_equal(acc.ids[0], ids[2]); /* untouched by the refused call */
    assert_int_equal(spool_remove_many(dir, some, 3, &error), 0); /* gone already: fine */
    assert_int_equal(spool_remove_many(dir, NULL, 0, &error), 0);
    free(msg);
}

static void test_offline(void **state)
{
    char dir[128], id[SPOOL_ID_LEN + 1];
    const char *error = NULL;
    uint8_t *msg = make_message(10);
    (void)state;
    new_dir(dir, sizeof dir, "offline");
    assert_null(spool_open(dir, pk, NULL, 8, &error)); /* offline never creates */
    assert_non_null(error);
    commit_message(dir, msg, 10, 10, id);
    struct spool *sp = spool_open(dir, pk, NULL, 8, &error);
    assert_non_null(sp);
    error = NULL;
    assert_null(spool_writer_new(sp, &test_env, &error));
    assert_non_null(error);
    spool_close(&sp);
    struct list_acc acc = {0};
    assert_int_equal(spool_list(dir, list_fn, &acc, &error), 1);
    char missing[160];
    snprintf(missing, sizeof missing, "%s/nope", root);
    assert_int_equal(spool_list(missing, list_fn, &acc, &error), -1);
    free(msg);
}

/* ---- segments ------------------------------------------------------------- */

/* The one segment file of dir with records in it (the writer may have
 * the next one ready, empty); fails unless exactly one. */
static void segment_path(const char *dir, char *path, size_t len)
{
    char d[256], p[300];
    int n = 0;
    struct stat st;
    snprintf(d, sizeof d, "%s/incoming", dir);
    DIR *dp = opendir(d);
    assert_non_null(dp);
    for (struct dirent *de; (de = readdir(dp)) != NULL;) {
        uint32_t segnum;
        bool done;
        snprintf(p, sizeof p, "%s/%s", d, de->d_name);
        if (seg_name_parse(de->d_name, &segnum, &done) && !done && stat(p, &st) == 0 &&
            st.st_size > SEG_HDR_LEN) {
            snprintf(path, len, "%s", p);
            n++;
        }
    }
    closedir(dp);
    assert_int_equal(n, 1);
}

static int count_segments(const char *dir)
{
    char d[256];
    int n = 0;
    snprintf(d, sizeof d, "%s/incoming", dir);
    DIR *dp = opendir(d);
    assert_non_null(dp);
    for (struct dirent *de; (de = readdir(dp)) != NULL;)
        n += strncmp(de->d_name, "seg-", 4) == 0;
    closedir(dp);
    return n;
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* Commit n messages through the open spool sp, one after the other,
 * recording each id and the segment's size after each acknowledgement. */
static void commit_each(struct spool *sp, const char *dir, size_t n, size_t len,
                        char ids[][SPOOL_ID_LEN + 1], off_t *sizes)
{
    const char *error = NULL;
    uint8_t *msg = make_message(len);
    for (size_t i = 0; i < n; i++) {
        struct result r = {0};
        struct spool_writer *w = spool_writer_new(sp, &test_env, &error);
        assert_non_null(w);
        msg[0] = (uint8_t)('A' + i); /* each message its own */
        assert_int_equal(spool_writer_write(w, msg, len, &error), 0);
        snprintf(ids[i], SPOOL_ID_LEN + 1, "%s", spool_writer_id(w));
        spool_writer_commit(w, on_commit, &r);
        wait_count(&r.calls, 1);
        assert_true(r.ok);
        if (sizes != NULL) {
            char path[256];
            segment_path(dir, path, sizeof path);
            sizes[i] = file_size(path);
        }
    }
    free(msg);
}

/* A fresh spool directory in dir (named after name) with n messages of
 * len bytes committed as records of one segment, the spool closed. */
static void segment_of(char *dir, size_t dirlen, const char *name, size_t n, size_t len,
                       char ids[][SPOOL_ID_LEN + 1], off_t *sizes)
{
    test_inline_max = SIZE_MAX;
    new_dir(dir, dirlen, name);
    struct spool *sp = open_spool(dir, 16);
    commit_each(sp, dir, n, len, ids, sizes);
    spool_close(&sp);
}

/* The body of id is message i of commit_each(). */
static void assert_body(const char *dir, const char *id, size_t len, size_t i)
{
    uint8_t *out, *msg = make_message(len);
    size_t out_len;
    msg[0] = (uint8_t)('A' + i);
    assert_int_equal(read_body(dir, id, pk, sk, &out, &out_len), 0);
    assert_int_equal(out_len, len);
    assert_memory_equal(out, msg, len);
    free(out);
    free(msg);
}

/* Messages within the inline limit become records of one segment: no file
 * of their own; ids have the top bit set and read back like files. */
/* Every record of the segment at path ends in zlib's crc32() of its
 * header and payload, as spoolseg.h defines it, whatever computed it. */
static void assert_sums_are_zlib_crc32(const char *path, size_t n_records)
{
    size_t len, off = SEG_HDR_LEN, n = 0;
    uint8_t *seg = read_file(path, &len);
    while (off + REC_HDR_LEN <= len && be32(seg + off) == REC_MAGIC) {
        size_t plen = be32(seg + off + 4);
        assert_true(off + REC_HDR_LEN + plen + REC_SUM_LEN <= len);
        uLong crc = crc32(0L, seg + off, (uInt)(REC_HDR_LEN + plen));
        assert_int_equal(be32(seg + off + REC_HDR_LEN + plen), (uint32_t)crc);
        off += REC_HDR_LEN + plen + REC_SUM_LEN;
        n++;
    }
    assert_int_equal(n, n_records);
    free(seg);
}

static void test_segment_round_trip(void **state)
{
    static const size_t lens[] = {0, 1, 4096, 65536, 65537, 200 * 1024};
    char dir[128], ids[6][SPOOL_ID_LEN + 1], path[256];
    const char *error = NULL;
    struct spool_envelope env;
    (void)state;
    test_inline_max = SIZE_MAX;
    new_dir(dir, sizeof dir, "seg");
    struct spool *sp = open_spool(dir, 16);
    for (size_t i = 0; i < 6; i++)
        commit_each(sp, dir, 1, lens[i], &ids[i], NULL);
    spool_close(&sp);
    struct list_acc acc = {0};
    assert_int_equal(spool_list(dir, list_fn, &acc, &error), 6);
    for (size_t i = 0; i < 6; i++) {
        assert_true(ids[i][0] >= '8'); /* a segment id */
        assert_string_equal(acc.ids[i], ids[i]); /* tickets sort in commit order */
        message_path(path, sizeof path, dir, ids[i]);
        assert_int_equal(access(path, F_OK), -1); /* no file */
        assert_body(dir, ids[i], lens[i], 0);
        assert_int_equal(spool_read_envelope(dir, ids[i], &env, &error), 0);
        assert_envelope_equal(&env, &test_env);
        spool_envelope_free(&env);
        assert_true(spool_has(dir, ids[i]));
    }
    segment_path(dir, path, sizeof path);
    assert_sums_are_zlib_crc32(path, 6);
    test_inline_max = 0;
}

/* A crash may tear the record being appended: a segment cut at every byte
 * offset of its last record lists exactly the records before it. */
static void test_segment_truncated_tail(void **state)
{
    char dir[128], ids[3][SPOOL_ID_LEN + 1], path[256], name[64];
    off_t sizes[3];
    const char *error = NULL;
    (void)state;
    segment_of(dir, sizeof dir, "segcut", 3, 300, ids, sizes);
    segment_path(dir, path, sizeof path);
    snprintf(name, sizeof name, "%s", strrchr(path, '/') + 1);
    size_t len;
    uint8_t *seg = read_file(path, &len);
    assert_int_equal(len, (size_t)sizes[2]);
    for (size_t cut = (size_t)sizes[1]; cut <= len; cut++) {
        char copy[128], cpath[256];
        struct list_acc acc = {0};
        new_dir(copy, sizeof copy, "segcutcopy");
        mkdir(copy, 0700);
        snprintf(cpath, sizeof cpath, "%s/incoming", copy);
        mkdir(cpath, 0700);
        snprintf(cpath, sizeof cpath, "%s/incoming/%s", copy, name);
        write_file(cpath, seg, cut);
        int expect = cut == len ? 3 : 2;
        assert_int_equal(spool_list(copy, list_fn, &acc, &error), expect);
        assert_string_equal(acc.ids[0], ids[0]);
        assert_string_equal(acc.ids[1], ids[1]);
        struct spool_envelope env;
        assert_int_equal(spool_read_envelope(copy, ids[2], &env, &error), expect == 3 ? 0 : -1);
        spool_envelope_free(&env);
        if (cut == (size_t)sizes[1] + 1 || cut == len)
            assert_body(copy, ids[1], 300, 1);
    }
    free(seg);
    test_inline_max = 0;
}

/* A changed byte anywhere in a record ends the scan there: the record and
 * what follows are not listed, what precedes is. */
static void test_segment_flipped_byte(void **state)
{
    char dir[128], ids[3][SPOOL_ID_LEN + 1], path[256], name[64];
    off_t sizes[3];
    const char *error = NULL;
    (void)state;
    segment_of(dir, sizeof dir, "segflip", 3, 200, ids, sizes);
    segment_path(dir, path, sizeof path);
    snprintf(name, sizeof name, "%s", strrchr(path, '/') + 1);
    size_t len;
    uint8_t *seg = read_file(path, &len);
    for (size_t at = (size_t)sizes[0]; at < (size_t)sizes[1]; at++) {
        char copy[128], cpath[256];
        struct list_acc acc = {0};
        new_dir(copy, sizeof copy, "segflipcopy");
        mkdir(copy, 0700);
        snprintf(cpath, sizeof cpath, "%s/incoming", copy);
        mkdir(cpath, 0700);
        snprintf(cpath, sizeof cpath, "%s/incoming/%s", copy, name);
        seg[at] ^= 0x20;
        write_file(cpath, seg, len);
        seg[at] ^= 0x20;
        assert_int_equal(spool_list(copy, list_fn, &acc, &error), 1);
        assert_string_equal(acc.ids[0], ids[0]);
        struct spool_envelope env;
        assert_int_equal(spool_read_envelope(copy, ids[1], &env, &error), -1);
        assert_int_equal(spool_read_envelope(copy, ids[2], &env, &error), -1);
    }
    free(seg);
    test_inline_max = 0;
}

/* Frame a record in place as its segment's version writes it: SGR2 with a
 * CRC-32 (version 3), or SGR1 with a BLAKE2b-256 (versions 1 and 2). */
static size_t frame_record(uint8_t *rec, size_t len, const struct seg_header *h, uint32_t ticket)
{
    seg_record_frame(rec, len, h, ticket);
    if (h->crc)
        return REC_HDR_LEN + len + REC_SUM_LEN;
    sm_put_be32(rec, REC_MAGIC_V1);
    seal_hash(rec + REC_HDR_LEN + len, rec, REC_HDR_LEN + len);
    return REC_HDR_LEN + len + REC_SUM_LEN_V1;
}

/* A copy of the segment at path in a new spool dir (no reader has seen it). */
static void segment_copy(char *copy, size_t len, const char *path, const uint8_t *seg,
                         size_t seg_len)
{
    char cpath[256];
    new_dir(copy, len, "segcopy");
    mkdir(copy, 0700);
    snprintf(cpath, sizeof cpath, "%s/incoming", copy);
    mkdir(cpath, 0700);
    snprintf(cpath, sizeof cpath, "%s/incoming/%s", copy, strrchr(path, '/') + 1);
    write_file(cpath, seg, seg_len);
}

/* Segments of version 2, whose records end in a BLAKE2b-256 ("SGR1"),
 * still list and read, and that sum still guards them; each kind of
 * record is taken only in its own version of segment. */
static void test_segment_v2_records(void **state)
{
    char dir[128], ids[2][SPOOL_ID_LEN + 1], path[256], copy[128];
    off_t sizes[2];
    const char *error = NULL;
    size_t len;
    (void)state;
    segment_of(dir, sizeof dir, "segsgr1", 2, 3000, ids, sizes);
    segment_path(dir, path, sizeof path);
    uint8_t *seg = read_file(path, &len);
    assert_int_equal((size_t)sizes[1], len);
    assert_memory_equal(seg, SEG_MAGIC, 8); /* what writers write: version 3 */
    /* the same records framed anew as SGR1, in a version 2 header */
    struct seg_header v2 = {.chained = true};
    uint8_t *old = sm_malloc(len + 2 * REC_SUM_LEN_V1);
    size_t at = SEG_HDR_LEN, out = SEG_HDR_LEN;
    memcpy(old, seg, SEG_HDR_LEN);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(sm_get_be32(seg + at), REC_MAGIC);
        size_t body = (size_t)sizes[i] - at - REC_SUM_LEN; /* header and payload */
        memcpy(old + out, seg + at, body);
        v2.segnum = sm_get_be32(seg + at + 8);
        v2.nonce = sm_get_be64(seg + at + 16);
        out += frame_record(old + out, body - REC_HDR_LEN, &v2, sm_get_be32(seg + at + 12));
        at = (size_t)sizes[i];
    }
    struct list_acc none = {0};
    segment_copy(copy, sizeof copy, path, old, out); /* SGR1 records under a version 3 header */
    assert_int_equal(spool_list(copy, list_fn, &none, &error), 0);
    memcpy(old, SEG_MAGIC_V2, 8);
    segment_copy(copy, sizeof copy, path, old, out);
    struct list_acc acc = {0};
    assert_int_equal(spool_list(copy, list_fn, &acc, &error), 2);
    assert_body(copy, ids[0], 3000, 0);
    assert_body(copy, ids[1], 3000, 1);
    memcpy(seg, SEG_MAGIC_V2, 8); /* SGR2 records under a version 2 header */
    segment_copy(copy, sizeof copy, path, seg, len);
    assert_int_equal(spool_list(copy, list_fn, &none, &error), 0);
    /* a changed byte of the second record's BLAKE2b sum: that record is torn */
    old[out - 1] ^= 0x01;
    segment_copy(copy, sizeof copy, path, old, out);
    struct list_acc cut = {0};
    assert_int_equal(spool_list(copy, list_fn, &cut, &error), 1);
    assert_string_equal(cut.ids[0], ids[0]);
    free(old);
    free(seg);
    test_inline_max = 0;
}

/* A segment takes records until SEG_ROTATE bytes of them, then a new one
 * starts; the first one's records still read. */
static void test_segment_rotation(void **state)
{
    enum { N = 280, LEN = 250000 }; /* 70 MB of records: past 64 MiB, each inline */
    static char ids[N][SPOOL_ID_LEN + 1];
    char dir[128];
    (void)state;
    segment_of(dir, sizeof dir, "segrotate", N, LEN, ids, NULL);
    assert_int_equal(count_segments(dir), 4); /* two segments, each with its .done */
    assert_true(strncmp(ids[0], ids[N - 1], 8) != 0); /* different segment numbers */
    assert_body(dir, ids[0], LEN, 0);
    assert_body(dir, ids[N - 1], LEN, N - 1);
    test_inline_max = 0;
}

/* Removal marks records done: they are gone for every reader; once all
 * are done and the writer has let go of the segment, it is deleted. */
static void test_segment_remove(void **state)
{
    char dir[128], ids[3][SPOOL_ID_LEN + 1];
    const char *error = NULL;
    struct spool_envelope env;
    uint8_t *out;
    size_t out_len;
    (void)state;
    segment_of(dir, sizeof dir, "segrm", 3, 500, ids, NULL);
    assert_int_equal(spool_remove(dir, ids[1], &error), 0);
    assert_int_equal(spool_remove(dir, ids[1], &error), -1); /* gone */
    assert_false(spool_has(dir, ids[1]));
    assert_int_equal(spool_read_envelope(dir, ids[1], &env, &error), -1);
    assert_string_equal(error, "no such message in the spool");
    assert_int_equal(read_body(dir, ids[1], pk, sk, &out, &out_len), -1);
    assert_int_equal(out_len, 0);
    free(out);
    struct list_acc acc = {0};
    assert_int_equal(spool_list(dir, list_fn, &acc, &error), 2);
    assert_string_equal(acc.ids[0], ids[0]);
    assert_string_equal(acc.ids[1], ids[2]);
    assert_int_equal(count_segments(dir), 2); /* the segment and its .done */
    const char *const rest[] = {ids[0], ids[1], ids[2]};
    assert_int_equal(spool_remove_many(dir, rest, 3, &error), 0); /* ids[1]: gone, fine */
    assert_int_equal(count_segments(dir), 0);
    assert_int_equal(spool_list(dir, list_fn, &acc, &error), 0);
    test_inline_max = 0;
}

/* A segment whose writer lives (holds its flock) is never deleted, even
 * with every record removed: the writer may still append to it. */
static void test_segment_live_kept(void **state)
{
    char dir[128], ids[2][SPOOL_ID_LEN + 1], path[256];
    const char *error = NULL;
    (void)state;
    test_inline_max = SIZE_MAX;
    new_dir(dir, sizeof dir, "seglive");
    struct spool *sp = open_spool(dir, 16);
    commit_each(sp, dir, 2, 100, ids, NULL);
    segment_path(dir, path, sizeof path);
    const char *const all[] = {ids[0], ids[1]};
    assert_int_equal(spool_remove_many(dir, all, 2, &error), 0);
    spool_sweep(dir);
    assert_int_equal(access(path, F_OK), 0); /* still there: live */
    struct list_acc acc = {0};
    assert_int_equal(spool_list(dir, list_fn, &acc, &error), 0);
    commit_each(sp, dir, 1, 100, ids, NULL); /* the writer goes on appending */
    assert_int_equal(spool_list(dir, list_fn, &acc, &error), 1);
    assert_body(dir, ids[0], 100, 0);
    spool_close(&sp); /* lets go: one record not done, so it stays */
    spool_sweep(dir);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(spool_remove(dir, ids[0], &error), 0);
    assert_int_equal(access(path, F_OK), -1); /* finished: deleted */
    assert_int_equal(count_segments(dir), 0);
    test_inline_max = 0;
}

/* Big messages keep the file path: a file named by the segment id; ids of
 * both kinds, and files from a spool in file mode, live side by side. */
static void test_segment_big_and_mixed(void **state)
{
    char dir[128], big[1][SPOOL_ID_LEN + 1], small[1][SPOOL_ID_LEN + 1], file[SPOOL_ID_LEN + 1];
    char path[256];
    const char *error = NULL;
    uint8_t *msg = make_message(100);
    (void)state;
    test_inline_max = SIZE_MAX;
    new_dir(dir, sizeof dir, "segbig");
    struct spool *sp = open_spool(dir, 16);
    commit_each(sp, dir, 1, 300 * 1024, big, NULL); /* over the inline limit */
    commit_each(sp, dir, 1, 1000, small, NULL);
    spool_close(&sp);
    assert_true(big[0][0] >= '8' && small[0][0] >= '8');
    message_path(path, sizeof path, dir, big[0]);
    assert_int_equal(access(path, F_OK), 0); /* its own file */
    test_inline_max = 0;
    commit_message(dir, msg, 100, 100, file);
    assert_true(file[0] < '8'); /* a file id */
    struct list_acc acc = {0};
    assert_int_equal(spool_list(dir, list_fn, &acc, &error), 3);
    assert_string_equal(acc.ids[0], file); /* file ids sort first */
    assert_body(dir, big[0], 300 * 1024, 0);
    assert_body(dir, small[0], 1000, 0);
    const char *const all[] = {big[0], small[0], file};
    assert_int_equal(spool_remove_many(dir, all, 3, &error), 0);
    assert_int_equal(spool_list(dir, list_fn, &acc, &error), 0);
    assert_int_equal(count_segments(dir), 0);
    assert_int_equal(count_tmp_files(dir), 0);
    free(msg);
}

/* A segment's .done file lost (deleted by hand, say) is made again by the
 * next removal, which then takes effect: the record is gone and the other
 * stays. */
static void test_segment_done_lost(void **state)
{
    char dir[128], ids[2][SPOOL_ID_LEN + 1], seg[256], path[300];
    const char *error = NULL;
    (void)state;
    segment_of(dir, sizeof dir, "segdone", 2, 100, ids, NULL);
    test_inline_max = 0;
    segment_path(dir, seg, sizeof seg);
    snprintf(path, sizeof path, "%s.done", seg);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(spool_remove(dir, ids[0], &error), 0);
    assert_int_equal(access(path, F_OK), 0);
    assert_false(spool_has(dir, ids[0]));
    assert_true(spool_has(dir, ids[1]));
    assert_body(dir, ids[1], 100, 1);
}

/* A failed fdatasync of the segment fails its batch (never acknowledged,
 * never listed) and the spool goes on in a new segment.  The failure is
 * aimed at the segment by name: the prep thread may be syncing the next
 * segment meanwhile. */
static void test_segment_sync_failure(void **state)
{
    char dir[128], ids[2][SPOOL_ID_LEN + 1];
    const char *error = NULL;
    struct result r = {0};
    (void)state;
    test_inline_max = SIZE_MAX;
    new_dir(dir, sizeof dir, "segfail");
    struct spool *sp = open_spool(dir, 16);
    commit_each(sp, dir, 1, 100, ids, NULL);
    struct spool_writer *w = spool_writer_new(sp, &test_env, &error);
    assert_int_equal(spool_writer_write(w, "lost\r\n", 6, &error), 0);
    snprintf(ids[1], sizeof ids[1], "%s", spool_writer_id(w));
    char top[9]; /* a record id: the top bit, then the segment number */
    snprintf(top, sizeof top, "%.8s", ids[0]);
    snprintf(fail_fdatasync_name, sizeof fail_fdatasync_name, "seg-%08lx",
             strtoul(top, NULL, 16) & 0x7fffffffUL);
    atomic_store(&fail_fdatasync_of, true);
    spool_writer_commit(w, on_commit, &r);
    wait_count(&r.calls, 1);
    assert_false(atomic_load(&fail_fdatasync_of)); /* it was the segment's sync */
    assert_false(r.ok);
    char later[1][SPOOL_ID_LEN + 1];
    commit_each(sp, dir, 1, 100, later, NULL);
    assert_memory_not_equal(later[0], ids[0], 8); /* another segment */
    spool_close(&sp);
    struct list_acc acc = {0};
    assert_int_equal(spool_list(dir, list_fn, &acc, &error), 2);
    assert_string_not_equal(acc.ids[0], ids[1]);
    assert_string_not_equal(acc.ids[1], ids[1]);
    assert_false(spool_has(dir, ids[1]));
    assert_body(dir, later[0], 100, 0);
    test_inline_max = 0;
}

/* The record key chain: the writer's keys, handed out in order, are the
 * keys a reader derives from the seed for each ticket, across epoch
 * links; keys differ from ticket to ticket and from seed to seed. */
static void test_chain_keys(void **state)
{
    enum { N = 3 * CHAIN_LINKS + 7 };
    uint8_t seed[CHAIN_SEED_BYTES], other[CHAIN_SEED_BYTES];
    static uint8_t keys[N][CHAIN_KEY_BYTES];
    uint8_t k[CHAIN_KEY_BYTES];
    (void)state;
    seal_random(seed, sizeof seed);
    memcpy(other, seed, sizeof other);
    other[0] ^= 1;
    struct spool_chain *c = spool_chain_new(seed);
    for (uint32_t t = 0; t < N; t++)
        assert_int_equal(spool_chain_next(c, keys[t]), t);
    spool_chain_free(&c);
    assert_null(c);
    for (uint32_t t = 0; t < N; t++) {
        spool_chain_key(seed, t, k);
        assert_memory_equal(k, keys[t], sizeof k);
        spool_chain_key(other, t, k);
        assert_memory_not_equal(k, keys[t], sizeof k);
        if (t > 0)
            assert_memory_not_equal(keys[t - 1], keys[t], sizeof k);
    }
    /* across the links: the last key of an epoch and the first of the next */
    assert_memory_not_equal(keys[CHAIN_LINKS - 1], keys[CHAIN_LINKS], sizeof k);
    assert_memory_not_equal(keys[0], keys[CHAIN_LINKS], sizeof k);
    spool_chain_key(seed, SEG_TICKETS_MAX - 1, k); /* the farthest ticket is reachable */
}

/* A reader that keeps its place gives every ticket's key, whatever the
 * order: on in one epoch, on to later epochs, back in the same epoch, back
 * to an earlier epoch, the first and the farthest ticket. */
static void test_chain_reader(void **state)
{
    static const uint32_t order[] = {
        5, 6, 200, 255, 256, 257, 3 * CHAIN_LINKS + 9, 3 * CHAIN_LINKS + 2, 3 * CHAIN_LINKS + 2,
        CHAIN_LINKS + 1, 0, 0, 1, SEG_TICKETS_MAX - 1, 7, CHAIN_LINKS - 1, CHAIN_LINKS};
    uint8_t seed[CHAIN_SEED_BYTES], want[CHAIN_KEY_BYTES], got[CHAIN_KEY_BYTES];
    (void)state;
    seal_random(seed, sizeof seed);
    struct spool_chain_reader r;
    spool_chain_reader_init(&r, seed);
    for (size_t n = 0; n < sizeof order / sizeof order[0]; n++) {
        spool_chain_key(seed, order[n], want);
        spool_chain_reader_key(&r, order[n], got);
        assert_memory_equal(got, want, sizeof got);
    }
}

/* Messages that start in memory and outgrow it are moved to a file with
 * a sealed key of their own: in the middle of the DATA stream, or only
 * when the delivery note is added at commit. */
static void test_segment_spill(void **state)
{
    char dir[128], path[256], id[SPOOL_ID_LEN + 1];
    const size_t limit = 100 * 1024;
    const size_t lens[] = {250 * 1024, limit - 4, limit, 3 * 65536, 65536};
    (void)state;
    test_inline_max = limit;
    new_dir(dir, sizeof dir, "segspill");
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint8_t *msg = make_message(lens[i]);
        commit_message(dir, msg, lens[i], 3000, id);
        assert_true(id[0] >= '8'); /* it began as a record */
        message_path(path, sizeof path, dir, id);
        /* the note (8 bytes at least) passes the limit for all but the last */
        assert_int_equal(access(path, F_OK), lens[i] + 8 > limit ? 0 : -1);
        uint8_t *out;
        size_t out_len;
        assert_int_equal(read_body(dir, id, pk, sk, &out, &out_len), 0);
        assert_int_equal(out_len, lens[i]);
        assert_memory_equal(out, msg, lens[i]);
        free(out);
        free(msg);
    }
    test_inline_max = 0;
}

/* Start a writer of sp and write len bytes of msg to it. */
static struct spool_writer *writer_with(struct spool *sp, const uint8_t *msg, size_t len,
                                        char id[SPOOL_ID_LEN + 1])
{
    const char *error = NULL;
    struct spool_writer *w = spool_writer_new(sp, &test_env, &error);
    if (w == NULL)
        fail_msg("spool_writer_new: %s", error);
    assert_int_equal(spool_writer_write(w, msg, len, &error), 0);
    snprintf(id, SPOOL_ID_LEN + 1, "%s", spool_writer_id(w));
    return w;
}

/* The memory all of a process's messages in memory may hold is a budget
 * (here 150 KiB; a message of 60 KiB holds 72 KiB: its plaintext buffer,
 * grown in powers of two from 4 KiB to 64 KiB, and the first 8 KiB of its
 * record, which holds the header; the steps below follow from those two
 * sizes).  Two fit; a third, started while
 * there is room, outgrows it and moves to a file mid-stream; a fourth,
 * started when the budget is spent, gets a file from the start.  Once the
 * commits give the memory back, a new message is a record again.  All
 * read back whole. */
static void test_segment_budget(void **state)
{
    enum { N = 5, LEN = 60 * 1024 };
    char dir[128], path[256], ids[N][SPOOL_ID_LEN + 1];
    struct spool_writer *w[N];
    const char *error = NULL;
    struct result r = {0};
    uint8_t *msg = make_message(LEN);
    (void)state;
    test_inline_max = SIZE_MAX;
    test_inline_budget = 150 * 1024;
    new_dir(dir, sizeof dir, "segbudget");
    struct spool *sp = open_spool(dir, 16);
    w[0] = writer_with(sp, msg, LEN, ids[0]);
    w[1] = writer_with(sp, msg, LEN, ids[1]);
    w[2] = writer_with(sp, msg, 0, ids[2]);  /* started: takes room for its header */
    w[3] = writer_with(sp, msg, LEN, ids[3]); /* the budget is spent now */
    assert_int_equal(spool_writer_write(w[2], msg, LEN, &error), 0); /* spills */
    for (int i = 0; i < 4; i++)
        spool_writer_commit(w[i], on_commit, &r);
    wait_count(&r.calls, 4);
    assert_int_equal(r.failed, 0);
    w[4] = writer_with(sp, msg, LEN, ids[4]);
    spool_writer_commit(w[4], on_commit, &r);
    wait_count(&r.calls, 5);
    assert_int_equal(r.failed, 0);
    spool_close(&sp);
    test_inline_max = 0;
    test_inline_budget = SIZE_MAX;
    /* record ids have the top bit set; a file of a record id is a spill */
    const bool record_id[N] = {true, true, true, false, true};
    const bool in_file[N] = {false, false, true, true, false};
    for (int i = 0; i < N; i++) {
        assert_int_equal(ids[i][0] >= '8', record_id[i]);
        message_path(path, sizeof path, dir, ids[i]);
        assert_int_equal(access(path, F_OK) == 0, in_file[i]);
        uint8_t *out;
        size_t out_len;
        assert_int_equal(read_body(dir, ids[i], pk, sk, &out, &out_len), 0);
        assert_int_equal(out_len, LEN);
        assert_memory_equal(out, msg, LEN);
        free(out);
    }
    free(msg);
}

/* An envelope too big for a record (here: 300 recipients past a 2 KiB
 * inline limit) sends the message to a file of its own, keyed by a
 * sealed key, from the start: it reads back whole, envelope included. */
static void test_segment_big_envelope(void **state)
{
    char dir[128], path[256], id[SPOOL_ID_LEN + 1];
    static char names[300][32];
    char *many[300];
    const char *error = NULL;
    struct result r = {0};
    (void)state;
    for (size_t i = 0; i < 300; i++) {
        snprintf(names[i], sizeof names[i], "rcpt%zu@example.net", i);
        many[i] = names[i];
    }
    struct spool_envelope env = test_env;
    env.rcpts = many;
    env.n_rcpts = 300;
    test_inline_max = 2048;
    new_dir(dir, sizeof dir, "segenv");
    struct spool *sp = open_spool(dir, 16);
    struct spool_writer *w = spool_writer_new(sp, &env, &error);
    assert_non_null(w);
    assert_int_equal(spool_writer_write(w, "Subject: x\r\n\r\nbody\r\n", 21, &error), 0);
    snprintf(id, sizeof id, "%s", spool_writer_id(w));
    spool_writer_commit(w, on_commit, &r);
    wait_count(&r.calls, 1);
    assert_true(r.ok);
    spool_close(&sp);
    test_inline_max = 0;
    assert_true(id[0] >= '8'); /* it was given a record id */
    message_path(path, sizeof path, dir, id);
    assert_int_equal(access(path, F_OK), 0); /* but lives in a file */
    struct spool_envelope back;
    int fd = memfd_create("body", MFD_CLOEXEC);
    assert_int_equal(spool_read_message(dir, id, pk, sk, fd, &back, &error), 0);
    assert_int_equal(back.n_rcpts, 300);
    assert_string_equal(back.rcpts[299], "rcpt299@example.net");
    assert_int_equal(back.size, 21);
    spool_envelope_free(&back);
    close(fd);
}

/* Put bytes as record `ticket` of a segment file of the given header. */
static void put_record(const char *dir, const struct seg_header *h, uint32_t ticket,
                       const uint8_t *payload, size_t len)
{
    char path[256], name[32];
    uint8_t hdr[SEG_HDR_LEN];
    seg_name(name, sizeof name, h->segnum, false);
    snprintf(path, sizeof path, "%s/incoming/%s", dir, name);
    seg_header_encode(hdr, h);
    if (!h->chained)
        memcpy(hdr, SEG_MAGIC_V1, 8); /* a version 1 header: the first 32 bytes */
    uint8_t *rec = sm_malloc(REC_HDR_LEN + len + REC_SUM_LEN_V1);
    memcpy(rec + REC_HDR_LEN, payload, len);
    size_t total = frame_record(rec, len, h, ticket);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, hdr, h->len), (ssize_t)h->len);
    assert_int_equal(write(fd, rec, total), (ssize_t)total);
    close(fd);
    free(rec);
}

/* A chained record's bytes are bound to their place: as a file of their
 * own, or as another ticket of their segment, they do not read.  A
 * version 1 segment (records sealed each to the spool key, as written
 * before the chain) still reads. */
static void test_segment_places(void **state)
{
    char dir[128], path[256], ids[1][SPOOL_ID_LEN + 1], file_id[SPOOL_ID_LEN + 1];
    char moved[SPOOL_ID_LEN + 1];
    const char *error = NULL;
    uint8_t *out;
    size_t out_len, len;
    (void)state;
    segment_of(dir, sizeof dir, "segplace", 1, 5000, ids, NULL);
    /* the record's payload, read straight from the segment */
    segment_path(dir, path, sizeof path);
    uint8_t *seg = read_file(path, &len);
    struct seg_header h;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    uint32_t segnum;
    assert_true(seg_name_parse(strrchr(path, '/') + 1, &segnum, NULL));
    assert_int_equal(seg_header_read(fd, segnum, &h, &error), 0);
    close(fd);
    assert_true(h.chained);
    assert_int_equal(h.len, SEG_HDR_LEN);
    size_t plen = len - SEG_HDR_LEN - REC_HDR_LEN - REC_SUM_LEN;
    const uint8_t *payload = seg + SEG_HDR_LEN + REC_HDR_LEN;
    assert_memory_equal(payload, "SEALSP\0\3", 8);
    assert_body(dir, ids[0], 5000, 0);

    /* as a file of its own */
    test_inline_max = 0;
    uint8_t *msg = make_message(10);
    commit_message(dir, msg, 10, 10, file_id);
    put_copy(dir, file_id, payload, plen);
    assert_int_equal(read_body(dir, file_id, pk, sk, &out, &out_len), -1);
    assert_int_equal(out_len, 0);
    free(out);

    /* as ticket 1 of the same segment (the record framed anew) */
    put_record(dir, &h, 1, payload, plen);
    snprintf(moved, sizeof moved, "%s", ids[0]);
    moved[SPOOL_ID_LEN - 1] = '1';
    assert_int_equal(read_body(dir, moved, pk, sk, &out, &out_len), -1);
    assert_int_equal(out_len, 0);
    free(out);

    /* a version 1 segment holding a version 2 file's bytes reads; a
     * version 3 payload in it does not */
    size_t flen;
    message_path(path, sizeof path, dir, file_id);
    commit_message(dir, msg, 10, 10, file_id);
    message_path(path, sizeof path, dir, file_id);
    uint8_t *file = read_file(path, &flen);
    struct seg_header v1 = h;
    v1.chained = v1.crc = false;
    v1.len = SEG_HDR_LEN_V1;
    put_record(dir, &v1, 0, file, flen);
    assert_int_equal(read_body(dir, ids[0], pk, sk, &out, &out_len), 0);
    assert_int_equal(out_len, 10);
    assert_memory_equal(out, msg, 10);
    free(out);
    put_record(dir, &v1, 0, payload, plen);
    assert_int_equal(read_body(dir, ids[0], pk, sk, &out, &out_len), -1);
    free(out);
    free(file);
    free(msg);
    free(seg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_no_plaintext),
        cmocka_unit_test(test_tamper_classes),
        cmocka_unit_test(test_tamper_append),
        cmocka_unit_test(test_tamper_every_byte),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_leftover_tmp),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_close_drains),
        cmocka_unit_test(test_commit_failure),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_sync_failures),
        cmocka_unit_test(test_write_failure),
        cmocka_unit_test(test_hostile_envelopes),
        cmocka_unit_test(test_forged_layouts),
        cmocka_unit_test(test_writer_bounds),
        cmocka_unit_test(test_bad_ids_and_remove),
        cmocka_unit_test(test_remove_many),
        cmocka_unit_test(test_offline),
        cmocka_unit_test(test_segment_round_trip),
        cmocka_unit_test(test_segment_truncated_tail),
        cmocka_unit_test(test_segment_flipped_byte),
        cmocka_unit_test(test_segment_v2_records),
        cmocka_unit_test(test_segment_rotation),
        cmocka_unit_test(test_segment_remove),
        cmocka_unit_test(test_segment_live_kept),
        cmocka_unit_test(test_segment_big_and_mixed),
        cmocka_unit_test(test_segment_sync_failure),
        cmocka_unit_test(test_segment_done_lost),
        cmocka_unit_test(test_chain_keys),
        cmocka_unit_test(test_chain_reader),
        cmocka_unit_test(test_segment_spill),
        cmocka_unit_test(test_segment_big_envelope),
        cmocka_unit_test(test_segment_budget),
        cmocka_unit_test(test_segment_places),
    };
    log_init("test-spool", false, LOG_LEVEL_ERROR);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
