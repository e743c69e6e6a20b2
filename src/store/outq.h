/* outq.h — the durable outbound queue: messages for other domains and
 * their per-recipient delivery state.
 *
 * What: queued routes recipients outside our domains here (deliver.h);
 * the outbound engine (daemon/queued-outbound.c) reads entries back,
 * tries them, and records what became of each recipient.  The CLI lists
 * them (`sealmail queue list`) and asks for a retry or a removal.
 *
 * Files, in data_dir/queue/ (DESIGN.md §3):
 *   ID.msg   the message, sealed to the spool public key (sealfile.h,
 *            magic "SEALOQ\0\1"); its clear metadata is the envelope
 *            (outq_envelope_encode), authenticated with the message, so
 *            the recipients to send to are those the router wrote.
 *   ID.st    the state, a small text file (format in outq.c): the
 *            envelope again (so listing needs no key), attempts, times,
 *            and per recipient pending/delivered/failed/bounced with the
 *            last reply.
 * ID is the spool entry's queue id (16 hex digits): routing the same
 * spool entry twice (a crash before it left the spool) finds the entry
 * and makes no second one.
 *
 * Durability: outq_create() writes and fdatasyncs both files under
 * temporary names, renames ID.msg then ID.st into place and fsyncs the
 * directory: the entry exists exactly when ID.st does.  outq_save()
 * replaces ID.st the same way (write, fdatasync, rename, fsync of the
 * directory), so a crash leaves the old state or the new one, never a
 * mix.  The caller records a recipient as delivered BEFORE it starts
 * another attempt, so a restart never sends again what a server
 * accepted (the window is the time between the server's 250 and the
 * rename: milliseconds).  outq_remove() unlinks ID.st first (the entry is
 * gone), then ID.msg; outq_recover() clears what a crash left between
 * those steps and stray temporary files.
 *
 * Concurrency: queued and the CLI both change entries.  outq_lock()
 * takes an exclusive flock on ID.msg (its inode never changes): queued
 * holds it during an attempt, the CLI for retry and remove.  Syncs of
 * the directory take turns under a flock of the directory (ext4 without
 * a journal can return early from concurrent directory fsyncs, drop.c),
 * and so do the first syncs of new files, which sync the directory too:
 * a writer holds the flock from its new files' first sync to the
 * directory's fsync.
 *
 * Limits: OUTQ_RCPTS_MAX recipients, addresses of at most OUTQ_ADDR_MAX
 * bytes without spaces or controls, reply texts of OUTQ_REPLY_MAX bytes
 * (printable ASCII: anything else is replaced), state files of at most
 * OUTQ_STATE_MAX bytes.  The state parser is hostile-input safe
 * (tests/fuzz/fuzz-outq-state.c).
 *
 * Blocking: every function does file I/O; call them off the loop. */
#ifndef SM_OUTQ_H
#define SM_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OUTQ_ID_LEN 16
#define OUTQ_RCPTS_MAX 1000
#define OUTQ_ADDR_MAX 256
#define OUTQ_REPLY_MAX 512
#define OUTQ_STATE_MAX (1024 * 1024)
#define OUTQ_PK_BYTES 32
#define OUTQ_SK_BYTES 32

enum outq_rcpt_state {
    OUTQ_PENDING = 0,   /* to be tried (again) */
    OUTQ_DELIVERED = 1, /* a server took it: never send again */
    OUTQ_FAILED = 2,    /* permanent failure or expiry: the DSN is still to be sent */
    OUTQ_BOUNCED = 3,   /* failed, and the DSN went out (or none was due) */
};

#define OUTQ_F_SMTPUTF8 1u /* the message needs SMTPUTF8 */
#define OUTQ_F_8BIT 2u     /* BODY=8BITMIME */
#define OUTQ_F_NOBOUNCE 4u /* a DSN or other bounce: never bounced itself */

struct outq_rcpt {
    char *addr;                 /* forward path without <> */
    enum outq_rcpt_state state;
    int64_t when;               /* time of the last change, 0 if none */
    char *reply;                /* last reply or error ("" if none) */
};

/* An entry: the envelope (fixed at creation) and the state. */
struct outq_entry {
    char id[OUTQ_ID_LEN + 1];
    char *mail_from;            /* "" for the null sender */
    uint32_t flags;             /* OUTQ_F_* */
    int64_t created;
    struct outq_rcpt *rcpts;
    size_t n_rcpts;
    /* state */
    unsigned attempts;
    int64_t next_attempt;       /* unix time; 0: at once */
    int64_t last_attempt;       /* 0: never tried */
    bool delay_notified;        /* the delay notice went out */
    bool failed_notified;       /* the DSN for the FAILED recipients went out */
};

/* Test hooks for fault injection (NULL: the system calls).  A failing
 * hook makes the operation fail as a real failure would. */
struct outq_io {
    int (*fsync)(int fd);
    int (*rename)(const char *from, const char *to);
};
extern const struct outq_io *outq_test_io;

/* True when id is OUTQ_ID_LEN lowercase hex digits (no path can hide in it). */
bool outq_id_valid(const char *id);

/* Create dir if needed (0700) and clear what a crash left: temporary
 * files and an ID.msg without its ID.st.  Returns 0, or -1 with *error_r. */
int outq_recover(const char *dir, const char **error_r);

/* Create entry e (e->id, envelope, recipients all PENDING unless set
 * otherwise; state fields as given) with the message: prefix (may be
 * empty) then body_fd from offset 0, sealed to pk.  Returns 1 created, 0
 * when e->id already exists (nothing changed), -1 with *error_r (invalid
 * envelope, I/O). */
int outq_create(const char *dir, const struct outq_entry *e, const uint8_t pk[OUTQ_PK_BYTES],
                const void *prefix, size_t prefix_len, int body_fd, const char **error_r);

/* Read the state of id (no key needed).  Returns 0, or -1 with *error_r
 * ("no such entry" when it does not exist). */
int outq_load(const char *dir, const char *id, struct outq_entry *e, const char **error_r);

/* Replace the state of e->id durably with e.  The envelope must be the
 * one the entry was created with.  Returns 0, or -1 with *error_r. */
int outq_save(const char *dir, const struct outq_entry *e, const char **error_r);

/* Decrypt the message of e->id into out_fd and check that the sealed
 * envelope is e's (the state file cannot smuggle in recipients).
 * Returns 0, or -1 with *error_r. */
int outq_read_message(const char *dir, const struct outq_entry *e,
                      const uint8_t pk[OUTQ_PK_BYTES], const uint8_t sk[OUTQ_SK_BYTES],
                      int out_fd, const char **error_r);

/* Remove entry id durably.  Returns 0 (also when it was not there), or -1. */
int outq_remove(const char *dir, const char *id, const char **error_r);

/* Call fn for each entry id (ID.st present), in id order.  Returns the
 * count, or -1 with *error_r. */
int outq_list(const char *dir, void (*fn)(void *arg, const char *id), void *arg,
              const char **error_r);

/* An exclusive lock on entry id: the fd to pass to outq_unlock(), or -1
 * with *error_r ("busy" when wait is false and someone holds it, "no
 * such entry"). */
int outq_lock(const char *dir, const char *id, bool wait, const char **error_r);
void outq_unlock(int fd);

/* The state file's text for e (malloc'd, *len_r bytes), and its parser
 * (bounded: at most OUTQ_STATE_MAX bytes).  outq_parse returns 0 and
 * fills *e (free with outq_entry_free), or -1 with *error_r. */
char *outq_format(const struct outq_entry *e, size_t *len_r);
int outq_parse(const char *text, size_t len, struct outq_entry *e, const char **error_r);

/* Counts of recipients in each state. */
size_t outq_count(const struct outq_entry *e, enum outq_rcpt_state s);
/* Set recipient i's state, time and reply (copied, made printable and cut
 * to OUTQ_REPLY_MAX). */
void outq_set_rcpt(struct outq_entry *e, size_t i, enum outq_rcpt_state s, int64_t when,
                   const char *reply);
/* A deep copy of the envelope and state. */
void outq_entry_copy(struct outq_entry *dst, const struct outq_entry *src);
void outq_entry_free(struct outq_entry *e);
const char *outq_state_name(enum outq_rcpt_state s);

/* The retry schedule: delays in seconds between attempts, the last one
 * repeating.  outq_schedule_parse reads "5m 15m 30m 1h 2h 4h" (at most
 * OUTQ_SCHEDULE_MAX items, each 1 s .. 7 d).  outq_next_delay gives the
 * delay after attempt number `attempts` (1 = the first attempt). */
#define OUTQ_SCHEDULE_MAX 32
struct outq_schedule {
    unsigned delay[OUTQ_SCHEDULE_MAX];
    size_t n;
};
int outq_schedule_parse(const char *text, struct outq_schedule *s, const char **error_r);
unsigned outq_next_delay(const struct outq_schedule *s, unsigned attempts);

#endif
