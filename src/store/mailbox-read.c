/* mailbox-read.c — reading the store: folders, messages, UIDs, changes
 * since a MODSEQ, full-text search and bodies (see mailbox.h).
 *
 * Everything a session asks for often is one indexed lookup: a folder by
 * name (its counts are kept by triggers), a message by (folder, UID), the
 * UIDs of a folder in its primary key order, changes through the
 * (folder, MODSEQ) indexes of mail and expunged.  Message rows are read
 * with their large columns (search text) untouched; a FETCH reads its rows
 * in batches, one statement each (mailbox_messages_list()).  Bodies are
 * decrypted into a buffer the caller reuses (mailbox_body_read()): a
 * memfd, mapped and unmapped per message, cost FETCH half its time.
 *
 * FILE KEYS.  A body file is opened with its own key, recorded in
 * file_keys when the message arrived (format 8, mailbox-migrate.c): no
 * X25519 per read.  The file is still authenticated in full (sealfile.h:
 * every chunk is bound to the prefix, sealed key included), and the
 * recorded key opens only the file it was recorded for, so a file
 * replaced on disk by another one sealed to the mailbox's public key
 * (which delivering processes know) is refused.  There is no fallback to
 * the sealed key when the recorded one fails.  Only messages without a
 * recorded key (an upgraded store not filled yet) open the sealed key.
 *
 * HEADER BLOCKS.  With MAILBOX_COL_HEADER a FETCH row brings the message's
 * top header block from headers (format 9, mailbox-append.c), so header
 * items open no file.  That block is as secret as the body: it is wiped
 * with the row (mailbox_list_free()). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/mem.h"
#include "crypto/seal.h"
#include "store/drop.h"
#include "store/mailbox-internal.h"
#include "store/sealfile.h"

/* --- folders -------------------------------------------------------------------- */

#define FOLDER_COLUMNS                                                                      \
    "name, special_use, uidvalidity, uidnext, highestmodseq, messages, unseen, bytes,"      \
    " deleted, EXISTS (SELECT 1 FROM subscriptions s WHERE s.name = folders.name)"

static const char SQL_FOLDERS[] =
    "SELECT " FOLDER_COLUMNS " FROM folders ORDER BY name <> 'INBOX', name";
static const char SQL_FOLDER_GET[] = "SELECT " FOLDER_COLUMNS " FROM folders WHERE name = ?1";
static const char SQL_FOLDER_ID[] = "SELECT id, uidvalidity FROM folders WHERE name = ?1";

static void folder_from_row(sqlite3_stmt *st, struct mailbox_folder *f)
{
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", mb_col_text(st, 0));
    snprintf(f->special_use, sizeof f->special_use, "%s", mb_col_text(st, 1));
    f->uidvalidity = (uint32_t)sqlite3_column_int64(st, 2);
    f->uidnext = (uint32_t)sqlite3_column_int64(st, 3);
    f->highestmodseq = (uint64_t)sqlite3_column_int64(st, 4);
    f->messages = (uint64_t)sqlite3_column_int64(st, 5);
    f->unseen = (uint64_t)sqlite3_column_int64(st, 6);
    f->bytes = (uint64_t)sqlite3_column_int64(st, 7);
    f->deleted = (uint64_t)sqlite3_column_int64(st, 8);
    f->subscribed = sqlite3_column_int(st, 9) != 0;
}

/* Step st to its end, giving each row to row(); the count or -1. */
static int each_row(struct mailbox *mb, sqlite3_stmt *st, void (*row)(void *ctx, sqlite3_stmt *st),
                    void *ctx, const char **error_r)
{
    int rc, n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        row(ctx, st);
        n++;
    }
    if (rc != SQLITE_DONE)
        *error_r = mb_db_error(mb, "store");
    mb_done(mb, st);
    return rc == SQLITE_DONE ? n : -1;
}

struct folder_walk {
    void (*fn)(void *arg, const struct mailbox_folder *f);
    void *arg;
};

static void folder_row(void *ctx, sqlite3_stmt *st)
{
    struct folder_walk *w = ctx;
    struct mailbox_folder f;
    folder_from_row(st, &f);
    w->fn(w->arg, &f);
}

int mailbox_folders(struct mailbox *mb, void (*fn)(void *arg, const struct mailbox_folder *f),
                    void *arg, const char **error_r)
{
    struct folder_walk w = {fn, arg};
    sqlite3_stmt *st = mb_stmt(mb, SQL_FOLDERS, error_r);
    return st == NULL ? -1 : each_row(mb, st, folder_row, &w, error_r);
}

int mailbox_folder_get(struct mailbox *mb, const char *name, struct mailbox_folder *f,
                       const char **error_r)
{
    char canon[MAILBOX_FOLDER_MAX + 1];
    if (!mb_folder_canon(name, canon))
        return 0;
    sqlite3_stmt *st = mb_stmt(mb, SQL_FOLDER_GET, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, canon, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        folder_from_row(st, f);
    else if (rc != SQLITE_DONE)
        *error_r = mb_db_error(mb, "store");
    mb_done(mb, st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int mb_folder_id(struct mailbox *mb, const char *name, int64_t *id_r, uint32_t *uidvalidity_r,
                 const char **error_r)
{
    char canon[MAILBOX_FOLDER_MAX + 1];
    if (!mb_folder_canon(name, canon)) {
        *error_r = "no such folder";
        return MAILBOX_NONEXISTENT;
    }
    sqlite3_stmt *st = mb_stmt(mb, SQL_FOLDER_ID, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, canon, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id_r = sqlite3_column_int64(st, 0);
        if (uidvalidity_r != NULL)
            *uidvalidity_r = (uint32_t)sqlite3_column_int64(st, 1);
    } else if (rc == SQLITE_DONE) {
        *error_r = "no such folder";
    } else {
        *error_r = mb_db_error(mb, "store");
    }
    mb_done(mb, st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? MAILBOX_NONEXISTENT : -1;
}

/* --- messages ------------------------------------------------------------------- */

/* The large search columns come last in messages and are never read. */
#define MESSAGE_COLUMNS                                                                     \
    "m.uid, m.flags, m.keywords, m.modseq, g.size, g.internaldate, g.date, g.subject,"      \
    " g.from_addr, g.to_addr, g.cc_addr, g.message_id, g.envelope, g.bodystructure,"        \
    " g.body, g.file, g.parts FROM mail m JOIN messages g ON g.id = m.message_id"

static const char SQL_RANGE[] = "SELECT " MESSAGE_COLUMNS
                                " WHERE m.folder_id = ?1 AND m.uid BETWEEN ?2 AND ?3"
                                " ORDER BY m.uid";

enum { N_MESSAGE_TEXTS = 11 }; /* keywords, subject ... parts */

static void message_from_row(sqlite3_stmt *st, struct mailbox_message *m)
{
    memset(m, 0, sizeof *m);
    m->uid = (uint32_t)sqlite3_column_int64(st, 0);
    m->flags = (unsigned)sqlite3_column_int(st, 1);
    m->keywords = mb_col_text(st, 2);
    m->modseq = (uint64_t)sqlite3_column_int64(st, 3);
    m->size = (uint64_t)sqlite3_column_int64(st, 4);
    m->internaldate = sqlite3_column_int64(st, 5);
    m->date = sqlite3_column_int64(st, 6);
    m->subject = mb_col_text(st, 7);
    m->from = mb_col_text(st, 8);
    m->to = mb_col_text(st, 9);
    m->cc = mb_col_text(st, 10);
    m->message_id = mb_col_text(st, 11);
    m->envelope = mb_col_text(st, 12);
    m->bodystructure = mb_col_text(st, 13);
    m->body = mb_col_text(st, 14);
    m->file = mb_col_text(st, 15);
    m->parts = mb_col_text(st, 16);
}

struct message_walk {
    void (*fn)(void *arg, const struct mailbox_message *m);
    void *arg;
};

static void message_row(void *ctx, sqlite3_stmt *st)
{
    struct message_walk *w = ctx;
    struct mailbox_message m;
    message_from_row(st, &m);
    w->fn(w->arg, &m);
}

int mailbox_messages_range(struct mailbox *mb, const char *folder, uint32_t uid_lo,
                           uint32_t uid_hi,
                           void (*fn)(void *arg, const struct mailbox_message *m), void *arg,
                           const char **error_r)
{
    struct message_walk w = {fn, arg};
    int64_t id;
    int r = mb_folder_id(mb, folder, &id, NULL, error_r);
    if (r < 0)
        return r;
    sqlite3_stmt *st = mb_stmt(mb, SQL_RANGE, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, uid_lo < uid_hi ? uid_lo : uid_hi);
    sqlite3_bind_int64(st, 3, uid_lo < uid_hi ? uid_hi : uid_lo);
    return each_row(mb, st, message_row, &w, error_r);
}

int mailbox_messages(struct mailbox *mb, const char *folder,
                     void (*fn)(void *arg, const struct mailbox_message *m), void *arg,
                     const char **error_r)
{
    return mailbox_messages_range(mb, folder, 1, MAILBOX_UID_ANY, fn, arg, error_r);
}

/* Copy the strings of *m into mb->kept, valid until the next call. */
static void keep_strings(struct mailbox *mb, struct mailbox_message *m)
{
    const char **field[N_MESSAGE_TEXTS] = {&m->keywords, &m->subject,    &m->from,
                                           &m->to,       &m->cc,         &m->message_id,
                                           &m->envelope, &m->bodystructure, &m->body,
                                           &m->file,     &m->parts};
    size_t len[N_MESSAGE_TEXTS], total = 0;
    for (size_t i = 0; i < N_MESSAGE_TEXTS; i++)
        total += (len[i] = strlen(*field[i]) + 1);
    free(mb->kept);
    mb->kept = sm_malloc(total);
    char *p = mb->kept;
    for (size_t i = 0; i < N_MESSAGE_TEXTS; i++) {
        memcpy(p, *field[i], len[i]);
        *field[i] = p;
        p += len[i];
    }
}

int mailbox_message_get(struct mailbox *mb, const char *folder, uint32_t uid,
                        struct mailbox_message *m, const char **error_r)
{
    int64_t id;
    int r = mb_folder_id(mb, folder, &id, NULL, error_r);
    if (r < 0)
        return r;
    sqlite3_stmt *st = mb_stmt(mb, SQL_RANGE, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, uid);
    sqlite3_bind_int64(st, 3, uid);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        message_from_row(st, m);
        keep_strings(mb, m);
    } else if (rc != SQLITE_DONE) {
        *error_r = mb_db_error(mb, "store");
    }
    mb_done(mb, st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* The rows of a FETCH: the texts an item may not need are read only when
 * asked (CASE is evaluated lazily: an unread column costs nothing more). */
static const char SQL_LIST[] =
    "SELECT m.uid, m.flags, m.keywords, m.modseq, g.size, g.internaldate, g.file, g.parts,"
    " CASE WHEN ?4 THEN g.envelope ELSE '' END, CASE WHEN ?5 THEN g.bodystructure ELSE '' END,"
    " CASE WHEN ?6 THEN g.body ELSE '' END, k.key,"
    " CASE WHEN ?7 THEN (SELECT h.block FROM headers h WHERE h.id = g.id) END"
    " FROM mail m JOIN messages g ON g.id = m.message_id LEFT JOIN file_keys k ON k.id = g.id"
    " WHERE m.folder_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid";

enum { N_LIST_TEXTS = 6 }; /* keywords, file, parts, envelope, bodystructure, body */

/* Row st as l->v[l->n], its strings copied into one block of their own. */
static void list_add(struct mailbox_list *l, size_t *cap, sqlite3_stmt *st)
{
    static const int cols[N_LIST_TEXTS] = {2, 6, 7, 8, 9, 10};
    if (l->n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        l->v = sm_realloc(l->v, *cap * sizeof *l->v);
    }
    struct mailbox_message *m = &l->v[l->n++];
    memset(m, 0, sizeof *m);
    m->uid = (uint32_t)sqlite3_column_int64(st, 0);
    m->flags = (unsigned)sqlite3_column_int(st, 1);
    m->modseq = (uint64_t)sqlite3_column_int64(st, 3);
    m->size = (uint64_t)sqlite3_column_int64(st, 4);
    m->internaldate = sqlite3_column_int64(st, 5);
    const char *text[N_LIST_TEXTS];
    size_t len[N_LIST_TEXTS], total = 0;
    for (size_t i = 0; i < N_LIST_TEXTS; i++) {
        text[i] = mb_col_text(st, cols[i]);
        total += (len[i] = (size_t)sqlite3_column_bytes(st, cols[i]) + 1);
    }
    const void *key = sqlite3_column_blob(st, 11);
    bool keyed = key != NULL && sqlite3_column_bytes(st, 11) == DROP_KEY_BYTES;
    const void *header = sqlite3_column_blob(st, 12);
    size_t header_len = header != NULL ? (size_t)sqlite3_column_bytes(st, 12) : 0;
    char *p = sm_malloc(total + (keyed ? DROP_KEY_BYTES : 0) + header_len);
    const char **field[N_LIST_TEXTS] = {&m->keywords, &m->file,          &m->parts,
                                        &m->envelope, &m->bodystructure, &m->body};
    for (size_t i = 0; i < N_LIST_TEXTS; i++) {
        memcpy(p, text[i], len[i]);
        *field[i] = p;
        p += len[i];
    }
    if (keyed) { /* after the strings: wiped by mailbox_list_free() */
        memcpy(p, key, DROP_KEY_BYTES);
        m->file_key = (const uint8_t *)p;
        p += DROP_KEY_BYTES;
    }
    if (header_len > 0) { /* last in the block: wiped by mailbox_list_free() */
        memcpy(p, header, header_len);
        m->header = (const unsigned char *)p;
        m->header_len = header_len;
    }
    m->subject = m->from = m->to = m->cc = m->message_id = "";
}

/* The row's uid is one the caller asked for (both lists ascending). */
static bool list_wanted(const uint32_t *uids, size_t n, size_t *next, uint32_t uid)
{
    while (*next < n && uids[*next] < uid)
        (*next)++;
    return *next < n && uids[*next] == uid;
}

int mailbox_messages_list(struct mailbox *mb, const char *folder, const uint32_t *uids, size_t n,
                          unsigned cols, struct mailbox_list *l, const char **error_r)
{
    int64_t id;
    size_t cap = 0, next = 0;
    memset(l, 0, sizeof *l);
    int rc = n == 0 ? 0 : mb_folder_id(mb, folder, &id, NULL, error_r);
    if (n == 0 || rc < 0)
        return rc;
    sqlite3_stmt *st = mb_stmt(mb, SQL_LIST, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, uids[0]);
    sqlite3_bind_int64(st, 3, uids[n - 1]);
    sqlite3_bind_int(st, 4, (cols & MAILBOX_COL_ENVELOPE) != 0);
    sqlite3_bind_int(st, 5, (cols & MAILBOX_COL_BODYSTRUCTURE) != 0);
    sqlite3_bind_int(st, 6, (cols & MAILBOX_COL_BODY) != 0);
    sqlite3_bind_int(st, 7, (cols & MAILBOX_COL_HEADER) != 0);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (list_wanted(uids, n, &next, (uint32_t)sqlite3_column_int64(st, 0)))
            list_add(l, &cap, st);
    if (rc != SQLITE_DONE) {
        *error_r = mb_db_error(mb, "store");
        mailbox_list_free(l);
    }
    mb_done(mb, st);
    return rc == SQLITE_DONE ? 0 : -1;
}

void mailbox_list_free(struct mailbox_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].file_key != NULL)
            seal_wipe((void *)(uintptr_t)l->v[i].file_key, DROP_KEY_BYTES);
        if (l->v[i].header != NULL)
            seal_wipe((void *)(uintptr_t)l->v[i].header, l->v[i].header_len);
        free((void *)(uintptr_t)l->v[i].keywords); /* the block of the row's strings */
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

static const char SQL_UIDS[] = "SELECT uid FROM mail WHERE folder_id = ?1 ORDER BY uid";
static const char SQL_COUNT[] = "SELECT messages FROM folders WHERE id = ?1";

/* The folder's message count, to size the UID array (a hint only). */
static size_t count_hint(struct mailbox *mb, int64_t folder)
{
    const char *error;
    size_t n = 0;
    sqlite3_stmt *st = mb_stmt(mb, SQL_COUNT, &error);
    if (st == NULL)
        return 0;
    sqlite3_bind_int64(st, 1, folder);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0)
        n = (size_t)sqlite3_column_int64(st, 0);
    mb_done(mb, st);
    return n;
}

int mailbox_uids(struct mailbox *mb, const char *folder, uint32_t **uids_r, size_t *n_r,
                 const char **error_r)
{
    int64_t id;
    int rc = mb_folder_id(mb, folder, &id, NULL, error_r);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = mb_stmt(mb, SQL_UIDS, error_r);
    if (st == NULL)
        return -1;
    size_t n = 0, cap = count_hint(mb, id) + 16;
    uint32_t *v = sm_calloc(cap, sizeof *v);
    sqlite3_bind_int64(st, 1, id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap *= 2;
            v = sm_realloc(v, cap * sizeof *v);
        }
        v[n++] = (uint32_t)sqlite3_column_int64(st, 0);
    }
    mb_done(mb, st);
    if (rc != SQLITE_DONE) {
        *error_r = mb_db_error(mb, "store");
        free(v);
        return -1;
    }
    *uids_r = v;
    *n_r = n;
    return 0;
}

/* --- changes since a MODSEQ ----------------------------------------------------- */

static const char SQL_CHANGED[] = "SELECT uid, flags, keywords, modseq FROM mail"
                                  " WHERE folder_id = ?1 AND modseq > ?2 ORDER BY uid";
static const char SQL_VANISHED[] = "SELECT uid FROM expunged"
                                   " WHERE folder_id = ?1 AND modseq > ?2 ORDER BY uid";

struct change_walk {
    void (*changed)(void *arg, const struct mailbox_message *m);
    void (*vanished)(void *arg, uint32_t uid);
    void *arg;
};

static void changed_row(void *ctx, sqlite3_stmt *st)
{
    struct change_walk *w = ctx;
    struct mailbox_message m = {
        .uid = (uint32_t)sqlite3_column_int64(st, 0),
        .flags = (unsigned)sqlite3_column_int(st, 1),
        .keywords = mb_col_text(st, 2),
        .modseq = (uint64_t)sqlite3_column_int64(st, 3),
    };
    if (w->changed != NULL)
        w->changed(w->arg, &m);
}

static void vanished_row(void *ctx, sqlite3_stmt *st)
{
    struct change_walk *w = ctx;
    if (w->vanished != NULL)
        w->vanished(w->arg, (uint32_t)sqlite3_column_int64(st, 0));
}

int mailbox_changes(struct mailbox *mb, const char *folder, uint64_t since,
                    void (*fn_changed)(void *arg, const struct mailbox_message *m),
                    void (*fn_vanished)(void *arg, uint32_t uid), void *arg,
                    const char **error_r)
{
    struct change_walk w = {fn_changed, fn_vanished, arg};
    int64_t id;
    int r = mb_folder_id(mb, folder, &id, NULL, error_r);
    if (r < 0)
        return r;
    if (since > INT64_MAX)
        since = INT64_MAX;
    sqlite3_stmt *st = mb_stmt(mb, SQL_CHANGED, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)since);
    int changed = each_row(mb, st, changed_row, &w, error_r);
    if (changed < 0 || (st = mb_stmt(mb, SQL_VANISHED, error_r)) == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)since);
    int vanished = each_row(mb, st, vanished_row, &w, error_r);
    return vanished < 0 ? -1 : changed + vanished;
}

/* --- search and bodies ---------------------------------------------------------- */

/* CROSS JOIN makes the full-text index drive the join: SQLite's own plan
 * walked every mail row of the folder and probed the index for each
 * (123 ms against 0.1 ms for a rare word in 10,000 messages). */
static const char SQL_SEARCH[] = "SELECT m.uid FROM messages_fts s"
                                 " CROSS JOIN mail m ON m.message_id = s.rowid"
                                 " WHERE messages_fts MATCH ?2 AND m.folder_id = ?1"
                                 " ORDER BY m.uid";

struct uid_walk {
    void (*fn)(void *arg, uint32_t uid);
    void *arg;
};

static void uid_row(void *ctx, sqlite3_stmt *st)
{
    struct uid_walk *w = ctx;
    w->fn(w->arg, (uint32_t)sqlite3_column_int64(st, 0));
}

int mailbox_search_text(struct mailbox *mb, const char *folder, const char *query,
                        void (*fn)(void *arg, uint32_t uid), void *arg, const char **error_r)
{
    struct uid_walk w = {fn, arg};
    int64_t id;
    int r = mb_folder_id(mb, folder, &id, NULL, error_r);
    if (r < 0)
        return r;
    sqlite3_stmt *st = mb_stmt(mb, SQL_SEARCH, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, query, -1, SQLITE_STATIC);
    return each_row(mb, st, uid_row, &w, error_r);
}

static const char SQL_HEADERS[] = "SELECT m.uid, s.search_headers FROM mail m"
                                  " JOIN texts s ON s.id = m.message_id"
                                  " WHERE m.folder_id = ?1 ORDER BY m.uid";

struct header_walk {
    void (*fn)(void *arg, uint32_t uid, const char *headers);
    void *arg;
};

static void header_row(void *ctx, sqlite3_stmt *st)
{
    struct header_walk *w = ctx;
    w->fn(w->arg, (uint32_t)sqlite3_column_int64(st, 0), mb_col_text(st, 1));
}

int mailbox_search_headers(struct mailbox *mb, const char *folder,
                           void (*fn)(void *arg, uint32_t uid, const char *headers), void *arg,
                           const char **error_r)
{
    struct header_walk w = {fn, arg};
    int64_t id;
    int r = mb_folder_id(mb, folder, &id, NULL, error_r);
    if (r < 0)
        return r;
    sqlite3_stmt *st = mb_stmt(mb, SQL_HEADERS, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    return each_row(mb, st, header_row, &w, error_r);
}

/* The recorded key of file into key: 1 (and *k uses it), 0 when the
 * message has none (k keeps the key pair), -1. */
static const char SQL_FILE_KEY[] =
    "SELECT k.key FROM messages g JOIN file_keys k ON k.id = g.id WHERE g.file = ?1";

static int row_key(struct mailbox *mb, const char *file, uint8_t key[DROP_KEY_BYTES],
                   struct sealfile_key *k, const char **error_r)
{
    sqlite3_stmt *st = mb_stmt(mb, SQL_FILE_KEY, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, file, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), found = 0;
    if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == DROP_KEY_BYTES) {
        memcpy(key, sqlite3_column_blob(st, 0), DROP_KEY_BYTES);
        k->file_key = key;
        found = 1;
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        *error_r = mb_db_error(mb, "store");
        found = -1;
    }
    mb_done(mb, st);
    return found;
}

/* Read file of area into out; a retry first empties out (a regular file
 * or memfd; a sink such as /dev/null needs nothing). */
static int read_area(struct mailbox *mb, enum drop_area area, const char *file,
                     const struct sealfile_key *k, int out, bool retry, const char **error_r)
{
    if (retry && ((ftruncate(out, 0) < 0 && errno != EINVAL) ||
                  (lseek(out, 0, SEEK_SET) < 0 && errno != ESPIPE))) {
        *error_r = mb_errno_msg("cannot reset the body file");
        return -1;
    }
    return drop_read_k(mb->dir, area, file, k, out, NULL, NULL, NULL, error_r);
}

/* msg/, else drop/ (a file recorded by an import that died before moving
 * it), else msg/ again (another process's import moved it meanwhile). */
static int read_body_k(struct mailbox *mb, const char *file, const struct sealfile_key *k,
                       int out, const char **error_r)
{
    if (read_area(mb, DROP_AREA_MSG, file, k, out, false, error_r) == 0)
        return 0;
    if (drop_exists(mb->dir, DROP_AREA_MSG, file))
        return -1; /* there, but damaged */
    if (read_area(mb, DROP_AREA_DROP, file, k, out, true, error_r) == 0)
        return 0;
    if (!drop_exists(mb->dir, DROP_AREA_MSG, file))
        return -1;
    return read_area(mb, DROP_AREA_MSG, file, k, out, true, error_r);
}

int mailbox_read_body(struct mailbox *mb, const char *file, int out, const char **error_r)
{
    uint8_t key[DROP_KEY_BYTES];
    struct sealfile_key k = {.pk = mb->pk, .sk = mb->sk};
    int ret = row_key(mb, file, key, &k, error_r) < 0 ? -1 : read_body_k(mb, file, &k, out, error_r);
    seal_wipe(key, sizeof key);
    return ret;
}

int mailbox_open_body(struct mailbox *mb, const char *file, const char **error_r)
{
    int fd = memfd_create("sealmail-body", MFD_CLOEXEC);
    if (fd < 0) {
        *error_r = mb_errno_msg("memfd_create");
        return -1;
    }
    if (mailbox_read_body(mb, file, fd, error_r) < 0) {
        close(fd);
        return -1;
    }
    if (lseek(fd, 0, SEEK_SET) < 0) {
        *error_r = mb_errno_msg("lseek");
        close(fd);
        return -1;
    }
    return fd;
}

/* A file of area into b; DROP_MISSING when there is none. */
static int body_from(struct mailbox *mb, enum drop_area area, const char *file,
                     const struct sealfile_key *k, uint64_t want, uint64_t max,
                     struct mailbox_body *b, const char **error_r)
{
    int dfd = mb->area_fd[area];
    int r = dfd >= 0 ? drop_read_mem_at(dfd, file, k, want, max, b->mem, error_r)
                     : drop_read_mem_k(mb->dir, area, file, k, want, max, b->mem, error_r);
    b->data = r == 0 ? b->mem->data : NULL;
    b->len = r == 0 ? b->mem->len : 0;
    b->whole = r == 0 && b->mem->len == b->mem->size;
    return r;
}

/* As mailbox_read_body(): msg/, else drop/, else msg/ again, each tried by
 * opening it (no stat: the file is in msg/ nearly always). */
static int body_read_k(struct mailbox *mb, const char *file, const struct sealfile_key *k,
                       uint64_t want, uint64_t max, struct mailbox_body *b, const char **error_r)
{
    if (b->mem == NULL)
        b->mem = sm_calloc(1, sizeof *b->mem);
    int r = body_from(mb, DROP_AREA_MSG, file, k, want, max, b, error_r);
    if (r == DROP_MISSING)
        r = body_from(mb, DROP_AREA_DROP, file, k, want, max, b, error_r);
    if (r == DROP_MISSING)
        r = body_from(mb, DROP_AREA_MSG, file, k, want, max, b, error_r);
    return r == 0 ? 0 : -1;
}

int mailbox_body_read_key(struct mailbox *mb, const char *file, const uint8_t *file_key,
                          uint64_t want, uint64_t max, struct mailbox_body *b,
                          const char **error_r)
{
    struct sealfile_key k = {.pk = mb->pk, .sk = mb->sk, .file_key = file_key};
    return body_read_k(mb, file, &k, want, max, b, error_r);
}

int mailbox_body_read(struct mailbox *mb, const char *file, uint64_t want, uint64_t max,
                      struct mailbox_body *b, const char **error_r)
{
    uint8_t key[DROP_KEY_BYTES];
    struct sealfile_key k = {.pk = mb->pk, .sk = mb->sk};
    int ret = row_key(mb, file, key, &k, error_r) < 0
                  ? -1
                  : body_read_k(mb, file, &k, want, max, b, error_r);
    seal_wipe(key, sizeof key);
    if (ret < 0)
        b->len = 0;
    return ret;
}

int mb_body_key(struct mailbox *mb, const char *file, uint8_t key_r[DROP_KEY_BYTES],
                const char **error_r)
{
    struct mailbox_body b = MAILBOX_BODY_INIT;
    struct sealfile_key k = {.pk = mb->pk, .sk = mb->sk, .key_r = key_r};
    int ret = body_read_k(mb, file, &k, 0, SIZE_MAX, &b, error_r);
    mailbox_body_release(&b);
    return ret;
}

void mailbox_body_release(struct mailbox_body *b)
{
    if (b->mem != NULL)
        sealfile_plain_free(b->mem);
    free(b->mem);
    memset(b, 0, sizeof *b);
}
