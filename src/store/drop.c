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
 * and only after its database transaction committed (mailbox.c). */
#include "store/drop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/bytes.h"
#include "core/mem.h"
#include "store/sealfile.h"

#define MAGIC "SEALDR\0\1"
#define META_MAX (8 + DROP_NAME_MAX)
#define TMP_PREFIX ".tmp-"
#define LEFTOVER_AGE 60 /* seconds before an unfinished .tmp file is garbage */

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

static int sync_dir(const char *mailbox_dir, const char *sub, const char **error_r)
{
    char path[4096];
    if (path_of(path, sizeof path, mailbox_dir, sub, "", error_r) < 0)
        return -1;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0) {
        *error_r = errno_msg("cannot sync mailbox directory");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

int drop_sync(const char *mailbox_dir, const char **error_r)
{
    return sync_dir(mailbox_dir, "drop", error_r) < 0 ? -1 : sync_dir(mailbox_dir, "msg", error_r);
}

static void meta_encode(uint8_t *meta, int64_t received, const char *name, size_t *len_r)
{
    sm_put_be64(meta, (uint64_t)received);
    size_t n = strlen(name);
    memcpy(meta + 8, name, n);
    *len_r = 8 + n;
}

/* Seal body_fd into the open temporary file and make it durable. */
static int write_sealed(int fd, const char *name, const uint8_t *pk, int64_t received,
                        int body_fd, uint64_t *bytes_r, const char **error_r)
{
    uint8_t meta[META_MAX];
    size_t meta_len;
    uint64_t size;
    struct stat st;

    meta_encode(meta, received, name, &meta_len);
    if (lseek(body_fd, 0, SEEK_SET) < 0) {
        *error_r = errno_msg("cannot rewind message");
        return -1;
    }
    if (sealfile_write(fd, MAGIC, meta, meta_len, pk, body_fd, &size, error_r) < 0)
        return -1;
    if (fdatasync(fd) < 0 || fstat(fd, &st) < 0) {
        *error_r = errno_msg("cannot sync drop file");
        return -1;
    }
    *bytes_r = (uint64_t)st.st_size;
    return 0;
}

int drop_deliver(const char *mailbox_dir, const char *name, const uint8_t pk[DROP_PK_BYTES],
                 int64_t received, int body_fd, uint64_t *sealed_bytes_r, const char **error_r)
{
    char tmp[4096], final[4096], tmpname[64];

    if (!drop_name_valid(name)) {
        *error_r = "invalid drop file name";
        return -1;
    }
    if (drop_exists(mailbox_dir, DROP_AREA_DROP, name) ||
        drop_exists(mailbox_dir, DROP_AREA_MSG, name))
        return 0;
    snprintf(tmpname, sizeof tmpname, TMP_PREFIX "%s-%ld", name, (long)getpid());
    if (path_of(tmp, sizeof tmp, mailbox_dir, "drop", tmpname, error_r) < 0 ||
        path_of(final, sizeof final, mailbox_dir, "drop", name, error_r) < 0)
        return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        *error_r = errno_msg("cannot create drop file");
        return -1;
    }
    int ret = write_sealed(fd, name, pk, received, body_fd, sealed_bytes_r, error_r);
    close(fd);
    if (ret == 0 && renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_NOREPLACE) < 0) {
        ret = errno == EEXIST ? 1 : -1; /* a concurrent delivery of the same message */
        if (ret < 0)
            *error_r = errno_msg("cannot rename drop file");
    }
    if (ret != 0)
        unlink(tmp);
    if (ret == 1)
        return 0;
    if (ret == 0 && sync_dir(mailbox_dir, "drop", error_r) < 0)
        return -1; /* the file stays: a retry finds it and does not duplicate it */
    return ret < 0 ? -1 : 1;
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

/* The metadata must be 8 bytes of time and exactly this file's name. */
static int meta_check(const uint8_t *meta, size_t len, const char *name, int64_t *received_r)
{
    size_t n = strlen(name);
    if (len != 8 + n || memcmp(meta + 8, name, n) != 0)
        return -1;
    if (received_r != NULL)
        *received_r = (int64_t)sm_get_be64(meta);
    return 0;
}

int drop_read(const char *mailbox_dir, enum drop_area area, const char *name,
              const uint8_t pk[DROP_PK_BYTES], const uint8_t sk[DROP_SK_BYTES], int out,
              int64_t *received_r, uint64_t *size_r, const char **error_r)
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
    int ret = sealfile_read(fd, MAGIC, META_MAX, pk, sk, out, &meta, &meta_len, size_r, error_r);
    close(fd);
    if (ret == 0 && meta_check(meta, meta_len, name, received_r) < 0) {
        *error_r = "message file does not belong under this name (swapped or renamed)";
        ret = -1;
    }
    free(meta);
    return ret;
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
