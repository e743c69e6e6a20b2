/* deliver.h — local delivery of spooled messages into mailbox drops.
 *
 * queued calls deliver_spool_entry() for each spool entry: the message is
 * opened with the spool secret key (authenticated, envelope included),
 * each recipient is resolved through the directory (mailbox, alias,
 * +tag, catch-all, postmaster), and the message is sealed once into each
 * distinct target mailbox's drop/ under the queue id.  The spool entry is
 * removed only when every target has its durable drop file; a failure
 * leaves it for a retry, and the retry cannot duplicate a copy already
 * made (drop.h: the name is the queue id).
 *
 * Blocking (decryption, fsync, SQLite): run it on a worker thread with a
 * directory handle of its own. */
#ifndef SM_DELIVER_H
#define SM_DELIVER_H

#include <stdint.h>

struct directory;

struct deliver_ctx {
    const char *data_dir;
    const char *spool_dir;
    struct directory *dir;
    const uint8_t *spool_pk; /* SPOOL_PK_BYTES */
    const uint8_t *spool_sk; /* SPOOL_SK_BYTES */
    /* Called for each mailbox that received a new drop file. */
    void (*changed)(void *arg, const char *mailbox);
    void *arg;
};

struct deliver_stats {
    unsigned delivered;  /* new drop files */
    unsigned duplicates; /* copies found from an earlier attempt */
    unsigned gone;       /* recipients that no longer resolve (logged) */
};

/* Deliver spool entry id.  Returns 0 when it is fully handled and removed
 * from the spool, -1 with *error_r when it must be retried later. */
int deliver_spool_entry(const struct deliver_ctx *c, const char *id, struct deliver_stats *st,
                        const char **error_r);

#endif
