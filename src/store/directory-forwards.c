/* directory-forwards.c — forwards to other servers and alias policy (see
 * forwards.h).  Resolution itself is in directory-users.c, which asks
 * dir_route_source() what a source forwards to. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "store/directory-internal.h"
#include "store/forwards.h"

/* "local@domain" (normalised) or "@domain" (the catch-all) of a hosted
 * domain that is not a mailbox. */
static int source_normalise(struct directory *dir, const char *source,
                            char out[DIRECTORY_ADDRESS_MAX + 1])
{
    const char *why;
    if (source[0] == '@') {
        out[0] = '@';
        if (directory_domain_normalise(source + 1, out + 1, &why) == 0)
            return 0;
    } else if (directory_address_normalise(source, out, &why) == 0) {
        struct directory_user u;
        int r = directory_user_get(dir, out, &u);
        if (r > 0)
            dir_set_error(dir, "%s is a mailbox; an alias cannot shadow it", out);
        return r == 0 ? 0 : -1;
    }
    dir_set_error(dir, "invalid alias source '%.80s': %s", source, why);
    return -1;
}

/* A forward target: any well-formed address, folded to lowercase
 * (addresses elsewhere may use characters our own local parts do not:
 * letters, digits and the RFC 5322 atext specials). */
static int target_normalise(struct directory *dir, const char *target,
                            char out[DIRECTORY_ADDRESS_MAX + 1])
{
    const char *at = strrchr(target, '@'), *why;
    size_t llen = at != NULL ? (size_t)(at - target) : 0;
    char domain[DIRECTORY_DOMAIN_MAX + 1];
    if (at == NULL || llen == 0 || llen > DIRECTORY_LOCAL_MAX ||
        directory_domain_normalise(at + 1, domain, &why) < 0) {
        dir_set_error(dir, "invalid forward target '%.80s'", target);
        return -1;
    }
    for (size_t i = 0; i < llen; i++) {
        unsigned char c = (unsigned char)target[i];
        if (!isalnum(c) && strchr("!#$%&'*+-/=?^_`{|}~.", c) == NULL) {
            dir_set_error(dir, "invalid forward target '%.80s'", target);
            return -1;
        }
        out[i] = (char)tolower(c);
    }
    snprintf(out + llen, DIRECTORY_ADDRESS_MAX + 1 - llen, "@%s", domain);
    return 0;
}

static const char *domain_of(const char *source)
{
    return strchr(source, '@') + 1;
}

int directory_forward_add(struct directory *dir, const char *source, const char *target)
{
    char src[DIRECTORY_ADDRESS_MAX + 1], dst[DIRECTORY_ADDRESS_MAX + 1];
    if (source_normalise(dir, source, src) < 0 || target_normalise(dir, target, dst) < 0)
        return -1;
    int local = directory_domain_hosted(dir, domain_of(dst));
    if (local != 0) {
        if (local > 0)
            dir_set_error(dir, "%s is in a hosted domain: use `alias add %s %s`", dst, src, dst);
        return -1;
    }
    sqlite3_stmt *st = dir_prepare(dir, "INSERT INTO forwards (source, domain, target, created)"
                                        " SELECT ?1, ?2, ?3, ?4 WHERE (SELECT count(*) FROM"
                                        " forwards WHERE source = ?1) < ?5");
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, src, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, domain_of(src), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, dst, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
    sqlite3_bind_int(st, 5, DIRECTORY_FORWARDS_MAX);
    int rc = dir_step_done(st);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        dir_set_error(dir, "%s already forwards to %s", src, dst);
    else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        dir_set_error(dir, "domain %s is not hosted", domain_of(src));
    else if (rc != SQLITE_DONE)
        dir_set_db_error(dir, "directory");
    else if (sqlite3_changes(dir->db) == 0)
        dir_set_error(dir, "%s has %d forwards already", src, DIRECTORY_FORWARDS_MAX);
    if (rc != SQLITE_DONE || sqlite3_changes(dir->db) == 0)
        return -1;
    dir->own_changes++;
    return 0;
}

int directory_forward_remove(struct directory *dir, const char *source, const char *target)
{
    char src[DIRECTORY_ADDRESS_MAX + 1], dst[DIRECTORY_ADDRESS_MAX + 1] = "";
    if (source_normalise(dir, source, src) < 0 ||
        (target != NULL && target_normalise(dir, target, dst) < 0))
        return -1;
    return dir_delete_pair(dir, "forwards", "forward", src, dst);
}

int directory_forward_list(struct directory *dir,
                           void (*fn)(void *arg, const char *source, const char *target),
                           void *arg)
{
    return dir_each_pair(dir, "SELECT source, target FROM forwards ORDER BY source, target", fn,
                         arg);
}

/* The source must exist as an alias (local targets or forwards). */
static int source_exists(struct directory *dir, const char *src)
{
    sqlite3_stmt *st = dir_prepare(dir, "SELECT (SELECT count(*) FROM aliases WHERE source = ?1)"
                                        " + (SELECT count(*) FROM forwards WHERE source = ?1)");
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, src, -1, SQLITE_STATIC);
    int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    if (n == 0)
        dir_set_error(dir, "no such alias: %s", src);
    return n > 0 ? 0 : -1;
}

static int policy_set(struct directory *dir, const char *source, const char *column_sql,
                      int disabled, const char *allow)
{
    char src[DIRECTORY_ADDRESS_MAX + 1], sql[256];
    if (source_normalise(dir, source, src) < 0 || source_exists(dir, src) < 0)
        return -1;
    snprintf(sql, sizeof sql,
             "INSERT INTO alias_policy (source, domain, disabled, allow) VALUES (?1, ?2, ?3, ?4)"
             " ON CONFLICT (source) DO UPDATE SET %s",
             column_sql);
    sqlite3_stmt *st = dir_prepare(dir, sql);
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, src, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, domain_of(src), -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, disabled);
    sqlite3_bind_text(st, 4, allow, -1, SQLITE_STATIC);
    if (dir_write_done(dir, st) < 0)
        return -1;
    dir->own_changes++;
    return 0;
}

int directory_alias_set_disabled(struct directory *dir, const char *source, bool disabled)
{
    return policy_set(dir, source, "disabled = excluded.disabled", disabled, "");
}

/* Each entry an address or a domain; stored lowercase, one space apart. */
static int allow_normalise(struct directory *dir, const char *allow, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (const char *p = allow; *p != '\0';) {
        p += strspn(p, " ,\t");
        size_t n = strcspn(p, " ,\t");
        if (n == 0)
            break;
        char item[DIRECTORY_ADDRESS_MAX + 1], norm[DIRECTORY_ADDRESS_MAX + 1];
        snprintf(item, sizeof item, "%.*s", (int)(n < DIRECTORY_ADDRESS_MAX ? n : 0), p);
        const char *why;
        int ok = strchr(item, '@') != NULL ? target_normalise(dir, item, norm)
                                           : directory_domain_normalise(item, norm, &why);
        if (ok < 0 || item[0] == '\0') {
            dir_set_error(dir, "invalid sender or domain in the allow-list: '%.*s'",
                          (int)(n > 80 ? 80 : n), p);
            return -1;
        }
        int w = snprintf(out + used, cap - used, "%s%s", used ? " " : "", norm);
        if (w < 0 || (size_t)w >= cap - used) {
            dir_set_error(dir, "the allow-list is longer than %d bytes", DIRECTORY_ALLOW_MAX);
            return -1;
        }
        used += (size_t)w;
        p += n;
    }
    return 0;
}

int directory_alias_set_allow(struct directory *dir, const char *source, const char *allow)
{
    char norm[DIRECTORY_ALLOW_MAX + 1];
    if (allow_normalise(dir, allow, norm, sizeof norm) < 0)
        return -1;
    return policy_set(dir, source, "allow = excluded.allow", 0, norm);
}

int directory_alias_policies(struct directory *dir,
                             void (*fn)(void *arg, const char *source, bool disabled,
                                        const char *allow),
                             void *arg)
{
    int rc, n = 0;
    sqlite3_stmt *st = dir_prepare(dir, "SELECT source, disabled, allow FROM alias_policy"
                                        " WHERE disabled OR allow <> '' ORDER BY source");
    if (st == NULL)
        return -1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        fn(arg, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int(st, 1) != 0,
           (const char *)sqlite3_column_text(st, 2));
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    return n;
}

int directory_domain_set_forwarding(struct directory *dir, const char *domain, bool on)
{
    char name[DIRECTORY_DOMAIN_MAX + 1];
    const char *why;
    if (directory_domain_normalise(domain, name, &why) < 0) {
        dir_set_error(dir, "invalid domain: %s", why);
        return -1;
    }
    sqlite3_stmt *st = dir_prepare(dir, "UPDATE domains SET forwarding = ?2 WHERE name = ?1");
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, on);
    int n = dir_write_done(dir, st);
    if (n == 0)
        dir_set_error(dir, "domain %s is not hosted", name);
    if (n <= 0)
        return -1;
    dir->own_changes++;
    return 0;
}

/* ---- resolution support ---------------------------------------------------- */

int dir_route_source(struct directory *dir, const char *source, struct directory_route *r)
{
    int rc;
    size_t before = r->n_forwards;
    sqlite3_stmt *st = dir_prepare_cached(dir, &dir->st_forwards,
                                          "SELECT target FROM forwards WHERE source = ?1"
                                          " ORDER BY target");
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && r->n_forwards < DIRECTORY_FORWARDS_MAX)
        dir_copy_text(r->forwards[r->n_forwards++], DIRECTORY_ADDRESS_MAX + 1, st, 0);
    dir_release(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    st = dir_prepare_cached(dir, &dir->st_policy,
                            "SELECT p.disabled, p.allow, d.forwarding FROM domains d"
                            " LEFT JOIN alias_policy p ON p.source = ?1 WHERE d.name = ?2");
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, domain_of(source), -1, SQLITE_STATIC);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        r->disabled = sqlite3_column_int(st, 0) != 0;
        dir_copy_text(r->allow, sizeof r->allow, st, 1);
        r->forwarding_off = sqlite3_column_int(st, 2) == 0;
    }
    dir_release(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    return (int)(r->n_forwards - before);
}

bool directory_route_allows(const char *allow, const char *sender)
{
    if (allow[0] == '\0')
        return true;
    const char *at = strrchr(sender, '@');
    for (const char *p = allow; *p != '\0';) {
        size_t n = strcspn(p, " ");
        bool domain = memchr(p, '@', n) == NULL;
        if (domain ? at != NULL && strlen(at + 1) == n && strncasecmp(at + 1, p, n) == 0
                   : strlen(sender) == n && strncasecmp(sender, p, n) == 0)
            return true;
        p += n + (p[n] == ' ');
    }
    return false;
}
