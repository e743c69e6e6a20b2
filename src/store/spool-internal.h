/* spool-internal.h — what the spool's modules share (not for users of
 * spool.h): the format constants, the writer-side state and the helpers
 * the modules call across files.  The design and the file format are
 * described at the top of spool.c.
 *
 *   spool.c         open and close, the threads, completions, shared helpers
 *   spoolformat.c   the envelope codec and the format versions
 *   spoolwriter.c   writers (loop thread), segments they append to, the prep thread
 *   spoolcommit.c   group commit (the sync threads)
 *   spoolindex.c    segments as readers see them: index, record lookup, deletion
 *   spoolreader.c   reading messages, listing the queue
 *   spoolremove.c   removal after delivery */
#ifndef SM_SPOOL_INTERNAL_H
#define SM_SPOOL_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "crypto/seal.h"
#include "store/spool.h"
#include "store/spoolchain.h"
#include "store/spoolseg.h"

struct event;
struct event_base;

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
 * smtpd processes and spool_remove() take too, as does every other sync
 * that writes the directory: the first sync of a file just created in or
 * renamed into it is one (ext4_sync_parent), so a new segment's syncs are
 * made under the flock too (seg_publish), after which its record syncs
 * never touch the directory.  The file syncs inside a batch may overlap:
 * only the final directory fsync vouches for names.
 * Measured under the accept benchmark: 1 group x 4 = 2 x 4; 1 x 1 is
 * 8-21% slower. */
#ifndef SYNC_THREADS   /* -D for measurements */
#define SYNC_THREADS 4 /* files committed at once per group, its own thread included */
#endif
#ifndef SYNC_GROUPS
#define SYNC_GROUPS 1 /* batches in flight at once: must stay 1 (see above) */
#endif
#define LEFTOVER_MIN_AGE 10 /* seconds: younger .tmp files may not be locked yet */
#define SEQ_BITS 22
#define SPARES_TARGET 64 /* sealed file keys the prep thread keeps ready */
/* Segments (SEGMENTS in spool.c).  A message stays in memory while its
 * sealed bytes fit INLINE_MAX and the process holds less than
 * INLINE_BUDGET of such bytes; beyond either it spills to its own file. */
#ifndef INLINE_MAX
#define INLINE_MAX (256u * 1024)
#endif
#define INLINE_BUDGET (64u * 1024 * 1024)
#define SEG_ROTATE (64u * 1024 * 1024) /* bytes of records before a new segment */
#define SEG_ID_BIT (UINT64_C(1) << 63) /* queue ids of segment records */
#define SEG_CACHE_MAX 64               /* segments whose index a process keeps (4 GiB of spool) */

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
    int fd;                    /* holds the segment's flock */
    struct spool_chain *chain; /* loop thread (the prep thread makes it): record keys
                                * and tickets, handed out together */
    uint64_t reserved;         /* loop thread: bytes of records bound to it, for rotation */
    unsigned refs;             /* loop thread: writers bound to it, +1 while current */
    uint64_t end;              /* sync thread: where the next record goes */
    uint32_t records;          /* sync thread: records written */
    bool failed;               /* under sp->mu: a write or sync failed, no more appends */
};

struct spool {
    char *dir;
    uint8_t pk[SPOOL_PK_BYTES];
    struct event_base *base;
    unsigned sync_batch;
    int incoming_fd;
    /* loop thread only */
    unsigned live;    /* writers handed out and not yet freed */
    uint8_t *scratch; /* one encrypted chunk with its length */
    struct event *done_ev;
    int done_fd; /* eventfd: sync thread -> loop */
    /* shared with the sync and prep threads, under mu */
    pthread_mutex_t mu;
    pthread_cond_t work;
    struct spool_writer *queue, **queue_tail;
    struct spool_writer *done, **done_tail;
    struct spool_writer *spares, **spares_tail; /* ready file keys, oldest first */
    unsigned n_spares;
    struct segment *cur;      /* loop thread: the segment new messages go to */
    struct segment *next_seg; /* under mu: made ahead by the prep thread */
    uint64_t inline_bytes;    /* loop thread: memory held by inline writers */
    size_t inline_max;        /* spool_set_inline_limits() */
    size_t inline_budget;     /* spool_set_inline_limits() */
    bool seg_wanted;          /* under mu: segments are in use */
    pthread_cond_t prep;      /* the prep thread waits here for spares to run low */
    uint64_t last_ms, seq;    /* queue id generator */
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
    int fd;              /* a file writer's file, else -1 */
    struct segment *seg; /* an inline writer's segment, else NULL */
    uint32_t ticket;
    uint8_t
        *rec; /* inline: the record being built (REC_HDR_LEN free bytes, then the spool bytes) */
    size_t rec_len, rec_cap;
    struct seal_stream *st;
    bool chained;              /* inline, keyed by its segment's chain: the plaintext
                                * waits in plain until commit (or a spill) */
    size_t plain_counted;      /* bytes of plain counted in sp->inline_bytes */
    uint8_t keys[TRAILER_LEN]; /* sealed file key (zeros when chained), stream header */
    uint8_t ad[AD_LEN];        /* H || size */
    uint8_t *plain;            /* pending plaintext, grows up to CHUNK_PLAIN */
    size_t fill, cap;
    size_t dirty;              /* plain[0, dirty) may hold plaintext: what a wipe must cover */
    uint64_t size;
    uint8_t *note; /* the delivery note, sealed at commit */
    size_t note_len;
    bool failed; /* an I/O error: the commit will fail */
    bool ok;     /* commit result */
    spool_commit_cb *cb;
    void *arg;
};

/* --- spool.c: shared helpers ------------------------------------------------- */

/* "what: strerror(errno)" in a thread-local buffer. */
const char *spool_errno_msg(const char *what);
/* Open dir/incoming (creating dir and it first when create). */
int spool_open_incoming(const char *dir, bool create, const char **error_r);
/* Rename from to to within dfd without ever replacing an existing file. */
int spool_rename_noreplace(int dfd, const char *from, const char *to);
/* Take and release the flock of the spool directory open at dfd (an open
 * file description of its own).  Every sync that may write the directory
 * holds it, so they take turns (see SYNC_THREADS).  On ext4 without a
 * journal that includes the first sync of a file just created in or
 * renamed into the directory: it syncs the directory too
 * (ext4_sync_parent). */
/* 0, or -1 with errno (ENOLCK: the kernel has no room for the lock):
 * then the caller must not make anything durable through the directory. */
int spool_dir_lock(int dfd);
void spool_dir_unlock(int dfd);
/* fsync the directory open at dfd under its flock. */
int spool_dir_sync(int dfd);
/* The queue id of record ticket of segment h. */
void seg_id(const struct seg_header *h, uint32_t ticket, char out[SPOOL_ID_LEN + 1]);
/* Split a valid queue id of a segment record; false for a file id. */
bool seg_id_parse(const char *id, uint32_t *segnum_r, uint32_t *ticket_r);
/* Mark tickets of segment h done: append to its .done file and sync it. */
int seg_done_append(int dfd, const struct seg_header *h, const uint32_t *tickets, size_t n,
                    const char **error_r);

/* --- spoolformat.c --------------------------------------------------------------- */

/* Append the encoded envelope to b; -1 with *error_r if it breaks a bound. */
int spool_envelope_encode(const struct spool_envelope *env, struct sm_buf *b, const char **error_r);
/* Decode exactly len bytes of envelope into env (the caller frees it,
 * also on error). */
int spool_envelope_decode(const uint8_t *data, size_t len, struct spool_envelope *env);
/* The format version a magic names (1, 2 or 3), or 0. */
int spool_magic_version(const uint8_t m[MAGIC_LEN]);
/* Whether format version v may be read in a chained record (or elsewhere). */
bool spool_version_in_place(int v, bool chained);

/* --- spoolwriter.c ------------------------------------------------------------------ */

/* Drop a writer's reference to segment s (closing it after the last). */
void seg_unref(struct spool *sp, struct segment *s);
/* Free a writer or spare; its file must already be renamed or removed. */
void spool_writer_free(struct spool_writer **wp);
/* Remove the temporary file of a writer that will not be committed, free it. */
void spool_writer_discard(struct spool_writer **wp);
/* The prep thread (arg: the spool). */
void *spool_prep_main(void *arg);

/* --- spoolcommit.c ------------------------------------------------------------------- */

/* A sync group's thread and its helpers (arg: the group). */
void *spool_sync_main(void *arg);
void *spool_fanout_helper(void *arg);

/* --- spoolindex.c -------------------------------------------------------------------- */

/* Where a message's file key comes from, when not from its own sealed
 * key: the chain of the segment it is a record of. */
struct chain_ref {
    bool chained;
    uint32_t ticket;
    struct seg_header seg; /* its segment's header: number, nonce, sealed seed */
};

/* Open segment segnum of the directory dfd for reading and read its
 * header.  Returns the fd, or -1 with *error_r. */
int seg_open(int dfd, uint32_t segnum, struct seg_header *h, const char **error_r);
/* Where record ticket of the segment open at fd lies: 0 with *off_r, or
 * -1 with *error_r (absent, or removed). */
int seg_locate(int dfd, int fd, const struct seg_header *h, uint32_t ticket, uint64_t *off_r,
               const char **error_r);
/* A record as a file (a memfd of its payload); *ref says how its key is found. */
int seg_open_record(const char *dir, uint32_t segnum, uint32_t ticket, struct chain_ref *ref,
                    const char **error_r);
/* Call fn with the queue id of every complete record of segment segnum
 * that is not done. */
void seg_list_live(int dfd, uint32_t segnum, void (*fn)(void *arg, const char *id), void *arg);
/* The file key of the chained record ref names, for the key pair pk, sk:
 * -1 with *error_r if the seed does not open with them. */
int seg_record_key(const struct chain_ref *ref, const uint8_t pk[SPOOL_PK_BYTES],
                   const uint8_t sk[SPOOL_SK_BYTES], uint8_t key[CHAIN_KEY_BYTES],
                   const char **error_r);
/* Remove segment segnum if its writer is gone and all its records are done. */
void seg_try_delete(int dfd, uint32_t segnum);
/* Remove finished segments and orphan .done files of the directory dfd. */
void seg_sweep(int dfd);

#endif
