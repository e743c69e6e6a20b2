/* deliver.h — local delivery of spooled messages into mailbox drops.
 *
 * queued calls deliver_spool_batch() for its spool entries: each message is
 * opened with the spool secret key (authenticated, envelope included),
 * each recipient is resolved through the directory (mailbox, alias,
 * +tag, catch-all, postmaster), and the message is sealed once into each
 * distinct target mailbox's drop/ under the queue id.  The spool entry is
 * removed only when every target has its durable drop file; a failure
 * leaves it for a retry, and the retry cannot duplicate a copy already
 * made (drop.h: the name is the queue id).  Under load queued hands
 * several entries to one call, so that one sync of each drop/ directory,
 * one usage update per mailbox and one sync of the spool directory serve
 * all of them.
 *
 * Blocking (decryption, fsync, SQLite): run it on a worker thread with a
 * directory handle of its own. */
#ifndef SM_DELIVER_H
#define SM_DELIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct directory;
struct spool_envelope;

struct deliver_ctx {
    const char *data_dir;
    const char *spool_dir;
    struct directory *dir;
    const uint8_t *spool_pk; /* SPOOL_PK_BYTES */
    const uint8_t *spool_sk; /* SPOOL_SK_BYTES */
    /* Called for each mailbox that received a new drop file. */
    void (*changed)(void *arg, const char *mailbox);
    void *arg;
    /* Outbound routing.  A recipient that resolves to no mailbox and whose
     * domain is not ours (not hosted, not in local_domains) is remote:
     * all of an entry's remote recipients go to outbound() in one call,
     * with the message (prefix, then body from offset 0), which must make
     * them durable (store/outq.h) before it returns 0, or return -1 with
     * *error_r (the entry then stays for a retry; outbound() must accept
     * being called again for the same id).  NULL: remote recipients are
     * "gone" like unknown local ones. */
    int (*outbound)(void *arg, const char *id, const struct spool_envelope *env,
                    const char *const *rcpts, size_t n, const char *prefix, size_t prefix_len,
                    int body, const char **error_r);
    const char *local_domains; /* more domains of ours (disposable), separated by spaces
                                  or commas; NULL: none */
    /* Forwarding (store/forwards.h).  The forwards of an entry's
     * recipients go to forward(), one call per alias domain (the copy
     * carries that domain's SRS sender and ARC set), with the message
     * (its delivery note in env->prefix, the body from offset 0); like
     * outbound() it makes them durable before it returns 0, or returns
     * -1 with *error_r and is called again on the retry.  Mail filed as
     * junk is not forwarded.  NULL: forwards are "gone". */
    int (*forward)(void *arg, const char *id, const struct spool_envelope *env,
                   const char *domain, const char *const *targets, size_t n, int body,
                   const char **error_r);
    /* Bounces of forwarded mail: a recipient that is an SRS address we
     * made is replaced by the address it encodes (written to out, at most
     * DELIVER_ADDRESS_MAX bytes with the NUL), and routed from there.
     * Returns true when it did so.  NULL: no SRS. */
    bool (*srs_reverse)(void *arg, const char *rcpt, char *out);
};

#define DELIVER_ADDRESS_MAX 256

struct deliver_stats {
    unsigned delivered;  /* new drop files */
    unsigned duplicates; /* copies found from an earlier attempt */
    unsigned gone;       /* recipients that no longer resolve (logged) */
    unsigned outbound;   /* recipients handed to the outbound queue */
    unsigned forwarded;  /* forward targets handed to the outbound queue */
};

/* Deliver spool entry id (a batch of one).  Returns 0 when it is fully
 * handled and removed from the spool, -1 with *error_r when it must be
 * retried later. */
int deliver_spool_entry(const struct deliver_ctx *c, const char *id, struct deliver_stats *st,
                        const char **error_r);

#define DELIVER_BATCH_MAX 64  /* spool entries one deliver_spool_batch() takes */
#define DELIVER_ERROR_MAX 256

/* What became of one entry of a batch. */
struct deliver_result {
    int result;                     /* 0: handled and removed; -1: retry later */
    char error[DELIVER_ERROR_MAX];  /* with -1 */
    struct deliver_stats stats;
};

/* Deliver the n (1..DELIVER_BATCH_MAX) spool entries ids together: every
 * message is sealed into the drop/ of each of its mailboxes (drop.h,
 * drop_batch_*), each drop/ is synced ONCE for all of them, each mailbox's
 * usage is counted once, c->changed is called once per mailbox that got
 * new files, and the entries whose every target is durable are removed
 * from the spool with one directory sync.  An entry is removed only after
 * its drop files and their directories are durable; one that failed stays
 * for a retry (which finds the copies already made and makes no second
 * one).  res[i] tells what became of ids[i]. */
void deliver_spool_batch(const struct deliver_ctx *c, const char *const ids[], size_t n,
                         struct deliver_result res[]);

#endif
