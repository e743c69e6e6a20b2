/* spool.c — the encrypted, durable spool of accepted messages (see spool.h).
 *
 * FILE FORMAT (version 2): the sealed-file format of sealfile.h with the
 * envelope as its clear metadata; reading goes through sealfile_read().
 * All integers are big-endian.
 *
 *   offset  bytes  field
 *   0       8      magic "SEALSP\0\2" (the last byte is the format version)
 *   8       8      u64 size: plaintext bytes of the message; written at commit
 *   16      4      u32 E: length of the envelope, at most SPOOL_ENV_MAX
 *   20      E      envelope, in clear (so `queue list` needs no key):
 *                    str helo, str client, str mail_from, str body_type,
 *                    u8 flags (bit 0: SMTPUTF8), i64 received,
 *                    u32 n_rcpts (1..SPOOL_RCPTS_MAX), n_rcpts x str rcpt
 *                  where str = u32 length (at most SPOOL_STR_MAX) + bytes,
 *                  no NUL; every byte of the envelope must be consumed
 *   20+E    80     the 32-byte file key sealed with crypto_box_seal to the
 *                  spool public key
 *   100+E   24     crypto_secretstream_xchacha20poly1305 header
 *   124+E   ...    chunks: u32 L (17..65553), then L bytes of ciphertext
 *                  holding at most 64 KiB of plaintext; every chunk but the
 *                  last is tagged MESSAGE and holds exactly 64 KiB, the last
 *                  is tagged FINAL, holds 1..64 KiB (0 only for an empty
 *                  message) and ends the file.  So the file length follows
 *                  from the size, and readers check it before decrypting.
 *
 * The plaintext of a version 2 file is the message, then the delivery
 * note: P bytes of header fields to prepend, u32 flags, u32 P.  The note
 * is known only at end of data (the results of SPF, DKIM, DMARC), so it
 * ends the stream; readers strip it from the content they hand out.
 * Version 1 files (no note) are still read.
 *
 * Binding: let H = BLAKE2b-256 of bytes 0..124+E with the size field read
 * as zeros.  Every chunk carries H as associated data, the FINAL chunk
 * carries H || u64 size.  So a change to any byte fails: the magic and
 * envelope change H; the sealed key fails to open; the stream header
 * derives another key; a chunk length or ciphertext byte fails its MAC;
 * the size fails the FINAL chunk; a cut file lacks its FINAL chunk; bytes
 * appended after FINAL are refused.  The length check up front means a
 * truncated file or a changed size is refused before any plaintext is
 * written.  Readers bound every length before allocating, so hostile
 * files end in an error, never a crash.
 *
 * Queue ids are 16 hex digits: 42 bits of milliseconds since the epoch,
 * then a 22-bit per-process sequence started at a random value.  They sort
 * by creation time.  A collision between processes cannot overwrite a
 * message: the commit renames with RENAME_NOREPLACE and would fail instead.
 *
 * WRITING.  A prep thread keeps SPARES_TARGET "spares" ready: a fresh id,
 * its file incoming/.tmp-<id> (O_CREAT|O_EXCL, 0600, flock held while
 * alive) and a stream whose file key is already sealed.  Creating an inode
 * (about 0.3 ms of CPU on a churning ext4 without journal) and the two
 * X25519 operations thus stay off the loop thread; if no spare is ready
 * the writer makes one itself.  The writer writes the header at once and
 * a chunk each time 64 KiB of plaintext has gathered.  Commit seals the
 * FINAL chunk, writes the size and queues the writer.
 *
 * GROUP COMMIT.  SYNC_GROUPS sync threads each take every queued writer
 * (at most sync_batch); the group's SYNC_THREADS threads fdatasync and
 * rename the files concurrently (the device merges concurrent flushes),
 * then ONE fsync of the directory makes all the names durable, and the
 * batch goes back to the loop thread through an eventfd, where callbacks
 * run.  Two groups let one batch's directory sync overlap the next batch's
 * file syncs.  Measured on the target machine class (throw-away benchmark:
 * one loop, 20-50 sessions committing back to back, several runs): one
 * serial sync thread 830-2800 msgs/s (4 KiB) and 400-2200 (64 KiB); this
 * design 2200-5500 (4 KiB) and 1200-4100 (64 KiB), about twice as fast in
 * every paired run.  Any I/O error fails that message (callback ok=false)
 * and removes its file.
 *
 * spool_open() with a loop removes leftover .tmp- files whose flock is
 * free (their writer died), so parallel smtpd processes sharing the spool
 * never remove each other's files. */
#include "store/spool.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/bytes.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/mem.h"
#include "crypto/seal.h"
#include "store/sealfile.h"

_Static_assert(SPOOL_PK_BYTES == SEAL_PK_BYTES, "spool public key is an X25519 key");
_Static_assert(SPOOL_SK_BYTES == SEAL_SK_BYTES, "spool secret key is an X25519 key");

#define MAGIC "SEALSP\0\2"
#define MAGIC_V1 "SEALSP\0\1" /* before delivery notes: still read */
#define MAGIC_LEN 8
#define NOTE_TAIL 8 /* u32 flags, u32 prefix length */
#define OFF_SIZE 8
#define FIXED_LEN 20 /* magic, size, envelope length */
#define TRAILER_LEN (SEAL_SEALED_KEY_BYTES + SEAL_STREAM_HEADER_BYTES)
#define CHUNK_PLAIN 65536
#define CHUNK_CIPHER_MAX (CHUNK_PLAIN + SEAL_STREAM_ABYTES)
#define AD_LEN (SEAL_HASH_BYTES + 8)
#define TMP_PREFIX ".tmp-"
#define TMP_NAME_LEN (sizeof TMP_PREFIX - 1 + SPOOL_ID_LEN)
/* One batch in flight; inside it, SYNC_THREADS file syncs at once.  On
 * ext4 without a journal (as on these machines) fsync of a directory goes
 * through fsync_buffers_list(), where a second concurrent caller can return
 * before the first caller's write of the directory block completed.  So
 * the one directory fsync that makes a batch's names durable must overlap
 * no other sync of that directory: it runs after every file sync of its
 * batch has returned (their parent syncs included), never beside another
 * batch (one group), and under an flock of the directory that sibling
 * smtpd processes and spool_remove() take too.  The file syncs inside a
 * batch may overlap: only the final directory fsync vouches for names.
 * Measured under the accept benchmark: 1 group x 4 = 2 x 4; 1 x 1 is
 * 8-21% slower. */
#ifndef SYNC_THREADS /* -D for measurements */
#define SYNC_THREADS 4 /* files committed at once per group, its own thread included */
#endif
#ifndef SYNC_GROUPS
#define SYNC_GROUPS 1  /* batches in flight at once: must stay 1 (see above) */
#endif
#define LEFTOVER_MIN_AGE 10 /* seconds: younger .tmp files may not be locked yet */
#define SEQ_BITS 22
#define SPARES_TARGET 64 /* files the prep thread keeps ready */

/* Bounds on envelopes, on write and on read. */
#define SPOOL_STR_MAX 4096
#define SPOOL_RCPTS_MAX 100000
#define SPOOL_ENV_MAX (16u * 1024 * 1024)

/* A sync group: its own thread takes a batch from the commit queue and
 * publishes it here; the group's helpers and the thread itself commit
 * files from it until none is left; then the thread syncs the directory.
 * With two groups, one group's directory sync overlaps the other's file
 * syncs. */
struct sync_group {
    struct spool *sp;
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    struct spool_writer **items;
    size_t n, next, left;
    uint64_t gen;
    bool stop;
    int dfd; /* the incoming directory */
    pthread_t thread;
    pthread_t helpers[SYNC_THREADS - 1];
};

struct spool {
    char *dir;
    uint8_t pk[SPOOL_PK_BYTES];
    struct event_base *base;
    unsigned sync_batch;
    int incoming_fd;
    /* loop thread only */
    unsigned live;           /* writers handed out and not yet freed */
    uint8_t *scratch;        /* one encrypted chunk with its length */
    struct event *done_ev;
    int done_fd;             /* eventfd: sync thread -> loop */
    /* shared with the sync and prep threads, under mu */
    pthread_mutex_t mu;
    pthread_cond_t work;
    struct spool_writer *queue, **queue_tail;
    struct spool_writer *done, **done_tail;
    struct spool_writer *spares, **spares_tail; /* ready files, oldest first */
    unsigned n_spares;
    pthread_cond_t prep;     /* the prep thread waits here for spares to run low */
    uint64_t last_ms, seq;   /* queue id generator */
    bool stop;
    bool threads_started;
    pthread_t prep_thread;
    struct sync_group groups[SYNC_GROUPS];
};

struct spool_writer {
    struct spool *sp;
    struct spool_writer *next; /* commit queue, then done list */
    char id[SPOOL_ID_LEN + 1];
    char tmp_name[TMP_NAME_LEN + 1];
    int fd;
    struct seal_stream *st;
    uint8_t keys[TRAILER_LEN]; /* sealed file key, stream header */
    uint8_t ad[AD_LEN];        /* H || size */
    uint8_t *plain;            /* pending plaintext, grows up to CHUNK_PLAIN */
    size_t fill, cap;
    uint64_t size;
    uint8_t *note;             /* the delivery note, sealed at commit */
    size_t note_len;
    bool failed;               /* an I/O error: the commit will fail */
    bool ok;                   /* commit result */
    spool_commit_cb *cb;
    void *arg;
};

static _Thread_local char errbuf[256];

/* "what: strerror(errno)" in a thread-local buffer. */
static const char *errno_msg(const char *what)
{
    snprintf(errbuf, sizeof errbuf, "%s: %m", what);
    return errbuf;
}

/* --- small helpers ------------------------------------------------------- */


/* Read up to len bytes; returns the count (short only at end of file), or -1. */

bool spool_id_valid(const char *id)
{
    size_t i;
    for (i = 0; id[i] != '\0'; i++)
        if (i >= SPOOL_ID_LEN || !((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    return i == SPOOL_ID_LEN;
}

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
    uint64_t v = (ms & ((UINT64_C(1) << (64 - SEQ_BITS)) - 1)) << SEQ_BITS | sp->seq;
    pthread_mutex_unlock(&sp->mu);
    snprintf(out, SPOOL_ID_LEN + 1, "%016" PRIx64, v);
}

/* --- envelope encoding ----------------------------------------------------- */

static int put_str(struct sm_buf *b, const char *s)
{
    uint8_t len[4];
    size_t n = s ? strlen(s) : 0;
    if (n > SPOOL_STR_MAX)
        return -1;
    sm_put_be32(len, (uint32_t)n);
    if (sm_buf_append(b, len, 4) < 0)
        return -1;
    return n > 0 ? sm_buf_append(b, s, n) : 0;
}

/* Append the encoded envelope to b; -1 with *error_r if it breaks a bound. */
static int envelope_encode(const struct spool_envelope *env, struct sm_buf *b,
                           const char **error_r)
{
    uint8_t fixed[1 + 8 + 4];

    if (env->n_rcpts < 1 || env->n_rcpts > SPOOL_RCPTS_MAX) {
        *error_r = "envelope needs 1 to 100000 recipients";
        return -1;
    }
    if (put_str(b, env->helo) < 0 || put_str(b, env->client) < 0
        || put_str(b, env->mail_from) < 0 || put_str(b, env->body_type) < 0)
        goto too_long;
    fixed[0] = env->smtputf8 ? 1 : 0;
    sm_put_be64(fixed + 1, (uint64_t)env->received);
    sm_put_be32(fixed + 9, (uint32_t)env->n_rcpts);
    if (sm_buf_append(b, fixed, sizeof fixed) < 0)
        goto too_long;
    for (size_t i = 0; i < env->n_rcpts; i++)
        if (put_str(b, env->rcpts[i]) < 0)
            goto too_long;
    return 0;
too_long:
    *error_r = "envelope too large";
    return -1;
}

/* A bounded reader over the envelope bytes. */
struct cursor {
    const uint8_t *p;
    size_t left;
};

static int cur_take(struct cursor *c, size_t n, const uint8_t **p_r)
{
    if (n > c->left)
        return -1;
    *p_r = c->p;
    c->p += n;
    c->left -= n;
    return 0;
}

static int cur_str(struct cursor *c, char **s_r)
{
    const uint8_t *p;
    if (cur_take(c, 4, &p) < 0)
        return -1;
    uint32_t n = sm_get_be32(p);
    if (n > SPOOL_STR_MAX || cur_take(c, n, &p) < 0 || memchr(p, '\0', n) != NULL)
        return -1;
    *s_r = sm_strndup((const char *)p, n);
    return 0;
}

static int envelope_decode(const uint8_t *data, size_t len, struct spool_envelope *env)
{
    struct cursor c = {data, len};
    const uint8_t *p;

    memset(env, 0, sizeof *env);
    if (cur_str(&c, &env->helo) < 0 || cur_str(&c, &env->client) < 0
        || cur_str(&c, &env->mail_from) < 0 || cur_str(&c, &env->body_type) < 0
        || cur_take(&c, 1 + 8 + 4, &p) < 0)
        return -1;
    if (p[0] > 1)
        return -1;
    env->smtputf8 = p[0] == 1;
    env->received = (int64_t)sm_get_be64(p + 1);
    uint32_t n = sm_get_be32(p + 9);
    /* each recipient takes at least 4 bytes: bound n by what is left */
    if (n < 1 || n > SPOOL_RCPTS_MAX || n > c.left / 4)
        return -1;
    env->rcpts = sm_calloc(n, sizeof(char *));
    for (; env->n_rcpts < n; env->n_rcpts++)
        if (cur_str(&c, &env->rcpts[env->n_rcpts]) < 0)
            return -1;
    return c.left == 0 ? 0 : -1;
}

void spool_envelope_free(struct spool_envelope *env)
{
    if (env == NULL)
        return;
    sm_freep(&env->helo);
    sm_freep(&env->client);
    sm_freep(&env->mail_from);
    sm_freep(&env->body_type);
    for (size_t i = 0; env->rcpts != NULL && i < env->n_rcpts; i++)
        sm_freep(&env->rcpts[i]);
    sm_freep(&env->rcpts);
    env->n_rcpts = 0;
    sm_freep(&env->prefix);
    env->prefix_len = 0;
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
            *error_r = errno_msg("cannot create spool file");
            return -1;
        }
    }
    if (w->fd < 0) {
        *error_r = "cannot find a free queue id";
        return -1;
    }
    if (flock(w->fd, LOCK_EX | LOCK_NB) < 0) {
        *error_r = errno_msg("cannot lock spool file");
        return -1;
    }
    return 0;
}

/* Build the header (magic .. stream header) of a spare, bind it as
 * associated data and write it. */
static int writer_start(struct spool_writer *w, const struct spool_envelope *env,
                        const char **error_r)
{
    struct sm_buf b;
    uint8_t fixed[FIXED_LEN] = MAGIC;
    int ret = -1;

    sm_buf_init(&b, FIXED_LEN + SPOOL_ENV_MAX + TRAILER_LEN);
    sm_buf_append(&b, fixed, FIXED_LEN); /* size and length patched below */
    if (envelope_encode(env, &b, error_r) < 0)
        goto out;
    if (b.len - FIXED_LEN > SPOOL_ENV_MAX) {
        *error_r = "envelope too large";
        goto out;
    }
    sm_put_be32((uint8_t *)b.data + 16, (uint32_t)(b.len - FIXED_LEN));
    if (sm_buf_append(&b, w->keys, TRAILER_LEN) < 0) {
        *error_r = "envelope too large";
        goto out;
    }
    seal_hash(w->ad, b.data, b.len);
    if (sm_write_full(w->fd, b.data, b.len) < 0) {
        *error_r = errno_msg("cannot write spool file");
        goto out;
    }
    ret = 0;
out:
    sm_buf_free(&b);
    return ret;
}

/* Free a writer or spare; its file must already be renamed or removed. */
static void writer_free(struct spool_writer **wp)
{
    struct spool_writer *w = *wp;
    if (w == NULL)
        return;
    if (w->fd >= 0)
        close(w->fd);
    seal_stream_free(&w->st);
    if (w->plain != NULL)
        seal_wipe(w->plain, w->cap);
    sm_freep(&w->plain);
    if (w->note != NULL)
        seal_wipe(w->note, w->note_len);
    sm_freep(&w->note);
    sm_freep(wp);
}

/* Remove the temporary file of a writer that will not be committed, free it. */
static void writer_discard(struct spool_writer **wp)
{
    struct spool_writer *w = *wp;
    if (w == NULL)
        return;
    if (w->fd >= 0)
        unlinkat(w->sp->incoming_fd, w->tmp_name, 0);
    writer_free(wp);
}

/* A spare: a fresh id, its locked temporary file and a started stream
 * (file key sealed).  The slow part of starting a message (creating an
 * inode, two X25519 operations) runs on the prep thread this way. */
static struct spool_writer *spare_new(struct spool *sp, const char **error_r)
{
    struct spool_writer *w = sm_malloc(sizeof *w);
    w->sp = sp;
    w->fd = -1;
    if (writer_create_file(sp, w, error_r) < 0)
        goto fail;
    w->st = seal_stream_push_new(sp->pk, w->keys, w->keys + SEAL_SEALED_KEY_BYTES, error_r);
    if (w->st == NULL)
        goto fail;
    return w;
fail:
    writer_discard(&w);
    return NULL;
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
    if (sp->base == NULL) {
        *error_r = "spool opened for reading only";
        return NULL;
    }
    struct spool_writer *w = spare_take(sp, error_r);
    if (w == NULL)
        return NULL;
    if (writer_start(w, env, error_r) < 0) {
        writer_discard(&w);
        return NULL;
    }
    sp->live++;
    return w;
}

const char *spool_writer_id(const struct spool_writer *w)
{
    return w->id;
}

uint64_t spool_writer_size(const struct spool_writer *w)
{
    return w->size;
}

/* Encrypt the pending plaintext as one chunk and append it to the file. */
static int writer_flush(struct spool_writer *w, bool final, const char **error_r)
{
    uint8_t *out = w->sp->scratch;
    size_t clen = w->fill + SEAL_STREAM_ABYTES;

    if (final)
        sm_put_be64(w->ad + SEAL_HASH_BYTES, w->size);
    sm_put_be32(out, (uint32_t)clen);
    if (seal_stream_push(w->st, w->plain, w->fill, w->ad, final ? AD_LEN : SEAL_HASH_BYTES,
                         final, out + 4)
        < 0) {
        *error_r = "cannot encrypt message chunk";
        return -1;
    }
    if (w->plain != NULL)
        seal_wipe(w->plain, w->fill);
    w->fill = 0;
    if (sm_write_full(w->fd, out, 4 + clen) < 0) {
        *error_r = errno_msg("cannot write spool file");
        return -1;
    }
    return 0;
}

/* Grow the plaintext buffer to hold need bytes (need <= CHUNK_PLAIN), in
 * powers of two so small messages stay small; the old copy is wiped. */
static void writer_reserve(struct spool_writer *w, size_t need)
{
    if (need <= w->cap)
        return;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < need)
        cap *= 2;
    uint8_t *plain = sm_malloc(cap);
    if (w->fill > 0)
        memcpy(plain, w->plain, w->fill);
    if (w->plain != NULL)
        seal_wipe(w->plain, w->cap);
    free(w->plain);
    w->plain = plain;
    w->cap = cap;
}

int spool_writer_write(struct spool_writer *w, const void *data, size_t len, const char **error_r)
{
    const uint8_t *p = data;

    if (w->failed) {
        *error_r = "spool writer failed earlier";
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
        w->fill += n;
        w->size += n;
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
    if (writer_flush(w, true, &error) < 0) {
        log_warn("spool commit-failed queue=%s error=\"%s\"", w->id, error);
        w->failed = true;
    } else if (pwrite(w->fd, size, sizeof size, OFF_SIZE) != (ssize_t)sizeof size) {
        log_warn("spool commit-failed queue=%s error=\"%s\"", w->id,
                 errno_msg("cannot write spool file"));
        w->failed = true;
    }
    seal_stream_free(&w->st); /* the key state is no longer needed */
    if (w->plain != NULL)
        seal_wipe(w->plain, w->cap);
    sm_freep(&w->plain);
    w->cap = 0;
}

void spool_writer_commit(struct spool_writer *w, spool_commit_cb *cb, void *arg)
{
    struct spool *sp = w->sp;

    w->cb = cb;
    w->arg = arg;
    writer_finish(w);
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
    writer_discard(wp);
}

/* --- group commit (sync threads) --------------------------------------------- */

/* Rename tmp to its final name without ever replacing an existing file. */
static int commit_rename(int dfd, const struct spool_writer *w)
{
    if (renameat2(dfd, w->tmp_name, dfd, w->id, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    /* a file system without RENAME_NOREPLACE: link refuses to replace too */
    if (linkat(dfd, w->tmp_name, dfd, w->id, 0) < 0)
        return -1;
    unlinkat(dfd, w->tmp_name, 0);
    return 0;
}

/* Make one file's data durable and give it its final name (the name is
 * durable only after the directory sync); on failure remove it. */
static void commit_one(int dfd, struct spool_writer *w)
{
    if (!w->failed && fdatasync(w->fd) < 0) {
        log_warn("spool commit-failed queue=%s error=\"%s\"", w->id, errno_msg("fdatasync"));
        w->failed = true;
    }
    if (!w->failed && commit_rename(dfd, w) < 0) {
        log_warn("spool commit-failed queue=%s error=\"%s\"", w->id, errno_msg("rename"));
        w->failed = true;
    }
    if (w->failed)
        unlinkat(dfd, w->tmp_name, 0);
    close(w->fd); /* also drops the cleanup lock */
    w->fd = -1;
    w->ok = !w->failed;
}

/* Take files of the published batch and commit them until none is left. */
static void fanout_work(struct sync_group *f)
{
    for (;;) {
        pthread_mutex_lock(&f->mu);
        if (f->next >= f->n) {
            pthread_mutex_unlock(&f->mu);
            return;
        }
        struct spool_writer *w = f->items[f->next++];
        pthread_mutex_unlock(&f->mu);

        commit_one(f->dfd, w);
        pthread_mutex_lock(&f->mu);
        if (--f->left == 0)
            pthread_cond_signal(&f->done);
        pthread_mutex_unlock(&f->mu);
    }
}

static void *fanout_helper(void *arg)
{
    struct sync_group *f = arg;
    uint64_t seen = 0;

    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (f->gen == seen && !f->stop)
            pthread_cond_wait(&f->start, &f->mu);
        if (f->gen == seen) /* stopping, nothing new */
            break;
        seen = f->gen;
        pthread_mutex_unlock(&f->mu);
        fanout_work(f);
        pthread_mutex_lock(&f->mu);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* fdatasync every file of the batch, SYNC_THREADS at a time. */
static void fanout_run(struct sync_group *f, struct spool_writer **items, size_t n)
{
    pthread_mutex_lock(&f->mu);
    f->items = items;
    f->n = n;
    f->next = 0;
    f->left = n;
    f->gen++;
    pthread_cond_broadcast(&f->start);
    pthread_mutex_unlock(&f->mu);

    fanout_work(f);

    pthread_mutex_lock(&f->mu);
    while (f->left > 0)
        pthread_cond_wait(&f->done, &f->mu);
    f->items = NULL;
    f->n = 0;
    pthread_mutex_unlock(&f->mu);
}

/* Make a batch durable: each file's data then name (SYNC_THREADS files at
 * a time), then ONE directory sync for all the names.  Sets w->ok; failed
 * files are removed. */
static void commit_batch(struct sync_group *g, struct spool_writer **items, size_t n)
{
    struct spool *sp = g->sp;
    size_t renamed = 0;

    /* sibling processes sync this directory too: one at a time (see SYNC_THREADS) */
    while (flock(sp->incoming_fd, LOCK_EX) < 0 && errno == EINTR)
        ;
    fanout_run(g, items, n);
    for (size_t i = 0; i < n; i++)
        renamed += items[i]->ok;
    int synced = renamed == 0 ? 0 : fsync(sp->incoming_fd);
    int saved = errno;
    flock(sp->incoming_fd, LOCK_UN);
    errno = saved;
    if (synced == 0)
        return;
    log_warn("spool commit-failed batch=%zu error=\"%s\"", renamed,
             errno_msg("fsync of spool directory"));
    for (size_t i = 0; i < n; i++) {
        if (items[i]->ok)
            unlinkat(sp->incoming_fd, items[i]->id, 0);
        items[i]->ok = false;
    }
}

/* Hand a finished batch to the loop thread. */
static void post_done(struct spool *sp, struct spool_writer **items, size_t n)
{
    uint64_t one = 1;

    pthread_mutex_lock(&sp->mu);
    for (size_t i = 0; i < n; i++) {
        items[i]->next = NULL;
        *sp->done_tail = items[i];
        sp->done_tail = &items[i]->next;
    }
    pthread_mutex_unlock(&sp->mu);
    if (write(sp->done_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn("spool eventfd-write-failed error=\"%s\"", errno_msg("write"));
}

static void *sync_main(void *arg)
{
    struct sync_group *g = arg;
    struct spool *sp = g->sp;
    struct spool_writer **items = sm_calloc(sp->sync_batch, sizeof *items);

    pthread_mutex_lock(&sp->mu);
    for (;;) {
        while (sp->queue == NULL && !sp->stop)
            pthread_cond_wait(&sp->work, &sp->mu);
        if (sp->queue == NULL)
            break; /* stopping and drained */
        size_t n = 0;
        while (sp->queue != NULL && n < sp->sync_batch) {
            items[n++] = sp->queue;
            sp->queue = sp->queue->next;
        }
        if (sp->queue == NULL)
            sp->queue_tail = &sp->queue;
        pthread_mutex_unlock(&sp->mu);
        commit_batch(g, items, n);
        post_done(sp, items, n);
        pthread_mutex_lock(&sp->mu);
    }
    pthread_mutex_unlock(&sp->mu);
    free(items);
    return NULL;
}

/* Keep SPARES_TARGET spares ready; after a failure (disk full...) retry
 * once a second, while writers fall back to making their own. */
static void *prep_main(void *arg)
{
    struct spool *sp = arg;
    const char *error;
    bool warned = false;

    pthread_mutex_lock(&sp->mu);
    while (!sp->stop) {
        if (sp->n_spares >= SPARES_TARGET) {
            pthread_cond_wait(&sp->prep, &sp->mu);
            continue;
        }
        pthread_mutex_unlock(&sp->mu);
        struct spool_writer *w = spare_new(sp, &error);
        pthread_mutex_lock(&sp->mu);
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

/* --- completions (loop thread) ------------------------------------------------ */

static void run_completions(struct spool *sp)
{
    pthread_mutex_lock(&sp->mu);
    struct spool_writer *list = sp->done;
    sp->done = NULL;
    sp->done_tail = &sp->done;
    pthread_mutex_unlock(&sp->mu);

    while (list != NULL) {
        struct spool_writer *w = list;
        list = w->next;
        if (w->cb != NULL)
            w->cb(w->arg, w->ok, w->id);
        sp->live--;
        writer_free(&w);
    }
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    uint64_t count;
    (void)what;
    if (read(fd, &count, sizeof count) < 0 && errno != EAGAIN)
        log_warn("spool eventfd-read-failed error=\"%s\"", errno_msg("read"));
    run_completions(arg);
}

/* --- open and close ------------------------------------------------------------ */

/* Remove .tmp- files left by writers that died (their flock is free). */
static void remove_leftovers(int dfd)
{
    int fd = dup(dfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;

    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        log_warn("spool cleanup-failed error=\"%s\"", errno_msg("opendir"));
        return;
    }
    rewinddir(d);
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, TMP_PREFIX, sizeof TMP_PREFIX - 1) != 0)
            continue;
        int tfd = openat(dfd, de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (tfd < 0)
            continue;
        /* a live writer locks its file right after creating it: a young
         * file may be one whose lock is not taken yet */
        struct stat st;
        bool old = fstat(tfd, &st) == 0 && S_ISREG(st.st_mode) &&
                   time(NULL) - st.st_mtime >= LEFTOVER_MIN_AGE;
        if (old && flock(tfd, LOCK_EX | LOCK_NB) == 0) {
            if (unlinkat(dfd, de->d_name, 0) == 0)
                log_info("spool removed-leftover file=%s", de->d_name);
        }
        close(tfd);
    }
    closedir(d);
}

static int mkdir_ok(const char *path)
{
    return mkdir(path, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

/* Create dir and dir/incoming; open the latter. */
static int open_incoming(const char *dir, bool create, const char **error_r)
{
    char path[4096];

    if ((size_t)snprintf(path, sizeof path, "%s/incoming", dir) >= sizeof path) {
        *error_r = "spool path too long";
        return -1;
    }
    if (create && (mkdir_ok(dir) < 0 || mkdir_ok(path) < 0)) {
        *error_r = errno_msg("cannot create spool directory");
        return -1;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        *error_r = errno_msg("cannot open spool directory");
    return fd;
}

static int start_threads(struct spool *sp, const char **error_r)
{
    sp->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sp->done_fd < 0) {
        *error_r = errno_msg("eventfd");
        return -1;
    }
    sp->done_ev = event_new(sp->base, sp->done_fd, EV_READ | EV_PERSIST, on_done, sp);
    if (sp->done_ev == NULL || event_add(sp->done_ev, NULL) < 0) {
        *error_r = "cannot watch the spool eventfd";
        return -1;
    }
    for (size_t k = 0; k < SYNC_GROUPS; k++) {
        struct sync_group *g = &sp->groups[k];
        for (size_t i = 0; i + 1 < SYNC_THREADS; i++)
            if (pthread_create(&g->helpers[i], NULL, fanout_helper, g) != 0)
                sm_panic("cannot start spool sync helper thread");
        if (pthread_create(&g->thread, NULL, sync_main, g) != 0)
            sm_panic("cannot start spool sync thread");
    }
    if (pthread_create(&sp->prep_thread, NULL, prep_main, sp) != 0)
        sm_panic("cannot start spool prep thread");
    sp->threads_started = true;
    return 0;
}

struct spool *spool_open(const char *dir, const uint8_t pk[SPOOL_PK_BYTES],
                         struct event_base *base, unsigned sync_batch, const char **error_r)
{
    if (seal_init() < 0) {
        *error_r = "libsodium cannot be initialised";
        return NULL;
    }
    struct spool *sp = sm_malloc(sizeof *sp);
    sp->dir = sm_strdup(dir);
    memcpy(sp->pk, pk, SPOOL_PK_BYTES);
    sp->base = base;
    sp->sync_batch = sync_batch < 1 ? 1 : sync_batch > 4096 ? 4096 : sync_batch;
    sp->done_fd = -1;
    sp->queue_tail = &sp->queue;
    sp->done_tail = &sp->done;
    sp->spares_tail = &sp->spares;
    pthread_mutex_init(&sp->mu, NULL);
    pthread_cond_init(&sp->work, NULL);
    pthread_cond_init(&sp->prep, NULL);
    seal_random(&sp->seq, sizeof sp->seq);
    sp->incoming_fd = open_incoming(dir, base != NULL, error_r);
    for (size_t k = 0; k < SYNC_GROUPS; k++) {
        struct sync_group *g = &sp->groups[k];
        g->sp = sp;
        g->dfd = sp->incoming_fd;
        pthread_mutex_init(&g->mu, NULL);
        pthread_cond_init(&g->start, NULL);
        pthread_cond_init(&g->done, NULL);
    }
    if (sp->incoming_fd < 0)
        goto fail;
    if (base != NULL) {
        remove_leftovers(sp->incoming_fd);
        sp->scratch = sm_malloc(4 + CHUNK_CIPHER_MAX);
        if (start_threads(sp, error_r) < 0)
            goto fail;
    }
    return sp;
fail:
    spool_close(&sp);
    return NULL;
}

static void stop_threads(struct spool *sp)
{
    pthread_mutex_lock(&sp->mu);
    sp->stop = true;
    pthread_cond_broadcast(&sp->work);
    pthread_cond_broadcast(&sp->prep);
    pthread_mutex_unlock(&sp->mu);
    pthread_join(sp->prep_thread, NULL);
    for (size_t k = 0; k < SYNC_GROUPS; k++) /* they return once the queue is drained */
        pthread_join(sp->groups[k].thread, NULL);
    for (size_t k = 0; k < SYNC_GROUPS; k++) {
        struct sync_group *g = &sp->groups[k];
        pthread_mutex_lock(&g->mu);
        g->stop = true;
        pthread_cond_broadcast(&g->start);
        pthread_mutex_unlock(&g->mu);
        for (size_t i = 0; i + 1 < SYNC_THREADS; i++)
            pthread_join(g->helpers[i], NULL);
    }
    sp->threads_started = false;
}

void spool_close(struct spool **spp)
{
    struct spool *sp = *spp;
    if (sp == NULL)
        return;
    if (sp->threads_started)
        stop_threads(sp);
    run_completions(sp); /* callbacks of the commits drained above */
    while (sp->spares != NULL) {
        struct spool_writer *w = sp->spares;
        sp->spares = w->next;
        writer_discard(&w);
    }
    if (sp->live != 0)
        sm_panic("spool_close with %u writers neither committed nor aborted", sp->live);
    if (sp->done_ev != NULL)
        event_free(sp->done_ev);
    if (sp->done_fd >= 0)
        close(sp->done_fd);
    if (sp->incoming_fd >= 0)
        close(sp->incoming_fd);
    for (size_t k = 0; k < SYNC_GROUPS; k++) {
        pthread_cond_destroy(&sp->groups[k].done);
        pthread_cond_destroy(&sp->groups[k].start);
        pthread_mutex_destroy(&sp->groups[k].mu);
    }
    pthread_cond_destroy(&sp->prep);
    pthread_cond_destroy(&sp->work);
    pthread_mutex_destroy(&sp->mu);
    free(sp->scratch);
    free(sp->dir);
    sm_freep(spp);
}

/* --- reading --------------------------------------------------------------------- */

/* The parsed start of a spool file: header bytes up to the first chunk. */
struct prefix {
    uint8_t *data; /* FIXED_LEN + env_len + TRAILER_LEN bytes */
    size_t len;
    uint32_t env_len;
    uint64_t size;
};

static int open_message(const char *dir, const char *id, const char **error_r)
{
    char path[4096];

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
    if (fd < 0) {
        *error_r = errno == ENOENT ? "no such message in the spool" : errno_msg("cannot open message");
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

/* Read and check the fixed header, the envelope and the key material. */
static int read_prefix(int fd, struct prefix *pr, const char **error_r)
{
    uint8_t fixed[FIXED_LEN];
    ssize_t n = sm_read_full(fd, fixed, FIXED_LEN);

    memset(pr, 0, sizeof *pr);
    if (n < 0) {
        *error_r = errno_msg("cannot read message");
        return -1;
    }
    if ((size_t)n < MAGIC_LEN ||
        (memcmp(fixed, MAGIC, MAGIC_LEN) != 0 && memcmp(fixed, MAGIC_V1, MAGIC_LEN) != 0)) {
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
        *error_r = n < 0 ? errno_msg("cannot read message") : "truncated spool file";
        sm_freep(&pr->data);
        return -1;
    }
    return 0;
}

int spool_read_envelope(const char *dir, const char *id, struct spool_envelope *env,
                        const char **error_r)
{
    struct prefix pr;
    int fd = open_message(dir, id, error_r);

    memset(env, 0, sizeof *env);
    if (fd < 0)
        return -1;
    int ret = read_prefix(fd, &pr, error_r);
    close(fd);
    if (ret < 0)
        return -1;
    if (envelope_decode(pr.data + FIXED_LEN, pr.env_len, env) < 0) {
        spool_envelope_free(env);
        *error_r = "malformed envelope in spool file";
        ret = -1;
    } else {
        env->size = pr.size;
    }
    free(pr.data);
    return ret;
}

/* True when the file open at in is of version 1 (no delivery note). */
static bool file_is_v1(int in)
{
    char m[MAGIC_LEN];
    return pread(in, m, MAGIC_LEN, 0) == MAGIC_LEN && memcmp(m, MAGIC_V1, MAGIC_LEN) == 0;
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
        *error_r = errno_msg("cannot read delivery note");
        return -1;
    }
    if (ftruncate(out, start + (off_t)body) < 0 || lseek(out, 0, SEEK_END) < 0) {
        *error_r = errno_msg("cannot cut delivery note");
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
    int in = open_message(dir, id, error_r);
    if (in < 0)
        return -1;
    /* the envelope comes from the same bytes the hash H binds to the body */
    bool v1 = file_is_v1(in);
    off_t start = lseek(fd, 0, SEEK_CUR);
    int ret = start < 0 ? -1
                        : sealfile_read(in, v1 ? MAGIC_V1 : MAGIC, SPOOL_ENV_MAX, pk, sk, fd, &meta, &meta_len,
                                        &size, error_r);
    if (start < 0)
        *error_r = "the output of spool_read_message() must be seekable";
    close(in);
    if (ret == 0 && envelope_decode(meta, meta_len, env) < 0) {
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

/* Unlink ids, then ONE fsync of the directory under its flock (syncs of
 * the spool directory take turns, see SYNC_THREADS; the unlinks are plain
 * changes and need not wait for the lock).  A missing id is an error
 * unless missing_ok. */
static int remove_ids(const char *dir, const char *const ids[], size_t n, bool missing_ok,
                      const char **error_r)
{
    for (size_t i = 0; i < n; i++)
        if (!spool_id_valid(ids[i])) {
            *error_r = "invalid queue id (expected 16 lowercase hex digits)";
            return -1;
        }
    int dfd = open_incoming(dir, false, error_r);
    if (dfd < 0)
        return -1;
    int ret = 0;
    size_t removed = 0;
    for (size_t i = 0; i < n; i++) {
        if (unlinkat(dfd, ids[i], 0) == 0)
            removed++;
        else if (errno != ENOENT || !missing_ok) {
            *error_r = errno == ENOENT ? "no such message in the spool"
                                       : errno_msg("cannot remove message");
            ret = -1;
        }
    }
    if (removed > 0) {
        while (flock(dfd, LOCK_EX) < 0 && errno == EINTR)
            ;
        if (fsync(dfd) < 0) {
            *error_r = errno_msg("cannot sync spool directory");
            ret = -1;
        }
    }
    close(dfd); /* releases the lock */
    return ret;
}

int spool_remove(const char *dir, const char *id, const char **error_r)
{
    return remove_ids(dir, &id, 1, false, error_r);
}

int spool_remove_many(const char *dir, const char *const ids[], size_t n, const char **error_r)
{
    return remove_ids(dir, ids, n, true, error_r);
}

static int id_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int spool_list(const char *dir, void (*fn)(void *arg, const char *id), void *arg,
               const char **error_r)
{
    int dfd = open_incoming(dir, false, error_r);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    char **ids = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;

    if (d == NULL) {
        if (dfd >= 0) {
            *error_r = errno_msg("cannot list spool directory");
            close(dfd);
        }
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (!spool_id_valid(de->d_name))
            continue; /* ".", "..", temporary files */
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            ids = sm_realloc(ids, cap * sizeof *ids);
        }
        ids[n++] = sm_strdup(de->d_name);
    }
    closedir(d);
    if (n > 0)
        qsort(ids, n, sizeof *ids, id_cmp);
    for (size_t i = 0; i < n; i++) {
        fn(arg, ids[i]);
        free(ids[i]);
    }
    free(ids);
    if (n > INT32_MAX) {
        *error_r = "too many messages";
        return -1;
    }
    return (int)n;
}
