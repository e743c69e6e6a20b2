/* spool.h — the durable, encrypted spool of accepted messages.
 *
 * smtpd streams each accepted message into a spool file sealed to the spool
 * public key (DESIGN.md §4): it can write mail but never read it back.  Only
 * a holder of the spool secret key (queued, or the operator with the key
 * file) can open a message body.  The envelope is stored in clear text so
 * `sealmail queue list|show` works without the secret key, and it is bound
 * to the sealed body as associated data, so tampering with it is detected
 * when the body is opened.
 *
 * Durability: spool_commit() returns through its callback, on the event
 * loop thread, only after the message is on disk: appended as a record
 * to the process's segment file and the segment fdatasynced (messages up
 * to 256 KiB sealed), or, for bigger ones, its own file fdatasynced,
 * renamed into place and the directory fsynced.  Commits of concurrent
 * sessions are batched (group commit): one segment sync, or one directory
 * sync, covers many messages.  A record a crash cut, or a file never
 * committed, is never listed (files left are removed by spool_open() at
 * the next start): nothing acknowledged is lost.  The layout and the
 * argument are in spool.c and spoolseg.h.
 *
 * Threading: everything except the internal sync thread runs on the thread
 * that owns the event_base given to spool_open(). */
#ifndef SM_SPOOL_H
#define SM_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct event_base;
struct spool;
struct spool_writer;

#define SPOOL_ID_LEN 16     /* queue ids are 16 lowercase hex digits */
#define SPOOL_PK_BYTES 32   /* X25519 public key */
#define SPOOL_SK_BYTES 32   /* X25519 secret key */

/* The envelope of one message, as received. Strings are NUL-terminated. */
struct spool_envelope {
    char *helo;         /* EHLO/HELO argument */
    char *client;       /* client address, e.g. "192.0.2.1" (not anonymised: mail metadata) */
    char *mail_from;    /* reverse path without <>, "" for the null sender */
    char *body_type;    /* "7BIT", "8BITMIME" or "BINARYMIME" */
    bool smtputf8;
    char **rcpts;       /* forward paths without <> */
    size_t n_rcpts;
    int64_t received;   /* unix time the transaction started */
    uint64_t size;      /* bytes of the message as stored (Received header included); filled by the spool */
    /* The delivery note smtpd adds at end of data (spool_writer_set_note);
     * filled only by spool_read_message(), which authenticates it. */
    uint32_t flags;     /* SPOOL_F_* */
    char *prefix;       /* header fields to prepend on delivery (Authentication-Results), or NULL */
    size_t prefix_len;
};

#define SPOOL_F_JUNK 1u        /* deliver into the recipient's Junk folder (DMARC quarantine) */
#define SPOOL_NOTE_MAX 65536   /* bytes of prefix in a delivery note */

/* Open (creating if needed) the spool under dir: dir/incoming holds
 * committed messages; leftover temporary files from a crash are removed.
 * pk is the spool public key.  base is the loop that receives commit
 * callbacks (NULL for offline use: listing and reading only, no commits).
 * sync_batch bounds how many files one group commit covers.
 * Returns NULL and sets *error_r (static or thread-local text) on failure. */
struct spool *spool_open(const char *dir, const uint8_t pk[SPOOL_PK_BYTES],
                         struct event_base *base, unsigned sync_batch, const char **error_r);
/* Stop the sync threads after finishing pending commits (their callbacks
 * run here, on the calling thread); frees the spool and sets *sp to NULL,
 * accepts NULL.  Every writer must have been committed or aborted before:
 * a writer still open is a bug and aborts the process. */
void spool_close(struct spool **sp);

/* Messages whose sealed bytes stay within max (at most the default, 256
 * KiB) are appended to a segment; bigger ones get a file of their own.
 * 0: every message in a file (tests of the file format, comparisons).
 * Messages in memory hold about budget bytes in all (at most the default,
 * 64 MiB): once it is spent, new and growing messages go to files (a
 * message's header and its sealing at commit are not held back, so the
 * budget can be passed by about one message). */
void spool_set_inline_limits(struct spool *sp, size_t max, size_t budget);

/* Start a new message with its envelope (copied).  Returns NULL with
 * *error_r on failure (disk full, ...).  The writer owns a temporary file. */
struct spool_writer *spool_writer_new(struct spool *sp, const struct spool_envelope *env,
                                      const char **error_r);
/* The queue id assigned to this message (SPOOL_ID_LEN hex digits + NUL). */
const char *spool_writer_id(const struct spool_writer *w);
/* Append message bytes (encrypted in chunks as they come).  Returns 0, or
 * -1 with *error_r after which the writer can only be aborted. */
int spool_writer_write(struct spool_writer *w, const void *data, size_t len, const char **error_r);
/* Bytes written so far. */
uint64_t spool_writer_size(const struct spool_writer *w);
/* The delivery note: what the checks at end of data decided, known only
 * after the whole message was written.  prefix (len <= SPOOL_NOTE_MAX
 * bytes, complete CRLF-terminated header fields) is put before the message
 * on delivery; flags are SPOOL_F_*.  The note is sealed with the message
 * (it is the end of the encrypted stream), so it is as private and as
 * tamper-proof as the message.  Call at most once, before the commit.
 * Returns 0, or -1 with *error_r (too long). */
int spool_writer_set_note(struct spool_writer *w, uint32_t flags, const char *prefix, size_t len,
                          const char **error_r);

/* Called on the loop thread once the message is durable (ok true) or
 * could not be made durable (ok false, the file is gone).  The writer is
 * freed by the spool after the callback returns. */
typedef void spool_commit_cb(void *arg, bool ok, const char *queue_id);
/* Seal the last chunk and hand the file to the group commit. */
void spool_writer_commit(struct spool_writer *w, spool_commit_cb *cb, void *arg);
/* Throw the message away (client gave up, limits hit).  Accepts NULL. */
void spool_writer_abort(struct spool_writer **w);

/* --- reading (CLI, queued) ---------------------------------------------- */

/* True when id has the form of a queue id (SPOOL_ID_LEN lowercase hex
 * digits): the only names the reading functions accept, so no path can
 * be smuggled in. */
bool spool_id_valid(const char *id);

/* Call fn for every committed message id in dir/incoming, in id order.
 * Returns the count, or -1 with *error_r. */
int spool_list(const char *dir, void (*fn)(void *arg, const char *id), void *arg,
               const char **error_r);
/* Read the clear-text envelope of message id into *env (free with
 * spool_envelope_free).  Returns 0, or -1 with *error_r (no such id, not a
 * spool file, truncated). */
int spool_read_envelope(const char *dir, const char *id, struct spool_envelope *env,
                        const char **error_r);
/* Decrypt message id with the spool secret key, writing the body to fd.
 * Fails (-1, *error_r) on a wrong key or any tampered byte, envelope
 * included, and writes nothing that was not authenticated. */
int spool_read_body(const char *dir, const char *id, const uint8_t pk[SPOOL_PK_BYTES],
                    const uint8_t sk[SPOOL_SK_BYTES], int fd, const char **error_r);
/* spool_read_body(), and also the envelope decoded from the same open of
 * the file: on success (0) *env holds the envelope that was authenticated
 * together with the body (free with spool_envelope_free); on failure *env
 * is empty.  Use this, not spool_read_envelope(), where the envelope must
 * be trusted (delivery, `queue show --key`). */
int spool_read_message(const char *dir, const char *id, const uint8_t pk[SPOOL_PK_BYTES],
                       const uint8_t sk[SPOOL_SK_BYTES], int fd, struct spool_envelope *env,
                       const char **error_r);
/* Remove message id from the spool durably. */
int spool_remove(const char *dir, const char *id, const char **error_r);
/* Remove the n messages ids from the spool durably with one directory
 * sync for all (queued's batches); an id no longer there counts as
 * removed.  Returns 0, or -1 with *error_r: an invalid id (nothing
 * removed), or a failed unlink or sync (then some may be removed, and not
 * durably). */
int spool_remove_many(const char *dir, const char *const ids[], size_t n, const char **error_r);
/* Delete the segments that are finished: their writer is gone and every
 * record in them removed.  spool_remove_many() does this now and then by
 * itself. */
void spool_sweep(const char *dir);
/* True when message id is in the spool (committed, not removed). */
bool spool_has(const char *dir, const char *id);
/* Free the strings of an envelope read or built by the caller. */
void spool_envelope_free(struct spool_envelope *env);

#endif
