/* outbound-sts.c — MTA-STS lookups on queued's loop (see outbound-sts.h) */
#include "daemon/outbound-sts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/workpool.h"
#include "daemon/sts-fetch.h"
#include "dns/resolver.h"

struct sts_resolver {
    struct event_base *base;
    struct dns_resolver *dns;
    struct workpool *pool, *fetch_pool;
    char dir[4096];
    unsigned port;
    char *ca_file;
    atomic_bool stop;
};

struct sts_lookup {
    struct sts_resolver *r;
    char domain[STS_NAME_MAX + 1];
    sts_lookup_cb *cb;
    void *arg;
    struct dns_query *q;    /* a DNS step is running */
    bool in_job;            /* a worker step is running */
    bool cancelled;         /* ... and its completion frees the lookup */
    char id[STS_ID_MAX + 1]; /* from the TXT record; "" when none */
    int cache_rc;           /* sts_cache_load() */
    struct sts_cached cached;
    char addrs[STS_FETCH_ADDRS_MAX][INET6_ADDRSTRLEN];
    size_t n_addrs;
    struct sts_policy fetched;
    bool fetch_ok;
    char error[256];
};

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

/* The answer: the lookup is freed before the callback runs. */
static void answer(struct sts_lookup *l, const struct sts_policy *p, const char *source)
{
    struct sts_policy copy;
    if (p != NULL)
        copy = *p;
    sts_lookup_cb *cb = l->cb;
    void *arg = l->arg;
    free(l);
    cb(arg, p != NULL ? &copy : NULL, source);
}

/* A worker step ended: false (and the lookup freed) when it was cancelled. */
static bool job_back(struct sts_lookup *l)
{
    l->in_job = false;
    if (!l->cancelled)
        return true;
    free(l);
    return false;
}

static bool cached_valid(const struct sts_lookup *l)
{
    return l->cache_rc == 0 && sts_cached_valid(&l->cached, now_s());
}

/* --- fetch (the fetch pool) -------------------------------------------------------- */

static void fetch_work(void *arg)
{
    struct sts_lookup *l = arg;
    struct sts_resolver *r = l->r;
    const char *addrs[STS_FETCH_ADDRS_MAX];
    for (size_t i = 0; i < l->n_addrs; i++)
        addrs[i] = l->addrs[i];
    struct sts_fetch_params fp = {l->domain, addrs, l->n_addrs, r->port, r->ca_file,
                                  STS_FETCH_TIMEOUT_S, &r->stop};
    char *body;
    size_t len;
    if (atomic_load(&r->stop)) {
        snprintf(l->error, sizeof l->error, "stopping");
        return;
    }
    if (sts_fetch(&fp, &l->fetched, &body, &len, l->error, sizeof l->error) < 0)
        return;
    l->fetch_ok = true;
    if (sts_cache_save(r->dir, l->domain, l->id, now_s(), body, len) < 0)
        log_warn("outbound mta-sts-cache-failed domain=%s error=\"%s\"", l->domain,
                 strerror(errno));
    free(body);
}

/* The fetched policy; failing that, a valid cached one (§3.3). */
static void after_fetch(struct sts_lookup *l)
{
    if (l->fetch_ok) {
        log_info("outbound mta-sts-fetched domain=%s id=%s mode=%s max_age=%u mx=%zu",
                 l->domain, l->id, sts_mode_name(l->fetched.mode), l->fetched.max_age,
                 l->fetched.n_mx);
        answer(l, &l->fetched, "fetched");
        return;
    }
    bool have = cached_valid(l);
    log_info("outbound mta-sts-fetch-failed domain=%s id=%s error=\"%s\" using=%s", l->domain,
             l->id, l->error, have ? "cached policy" : "no policy");
    answer(l, have ? &l->cached.policy : NULL, have ? "cache after a failed fetch" : "none");
}

static void fetch_done(void *arg)
{
    struct sts_lookup *l = arg;
    if (job_back(l))
        after_fetch(l);
}

/* --- the policy server's addresses (loop) ------------------------------------------ */

static void add_addrs(struct sts_lookup *l, const struct dns_answer *ans, uint16_t type)
{
    for (size_t i = 0; ans->status == DNS_OK && i < ans->n; i++) {
        const struct dns_rr *rr = &ans->rr[i];
        if (rr->type != type || l->n_addrs == STS_FETCH_ADDRS_MAX)
            continue;
        inet_ntop(type == DNS_T_A ? AF_INET : AF_INET6, rr->addr, l->addrs[l->n_addrs],
                  sizeof l->addrs[0]);
        l->n_addrs++;
    }
}

static void on_aaaa(void *arg, struct dns_answer *ans)
{
    struct sts_lookup *l = arg;
    l->q = NULL;
    add_addrs(l, ans, DNS_T_AAAA);
    dns_answer_free(ans);
    if (l->n_addrs == 0 || l->r->fetch_pool == NULL) { /* none, or stopping */
        snprintf(l->error, sizeof l->error, "%s mta-sts.%s",
                 l->n_addrs ? "stopping: not fetching from" : "no address for", l->domain);
        after_fetch(l);
        return;
    }
    l->in_job = true;
    workpool_submit(l->r->fetch_pool, fetch_work, fetch_done, l);
}

static void on_a(void *arg, struct dns_answer *ans)
{
    struct sts_lookup *l = arg;
    char name[STS_NAME_MAX + 16];
    l->q = NULL;
    add_addrs(l, ans, DNS_T_A);
    dns_answer_free(ans);
    snprintf(name, sizeof name, "mta-sts.%s", l->domain);
    l->q = dns_resolve(l->r->dns, name, DNS_T_AAAA, on_aaaa, l);
}

/* --- the cache (queued's pool) ------------------------------------------------------- */

static void load_work(void *arg)
{
    struct sts_lookup *l = arg;
    l->cache_rc = sts_cache_load(l->r->dir, l->domain, &l->cached);
}

static void load_done(void *arg)
{
    struct sts_lookup *l = arg;
    if (!job_back(l))
        return;
    if (l->cache_rc < 0)
        log_warn("outbound mta-sts-cache-unreadable domain=%s (ignored)", l->domain);
    bool valid = cached_valid(l);
    if (valid && (l->id[0] == '\0' || strcmp(l->id, l->cached.id) == 0)) {
        answer(l, &l->cached.policy, "cache");
        return;
    }
    if (l->id[0] == '\0') { /* no record and nothing valid cached */
        answer(l, NULL, "none");
        return;
    }
    char name[STS_NAME_MAX + 16];
    snprintf(name, sizeof name, "mta-sts.%s", l->domain);
    l->q = dns_resolve(l->r->dns, name, DNS_T_A, on_a, l);
}

/* --- the TXT record (loop) ------------------------------------------------------------- */

/* The id of the one "v=STSv1" record ("" when there are none, several, or
 * it does not parse: §3.1). */
static void txt_id(const struct dns_answer *ans, char *id)
{
    unsigned n = 0;
    id[0] = '\0';
    for (size_t i = 0; ans->status == DNS_OK && i < ans->n; i++) {
        const struct dns_rr *rr = &ans->rr[i];
        if (rr->type != DNS_T_TXT || rr->data == NULL ||
            !sts_txt_is_sts((const char *)rr->data, rr->len))
            continue;
        if (++n > 1 || !sts_txt_parse((const char *)rr->data, rr->len, id))
            id[0] = '\0';
    }
    if (n > 1)
        id[0] = '\0';
}

static void on_txt(void *arg, struct dns_answer *ans)
{
    struct sts_lookup *l = arg;
    l->q = NULL;
    txt_id(ans, l->id);
    dns_answer_free(ans);
    l->in_job = true;
    workpool_submit(l->r->pool, load_work, load_done, l);
}

struct sts_lookup *sts_lookup_start(struct sts_resolver *r, const char *domain,
                                    sts_lookup_cb *cb, void *arg)
{
    struct sts_lookup *l = sm_calloc(1, sizeof *l);
    l->r = r;
    l->cb = cb;
    l->arg = arg;
    snprintf(l->domain, sizeof l->domain, "%s", domain);
    if (!sts_domain_ok(l->domain)) { /* no policy can exist for it: answer "none" */
        l->cache_rc = 1;                 /* from the loop's next turn */
        l->in_job = true;
        workpool_submit(r->pool, NULL, load_done, l);
        return l;
    }
    char name[STS_NAME_MAX + 16];
    snprintf(name, sizeof name, "_mta-sts.%s", l->domain);
    l->q = dns_resolve(r->dns, name, DNS_T_TXT, on_txt, l);
    return l;
}

void sts_lookup_cancel(struct sts_lookup **lp)
{
    struct sts_lookup *l = *lp;
    if (l == NULL)
        return;
    *lp = NULL;
    if (l->in_job) {
        l->cancelled = true; /* its completion frees it */
        return;
    }
    dns_query_cancel(&l->q);
    free(l);
}

/* --- life cycle ------------------------------------------------------------------------- */

struct sts_resolver *sts_resolver_new(const struct sts_resolver_params *p, const char **error_r)
{
    if (mkdir(p->cache_dir, 0700) < 0 && errno != EEXIST) {
        *error_r = "queue: cannot create the MTA-STS cache directory";
        return NULL;
    }
    if (sts_fetch_global_init() < 0) {
        *error_r = "queue: libcurl cannot be initialised";
        return NULL;
    }
    struct sts_resolver *r = sm_calloc(1, sizeof *r);
    r->base = p->base;
    r->dns = p->dns;
    r->pool = p->pool;
    snprintf(r->dir, sizeof r->dir, "%s", p->cache_dir);
    r->port = p->port;
    r->ca_file = sm_strdup(p->ca_file ? p->ca_file : "");
    atomic_init(&r->stop, false);
    r->fetch_pool = workpool_new(p->base, STS_FETCH_THREADS);
    return r;
}

void sts_resolver_stop(struct sts_resolver *r)
{
    if (r == NULL)
        return;
    atomic_store(&r->stop, true);
    workpool_free(&r->fetch_pool); /* the completions free cancelled lookups */
}

void sts_resolver_free(struct sts_resolver **rp)
{
    struct sts_resolver *r = *rp;
    if (r == NULL)
        return;
    sts_resolver_stop(r);
    free(r->ca_file);
    free(r);
    sts_fetch_global_free();
    *rp = NULL;
}
