/* deliver.c — spool entry to mailbox drops (see deliver.h).
 *
 * The plaintext exists only in a memfd of this process while the copies
 * are sealed; it is never written to disk in clear.  Recipients that no
 * longer resolve (the mailbox was removed after the message was
 * accepted) are logged and skipped.  Recipients in domains that are not
 * ours go to the outbound queue through c->outbound (deliver.h): inbound
 * SMTP never accepts them (no open relay), so they come from submission,
 * forwarding and bounces.
 *
 * A batch reads its entries one after another (each body lives in its
 * memfd only while its copies are sealed into temporary drop files), then
 * commits all copies (drop.h: per mailbox, fdatasync and rename each, one
 * fsync of drop/), then counts usage once per mailbox, and only then
 * removes the entries whose every copy is durable, with one sync of the
 * spool directory.  The tag of each copy indexes b->refs, which says
 * which entry and mailbox it belongs to. */
#include "store/deliver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "store/account.h"
#include "store/directory.h"
#include "store/drop.h"
#include "store/forwards.h"
#include "store/inbox.h"
#include "store/spool.h"

/* The distinct mailboxes of all recipients. */
struct targets {
    struct directory_user *v;
    size_t n, cap;
};

static void targets_merge(struct targets *t, const struct directory_user *u, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < t->n && !seen; j++)
            seen = strcmp(t->v[j].mailbox, u[i].mailbox) == 0;
        if (seen)
            continue;
        if (t->n == t->cap) {
            t->cap = t->cap ? t->cap * 2 : 8;
            t->v = sm_realloc(t->v, t->cap * sizeof *t->v);
        }
        t->v[t->n++] = u[i];
    }
}

struct domain_find {
    const char *name;
    bool found;
};

static void domain_match(void *arg, const char *domain)
{
    struct domain_find *f = arg;
    f->found |= strcmp(f->name, domain) == 0;
}

/* Does the normalised name appear in the configured list? */
static bool in_list(const char *list, const char *name)
{
    struct domain_find f = {name, false};
    directory_domains_each(list, domain_match, &f);
    return f.found;
}

/* 1 when address is in a domain of ours, 0 when it is remote, -1 error. */
static int is_local(const struct deliver_ctx *c, const char *address)
{
    char domain[DIRECTORY_DOMAIN_MAX + 1];
    const char *at = strrchr(address, '@'), *error;
    /* a domain that cannot be ours (no @, bad name, a literal) counts as
     * ours: it is "gone", never sent anywhere */
    if (at == NULL || directory_domain_normalise(at + 1, domain, &error) < 0)
        return 1;
    if (in_list(c->local_domains, domain))
        return 1;
    /* one indexed look-up, not the whole domain list per recipient */
    return directory_domain_hosted(c->dir, domain);
}

/* The forward targets of an entry, with the domain of the alias each
 * came from (the copy for a domain carries its SRS sender and ARC set). */
struct forwards {
    struct fwd {
        char domain[DIRECTORY_DOMAIN_MAX + 1];
        char target[DIRECTORY_ADDRESS_MAX + 1];
    } *v;
    size_t n;
};

static void forwards_add(struct forwards *f, const struct directory_route *r)
{
    const char *domain = strchr(r->source, '@') + 1;
    for (size_t i = 0; i < r->n_forwards; i++) {
        bool seen = false;
        for (size_t j = 0; j < f->n && !seen; j++)
            seen = strcmp(f->v[j].domain, domain) == 0 && strcmp(f->v[j].target, r->forwards[i]) == 0;
        if (seen)
            continue;
        f->v = sm_realloc(f->v, (f->n + 1) * sizeof *f->v);
        snprintf(f->v[f->n].domain, sizeof f->v[0].domain, "%s", domain);
        snprintf(f->v[f->n].target, sizeof f->v[0].target, "%s", r->forwards[i]);
        f->n++;
    }
}

/* Hand the forwards to c->forward, one call per alias domain. */
static int forward_all(const struct deliver_ctx *c, const char *id,
                       const struct spool_envelope *env, const struct forwards *f, int body,
                       struct deliver_stats *st, const char **error_r)
{
    const char **targets = sm_calloc(f->n ? f->n : 1, sizeof *targets);
    int r = 0;
    for (size_t i = 0; i < f->n && r == 0; i++) {
        bool first = true;
        for (size_t j = 0; j < i && first; j++)
            first = strcmp(f->v[j].domain, f->v[i].domain) != 0;
        if (!first)
            continue; /* this domain went with an earlier target */
        size_t n = 0;
        for (size_t j = i; j < f->n; j++)
            if (strcmp(f->v[j].domain, f->v[i].domain) == 0)
                targets[n++] = f->v[j].target;
        r = c->forward(c->arg, id, env, f->v[i].domain, targets, n, body, error_r);
        if (r == 0)
            st->forwarded += (unsigned)n;
    }
    free(targets);
    return r;
}

/* The recipient to route: an SRS bounce address becomes the address it
 * encodes (kept in *owned, freed by the caller). */
static const char *route_rcpt(const struct deliver_ctx *c, const char *rcpt, char ***owned,
                              size_t *n_owned)
{
    char out[DELIVER_ADDRESS_MAX];
    if (c->srs_reverse == NULL || !c->srs_reverse(c->arg, rcpt, out))
        return rcpt;
    *owned = sm_realloc(*owned, (*n_owned + 1) * sizeof **owned);
    (*owned)[(*n_owned)++] = sm_strdup(out);
    return (*owned)[*n_owned - 1];
}

static int resolve_all(const struct deliver_ctx *c, const char *id,
                       const struct spool_envelope *env, struct targets *t,
                       const char ***remote_r, size_t *n_remote_r, struct forwards *fw,
                       char ***owned, size_t *n_owned, struct deliver_stats *st,
                       const char **error_r)
{
    struct directory_user found[DIRECTORY_TARGETS_MAX];
    struct directory_route route;
    for (size_t i = 0; i < env->n_rcpts; i++) {
        const char *rcpt = route_rcpt(c, env->rcpts[i], owned, n_owned);
        int n = directory_resolve_route(c->dir, rcpt, found, DIRECTORY_TARGETS_MAX, &route);
        if (n >= 0 && route.n_forwards > 0 && c->forward != NULL) {
            forwards_add(fw, &route);
            if (n == 0)
                continue; /* forward-only: neither gone nor remote */
        }
        int local = n == 0 && c->outbound != NULL ? is_local(c, rcpt) : 1;
        if (n < 0 || local < 0) {
            *error_r = directory_error(c->dir);
            return -1;
        }
        if (n == 0 && local == 0) {
            *remote_r = sm_realloc(*remote_r, (*n_remote_r + 1) * sizeof **remote_r);
            (*remote_r)[(*n_remote_r)++] = rcpt;
        } else if (n == 0) {
            st->gone++;
            log_warn("deliver recipient-gone queue=%s rcpt=%zu", id, i);
        }
        targets_merge(t, found, (size_t)n);
    }
    return 0;
}

/* One (entry, mailbox) pair of a batch: the tag of its drop item. */
struct ref {
    size_t entry;
    char mailbox[DIRECTORY_MAILBOX_ID_LEN + 1];
};

/* A mailbox that received new files in this batch. */
struct touched {
    char mailbox[DIRECTORY_MAILBOX_ID_LEN + 1];
    int64_t bytes;
};

struct batch {
    const struct deliver_ctx *c;
    const char *const *ids;
    struct deliver_result *res;
    struct ref *refs;
    size_t n_refs, cap_refs;
    struct touched *touched;
    size_t n_touched, cap_touched;
};

static void fail(struct deliver_result *r, const char *error)
{
    if (r->result == 0)
        snprintf(r->error, sizeof r->error, "%s", error);
    r->result = -1;
}

static size_t ref_add(struct batch *b, size_t entry, const char *mailbox)
{
    if (b->n_refs == b->cap_refs) {
        b->cap_refs = b->cap_refs ? b->cap_refs * 2 : 64;
        b->refs = sm_realloc(b->refs, b->cap_refs * sizeof *b->refs);
    }
    b->refs[b->n_refs].entry = entry;
    snprintf(b->refs[b->n_refs].mailbox, sizeof b->refs[0].mailbox, "%s", mailbox);
    return b->n_refs++;
}

static void touched_add(struct batch *b, const char *mailbox, uint64_t bytes)
{
    size_t i = 0;
    while (i < b->n_touched && strcmp(b->touched[i].mailbox, mailbox) != 0)
        i++;
    if (i == b->n_touched) {
        if (b->n_touched == b->cap_touched) {
            b->cap_touched = b->cap_touched ? b->cap_touched * 2 : 8;
            b->touched = sm_realloc(b->touched, b->cap_touched * sizeof *b->touched);
        }
        snprintf(b->touched[i].mailbox, sizeof b->touched[i].mailbox, "%s", mailbox);
        b->touched[i].bytes = 0;
        b->n_touched++;
    }
    b->touched[i].bytes += (int64_t)bytes;
}

/* Read entry i and add a sealed copy for each of its mailboxes to db. */
static void add_entry(struct batch *b, struct drop_batch *db, size_t i)
{
    const struct deliver_ctx *c = b->c;
    struct deliver_result *r = &b->res[i];
    struct spool_envelope env;
    struct targets t = {0};
    const char *error = NULL, **remote = NULL;
    size_t n_remote = 0;
    struct forwards fw = {0};
    char **owned = NULL, mdir[4096];
    size_t n_owned = 0;

    int body = memfd_create("sealmail-deliver", MFD_CLOEXEC);
    if (body < 0) {
        fail(r, "memfd_create failed");
        return;
    }
    if (spool_read_message(c->spool_dir, b->ids[i], c->spool_pk, c->spool_sk, body, &env,
                           &error) < 0) {
        fail(r, error);
        close(body);
        return;
    }
    if (resolve_all(c, b->ids[i], &env, &t, &remote, &n_remote, &fw, &owned, &n_owned, &r->stats,
                    &error) < 0)
        fail(r, error);
    /* forwards: durable in the outbound queue too; never for junk (mail
     * that failed its sender's DMARC policy is not passed on) */
    if (r->result == 0 && fw.n > 0 && (env.flags & SPOOL_F_JUNK)) {
        log_info("deliver forward-skipped queue=%s reason=junk targets=%zu", b->ids[i], fw.n);
        r->stats.gone += (unsigned)fw.n;
    } else if (r->result == 0 && fw.n > 0 &&
               forward_all(c, b->ids[i], &env, &fw, body, &r->stats, &error) < 0) {
        fail(r, error);
    }
    /* remote recipients: durable in the outbound queue before the entry
     * may leave the spool (an entry routed twice makes one queue entry) */
    if (r->result == 0 && n_remote > 0) {
        if (c->outbound(c->arg, b->ids[i], &env, remote, n_remote, env.prefix, env.prefix_len,
                        body, &error) < 0)
            fail(r, error);
        else
            r->stats.outbound += (unsigned)n_remote;
    }
    /* what smtpd's checks decided: Authentication-Results, Junk */
    struct drop_note note = {env.prefix, env.prefix_len,
                             (env.flags & SPOOL_F_JUNK) ? DROP_F_JUNK : 0};
    for (size_t j = 0; j < t.n && r->result == 0; j++) {
        int path = t.v[j].disposable
                       ? inbox_dir(mdir, sizeof mdir, c->data_dir, t.v[j].mailbox)
                       : account_mailbox_dir(mdir, sizeof mdir, c->data_dir, t.v[j].mailbox);
        if (path < 0)
            fail(r, "mailbox path too long");
        else if (drop_batch_add_noted(db, mdir, b->ids[i], t.v[j].public_key, env.received,
                                      body, &note, ref_add(b, i, t.v[j].mailbox), &error) < 0)
            fail(r, error);
    }
    spool_envelope_free(&env);
    close(body); /* the plaintext lived only in this memfd */
    free(t.v);
    free(remote);
    free(fw.v);
    for (size_t k = 0; k < n_owned; k++)
        free(owned[k]);
    free(owned);
}

/* drop_batch_commit() reports one copy. */
static void copy_done(void *arg, size_t tag, const char *mailbox_dir, int result,
                      uint64_t bytes, const char *error)
{
    (void)mailbox_dir;
    struct batch *b = arg;
    const struct ref *ref = &b->refs[tag];
    struct deliver_result *r = &b->res[ref->entry];
    if (result < 0) {
        fail(r, error);
    } else if (result == 0) {
        r->stats.duplicates++;
    } else {
        r->stats.delivered++;
        touched_add(b, ref->mailbox, bytes);
        log_info("deliver delivered queue=%s mailbox=%s", b->ids[ref->entry], ref->mailbox);
    }
}

void deliver_spool_batch(const struct deliver_ctx *c, const char *const ids[], size_t n,
                         struct deliver_result res[])
{
    struct batch b = {.c = c, .ids = ids, .res = res};
    struct drop_batch *db = drop_batch_new();
    const char *done[DELIVER_BATCH_MAX];
    const char *error = NULL;
    size_t n_done = 0;

    for (size_t i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof res[i]);
        if (i < DELIVER_BATCH_MAX)
            add_entry(&b, db, i);
        else
            fail(&res[i], "too many entries in one batch");
    }
    /* every copy durable, drop/ synced once per mailbox */
    drop_batch_commit(db, copy_done, &b);
    drop_batch_free(&db);
    for (size_t i = 0; i < b.n_touched; i++) {
        if (directory_user_usage(c->dir, b.touched[i].mailbox, b.touched[i].bytes, false) < 0)
            log_warn("deliver usage-not-counted mailbox=%s error=\"%s\"", b.touched[i].mailbox,
                     directory_error(c->dir));
        if (c->changed != NULL)
            c->changed(c->arg, b.touched[i].mailbox);
    }
    /* only now may the entries whose every copy is durable leave the spool */
    for (size_t i = 0; i < n && i < DELIVER_BATCH_MAX; i++)
        if (res[i].result == 0)
            done[n_done++] = ids[i];
    if (n_done > 0 && spool_remove_many(c->spool_dir, done, n_done, &error) < 0)
        for (size_t i = 0; i < n && i < DELIVER_BATCH_MAX; i++)
            if (res[i].result == 0)
                fail(&res[i], error);
    free(b.refs);
    free(b.touched);
}

int deliver_spool_entry(const struct deliver_ctx *c, const char *id, struct deliver_stats *st,
                        const char **error_r)
{
    static _Thread_local char error[DELIVER_ERROR_MAX];
    struct deliver_result r;
    deliver_spool_batch(c, &id, 1, &r);
    *st = r.stats;
    if (r.result < 0) {
        snprintf(error, sizeof error, "%s", r.error);
        *error_r = error;
    }
    return r.result;
}
