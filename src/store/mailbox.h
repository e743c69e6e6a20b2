/* mailbox.h — one user's mailbox: an encrypted store and its message files.
 *
 *   mailboxes/<id>/store.db   SQLite through the encrypting VFS (sealvfs.h),
 *                             key = the mailbox key MK: folders, messages
 *                             with their IMAP metadata, flags, full-text index
 *   mailboxes/<id>/drop/      mail delivered while nobody had the keys (drop.h)
 *   mailboxes/<id>/msg/       bodies of stored messages (drop.h)
 *
 * Only a holder of MK (an unlocked owner) opens the store; only a holder
 * of the X25519 secret key (which MK unwraps) reads message files.  The
 * store keeps what IMAP needs without touching a body again: size,
 * internal date, ENVELOPE, BODYSTRUCTURE, sort fields and an FTS5 index of
 * headers and text, computed once at import (mime.h).
 *
 * Import moves the whole drop/ into the store in one transaction, then
 * moves the files; a crash at any point neither loses nor duplicates a
 * message (see mailbox.c).  A handle belongs to one thread at a time.
 *
 * What IMAP4rev2 (UIDPLUS, MOVE, SPECIAL-USE, CONDSTORE/QRESYNC, QUOTA,
 * STATUS=SIZE) and POP3 need is here too: folders (create with parents,
 * delete, rename, subscribe), UIDs, flags and keywords with MODSEQs,
 * expunge with a record of expunged UIDs (VANISHED), copy and move that
 * share the body file, append, and a change token for IDLE.
 *
 * Conventions of the functions below: they return -1 (MAILBOX_ERR) with
 * *error_r (static or thread-local text, valid until this thread's next
 * call) on failure, or one of the other negative enum mailbox_status
 * codes where the comment says so; *error_r is set for those too.
 * Folder names are UTF-8 with '/' as the hierarchy separator; "INBOX"
 * (and an "INBOX/" prefix) is matched case-insensitively, other names
 * exactly.  A mutating call is its own transaction unless it runs
 * between mailbox_begin() and mailbox_commit().  A callback may call back
 * into the store; a write from inside an iteration's callback works, but
 * fails with a busy error if another connection (another process) wrote
 * since the iteration began: collect first, then write. */
#ifndef SM_MAILBOX_H
#define SM_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mailbox;

#define MAILBOX_KEY_BYTES 32
#define MAILBOX_FOLDER_MAX 255           /* bytes of a folder name */
#define MAILBOX_FOLDER_LEVELS 16         /* levels of a folder name ("a/b/c" is 3) */
#define MAILBOX_FOLDERS_MAX 1000         /* folders per store */
#define MAILBOX_SUBSCRIPTIONS_MAX 1000   /* subscribed names per store */
#define MAILBOX_KEYWORD_MAX 128          /* bytes of one keyword */
#define MAILBOX_KEYWORDS_TEXT_MAX 16384  /* bytes of a keywords argument */
#define MAILBOX_MESSAGE_KEYWORDS 64      /* keywords on one message */
#define MAILBOX_FOLDER_KEYWORDS 100      /* distinct keywords used in one folder */
#define MAILBOX_UID_ANY 0xFFFFFFFFu      /* "*" as the top of a UID range */

/* Results of the functions below besides 0 and positive counts. */
enum mailbox_status {
    MAILBOX_ERR = -1,          /* anything else: *error_r says what */
    MAILBOX_EXISTS = -2,       /* the folder exists already ([ALREADYEXISTS]) */
    MAILBOX_NONEXISTENT = -3,  /* no such folder or message ([NONEXISTENT]) */
    MAILBOX_CANNOT = -4,       /* not allowed, e.g. deleting INBOX ([CANNOT]) */
    MAILBOX_OVERQUOTA = -5,    /* over the quota ([OVERQUOTA]); not returned by the store itself */
};

/* IMAP system flags, stored as a bit set. */
enum mailbox_flag {
    MAILBOX_SEEN = 1,
    MAILBOX_ANSWERED = 2,
    MAILBOX_FLAGGED = 4,
    MAILBOX_DELETED = 8,
    MAILBOX_DRAFT = 16,
};

/* Create mailbox_dir with drop/ and msg/ and a new store encrypted with
 * mk (NULL: a plain SQLite store, for benchmarks only) holding the
 * standard folders with their special-use roles: INBOX, Drafts, Sent,
 * Trash, Junk, Archive.  Fails if mailbox_dir exists.  Returns 0, or -1
 * with *error_r. */
int mailbox_create(const char *mailbox_dir, const uint8_t *mk, const char **error_r);

/* Open the store of mailbox_dir with mk (NULL: plain) and the mailbox's
 * key pair (for reading message files and sealing appended ones).  A
 * store of an older format is upgraded first (once, in one transaction;
 * it may read every body: see mailbox-migrate.c).  A wrong mk, a damaged
 * store or a store of a format this binary does not know ("store format
 * N not supported") fails here.  Returns NULL with *error_r. */
struct mailbox *mailbox_open(const char *mailbox_dir, const uint8_t *mk,
                             const uint8_t pk[MAILBOX_KEY_BYTES],
                             const uint8_t sk[MAILBOX_KEY_BYTES], const char **error_r);
/* Close; wipes the copies of the keys; sets *mb to NULL, accepts NULL. */
void mailbox_close(struct mailbox **mb);

struct mailbox_import_stats {
    unsigned imported;     /* new messages now in INBOX */
    unsigned already;      /* files found imported before (crash recovery) */
    unsigned refused;      /* files that failed to open: left in drop/, logged */
    uint64_t bytes;        /* plaintext bytes imported */
};

/* Import every file of drop/ into INBOX: each is opened (authenticated),
 * analysed once, and recorded with a new UID in one transaction; after
 * the commit the files move to msg/.  A damaged or foreign file is left
 * in drop/ and counted as refused, never imported.  Not inside a
 * mailbox_begin() group.  Returns 0, or -1 with *error_r (then nothing of
 * this call was committed). */
int mailbox_import(struct mailbox *mb, struct mailbox_import_stats *st, const char **error_r);

struct mailbox_folder {
    char name[MAILBOX_FOLDER_MAX + 1];
    char special_use[16];  /* "\\Sent", ... or "" */
    uint32_t uidvalidity, uidnext;
    uint64_t highestmodseq;
    uint64_t messages, unseen, bytes;
    uint64_t deleted;      /* messages flagged \Deleted */
    bool subscribed;       /* its name is subscribed */
};

/* Call fn for each folder in name order (INBOX first).  Count or -1. */
int mailbox_folders(struct mailbox *mb, void (*fn)(void *arg, const struct mailbox_folder *f),
                    void *arg, const char **error_r);

/* Look up one folder (its counts are kept up to date by the store: no
 * scan).  Returns 1 with *f filled, 0 when there is no such folder, -1. */
int mailbox_folder_get(struct mailbox *mb, const char *name, struct mailbox_folder *f,
                       const char **error_r);

/* Create folder name, and its missing parents (RFC 9051 CREATE), with
 * special_use NULL or one of "\\All", "\\Archive", "\\Drafts",
 * "\\Flagged", "\\Important", "\\Junk", "\\Sent", "\\Trash" (RFC 6154,
 * 8457), set on name only.  A valid name is non-empty, at most
 * MAILBOX_FOLDER_MAX bytes of UTF-8 without control characters, '*' or
 * '%', has no leading, trailing or double '/' and at most
 * MAILBOX_FOLDER_LEVELS levels; a store holds at most MAILBOX_FOLDERS_MAX
 * folders.  A new folder is not subscribed and gets a UIDVALIDITY greater
 * than any this store ever used (so DELETE then CREATE changes it).
 * Returns 0, MAILBOX_EXISTS, MAILBOX_CANNOT (an invalid name), or -1
 * (too many folders, errors). */
int mailbox_folder_create(struct mailbox *mb, const char *name, const char *special_use,
                          const char **error_r);

/* Delete folder name with its mail; bodies no other folder holds are
 * deleted (their files after the commit).  Children stay (RFC 9051
 * §6.3.4).  Returns 0, MAILBOX_NONEXISTENT, MAILBOX_CANNOT (INBOX), -1. */
int mailbox_folder_delete(struct mailbox *mb, const char *name, const char **error_r);

/* Rename folder from, and its children, to to (missing parents of to are
 * created; UIDVALIDITY, UIDs, flags and special use stay; subscriptions
 * stay with the old names).
 * Renaming INBOX moves all its mail into a new folder to and leaves INBOX
 * empty (RFC 9051 §6.3.6): the moved UIDs count as expunged from INBOX.
 * Returns 0, MAILBOX_NONEXISTENT (from), MAILBOX_EXISTS (to, or a child's
 * new name), MAILBOX_CANNOT (to inside from, or an invalid to), -1. */
int mailbox_folder_rename(struct mailbox *mb, const char *from, const char *to,
                          const char **error_r);

/* Subscribe (LSUB, LIST (SUBSCRIBED)) or unsubscribe name.  A
 * subscription belongs to the name, not to a folder: it stays when the
 * folder is deleted or renamed (RFC 9051 §6.3.5-7).  Subscribing needs an
 * existing folder and fails past MAILBOX_SUBSCRIPTIONS_MAX; unsubscribing
 * a name that is not subscribed succeeds (RFC 9051 §6.3.8).  Returns 0,
 * MAILBOX_NONEXISTENT (subscribing a name no folder has), -1. */
int mailbox_folder_subscribe(struct mailbox *mb, const char *name, bool subscribed,
                             const char **error_r);

/* Call fn for each subscribed name (canonical: "INBOX" in upper case), in
 * byte order, whether or not a folder has it.  Count or -1. */
int mailbox_subscriptions(struct mailbox *mb, void (*fn)(void *arg, const char *name),
                          void *arg, const char **error_r);

/* \Recent (IMAP4rev1): the store keeps, per folder, the highest UID
 * some session has been shown as recent.  *before_r gets it; when claim
 * is greater it becomes claim (a read-write SELECT or a session that sees
 * new mail claims them: they are recent to it alone).  With count_r, the
 * number of messages above *before_r (STATUS RECENT: claim 0).  Returns
 * 0, MAILBOX_NONEXISTENT, -1. */
int mailbox_recent(struct mailbox *mb, const char *folder, uint32_t claim, uint32_t *before_r,
                   uint64_t *count_r, const char **error_r);

/* The keywords folder knows, in the spelling it first saw (for FLAGS and
 * PERMANENTFLAGS): each one used in it, except that when a new one would
 * pass MAILBOX_FOLDER_KEYWORDS, those no message holds any more are
 * forgotten.  Returns the count, MAILBOX_NONEXISTENT, -1. */
int mailbox_folder_keywords(struct mailbox *mb, const char *folder,
                            void (*fn)(void *arg, const char *kw), void *arg,
                            const char **error_r);

struct mailbox_message {
    uint32_t uid;
    unsigned flags;        /* enum mailbox_flag bits */
    uint64_t size;         /* octets of the message in IMAP form (a bare LF counts as
                            * CRLF): RFC822.SIZE, what BODY[] and RETR send */
    int64_t internaldate;
    const char *subject, *from, *envelope, *bodystructure;
    const char *file;      /* name of the body file (drop.h) */
    uint64_t modseq;       /* CONDSTORE MODSEQ of this message in this folder */
    const char *keywords;  /* space-separated, "" when none */
    const char *body;      /* IMAP BODY (non-extensible BODYSTRUCTURE) */
    int64_t date;          /* Date: header as unix time, 0 if none (SORT DATE) */
    const char *to, *cc, *message_id; /* first addresses, lowercase; Message-ID */
    const char *parts;     /* MIME part offsets, see mailbox_parts_decode() */
    const uint8_t *file_key; /* the body file's own key (32 bytes; secret), read by
                              * mailbox_messages_list() only; NULL: none recorded */
    const unsigned char *header; /* the top header block, its empty line included
                                  * (message content), read by mailbox_messages_list()
                                  * with MAILBOX_COL_HEADER only; NULL: none stored */
    size_t header_len;
};

/* Call fn for each message of folder in UID order; the strings of *m are
 * valid during the call.  Count, MAILBOX_NONEXISTENT, or -1. */
int mailbox_messages(struct mailbox *mb, const char *folder,
                     void (*fn)(void *arg, const struct mailbox_message *m), void *arg,
                     const char **error_r);

/* The same for the messages whose UID is in uid_lo..uid_hi (inclusive;
 * MAILBOX_UID_ANY for "*"; the two are swapped when uid_lo > uid_hi).
 * Count, MAILBOX_NONEXISTENT, or -1. */
int mailbox_messages_range(struct mailbox *mb, const char *folder, uint32_t uid_lo,
                           uint32_t uid_hi,
                           void (*fn)(void *arg, const struct mailbox_message *m), void *arg,
                           const char **error_r);

/* What mailbox_messages_list() reads besides the fields it always fills
 * (uid, flags, keywords, modseq, size, internaldate, file, parts). */
enum mailbox_cols {
    MAILBOX_COL_ENVELOPE = 1,
    MAILBOX_COL_BODYSTRUCTURE = 2,
    MAILBOX_COL_BODY = 4,
    MAILBOX_COL_HEADER = 8, /* the stored header block (format 9), when there is one */
};

/* Messages read together by mailbox_messages_list(). */
struct mailbox_list {
    struct mailbox_message *v; /* in UID order; strings owned by the list */
    size_t n;
};

/* The messages of folder whose UIDs are among uids[0..n) (ascending), read
 * with one statement, so in one read transaction, over the UID range
 * uids[0]..uids[n-1] (UIDs the folder does not hold are left out: the
 * caller keeps the range dense).  Only the fields named above and the
 * columns cols asks for are read; the other strings are "".  Nothing
 * calls back while the statement runs: the caller may write to the store
 * (\Seen) between the messages.  Returns 0 with *l (free it with
 * mailbox_list_free()), MAILBOX_NONEXISTENT, or -1 with *l empty. */
int mailbox_messages_list(struct mailbox *mb, const char *folder, const uint32_t *uids, size_t n,
                          unsigned cols, struct mailbox_list *l, const char **error_r);
/* Free what mailbox_messages_list() gave; *l is then empty. */
void mailbox_list_free(struct mailbox_list *l);

/* One message.  Returns 1 with *m filled (its strings stay valid until
 * the next call on mb), 0 when folder has no such UID,
 * MAILBOX_NONEXISTENT (no such folder), or -1. */
int mailbox_message_get(struct mailbox *mb, const char *folder, uint32_t uid,
                        struct mailbox_message *m, const char **error_r);

/* The UIDs of folder in ascending order, in *uids_r (malloc'd, free();
 * not NULL even when *n_r is 0).  Returns 0, MAILBOX_NONEXISTENT, -1. */
int mailbox_uids(struct mailbox *mb, const char *folder, uint32_t **uids_r, size_t *n_r,
                 const char **error_r);

struct mime_part_offsets;

/* The MIME part offsets of a message back from m->parts (document order,
 * as mime_analyse_fd() gave them).  Returns 0 with *parts_r (NULL when
 * *n_r is 0), to be freed with mailbox_parts_free(), or -1 when the text
 * is malformed. */
int mailbox_parts_decode(const char *parts, struct mime_part_offsets **parts_r, unsigned *n_r);
/* Free what mailbox_parts_decode() returned; accepts NULL. */
void mailbox_parts_free(struct mime_part_offsets *parts, unsigned n);

/* Group many changes into one transaction: mailbox_begin(), any mutating
 * calls, then mailbox_commit() or mailbox_rollback().  A call that fails
 * inside the group undoes only its own changes.  Files of bodies the group
 * deleted are removed after the commit; files appended by a group that is
 * rolled back are removed then.  Nested begin fails.  Without a group,
 * every mutating call commits on its own.  0 or -1. */
int mailbox_begin(struct mailbox *mb, const char **error_r);
int mailbox_commit(struct mailbox *mb, const char **error_r);
/* Undo the group; does nothing without one. */
void mailbox_rollback(struct mailbox *mb);

enum mailbox_flag_op { MAILBOX_FLAGS_SET, MAILBOX_FLAGS_ADD, MAILBOX_FLAGS_REMOVE };

/* STORE: set, add or remove the system flags (enum mailbox_flag bits)
 * and keywords (NULL or space-separated IMAP atoms, at most
 * MAILBOX_KEYWORD_MAX bytes each, matched case-insensitively; a message
 * holds at most MAILBOX_MESSAGE_KEYWORDS, a folder uses at most
 * MAILBOX_FOLDER_KEYWORDS distinct ones) of message uid.  With
 * unchangedsince > 0 (CONDSTORE) nothing changes when the message's
 * MODSEQ is greater.  Returns 1 when changed (the message gets a new
 * MODSEQ, the folder's HIGHESTMODSEQ), 0 when the flags were so already
 * (MODSEQ unchanged), 2 when refused by unchangedsince ([MODIFIED]),
 * MAILBOX_NONEXISTENT (no such folder or UID) or -1 (e.g. invalid
 * keyword).  For 0, 1 and 2, *after (when not NULL) gets uid, flags,
 * keywords and modseq as they now are (keywords valid until the next call
 * on mb; other fields zero). */
int mailbox_store_flags(struct mailbox *mb, const char *folder, uint32_t uid,
                        enum mailbox_flag_op op, unsigned flags, const char *keywords,
                        uint64_t unchangedsince, struct mailbox_message *after,
                        const char **error_r);

/* EXPUNGE: remove the messages of folder flagged \Deleted (only those
 * whose UID is in uids[0..n) when uids != NULL: UID EXPUNGE).  They are
 * recorded as expunged with a new MODSEQ (for VANISHED); bodies no folder
 * holds any more are deleted (files after the commit; a crash in between
 * leaves an orphan file that mailbox_verify() removes).  fn (may be NULL)
 * gets each expunged UID in ascending order, after the commit (inside a
 * mailbox_begin() group: at the end of this call).  Returns the count,
 * MAILBOX_NONEXISTENT, or -1 (nothing expunged). */
int mailbox_expunge(struct mailbox *mb, const char *folder, const uint32_t *uids, size_t n,
                    void (*fn)(void *arg, uint32_t uid), void *arg, const char **error_r);

/* COPY or MOVE (UIDPLUS): each of uids[0..n) that folder from holds gets,
 * in that order, the next UID of folder to, with the same body (shared,
 * no file copied), flags and keywords, and a new MODSEQ.  new_uids_r[i]
 * (when not NULL) gets the new UID of uids[i], 0 for a UID from does not
 * hold; *uidvalidity_r (when not NULL) gets to's UIDVALIDITY.  With move
 * the source messages are removed and recorded as expunged, and fn (may
 * be NULL) gets their UIDs in ascending order as with mailbox_expunge().
 * from == to is allowed.  Quota is the caller's business.  Returns the
 * number copied, MAILBOX_NONEXISTENT (either folder), or -1. */
int mailbox_copy(struct mailbox *mb, const char *from, const uint32_t *uids, size_t n,
                 const char *to, bool move, uint32_t *new_uids_r, uint32_t *uidvalidity_r,
                 void (*fn)(void *arg, uint32_t uid), void *arg, const char **error_r);

/* APPEND the message in fd (seekable plaintext, e.g. a memfd, read from
 * offset 0 to its end) to folder with flags, keywords (as for
 * mailbox_store_flags()) and internaldate (0: now).  The message is sealed
 * to the mailbox's public key into msg/ under a fresh random name and
 * made durable before its row commits; it is analysed once, as on import.
 * Returns 0 with *uid_r and *uidvalidity_r (APPENDUID; either may be
 * NULL), MAILBOX_NONEXISTENT, or -1. */
int mailbox_append(struct mailbox *mb, const char *folder, int fd, unsigned flags,
                   const char *keywords, int64_t internaldate, uint32_t *uid_r,
                   uint32_t *uidvalidity_r, const char **error_r);

/* CONDSTORE/QRESYNC: fn_changed gets each message of folder whose MODSEQ
 * is greater than since, in UID order (only uid, flags, keywords and
 * modseq are set, valid during the call; new messages count as changed),
 * then fn_vanished each UID expunged after since, ascending.  Either may
 * be NULL.  Returns the number of calls (or would-be calls),
 * MAILBOX_NONEXISTENT, or -1. */
int mailbox_changes(struct mailbox *mb, const char *folder, uint64_t since,
                    void (*fn_changed)(void *arg, const struct mailbox_message *m),
                    void (*fn_vanished)(void *arg, uint32_t uid), void *arg,
                    const char **error_r);

/* A cheap token (no scan) for IDLE and NOOP polling: it changes whenever
 * the store changed, through this handle or another connection or
 * process, and whenever a file arrived in (or left) drop/ (call
 * mailbox_import() then).  Compare tokens for equality only.  0 or -1. */
int mailbox_change_token(struct mailbox *mb, uint64_t *token_r, const char **error_r);

/* Full-text search (FTS5 MATCH syntax over headers and text) in folder:
 * fn gets each matching UID in UID order.  Count or -1. */
int mailbox_search_text(struct mailbox *mb, const char *folder, const char *query,
                        void (*fn)(void *arg, uint32_t uid), void *arg, const char **error_r);

/* The decoded header fields of each message of folder, in UID order, as
 * "Name: value" lines (mime.h search_headers: UTF-8, bounded), for SEARCH
 * keys on one field (FROM, SUBJECT, HEADER ...).  The text is valid during
 * the call.  Count, MAILBOX_NONEXISTENT, or -1. */
int mailbox_search_headers(struct mailbox *mb, const char *folder,
                           void (*fn)(void *arg, uint32_t uid, const char *headers), void *arg,
                           const char **error_r);

/* Write the body of the message stored in file (a name from
 * mailbox_messages) to out, authenticated.  The body is opened with the
 * file key recorded for the message (no X25519; a file that is not the
 * one recorded fails), or, when none is recorded (an upgraded store),
 * with the key pair.  So are all readers below.  Returns 0 or -1. */
int mailbox_read_body(struct mailbox *mb, const char *file, int out, const char **error_r);

/* The body of the message stored in file (m->file), decrypted and
 * authenticated, in a new memfd (offset 0; the caller closes it), for
 * readers that need a descriptor (the web API's MIME view); FETCH, RETR
 * and SEARCH read into memory (mailbox_body_read()).  Returns the
 * descriptor, or -1. */
int mailbox_open_body(struct mailbox *mb, const char *file, const char **error_r);

/* A message body decrypted into memory: what FETCH, RETR and SEARCH
 * HEADER serve from.  One buffer, reused from message to message (grown to
 * the largest one read): no file, mapping or allocation per message.
 * Zero it before the first read (MAILBOX_BODY_INIT); mailbox_body_release()
 * wipes the plaintext and frees it. */
struct sealfile_plain;
struct mailbox_body {
    const unsigned char *data; /* len bytes, then a NUL; valid until the next read */
    size_t len;
    bool whole;                /* data is the whole body, not a prefix (see want) */
    struct sealfile_plain *mem; /* the buffers, kept between reads */
};
#define MAILBOX_BODY_INIT {NULL, 0, false, NULL}

/* Decrypt and authenticate the body stored in file (m->file) into b.
 * want == 0 reads it whole; otherwise at least its first want bytes (whole
 * 64 KiB chunks of it; b->whole tells whether that was all of it), e.g.
 * the header that the part offsets say ends before want.  A body (or the
 * prefix asked for) larger than max fails.  Returns 0, or -1 with
 * *error_r and b->len 0. */
int mailbox_body_read(struct mailbox *mb, const char *file, uint64_t want, uint64_t max,
                      struct mailbox_body *b, const char **error_r);
/* mailbox_body_read() with the file key of a row of mailbox_messages_list()
 * (m->file_key) instead of a lookup: a FETCH reads its rows' keys with
 * them.  NULL: the message has none recorded (the key pair opens the
 * sealed key in the file, one X25519).  A wrong key fails. */
int mailbox_body_read_key(struct mailbox *mb, const char *file, const uint8_t *file_key,
                          uint64_t want, uint64_t max, struct mailbox_body *b,
                          const char **error_r);
/* Wipe and free b's buffers; b is then empty and may be read into again. */
void mailbox_body_release(struct mailbox_body *b);

struct mailbox_check {
    bool integrity_ok;
    char integrity[256];   /* "ok", or SQLite's first complaint */
    uint64_t messages, bytes;
    unsigned folders;
    unsigned bodies_checked, bodies_bad; /* with deep: every body file opened */
    unsigned pending;      /* files still in drop/ */
    unsigned orphans;      /* files in msg/ no message refers to (a crash after an
                            * expunge's commit, or before an append's) */
    unsigned orphans_removed; /* those of them old enough to be surely dead: removed */
};

/* Check the store (PRAGMA integrity_check, counts), remove orphan files
 * of msg/ older than a few minutes (younger ones may be an append of
 * another process about to commit) and, when deep, open and authenticate
 * every body file.  Returns 0 (the verdict is in *c), or -1 with *error_r
 * when the check itself could not run. */
int mailbox_verify(struct mailbox *mb, bool deep, struct mailbox_check *c, const char **error_r);

/* Total bytes of the stored messages and of drop/ (for the quota). */
int mailbox_usage(struct mailbox *mb, uint64_t *bytes_r, const char **error_r);

/* Remove mailbox_dir and everything under it (after its keys are gone).
 * Returns 0, or -1 with *error_r. */
int mailbox_destroy(const char *mailbox_dir, const char **error_r);

#endif
