/* test-drop.c — sealed message files in a mailbox's drop/ and msg/.
 *
 * Round trips of several sizes (chunk boundaries included), a repeated
 * delivery that must not duplicate, and every way a file on disk can be
 * wrong: another mailbox's key, a flipped byte, a cut file, and two
 * files swapped under each other's names.  Files read with their own
 * recorded key (no key pair): every byte still matters, sealed key
 * included, and the key reads that one file only. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"
#include "crypto/seal.h"
#include "store/drop.h"
#include "store/sealfile.h"

static char root[64];
static uint8_t pk[32], sk[32], pk2[32], sk2[32];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    char path[128];
    snprintf(root, sizeof root, "/tmp/test-drop.XXXXXX");
    if (mkdtemp(root) == NULL || seal_init() < 0)
        return -1;
    snprintf(path, sizeof path, "%s/drop", root);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/msg", root);
    mkdir(path, 0700);
    seal_keypair(pk, sk);
    seal_keypair(pk2, sk2);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int memfd_with(const void *data, size_t len)
{
    int fd = memfd_create("test", 0);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    return fd;
}

/* The plaintext of name, or NULL (and *error_r) when it does not open;
 * drop_read_mem() must agree with drop_read() on both. */
static char *read_back(enum drop_area area, const char *name, const uint8_t *k_pk,
                       const uint8_t *k_sk, size_t *len_r, int64_t *received_r,
                       const char **error_r)
{
    struct sealfile_plain mem = {0};
    const char *mem_error = NULL;
    int r_mem = drop_read_mem(root, area, name, k_pk, k_sk, 0, UINT64_MAX, &mem, &mem_error);
    int out = memfd_create("out", 0);
    uint64_t size = 0;
    if (drop_read(root, area, name, k_pk, k_sk, out, received_r, &size, error_r) < 0) {
        close(out);
        if (r_mem == 0)
            fail_msg("drop_read refused %s (%s), drop_read_mem did not", name, *error_r);
        assert_int_equal(mem.len, 0);
        sealfile_plain_free(&mem);
        return NULL;
    }
    off_t len = lseek(out, 0, SEEK_END);
    char *buf = malloc((size_t)len + 1);
    assert_int_equal(pread(out, buf, (size_t)len, 0), len);
    close(out);
    assert_int_equal(size, (uint64_t)len);
    if (r_mem != 0)
        fail_msg("drop_read_mem refused %s: %s", name, mem_error);
    assert_int_equal(mem.len, (size_t)len);
    assert_int_equal(mem.size, size);
    assert_memory_equal(mem.data, buf, (size_t)len);
    sealfile_plain_free(&mem);
    *len_r = (size_t)len;
    return buf;
}

/* drop_read_mem() of only the chunks that cover the first want bytes. */
static void check_prefix(const char *name, const char *data, size_t size, uint64_t want,
                         struct sealfile_plain *mem)
{
    const char *error = NULL;
    size_t expect = want == 0 || want >= size ? size : (size_t)((want - 1) / 65536 + 1) * 65536;
    if (expect > size)
        expect = size;
    if (drop_read_mem(root, DROP_AREA_MSG, name, pk, sk, want, UINT64_MAX, mem, &error) != 0)
        fail_msg("prefix %llu of %zu: %s", (unsigned long long)want, size, error);
    assert_int_equal(mem->len, expect);
    assert_int_equal(mem->size, size);
    assert_memory_equal(mem->data, data, expect);
    assert_int_equal(mem->data[expect], 0);
}

static void test_round_trips(void **state)
{
    static const size_t sizes[] = {0, 1, 4096, 65535, 65536, 65537, 3 * 65536 + 7};
    const char *error = NULL;
    (void)state;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char name[33];
        snprintf(name, sizeof name, "00000000000000%02zx", i);
        char *data = malloc(sizes[i] + 1);
        for (size_t j = 0; j < sizes[i]; j++)
            data[j] = (char)('a' + (j * 7 + i) % 26);
        int body = memfd_with(data, sizes[i]);
        uint64_t sealed = 0;
        assert_int_equal(drop_deliver(root, name, pk, 1700000000 + (int64_t)i, body, &sealed,
                                      &error), 1);
        assert_true(sealed > sizes[i]);
        /* again: found, not written twice */
        assert_int_equal(drop_deliver(root, name, pk, 1, body, &sealed, &error), 0);
        close(body);
        size_t len;
        int64_t received;
        char *back = read_back(DROP_AREA_DROP, name, pk, sk, &len, &received, &error);
        if (back == NULL)
            fail_msg("read %zu: %s", sizes[i], error);
        assert_int_equal(len, sizes[i]);
        assert_memory_equal(back, data, sizes[i]);
        assert_int_equal(received, 1700000000 + (int64_t)i);
        free(back);
        /* moved to msg/: still found by delivery, readable there */
        assert_int_equal(drop_move_to_msg(root, name, &error), 0);
        assert_false(drop_exists(root, DROP_AREA_DROP, name));
        body = memfd_with(data, sizes[i]);
        assert_int_equal(drop_deliver(root, name, pk, 1, body, &sealed, &error), 0);
        close(body);
        back = read_back(DROP_AREA_MSG, name, pk, sk, &len, &received, &error);
        assert_non_null(back);
        free(back);
        /* prefixes, with the buffers reused from read to read */
        struct sealfile_plain mem = {0};
        static const uint64_t wants[] = {1, 65535, 65536, 65537, 131073, 1u << 30, 0};
        for (size_t w = 0; w < sizeof wants / sizeof wants[0]; w++)
            check_prefix(name, data, sizes[i], wants[w], &mem);
        /* too large for the caller's bound; not there at all */
        if (sizes[i] > 0)
            assert_int_equal(drop_read_mem(root, DROP_AREA_MSG, name, pk, sk, 0, sizes[i] - 1,
                                           &mem, &error), -1);
        assert_int_equal(drop_read_mem(root, DROP_AREA_DROP, name, pk, sk, 0, UINT64_MAX, &mem,
                                       &error), DROP_MISSING);
        sealfile_plain_free(&mem);
        free(data);
    }
    assert_int_equal(drop_sync(root, &error), 0);
}

static void deliver_text_len(const char *name, const char *text, size_t len)
{
    const char *error = NULL;
    uint64_t sealed;
    int body = memfd_with(text, len);
    if (drop_deliver(root, name, pk, 1, body, &sealed, &error) != 1)
        fail_msg("deliver %s: %s", name, error);
    close(body);
}

static void deliver_text(const char *name, const char *text)
{
    const char *error = NULL;
    uint64_t sealed;
    int body = memfd_with(text, strlen(text));
    if (drop_deliver(root, name, pk, 1, body, &sealed, &error) != 1)
        fail_msg("deliver %s: %s", name, error);
    close(body);
}

static void flip_byte(const char *name, off_t where)
{
    char path[256];
    uint8_t b;
    snprintf(path, sizeof path, "%s/drop/%s", root, name);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    off_t size = lseek(fd, 0, SEEK_END);
    off_t at = where < 0 ? size + where : where;
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= 0x01;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

static void test_damage_is_refused(void **state)
{
    const char *error = NULL;
    size_t len;
    char path[256], path2[256];
    (void)state;
    static const char *const text = "Subject: secret\r\n\r\nthe body\r\n";

    deliver_text("1000000000000001", text);
    assert_null(read_back(DROP_AREA_DROP, "1000000000000001", pk2, sk2, &len, NULL, &error));

    /* every byte of the file matters */
    snprintf(path, sizeof path, "%s/drop/1000000000000001", root);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    for (off_t at = 0; at < st.st_size; at++) {
        flip_byte("1000000000000001", at);
        char *back = read_back(DROP_AREA_DROP, "1000000000000001", pk, sk, &len, NULL, &error);
        if (back != NULL)
            fail_msg("byte %lld flipped and still read", (long long)at);
        flip_byte("1000000000000001", at);
    }
    char *ok = read_back(DROP_AREA_DROP, "1000000000000001", pk, sk, &len, NULL, &error);
    assert_non_null(ok);
    free(ok);

    /* a damaged second chunk: the first one alone still reads (it is
     * authentic on its own), the whole file does not */
    static char big[65536 + 100];
    memset(big, 'b', sizeof big);
    deliver_text_len("4000000000000004", big, sizeof big);
    flip_byte("4000000000000004", -5);
    struct sealfile_plain mem = {0};
    assert_int_equal(drop_read_mem(root, DROP_AREA_DROP, "4000000000000004", pk, sk, 100,
                                   UINT64_MAX, &mem, &error), 0);
    assert_int_equal(mem.len, 65536);
    assert_int_equal(drop_read_mem(root, DROP_AREA_DROP, "4000000000000004", pk, sk, 0,
                                   UINT64_MAX, &mem, &error), -1);
    assert_int_equal(mem.len, 0);
    sealfile_plain_free(&mem);

    /* cut */
    assert_int_equal(truncate(path, st.st_size - 1), 0);
    assert_null(read_back(DROP_AREA_DROP, "1000000000000001", pk, sk, &len, NULL, &error));

    /* swapped names */
    deliver_text("2000000000000002", "one");
    deliver_text("3000000000000003", "two");
    snprintf(path, sizeof path, "%s/drop/2000000000000002", root);
    snprintf(path2, sizeof path2, "%s/drop/3000000000000003", root);
    assert_int_equal(renameat2(AT_FDCWD, path, AT_FDCWD, path2, RENAME_EXCHANGE), 0);
    assert_null(read_back(DROP_AREA_DROP, "2000000000000002", pk, sk, &len, NULL, &error));
    assert_non_null(strstr(error, "swapped"));

    /* names that are not names */
    assert_false(drop_name_valid("../etc/passwd"));
    assert_false(drop_name_valid("ABCDEF0123456789"));
    assert_false(drop_name_valid("0123"));
    assert_true(drop_name_valid("0123456789abcdef"));
}

/* Read name of msg/ with a recorded file key: 0 and the text, or -1. */
static int read_with_key(const char *name, const uint8_t *key, uint64_t want,
                         struct sealfile_plain *mem, const char **error_r)
{
    struct sealfile_key k = {.file_key = key}; /* no key pair at all */
    return drop_read_mem_k(root, DROP_AREA_MSG, name, &k, want, UINT64_MAX, mem, error_r);
}

static void test_file_key(void **state)
{
    (void)state;
    const char *error = NULL;
    static const char text[] = "Subject: keyed\r\n\r\nread without X25519\r\n";
    uint8_t key[DROP_KEY_BYTES], key2[DROP_KEY_BYTES], opened[DROP_KEY_BYTES];
    uint64_t sealed;
    struct sealfile_plain mem = {0};

    /* the writer hands out the key it sealed */
    int fd = memfd_with(text, sizeof text - 1);
    assert_int_equal(drop_store_key(root, DROP_AREA_MSG, "5000000000000005", pk, 7, fd, &sealed,
                                    key, &error), 1);
    assert_int_equal(drop_store_key(root, DROP_AREA_MSG, "5000000000000006", pk, 7, fd, &sealed,
                                    key2, &error), 1);
    /* a name taken: nothing written, no key handed out */
    uint8_t none[DROP_KEY_BYTES], zero[DROP_KEY_BYTES] = {0};
    memset(none, 0xaa, sizeof none);
    assert_int_equal(drop_store_key(root, DROP_AREA_MSG, "5000000000000005", pk, 7, fd, &sealed,
                                    none, &error), 0);
    assert_memory_equal(none, zero, sizeof zero);
    close(fd);
    assert_false(seal_equal(key, key2, sizeof key)); /* a fresh key per file */

    /* the key reads the file, whole or its first chunk */
    for (uint64_t want = 0; want < 2; want++) {
        assert_int_equal(read_with_key("5000000000000005", key, want, &mem, &error), 0);
        assert_int_equal(mem.len, sizeof text - 1);
        assert_memory_equal(mem.data, text, sizeof text - 1);
    }
    /* ... and the fd reader, and the key pair's reader hands out the same key */
    struct sealfile_key k = {.file_key = key};
    int out = memfd_create("out", 0);
    uint64_t size = 0;
    assert_int_equal(drop_read_k(root, DROP_AREA_MSG, "5000000000000005", &k, out, NULL, &size,
                                 NULL, &error), 0);
    assert_int_equal(size, sizeof text - 1);
    struct sealfile_key pair = {.pk = pk, .sk = sk, .key_r = opened};
    assert_int_equal(drop_read_k(root, DROP_AREA_MSG, "5000000000000005", &pair, out, NULL,
                                 NULL, NULL, &error), 0);
    assert_memory_equal(opened, key, sizeof key);
    memset(opened, 0, sizeof opened);
    assert_int_equal(drop_read_mem_k(root, DROP_AREA_MSG, "5000000000000006", &pair, 0,
                                     UINT64_MAX, &mem, &error), 0);
    assert_memory_equal(opened, key2, sizeof key2);
    /* the pair of another mailbox: refused, nothing handed out */
    struct sealfile_key other = {.pk = pk2, .sk = sk2, .key_r = opened};
    assert_int_equal(drop_read_k(root, DROP_AREA_MSG, "5000000000000005", &other, out, NULL,
                                 NULL, NULL, &error), -1);
    assert_memory_equal(opened, zero, sizeof zero);
    close(out);

    /* a wrong key, or another file's key, fails: a key reads its own file only */
    assert_int_equal(read_with_key("5000000000000005", key2, 0, &mem, &error), -1);
    assert_int_equal(mem.len, 0);
    uint8_t wrong[DROP_KEY_BYTES];
    seal_random(wrong, sizeof wrong);
    assert_int_equal(read_with_key("5000000000000005", wrong, 0, &mem, &error), -1);
    assert_int_equal(read_with_key("5000000000000005", wrong, 1, &mem, &error), -1);

    /* a file replaced by another one sealed to the same public key (anyone
     * who delivers can make one) under the same name: the key pair would
     * read it, the recorded key refuses it */
    char path[256];
    snprintf(path, sizeof path, "%s/msg/5000000000000005", root);
    assert_int_equal(unlink(path), 0);
    fd = memfd_with("Subject: forged\r\n\r\nx\r\n", 22);
    assert_int_equal(drop_store(root, DROP_AREA_MSG, "5000000000000005", pk, 7, fd, &sealed,
                                &error), 1);
    close(fd);
    assert_int_equal(drop_read_mem(root, DROP_AREA_MSG, "5000000000000005", pk, sk, 0,
                                   UINT64_MAX, &mem, &error), 0);
    assert_int_equal(read_with_key("5000000000000005", key, 0, &mem, &error), -1);

    /* every byte of the file matters with the key too: the sealed key it
     * does not open and the stream header included (they are bound into
     * every chunk), the size, the metadata and the chunks */
    snprintf(path, sizeof path, "%s/msg/5000000000000006", root);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    for (off_t at = 0; at < st.st_size; at++) {
        fd = open(path, O_RDWR);
        uint8_t b;
        assert_int_equal(pread(fd, &b, 1, at), 1);
        b ^= 0x40;
        assert_int_equal(pwrite(fd, &b, 1, at), 1);
        if (read_with_key("5000000000000006", key2, 0, &mem, &error) == 0)
            fail_msg("byte %lld changed and still read with the file key", (long long)at);
        b ^= 0x40;
        assert_int_equal(pwrite(fd, &b, 1, at), 1);
        close(fd);
    }
    assert_int_equal(read_with_key("5000000000000006", key2, 0, &mem, &error), 0);

    /* what is not a regular file fails at once (no stat before the read) */
    snprintf(path, sizeof path, "%s/msg/6000000000000006", root);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(read_with_key("6000000000000006", key2, 0, &mem, &error), -1);
    assert_int_equal(drop_read_mem(root, DROP_AREA_MSG, "6000000000000006", pk, sk, 0,
                                   UINT64_MAX, &mem, &error), -1);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(read_with_key("6000000000000006", key2, 0, &mem, &error), -1);
    assert_int_equal(rmdir(path), 0);
    sealfile_plain_free(&mem);
}

static void collect(void *arg, const char *name)
{
    strcat(arg, name);
    strcat(arg, ";");
}

static void test_list(void **state)
{
    char names[4096] = "";
    const char *error = NULL;
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/drop/.tmp-junk", root);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    close(fd);
    int n = drop_list(root, collect, names, &error);
    assert_true(n >= 3);
    assert_non_null(strstr(names, "1000000000000001;2000000000000002;3000000000000003;"));
    assert_null(strstr(names, "tmp"));
}

struct batch_seen {
    int result[16];
    uint64_t bytes[16];
    unsigned calls;
    char dirs[16][64];
};

static void batch_fn(void *arg, size_t tag, const char *mailbox_dir, int result,
                     uint64_t sealed_bytes, const char *error)
{
    struct batch_seen *s = arg;
    assert_true(tag < 16);
    assert_true(result >= 0 || error != NULL);
    s->result[tag] = result;
    s->bytes[tag] = sealed_bytes;
    snprintf(s->dirs[tag], sizeof s->dirs[0], "%s", mailbox_dir);
    s->calls++;
}

/* A delivery note puts header fields before the message (even across a
 * chunk boundary) and a Junk flag into the authenticated metadata. */
static void test_delivery_note(void **state)
{
    static const size_t prefix_sizes[] = {0, 40, 65536 - 3, 70000};
    const char *error = NULL;
    (void)state;
    for (size_t i = 0; i < sizeof prefix_sizes / sizeof prefix_sizes[0]; i++) {
        char name[33];
        snprintf(name, sizeof name, "00000000000001%02zx", i);
        size_t plen = prefix_sizes[i], blen = 70000;
        char *prefix = malloc(plen + 1), *data = malloc(blen);
        memset(prefix, 'P', plen);
        memset(data, 'b', blen);
        int body = memfd_with(data, blen);
        struct drop_batch *b = drop_batch_new();
        struct drop_note note = {prefix, plen, i % 2 ? DROP_F_JUNK : 0};
        assert_int_equal(drop_batch_add_noted(b, root, name, pk, 1700000000, body, &note, 0,
                                              &error), 0);
        struct batch_seen seen = {0};
        drop_batch_commit(b, batch_fn, &seen);
        assert_int_equal(seen.calls, 1);
        assert_int_equal(seen.result[0], 1);
        drop_batch_free(&b);
        close(body);
        int out = memfd_create("out", 0);
        unsigned flags = 99;
        uint64_t size = 0;
        assert_int_equal(drop_read_flags(root, DROP_AREA_DROP, name, pk, sk, out, NULL, &size,
                                         &flags, &error), 0);
        assert_int_equal(flags, note.flags);
        assert_int_equal(size, plen + blen);
        char *back = malloc(plen + blen);
        assert_int_equal(pread(out, back, plen + blen, 0), (ssize_t)(plen + blen));
        assert_memory_equal(back, prefix, plen);
        assert_memory_equal(back + plen, data, blen);
        close(out);
        free(back);
        free(prefix);
        free(data);
    }
}

/* Temporary files in dir/drop (written, not named yet). */
static unsigned count_tmp(const char *dir)
{
    char pattern[256];
    glob_t g;
    snprintf(pattern, sizeof pattern, "%s/drop/.tmp-*", dir);
    unsigned n = glob(pattern, 0, NULL, &g) == 0 ? (unsigned)g.gl_pathc : 0;
    globfree(&g);
    return n;
}

/* A batch over two mailboxes: new files (more than the threads that sync
 * them), one delivered before, one added twice; each is reported once,
 * after its directory's sync, and every new file reads back. */
static void test_batch(void **state)
{
    char other[128], path[256];
    const char *error = NULL;
    static const char text[] = "Subject: batch\r\n\r\nbody\r\n";
    struct batch_seen seen = {0};
    (void)state;
    snprintf(other, sizeof other, "%s/other", root);
    mkdir(other, 0700);
    snprintf(path, sizeof path, "%s/drop", other);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/msg", other);
    mkdir(path, 0700);
    deliver_text("b000000000000000", text);
    unsigned junk = count_tmp(root); /* test_list's */

    struct drop_batch *b = drop_batch_new();
    int body = memfd_with(text, strlen(text));
    char name[17];
    for (size_t i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "b00000000000000%zx", i);
        assert_int_equal(drop_batch_add(b, i % 2 ? other : root, name, i % 2 ? pk2 : pk,
                                        1700000000, body, i, &error), 0);
    }
    assert_int_equal(drop_batch_add(b, root, "b000000000000002", pk, 1, body, 10, &error), 0);
    assert_int_equal(drop_batch_add(b, root, "../escape0000000", pk, 1, body, 11, &error), -1);
    assert_int_equal(drop_batch_size(b), 11);
    assert_int_equal(count_tmp(root), junk + 4); /* written, not named (b0..0 existed) */
    assert_false(drop_exists(root, DROP_AREA_DROP, "b000000000000002"));
    drop_batch_commit(b, batch_fn, &seen);
    assert_int_equal(seen.calls, 11);
    assert_int_equal(drop_batch_size(b), 0);
    for (size_t i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "b00000000000000%zx", i);
        assert_int_equal(seen.result[i], i == 0 ? 0 : 1);
        assert_string_equal(seen.dirs[i], i % 2 ? other : root);
        assert_true(drop_exists(i % 2 ? other : root, DROP_AREA_DROP, name));
        if (i > 0)
            assert_true(seen.bytes[i] > strlen(text));
    }
    assert_int_equal(seen.result[10], 0); /* added twice: one copy */
    assert_int_equal(count_tmp(root) + count_tmp(other), junk);
    close(body);

    size_t len;
    int64_t received;
    char *back = read_back(DROP_AREA_DROP, "b000000000000004", pk, sk, &len, &received, &error);
    assert_non_null(back);
    assert_int_equal(len, strlen(text));
    assert_int_equal(received, 1700000000);
    free(back);

    /* freed before its commit: the temporary files go, nothing is named */
    body = memfd_with(text, strlen(text));
    assert_int_equal(drop_batch_add(b, root, "c000000000000000", pk, 1, body, 0, &error), 0);
    assert_int_equal(count_tmp(root), junk + 1);
    drop_batch_free(&b);
    assert_null(b);
    close(body);
    assert_int_equal(count_tmp(root), junk);
    assert_false(drop_exists(root, DROP_AREA_DROP, "c000000000000000"));
    drop_batch_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_delivery_note),
        cmocka_unit_test(test_damage_is_refused),
        cmocka_unit_test(test_file_key),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_batch),
    };
    log_init("test-drop", false, LOG_LEVEL_ERROR);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
