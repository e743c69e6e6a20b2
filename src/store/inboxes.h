/* inboxes.h — the directory's rows of disposable inboxes (issue #7).
 *
 * A disposable inbox is a receive-only address on one of the operator's
 * disposable domains, opened by a random 256-bit token instead of a
 * password (store/inbox.h builds the keys; this is only the SQL).  A row
 * holds no secret: the inbox's X25519 public key, its secret key wrapped
 * by the mailbox key (MK), MK wrapped by the token, and a lookup hash of
 * the token by which a request finds its row (the hash cannot open the
 * wrap: only the token can).
 *
 * When an inbox goes (expiry or "delete now"), its row and wraps are
 * deleted and a TOMBSTONE — a hash of its address — takes its place in
 * the same transaction, so the address is never handed out again (no one
 * can take over an address someone used to sign up somewhere).  The WAL
 * is checkpointed afterwards so no copy of the wraps stays in the
 * directory's files (as for mailboxes, directory.h).
 *
 * Disposable domains are not hosted domains: they come from the
 * configuration and have no row in `domains`. */
#ifndef SM_INBOXES_H
#define SM_INBOXES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/directory.h"

#define INBOX_LOOKUP_BYTES 32 /* hash of the token */
#define INBOX_TOMBSTONE_BYTES 32 /* hash of an address */

struct directory_inbox {
    int64_t id;
    char address[DIRECTORY_ADDRESS_MAX + 1];
    char mailbox[DIRECTORY_MAILBOX_ID_LEN + 1]; /* directory under inboxes/ */
    uint8_t public_key[DIRECTORY_PK_BYTES];
    uint64_t quota_bytes, used_bytes;           /* 0: no limit */
    int64_t created, expires;                   /* unix times */
};

/* The wraps of one inbox. */
struct directory_inbox_wraps {
    uint8_t secret[DIRECTORY_WRAP_MAX], token[DIRECTORY_WRAP_MAX];
    size_t secret_len, token_len;
};

enum directory_inbox_result {
    DIRECTORY_INBOX_TAKEN = -2, /* address in use, once used (tombstone), or a mailbox/alias */
};

/* Add an inbox (address already normalised; in->created is set here).
 * Refused with DIRECTORY_INBOX_TAKEN when the address is a live inbox,
 * has a tombstone (tomb = its hash), or is a mailbox or alias.  Returns 0
 * with in->id set, DIRECTORY_INBOX_TAKEN, or -1 with directory_error(). */
int directory_inbox_add(struct directory *dir, struct directory_inbox *in,
                        const uint8_t lookup[INBOX_LOOKUP_BYTES],
                        const uint8_t tomb[INBOX_TOMBSTONE_BYTES],
                        const struct directory_inbox_wraps *w);

/* The inbox whose token hashes to lookup, with its wraps (w may be NULL),
 * expired or not (the caller decides).  1 found, 0 not, -1 error. */
int directory_inbox_by_lookup(struct directory *dir, const uint8_t lookup[INBOX_LOOKUP_BYTES],
                              struct directory_inbox *in, struct directory_inbox_wraps *w);

/* A live inbox (expires > now) of the normalised address: 1, 0, -1. */
int directory_inbox_live(struct directory *dir, const char *address, int64_t now,
                         struct directory_inbox *in);

/* Whether address (through its hash) was ever an inbox that is gone: 1, 0, -1. */
int directory_inbox_tombstoned(struct directory *dir, const uint8_t tomb[INBOX_TOMBSTONE_BYTES]);

/* Set the expiry of inbox id.  0, or -1 (no such inbox, error). */
int directory_inbox_set_expiry(struct directory *dir, int64_t id, int64_t expires);

/* Delete inbox id with its wraps and leave the tombstone tomb, in one
 * transaction, then checkpoint the WAL.  0, or -1 (no such inbox, error). */
int directory_inbox_remove(struct directory *dir, int64_t id,
                           const uint8_t tomb[INBOX_TOMBSTONE_BYTES]);

/* Call fn for each inbox that expired at or before now (at most max, the
 * oldest first).  Count or -1. */
int directory_inbox_expired(struct directory *dir, int64_t now, size_t max,
                            void (*fn)(void *arg, const struct directory_inbox *in), void *arg);

/* Number of live inboxes (for the operator and the tests); -1 on error. */
int64_t directory_inbox_count(struct directory *dir, int64_t now);

#endif
