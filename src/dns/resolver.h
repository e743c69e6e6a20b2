/* resolver.h — asynchronous DNS on the libevent loop (libunbound).
 *
 * What: one resolver per event loop.  dns_resolve() asks a question and
 * later calls back, on the loop, with a struct dns_answer (answer.h).
 * libunbound runs in its event mode (ub_ctx_create_event) on the caller's
 * event_base: no helper process, no thread, so DNS fits the seccomp
 * sandbox of every role.  unbound does full recursion from the root hints
 * (or asks the configured forwarders), validates DNSSEC against the trust
 * anchor and hands back the raw reply; wire.c decodes it.
 *
 * Caching: unbound's own cache (message and RRset caches, TTL-bounded) is
 * the only cache; this module keeps none.
 *
 * Guarantees to callers:
 *   - the callback runs exactly once per query, on the loop, and never
 *     inside dns_resolve() (answers unbound knows at once — local data, a
 *     bad name, the in-flight cap — are delivered from the loop's next
 *     turn), unless the query is cancelled first; after a cancel, or after
 *     dns_resolver_free(), it never runs;
 *   - the query handle is valid until its callback starts or it is
 *     cancelled, whichever is first;
 *   - every query ends within timeout_ms: then the answer is DNS_TEMPFAIL
 *     and unbound's query is cancelled;
 *   - at most max_inflight queries wait for unbound; a query past the cap
 *     is not queued but answered DNS_TEMPFAIL at once (asynchronously, as
 *     always): a burst of lookups must not grow memory without bound, and
 *     the callers (mail checks) already turn TEMPFAIL into "try later".
 *   - answer->secure: unbound validated the reply (DNSSEC "secure");
 *     a "bogus" reply gives DNS_TEMPFAIL with answer->bogus set and no
 *     records (never use data that failed validation).
 *
 * Limits: names of at most DNS_NAME_MAX characters; only the types of
 * enum dns_type (others are DNS_PERMFAIL).  A cancelled or timed-out query
 * stops costing the caller anything, but unbound may finish its own work
 * for it in the background (its mesh has its own limits).
 *
 * Test mode: with zone_file or signed_zone_file, the root zone "." is made
 * a static local zone, so no name can leave the machine: a name not in the
 * test data is NXDOMAIN at once.  See docs/dns.md for the file formats. */
#ifndef SM_DNS_RESOLVER_H
#define SM_DNS_RESOLVER_H

#include <stdint.h>

#include "dns/answer.h"

struct event_base;
struct dns_resolver;
struct dns_query;

#define DNS_TIMEOUT_MS_DEFAULT 5000 /* the [dns] timeout default */
#define DNS_MAX_INFLIGHT_DEFAULT 1000
#define DNS_ROOT_KEY_FILE "/usr/share/dns/root.key"

struct dns_resolver_options {
    /* NULL or "": full recursion from the root hints; else a space-separated
     * list of "addr[@port]" forwarders (IPv4 or IPv6 literals), which must
     * return DNSSEC records for validation to work. */
    const char *forwarders;
    /* Tests: resource records in zone-file syntax, one per line (absolute
     * names; comments after ';' and blank lines allowed; no $ directives),
     * served as static local data.  Makes "." static (see above). */
    const char *zone_file;
    /* DNSSEC trust anchors (DS or DNSKEY records, zone-file syntax).
     * NULL: DNS_ROOT_KEY_FILE if it exists, else no validation;
     * "": no validation. */
    const char *trust_anchor_file;
    /* Tests of DNSSEC: a zone signed with ldns-signzone, served as an
     * unbound auth-zone and validated against trust_anchor_file (which
     * must be given and hold its DS or DNSKEY).  Its first record must be
     * the SOA with an absolute owner name, as ldns-signzone writes it.
     * Makes "." static (see above). */
    const char *signed_zone_file;
    unsigned timeout_ms;   /* 0: DNS_TIMEOUT_MS_DEFAULT */
    unsigned max_inflight; /* 0: DNS_MAX_INFLIGHT_DEFAULT */
};

/* The callee owns answer (free with dns_answer_free()). */
typedef void dns_resolve_cb(void *arg, struct dns_answer *answer);

/* A resolver on base.  Options may be NULL (all defaults).  Everything
 * is checked and loaded here (forwarder syntax, files, trust anchors), so
 * a bad configuration fails at start-up: NULL with *error_r set (static
 * text, valid until the next call from this thread). */
struct dns_resolver *dns_resolver_new(struct event_base *base,
                                      const struct dns_resolver_options *opts,
                                      const char **error_r);

/* Ask (name, type) in class IN; name without or with a final dot.
 * Never NULL, never calls back before returning. */
struct dns_query *dns_resolve(struct dns_resolver *r, const char *name, uint16_t type,
                              dns_resolve_cb *cb, void *arg);

/* Cancel a query whose callback has not run: it never will.  Sets *q to
 * NULL; accepts NULL and *q == NULL. */
void dns_query_cancel(struct dns_query **q);

/* Queries not yet answered (for tests and statistics). */
unsigned dns_resolver_pending(const struct dns_resolver *r);

/* Free the resolver; outstanding queries are cancelled without calling
 * back.  Accepts NULL and *r == NULL; sets *r to NULL.  Must not be
 * called from inside unbound (it never is: callbacks run from our own
 * events). */
void dns_resolver_free(struct dns_resolver **r);

#endif
