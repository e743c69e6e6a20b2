/* spoolindex.c — segments as readers see them: what each holds, where a
 * record lies, and deleting a segment once all its records are done. */
#include "store/spool-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/mem.h"

/* What a process knows of a segment it reads: the offset of each record
 * by ticket (0: not seen; offset 0 is the header) as far as it scanned,
 * and the done marks as far as it read the .done file.  Both only grow
 * (records are appended, done entries too), so each byte is read once
 * per process however many messages are looked up.  A few segments are
 * kept, under index_mu; readers are queued's delivery threads and the CLI. */
struct seg_index {
    dev_t dev;
    ino_t ino;
    struct seg_header h;
    uint64_t *off;         /* by ticket */
    uint8_t *done;         /* bitmap by ticket */
    uint32_t n_off;        /* entries of off[] (and bits of done[]) allocated */
    uint64_t scan_end;     /* the scan stopped here */
    uint64_t done_pos;     /* bytes of .done read */
    struct seg_keys *keys; /* a chained segment's, once a record was read */
};

/* The opened seed of a chained segment, as a reader on its chain, and
 * for which key pair it was opened (a hash of pk || sk: a caller with
 * other keys opens the seed itself, and fails).  In secret memory. */
struct seg_keys {
    uint8_t owner[SEAL_HASH_BYTES];
    struct spool_chain_reader r;
};

static pthread_mutex_t index_mu = PTHREAD_MUTEX_INITIALIZER;
static struct seg_index *indexes[SEG_CACHE_MAX];
static size_t n_indexes;

static void index_free(struct seg_index *e)
{
    seal_secret_free(&e->keys);
    free(e->off);
    free(e->done);
    free(e);
}

/* Grow off[] and done[] to hold ticket. */
static void index_reserve(struct seg_index *e, uint32_t ticket)
{
    if (ticket < e->n_off)
        return;
    uint32_t n = e->n_off ? e->n_off : 1024;
    while (n <= ticket)
        n *= 2;
    e->off = sm_realloc(e->off, n * sizeof *e->off);
    memset(e->off + e->n_off, 0, (n - e->n_off) * sizeof *e->off);
    e->done = sm_realloc(e->done, n / 8);
    memset(e->done + e->n_off / 8, 0, (n - e->n_off) / 8);
    e->n_off = n;
}

/* The index of the segment open at fd (header h), made if new. */
static struct seg_index *index_get(int fd, const struct seg_header *h)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return NULL;
    for (size_t i = 0; i < n_indexes; i++) {
        struct seg_index *e = indexes[i];
        if (e->dev != st.st_dev || e->ino != st.st_ino)
            continue;
        /* segments only grow: a shorter one was replaced (or damaged) */
        if (e->h.segnum == h->segnum && e->h.nonce == h->nonce &&
            (uint64_t)st.st_size >= e->scan_end)
            return e;
        indexes[i] = indexes[--n_indexes]; /* another segment now has that inode */
        index_free(e);
        break;
    }
    if (n_indexes == SEG_CACHE_MAX) {
        index_free(indexes[0]);
        memmove(indexes, indexes + 1, (SEG_CACHE_MAX - 1) * sizeof *indexes);
        n_indexes--;
    }
    struct seg_index *e = sm_calloc(1, sizeof *e);
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    e->h = *h;
    e->scan_end = h->len;
    indexes[n_indexes++] = e;
    return e;
}

static void index_drop(const struct seg_index *gone)
{
    for (size_t i = 0; i < n_indexes; i++)
        if (indexes[i] == gone) {
            index_free(indexes[i]);
            indexes[i] = indexes[--n_indexes];
            return;
        }
}

static int index_add(void *arg, uint32_t ticket, uint64_t off, const uint8_t *payload, uint32_t len)
{
    struct seg_index *e = arg;
    (void)payload;
    (void)len;
    index_reserve(e, ticket);
    if (e->off[ticket] == 0) /* a repeated ticket (a damaged file): the first counts */
        e->off[ticket] = off;
    return 0;
}

static void index_mark(void *arg, uint32_t ticket)
{
    struct seg_index *e = arg;
    index_reserve(e, ticket);
    e->done[ticket / 8] |= (uint8_t)(1u << (ticket % 8));
}

static bool index_is_done(const struct seg_index *e, uint32_t ticket)
{
    return ticket < e->n_off && (e->done[ticket / 8] >> (ticket % 8) & 1);
}

/* Scan records the index has not seen yet; -1 on a read error. */
static int index_scan(struct seg_index *e, int fd)
{
    int64_t end = seg_scan(fd, &e->h, e->scan_end, index_add, e);
    if (end < 0)
        return -1;
    e->scan_end = (uint64_t)end;
    return 0;
}

/* Read the done entries appended since the last call (whole entries only:
 * a torn one is read again once complete). */
static void index_read_done(struct seg_index *e, int dfd)
{
    char name[32];
    struct stat st;

    seg_name(name, sizeof name, e->h.segnum, true);
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        uint64_t size = (uint64_t)st.st_size / DONE_ENTRY_LEN * DONE_ENTRY_LEN;
        if (size < e->done_pos)
            e->done_pos = 0; /* made again: read it all */
        uint8_t *buf = sm_malloc(64 * DONE_ENTRY_LEN * 64);
        while (e->done_pos < size) {
            size_t want = size - e->done_pos < 64 * DONE_ENTRY_LEN * 64
                              ? (size_t)(size - e->done_pos)
                              : 64 * DONE_ENTRY_LEN * 64;
            ssize_t n = sm_pread_full(fd, buf, want, (off_t)e->done_pos);
            if (n <= 0)
                break;
            n -= n % DONE_ENTRY_LEN;
            seg_done_parse(buf, (size_t)n, &e->h, index_mark, e);
            e->done_pos += (uint64_t)n;
            if ((size_t)n < want)
                break;
        }
        free(buf);
    }
    close(fd);
}

/* Open segment segnum of the directory dfd for reading and read its
 * header.  Returns the fd, or -1 with *error_r. */
int seg_open(int dfd, uint32_t segnum, struct seg_header *h, const char **error_r)
{
    char name[32];
    struct stat st;

    seg_name(name, sizeof name, segnum, false);
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        *error_r = errno == ENOENT ? "no such message in the spool"
                                   : spool_errno_msg("cannot open spool segment");
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        *error_r = "spool segment is not a regular file";
        close(fd);
        return -1;
    }
    if (seg_header_read(fd, segnum, h, error_r) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Where record ticket of the segment open at fd lies: 0 with *off_r, or
 * -1 with *error_r (absent, or removed). */
int seg_locate(int dfd, int fd, const struct seg_header *h, uint32_t ticket, uint64_t *off_r,
               const char **error_r)
{
    int ret = -1;

    *error_r = "no such message in the spool";
    if (ticket >= SEG_TICKETS_MAX)
        return -1;
    pthread_mutex_lock(&index_mu);
    struct seg_index *e = index_get(fd, h);
    if (e == NULL) {
        *error_r = spool_errno_msg("cannot stat spool segment");
        goto out;
    }
    index_read_done(e, dfd);
    if (index_is_done(e, ticket))
        goto out;
    if ((ticket >= e->n_off || e->off[ticket] == 0) && index_scan(e, fd) < 0) {
        *error_r = spool_errno_msg("cannot read spool segment");
        goto out;
    }
    if (ticket < e->n_off && e->off[ticket] != 0) {
        *off_r = e->off[ticket];
        ret = 0;
    }
out:
    pthread_mutex_unlock(&index_mu);
    return ret;
}

/* A record as a file: its payload (the spool file bytes) in a memfd, so
 * every reader of spool files reads records unchanged; *ref says how
 * its key is found. */
int seg_open_record(const char *dir, uint32_t segnum, uint32_t ticket, struct chain_ref *ref,
                    const char **error_r)
{
    struct seg_header h;
    uint64_t off;
    size_t len;
    int mfd = -1;

    int dfd = spool_open_incoming(dir, false, error_r);
    if (dfd < 0)
        return -1;
    int fd = seg_open(dfd, segnum, &h, error_r);
    if (fd >= 0 && seg_locate(dfd, fd, &h, ticket, &off, error_r) == 0) {
        ref->chained = h.chained;
        ref->ticket = ticket;
        ref->seg = h;
        uint8_t *payload = seg_read_record(fd, &h, off, ticket, &len, error_r);
        if (payload != NULL) {
            mfd = memfd_create("sealmail-spool", MFD_CLOEXEC);
            if (mfd < 0 || sm_write_full(mfd, payload, len) < 0 || lseek(mfd, 0, SEEK_SET) < 0) {
                *error_r = spool_errno_msg("cannot copy spool record");
                if (mfd >= 0)
                    close(mfd);
                mfd = -1;
            }
            free(payload);
        }
    }
    if (fd >= 0)
        close(fd);
    close(dfd);
    return mfd;
}

/* fn gets the id of each complete record not done, in ticket order. */
void seg_list_live(int dfd, uint32_t segnum, void (*fn)(void *arg, const char *id), void *arg)
{
    struct seg_header h;
    const char *error;
    char id[SPOOL_ID_LEN + 1];

    int fd = seg_open(dfd, segnum, &h, &error);
    if (fd < 0)
        return; /* gone meanwhile, or not a segment: nothing to list */
    pthread_mutex_lock(&index_mu);
    struct seg_index *e = index_get(fd, &h);
    if (e != NULL && index_scan(e, fd) == 0) {
        index_read_done(e, dfd);
        for (uint32_t t = 0; t < e->n_off; t++)
            if (e->off[t] != 0 && !index_is_done(e, t)) {
                seg_id(&h, t, id);
                fn(arg, id);
            }
    }
    pthread_mutex_unlock(&index_mu);
    close(fd);
}

/* The index of the segment ref names, if this process keeps it, and its
 * header holds the same sealed seed (so the seed it opened is ref's). */
static struct seg_index *index_find(const struct chain_ref *ref)
{
    for (size_t i = 0; i < n_indexes; i++) {
        const struct seg_header *h = &indexes[i]->h;
        if (h->segnum == ref->seg.segnum && h->nonce == ref->seg.nonce &&
            memcmp(h->sealed_seed, ref->seg.sealed_seed, sizeof h->sealed_seed) == 0)
            return indexes[i];
    }
    return NULL;
}

/* The hash that names the key pair pk, sk in a seg_keys. */
static void keys_owner(const uint8_t pk[SPOOL_PK_BYTES], const uint8_t sk[SPOOL_SK_BYTES],
                       uint8_t owner[SEAL_HASH_BYTES])
{
    uint8_t both[SPOOL_PK_BYTES + SPOOL_SK_BYTES];
    memcpy(both, pk, SPOOL_PK_BYTES);
    memcpy(both + SPOOL_PK_BYTES, sk, SPOOL_SK_BYTES);
    seal_hash(owner, both, sizeof both);
    seal_wipe(both, sizeof both);
}

/* Copy the reader ref's segment keeps for owner into *r; false if there
 * is none (under index_mu). */
static bool keys_get(const struct chain_ref *ref, const uint8_t owner[SEAL_HASH_BYTES],
                     struct spool_chain_reader *r)
{
    struct seg_index *e = index_find(ref);
    if (e == NULL || e->keys == NULL || !seal_equal(e->keys->owner, owner, SEAL_HASH_BYTES))
        return false;
    *r = e->keys->r;
    return true;
}

/* Keep *r as ref's segment's reader for owner, in *fresh if the segment
 * has no place for one yet (then *fresh is taken); under index_mu.  Two
 * threads may put in turn: either place is a right place on the chain. */
static void keys_put(const struct chain_ref *ref, const uint8_t owner[SEAL_HASH_BYTES],
                     const struct spool_chain_reader *r, struct seg_keys **fresh)
{
    struct seg_index *e = index_find(ref);
    if (e == NULL)
        return; /* dropped meanwhile */
    if (e->keys == NULL) {
        if (*fresh == NULL)
            return;
        e->keys = *fresh;
        *fresh = NULL;
    }
    memcpy(e->keys->owner, owner, SEAL_HASH_BYTES);
    e->keys->r = *r;
}

/* The seed is opened once per segment and key pair (one X25519), and the
 * walk goes on from where the last read left it.  Only copies are made
 * under the lock: the X25519, the walk and the allocation run outside. */
int seg_record_key(const struct chain_ref *ref, const uint8_t pk[SPOOL_PK_BYTES],
                   const uint8_t sk[SPOOL_SK_BYTES], uint8_t key[CHAIN_KEY_BYTES],
                   const char **error_r)
{
    uint8_t owner[SEAL_HASH_BYTES], seed[CHAIN_SEED_BYTES];
    struct spool_chain_reader r;
    struct seg_keys *fresh = NULL;
    int ret = -1;

    keys_owner(pk, sk, owner);
    pthread_mutex_lock(&index_mu);
    bool kept = keys_get(ref, owner, &r);
    pthread_mutex_unlock(&index_mu);
    if (!kept) {
        if (seal_key_open(seed, ref->seg.sealed_seed, pk, sk) < 0) {
            *error_r = "cannot open the segment's key seed (wrong key or damaged segment)";
            goto out;
        }
        spool_chain_reader_init(&r, seed);
        seal_wipe(seed, sizeof seed);
        fresh = seal_secret_alloc(sizeof *fresh);
    }
    spool_chain_reader_key(&r, ref->ticket, key);
    pthread_mutex_lock(&index_mu);
    keys_put(ref, owner, &r, &fresh);
    pthread_mutex_unlock(&index_mu);
    seal_secret_free(&fresh); /* not needed after all */
    ret = 0;
out:
    seal_wipe(&r, sizeof r);
    seal_wipe(owner, sizeof owner);
    return ret;
}

/* Remove segment segnum if its writer is gone (its flock is free) and
 * every complete record in it is done: the segment first, a directory
 * sync, then the .done file (a .done left alone is harmless and swept;
 * a segment back without its .done would bring removed records back). */
void seg_try_delete(int dfd, uint32_t segnum)
{
    struct seg_header h;
    struct stat st, now;
    const char *error;
    char name[32], done[32];
    bool all_done = true;

    int fd = seg_open(dfd, segnum, &h, &error);
    if (fd < 0)
        return;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0 || fstat(fd, &st) < 0) {
        close(fd); /* its writer may still append */
        return;
    }
    seg_name(name, sizeof name, segnum, false);
    seg_name(done, sizeof done, segnum, true);
    /* cheap first: fewer done entries than the writer's record count */
    if (h.count_hint > 0 && (fstatat(dfd, done, &now, AT_SYMLINK_NOFOLLOW) < 0 ||
                             (uint64_t)now.st_size / DONE_ENTRY_LEN < h.count_hint)) {
        close(fd);
        return;
    }
    pthread_mutex_lock(&index_mu);
    struct seg_index *e = index_get(fd, &h);
    if (e == NULL || index_scan(e, fd) < 0) {
        all_done = false;
    } else {
        index_read_done(e, dfd);
        for (uint32_t t = 0; t < e->n_off && all_done; t++)
            if (e->off[t] != 0 && !index_is_done(e, t))
                all_done = false;
    }
    if (all_done && fstatat(dfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_ino == st.st_ino &&
        now.st_dev == st.st_dev && unlinkat(dfd, name, 0) == 0) {
        index_drop(e);
        int own = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (own >= 0 && spool_dir_sync(own) == 0)
            unlinkat(dfd, done, 0);
        if (own >= 0)
            close(own);
        log_info("spool segment-removed segment=%08x", (unsigned)segnum);
    }
    pthread_mutex_unlock(&index_mu);
    close(fd);
}

/* Remove what is finished: segments whose writer is gone and whose
 * records are all done, .done files whose segment is gone (older than
 * LEFTOVER_MIN_AGE: a new segment makes its .done first). */
void seg_sweep(int dfd)
{
    int fd = dup(dfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    uint32_t *segs = NULL;
    size_t n = 0, cap = 0;

    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    rewinddir(d);
    while ((de = readdir(d)) != NULL) {
        uint32_t segnum;
        bool is_done;
        struct stat st;
        char name[32];
        if (!seg_name_parse(de->d_name, &segnum, &is_done))
            continue;
        if (!is_done) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                segs = sm_realloc(segs, cap * sizeof *segs);
            }
            segs[n++] = segnum;
            continue;
        }
        seg_name(name, sizeof name, segnum, false);
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT &&
            fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            time(NULL) - st.st_mtime >= LEFTOVER_MIN_AGE)
            unlinkat(dfd, de->d_name, 0);
    }
    closedir(d);
    for (size_t i = 0; i < n; i++)
        seg_try_delete(dfd, segs[i]);
    free(segs);
}
