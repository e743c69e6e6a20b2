/* mailbox-migrate.c — upgrading a mailbox store of an older format.
 *
 * The base schema in mailbox.c is format 2.  Every later format is a step
 * here: SQL, and, when what mime_analyse_fd() computes for a message
 * changed, a re-analysis of every stored body.  A new store gets the SQL
 * of all steps at creation (nothing to re-analyse).  An existing store is
 * upgraded when its owner opens it, since only a holder of the keys can
 * read the bodies: all missing steps run in one IMMEDIATE transaction,
 * the format is read again inside it (two sessions opening at once
 * upgrade once), and the bodies are analysed once however many steps ask
 * for it.  A crash rolls the whole upgrade back; the next open does it
 * again.  A body that cannot be read keeps its old figures (logged), so
 * one damaged file does not lock its owner out.
 *
 * Steps:
 *   3  messages.size is the IMAP size, every bare LF counted as CRLF
 *      (RFC 9051 §2.3.4: RFC822.SIZE matches FETCH BODY[]), and
 *      folders.bytes follows it (STATUS SIZE, the quota).
 *   4  subscriptions are a set of names of their own, no longer a column
 *      of folders: they outlive DELETE and stay put on RENAME (RFC 9051
 *      §6.3.5-7).
 *   5  search_headers (and so the full-text index) holds the MIME header
 *      fields of every part, for SEARCH TEXT (RFC 9051 §6.4.4).
 *   6  folders.recent_uid: the highest UID shown as \Recent to a session
 *      (RFC 3501 §2.3.2); the mail of an upgraded store is not recent.
 *   7  search_headers holds every top-level header field, decoded, for
 *      SEARCH TEXT ("the header ... of the message", RFC 9051 §6.4.4).
 *   8  file_keys: each body file's own 32-byte stream key, recorded when
 *      the message arrives (import, APPEND), so that reading it needs no
 *      X25519 (the sealed key in the file costs ~38 us to open, most of a
 *      FETCH).  A table of its own, not a column of messages: a column
 *      added there comes after the large search columns, and reading it
 *      would walk every row's overflow pages.  The rows of an upgraded
 *      store get their keys later, a bounded batch per import
 *      (mb_fill_file_keys(), from key_fill's cursor), so the first login
 *      after the upgrade stays fast; until then they are read as before.
 *   9  headers: each message's top header block, its empty line included
 *      (at most MB_HEADER_BLOCK_MAX bytes), recorded when it arrives, so
 *      that FETCH of header items opens no file (Dovecot answers them
 *      from its index cache).  A table of its own for the reason of 8.
 *      The rows of an upgraded store have none and are served from their
 *      files, as before; nothing is re-analysed.
 *  10  texts: search_headers and search_text leave messages for a table
 *      of their own, and the full-text index (rebuilt once) takes its
 *      content from there.  They were most of a messages row: with 4 KiB
 *      pages a row of a ~4 KiB message filled a page, so FETCH, SORT and
 *      the quota decrypted a page per message to read a file name and
 *      a few numbers (0.84 page reads per message in a FETCH of bodies);
 *      now some ten rows share a page. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "crypto/seal.h"
#include "mime/mime.h"
#include "store/mailbox-internal.h"

#define BASE_VERSION 2

static const struct {
    const char *sql;  /* "" when the step only re-analyses */
    bool reanalyse;
} steps[] = {
    /* 3 */ {"", true},
    /* 4 */ {"CREATE TABLE subscriptions (name TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID;"
             "INSERT INTO subscriptions (name) SELECT name FROM folders WHERE subscribed <> 0;"
             "ALTER TABLE folders DROP COLUMN subscribed;",
             false},
    /* 5 */ {"", true},
    /* 6 */ {"ALTER TABLE folders ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 0;"
             "UPDATE folders SET recent_uid = uidnext - 1;",
             false},
    /* 7 */ {"", true},
    /* 8 */ {"CREATE TABLE file_keys (id INTEGER PRIMARY KEY, key BLOB NOT NULL);"
             "CREATE TRIGGER messages_key_delete AFTER DELETE ON messages BEGIN"
             "  DELETE FROM file_keys WHERE id = old.id;"
             "END;"
             /* the messages up to upto have no key yet; next is where the fill goes on */
             "CREATE TABLE key_fill (next INTEGER NOT NULL, upto INTEGER NOT NULL);"
             "INSERT INTO key_fill SELECT 0, (SELECT max(id) FROM messages)"
             "  WHERE EXISTS (SELECT 1 FROM messages);",
             false},
    /* 9 */ {"CREATE TABLE headers (id INTEGER PRIMARY KEY, block BLOB NOT NULL);"
             "CREATE TRIGGER messages_header_delete AFTER DELETE ON messages BEGIN"
             "  DELETE FROM headers WHERE id = old.id;"
             "END;",
             false},
    /* 10 */ {"CREATE TABLE texts (id INTEGER PRIMARY KEY, search_headers TEXT NOT NULL,"
              "  search_text TEXT NOT NULL);"
              "INSERT INTO texts SELECT id, search_headers, search_text FROM messages;"
              "DROP TRIGGER messages_fts_insert;"
              "DROP TRIGGER messages_fts_delete;"
              "DROP TABLE messages_fts;"
              "ALTER TABLE messages DROP COLUMN search_headers;" /* rewrites the rows */
              "ALTER TABLE messages DROP COLUMN search_text;"
              "CREATE VIRTUAL TABLE messages_fts USING fts5 (search_headers, search_text,"
              "  content = 'texts', content_rowid = 'id',"
              "  tokenize = 'unicode61 remove_diacritics 2');"
              "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');"
              "CREATE TRIGGER texts_fts_insert AFTER INSERT ON texts BEGIN"
              "  INSERT INTO messages_fts (rowid, search_headers, search_text)"
              "  VALUES (new.id, new.search_headers, new.search_text);"
              "END;"
              "CREATE TRIGGER texts_fts_delete AFTER DELETE ON texts BEGIN"
              "  INSERT INTO messages_fts (messages_fts, rowid, search_headers, search_text)"
              "  VALUES ('delete', old.id, old.search_headers, old.search_text);"
              "END;"
              "CREATE TRIGGER messages_texts_delete AFTER DELETE ON messages BEGIN"
              "  DELETE FROM texts WHERE id = old.id;"
              "END;",
              false},
};

_Static_assert(BASE_VERSION + sizeof steps / sizeof steps[0] == MB_STORE_VERSION,
               "MB_STORE_VERSION is the last step");

static int set_version(sqlite3 *db, int version, const char **error_r)
{
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", version);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        *error_r = mb_errorf("store: %s", sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

/* The SQL of the steps after from, and the new format number. */
static int apply_sql(sqlite3 *db, int from, const char **error_r)
{
    for (int v = from + 1; v <= MB_STORE_VERSION; v++) {
        const char *sql = steps[v - BASE_VERSION - 1].sql;
        if (sql[0] != '\0' && sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            *error_r = mb_errorf("store upgrade to format %d: %s", v, sqlite3_errmsg(db));
            return -1;
        }
    }
    return set_version(db, MB_STORE_VERSION, error_r);
}

int mb_schema_finish(sqlite3 *db, const char **error_r)
{
    return apply_sql(db, BASE_VERSION, error_r);
}

int mb_format_read(sqlite3 *db, int *version_r, const char **error_r)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        *error_r = mb_errorf("store: %s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    *version_r = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (*version_r < BASE_VERSION || *version_r > MB_STORE_VERSION) {
        *error_r = mb_errorf("store format %d not supported", *version_r);
        return -1;
    }
    return 0;
}

/* --- re-analysis ------------------------------------------------------------------ */

struct body_ref {
    int64_t id;
    char *file;
};

static const char SQL_BODIES[] = "SELECT id, file FROM messages ORDER BY id";
static const char SQL_REANALYSED_SIZE[] = "UPDATE messages SET size = ?2 WHERE id = ?1";
/* The SQL of every step ran first: the texts are in texts (format 10),
 * whose triggers take the old entry out of messages_fts and put the new
 * one in (a REPLACE would not fire the delete trigger). */
static const char SQL_TEXTS_DELETE[] = "DELETE FROM texts WHERE id = ?1";
static const char SQL_FOLDER_BYTES[] =
    "UPDATE folders SET bytes = (SELECT coalesce(sum(g.size), 0) FROM mail m"
    " JOIN messages g ON g.id = m.message_id WHERE m.folder_id = folders.id)";

static int step_id(struct mailbox *mb, const char *sql, int64_t id, const char **error_r)
{
    sqlite3_stmt *st = mb_stmt(mb, sql, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    return mb_run(mb, st, error_r) == SQLITE_DONE ? 0 : -1;
}

static int record(struct mailbox *mb, int64_t id, const struct mime_summary *s,
                  const char **error_r)
{
    sqlite3_stmt *st = mb_stmt(mb, SQL_REANALYSED_SIZE, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)s->size);
    if (mb_run(mb, st, error_r) != SQLITE_DONE || step_id(mb, SQL_TEXTS_DELETE, id, error_r) < 0)
        return -1;
    return mb_insert_texts(mb, id, s, error_r);
}

/* Analyse one body again and record what changed; an unreadable body
 * keeps its row as it was. */
static int reanalyse_one(struct mailbox *mb, const struct body_ref *b, const char **error_r)
{
    const char *why;
    struct mime_summary s;
    int fd = mailbox_open_body(mb, b->file, &why);
    if (fd < 0) {
        log_warn("mailbox upgrade-skipped file=%s error=\"%s\"", b->file, why);
        return 0;
    }
    int ret = 0;
    if (mime_analyse_fd(fd, &s, &why) < 0)
        log_warn("mailbox upgrade-skipped file=%s error=\"%s\"", b->file, why);
    else {
        ret = record(mb, b->id, &s, error_r);
        mime_summary_free(&s);
    }
    close(fd);
    return ret;
}

static int reanalyse(struct mailbox *mb, const char **error_r)
{
    sqlite3_stmt *st = mb_stmt(mb, SQL_BODIES, error_r);
    if (st == NULL)
        return -1;
    struct body_ref *v = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) { /* collect first, then write */
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            v = sm_realloc(v, cap * sizeof *v);
        }
        v[n].id = sqlite3_column_int64(st, 0);
        v[n++].file = sm_strdup(mb_col_text(st, 1));
    }
    int ret = rc == SQLITE_DONE ? 0 : -1;
    if (ret < 0)
        *error_r = mb_db_error(mb, "store");
    mb_done(mb, st);
    for (size_t i = 0; i < n && ret == 0; i++)
        ret = reanalyse_one(mb, &v[i], error_r);
    for (size_t i = 0; i < n; i++)
        free(v[i].file);
    free(v);
    if (ret == 0)
        ret = mb_exec(mb, SQL_FOLDER_BYTES, error_r);
    if (ret == 0)
        log_info("mailbox upgraded bodies=%zu", n);
    return ret;
}

/* --- file keys of an upgraded store (format 8) --------------------------------------- */

static const char SQL_FILL_STATE[] = "SELECT next, upto FROM key_fill";
/* by id from the cursor: one range of the table, however many are done */
static const char SQL_FILL_ROWS[] =
    "SELECT g.id, g.file FROM messages g WHERE g.id > ?1 AND g.id <= ?2"
    " AND NOT EXISTS (SELECT 1 FROM file_keys k WHERE k.id = g.id) ORDER BY g.id LIMIT ?3";
static const char SQL_FILL_NEXT[] = "UPDATE key_fill SET next = ?1";
static const char SQL_FILL_DONE[] = "DELETE FROM key_fill";

/* The cursor: 1 with *next_r and *upto_r, 0 when nothing is left to fill, -1. */
static int fill_state(struct mailbox *mb, int64_t *next_r, int64_t *upto_r, const char **error_r)
{
    sqlite3_stmt *st = mb_stmt(mb, SQL_FILL_STATE, error_r);
    if (st == NULL)
        return -1;
    int rc = sqlite3_step(st);
    *next_r = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    *upto_r = rc == SQLITE_ROW ? sqlite3_column_int64(st, 1) : 0;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        *error_r = mb_db_error(mb, "store");
    mb_done(mb, st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* The rows to fill: up to max of (next, upto] into v; the count or -1. */
static int fill_rows(struct mailbox *mb, unsigned max, int64_t *upto_r, struct body_ref **v_r,
                     const char **error_r)
{
    int64_t next;
    int r = fill_state(mb, &next, upto_r, error_r);
    if (r <= 0)
        return r; /* nothing (left) to fill */
    sqlite3_stmt *st = mb_stmt(mb, SQL_FILL_ROWS, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, next);
    sqlite3_bind_int64(st, 2, *upto_r);
    sqlite3_bind_int64(st, 3, max);
    struct body_ref *v = sm_calloc(max ? max : 1, sizeof *v);
    int n = 0, rc = SQLITE_DONE;
    while ((unsigned)n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        v[n].id = sqlite3_column_int64(st, 0);
        v[n++].file = sm_strdup(mb_col_text(st, 1));
    }
    if ((unsigned)n < max && rc != SQLITE_DONE) {
        *error_r = mb_db_error(mb, "store");
        n = -1;
    }
    mb_done(mb, st);
    *v_r = v;
    return n;
}

/* One batch inside the transaction. */
static int fill_batch(struct mailbox *mb, unsigned max, const char **error_r)
{
    struct body_ref *v = NULL;
    int64_t upto;
    uint8_t *key = seal_secret_alloc(32);
    int n = fill_rows(mb, max, &upto, &v, error_r), ret = n < 0 ? -1 : 0, filled = 0;
    for (int i = 0; ret == 0 && i < n; i++) {
        const char *why;
        if (mb_body_key(mb, v[i].file, key, &why) < 0) /* stays on the sealed-key path */
            log_warn("mailbox key-fill-skipped file=%s error=\"%s\"", v[i].file, why);
        else if ((ret = mb_record_file_key(mb, v[i].id, key, error_r)) == 0)
            filled++;
    }
    seal_secret_free(&key);
    if (ret == 0 && n > 0 && (unsigned)n == max) { /* more may follow: move the cursor */
        sqlite3_stmt *st = mb_stmt(mb, SQL_FILL_NEXT, error_r);
        if (st != NULL)
            sqlite3_bind_int64(st, 1, v[n - 1].id);
        ret = st != NULL && mb_run(mb, st, error_r) == SQLITE_DONE ? 0 : -1;
    } else if (ret == 0 && upto > 0) {
        ret = mb_exec(mb, SQL_FILL_DONE, error_r); /* that was the last batch */
    }
    for (int i = 0; i < n; i++)
        free(v[i].file);
    free(v);
    if (ret == 0 && filled > 0)
        log_info("mailbox file-keys-recorded count=%d", filled);
    return ret;
}

int mb_fill_file_keys(struct mailbox *mb, unsigned max, const char **error_r)
{
    int64_t next, upto;
    struct mb_txn t;
    int r = fill_state(mb, &next, &upto, error_r); /* a read: no write lock when done */
    if (r <= 0)
        return r;
    if (mb_txn_begin(mb, &t, error_r) < 0)
        return -1;
    if (fill_batch(mb, max, error_r) < 0) {
        mb_txn_abort(mb, &t);
        return -1;
    }
    return mb_txn_commit(mb, &t, error_r);
}

/* --- the upgrade ---------------------------------------------------------------- */

int mb_migrate(struct mailbox *mb, const char **error_r)
{
    int version;
    if (mb_format_read(mb->db, &version, error_r) < 0)
        return -1;
    if (version == MB_STORE_VERSION)
        return 0;
    struct mb_txn t;
    if (mb_txn_begin(mb, &t, error_r) < 0)
        return -1;
    bool again = false;
    int ret = mb_format_read(mb->db, &version, error_r); /* inside the lock now */
    for (int v = version + 1; ret == 0 && v <= MB_STORE_VERSION; v++)
        again |= steps[v - BASE_VERSION - 1].reanalyse;
    if (ret == 0 && version < MB_STORE_VERSION)
        ret = apply_sql(mb->db, version, error_r);
    if (ret == 0 && again)
        ret = reanalyse(mb, error_r);
    if (ret < 0) {
        mb_txn_abort(mb, &t);
        return -1;
    }
    if (mb_txn_commit(mb, &t, error_r) < 0)
        return -1;
    if (version < MB_STORE_VERSION)
        log_info("mailbox format-upgraded from=%d to=%d", version, MB_STORE_VERSION);
    return 0;
}
