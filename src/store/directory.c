/* directory.c — the directory database on SQLite (see directory.h).
 *
 * Design: one connection per handle, WAL journal (readers never block the
 * writer), foreign keys on, a 5 s busy timeout so concurrent `sealmail`
 * commands and daemons wait for each other instead of failing.  The
 * schema is a list of numbered migrations; directory_open(create=true)
 * applies the missing ones in one IMMEDIATE transaction each and records
 * the version in schema_version.  Opening without create refuses a
 * database whose version differs from this binary's: roles never migrate.
 *
 * Domain names are validated and folded here, once, so every caller sees
 * the same rules: ASCII letters, digits and hyphens in dot-separated
 * labels of 1..63 characters, no hyphen at either end of a label, a
 * top-level label that is not all digits (no IP addresses), 253
 * characters at most; one trailing dot is accepted and dropped.
 *
 * directory_version() combines PRAGMA data_version, which changes when
 * another connection commits, with a counter of this handle's own
 * changes (data_version does not see those). */
#include "store/directory.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/log.h"
#include "core/mem.h"
#include "store/directory-internal.h"

#define DOMAIN_MAX DIRECTORY_DOMAIN_MAX
#define LABEL_MAX 63
#define BUSY_TIMEOUT_MS 5000


/* Migration N (1-based) brings the schema from version N-1 to N. */
static const char *const migrations[] = {
    /* 1 */
    "CREATE TABLE domains ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  created INTEGER NOT NULL"
    ") WITHOUT ROWID;",
    /* 2: mailboxes, their key wraps, aliases (see directory-users.c) */
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY,"
    "  address TEXT NOT NULL UNIQUE,"
    "  domain TEXT NOT NULL REFERENCES domains (name),"
    "  mailbox TEXT NOT NULL UNIQUE,"
    "  public_key BLOB NOT NULL,"
    "  secret_wrap BLOB NOT NULL,"
    "  quota_bytes INTEGER NOT NULL DEFAULT 0,"
    "  used_bytes INTEGER NOT NULL DEFAULT 0,"
    "  created INTEGER NOT NULL"
    ");"
    "CREATE TABLE key_wraps ("
    "  id INTEGER PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
    "  kind INTEGER NOT NULL,"
    "  label TEXT NOT NULL DEFAULT '',"
    "  wrap BLOB NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  UNIQUE (user_id, kind, label)"
    ");"
    "CREATE TABLE aliases ("
    "  source TEXT NOT NULL,"
    "  domain TEXT NOT NULL REFERENCES domains (name),"
    "  target TEXT NOT NULL REFERENCES users (address) ON DELETE CASCADE,"
    "  created INTEGER NOT NULL,"
    "  PRIMARY KEY (source, target)"
    ") WITHOUT ROWID;"
    "CREATE INDEX aliases_target ON aliases (target);",
    /* 3: app passwords carry a selector (see account.c), so a login tries one wrap */
    "ALTER TABLE key_wraps ADD COLUMN selector BLOB;",
    /* 4: disposable inboxes and the tombstones of expired ones (directory-inboxes.c) */
    "CREATE TABLE inboxes ("
    "  id INTEGER PRIMARY KEY,"
    "  address TEXT NOT NULL UNIQUE,"
    "  domain TEXT NOT NULL,"
    "  mailbox TEXT NOT NULL UNIQUE,"
    "  lookup BLOB NOT NULL UNIQUE,"
    "  public_key BLOB NOT NULL,"
    "  secret_wrap BLOB NOT NULL,"
    "  token_wrap BLOB NOT NULL,"
    "  quota_bytes INTEGER NOT NULL DEFAULT 0,"
    "  used_bytes INTEGER NOT NULL DEFAULT 0,"
    "  created INTEGER NOT NULL,"
    "  expires INTEGER NOT NULL"
    ");"
    "CREATE INDEX inboxes_expires ON inboxes (expires);"
    "CREATE TABLE inbox_tombstones ("
    "  hash BLOB PRIMARY KEY NOT NULL,"
    "  created INTEGER NOT NULL"
    ") WITHOUT ROWID;",
    /* 5: DKIM signing keys, private halves sealed to the spool key (directory-dkim.c) */
    "CREATE TABLE dkim_keys ("
    "  id INTEGER PRIMARY KEY,"
    "  domain TEXT NOT NULL REFERENCES domains (name) ON DELETE CASCADE,"
    "  selector TEXT NOT NULL,"
    "  algorithm TEXT NOT NULL CHECK (algorithm IN ('rsa-sha256', 'ed25519-sha256')),"
    "  state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retired')),"
    "  public_key TEXT NOT NULL,"
    "  private_wrap BLOB NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  retired INTEGER,"
    "  UNIQUE (domain, selector)"
    ");",
    /* 6: forwarding to other servers, and the policy of an alias (directory-forwards.c) */
    "CREATE TABLE forwards ("
    "  source TEXT NOT NULL,"
    "  domain TEXT NOT NULL REFERENCES domains (name),"
    "  target TEXT NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  PRIMARY KEY (source, target)"
    ") WITHOUT ROWID;"
    "CREATE TABLE alias_policy ("
    "  source TEXT PRIMARY KEY NOT NULL,"
    "  domain TEXT NOT NULL REFERENCES domains (name),"
    "  disabled INTEGER NOT NULL DEFAULT 0,"
    "  allow TEXT NOT NULL DEFAULT ''"
    ") WITHOUT ROWID;"
    "ALTER TABLE domains ADD COLUMN forwarding INTEGER NOT NULL DEFAULT 1;",
};

#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

void dir_set_error(struct directory *dir, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dir->error, sizeof dir->error, fmt, ap);
    va_end(ap);
}

void dir_set_db_error(struct directory *dir, const char *what)
{
    dir_set_error(dir, "%s: %s", what, sqlite3_errmsg(dir->db));
}

const char *directory_error(const struct directory *dir)
{
    return dir->error;
}

int dir_exec(struct directory *dir, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(dir->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    dir_set_error(dir, "directory: %s", msg != NULL ? msg : sqlite3_errmsg(dir->db));
    sqlite3_free(msg);
    return -1;
}

int dir_query_int(struct directory *dir, const char *sql, int64_t *value_r)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(dir->db, sql, -1, &st, NULL) != SQLITE_OK) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    int rc = sqlite3_step(st);
    *value_r = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    return 0;
}

static int schema_version(struct directory *dir, int64_t *version_r)
{
    int64_t exists;
    if (dir_query_int(dir,
                  "SELECT count(*) FROM sqlite_master"
                  " WHERE type = 'table' AND name = 'schema_version'",
                  &exists)
        < 0)
        return -1;
    if (!exists) {
        *version_r = 0;
        return 0;
    }
    return dir_query_int(dir, "SELECT max(version) FROM schema_version", version_r);
}

/* Bring the schema to version v (1-based) unless it is there already.
 * The version is read inside the write transaction, so two processes
 * migrating at once apply each step exactly once. */
static int migrate_to(struct directory *dir, int v)
{
    char sql[128];
    int64_t have;

    if (dir_exec(dir, "BEGIN IMMEDIATE") < 0)
        return -1;
    if (schema_version(dir, &have) < 0)
        goto rollback;
    if (have >= v)
        return dir_exec(dir, "COMMIT");
    snprintf(sql, sizeof sql, "INSERT INTO schema_version (version, applied) VALUES (%d, %lld)",
             v, (long long)time(NULL));
    if (dir_exec(dir, migrations[v - 1]) < 0 || dir_exec(dir, sql) < 0 || dir_exec(dir, "COMMIT") < 0)
        goto rollback;
    log_info("directory migrated version=%d", v);
    return 0;
rollback:
    dir_exec(dir, "ROLLBACK");
    return -1;
}

static int migrate(struct directory *dir)
{
    if (dir_exec(dir, "CREATE TABLE IF NOT EXISTS schema_version ("
                  "  version INTEGER PRIMARY KEY NOT NULL,"
                  "  applied INTEGER NOT NULL)")
        < 0)
        return -1;
    for (int v = 1; v <= SCHEMA_VERSION; v++)
        if (migrate_to(dir, v) < 0)
            return -1;
    return 0;
}

/* Settings of every connection, then the schema check (and migration). */
static int setup(struct directory *dir, bool create)
{
    int64_t version;

    sqlite3_busy_timeout(dir->db, BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(dir->db, 1);
    if (dir_exec(dir, "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL") < 0)
        return -1;
    if (create && (dir_exec(dir, "PRAGMA journal_mode = WAL") < 0 || migrate(dir) < 0))
        return -1;
    if (schema_version(dir, &version) < 0)
        return -1;
    if (version > SCHEMA_VERSION) {
        dir_set_error(dir, "schema version %lld is newer than this sealmail's (%d)",
                  (long long)version, SCHEMA_VERSION);
        return -1;
    }
    if (version < SCHEMA_VERSION) {
        dir_set_error(dir, "schema version %lld, expected %d (run `sealmail init`)",
                  (long long)version, SCHEMA_VERSION);
        return -1;
    }
    return 0;
}

struct directory *directory_open(const char *data_dir, bool create, const char **error_r)
{
    static _Thread_local char error[4096 + 512];
    char path[4096];
    struct stat st;

    if ((size_t)snprintf(path, sizeof path, "%s/directory.db", data_dir) >= sizeof path) {
        *error_r = "directory: data_dir path too long";
        return NULL;
    }
    if (!create && stat(path, &st) < 0) {
        snprintf(error, sizeof error, "%s: %s (run `sealmail init`)", path, strerror(errno));
        *error_r = error;
        return NULL;
    }
    struct directory *dir = sm_malloc(sizeof *dir);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | (create ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path, &dir->db, flags, NULL) != SQLITE_OK) {
        dir_set_db_error(dir, "open");
        goto fail;
    }
    if (setup(dir, create) < 0)
        goto fail;
    return dir;
fail:
    snprintf(error, sizeof error, "%s: %s", path, dir->error);
    *error_r = error;
    directory_close(&dir);
    return NULL;
}

void directory_close(struct directory **dirp)
{
    struct directory *dir = *dirp;
    if (dir == NULL)
        return;
    sqlite3_finalize(dir->st_user); /* accepts NULL */
    sqlite3_finalize(dir->st_alias);
    sqlite3_finalize(dir->st_forwards);
    sqlite3_finalize(dir->st_policy);
    sqlite3_finalize(dir->st_inbox);
    sqlite3_finalize(dir->st_begin);
    sqlite3_finalize(dir->st_commit);
    sqlite3_close_v2(dir->db);
    sm_freep(dirp);
}

/* --- domains --------------------------------------------------------------- */

static bool is_ldh(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* Check one label of length len at p (already folded); NULL if valid. */
static const char *label_problem(const char *p, size_t len, bool last)
{
    bool digits_only = true;

    if (len == 0)
        return "empty label";
    if (len > LABEL_MAX)
        return "label longer than 63 characters";
    if (p[0] == '-' || p[len - 1] == '-')
        return "label starts or ends with a hyphen";
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)p[i] >= 0x80)
            return "not ASCII (use the A-label form, xn--...)";
        if (!is_ldh(p[i]))
            return "only letters, digits, hyphens and dots are allowed";
        digits_only = digits_only && p[i] >= '0' && p[i] <= '9';
    }
    if (last && digits_only)
        return "the top-level label is numeric";
    return NULL;
}

/* Fold name to lowercase into out and validate it (see the file comment).
 * Returns NULL if valid, else the reason. */
static const char *domain_normalise(const char *name, char out[DOMAIN_MAX + 1])
{
    size_t len = strlen(name);

    if (len > 0 && name[len - 1] == '.')
        len--; /* the absolute form: the root is implied */
    if (len == 0)
        return "empty name";
    if (len > DOMAIN_MAX)
        return "longer than 253 characters";
    for (size_t i = 0; i < len; i++)
        out[i] = name[i] >= 'A' && name[i] <= 'Z' ? (char)(name[i] - 'A' + 'a') : name[i];
    out[len] = '\0';
    for (const char *p = out;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot != NULL ? (size_t)(dot - p) : strlen(p);
        const char *why = label_problem(p, n, dot == NULL);
        if (why != NULL)
            return why;
        if (dot == NULL)
            return NULL;
        p = dot + 1;
    }
}

int directory_domain_normalise(const char *name, char out[DIRECTORY_DOMAIN_MAX + 1],
                               const char **error_r)
{
    const char *why = domain_normalise(name, out);
    if (why == NULL)
        return 0;
    *error_r = why;
    return -1;
}

void dir_printable(const char *in, char *out, size_t outlen)
{
    size_t i;
    for (i = 0; in[i] != '\0' && i + 4 < outlen; i++)
        out[i] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
    if (in[i] != '\0') { /* cut: say so */
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
}

/* Validate name into out; on failure set the handle's error. */
static int domain_check(struct directory *dir, const char *name, char out[DOMAIN_MAX + 1])
{
    char shown[72];
    const char *why = domain_normalise(name, out);
    if (why == NULL)
        return 0;
    dir_printable(name, shown, sizeof shown);
    dir_set_error(dir, "invalid domain name '%s': %s", shown, why);
    return -1;
}

int directory_domain_add(struct directory *dir, const char *domain)
{
    char name[DOMAIN_MAX + 1];
    sqlite3_stmt *st;

    if (domain_check(dir, domain, name) < 0)
        return -1;
    if (sqlite3_prepare_v2(dir->db, "INSERT INTO domains (name, created) VALUES (?1, ?2)", -1,
                           &st, NULL)
        != SQLITE_OK) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL));
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        dir_set_error(dir, "domain %s already exists", name);
        return -1;
    }
    if (rc != SQLITE_DONE) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    dir->own_changes++;
    return 0;
}

int directory_domain_remove(struct directory *dir, const char *domain)
{
    char name[DOMAIN_MAX + 1];
    sqlite3_stmt *st;

    if (domain_check(dir, domain, name) < 0)
        return -1;
    if (sqlite3_prepare_v2(dir->db, "DELETE FROM domains WHERE name = ?1", -1, &st, NULL)
        != SQLITE_OK) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
        dir_set_error(dir, "domain %s still has mailboxes or aliases: remove them first", name);
        return -1;
    }
    if (rc != SQLITE_DONE) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    if (sqlite3_changes(dir->db) == 0) {
        dir_set_error(dir, "no such domain: %s", name);
        return -1;
    }
    dir->own_changes++;
    return 0;
}

size_t directory_domains_each(const char *list, void (*fn)(void *arg, const char *domain),
                              void *arg)
{
    char raw[DIRECTORY_DOMAIN_MAX + 2], name[DIRECTORY_DOMAIN_MAX + 1];
    const char *why;
    size_t count = 0;
    for (const char *p = list; p != NULL && *p != '\0';) {
        p += strspn(p, " ,\t");
        size_t n = strcspn(p, " ,\t");
        if (n == 0)
            break;
        snprintf(raw, sizeof raw, "%.*s", (int)(n < sizeof raw ? n : sizeof raw - 1), p);
        if (n < sizeof raw && directory_domain_normalise(raw, name, &why) == 0) {
            fn(arg, name);
            count++;
        }
        p += n;
    }
    return count;
}

int dir_exists(struct directory *dir, const char *sql, const char *text)
{
    sqlite3_stmt *st = dir_prepare(dir, sql);
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    return rc == SQLITE_ROW;
}

int directory_domain_hosted(struct directory *dir, const char *domain)
{
    return dir_exists(dir, "SELECT 1 FROM domains WHERE name = ?1", domain);
}

int directory_domain_list(struct directory *dir, void (*fn)(void *arg, const char *domain),
                          void *arg)
{
    sqlite3_stmt *st;
    int n = 0, rc;

    if (sqlite3_prepare_v2(dir->db, "SELECT name FROM domains ORDER BY name", -1, &st, NULL)
        != SQLITE_OK) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *name = sqlite3_column_text(st, 0);
        if (name != NULL) {
            fn(arg, (const char *)name);
            n++;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    return n;
}

int64_t directory_version(struct directory *dir)
{
    int64_t data_version;
    if (dir_query_int(dir, "PRAGMA data_version", &data_version) < 0)
        return -1;
    /* data_version: commits by other connections; own_changes: ours */
    return (int64_t)((uint64_t)data_version << 32 | (dir->own_changes & 0xffffffffu));
}
