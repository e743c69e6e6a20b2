/* outbound-sts.h — MTA-STS (RFC 8461) policy lookups for queued's
 * outbound delivery, asynchronous on queued's loop.
 *
 * One lookup per recipient domain and attempt (§5):
 *   1. TXT "_mta-sts.DOMAIN" through queued's resolver: the one record
 *      beginning "v=STSv1" gives the policy id (several or none: no id);
 *   2. the cached policy (sts-fetch.h), read on queued's worker pool;
 *   3. a valid cached policy whose id is the record's, or any valid one
 *      when the record is missing, is the answer (nothing fetched);
 *   4. otherwise, with an id: the addresses of mta-sts.DOMAIN (A, AAAA,
 *      the same resolver), then the HTTPS fetch on a pool of its own
 *      (STS_FETCH_THREADS), so that a slow policy server never holds up
 *      inbound delivery; a fetched policy is cached and is the answer;
 *      when the fetch fails, a valid cached policy still is (§3.3: "no
 *      policy" only when nothing valid is known).
 * The answer is a policy (possibly mode "none" or "testing") or none.
 *
 * Guarantees: the callback runs exactly once, on the loop, never inside
 * sts_lookup_start(), unless the lookup is cancelled first; after a
 * cancel it never runs.  sts_resolver_stop() aborts running fetches. */
#ifndef SM_DAEMON_OUTBOUND_STS_H
#define SM_DAEMON_OUTBOUND_STS_H

#include "smtp/sts-policy.h"

struct dns_resolver;
struct event_base;
struct sts_lookup;
struct sts_resolver;
struct workpool;

#define STS_FETCH_THREADS 2
#define STS_FETCH_TIMEOUT_S 20

struct sts_resolver_params {
    struct event_base *base;
    struct dns_resolver *dns;   /* queued's; not owned */
    struct workpool *pool;      /* queued's worker pool (cache reads); not owned */
    const char *cache_dir;      /* created if missing */
    unsigned port;              /* of the policy servers: 443 (tests: another) */
    const char *ca_file;        /* NULL or "": the system's trust store */
};

struct sts_resolver *sts_resolver_new(const struct sts_resolver_params *p, const char **error_r);

/* The policy for domain (lowercase), or NULL when it has none; source
 * says where the policy came from ("cache", "fetched", "cache after a
 * failed fetch") for the log. */
typedef void sts_lookup_cb(void *arg, const struct sts_policy *p, const char *source);

struct sts_lookup *sts_lookup_start(struct sts_resolver *r, const char *domain,
                                    sts_lookup_cb *cb, void *arg);
/* Sets *l to NULL; accepts NULL and *l == NULL. */
void sts_lookup_cancel(struct sts_lookup **l);

/* Abort fetches and wait for the fetch threads (call after every lookup
 * was cancelled, before queued's pool is freed).  Accepts NULL. */
void sts_resolver_stop(struct sts_resolver *r);
/* After queued's pool is freed.  Accepts NULL; sets *r to NULL. */
void sts_resolver_free(struct sts_resolver **r);

#endif
