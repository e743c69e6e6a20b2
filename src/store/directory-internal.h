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
    sqlite3_stmt *st_user, *st_alias; /* recipient lookups, prepared once (users.c) */
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
/* A printable, bounded copy of untrusted text for error messages. */
void dir_printable(const char *in, char *out, size_t outlen);

#endif
