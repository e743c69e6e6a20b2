/* unlock.h — the mailboxes one process holds unlocked for logged-in owners.
 *
 * IMAP and POP3 sessions of the same owner in one imapd process share a
 * single open store (DESIGN.md §4): the first login opens it with the
 * keys the password unwraps and imports the drop; later logins attach to
 * it; the keys are wiped when the last session has let go and `linger`
 * seconds have passed without a new one.
 *
 * Reconnecting clients (Thunderbird opens several connections and
 * reconnects often) must not pay a full Argon2id run each time, so an open
 * store remembers a keyed hash of the password that opened it (the key is
 * random per process, in secret memory) and a digest of the account's
 * wraps: a login whose hash matches, while the store is open and the
 * wraps unchanged, attaches at once.  Any other password takes the full
 * path, so a wrong one costs the same as ever and the timing tells a
 * guesser nothing; a password change voids the remembered hash.
 *
 * Threads: unlock_login() and everything that touches the store run on
 * worker threads; the store handle is used by one thread at a time
 * (unlocked_store() locks it, unlocked_store_done() unlocks).  Watches and
 * unlock_registry_changed() belong to the loop thread. */
#ifndef SM_UNLOCK_H
#define SM_UNLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/keywrap.h"

struct mailbox;
struct unlock_registry;
struct unlocked;
struct workpool;

enum unlock_result {
    UNLOCK_OK,
    UNLOCK_BAD_PASSWORD, /* wrong password, or no such account (same time spent) */
    UNLOCK_TOO_MANY,     /* the account has max_sessions sessions already */
    UNLOCK_FAILED,       /* the store could not be opened (logged) */
};

/* A session's interest in changes of an unlocked mailbox (loop thread). */
struct unlock_watch {
    struct unlock_watch *prev, *next;
    void (*changed)(void *arg);
    void *arg;
};

/* wp runs imports after IPC_MAILBOX_CHANGED; linger: seconds an unused
 * store stays open (0: closed with its last session). */
struct unlock_registry *unlock_registry_new(const char *data_dir,
                                            const struct keywrap_params *params,
                                            unsigned max_sessions, unsigned linger,
                                            struct workpool *wp);
/* Every unlocked mailbox must have been released, and the worker pool
 * given to unlock_registry_new() freed already (closing ran there). */
void unlock_registry_free(struct unlock_registry **r);

/* Worker thread: check the password and attach to the owner's store.
 * On UNLOCK_OK *u_r holds one reference; *fast_r (may be NULL) tells
 * whether the remembered password hash spared the Argon2id run. */
enum unlock_result unlock_login(struct unlock_registry *r, const char *address,
                                const char *password, size_t pwlen, struct unlocked **u_r,
                                bool *fast_r);
/* Loop thread, every few seconds: close the stores unused for `linger`. */
void unlock_registry_sweep(struct unlock_registry *r);
/* Loop thread (or a worker, for a store that failed to open): drop a
 * reference; the last one, after the linger, closes the store and wipes
 * the keys on the worker pool.  Sets *u to NULL; accepts NULL. */
void unlock_release(struct unlocked **u);

/* Worker thread: the store, locked for the caller until unlocked_store_done(). */
struct mailbox *unlocked_store(struct unlocked *u);
void unlocked_store_done(struct unlocked *u);

const char *unlocked_address(const struct unlocked *u);
const char *unlocked_mailbox_id(const struct unlocked *u);
uint64_t unlocked_quota(const struct unlocked *u); /* bytes, 0: none */

/* Loop thread: be told (w->changed) when the mailbox changes: new mail
 * imported, or another session changed something. */
void unlocked_watch(struct unlocked *u, struct unlock_watch *w);
void unlocked_unwatch(struct unlocked *u, struct unlock_watch *w);
/* Loop thread: tell every watcher except `except` (may be NULL). */
void unlocked_notify(struct unlocked *u, const struct unlock_watch *except);

/* Loop thread: new mail was delivered to mailbox_id's drop: if it is
 * unlocked here, import it on the worker pool, then notify its watchers. */
void unlock_registry_changed(struct unlock_registry *r, const char *mailbox_id);

#endif
