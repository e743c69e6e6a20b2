/* mailbox-folders.c — folders: names, CREATE, DELETE, RENAME, SUBSCRIBE
 * and the keywords a folder uses (see mailbox.h).
 *
 * Names are checked once, where they enter (create, rename): UTF-8
 * without control characters or LIST wildcards, '/' only between levels,
 * bounded in bytes and levels.  Lookups only canonicalise "INBOX" and
 * bound the length: a name that was never valid is simply not found.
 *
 * UIDVALIDITY comes from a store-wide counter (store.last_uidvalidity),
 * so a folder deleted and created again never repeats an old value
 * (RFC 9051 §2.3.1.1).  A rename moves a whole subtree in two steps (first
 * to placeholder names no valid name can equal, then to the new names),
 * so renames such as "a/b" to "a" cannot collide with themselves. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "store/mailbox-internal.h"

/* --- names ---------------------------------------------------------------------- */

/* The length of the UTF-8 sequence at s and its code point, or 0 when it
 * is not valid (overlong, surrogate, past U+10FFFF, cut short). */
static size_t utf8_next(const unsigned char *s, uint32_t *cp)
{
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t len = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3
                               : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0)
        return 0;
    uint32_t c = len == 1 ? s[0] : s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

/* No control characters (C0, DEL, C1) and no LIST wildcards. */
static bool name_char_ok(uint32_t c)
{
    return c >= 0x20 && c != 0x7F && !(c >= 0x80 && c <= 0x9F) && c != '*' && c != '%';
}

static void canon_copy(const char *name, size_t len, char *out)
{
    bool inbox = len >= 5 && strncasecmp(name, "INBOX", 5) == 0 &&
                 (name[5] == '\0' || name[5] == '/');
    memcpy(out, name, len + 1);
    if (inbox)
        memcpy(out, "INBOX", 5);
}

bool mb_folder_canon(const char *name, char out[MAILBOX_FOLDER_MAX + 1])
{
    size_t len = strnlen(name, MAILBOX_FOLDER_MAX + 1);
    if (len > MAILBOX_FOLDER_MAX)
        return false;
    canon_copy(name, len, out);
    return true;
}

/* Check a new folder name and put its canonical form in out. */
static int name_check(const char *name, char out[MAILBOX_FOLDER_MAX + 1], const char **error_r)
{
    size_t len = strnlen(name, MAILBOX_FOLDER_MAX + 1), levels = 1;
    const unsigned char *s = (const unsigned char *)name;
    if (len == 0 || len > MAILBOX_FOLDER_MAX) {
        *error_r = len == 0 ? "empty folder name" : "folder name too long";
        return -1;
    }
    if (s[0] == '/' || s[len - 1] == '/' || strstr(name, "//") != NULL) {
        *error_r = "folder name with an empty level";
        return -1;
    }
    for (size_t i = 0; i < len;) {
        uint32_t c;
        size_t n = utf8_next(s + i, &c);
        if (n == 0 || !name_char_ok(c)) {
            *error_r = n == 0 ? "folder name is not valid UTF-8"
                              : "character not allowed in a folder name";
            return -1;
        }
        levels += c == '/';
        i += n;
    }
    if (levels > MAILBOX_FOLDER_LEVELS) {
        *error_r = "folder name has too many levels";
        return -1;
    }
    canon_copy(name, len, out);
    return 0;
}

/* The special-use attribute s in its RFC spelling, or NULL when unknown. */
static const char *special_use_name(const char *s)
{
    static const char *const uses[] = {"\\All",       "\\Archive", "\\Drafts", "\\Flagged",
                                       "\\Important", "\\Junk",    "\\Sent",   "\\Trash"};
    for (size_t i = 0; i < sizeof uses / sizeof uses[0]; i++)
        if (strcasecmp(s, uses[i]) == 0)
            return uses[i];
    return NULL;
}

/* --- create --------------------------------------------------------------------- */

static const char SQL_FOLDER_COUNT[] = "SELECT count(*) FROM folders";
static const char SQL_NEXT_VALIDITY[] =
    "UPDATE store SET last_uidvalidity = last_uidvalidity + 1"
    " WHERE id = 1 AND last_uidvalidity < 4294967295 RETURNING last_uidvalidity";
static const char SQL_FOLDER_INSERT[] =
    "INSERT INTO folders (name, special_use, uidvalidity) VALUES (?1, ?2, ?3)";

/* One value from a statement that returns one row; -1 when none. */
static int64_t single_value(struct mailbox *mb, sqlite3_stmt *st, const char **error_r)
{
    int rc = sqlite3_step(st);
    int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    if (rc != SQLITE_ROW)
        *error_r = rc == SQLITE_DONE ? "store: no value" : mb_db_error(mb, "store");
    mb_done(mb, st);
    return v;
}

static int folder_insert(struct mailbox *mb, const char *canon, const char *special_use,
                         int64_t *id_r, const char **error_r)
{
    int64_t id, n, validity;
    int r = mb_folder_id(mb, canon, &id, NULL, error_r);
    if (r != MAILBOX_NONEXISTENT) {
        if (r == 0)
            *error_r = "folder exists already";
        return r == 0 ? MAILBOX_EXISTS : -1;
    }
    sqlite3_stmt *st = mb_stmt(mb, SQL_FOLDER_COUNT, error_r);
    if (st == NULL || (n = single_value(mb, st, error_r)) < 0)
        return -1;
    if (n >= MAILBOX_FOLDERS_MAX) {
        *error_r = "too many folders";
        return -1;
    }
    if ((st = mb_stmt(mb, SQL_NEXT_VALIDITY, error_r)) == NULL ||
        (validity = single_value(mb, st, error_r)) < 0 ||
        (st = mb_stmt(mb, SQL_FOLDER_INSERT, error_r)) == NULL)
        return -1;
    sqlite3_bind_text(st, 1, canon, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, special_use, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, validity);
    if (mb_run(mb, st, error_r) != SQLITE_DONE)
        return -1;
    if (id_r != NULL)
        *id_r = sqlite3_last_insert_rowid(mb->db);
    return 0;
}

static const char SQL_JUNK[] =
    "SELECT id FROM folders WHERE special_use = '\\Junk' ORDER BY id LIMIT 1";

int mb_junk_folder(struct mailbox *mb, int64_t *id_r, const char **error_r)
{
    sqlite3_stmt *st = mb_stmt(mb, SQL_JUNK, error_r);
    if (st == NULL)
        return -1;
    int rc = sqlite3_step(st);
    *id_r = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        *error_r = mb_db_error(mb, "store");
    mb_done(mb, st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int mb_folder_create_path(struct mailbox *mb, const char *canon, const char *special_use,
                          int64_t *id_r, const char **error_r)
{
    char parent[MAILBOX_FOLDER_MAX + 1];
    int64_t id;
    for (const char *slash = strchr(canon, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
        memcpy(parent, canon, (size_t)(slash - canon));
        parent[slash - canon] = '\0';
        int r = mb_folder_id(mb, parent, &id, NULL, error_r);
        if (r == MAILBOX_NONEXISTENT)
            r = folder_insert(mb, parent, "", NULL, error_r);
        if (r < 0)
            return r;
    }
    return folder_insert(mb, canon, special_use, id_r, error_r);
}

int mailbox_folder_create(struct mailbox *mb, const char *name, const char *special_use,
                          const char **error_r)
{
    char canon[MAILBOX_FOLDER_MAX + 1];
    struct mb_txn t;
    if (name_check(name, canon, error_r) < 0)
        return MAILBOX_CANNOT;
    const char *use = special_use != NULL ? special_use_name(special_use) : "";
    if (use == NULL) {
        *error_r = "unknown special-use attribute";
        return -1;
    }
    if (mb_txn_begin(mb, &t, error_r) < 0)
        return -1;
    int r = mb_folder_create_path(mb, canon, use, NULL, error_r);
    if (r < 0) {
        mb_txn_abort(mb, &t);
        return r;
    }
    return mb_txn_commit(mb, &t, error_r);
}

/* --- delete --------------------------------------------------------------------- */

static const char SQL_DELETE_MAIL[] = "DELETE FROM mail WHERE folder_id = ?1 RETURNING message_id";
static const char SQL_DELETE_FOLDER[] = "DELETE FROM folders WHERE id = ?1";

/* Collect the int64 results of st into a new array. */
static int collect_ids(struct mailbox *mb, sqlite3_stmt *st, int64_t **v_r, size_t *n_r,
                       const char **error_r)
{
    size_t n = 0, cap = 64;
    int64_t *v = sm_calloc(cap, sizeof *v);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap *= 2;
            v = sm_realloc(v, cap * sizeof *v);
        }
        v[n++] = sqlite3_column_int64(st, 0);
    }
    if (rc != SQLITE_DONE)
        *error_r = mb_db_error(mb, "store");
    mb_done(mb, st);
    if (rc != SQLITE_DONE) {
        free(v);
        return -1;
    }
    *v_r = v;
    *n_r = n;
    return 0;
}

static int delete_rows(struct mailbox *mb, int64_t folder, const char **error_r)
{
    int64_t *ids;
    size_t n;
    sqlite3_stmt *st = mb_stmt(mb, SQL_DELETE_MAIL, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, folder);
    if (collect_ids(mb, st, &ids, &n, error_r) < 0)
        return -1;
    int ret = 0;
    for (size_t i = 0; i < n && ret == 0; i++)
        ret = mb_release_message(mb, ids[i], error_r);
    free(ids);
    if (ret < 0 || (st = mb_stmt(mb, SQL_DELETE_FOLDER, error_r)) == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, folder);
    return mb_run(mb, st, error_r) == SQLITE_DONE ? 0 : -1;
}

int mailbox_folder_delete(struct mailbox *mb, const char *name, const char **error_r)
{
    char canon[MAILBOX_FOLDER_MAX + 1];
    struct mb_txn t;
    int64_t id;
    if (mb_folder_canon(name, canon) && strcmp(canon, "INBOX") == 0) {
        *error_r = "INBOX cannot be deleted";
        return MAILBOX_CANNOT;
    }
    if (mb_txn_begin(mb, &t, error_r) < 0)
        return -1;
    int r = mb_folder_id(mb, name, &id, NULL, error_r);
    if (r == 0)
        r = delete_rows(mb, id, error_r);
    if (r < 0) {
        mb_txn_abort(mb, &t);
        return r;
    }
    return mb_txn_commit(mb, &t, error_r);
}

/* --- rename --------------------------------------------------------------------- */

static const char SQL_SUBTREE[] = "SELECT id, substr(name, length(?1) + 1) FROM folders"
                                  " WHERE name = ?1 OR (name >= ?1 || '/' AND name < ?1 || '0')";
static const char SQL_SET_NAME[] = "UPDATE folders SET name = ?2 WHERE id = ?1";

struct subtree {
    int64_t *ids;
    char **suffixes; /* "" for the folder itself, "/child" ... */
    size_t n, cap;
};

static void subtree_free(struct subtree *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->suffixes[i]);
    free(t->suffixes);
    free(t->ids);
}

static int subtree_load(struct mailbox *mb, const char *canon, struct subtree *t,
                        const char **error_r)
{
    int rc;
    sqlite3_stmt *st = mb_stmt(mb, SQL_SUBTREE, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, canon, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (t->n == t->cap) {
            t->cap = t->cap ? t->cap * 2 : 16;
            t->ids = sm_realloc(t->ids, t->cap * sizeof *t->ids);
            t->suffixes = sm_realloc(t->suffixes, t->cap * sizeof *t->suffixes);
        }
        t->ids[t->n] = sqlite3_column_int64(st, 0);
        t->suffixes[t->n++] = sm_strdup(mb_col_text(st, 1));
    }
    if (rc != SQLITE_DONE)
        *error_r = mb_db_error(mb, "store");
    mb_done(mb, st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int set_name(struct mailbox *mb, int64_t id, const char *name, const char **error_r)
{
    sqlite3_stmt *st = mb_stmt(mb, SQL_SET_NAME, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    return mb_run(mb, st, error_r) == SQLITE_DONE ? 0 : -1;
}

/* Give every folder of t its name under to; the caller's transaction. */
static int subtree_move(struct mailbox *mb, const struct subtree *t, const char *to,
                        const char **error_r)
{
    char name[MAILBOX_FOLDER_MAX + 64], canon[MAILBOX_FOLDER_MAX + 1];
    int64_t other;
    for (size_t i = 0; i < t->n; i++) {
        snprintf(name, sizeof name, "\x01%lld", (long long)t->ids[i]); /* no valid name */
        if (set_name(mb, t->ids[i], name, error_r) < 0)
            return -1;
    }
    for (size_t i = 0; i < t->n; i++) {
        int n = snprintf(name, sizeof name, "%s%s", to, t->suffixes[i]);
        if (n < 0 || (size_t)n > MAILBOX_FOLDER_MAX || name_check(name, canon, error_r) < 0) {
            *error_r = "a folder's new name would be too long or too deep";
            return MAILBOX_CANNOT;
        }
        int r = mb_folder_id(mb, canon, &other, NULL, error_r);
        if (r == 0) {
            *error_r = "a folder of the new name exists already";
            return MAILBOX_EXISTS;
        }
        if (r != MAILBOX_NONEXISTENT || set_name(mb, t->ids[i], canon, error_r) < 0)
            return -1;
    }
    return 0;
}

/* Rename an ordinary folder and its children; the caller's transaction. */
static int rename_tree(struct mailbox *mb, const char *from, const char *to,
                       const char **error_r)
{
    struct subtree t = {0};
    int64_t id;
    int r = mb_folder_id(mb, from, &id, NULL, error_r);
    if (r < 0)
        return r;
    if (mb_folder_id(mb, to, &id, NULL, error_r) == 0) {
        *error_r = "folder exists already";
        return MAILBOX_EXISTS;
    }
    r = subtree_load(mb, from, &t, error_r);
    if (r == 0) {
        /* the missing parents of to, as CREATE would make them */
        const char *slash = strrchr(to, '/');
        char parent[MAILBOX_FOLDER_MAX + 1];
        if (slash != NULL) {
            memcpy(parent, to, (size_t)(slash - to));
            parent[slash - to] = '\0';
            r = mb_folder_id(mb, parent, &id, NULL, error_r);
            if (r == MAILBOX_NONEXISTENT)
                r = mb_folder_create_path(mb, parent, "", NULL, error_r);
        }
    }
    if (r == 0)
        r = subtree_move(mb, &t, to, error_r);
    subtree_free(&t);
    return r;
}

static const char SQL_MOVE_ALL[] =
    "UPDATE mail SET folder_id = ?2 WHERE folder_id = ?1 RETURNING uid";
static const char SQL_TAKE_COUNTERS[] =
    "UPDATE folders SET (uidnext, highestmodseq) ="
    " (SELECT uidnext, highestmodseq FROM folders WHERE id = ?1) WHERE id = ?2";
static const char SQL_COPY_KEYWORDS[] = "INSERT OR IGNORE INTO keywords (folder_id, keyword)"
                                        " SELECT ?2, keyword FROM keywords WHERE folder_id = ?1";

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* RFC 9051 §6.3.6: INBOX's mail moves into a new folder to; INBOX stays,
 * empty, its UIDs recorded as expunged.  The caller's transaction. */
static int rename_inbox(struct mailbox *mb, const char *to, const char **error_r)
{
    int64_t inbox, dest, *uids64;
    size_t n;
    int r = mb_folder_id(mb, "INBOX", &inbox, NULL, error_r);
    if (r == 0)
        r = mb_folder_create_path(mb, to, "", &dest, error_r);
    if (r < 0)
        return r;
    sqlite3_stmt *st = mb_stmt(mb, SQL_MOVE_ALL, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, inbox);
    sqlite3_bind_int64(st, 2, dest);
    if (collect_ids(mb, st, &uids64, &n, error_r) < 0)
        return -1;
    uint32_t *uids = sm_calloc(n + 1, sizeof *uids);
    for (size_t i = 0; i < n; i++)
        uids[i] = (uint32_t)uids64[i];
    free(uids64);
    qsort(uids, n, sizeof *uids, cmp_u32);
    const char *sql[] = {SQL_TAKE_COUNTERS, SQL_COPY_KEYWORDS};
    for (size_t i = 0; i < 2 && r == 0; i++) {
        if ((st = mb_stmt(mb, sql[i], error_r)) == NULL) {
            r = -1;
            break;
        }
        sqlite3_bind_int64(st, 1, inbox);
        sqlite3_bind_int64(st, 2, dest);
        r = mb_run(mb, st, error_r) == SQLITE_DONE ? 0 : -1;
    }
    if (r == 0 && n > 0)
        r = mb_record_expunged(mb, inbox, uids, n, error_r);
    free(uids);
    return r;
}

int mailbox_folder_rename(struct mailbox *mb, const char *from, const char *to,
                          const char **error_r)
{
    char cfrom[MAILBOX_FOLDER_MAX + 1], cto[MAILBOX_FOLDER_MAX + 1];
    struct mb_txn t;
    if (!mb_folder_canon(from, cfrom)) {
        *error_r = "no such folder";
        return MAILBOX_NONEXISTENT;
    }
    if (name_check(to, cto, error_r) < 0)
        return MAILBOX_CANNOT;
    size_t lf = strlen(cfrom);
    if (strcmp(cfrom, "INBOX") != 0 && strncmp(cto, cfrom, lf) == 0 && cto[lf] == '/') {
        *error_r = "a folder cannot move inside itself";
        return MAILBOX_CANNOT;
    }
    if (mb_txn_begin(mb, &t, error_r) < 0)
        return -1;
    int r = strcmp(cfrom, "INBOX") == 0 ? rename_inbox(mb, cto, error_r)
                                        : rename_tree(mb, cfrom, cto, error_r);
    if (r < 0) {
        mb_txn_abort(mb, &t);
        return r;
    }
    return mb_txn_commit(mb, &t, error_r);
}

/* --- subscriptions and keywords ------------------------------------------------- */

/* Subscriptions are names, not folders (RFC 9051 §6.3.7-8, RFC 3501
 * §6.3.9): DELETE and RENAME leave them alone, and a subscription outlives
 * its folder.  A new one needs an existing folder (RFC 9051 allows the
 * check), which also bounds how fast the set can grow; its size is
 * bounded too. */
static const char SQL_SUBSCRIBE[] = "INSERT OR IGNORE INTO subscriptions (name) VALUES (?1)";
static const char SQL_UNSUBSCRIBE[] = "DELETE FROM subscriptions WHERE name = ?1";
static const char SQL_SUBSCRIPTION_COUNT[] = "SELECT count(*) FROM subscriptions";
static const char SQL_SUBSCRIPTIONS[] = "SELECT name FROM subscriptions ORDER BY name";

int mailbox_folder_subscribe(struct mailbox *mb, const char *name, bool subscribed,
                             const char **error_r)
{
    char canon[MAILBOX_FOLDER_MAX + 1];
    int64_t id;
    if (!mb_folder_canon(name, canon)) {
        *error_r = "no such folder";
        return MAILBOX_NONEXISTENT;
    }
    if (subscribed) {
        int r = mb_folder_id(mb, canon, &id, NULL, error_r);
        if (r < 0)
            return r;
        sqlite3_stmt *st = mb_stmt(mb, SQL_SUBSCRIPTION_COUNT, error_r);
        int64_t n = st != NULL ? single_value(mb, st, error_r) : -1;
        if (n < 0)
            return -1;
        if (n >= MAILBOX_SUBSCRIPTIONS_MAX) {
            *error_r = "too many subscriptions";
            return -1;
        }
    }
    sqlite3_stmt *st = mb_stmt(mb, subscribed ? SQL_SUBSCRIBE : SQL_UNSUBSCRIBE, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, canon, -1, SQLITE_STATIC);
    return mb_run(mb, st, error_r) == SQLITE_DONE ? 0 : -1;
}

/* Run st (bound already) and call fn with the text of each row's first
 * column; the count, or -1 with *error_r. */
static int each_text_row(struct mailbox *mb, sqlite3_stmt *st,
                         void (*fn)(void *arg, const char *text), void *arg,
                         const char **error_r)
{
    int rc, n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        fn(arg, mb_col_text(st, 0));
        n++;
    }
    if (rc != SQLITE_DONE)
        *error_r = mb_db_error(mb, "store");
    mb_done(mb, st);
    return rc == SQLITE_DONE ? n : -1;
}

int mailbox_subscriptions(struct mailbox *mb, void (*fn)(void *arg, const char *name),
                          void *arg, const char **error_r)
{
    sqlite3_stmt *st = mb_stmt(mb, SQL_SUBSCRIPTIONS, error_r);
    return st != NULL ? each_text_row(mb, st, fn, arg, error_r) : -1;
}

/* --- \Recent ---------------------------------------------------------------------- */

/* folders.recent_uid is the highest UID a session has been shown as
 * \Recent (RFC 3501 §2.3.2: recent to the first session that sees it);
 * a read-write session claims the UIDs above it. */
static const char SQL_RECENT_GET[] = "SELECT id, recent_uid FROM folders WHERE name = ?1";
static const char SQL_RECENT_SET[] =
    "UPDATE folders SET recent_uid = ?2 WHERE id = ?1 AND recent_uid < ?2";
static const char SQL_RECENT_COUNT[] =
    "SELECT count(*) FROM mail WHERE folder_id = ?1 AND uid > ?2";

static int recent_read(struct mailbox *mb, const char *canon, int64_t *id_r, uint32_t *recent_r,
                       const char **error_r)
{
    sqlite3_stmt *st = mb_stmt(mb, SQL_RECENT_GET, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, canon, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id_r = sqlite3_column_int64(st, 0);
        *recent_r = (uint32_t)sqlite3_column_int64(st, 1);
    } else if (rc == SQLITE_DONE)
        *error_r = "no such folder";
    else
        *error_r = mb_db_error(mb, "store");
    mb_done(mb, st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? MAILBOX_NONEXISTENT : -1;
}

int mailbox_recent(struct mailbox *mb, const char *folder, uint32_t claim, uint32_t *before_r,
                   uint64_t *count_r, const char **error_r)
{
    char canon[MAILBOX_FOLDER_MAX + 1];
    struct mb_txn t = {0};
    int64_t id;
    if (!mb_folder_canon(folder, canon)) {
        *error_r = "no such folder";
        return MAILBOX_NONEXISTENT;
    }
    bool claiming = claim > 0; /* only a claim writes: reading takes no write lock */
    if (claiming && mb_txn_begin(mb, &t, error_r) < 0)
        return -1;
    int r = recent_read(mb, canon, &id, before_r, error_r);
    sqlite3_stmt *st = NULL;
    if (r == 0 && claim > *before_r) {
        r = (st = mb_stmt(mb, SQL_RECENT_SET, error_r)) != NULL ? 0 : -1;
        if (r == 0) {
            sqlite3_bind_int64(st, 1, id);
            sqlite3_bind_int64(st, 2, claim);
            r = mb_run(mb, st, error_r) == SQLITE_DONE ? 0 : -1;
        }
    }
    if (r == 0 && count_r != NULL) {
        r = (st = mb_stmt(mb, SQL_RECENT_COUNT, error_r)) != NULL ? 0 : -1;
        if (r == 0) {
            sqlite3_bind_int64(st, 1, id);
            sqlite3_bind_int64(st, 2, *before_r);
            int64_t n = single_value(mb, st, error_r);
            r = n < 0 ? -1 : 0;
            *count_r = n < 0 ? 0 : (uint64_t)n;
        }
    }
    if (!claiming)
        return r;
    if (r < 0) {
        mb_txn_abort(mb, &t);
        return r;
    }
    return mb_txn_commit(mb, &t, error_r);
}

static const char SQL_KEYWORDS[] =
    "SELECT keyword FROM keywords WHERE folder_id = ?1 ORDER BY keyword";

int mailbox_folder_keywords(struct mailbox *mb, const char *folder,
                            void (*fn)(void *arg, const char *kw), void *arg,
                            const char **error_r)
{
    int64_t id;
    int r = mb_folder_id(mb, folder, &id, NULL, error_r);
    if (r < 0)
        return r;
    sqlite3_stmt *st = mb_stmt(mb, SQL_KEYWORDS, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    return each_text_row(mb, st, fn, arg, error_r);
}
