/* smtpd-auth.c — password checks and sender ownership for submission (see
 * smtpd-auth.h). */
#include "daemon/smtpd-auth.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access/authguard.h"
#include "core/config.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/workpool.h"
#include "crypto/seal.h"
#include "smtp/inbound.h"
#include "store/account.h"
#include "store/dirpool.h"

#define AUTH_WORKERS 2
#define AUTH_DIRS 4

struct smtpd_auth {
    struct event_base *base;
    struct inbound_env *env;
    struct directory *dir; /* loop thread */
    struct workpool *wp;
    struct dirpool *dirs;
    struct authguard *guard;
    struct keywrap_params params;
};

struct auth_job {
    struct smtpd_auth *a;
    uint64_t session;
    struct sockaddr_storage client;
    char user[DIRECTORY_ADDRESS_MAX + 1];
    char *password; /* secret memory */
    size_t len;
    enum smtp_auth_result result;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct smtpd_auth *smtpd_auth_new(const struct sm_config *cfg, struct event_base *base,
                                  struct inbound_env *env, struct directory *dir)
{
    struct smtpd_auth *a = sm_calloc(1, sizeof *a);
    a->base = base;
    a->env = env;
    a->dir = dir;
    a->wp = workpool_new(base, AUTH_WORKERS);
    a->dirs = dirpool_new(cfg->data_dir, AUTH_DIRS);
    a->guard = authguard_new();
    a->params = (struct keywrap_params){cfg->mailbox_argon2_ops,
                                        (unsigned)(cfg->mailbox_argon2_memory / 1024)};
    return a;
}

void smtpd_auth_free(struct smtpd_auth **ap)
{
    struct smtpd_auth *a = *ap;
    if (a == NULL)
        return;
    workpool_free(&a->wp);
    dirpool_free(&a->dirs);
    authguard_free(&a->guard);
    free(a);
    *ap = NULL;
}

/* Worker: one Argon2id run, as a login; the keys it opens are dropped. */
static void auth_work(void *arg)
{
    struct auth_job *j = arg;
    struct account acct = {0};
    const char *error = NULL;
    struct directory *d = dirpool_take(j->a->dirs);
    int r = d == NULL ? KEYWRAP_FAILED
                      : account_unlock(d, j->user, j->password, j->len, &j->a->params, &acct,
                                       &error);
    account_free(&acct);
    dirpool_give(j->a->dirs, d);
    j->result = r == KEYWRAP_OK      ? SMTP_AUTH_OK
                : r == KEYWRAP_WRONG ? SMTP_AUTH_INVALID
                                     : SMTP_AUTH_TEMPFAIL;
    if (r != KEYWRAP_OK && r != KEYWRAP_WRONG)
        log_warn("smtpd auth-check-failed error=\"%s\"", error != NULL ? error : "?");
}

static void job_free(struct auth_job *j)
{
    seal_secret_free(&j->password);
    free(j);
}

static void auth_done(void *arg)
{
    struct auth_job *j = arg;
    struct smtpd_auth *a = j->a;
    if (j->result == SMTP_AUTH_OK)
        authguard_succeeded(a->guard, (struct sockaddr *)&j->client, j->user);
    else if (j->result == SMTP_AUTH_INVALID)
        authguard_failed(a->guard, (struct sockaddr *)&j->client, j->user, now_ms());
    inbound_auth_done(a->env, j->session, j->result);
    job_free(j);
}

static void auth_delayed(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct auth_job *j = arg;
    workpool_submit(j->a->wp, auth_work, auth_done, j);
}

void smtpd_auth_check(struct smtpd_auth *a, uint64_t session, const struct sockaddr *client,
                      const char *user, const char *password, size_t len)
{
    int64_t delay = authguard_check(a->guard, client, user, now_ms());
    if (delay < 0 || strlen(user) > DIRECTORY_ADDRESS_MAX || len > KEYWRAP_PASSWORD_MAX) {
        inbound_auth_done(a->env, session,
                          delay < 0 ? SMTP_AUTH_BLOCKED : SMTP_AUTH_INVALID);
        return;
    }
    struct auth_job *j = sm_calloc(1, sizeof *j);
    j->a = a;
    j->session = session;
    memcpy(&j->client, client,
           client->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    snprintf(j->user, sizeof j->user, "%s", user);
    j->password = seal_secret_alloc(len);
    memcpy(j->password, password, len);
    j->len = len;
    if (delay == 0) {
        workpool_submit(a->wp, auth_work, auth_done, j);
        return;
    }
    /* slowed: the session waits in its AUTH state meanwhile */
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    if (event_base_once(a->base, -1, EV_TIMEOUT, auth_delayed, j, &tv) < 0)
        workpool_submit(a->wp, auth_work, auth_done, j);
}

/* The user's own addresses: those that deliver to their mailbox alone. */
const char *smtpd_auth_sender(struct smtpd_auth *a, const char *user, const char *address)
{
    struct directory_user owner, targets[DIRECTORY_TARGETS_MAX];
    int found = directory_user_get(a->dir, user, &owner);
    int n = found > 0 ? directory_resolve(a->dir, address, targets, DIRECTORY_TARGETS_MAX) : -1;
    if (found < 0 || (found > 0 && n < 0)) {
        log_warn("smtpd directory-error=\"%s\"", directory_error(a->dir));
        return "451 4.3.0 Temporary lookup failure, try again later";
    }
    bool own = n > 0;
    for (int i = 0; own && i < n; i++)
        own = !targets[i].disposable && strcmp(targets[i].mailbox, owner.mailbox) == 0;
    return own ? NULL : "553 5.7.1 Sender address is not one of yours";
}
