/* spool.c — the encrypted, durable spool of accepted messages (see spool.h):
 * the design; opening and closing a spool, its threads, and helpers the
 * other spool modules share (the module map is in spool-internal.h).
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
 *     renamed (never replacing), fdatasynced again and the directory
 *     fsynced, all under the directory's flock, before it takes a record
 *     (the prep thread makes the next one ahead of need): its name and
 *     inode are durable before any record in it is acknowledged, a
 *     segment under its final name is locked by its writer from the first
 *     instant, and its record syncs never write the directory (the first
 *     sync after a create or rename does, see SYNC_THREADS);
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
 * through a memfd.  For a chained segment it also keeps the opened seed
 * and its place on the chain (seg_record_key), so reading in order costs
 * a hash or two per record instead of an X25519 and a walk from the seed.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/mem.h"
#include "store/spool-internal.h"

static _Thread_local char errbuf[256];

/* "what: strerror(errno)" in a thread-local buffer. */
const char *spool_errno_msg(const char *what)
{
    snprintf(errbuf, sizeof errbuf, "%s: %m", what);
    return errbuf;
}

/* --- small helpers (any thread) ---------------------------------------------- */

bool spool_id_valid(const char *id)
{
    size_t i;
    for (i = 0; id[i] != '\0'; i++)
        if (i >= SPOOL_ID_LEN ||
            !((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    return i == SPOOL_ID_LEN;
}

/* Rename from to to within dfd without ever replacing an existing file. */
int spool_rename_noreplace(int dfd, const char *from, const char *to)
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

int spool_dir_lock(int dfd)
{
    int r;
    while ((r = flock(dfd, LOCK_EX)) < 0 && errno == EINTR)
        ;
    return r;
}

void spool_dir_unlock(int dfd)
{
    int saved = errno;
    flock(dfd, LOCK_UN);
    errno = saved;
}

/* fsync the directory open at dfd under its flock: syncs of the spool
 * directory take turns (see SYNC_THREADS).  dfd must be an open file
 * description of its own: flock does not exclude holders of the same one. */
int spool_dir_sync(int dfd)
{
    if (spool_dir_lock(dfd) < 0)
        return -1;
    int ret = fsync(dfd);
    spool_dir_unlock(dfd);
    return ret;
}

/* The queue id of record ticket of segment h. */
void seg_id(const struct seg_header *h, uint32_t ticket, char out[SPOOL_ID_LEN + 1])
{
    snprintf(out, SPOOL_ID_LEN + 1, "%016" PRIx64, SEG_ID_BIT | (uint64_t)h->segnum << 32 | ticket);
}

/* Split a valid queue id of a segment record; false for a file id. */
bool seg_id_parse(const char *id, uint32_t *segnum_r, uint32_t *ticket_r)
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
int seg_done_append(int dfd, const struct seg_header *h, const uint32_t *tickets, size_t n,
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
        bool synced = false;
        if (own >= 0 && fd >= 0) {
            /* its flock first, so no other remover syncs it before we do:
             * a new file's first sync syncs the directory too, and runs
             * under the directory's lock */
            while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
                ;
            synced = spool_dir_lock(own) == 0 && fsync(fd) == 0 && fsync(own) == 0;
            spool_dir_unlock(own);
        }
        if (!synced)
            *error_r = spool_errno_msg("cannot create removal list of spool segment");
        if (own >= 0)
            close(own);
        if (!synced)
            goto out;
    }
    if (fd < 0) {
        *error_r = spool_errno_msg("cannot open removal list of spool segment");
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
        *error_r = spool_errno_msg("cannot write removal list of spool segment");
    else
        ret = 0;
    free(buf);
out:
    if (fd >= 0)
        close(fd); /* releases the lock */
    return ret;
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
        spool_writer_free(&w);
    }
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    uint64_t count;
    (void)what;
    if (read(fd, &count, sizeof count) < 0 && errno != EAGAIN)
        log_warn("spool eventfd-read-failed error=\"%s\"", spool_errno_msg("read"));
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
        log_warn("spool cleanup-failed error=\"%s\"", spool_errno_msg("opendir"));
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
int spool_open_incoming(const char *dir, bool create, const char **error_r)
{
    char path[4096];

    if ((size_t)snprintf(path, sizeof path, "%s/incoming", dir) >= sizeof path) {
        *error_r = "spool path too long";
        return -1;
    }
    if (create && (mkdir_ok(dir) < 0 || mkdir_ok(path) < 0)) {
        *error_r = spool_errno_msg("cannot create spool directory");
        return -1;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        *error_r = spool_errno_msg("cannot open spool directory");
    return fd;
}

static int start_threads(struct spool *sp, const char **error_r)
{
    sp->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sp->done_fd < 0) {
        *error_r = spool_errno_msg("eventfd");
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
            if (pthread_create(&g->helpers[i], NULL, spool_fanout_helper, g) != 0)
                sm_panic("cannot start spool sync helper thread");
        if (pthread_create(&g->thread, NULL, spool_sync_main, g) != 0)
            sm_panic("cannot start spool sync thread");
    }
    if (pthread_create(&sp->prep_thread, NULL, spool_prep_main, sp) != 0)
        sm_panic("cannot start spool prep thread");
    sp->threads_started = true;
    return 0;
}

struct spool *spool_open(const char *dir, const uint8_t pk[SPOOL_PK_BYTES], struct event_base *base,
                         unsigned sync_batch, const char **error_r)
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
    sp->inline_budget = INLINE_BUDGET;
    sp->queue_tail = &sp->queue;
    sp->done_tail = &sp->done;
    sp->spares_tail = &sp->spares;
    pthread_mutex_init(&sp->mu, NULL);
    pthread_cond_init(&sp->work, NULL);
    pthread_cond_init(&sp->prep, NULL);
    seal_random(&sp->seq, sizeof sp->seq);
    sp->incoming_fd = spool_open_incoming(dir, base != NULL, error_r);
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
        spool_writer_discard(&w);
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
