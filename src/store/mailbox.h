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
 * message (see mailbox.c).  A handle belongs to one thread at a time. */
#ifndef SM_MAILBOX_H
#define SM_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mailbox;

#define MAILBOX_KEY_BYTES 32
#define MAILBOX_FOLDER_MAX 255

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
 * key pair (for reading message files).  A wrong mk or a damaged store
 * fails here.  Returns NULL with *error_r. */
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
 * in drop/ and counted as refused, never imported.  Returns 0, or -1 with
 * *error_r (then nothing of this call was committed). */
int mailbox_import(struct mailbox *mb, struct mailbox_import_stats *st, const char **error_r);

struct mailbox_folder {
    char name[MAILBOX_FOLDER_MAX + 1];
    char special_use[16];  /* "\\Sent", ... or "" */
    uint32_t uidvalidity, uidnext;
    uint64_t highestmodseq;
    uint64_t messages, unseen, bytes;
};

/* Call fn for each folder in name order (INBOX first).  Count or -1. */
int mailbox_folders(struct mailbox *mb, void (*fn)(void *arg, const struct mailbox_folder *f),
                    void *arg, const char **error_r);

struct mailbox_message {
    uint32_t uid;
    unsigned flags;        /* enum mailbox_flag bits */
    uint64_t size;
    int64_t internaldate;
    const char *subject, *from, *envelope, *bodystructure;
    const char *file;      /* name of the body file (drop.h) */
};

/* Call fn for each message of folder in UID order.  Count or -1. */
int mailbox_messages(struct mailbox *mb, const char *folder,
                     void (*fn)(void *arg, const struct mailbox_message *m), void *arg,
                     const char **error_r);

/* Full-text search (FTS5 MATCH syntax over headers and text) in folder:
 * fn gets each matching UID in UID order.  Count or -1. */
int mailbox_search_text(struct mailbox *mb, const char *folder, const char *query,
                        void (*fn)(void *arg, uint32_t uid), void *arg, const char **error_r);

/* Write the body of the message stored in file (a name from
 * mailbox_messages) to out, authenticated.  Returns 0 or -1. */
int mailbox_read_body(struct mailbox *mb, const char *file, int out, const char **error_r);

struct mailbox_check {
    bool integrity_ok;
    char integrity[256];   /* "ok", or SQLite's first complaint */
    uint64_t messages, bytes;
    unsigned folders;
    unsigned bodies_checked, bodies_bad; /* with deep: every body file opened */
    unsigned pending;      /* files still in drop/ */
};

/* Check the store (PRAGMA integrity_check, counts) and, when deep, open
 * and authenticate every body file.  Returns 0 (the verdict is in *c), or
 * -1 with *error_r when the check itself could not run. */
int mailbox_verify(struct mailbox *mb, bool deep, struct mailbox_check *c, const char **error_r);

/* Total bytes of the stored messages and of drop/ (for the quota). */
int mailbox_usage(struct mailbox *mb, uint64_t *bytes_r, const char **error_r);

/* Remove mailbox_dir and everything under it (after its keys are gone).
 * Returns 0, or -1 with *error_r. */
int mailbox_destroy(const char *mailbox_dir, const char **error_r);

#endif
