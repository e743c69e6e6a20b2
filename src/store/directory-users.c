/* directory-users.c — mailboxes, their key wraps, aliases and recipient
 * resolution (see directory.h).
 *
 * The directory never holds a secret in a usable form: a mailbox row has
 * the public half of the mailbox's X25519 key pair (delivery seals to it)
 * and wraps, each of which opens only with the owner's password, an app
 * password, or the recovery key (crypto/keywrap.h).  Removing a mailbox
 * deletes those wraps first; with them goes every way to open its files.
 *
 * Addresses are compared in one folded form (lowercase local part and
 * domain).  Mail for "me+tag@d" reaches "me@d" when no exact mailbox or
 * alias exists; "@d" names the catch-all of domain d.  An alias points at
 * mailboxes only (forwarding to other servers comes with outbound mail),
 * so resolution is one level deep and bounded by DIRECTORY_TARGETS_MAX. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "store/directory-internal.h"
#include "store/forwards.h"
#include "store/inboxes.h"

/* --- addresses -------------------------------------------------------------- */

static bool local_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* Fold and check the local part at p (len bytes) into out. */
static const char *local_normalise(const char *p, size_t len, char *out)
{
    if (len == 0)
        return "empty local part";
    if (len > DIRECTORY_LOCAL_MAX)
        return "local part longer than 64 characters";
    for (size_t i = 0; i < len; i++) {
        char c = p[i] >= 'A' && p[i] <= 'Z' ? (char)(p[i] - 'A' + 'a') : p[i];
        if (!local_char_ok(c))
            return "the local part may hold only letters, digits and . _ -";
        if (c == '.' && (i == 0 || i + 1 == len || out[i - 1] == '.'))
            return "misplaced dot in the local part";
        out[i] = c;
    }
    out[len] = '\0';
    return NULL;
}

int directory_address_normalise(const char *address, char out[DIRECTORY_ADDRESS_MAX + 1],
                                const char **error_r)
{
    const char *at = strrchr(address, '@');
    if (at == NULL) {
        *error_r = "not an address (no @)";
        return -1;
    }
    size_t local_len = (size_t)(at - address);
    const char *why = local_normalise(address, local_len, out);
    if (why == NULL) {
        out[local_len] = '@';
        if (directory_domain_normalise(at + 1, out + local_len + 1, &why) == 0)
            return 0;
    }
    *error_r = why;
    return -1;
}

/* Normalise address, or set the handle's error naming it. */
static int address_check(struct directory *dir, const char *address,
                         char out[DIRECTORY_ADDRESS_MAX + 1])
{
    const char *why;
    char shown[80];
    if (directory_address_normalise(address, out, &why) == 0)
        return 0;
    dir_printable(address, shown, sizeof shown);
    dir_set_error(dir, "invalid address '%s': %s", shown, why);
    return -1;
}

/* --- statements ------------------------------------------------------------- */

sqlite3_stmt *dir_prepare(struct directory *dir, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(dir->db, sql, -1, &st, NULL) == SQLITE_OK)
        return st;
    dir_set_db_error(dir, "directory");
    return NULL;
}

sqlite3_stmt *dir_prepare_cached(struct directory *dir, sqlite3_stmt **slot, const char *sql)
{
    if (*slot == NULL && sqlite3_prepare_v3(dir->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot,
                                            NULL) != SQLITE_OK) {
        dir_set_db_error(dir, "directory");
        *slot = NULL;
    }
    return *slot;
}

void dir_release(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Step a statement that returns no row, then finalize it.  Returns the
 * SQLite result code (SQLITE_DONE on success). */
int dir_step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc;
}

/* Step and finalize a statement that changes rows.  Returns how many
 * rows it changed, or -1 with the handle's error set. */
int dir_write_done(struct directory *dir, sqlite3_stmt *st)
{
    if (dir_step_done(st) == SQLITE_DONE)
        return sqlite3_changes(dir->db);
    dir_set_db_error(dir, "directory");
    return -1;
}

void dir_copy_text(char *out, size_t outlen, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(out, outlen, "%s", t != NULL ? (const char *)t : "");
}

#define USER_COLUMNS "id, address, mailbox, public_key, quota_bytes, used_bytes, created"

static void user_from_row(sqlite3_stmt *st, struct directory_user *u)
{
    memset(u, 0, sizeof *u);
    u->id = sqlite3_column_int64(st, 0);
    dir_copy_text(u->address, sizeof u->address, st, 1);
    dir_copy_text(u->mailbox, sizeof u->mailbox, st, 2);
    if (sqlite3_column_bytes(st, 3) == DIRECTORY_PK_BYTES)
        memcpy(u->public_key, sqlite3_column_blob(st, 3), DIRECTORY_PK_BYTES);
    u->quota_bytes = (uint64_t)sqlite3_column_int64(st, 4);
    u->used_bytes = (uint64_t)sqlite3_column_int64(st, 5);
    u->created = sqlite3_column_int64(st, 6);
}

static int insert_wrap(struct directory *dir, int64_t user_id, const struct directory_wrap *w)
{
    sqlite3_stmt *st = dir_prepare(dir, "INSERT OR REPLACE INTO key_wraps"
                                    " (user_id, kind, label, wrap, created, selector)"
                                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int(st, 2, (int)w->kind);
    sqlite3_bind_text(st, 3, w->label, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, w->bytes, (int)w->len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)time(NULL));
    if (w->has_selector)
        sqlite3_bind_blob(st, 6, w->selector, sizeof w->selector, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 6);
    if (dir_write_done(dir, st) < 0)
        return -1;
    return 0;
}

/* 1 when address is the source of an alias. */
static int alias_exists(struct directory *dir, const char *address)
{
    return dir_exists(dir, "SELECT 1 FROM aliases WHERE source = ?1 LIMIT 1", address);
}

/* --- mailboxes -------------------------------------------------------------- */

static int user_insert(struct directory *dir, const struct directory_user *u,
                       const char *address, const uint8_t *swrap, size_t swrap_len,
                       int64_t *id_r)
{
    sqlite3_stmt *st = dir_prepare(dir, "INSERT INTO users (address, domain, mailbox, public_key,"
                                    " secret_wrap, quota_bytes, created)"
                                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, address, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, strchr(address, '@') + 1, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, u->mailbox, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, u->public_key, DIRECTORY_PK_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, swrap, (int)swrap_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)u->quota_bytes);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)time(NULL));
    int rc = dir_step_done(st);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        dir_set_error(dir, "domain %s is not hosted (sealmail domain add)",
                      strchr(address, '@') + 1);
    else if (rc == SQLITE_CONSTRAINT_UNIQUE)
        dir_set_error(dir, "mailbox %s already exists", address);
    else if (rc != SQLITE_DONE)
        dir_set_db_error(dir, "directory");
    *id_r = sqlite3_last_insert_rowid(dir->db);
    return rc == SQLITE_DONE ? 0 : -1;
}

int directory_user_add(struct directory *dir, const struct directory_user *u,
                       const uint8_t *secret_wrap, size_t secret_wrap_len,
                       const struct directory_wrap *wraps, size_t n_wraps)
{
    char address[DIRECTORY_ADDRESS_MAX + 1];
    int64_t id;

    if (address_check(dir, u->address, address) < 0 || dir_exec(dir, "BEGIN IMMEDIATE") < 0)
        return -1;
    int alias = alias_exists(dir, address);
    if (alias != 0) {
        if (alias > 0)
            dir_set_error(dir, "%s is an alias: remove the alias first", address);
        goto rollback;
    }
    if (user_insert(dir, u, address, secret_wrap, secret_wrap_len, &id) < 0)
        goto rollback;
    for (size_t i = 0; i < n_wraps; i++)
        if (insert_wrap(dir, id, &wraps[i]) < 0)
            goto rollback;
    if (dir_exec(dir, "COMMIT") < 0)
        goto rollback;
    dir->own_changes++;
    return 0;
rollback:
    sqlite3_exec(dir->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

/* Look up by an already normalised address. */
static int user_get_folded(struct directory *dir, const char *address, struct directory_user *u)
{
    sqlite3_stmt *st = dir_prepare_cached(dir, &dir->st_user,
                                      "SELECT " USER_COLUMNS " FROM users WHERE address = ?1");
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, address, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        user_from_row(st, u);
    dir_release(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    return rc == SQLITE_ROW;
}

int directory_user_get(struct directory *dir, const char *address, struct directory_user *u)
{
    char folded[DIRECTORY_ADDRESS_MAX + 1];
    if (address_check(dir, address, folded) < 0)
        return 0;
    int r = user_get_folded(dir, folded, u);
    if (r == 0)
        dir_set_error(dir, "no such mailbox: %s", folded);
    return r;
}

int directory_user_secret_wrap(struct directory *dir, int64_t user_id, uint8_t *out,
                               size_t *len_r)
{
    sqlite3_stmt *st = dir_prepare(dir, "SELECT secret_wrap FROM users WHERE id = ?1");
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, user_id);
    int rc = sqlite3_step(st), found = 0;
    if (rc == SQLITE_ROW) {
        int n = sqlite3_column_bytes(st, 0);
        found = n > 0 && n <= DIRECTORY_WRAP_MAX ? 1 : -1;
        if (found > 0) {
            memcpy(out, sqlite3_column_blob(st, 0), (size_t)n);
            *len_r = (size_t)n;
        } else
            dir_set_error(dir, "damaged secret-key wrap");
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    return found;
}

int directory_user_wraps(struct directory *dir, int64_t user_id, enum directory_wrap_kind kind,
                         void (*fn)(void *arg, const struct directory_wrap *w), void *arg)
{
    struct directory_wrap w;
    int rc, n = 0;
    sqlite3_stmt *st = dir_prepare(dir, "SELECT kind, label, wrap, selector FROM key_wraps"
                                    " WHERE user_id = ?1 AND (?2 = 0 OR kind = ?2)"
                                    " ORDER BY kind, label");
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int(st, 2, (int)kind);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int len = sqlite3_column_bytes(st, 2);
        if (len <= 0 || len > DIRECTORY_WRAP_MAX)
            continue; /* damaged: cannot be one of ours */
        w.kind = (enum directory_wrap_kind)sqlite3_column_int(st, 0);
        dir_copy_text(w.label, sizeof w.label, st, 1);
        memcpy(w.bytes, sqlite3_column_blob(st, 2), (size_t)len);
        w.len = (size_t)len;
        w.has_selector = sqlite3_column_bytes(st, 3) == DIRECTORY_SELECTOR_BYTES;
        if (w.has_selector)
            memcpy(w.selector, sqlite3_column_blob(st, 3), DIRECTORY_SELECTOR_BYTES);
        fn(arg, &w);
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    return n;
}

int directory_user_set_wrap(struct directory *dir, int64_t user_id,
                            const struct directory_wrap *w)
{
    if (insert_wrap(dir, user_id, w) < 0)
        return -1;
    dir->own_changes++;
    return 0;
}

int directory_user_remove_wrap(struct directory *dir, int64_t user_id,
                               enum directory_wrap_kind kind, const char *label)
{
    sqlite3_stmt *st =
        dir_prepare(dir, "DELETE FROM key_wraps WHERE user_id = ?1 AND kind = ?2 AND label = ?3");
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int(st, 2, (int)kind);
    sqlite3_bind_text(st, 3, label, -1, SQLITE_STATIC);
    int changed = dir_write_done(dir, st);
    if (changed < 0)
        return -1;
    if (changed == 0) {
        dir_set_error(dir, "no such key: %s", label);
        return -1;
    }
    dir->own_changes++;
    return 0;
}

int directory_user_set_quota(struct directory *dir, int64_t user_id, uint64_t quota_bytes)
{
    sqlite3_stmt *st = dir_prepare(dir, "UPDATE users SET quota_bytes = ?2 WHERE id = ?1");
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)quota_bytes);
    if (dir_write_done(dir, st) < 0)
        return -1;
    dir->own_changes++;
    return 0;
}

int directory_user_usage(struct directory *dir, const char *mailbox, int64_t delta,
                         bool absolute)
{
    static const char *const sql[2][2] = {
        {"UPDATE users SET used_bytes = max(used_bytes + ?2, 0) WHERE mailbox = ?1",
         "UPDATE users SET used_bytes = max(?2, 0) WHERE mailbox = ?1"},
        {"UPDATE inboxes SET used_bytes = max(used_bytes + ?2, 0) WHERE mailbox = ?1",
         "UPDATE inboxes SET used_bytes = max(?2, 0) WHERE mailbox = ?1"},
    };
    int changed = 0;
    for (int table = 0; table < 2 && changed == 0; table++) {
        sqlite3_stmt *st = dir_prepare(dir, sql[table][absolute]);
        if (st == NULL)
            return -1;
        sqlite3_bind_text(st, 1, mailbox, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, delta);
        if ((changed = dir_write_done(dir, st)) < 0)
            return -1;
    }
    dir->own_changes++;
    return 0;
}

static int user_delete(struct directory *dir, int64_t id)
{
    sqlite3_stmt *st = dir_prepare(dir, "DELETE FROM key_wraps WHERE user_id = ?1");
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    if (dir_write_done(dir, st) < 0 || (st = dir_prepare(dir, "DELETE FROM users WHERE id = ?1")) == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    return dir_write_done(dir, st) < 0 ? -1 : 0;
}

int directory_user_remove(struct directory *dir, const char *address, struct directory_user *u)
{
    char folded[DIRECTORY_ADDRESS_MAX + 1];

    if (address_check(dir, address, folded) < 0 || dir_exec(dir, "BEGIN IMMEDIATE") < 0)
        return -1;
    int found = user_get_folded(dir, folded, u);
    if (found == 0)
        dir_set_error(dir, "no such mailbox: %s", folded);
    if (found <= 0 || user_delete(dir, u->id) < 0 || dir_exec(dir, "COMMIT") < 0) {
        sqlite3_exec(dir->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    dir->own_changes++;
    /* secure_delete zeroed the freed cells; the checkpoint copies those
     * pages over the old ones and empties the WAL that still held them.
     * A reader holding an old snapshot makes it partial: say so. */
    int log_frames = -1, ckpt = -1;
    if (sqlite3_wal_checkpoint_v2(dir->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log_frames, &ckpt)
            != SQLITE_OK
        || log_frames != 0)
        log_warn("directory wal-checkpoint=incomplete (old key wraps stay in directory.db-wal"
                 " until the next checkpoint)");
    return 0;
}

int directory_user_list(struct directory *dir,
                        void (*fn)(void *arg, const struct directory_user *u), void *arg)
{
    struct directory_user u;
    int rc, n = 0;
    sqlite3_stmt *st = dir_prepare(dir, "SELECT " USER_COLUMNS " FROM users ORDER BY address");
    if (st == NULL)
        return -1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        user_from_row(st, &u);
        fn(arg, &u);
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    return n;
}

/* --- aliases ---------------------------------------------------------------- */

/* Normalise an alias source: "local@domain" or the catch-all "@domain". */
static int source_check(struct directory *dir, const char *source,
                        char out[DIRECTORY_ADDRESS_MAX + 1])
{
    const char *why;
    if (source[0] != '@')
        return address_check(dir, source, out);
    out[0] = '@';
    if (directory_domain_normalise(source + 1, out + 1, &why) == 0)
        return 0;
    dir_set_error(dir, "invalid catch-all '@domain': %s", why);
    return -1;
}

static int alias_insert(struct directory *dir, const char *source, const char *target)
{
    sqlite3_stmt *st = dir_prepare(dir, "INSERT INTO aliases (source, domain, target, created)"
                                    " VALUES (?1, ?2, ?3, ?4)");
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, strchr(source, '@') + 1, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, target, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
    int rc = dir_step_done(st);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        dir_set_error(dir, "alias %s -> %s already exists", source, target);
    else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        dir_set_error(dir, "domain %s is not hosted", strchr(source, '@') + 1);
    else if (rc != SQLITE_DONE)
        dir_set_db_error(dir, "directory");
    return rc == SQLITE_DONE ? 0 : -1;
}

int directory_alias_add(struct directory *dir, const char *source, const char *target)
{
    char src[DIRECTORY_ADDRESS_MAX + 1], dst[DIRECTORY_ADDRESS_MAX + 1];
    struct directory_user u;

    if (source_check(dir, source, src) < 0 || address_check(dir, target, dst) < 0 ||
        dir_exec(dir, "BEGIN IMMEDIATE") < 0)
        return -1;
    int is_user = user_get_folded(dir, src, &u);
    if (is_user > 0)
        dir_set_error(dir, "%s is a mailbox; an alias cannot shadow it", src);
    int target_ok = is_user == 0 ? user_get_folded(dir, dst, &u) : -1;
    if (target_ok == 0)
        dir_set_error(dir, "no such mailbox: %s (aliases point at mailboxes)", dst);
    if (target_ok <= 0 || alias_insert(dir, src, dst) < 0 || dir_exec(dir, "COMMIT") < 0) {
        sqlite3_exec(dir->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    dir->own_changes++;
    return 0;
}

int directory_alias_remove(struct directory *dir, const char *source, const char *target)
{
    char src[DIRECTORY_ADDRESS_MAX + 1], dst[DIRECTORY_ADDRESS_MAX + 1] = "";

    if (source_check(dir, source, src) < 0 ||
        (target != NULL && address_check(dir, target, dst) < 0))
        return -1;
    return dir_delete_pair(dir, "aliases", "alias", src, dst);
}

int dir_delete_pair(struct directory *dir, const char *table, const char *what,
                    const char *src, const char *dst)
{
    char sql[128];
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE source = ?1 AND (?2 = '' OR target = ?2)",
             table);
    sqlite3_stmt *st = dir_prepare(dir, sql);
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, src, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, dst, -1, SQLITE_STATIC);
    int changed = dir_write_done(dir, st);
    if (changed == 0)
        dir_set_error(dir, "no such %s: %s%s%s", what, src, dst[0] ? " -> " : "", dst);
    if (changed <= 0)
        return -1;
    dir->own_changes++;
    return 0;
}

int dir_each_pair(struct directory *dir, const char *sql,
                  void (*fn)(void *arg, const char *a, const char *b), void *arg)
{
    int rc, n = 0;
    sqlite3_stmt *st = dir_prepare(dir, sql);
    if (st == NULL)
        return -1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        fn(arg, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1));
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    return n;
}

int directory_alias_list(struct directory *dir,
                         void (*fn)(void *arg, const char *source, const char *target),
                         void *arg)
{
    return dir_each_pair(dir, "SELECT source, target FROM aliases ORDER BY source, target", fn,
                         arg);
}

/* --- resolution -------------------------------------------------------------- */

struct targets {
    struct directory_user *v;
    size_t n, max;
};

static void targets_add(struct targets *t, const struct directory_user *u)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].id == u->id)
            return;
    if (t->n < t->max)
        t->v[t->n++] = *u;
}

/* The mailboxes the alias source points at. */
static int alias_targets(struct directory *dir, const char *source, struct targets *t)
{
    struct directory_user u;
    int rc;
    sqlite3_stmt *st = dir_prepare_cached(dir, &dir->st_alias,
                                      "SELECT u.id, u.address, u.mailbox, u.public_key,"
                                      " u.quota_bytes, u.used_bytes, u.created"
                                      " FROM aliases a JOIN users u ON u.address = a.target"
                                      " WHERE a.source = ?1 ORDER BY u.address");
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        user_from_row(st, &u);
        targets_add(t, &u);
    }
    dir_release(st);
    if (rc != SQLITE_DONE) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    return 0;
}

/* "me+tag@d" without its tag, into out; false when there is no tag. */
static bool strip_tag(const char *address, char out[DIRECTORY_ADDRESS_MAX + 1])
{
    const char *plus = strchr(address, '+'), *at = strrchr(address, '@');
    if (plus == NULL || at == NULL || plus > at || plus == address)
        return false;
    int n = snprintf(out, DIRECTORY_ADDRESS_MAX + 1, "%.*s%s", (int)(plus - address), address, at);
    return n >= 0 && n <= DIRECTORY_ADDRESS_MAX;
}

/* The bare <postmaster> (RFC 5321 §4.5.1) reaches postmaster@ of the
 * first hosted domain, in name order, where that address resolves. */
static int resolve_postmaster(struct directory *dir, struct directory_user *targets, size_t max)
{
    char address[DIRECTORY_ADDRESS_MAX + 1];
    int rc, n = 0;
    sqlite3_stmt *st = dir_prepare(dir, "SELECT name FROM domains ORDER BY name");
    if (st == NULL)
        return -1;
    while (n == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        snprintf(address, sizeof address, "postmaster@%s", (const char *)sqlite3_column_text(st, 0));
        n = directory_resolve(dir, address, targets, max);
    }
    /* a failed step is not "nobody": queued would drop the message */
    if (n == 0 && rc != SQLITE_DONE) {
        dir_set_db_error(dir, "directory");
        n = -1;
    }
    sqlite3_finalize(st);
    return n;
}

/* A live disposable inbox of the folded address, as a target. */
static int resolve_inbox(struct directory *dir, const char *address, struct targets *t)
{
    struct directory_inbox in;
    int r = directory_inbox_live(dir, address, (int64_t)time(NULL), &in);
    if (r <= 0)
        return r;
    struct directory_user u = {.id = in.id, .quota_bytes = in.quota_bytes,
                               .used_bytes = in.used_bytes, .created = in.created,
                               .disposable = true};
    memcpy(u.address, in.address, sizeof u.address);
    memcpy(u.mailbox, in.mailbox, sizeof u.mailbox);
    memcpy(u.public_key, in.public_key, sizeof u.public_key);
    targets_add(t, &u);
    return (int)t->n;
}

/* "@domain" of address into out (the domain folded); false if the domain
 * is not a valid hosted-domain name. */
static bool catchall_of(const char *address, char out[DIRECTORY_ADDRESS_MAX + 1])
{
    const char *at = strrchr(address, '@'), *why;
    if (at == NULL || at == address)
        return false;
    out[0] = '@';
    return directory_domain_normalise(at + 1, out + 1, &why) == 0;
}

/* The local targets and forwards of alias source; the total count.  The
 * route names the source only when it has any target. */
static int resolve_source(struct directory *dir, const char *source, struct targets *t,
                          struct directory_route *r)
{
    struct directory_route found = {0};
    size_t before = t->n;
    if (alias_targets(dir, source, t) < 0 || dir_route_source(dir, source, &found) < 0)
        return -1;
    size_t total = (t->n - before) + found.n_forwards;
    if (total > 0) {
        *r = found;
        snprintf(r->source, sizeof r->source, "%s", source);
        if (r->forwarding_off)
            r->n_forwards = 0;
    }
    return (int)total;
}

int directory_resolve(struct directory *dir, const char *address,
                      struct directory_user *targets, size_t max)
{
    return directory_resolve_route(dir, address, targets, max, NULL);
}

static int resolve_route(struct directory *dir, const char *address,
                         struct directory_user *targets, size_t max,
                         struct directory_route *route)
{
    if (strcasecmp(address, "postmaster") == 0)
        return resolve_postmaster(dir, targets, max);

    char base[DIRECTORY_ADDRESS_MAX + 1], folded[DIRECTORY_ADDRESS_MAX + 1];
    const char *why;
    struct targets t = {targets, 0, max};

    size_t len = strlen(address);
    if (len > DIRECTORY_ADDRESS_MAX + DIRECTORY_LOCAL_MAX)
        return 0;
    /* mailbox and alias names never hold '+', so the tag can go first */
    if (!strip_tag(address, base)) {
        if (len > DIRECTORY_ADDRESS_MAX || strchr(address, '+') != NULL)
            return 0;
        memcpy(base, address, len + 1);
    }
    int n = 0;
    if (directory_address_normalise(base, folded, &why) == 0) {
        struct directory_user u;
        int r = user_get_folded(dir, folded, &u);
        if (r > 0)
            targets_add(&t, &u);
        n = r < 0 ? -1 : r > 0 ? 1 : resolve_source(dir, folded, &t, route);
    } else if (!catchall_of(base, folded)) {
        return 0; /* not even the domain is well formed */
    }
    /* a local part no mailbox can have (e.g. UTF-8 under SMTPUTF8) still
     * reaches the domain's catch-all */
    if (n == 0)
        n = resolve_source(dir, strrchr(folded, '@'), &t, route);
    if (n == 0 && folded[0] != '@')
        n = resolve_inbox(dir, folded, &t);
    return n < 0 ? -1 : (int)t.n;
}

/* Step one of the handle's cached transaction statements. */
static int step_cached(struct directory *dir, sqlite3_stmt **slot, const char *sql)
{
    sqlite3_stmt *st = dir_prepare_cached(dir, slot, sql);
    if (st == NULL)
        return -1;
    int rc = sqlite3_step(st);
    dir_release(st);
    if (rc == SQLITE_DONE)
        return 0;
    dir_set_db_error(dir, "directory");
    return -1;
}

/* The lookup runs up to eight queries; one read transaction around them
 * takes the database's locks once instead of once per query (each lock
 * and unlock is an fcntl() on the file and the WAL index, smtpd's
 * largest system-call count per RCPT), and every answer comes from the
 * same snapshot. */
int directory_resolve_route(struct directory *dir, const char *address,
                            struct directory_user *targets, size_t max,
                            struct directory_route *route)
{
    struct directory_route scratch;
    if (route == NULL)
        route = &scratch;
    memset(route, 0, sizeof *route);
    bool own = sqlite3_get_autocommit(dir->db) != 0; /* not inside a caller's transaction */
    if (own && step_cached(dir, &dir->st_begin, "BEGIN") < 0)
        return -1;
    int n = resolve_route(dir, address, targets, max, route);
    if (own && step_cached(dir, &dir->st_commit, "COMMIT") < 0) {
        sqlite3_exec(dir->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return n;
}
