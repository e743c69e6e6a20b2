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
 * VERSION 3 ("SEALSP\0\3") is the same layout for a record of a chained
 * segment (spoolseg.h version 2): the 80 key bytes are zeros, and the file
 * key is the segment's chain key for the record's ticket (spoolchain.h).
 * Readers accept version 3 only as such a record, and versions 1-2 only
 * elsewhere.
 *
 * The plaintext of a version 2 or 3 file is the message, then the delivery
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
 * Two places hold these bytes: a SEGMENT record (small messages, the
 * common case) or a FILE of their own (big messages).
 *
 * SEGMENTS (framing in spoolseg.h).  A message whose plaintext (and delivery note) stays
 * within INLINE_MAX (256 KiB) is built in memory, and at commit the sync
 * thread appends it as a record to the process's current segment
 * incoming/seg-XXXXXXXX: the records of a whole batch with one pwritev at
 * increasing offsets, then ONE fdatasync of the segment, then the
 * callbacks (the 250s).  No inode, rename or directory sync per message.
 * Durability argument:
 *   - a segment is created as .tmp-seg-X (O_EXCL, 0600), flocked, its
 *     header written and fdatasynced, its empty .done made and fsynced,
 *     renamed (never replacing) and the directory fsynced before it takes
 *     a record (the prep thread makes the next one ahead of need): its
 *     name and inode are durable before any record in it is acknowledged,
 *     and a segment under its final name is locked by its writer from the
 *     first instant;
 *   - fdatasync flushes the appended data and the metadata needed to read
 *     it back (size, block map), so every record of the batch is on disk
 *     before its callback runs;
 *   - records are only ever appended after the previous batch's sync
 *     returned, so a crash can tear only records that were not yet
 *     acknowledged, all after the last acknowledged one; readers scan from
 *     the start and stop at the first record that is cut or fails its
 *     checksum (stale blocks after a crash do not carry this segment's
 *     random nonce);
 *   - only the one sync thread of the writer process writes or syncs a
 *     segment, one batch at a time: two concurrent fsyncs of one inode are
 *     not safe on ext4 without a journal (see SYNC_THREADS);
 *   - after a failed write or sync the segment takes no more records (a
 *     torn record would hide what follows): the batch fails, its records
 *     are marked done in case they reached the disk whole, and the writer
 *     moves to a new segment.
 * A segment is rotated at SEG_ROTATE (64 MiB) of records.  Its writer
 * holds its flock until the last message bound to it completed (then it
 * writes the record count into the header as a hint and closes it); a
 * free flock means no one will append to it again.  A segment that never
 * got a record is removed by its writer.
 *
 * Removal (spool_remove*, queued after delivery) appends 16-byte entries
 * (segment, ticket, nonce) to seg-X.done at an aligned offset and
 * fdatasyncs it, under that file's flock (one sync of it at a time, across
 * threads and processes).  Readers treat a done record as absent.  When a
 * segment's flock is free and every complete record in it is done, the
 * remover (or spool_sweep(), which queued runs with its periodic rescan)
 * unlinks the segment, fsyncs the directory, then unlinks the .done: a
 * segment never comes back without the list of what was removed from it.
 * Orphan .done files are swept once older than LEFTOVER_MIN_AGE.
 *
 * Memory: an inline message holds its plaintext (at most INLINE_MAX) and
 * then its sealed bytes until its commit completes; past INLINE_BUDGET
 * (64 MiB) per process, or past INLINE_MAX for one message, the writer
 * spills to a file (below), named by the id it already has.
 *
 * Reading a record: a process keeps, per segment (SEG_CACHE_MAX of them),
 * the offset of each ticket as far as it scanned and the done marks as far
 * as it read .done; both only grow, so each byte is read once.  The record
 * is checked (header, checksum) and its payload handed to the file readers
 * through a memfd.
 *
 * Queue ids are 16 hex digits.  A record's: the top bit set, the 31-bit
 * segment number (random; unique through the rename that never replaces),
 * the 32-bit ticket (its number in the segment, < SEG_TICKETS_MAX), given
 * at spool_writer_new() so the Received header can name it.  A file's:
 * the top bit clear, 41 bits of milliseconds since the epoch (enough until
 * 2039), then a 22-bit per-process sequence started at a random value;
 * they sort by creation time.  A collision between processes cannot
 * overwrite a message: the commit renames with RENAME_NOREPLACE and would
 * fail instead.  Readers look for a file named by the id first (a spilled
 * record id), then for the record.
 *
 * WRITING.  A prep thread keeps the next segment ready (its creation
 * syncs, and the one X25519 that seals its key-chain seed) and
 * SPARES_TARGET "spares": streams whose file key is already sealed (two
 * X25519 operations) for file writers.
 *
 * An inline writer takes the next ticket of the current segment and that
 * ticket's chain key (no X25519), writes its header into the record at
 * once and gathers the plaintext in memory; commit seals it all (64 KiB
 * chunks, then FINAL) into the record.  Nothing is encrypted before
 * commit, so a message that outgrows memory (the inline limit or budget)
 * can still move to a file: it takes a spare's sealed key instead,
 * rebuilds its header as version 2 and seals what it gathered there
 * (chained_spill).  Its ticket then never appears in the segment.
 *
 * A file writer (big message, or inline memory spent) creates
 * incoming/.tmp-<id> (O_CREAT|O_EXCL, 0600, flock held while alive) on the
 * loop thread.  The writer writes the header at once and a chunk each time
 * 64 KiB of plaintext has gathered.  Commit seals the FINAL chunk, writes
 * the size and queues the writer.
 *
 * GROUP COMMIT.  The sync thread takes every queued writer (at most
 * sync_batch): records go to their segment as above; files of the batch
 * are fdatasynced and renamed by SYNC_THREADS threads concurrently (the
 * device merges concurrent flushes), then ONE fsync of the directory
 * makes all the names durable, and the batch goes back to the loop thread
 * through an eventfd, where callbacks run.  Measured for files on the
 * target machine class (throw-away benchmark: one loop, 20-50 sessions
 * committing back to back, several runs): one serial sync thread 830-2800
 * msgs/s (4 KiB) and 400-2200 (64 KiB); concurrent file syncs 2200-5500
 * (4 KiB) and 1200-4100 (64 KiB).  Any I/O error fails that message
 * (callback ok=false) and removes its file.
 *
 * spool_open() with a loop removes leftover .tmp- files (messages and
 * segments) whose flock is free (their writer died), so parallel smtpd
 * processes sharing the spool never remove each other's files. */
#include "store/spool.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/bytes.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/mem.h"
#include "crypto/seal.h"
#include "store/sealfile.h"
#include "store/spoolchain.h"
#include "store/spoolseg.h"

_Static_assert(SPOOL_PK_BYTES == SEAL_PK_BYTES, "spool public key is an X25519 key");
_Static_assert(SPOOL_SK_BYTES == SEAL_SK_BYTES, "spool secret key is an X25519 key");

#define MAGIC "SEALSP\0\2"
#define MAGIC_V1 "SEALSP\0\1" /* before delivery notes: still read */
#define MAGIC_V3 "SEALSP\0\3" /* a record of a chained segment: key from the chain */
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
#define SPARES_TARGET 64 /* sealed file keys the prep thread keeps ready */
/* Segments (see SEGMENTS above).  A message stays in memory while its
 * sealed bytes fit INLINE_MAX and the process holds less than
 * INLINE_BUDGET of such bytes; beyond either it spills to its own file. */
#ifndef INLINE_MAX
#define INLINE_MAX (256u * 1024)
#endif
#define INLINE_BUDGET (64u * 1024 * 1024)
#define SEG_ROTATE (64u * 1024 * 1024) /* bytes of records before a new segment */
#define SEG_ID_BIT (UINT64_C(1) << 63)  /* queue ids of segment records */
#define SEG_CACHE_MAX 64                /* segments whose index a process keeps (4 GiB of spool) */

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

/* A segment this process appends to (writer side). */
struct segment {
    struct seg_header h;
    int fd;                /* holds the segment's flock */
    struct spool_chain *chain; /* loop thread (the prep thread makes it): record keys
                                * and tickets, handed out together */
    uint64_t reserved;     /* loop thread: bytes of records bound to it, for rotation */
    unsigned refs;         /* loop thread: writers bound to it, +1 while current */
    uint64_t end;          /* sync thread: where the next record goes */
    uint32_t records;      /* sync thread: records written */
    bool failed;           /* under sp->mu: a write or sync failed, no more appends */
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
    struct spool_writer *spares, **spares_tail; /* ready file keys, oldest first */
    unsigned n_spares;
    struct segment *cur;     /* loop thread: the segment new messages go to */
    struct segment *next_seg; /* under mu: made ahead by the prep thread */
    uint64_t inline_bytes;   /* loop thread: memory held by inline writers */
    size_t inline_max;       /* spool_set_inline_max() */
    bool seg_wanted;         /* under mu: segments are in use */
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
    int fd;                    /* a file writer's file, else -1 */
    struct segment *seg;       /* an inline writer's segment, else NULL */
    uint32_t ticket;
    uint8_t *rec;              /* inline: the record being built (REC_HDR_LEN free bytes, then the spool bytes) */
    size_t rec_len, rec_cap;
    struct seal_stream *st;
    bool chained;              /* inline, keyed by its segment's chain: the plaintext
                                * waits in plain until commit (or a spill) */
    size_t plain_counted;      /* bytes of plain counted in sp->inline_bytes */
    uint8_t keys[TRAILER_LEN]; /* sealed file key (zeros when chained), stream header */
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
    /* 41 bits of milliseconds (until 2039): the top bit marks segment ids */
    uint64_t v = (ms & ((UINT64_C(1) << (63 - SEQ_BITS)) - 1)) << SEQ_BITS | sp->seq;
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

/* --- small file helpers (any thread) ------------------------------------------ */

/* Rename from to to within dfd without ever replacing an existing file. */
static int rename_noreplace(int dfd, const char *from, const char *to)
{
    if (renameat2(dfd, from, dfd, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    /* a file system without RENAME_NOREPLACE: link refuses to replace too */
    if (linkat(dfd, from, dfd, to, 0) < 0)
        return -1;
    unlinkat(dfd, from, 0);
    return 0;
}

/* fsync the directory open at dfd under its flock: syncs of the spool
 * directory take turns (see SYNC_THREADS).  dfd must be an open file
 * description of its own: flock does not exclude holders of the same one. */
static int dir_sync(int dfd)
{
    while (flock(dfd, LOCK_EX) < 0 && errno == EINTR)
        ;
    int ret = fsync(dfd);
    int saved = errno;
    flock(dfd, LOCK_UN);
    errno = saved;
    return ret;
}

/* The queue id of record ticket of segment h. */
static void seg_id(const struct seg_header *h, uint32_t ticket, char out[SPOOL_ID_LEN + 1])
{
    snprintf(out, SPOOL_ID_LEN + 1, "%016" PRIx64,
             SEG_ID_BIT | (uint64_t)h->segnum << 32 | ticket);
}

/* Split a valid queue id of a segment record; false for a file id. */
static bool seg_id_parse(const char *id, uint32_t *segnum_r, uint32_t *ticket_r)
{
    uint64_t v = strtoull(id, NULL, 16);
    if ((v & SEG_ID_BIT) == 0)
        return false;
    *segnum_r = (uint32_t)(v >> 32) & SEG_NUM_MAX;
    *ticket_r = (uint32_t)v;
    return true;
}

/* Append the done entries of tickets to segment h's .done file (created,
 * durably, if missing) and fdatasync it, under the file's flock: one sync
 * of it at a time, whoever removes (see SYNC_THREADS). */
static int done_append(int dfd, const struct seg_header *h, const uint32_t *tickets, size_t n,
                       const char **error_r)
{
    char name[32];
    struct stat st;
    int ret = -1;

    seg_name(name, sizeof name, h->segnum, true);
    int fd = openat(dfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT) { /* made with its segment; lost: make it again */
        int own = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        fd = openat(dfd, name, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
        if (own < 0 || fd < 0 || fsync(fd) < 0 || dir_sync(own) < 0) {
            *error_r = errno_msg("cannot create removal list of spool segment");
            if (own >= 0)
                close(own);
            goto out;
        }
        close(own);
    }
    if (fd < 0) {
        *error_r = errno_msg("cannot open removal list of spool segment");
        return -1;
    }
    uint8_t *buf = sm_malloc(n * DONE_ENTRY_LEN);
    for (size_t i = 0; i < n; i++)
        seg_done_encode(buf + i * DONE_ENTRY_LEN, h, tickets[i]);
    while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
        ;
    struct iovec iov = {buf, n * DONE_ENTRY_LEN};
    /* entries stay aligned even after a short write (disk full) */
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    off_t at = ok ? (st.st_size + DONE_ENTRY_LEN - 1) / DONE_ENTRY_LEN * DONE_ENTRY_LEN : 0;
    if (!ok || sm_pwritev_full(fd, &iov, 1, at) < 0 || fdatasync(fd) < 0)
        *error_r = errno_msg("cannot write removal list of spool segment");
    else
        ret = 0;
    free(buf);
out:
    if (fd >= 0)
        close(fd); /* releases the lock */
    return ret;
}

/* --- segments, writer side -------------------------------------------------- */

/* A new segment, ready for appends: made under a temporary name, locked,
 * its header and its (empty) .done file synced, renamed into place, the
 * directory synced.  So a segment under its final name is always locked by
 * its writer from the start, and its name is durable before any record in
 * it is acknowledged.  Any thread (the prep thread, normally). */
static struct segment *seg_create(struct spool *sp, const char **error_r)
{
    char name[32], tmp[40], done[32];
    uint8_t hdr[SEG_HDR_LEN];
    struct segment *s = sm_calloc(1, sizeof *s);
    int own = openat(sp->incoming_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    s->fd = -1;
    if (own < 0) {
        *error_r = errno_msg("cannot open spool directory");
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
    s->chain = spool_chain_new(seed);
    seal_wipe(seed, sizeof seed);
    for (int tries = 0; tries < 8; tries++) {
        seal_random(&s->h.segnum, sizeof s->h.segnum);
        s->h.segnum &= SEG_NUM_MAX;
        seal_random(&s->h.nonce, sizeof s->h.nonce);
        seg_name(name, sizeof name, s->h.segnum, false);
        seg_name(done, sizeof done, s->h.segnum, true);
        snprintf(tmp, sizeof tmp, TMP_PREFIX "%s", name);
        s->fd = openat(sp->incoming_fd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                       0600);
        if (s->fd < 0 && errno == EEXIST)
            continue;
        if (s->fd < 0) {
            *error_r = errno_msg("cannot create spool segment");
            goto fail;
        }
        seg_header_encode(hdr, &s->h);
        int dfd = -1;
        if (flock(s->fd, LOCK_EX | LOCK_NB) < 0 || sm_write_full(s->fd, hdr, sizeof hdr) < 0 ||
            fdatasync(s->fd) < 0 ||
            (dfd = openat(sp->incoming_fd, done, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK,
                          0600)) < 0 ||
            flock(dfd, LOCK_EX) < 0 || /* the .done of a taken number: syncs take turns */
            fsync(dfd) < 0) {
            *error_r = errno_msg("cannot prepare spool segment");
            if (dfd >= 0)
                close(dfd);
            unlinkat(sp->incoming_fd, tmp, 0);
            goto fail;
        }
        close(dfd);
        if (rename_noreplace(sp->incoming_fd, tmp, name) < 0) {
            int saved = errno;
            unlinkat(sp->incoming_fd, tmp, 0);
            close(s->fd);
            s->fd = -1;
            if (saved == EEXIST)
                continue; /* that number is taken */
            errno = saved;
            *error_r = errno_msg("cannot name spool segment");
            goto fail;
        }
        if (dir_sync(own) < 0) {
            *error_r = errno_msg("fsync of spool directory");
            unlinkat(sp->incoming_fd, name, 0);
            unlinkat(sp->incoming_fd, done, 0);
            goto fail;
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
            log_warn("spool segment-hint-failed error=\"%s\"", errno_msg("pwrite"));
    }
    close(s->fd);
    spool_chain_free(&s->chain);
    free(s);
}

static void seg_unref(struct spool *sp, struct segment *s)
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
        *error_r = errno_msg("cannot create spool file");
        return -1;
    }
    if (flock(w->fd, LOCK_EX | LOCK_NB) < 0 ||
        sm_write_full(w->fd, w->rec + REC_HDR_LEN, w->rec_len - REC_HDR_LEN) < 0) {
        *error_r = errno_msg("cannot write spool file");
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
        if (need <= max && (w->chained || sp->inline_bytes + (cap - w->rec_cap) <= INLINE_BUDGET)) {
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
        *error_r = errno_msg("cannot write spool file");
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
    if (envelope_encode(env, &b, error_r) < 0)
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

/* Wipe and free the plaintext buffer (and its share of the inline budget). */
static void plain_release(struct spool_writer *w)
{
    if (w->plain != NULL)
        seal_wipe(w->plain, w->cap);
    sm_freep(&w->plain);
    w->sp->inline_bytes -= w->plain_counted;
    w->plain_counted = 0;
    w->cap = w->fill = 0;
}

/* Free a writer or spare; its file must already be renamed or removed. */
static void writer_free(struct spool_writer **wp)
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
static void writer_discard(struct spool_writer **wp)
{
    struct spool_writer *w = *wp;
    if (w == NULL)
        return;
    if (w->fd >= 0)
        unlinkat(w->sp->incoming_fd, w->tmp_name, 0);
    writer_free(wp);
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
        writer_free(&w);
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
        writer_free(&w);
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
    if (sp->inline_max > 0 && sp->inline_bytes < INLINE_BUDGET &&
        (s = seg_current(sp, &seg_error)) == NULL)
        log_warn("spool segment-failed error=\"%s\" (using a file)", seg_error);
    struct spool_writer *w = s != NULL ? chained_new(sp, s, error_r) : spare_take(sp, error_r);
    if (w == NULL)
        return NULL;
    if (s == NULL && writer_create_file(sp, w, error_r) < 0) {
        writer_discard(&w);
        return NULL;
    }
    if (writer_start(w, env, error_r) < 0) {
        writer_discard(&w);
        return NULL;
    }
    sp->live++;
    return w;
}

void spool_set_inline_max(struct spool *sp, size_t max)
{
    pthread_mutex_lock(&sp->mu);
    sp->inline_max = max < INLINE_MAX ? max : INLINE_MAX;
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
static int seal_chunk(struct spool_writer *w, const uint8_t *in, size_t n, bool final,
                      uint8_t *out, const char **error_r)
{
    size_t clen = n + SEAL_STREAM_ABYTES;
    if (final)
        sm_put_be64(w->ad + SEAL_HASH_BYTES, w->size);
    sm_put_be32(out, (uint32_t)clen);
    if (seal_stream_push(w->st, in, n, w->ad, final ? AD_LEN : SEAL_HASH_BYTES, final,
                         out + 4) < 0) {
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
        seal_wipe(w->plain, w->cap);
    free(w->plain);
    w->plain = plain;
    w->cap = cap;
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
    writer_free(&spare);
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
    size_t grow = plain_cap_for(w, w->fill + len) - w->cap;
    return grow == 0 || sp->inline_bytes + grow <= INLINE_BUDGET;
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
        w->fill += len;
        w->size += len;
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
                 errno_msg("cannot write spool file"));
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
    return rename_noreplace(dfd, w->tmp_name, w->id);
}

/* Append the records of n inline writers, all of segment s, at its end
 * with one pwritev, then make them durable with ONE fdatasync of the
 * segment.  Only this thread writes or syncs s, one batch at a time: no
 * two syncs of the segment overlap (see SYNC_THREADS).  On any error the
 * segment takes no more records (what follows a torn write would be
 * unreachable); its records of this batch fail and are marked done, in
 * case they reached the disk whole. */
static void commit_segment(struct spool *sp, struct segment *s, struct spool_writer **items,
                           size_t n)
{
    struct iovec *iov = sm_calloc(n, sizeof *iov);
    uint32_t *tickets = sm_calloc(n, sizeof *tickets);
    size_t k = 0;
    uint64_t total = 0;
    const char *error = NULL;

    pthread_mutex_lock(&sp->mu);
    bool failed = s->failed;
    pthread_mutex_unlock(&sp->mu);
    for (size_t i = 0; i < n; i++) {
        struct spool_writer *w = items[i];
        w->ok = false;
        if (w->failed || failed)
            continue;
        seg_record_frame(w->rec, w->rec_len - REC_HDR_LEN, &s->h, w->ticket);
        iov[k].iov_base = w->rec;
        iov[k].iov_len = w->rec_len + REC_SUM_LEN;
        tickets[k] = w->ticket;
        total += iov[k].iov_len;
        k++;
    }
    if (k > 0 && sm_pwritev_full(s->fd, iov, (int)k, (off_t)s->end) < 0)
        error = errno_msg("cannot append to spool segment");
    else if (k > 0 && fdatasync(s->fd) < 0)
        error = errno_msg("fdatasync of spool segment");
    if (error == NULL) {
        s->end += total;
        s->records += (uint32_t)k;
        for (size_t i = 0; i < n; i++)
            items[i]->ok = !items[i]->failed && !failed;
    } else {
        const char *ignored;
        log_warn("spool commit-failed batch=%zu error=\"%s\"", k, error);
        pthread_mutex_lock(&sp->mu);
        s->failed = true;
        pthread_mutex_unlock(&sp->mu);
        done_append(sp->incoming_fd, &s->h, tickets, k, &ignored);
    }
    free(tickets);
    free(iov);
}

/* Commit the inline writers of a batch, one segment at a time (usually
 * there is one). */
static void commit_inline(struct spool *sp, struct spool_writer **items, size_t n)
{
    struct spool_writer **group = sm_calloc(n, sizeof *group);
    bool *taken = sm_calloc(n, sizeof *taken);

    for (size_t i = 0; i < n; i++) {
        if (taken[i])
            continue;
        size_t k = 0;
        for (size_t j = i; j < n; j++)
            if (!taken[j] && items[j]->seg == items[i]->seg) {
                taken[j] = true;
                group[k++] = items[j];
            }
        commit_segment(sp, items[i]->seg, group, k);
    }
    free(taken);
    free(group);
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
static void commit_files(struct sync_group *g, struct spool_writer **items, size_t n)
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

/* Make a batch durable: the records of inline writers by segment, the
 * files of the others (big messages) with their directory sync. */
static void commit_batch(struct sync_group *g, struct spool_writer **items, size_t n)
{
    struct spool_writer **inl = sm_calloc(n, sizeof *inl), **files = sm_calloc(n, sizeof *files);
    size_t n_inl = 0, n_files = 0;

    for (size_t i = 0; i < n; i++) {
        if (items[i]->seg != NULL)
            inl[n_inl++] = items[i];
        else
            files[n_files++] = items[i];
    }
    if (n_inl > 0)
        commit_inline(g->sp, inl, n_inl);
    if (n_files > 0)
        commit_files(g, files, n_files);
    free(files);
    free(inl);
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

/* Keep the next segment and SPARES_TARGET spares ready; after a failure
 * (disk full...) retry once a second, while writers fall back to making
 * their own. */
static void *prep_main(void *arg)
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
    sp->inline_max = INLINE_MAX;
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
    if (sp->next_seg != NULL) {
        sp->next_seg->refs = 1;
        seg_unref(sp, sp->next_seg); /* never used: removed */
    }
    seg_unref(sp, sp->cur); /* closed once its last writer is gone (all are, here) */
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

/* --- segments, reader side ---------------------------------------------------- */

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
    uint64_t *off;      /* by ticket */
    uint8_t *done;      /* bitmap by ticket */
    uint32_t n_off;     /* entries of off[] (and bits of done[]) allocated */
    uint64_t scan_end;  /* the scan stopped here */
    uint64_t done_pos;  /* bytes of .done read */
};

static pthread_mutex_t index_mu = PTHREAD_MUTEX_INITIALIZER;
static struct seg_index *indexes[SEG_CACHE_MAX];
static size_t n_indexes;

static void index_free(struct seg_index *e)
{
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
                              ? (size_t)(size - e->done_pos) : 64 * DONE_ENTRY_LEN * 64;
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
static int seg_open(int dfd, uint32_t segnum, struct seg_header *h, const char **error_r)
{
    char name[32];
    struct stat st;

    seg_name(name, sizeof name, segnum, false);
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        *error_r = errno == ENOENT ? "no such message in the spool" : errno_msg("cannot open spool segment");
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
static int seg_locate(int dfd, int fd, const struct seg_header *h, uint32_t ticket,
                      uint64_t *off_r, const char **error_r)
{
    int ret = -1;

    *error_r = "no such message in the spool";
    if (ticket >= SEG_TICKETS_MAX)
        return -1;
    pthread_mutex_lock(&index_mu);
    struct seg_index *e = index_get(fd, h);
    if (e == NULL) {
        *error_r = errno_msg("cannot stat spool segment");
        goto out;
    }
    index_read_done(e, dfd);
    if (index_is_done(e, ticket))
        goto out;
    if ((ticket >= e->n_off || e->off[ticket] == 0) && index_scan(e, fd) < 0) {
        *error_r = errno_msg("cannot read spool segment");
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

/* Where a message's file key comes from, when not from its own sealed
 * key: the chain of the segment it is a record of. */
struct chain_ref {
    bool chained;
    uint32_t ticket;
    uint8_t sealed_seed[SEG_SEED_SEALED];
};

/* A record as a file: its payload (the spool file bytes) in a memfd, so
 * every reader of spool files reads records unchanged; *ref says how
 * its key is found. */
static int open_record(const char *dir, uint32_t segnum, uint32_t ticket, struct chain_ref *ref,
                       const char **error_r)
{
    struct seg_header h;
    uint64_t off;
    size_t len;
    int mfd = -1;

    int dfd = open_incoming(dir, false, error_r);
    if (dfd < 0)
        return -1;
    int fd = seg_open(dfd, segnum, &h, error_r);
    if (fd >= 0 && seg_locate(dfd, fd, &h, ticket, &off, error_r) == 0) {
        ref->chained = h.chained;
        ref->ticket = ticket;
        memcpy(ref->sealed_seed, h.sealed_seed, sizeof ref->sealed_seed);
        uint8_t *payload = seg_read_record(fd, &h, off, ticket, &len, error_r);
        if (payload != NULL) {
            mfd = memfd_create("sealmail-spool", MFD_CLOEXEC);
            if (mfd < 0 || sm_write_full(mfd, payload, len) < 0 || lseek(mfd, 0, SEEK_SET) < 0) {
                *error_r = errno_msg("cannot copy spool record");
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

/* Remove segment segnum if its writer is gone (its flock is free) and
 * every complete record in it is done: the segment first, a directory
 * sync, then the .done file (a .done left alone is harmless and swept;
 * a segment back without its .done would bring removed records back). */
static void seg_try_delete(int dfd, uint32_t segnum)
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
    if (h.count_hint > 0 &&
        (fstatat(dfd, done, &now, AT_SYMLINK_NOFOLLOW) < 0 ||
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
    if (all_done && fstatat(dfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
        now.st_ino == st.st_ino && now.st_dev == st.st_dev && unlinkat(dfd, name, 0) == 0) {
        index_drop(e);
        int own = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (own >= 0 && dir_sync(own) == 0)
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
static void seg_sweep(int dfd)
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

/* --- reading --------------------------------------------------------------------- */

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
        return open_record(dir, segnum, ticket, ref, error_r); /* not spilled to a file */
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

/* The format version a magic names (1, 2 or 3), or 0. */
static int magic_version(const uint8_t m[MAGIC_LEN])
{
    return memcmp(m, MAGIC_V1, MAGIC_LEN) == 0   ? 1
           : memcmp(m, MAGIC, MAGIC_LEN) == 0    ? 2
           : memcmp(m, MAGIC_V3, MAGIC_LEN) == 0 ? 3
                                                 : 0;
}

/* Version 3 bytes are read only as a record of a chained segment and
 * versions 1-2 only elsewhere, so bytes cannot be moved from one kind of
 * place to the other. */
static bool version_in_place(int v, bool chained)
{
    return v != 0 && (v == 3) == chained;
}

/* Read and check the fixed header, the envelope and the key material of
 * spool bytes, in a record of a chained segment or elsewhere. */
static int read_prefix(int fd, bool chained, struct prefix *pr, const char **error_r)
{
    uint8_t fixed[FIXED_LEN];
    ssize_t n = sm_read_full(fd, fixed, FIXED_LEN);

    memset(pr, 0, sizeof *pr);
    if (n < 0) {
        *error_r = errno_msg("cannot read message");
        return -1;
    }
    if ((size_t)n < MAGIC_LEN || !version_in_place(magic_version(fixed), chained)) {
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
    struct chain_ref ref;
    int fd = open_message(dir, id, &ref, error_r);

    memset(env, 0, sizeof *env);
    if (fd < 0)
        return -1;
    int ret = read_prefix(fd, ref.chained, &pr, error_r);
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

/* The format version of the spool bytes open at in (1, 2 or 3), or 0. */
static int file_version(int in)
{
    uint8_t m[MAGIC_LEN];
    return pread(in, m, MAGIC_LEN, 0) == MAGIC_LEN ? magic_version(m) : 0;
}

/* Decrypt the spool bytes open at in (of version v) into out: a chained
 * record's key from its segment's seed (one X25519, then the chain), any
 * other's from its own sealed key. */
static int read_sealed(int in, int v, const struct chain_ref *ref, const uint8_t pk[SPOOL_PK_BYTES],
                       const uint8_t sk[SPOOL_SK_BYTES], int out, uint8_t **meta_r,
                       size_t *meta_len_r, uint64_t *size_r, const char **error_r)
{
    if (!version_in_place(v, ref->chained)) {
        *error_r = "not a spool file (bad magic or version)";
        return -1;
    }
    if (v != 3)
        return sealfile_read(in, v == 1 ? MAGIC_V1 : MAGIC, SPOOL_ENV_MAX, pk, sk, out, meta_r,
                             meta_len_r, size_r, error_r);
    uint8_t seed[CHAIN_SEED_BYTES], key[CHAIN_KEY_BYTES];
    if (seal_key_open(seed, ref->sealed_seed, pk, sk) < 0) {
        *error_r = "cannot open the segment's key seed (wrong key or damaged segment)";
        return -1;
    }
    spool_chain_key(seed, ref->ticket, key);
    seal_wipe(seed, sizeof seed);
    struct sealfile_key k = {.file_key = key};
    int ret = sealfile_read_k(in, MAGIC_V3, SPOOL_ENV_MAX, &k, out, meta_r, meta_len_r, size_r,
                              error_r);
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
    struct chain_ref ref;
    int in = open_message(dir, id, &ref, error_r);
    if (in < 0)
        return -1;
    /* the envelope comes from the same bytes the hash H binds to the body */
    int version = file_version(in);
    bool v1 = version == 1;
    off_t start = lseek(fd, 0, SEEK_CUR);
    int ret = start < 0 ? -1
                        : read_sealed(in, version, &ref, pk, sk, fd, &meta, &meta_len, &size,
                                      error_r);
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

/* Mark the records tickets[0..n) of segment segnum done (one append and
 * one fdatasync of its .done file), then remove the segment if that
 * finished it.  A record not there is an error unless missing_ok. */
static int seg_remove(int dfd, uint32_t segnum, const uint32_t *tickets, size_t n,
                      bool missing_ok, const char **error_r)
{
    struct seg_header h;
    uint64_t off;
    const char *error;
    int ret = 0;

    int fd = seg_open(dfd, segnum, &h, &error);
    if (fd < 0) {
        if (missing_ok && strcmp(error, "no such message in the spool") == 0)
            return 0;
        *error_r = error;
        return -1;
    }
    uint32_t *live = sm_calloc(n, sizeof *live);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (seg_locate(dfd, fd, &h, tickets[i], &off, &error) == 0)
            live[k++] = tickets[i];
        else if (!missing_ok || strcmp(error, "no such message in the spool") != 0) {
            *error_r = error;
            ret = -1;
        }
    }
    close(fd);
    if (k > 0 && done_append(dfd, &h, live, k, error_r) < 0)
        ret = -1;
    free(live);
    if (k > 0)
        seg_try_delete(dfd, segnum);
    return ret;
}

struct seg_ref {
    uint32_t segnum, ticket;
};

static int seg_ref_cmp(const void *a, const void *b)
{
    const struct seg_ref *x = a, *y = b;
    return x->segnum != y->segnum ? (x->segnum < y->segnum ? -1 : 1)
                                  : (x->ticket > y->ticket) - (x->ticket < y->ticket);
}

/* Remove ids: files are unlinked, then ONE fsync of the directory under
 * its flock (syncs of the spool directory take turns, see SYNC_THREADS;
 * the unlinks are plain changes and need not wait for the lock); records
 * of segments are marked done, one .done append and sync per segment.
 * A missing id is an error unless missing_ok.  Now and then (at most once
 * a second per process) finished segments are swept. */
static int remove_ids(const char *dir, const char *const ids[], size_t n, bool missing_ok,
                      const char **error_r)
{
    static pthread_mutex_t sweep_mu = PTHREAD_MUTEX_INITIALIZER;
    static time_t last_sweep;

    for (size_t i = 0; i < n; i++)
        if (!spool_id_valid(ids[i])) {
            *error_r = "invalid queue id (expected 16 lowercase hex digits)";
            return -1;
        }
    int dfd = open_incoming(dir, false, error_r);
    if (dfd < 0)
        return -1;
    int ret = 0;
    size_t removed = 0, n_refs = 0;
    struct seg_ref *refs = sm_calloc(n ? n : 1, sizeof *refs);
    for (size_t i = 0; i < n; i++) {
        if (unlinkat(dfd, ids[i], 0) == 0) /* a file (a segment id: a spilled message) */
            removed++;
        else if (errno == ENOENT && seg_id_parse(ids[i], &refs[n_refs].segnum, &refs[n_refs].ticket))
            n_refs++;
        else if (errno != ENOENT || !missing_ok) {
            *error_r = errno == ENOENT ? "no such message in the spool"
                                       : errno_msg("cannot remove message");
            ret = -1;
        }
    }
    if (removed > 0 && dir_sync(dfd) < 0) {
        *error_r = errno_msg("cannot sync spool directory");
        ret = -1;
    }
    qsort(refs, n_refs, sizeof *refs, seg_ref_cmp);
    uint32_t *tickets = sm_calloc(n_refs ? n_refs : 1, sizeof *tickets);
    for (size_t i = 0; i < n_refs;) {
        size_t k = 0, j = i;
        for (; j < n_refs && refs[j].segnum == refs[i].segnum; j++)
            tickets[k++] = refs[j].ticket;
        if (seg_remove(dfd, refs[i].segnum, tickets, k, missing_ok, error_r) < 0)
            ret = -1;
        i = j;
    }
    free(tickets);
    free(refs);
    pthread_mutex_lock(&sweep_mu);
    bool sweep = time(NULL) != last_sweep;
    last_sweep = time(NULL);
    pthread_mutex_unlock(&sweep_mu);
    if (sweep)
        seg_sweep(dfd);
    close(dfd);
    return ret;
}

void spool_sweep(const char *dir)
{
    const char *error;
    int dfd = open_incoming(dir, false, &error);
    if (dfd >= 0) {
        seg_sweep(dfd);
        close(dfd);
    }
}

int spool_remove(const char *dir, const char *id, const char **error_r)
{
    return remove_ids(dir, &id, 1, false, error_r);
}

int spool_remove_many(const char *dir, const char *const ids[], size_t n, const char **error_r)
{
    return remove_ids(dir, ids, n, true, error_r);
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
    int dfd = open_incoming(dir, false, &error);
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

static void list_add(struct list_ctx *c, const char *id)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->ids = sm_realloc(c->ids, c->cap * sizeof *c->ids);
    }
    c->ids[c->n++] = sm_strdup(id);
}

/* Add the records of segment segnum that are complete and not done. */
static void list_segment(int dfd, uint32_t segnum, struct list_ctx *c)
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
                list_add(c, id);
            }
    }
    pthread_mutex_unlock(&index_mu);
    close(fd);
}

int spool_list(const char *dir, void (*fn)(void *arg, const char *id), void *arg,
               const char **error_r)
{
    int dfd = open_incoming(dir, false, error_r);
    int fd = dfd >= 0 ? dup(dfd) : -1;
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct list_ctx c = {0};
    uint32_t *segs = NULL;
    size_t n_segs = 0, cap_segs = 0;
    struct dirent *de;

    if (d == NULL) {
        if (dfd >= 0) {
            *error_r = errno_msg("cannot list spool directory");
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
        list_segment(dfd, segs[i], &c);
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
