/* deliver.c — spool entry to mailbox drops (see deliver.h).
 *
 * The plaintext exists only in a memfd of this process while the copies
 * are sealed; it is never written to disk in clear.  Recipients that no
 * longer resolve (the mailbox was removed after the message was
 * accepted) are logged and skipped: bounces arrive with outbound mail. */
#include "store/deliver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "store/account.h"
#include "store/directory.h"
#include "store/drop.h"
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

static int resolve_all(const struct deliver_ctx *c, const char *id,
                       const struct spool_envelope *env, struct targets *t,
                       struct deliver_stats *st, const char **error_r)
{
    struct directory_user found[DIRECTORY_TARGETS_MAX];
    for (size_t i = 0; i < env->n_rcpts; i++) {
        int n = directory_resolve(c->dir, env->rcpts[i], found, DIRECTORY_TARGETS_MAX);
        if (n < 0) {
            *error_r = directory_error(c->dir);
            return -1;
        }
        if (n == 0) {
            st->gone++;
            log_warn("deliver recipient-gone queue=%s rcpt=%zu", id, i);
        }
        targets_merge(t, found, (size_t)n);
    }
    return 0;
}

/* Seal the message into one mailbox's drop/. */
static int deliver_one(const struct deliver_ctx *c, const char *id,
                       const struct directory_user *u, int64_t received, int body,
                       struct deliver_stats *st, const char **error_r)
{
    char mdir[4096];
    uint64_t bytes = 0;
    if (account_mailbox_dir(mdir, sizeof mdir, c->data_dir, u->mailbox) < 0) {
        *error_r = "mailbox path too long";
        return -1;
    }
    int r = drop_deliver(mdir, id, u->public_key, received, body, &bytes, error_r);
    if (r < 0)
        return -1;
    if (r == 0) {
        st->duplicates++;
        return 0;
    }
    st->delivered++;
    if (directory_user_usage(c->dir, u->mailbox, (int64_t)bytes, false) < 0)
        log_warn("deliver usage-not-counted mailbox=%s error=\"%s\"", u->mailbox,
                 directory_error(c->dir));
    log_info("deliver delivered queue=%s mailbox=%s", id, u->mailbox);
    if (c->changed != NULL)
        c->changed(c->arg, u->mailbox);
    return 0;
}

int deliver_spool_entry(const struct deliver_ctx *c, const char *id, struct deliver_stats *st,
                        const char **error_r)
{
    struct spool_envelope env;
    struct targets t = {0};

    memset(st, 0, sizeof *st);
    int body = memfd_create("sealmail-deliver", MFD_CLOEXEC);
    if (body < 0) {
        *error_r = "memfd_create failed";
        return -1;
    }
    int ret = spool_read_message(c->spool_dir, id, c->spool_pk, c->spool_sk, body, &env, error_r);
    if (ret == 0) {
        ret = resolve_all(c, id, &env, &t, st, error_r);
        for (size_t i = 0; i < t.n && ret == 0; i++)
            ret = deliver_one(c, id, &t.v[i], env.received, body, st, error_r);
        spool_envelope_free(&env);
    }
    close(body);
    free(t.v);
    if (ret == 0)
        ret = spool_remove(c->spool_dir, id, error_r);
    return ret;
}
