/* keys.c — server key files (see keys.h).
 *
 * Every file is written atomically: a temporary file in the same
 * directory, fsync, rename, fsync of the directory, so a crash leaves
 * either the old state or the complete new file.  Secret keys are read
 * into sodium_malloc memory (guard pages, mlock'd, wiped on free) and never
 * pass through ordinary buffers. */
#include "daemon/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_dir_of(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

/* Write n bytes to path atomically with the given mode. */
static int write_key_file(const char *path, const uint8_t *data, size_t n, mode_t mode,
                          char *err, size_t errlen)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0 || fchmod(fd, mode) < 0 || write_all(fd, data, n) < 0 || fsync(fd) < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) < 0 || fsync_dir_of(path) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Read exactly n bytes from path into out. */
static int read_key_file(const char *path, uint8_t *out, size_t n, char *err, size_t errlen)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t r = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == (off_t)n)
        r = read(fd, out, n);
    close(fd);
    if (r != (ssize_t)n) {
        snprintf(err, errlen, "%s: not a %zu-byte key file", path, n);
        return -1;
    }
    return 0;
}

int keys_spool_create(const char *data_dir, char *err, size_t errlen)
{
    char pub[4096], sec[4096];
    snprintf(pub, sizeof pub, "%s/keys/spool.pub", data_dir);
    snprintf(sec, sizeof sec, "%s/keys/spool.key", data_dir);
    if (access(pub, F_OK) == 0 && access(sec, F_OK) == 0)
        return 0;
    if (access(pub, F_OK) == 0 || access(sec, F_OK) == 0) {
        snprintf(err, errlen, "%s/keys: only one half of the spool key pair exists; "
                 "refusing to replace it", data_dir);
        return -1;
    }
    if (sodium_init() < 0) {
        snprintf(err, errlen, "sodium_init failed");
        return -1;
    }
    uint8_t pk[SPOOL_PK_BYTES];
    uint8_t *sk = sodium_malloc(SPOOL_SK_BYTES);
    if (sk == NULL) {
        snprintf(err, errlen, "sodium_malloc failed");
        return -1;
    }
    crypto_box_keypair(pk, sk);
    /* the secret first: a public key without its secret would be useless */
    int r = write_key_file(sec, sk, SPOOL_SK_BYTES, 0600, err, errlen);
    if (r == 0)
        r = write_key_file(pub, pk, SPOOL_PK_BYTES, 0644, err, errlen);
    sodium_free(sk);
    return r < 0 ? -1 : 1;
}

int keys_spool_public(const char *data_dir, uint8_t pk[SPOOL_PK_BYTES], char *err, size_t errlen)
{
    char pub[4096];
    snprintf(pub, sizeof pub, "%s/keys/spool.pub", data_dir);
    return read_key_file(pub, pk, SPOOL_PK_BYTES, err, errlen);
}

int keys_read_secret(const char *path, uint8_t **sk_r, char *err, size_t errlen)
{
    if (sodium_init() < 0) {
        snprintf(err, errlen, "sodium_init failed");
        return -1;
    }
    uint8_t *sk = sodium_malloc(SPOOL_SK_BYTES);
    if (sk == NULL) {
        snprintf(err, errlen, "sodium_malloc failed");
        return -1;
    }
    if (read_key_file(path, sk, SPOOL_SK_BYTES, err, errlen) < 0) {
        sodium_free(sk);
        return -1;
    }
    *sk_r = sk;
    return 0;
}

void keys_secret_free(uint8_t **sk)
{
    if (*sk != NULL)
        sodium_free(*sk); /* wipes before freeing */
    *sk = NULL;
}

bool keys_spool_matches(const uint8_t *sk, const uint8_t pk[SPOOL_PK_BYTES])
{
    uint8_t derived[SPOOL_PK_BYTES];
    if (crypto_scalarmult_base(derived, sk) != 0)
        return false;
    return sodium_memcmp(derived, pk, SPOOL_PK_BYTES) == 0;
}
