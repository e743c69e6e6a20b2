/* mailbox.c — the encrypted mailbox store (see mailbox.h): its schema,
 * creating and opening it, the shared machinery (prepared statements,
 * transactions, errors) and the checks.  Folders are in mailbox-folders.c,
 * flags, expunge and copy in mailbox-flags.c, messages coming in (import
 * and append) in mailbox-append.c, reading in mailbox-read.c.
 *
 * SCHEMA (PRAGMA user_version 2, the base that mailbox-migrate.c brings to
 * MB_STORE_VERSION, which says what each later format changed).  store: one row, the last UIDVALIDITY
 * handed out (a new folder gets a greater one, even after DELETE and
 * CREATE of the same name).  folders: name, special-use role, UIDVALIDITY,
 * UIDNEXT, HIGHESTMODSEQ, and counts (messages, unseen,
 * \Deleted, bytes) kept by triggers on mail, so STATUS costs no scan.
 * messages: one row per stored body: its file name, size, dates, the IMAP
 * ENVELOPE/BODYSTRUCTURE/BODY texts, sort fields, the MIME part offsets
 * (parts, for FETCH BODY[section] without a re-parse); format 10 moved
 * the text the FTS5 index is built from to texts.  mail: a message in a folder: UID, flags,
 * keywords, MODSEQ; several mail rows may share one body (COPY), which is
 * deleted with the last of them.  expunged: UIDs removed from a folder and
 * the MODSEQ of their removal (QRESYNC VANISHED).  keywords: the keywords
 * each folder has used (FLAGS, PERMANENTFLAGS).  messages_fts is an
 * external-content FTS5 table over messages (texts from format 10;
 * Debian's SQLite predates contentless delete), kept in step by triggers.
 *
 * MODSEQ.  Each folder counts its own: every new message, flag change and
 * expunge takes ++HIGHESTMODSEQ of its folder.
 *
 * CRASHES.  Import and append make the body file durable before the row
 * that names it commits; a body is deleted by removing its row, and its
 * file only after the commit.  So a crash leaves at worst a file no row
 * names (an orphan, which mailbox_verify() removes), never a row without
 * its file.  The import's own guarantees are described in
 * mailbox-append.c. */
#include "store/mailbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "crypto/seal.h"
#include "store/drop.h"
#include "store/mailbox-internal.h"
#include "store/sealvfs.h"

#define ORPHAN_AGE 600 /* seconds before a file no row names is surely not an append in flight */

static const char schema[] =
    "CREATE TABLE store ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  last_uidvalidity INTEGER NOT NULL"
    ");"
    "CREATE TABLE folders ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  special_use TEXT NOT NULL DEFAULT '',"
    "  uidvalidity INTEGER NOT NULL,"
    "  uidnext INTEGER NOT NULL DEFAULT 1,"
    "  highestmodseq INTEGER NOT NULL DEFAULT 1,"
    "  subscribed INTEGER NOT NULL DEFAULT 0,"
    "  messages INTEGER NOT NULL DEFAULT 0,"
    "  unseen INTEGER NOT NULL DEFAULT 0,"
    "  deleted INTEGER NOT NULL DEFAULT 0,"
    "  bytes INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE TABLE messages ("
    "  id INTEGER PRIMARY KEY,"
    "  file TEXT NOT NULL UNIQUE,"
    "  size INTEGER NOT NULL,"
    "  internaldate INTEGER NOT NULL,"
    "  date INTEGER NOT NULL,"
    "  subject TEXT NOT NULL, from_addr TEXT NOT NULL, to_addr TEXT NOT NULL,"
    "  cc_addr TEXT NOT NULL, message_id TEXT NOT NULL,"
    "  envelope TEXT NOT NULL, bodystructure TEXT NOT NULL, body TEXT NOT NULL,"
    "  parts TEXT NOT NULL,"
    "  search_headers TEXT NOT NULL, search_text TEXT NOT NULL"
    ");"
    "CREATE TABLE mail ("
    "  folder_id INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,"
    "  uid INTEGER NOT NULL,"
    "  message_id INTEGER NOT NULL REFERENCES messages (id),"
    "  flags INTEGER NOT NULL DEFAULT 0,"
    "  keywords TEXT NOT NULL DEFAULT '',"
    "  modseq INTEGER NOT NULL,"
    "  PRIMARY KEY (folder_id, uid)"
    ") WITHOUT ROWID;"
    "CREATE INDEX mail_message ON mail (message_id);"
    "CREATE INDEX mail_modseq ON mail (folder_id, modseq);"
    "CREATE TABLE expunged ("
    "  folder_id INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,"
    "  uid INTEGER NOT NULL,"
    "  modseq INTEGER NOT NULL,"
    "  PRIMARY KEY (folder_id, uid)"
    ") WITHOUT ROWID;"
    "CREATE INDEX expunged_modseq ON expunged (folder_id, modseq);"
    "CREATE TABLE keywords ("
    "  folder_id INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,"
    "  keyword TEXT NOT NULL COLLATE NOCASE,"
    "  PRIMARY KEY (folder_id, keyword)"
    ") WITHOUT ROWID;"
    /* the counts of folders follow every change of mail */
    "CREATE TRIGGER mail_added AFTER INSERT ON mail BEGIN"
    "  UPDATE folders SET messages = messages + 1, unseen = unseen + (new.flags & 1 = 0),"
    "    deleted = deleted + (new.flags & 8 <> 0), bytes = bytes +"
    "    coalesce((SELECT size FROM messages WHERE id = new.message_id), 0)"
    "  WHERE id = new.folder_id;"
    "END;"
    "CREATE TRIGGER mail_removed AFTER DELETE ON mail BEGIN"
    "  UPDATE folders SET messages = messages - 1, unseen = unseen - (old.flags & 1 = 0),"
    "    deleted = deleted - (old.flags & 8 <> 0), bytes = bytes -"
    "    coalesce((SELECT size FROM messages WHERE id = old.message_id), 0)"
    "  WHERE id = old.folder_id;"
    "END;"
    "CREATE TRIGGER mail_flagged AFTER UPDATE OF flags ON mail"
    "  WHEN old.folder_id = new.folder_id AND (old.flags & 9) <> (new.flags & 9) BEGIN"
    "  UPDATE folders SET unseen = unseen - (old.flags & 1 = 0) + (new.flags & 1 = 0),"
    "    deleted = deleted - (old.flags & 8 <> 0) + (new.flags & 8 <> 0)"
    "  WHERE id = new.folder_id;"
    "END;"
    "CREATE TRIGGER mail_moved AFTER UPDATE OF folder_id ON mail"
    "  WHEN old.folder_id <> new.folder_id BEGIN"
    "  UPDATE folders SET messages = messages - 1, unseen = unseen - (old.flags & 1 = 0),"
    "    deleted = deleted - (old.flags & 8 <> 0), bytes = bytes -"
    "    coalesce((SELECT size FROM messages WHERE id = old.message_id), 0)"
    "  WHERE id = old.folder_id;"
    "  UPDATE folders SET messages = messages + 1, unseen = unseen + (new.flags & 1 = 0),"
    "    deleted = deleted + (new.flags & 8 <> 0), bytes = bytes +"
    "    coalesce((SELECT size FROM messages WHERE id = new.message_id), 0)"
    "  WHERE id = new.folder_id;"
    "END;"
    "CREATE VIRTUAL TABLE messages_fts USING fts5 (search_headers, search_text,"
    "  content = 'messages', content_rowid = 'id',"
    "  tokenize = 'unicode61 remove_diacritics 2');"
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN"
    "  INSERT INTO messages_fts (rowid, search_headers, search_text)"
    "  VALUES (new.id, new.search_headers, new.search_text);"
    "END;"
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN"
    "  INSERT INTO messages_fts (messages_fts, rowid, search_headers, search_text)"
    "  VALUES ('delete', old.id, old.search_headers, old.search_text);"
    "END;"
    "PRAGMA user_version = 2;";

static const struct {
    const char *name, *special_use;
} standard_folders[] = {
    {"INBOX", ""},         {"Drafts", "\\Drafts"}, {"Sent", "\\Sent"},
    {"Trash", "\\Trash"},  {"Junk", "\\Junk"},     {"Archive", "\\Archive"},
};
#define N_STANDARD (sizeof standard_folders / sizeof standard_folders[0])

/* --- errors and statements ------------------------------------------------------ */

static _Thread_local char errbuf[512];

const char *mb_errorf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    return errbuf;
}

static const char *db_error(sqlite3 *db, const char *what)
{
    return mb_errorf("%s: %s", what, sqlite3_errmsg(db));
}

const char *mb_db_error(struct mailbox *mb, const char *what)
{
    return db_error(mb->db, what);
}

const char *mb_errno_msg(const char *what)
{
    return mb_errorf("%s: %s", what, strerror(errno));
}

static int exec(sqlite3 *db, const char *sql, const char **error_r)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK)
        return 0;
    *error_r = db_error(db, "store");
    return -1;
}

int mb_exec(struct mailbox *mb, const char *sql, const char **error_r)
{
    return exec(mb->db, sql, error_r);
}

const char *mb_col_text(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t != NULL ? (const char *)t : "";
}

sqlite3_stmt *mb_stmt(struct mailbox *mb, const char *sql, const char **error_r)
{
    size_t free_slot = MB_STMT_CACHE;
    for (size_t i = 0; i < MB_STMT_CACHE; i++) {
        if (mb->cache[i].sql == sql && !sqlite3_stmt_busy(mb->cache[i].st))
            return mb->cache[i].st;
        if (mb->cache[i].sql == NULL && free_slot == MB_STMT_CACHE)
            free_slot = i;
    }
    bool cached = free_slot < MB_STMT_CACHE;
    for (size_t i = 0; i < MB_STMT_CACHE && cached; i++)
        cached = mb->cache[i].sql != sql; /* busy: the inner call gets its own */
    sqlite3_stmt *st;
    if (sqlite3_prepare_v3(mb->db, sql, -1, cached ? SQLITE_PREPARE_PERSISTENT : 0, &st, NULL) !=
        SQLITE_OK) {
        *error_r = db_error(mb->db, "store");
        return NULL;
    }
    if (cached) {
        mb->cache[free_slot].sql = sql;
        mb->cache[free_slot].st = st;
    }
    return st;
}

void mb_done(struct mailbox *mb, sqlite3_stmt *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < MB_STMT_CACHE; i++)
        if (mb->cache[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return;
        }
    sqlite3_finalize(st);
}

int mb_run(struct mailbox *mb, sqlite3_stmt *st, const char **error_r)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        *error_r = db_error(mb->db, "store");
    mb_done(mb, st);
    return rc;
}

/* --- lists of file names -------------------------------------------------------- */

void mb_names_add(struct mb_names *ns, const char *name)
{
    if (ns->n == ns->cap) {
        ns->cap = ns->cap ? ns->cap * 2 : 16;
        ns->v = sm_realloc(ns->v, ns->cap * sizeof *ns->v);
    }
    ns->v[ns->n++] = sm_strdup(name);
}

void mb_names_truncate(struct mb_names *ns, size_t n)
{
    while (ns->n > n)
        free(ns->v[--ns->n]);
}

void mb_names_free(struct mb_names *ns)
{
    mb_names_truncate(ns, 0);
    sm_freep(&ns->v);
    ns->cap = 0;
}

/* --- transactions --------------------------------------------------------------- */

void mb_remove_doomed(struct mailbox *mb)
{
    const char *error;
    for (size_t i = 0; i < mb->doomed.n; i++) {
        /* a body recorded by an import that died before moving it is still in drop/ */
        if (drop_remove(mb->dir, DROP_AREA_MSG, mb->doomed.v[i], &error) < 0 ||
            drop_remove(mb->dir, DROP_AREA_DROP, mb->doomed.v[i], &error) < 0)
            log_warn("mailbox remove-failed file=%s error=\"%s\"", mb->doomed.v[i], error);
    }
    if (mb->doomed.n > 0 && drop_sync(mb->dir, &error) < 0)
        log_warn("mailbox sync-failed error=\"%s\"", error);
    mb_names_truncate(&mb->doomed, 0);
}

/* Unlink the fresh files past mark: their rows never committed. */
static void remove_fresh(struct mailbox *mb, size_t mark)
{
    const char *error;
    for (size_t i = mark; i < mb->fresh.n; i++)
        if (drop_remove(mb->dir, DROP_AREA_MSG, mb->fresh.v[i], &error) < 0)
            log_warn("mailbox remove-failed file=%s error=\"%s\"", mb->fresh.v[i], error);
    mb_names_truncate(&mb->fresh, mark);
}

/* SQLite ended the group's transaction itself (an I/O error or a full
 * disk rolls it back): nothing of it will commit. */
static void group_gone(struct mailbox *mb)
{
    remove_fresh(mb, 0);
    mb_names_truncate(&mb->doomed, 0);
    mb->in_group = false;
    mb->group_lost = true;
}

int mb_txn_begin(struct mailbox *mb, struct mb_txn *t, const char **error_r)
{
    t->doomed_mark = mb->doomed.n;
    t->fresh_mark = mb->fresh.n;
    t->savepoint = mb->in_group;
    if (mb->group_lost) {
        *error_r = "the transaction was rolled back after an error";
        return -1;
    }
    return exec(mb->db, t->savepoint ? "SAVEPOINT mailbox_call" : "BEGIN IMMEDIATE", error_r);
}

void mb_txn_abort(struct mailbox *mb, struct mb_txn *t)
{
    if (!t->savepoint) {
        sqlite3_exec(mb->db, "ROLLBACK", NULL, NULL, NULL);
        remove_fresh(mb, t->fresh_mark);
        mb_names_truncate(&mb->doomed, t->doomed_mark);
        return;
    }
    if (sqlite3_get_autocommit(mb->db)) {
        group_gone(mb);
        return;
    }
    sqlite3_exec(mb->db, "ROLLBACK TO mailbox_call; RELEASE mailbox_call", NULL, NULL, NULL);
    remove_fresh(mb, t->fresh_mark);
    mb_names_truncate(&mb->doomed, t->doomed_mark);
}

int mb_txn_commit(struct mailbox *mb, struct mb_txn *t, const char **error_r)
{
    if (exec(mb->db, t->savepoint ? "RELEASE mailbox_call" : "COMMIT", error_r) < 0) {
        mb_txn_abort(mb, t);
        return -1;
    }
    if (!t->savepoint) {
        mb_names_truncate(&mb->fresh, t->fresh_mark); /* their rows are durable now */
        mb_remove_doomed(mb);
    }
    return 0;
}

int mailbox_begin(struct mailbox *mb, const char **error_r)
{
    if (mb->in_group) {
        *error_r = "a transaction is open already";
        return -1;
    }
    if (exec(mb->db, "BEGIN IMMEDIATE", error_r) < 0)
        return -1;
    mb->in_group = true;
    mb->group_lost = false;
    return 0;
}

int mailbox_commit(struct mailbox *mb, const char **error_r)
{
    if (!mb->in_group) {
        *error_r = mb->group_lost ? "the transaction was rolled back after an error"
                                  : "no transaction is open";
        mb->group_lost = false;
        return -1;
    }
    mb->in_group = false;
    if (exec(mb->db, "COMMIT", error_r) < 0) {
        sqlite3_exec(mb->db, "ROLLBACK", NULL, NULL, NULL);
        remove_fresh(mb, 0);
        mb_names_truncate(&mb->doomed, 0);
        return -1;
    }
    mb_names_truncate(&mb->fresh, 0);
    mb_remove_doomed(mb);
    return 0;
}

void mailbox_rollback(struct mailbox *mb)
{
    mb->group_lost = false;
    if (!mb->in_group)
        return;
    mb->in_group = false;
    sqlite3_exec(mb->db, "ROLLBACK", NULL, NULL, NULL);
    remove_fresh(mb, 0);
    mb_names_truncate(&mb->doomed, 0);
}

/* --- creation ------------------------------------------------------------------- */

static int store_path(char *out, size_t outlen, const char *mailbox_dir, const char *name,
                      const char **error_r)
{
    int n = snprintf(out, outlen, "%s/%s", mailbox_dir, name);
    if (n < 0 || (size_t)n >= outlen) {
        *error_r = "mailbox path too long";
        return -1;
    }
    return 0;
}

static int make_dirs(const char *mailbox_dir, const char **error_r)
{
    char path[4096];
    if (mkdir(mailbox_dir, 0700) < 0) {
        *error_r = errno == EEXIST ? "mailbox directory exists already"
                                   : mb_errno_msg("cannot create mailbox directory");
        return -1;
    }
    static const char *const subs[] = {"drop", "msg"};
    for (size_t i = 0; i < 2; i++)
        if (store_path(path, sizeof path, mailbox_dir, subs[i], error_r) < 0 ||
            mkdir(path, 0700) < 0) {
            *error_r = mb_errno_msg("cannot create mailbox directory");
            return -1;
        }
    return 0;
}

static int add_folders(sqlite3 *db, const char **error_r)
{
    sqlite3_stmt *st, *sub;
    if (sqlite3_prepare_v2(db, "INSERT INTO folders (name, special_use, uidvalidity)"
                               " VALUES (?1, ?2, ?3)", -1, &st, NULL) != SQLITE_OK) {
        *error_r = db_error(db, "store");
        return -1;
    }
    if (sqlite3_prepare_v2(db, "INSERT INTO subscriptions (name) VALUES (?1)", -1, &sub,
                           NULL) != SQLITE_OK) {
        *error_r = db_error(db, "store");
        sqlite3_finalize(st);
        return -1;
    }
    /* RFC 9051 §2.3.1.1: UIDVALIDITY must grow if a folder is recreated;
     * starting from the clock keeps it growing across a re-created store */
    uint32_t validity = (uint32_t)time(NULL);
    int ret = 0;
    for (size_t i = 0; i < N_STANDARD && ret == 0; i++) {
        sqlite3_bind_text(st, 1, standard_folders[i].name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, standard_folders[i].special_use, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, validity + (uint32_t)i);
        sqlite3_bind_text(sub, 1, standard_folders[i].name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE || sqlite3_step(sub) != SQLITE_DONE) {
            *error_r = db_error(db, "store");
            ret = -1;
        }
        sqlite3_reset(st);
        sqlite3_reset(sub);
    }
    sqlite3_finalize(st);
    sqlite3_finalize(sub);
    if (ret < 0)
        return -1;
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO store (id, last_uidvalidity) VALUES (1, %u)",
             validity + (uint32_t)N_STANDARD - 1);
    return exec(db, sql, error_r);
}

int mailbox_create(const char *mailbox_dir, const uint8_t *mk, const char **error_r)
{
    char path[4096];
    sqlite3 *db = NULL;

    if (store_path(path, sizeof path, mailbox_dir, "store.db", error_r) < 0 ||
        make_dirs(mailbox_dir, error_r) < 0)
        return -1;
    if (sealvfs_open(path, mk, true, &db, error_r) < 0)
        return -1;
    int ret = exec(db, "BEGIN IMMEDIATE", error_r) < 0 || exec(db, schema, error_r) < 0 ||
                      mb_schema_finish(db, error_r) < 0 || add_folders(db, error_r) < 0 ||
                      exec(db, "COMMIT", error_r) < 0
                  ? -1
                  : 0;
    sealvfs_close(&db);
    return ret;
}

/* --- opening -------------------------------------------------------------------- */

static int count_commit(void *arg)
{
    ((struct mailbox *)arg)->commits++;
    return 0; /* let it commit */
}

struct mailbox *mailbox_open(const char *mailbox_dir, const uint8_t *mk,
                             const uint8_t pk[MAILBOX_KEY_BYTES],
                             const uint8_t sk[MAILBOX_KEY_BYTES], const char **error_r)
{
    char path[4096];
    sqlite3 *db;
    struct stat st;

    if (store_path(path, sizeof path, mailbox_dir, "store.db", error_r) < 0)
        return NULL;
    if (stat(path, &st) < 0) {
        *error_r = mb_errno_msg("mailbox store");
        return NULL;
    }
    if (sealvfs_open(path, mk, false, &db, error_r) < 0)
        return NULL;
    int version;
    if (mb_format_read(db, &version, error_r) < 0) {
        sealvfs_close(&db);
        return NULL;
    }
    struct mailbox *mb = sm_malloc(sizeof *mb);
    mb->dir = sm_strdup(mailbox_dir);
    for (int a = DROP_AREA_DROP; a <= DROP_AREA_MSG; a++) {
        const char *ignored; /* without it, the readers walk the path each time */
        mb->area_fd[a] = drop_open_area(mailbox_dir, (enum drop_area)a, &ignored);
    }
    mb->db = db;
    mb->pk = seal_secret_alloc(MAILBOX_KEY_BYTES);
    mb->sk = seal_secret_alloc(MAILBOX_KEY_BYTES);
    memcpy(mb->pk, pk, MAILBOX_KEY_BYTES);
    memcpy(mb->sk, sk, MAILBOX_KEY_BYTES);
    sqlite3_commit_hook(db, count_commit, mb);
    if (version != MB_STORE_VERSION && mb_migrate(mb, error_r) < 0) {
        mailbox_close(&mb);
        return NULL;
    }
    return mb;
}

void mailbox_close(struct mailbox **mbp)
{
    struct mailbox *mb = *mbp;
    if (mb == NULL)
        return;
    mailbox_rollback(mb);
    for (size_t i = 0; i < MB_STMT_CACHE; i++)
        sqlite3_finalize(mb->cache[i].st);
    sqlite3_commit_hook(mb->db, NULL, NULL);
    sealvfs_close(&mb->db);
    seal_secret_free(&mb->pk);
    seal_secret_free(&mb->sk);
    mb_names_free(&mb->doomed);
    mb_names_free(&mb->fresh);
    free(mb->kept);
    free(mb->kept_keywords);
    free(mb->dir);
    for (int a = DROP_AREA_DROP; a <= DROP_AREA_MSG; a++)
        if (mb->area_fd[a] >= 0)
            close(mb->area_fd[a]);
    sm_freep(mbp);
}

/* --- change token --------------------------------------------------------------- */

static const char SQL_DATA_VERSION[] = "PRAGMA data_version";

int mailbox_change_token(struct mailbox *mb, uint64_t *token_r, const char **error_r)
{
    char path[4096];
    struct stat st;
    sqlite3_stmt *q = mb_stmt(mb, SQL_DATA_VERSION, error_r);
    if (q == NULL)
        return -1;
    if (sqlite3_step(q) != SQLITE_ROW) {
        *error_r = mb_db_error(mb, "store");
        mb_done(mb, q);
        return -1;
    }
    uint64_t now[4] = {(uint64_t)sqlite3_column_int64(q, 0), mb->commits, 0, 0};
    mb_done(mb, q);
    /* deliveries write drop/ without the store: its change time tells */
    if (store_path(path, sizeof path, mb->dir, "drop", error_r) < 0)
        return -1;
    if (stat(path, &st) == 0) {
        now[2] = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
        now[3] = (uint64_t)st.st_ctim.tv_sec * 1000000000u + (uint64_t)st.st_ctim.tv_nsec;
    }
    if (memcmp(now, mb->seen, sizeof now) != 0) {
        memcpy(mb->seen, now, sizeof now);
        mb->token++;
    }
    *token_r = mb->token;
    return 0;
}

/* --- checks --------------------------------------------------------------------- */

static int integrity(struct mailbox *mb, struct mailbox_check *c, const char **error_r)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(mb->db, "PRAGMA integrity_check(1)", -1, &st, NULL) != SQLITE_OK) {
        *error_r = mb_db_error(mb, "store");
        return -1;
    }
    int rc = sqlite3_step(st);
    snprintf(c->integrity, sizeof c->integrity, "%s",
             rc == SQLITE_ROW ? mb_col_text(st, 0) : sqlite3_errmsg(mb->db));
    c->integrity_ok = rc == SQLITE_ROW && strcmp(c->integrity, "ok") == 0;
    sqlite3_finalize(st);
    return 0;
}

static void count_pending(void *arg, const char *name)
{
    (void)name;
    ((struct mailbox_check *)arg)->pending++;
}

struct deep_check {
    struct mailbox *mb;
    struct mailbox_check *c;
};

static void check_body(void *arg, const struct mailbox_message *m)
{
    struct deep_check *d = arg;
    const char *why;
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    d->c->bodies_checked++;
    if (fd < 0 || mailbox_read_body(d->mb, m->file, fd, &why) < 0) {
        d->c->bodies_bad++;
        log_warn("mailbox body-damaged uid=%u file=%s", m->uid, m->file);
    }
    if (fd >= 0)
        close(fd);
}

static void count_folder(void *arg, const struct mailbox_folder *f)
{
    struct mailbox_check *c = arg;
    c->folders++;
    c->messages += f->messages;
    c->bytes += f->bytes;
}

static void check_folder_bodies(void *arg, const struct mailbox_folder *f)
{
    struct deep_check *d = arg;
    const char *error;
    mailbox_messages(d->mb, f->name, check_body, d, &error);
}

static const char SQL_FILE_KNOWN[] = "SELECT 1 FROM messages WHERE file = ?1";

/* A file of msg/ no row names: count it, and remove it when it is old
 * enough that no append can be about to commit it. */
static int check_orphan(struct mailbox *mb, int dfd, const char *name, struct mailbox_check *c,
                        const char **error_r)
{
    struct stat st;
    bool tmp = strncmp(name, ".tmp-", 5) == 0;
    if (!tmp && !drop_name_valid(name))
        return 0;
    if (!tmp) {
        sqlite3_stmt *q = mb_stmt(mb, SQL_FILE_KNOWN, error_r);
        if (q == NULL)
            return -1;
        sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
        int rc = mb_run(mb, q, error_r);
        if (rc != SQLITE_DONE)
            return rc == SQLITE_ROW ? 0 : -1;
        c->orphans++;
    }
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        time(NULL) - st.st_mtime > ORPHAN_AGE && unlinkat(dfd, name, 0) == 0) {
        c->orphans_removed += !tmp;
        log_info("mailbox orphan-removed file=%s", name);
    }
    return 0;
}

static int check_orphans(struct mailbox *mb, struct mailbox_check *c, const char **error_r)
{
    char path[4096];
    if (store_path(path, sizeof path, mb->dir, "msg", error_r) < 0)
        return -1;
    DIR *d = opendir(path);
    if (d == NULL) {
        *error_r = mb_errno_msg("cannot list message directory");
        return -1;
    }
    struct dirent *de;
    int ret = 0;
    while (ret == 0 && (de = readdir(d)) != NULL)
        ret = check_orphan(mb, dirfd(d), de->d_name, c, error_r);
    closedir(d);
    if (ret == 0 && c->orphans_removed > 0)
        ret = drop_sync(mb->dir, error_r);
    return ret;
}

int mailbox_verify(struct mailbox *mb, bool deep, struct mailbox_check *c, const char **error_r)
{
    memset(c, 0, sizeof *c);
    if (integrity(mb, c, error_r) < 0)
        return -1;
    if (!c->integrity_ok)
        return 0;
    if (mailbox_folders(mb, count_folder, c, error_r) < 0 ||
        drop_list(mb->dir, count_pending, c, error_r) < 0 || check_orphans(mb, c, error_r) < 0)
        return -1;
    struct deep_check d = {mb, c};
    if (deep && mailbox_folders(mb, check_folder_bodies, &d, error_r) < 0)
        return -1;
    return 0;
}

struct drop_bytes {
    const char *dir;
    uint64_t bytes;
};

static void add_drop_size(void *arg, const char *name)
{
    struct drop_bytes *d = arg;
    char path[4096];
    struct stat st;
    int n = snprintf(path, sizeof path, "%s/drop/%s", d->dir, name);
    if (n > 0 && (size_t)n < sizeof path && stat(path, &st) == 0)
        d->bytes += (uint64_t)st.st_size;
}

static const char SQL_USAGE[] = "SELECT coalesce(sum(size), 0) FROM messages";

int mailbox_usage(struct mailbox *mb, uint64_t *bytes_r, const char **error_r)
{
    struct drop_bytes d = {mb->dir, 0};
    sqlite3_stmt *st = mb_stmt(mb, SQL_USAGE, error_r);
    if (st == NULL)
        return -1;
    if (sqlite3_step(st) != SQLITE_ROW) {
        *error_r = mb_db_error(mb, "store");
        mb_done(mb, st);
        return -1;
    }
    uint64_t stored = (uint64_t)sqlite3_column_int64(st, 0);
    mb_done(mb, st);
    if (drop_list(mb->dir, add_drop_size, &d, error_r) < 0)
        return -1;
    *bytes_r = stored + d.bytes;
    return 0;
}

/* --- removal -------------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int mailbox_destroy(const char *mailbox_dir, const char **error_r)
{
    if (nftw(mailbox_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT) {
        *error_r = mb_errno_msg("cannot remove mailbox files");
        return -1;
    }
    return 0;
}
