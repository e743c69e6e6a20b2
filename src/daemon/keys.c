/* keys.c — the server's key files (see keys.h).
 *
 * Every file is written atomically: a fresh temporary file in the same
 * directory (O_EXCL, final mode from the start), fsync, rename over the
 * final name, fsync of the directory; a crash leaves the old state or the
 * complete new file, never half a key.  The secret key is written before
 * the public one, so a public key never exists without its secret.
 *
 * Secrets are generated and read only in sodium_malloc memory (through
 * crypto/seal.h: guard pages, locked, wiped when freed) and never pass
 * through stack or heap buffers.  A secret key file that group or others
 * may read is refused, as ssh refuses such private keys.  Files are opened
 * with O_NOFOLLOW and must be regular files of exactly the key size. */
#include "core/fileio.h"
#include "daemon/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/seal.h"

_Static_assert(SPOOL_PK_BYTES == SEAL_PK_BYTES, "spool public key is an X25519 key");
_Static_assert(SPOOL_SK_BYTES == SEAL_SK_BYTES, "spool secret key is an X25519 key");


/* data_dir/keys/<name> into out; -1 with err if it does not fit. */
static int key_path(const char *data_dir, const char *name, char *out, size_t outlen, char *err,
                    size_t errlen)
{
    if ((size_t)snprintf(out, outlen, "%s/keys/%s", data_dir, name) < outlen)
        return 0;
    snprintf(err, errlen, "%s/keys: path too long", data_dir);
    return -1;
}

/* Write n bytes to name in the directory dfd atomically with mode. */
static int write_key_file(int dfd, const char *dir, const char *name, const uint8_t *data,
                          size_t n, mode_t mode, char *err, size_t errlen)
{
    char tmp[256];
    snprintf(tmp, sizeof tmp, ".%s.tmp", name);
    unlinkat(dfd, tmp, 0); /* left by a crash during an earlier attempt */
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0 || fchmod(fd, mode) < 0 || sm_write_full(fd, data, n) < 0 || fsync(fd) < 0) {
        snprintf(err, errlen, "%s/%s: %s", dir, tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlinkat(dfd, tmp, 0);
        return -1;
    }
    close(fd);
    if (renameat(dfd, tmp, dfd, name) < 0 || fsync(dfd) < 0) {
        snprintf(err, errlen, "%s/%s: %s", dir, name, strerror(errno));
        unlinkat(dfd, tmp, 0);
        return -1;
    }
    return 0;
}

/* Open path and check it is a regular file of exactly n bytes (and, for a
 * secret, private to its owner).  Returns the fd or -1 with err. */
static int open_key_file(const char *path, size_t n, bool secret, char *err, size_t errlen)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != (off_t)n) {
        snprintf(err, errlen, "%s: not a %zu-byte key file", path, n);
    } else if (secret && (st.st_mode & 077) != 0) {
        snprintf(err, errlen, "%s: permissions %04o are too open (want 0600)", path,
                 (unsigned)(st.st_mode & 07777));
    } else {
        return fd;
    }
    close(fd);
    return -1;
}

/* Read exactly n bytes of a key file into out. */
static int read_key_file(const char *path, uint8_t *out, size_t n, bool secret, char *err,
                         size_t errlen)
{
    int fd = open_key_file(path, n, secret, err, errlen);
    if (fd < 0)
        return -1;
    ssize_t r = sm_read_full(fd, out, n);
    close(fd);
    if (r != (ssize_t)n) {
        snprintf(err, errlen, "%s: cannot read the key: %s", path,
                 r < 0 ? strerror(errno) : "short read");
        return -1;
    }
    return 0;
}

/* 1 if name exists in dfd, 0 if not, -1 with err on another error. */
static int key_exists(int dfd, const char *dir, const char *name, char *err, size_t errlen)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
        return 1;
    if (errno == ENOENT)
        return 0;
    snprintf(err, errlen, "%s/%s: %s", dir, name, strerror(errno));
    return -1;
}

/* Only the secret half exists: derive and write the public half again. */
static int restore_public(int dfd, const char *dir, char *err, size_t errlen)
{
    char sec[4200];
    uint8_t pk[SPOOL_PK_BYTES];
    uint8_t *sk = NULL;

    snprintf(sec, sizeof sec, "%s/spool.key", dir);
    if (keys_read_secret(sec, &sk, err, errlen) < 0)
        return -1;
    int r = seal_public_from_secret(pk, sk);
    keys_secret_free(&sk);
    if (r < 0) {
        snprintf(err, errlen, "%s: not a usable X25519 secret key", sec);
        return -1;
    }
    return write_key_file(dfd, dir, "spool.pub", pk, sizeof pk, 0644, err, errlen);
}

/* Neither half exists: generate the pair; the secret is written first. */
static int create_pair(int dfd, const char *dir, char *err, size_t errlen)
{
    uint8_t pk[SPOOL_PK_BYTES];
    uint8_t *sk = seal_secret_alloc(SPOOL_SK_BYTES);

    seal_keypair(pk, sk);
    int r = write_key_file(dfd, dir, "spool.key", sk, SPOOL_SK_BYTES, 0600, err, errlen);
    seal_secret_free(&sk);
    if (r == 0)
        r = write_key_file(dfd, dir, "spool.pub", pk, sizeof pk, 0644, err, errlen);
    return r < 0 ? -1 : 1;
}

int keys_spool_create(const char *data_dir, char *err, size_t errlen)
{
    char dir[4096];
    if ((size_t)snprintf(dir, sizeof dir, "%s/keys", data_dir) >= sizeof dir) {
        snprintf(err, errlen, "%s/keys: path too long", data_dir);
        return -1;
    }
    if (seal_init() < 0) {
        snprintf(err, errlen, "libsodium cannot be initialised");
        return -1;
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
        return -1;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dfd < 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    int r = -1;
    /* two first starts at once (init and serve, several hosts on one
     * volume) must not each make half a key pair: check and create under
     * one lock; closing the directory releases it */
    while (flock(dfd, LOCK_EX) < 0 && errno == EINTR)
        ;
    int have_sec = key_exists(dfd, dir, "spool.key", err, errlen);
    int have_pub = have_sec < 0 ? -1 : key_exists(dfd, dir, "spool.pub", err, errlen);
    if (have_sec < 0 || have_pub < 0)
        r = -1;
    else if (have_sec && have_pub)
        r = 0;
    else if (have_sec)
        r = restore_public(dfd, dir, err, errlen);
    else if (have_pub)
        snprintf(err, errlen, "%s/spool.pub exists without spool.key; refusing to replace "
                 "it (mail sealed to it could never be read again)", dir);
    else
        r = create_pair(dfd, dir, err, errlen);
    close(dfd);
    return r;
}

int keys_spool_public(const char *data_dir, uint8_t pk[SPOOL_PK_BYTES], char *err, size_t errlen)
{
    char path[4096];
    if (key_path(data_dir, "spool.pub", path, sizeof path, err, errlen) < 0)
        return -1;
    return read_key_file(path, pk, SPOOL_PK_BYTES, false, err, errlen);
}

int keys_read_secret(const char *path, uint8_t **sk_r, char *err, size_t errlen)
{
    if (seal_init() < 0) {
        snprintf(err, errlen, "libsodium cannot be initialised");
        return -1;
    }
    uint8_t *sk = seal_secret_alloc(SPOOL_SK_BYTES);
    if (read_key_file(path, sk, SPOOL_SK_BYTES, true, err, errlen) < 0) {
        seal_secret_free(&sk);
        return -1;
    }
    *sk_r = sk;
    return 0;
}

void keys_secret_free(uint8_t **sk)
{
    seal_secret_free(sk); /* wipes before freeing; accepts NULL */
}

bool keys_spool_matches(const uint8_t *sk, const uint8_t pk[SPOOL_PK_BYTES])
{
    uint8_t derived[SPOOL_PK_BYTES];
    if (seal_public_from_secret(derived, sk) < 0)
        return false;
    return seal_equal(derived, pk, SPOOL_PK_BYTES);
}
