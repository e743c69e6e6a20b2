/* drop.c — sealed message files of a mailbox (see drop.h).
 *
 * The metadata of a drop file (sealfile.h) is 8 bytes of arrival time
 * (big-endian unix seconds) followed by the file's own name, so a reader
 * notices a file that was renamed or swapped with another one of the
 * same mailbox: both would otherwise open with the same key.
 *
 * Durability of a delivery: write .tmp-<name>-<pid>, fdatasync it,
 * renameat2(RENAME_NOREPLACE) to <name>, fsync drop/.  Only then does
 * queued count the recipient as handled.  Moves to msg/ are renames in
 * one file system; the importer syncs both directories after its batch
 * and only after its database transaction committed (mailbox.c).
 *
 * Batches (drop_batch_*) write the temporary files first, then per
 * mailbox fdatasync and rename each and fsync drop/ ONCE for all of them.
 *
 * Directory syncs take turns.  On ext4 without a journal (as on these
 * machines) an fsync of a directory returns early when a concurrent sync
 * of the same directory has already taken its dirty block off the list
 * but not finished writing it (see SYNC_THREADS in spool-internal.h), and the
 * first fdatasync of a NEW file also syncs its parent directory.  So
 * every fsync of drop/ or msg/ here runs under an exclusive flock of that
 * directory, and a batch (like drop_store()) holds the lock from the
 * first fdatasync of its new files to the fsync of the directory that
 * vouches for their names: no other sync of that directory (another
 * batch, the importer's drop_sync() in imapd or the CLI, an APPEND)
 * overlaps it.  Sealing, the CPU-heavy part, happens before the lock. */
#include "store/drop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/bytes.h"
#include "core/mem.h"
#include "crypto/seal.h"
#include "store/sealfile.h"

#define MAGIC "SEALDR\0\1"

_Static_assert(DROP_KEY_BYTES == SEALFILE_KEY_BYTES, "file key");
#define META_MAX (8 + DROP_NAME_MAX + 2)
#define TMP_PREFIX ".tmp-"
/* seconds before an unfinished .tmp file is garbage: far longer than a
 * delivery batch can take between sealing a file and renaming it */
#define LEFTOVER_AGE 3600

static _Thread_local char errbuf[256];

static const char *errno_msg(const char *what)
{
    snprintf(errbuf, sizeof errbuf, "%s: %s", what, strerror(errno));
    return errbuf;
}

static const char *area_dir(enum drop_area area)
{
    return area == DROP_AREA_DROP ? "drop" : "msg";
}

bool drop_name_valid(const char *name)
{
    size_t n = 0;
    for (; name[n] != '\0'; n++)
        if (!((name[n] >= '0' && name[n] <= '9') || (name[n] >= 'a' && name[n] <= 'f')) ||
            n >= DROP_NAME_MAX)
            return false;
    return n >= 16;
}

static int path_of(char *out, size_t outlen, const char *mailbox_dir, const char *sub,
                   const char *name, const char **error_r)
{
    int n = snprintf(out, outlen, "%s/%s%s%s", mailbox_dir, sub, name[0] ? "/" : "", name);
    if (n < 0 || (size_t)n >= outlen) {
        *error_r = "mailbox path too long";
        return -1;
    }
    return 0;
}

bool drop_exists(const char *mailbox_dir, enum drop_area area, const char *name)
{
    char path[4096];
    const char *error;
    struct stat st;
    return drop_name_valid(name) &&
           path_of(path, sizeof path, mailbox_dir, area_dir(area), name, &error) == 0 &&
           lstat(path, &st) == 0;
}

static int open_dir(const char *mailbox_dir, const char *sub, const char **error_r)
{
    char path[4096];
    if (path_of(path, sizeof path, mailbox_dir, sub, "", error_r) < 0)
        return -1;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        *error_r = errno_msg("cannot open mailbox directory");
    return fd;
}

/* Syncs of one directory take turns (see the top of this file). */
static void lock_dir(int dfd)
{
    while (flock(dfd, LOCK_EX) < 0 && errno == EINTR)
        ;
}

static int sync_dir(const char *mailbox_dir, const char *sub, const char **error_r)
{
    int fd = open_dir(mailbox_dir, sub, error_r);
    if (fd < 0)
        return -1;
    lock_dir(fd);
    int ret = fsync(fd);
    if (ret < 0)
        *error_r = errno_msg("cannot sync mailbox directory");
    close(fd); /* releases the lock */
    return ret;
}

/* msg/ first: a move from drop/ to msg/ must be durable where it arrives
 * before its departure is (without a journal, ext4 could otherwise keep
 * the removal and lose the new entry); a crash between the two leaves
 * the file in both, and readers look in msg/ first. */
int drop_sync(const char *mailbox_dir, const char **error_r)
{
    return sync_dir(mailbox_dir, "msg", error_r) < 0 ? -1 : sync_dir(mailbox_dir, "drop", error_r);
}

/* 8 bytes of time, the name, and when there are flags a NUL and a flag
 * byte (names are hex digits, so the NUL cannot be part of one). */
static void meta_encode(uint8_t *meta, int64_t received, const char *name, unsigned flags,
                        size_t *len_r)
{
    sm_put_be64(meta, (uint64_t)received);
    size_t n = strlen(name);
    memcpy(meta + 8, name, n);
    *len_r = 8 + n;
    if (flags != 0) {
        meta[8 + n] = 0;
        meta[9 + n] = (uint8_t)flags;
        *len_r += 2;
    }
}

/* Seal body_fd into the open temporary file (not synced). */
static int seal_into(int fd, const char *name, const uint8_t *pk, int64_t received, int body_fd,
                     const struct drop_note *note, uint64_t *bytes_r, uint8_t *key_r,
                     const char **error_r)
{
    uint8_t meta[META_MAX];
    size_t meta_len;
    uint64_t size;
    struct stat st;

    meta_encode(meta, received, name, note != NULL ? note->flags : 0, &meta_len);
    if (lseek(body_fd, 0, SEEK_SET) < 0) {
        *error_r = errno_msg("cannot rewind message");
        return -1;
    }
    if (sealfile_write_key(fd, MAGIC, meta, meta_len, pk, note != NULL ? note->prefix : NULL,
                           note != NULL ? note->prefix_len : 0, body_fd, &size, key_r,
                           error_r) < 0)
        return -1;
    if (fstat(fd, &st) < 0) {
        *error_r = errno_msg("cannot stat drop file");
        return -1;
    }
    *bytes_r = (uint64_t)st.st_size;
    return 0;
}

/* --- batches ------------------------------------------------------------------------ */

#define BATCH_OPEN_MAX 64 /* temporary files a batch keeps open; more are reopened */
#ifndef DROP_SYNC_THREADS   /* -D for measurements */
#define DROP_SYNC_THREADS 4 /* file syncs at once per mailbox, the committing thread included */
#endif
#define ITEM_ERROR_MAX 256

enum item_state { ITEM_WRITTEN, ITEM_EXISTS };

struct drop_item {
    char *mailbox_dir;
    char name[DROP_NAME_MAX + 1];
    char tmpname[DROP_NAME_MAX + 32];
    enum item_state state;
    int fd;            /* the temporary file, or -1: reopen it by name */
    size_t tag, seq;   /* the caller's; the order of adding */
    uint64_t bytes;
    int result;
    char error[ITEM_ERROR_MAX];
};

struct drop_batch {
    struct drop_item *v;
    size_t n, cap, open_fds;
};

struct drop_batch *drop_batch_new(void)
{
    return sm_calloc(1, sizeof(struct drop_batch));
}

size_t drop_batch_size(const struct drop_batch *b)
{
    return b->n;
}

static bool batch_has(const struct drop_batch *b, const char *mailbox_dir, const char *name)
{
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->v[i].name, name) == 0 && strcmp(b->v[i].mailbox_dir, mailbox_dir) == 0)
            return true;
    return false;
}

int drop_batch_add(struct drop_batch *b, const char *mailbox_dir, const char *name,
                   const uint8_t pk[DROP_PK_BYTES], int64_t received, int body_fd, size_t tag,
                   const char **error_r)
{
    return drop_batch_add_noted(b, mailbox_dir, name, pk, received, body_fd, NULL, tag, error_r);
}

int drop_batch_add_noted(struct drop_batch *b, const char *mailbox_dir, const char *name,
                         const uint8_t pk[DROP_PK_BYTES], int64_t received, int body_fd,
                         const struct drop_note *note, size_t tag, const char **error_r)
{
    struct drop_item it = {.fd = -1, .tag = tag, .seq = b->n, .state = ITEM_EXISTS};
    char tmp[4096];

    if (!drop_name_valid(name)) {
        *error_r = "invalid drop file name";
        return -1;
    }
    snprintf(it.name, sizeof it.name, "%s", name);
    if (!batch_has(b, mailbox_dir, name) && !drop_exists(mailbox_dir, DROP_AREA_DROP, name) &&
        !drop_exists(mailbox_dir, DROP_AREA_MSG, name)) {
        snprintf(it.tmpname, sizeof it.tmpname, TMP_PREFIX "%s-%ld", name, (long)getpid());
        if (path_of(tmp, sizeof tmp, mailbox_dir, "drop", it.tmpname, error_r) < 0)
            return -1;
        it.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (it.fd < 0) {
            *error_r = errno_msg("cannot create drop file");
            return -1;
        }
        if (seal_into(it.fd, name, pk, received, body_fd, note, &it.bytes, NULL, error_r) < 0) {
            close(it.fd);
            unlink(tmp);
            return -1;
        }
        if (b->open_fds >= BATCH_OPEN_MAX) {
            close(it.fd);
            it.fd = -1;
        } else {
            b->open_fds++;
        }
        it.state = ITEM_WRITTEN;
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->v = sm_realloc(b->v, b->cap * sizeof *b->v);
    }
    it.mailbox_dir = sm_strdup(mailbox_dir);
    b->v[b->n++] = it;
    return 0;
}

static void item_fail(struct drop_item *it, const char *error)
{
    it->result = -1;
    snprintf(it->error, sizeof it->error, "%s", error);
}

static void item_close(struct drop_batch *b, struct drop_item *it)
{
    if (it->fd >= 0) {
        close(it->fd);
        it->fd = -1;
        b->open_fds--;
    }
}

/* Under the lock of drop/ (dfd): make one written item's data durable.
 * Runs on several threads at once (only touches *it). */
static void item_sync(struct drop_item *it, int dfd)
{
    int fd = it->fd >= 0 ? it->fd
                         : openat(dfd, it->tmpname, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fdatasync(fd) < 0)
        item_fail(it, errno_msg("cannot sync drop file"));
    if (it->fd < 0 && fd >= 0)
        close(fd);
}

/* Then, on the committing thread: name it (never replacing). */
static void item_name(struct drop_batch *b, struct drop_item *it, int dfd)
{
    if (it->result == 0) {
        if (renameat2(dfd, it->tmpname, dfd, it->name, RENAME_NOREPLACE) == 0)
            it->result = 1;
        else if (errno != EEXIST) /* EEXIST: a concurrent delivery of the same message */
            item_fail(it, errno_msg("cannot rename drop file"));
    }
    item_close(b, it);
    if (it->result != 1)
        unlinkat(dfd, it->tmpname, 0);
}

/* The file syncs of a group, DROP_SYNC_THREADS at a time: the device merges
 * the cache flushes of concurrent syncs, serial ones each pay their own. */
struct fanout {
    struct drop_item **v;
    size_t n;
    int dfd;
    atomic_size_t next;
};

static void *fanout_sync(void *arg)
{
    struct fanout *f = arg;
    for (size_t i; (i = atomic_fetch_add(&f->next, 1)) < f->n;)
        if (f->v[i]->state == ITEM_WRITTEN)
            item_sync(f->v[i], f->dfd);
    return NULL;
}

static void sync_items(struct drop_item **v, size_t n, int dfd)
{
    struct fanout f = {.v = v, .n = n, .dfd = dfd};
    pthread_t helpers[DROP_SYNC_THREADS > 1 ? DROP_SYNC_THREADS - 1 : 1];
    size_t started = 0, written = 0;
    pthread_attr_t attr;

    atomic_init(&f.next, 0);
    for (size_t i = 0; i < n; i++)
        written += v[i]->state == ITEM_WRITTEN;
    if (written > 1 && pthread_attr_init(&attr) == 0) {
        pthread_attr_setstacksize(&attr, 64 * 1024);
        while (started + 1 < DROP_SYNC_THREADS && started + 1 < written &&
               pthread_create(&helpers[started], &attr, fanout_sync, &f) == 0)
            started++; /* if a thread cannot start, fewer do the work */
        pthread_attr_destroy(&attr);
    }
    fanout_sync(&f);
    for (size_t i = 0; i < started; i++)
        pthread_join(helpers[i], NULL);
}

/* The items of one mailbox, v[0..n): each synced (several at once) and
 * named, then drop/ synced once, all under the directory's lock. */
static void commit_group(struct drop_batch *b, struct drop_item **v, size_t n)
{
    const char *error = NULL;
    int dfd = open_dir(v[0]->mailbox_dir, "drop", &error);
    if (dfd < 0) {
        for (size_t i = 0; i < n; i++) {
            item_fail(v[i], error);
            item_close(b, v[i]); /* the .tmp file is left for drop_list() to remove */
        }
        return;
    }
    lock_dir(dfd);
    sync_items(v, n, dfd);
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (v[i]->state == ITEM_WRITTEN)
            item_name(b, v[i], dfd);
        any |= v[i]->result >= 0;
    }
    if (any && fsync(dfd) < 0) {
        error = errno_msg("cannot sync mailbox directory");
        for (size_t i = 0; i < n; i++)
            if (v[i]->result >= 0)
                item_fail(v[i], error); /* the file stays: a retry finds it, syncs again */
    }
    close(dfd); /* releases the lock */
}

static int item_cmp(const void *a, const void *b)
{
    const struct drop_item *x = *(const struct drop_item *const *)a;
    const struct drop_item *y = *(const struct drop_item *const *)b;
    int c = strcmp(x->mailbox_dir, y->mailbox_dir);
    return c != 0 ? c : x->seq < y->seq ? -1 : x->seq > y->seq;
}

void drop_batch_commit(struct drop_batch *b, drop_batch_fn *fn, void *arg)
{
    struct drop_item **order = sm_calloc(b->n ? b->n : 1, sizeof *order);
    for (size_t i = 0; i < b->n; i++)
        order[i] = &b->v[i];
    qsort(order, b->n, sizeof *order, item_cmp);
    for (size_t i = 0, j; i < b->n; i = j) {
        for (j = i + 1; j < b->n && strcmp(order[j]->mailbox_dir, order[i]->mailbox_dir) == 0;)
            j++;
        commit_group(b, order + i, j - i);
        for (size_t k = i; k < j; k++)
            fn(arg, order[k]->tag, order[k]->mailbox_dir, order[k]->result, order[k]->bytes,
               order[k]->result < 0 ? order[k]->error : NULL);
    }
    free(order);
    for (size_t i = 0; i < b->n; i++)
        free(b->v[i].mailbox_dir);
    b->n = 0;
}

void drop_batch_free(struct drop_batch **bp)
{
    struct drop_batch *b = *bp;
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->n; i++) {
        char tmp[4096];
        const char *error;
        item_close(b, &b->v[i]);
        if (b->v[i].state == ITEM_WRITTEN &&
            path_of(tmp, sizeof tmp, b->v[i].mailbox_dir, "drop", b->v[i].tmpname, &error) == 0)
            unlink(tmp);
        free(b->v[i].mailbox_dir);
    }
    free(b->v);
    sm_freep(bp);
}

struct one_result {
    int result;
    uint64_t bytes;
    char error[ITEM_ERROR_MAX];
};

static void one_done(void *arg, size_t tag, const char *mailbox_dir, int result, uint64_t bytes,
                     const char *error)
{
    (void)tag, (void)mailbox_dir;
    struct one_result *r = arg;
    r->result = result;
    r->bytes = bytes;
    if (error != NULL)
        snprintf(r->error, sizeof r->error, "%s", error);
}

int drop_deliver(const char *mailbox_dir, const char *name, const uint8_t pk[DROP_PK_BYTES],
                 int64_t received, int body_fd, uint64_t *sealed_bytes_r, const char **error_r)
{
    static _Thread_local char deliver_error[ITEM_ERROR_MAX];
    struct one_result r = {.result = -1};
    struct drop_batch *b = drop_batch_new();
    if (drop_batch_add(b, mailbox_dir, name, pk, received, body_fd, 0, error_r) < 0) {
        drop_batch_free(&b);
        return -1;
    }
    drop_batch_commit(b, one_done, &r);
    drop_batch_free(&b);
    if (r.result < 0) {
        snprintf(deliver_error, sizeof deliver_error, "%s", r.error);
        *error_r = deliver_error;
        return -1;
    }
    if (r.result > 0)
        *sealed_bytes_r = r.bytes;
    return r.result;
}

/* A .tmp- file nobody finished: remove it once it is old enough that no
 * delivery can still be writing it. */
static void remove_leftover(int dfd, const char *name)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        time(NULL) - st.st_mtime > LEFTOVER_AGE)
        unlinkat(dfd, name, 0);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int drop_list(const char *mailbox_dir, void (*fn)(void *arg, const char *name), void *arg,
              const char **error_r)
{
    char path[4096];
    char **names = NULL;
    size_t n = 0, cap = 0;

    if (path_of(path, sizeof path, mailbox_dir, "drop", "", error_r) < 0)
        return -1;
    DIR *d = opendir(path);
    if (d == NULL) {
        *error_r = errno_msg("cannot list drop directory");
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, TMP_PREFIX, sizeof TMP_PREFIX - 1) == 0)
            remove_leftover(dirfd(d), de->d_name);
        if (!drop_name_valid(de->d_name))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = sm_realloc(names, cap * sizeof *names);
        }
        names[n++] = sm_strdup(de->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof *names, name_cmp);
    for (size_t i = 0; i < n; i++) {
        fn(arg, names[i]);
        free(names[i]);
    }
    free(names);
    return (int)n;
}

/* Open a message file for reading: a regular file, never a FIFO or link. */
static int open_file(const char *path, const char **error_r)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat st;
    if (fd < 0) {
        *error_r = errno == ENOENT ? "message file is missing" : errno_msg("cannot open message");
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        *error_r = "message file is not a regular file";
        close(fd);
        return -1;
    }
    return fd;
}

/* The metadata must be 8 bytes of time and exactly this file's name,
 * then optionally a NUL and a byte of known flags. */
static int meta_check(const uint8_t *meta, size_t len, const char *name, int64_t *received_r,
                      unsigned *flags_r)
{
    size_t n = strlen(name);
    bool flagged = len == 10 + n && meta[8 + n] == 0 && (meta[9 + n] & ~DROP_F_JUNK) == 0 &&
                   meta[9 + n] != 0;
    if ((len != 8 + n && !flagged) || memcmp(meta + 8, name, n) != 0)
        return -1;
    if (received_r != NULL)
        *received_r = (int64_t)sm_get_be64(meta);
    if (flags_r != NULL)
        *flags_r = flagged ? meta[9 + n] : 0;
    return 0;
}

int drop_read(const char *mailbox_dir, enum drop_area area, const char *name,
              const uint8_t pk[DROP_PK_BYTES], const uint8_t sk[DROP_SK_BYTES], int out,
              int64_t *received_r, uint64_t *size_r, const char **error_r)
{
    return drop_read_flags(mailbox_dir, area, name, pk, sk, out, received_r, size_r, NULL,
                           error_r);
}

int drop_read_flags(const char *mailbox_dir, enum drop_area area, const char *name,
                    const uint8_t pk[DROP_PK_BYTES], const uint8_t sk[DROP_SK_BYTES], int out,
                    int64_t *received_r, uint64_t *size_r, unsigned *flags_r,
                    const char **error_r)
{
    struct sealfile_key k = {.pk = pk, .sk = sk};
    return drop_read_k(mailbox_dir, area, name, &k, out, received_r, size_r, flags_r, error_r);
}

int drop_read_k(const char *mailbox_dir, enum drop_area area, const char *name,
                const struct sealfile_key *k, int out, int64_t *received_r, uint64_t *size_r,
                unsigned *flags_r, const char **error_r)
{
    char path[4096];
    uint8_t *meta = NULL;
    size_t meta_len = 0;

    if (!drop_name_valid(name)) {
        *error_r = "invalid message file name";
        return -1;
    }
    if (path_of(path, sizeof path, mailbox_dir, area_dir(area), name, error_r) < 0)
        return -1;
    int fd = open_file(path, error_r);
    if (fd < 0)
        return -1;
    int ret = sealfile_read_k(fd, MAGIC, META_MAX, k, out, &meta, &meta_len, size_r, error_r);
    close(fd);
    if (ret == 0 && meta_check(meta, meta_len, name, received_r, flags_r) < 0) {
        *error_r = "message file does not belong under this name (swapped or renamed)";
        if (k->key_r != NULL)
            seal_wipe(k->key_r, DROP_KEY_BYTES);
        ret = -1;
    }
    free(meta);
    return ret;
}

int drop_read_mem(const char *mailbox_dir, enum drop_area area, const char *name,
                  const uint8_t pk[DROP_PK_BYTES], const uint8_t sk[DROP_SK_BYTES],
                  uint64_t want, uint64_t max, struct sealfile_plain *p, const char **error_r)
{
    struct sealfile_key k = {.pk = pk, .sk = sk};
    return drop_read_mem_k(mailbox_dir, area, name, &k, want, max, p, error_r);
}

int drop_open_area(const char *mailbox_dir, enum drop_area area, const char **error_r)
{
    char path[4096];
    if (path_of(path, sizeof path, mailbox_dir, area_dir(area), "", error_r) < 0)
        return -1;
    int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        *error_r = errno_msg("cannot open mailbox directory");
    return fd;
}

/* Open name in dfd (AT_FDCWD: name is a path) and read it into p. */
static int read_mem_at(int dfd, const char *path, const char *name,
                       const struct sealfile_key *k, uint64_t want, uint64_t max,
                       struct sealfile_plain *p, const char **error_r)
{
    const uint8_t *meta;
    size_t meta_len;
    /* sealfile_read_mem() refuses anything but a regular file before using it */
    int fd = openat(dfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        *error_r = errno == ENOENT ? "message file is missing" : errno_msg("cannot open message");
        return errno == ENOENT ? DROP_MISSING : -1;
    }
    int ret = sealfile_read_mem_k(fd, MAGIC, META_MAX, k, want, max, p, &meta, &meta_len,
                                  error_r);
    close(fd);
    if (ret == 0 && meta_check(meta, meta_len, name, NULL, NULL) < 0) {
        *error_r = "message file does not belong under this name (swapped or renamed)";
        sealfile_plain_free(p); /* wipes what was decrypted */
        if (k->key_r != NULL)
            seal_wipe(k->key_r, DROP_KEY_BYTES);
        ret = -1;
    }
    return ret;
}

int drop_read_mem_k(const char *mailbox_dir, enum drop_area area, const char *name,
                    const struct sealfile_key *k, uint64_t want, uint64_t max,
                    struct sealfile_plain *p, const char **error_r)
{
    char path[4096];
    p->len = 0;
    if (!drop_name_valid(name)) {
        *error_r = "invalid message file name";
        return -1;
    }
    if (path_of(path, sizeof path, mailbox_dir, area_dir(area), name, error_r) < 0)
        return -1;
    return read_mem_at(AT_FDCWD, path, name, k, want, max, p, error_r);
}

int drop_read_mem_at(int dfd, const char *name, const struct sealfile_key *k, uint64_t want,
                     uint64_t max, struct sealfile_plain *p, const char **error_r)
{
    p->len = 0;
    if (!drop_name_valid(name)) { /* also: no slash, so the name stays in dfd */
        *error_r = "invalid message file name";
        return -1;
    }
    return read_mem_at(dfd, name, name, k, want, max, p, error_r);
}

int drop_move_to_msg(const char *mailbox_dir, const char *name, const char **error_r)
{
    char from[4096], to[4096];
    if (!drop_name_valid(name)) {
        *error_r = "invalid message file name";
        return -1;
    }
    if (path_of(from, sizeof from, mailbox_dir, "drop", name, error_r) < 0 ||
        path_of(to, sizeof to, mailbox_dir, "msg", name, error_r) < 0)
        return -1;
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno == EEXIST && unlink(from) == 0)
        return 0; /* imported before: this copy is the duplicate */
    if (errno == ENOENT)
        return 0; /* moved by an earlier, interrupted import */
    *error_r = errno_msg("cannot move message into the store");
    return -1;
}

int drop_remove(const char *mailbox_dir, enum drop_area area, const char *name,
                const char **error_r)
{
    char path[4096];
    if (!drop_name_valid(name)) {
        *error_r = "invalid message file name";
        return -1;
    }
    if (path_of(path, sizeof path, mailbox_dir, area_dir(area), name, error_r) < 0)
        return -1;
    if (unlink(path) < 0 && errno != ENOENT) {
        *error_r = errno_msg("cannot remove message file");
        return -1;
    }
    return 0;
}

int drop_store(const char *mailbox_dir, enum drop_area area, const char *name,
               const uint8_t pk[DROP_PK_BYTES], int64_t received, int body_fd,
               uint64_t *sealed_bytes_r, const char **error_r)
{
    return drop_store_key(mailbox_dir, area, name, pk, received, body_fd, sealed_bytes_r, NULL,
                          error_r);
}

int drop_store_key(const char *mailbox_dir, enum drop_area area, const char *name,
                   const uint8_t pk[DROP_PK_BYTES], int64_t received, int body_fd,
                   uint64_t *sealed_bytes_r, uint8_t *key_r, const char **error_r)
{
    char tmpname[64];
    const char *sub = area_dir(area);

    if (!drop_name_valid(name)) {
        *error_r = "invalid message file name";
        return -1;
    }
    snprintf(tmpname, sizeof tmpname, TMP_PREFIX "%s-%ld", name, (long)getpid());
    int dfd = open_dir(mailbox_dir, sub, error_r);
    if (dfd < 0)
        return -1;
    int fd = openat(dfd, tmpname, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        *error_r = errno_msg("cannot create message file");
        close(dfd);
        return -1;
    }
    int ret = seal_into(fd, name, pk, received, body_fd, NULL, sealed_bytes_r, key_r, error_r);
    if (ret == 0) {
        lock_dir(dfd); /* this first sync of a new file syncs the directory too */
        if (fdatasync(fd) < 0) {
            *error_r = errno_msg("cannot sync message file");
            ret = -1;
        }
    }
    close(fd);
    if (ret == 0 && renameat2(dfd, tmpname, dfd, name, RENAME_NOREPLACE) < 0) {
        ret = errno == EEXIST ? 1 : -1;
        if (ret < 0)
            *error_r = errno_msg("cannot rename message file");
    }
    if (ret != 0)
        unlinkat(dfd, tmpname, 0);
    if (ret == 0 && fsync(dfd) < 0) {
        *error_r = errno_msg("cannot sync mailbox directory");
        ret = -1;
    }
    if (ret != 0 && key_r != NULL)
        seal_wipe(key_r, DROP_KEY_BYTES); /* no file of ours holds it */
    close(dfd); /* releases the lock */
    return ret < 0 ? -1 : ret == 0 ? 1 : 0;
}
