/* directory.h — the directory database (DESIGN.md §3): hosted domains now;
 * users, aliases, disposable inboxes, admins and the audit log later.
 *
 * It is a SQLite file (WAL) at data_dir/directory.db.  Only this module
 * speaks SQL about it, so a cluster can later move it to PostgreSQL
 * without touching protocol code.  Schema changes are numbered migrations
 * applied by directory_open(). */
#ifndef SM_DIRECTORY_H
#define SM_DIRECTORY_H

#include <stdbool.h>
#include <stdint.h>

struct directory;

/* Open data_dir/directory.db, creating it and applying migrations when
 * create is true.  Returns NULL with *error_r on failure. */
struct directory *directory_open(const char *data_dir, bool create, const char **error_r);
/* Close the database; sets *dir to NULL, accepts NULL. */
void directory_close(struct directory **dir);
/* The last error message of this handle (like sqlite3_errmsg). */
const char *directory_error(const struct directory *dir);

#define DIRECTORY_DOMAIN_MAX 253 /* characters of a domain name, no trailing dot */

/* Check a domain name and write its stored form (lowercase, no trailing
 * dot) into out: LDH labels of 1..63 characters separated by dots, no
 * hyphen at either end of a label, a top-level label not all digits, at
 * most 253 characters.  Returns 0, or -1 with *error_r (static text: the
 * reason).  The same rules as directory_domain_add(). */
int directory_domain_normalise(const char *name, char out[DIRECTORY_DOMAIN_MAX + 1],
                               const char **error_r);
/* Domain names are stored lowercase, ASCII (A-labels for IDNs).  Returns 0,
 * or -1 (invalid name, already present) with directory_error(). */
int directory_domain_add(struct directory *dir, const char *domain);
/* 0 if removed; -1 if not present or on error. */
int directory_domain_remove(struct directory *dir, const char *domain);
/* Calls fn for each domain in name order; returns the count or -1. */
int directory_domain_list(struct directory *dir, void (*fn)(void *arg, const char *domain),
                          void *arg);
/* A number that changes whenever the directory is changed by any process
 * (used by smtpd to refresh its in-memory copy cheaply); -1 on error. */
int64_t directory_version(struct directory *dir);

#endif
