/* spoolreader.c — reading spooled messages and listing the queue. */
#include "store/spool-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/bytes.h"
#include "core/fileio.h"
#include "core/mem.h"
#include "store/sealfile.h"

/* The parsed start of a spool file: header bytes up to the first chunk. */
struct prefix {
    uint8_t *data; /* FIXED_LEN + env_len + TRAILER_LEN bytes */
    size_t len;
    uint32_t env_len;
    uint64_t size;
};

static int open_message(const char *dir, const char *id, struct chain_ref *ref,
                        const char **error_r)
{
    char path[4096];

    memset(ref, 0, sizeof *ref);
    if (!spool_id_valid(id)) {
        *error_r = "invalid queue id (expected 16 lowercase hex digits)";
        return -1;
    }
    if ((size_t)snprintf(path, sizeof path, "%s/incoming/%s", dir, id) >= sizeof path) {
        *error_r = "spool path too long";
        return -1;
    }
    /* O_NONBLOCK: a FIFO planted in the spool must not hang the reader */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    uint32_t segnum, ticket;
    if (fd < 0 && errno == ENOENT && seg_id_parse(id, &segnum, &ticket))
        return seg_open_record(dir, segnum, ticket, ref, error_r); /* not spilled to a file */
    if (fd < 0) {
        *error_r = errno == ENOENT ? "no such message in the spool"
                                   : spool_errno_msg("cannot open message");
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        *error_r = "not a regular file";
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

/* Read and check the fixed header, the envelope and the key material of
 * spool bytes, in a record of a chained segment or elsewhere. */
static int read_prefix(int fd, bool chained, struct prefix *pr, const char **error_r)
{
    uint8_t fixed[FIXED_LEN];
    ssize_t n = sm_read_full(fd, fixed, FIXED_LEN);

    memset(pr, 0, sizeof *pr);
    if (n < 0) {
        *error_r = spool_errno_msg("cannot read message");
        return -1;
    }
    if ((size_t)n < MAGIC_LEN || !spool_version_in_place(spool_magic_version(fixed), chained)) {
        *error_r = "not a spool file (bad magic or version)";
        return -1;
    }
    if (n < FIXED_LEN) {
        *error_r = "truncated spool file";
        return -1;
    }
    pr->size = sm_get_be64(fixed + OFF_SIZE);
    pr->env_len = sm_get_be32(fixed + 16);
    if (pr->env_len > SPOOL_ENV_MAX) {
        *error_r = "spool file envelope too large";
        return -1;
    }
    pr->len = FIXED_LEN + (size_t)pr->env_len + TRAILER_LEN;
    pr->data = sm_malloc(pr->len);
    memcpy(pr->data, fixed, FIXED_LEN);
    n = sm_read_full(fd, pr->data + FIXED_LEN, pr->len - FIXED_LEN);
    if (n < 0 || (size_t)n != pr->len - FIXED_LEN) {
        *error_r = n < 0 ? spool_errno_msg("cannot read message") : "truncated spool file";
        sm_freep(&pr->data);
        return -1;
    }
    return 0;
}

int spool_read_envelope(const char *dir, const char *id, struct spool_envelope *env,
                        const char **error_r)
{
    struct prefix pr;
    struct chain_ref ref;
    int fd = open_message(dir, id, &ref, error_r);

    memset(env, 0, sizeof *env);
    if (fd < 0)
        return -1;
    int ret = read_prefix(fd, ref.chained, &pr, error_r);
    close(fd);
    if (ret < 0)
        return -1;
    if (spool_envelope_decode(pr.data + FIXED_LEN, pr.env_len, env) < 0) {
        spool_envelope_free(env);
        *error_r = "malformed envelope in spool file";
        ret = -1;
    } else {
        env->size = pr.size;
    }
    free(pr.data);
    return ret;
}

/* The format version of the spool bytes open at in (1, 2 or 3), or 0. */
static int file_version(int in)
{
    uint8_t m[MAGIC_LEN];
    return pread(in, m, MAGIC_LEN, 0) == MAGIC_LEN ? spool_magic_version(m) : 0;
}

/* Decrypt the spool bytes open at in (of version v) into out: a chained
 * record's key from its segment's chain (seg_record_key), any other's
 * from its own sealed key. */
static int read_sealed(int in, int v, const struct chain_ref *ref, const uint8_t pk[SPOOL_PK_BYTES],
                       const uint8_t sk[SPOOL_SK_BYTES], int out, uint8_t **meta_r,
                       size_t *meta_len_r, uint64_t *size_r, const char **error_r)
{
    if (!spool_version_in_place(v, ref->chained)) {
        *error_r = "not a spool file (bad magic or version)";
        return -1;
    }
    if (v != 3)
        return sealfile_read(in, v == 1 ? MAGIC_V1 : MAGIC, SPOOL_ENV_MAX, pk, sk, out, meta_r,
                             meta_len_r, size_r, error_r);
    uint8_t key[CHAIN_KEY_BYTES];
    if (seg_record_key(ref, pk, sk, key, error_r) < 0)
        return -1;
    struct sealfile_key k = {.file_key = key};
    int ret =
        sealfile_read_k(in, MAGIC_V3, SPOOL_ENV_MAX, &k, out, meta_r, meta_len_r, size_r, error_r);
    seal_wipe(key, sizeof key);
    return ret;
}

/* The content written to out from offset start is message || note: move
 * the note into env and cut it off out.  *size is the content size and
 * becomes the message size. */
static int take_note(int out, off_t start, uint64_t *size, struct spool_envelope *env,
                     const char **error_r)
{
    uint8_t tail[NOTE_TAIL];
    if (*size < NOTE_TAIL ||
        pread(out, tail, NOTE_TAIL, start + (off_t)(*size - NOTE_TAIL)) != NOTE_TAIL) {
        *error_r = "spool file lacks its delivery note";
        return -1;
    }
    uint32_t flags = sm_get_be32(tail), len = sm_get_be32(tail + 4);
    if (len > SPOOL_NOTE_MAX || len > *size - NOTE_TAIL) {
        *error_r = "malformed delivery note in spool file";
        return -1;
    }
    uint64_t body = *size - NOTE_TAIL - len;
    env->flags = flags;
    env->prefix_len = len;
    env->prefix = sm_malloc(len + 1);
    if (len > 0 && pread(out, env->prefix, len, start + (off_t)body) != (ssize_t)len) {
        *error_r = spool_errno_msg("cannot read delivery note");
        return -1;
    }
    if (ftruncate(out, start + (off_t)body) < 0 || lseek(out, 0, SEEK_END) < 0) {
        *error_r = spool_errno_msg("cannot cut delivery note");
        return -1;
    }
    *size = body;
    return 0;
}

int spool_read_message(const char *dir, const char *id, const uint8_t pk[SPOOL_PK_BYTES],
                       const uint8_t sk[SPOOL_SK_BYTES], int fd, struct spool_envelope *env,
                       const char **error_r)
{
    uint8_t *meta = NULL;
    size_t meta_len = 0;
    uint64_t size;
    struct spool_envelope local;

    if (env == NULL)
        env = &local;
    memset(env, 0, sizeof *env);
    struct chain_ref ref;
    int in = open_message(dir, id, &ref, error_r);
    if (in < 0)
        return -1;
    /* the envelope comes from the same bytes the hash H binds to the body */
    int version = file_version(in);
    bool v1 = version == 1;
    off_t start = lseek(fd, 0, SEEK_CUR);
    int ret = start < 0
                  ? -1
                  : read_sealed(in, version, &ref, pk, sk, fd, &meta, &meta_len, &size, error_r);
    if (start < 0)
        *error_r = "the output of spool_read_message() must be seekable";
    close(in);
    if (ret == 0 && spool_envelope_decode(meta, meta_len, env) < 0) {
        *error_r = "malformed envelope in spool file";
        ret = -1;
    }
    if (ret == 0 && !v1 && take_note(fd, start, &size, env, error_r) < 0)
        ret = -1;
    free(meta);
    if (ret < 0 || env == &local) {
        spool_envelope_free(env); /* nothing unauthenticated leaves */
        memset(env, 0, sizeof *env);
    } else {
        env->size = size;
    }
    return ret;
}

int spool_read_body(const char *dir, const char *id, const uint8_t pk[SPOOL_PK_BYTES],
                    const uint8_t sk[SPOOL_SK_BYTES], int fd, const char **error_r)
{
    return spool_read_message(dir, id, pk, sk, fd, NULL, error_r);
}

bool spool_has(const char *dir, const char *id)
{
    char path[4096];
    struct seg_header h;
    uint32_t segnum, ticket;
    uint64_t off;
    const char *error;

    if (!spool_id_valid(id) ||
        (size_t)snprintf(path, sizeof path, "%s/incoming/%s", dir, id) >= sizeof path)
        return false;
    if (faccessat(AT_FDCWD, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        return true;
    if (!seg_id_parse(id, &segnum, &ticket))
        return false;
    int dfd = spool_open_incoming(dir, false, &error);
    if (dfd < 0)
        return false;
    int fd = seg_open(dfd, segnum, &h, &error);
    bool found = fd >= 0 && seg_locate(dfd, fd, &h, ticket, &off, &error) == 0;
    if (fd >= 0)
        close(fd);
    close(dfd);
    return found;
}

static int id_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct list_ctx {
    char **ids;
    size_t n, cap;
};

static void list_add(void *arg, const char *id)
{
    struct list_ctx *c = arg;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->ids = sm_realloc(c->ids, c->cap * sizeof *c->ids);
    }
    c->ids[c->n++] = sm_strdup(id);
}

int spool_list(const char *dir, void (*fn)(void *arg, const char *id), void *arg,
               const char **error_r)
{
    int dfd = spool_open_incoming(dir, false, error_r);
    int fd = dfd >= 0 ? dup(dfd) : -1;
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct list_ctx c = {0};
    uint32_t *segs = NULL;
    size_t n_segs = 0, cap_segs = 0;
    struct dirent *de;

    if (d == NULL) {
        if (dfd >= 0) {
            *error_r = spool_errno_msg("cannot list spool directory");
            close(dfd);
        }
        if (fd >= 0)
            close(fd);
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        uint32_t segnum;
        bool is_done;
        if (spool_id_valid(de->d_name)) {
            list_add(&c, de->d_name);
        } else if (seg_name_parse(de->d_name, &segnum, &is_done) && !is_done) {
            if (n_segs == cap_segs) {
                cap_segs = cap_segs ? cap_segs * 2 : 16;
                segs = sm_realloc(segs, cap_segs * sizeof *segs);
            }
            segs[n_segs++] = segnum;
        } /* else ".", "..", temporary and .done files */
    }
    closedir(d);
    for (size_t i = 0; i < n_segs; i++)
        seg_list_live(dfd, segs[i], list_add, &c);
    free(segs);
    close(dfd);
    if (c.n > 0)
        qsort(c.ids, c.n, sizeof *c.ids, id_cmp);
    for (size_t i = 0; i < c.n; i++) {
        /* a spilled message of a segment id is listed once, as its file */
        if (i + 1 < c.n && strcmp(c.ids[i], c.ids[i + 1]) == 0) {
            free(c.ids[i]);
            continue;
        }
        fn(arg, c.ids[i]);
        free(c.ids[i]);
    }
    free(c.ids);
    if (c.n > INT32_MAX) {
        *error_r = "too many messages";
        return -1;
    }
    return (int)c.n;
}
