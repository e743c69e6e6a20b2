/* unlock.c — shared unlocked stores (see unlock.h).
 *
 * Locking: r->mu guards the list of entries and their reference counts;
 * each entry's store_mu guards its store handle.  The first login of an
 * owner inserts the entry with store_mu held, then opens the store and
 * imports the drop without holding r->mu, so other owners' logins are not
 * held up; a second login of the same owner that arrives meanwhile waits
 * on store_mu and finds either the open store or the failure.
 *
 * Worker threads need the directory (password wraps, usage counters);
 * a SQLite handle must not be shared between threads at once, so the
 * registry keeps a small stack of directory handles, one per concurrent
 * user, opened on demand. */
#include "access/unlock.h"

#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/workpool.h"
#include "crypto/seal.h"
#include "store/account.h"
#include "store/dirpool.h"
#include "store/directory.h"
#include "store/mailbox.h"

#define DIRECTORY_HANDLES_MAX 64 /* idle directory handles kept for the workers */

struct unlocked {
    struct unlocked *next;
    struct unlock_registry *r;
    unsigned refs;                      /* r->mu */
    char address[DIRECTORY_ADDRESS_MAX + 1];
    char mailbox_id[DIRECTORY_MAILBOX_ID_LEN + 1];
    uint64_t quota;
    pthread_mutex_t store_mu;
    struct mailbox *mb;                 /* NULL if opening failed */
    struct unlock_watch *watches;       /* loop thread */
    uint8_t *verifier;                  /* r->mu; secret: keyed hash of the password */
    uint8_t creds[SEAL_HASH_BYTES];     /* r->mu; digest of the account's wraps then */
    time_t idle_since;                  /* r->mu; refs == 0 since then (lingering) */
};

struct unlock_registry {
    char *data_dir;
    struct keywrap_params params;
    unsigned max_sessions;
    unsigned linger;
    uint8_t *verifier_key;              /* secret, random per process */
    struct workpool *wp;
    pthread_mutex_t mu;
    struct unlocked *all;
    struct dirpool *dirs; /* directory handles for the worker threads */
};

struct unlock_registry *unlock_registry_new(const char *data_dir,
                                            const struct keywrap_params *params,
                                            unsigned max_sessions, unsigned linger,
                                            struct workpool *wp)
{
    struct unlock_registry *r = sm_calloc(1, sizeof *r);
    r->data_dir = sm_strdup(data_dir);
    r->dirs = dirpool_new(data_dir, DIRECTORY_HANDLES_MAX);
    r->params = *params;
    r->max_sessions = max_sessions;
    r->linger = linger;
    r->verifier_key = seal_secret_alloc(SEAL_HASH_BYTES);
    seal_random(r->verifier_key, SEAL_HASH_BYTES);
    r->wp = wp;
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void unlock_registry_free(struct unlock_registry **rp)
{
    struct unlock_registry *r = *rp;
    if (r == NULL)
        return;
    r->linger = 0;
    r->wp = NULL; /* freed before the registry: close what lingers here and now */
    unlock_registry_sweep(r);
    if (r->all != NULL)
        log_warn("imapd unlock-registry-busy");
    seal_secret_free(&r->verifier_key);
    dirpool_free(&r->dirs);
    pthread_mutex_destroy(&r->mu);
    free(r->data_dir);
    free(r);
    *rp = NULL;
}

/* ---- opening ------------------------------------------------------------ */

/* Import the drop and record the new usage; store_mu held. */
static void import_drop(struct unlocked *u, struct directory *dir)
{
    struct mailbox_import_stats st;
    const char *error;
    uint64_t used;
    if (mailbox_import(u->mb, &st, &error) < 0) {
        log_warn("imapd import-failed mailbox=%s error=\"%s\"", u->mailbox_id, error);
        return;
    }
    if (st.refused > 0)
        log_warn("imapd import-refused mailbox=%s files=%u", u->mailbox_id, st.refused);
    if (st.imported > 0)
        log_debug("imapd imported mailbox=%s messages=%u", u->mailbox_id, st.imported);
    if (dir != NULL && mailbox_usage(u->mb, &used, &error) == 0)
        directory_user_usage(dir, u->mailbox_id, (int64_t)used, true);
}

static void open_store(struct unlocked *u, const struct account *acct, struct directory *dir)
{
    char mdir[4096];
    const char *error = "mailbox path too long";
    if (account_mailbox_dir(mdir, sizeof mdir, u->r->data_dir, u->mailbox_id) == 0)
        u->mb = mailbox_open(mdir, acct->mk, acct->user.public_key, acct->sk, &error);
    if (u->mb == NULL) {
        log_warn("imapd open-failed mailbox=%s error=\"%s\"", u->mailbox_id, error);
        return;
    }
    import_drop(u, dir);
}

static struct unlocked *find(struct unlock_registry *r, const char *mailbox_id)
{
    for (struct unlocked *u = r->all; u != NULL; u = u->next)
        if (strcmp(u->mailbox_id, mailbox_id) == 0)
            return u;
    return NULL;
}

static struct unlocked *entry_new(struct unlock_registry *r, const struct account *acct)
{
    struct unlocked *u = sm_calloc(1, sizeof *u);
    u->r = r;
    u->refs = 1;
    snprintf(u->address, sizeof u->address, "%s", acct->user.address);
    snprintf(u->mailbox_id, sizeof u->mailbox_id, "%s", acct->user.mailbox);
    u->quota = acct->user.quota_bytes;
    pthread_mutex_init(&u->store_mu, NULL);
    return u;
}

/* Attach to the owner's entry (waiting for a concurrent opening), or
 * create it and open the store. */
static enum unlock_result attach(struct unlock_registry *r, const struct account *acct,
                                 struct directory *dir, struct unlocked **u_r)
{
    pthread_mutex_lock(&r->mu);
    struct unlocked *u = find(r, acct->user.mailbox);
    if (u != NULL && u->refs >= r->max_sessions) {
        pthread_mutex_unlock(&r->mu);
        return UNLOCK_TOO_MANY;
    }
    bool fresh = u == NULL;
    if (!fresh && u->mb == NULL && u->refs == 0) {
        pthread_mutex_unlock(&r->mu);
        return UNLOCK_FAILED; /* a failed opening on its way out */
    }
    if (fresh) {
        u = entry_new(r, acct);
        pthread_mutex_lock(&u->store_mu);
        u->next = r->all;
        r->all = u;
    } else {
        u->refs++;
    }
    pthread_mutex_unlock(&r->mu);
    if (fresh)
        open_store(u, acct, dir);
    else
        pthread_mutex_lock(&u->store_mu);
    bool ok = u->mb != NULL;
    pthread_mutex_unlock(&u->store_mu);
    if (!ok) {
        unlock_release(&u);
        return UNLOCK_FAILED;
    }
    *u_r = u;
    return UNLOCK_OK;
}

/* The verifier of address/password: a keyed hash, lowercase address. */
static void make_verifier(struct unlock_registry *r, const char *address, const char *password,
                          size_t pwlen, uint8_t out[SEAL_HASH_BYTES])
{
    char lower[DIRECTORY_ADDRESS_MAX + 1];
    size_t n = 0;
    for (; address[n] != '\0' && n < DIRECTORY_ADDRESS_MAX; n++)
        lower[n] = (char)tolower((unsigned char)address[n]);
    seal_keyed_hash2(out, r->verifier_key, lower, n, password, pwlen);
}

static void add_wrap(void *arg, const struct directory_wrap *w)
{
    struct sm_buf *all = arg;
    sm_buf_append(all, &w->kind, sizeof w->kind);
    sm_buf_append(all, w->label, strlen(w->label) + 1);
    sm_buf_append(all, w->bytes, w->len);
}

/* A digest of everything that decides which passwords open the account
 * (its wraps: password, app passwords, recovery), so that a password
 * change, a new app password or the account's removal voids the
 * remembered hash.  Returns 0, or -1 when there is no such account. */
static int credentials_digest(struct directory *dir, const char *address,
                              uint8_t out[SEAL_HASH_BYTES])
{
    struct directory_user user;
    struct sm_buf all;
    if (directory_user_get(dir, address, &user) != 1)
        return -1;
    sm_buf_init(&all, 0);
    sm_buf_append(&all, &user.id, sizeof user.id);
    int n = directory_user_wraps(dir, user.id, 0, add_wrap, &all);
    if (n >= 0)
        seal_hash(out, all.data, all.len);
    sm_buf_free(&all);
    return n >= 0 ? 0 : -1;
}

/* The fast path: an open store whose verifier matches, with the account's
 * credentials as they were when the verifier was made. */
static struct unlocked *attach_known(struct unlock_registry *r, const char *address,
                                     const uint8_t *verifier, struct directory *dir)
{
    uint8_t creds[SEAL_HASH_BYTES];
    if (credentials_digest(dir, address, creds) < 0)
        return NULL;
    struct unlocked *found = NULL;
    pthread_mutex_lock(&r->mu);
    for (struct unlocked *u = r->all; u != NULL && found == NULL; u = u->next)
        if (u->verifier != NULL && u->mb != NULL && u->refs < r->max_sessions &&
            memcmp(u->creds, creds, sizeof creds) == 0 &&
            seal_equal(u->verifier, verifier, SEAL_HASH_BYTES))
            found = u;
    if (found != NULL)
        found->refs++;
    pthread_mutex_unlock(&r->mu);
    return found;
}

static void remember(struct unlock_registry *r, struct unlocked *u, const uint8_t *verifier,
                     const uint8_t *creds)
{
    pthread_mutex_lock(&r->mu);
    if (u->verifier == NULL)
        u->verifier = seal_secret_alloc(SEAL_HASH_BYTES);
    memcpy(u->verifier, verifier, SEAL_HASH_BYTES);
    memcpy(u->creds, creds, SEAL_HASH_BYTES);
    pthread_mutex_unlock(&r->mu);
}

enum unlock_result unlock_login(struct unlock_registry *r, const char *address,
                                const char *password, size_t pwlen, struct unlocked **u_r,
                                bool *fast_r)
{
    struct account acct = {0};
    const char *error;
    uint8_t verifier[SEAL_HASH_BYTES];
    *u_r = NULL;
    if (fast_r != NULL)
        *fast_r = false;
    struct directory *dir = dirpool_take(r->dirs);
    if (dir == NULL)
        return UNLOCK_FAILED;
    make_verifier(r, address, password, pwlen, verifier);
    if ((*u_r = attach_known(r, address, verifier, dir)) != NULL) {
        seal_wipe(verifier, sizeof verifier);
        dirpool_give(r->dirs, dir);
        if (fast_r != NULL)
            *fast_r = true;
        return UNLOCK_OK;
    }
    /* read before the check: a change after it voids the hash */
    uint8_t creds[SEAL_HASH_BYTES];
    bool known = credentials_digest(dir, address, creds) == 0;
    int k = account_unlock(dir, address, password, pwlen, &r->params, &acct, &error);
    enum unlock_result res;
    if (k == KEYWRAP_OK) {
        res = attach(r, &acct, dir, u_r);
        if (res == UNLOCK_OK && known)
            remember(r, *u_r, verifier, creds);
    } else if (k == KEYWRAP_WRONG || k == KEYWRAP_NOT_A_KEY) {
        res = UNLOCK_BAD_PASSWORD;
    } else {
        log_warn("imapd unlock-failed error=\"%s\"", error);
        res = UNLOCK_FAILED;
    }
    seal_wipe(verifier, sizeof verifier);
    account_free(&acct);
    dirpool_give(r->dirs, dir);
    return res;
}

static void entry_free(void *arg)
{
    struct unlocked *u = arg;
    mailbox_close(&u->mb); /* wipes the keys */
    seal_secret_free(&u->verifier);
    pthread_mutex_destroy(&u->store_mu);
    free(u);
}

/* Closing a store checkpoints its WAL (disk work): on the worker pool,
 * not on the loop that calls this; synchronously once the pool is gone
 * (shutdown) or when nothing was opened. */
static void entry_close(struct unlock_registry *r, struct unlocked *u)
{
    if (r->wp != NULL && u->mb != NULL)
        workpool_submit(r->wp, entry_free, NULL, u);
    else
        entry_free(u);
}

/* r->mu held: take u out of the list. */
static void unlink_entry(struct unlock_registry *r, struct unlocked *u)
{
    struct unlocked **pp = &r->all;
    while (*pp != u)
        pp = &(*pp)->next;
    *pp = u->next;
}

void unlock_release(struct unlocked **up)
{
    struct unlocked *u = *up;
    if (u == NULL)
        return;
    *up = NULL;
    struct unlock_registry *r = u->r;
    pthread_mutex_lock(&r->mu);
    bool last = --u->refs == 0;
    bool close_now = last && (r->linger == 0 || u->mb == NULL);
    if (close_now)
        unlink_entry(r, u);
    else if (last)
        u->idle_since = time(NULL);
    pthread_mutex_unlock(&r->mu);
    if (close_now)
        entry_close(r, u);
}

void unlock_registry_sweep(struct unlock_registry *r)
{
    time_t now = time(NULL);
    for (;;) {
        struct unlocked *expired = NULL;
        pthread_mutex_lock(&r->mu);
        for (struct unlocked *u = r->all; u != NULL && expired == NULL; u = u->next)
            if (u->refs == 0 && now - u->idle_since >= (time_t)r->linger)
                expired = u;
        if (expired != NULL)
            unlink_entry(r, expired);
        pthread_mutex_unlock(&r->mu);
        if (expired == NULL)
            return;
        log_debug("imapd store-closed mailbox=%s", expired->mailbox_id);
        entry_close(r, expired);
    }
}

/* ---- using the store ------------------------------------------------------ */

struct mailbox *unlocked_store(struct unlocked *u)
{
    pthread_mutex_lock(&u->store_mu);
    return u->mb;
}

void unlocked_store_done(struct unlocked *u)
{
    pthread_mutex_unlock(&u->store_mu);
}

const char *unlocked_address(const struct unlocked *u)
{
    return u->address;
}

const char *unlocked_mailbox_id(const struct unlocked *u)
{
    return u->mailbox_id;
}

uint64_t unlocked_quota(const struct unlocked *u)
{
    return u->quota;
}

/* ---- change notification (loop thread) ------------------------------------- */

void unlocked_watch(struct unlocked *u, struct unlock_watch *w)
{
    w->prev = NULL;
    w->next = u->watches;
    if (u->watches != NULL)
        u->watches->prev = w;
    u->watches = w;
}

void unlocked_unwatch(struct unlocked *u, struct unlock_watch *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else if (u->watches == w)
        u->watches = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

void unlocked_notify(struct unlocked *u, const struct unlock_watch *except)
{
    struct unlock_watch *w = u->watches;
    while (w != NULL) {
        struct unlock_watch *next = w->next; /* a callback may unwatch itself */
        if (w != except)
            w->changed(w->arg);
        w = next;
    }
}

static void import_work(void *arg)
{
    struct unlocked *u = arg;
    struct directory *dir = dirpool_take(u->r->dirs);
    if (unlocked_store(u) != NULL)
        import_drop(u, dir);
    unlocked_store_done(u);
    dirpool_give(u->r->dirs, dir);
}

static void import_done(void *arg)
{
    struct unlocked *u = arg;
    unlocked_notify(u, NULL);
    unlock_release(&u);
}

void unlock_registry_changed(struct unlock_registry *r, const char *mailbox_id)
{
    pthread_mutex_lock(&r->mu);
    struct unlocked *u = find(r, mailbox_id);
    if (u != NULL)
        u->refs++;
    pthread_mutex_unlock(&r->mu);
    if (u != NULL)
        workpool_submit(r->wp, import_work, import_done, u);
}
