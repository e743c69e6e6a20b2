/* directory.h — the directory database (DESIGN.md §3): hosted domains,
 * mailboxes (users) with their public keys and key wraps, aliases and
 * catch-alls; disposable inboxes, admins and the audit log later.
 *
 * It is a SQLite file (WAL) at data_dir/directory.db.  Only this module
 * speaks SQL about it, so a cluster can later move it to PostgreSQL
 * without touching protocol code.  Schema changes are numbered migrations
 * applied by directory_open(). */
#ifndef SM_DIRECTORY_H
#define SM_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
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
/* Call fn with each name of a configured list of domains (separated by
 * spaces, commas or tabs, e.g. [disposable] domains), normalised; names
 * that are not valid domains are skipped.  Returns how many fn got. */
size_t directory_domains_each(const char *list, void (*fn)(void *arg, const char *domain),
                              void *arg);
/* Whether the normalised domain is hosted: 1, 0, or -1 on error. */
int directory_domain_hosted(struct directory *dir, const char *domain);
/* Calls fn for each domain in name order; returns the count or -1. */
int directory_domain_list(struct directory *dir, void (*fn)(void *arg, const char *domain),
                          void *arg);
/* A number that changes whenever the directory is changed by any process
 * (used by smtpd to refresh its in-memory copy cheaply); -1 on error. */
int64_t directory_version(struct directory *dir);

/* --- mailboxes (users) ----------------------------------------------------- */

#define DIRECTORY_LOCAL_MAX 64                                  /* RFC 5321 §4.5.3.1.1 */
#define DIRECTORY_ADDRESS_MAX (DIRECTORY_LOCAL_MAX + 1 + DIRECTORY_DOMAIN_MAX)
#define DIRECTORY_MAILBOX_ID_LEN 16                             /* hex digits */
#define DIRECTORY_PK_BYTES 32
#define DIRECTORY_WRAP_MAX 512

/* Kinds of key wraps (the numbers are stored; they match crypto/keywrap.h). */
enum directory_wrap_kind {
    DIRECTORY_WRAP_PASSWORD = 1,
    DIRECTORY_WRAP_APP_PASSWORD = 2,
    DIRECTORY_WRAP_RECOVERY = 3,
};

/* Check an address and write its stored form into out: "local@domain",
 * both folded to lowercase; the local part 1..64 characters of letters,
 * digits and "._-" (no "+": it separates the sub-address tag), not
 * starting or ending with a dot, no two dots in a row; the domain as in
 * directory_domain_normalise().  Returns 0, or -1 with *error_r. */
int directory_address_normalise(const char *address, char out[DIRECTORY_ADDRESS_MAX + 1],
                                const char **error_r);

/* A mailbox as the directory holds it: no secret, only wrapped ones. */
struct directory_user {
    int64_t id;
    char address[DIRECTORY_ADDRESS_MAX + 1];
    char mailbox[DIRECTORY_MAILBOX_ID_LEN + 1]; /* directory under mailboxes/ */
    uint8_t public_key[DIRECTORY_PK_BYTES];     /* drop files are sealed to it */
    uint64_t quota_bytes;                       /* 0: no limit */
    uint64_t used_bytes;
    int64_t created;
    bool disposable; /* a disposable inbox (store/inboxes.h): its files are under inboxes/ */
};

#define DIRECTORY_SELECTOR_BYTES 32

/* A stored wrap: kind, label (app passwords are named), bytes, and for
 * app passwords a selector (a hash telling which wrap a password is for,
 * so that a login runs Argon2id once; see account.c). */
struct directory_wrap {
    enum directory_wrap_kind kind;
    char label[64];
    uint8_t bytes[DIRECTORY_WRAP_MAX];
    size_t len;
    bool has_selector;
    uint8_t selector[DIRECTORY_SELECTOR_BYTES];
};

/* Add a mailbox with its secret-key wrap and its first wraps of the
 * mailbox key (password, recovery), all in one transaction.  The domain
 * must be hosted and the address must not exist as a mailbox or alias.
 * Returns 0, or -1 with directory_error(). */
int directory_user_add(struct directory *dir, const struct directory_user *u,
                       const uint8_t *secret_wrap, size_t secret_wrap_len,
                       const struct directory_wrap *wraps, size_t n_wraps);
/* Look a mailbox up by address (normalised here).  Returns 1 found (and
 * *u filled), 0 not found, -1 error. */
int directory_user_get(struct directory *dir, const char *address, struct directory_user *u);
/* The wrap of the mailbox's X25519 secret key.  Returns 1, 0, -1 as above. */
int directory_user_secret_wrap(struct directory *dir, int64_t user_id, uint8_t *out,
                               size_t *len_r);
/* Call fn for each wrap of kind (0: every kind) of a mailbox; returns the
 * count or -1. */
int directory_user_wraps(struct directory *dir, int64_t user_id, enum directory_wrap_kind kind,
                         void (*fn)(void *arg, const struct directory_wrap *w), void *arg);
/* Store wrap, replacing the one of the same kind and label.  Returns 0/-1. */
int directory_user_set_wrap(struct directory *dir, int64_t user_id,
                            const struct directory_wrap *w);
/* Delete the wrap of kind and label; returns 0, or -1 (none such). */
int directory_user_remove_wrap(struct directory *dir, int64_t user_id,
                               enum directory_wrap_kind kind, const char *label);
/* Change the quota (0: none). */
int directory_user_set_quota(struct directory *dir, int64_t user_id, uint64_t quota_bytes);
/* Add delta (may be negative; the result is clamped at 0) to used_bytes,
 * or set it when absolute is true; mailbox is a mailbox's or a disposable
 * inbox's id. */
int directory_user_usage(struct directory *dir, const char *mailbox, int64_t delta,
                         bool absolute);
/* Remove a mailbox: its wraps go first, with the row, its aliases'
 * targets, in one transaction, and the WAL is then checkpointed and
 * truncated so no copy of a wrap remains in the directory's files.  The
 * caller removes the mailbox's files afterwards (crypto-shredding: what
 * stays on disk can no longer be opened).  *u receives the removed row.
 * Returns 0, or -1 (no such mailbox, error). */
int directory_user_remove(struct directory *dir, const char *address, struct directory_user *u);
/* Call fn for each mailbox in address order; returns the count or -1. */
int directory_user_list(struct directory *dir,
                        void (*fn)(void *arg, const struct directory_user *u), void *arg);

/* --- aliases and recipient resolution -------------------------------------- */

/* Make source deliver to the mailbox target.  source is "local@domain"
 * (not itself a mailbox) or "@domain", the domain's catch-all.  Several
 * targets per source are allowed.  Returns 0, or -1 with directory_error. */
int directory_alias_add(struct directory *dir, const char *source, const char *target);
/* Remove source -> target, or every target of source when target is NULL. */
int directory_alias_remove(struct directory *dir, const char *source, const char *target);
/* Call fn(source, target) for each alias in source order; count or -1. */
int directory_alias_list(struct directory *dir,
                         void (*fn)(void *arg, const char *source, const char *target),
                         void *arg);

#define DIRECTORY_TARGETS_MAX 64 /* mailboxes one recipient may expand to */

/* Where mail for address goes.  Resolution order: the mailbox of that
 * address; its aliases; the same two without a "+tag" in the local part;
 * the domain's catch-all; a live (unexpired) disposable inbox of that
 * address (target with disposable set).  Fills targets (at most DIRECTORY_TARGETS_MAX,
 * duplicates removed) and returns their count: 0 means unknown.  -1 on
 * error.  An address that is not well formed is unknown, not an error. */
int directory_resolve(struct directory *dir, const char *address,
                      struct directory_user *targets, size_t max);

#endif
