/* directory.c — the directory database (see directory.h).
 *
 * SQLite in WAL mode so readers (smtpd) never block the writer (the CLI).
 * The schema is a list of numbered migrations; schema_version records the
 * last one applied, and directory_open(create=true) applies the rest in
 * one transaction.  directory_version() combines SQLite's data_version
 * (changes by other connections) with a local counter (changes by this
 * one), which is all a reader needs to know whether to reload. */
#include "store/directory.h"

#include <ctype.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"

struct directory {
    sqlite3 *db;
    int64_t local_changes;
    char error[256];
};

static const char *const migrations[] = {
    /* 1: hosted domains */
    "CREATE TABLE domains (name TEXT PRIMARY KEY NOT NULL, created INTEGER NOT NULL)"
    " WITHOUT ROWID;",
};

#define N_MIGRATIONS (sizeof migrations / sizeof migrations[0])
#define BUSY_TIMEOUT_MS 5000

static int dir_fail(struct directory *dir, const char *what)
{
    snprintf(dir->error, sizeof dir->error, "%s: %s", what, sqlite3_errmsg(dir->db));
    return -1;
}

static int dir_exec(struct directory *dir, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(dir->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(dir->error, sizeof dir->error, "%s", msg ? msg : "sqlite error");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int64_t dir_pragma_int(struct directory *dir, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(dir->db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int dir_migrate(struct directory *dir)
{
    if (dir_exec(dir, "BEGIN IMMEDIATE") < 0)
        return -1;
    int64_t have = dir_pragma_int(dir, "PRAGMA user_version");
    for (size_t i = (size_t)(have < 0 ? 0 : have); i < N_MIGRATIONS; i++) {
        if (dir_exec(dir, migrations[i]) < 0) {
            dir_exec(dir, "ROLLBACK");
            return -1;
        }
    }
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %zu", N_MIGRATIONS);
    if (dir_exec(dir, sql) < 0 || dir_exec(dir, "COMMIT") < 0) {
        dir_exec(dir, "ROLLBACK");
        return -1;
    }
    return 0;
}

struct directory *directory_open(const char *data_dir, bool create, const char **error_r)
{
    static __thread char error[320];
    char path[4096];
    snprintf(path, sizeof path, "%s/directory.db", data_dir);
    struct directory *dir = sm_malloc(sizeof *dir);
    int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &dir->db, flags, NULL) != SQLITE_OK) {
        snprintf(error, sizeof error, "%s: %s", path, sqlite3_errmsg(dir->db));
        goto fail;
    }
    sqlite3_busy_timeout(dir->db, BUSY_TIMEOUT_MS);
    if (dir_exec(dir, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                      "PRAGMA foreign_keys=ON") < 0 ||
        (create && dir_migrate(dir) < 0)) {
        snprintf(error, sizeof error, "%s: %s", path, dir->error);
        goto fail;
    }
    if (dir_pragma_int(dir, "PRAGMA user_version") != (int64_t)N_MIGRATIONS) {
        snprintf(error, sizeof error, "%s: schema version %lld, expected %zu (run sealmail init)",
                 path, (long long)dir_pragma_int(dir, "PRAGMA user_version"), N_MIGRATIONS);
        goto fail;
    }
    return dir;
fail:
    *error_r = error;
    sqlite3_close(dir->db);
    free(dir);
    return NULL;
}

void directory_close(struct directory **dirp)
{
    struct directory *dir = *dirp;
    if (dir == NULL)
        return;
    sqlite3_close(dir->db);
    free(dir);
    *dirp = NULL;
}

const char *directory_error(const struct directory *dir)
{
    return dir->error;
}

/* Lowercase LDH labels separated by dots, at most 253 characters. */
static int normalise_domain(struct directory *dir, const char *in, char *out, size_t outlen)
{
    size_t len = strlen(in), label = 0;
    if (len > 0 && in[len - 1] == '.')
        len--; /* a trailing dot (absolute name) is not stored */
    if (len == 0 || len > 253 || len >= outlen)
        goto bad;
    for (size_t i = 0; i < len; i++) {
        char c = (char)tolower((unsigned char)in[i]);
        if (c == '.') {
            if (label == 0 || out[i - 1] == '-')
                goto bad;
            label = 0;
        } else if (isalnum((unsigned char)c) || (c == '-' && label > 0)) {
            if (++label > 63)
                goto bad;
        } else {
            goto bad;
        }
        out[i] = c;
    }
    out[len] = '\0';
    if (label == 0 || out[len - 1] == '-')
        goto bad;
    return 0;
bad:
    snprintf(dir->error, sizeof dir->error, "'%.80s' is not a valid domain name", in);
    return -1;
}

static int dir_change(struct directory *dir, const char *sql, const char *domain)
{
    char name[256];
    sqlite3_stmt *st;
    if (normalise_domain(dir, domain, name, sizeof name) < 0)
        return -1;
    if (sqlite3_prepare_v2(dir->db, sql, -1, &st, NULL) != SQLITE_OK)
        return dir_fail(dir, "prepare");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL));
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_CONSTRAINT) {
        snprintf(dir->error, sizeof dir->error, "domain %s already exists", name);
        return -1;
    }
    if (rc != SQLITE_DONE)
        return dir_fail(dir, name);
    if (sqlite3_changes(dir->db) == 0) {
        snprintf(dir->error, sizeof dir->error, "domain %s does not exist", name);
        return -1;
    }
    dir->local_changes++;
    return 0;
}

int directory_domain_add(struct directory *dir, const char *domain)
{
    return dir_change(dir, "INSERT INTO domains (name, created) VALUES (?1, ?2)", domain);
}

int directory_domain_remove(struct directory *dir, const char *domain)
{
    return dir_change(dir, "DELETE FROM domains WHERE name = ?1 AND ?2 IS NOT NULL", domain);
}

int directory_domain_list(struct directory *dir, void (*fn)(void *arg, const char *domain),
                          void *arg)
{
    sqlite3_stmt *st;
    int n = 0, rc;
    if (sqlite3_prepare_v2(dir->db, "SELECT name FROM domains ORDER BY name", -1, &st, NULL) !=
        SQLITE_OK)
        return dir_fail(dir, "prepare");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        fn(arg, (const char *)sqlite3_column_text(st, 0));
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return dir_fail(dir, "list domains");
    return n;
}

int64_t directory_version(struct directory *dir)
{
    return dir_pragma_int(dir, "PRAGMA data_version") * 1000003 + dir->local_changes;
}
