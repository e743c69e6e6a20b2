/* directory-inboxes.c — rows of disposable inboxes and their tombstones
 * (see inboxes.h). */
#include <string.h>
#include <time.h>

#include "store/directory-internal.h"
#include "store/inboxes.h"

#define INBOX_COLUMNS "id, address, mailbox, public_key, quota_bytes, used_bytes, created, expires"

static void inbox_from_row(sqlite3_stmt *st, struct directory_inbox *in)
{
    memset(in, 0, sizeof *in);
    in->id = sqlite3_column_int64(st, 0);
    dir_copy_text(in->address, sizeof in->address, st, 1);
    dir_copy_text(in->mailbox, sizeof in->mailbox, st, 2);
    if (sqlite3_column_bytes(st, 3) == DIRECTORY_PK_BYTES)
        memcpy(in->public_key, sqlite3_column_blob(st, 3), DIRECTORY_PK_BYTES);
    in->quota_bytes = (uint64_t)sqlite3_column_int64(st, 4);
    in->used_bytes = (uint64_t)sqlite3_column_int64(st, 5);
    in->created = sqlite3_column_int64(st, 6);
    in->expires = sqlite3_column_int64(st, 7);
}

static void copy_blob(uint8_t *out, size_t cap, size_t *len_r, sqlite3_stmt *st, int col)
{
    int n = sqlite3_column_bytes(st, col);
    *len_r = n > 0 && (size_t)n <= cap ? (size_t)n : 0;
    if (*len_r > 0)
        memcpy(out, sqlite3_column_blob(st, col), *len_r);
}


int directory_inbox_tombstoned(struct directory *dir, const uint8_t tomb[INBOX_TOMBSTONE_BYTES])
{
    sqlite3_stmt *st = dir_prepare(dir, "SELECT 1 FROM inbox_tombstones WHERE hash = ?1");
    if (st == NULL)
        return -1;
    sqlite3_bind_blob(st, 1, tomb, INBOX_TOMBSTONE_BYTES, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    return rc == SQLITE_ROW;
}

/* Whether the address is used by anything: inbox, tombstone, mailbox, alias. */
static int address_taken(struct directory *dir, const char *address,
                         const uint8_t tomb[INBOX_TOMBSTONE_BYTES])
{
    static const char *const queries[] = {
        "SELECT 1 FROM inboxes WHERE address = ?1",
        "SELECT 1 FROM users WHERE address = ?1",
        "SELECT 1 FROM aliases WHERE source = ?1 LIMIT 1",
    };
    int r = directory_inbox_tombstoned(dir, tomb);
    for (size_t i = 0; r == 0 && i < sizeof queries / sizeof queries[0]; i++)
        r = dir_exists(dir, queries[i], address);
    return r;
}

static int inbox_insert(struct directory *dir, struct directory_inbox *in,
                        const uint8_t lookup[INBOX_LOOKUP_BYTES],
                        const struct directory_inbox_wraps *w)
{
    sqlite3_stmt *st = dir_prepare(dir, "INSERT INTO inboxes (address, domain, mailbox, lookup,"
                                        " public_key, secret_wrap, token_wrap, quota_bytes,"
                                        " created, expires)"
                                        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    if (st == NULL)
        return -1;
    const char *at = strchr(in->address, '@');
    sqlite3_bind_text(st, 1, in->address, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, at != NULL ? at + 1 : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, in->mailbox, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, lookup, INBOX_LOOKUP_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, in->public_key, DIRECTORY_PK_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(st, 6, w->secret, (int)w->secret_len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 7, w->token, (int)w->token_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)in->quota_bytes);
    sqlite3_bind_int64(st, 9, in->created);
    sqlite3_bind_int64(st, 10, in->expires);
    if (dir_write_done(dir, st) < 0)
        return -1;
    in->id = sqlite3_last_insert_rowid(dir->db);
    return 0;
}

int directory_inbox_add(struct directory *dir, struct directory_inbox *in,
                        const uint8_t lookup[INBOX_LOOKUP_BYTES],
                        const uint8_t tomb[INBOX_TOMBSTONE_BYTES],
                        const struct directory_inbox_wraps *w)
{
    in->created = (int64_t)time(NULL);
    if (dir_exec(dir, "BEGIN IMMEDIATE") < 0)
        return -1;
    int taken = address_taken(dir, in->address, tomb);
    int r = taken != 0 ? (taken > 0 ? DIRECTORY_INBOX_TAKEN : -1) : inbox_insert(dir, in, lookup, w);
    if (r == DIRECTORY_INBOX_TAKEN)
        dir_set_error(dir, "the address %s is taken", in->address);
    if (r < 0 || dir_exec(dir, "COMMIT") < 0) {
        sqlite3_exec(dir->db, "ROLLBACK", NULL, NULL, NULL);
        return r < 0 ? r : -1;
    }
    dir->own_changes++;
    return 0;
}

int directory_inbox_by_lookup(struct directory *dir, const uint8_t lookup[INBOX_LOOKUP_BYTES],
                              struct directory_inbox *in, struct directory_inbox_wraps *w)
{
    sqlite3_stmt *st = dir_prepare(dir, "SELECT " INBOX_COLUMNS ", secret_wrap, token_wrap"
                                        " FROM inboxes WHERE lookup = ?1");
    if (st == NULL)
        return -1;
    sqlite3_bind_blob(st, 1, lookup, INBOX_LOOKUP_BYTES, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        inbox_from_row(st, in);
        if (w != NULL) {
            copy_blob(w->secret, sizeof w->secret, &w->secret_len, st, 8);
            copy_blob(w->token, sizeof w->token, &w->token_len, st, 9);
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    return rc == SQLITE_ROW;
}

int directory_inbox_live(struct directory *dir, const char *address, int64_t now,
                         struct directory_inbox *in)
{
    sqlite3_stmt *st = dir_prepare_cached(dir, &dir->st_inbox, "SELECT " INBOX_COLUMNS
                                          " FROM inboxes WHERE address = ?1 AND expires > ?2");
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, address, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        inbox_from_row(st, in);
    dir_release(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    return rc == SQLITE_ROW;
}

int directory_inbox_set_expiry(struct directory *dir, int64_t id, int64_t expires)
{
    sqlite3_stmt *st = dir_prepare(dir, "UPDATE inboxes SET expires = ?2 WHERE id = ?1");
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, expires);
    int n = dir_write_done(dir, st);
    if (n == 0)
        dir_set_error(dir, "no such inbox");
    if (n <= 0)
        return -1;
    dir->own_changes++;
    return 0;
}

static int inbox_delete(struct directory *dir, int64_t id, const uint8_t tomb[INBOX_TOMBSTONE_BYTES])
{
    sqlite3_stmt *st = dir_prepare(dir, "DELETE FROM inboxes WHERE id = ?1");
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int n = dir_write_done(dir, st);
    if (n == 0)
        dir_set_error(dir, "no such inbox");
    if (n <= 0 || (st = dir_prepare(dir, "INSERT OR IGNORE INTO inbox_tombstones (hash, created)"
                                         " VALUES (?1, ?2)")) == NULL)
        return -1;
    sqlite3_bind_blob(st, 1, tomb, INBOX_TOMBSTONE_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL));
    return dir_write_done(dir, st) < 0 ? -1 : 0;
}

int directory_inbox_remove(struct directory *dir, int64_t id,
                           const uint8_t tomb[INBOX_TOMBSTONE_BYTES])
{
    if (dir_exec(dir, "BEGIN IMMEDIATE") < 0)
        return -1;
    if (inbox_delete(dir, id, tomb) < 0 || dir_exec(dir, "COMMIT") < 0) {
        sqlite3_exec(dir->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    dir->own_changes++;
    /* as for mailboxes: secure_delete zeroed the cells, the checkpoint
     * copies those pages home and empties the WAL that still held them */
    int log_frames = -1, ckpt = -1;
    if (sqlite3_wal_checkpoint_v2(dir->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log_frames, &ckpt)
            != SQLITE_OK
        || log_frames != 0)
        log_warn("directory wal-checkpoint=incomplete (old inbox wraps stay in directory.db-wal"
                 " until the next checkpoint)");
    return 0;
}

int directory_inbox_expired(struct directory *dir, int64_t now, size_t max,
                            void (*fn)(void *arg, const struct directory_inbox *in), void *arg)
{
    sqlite3_stmt *st = dir_prepare(dir, "SELECT " INBOX_COLUMNS " FROM inboxes"
                                        " WHERE expires <= ?1 ORDER BY expires LIMIT ?2");
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    int rc, n = 0;
    struct directory_inbox in;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        inbox_from_row(st, &in);
        fn(arg, &in);
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    return n;
}

int64_t directory_inbox_count(struct directory *dir, int64_t now)
{
    sqlite3_stmt *st = dir_prepare(dir, "SELECT count(*) FROM inboxes WHERE expires > ?1");
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, now);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    if (n < 0)
        dir_set_db_error(dir, "directory");
    return n;
}
