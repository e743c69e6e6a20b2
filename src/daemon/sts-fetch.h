/* sts-fetch.h — MTA-STS (RFC 8461) policies for queued: fetched over
 * HTTPS with libcurl, kept in a cache directory.
 *
 * Fetching (§3.3): GET https://mta-sts.DOMAIN/.well-known/mta-sts.txt,
 * HTTPS only, TLS 1.2 or newer, the certificate checked against the
 * trust store and the name "mta-sts.DOMAIN"; no redirect is followed, no
 * proxy is used, only status 200 with a text/plain body counts.  The
 * addresses come from the caller (queued resolves the name through its
 * own resolver): libcurl is handed them with CURLOPT_RESOLVE and never
 * asks the system resolver.  Blocking: call on a worker thread.
 *
 * Caching (§5.1): a fetched policy is saved, durably, as
 * DIR/<domain> with the id of the TXT record that announced it and the
 * time it was fetched; it is valid until fetched + max_age.  A valid
 * cached policy is used when the TXT record is gone or unchanged, and
 * when a new one cannot be fetched: an attacker who blocks the TXT
 * lookup or the HTTPS fetch cannot turn enforcement off.  Files survive
 * restarts.  Domain names are checked before they become file names.
 *
 * Limits: a body of at most STS_POLICY_MAX bytes; the timeout given
 * covers the whole fetch (connection, TLS, transfer). */
#ifndef SM_DAEMON_STS_FETCH_H
#define SM_DAEMON_STS_FETCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp/sts-policy.h"

#define STS_FETCH_ADDRS_MAX 8

struct sts_fetch_params {
    const char *domain;           /* the recipient domain (lowercase, no final dot) */
    const char *const *addrs;     /* numeric addresses of mta-sts.DOMAIN */
    size_t n_addrs;               /* 1..STS_FETCH_ADDRS_MAX */
    unsigned port;                /* 443 (tests: another) */
    const char *ca_file;          /* NULL or "": the system's trust store */
    unsigned timeout_s;
    atomic_bool *stop;            /* NULL, or set from another thread to abort at once */
};

/* Set up libcurl (before threads use it); 0 or -1. */
int sts_fetch_global_init(void);
void sts_fetch_global_free(void);

/* Fetch and parse.  0 with *p and the body (*body_r, *len_r; free()) on a
 * valid policy; -1 with a reason in err. */
int sts_fetch(const struct sts_fetch_params *fp, struct sts_policy *p, char **body_r,
              size_t *len_r, char *err, size_t errlen);

struct sts_cached {
    char id[STS_ID_MAX + 1];
    int64_t fetched;              /* Unix time */
    struct sts_policy policy;
};

/* Is a domain name usable as a cache file name (LDH labels, dots)? */
bool sts_domain_ok(const char *domain);

/* Load DIR/<domain>: 0 with *c, 1 when there is none, -1 when it is
 * unreadable or corrupt (treated like none by callers, and logged). */
int sts_cache_load(const char *dir, const char *domain, struct sts_cached *c);
/* Save a fetched policy (temporary file, fsync, rename, fsync of DIR). */
int sts_cache_save(const char *dir, const char *domain, const char *id, int64_t fetched,
                   const char *body, size_t len);
/* Not expired at now (a policy in mode "none" is valid too: it says
 * "no policy" until it expires). */
bool sts_cached_valid(const struct sts_cached *c, int64_t now);

#endif
