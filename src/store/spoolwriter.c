/* spoolwriter.c — spool writers on the loop thread, the segments they
 * append to, and the prep thread that keeps segments and sealed keys
 * ready (WRITING and SEGMENTS at the top of spool.c). */
#include "store/spool-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "core/bytes.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/mem.h"

/* A new queue id (any thread). */
static void next_id(struct spool *sp, char out[SPOOL_ID_LEN + 1])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    pthread_mutex_lock(&sp->mu);
    if (ms < sp->last_ms)
        ms = sp->last_ms; /* the clock stepped back: stay ordered */
    sp->last_ms = ms;
    sp->seq = (sp->seq + 1) & ((1u << SEQ_BITS) - 1);
    /* 41 bits of milliseconds (until 2039): the top bit marks segment ids */
    uint64_t v = (ms & ((UINT64_C(1) << (63 - SEQ_BITS)) - 1)) << SEQ_BITS | sp->seq;
    pthread_mutex_unlock(&sp->mu);
    snprintf(out, SPOOL_ID_LEN + 1, "%016" PRIx64, v);
}

/* --- segments, writer side -------------------------------------------------- */

/* Make the new segment s, open at s->fd as tmp, durable as name: under
 * the directory's flock (own), lock it, write and sync its header, make
 * (never finding one there) and sync its empty .done file, rename it
 * (never replacing), then sync
 * it and the directory.  The file syncs are under the flock too: each is
 * the first after the file was created or renamed, which on ext4 without
 * a journal syncs the directory as well (see SYNC_THREADS); afterwards the
 * segment's syncs (its record batches) never write the directory.
 * Returns 0, 1 if name is taken (tmp removed), -1 with *error_r. */
static int seg_publish(struct spool *sp, struct segment *s, int own, const char *tmp,
                       const char *name, const char *done, const char **error_r)
{
    uint8_t hdr[SEG_HDR_LEN];
    int dfd = -1, ret = -1;

    seg_header_encode(hdr, &s->h);
    if (spool_dir_lock(own) < 0 || flock(s->fd, LOCK_EX | LOCK_NB) < 0 ||
        sm_write_full(s->fd, hdr, sizeof hdr) < 0 || fdatasync(s->fd) < 0) {
        *error_r = spool_errno_msg("cannot prepare spool segment");
        unlinkat(sp->incoming_fd, tmp, 0);
        goto out;
    }
    /* a .done already there (left from an old segment of that number, to
     * be swept) makes the number taken: ours is always new and empty */
    dfd = openat(sp->incoming_fd, done,
                 O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    if (dfd < 0 || fsync(dfd) < 0) {
        int saved = errno;
        unlinkat(sp->incoming_fd, tmp, 0);
        if (dfd >= 0)
            unlinkat(sp->incoming_fd, done, 0);
        if (dfd < 0 && saved == EEXIST) {
            ret = 1;
            goto out;
        }
        errno = saved;
        *error_r = spool_errno_msg("cannot prepare spool segment");
        goto out;
    }
    if (spool_rename_noreplace(sp->incoming_fd, tmp, name) < 0) {
        int saved = errno;
        unlinkat(sp->incoming_fd, tmp, 0);
        unlinkat(sp->incoming_fd, done, 0);
        if (saved == EEXIST) {
            ret = 1;
            goto out;
        }
        errno = saved;
        *error_r = spool_errno_msg("cannot name spool segment");
        goto out;
    }
    if (fdatasync(s->fd) < 0 || fsync(own) < 0) {
        *error_r = spool_errno_msg("cannot sync new spool segment or its directory");
        unlinkat(sp->incoming_fd, name, 0);
        unlinkat(sp->incoming_fd, done, 0);
        goto out;
    }
    ret = 0;
out:
    if (dfd >= 0)
        close(dfd);
    spool_dir_unlock(own);
    return ret;
}

/* A new segment, ready for appends (seg_publish): a segment under its
 * final name is always locked by its writer from the start, and its name
 * is durable before any record in it is acknowledged.  Any thread (the
 * prep thread, normally). */
static struct segment *seg_create(struct spool *sp, const char **error_r)
{
    char name[32], tmp[40], done[32];
    struct segment *s = sm_calloc(1, sizeof *s);
    int own = openat(sp->incoming_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    s->fd = -1;
    if (own < 0) {
        *error_r = spool_errno_msg("cannot open spool directory");
        goto fail;
    }
    uint8_t seed[CHAIN_SEED_BYTES];
    seal_random(seed, sizeof seed);
    if (seal_key_seal(s->h.sealed_seed, seed, sp->pk) < 0) {
        seal_wipe(seed, sizeof seed);
        *error_r = "cannot seal the segment's key seed (bad public key)";
        goto fail;
    }
    s->h.len = SEG_HDR_LEN;
    s->h.chained = true;
    s->h.crc = true;
    s->chain = spool_chain_new(seed);
    seal_wipe(seed, sizeof seed);
    for (int tries = 0; tries < 8; tries++) {
        seal_random(&s->h.segnum, sizeof s->h.segnum);
        s->h.segnum &= SEG_NUM_MAX;
        seal_random(&s->h.nonce, sizeof s->h.nonce);
        seg_name(name, sizeof name, s->h.segnum, false);
        seg_name(done, sizeof done, s->h.segnum, true);
        snprintf(tmp, sizeof tmp, TMP_PREFIX "%s", name);
        s->fd =
            openat(sp->incoming_fd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (s->fd < 0 && errno == EEXIST)
            continue;
        if (s->fd < 0) {
            *error_r = spool_errno_msg("cannot create spool segment");
            goto fail;
        }
        int r = seg_publish(sp, s, own, tmp, name, done, error_r);
        if (r < 0)
            goto fail;
        if (r > 0) { /* that number is taken */
            close(s->fd);
            s->fd = -1;
            continue;
        }
        close(own);
        s->end = SEG_HDR_LEN;
        return s;
    }
    *error_r = "cannot find a free segment number";
fail:
    if (own >= 0)
        close(own);
    if (s->fd >= 0)
        close(s->fd);
    spool_chain_free(&s->chain);
    free(s);
    return NULL;
}

/* The last writer of a segment that is no longer current is gone (loop
 * thread, no sync of it in flight): leave the record count as a hint for
 * cleaners, or remove the segment if it never received a record, and let
 * go of it (closing drops the flock: the segment is complete). */
static void seg_close(struct spool *sp, struct segment *s)
{
    uint8_t hint[4];

    if (s->records == 0) {
        char name[32];
        seg_name(name, sizeof name, s->h.segnum, false);
        unlinkat(sp->incoming_fd, name, 0);
        seg_name(name, sizeof name, s->h.segnum, true);
        unlinkat(sp->incoming_fd, name, 0);
    } else {
        sm_put_be32(hint, s->records);
        if (pwrite(s->fd, hint, sizeof hint, 24) != (ssize_t)sizeof hint)
            log_warn("spool segment-hint-failed error=\"%s\"", spool_errno_msg("pwrite"));
    }
    close(s->fd);
    spool_chain_free(&s->chain);
    free(s);
}

void seg_unref(struct spool *sp, struct segment *s)
{
    if (s != NULL && --s->refs == 0)
        seg_close(sp, s);
}

/* The segment new messages go to, rotated when full or failed (loop
 * thread). */
static struct segment *seg_current(struct spool *sp, const char **error_r)
{
    struct segment *s = sp->cur;
    pthread_mutex_lock(&sp->mu);
    bool failed = s != NULL && s->failed;
    pthread_mutex_unlock(&sp->mu);
    if (s != NULL && !failed && s->reserved < SEG_ROTATE &&
        spool_chain_tickets(s->chain) < SEG_TICKETS_MAX)
        return s;
    pthread_mutex_lock(&sp->mu);
    struct segment *next = sp->next_seg;
    sp->next_seg = NULL;
    sp->seg_wanted = true; /* from now on the prep thread keeps one ready */
    pthread_cond_signal(&sp->prep);
    pthread_mutex_unlock(&sp->mu);
    if (next == NULL && (next = seg_create(sp, error_r)) == NULL)
        return NULL;
    next->refs = 1;
    sp->cur = next;
    seg_unref(sp, s);
    return next;
}

/* --- writing (loop thread) --------------------------------------------------- */

/* Create incoming/.tmp-<id> for a fresh id and lock it against cleanup. */
static int writer_create_file(struct spool *sp, struct spool_writer *w, const char **error_r)
{
    for (int tries = 0; tries < 8; tries++) {
        next_id(sp, w->id);
        snprintf(w->tmp_name, sizeof w->tmp_name, TMP_PREFIX "%s", w->id);
        w->fd = openat(sp->incoming_fd, w->tmp_name,
                       O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (w->fd >= 0)
            break;
        if (errno != EEXIST) {
            *error_r = spool_errno_msg("cannot create spool file");
            return -1;
        }
    }
    if (w->fd < 0) {
        *error_r = "cannot find a free queue id";
        return -1;
    }
    if (flock(w->fd, LOCK_EX | LOCK_NB) < 0) {
        *error_r = spool_errno_msg("cannot lock spool file");
        return -1;
    }
    return 0;
}

/* Free an inline writer's record buffer. */
static void rec_release(struct spool_writer *w)
{
    w->sp->inline_bytes -= w->rec_cap;
    sm_freep(&w->rec);
    w->rec_len = w->rec_cap = 0;
}

/* Move an inline writer to a file of its own, incoming/.tmp-<its id>:
 * a big message, or the memory budget is spent.  The file path is the
 * old, tested one; readers look for a file of a segment id first. */
static int writer_spill(struct spool_writer *w, const char **error_r)
{
    struct spool *sp = w->sp;

    snprintf(w->tmp_name, sizeof w->tmp_name, TMP_PREFIX "%s", w->id);
    w->fd = openat(sp->incoming_fd, w->tmp_name,
                   O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (w->fd < 0) {
        *error_r = spool_errno_msg("cannot create spool file");
        return -1;
    }
    /* no record yet when writer_start() moves a big envelope */
    size_t held = w->rec != NULL ? w->rec_len - REC_HDR_LEN : 0;
    if (flock(w->fd, LOCK_EX | LOCK_NB) < 0 ||
        (held > 0 && sm_write_full(w->fd, w->rec + REC_HDR_LEN, held) < 0)) {
        *error_r = spool_errno_msg("cannot write spool file");
        return -1;
    }
    rec_release(w);
    seg_unref(sp, w->seg);
    w->seg = NULL;
    return 0;
}

/* Append spool bytes: to the record in memory while it fits, else to the
 * file (spilling first). */
static int writer_out(struct spool_writer *w, const void *p, size_t n, const char **error_r)
{
    struct spool *sp = w->sp;

    if (w->seg != NULL) {
        size_t max = REC_HDR_LEN + sp->inline_max + REC_SUM_LEN;
        size_t need = w->rec_len + n + REC_SUM_LEN; /* room for the checksum too */
        if (need <= w->rec_cap) {
            memcpy(w->rec + w->rec_len, p, n);
            w->rec_len += n;
            return 0;
        }
        size_t cap = w->rec_cap ? w->rec_cap : 8192;
        while (cap < need)
            cap *= 2;
        if (cap > max)
            cap = max;
        /* a chained writer's header always fits (writer_start() saw to it) */
        if (need <= max &&
            (w->chained || sp->inline_bytes + (cap - w->rec_cap) <= sp->inline_budget)) {
            w->rec = sm_realloc(w->rec, cap);
            sp->inline_bytes += cap - w->rec_cap;
            w->rec_cap = cap;
            memcpy(w->rec + w->rec_len, p, n);
            w->rec_len += n;
            return 0;
        }
        if (writer_spill(w, error_r) < 0)
            return -1;
    }
    if (sm_write_full(w->fd, p, n) < 0) {
        *error_r = spool_errno_msg("cannot write spool file");
        return -1;
    }
    return 0;
}

static int unchain(struct spool_writer *w, const char **error_r);

/* Fill in the magic and the key bytes (the last TRAILER_LEN) of the
 * header hdr[0..len) as the writer is keyed now, and bind the header as
 * associated data (H). */
static void header_bind(struct spool_writer *w, uint8_t *hdr, size_t len)
{
    memcpy(hdr, w->chained ? MAGIC_V3 : MAGIC, MAGIC_LEN);
    memcpy(hdr + len - TRAILER_LEN, w->keys, TRAILER_LEN);
    seal_hash(w->ad, hdr, len);
}

/* Build the header (magic .. stream header) of a writer, bind it as
 * associated data and write it. */
static int writer_start(struct spool_writer *w, const struct spool_envelope *env,
                        const char **error_r)
{
    struct sm_buf b;
    uint8_t fixed[FIXED_LEN] = {0}; /* magic, size and length set below */
    int ret = -1;

    sm_buf_init(&b, FIXED_LEN + SPOOL_ENV_MAX + TRAILER_LEN);
    sm_buf_append(&b, fixed, FIXED_LEN);
    if (spool_envelope_encode(env, &b, error_r) < 0)
        goto out;
    if (b.len - FIXED_LEN > SPOOL_ENV_MAX) {
        *error_r = "envelope too large";
        goto out;
    }
    /* an envelope too big for a record (thousands of recipients) */
    if (w->chained && b.len + TRAILER_LEN > w->sp->inline_max && unchain(w, error_r) < 0)
        goto out;
    sm_put_be32((uint8_t *)b.data + 16, (uint32_t)(b.len - FIXED_LEN));
    if (sm_buf_append(&b, w->keys, TRAILER_LEN) < 0) {
        *error_r = "envelope too large";
        goto out;
    }
    header_bind(w, (uint8_t *)b.data, b.len);
    if (writer_out(w, b.data, b.len, error_r) < 0)
        goto out;
    ret = 0;
out:
    sm_buf_free(&b);
    return ret;
}

/* Wipe and free the plaintext buffer (and its share of the inline budget).
 * Only the bytes that ever held plaintext are wiped: clearing the whole
 * capacity (up to twice the message) touched pages never written, whose
 * faults and zeroing cost a tenth of smtpd's time for 64 KiB messages. */
static void plain_release(struct spool_writer *w)
{
    if (w->plain != NULL)
        seal_wipe(w->plain, w->dirty);
    sm_freep(&w->plain);
    w->sp->inline_bytes -= w->plain_counted;
    w->plain_counted = 0;
    w->cap = w->fill = w->dirty = 0;
}

/* n plaintext bytes were put at the end of plain: w->fill moves on. */
static void plain_filled(struct spool_writer *w, size_t n)
{
    w->fill += n;
    w->size += n;
    if (w->fill > w->dirty)
        w->dirty = w->fill;
}

/* Free a writer or spare; its file must already be renamed or removed. */
void spool_writer_free(struct spool_writer **wp)
{
    struct spool_writer *w = *wp;
    if (w == NULL)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (w->rec != NULL)
        rec_release(w);
    seg_unref(w->sp, w->seg);
    seal_stream_free(&w->st);
    plain_release(w);
    if (w->note != NULL)
        seal_wipe(w->note, w->note_len);
    sm_freep(&w->note);
    sm_freep(wp);
}

/* Remove the temporary file of a writer that will not be committed, free it. */
void spool_writer_discard(struct spool_writer **wp)
{
    struct spool_writer *w = *wp;
    if (w == NULL)
        return;
    if (w->fd >= 0)
        unlinkat(w->sp->incoming_fd, w->tmp_name, 0);
    spool_writer_free(wp);
}

/* A spare: a started stream whose file key is sealed.  The two X25519
 * operations this takes run on the prep thread this way. */
static struct spool_writer *spare_new(struct spool *sp, const char **error_r)
{
    struct spool_writer *w = sm_calloc(1, sizeof *w);
    w->sp = sp;
    w->fd = -1;
    w->st = seal_stream_push_new(sp->pk, w->keys, w->keys + SEAL_SEALED_KEY_BYTES, error_r);
    if (w->st == NULL)
        spool_writer_free(&w);
    return w;
}

/* An inline writer: a record in memory, appended to segment s at commit,
 * its file key the chain's key for its ticket (no X25519). */
static struct spool_writer *chained_new(struct spool *sp, struct segment *s, const char **error_r)
{
    uint8_t key[CHAIN_KEY_BYTES];
    struct spool_writer *w = sm_calloc(1, sizeof *w);
    w->sp = sp;
    w->fd = -1;
    w->chained = true;
    w->ticket = spool_chain_next(s->chain, key);
    w->st = seal_stream_push_with_key(key, w->keys + SEAL_SEALED_KEY_BYTES, error_r);
    seal_wipe(key, sizeof key);
    if (w->st == NULL) {
        spool_writer_free(&w);
        return NULL;
    }
    s->refs++;
    w->seg = s;
    seg_id(&s->h, w->ticket, w->id);
    w->rec_len = REC_HDR_LEN;
    return w;
}

/* Take the oldest spare, or make one here if none is ready. */
static struct spool_writer *spare_take(struct spool *sp, const char **error_r)
{
    pthread_mutex_lock(&sp->mu);
    struct spool_writer *w = sp->spares;
    if (w != NULL) {
        sp->spares = w->next;
        if (sp->spares == NULL)
            sp->spares_tail = &sp->spares;
        sp->n_spares--;
        w->next = NULL;
    }
    pthread_cond_signal(&sp->prep);
    pthread_mutex_unlock(&sp->mu);
    return w != NULL ? w : spare_new(sp, error_r);
}

struct spool_writer *spool_writer_new(struct spool *sp, const struct spool_envelope *env,
                                      const char **error_r)
{
    const char *seg_error = NULL;
    struct segment *s = NULL;

    if (sp->base == NULL) {
        *error_r = "spool opened for reading only";
        return NULL;
    }
    if (sp->inline_max > 0 && sp->inline_bytes < sp->inline_budget &&
        (s = seg_current(sp, &seg_error)) == NULL)
        log_warn("spool segment-failed error=\"%s\" (using a file)", seg_error);
    struct spool_writer *w = s != NULL ? chained_new(sp, s, error_r) : spare_take(sp, error_r);
    if (w == NULL)
        return NULL;
    if (s == NULL && writer_create_file(sp, w, error_r) < 0) {
        spool_writer_discard(&w);
        return NULL;
    }
    if (writer_start(w, env, error_r) < 0) {
        spool_writer_discard(&w);
        return NULL;
    }
    sp->live++;
    return w;
}

void spool_set_inline_limits(struct spool *sp, size_t max, size_t budget)
{
    pthread_mutex_lock(&sp->mu);
    sp->inline_max = max < INLINE_MAX ? max : INLINE_MAX;
    sp->inline_budget = budget < INLINE_BUDGET ? budget : INLINE_BUDGET;
    pthread_mutex_unlock(&sp->mu);
}

const char *spool_writer_id(const struct spool_writer *w)
{
    return w->id;
}

uint64_t spool_writer_size(const struct spool_writer *w)
{
    return w->size;
}

/* Encrypt n bytes of plaintext (at most CHUNK_PLAIN) as one chunk into
 * out (4 + n + SEAL_STREAM_ABYTES bytes: its length, then the chunk). */
static int seal_chunk(struct spool_writer *w, const uint8_t *in, size_t n, bool final, uint8_t *out,
                      const char **error_r)
{
    size_t clen = n + SEAL_STREAM_ABYTES;
    if (final)
        sm_put_be64(w->ad + SEAL_HASH_BYTES, w->size);
    sm_put_be32(out, (uint32_t)clen);
    if (seal_stream_push(w->st, in, n, w->ad, final ? AD_LEN : SEAL_HASH_BYTES, final, out + 4) <
        0) {
        *error_r = "cannot encrypt message chunk";
        return -1;
    }
    return 0;
}

/* Encrypt the pending plaintext as one chunk and append it. */
static int writer_flush(struct spool_writer *w, bool final, const char **error_r)
{
    uint8_t *out = w->sp->scratch;
    if (seal_chunk(w, w->plain, w->fill, final, out, error_r) < 0)
        return -1;
    size_t n = 4 + w->fill + SEAL_STREAM_ABYTES;
    if (w->plain != NULL)
        seal_wipe(w->plain, w->fill);
    if (w->fill >= w->dirty)
        w->dirty = 0; /* all of it wiped */
    w->fill = 0;
    return writer_out(w, out, n, error_r);
}

/* The capacity writer_reserve() would grow to for need bytes. */
static size_t plain_cap_for(const struct spool_writer *w, size_t need)
{
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < need)
        cap *= 2;
    return cap;
}

/* Grow the plaintext buffer to hold need bytes (need <= CHUNK_PLAIN, or
 * the inline limit for a chained writer), in powers of two so small
 * messages stay small; the old copy is wiped.  A chained writer's buffer
 * counts against the inline budget. */
static void writer_reserve(struct spool_writer *w, size_t need)
{
    if (need <= w->cap)
        return;
    size_t cap = plain_cap_for(w, need);
    if (w->chained) {
        w->sp->inline_bytes += cap - w->cap;
        w->plain_counted += cap - w->cap;
    }
    uint8_t *plain = sm_realloc(NULL, cap); /* not zeroed: filled before use */
    if (w->fill > 0)
        memcpy(plain, w->plain, w->fill);
    if (w->plain != NULL)
        seal_wipe(w->plain, w->dirty);
    free(w->plain);
    w->plain = plain;
    w->cap = cap;
    w->dirty = w->fill;
}

/* Seal n bytes of plaintext at in as MESSAGE chunks of CHUNK_PLAIN and
 * append them (the caller keeps the last piece for the FINAL chunk). */
static int seal_chunks_out(struct spool_writer *w, const uint8_t *in, size_t n,
                           const char **error_r)
{
    for (size_t off = 0; off < n; off += CHUNK_PLAIN) {
        size_t k = n - off < CHUNK_PLAIN ? n - off : CHUNK_PLAIN;
        if (seal_chunk(w, in + off, k, false, w->sp->scratch, error_r) < 0 ||
            writer_out(w, w->sp->scratch, 4 + k + SEAL_STREAM_ABYTES, error_r) < 0)
            return -1;
    }
    return 0;
}

/* Key a chained writer, before anything is encrypted, with a spare's
 * sealed file key instead of its chain key, which is never used. */
static int unchain(struct spool_writer *w, const char **error_r)
{
    struct spool_writer *spare = spare_take(w->sp, error_r);
    if (spare == NULL)
        return -1;
    seal_stream_free(&w->st);
    w->st = spare->st;
    spare->st = NULL;
    memcpy(w->keys, spare->keys, TRAILER_LEN);
    spool_writer_free(&spare);
    w->chained = false;
    w->sp->inline_bytes -= w->plain_counted; /* a file writer's plain is not inline */
    w->plain_counted = 0;
    return 0;
}

/* A chained writer outgrew memory (the message passes the inline limit,
 * or the process's inline budget is spent): move it to a file of its own,
 * incoming/.tmp-<its id>, keyed like any file by a spare's sealed key.
 * Nothing was encrypted yet, so the header is rebuilt with the spare's
 * keys and the plaintext sealed anew; the chain key of its ticket is
 * simply never used. */
static int chained_spill(struct spool_writer *w, const char **error_r)
{
    if (unchain(w, error_r) < 0)
        return -1;
    header_bind(w, w->rec + REC_HDR_LEN, w->rec_len - REC_HDR_LEN);
    if (writer_spill(w, error_r) < 0)
        return -1;
    /* all but the last piece (1..CHUNK_PLAIN bytes) goes out now */
    size_t keep = w->fill == 0 ? 0 : (w->fill - 1) % CHUNK_PLAIN + 1;
    if (seal_chunks_out(w, w->plain, w->fill - keep, error_r) < 0)
        return -1;
    if (keep > 0) {
        seal_wipe(w->plain, w->fill - keep);
        memmove(w->plain, w->plain + (w->fill - keep), keep);
    }
    w->fill = keep;
    return 0;
}

/* A chained writer gathers the message in plain while it fits. */
static bool chained_takes(const struct spool_writer *w, size_t len)
{
    const struct spool *sp = w->sp;
    if (w->fill + len > sp->inline_max)
        return false;
    if (w->fill + len <= w->cap)
        return true; /* no growth (an empty write included): nothing new to count */
    size_t grow = plain_cap_for(w, w->fill + len) - w->cap;
    return sp->inline_bytes + grow <= sp->inline_budget;
}

int spool_writer_write(struct spool_writer *w, const void *data, size_t len, const char **error_r)
{
    const uint8_t *p = data;

    if (w->failed) {
        *error_r = "spool writer failed earlier";
        return -1;
    }
    if (w->chained && chained_takes(w, len)) {
        if (len == 0)
            return 0;
        writer_reserve(w, w->fill + len);
        memcpy(w->plain + w->fill, p, len);
        plain_filled(w, len);
        return 0;
    }
    if (w->chained && chained_spill(w, error_r) < 0) {
        w->failed = true;
        return -1;
    }
    while (len > 0) {
        if (w->fill == CHUNK_PLAIN && writer_flush(w, false, error_r) < 0) {
            w->failed = true;
            return -1;
        }
        size_t n = CHUNK_PLAIN - w->fill < len ? CHUNK_PLAIN - w->fill : len;
        writer_reserve(w, w->fill + n);
        memcpy(w->plain + w->fill, p, n);
        plain_filled(w, n);
        p += n;
        len -= n;
    }
    return 0;
}

int spool_writer_set_note(struct spool_writer *w, uint32_t flags, const char *prefix, size_t len,
                          const char **error_r)
{
    if (len > SPOOL_NOTE_MAX || w->note != NULL) {
        *error_r = len > SPOOL_NOTE_MAX ? "delivery note too long" : "delivery note set twice";
        return -1;
    }
    w->note_len = len + NOTE_TAIL;
    w->note = sm_malloc(w->note_len);
    if (len > 0)
        memcpy(w->note, prefix, len);
    sm_put_be32(w->note + len, flags);
    sm_put_be32(w->note + len + 4, (uint32_t)len);
    return 0;
}

/* Seal a chained writer's whole message into its record: MESSAGE chunks
 * of CHUNK_PLAIN, then the FINAL one.  The record is sized at once (it
 * may pass the inline limit by the chunks' framing; the limit is on the
 * plaintext). */
static int chained_seal(struct spool_writer *w, const char **error_r)
{
    struct spool *sp = w->sp;
    size_t chunks = w->fill == 0 ? 1 : (w->fill - 1) / CHUNK_PLAIN + 1;
    size_t need = w->rec_len + w->fill + chunks * (4 + SEAL_STREAM_ABYTES) + REC_SUM_LEN;
    if (need > w->rec_cap) {
        w->rec = sm_realloc(w->rec, need);
        sp->inline_bytes += need - w->rec_cap;
        w->rec_cap = need;
    }
    for (size_t i = 0, off = 0; i < chunks; i++, off += CHUNK_PLAIN) {
        size_t k = i + 1 < chunks ? CHUNK_PLAIN : w->fill - off;
        if (seal_chunk(w, w->plain + off, k, i + 1 == chunks, w->rec + w->rec_len, error_r) < 0)
            return -1;
        w->rec_len += 4 + k + SEAL_STREAM_ABYTES;
    }
    return 0;
}

/* Append the delivery note (an empty one if none was set), seal the FINAL
 * chunk and record the size; on error the commit fails. */
static void writer_finish(struct spool_writer *w)
{
    const char *error;
    uint8_t size[8];
    static const uint8_t empty_note[NOTE_TAIL];

    if (w->failed)
        return;
    if (spool_writer_write(w, w->note != NULL ? w->note : empty_note,
                           w->note != NULL ? w->note_len : NOTE_TAIL, &error) < 0) {
        log_warn("spool commit-failed queue=%s error=\"%s\"", w->id, error);
        w->failed = true;
        return;
    }
    sm_put_be64(size, w->size);
    if (w->chained ? chained_seal(w, &error) < 0 : writer_flush(w, true, &error) < 0) {
        log_warn("spool commit-failed queue=%s error=\"%s\"", w->id, error);
        w->failed = true;
    } else if (w->seg != NULL) {
        memcpy(w->rec + REC_HDR_LEN + OFF_SIZE, size, sizeof size);
    } else if (pwrite(w->fd, size, sizeof size, OFF_SIZE) != (ssize_t)sizeof size) {
        log_warn("spool commit-failed queue=%s error=\"%s\"", w->id,
                 spool_errno_msg("cannot write spool file"));
        w->failed = true;
    }
    seal_stream_free(&w->st); /* the key state is no longer needed */
    plain_release(w);
}

void spool_writer_commit(struct spool_writer *w, spool_commit_cb *cb, void *arg)
{
    struct spool *sp = w->sp;

    w->cb = cb;
    w->arg = arg;
    writer_finish(w);
    if (w->seg != NULL && !w->failed)
        w->seg->reserved += w->rec_len + REC_SUM_LEN; /* toward its rotation */
    pthread_mutex_lock(&sp->mu);
    w->next = NULL;
    *sp->queue_tail = w;
    sp->queue_tail = &w->next;
    pthread_cond_signal(&sp->work);
    pthread_mutex_unlock(&sp->mu);
}

void spool_writer_abort(struct spool_writer **wp)
{
    if (*wp == NULL)
        return;
    (*wp)->sp->live--;
    spool_writer_discard(wp);
}

/* Keep the next segment and SPARES_TARGET spares ready; after a failure
 * (disk full...) retry once a second, while writers fall back to making
 * their own. */
void *spool_prep_main(void *arg)
{
    struct spool *sp = arg;
    const char *error;
    bool warned = false;

    pthread_mutex_lock(&sp->mu);
    while (!sp->stop) {
        bool need_seg = sp->next_seg == NULL && sp->inline_max > 0 && sp->seg_wanted;
        if (!need_seg && sp->n_spares >= SPARES_TARGET) {
            pthread_cond_wait(&sp->prep, &sp->mu);
            continue;
        }
        pthread_mutex_unlock(&sp->mu);
        struct segment *seg = need_seg ? seg_create(sp, &error) : NULL;
        struct spool_writer *w = need_seg ? NULL : spare_new(sp, &error);
        pthread_mutex_lock(&sp->mu);
        if (seg != NULL) {
            sp->next_seg = seg;
            warned = false;
            continue;
        }
        if (w != NULL) {
            *sp->spares_tail = w;
            sp->spares_tail = &w->next;
            sp->n_spares++;
            warned = false;
            continue;
        }
        if (!warned)
            log_warn("spool prepare-failed error=\"%s\"", error);
        warned = true;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&sp->prep, &sp->mu, &until);
    }
    pthread_mutex_unlock(&sp->mu);
    return NULL;
}
