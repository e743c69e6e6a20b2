/* inbox.h — disposable inboxes: created, opened by their token, shredded.
 *
 * A disposable inbox is a mailbox without an owner account (DESIGN.md §4):
 *
 *   token (256 random bits, given to the visitor as 64 hex digits)
 *     --keyed BLAKE2b--> opens the wrap of the inbox key MK
 *     --plain BLAKE2b--> the lookup hash that finds the row
 *   MK --> opens the store (inboxes/<id>/store.db) and the X25519 secret key
 *   X25519 public key --> queued seals arriving mail into inboxes/<id>/drop/
 *
 * The server keeps neither the token nor MK: without the token an inbox
 * cannot be read.  Every request opens the store with the token it
 * carries and closes it at the end, wiping the keys.
 *
 * Removal (expiry or "delete now") is crypto-shredding: the row with its
 * wraps goes first, a tombstone of the address takes its place (the
 * address is never handed out again), then the files.
 *
 * Blocking (SQLite, file I/O): call from worker threads. */
#ifndef SM_INBOX_H
#define SM_INBOX_H

#include <stddef.h>
#include <stdint.h>

#include "store/inboxes.h"

struct directory;
struct mailbox;

#define INBOX_TOKEN_BYTES 32
#define INBOX_TOKEN_TEXT_LEN 64 /* lowercase hex */
#define INBOX_LOCAL_RANDOM_LEN 12 /* random local parts: a-z and 2-9, about 61 bits */

enum inbox_result {
    INBOX_OK = 0,
    INBOX_ERROR = -1,
    INBOX_TAKEN = -2,   /* the address is in use or was used before */
    INBOX_UNKNOWN = -3, /* no live inbox opens with this token */
    INBOX_INVALID = -4, /* the address is not acceptable */
};

/* data_dir/inboxes/<mailbox> into out; 0, or -1 if it does not fit. */
int inbox_dir(char *out, size_t outlen, const char *data_dir, const char *mailbox);

/* The tombstone hash of a normalised address. */
void inbox_tombstone_hash(const char *address, uint8_t out[INBOX_TOMBSTONE_BYTES]);

/* A random local part (INBOX_LOCAL_RANDOM_LEN characters, NUL-terminated):
 * lowercase letters and digits without 0, 1, l, o (no look-alikes). */
void inbox_random_local(char out[INBOX_LOCAL_RANDOM_LEN + 1]);

/* Create an inbox for address (normalised here) living until expires,
 * with a quota in bytes (0: none).  On INBOX_OK the token is written to
 * token (hex, NUL-terminated; show it to the visitor, then wipe it) and
 * *out describes the inbox.  INBOX_TAKEN, INBOX_INVALID or INBOX_ERROR
 * with *error_r otherwise; nothing is left behind. */
int inbox_create(struct directory *dir, const char *data_dir, const char *address,
                 int64_t expires, uint64_t quota, char token[INBOX_TOKEN_TEXT_LEN + 1],
                 struct directory_inbox *out, const char **error_r);

/* An inbox opened for one request. */
struct inbox_open {
    struct directory_inbox row;
    struct mailbox *mb;
};

/* Open the inbox of token (its text, token_len bytes): find the row, open
 * the wraps, open the store and import what arrived.  INBOX_OK with *o
 * (close with inbox_close()), INBOX_UNKNOWN for a token that is not
 * well-formed, opens nothing, or belongs to an inbox expired by now, or
 * INBOX_ERROR with *error_r. */
int inbox_open(struct directory *dir, const char *data_dir, const char *token, size_t token_len,
               int64_t now, struct inbox_open *o, const char **error_r);
/* Close the store (wiping its keys); accepts a zeroed struct. */
void inbox_close(struct inbox_open *o);

/* Shred inbox in: row and wraps out, tombstone in, then its files.
 * INBOX_OK, or INBOX_ERROR with *error_r (when only the files could not
 * be removed the keys are gone already and the error says so). */
int inbox_remove(struct directory *dir, const char *data_dir, const struct directory_inbox *in,
                 const char **error_r);

/* Remove up to max inboxes expired at now; removed (may be NULL) is told
 * of each one whose keys are gone.  Returns how many were removed, or -1
 * with *error_r. */
int inbox_sweep(struct directory *dir, const char *data_dir, int64_t now, size_t max,
                void (*removed)(void *arg, const struct directory_inbox *in), void *arg,
                const char **error_r);

#endif
