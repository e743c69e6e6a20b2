/* mailbox.c — the encrypted mailbox store (see mailbox.h).
 *
 * SCHEMA.  folders (name, special-use role, UIDVALIDITY, UIDNEXT,
 * HIGHESTMODSEQ); messages (one row per stored body: its file name, size,
 * internal date, the IMAP ENVELOPE/BODYSTRUCTURE/BODY texts, sort fields,
 * and the text the FTS5 index is built from); mail (a message in a
 * folder: UID, flags, keywords, MODSEQ).  messages_fts is an external-
 * content FTS5 table over messages (Debian's SQLite predates contentless
 * delete), kept in step by triggers.
 *
 * IMPORT AND CRASHES.  One transaction records every drop file; after the
 * commit the files are renamed from drop/ to msg/ and both directories
 * are synced.  A crash before the commit leaves the files in drop/ and
 * nothing in the store: the next import does it all again.  A crash after
 * it leaves some recorded files in drop/: the next import finds their
 * names in messages.file and only moves them (and readers look in drop/
 * when msg/ lacks a file).  A file delivered twice under the same name is
 * recorded once (messages.file is UNIQUE).  So nothing is lost and
 * nothing is duplicated, whenever the process dies. */
#include "store/mailbox.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "crypto/seal.h"
#include "mime/mime.h"
#include "store/drop.h"
#include "store/sealvfs.h"

#define IMPORT_BATCH_MAX 100000 /* files one import takes; the rest wait for the next */

struct mailbox {
    char *dir;
    sqlite3 *db;
    uint8_t *pk; /* secret memory: the key pair, for message files */
    uint8_t *sk;
};

static const char schema[] =
    "CREATE TABLE folders ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  special_use TEXT NOT NULL DEFAULT '',"
    "  uidvalidity INTEGER NOT NULL,"
    "  uidnext INTEGER NOT NULL DEFAULT 1,"
    "  highestmodseq INTEGER NOT NULL DEFAULT 1,"
    "  subscribed INTEGER NOT NULL DEFAULT 1"
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
    "PRAGMA user_version = 1;";

static const struct {
    const char *name, *special_use;
} standard_folders[] = {
    {"INBOX", ""},         {"Drafts", "\\Drafts"}, {"Sent", "\\Sent"},
    {"Trash", "\\Trash"},  {"Junk", "\\Junk"},     {"Archive", "\\Archive"},
};

static _Thread_local char errbuf[512];

static const char *db_error(sqlite3 *db, const char *what)
{
    snprintf(errbuf, sizeof errbuf, "%s: %s", what, sqlite3_errmsg(db));
    return errbuf;
}

static const char *errno_msg(const char *what)
{
    snprintf(errbuf, sizeof errbuf, "%s: %s", what, strerror(errno));
    return errbuf;
}

static int exec(sqlite3 *db, const char *sql, const char **error_r)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK)
        return 0;
    *error_r = db_error(db, "store");
    return -1;
}

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

/* --- creation ------------------------------------------------------------------- */

static int make_dirs(const char *mailbox_dir, const char **error_r)
{
    char path[4096];
    if (mkdir(mailbox_dir, 0700) < 0) {
        *error_r = errno == EEXIST ? "mailbox directory exists already"
                                   : errno_msg("cannot create mailbox directory");
        return -1;
    }
    static const char *const subs[] = {"drop", "msg"};
    for (size_t i = 0; i < 2; i++)
        if (store_path(path, sizeof path, mailbox_dir, subs[i], error_r) < 0 ||
            mkdir(path, 0700) < 0) {
            *error_r = errno_msg("cannot create mailbox directory");
            return -1;
        }
    return 0;
}

static int add_folders(sqlite3 *db, const char **error_r)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "INSERT INTO folders (name, special_use, uidvalidity)"
                               " VALUES (?1, ?2, ?3)", -1, &st, NULL) != SQLITE_OK) {
        *error_r = db_error(db, "store");
        return -1;
    }
    /* RFC 9051 §2.3.1.1: UIDVALIDITY must grow if a folder is recreated */
    uint32_t validity = (uint32_t)time(NULL);
    for (size_t i = 0; i < sizeof standard_folders / sizeof standard_folders[0]; i++) {
        sqlite3_bind_text(st, 1, standard_folders[i].name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, standard_folders[i].special_use, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, validity);
        if (sqlite3_step(st) != SQLITE_DONE) {
            *error_r = db_error(db, "store");
            sqlite3_finalize(st);
            return -1;
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return 0;
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
                      add_folders(db, error_r) < 0 || exec(db, "COMMIT", error_r) < 0
                  ? -1
                  : 0;
    sealvfs_close(&db);
    return ret;
}

/* --- opening -------------------------------------------------------------------- */

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
        *error_r = errno_msg("mailbox store");
        return NULL;
    }
    if (sealvfs_open(path, mk, false, &db, error_r) < 0)
        return NULL;
    struct mailbox *mb = sm_malloc(sizeof *mb);
    mb->dir = sm_strdup(mailbox_dir);
    mb->db = db;
    mb->pk = seal_secret_alloc(MAILBOX_KEY_BYTES);
    mb->sk = seal_secret_alloc(MAILBOX_KEY_BYTES);
    memcpy(mb->pk, pk, MAILBOX_KEY_BYTES);
    memcpy(mb->sk, sk, MAILBOX_KEY_BYTES);
    return mb;
}

void mailbox_close(struct mailbox **mbp)
{
    struct mailbox *mb = *mbp;
    if (mb == NULL)
        return;
    sealvfs_close(&mb->db);
    seal_secret_free(&mb->pk);
    seal_secret_free(&mb->sk);
    free(mb->dir);
    sm_freep(mbp);
}

/* --- import --------------------------------------------------------------------- */

struct names {
    char **v;
    size_t n, cap;
};

static void names_add(void *arg, const char *name)
{
    struct names *ns = arg;
    if (ns->n == IMPORT_BATCH_MAX)
        return;
    if (ns->n == ns->cap) {
        ns->cap = ns->cap ? ns->cap * 2 : 64;
        ns->v = sm_realloc(ns->v, ns->cap * sizeof *ns->v);
    }
    ns->v[ns->n++] = sm_strdup(name);
}

static void names_free(struct names *ns)
{
    for (size_t i = 0; i < ns->n; i++)
        free(ns->v[i]);
    free(ns->v);
}

/* Statements of one import, prepared once. */
struct importer {
    struct mailbox *mb;
    sqlite3_stmt *known, *insert_message, *insert_mail, *bump;
    int64_t inbox;
    struct mailbox_import_stats *stats;
};

static int importer_prepare(struct importer *im, const char **error_r)
{
    sqlite3 *db = im->mb->db;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT id FROM folders WHERE name = 'INBOX'", -1, &st, NULL) !=
            SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        *error_r = db_error(db, "store has no INBOX");
        sqlite3_finalize(st);
        return -1;
    }
    im->inbox = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    const char *sql[] = {
        "SELECT 1 FROM messages WHERE file = ?1",
        "INSERT INTO messages (file, size, internaldate, date, subject, from_addr, to_addr,"
        " cc_addr, message_id, envelope, bodystructure, body, search_headers, search_text)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        "INSERT INTO mail (folder_id, uid, message_id, modseq)"
        " SELECT id, uidnext, ?2, highestmodseq + 1 FROM folders WHERE id = ?1",
        "UPDATE folders SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1"
        " WHERE id = ?1",
    };
    sqlite3_stmt **out[] = {&im->known, &im->insert_message, &im->insert_mail, &im->bump};
    for (size_t i = 0; i < 4; i++)
        if (sqlite3_prepare_v2(db, sql[i], -1, out[i], NULL) != SQLITE_OK) {
            *error_r = db_error(db, "store");
            return -1;
        }
    return 0;
}

static void importer_finish(struct importer *im)
{
    sqlite3_finalize(im->known);
    sqlite3_finalize(im->insert_message);
    sqlite3_finalize(im->insert_mail);
    sqlite3_finalize(im->bump);
}

static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* 1 when file is recorded in the store already. */
static int is_known(struct importer *im, const char *file)
{
    sqlite3_bind_text(im->known, 1, file, -1, SQLITE_STATIC);
    int rc = run(im->known);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static void bind_summary(sqlite3_stmt *st, const char *file, uint64_t size, int64_t received,
                         const struct mime_summary *s)
{
    sqlite3_bind_text(st, 1, file, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)size);
    sqlite3_bind_int64(st, 3, received);
    sqlite3_bind_int64(st, 4, s->date);
    const char *text[] = {s->subject, s->from, s->to, s->cc, s->message_id, s->envelope,
                          s->bodystructure, s->body, s->search_headers, s->search_text};
    for (int i = 0; i < 10; i++)
        sqlite3_bind_text(st, 5 + i, text[i] != NULL ? text[i] : "", -1, SQLITE_STATIC);
}

/* Record one analysed message in INBOX. */
static int record(struct importer *im, const char *file, uint64_t size, int64_t received,
                  const struct mime_summary *s, const char **error_r)
{
    bind_summary(im->insert_message, file, size, received, s);
    if (run(im->insert_message) != SQLITE_DONE)
        goto fail;
    sqlite3_bind_int64(im->insert_mail, 1, im->inbox);
    sqlite3_bind_int64(im->insert_mail, 2, sqlite3_last_insert_rowid(im->mb->db));
    if (run(im->insert_mail) != SQLITE_DONE)
        goto fail;
    sqlite3_bind_int64(im->bump, 1, im->inbox);
    if (run(im->bump) != SQLITE_DONE)
        goto fail;
    return 0;
fail:
    *error_r = db_error(im->mb->db, "store");
    return -1;
}

/* Open, analyse and record one drop file.  1: the store has it (now or
 * from an earlier import); 0: refused (logged and counted); -1: a store
 * error that aborts the import. */
static int import_one(struct importer *im, const char *file, const char **error_r)
{
    struct mime_summary s;
    const char *why;
    int64_t received;
    uint64_t size;

    int known = is_known(im, file);
    if (known != 0) {
        im->stats->already += known > 0;
        if (known < 0)
            *error_r = db_error(im->mb->db, "store");
        return known;
    }
    int fd = memfd_create("sealmail-import", MFD_CLOEXEC);
    if (fd < 0) {
        *error_r = errno_msg("memfd_create");
        return -1;
    }
    int ret = 0;
    if (drop_read(im->mb->dir, DROP_AREA_DROP, file, im->mb->pk, im->mb->sk, fd, &received,
                  &size, &why) < 0) {
        log_warn("mailbox import-refused file=%s error=\"%s\"", file, why);
        im->stats->refused++;
    } else if (mime_analyse_fd(fd, &s, &why) < 0) {
        log_warn("mailbox import-refused file=%s error=\"%s\"", file, why);
        im->stats->refused++;
    } else {
        ret = record(im, file, size, received, &s, error_r) < 0 ? -1 : 1;
        mime_summary_free(&s);
        im->stats->imported += ret > 0;
        im->stats->bytes += ret > 0 ? size : 0;
    }
    close(fd); /* the plaintext copy lived only in this memfd */
    return ret;
}

/* After the commit: the files the store now has move to msg/ (refused
 * ones were dropped from ns and stay in drop/). */
static int move_files(struct mailbox *mb, const struct names *ns, const char **error_r)
{
    for (size_t i = 0; i < ns->n; i++)
        if (ns->v[i] != NULL && drop_move_to_msg(mb->dir, ns->v[i], error_r) < 0)
            return -1;
    return drop_sync(mb->dir, error_r);
}

int mailbox_import(struct mailbox *mb, struct mailbox_import_stats *stats, const char **error_r)
{
    struct names ns = {0};
    struct importer im = {.mb = mb, .stats = stats};

    memset(stats, 0, sizeof *stats);
    if (drop_list(mb->dir, names_add, &ns, error_r) < 0)
        return -1;
    int ret = -1;
    if (ns.n == 0) {
        names_free(&ns);
        return 0;
    }
    if (importer_prepare(&im, error_r) == 0 && exec(mb->db, "BEGIN IMMEDIATE", error_r) == 0) {
        ret = 0;
        for (size_t i = 0; i < ns.n && ret == 0; i++) {
            int r = import_one(&im, ns.v[i], error_r);
            if (r == 0)
                sm_freep(&ns.v[i]); /* refused: it stays in drop/ */
            ret = r < 0 ? -1 : 0;
        }
        if (ret == 0)
            ret = exec(mb->db, "COMMIT", error_r);
        if (ret < 0)
            sqlite3_exec(mb->db, "ROLLBACK", NULL, NULL, NULL);
    }
    importer_finish(&im);
    if (ret == 0)
        ret = move_files(mb, &ns, error_r);
    names_free(&ns);
    return ret;
}

/* --- reading -------------------------------------------------------------------- */

int mailbox_folders(struct mailbox *mb, void (*fn)(void *arg, const struct mailbox_folder *f),
                    void *arg, const char **error_r)
{
    sqlite3_stmt *st;
    struct mailbox_folder f;
    int rc, n = 0;
    if (sqlite3_prepare_v2(mb->db,
                           "SELECT f.name, f.special_use, f.uidvalidity, f.uidnext,"
                           " f.highestmodseq, count(m.uid),"
                           " coalesce(sum(m.flags & 1 = 0), 0), coalesce(sum(g.size), 0)"
                           " FROM folders f LEFT JOIN mail m ON m.folder_id = f.id"
                           " LEFT JOIN messages g ON g.id = m.message_id"
                           " GROUP BY f.id ORDER BY f.name <> 'INBOX', f.name",
                           -1, &st, NULL) != SQLITE_OK) {
        *error_r = db_error(mb->db, "store");
        return -1;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&f, 0, sizeof f);
        snprintf(f.name, sizeof f.name, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(f.special_use, sizeof f.special_use, "%s",
                 (const char *)sqlite3_column_text(st, 1));
        f.uidvalidity = (uint32_t)sqlite3_column_int64(st, 2);
        f.uidnext = (uint32_t)sqlite3_column_int64(st, 3);
        f.highestmodseq = (uint64_t)sqlite3_column_int64(st, 4);
        f.messages = (uint64_t)sqlite3_column_int64(st, 5);
        f.unseen = (uint64_t)sqlite3_column_int64(st, 6);
        f.bytes = (uint64_t)sqlite3_column_int64(st, 7);
        fn(arg, &f);
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        *error_r = db_error(mb->db, "store");
        return -1;
    }
    return n;
}

static const char *col_text(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t != NULL ? (const char *)t : "";
}

int mailbox_messages(struct mailbox *mb, const char *folder,
                     void (*fn)(void *arg, const struct mailbox_message *m), void *arg,
                     const char **error_r)
{
    sqlite3_stmt *st;
    int rc, n = 0;
    if (sqlite3_prepare_v2(mb->db,
                           "SELECT m.uid, m.flags, g.size, g.internaldate, g.subject,"
                           " g.from_addr, g.envelope, g.bodystructure, g.file"
                           " FROM folders f JOIN mail m ON m.folder_id = f.id"
                           " JOIN messages g ON g.id = m.message_id"
                           " WHERE f.name = ?1 ORDER BY m.uid",
                           -1, &st, NULL) != SQLITE_OK) {
        *error_r = db_error(mb->db, "store");
        return -1;
    }
    sqlite3_bind_text(st, 1, folder, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct mailbox_message m = {
            .uid = (uint32_t)sqlite3_column_int64(st, 0),
            .flags = (unsigned)sqlite3_column_int(st, 1),
            .size = (uint64_t)sqlite3_column_int64(st, 2),
            .internaldate = sqlite3_column_int64(st, 3),
            .subject = col_text(st, 4),
            .from = col_text(st, 5),
            .envelope = col_text(st, 6),
            .bodystructure = col_text(st, 7),
            .file = col_text(st, 8),
        };
        fn(arg, &m);
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        *error_r = db_error(mb->db, "store");
        return -1;
    }
    return n;
}

int mailbox_search_text(struct mailbox *mb, const char *folder, const char *query,
                        void (*fn)(void *arg, uint32_t uid), void *arg, const char **error_r)
{
    sqlite3_stmt *st;
    int rc, n = 0;
    if (sqlite3_prepare_v2(mb->db,
                           "SELECT m.uid FROM messages_fts s"
                           " JOIN mail m ON m.message_id = s.rowid"
                           " JOIN folders f ON f.id = m.folder_id"
                           " WHERE messages_fts MATCH ?2 AND f.name = ?1 ORDER BY m.uid",
                           -1, &st, NULL) != SQLITE_OK) {
        *error_r = db_error(mb->db, "store");
        return -1;
    }
    sqlite3_bind_text(st, 1, folder, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, query, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        fn(arg, (uint32_t)sqlite3_column_int64(st, 0));
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        *error_r = db_error(mb->db, "search");
        return -1;
    }
    return n;
}

int mailbox_read_body(struct mailbox *mb, const char *file, int out, const char **error_r)
{
    /* a file recorded by an import that died before moving it is still in drop/ */
    enum drop_area area =
        drop_exists(mb->dir, DROP_AREA_MSG, file) ? DROP_AREA_MSG : DROP_AREA_DROP;
    return drop_read(mb->dir, area, file, mb->pk, mb->sk, out, NULL, NULL, error_r);
}

/* --- checks --------------------------------------------------------------------- */

static int integrity(struct mailbox *mb, struct mailbox_check *c, const char **error_r)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(mb->db, "PRAGMA integrity_check(1)", -1, &st, NULL) != SQLITE_OK) {
        *error_r = db_error(mb->db, "store");
        return -1;
    }
    int rc = sqlite3_step(st);
    snprintf(c->integrity, sizeof c->integrity, "%s",
             rc == SQLITE_ROW ? col_text(st, 0) : sqlite3_errmsg(mb->db));
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

int mailbox_verify(struct mailbox *mb, bool deep, struct mailbox_check *c, const char **error_r)
{
    memset(c, 0, sizeof *c);
    if (integrity(mb, c, error_r) < 0)
        return -1;
    if (!c->integrity_ok)
        return 0;
    if (mailbox_folders(mb, count_folder, c, error_r) < 0 ||
        drop_list(mb->dir, count_pending, c, error_r) < 0)
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

int mailbox_usage(struct mailbox *mb, uint64_t *bytes_r, const char **error_r)
{
    struct drop_bytes d = {mb->dir, 0};
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(mb->db, "SELECT coalesce(sum(size), 0) FROM messages", -1, &st,
                           NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        *error_r = db_error(mb->db, "store");
        sqlite3_finalize(st);
        return -1;
    }
    uint64_t stored = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
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
        *error_r = errno_msg("cannot remove mailbox files");
        return -1;
    }
    return 0;
}
