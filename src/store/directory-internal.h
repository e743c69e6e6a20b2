/* directory-internal.h — what the directory's source files share.
 *
 * The directory module is split by subject (directory.c: opening,
 * migrations, domains; directory-users.c: mailboxes, key wraps, aliases
 * and recipient resolution) over one connection handle.  This header is
 * private to src/store/directory*.c; everyone else uses directory.h. */
#ifndef SM_DIRECTORY_INTERNAL_H
#define SM_DIRECTORY_INTERNAL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"
#include "store/directory.h"

struct directory {
    sqlite3 *db;
    uint64_t own_changes; /* commits of this handle (data_version misses them) */
    /* the recipient lookup's statements, which smtpd runs for every RCPT:
     * prepared once per handle (dir_prepare_cached) */
    sqlite3_stmt *st_user, *st_alias, *st_forwards, *st_policy, *st_inbox;
    sqlite3_stmt *st_begin, *st_commit; /* the lookup's read transaction */
    char error[256];
};

/* Set the handle's error text (printf-style). */
void dir_set_error(struct directory *dir, const char *fmt, ...) SM_PRINTF(2, 3);
/* Set the handle's error to "what: <sqlite's message>". */
void dir_set_db_error(struct directory *dir, const char *what);
/* Run SQL that returns no rows; -1 with the handle's error on failure. */
int dir_exec(struct directory *dir, const char *sql);
/* The first column of the first row of sql as an integer (0 if no row). */
int dir_query_int(struct directory *dir, const char *sql, int64_t *value_r);
/* Prepare sql; NULL with the handle's error on failure. */
sqlite3_stmt *dir_prepare(struct directory *dir, const char *sql);
/* A statement prepared once per handle and kept in *slot (finalized by
 * directory_close()); NULL with the handle's error on failure.  Give it
 * back with dir_release(), which resets it and clears its bindings. */
sqlite3_stmt *dir_prepare_cached(struct directory *dir, sqlite3_stmt **slot, const char *sql);
void dir_release(sqlite3_stmt *st);
/* 1 when sql (one ?1 text parameter) finds a row for text, 0 when not,
 * -1 with the handle's error. */
int dir_exists(struct directory *dir, const char *sql, const char *text);
/* Step a statement that returns no row, then finalize it: the SQLite
 * result code (SQLITE_DONE on success). */
int dir_step_done(sqlite3_stmt *st);
/* Step and finalize a statement that changes rows: how many it changed,
 * or -1 with the handle's error set. */
int dir_write_done(struct directory *dir, sqlite3_stmt *st);
/* Column col of the current row as text into out (truncated, "" for NULL). */
void dir_copy_text(char *out, size_t outlen, sqlite3_stmt *st, int col);
/* DELETE source -> dst (every target of source when dst is "") from table
 * (aliases or forwards); "no such <what>" when nothing matched.  0 or -1. */
int dir_delete_pair(struct directory *dir, const char *table, const char *what,
                    const char *src, const char *dst);
/* Call fn with the two text columns of each row of sql; count or -1. */
int dir_each_pair(struct directory *dir, const char *sql,
                  void (*fn)(void *arg, const char *a, const char *b), void *arg);
struct directory_route;
/* Add the forwards of source to r and read its policy and its domain's
 * forwarding switch; the number of forwards added, or -1
 * (directory-forwards.c). */
int dir_route_source(struct directory *dir, const char *source, struct directory_route *r);
/* A printable, bounded copy of untrusted text for error messages. */
void dir_printable(const char *in, char *out, size_t outlen);

#endif
