/* mailbox-internal.h — what the files of the mailbox store share
 * (mailbox.c, mailbox-folders.c, mailbox-flags.c, mailbox-append.c).
 *
 * Statements are prepared once per handle and kept (mb_stmt); a statement
 * that is still stepping (an iteration whose callback calls back into the
 * store) is not reused: the inner call gets a fresh one.
 *
 * Every mutating call runs inside an mb_txn: BEGIN IMMEDIATE ... COMMIT
 * on its own, or a SAVEPOINT inside a mailbox_begin() group, so a failing
 * call never leaves half its changes.  Body files follow the rows: files
 * of deleted bodies ("doomed") are removed only after the real commit;
 * files written by append ("fresh") are removed if their rows roll back. */
#ifndef SM_MAILBOX_INTERNAL_H
#define SM_MAILBOX_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/log.h"
#include "store/mailbox.h"

#define MB_STMT_CACHE 64
#define MB_STORE_VERSION 10 /* the format; mailbox-migrate.c upgrades older ones */
#define MB_FLAGS_ALL 31u /* every enum mailbox_flag bit */

struct mime_summary;

/* A growable list of file names. */
struct mb_names {
    char **v;
    size_t n, cap;
};

struct mailbox {
    char *dir;
    int area_fd[2];       /* drop/ and msg/ (O_PATH), for the body readers; -1: use dir */
    sqlite3 *db;
    uint8_t *pk; /* secret memory: the key pair, for message files */
    uint8_t *sk;
    struct {
        const char *sql; /* identity of the statement: a static string */
        sqlite3_stmt *st;
    } cache[MB_STMT_CACHE];
    bool in_group;        /* between mailbox_begin() and its end */
    bool group_lost;      /* SQLite rolled the group back itself (I/O error, full disk) */
    struct mb_names doomed; /* files to remove after the commit */
    struct mb_names fresh;  /* files to remove if the transaction rolls back */
    uint64_t commits;     /* transactions committed through this handle */
    uint64_t token;       /* mailbox_change_token(): what it last returned */
    uint64_t seen[4];     /* ... and the state it saw then */
    char *kept;           /* strings of the last mailbox_message_get() */
    char *kept_keywords;  /* keywords of the last mailbox_store_flags() */
};

/* The state of one mutating call (mb_txn_begin). */
struct mb_txn {
    size_t doomed_mark, fresh_mark;
    bool savepoint;
};

/* Error text in a thread-local buffer. */
const char *mb_db_error(struct mailbox *mb, const char *what);
const char *mb_errno_msg(const char *what);
const char *mb_errorf(const char *fmt, ...) SM_PRINTF(1, 2);

/* The prepared statement for sql (a static string: cached by address);
 * give it back with mb_done() (reset, bindings cleared).  NULL with
 * *error_r. */
sqlite3_stmt *mb_stmt(struct mailbox *mb, const char *sql, const char **error_r);
void mb_done(struct mailbox *mb, sqlite3_stmt *st);
/* Step st once and give it back: SQLITE_DONE, SQLITE_ROW (the row is
 * gone) or an error code (*error_r set). */
int mb_run(struct mailbox *mb, sqlite3_stmt *st, const char **error_r);
int mb_exec(struct mailbox *mb, const char *sql, const char **error_r);
const char *mb_col_text(sqlite3_stmt *st, int col);

void mb_names_add(struct mb_names *ns, const char *name);
void mb_names_truncate(struct mb_names *ns, size_t n);
void mb_names_free(struct mb_names *ns);

int mb_txn_begin(struct mailbox *mb, struct mb_txn *t, const char **error_r);
/* Commit (on failure everything of t is rolled back); returns 0 or -1. */
int mb_txn_commit(struct mailbox *mb, struct mb_txn *t, const char **error_r);
void mb_txn_abort(struct mailbox *mb, struct mb_txn *t);
/* Remove the doomed files (after a real commit); errors are logged. */
void mb_remove_doomed(struct mailbox *mb);

/* Formats (mailbox-migrate.c).  Bring a new store's base schema (format
 * 2) to MB_STORE_VERSION.  0 or -1. */
int mb_schema_finish(sqlite3 *db, const char **error_r);
/* The store's format in *version_r; -1 with *error_r when this binary
 * cannot open it. */
int mb_format_read(sqlite3 *db, int *version_r, const char **error_r);
/* Upgrade an opened store of an older format (see mailbox-migrate.c).
 * 0 or -1. */
int mb_migrate(struct mailbox *mb, const char **error_r);

/* The canonical form of a folder name for a lookup: "INBOX" and an
 * "INBOX/" prefix in upper case.  False when name is too long (no folder
 * can have it). */
bool mb_folder_canon(const char *name, char out[MAILBOX_FOLDER_MAX + 1]);
/* The id of folder name: 0 with *id_r (and its UIDVALIDITY in
 * *uidvalidity_r when not NULL), MAILBOX_NONEXISTENT, or -1. */
int mb_folder_id(struct mailbox *mb, const char *name, int64_t *id_r, uint32_t *uidvalidity_r,
                 const char **error_r);
/* The folder marked \\Junk (RFC 6154) in *id_r, or 0 when none is; 0 or -1. */
int mb_junk_folder(struct mailbox *mb, int64_t *id_r, const char **error_r);

/* The next UID of folder and a new MODSEQ for it (UIDNEXT and
 * HIGHESTMODSEQ move on).  0 or -1. */
int mb_next_uid(struct mailbox *mb, int64_t folder, uint32_t *uid_r, uint64_t *modseq_r,
                const char **error_r);
/* A new MODSEQ of folder.  0 or -1. */
int mb_next_modseq(struct mailbox *mb, int64_t folder, uint64_t *modseq_r,
                   const char **error_r);
/* Record a body: a messages row for the analysed file (its size is s->size,
 * the IMAP size), when file_key is not NULL the file's own key
 * (DROP_KEY_BYTES, in file_keys), and when fd >= 0 (the plaintext) its
 * header block (mb_record_header()).  0 with *id_r, or -1. */
/* The texts of message id for the full-text index (format 10); the
 * triggers on texts keep messages_fts in step.  0 or -1. */
int mb_insert_texts(struct mailbox *mb, int64_t id, const struct mime_summary *s,
                    const char **error_r);
int mb_insert_message(struct mailbox *mb, const char *file, int64_t received,
                      const struct mime_summary *s, const uint8_t *file_key, int fd,
                      int64_t *id_r, const char **error_r);
/* The largest header block the store keeps (format 9); a longer header
 * is served from the file. */
#define MB_HEADER_BLOCK_MAX (64 * 1024)
/* Record in headers the top header block of the message whose plaintext
 * is fd (read from offset 0 with pread), when it ends, empty line
 * included, within MB_HEADER_BLOCK_MAX bytes; nothing otherwise.  0 or -1. */
int mb_record_header(struct mailbox *mb, int64_t id, int fd, const char **error_r);
/* Record the file keys of up to max messages of an upgraded store that
 * have none yet (format 8; one X25519 each, once), in a transaction of
 * its own (nothing, not even a lock, once all are there).  0 or -1 (a
 * body that cannot be read is logged and skipped: it keeps the
 * sealed-key path). */
/* Record key (32 bytes) as the file key of message id.  0 or -1. */
int mb_record_file_key(struct mailbox *mb, int64_t id, const uint8_t key[32],
                       const char **error_r);
int mb_fill_file_keys(struct mailbox *mb, unsigned max, const char **error_r);
/* Read the body in file (msg/, else drop/) with the key pair, in full, and
 * hand out its file key (32 bytes; the caller wipes it).  0 or -1. */
int mb_body_key(struct mailbox *mb, const char *file, uint8_t key_r[32], const char **error_r);
/* Put message id into folder with the next UID and a new MODSEQ.  0 with
 * *uid_r, or -1. */
int mb_insert_mail(struct mailbox *mb, int64_t folder, int64_t message, unsigned flags,
                   const char *keywords, uint32_t *uid_r, const char **error_r);
/* Delete message id when no folder holds it any more (its file becomes
 * doomed).  0 or -1. */
int mb_release_message(struct mailbox *mb, int64_t message, const char **error_r);
/* Record uids[0..n) of folder as expunged under one new MODSEQ.  0 or -1. */
int mb_record_expunged(struct mailbox *mb, int64_t folder, const uint32_t *uids, size_t n,
                       const char **error_r);

/* Create a folder (and its parents) inside the caller's transaction;
 * canon is a validated canonical name.  0 with *id_r (when not NULL),
 * MAILBOX_EXISTS, or -1. */
int mb_folder_create_path(struct mailbox *mb, const char *canon, const char *special_use,
                          int64_t *id_r, const char **error_r);

/* Keywords of a STORE or APPEND: parsed, checked, de-duplicated. */
struct mb_keywords {
    char *buf;   /* the words, NUL-separated */
    char **v;
    unsigned n;
};
int mb_keywords_parse(const char *text, struct mb_keywords *k, const char **error_r);
/* Register k's words as used in folder (enforce: refuse past
 * MAILBOX_FOLDER_KEYWORDS) and give them the folder's spelling.  0 or -1. */
int mb_keywords_adopt(struct mailbox *mb, int64_t folder, struct mb_keywords *k, bool enforce,
                      const char **error_r);
/* The words joined by spaces into b. */
void mb_keywords_join(const struct mb_keywords *k, struct sm_buf *b);
void mb_keywords_free(struct mb_keywords *k);

/* The compact text of s's part offsets (messages.parts) into b. */
void mb_parts_encode(const struct mime_summary *s, struct sm_buf *b);

#endif
