/* drop.h — message files of a mailbox, sealed to its public key.
 *
 *   mailboxes/<id>/drop/<name>   delivered, waiting for the owner to unlock
 *   mailboxes/<id>/msg/<name>    imported: the body of a stored message
 *
 * Both are sealed files (sealfile.h) to the mailbox's X25519 public key,
 * so the delivering process (queued) can write mail it can never read
 * back (DESIGN.md §4).  Import moves a file from drop/ to msg/ under the
 * same name, without re-encrypting it; the encrypted store (mailbox.h)
 * records the name.  The name is also inside the file's authenticated
 * metadata, so files swapped or renamed on disk are refused on reading.
 *
 * Names are 16 to 32 lowercase hex digits: queued uses the spool queue id,
 * so a delivery repeated after a crash finds its file (in drop/ or msg/)
 * and does not deliver a second copy. */
#ifndef SM_DROP_H
#define SM_DROP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DROP_NAME_MAX 32
#define DROP_PK_BYTES 32
#define DROP_SK_BYTES 32
#define DROP_KEY_BYTES 32 /* a file's own key (sealfile.h) */

struct sealfile_key;

enum drop_area { DROP_AREA_DROP, DROP_AREA_MSG };

/* What a delivery adds to a message: header fields sealed before it (our
 * Authentication-Results), and where the owner's store should file it.
 * The flag lives in the file's authenticated clear metadata, read at
 * import; the prefix is part of the sealed content. */
#define DROP_F_JUNK 1u
struct drop_note {
    const char *prefix;
    size_t prefix_len;
    unsigned flags;      /* DROP_F_* */
};

/* True when name is 16..32 lowercase hex digits (the only names accepted,
 * so no path can be smuggled in). */
bool drop_name_valid(const char *name);

/* Seal the content of body_fd (read from offset 0 to its end) into
 * mailbox_dir/drop/name, durably: a temporary file, fdatasync, a rename
 * that never replaces, fsync of drop/ (a batch of one, see below).
 * received (unix time) becomes the message's internal date.  Returns 1
 * when delivered (*sealed_bytes_r = the file's size), 0 when a file of
 * that name is already in drop/ or msg/ (an earlier delivery of the same
 * message: nothing written, drop/ synced), -1 with *error_r. */
int drop_deliver(const char *mailbox_dir, const char *name, const uint8_t pk[DROP_PK_BYTES],
                 int64_t received, int body_fd, uint64_t *sealed_bytes_r, const char **error_r);

/* Seal the content of body_fd (read from offset 0 to its end) into
 * mailbox_dir/<area>/name, durably, like drop_deliver() (a temporary
 * file, fdatasync, a rename that never replaces, fsync of the directory):
 * how the owner's own messages (IMAP APPEND) go straight into msg/.
 * Returns 1 when stored (*sealed_bytes_r = the file's size), 0 when a
 * file of that name exists in that area (nothing written), -1 with
 * *error_r. */
int drop_store(const char *mailbox_dir, enum drop_area area, const char *name,
               const uint8_t pk[DROP_PK_BYTES], int64_t received, int body_fd,
               uint64_t *sealed_bytes_r, const char **error_r);

/* drop_store() that also hands out the file's own key in key_r
 * (DROP_KEY_BYTES, wiped unless 1 is returned): the owner's store records
 * it and reads the file back without an X25519 (mailbox-append.c). */
int drop_store_key(const char *mailbox_dir, enum drop_area area, const char *name,
                   const uint8_t pk[DROP_PK_BYTES], int64_t received, int body_fd,
                   uint64_t *sealed_bytes_r, uint8_t *key_r, const char **error_r);

/* Call fn for each file name in mailbox_dir/drop, in name order (arrival
 * order for queued's names); leftovers of interrupted deliveries older
 * than a minute are removed on the way.  Returns the count or -1. */
int drop_list(const char *mailbox_dir, void (*fn)(void *arg, const char *name), void *arg,
              const char **error_r);

/* Authenticate and decrypt file name of area into out (plaintext; discard
 * it on failure).  *received_r and *size_r (when not NULL) get the
 * internal date and the plaintext size.  Returns 0, or -1 with *error_r
 * (missing, damaged, wrong key, or a file that is not the one its name
 * says). */
int drop_read(const char *mailbox_dir, enum drop_area area, const char *name,
              const uint8_t pk[DROP_PK_BYTES], const uint8_t sk[DROP_SK_BYTES], int out,
              int64_t *received_r, uint64_t *size_r, const char **error_r);
/* drop_read(), also giving the DROP_F_* flags the delivery set. */
int drop_read_flags(const char *mailbox_dir, enum drop_area area, const char *name,
                    const uint8_t pk[DROP_PK_BYTES], const uint8_t sk[DROP_SK_BYTES], int out,
                    int64_t *received_r, uint64_t *size_r, unsigned *flags_r,
                    const char **error_r);
/* drop_read_flags() opened as k says (sealfile.h: the key pair, handing
 * out the file key when k->key_r is set, or a recorded file key). */
int drop_read_k(const char *mailbox_dir, enum drop_area area, const char *name,
                const struct sealfile_key *k, int out, int64_t *received_r, uint64_t *size_r,
                unsigned *flags_r, const char **error_r);

/* drop_read() into memory, for readers that serve many bodies (FETCH):
 * sealfile_read_mem() with want, max and the buffers of p, reused from
 * file to file.  No stat before the open: a missing file is told apart
 * by its own return value, so the caller can try the other area.
 * Returns 0, DROP_MISSING (no file name in area), or -1 with *error_r. */
#define DROP_MISSING (-2)
struct sealfile_plain;
int drop_read_mem(const char *mailbox_dir, enum drop_area area, const char *name,
                  const uint8_t pk[DROP_PK_BYTES], const uint8_t sk[DROP_SK_BYTES],
                  uint64_t want, uint64_t max, struct sealfile_plain *p, const char **error_r);
/* drop_read_mem() opened as k says. */
int drop_read_mem_k(const char *mailbox_dir, enum drop_area area, const char *name,
                    const struct sealfile_key *k, uint64_t want, uint64_t max,
                    struct sealfile_plain *p, const char **error_r);
/* The directory of area, opened (O_PATH) for drop_read_mem_at(): a reader
 * of many files walks the mailbox's path once, not per file.  The
 * descriptor, or -1 with *error_r. */
int drop_open_area(const char *mailbox_dir, enum drop_area area, const char **error_r);
/* drop_read_mem_k() of file name in the directory dfd (drop_open_area()). */
int drop_read_mem_at(int dfd, const char *name, const struct sealfile_key *k, uint64_t want,
                     uint64_t max, struct sealfile_plain *p, const char **error_r);

/* Move drop/name to msg/name.  If msg/name exists already (a repeated
 * import), drop/name is removed instead.  Not synced: call drop_sync()
 * after a batch.  Returns 0, or -1 with *error_r. */
int drop_move_to_msg(const char *mailbox_dir, const char *name, const char **error_r);
/* Remove file name of area (an expunged message).  Not synced. */
int drop_remove(const char *mailbox_dir, enum drop_area area, const char *name,
                const char **error_r);
/* fsync drop/ and msg/, making moves and removals durable. */
int drop_sync(const char *mailbox_dir, const char **error_r);
/* True when file name exists in area. */
bool drop_exists(const char *mailbox_dir, enum drop_area area, const char *name);

/* --- deliveries made durable together (queued) ---------------------------
 *
 * A batch seals several messages into the drop/ of one or more mailboxes
 * and makes them durable with one directory sync per mailbox instead of
 * one per message.  drop_batch_add() seals a message into a temporary
 * file and syncs nothing; drop_batch_commit() then, mailbox by mailbox,
 * takes the drop directory's lock, fdatasyncs each of its files and
 * renames it into place (never replacing), fsyncs drop/ once and only
 * then reports the items.  drop_deliver() is a batch of one.  Nothing
 * about an item is durable before the commit reports it. */
struct drop_batch;

struct drop_batch *drop_batch_new(void);

/* Seal the content of body_fd (read from offset 0 to its end) for
 * mailbox_dir/drop/name, to pk: written to a temporary file now, synced
 * and named by the commit.  tag is the caller's, handed back by the
 * commit.  A file of that name already in drop/ or msg/ (an earlier
 * delivery), or added to this batch before, is not written again; the
 * commit reports it as 0 after drop/ was synced, so a delivery retried
 * after a failed directory sync also ends durable.  Returns 0, or -1 with
 * *error_r (then the item is not in the batch). */
int drop_batch_add(struct drop_batch *b, const char *mailbox_dir, const char *name,
                   const uint8_t pk[DROP_PK_BYTES], int64_t received, int body_fd, size_t tag,
                   const char **error_r);
/* drop_batch_add() with a delivery note (NULL: none). */
int drop_batch_add_noted(struct drop_batch *b, const char *mailbox_dir, const char *name,
                         const uint8_t pk[DROP_PK_BYTES], int64_t received, int body_fd,
                         const struct drop_note *note, size_t tag, const char **error_r);

/* Items added and not committed yet. */
size_t drop_batch_size(const struct drop_batch *b);

/* What became of one item: result 1 delivered durably (sealed_bytes is
 * the file's size), 0 there already (durably), -1 failed (error; a file
 * that could not be synced is removed, one whose directory could not be
 * synced stays for the retry to find). */
typedef void drop_batch_fn(void *arg, size_t tag, const char *mailbox_dir, int result,
                           uint64_t sealed_bytes, const char *error);

/* Make every item durable as described above, then call fn once for each
 * item (grouped by mailbox, in the order added within a mailbox).  The
 * batch is empty afterwards and may be used again. */
void drop_batch_commit(struct drop_batch *b, drop_batch_fn *fn, void *arg);

/* Remove the temporary files of items not committed and free the batch;
 * sets *b to NULL, accepts NULL. */
void drop_batch_free(struct drop_batch **b);

#endif
